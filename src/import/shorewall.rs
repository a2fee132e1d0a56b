//! A shorewall two-interface directory: zones, interfaces, policy, rules
//! (with macros such as `SSH(ACCEPT)`), masq/snat and tcrules/mangle marks.
//!
//! headnode's built-in firewall *is* the two-interface sample, so lines of the
//! sample are recognised as covered and only what the admin changed is carried
//! over: policy pairs that differ from the sample, rules the policy does not
//! already imply, the NAT setting and the marks.

use super::draft::{Forward, Mark, Nat, Policy, Rule, Source};
use super::hosts::Hosts;
use super::report::{Loc, Report};
use super::values;
use crate::config::model::{Action, PortRange, Proto, Zone};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

#[derive(Debug, Default)]
pub struct Shorewall {
    /// The interface of zone `net`, and where it was said.
    pub public_if: Option<(Loc, String)>,
    pub private_if: Option<(Loc, String)>,
    pub policies: Vec<Policy>,
    pub rules: Vec<Rule>,
    pub forwards: Vec<Forward>,
    pub marks: Vec<Mark>,
    pub nat: Option<Nat>,
}

/// One logical line of a shorewall file (continuations joined, comments cut,
/// params substituted), split into columns.
#[derive(Debug, Clone)]
struct Line {
    at: Loc,
    cols: Vec<String>,
}

impl Line {
    fn text(&self) -> String {
        self.cols.join(" ")
    }
    fn source(&self) -> Source {
        Source {
            at: self.at.clone(),
            text: self.text(),
        }
    }
    /// Column `i`, with `-` (shorewall's "empty") as `None`.
    fn col(&self, i: usize) -> Option<&str> {
        self.cols.get(i).map(String::as_str).filter(|c| *c != "-")
    }
}

/// A zone column: one zone, or `all` (each of the three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sel {
    One(Zone),
    All,
}

impl Sel {
    fn matches(self, z: Zone) -> bool {
        self == Sel::All || self == Sel::One(z)
    }
    fn zones(self) -> Vec<Zone> {
        match self {
            Sel::One(z) => vec![z],
            Sel::All => vec![Zone::Net, Zone::Loc, Zone::Fw],
        }
    }
}

/// The zone pairs a two-interface firewall has, with headnode's default
/// policy and what shorewall's sample policy file gives (fw→net is either,
/// as the sample ships `$FW net ACCEPT` commented out).
const PAIRS: &[(Zone, Zone, Action, &[&str])] = &[
    (Zone::Loc, Zone::Net, Action::Accept, &["ACCEPT"]),
    (Zone::Net, Zone::Fw, Action::Drop, &["DROP"]),
    (Zone::Net, Zone::Loc, Action::Drop, &["DROP"]),
    (Zone::Loc, Zone::Fw, Action::Reject, &["REJECT"]),
    (Zone::Fw, Zone::Net, Action::Accept, &["REJECT", "ACCEPT"]),
    (Zone::Fw, Zone::Loc, Action::Accept, &["REJECT"]),
];

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

/// Files of a shorewall directory this import reads (the rest is reported).
const READ: &[&str] = &[
    "zones",
    "interfaces",
    "policy",
    "rules",
    "masq",
    "snat",
    "tcrules",
    "mangle",
    "params",
];

struct Reader<'a> {
    dir: &'a Path,
    params: HashMap<String, String>,
    report: &'a mut Report,
}

impl Reader<'_> {
    /// The logical lines of `name`, or `None` when the file does not exist.
    fn lines(&mut self, name: &str) -> Option<Vec<Line>> {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path).ok()?;
        let file: Rc<str> = path.display().to_string().into();
        self.report.saw(&file);
        let mut out = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let content = raw.split('#').next().unwrap_or("").trim_end();
            // A continuation line carries on the column it continues (`a,\` + `  b`).
            let (start, mut joined, content) = match pending.take() {
                Some((start, joined)) => (start, joined, content.trim_start()),
                None => (i + 1, String::new(), content),
            };
            if let Some(head) = content.strip_suffix('\\') {
                joined.push_str(head);
                pending = Some((start, joined));
                continue;
            }
            joined.push_str(content);
            let at = Loc {
                file: file.clone(),
                line: start,
            };
            let cols: Vec<String> = joined
                .split_whitespace()
                .map(|c| self.substitute(c))
                .collect();
            if cols.is_empty() {
                continue;
            }
            let first = cols[0].trim_start_matches('?').to_ascii_uppercase();
            match first.as_str() {
                // Column layout and comment markers change nothing here.
                "FORMAT" | "COMMENT" => continue,
                "SECTION" => {}
                "INCLUDE" => {
                    self.report
                        .skip(&at, "INCLUDE is not followed; merge the file by hand");
                    continue;
                }
                _ if cols[0].starts_with('?') => {
                    self.report.skip(
                        &at,
                        format!(
                            "`{}`: compiler directives are not evaluated",
                            cols.join(" ")
                        ),
                    );
                    continue;
                }
                _ => {}
            }
            out.push(Line { at, cols });
        }
        Some(out)
    }

    /// `$NAME` / `${NAME}` from the params file; `$FW` stays (it names the firewall zone).
    fn substitute(&self, col: &str) -> String {
        let mut out = col.to_string();
        for (k, v) in &self.params {
            out = out.replace(&format!("${{{k}}}"), v);
            if k != "FW" {
                out = replace_var(&out, k, v);
            }
        }
        out
    }
}

/// Replace `$NAME` where NAME is not followed by more name characters.
fn replace_var(s: &str, name: &str, value: &str) -> String {
    let pat = format!("${name}");
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(&pat) {
        let after = &rest[i + pat.len()..];
        out.push_str(&rest[..i]);
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(&pat);
        } else {
            out.push_str(value);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

impl Shorewall {
    pub fn load(dir: &Path, hosts: &Hosts, report: &mut Report) -> Result<Shorewall, String> {
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        let mut r = Reader {
            dir,
            params: HashMap::new(),
            report,
        };
        r.params = params(dir);
        let mut sw = Shorewall::default();
        let zones = zones(&mut r);
        sw.interfaces(&mut r, &zones);
        let policy = sw.policy(&mut r, &zones);
        sw.rules(&mut r, &zones, &policy, hosts);
        sw.nat(&mut r);
        sw.marks(&mut r);
        others(dir, r.report);
        Ok(sw)
    }

    fn interfaces(&mut self, r: &mut Reader, zones: &Zones) {
        let Some(lines) = r.lines("interfaces") else {
            let at = file_loc(r.dir, "interfaces");
            r.report.error(
                &at,
                "no interfaces file: cannot tell which interface is net and which is loc",
            );
            return;
        };
        for l in lines {
            let (Some(zone), Some(iface)) = (l.col(0), l.col(1)) else {
                continue;
            };
            // FORMAT 1 has a BROADCAST column (`detect`) before the options.
            let options = match l.col(2) {
                Some("detect") => l.col(3),
                o => o,
            };
            let slot = match zones.sel(zone) {
                Some(Sel::One(Zone::Net)) => &mut self.public_if,
                Some(Sel::One(Zone::Loc)) => &mut self.private_if,
                _ => {
                    r.report.skip(
                        &l.at,
                        format!("`{}`: zone {zone} is not net or loc", l.text()),
                    );
                    continue;
                }
            };
            if iface.contains('+') || iface.contains(':') {
                r.report.skip(
                    &l.at,
                    format!(
                        "`{}`: wildcard or alias interfaces are not translated",
                        l.text()
                    ),
                );
                continue;
            }
            if let Some((first, _)) = slot {
                r.report.skip(
                    &l.at,
                    format!("`{}`: zone {zone} already has an interface ({first}); headnode has one per zone", l.text()),
                );
                continue;
            }
            *slot = Some((l.at.clone(), iface.to_string()));
            if let Some(opts) = options {
                r.report.skip(
                    &l.at,
                    format!("interface options {opts} are not translated; headnode's built-in firewall applies its own protections"),
                );
            }
        }
    }

    /// Read the policy file: the pairs that differ from shorewall's sample become
    /// overrides; the result is the policy headnode will have, for judging rules.
    fn policy(&mut self, r: &mut Reader, zones: &Zones) -> BTreeMap<(Zone, Zone), Action> {
        let mut effective: BTreeMap<(Zone, Zone), Action> = PAIRS
            .iter()
            .map(|(a, b, act, _)| ((*a, *b), *act))
            .collect();
        let Some(lines) = r.lines("policy") else {
            r.report.note(
                &file_loc(r.dir, "policy"),
                "no policy file: headnode's two-interface defaults apply",
            );
            return effective;
        };
        let mut parsed = Vec::new();
        for l in &lines {
            let (Some(s), Some(d), Some(p)) = (l.col(0), l.col(1), l.col(2)) else {
                r.report.skip(
                    &l.at,
                    format!("`{}`: expected SOURCE DEST POLICY", l.text()),
                );
                continue;
            };
            let (Some(s), Some(d)) = (zones.sel(s), zones.sel(d)) else {
                r.report.skip(
                    &l.at,
                    format!("`{}`: names a zone headnode does not have", l.text()),
                );
                continue;
            };
            let policy = p.split(':').next().unwrap_or(p).to_ascii_uppercase();
            if let Some(level) = l.col(3)
                && s != Sel::One(Zone::Net)
            {
                r.report.note(
                    &l.at,
                    format!("log level {level} is not translated; headnode logs dropped packets from net (rate limited)"),
                );
            }
            parsed.push((l, s, d, policy));
        }
        let mut relaxed = Vec::new();
        for (from, to, default, sample) in PAIRS {
            let Some((l, _, _, policy)) = parsed
                .iter()
                .find(|(_, s, d, _)| s.matches(*from) && d.matches(*to))
            else {
                continue;
            };
            if sample.contains(&policy.as_str()) {
                if policy != action_name(*default) {
                    relaxed.push((l.at.clone(), *from, *to));
                }
                continue;
            }
            let action = match policy.as_str() {
                "ACCEPT" => Action::Accept,
                "DROP" => Action::Drop,
                "REJECT" => Action::Reject,
                other => {
                    r.report.skip(
                        &l.at,
                        format!(
                            "policy {other} for {from}→{to} is not translated; headnode keeps {}",
                            action_name(*default).to_lowercase()
                        ),
                    );
                    continue;
                }
            };
            effective.insert((*from, *to), action);
            if action != *default {
                self.policies.push(Policy {
                    src: l.source(),
                    from: *from,
                    to: *to,
                    action,
                });
            }
        }
        for (at, from, to) in relaxed {
            r.report.note(
                &at,
                format!("shorewall's sample rejects {from}→{to}; headnode's two-interface firewall accepts what the head node itself opens (add [[firewall.policy]] from = \"{from}\", to = \"{to}\", action = \"reject\" to keep shorewall's behaviour)"),
            );
        }
        effective
    }

    fn rules(
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
    }

    fn rule(
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
                if policy.get(&(from, to)) == Some(&verdict) {
                    r.report.note(
                        &l.at,
                        format!(
                            "`{}`: {from}→{to} is already {} by headnode's policy",
                            l.text(),
                            past(verdict)
                        ),
                    );
                    continue;
                }
                for (proto, ports) in &specs {
                    if *proto == Some(Proto::Icmp) && mac == Some("Ping") {
                        r.report.skip(&l.at, format!("`{}`: Ping is ICMP echo only; headnode rules match all of ICMP, so it is not translated", l.text()));
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
    fn dnat(&mut self, r: &mut Reader, l: &Line, zones: &Zones, hosts: &Hosts) {
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

    /// masq (shorewall ≤ 5.1) or snat (5.2+): masquerade or SNAT out of the public interface.
    fn nat(&mut self, r: &mut Reader) {
        let public = self.public_if.as_ref().map(|(_, n)| n.clone());
        let mut found = false;
        for (file, lines) in [("masq", r.lines("masq")), ("snat", r.lines("snat"))] {
            let Some(lines) = lines else { continue };
            found = true;
            for l in lines {
                // masq: INTERFACE SOURCE [ADDRESS]; snat: ACTION SOURCE DEST.
                let (iface, address) = if file == "masq" {
                    (l.col(0).unwrap_or(""), l.col(2).map(str::to_string))
                } else {
                    let action = l.col(0).unwrap_or("");
                    let addr = action
                        .strip_prefix("SNAT(")
                        .and_then(|a| a.strip_suffix(')'))
                        .map(str::to_string);
                    if action != "MASQUERADE" && addr.is_none() {
                        r.report.skip(
                            &l.at,
                            format!(
                                "`{}`: only MASQUERADE and SNAT(address) are translated",
                                l.text()
                            ),
                        );
                        continue;
                    }
                    (l.col(2).unwrap_or(""), addr)
                };
                let iface = iface.split(':').next().unwrap_or(iface);
                if public.as_deref() != Some(iface) {
                    r.report.skip(
                        &l.at,
                        format!(
                            "`{}`: headnode translates addresses only out of the public interface",
                            l.text()
                        ),
                    );
                    continue;
                }
                if self.nat.as_ref().is_some_and(|n| !matches!(n, Nat::None)) {
                    r.report.note(&l.at, format!("`{}`: headnode has one NAT setting for the whole LAN; the first line decides", l.text()));
                    continue;
                }
                self.nat = Some(match address {
                    None => Nat::Masquerade(l.source()),
                    Some(a) => match values::ipv4(&a) {
                        Ok(ip) => Nat::Snat(l.source(), ip),
                        Err(why) => {
                            r.report.error(
                                &l.at,
                                format!("`{}`: {why}; headnode masquerades instead", l.text()),
                            );
                            Nat::Masquerade(l.source())
                        }
                    },
                });
            }
        }
        if self.nat.is_none() {
            let at = file_loc(r.dir, "masq");
            r.report.note(
                &at,
                if found {
                    "no masq/snat entry for the public interface: masquerade = false"
                } else {
                    "no masq or snat file: masquerade = false"
                },
            );
            self.nat = Some(Nat::None);
        }
    }

    /// tcrules (`1 0.0.0.0/0 ADDR tcp 8000`) or mangle (`MARK(1) ...`).
    fn marks(&mut self, r: &mut Reader) {
        for file in ["tcrules", "mangle"] {
            let Some(lines) = r.lines(file) else { continue };
            for l in lines {
                let skip = |r: &mut Reader, why: &str| {
                    r.report.skip(&l.at, format!("`{}`: {why}", l.text()))
                };
                let first = l.col(0).unwrap_or("");
                let mark_text = if file == "mangle" {
                    match first
                        .strip_prefix("MARK(")
                        .and_then(|m| m.strip_suffix(')'))
                    {
                        Some(m) => m.to_string(),
                        None => {
                            skip(r, "only MARK(n) is translated");
                            continue;
                        }
                    }
                } else {
                    // `1` or `1:P` mark in PREROUTING; `:F`/`:T` and classes are other chains.
                    match first.split_once(':') {
                        None => first.to_string(),
                        Some((m, "P")) => m.to_string(),
                        Some(_) => {
                            skip(r, "only marks set in PREROUTING are translated");
                            continue;
                        }
                    }
                };
                let mark_text = mark_text.split('/').next().unwrap_or("").to_string();
                let mark = match mark_text.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => mark_text.parse::<u32>().ok(),
                };
                let Some(mark) = mark.filter(|m| *m > 0) else {
                    skip(r, "the mark is not a positive number");
                    continue;
                };
                if (5..l.cols.len()).any(|i| l.col(i).is_some()) {
                    skip(r, "columns after DEST PORT(S) are not translated");
                    continue;
                }
                let source = match l.col(1) {
                    None => None,
                    Some(s) if self.public_if.as_ref().is_some_and(|(_, n)| n == s) => None,
                    Some(s) => match values::net(s) {
                        Ok(n) => n,
                        Err(why) => {
                            r.report
                                .error(&l.at, format!("`{}`: {why}; mark left out", l.text()));
                            continue;
                        }
                    },
                };
                let dest = match l.col(2).map(values::net).transpose() {
                    Ok(d) => d.flatten(),
                    Err(why) => {
                        r.report
                            .error(&l.at, format!("`{}`: {why}; mark left out", l.text()));
                        continue;
                    }
                };
                let proto = match l.col(3) {
                    None | Some("all") => None,
                    Some(p) => match values::proto(p) {
                        Some(p) => Some(p),
                        None => {
                            skip(r, "the protocol is not tcp, udp or icmp");
                            continue;
                        }
                    },
                };
                let mut ports = Vec::new();
                if let Some(d) = l.col(4) {
                    for p in d.split(',') {
                        match values::port_range(p) {
                            Ok(pr) => ports.push(pr),
                            Err(why) => {
                                skip(r, &why);
                                ports.clear();
                                break;
                            }
                        }
                    }
                    if ports.is_empty() {
                        continue;
                    }
                }
                self.marks.push(Mark {
                    src: l.source(),
                    mark,
                    dest,
                    source,
                    proto,
                    ports,
                });
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

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Accept => "ACCEPT",
        Action::Drop => "DROP",
        Action::Reject => "REJECT",
    }
}

/// `net:1.2.3.4,5.6.7.8` → (`net`, `Some("1.2.3.4,5.6.7.8")`).
fn split_zone(col: &str) -> (&str, Option<&str>) {
    match col.split_once(':') {
        Some((z, a)) => (z, Some(a).filter(|a| !a.is_empty())),
        None => (col, None),
    }
}

/// Zone names of this directory: the firewall zone's name (`fw`, also `$FW`), `net`, `loc`.
struct Zones {
    fw: String,
}

impl Zones {
    fn sel(&self, name: &str) -> Option<Sel> {
        match name {
            "all" | "any" | "all+" | "any+" => Some(Sel::All),
            "$FW" => Some(Sel::One(Zone::Fw)),
            n if n == self.fw => Some(Sel::One(Zone::Fw)),
            "net" => Some(Sel::One(Zone::Net)),
            "loc" => Some(Sel::One(Zone::Loc)),
            _ => None,
        }
    }
}

fn zones(r: &mut Reader) -> Zones {
    let mut fw = "fw".to_string();
    let Some(lines) = r.lines("zones") else {
        return Zones { fw };
    };
    for l in lines {
        let name = l.col(0).unwrap_or("");
        match (name, l.col(1).unwrap_or("ipv4")) {
            (n, "firewall") => fw = n.to_string(),
            ("net" | "loc", "ipv4" | "ip") => {}
            (n, t) => r.report.skip(
                &l.at,
                format!("zone {n} ({t}): headnode has the zones net, loc and fw only"),
            ),
        }
    }
    Zones { fw }
}

/// `NAME=value` lines of the params file (shell syntax, quotes removed).
fn params(dir: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join("params")) else {
        return out;
    };
    for l in text.lines() {
        let l = l.split('#').next().unwrap_or("").trim();
        let l = l.strip_prefix("export ").unwrap_or(l);
        if let Some((k, v)) = l.split_once('=') {
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// Other shorewall files with entries are reported, so nothing is dropped unseen.
fn others(dir: &Path, report: &mut Report) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !READ.contains(&n.as_str()) && !n.ends_with('~'))
        .collect();
    names.sort();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        let first = text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.split('#').next().unwrap_or("").trim().is_empty());
        if let Some((i, _)) = first {
            let at = Loc {
                file: dir.join(&name).display().to_string().into(),
                line: i + 1,
            };
            report.skip(&at, format!("shorewall file {name} is not translated"));
        }
    }
}

fn file_loc(dir: &Path, name: &str) -> Loc {
    Loc {
        file: dir.join(name).display().to_string().into(),
        line: 0,
    }
}
