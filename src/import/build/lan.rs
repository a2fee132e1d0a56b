//! The LAN: the subnet headnode serves, the head node's address on it, and `[dhcp]`.

use super::*;

impl<'s> Builder<'s, '_> {
    // ---- the LAN -------------------------------------------------------

    pub(super) fn lan(&mut self, d: &'s Dhcpd) -> Option<Lan<'s>> {
        let mut parsed: Vec<(&'s Subnet, Ipv4Net)> = Vec::new();
        for sn in &d.subnets {
            let net = values::ipv4(&sn.network).and_then(|n| {
                let mask = values::ipv4(&sn.netmask)?;
                let len = values::prefix_of(&mask)
                    .ok_or_else(|| format!("netmask {mask} is not contiguous"))?;
                Ipv4Net::new(n, len).map_err(|e| e.to_string())
            });
            match net {
                Ok(n) if n.trunc() == n => parsed.push((sn, n)),
                Ok(n) => self.report.error(
                    &sn.at,
                    format!(
                        "subnet {} has host bits set for netmask {} (did you mean {}?)",
                        sn.network,
                        sn.netmask,
                        n.trunc()
                    ),
                ),
                Err(why) => self.report.error(&sn.at, format!("subnet: {why}")),
            }
        }
        // The LAN is the subnet holding the reservations and ranges.
        let hosts = self.s.hosts;
        let score = |net: &Ipv4Net, sn: &Subnet| {
            d.hosts
                .iter()
                .filter_map(|h| h.fixed.as_ref()?.values.first())
                .filter_map(|a| hosts.resolve(a).ok())
                .filter(|a| net.contains(a))
                .count()
                + sn.ranges.len()
        };
        let best = parsed
            .iter()
            .enumerate()
            .max_by_key(|(i, (sn, net))| (score(net, sn), usize::MAX - i))
            .map(|(i, _)| i)?;
        for (i, (sn, net)) in parsed.iter().enumerate() {
            if i != best {
                self.report.skip(
                    &sn.at,
                    format!(
                        "subnet {net}: headnode serves DHCP on one LAN ({}), not this subnet",
                        parsed[best].1
                    ),
                );
            }
        }
        let (subnet, net) = parsed[best];
        let param = |k: &str| subnet.params.get(k).or_else(|| d.globals.get(k));
        let vip = self.vips().find(|a| net.contains(a));
        let head = match param("routers") {
            Some(p) => match self.head_from_routers(p, net) {
                // With keepalived the nodes route through the virtual address;
                // the head node's own one is the interface's.
                Some(r) if self.is_vip(r) => {
                    let own = self.ifupdown_address_on(net);
                    match &own {
                        Some((at, a)) => self.report.note(&p.at, format!("option routers {r} is keepalived's virtual LAN address ([ha] lan_address); the head node's own is {a} ({at})")),
                        None => self.report.error(&p.at, format!("option routers {r} is keepalived's virtual LAN address; the head node's own LAN address is unknown (give --interfaces)")),
                    }
                    own.map(|(_, a)| a)
                }
                other => other,
            },
            None => {
                let fixed: Vec<Ipv4Addr> = d
                    .hosts
                    .iter()
                    .filter_map(|h| hosts.resolve(h.fixed.as_ref()?.values.first()?).ok())
                    .collect();
                let mine: Vec<_> = hosts
                    .entries
                    .iter()
                    .filter_map(|e| e.addr.as_ref().ok().map(|a| (e, *a)))
                    .filter(|(_, a)| net.contains(a) && !fixed.contains(a))
                    .collect();
                match (self.ifupdown_address_on(net), mine.as_slice()) {
                    (Some((at, a)), _) => {
                        self.report.note(&subnet.at, format!("no `option routers`: {a} ({at}) is taken as the head node's LAN address"));
                        Some(a)
                    }
                    (None, [(e, a)]) => {
                        self.report.note(&e.at, format!("no `option routers`: {a} ({}) is taken as the head node's LAN address", e.names.join(" ")));
                        Some(*a)
                    }
                    (None, _) => {
                        self.report.error(&subnet.at, "no `option routers`: the head node's LAN address is unknown; the config leaves interfaces.private.address to you");
                        None
                    }
                }
            }
        };
        for (k, want) in [
            ("subnet-mask", net.netmask()),
            ("broadcast-address", net.broadcast()),
        ] {
            if let Some(p) = param(k) {
                let v = p.values.first().map(String::as_str).unwrap_or("");
                match values::ipv4(v) {
                    Ok(a) if a == want => {}
                    Ok(a) => self.report.error(&p.at, format!("option {k} {a} does not match subnet {net} ({want}); headnode sends {want}")),
                    Err(why) => self.report.error(&p.at, format!("option {k}: {why}")),
                }
            }
        }
        Some(Lan {
            subnet,
            net,
            head,
            vip,
        })
    }

    pub(super) fn head_from_routers(&mut self, p: &Param, net: Ipv4Net) -> Option<Ipv4Addr> {
        let first = p.values.first()?;
        match self.s.hosts.resolve(first) {
            Ok(a) if net.contains(&a) && a != net.network() && a != net.broadcast() => Some(a),
            Ok(a) => {
                self.report.error(&p.at, format!("option routers {a} is not a host address of {net}; the head node's LAN address is unknown"));
                None
            }
            Err(why) => {
                self.report.error(&p.at, format!("option routers: {why}"));
                None
            }
        }
    }

    pub(super) fn dhcp(&mut self, lan: Option<&Lan>) -> Block {
        let mut bl = Block::new("[dhcp]");
        let Some(d) = self.s.dhcpd else {
            bl.comment("no --dhcpd file: headnode's DHCP server stays off");
            bl.raw("enabled", "false");
            return bl;
        };
        let empty = BTreeMap::new();
        let sp = lan.map_or(&empty, |l| &l.subnet.params);
        let param = |k: &str| sp.get(k).or_else(|| d.globals.get(k));
        if let Some(p) = param("routers")
            && p.values.len() > 1
        {
            bl.key_comment(from_param(p, "option routers"));
            let list = self.addr_list(p);
            bl.strs("routers", &list);
        }
        for (k, key) in [
            ("domain-name-servers", "dns_servers"),
            ("ntp-servers", "ntp_servers"),
        ] {
            if let Some(p) = param(k) {
                bl.key_comment(from_param(p, &format!("option {k}")));
                let list = self.addr_list(p);
                bl.strs(key, &list);
            }
        }
        if let Some(p) = param("domain-name") {
            bl.key_comment(from_param(p, "option domain-name"));
            bl.str("domain_name", &p.values.join(" "));
        }
        if let Some(p) = param("domain-search") {
            bl.key_comment(from_param(p, "option domain-search"));
            bl.strs("domain_search", &p.values);
        }
        // dhcpd's defaults (12 h, at most 24 h) are headnode's too.
        let mut lease = 43200;
        for (k, key, default) in [
            ("default-lease-time", "lease_time", 43200),
            ("max-lease-time", "max_lease_time", 0),
        ] {
            if let Some(p) = param(k) {
                match secs(p) {
                    Ok(s) => {
                        if k == "default-lease-time" {
                            lease = s;
                        }
                        let default = if default == 0 {
                            lease.max(86400)
                        } else {
                            default
                        };
                        if s != default {
                            bl.key_comment(from_param(p, k));
                            bl.raw(key, values::duration(s));
                        }
                    }
                    Err(why) => self.report.error(&p.at, why),
                }
            }
        }
        if let Some(p) = param("next-server") {
            bl.key_comment(from_param(p, "next-server"));
            self.addr_key(p, "next_server", &mut bl);
        }
        if let Some(p) = param("filename") {
            bl.key_comment(from_param(p, "filename"));
            bl.str("filename", &p.values.join(" "));
        }
        self.resolvers(
            &mut bl,
            param("domain-name-servers"),
            param("domain-search"),
        );
        for p in [param("host-name")].into_iter().flatten() {
            self.report
                .skip(&p.at, "host-name outside a host block is not translated");
        }
        if let Some(lan) = lan {
            for (i, (at, a, z)) in lan.subnet.ranges.iter().enumerate() {
                if i > 0 {
                    self.report
                        .skip(at, format!("range {a} {z}: headnode has one dynamic pool"));
                    continue;
                }
                match (values::ipv4(a), values::ipv4(z)) {
                    (Ok(x), Ok(y)) => {
                        bl.key_comment(format!("{at}: range {a} {z};"));
                        bl.raw(
                            "pool",
                            format!(
                                "{{ start = {}, end = {} }}",
                                quote(&x.to_string()),
                                quote(&y.to_string())
                            ),
                        );
                    }
                    (Err(why), _) | (_, Err(why)) => {
                        self.report.error(at, format!("range: {why}"));
                        bl.fixme_key(
                            format!("{at}: {why}"),
                            "pool",
                            format!("{{ start = {}, end = {} }}", quote(a), quote(z)),
                        );
                    }
                }
            }
        }
        for (at, text) in &d.commented_ranges {
            let words: Vec<&str> = text.trim_end_matches(';').split_whitespace().collect();
            if let [_, a, z] = words.as_slice() {
                bl.key_comment(format!(
                    "{at}: `#{text}` is commented out,\n\
                     so there is no pool here either. To serve that range:\n\
                     pool = {{ start = \"{a}\", end = \"{z}\" }}"
                ));
            }
        }
        bl
    }
}

impl Builder<'_, '_> {
    /// `[[dhcp.boot]]` for the PXE choices of dhcpd.conf's `if` blocks and
    /// classes, in their order.
    pub(super) fn boot_blocks(&mut self, d: &crate::import::dhcpd::Dhcpd) -> Vec<Block> {
        let mut out = Vec::new();
        for r in &d.boot {
            let mut bl = Block::new("[[dhcp.boot]]");
            bl.key_comment(format!("{}: {}", r.at, r.test));
            if let Some(u) = &r.user_class {
                bl.str("user_class", u);
            }
            if let Some(a) = r.arch {
                bl.raw("arch", arch_text(a));
            }
            bl.str("filename", &r.filename.values.join(" "));
            if let Some(p) = &r.next_server {
                self.addr_key(p, "next_server", &mut bl);
            }
            out.push(bl);
        }
        out
    }

    /// A host's `boot` list, as one inline TOML array.
    pub(super) fn host_boot(&mut self, rules: &[crate::import::dhcpd::BootRule]) -> Option<String> {
        if rules.is_empty() {
            return None;
        }
        let mut items = Vec::new();
        for r in rules {
            let mut fields = Vec::new();
            if let Some(u) = &r.user_class {
                fields.push(format!("user_class = {}", quote(u)));
            }
            if let Some(a) = r.arch {
                fields.push(format!("arch = {}", arch_text(a)));
            }
            fields.push(format!(
                "filename = {}",
                quote(&r.filename.values.join(" "))
            ));
            if let Some(p) = &r.next_server {
                match self
                    .s
                    .hosts
                    .resolve(p.values.first().map(String::as_str).unwrap_or(""))
                {
                    Ok(a) => fields.push(format!("next_server = {}", quote(&a.to_string()))),
                    Err(why) => self
                        .report
                        .error(&p.at, format!("{why}; left out of the boot rule")),
                }
            }
            items.push(format!("{{ {} }}", fields.join(", ")));
        }
        Some(format!("[{}]", items.join(", ")))
    }
}

/// Option 93 in the config: the name headnode knows it by when it stands
/// for that number alone (7 and 9 are both x86-64 UEFI, which the name
/// `efi-x64` would join), else the number.
fn arch_text(a: u16) -> String {
    match a {
        0 => quote("bios"),
        6 => quote("efi-ia32"),
        10 => quote("efi-arm32"),
        11 => quote("efi-arm64"),
        16 => quote("efi-x64-http"),
        19 => quote("efi-arm64-http"),
        n => n.to_string(),
    }
}
