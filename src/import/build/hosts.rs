//! `host` blocks to `[[host]]`: names, MACs, fixed addresses, per-host options,
//! and the duplicates dhcpd accepts silently.

use super::*;

impl<'s> Builder<'s, '_> {
    // ---- hosts ---------------------------------------------------------

    pub(super) fn hosts(&mut self, d: &Dhcpd, lan: Option<&Lan>) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut names: HashMap<String, Loc> = HashMap::new();
        let mut macs: HashMap<Mac, Loc> = HashMap::new();
        let mut addrs: HashMap<Ipv4Addr, Loc> = HashMap::new();
        for h in &d.hosts {
            let mut bl = Block::new("[[host]]");
            bl.comment(format!("{}: host {}", h.at, h.name));
            let mut problems: Vec<String> = Vec::new();
            // The address first: the hosts file may have to supply the name.
            // A `fixed-address` without a value (damaged input) is none.
            let addr = match h.fixed.as_ref().filter(|p| !p.values.is_empty()) {
                None => {
                    self.report.skip(
                        &h.at,
                        format!(
                            "host {}: no fixed-address; headnode reservations need one",
                            h.name
                        ),
                    );
                    continue;
                }
                Some(p) => {
                    if p.values.len() > 1 {
                        self.report.skip(
                            &p.at,
                            format!(
                                "host {}: only the first fixed-address ({}) is translated",
                                h.name, p.values[0]
                            ),
                        );
                    }
                    match self.s.hosts.resolve(&p.values[0]) {
                        Ok(a) => Some((p, a)),
                        Err(why) => {
                            self.report
                                .error(&p.at, format!("host {}: fixed-address: {why}", h.name));
                            problems.push(format!("{}: {why}", p.at));
                            None
                        }
                    }
                }
            };
            let name = self.host_name(h, addr.map(|(_, a)| a));
            if let Some(first) = names.get(&name) {
                let why = format!("host name {name} is already used at {first}");
                self.report.error(&h.at, why.clone());
                problems.push(why);
            }
            let mac = match &h.mac {
                None => {
                    self.report.skip(
                        &h.at,
                        format!(
                            "host {}: no `hardware ethernet`; headnode reserves by MAC",
                            h.name
                        ),
                    );
                    continue;
                }
                Some(p) => {
                    let text = p.values.first().map(String::as_str).unwrap_or("");
                    match parse_mac(text) {
                        Ok(m) => {
                            if let Some(first) = macs.get(&m) {
                                let why = format!("MAC {m} is already reserved at {first}");
                                self.report.error(
                                    &p.at,
                                    format!("host {}: {why} (dhcpd accepts this silently)", h.name),
                                );
                                problems.push(why);
                            }
                            macs.entry(m).or_insert_with(|| p.at.clone());
                            Some((p, m))
                        }
                        Err(why) => {
                            let why = format!("\"{text}\" is not a MAC address: {why}");
                            self.report.error(&p.at, format!("host {}: {why}", h.name));
                            problems.push(why);
                            None
                        }
                    }
                }
            };
            if let Some((p, a)) = addr {
                if let Some(first) = addrs.get(&a) {
                    let why = format!("{a} is already reserved at {first}");
                    self.report.error(
                        &p.at,
                        format!("host {}: {why} (dhcpd accepts this silently)", h.name),
                    );
                    problems.push(why);
                }
                addrs.entry(a).or_insert_with(|| p.at.clone());
                if let Some(lan) = lan {
                    let why = if !lan.net.contains(&a) {
                        Some(format!("{a} is outside the LAN {}", lan.net))
                    } else if a == lan.net.network() || a == lan.net.broadcast() {
                        Some(format!(
                            "{a} is the network or broadcast address of {}",
                            lan.net
                        ))
                    } else if Some(a) == lan.head {
                        Some(format!("{a} is the head node's own address"))
                    } else if Some(a) == lan.vip {
                        Some(format!("{a} is keepalived's virtual LAN address"))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.report.error(&p.at, format!("host {}: {why}", h.name));
                        problems.push(why);
                    }
                }
            }
            bl.str("name", &name);
            if let Some((_, m)) = mac {
                bl.str("mac", &m.to_string());
            }
            if let Some((_, a)) = addr {
                bl.str("address", &a.to_string());
            }
            self.host_params(h, &mut bl);
            if let Some(boot) = self.host_boot(&h.boot) {
                bl.key_comment(format!("{}: the `if` blocks of host {}", h.at, h.name));
                bl.raw("boot", boot);
            }
            if problems.is_empty()
                && let (Some(_), Some((_, a))) = (mac, addr)
            {
                names.insert(name.clone(), h.at.clone());
                self.hosts_out.push(HostOut { name, addr: a });
            } else {
                bl.disable(problems.join("; "));
            }
            blocks.push(bl);
        }
        blocks
    }

    /// The dhcpd host name when it is a valid label, else the hosts file's
    /// name for its address, else `option host-name`, else the name made valid.
    pub(super) fn host_name(
        &mut self,
        h: &crate::import::dhcpd::HostDecl,
        addr: Option<Ipv4Addr>,
    ) -> String {
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() <= 63
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !n.starts_with('-')
                && !n.ends_with('-')
                && values::ipv4(n).is_err()
                && n != "public"
        };
        let listed = addr.and_then(|a| self.s.hosts.by_addr(a));
        if valid(&h.name) {
            if let Some(e) = listed
                && !e
                    .names
                    .iter()
                    .any(|n| n.split('.').next() == Some(h.name.as_str()))
            {
                self.report.note(
                    &e.at,
                    format!(
                        "the hosts file calls {} {}; the config uses the dhcpd name {}",
                        e.text,
                        e.names.join(" "),
                        h.name
                    ),
                );
            }
            return h.name.clone();
        }
        let alt = listed
            .and_then(|e| e.short_name().map(str::to_string))
            .or_else(|| {
                h.params
                    .get("host-name")
                    .and_then(|p| p.values.first().cloned())
            })
            .map(|n| n.split('.').next().unwrap_or(&n).to_string())
            .filter(|n| valid(n));
        let name = alt.unwrap_or_else(|| {
            let mut n: String = h
                .name
                .split('.')
                .next()
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            n = n.trim_matches('-').chars().take(63).collect();
            if n.is_empty() || !valid(&n) {
                format!("host-{n}")
            } else {
                n
            }
        });
        self.report.note(
            &h.at,
            format!(
                "host {} is not a valid headnode host name; it is called {name}",
                h.name
            ),
        );
        name
    }

    pub(super) fn host_params(&mut self, h: &crate::import::dhcpd::HostDecl, bl: &mut Block) {
        for (k, p) in &h.params {
            match *k {
                "default-lease-time" => match secs(p) {
                    Ok(s) => {
                        bl.raw("lease_time", values::duration(s));
                    }
                    Err(why) => self.report.error(&p.at, why),
                },
                "next-server" => self.addr_key(p, "next_server", bl),
                "filename" => {
                    bl.str("filename", &p.values.join(" "));
                }
                "domain-name-servers" => {
                    let list = self.addr_list(p);
                    bl.strs("dns_servers", &list);
                }
                "domain-name" => {
                    bl.str("domain_name", &p.values.join(" "));
                }
                "host-name" => {}
                other => self.report.skip(
                    &p.at,
                    format!("host {}: per-host {other} is not translated", h.name),
                ),
            }
        }
    }

    pub(super) fn addr_key(&mut self, p: &Param, key: &str, bl: &mut Block) {
        match self
            .s
            .hosts
            .resolve(p.values.first().map(String::as_str).unwrap_or(""))
        {
            Ok(a) => {
                bl.str(key, &a.to_string());
            }
            Err(why) => {
                self.report.error(&p.at, why.clone());
                bl.fixme_key(format!("{}: {why}", p.at), key, quote(&p.values.join(" ")));
            }
        }
    }

    pub(super) fn addr_list(&mut self, p: &Param) -> Vec<String> {
        let mut out = Vec::new();
        for v in &p.values {
            match self.s.hosts.resolve(v) {
                Ok(a) => out.push(a.to_string()),
                Err(why) => self
                    .report
                    .error(&p.at, format!("{why}; left out of the list")),
            }
        }
        out
    }
}
