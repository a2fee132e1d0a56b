//! `headnode check`: validate and summarise.

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::config::model::{Action, Nat, Proto, VirtualKey, Zone};
use std::net::Ipv4Addr;
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
    let links = crate::netinfo::read().map(|snap| {
        snap.links
            .iter()
            .map(|l| l.name.clone())
            .collect::<Vec<_>>()
    });
    let mut warnings = advertised_but_not_served(&cfg);
    warnings.extend(sysctl_warnings(&cfg, links.as_deref().ok()));
    if let Some(ha) = &cfg.ha {
        println!(
            "  ha: {} (priority {}), peer {}; virtual {} (public) and {} (LAN); keepalived includes {}",
            ha.role.name(),
            ha.priority,
            ha.peer,
            ha.public_address,
            ha.lan_address,
            ha.keepalived_config.display()
        );
        warnings.extend(keepalived_test(&cfg, ha)?);
    }
    if let Some(peer_path) = &args.peer {
        let peer = super::load_config(peer_path)?;
        let problems = crate::ha::pair_problems(&cfg, &peer);
        if !problems.is_empty() {
            return Err(super::InvalidInput(format!(
                "{} and {} do not make a pair of head nodes:\n  {}",
                path.display(),
                peer_path.display(),
                problems.join("\n  ")
            ))
            .into());
        }
        println!("  peer: {} mirrors this config", peer_path.display());
    } else if cfg.ha.is_some() {
        warnings.push("[ha]: `headnode check --peer COPY-OF-THE-PEER'S-FILE` checks that both nodes answer alike".into());
    }
    for w in warnings {
        println!("  warning: {w}");
    }
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

/// `keepalived -t` on the file headnode would write for it, when keepalived
/// is installed: what keepalived rejects is an error (exit 1); that this
/// box lacks an interface the file names, or keepalived itself, a warning
/// (the config may be written on another machine).
fn keepalived_test(cfg: &Config, ha: &crate::config::model::Ha) -> anyhow::Result<Vec<String>> {
    let text = crate::ha::keepalived_config_here(cfg, ha);
    let tmp = std::env::temp_dir().join(format!("headnode-keepalived-{}.conf", std::process::id()));
    std::fs::write(&tmp, &text)?;
    let out = std::process::Command::new("keepalived")
        .args(["-t", "-f"])
        .arg(&tmp)
        .output();
    let _ = std::fs::remove_file(&tmp);
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![
                "keepalived is not installed: [ha] needs it to move the virtual addresses (apt install keepalived)".into(),
            ]);
        }
        Err(e) => return Err(anyhow::anyhow!("cannot run keepalived -t: {e}")),
    };
    if out.status.success() {
        println!("  keepalived -t: the file is valid");
        return Ok(Vec::new());
    }
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let about_interfaces =
        |l: &&str| l.contains("doesn't exist") || l.contains("Non-existent interface");
    if !lines.is_empty() && lines.iter().all(about_interfaces) {
        return Ok(lines
            .iter()
            .map(|l| format!("keepalived -t: {l} (on this machine)"))
            .collect());
    }
    Err(super::InvalidInput(format!(
        "keepalived -t rejects the file headnode writes for it:\n  {}",
        lines.join("\n  ")
    ))
    .into())
}

/// Services DHCP tells the nodes to find on this head node (TFTP by
/// next_server or a tftp:// boot URL, DNS, NTP, HTTP boot URLs) that
/// headnode does not serve here or the firewall rejects from loc; and
/// TFTP served with a firewall that rejects its data.
fn advertised_but_not_served(cfg: &Config) -> Vec<String> {
    let me = cfg.private_ip();
    let d = &cfg.dhcp;
    let mut out = Vec::new();
    // A transfer's data leaves from a new port: conntrack sees it as new
    // traffic from fw to loc (the client's ACKs are its replies).
    let fw = &cfg.firewall;
    if cfg.tftp.is_some()
        && fw.enabled
        && fw.policies.get(&(Zone::Fw, Zone::Loc)) != Some(&Action::Accept)
    {
        out.push(
            "[tftp] is on, but the fw to loc policy is not accept: TFTP data (from the server's new port to the node) is rejected; make it accept".to_string(),
        );
    }
    if !d.enabled {
        return out;
    }
    let hosts = || cfg.hosts.iter().filter_map(|h| h.dhcp.as_deref());
    let boots = || d.boot.iter().chain(hosts().flat_map(|h| h.boot.iter()));
    let files = || {
        boots()
            .map(|b| b.filename.as_str())
            .chain(d.filename.as_deref())
            .chain(hosts().filter_map(|h| h.filename.as_deref()))
    };
    let tftp_url = format!("tftp://{me}/");
    let next_server_is_me = d.next_server == Some(me)
        || hosts().any(|h| h.next_server == Some(me))
        || boots().any(|b| b.next_server == Some(me));
    if (next_server_is_me || files().any(|f| f.starts_with(&tftp_url))) && cfg.tftp.is_none() {
        let closed = if closed_from_loc(cfg, Proto::Udp, 69) {
            "and the firewall rejects it from loc"
        } else {
            "so another TFTP server must run here"
        };
        out.push(format!(
            "DHCP sends nodes to {me} for TFTP, but [tftp] is off {closed}; add [tftp] root = \"/srv/tftp\""
        ));
    }
    let names_me = |l: &[Ipv4Addr]| l.contains(&me);
    // [dns] serves it, and the firewall opens it with it.
    let dns = cfg.dns.is_none()
        && (names_me(&d.dns_servers)
            || hosts().any(|h| h.dns_servers.as_deref().is_some_and(names_me)));
    for (asked, what, proto, port) in [
        (dns, "DNS (dns_servers)", Proto::Udp, 53),
        (
            names_me(&d.ntp_servers),
            "NTP (ntp_servers)",
            Proto::Udp,
            123,
        ),
        (
            files().any(|f| f.starts_with(&format!("http://{me}/"))),
            "HTTP boot (a boot URL)",
            Proto::Tcp,
            80,
        ),
    ] {
        if asked && closed_from_loc(cfg, proto, port) {
            out.push(format!(
                "DHCP sends nodes to {me} for {what}, but headnode does not serve it and the firewall rejects {proto:?} port {port} from loc; add a [[firewall.rule]] from loc to fw for it, or name another server"
            ));
        }
    }
    out
}

/// Does the firewall reject `proto`/`port` from loc to this box? (Open when
/// the firewall is off, loc to fw accepts, or an accept rule names it.)
fn closed_from_loc(cfg: &Config, proto: Proto, port: u16) -> bool {
    let fw = &cfg.firewall;
    if !fw.enabled || fw.policies.get(&(Zone::Loc, Zone::Fw)) == Some(&Action::Accept) {
        return false;
    }
    !fw.rules.iter().any(|r| {
        r.from == Zone::Loc
            && r.to == Zone::Fw
            && r.action == Action::Accept
            && r.proto.is_none_or(|p| p == proto)
            && (r.ports.is_empty() || r.ports.iter().any(|p| (p.first..=p.last).contains(&port)))
    })
}

/// Sysctls the daemon cannot set for sure: keys outside `net.*` (its unit
/// may only write `/proc/sys/net`) and per-interface keys of interfaces this
/// box does not have now (`links`, when they could be read). The daemon
/// retries those and reports them; only forwarding is required.
fn sysctl_warnings(cfg: &Config, links: Option<&[String]>) -> Vec<String> {
    let mut out = Vec::new();
    for key in cfg.sysctls.keys() {
        if !key.starts_with("net.") {
            out.push(format!(
                "sysctl {key}: the headnode unit may only write net.* sysctls; set it in /etc/sysctl.d instead"
            ));
            continue;
        }
        let parts: Vec<&str> = key.split('.').collect();
        if let ([_, _, "conf" | "neigh", iface, ..], Some(links)) = (parts.as_slice(), links)
            && !matches!(*iface, "all" | "default")
            && !links.iter().any(|l| l == iface)
        {
            out.push(format!(
                "sysctl {key}: there is no interface {iface} now; the daemon sets it once there is (and lists it in status until then)"
            ));
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(extra: &str) -> Vec<String> {
        let text = format!("{}{extra}", crate::config::test_text::INTERFACES);
        advertised_but_not_served(&crate::config::parse(&text, Path::new("t.toml")).unwrap())
    }

    #[test]
    fn sysctls_the_unit_cannot_write_or_whose_interface_is_missing_are_warned() {
        let text = format!(
            "{}[sysctl]\n\"vm.swappiness\" = 10\n\"net.ipv4.conf.bond0.rp_filter\" = 1\n\
             \"net.ipv4.conf.eth0.rp_filter\" = 1\n\"net.ipv4.conf.all.rp_filter\" = 1\n",
            crate::config::test_text::INTERFACES
        );
        let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid");
        let links = ["lo".to_string(), "eth0".to_string(), "eth1".to_string()];
        let w = sysctl_warnings(&cfg, Some(&links));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.contains("vm.swappiness") && w.contains("net.*"))
        );
        assert!(
            w.iter()
                .any(|w| w.contains("bond0.rp_filter") && w.contains("no interface bond0"))
        );
        // Interfaces unknown: only the key outside net.* is certain.
        assert_eq!(sysctl_warnings(&cfg, None).len(), 1);
    }

    #[test]
    fn services_advertised_on_the_head_node_must_be_served_and_open() {
        assert!(warnings("").is_empty());
        let tftp = warnings("[dhcp]\nnext_server = \"192.168.1.254\"\nfilename = \"pxelinux.0\"\n");
        assert_eq!(tftp.len(), 1);
        assert!(
            tftp[0].contains("TFTP") && tftp[0].contains("firewall rejects"),
            "{tftp:?}"
        );
        let served = "[tftp]\nroot = \"/srv/tftp\"\n";
        assert!(
            warnings(&format!(
                "[dhcp]\nnext_server = \"192.168.1.254\"\n{served}"
            ))
            .is_empty()
        );
        // Another box serves TFTP: nothing to say.
        assert!(warnings("[dhcp]\nnext_server = \"192.168.1.10\"\n").is_empty());
        let boot =
            "[[dhcp.boot]]\nuser_class = \"iPXE\"\nfilename = \"tftp://192.168.1.254/boot.ipxe\"\n";
        assert_eq!(warnings(boot).len(), 1);
        let dns_ntp = warnings(
            "[dhcp]\ndns_servers = [\"192.168.1.254\"]\nntp_servers = [\"192.168.1.254\"]\n",
        );
        assert_eq!(dns_ntp.len(), 2, "{dns_ntp:?}");
        assert!(dns_ntp[0].contains("DNS") && dns_ntp[1].contains("NTP"));
        // With [dns] the head node is the nodes' DNS server, served and open.
        assert!(warnings("[dns]\ndomain = \"c.example\"\n").is_empty());
        // A rule that opens NTP from loc answers that one.
        let open = "[dhcp]\nntp_servers = [\"192.168.1.254\"]\n[[firewall.rule]]\naction = \"accept\"\nfrom = \"loc\"\nto = \"fw\"\nproto = \"udp\"\nports = [123]\n";
        assert!(warnings(open).is_empty());
        let closed = format!(
            "{served}[[firewall.policy]]\nfrom = \"fw\"\nto = \"loc\"\naction = \"reject\"\n"
        );
        assert!(warnings(&closed)[0].contains("fw to loc"));
        let off = "[dhcp]\nenabled = false\nntp_servers = [\"192.168.1.254\"]\n";
        assert!(warnings(off).is_empty());
    }
}
