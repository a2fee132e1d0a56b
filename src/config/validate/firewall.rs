//! `[firewall]`: policies, NAT, rules, marks and port forwards.

use super::{Names, PLACEHOLDER_PUBLIC, Validator};
use crate::config::model::*;
use crate::config::raw::*;
use ipnet::Ipv4Net;
use std::collections::BTreeMap;

impl Validator<'_> {
    pub(super) fn firewall(&mut self, raw: &RawFirewall, names: &Names) -> Firewall {
        let mut policies = default_policies();
        for (i, p) in raw.policies.iter().enumerate() {
            let p = p.get_ref();
            let f = |k: &str| format!("firewall.policy[{i}].{k}");
            let from = self.zone(&p.from, &f("from"));
            let to = self.zone(&p.to, &f("to"));
            let action = self.action(&p.action, &f("action"));
            if let (Some(from), Some(to), Some(action)) = (from, to, action) {
                if from == to {
                    self.err(
                        p.to.span(),
                        &f("to"),
                        format!("a policy from {from} to itself has no effect"),
                        Some("policies are between two different zones"),
                    );
                } else {
                    policies.insert((from, to), action);
                }
            }
        }
        let nat = match &raw.snat {
            Some(s) => self
                .ipv4(s, "firewall.snat")
                .map_or(Nat::Masquerade, Nat::Snat),
            None if raw.masquerade == Some(false) => Nat::None,
            None => Nat::Masquerade,
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let origin = Origin {
                line: self.line(&r.span()),
                service: None,
            };
            let r = r.get_ref();
            let f = |k: &str| format!("firewall.rule[{i}].{k}");
            let action = self.action(&r.action, &f("action"));
            let from = self.zone(&r.from, &f("from"));
            let to = self.zone(&r.to, &f("to"));
            if let (Some(a), Some(b)) = (from, to)
                && a == b
            {
                self.err(
                    r.to.span(),
                    &f("to"),
                    format!("a rule from {a} to {b} never matches"),
                    Some("rules are between two different zones (net, loc, fw)"),
                );
            }
            let (proto, ports) = self.proto_ports(&r.proto, &r.ports, &f("proto"), &f("ports"));
            let source = r
                .source
                .as_ref()
                .and_then(|s| self.net_or_name(s, &f("source"), names));
            let dest = r
                .dest
                .as_ref()
                .and_then(|s| self.net_or_name(s, &f("dest"), names));
            if let (Some(action), Some(from), Some(to)) = (action, from, to) {
                rules.push(Rule {
                    action,
                    from,
                    to,
                    proto,
                    ports,
                    source,
                    dest,
                    comment: r.comment.clone(),
                    origin,
                });
            }
        }
        let mut marks = Vec::new();
        for (i, m) in raw.marks.iter().enumerate() {
            let origin = Origin {
                line: self.line(&m.span()),
                service: None,
            };
            let m = m.get_ref();
            let f = |k: &str| format!("firewall.mark[{i}].{k}");
            let mark = self.count(&m.mark, &f("mark"), 1, u32::MAX as i64);
            let dest_is_public = m.dest.as_ref().is_none_or(|d| d.get_ref() == "public");
            let dest = match &m.dest {
                None => Some(Ipv4Net::from(names.public.unwrap_or(PLACEHOLDER_PUBLIC))),
                Some(d) => self.net_or_name(d, &f("dest"), names),
            };
            let source = m
                .source
                .as_ref()
                .and_then(|s| self.net_or_name(s, &f("source"), names));
            let (proto, ports) = self.proto_ports(&m.proto, &m.ports, &f("proto"), &f("ports"));
            if let Some(mark) = mark {
                marks.push(Mark {
                    mark,
                    dest,
                    dest_is_public,
                    source,
                    proto,
                    ports,
                    origin,
                });
            }
        }
        let mut forwards = Vec::new();
        for (i, fw) in raw.forwards.iter().enumerate() {
            let origin = Origin {
                line: self.line(&fw.span()),
                service: None,
            };
            let fw = fw.get_ref();
            let f = |k: &str| format!("firewall.forward[{i}].{k}");
            let proto = self.proto(&fw.proto, &f("proto"));
            if proto == Some(Proto::Icmp) {
                self.err(
                    fw.proto.span(),
                    &f("proto"),
                    "port forwards need tcp or udp".into(),
                    None,
                );
            }
            let port = self.port_range(&fw.port, &f("port"));
            let to = self.addr_or_name(&fw.to, &f("to"), names);
            let to_port = fw
                .to_port
                .as_ref()
                .and_then(|p| self.port(p, &f("to_port")));
            if let (Some(p), Some(tp)) = (port, &fw.to_port)
                && p.first != p.last
            {
                self.err(
                    tp.span(),
                    &f("to_port"),
                    "a port range is forwarded to the same ports; to_port needs a single port"
                        .into(),
                    Some("remove to_port, or forward a single port"),
                );
            }
            let source = fw
                .source
                .as_ref()
                .and_then(|s| self.net_or_name(s, &f("source"), names));
            if let (Some(proto), Some(port), Some(to)) = (proto, port, to) {
                forwards.push(PortForward {
                    proto,
                    port,
                    to,
                    to_port,
                    source,
                    origin,
                });
            }
        }
        Firewall {
            enabled: raw.enabled.unwrap_or(true),
            ssh_from_loc: raw.ssh_from_loc.unwrap_or(true),
            log_drops: raw.log_drops.unwrap_or(true),
            nat,
            ipv6_forward: raw.ipv6_forward.unwrap_or(false),
            policies,
            rules,
            marks,
            forwards,
        }
    }

    fn proto_ports(
        &mut self,
        proto: &Option<S<String>>,
        ports: &[S<RawPort>],
        pfield: &str,
        portfield: &str,
    ) -> (Option<Proto>, Vec<PortRange>) {
        let p = proto.as_ref().and_then(|s| self.proto(s, pfield));
        let ranges: Vec<PortRange> = ports
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.port_range(s, &format!("{portfield}[{i}]")))
            .collect();
        if !ports.is_empty() && !matches!(p, Some(Proto::Tcp | Proto::Udp)) {
            self.err(
                ports[0].span(),
                portfield,
                "ports need proto = \"tcp\" or \"udp\"".into(),
                Some("add proto = \"tcp\""),
            );
        }
        (p, ranges)
    }
}

/// Shorewall's two-interface sample: loc may go out, the box may go anywhere,
/// net is dropped silently, everything else is rejected.
fn default_policies() -> BTreeMap<(Zone, Zone), Action> {
    use Zone::*;
    BTreeMap::from([
        ((Loc, Net), Action::Accept),
        ((Fw, Net), Action::Accept),
        ((Fw, Loc), Action::Accept),
        ((Net, Fw), Action::Drop),
        ((Net, Loc), Action::Drop),
        ((Loc, Fw), Action::Reject),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};

    #[test]
    fn diagnostics() {
        let forward = |rest: &str| {
            lan(&format!(
                "[[firewall.forward]]\nto = \"192.168.1.10\"\n{rest}"
            ))
        };
        check_all(&[
            (
                lan(
                    "[[firewall.policy]]\nfrom = \"loc\"\nto = \"loc\" # <-\naction = \"accept\"\n",
                ),
                "firewall.policy[0].to",
                "a policy from loc to itself has no effect",
            ),
            (
                lan("[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"net\" # <-\n"),
                "firewall.rule[0].to",
                "a rule from net to net never matches",
            ),
            (
                forward("proto = \"icmp\" # <-\nport = 80\n"),
                "firewall.forward[0].proto",
                "port forwards need tcp or udp",
            ),
            (
                forward("proto = \"tcp\"\nport = \"8000-8010\"\nto_port = 80 # <-\n"),
                "firewall.forward[0].to_port",
                "a port range is forwarded to the same ports; to_port needs a single port",
            ),
            (
                lan(
                    "[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nports = [22] # <-\n",
                ),
                "firewall.rule[0].ports",
                "ports need proto = \"tcp\" or \"udp\"",
            ),
        ]);
    }
}
