//! The rules file: actions, macros, zones with addresses, DNAT.

use super::*;

/// Shorewall's standard macros that map onto tcp/udp ports.
const MACROS: &[(&str, &[(Proto, &str)])] = &[
    ("SSH", &[(Proto::Tcp, "22")]),
    ("DNS", &[(Proto::Udp, "53"), (Proto::Tcp, "53")]),
    ("HTTP", &[(Proto::Tcp, "80")]),
    ("HTTPS", &[(Proto::Tcp, "443")]),
    ("Web", &[(Proto::Tcp, "80"), (Proto::Tcp, "443")]),
    ("FTP", &[(Proto::Tcp, "21")]),
    ("Telnet", &[(Proto::Tcp, "23")]),
    ("SMTP", &[(Proto::Tcp, "25")]),
    ("SMTPS", &[(Proto::Tcp, "465")]),
    ("Submission", &[(Proto::Tcp, "587")]),
    ("POP3", &[(Proto::Tcp, "110")]),
    ("POP3S", &[(Proto::Tcp, "995")]),
    ("IMAP", &[(Proto::Tcp, "143")]),
    ("IMAPS", &[(Proto::Tcp, "993")]),
    ("NTP", &[(Proto::Udp, "123")]),
    ("Rsync", &[(Proto::Tcp, "873")]),
    ("MySQL", &[(Proto::Tcp, "3306")]),
    ("PostgreSQL", &[(Proto::Tcp, "5432")]),
    ("SNMP", &[(Proto::Udp, "161:162"), (Proto::Tcp, "161")]),
    ("Squid", &[(Proto::Tcp, "3128")]),
    ("VNC", &[(Proto::Tcp, "5900")]),
    ("RDP", &[(Proto::Tcp, "3389")]),
    ("Git", &[(Proto::Tcp, "9418")]),
    ("Webmin", &[(Proto::Tcp, "10000")]),
];

impl Shorewall {
    pub(super) fn rules(
        &mut self,
        r: &mut Reader,
        zones: &Zones,
        policy: &BTreeMap<(Zone, Zone), Action>,
        hosts: &Hosts,
    ) {
        let Some(lines) = r.lines("rules") else {
            return;
        };
        let mut section = "NEW".to_string();
        for l in lines {
            let head = l.cols[0].trim_start_matches('?').to_ascii_uppercase();
            if head == "SECTION" {
                section = l.col(1).unwrap_or("NEW").to_ascii_uppercase();
                continue;
            }
            if section != "NEW" && section != "ALL" {
                r.report.skip(
                    &l.at,
                    format!(
                        "`{}`: rules in SECTION {section} are not translated",
                        l.text()
                    ),
                );
                continue;
            }
            self.rule(r, &l, zones, policy, hosts);
        }
        self.prune_redundant(r, policy);
    }

    /// Drop rules that say what the policy already says. Shorewall takes the
    /// first rule that matches, so such a rule still matters when a later rule
    /// for the same zones says otherwise (it is the exception); then it stays.
    fn prune_redundant(&mut self, r: &mut Reader, policy: &BTreeMap<(Zone, Zone), Action>) {
        let rules = std::mem::take(&mut self.rules);
        for (i, rule) in rules.iter().enumerate() {
            let pair = (rule.from, rule.to);
            let later_differs = rules[i + 1..]
                .iter()
                .any(|x| (x.from, x.to) == pair && x.action != rule.action);
            if policy.get(&pair) == Some(&rule.action) && !later_differs {
                r.report.note(
                    &rule.src.at,
                    format!(
                        "`{}`: {}→{} is already {} by headnode's policy",
                        rule.src.text,
                        rule.from,
                        rule.to,
                        past(rule.action)
                    ),
                );
            } else {
                self.rules.push(rule.clone());
            }
        }
    }

    pub(super) fn rule(
        &mut self,
        r: &mut Reader,
        l: &Line,
        zones: &Zones,
        policy: &BTreeMap<(Zone, Zone), Action>,
        hosts: &Hosts,
    ) {
        let skip =
            |r: &mut Reader, why: String| r.report.skip(&l.at, format!("`{}`: {why}", l.text()));
        let raw_action = l.cols[0].as_str();
        let (action, log) = match raw_action.split_once(':') {
            Some((a, lvl)) => (a, Some(lvl)),
            None => (raw_action, None),
        };
        // `SSH(ACCEPT)` or the older `SSH/ACCEPT`.
        let (mac, verdict) = match action.split_once(['(', '/']) {
            Some((m, v)) => (Some(m), v.trim_end_matches(')')),
            None => (None, action),
        };
        let (Some(src), Some(dst)) = (l.col(1), l.col(2)) else {
            return skip(r, "expected ACTION SOURCE DEST".into());
        };
        if let Some(extra) = (5..l.cols.len()).find(|i| l.col(*i).is_some()) {
            let name = [
                "SOURCE PORT",
                "ORIGINAL DEST",
                "RATE",
                "USER",
                "MARK",
                "CONNLIMIT",
                "TIME",
                "HEADERS",
                "SWITCH",
                "HELPER",
            ]
            .get(extra - 5)
            .copied()
            .unwrap_or("extra");
            return skip(r, format!("the {name} column is not translated"));
        }
        if verdict.eq_ignore_ascii_case("DNAT") || verdict.eq_ignore_ascii_case("DNAT-") {
            return self.dnat(r, l, zones, hosts);
        }
        let verdict = match verdict.to_ascii_uppercase().as_str() {
            "ACCEPT" => Action::Accept,
            "DROP" => Action::Drop,
            "REJECT" => Action::Reject,
            other => return skip(r, format!("action {other} has no headnode equivalent")),
        };
        let (src_zone, src_addrs) = split_zone(src);
        let (dst_zone, dst_addrs) = split_zone(dst);
        let (Some(from), Some(to)) = (zones.sel(src_zone), zones.sel(dst_zone)) else {
            return skip(
                r,
                "names a zone headnode does not have (net, loc, $FW)".into(),
            );
        };
        let plain = src_addrs.is_none() && dst_addrs.is_none() && l.col(3).is_none();
        // What headnode's built-in two-interface firewall already does.
        match (mac, verdict, from, to) {
            (Some("Invalid"), Action::Drop, _, _) => {
                return r.report.note(
                    &l.at,
                    format!(
                        "`{}`: headnode's firewall drops invalid packets itself",
                        l.text()
                    ),
                );
            }
            (Some("SSH"), Action::Accept, Sel::One(Zone::Loc), Sel::One(Zone::Fw)) if plain => {
                return r.report.note(
                    &l.at,
                    format!(
                        "`{}`: covered by firewall.ssh_from_loc (on by default)",
                        l.text()
                    ),
                );
            }
            (Some("Ping"), Action::Accept, Sel::One(Zone::Loc), Sel::One(Zone::Fw)) if plain => {
                return r.report.note(
                    &l.at,
                    format!(
                        "`{}`: headnode's firewall accepts ping from loc itself",
                        l.text()
                    ),
                );
            }
            _ => {}
        }
        // Protocol and ports: from the macro, or the PROTO/DPORT columns.
        let mut specs: Vec<(Option<Proto>, Vec<PortRange>)> = Vec::new();
        match mac {
            Some(m) => {
                if l.col(3).is_some() || l.col(4).is_some() {
                    return skip(
                        r,
                        format!("macro {m} with its own PROTO/DPORT columns is not translated"),
                    );
                }
                if m == "Ping" {
                    specs.push((Some(Proto::Icmp), Vec::new()));
                } else {
                    let Some((_, body)) = MACROS.iter().find(|(n, _)| n.eq_ignore_ascii_case(m))
                    else {
                        return skip(r, format!("macro {m} is not known to the import"));
                    };
                    for (p, ports) in body.iter() {
                        let ranges = ports
                            .split(',')
                            .filter_map(|p| values::port_range(p).ok())
                            .collect();
                        specs.push((Some(*p), ranges));
                    }
                }
            }
            None => {
                let proto = match l.col(3) {
                    None | Some("all") => None,
                    Some(p) => match values::proto(p) {
                        Some(p) => Some(p),
                        None => return skip(r, format!("protocol {p} is not tcp, udp or icmp")),
                    },
                };
                let mut ranges = Vec::new();
                if let Some(d) = l.col(4) {
                    if proto == Some(Proto::Icmp) {
                        return skip(
                            r,
                            "ICMP types are not translated (headnode rules match all of ICMP)"
                                .into(),
                        );
                    }
                    if proto.is_none() {
                        return skip(r, "ports without a protocol".into());
                    }
                    for p in d.split(',') {
                        match values::port_range(p) {
                            Ok(pr) => ranges.push(pr),
                            Err(why) => return skip(r, why),
                        }
                    }
                }
                specs.push((proto, ranges));
            }
        }
        let addrs = |list: Option<&str>, r: &mut Reader| -> Option<Vec<Option<ipnet::Ipv4Net>>> {
            let Some(list) = list else {
                return Some(vec![None]);
            };
            let mut out = Vec::new();
            for a in list.split(',') {
                // Exclusions (`!`), ipsets (`+`), MACs (`~`), interfaces (`&`), ranges.
                let dotted = |x: &str| x.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                let range = a
                    .split_once('-')
                    .is_some_and(|(x, y)| dotted(x) && dotted(y));
                if a.starts_with(['!', '+', '~', '&', '[']) || range {
                    r.report.skip(
                        &l.at,
                        format!("`{}`: address form {a} is not translated", l.text()),
                    );
                    return None;
                }
                let parsed = if a
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'/')
                {
                    values::net(a)
                } else {
                    hosts.resolve(a).map(|ip| Some(ip.into()))
                };
                match parsed {
                    Ok(n) => out.push(n),
                    Err(why) => {
                        r.report
                            .error(&l.at, format!("`{}`: {why}; rule left out", l.text()));
                        return None;
                    }
                }
            }
            Some(out)
        };
        let Some(sources) = addrs(src_addrs, r) else {
            return;
        };
        let Some(dests) = addrs(dst_addrs, r) else {
            return;
        };
        if let Some(lvl) = log {
            r.report.note(
                &l.at,
                format!("`{}`: log level {lvl} is not translated", l.text()),
            );
        }
        for from in from.zones() {
            for to in to.zones() {
                if from == to {
                    continue;
                }
                for (proto, ports) in &specs {
                    if *proto == Some(Proto::Icmp) && mac == Some("Ping") {
                        if policy.get(&(from, to)) == Some(&verdict) {
                            r.report.note(
                                &l.at,
                                format!(
                                    "`{}`: {from}→{to} is already {} by headnode's policy",
                                    l.text(),
                                    past(verdict)
                                ),
                            );
                        } else {
                            r.report.skip(&l.at, format!("`{}`: Ping is ICMP echo only; headnode rules match all of ICMP, so it is not translated", l.text()));
                        }
                        continue;
                    }
                    for source in &sources {
                        for dest in &dests {
                            self.rules.push(Rule {
                                src: l.source(),
                                action: verdict,
                                from,
                                to,
                                proto: *proto,
                                ports: ports.clone(),
                                source: *source,
                                dest: *dest,
                            });
                        }
                    }
                }
            }
        }
    }

    /// `DNAT net loc:192.168.1.10[:port] tcp 8080` → `[[firewall.forward]]`.
    pub(super) fn dnat(&mut self, r: &mut Reader, l: &Line, zones: &Zones, hosts: &Hosts) {
        let skip =
            |r: &mut Reader, why: &str| r.report.skip(&l.at, format!("`{}`: {why}", l.text()));
        let (src_zone, src_addrs) = split_zone(l.col(1).unwrap_or(""));
        if zones.sel(src_zone) != Some(Sel::One(Zone::Net)) {
            return skip(r, "headnode forwards ports from net only");
        }
        let dst = l.col(2).unwrap_or("");
        let mut parts = dst.splitn(3, ':');
        let (zone, host, port) = (parts.next(), parts.next(), parts.next());
        if zones.sel(zone.unwrap_or("")) != Some(Sel::One(Zone::Loc)) || host.is_none() {
            return skip(
                r,
                "headnode forwards to a loc host only (loc:ADDRESS[:PORT])",
            );
        }
        let to = match hosts.resolve(host.unwrap_or("")) {
            Ok(a) => a,
            Err(why) => {
                return r
                    .report
                    .error(&l.at, format!("`{}`: {why}; forward left out", l.text()));
            }
        };
        let Some(proto) = l
            .col(3)
            .and_then(values::proto)
            .filter(|p| *p != Proto::Icmp)
        else {
            return skip(r, "a forward needs proto tcp or udp");
        };
        let Some(dports) = l.col(4) else {
            return skip(r, "a forward needs a destination port");
        };
        let to_port = match port.map(values::port).transpose() {
            Ok(p) => p,
            Err(why) => return skip(r, &why),
        };
        let source = match src_addrs.map(values::net).transpose() {
            Ok(s) => s.flatten(),
            Err(why) => {
                return r
                    .report
                    .error(&l.at, format!("`{}`: {why}; forward left out", l.text()));
            }
        };
        for d in dports.split(',') {
            match values::port_range(d) {
                Ok(port) => self.forwards.push(Forward {
                    src: l.source(),
                    proto,
                    port,
                    to,
                    to_port,
                    source,
                }),
                Err(why) => skip(r, &why),
            }
        }
    }
}

fn past(a: Action) -> &'static str {
    match a {
        Action::Accept => "accepted",
        Action::Drop => "dropped",
        Action::Reject => "rejected",
    }
}
