//! The SSH lockout guard: would the new ruleset accept a *new* SSH connection
//! like the one the admin is using? (The running session itself survives any
//! ruleset through `ct state established`; the danger is not getting back in.)
//! Evaluated on the config, in the same order the rendered chains use.

use crate::config::model::{Action, Config, Proto, Zone};
use std::net::IpAddr;

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
            port: f[3].parse().ok()?,
        })
    }

    pub fn from_env() -> Option<SshConnection> {
        std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|s| SshConnection::parse(&s))
    }
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
    fn ssh_from_loc_can_be_turned_off() {
        let c = cfg("[firewall]\nssh_from_loc = false\n");
        let lan = SshConnection::parse("192.168.1.5 5000 192.168.1.254 22").unwrap();
        assert!(!ssh_allowed(&c, &lan).0);
    }
}
