//! Values shared by the legacy formats: addresses, networks, netmasks, ports.
//! Addresses are judged by the same strict parser as the config, so anything
//! the import accepts, `headnode check` accepts too.

use crate::config::model::{PortRange, Proto};
use crate::config::parse_ipv4;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// An IPv4 address, or why not (naming the offending part, e.g. "321 is above 255").
pub fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    parse_ipv4(text).map_err(|why| {
        let big = text
            .split('.')
            .find(|p| p.parse::<u64>().is_ok_and(|n| n > 255));
        match big {
            Some(p) => format!("\"{text}\" is not a valid IPv4 address ({p} is above 255)"),
            None => format!("\"{text}\" is not a valid IPv4 address ({why})"),
        }
    })
}

/// `a.b.c.d`, `a.b.c.d/len` or `a.b.c.d/mask`; `0.0.0.0/0` and `-` mean "any" (`None`).
pub fn net(text: &str) -> Result<Option<Ipv4Net>, String> {
    if matches!(text, "-" | "0.0.0.0/0" | "0/0" | "all" | "any") {
        return Ok(None);
    }
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr = ipv4(addr)?;
    let len = match len {
        None => 32,
        Some(l) if l.contains('.') => prefix_of(&ipv4(l)?)
            .ok_or_else(|| format!("\"{l}\" in \"{text}\" is not a contiguous netmask"))?,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("\"{text}\": prefix length \"{l}\" is not 0-32"))?,
    };
    let n = Ipv4Net::new(addr, len).map_err(|e| format!("\"{text}\": {e}"))?;
    if len == 0 { Ok(None) } else { Ok(Some(n)) }
}

/// The prefix length of a contiguous netmask (255.255.255.0 → 24).
pub fn prefix_of(mask: &Ipv4Addr) -> Option<u8> {
    let m = u32::from(*mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// A protocol column: `tcp`, `udp`, `icmp` or their numbers.
pub fn proto(text: &str) -> Option<Proto> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Some(Proto::Tcp),
        "udp" | "17" => Some(Proto::Udp),
        "icmp" | "1" => Some(Proto::Icmp),
        _ => None,
    }
}

/// Port names the legacy files commonly use instead of numbers.
const PORT_NAMES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("dns", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("https", 443),
    ("submission", 587),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("http-alt", 8080),
    ("webcache", 8080),
];

pub fn port(text: &str) -> Result<u16, String> {
    if let Ok(n) = text.parse::<u32>() {
        return u16::try_from(n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {text} is not 1-65535"));
    }
    PORT_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(text))
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("\"{text}\" is not a port number or a known service name"))
}

/// `80`, `8000:8010` (shorewall) or `8000-8010`.
pub fn port_range(text: &str) -> Result<PortRange, String> {
    match text.split_once([':', '-']) {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("port range \"{text}\" runs backwards"));
            }
            Ok(PortRange { first: a, last: b })
        }
        None => port(text).map(PortRange::single),
    }
}

/// A duration in seconds, written the way the config's own examples are.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("\"{}d\"", s / 86400),
        s if s % 3600 == 0 => format!("\"{}h\"", s / 3600),
        s if s % 60 == 0 => format!("\"{}m\"", s / 60),
        s => s.to_string(),
    }
}

/// A TOML basic string with escapes.
pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_the_bad_octet() {
        assert_eq!(
            ipv4("123.321.52.210").unwrap_err(),
            "\"123.321.52.210\" is not a valid IPv4 address (321 is above 255)"
        );
        assert!(ipv4("010.1.1.1").unwrap_err().contains("octal"));
        assert_eq!(
            net("192.168.1.0/255.255.255.0").unwrap(),
            Some("192.168.1.0/24".parse().unwrap())
        );
        assert_eq!(net("0.0.0.0/0").unwrap(), None);
        assert!(net("10.0.0.0/255.0.255.0").is_err());
    }

    #[test]
    fn ports_and_durations() {
        assert_eq!(port("http"), Ok(80));
        assert!(port("0").is_err());
        assert_eq!(
            port_range("8000:8010"),
            Ok(PortRange {
                first: 8000,
                last: 8010
            })
        );
        assert_eq!(duration(43200), "\"12h\"");
        assert_eq!(duration(600), "\"10m\"");
        assert_eq!(duration(90), "90");
    }
}
