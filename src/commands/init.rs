//! `headnode init`: write a working, commented config for this box.
//!
//! Reading the box (rtnetlink, the kernel's SSH sessions, resolv.conf) happens in
//! `run`; deciding what to write (`decide`, which picks the interfaces with
//! `choose`) and writing the text (`render`)
//! are pure, and the text is validated with the same parser `check` uses
//! before anything is written.

use super::InvalidInput;
use crate::cli::InitArgs;
use crate::config::model::Zone;
use crate::firewall::guard::SshConnection;
use crate::netinfo::{self, Link, Snapshot};
use anyhow::Context;
use ipnet::Ipv4Net;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The written file's mode: the config names hosts and the firewall, so not world-readable.
const MODE: u32 = 0o640;

pub fn run(config_path: &Path, args: &InitArgs) -> anyhow::Result<()> {
    let out = args.output.as_deref().unwrap_or(config_path);
    let snap = netinfo::read().context("cannot read this box's interfaces")?;
    // The sessions the kernel has, whatever the environment (sudo drops
    // SSH_CONNECTION); one from outside is the one to keep open.
    let ssh = crate::firewall::guard::sessions()
        .iter()
        .filter(|c| !c.client.is_loopback())
        .map(SshSession::from)
        .next();
    let choice = decide(
        &snap,
        args.public.as_deref(),
        args.private.as_deref(),
        ssh,
        read_dns_servers(),
    )?;
    let text = render(&choice);
    // Never write what `check` would refuse; a failure here means the box's own
    // addresses do not make a valid head node (e.g. both sides in one subnet).
    crate::config::parse(&text, out).map_err(|e| {
        InvalidInput(format!(
            "the config init would write is not valid for this box:\n{e}\n\
             fix the interfaces' addresses, or choose others with --public/--private"
        ))
    })?;
    if args.dry_run {
        print!("{text}");
        return Ok(());
    }
    write_config(out, &text, args.force)?;
    println!(
        "wrote {}: public {} ({}), private {} ({}){}",
        out.display(),
        choice.public,
        match &choice.public_addr {
            PublicAddr::Static(a) => a.to_string(),
            PublicAddr::Auto { .. } => "address read at apply".into(),
        },
        choice.private,
        choice.private_addr,
        choice.ssh.as_ref().map_or(String::new(), |s| format!(
            ", tcp {} kept open from {} for this SSH session",
            s.port, s.zone
        ))
    );
    println!(
        "next: review it, then `headnode check -c {}`",
        out.display()
    );
    Ok(())
}

/// Everything the written config depends on, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub public: String,
    pub public_addr: PublicAddr,
    pub gateway: Option<Ipv4Addr>,
    pub private: String,
    pub private_addr: Ipv4Net,
    /// DNS servers for the DHCP clients (from the box's resolv.conf).
    pub dns_servers: Vec<Ipv4Addr>,
    pub ssh: Option<SshKeep>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PublicAddr {
    Static(Ipv4Net),
    /// Read at apply time; `now` is what the interface has at the moment (if anything).
    Auto {
        now: Option<Ipv4Net>,
    },
}

/// The SSH session init runs in, which the firewall must not cut.
#[derive(Debug, Clone, PartialEq)]
pub struct SshKeep {
    pub port: u16,
    pub zone: Zone,
    /// Interface the session arrived on, when known.
    pub via: Option<String>,
}

/// An SSH session's local half: the address the client connected to and the port.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SshSession {
    pub local: Option<IpAddr>,
    pub port: u16,
}

impl From<&SshConnection> for SshSession {
    fn from(c: &SshConnection) -> SshSession {
        SshSession {
            local: Some(c.server),
            port: c.port,
        }
    }
}

/// Decide the interfaces, addresses and the SSH rule from what the box has.
pub fn decide(
    snap: &Snapshot,
    public: Option<&str>,
    private: Option<&str>,
    ssh: Option<SshSession>,
    dns_servers: Vec<Ipv4Addr>,
) -> Result<Choice, InvalidInput> {
    let (pub_link, priv_link) = choose(snap, public, private)?;
    let priv_addr = snap.primary_ipv4(priv_link.index).ok_or_else(|| {
        InvalidInput(format!(
            "the private interface {} has no IPv4 address; give it the head node's LAN \
             address first (e.g. `ip addr add 192.168.1.254/24 dev {}`) and run init again",
            priv_link.name, priv_link.name
        ))
    })?;
    let public_addr = match snap.primary_ipv4(pub_link.index) {
        Some(a) if !a.dynamic => PublicAddr::Static(a.net),
        other => PublicAddr::Auto {
            now: other.map(|a| a.net),
        },
    };
    let gateway = snap
        .default_route
        .filter(|r| r.oif == pub_link.index)
        .and_then(|r| r.gateway);
    let ssh = ssh.map(|s| {
        let local_v4 = match s.local {
            Some(IpAddr::V4(a)) => Some(a),
            Some(IpAddr::V6(a)) => a.to_ipv4_mapped(),
            None => None,
        };
        let via = local_v4.and_then(|ip| snap.link_with_ip(ip));
        // Only a session that arrived on the LAN side is "loc"; anything else
        // (public side, another interface, IPv6) is kept open from net, which is
        // where a remote admin comes from.
        let zone = match via {
            Some(l) if l.index == priv_link.index => Zone::Loc,
            _ => Zone::Net,
        };
        SshKeep {
            port: s.port,
            zone,
            via: via.map(|l| l.name.clone()),
        }
    });
    Ok(Choice {
        public: pub_link.name.clone(),
        public_addr,
        gateway,
        private: priv_link.name.clone(),
        private_addr: priv_addr.net,
        dns_servers,
        ssh,
    })
}

/// Pick the public interface (flag, else the default route's) and the private
/// one (flag, else the only other up interface with an RFC 1918 address).
pub fn choose<'a>(
    snap: &'a Snapshot,
    public: Option<&str>,
    private: Option<&str>,
) -> Result<(&'a Link, &'a Link), InvalidInput> {
    let named = |flag: &str, name: &str| -> Result<&'a Link, InvalidInput> {
        let l = snap.link(name).ok_or_else(|| {
            InvalidInput(format!(
                "{flag} {name}: no such interface (this box has: {})",
                describe_links(snap)
            ))
        })?;
        if l.loopback {
            return Err(InvalidInput(format!(
                "{flag} {name}: that is the loopback interface; name a network interface"
            )));
        }
        Ok(l)
    };
    let pub_link = match public {
        Some(name) => named("--public", name)?,
        None => snap.default_link().ok_or_else(|| {
            InvalidInput(format!(
                "cannot tell the public interface: there is no IPv4 default route; \
                 pass --public IFACE (this box has: {})",
                describe_links(snap)
            ))
        })?,
    };
    let priv_link = match private {
        Some(name) => named("--private", name)?,
        None => {
            let candidates: Vec<&Link> = snap
                .links
                .iter()
                .filter(|l| l.up && !l.loopback && l.index != pub_link.index)
                .filter(|l| {
                    snap.primary_ipv4(l.index)
                        .is_some_and(|a| a.net.addr().is_private())
                })
                .collect();
            match candidates.as_slice() {
                [one] => *one,
                [] => {
                    return Err(InvalidInput(format!(
                        "cannot tell the private LAN interface: no up interface other than \
                         {} (public) has a private (RFC 1918) IPv4 address; pass --private IFACE \
                         (this box has: {})",
                        pub_link.name,
                        describe_links(snap)
                    )));
                }
                several => {
                    let names: Vec<String> =
                        several.iter().map(|l| describe_link(snap, l)).collect();
                    return Err(InvalidInput(format!(
                        "cannot tell the private LAN interface: {} all qualify; \
                         pass --private IFACE",
                        names.join(", ")
                    )));
                }
            }
        }
    };
    if pub_link.index == priv_link.index {
        return Err(InvalidInput(format!(
            "{} would be both the public and the private interface; a head node needs two \
             (pass --public and --private)",
            pub_link.name
        )));
    }
    if snap
        .default_link()
        .is_some_and(|l| l.index == priv_link.index)
    {
        return Err(InvalidInput(format!(
            "{} holds the default route, so it is the upstream side; serving DHCP there would \
             answer the upstream network. Pass the cluster LAN interface as --private \
             (and --public {} if that is the public side)",
            priv_link.name, priv_link.name
        )));
    }
    Ok((pub_link, priv_link))
}

fn describe_link(snap: &Snapshot, l: &Link) -> String {
    let mut d = Vec::new();
    if !l.up {
        d.push("down".to_string());
    }
    if l.loopback {
        d.push("loopback".to_string());
    }
    match snap.primary_ipv4(l.index) {
        Some(a) => d.push(a.net.to_string()),
        None => d.push("no IPv4".to_string()),
    }
    if snap.default_route.is_some_and(|r| r.oif == l.index) {
        d.push("default route".to_string());
    }
    format!("{} ({})", l.name, d.join(", "))
}

fn describe_links(snap: &Snapshot) -> String {
    let v: Vec<String> = snap
        .links
        .iter()
        .filter(|l| !l.loopback)
        .map(|l| describe_link(snap, l))
        .collect();
    if v.is_empty() {
        "no interfaces besides loopback".into()
    } else {
        v.join(", ")
    }
}

/// Upstream IPv4 name servers of this box, for the DHCP clients. With
/// systemd-resolved, /etc/resolv.conf only names 127.0.0.53, which the nodes
/// cannot use, so its upstream list is read first.
fn read_dns_servers() -> Vec<Ipv4Addr> {
    ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| nameservers(&t))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

fn nameservers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect()
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Example addresses on the LAN for the commented examples: two hosts and a
/// pool, all distinct from the head node's own address. `None` for tiny subnets.
fn lan_examples(lan: Ipv4Net) -> (Vec<Ipv4Addr>, Option<(Ipv4Addr, Ipv4Addr)>) {
    let me = u32::from(lan.addr());
    let first = u32::from(lan.network()) + 1;
    let last = u32::from(lan.broadcast()) - 1;
    if last < first {
        return (Vec::new(), None);
    }
    let count = last - first + 1;
    let pool_lo = first + count / 2;
    let hosts: Vec<Ipv4Addr> = (first..pool_lo)
        .filter(|a| *a != me)
        .take(2)
        .map(Ipv4Addr::from)
        .collect();
    let (mut lo, mut hi) = (pool_lo, last);
    if (lo..=hi).contains(&me) {
        if me - lo >= hi - me {
            hi = me - 1;
        } else {
            lo = me + 1;
        }
    }
    let pool = (lo <= hi && hi >= pool_lo).then(|| (Ipv4Addr::from(lo), Ipv4Addr::from(hi)));
    (hosts, pool)
}

/// The config text. Lines that start with `#` and no space are examples:
/// removing the `#` gives valid config (a unit test does exactly that).
pub fn render(p: &Choice) -> String {
    let me = p.private_addr.addr();
    let (hosts, pool) = lan_examples(p.private_addr);
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# headnode configuration, written by `headnode init` (headnode {}) from the\n\
         # interfaces and routes found on this box. Validate it with `headnode check -c FILE`;\n\
         # `man headnode.toml` lists every key. Lines starting with `#` and no\n\
         # space are examples: remove the `#` to use them.",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        w,
        "\n[interfaces.public]\n\
         # The outside world (zone \"net\"): the interface holding the default route."
    );
    let _ = writeln!(w, "name = {}", q(&p.public));
    match &p.public_addr {
        PublicAddr::Static(a) => {
            let _ = writeln!(w, "address = {}", q(&a.to_string()));
        }
        PublicAddr::Auto { now } => {
            let why = match now {
                Some(a) => format!(
                    "{a} has a lifetime (DHCP or similar), so it may change; headnode \
                     reads\n# the address when it applies"
                ),
                None => format!(
                    "{} has no IPv4 address yet; headnode reads it when it applies",
                    p.public
                ),
            };
            let _ = writeln!(w, "# {why}.\naddress = \"auto\"");
        }
    }
    match p.gateway {
        Some(g) => {
            let _ = writeln!(w, "gateway = {}", q(&g.to_string()));
        }
        None => {
            let _ = writeln!(
                w,
                "# No gateway found on {} (the default route has none or is elsewhere).\n\
                 #gateway = \"203.0.113.1\"",
                p.public
            );
        }
    }
    let _ = writeln!(
        w,
        "\n[interfaces.private]\n\
         # The cluster LAN (zone \"loc\"). DHCP is served here and only here.\n\
         name = {}\naddress = {}",
        q(&p.private),
        q(&p.private_addr.to_string())
    );

    let _ = writeln!(
        w,
        "\n[dhcp]\n\
         # Clients get this box ({me}) as their router unless `routers` says otherwise,\n\
         # and the subnet mask and broadcast of {}.\n\
         #enabled = false   # no DHCP at all\n\
         lease_time = \"12h\"\n\
         #max_lease_time = \"1d\"",
        p.private_addr.trunc()
    );
    if p.dns_servers.is_empty() {
        let _ = writeln!(
            w,
            "# No upstream name server found in resolv.conf; name the ones the nodes should use.\n\
             #dns_servers = [\"192.0.2.53\"]"
        );
    } else {
        let list: Vec<String> = p.dns_servers.iter().map(|a| q(&a.to_string())).collect();
        let _ = writeln!(
            w,
            "# Name servers for the nodes, taken from this box's resolv.conf.\n\
             dns_servers = [{}]",
            list.join(", ")
        );
    }
    let _ = writeln!(
        w,
        "#domain_name = \"cluster.example.com\"\n\
         #domain_search = [\"cluster.example.com\"]\n\
         #ntp_servers = [\"{me}\"]\n\
         # PXE boot for every node (a [[host]] can override both): TFTP server and boot file.\n\
         #next_server = \"{me}\"\n\
         #filename = \"pxelinux.0\""
    );
    if let Some((lo, hi)) = pool {
        let _ = writeln!(
            w,
            "# A dynamic pool for machines without a [[host]] block. Without one, only\n\
             # reserved hosts get an address.\n\
             #pool = {{ start = \"{lo}\", end = \"{hi}\" }}"
        );
    }
    if !hosts.is_empty() {
        let _ = writeln!(
            w,
            "\n# One block per node: a fixed address for a MAC. The name works everywhere in\n\
             # this file (real servers, rules, forwards), like /etc/hosts did."
        );
        for (i, a) in hosts.iter().enumerate() {
            let n = i + 1;
            let _ = writeln!(
                w,
                "#[[host]]\n#name = \"node{n}\"\n#mac = \"00:16:3e:00:00:{n:02x}\"\n#address = \"{a}\""
            );
            if n == 1 {
                let _ = writeln!(
                    w,
                    "#filename = \"pxelinux.0\"   # this host's own PXE boot file"
                );
            }
        }
    }

    let _ = writeln!(
        w,
        "\n[firewall]\n\
         # Zones: net = {}, loc = {}, fw = this box. The defaults are shorewall's\n\
         # two-interface sample:\n\
         #   loc -> net  accept  (nodes reach the outside, masqueraded)\n\
         #   fw  -> net  accept, fw -> loc accept\n\
         #   net -> fw   drop    (silently; logged, rate limited, while log_drops = true)\n\
         #   net -> loc  drop\n\
         #   loc -> fw   reject  (but ssh_from_loc lets the nodes ssh to this box)\n\
         # Change a policy with a [[firewall.policy]] block; open ports with [[firewall.rule]].\n\
         masquerade = true\n\
         ssh_from_loc = true\n\
         log_drops = true",
        p.public, p.private
    );
    let _ = writeln!(
        w,
        "\n# Example: let the nodes reach every port on this box.\n\
         #[[firewall.policy]]\n#from = \"loc\"\n#to = \"fw\"\n#action = \"accept\""
    );
    if let Some(k) = &p.ssh {
        let via = k.via.as_ref().map_or(String::new(), |v| format!(" on {v}"));
        let _ = writeln!(
            w,
            "\n# `headnode init` ran in an SSH session that came in{via} to port {}. This rule\n\
             # keeps that port open from {} so applying the firewall cannot lock the admin out.\n\
             # Remove or narrow it (source = \"ADDRESS/32\") only once another way in works.\n\
             [[firewall.rule]]\n\
             action = \"accept\"\n\
             from = \"{}\"\n\
             to = \"fw\"\n\
             proto = \"tcp\"\n\
             ports = [{}]\n\
             comment = \"admin SSH, kept open by headnode init\"",
            k.port, k.zone, k.zone, k.port
        );
    }
    let _ = writeln!(
        w,
        "\n# Example: a web server on this box, reachable from outside.\n\
         #[[firewall.rule]]\n#action = \"accept\"\n#from = \"net\"\n#to = \"fw\"\n\
         #proto = \"tcp\"\n#ports = [80, 443]"
    );
    if hosts.len() == 2 {
        let _ = writeln!(
            w,
            "\n# Load balancing in one block: tcp 8000 on the public address goes to node1 and\n\
             # node2, round robin. It expands to the accept rule, the mark and the virtual\n\
             # service; `headnode check --explain` shows the expansion.\n\
             #[[service]]\n#name = \"web\"\n#proto = \"tcp\"\n#port = 8000\n\
             #real = [\"node1:8000\", \"node2:8000\"]\n#scheduler = \"rr\"\n\
             #health = {{ check = \"tcp\", interval = \"2s\", timeout = \"1s\", rise = 2, fall = 2 }}"
        );
    }
    let _ = writeln!(
        w,
        "\n# headnode always sets net.ipv4.ip_forward = 1; add other sysctls here.\n\
         #[sysctl]\n#\"net.ipv4.conf.all.rp_filter\" = 1"
    );
    s
}

/// Write `text` to `path` with mode 0640, creating the parent directory.
/// Without `force` an existing file is an error; with it the file is replaced
/// atomically (`paths::atomic_write`), so a crash never leaves half a config.
fn write_config(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    if path.is_dir() {
        return Err(InvalidInput(format!("{} is a directory; name a file", path.display())).into());
    }
    if !force && path.exists() {
        return Err(InvalidInput(format!(
            "{} already exists; pass --force to replace it (or --dry-run to see the new one)",
            path.display()
        ))
        .into());
    }
    let existing = if force {
        crate::paths::Existing::Replace
    } else {
        crate::paths::Existing::Keep
    };
    let result = crate::paths::atomic_write(path, text.as_bytes(), MODE, existing);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !force => {
            Err(InvalidInput(format!(
                "{} already exists; pass --force to replace it",
                path.display()
            ))
            .into())
        }
        r => r.with_context(|| format!("cannot write {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netinfo::fixtures::{addr, link, origin_box};

    fn uncomment_examples(text: &str) -> String {
        text.lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn origin_box_gives_the_origin_interfaces() {
        let p = decide(&origin_box(), None, None, None, vec![]).unwrap();
        assert_eq!(p.public, "eth1");
        assert_eq!(p.private, "eth0");
        assert_eq!(
            p.public_addr,
            PublicAddr::Static("203.0.113.210/24".parse().unwrap())
        );
        assert_eq!(p.gateway, Some(Ipv4Addr::new(203, 0, 113, 253)));
        let cfg = crate::config::parse(&render(&p), Path::new("t.toml")).unwrap();
        assert_eq!(cfg.public.name, "eth1");
        assert_eq!(cfg.private.address.to_string(), "192.168.1.254/24");
        assert!(cfg.firewall.rules.is_empty());
    }

    #[test]
    fn every_example_is_valid_once_uncommented() {
        for lan in [
            "192.168.1.254/24",
            "10.0.0.1/8",
            "172.16.5.1/29",
            "192.168.9.2/30",
        ] {
            let mut snap = origin_box();
            snap.addrs[1] = addr(2, lan, false);
            let p = decide(&snap, None, None, None, vec![Ipv4Addr::new(192, 0, 2, 53)]).unwrap();
            let text = uncomment_examples(&render(&p));
            let cfg = crate::config::parse(&text, Path::new("t.toml"))
                .unwrap_or_else(|e| panic!("{lan}:\n{e}\n{text}"));
            if lan.ends_with("/24") {
                assert_eq!(cfg.hosts.len(), 2);
                assert_eq!(cfg.balancer.services.len(), 1);
                assert_eq!(
                    cfg.dhcp
                        .pool
                        .map(|p| (p.start.to_string(), p.end.to_string())),
                    Some(("192.168.1.128".into(), "192.168.1.253".into()))
                );
                assert_eq!(cfg.dhcp.filename.as_deref(), Some("pxelinux.0"));
            }
        }
    }

    #[test]
    fn ssh_session_from_outside_keeps_its_port_open_from_net() {
        let ssh = SshConnection::parse("198.51.100.7 50122 203.0.113.210 2222")
            .as_ref()
            .map(SshSession::from);
        let p = decide(&origin_box(), None, None, ssh, vec![]).unwrap();
        let k = p.ssh.clone().unwrap();
        assert_eq!(
            (k.port, k.zone, k.via.as_deref()),
            (2222, Zone::Net, Some("eth1"))
        );
        let cfg = crate::config::parse(&render(&p), Path::new("t.toml")).unwrap();
        let r = &cfg.firewall.rules[0];
        assert_eq!((r.from, r.to), (Zone::Net, Zone::Fw));
        assert_eq!(r.ports[0].to_string(), "2222");
    }

    #[test]
    fn ssh_session_from_the_lan_is_kept_from_loc() {
        let ssh = SshConnection::parse("192.168.1.50 40000 192.168.1.254 22")
            .as_ref()
            .map(SshSession::from);
        let p = decide(&origin_box(), None, None, ssh, vec![]).unwrap();
        assert_eq!(p.ssh.unwrap().zone, Zone::Loc);
        let ssh = SshConnection::parse("2001:db8::1 40000 2001:db8::2 22")
            .as_ref()
            .map(SshSession::from);
        let p = decide(&origin_box(), None, None, ssh, vec![]).unwrap();
        assert_eq!(p.ssh.unwrap().zone, Zone::Net);
        assert_eq!(SshConnection::parse("garbage"), None);
        assert_eq!(SshConnection::parse("1.2.3.4 1 5.6.7.8 0"), None);
    }

    #[test]
    fn one_interface_asks_for_private() {
        let mut snap = origin_box();
        snap.links.retain(|l| l.name != "eth0");
        let e = decide(&snap, None, None, None, vec![]).unwrap_err().0;
        assert!(e.contains("--private"), "{e}");
        assert!(e.contains("eth1 (203.0.113.210/24, default route)"), "{e}");
    }

    #[test]
    fn several_candidates_ask_for_private() {
        let mut snap = origin_box();
        snap.links.push(link(4, "eth2", true));
        snap.addrs.push(addr(4, "10.1.0.1/16", false));
        let e = decide(&snap, None, None, None, vec![]).unwrap_err().0;
        assert!(
            e.contains("eth0 (192.168.1.254/24), eth2 (10.1.0.1/16)"),
            "{e}"
        );
        assert!(e.contains("--private"), "{e}");
        let p = decide(&snap, None, Some("eth2"), None, vec![]).unwrap();
        assert_eq!(p.private, "eth2");
    }

    #[test]
    fn down_or_public_addressed_interfaces_are_no_candidates() {
        let mut snap = origin_box();
        snap.links[1].up = false;
        assert!(decide(&snap, None, None, None, vec![]).is_err());
        let mut snap = origin_box();
        snap.addrs[1] = addr(2, "198.51.100.1/24", false);
        assert!(decide(&snap, None, None, None, vec![]).is_err());
        // ...but the flag takes any interface with an address.
        assert!(decide(&snap, None, Some("eth0"), None, vec![]).is_ok());
    }

    #[test]
    fn no_default_route_asks_for_public() {
        let mut snap = origin_box();
        snap.default_route = None;
        let e = decide(&snap, None, None, None, vec![]).unwrap_err().0;
        assert!(e.contains("--public"), "{e}");
        let p = decide(&snap, Some("eth1"), None, None, vec![]).unwrap();
        assert_eq!(p.gateway, None);
        crate::config::parse(&render(&p), Path::new("t.toml")).unwrap();
    }

    #[test]
    fn bad_flags_are_named() {
        let snap = origin_box();
        let e = decide(&snap, Some("eth9"), None, None, vec![])
            .unwrap_err()
            .0;
        assert!(e.starts_with("--public eth9: no such interface"), "{e}");
        let e = decide(&snap, None, Some("lo"), None, vec![]).unwrap_err().0;
        assert!(e.contains("loopback"), "{e}");
        let e = decide(&snap, Some("eth0"), Some("eth0"), None, vec![])
            .unwrap_err()
            .0;
        assert!(e.contains("both the public and the private"), "{e}");
        let e = decide(&snap, Some("eth0"), Some("eth1"), None, vec![])
            .unwrap_err()
            .0;
        assert!(e.contains("eth1 holds the default route"), "{e}");
    }

    #[test]
    fn private_without_address_is_explained() {
        let mut snap = origin_box();
        snap.addrs.remove(1);
        let e = decide(&snap, None, Some("eth0"), None, vec![])
            .unwrap_err()
            .0;
        assert!(e.contains("eth0 has no IPv4 address"), "{e}");
    }

    #[test]
    fn dynamic_public_address_is_auto() {
        let mut snap = origin_box();
        snap.addrs[2].dynamic = true;
        let p = decide(&snap, None, None, None, vec![]).unwrap();
        assert!(matches!(p.public_addr, PublicAddr::Auto { now: Some(_) }));
        let text = render(&p);
        assert!(text.contains("address = \"auto\""));
        let cfg = crate::config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.public.address, None);
    }

    #[test]
    fn nameservers_skip_loopback_and_ipv6() {
        let t = "# c\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n\
                 nameserver 198.51.100.53 \nsearch x\n";
        assert_eq!(
            nameservers(t),
            [
                Ipv4Addr::new(192, 0, 2, 53),
                Ipv4Addr::new(198, 51, 100, 53)
            ]
        );
    }

    #[test]
    fn interface_names_are_quoted_for_toml() {
        assert_eq!(q("eth0"), "\"eth0\"");
        for name in ["a\"b", "x'y\"z", "back\\slash"] {
            let t: toml::Table = toml::from_str(&format!("k = {}", q(name))).unwrap();
            assert_eq!(t["k"].as_str(), Some(name));
        }
    }
}
