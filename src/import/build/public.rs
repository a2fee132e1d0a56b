//! The public side: which address is this box's, and the `[interfaces]` tables.

use super::*;
use crate::import::ifupdown::{Iface, Opt};

impl<'s> Builder<'s, '_> {
    // ---- the public address --------------------------------------------

    /// This box's public address: the address of the public stanza of the
    /// interfaces file; else the hosts entry that names this box on the public
    /// side: the one entry outside the LAN that is no DHCP host; with several,
    /// the one the marks or virtual services point at; with none, the single
    /// address those point at.
    pub(super) fn public(&mut self, lan: Option<&Lan>) -> Public {
        if let Some(p) = self.public_from_ifupdown() {
            self.check_hosts_public(&p, lan);
            return p;
        }
        let candidates = self.hosts_candidates(lan);
        let pointed: Vec<(Ipv4Addr, Loc)> = self.pointed_at(lan);
        let chosen = match candidates.as_slice() {
            [one] => Some(*one),
            [] => None,
            many => {
                let hit: Vec<_> = many
                    .iter()
                    .filter(|e| {
                        e.addr
                            .as_ref()
                            .is_ok_and(|a| pointed.iter().any(|(p, _)| p == a))
                    })
                    .collect();
                match hit.as_slice() {
                    [one] => Some(**one),
                    _ => {
                        let at = &many[0].at;
                        self.report.note(at, format!("{} hosts entries lie outside the LAN; cannot tell which is this box, so interfaces.public.address = \"auto\"", many.len()));
                        return Public::Unknown;
                    }
                }
            }
        };
        if let Some(e) = chosen {
            let from = format!("{} {}", e.at, e.names.join(" "));
            return match &e.addr {
                Ok(ip) => Public::Known { ip: *ip, from },
                Err(why) => {
                    self.report.note(&e.at, format!("{} is taken to be this box's public address (the hosts entry outside the LAN); as it is invalid, the config reads the address from the interface (address = \"auto\")", e.text));
                    Public::Invalid {
                        text: e.text.clone(),
                        from,
                        why: why.clone(),
                    }
                }
            };
        }
        let mut unique: Vec<&(Ipv4Addr, Loc)> = Vec::new();
        for p in &pointed {
            if !unique.iter().any(|u| u.0 == p.0) {
                unique.push(p);
            }
        }
        match unique.as_slice() {
            [(ip, at)] => {
                self.report.note(
                    at,
                    format!("no hosts entry names this box; {ip} is taken as its public address"),
                );
                Public::Known {
                    ip: *ip,
                    from: at.to_string(),
                }
            }
            _ => Public::Unknown,
        }
    }

    fn public_from_ifupdown(&self) -> Option<Public> {
        let i = self.ifs.public?;
        let (o, text, ip) = i.address()?;
        let from = format!("{} iface {}", o.at, i.name);
        Some(match ip {
            Ok(ip) => Public::Known { ip, from },
            Err(why) => Public::Invalid {
                text: text.to_string(),
                from,
                why,
            },
        })
    }

    /// The hosts file must agree with the interfaces file on this box's address.
    fn check_hosts_public(&mut self, p: &Public, lan: Option<&Lan>) {
        let Public::Known { ip, from } = p else {
            return;
        };
        if self.s.hosts.by_addr(*ip).is_some() {
            return;
        }
        if let [e] = self.hosts_candidates(lan)[..]
            && let Ok(a) = e.addr
        {
            self.report.error(&e.at, format!("{a} ({}) looks like this box (the one hosts entry outside the LAN), but {from} gives the public interface {ip}", e.names.join(" ")));
        }
    }

    /// Hosts entries that may name this box on the public side.
    fn hosts_candidates(&self, lan: Option<&Lan>) -> Vec<&'s crate::import::hosts::Entry> {
        let dhcp: Vec<Ipv4Addr> = self.hosts_out.iter().map(|h| h.addr).collect();
        let dhcp_names: Vec<&str> = self
            .s
            .dhcpd
            .map(|d| d.hosts.iter().map(|h| h.name.as_str()).collect())
            .unwrap_or_default();
        let option_values: Vec<String> = self
            .s
            .dhcpd
            .map(|d| {
                let subnets = d.subnets.iter().flat_map(|s| s.params.values());
                let hosts = d.hosts.iter().flat_map(|h| h.params.values());
                d.globals
                    .values()
                    .chain(subnets)
                    .chain(hosts)
                    .flat_map(|p| p.values.clone())
                    .collect()
            })
            .unwrap_or_default();
        self.s
            .hosts
            .entries
            .iter()
            .filter(|e| !e.text.starts_with("127.") && e.text != "0.0.0.0")
            // keepalived's virtual addresses move between the head nodes.
            .filter(|e| !e.addr.as_ref().is_ok_and(|a| self.is_vip(*a)))
            // Servers the LAN is pointed at (DNS, NTP, PXE) are other machines.
            .filter(|e| {
                !option_values
                    .iter()
                    .any(|v| *v == e.text || e.names.contains(v))
            })
            .filter(|e| match &e.addr {
                Ok(a) => !dhcp.contains(a) && !lan.is_some_and(|l| l.net.contains(a)),
                Err(_) => !e.names.iter().any(|n| dhcp_names.contains(&n.as_str())),
            })
            .collect()
    }

    /// Single addresses the marks and virtual services are for, outside the LAN.
    pub(super) fn pointed_at(&self, lan: Option<&Lan>) -> Vec<(Ipv4Addr, Loc)> {
        let mut out = Vec::new();
        if let Some(sw) = self.s.shorewall {
            for m in &sw.marks {
                if let Some(d) = m.dest.filter(|d| d.prefix_len() == 32) {
                    out.push((d.addr(), m.src.at.clone()));
                }
            }
        }
        for v in &self.s.virtuals {
            if let Key::Addr(_, a, _) = v.key {
                out.push((a, v.srcs[0].at.clone()));
            }
        }
        out.retain(|(a, _)| !lan.is_some_and(|l| l.net.contains(a)) && !self.is_vip(*a));
        out
    }

    // ---- interfaces and dhcp ---------------------------------------------

    pub(super) fn interfaces(&mut self, lan: Option<&Lan>, public: &Public) -> Vec<Block> {
        let sw = self.s.shorewall;
        let mut pubb = Block::new("[interfaces.public]");
        let mut privb = Block::new("[interfaces.private]");
        let ifs = self.ifs;
        for (bl, slot, role, zone, side) in [
            (
                &mut pubb,
                sw.and_then(|s| s.public_if.as_ref()),
                ifs.public,
                "net",
                "has the gateway",
            ),
            (
                &mut privb,
                sw.and_then(|s| s.private_if.as_ref()),
                ifs.private,
                "loc",
                "is the private LAN",
            ),
        ] {
            match (slot, role) {
                // The error is reported where the roles are found; the
                // addresses below belong to the ifupdown stanza, so its name.
                (Some((at, name)), Some(i)) if *name != i.name => {
                    bl.key_comment(format!(
                        "FIXME {}: iface {} {side}, but {at} puts zone {zone} on {name}",
                        i.at, i.name
                    ));
                    bl.str("name", &i.name);
                }
                (Some((at, name)), Some(i)) => {
                    bl.key_comment(format!(
                        "{at}: zone {zone}; {}: iface {} inet {}",
                        i.at, i.name, i.method
                    ));
                    bl.str("name", name);
                }
                (Some((at, name)), None) => {
                    bl.key_comment(format!("{at}: zone {zone}"));
                    bl.str("name", name);
                }
                (None, Some(i)) => {
                    bl.key_comment(format!(
                        "{}: iface {} inet {} ({side})",
                        i.at, i.name, i.method
                    ));
                    bl.str("name", &i.name);
                }
                (None, None) => {
                    let why = match (sw, self.s.interfaces) {
                        (None, None) => {
                            "no --shorewall directory: the interface names are unknown".to_string()
                        }
                        (None, Some(_)) => format!(
                            "no --shorewall directory, and no stanza of the interfaces file {side}"
                        ),
                        (Some(_), _) => format!(
                            "the shorewall interfaces file names no interface for zone {zone}"
                        ),
                    };
                    if sw.is_none() && zone == "net" {
                        let at = Loc {
                            file: "import".into(),
                            line: 0,
                        };
                        self.report.error(&at, why.clone());
                    }
                    bl.fixme_key(why, "name", quote("FIXME"));
                }
            }
        }
        let ifaddr = ifs.public.and_then(|i| Some((i, i.address()?.0)));
        let file = match ifaddr {
            Some(_) => "the interfaces file",
            None => "the hosts file",
        };
        // The address with its prefix, when the interfaces file gives both.
        let pinned = ifaddr.and_then(|(i, o)| Some((i, o, i.net?)));
        match (public, pinned) {
            (Public::Known { .. }, Some((i, o, net))) => pinned_address(&mut pubb, i, o, net),
            (Public::Known { ip, from }, _) => {
                pubb.key_comment(format!(
                    "{from}\n\
                     names this box on the public side. \"auto\" reads the address and prefix\n\
                     from the interface when headnode applies; pin it as \"{ip}/PREFIX\"."
                ));
                pubb.str("address", "auto");
            }
            (Public::Invalid { from, why, .. }, _) => {
                pubb.key_comment(format!(
                    "FIXME {from}\n\
                     names this box on the public side, but {why}.\n\
                     \"auto\" reads the address from the interface; correct {file} or pin\n\
                     the real address here (\"ADDRESS/PREFIX\")."
                ));
                pubb.str("address", "auto");
            }
            (Public::Unknown, _) => {
                pubb.key_comment(
                    "no input names this box's public address: read it from the interface",
                );
                pubb.str("address", "auto");
            }
        }
        if let Some((o, i)) = ifs.public.and_then(|i| Some((i.gateway()?, i))) {
            match o {
                (o, Ok(g)) => {
                    pubb.key_comment(format!("{}: gateway {g} (iface {})", o.at, i.name));
                    pubb.str("gateway", &g.to_string());
                }
                (o, Err(why)) => {
                    pubb.fixme_key(format!("{}: {why}", o.at), "gateway", quote(&o.text()));
                }
            }
        }
        let ifpriv = ifs
            .private
            .and_then(|i| Some((i, i.net?, i.opt("address")?)));
        if let Some((i, net, o)) = ifpriv {
            pinned_address(&mut privb, i, o, net);
            return vec![pubb, privb];
        }
        match lan {
            Some(Lan {
                net,
                head: Some(h),
                subnet,
                ..
            }) => {
                privb.key_comment(format!(
                    "{}: subnet {net}, the head node is its router",
                    subnet.at
                ));
                privb.str("address", &format!("{h}/{}", net.prefix_len()));
            }
            Some(Lan {
                net,
                head: None,
                subnet,
                ..
            }) => {
                privb.fixme_key(
                    format!(
                        "{}: subnet {net}: the head node's own address on it is unknown",
                        subnet.at
                    ),
                    "address",
                    quote(&format!("ADDRESS/{}", net.prefix_len())),
                );
            }
            None => {
                let why = "no dhcpd subnet: the head node's LAN address is unknown".to_string();
                let at = Loc {
                    file: "import".into(),
                    line: 0,
                };
                self.report.error(&at, why.clone());
                privb.fixme_key(why, "address", quote("ADDRESS/PREFIX"));
            }
        }
        vec![pubb, privb]
    }
}

/// `address = "NET"`, with a comment naming the interfaces-file line (and
/// netmask) it comes from.
fn pinned_address(b: &mut Block, i: &Iface, o: &Opt, net: Ipv4Net) {
    let mask = i
        .opt("netmask")
        .map(|m| format!(", netmask {}", m.text()))
        .unwrap_or_default();
    b.key_comment(format!(
        "{}: address {}{mask} (iface {})",
        o.at,
        o.text(),
        i.name
    ));
    b.str("address", &net.to_string());
}
