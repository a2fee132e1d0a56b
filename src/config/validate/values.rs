//! Value parsers every section shares: addresses, networks and host names,
//! ports, durations, counts, keywords, text and domain names. Each reports
//! its own diagnostic and returns `None`, so a section only combines them.

use super::{Names, PLACEHOLDER_PUBLIC, Validator};
use crate::config::model::*;
use crate::config::raw::*;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::time::Duration;

impl Validator<'_> {
    pub(super) fn ipv4(&mut self, s: &S<String>, field: &str) -> Option<Ipv4Addr> {
        match parse_ipv4(s.get_ref()) {
            Ok(a) => Some(a),
            Err(why) => {
                self.err(
                    s.span(),
                    field,
                    format!("\"{}\" is not an IPv4 address: {why}", s.get_ref()),
                    Some("write four decimal numbers 0-255 without leading zeros, e.g. 192.0.2.10"),
                );
                None
            }
        }
    }

    /// `a.b.c.d/len` with the host part kept (interface addresses).
    pub(super) fn ipv4_iface(&mut self, s: &S<String>, field: &str) -> Option<Ipv4Net> {
        let text = s.get_ref();
        let Some((addr, len)) = text.split_once('/') else {
            self.err(
                s.span(),
                field,
                format!("\"{text}\" has no prefix length"),
                Some("write the address with its prefix, e.g. 192.168.1.254/24"),
            );
            return None;
        };
        let addr = match parse_ipv4(addr) {
            Ok(a) => a,
            Err(why) => {
                self.err(
                    s.span(),
                    field,
                    format!("\"{text}\" is not an IPv4 address: {why}"),
                    Some("write four decimal numbers 0-255 without leading zeros, e.g. 192.168.1.254/24"),
                );
                return None;
            }
        };
        match len.parse::<u8>().ok().filter(|l| (1..=32).contains(l)) {
            Some(l) => Some(Ipv4Net::new(addr, l).expect("prefix checked")),
            None => {
                self.err(
                    s.span(),
                    field,
                    format!("\"{text}\": prefix length \"{len}\" is not 1-32"),
                    Some("a /24 LAN is written 192.168.1.254/24"),
                );
                None
            }
        }
    }

    /// An address, a network `a.b.c.d/len`, or a `[[host]]` name / `public`.
    pub(super) fn net_or_name(
        &mut self,
        s: &S<String>,
        field: &str,
        names: &Names,
    ) -> Option<Ipv4Net> {
        let text = s.get_ref();
        if let Some(ip) = self.name(text, names) {
            return Some(Ipv4Net::from(ip));
        }
        if let Some((addr, len)) = text.split_once('/') {
            let addr = parse_ipv4(addr).ok();
            let len = len.parse::<u8>().ok().filter(|l| *l <= 32);
            if let (Some(a), Some(l)) = (addr, len) {
                return Some(Ipv4Net::new(a, l).expect("prefix checked").trunc());
            }
        } else if let Ok(a) = parse_ipv4(text) {
            return Some(Ipv4Net::from(a));
        }
        let why = if let Some((a, _)) = text.split_once('/') {
            parse_ipv4(a).err().unwrap_or("bad prefix length")
        } else {
            parse_ipv4(text).err().unwrap_or("unknown")
        };
        self.err(
            s.span(),
            field,
            format!("\"{text}\" is neither an address, a network nor a host name: {why}"),
            Some("use 192.0.2.10, 192.0.2.0/24, \"public\" or the name of a [[host]]"),
        );
        None
    }

    /// An address or a name.
    pub(super) fn addr_or_name(
        &mut self,
        s: &S<String>,
        field: &str,
        names: &Names,
    ) -> Option<Ipv4Addr> {
        if let Some(ip) = self.name(s.get_ref(), names) {
            return Some(ip);
        }
        match parse_ipv4(s.get_ref()) {
            Ok(a) => Some(a),
            Err(why) => {
                let known: Vec<_> = names.hosts.keys().copied().collect();
                let hint = if known.is_empty() {
                    "use an IPv4 address or declare the name in a [[host]] block".to_string()
                } else {
                    let mut known = known;
                    known.sort();
                    format!(
                        "use an IPv4 address or one of the hosts: {}",
                        known.join(", ")
                    )
                };
                self.err(
                    s.span(),
                    field,
                    format!(
                        "\"{}\" is not a known host name nor an IPv4 address ({why})",
                        s.get_ref()
                    ),
                    Some(&hint),
                );
                None
            }
        }
    }

    fn name(&self, text: &str, names: &Names) -> Option<Ipv4Addr> {
        if text == "public" {
            return Some(names.public.unwrap_or(PLACEHOLDER_PUBLIC));
        }
        names.hosts.get(text).copied()
    }

    pub(super) fn port(&mut self, s: &S<i64>, field: &str) -> Option<u16> {
        match u16::try_from(*s.get_ref()).ok().filter(|p| *p > 0) {
            Some(p) => Some(p),
            None => {
                self.err(
                    s.span(),
                    field,
                    format!("port {} is out of range", s.get_ref()),
                    Some("ports are 1-65535"),
                );
                None
            }
        }
    }

    pub(super) fn port_range(&mut self, s: &S<RawPort>, field: &str) -> Option<PortRange> {
        let bad = |v: &mut Self, what: String| {
            v.err(
                s.span(),
                field,
                what,
                Some("write a port 1-65535 or a range \"8000-8010\""),
            );
            None
        };
        match s.get_ref() {
            RawPort::One(p) => match u16::try_from(*p).ok().filter(|p| *p > 0) {
                Some(p) => Some(PortRange::single(p)),
                None => bad(self, format!("port {p} is out of range")),
            },
            RawPort::Range(t) => {
                let parts = t
                    .split_once(['-', ':'])
                    .map(|(a, b)| (a.trim().parse::<u16>(), b.trim().parse::<u16>()));
                match parts {
                    Some((Ok(a), Ok(b))) if a > 0 && a <= b => {
                        Some(PortRange { first: a, last: b })
                    }
                    _ => match t.trim().parse::<u16>() {
                        Ok(p) if p > 0 => Some(PortRange::single(p)),
                        _ => bad(self, format!("\"{t}\" is not a port or port range")),
                    },
                }
            }
        }
    }

    pub(super) fn duration(&mut self, s: &S<RawDuration>, field: &str) -> Option<Duration> {
        self.duration_from(s, field, false)
    }

    /// A duration where zero means "off" (persistence).
    pub(super) fn duration_or_zero(&mut self, s: &S<RawDuration>, field: &str) -> Option<Duration> {
        self.duration_from(s, field, true)
    }

    fn duration_from(
        &mut self,
        s: &S<RawDuration>,
        field: &str,
        zero_ok: bool,
    ) -> Option<Duration> {
        let parsed = match s.get_ref() {
            RawDuration::Seconds(n) => u64::try_from(*n).ok().map(Duration::from_secs),
            RawDuration::Text(t) => parse_duration(t),
        };
        match parsed.filter(|d| zero_ok || !d.is_zero()) {
            Some(d) => Some(d),
            None => {
                let shown = match s.get_ref() {
                    RawDuration::Seconds(n) => n.to_string(),
                    RawDuration::Text(t) => format!("\"{t}\""),
                };
                self.err(
                    s.span(),
                    field,
                    format!("{shown} is not a positive duration"),
                    Some("write seconds (3600) or numbers with units: \"90s\", \"5m\", \"12h\", \"1d\", \"500ms\", \"1h30m\""),
                );
                None
            }
        }
    }

    pub(super) fn count(&mut self, s: &S<i64>, field: &str, min: i64, max: i64) -> Option<u32> {
        let n = *s.get_ref();
        if n < min || n > max {
            self.err(
                s.span(),
                field,
                format!("{n} is out of range"),
                Some(&format!("use a whole number from {min} to {max}")),
            );
            return None;
        }
        Some(n as u32)
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        s: &S<String>,
        field: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let text = s.get_ref().to_ascii_lowercase();
        if let Some((_, t)) = options.iter().find(|(n, _)| *n == text) {
            return Some(*t);
        }
        let mut names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        names.dedup();
        self.err(
            s.span(),
            field,
            format!("\"{}\" is not one of: {}", s.get_ref(), names.join(", ")),
            None,
        );
        None
    }

    pub(super) fn zone(&mut self, s: &S<String>, field: &str) -> Option<Zone> {
        self.choice(
            s,
            field,
            &[
                ("net", Zone::Net),
                ("loc", Zone::Loc),
                ("fw", Zone::Fw),
                ("$fw", Zone::Fw),
            ],
        )
    }

    pub(super) fn proto(&mut self, s: &S<String>, field: &str) -> Option<Proto> {
        self.choice(
            s,
            field,
            &[
                ("tcp", Proto::Tcp),
                ("udp", Proto::Udp),
                ("icmp", Proto::Icmp),
            ],
        )
    }

    pub(super) fn text(&mut self, s: &S<String>, field: &str, max: usize) -> Option<String> {
        let t = s.get_ref();
        if t.is_empty() || t.len() > max || t.contains('\0') {
            self.err(
                s.span(),
                field,
                format!("\"{t}\" must be 1-{max} bytes with no NUL"),
                None,
            );
            return None;
        }
        Some(t.clone())
    }

    pub(super) fn domain(&mut self, s: &S<String>, field: &str) -> Option<String> {
        let t = s.get_ref();
        let ok =
            !t.is_empty() && t.len() <= 253 && t.trim_end_matches('.').split('.').all(valid_label);
        if ok {
            Some(t.clone())
        } else {
            self.err(
                s.span(),
                field,
                format!("\"{t}\" is not a valid domain name"),
                Some("labels of letters, digits and '-', separated by dots, e.g. cluster.example.com"),
            );
            None
        }
    }

    pub(super) fn addrs(&mut self, list: &[S<String>], field: &str) -> Vec<Ipv4Addr> {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| self.ipv4(s, &format!("{field}[{i}]")))
            .collect()
    }

    pub(super) fn action(&mut self, s: &S<String>, field: &str) -> Option<Action> {
        self.choice(
            s,
            field,
            &[
                ("accept", Action::Accept),
                ("drop", Action::Drop),
                ("reject", Action::Reject),
            ],
        )
    }
}

/// Strict dotted-quad parsing with a reason, because the usual parsers either
/// accept forms nft reads differently (`010.0.0.1` is octal there) or only say "invalid".
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, &'static str> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err("expected four numbers separated by dots");
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err("each part must be a decimal number");
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err("a part has a leading zero, which some tools read as octal");
        }
        *o = p.parse::<u8>().map_err(|_| "a part is above 255")?;
    }
    Ok(Ipv4Addr::from(octets))
}

pub fn parse_mac(s: &str) -> Result<Mac, &'static str> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err("expected six hex pairs");
    }
    let mut b = [0u8; 6];
    for (o, p) in b.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err("each part must be two hex digits");
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| "a part is not hexadecimal")?;
    }
    if b[0] & 1 == 1 {
        return Err("it is a multicast address, which no network card has");
    }
    Ok(Mac(b))
}

/// A duration as people write it: plain seconds (`3600`), or numbers with
/// units, compounded (`90s`, `5m`, `12h`, `1d`, `500ms`, `1h30m`, `1h 30m`).
/// The units and compounding are humantime's (systemd's notation), not
/// hand-rolled; months and years are refused because their length varies.
pub fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok().map(Duration::from_secs);
    }
    // humantime's "M" (month) next to "m" (minute) is one typo from a
    // lease 43 200 times too long.
    let varying = ["M", "month", "months", "y", "year", "years"];
    if t.split(|c: char| !c.is_ascii_alphabetic())
        .any(|unit| varying.contains(&unit))
    {
        return None;
    }
    humantime::parse_duration(t).ok()
}

pub(super) fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_reasons() {
        assert_eq!(parse_ipv4("192.0.2.1"), Ok(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(parse_ipv4("123.321.52.210").unwrap_err().contains("255"));
        assert!(parse_ipv4("010.0.0.1").unwrap_err().contains("octal"));
        assert!(parse_ipv4("1.2.3").is_err());
        assert!(parse_ipv4("a.b.c.d").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:12:34:56:78:91").unwrap().to_string(),
            "00:12:34:56:78:91"
        );
        assert!(parse_mac("00-12-34-56-78-9A").is_ok());
        assert!(parse_mac("00:12:34:56:78").is_err());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d12h"), Some(Duration::from_secs(216_000)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5min"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1w"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration(" 0s "), Some(Duration::ZERO));
        assert_eq!(parse_duration("1M"), None);
        assert_eq!(parse_duration("1y"), None);
        assert_eq!(parse_duration("1 day"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2days"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("2 months"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999"), None);
    }

    /// One case per diagnostic the value parsers give, each through a
    /// section that uses the parser.
    #[test]
    fn diagnostics() {
        use super::super::cases::{check, check_all, interfaces_with, lan};
        let forward = |extra: &str| {
            lan(&format!(
                "[[firewall.forward]]\nproto = \"tcp\"\nto = \"192.168.1.10\"\n{extra}"
            ))
        };
        check_all(&[
            (
                lan("[dhcp]\nnext_server = \"1.2.3\" # <-\n"),
                "dhcp.next_server",
                "\"1.2.3\" is not an IPv4 address: expected four numbers separated by dots",
            ),
            (
                interfaces_with("\"192.168.1.254/24\"", "\"192.168.1.254\" # <-"),
                "interfaces.private.address",
                "\"192.168.1.254\" has no prefix length",
            ),
            (
                interfaces_with("\"203.0.113.210/24\"", "\"203.0.113.300/24\" # <-"),
                "interfaces.public.address",
                "\"203.0.113.300/24\" is not an IPv4 address: a part is above 255",
            ),
            (
                interfaces_with("\"192.168.1.254/24\"", "\"192.168.1.254/33\" # <-"),
                "interfaces.private.address",
                "\"192.168.1.254/33\": prefix length \"33\" is not 1-32",
            ),
            (
                lan(
                    "[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"loc\"\nsource = \"nowhere\" # <-\n",
                ),
                "firewall.rule[0].source",
                "\"nowhere\" is neither an address, a network nor a host name",
            ),
            (
                forward("port = 2222\nto_port = 0 # <-\n"),
                "firewall.forward[0].to_port",
                "port 0 is out of range",
            ),
            (
                forward("port = 70000 # <-\n"),
                "firewall.forward[0].port",
                "port 70000 is out of range",
            ),
            (
                forward("port = \"80-70\" # <-\n"),
                "firewall.forward[0].port",
                "\"80-70\" is not a port or port range",
            ),
            (
                lan("[dhcp]\nlease_time = \"0s\" # <-\n"),
                "dhcp.lease_time",
                "\"0s\" is not a positive duration",
            ),
            (
                lan("[dhcp]\nlease_time = -5 # <-\n"),
                "dhcp.lease_time",
                "-5 is not a positive duration",
            ),
            (
                lan("[[firewall.mark]]\nmark = 0 # <-\n"),
                "firewall.mark[0].mark",
                "0 is out of range",
            ),
            (
                lan("[balancer]\nbackend = \"lvs\" # <-\n"),
                "balancer.backend",
                "\"lvs\" is not one of: auto, ipvs, nftables",
            ),
            (
                lan("[dhcp]\nfilename = \"\" # <-\n"),
                "dhcp.filename",
                "\"\" must be 1-127 bytes with no NUL",
            ),
            (
                lan("[dhcp]\ndomain_name = \"-bad.example\" # <-\n"),
                "dhcp.domain_name",
                "\"-bad.example\" is not a valid domain name",
            ),
        ]);
        // An unknown name: the hint lists the hosts there are, if any.
        let unknown = "[[firewall.forward]]\nproto = \"tcp\"\nport = 2222\nto = \"node9\" # <-\n";
        let field = "firewall.forward[0].to";
        let message = "\"node9\" is not a known host name nor an IPv4 address";
        let d = check(&lan(unknown), field, message);
        assert!(
            d.hint
                .unwrap()
                .contains("declare the name in a [[host]] block")
        );
        let host = "[[host]]\nname = \"node1\"\nmac = \"00:12:34:56:78:91\"\naddress = \"192.168.1.101\"\n";
        let d = check(&lan(&format!("{host}{unknown}")), field, message);
        assert!(d.hint.unwrap().ends_with("one of the hosts: node1"));
    }
}
