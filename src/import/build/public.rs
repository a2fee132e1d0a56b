//! The public side: which address is this box's, and the `[interfaces]` tables.

use super::*;

impl<'s> Builder<'s, '_> {
    // ---- the public address --------------------------------------------

    /// The hosts entry that names this box on the public side: the one entry
    /// outside the LAN that is no DHCP host; with several, the one the marks or
    /// virtual services point at; with none, the single address those point at.
    pub(super) fn public(&mut self, lan: Option<&Lan>) -> Public {
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
        let candidates: Vec<&crate::import::hosts::Entry> = self
            .s
            .hosts
            .entries
            .iter()
            .filter(|e| !e.text.starts_with("127.") && e.text != "0.0.0.0")
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
            .collect();
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
        out.retain(|(a, _)| !lan.is_some_and(|l| l.net.contains(a)));
        out
    }

    // ---- interfaces and dhcp ---------------------------------------------

    pub(super) fn interfaces(&mut self, lan: Option<&Lan>, public: &Public) -> Vec<Block> {
        let sw = self.s.shorewall;
        let mut pubb = Block::new("[interfaces.public]");
        let mut privb = Block::new("[interfaces.private]");
        for (bl, slot, zone) in [
            (&mut pubb, sw.and_then(|s| s.public_if.as_ref()), "net"),
            (&mut privb, sw.and_then(|s| s.private_if.as_ref()), "loc"),
        ] {
            match slot {
                Some((at, name)) => {
                    bl.key_comment(format!("{at}: zone {zone}"));
                    bl.str("name", name);
                }
                None => {
                    let why = match sw {
                        None => {
                            "no --shorewall directory: the interface names are unknown".to_string()
                        }
                        Some(_) => format!(
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
        match public {
            Public::Known { ip, from } => {
                pubb.key_comment(format!(
                    "{from}\n\
                     names this box on the public side. \"auto\" reads the address and prefix\n\
                     from the interface when headnode applies; pin it as \"{ip}/PREFIX\"."
                ));
                pubb.str("address", "auto");
            }
            Public::Invalid { from, why, .. } => {
                pubb.key_comment(format!(
                    "FIXME {from}\n\
                     names this box on the public side, but {why}.\n\
                     \"auto\" reads the address from the interface; correct the hosts file or pin\n\
                     the real address here (\"ADDRESS/PREFIX\")."
                ));
                pubb.str("address", "auto");
            }
            Public::Unknown => {
                pubb.key_comment(
                    "no input names this box's public address: read it from the interface",
                );
                pubb.str("address", "auto");
            }
        }
        match lan {
            Some(Lan {
                net,
                head: Some(h),
                subnet,
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
