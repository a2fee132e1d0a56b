//! PURE: IPVS tables and changes as text, in the `ipvsadm -Ln` form admins
//! already read.

use super::{Family, Op, ServiceKey, Table, diff};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// A v4 persistence netmask as dotted quad (it travels big-endian).
pub fn netmask(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// `ipvsadm -Ln` without the header and counters.
pub fn render_table(t: &Table) -> String {
    let mut out = String::new();
    for (k, s) in t {
        let _ = write!(out, "{k} {}", s.attrs.scheduler);
        if s.attrs.flags & super::SVC_F_PERSISTENT != 0 {
            let _ = write!(out, " persistent {}", s.attrs.timeout);
            if k.family() == Family::Inet && s.attrs.netmask != u32::MAX {
                let _ = write!(out, " mask {}", netmask(s.attrs.netmask));
            }
        }
        out.push('\n');
        for (d, a) in &s.dests {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {}",
                d.to_string(),
                a.forward.ipvsadm_name(),
                a.weight
            );
        }
    }
    out
}

/// One `ipvsadm <args>` line per change.
pub fn render_ops(ops: &[Op]) -> String {
    ops.iter().map(|op| format!("ipvsadm {op}\n")).collect()
}

/// The whole IPVS section of `headnode plan`.
pub fn plan(
    desired: &Table,
    live: Result<Table, String>,
    owned: &BTreeSet<ServiceKey>,
    exclusive: bool,
    sysctls: &[(String, String, &'static str)],
) -> String {
    let mut out = String::from(
        "IPVS (desired)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight\n",
    );
    out.push_str(&render_table(desired));
    for (k, v, why) in sysctls {
        let _ = writeln!(out, "\nsysctl {k} = {v}\n  {why}");
    }
    let (ops, note) = match live {
        Ok(t) => (diff(desired, &t, owned, exclusive), String::new()),
        Err(e) => (
            diff(desired, &Table::new(), owned, exclusive),
            format!(" (live table not readable: {e}; changes from an empty table)"),
        ),
    };
    let _ = writeln!(out, "\nIPVS changes{note}:");
    if ops.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&render_ops(&ops));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthMap;

    #[test]
    fn origin_plan_golden() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin/headnode.toml");
        let cfg = crate::config::load(std::path::Path::new(path)).unwrap();
        let want = super::super::desired(&cfg, &HealthMap::default());
        let text = plan(
            &want,
            Err("no IPVS".into()),
            &BTreeSet::new(),
            false,
            &super::super::sysctls(&cfg),
        );
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin/ipvs-plan.txt");
        if std::env::var_os("HEADNODE_BLESS").is_some() {
            std::fs::write(golden, &text).unwrap();
        }
        assert_eq!(text, std::fs::read_to_string(golden).unwrap());
    }
}
