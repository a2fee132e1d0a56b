//! `headnode check`: validate and summarise.

use crate::cli::CheckArgs;
use crate::config::model::{Nat, VirtualKey};
use std::path::Path;

pub fn run(path: &Path, args: &CheckArgs) -> anyhow::Result<()> {
    let cfg = super::load_config(path)?;
    let pool = cfg.dhcp.pool.map_or("no pool".to_string(), |p| {
        format!("pool {}-{} ({} addresses)", p.start, p.end, p.size())
    });
    println!("{}: ok", path.display());
    println!(
        "  interfaces: public {} ({}), private {} ({})",
        cfg.public.name,
        cfg.public
            .address
            .map_or("address read at apply".to_string(), |a| a.to_string()),
        cfg.private.name,
        cfg.private.address
    );
    println!(
        "  dhcp: {}, {} reservation{}, {pool}",
        if cfg.dhcp.enabled { "on" } else { "off" },
        cfg.hosts.len(),
        plural(cfg.hosts.len())
    );
    let nat = match cfg.firewall.nat {
        Nat::None => "no NAT".to_string(),
        Nat::Masquerade => "masquerade".to_string(),
        Nat::Snat(a) => format!("SNAT to {a}"),
    };
    println!(
        "  firewall: {}, {} rule{}, {} mark{}, {} forward{}, {nat}",
        if cfg.firewall.enabled { "on" } else { "off" },
        cfg.firewall.rules.len(),
        plural(cfg.firewall.rules.len()),
        cfg.firewall.marks.len(),
        plural(cfg.firewall.marks.len()),
        cfg.firewall.forwards.len(),
        plural(cfg.firewall.forwards.len()),
    );
    println!(
        "  balancer: backend {:?}, {} virtual service{}",
        cfg.balancer.backend,
        cfg.balancer.services.len(),
        plural(cfg.balancer.services.len())
    );
    for s in &cfg.balancer.services {
        let key = match &s.key {
            VirtualKey::Fwmark { mark } => format!("FWM {mark}"),
            k => k.to_string(),
        };
        let reals: Vec<String> = s
            .reals
            .iter()
            .map(|r| format!("{}:{}", r.name, r.port))
            .collect();
        println!(
            "    {} ({key} {}): {}",
            s.name,
            s.scheduler,
            reals.join(", ")
        );
    }
    let sysctls: Vec<String> = cfg
        .sysctls
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("  sysctls: {}", sysctls.join(", "));
    if args.explain {
        if cfg.services.is_empty() {
            println!("\nno [[service]] blocks to explain");
        }
        for s in &cfg.services {
            println!("\n[[service]] \"{}\" (line {}) expands to:", s.name, s.line);
            for e in &s.expansion {
                println!("  {e}");
            }
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
