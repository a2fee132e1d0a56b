//! The SSH lockout guard: would the new ruleset accept a *new* SSH connection
//! like the one the admin is using? (The running session itself survives any
//! ruleset through `ct state established`; the danger is not getting back in.)
//! Evaluated on the config, in the same order the rendered chains use.

use crate::config::model::{Action, Config, Proto, Zone};
use std::net::IpAddr;
use std::path::PathBuf;

/// `SSH_CONNECTION`: "client_ip client_port server_ip server_port".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SshConnection {
    pub client: IpAddr,
    pub server: IpAddr,
    pub port: u16,
}

impl SshConnection {
    pub fn parse(s: &str) -> Option<SshConnection> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 4 {
            return None;
        }
        Some(SshConnection {
            client: f[0].parse().ok()?,
            server: f[2].parse().ok()?,
            port: f[3].parse().ok().filter(|p| *p != 0)?,
        })
    }

    pub fn from_env() -> Option<SshConnection> {
        std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|s| SshConnection::parse(&s))
    }
}

/// The SSH sessions into this box, from the kernel's socket table: every
/// established TCP connection whose local port is one sshd listens on (its
/// `Port` lines, 22 when it has none), plus `SSH_CONNECTION` when set.
/// `sudo` drops that variable by default, so it is never the only source.
pub fn sessions() -> Vec<SshConnection> {
    let ports = sshd_ports();
    let mut out: Vec<SshConnection> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| established(&t, &ports))
        .collect();
    if let Some(c) = SshConnection::from_env()
        && !out
            .iter()
            .any(|o| o.client == c.client && o.server == c.server && o.port == c.port)
    {
        out.push(c);
    }
    out.sort_by_key(|c| (c.client, c.server, c.port));
    out.dedup();
    out
}

/// The ports in sshd's config (`Port N`, also in `sshd_config.d/*.conf`
/// beside it): `/etc/ssh/sshd_config`, or `$HEADNODE_SSHD_CONFIG`.
fn sshd_ports() -> Vec<u16> {
    let main = std::env::var_os("HEADNODE_SSHD_CONFIG")
        .map_or_else(|| PathBuf::from("/etc/ssh/sshd_config"), PathBuf::from);
    let mut texts: Vec<String> = std::fs::read_to_string(&main).into_iter().collect();
    if let Ok(dir) = std::fs::read_dir(main.with_extension("d")) {
        texts.extend(
            dir.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok()),
        );
    }
    let ports = sshd_config_ports(texts.iter().map(String::as_str));
    if ports.is_empty() { vec![22] } else { ports }
}

fn sshd_config_ports<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<u16> {
    let mut ports: Vec<u16> = texts
        .flat_map(str::lines)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let key = w.next()?;
            key.eq_ignore_ascii_case("port")
                .then(|| w.next()?.parse().ok())?
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Established connections to a local port in `ports`, from the text of
/// `/proc/net/tcp` or `/proc/net/tcp6` (addresses in hex, in the kernel's
/// byte order per 32-bit word; state 01 is ESTABLISHED).
fn established(table: &str, ports: &[u16]) -> Vec<SshConnection> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "01" {
                return None;
            }
            let (local, lport) = hex_endpoint(f[1])?;
            let (remote, _) = hex_endpoint(f[2])?;
            ports.contains(&lport).then_some(SshConnection {
                client: remote,
                server: local,
                port: lport,
            })
        })
        .collect()
}

fn hex_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    // Each 32-bit word is printed as the host-order integer of network-order bytes.
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            // An IPv4 client on a dual-stack socket.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Whether a new connection like `c` is accepted, and the rule or policy that decides.
pub fn ssh_allowed(cfg: &Config, c: &SshConnection) -> (bool, String) {
    let fw = &cfg.firewall;
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    let (client, server) = (v4(c.client), v4(c.server));
    let from_loc =
        server == Some(cfg.private_ip()) || client.is_some_and(|a| cfg.private_net().contains(&a));
    let from = if from_loc { Zone::Loc } else { Zone::Net };
    if from == Zone::Loc && fw.ssh_from_loc && c.port == 22 {
        return (true, "firewall.ssh_from_loc".into());
    }
    let v6_closed = from == Zone::Net && cfg.public.address6.is_none() && client.is_none();
    for r in fw
        .rules
        .iter()
        .filter(|r| r.from == from && r.to == Zone::Fw)
    {
        let proto_ok = matches!(r.proto, None | Some(Proto::Tcp));
        let port_ok = r.ports.is_empty()
            || r.ports
                .iter()
                .any(|p| p.first <= c.port && c.port <= p.last);
        let src_ok = r
            .source
            .is_none_or(|n| client.is_some_and(|a| n.contains(&a)));
        let dst_ok = r
            .dest
            .is_none_or(|n| server.is_some_and(|a| n.contains(&a)));
        let family_ok = !(v6_closed && r.source.is_none() && r.dest.is_none());
        if proto_ok && port_ok && src_ok && dst_ok && family_ok {
            return (
                r.action == Action::Accept,
                format!("{} rule at line {}", r.action, r.origin.line),
            );
        }
    }
    let policy = fw
        .policies
        .get(&(from, Zone::Fw))
        .copied()
        .unwrap_or(Action::Reject);
    (
        policy == Action::Accept,
        format!("policy {from} to fw: {policy}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    fn cfg(extra: &str) -> crate::config::Config {
        let text = format!(
            "[interfaces.public]\nname = \"eth1\"\naddress = \"203.0.113.210/24\"\n\
             [interfaces.private]\nname = \"eth0\"\naddress = \"192.168.1.254/24\"\n{extra}"
        );
        config::parse(&text, Path::new("t.toml")).expect("valid")
    }

    #[test]
    fn lan_ssh_is_allowed_net_ssh_is_not_unless_a_rule_says_so() {
        let c = cfg("");
        let lan = SshConnection::parse("192.168.1.5 5000 192.168.1.254 22").unwrap();
        assert!(ssh_allowed(&c, &lan).0);
        let wan = SshConnection::parse("198.51.100.9 5000 203.0.113.210 22").unwrap();
        let (ok, why) = ssh_allowed(&c, &wan);
        assert!(!ok);
        assert!(why.contains("policy net to fw"), "{why}");
        let c = cfg(
            "[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nproto = \"tcp\"\nports = [22]\nsource = \"198.51.100.0/24\"\n",
        );
        assert!(ssh_allowed(&c, &wan).0);
        let v6 = SshConnection::parse("2001:db8::1 5000 2001:db8::2 22").unwrap();
        assert!(!ssh_allowed(&c, &v6).0);
    }

    #[test]
    fn sessions_come_from_the_socket_table() {
        // From a real /proc/net/tcp: a listener on 22, a session from
        // 198.51.100.9:40000 to 203.0.113.210:22, one to port 8000, and one
        // in TIME_WAIT (06).
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: D27100CB:0016 096433C6:9C40 01 00000000:00000000 02:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: D27100CB:1F40 096433C6:9C41 01 00000000:00000000 02:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: D27100CB:0016 096433C6:9C42 06 00000000:00000000 02:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
";
        let got = established(v4, &[22]);
        assert_eq!(
            got,
            vec![SshConnection::parse("198.51.100.9 40000 203.0.113.210 22").unwrap()]
        );
        // tcp6: an IPv4-mapped client and a real IPv6 one, on port 2222.
        let v6 =
            "  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF0000D27100CB:08AE 0000000000000000FFFF0000096433C6:9C40 01 0
   1: B80D0120000000000000000002000000:08AE B80D0120000000000000000001000000:9C41 01 0
";
        let got = established(v6, &[2222]);
        assert_eq!(
            got[0],
            SshConnection::parse("198.51.100.9 1 203.0.113.210 2222").unwrap()
        );
        assert_eq!(
            got[1],
            SshConnection::parse("2001:db8::1 1 2001:db8::2 2222").unwrap()
        );
    }

    #[test]
    fn sshd_ports_come_from_its_config() {
        let main = "# Port 22\nPort 2222\nListenAddress 0.0.0.0\n";
        let extra = "port 22\n";
        assert_eq!(sshd_config_ports([main, extra].into_iter()), vec![22, 2222]);
        assert!(sshd_config_ports(["#Port 2200\n"].into_iter()).is_empty());
    }

    #[test]
    fn ssh_from_loc_can_be_turned_off() {
        let c = cfg("[firewall]\nssh_from_loc = false\n");
        let lan = SshConnection::parse("192.168.1.5 5000 192.168.1.254 22").unwrap();
        assert!(!ssh_allowed(&c, &lan).0);
    }
}
