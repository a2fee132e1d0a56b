//! Raw TOML → validated model. Collects every problem instead of stopping at
//! the first, so an admin fixes a file in one round trip.

use super::model::*;
use super::raw::*;
use super::{Diagnostic, column, line_col};
use ipnet::Ipv4Net;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub(super) fn parse(text: &str, path: &Path) -> Result<Config, Vec<Diagnostic>> {
    parse_with(text, path, super::host_blocks::MIN_HOSTS)
}

/// `parse`, taking the section-by-section path when the file has at least
/// `min_hosts` `[[host]]` tables (tests compare both paths on one file).
fn parse_with(text: &str, path: &Path, min_hosts: usize) -> Result<Config, Vec<Diagnostic>> {
    if let Some((raw, sections)) = super::host_blocks::split(text, min_hosts) {
        // Each host is parsed just before it is validated, so the raw hosts
        // never exist all at once. A section that does not parse sends the
        // file to the whole-file parse below, whose error is the one shown.
        if let Some(result) = validate(text, path, raw, sections.hosts()) {
            return result;
        }
    }
    let mut raw = match toml::from_str::<RawConfig>(text) {
        Ok(r) => r,
        Err(e) => {
            let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            let message = e.message().trim().to_string();
            let hint = if message.contains("unknown field") {
                Some(match closest_field(&message) {
                    Some(f) => {
                        format!("did you mean `{f}`? (see the config reference in README.md)")
                    }
                    None => "check the spelling against the config reference in README.md".into(),
                })
            } else if message.contains("did not match any variant") {
                Some("see README.md for the accepted forms of this value".to_string())
            } else {
                None
            };
            let offset = e.span().map_or(0, |s| s.start);
            return Err(vec![Diagnostic {
                line,
                col,
                field: enclosing_table(text, offset),
                message,
                hint,
            }]);
        }
    };
    let hosts = std::mem::take(&mut raw.hosts).into_iter().map(Some);
    validate(text, path, raw, hosts).expect("every parsed host is present")
}

/// Validate `raw` with its hosts from `hosts`; `None` when one of them is
/// missing (a host section that did not parse on its own).
fn validate(
    text: &str,
    path: &Path,
    raw: RawConfig,
    mut hosts: impl ExactSizeIterator<Item = Option<S<RawHost>>>,
) -> Option<Result<Config, Vec<Diagnostic>>> {
    let mut v = Validator::new(text);
    let cfg = v.config(raw, &mut hosts, path);
    // Hosts the validator did not reach (no [interfaces]) must parse too.
    if v.host_missing || hosts.any(|h| h.is_none()) {
        None
    } else if v.diags.is_empty() {
        Some(Ok(cfg.expect("a config without diagnostics is complete")))
    } else {
        v.diags.sort_by_key(|d| (d.line, d.col));
        Some(Err(v.diags))
    }
}

struct Validator<'a> {
    text: &'a str,
    /// The last offset asked for by `line` and its line number. Tables of
    /// one kind are validated in file order, so counting on from there reads
    /// the file about once, without an index of its newlines (8 bytes a line).
    line_at: Cell<(usize, usize)>,
    diags: Vec<Diagnostic>,
    /// A host in the stream was `None`: the result is void.
    host_missing: bool,
}

/// Names the rest of the file may use for an address: `[[host]]` names and `public`.
/// Borrows the names from the validated hosts: no second copy of 50,000 names.
struct Names<'h> {
    hosts: HashMap<&'h str, Ipv4Addr>,
    public: Option<Ipv4Addr>,
}

const PLACEHOLDER_PUBLIC: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

impl<'a> Validator<'a> {
    fn new(text: &'a str) -> Self {
        Validator {
            text,
            line_at: Cell::new((0, 1)),
            diags: Vec::new(),
            host_missing: false,
        }
    }

    fn err(&mut self, span: Range<usize>, field: &str, message: String, hint: Option<&str>) {
        let line = self.line(&span);
        let col = column(self.text, span.start);
        self.diags.push(Diagnostic {
            line,
            col,
            field: field.to_string(),
            message,
            hint: hint.map(str::to_string),
        });
    }

    /// The string as it stands in the file when it is written there plainly
    /// (a quoted string without escapes), else a copy: keys for the
    /// duplicate checks without a copy of every name.
    fn as_written(&self, s: &S<String>) -> Cow<'a, str> {
        let span = s.span();
        match self.text.get(span.start + 1..span.end.saturating_sub(1)) {
            Some(t) if t == s.get_ref() => Cow::Borrowed(t),
            _ => Cow::Owned(s.get_ref().clone()),
        }
    }

    fn line(&self, span: &Range<usize>) -> usize {
        let to = span.start.min(self.text.len());
        let (from, line) = self.line_at.get();
        let newlines = |r: Range<usize>| {
            self.text.as_bytes()[r]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        };
        // Counting from the last position, either way: cost is the distance.
        let line = if to >= from {
            line + newlines(from..to)
        } else {
            line - newlines(to..from)
        };
        self.line_at.set((to, line));
        line
    }

    fn ipv4(&mut self, s: &S<String>, field: &str) -> Option<Ipv4Addr> {
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
    fn ipv4_iface(&mut self, s: &S<String>, field: &str) -> Option<Ipv4Net> {
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
    fn net_or_name(&mut self, s: &S<String>, field: &str, names: &Names) -> Option<Ipv4Net> {
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
    fn addr_or_name(&mut self, s: &S<String>, field: &str, names: &Names) -> Option<Ipv4Addr> {
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

    fn port(&mut self, s: &S<i64>, field: &str) -> Option<u16> {
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

    fn port_range(&mut self, s: &S<RawPort>, field: &str) -> Option<PortRange> {
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

    fn duration(&mut self, s: &S<RawDuration>, field: &str) -> Option<Duration> {
        self.duration_from(s, field, false)
    }

    /// A duration where zero means "off" (persistence).
    fn duration_or_zero(&mut self, s: &S<RawDuration>, field: &str) -> Option<Duration> {
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
                    Some("write seconds (3600) or a number with a unit: \"90s\", \"5m\", \"12h\", \"1d\", \"500ms\""),
                );
                None
            }
        }
    }

    fn count(&mut self, s: &S<i64>, field: &str, min: i64, max: i64) -> Option<u32> {
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

    fn choice<T: Copy>(&mut self, s: &S<String>, field: &str, options: &[(&str, T)]) -> Option<T> {
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

    fn zone(&mut self, s: &S<String>, field: &str) -> Option<Zone> {
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

    fn proto(&mut self, s: &S<String>, field: &str) -> Option<Proto> {
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

    fn text(&mut self, s: &S<String>, field: &str, max: usize) -> Option<String> {
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

    fn domain(&mut self, s: &S<String>, field: &str) -> Option<String> {
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

    fn addrs(&mut self, list: &[S<String>], field: &str) -> Vec<Ipv4Addr> {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| self.ipv4(s, &format!("{field}[{i}]")))
            .collect()
    }

    fn config(
        &mut self,
        raw: RawConfig,
        raw_hosts: impl ExactSizeIterator<Item = Option<S<RawHost>>>,
        path: &Path,
    ) -> Option<Config> {
        let Some(ifaces) = raw.interfaces.as_ref() else {
            self.err(
                0..0,
                "interfaces",
                "the [interfaces] table is missing".into(),
                Some("add [interfaces.public] and [interfaces.private] with name and address; `headnode init` writes them for you"),
            );
            return None;
        };
        let (public, private) = self.interfaces(ifaces.get_ref());
        let public_ip = public.as_ref().and_then(|p| p.address.map(|a| a.addr()));
        let hosts = self.hosts(raw_hosts, private.as_ref())?;
        let names = Names {
            hosts: hosts.iter().map(|h| (&*h.name, h.address)).collect(),
            public: public_ip,
        };
        let dhcp = self.dhcp(&raw.dhcp, private.as_ref(), &hosts);
        let mut firewall = self.firewall(&raw.firewall, &names);
        let mut balancer = self.balancer(&raw.balancer, &names);
        let services = self.services(&raw.services, &names, &mut firewall, &mut balancer);
        self.check_marks(&raw, &firewall, &balancer);
        let sysctls = self.sysctls(&raw.sysctl);
        Some(Config {
            path: path.to_owned(),
            public: public?,
            private: private?,
            dhcp: dhcp?,
            hosts,
            firewall,
            balancer,
            sysctls,
            services,
        })
    }

    fn interfaces(&mut self, raw: &RawInterfaces) -> (Option<PublicIface>, Option<PrivateIface>) {
        let p = raw.public.get_ref();
        let q = raw.private.get_ref();
        let pub_name = self.ifname(&p.name, "interfaces.public.name");
        let priv_name = self.ifname(&q.name, "interfaces.private.name");
        if let (Some(a), Some(b)) = (&pub_name, &priv_name)
            && a == b
        {
            self.err(
                q.name.span(),
                "interfaces.private.name",
                format!("\"{b}\" is also the public interface"),
                Some("the private LAN must be a different interface from the public one"),
            );
        }
        let mut pub_ok = true;
        let address = match &p.address {
            None => None,
            Some(s) if s.get_ref() == "auto" => None,
            Some(s) => {
                let a = self.ipv4_iface(s, "interfaces.public.address");
                pub_ok &= a.is_some();
                a
            }
        };
        let gateway = p.gateway.as_ref().and_then(|g| {
            let a = self.ipv4(g, "interfaces.public.gateway");
            pub_ok &= a.is_some();
            a
        });
        let address6 = p.address6.as_ref().and_then(|s| {
            let t = s.get_ref();
            let a = Ipv6Addr::from_str(t.split('/').next().unwrap_or(t)).ok();
            if a.is_none() {
                pub_ok = false;
                self.err(
                    s.span(),
                    "interfaces.public.address6",
                    format!("\"{t}\" is not an IPv6 address"),
                    Some("e.g. 2001:db8::10"),
                );
            }
            a
        });
        let priv_addr = self.ipv4_iface(&q.address, "interfaces.private.address");
        if let Some(pa) = priv_addr {
            if pa.prefix_len() > 30 {
                self.err(
                    q.address.span(),
                    "interfaces.private.address",
                    format!("a /{} leaves no room for cluster nodes", pa.prefix_len()),
                    Some("use a LAN prefix of /30 or shorter, e.g. /24"),
                );
            } else if pa.addr() == pa.network() || pa.addr() == pa.broadcast() {
                self.err(
                    q.address.span(),
                    "interfaces.private.address",
                    format!(
                        "{} is the network or broadcast address of {}",
                        pa.addr(),
                        pa.trunc()
                    ),
                    Some("give the head node a host address, e.g. the last usable one"),
                );
            }
            if let Some(pu) = address
                && (pa.trunc().contains(&pu.addr()) || pu.trunc().contains(&pa.addr()))
            {
                self.err(
                    q.address.span(),
                    "interfaces.private.address",
                    format!("{} overlaps the public network {}", pa.trunc(), pu.trunc()),
                    Some("the private LAN needs its own subnet"),
                );
            }
        }
        let public = match (pub_name, pub_ok) {
            (Some(name), true) => Some(PublicIface {
                name,
                address,
                gateway,
                address6,
            }),
            _ => None,
        };
        let private = match (priv_name, priv_addr) {
            (Some(name), Some(address)) => Some(PrivateIface { name, address }),
            _ => None,
        };
        (public, private)
    }

    fn ifname(&mut self, s: &S<String>, field: &str) -> Option<String> {
        let t = s.get_ref();
        let ok = !t.is_empty()
            && t.len() < 16
            && t != "."
            && t != ".."
            // nft reads `*` as a wildcard: "eth*" would match every interface.
            && !t.chars().any(|c| c.is_whitespace() || c == '/' || c == ':' || c == '*');
        if ok {
            Some(t.clone())
        } else {
            self.err(
                s.span(),
                field,
                format!("\"{t}\" is not a valid interface name"),
                Some("Linux interface names are 1-15 characters without '/', ':', '*' or spaces"),
            );
            None
        }
    }

    /// `None` (and `host_missing` set) when the stream yields a `None`.
    fn hosts(
        &mut self,
        raw: impl ExactSizeIterator<Item = Option<S<RawHost>>>,
        private: Option<&PrivateIface>,
    ) -> Option<Vec<Host>> {
        let mut out = Vec::with_capacity(raw.len());
        // First line of each name, MAC and address; u32 keeps the two maps
        // keyed by value at 8 and 12 bytes a slot for 50,000 hosts.
        let mut by_name: HashMap<Cow<'a, str>, u32> = HashMap::with_capacity(raw.len());
        let mut by_mac: HashMap<Mac, u32> = HashMap::with_capacity(raw.len());
        let mut by_ip: HashMap<Ipv4Addr, u32> = HashMap::with_capacity(raw.len());
        for (i, rh) in raw.enumerate() {
            let Some(rh) = rh else {
                self.host_missing = true;
                return None;
            };
            let line = u32::try_from(self.line(&rh.span())).unwrap_or(u32::MAX);
            let h = rh.get_ref();
            let f = |k: &str| format!("host[{i}].{k}");
            let name = h.name.get_ref();
            let name_ok = valid_label(name) && parse_ipv4(name).is_err() && name != "public";
            if !name_ok {
                self.err(
                    h.name.span(),
                    &f("name"),
                    format!("\"{name}\" is not a valid host name"),
                    Some("letters, digits and '-', at most 63, not an address and not \"public\""),
                );
            } else if let Some(first) = by_name.insert(self.as_written(&h.name), line) {
                self.err(
                    h.name.span(),
                    &f("name"),
                    format!("host name \"{name}\" is already used on line {first}"),
                    Some("each [[host]] needs its own name"),
                );
            }
            let mac = match parse_mac(h.mac.get_ref()) {
                Ok(m) => {
                    if let Some(first) = by_mac.insert(m, line) {
                        self.err(
                            h.mac.span(),
                            &f("mac"),
                            format!("MAC {m} is already reserved on line {first}"),
                            Some("a MAC can have only one reservation"),
                        );
                    }
                    Some(m)
                }
                Err(why) => {
                    self.err(
                        h.mac.span(),
                        &f("mac"),
                        format!("\"{}\" is not a MAC address: {why}", h.mac.get_ref()),
                        Some("six hex pairs separated by ':' or '-', e.g. 00:12:34:56:78:91"),
                    );
                    None
                }
            };
            let address = self.ipv4(&h.address, &f("address"));
            if let Some(a) = address {
                if let Some(first) = by_ip.insert(a, line) {
                    self.err(
                        h.address.span(),
                        &f("address"),
                        format!("{a} is already reserved on line {first}"),
                        Some("each reservation needs its own address"),
                    );
                }
                if let Some(p) = private {
                    let net = p.address.trunc();
                    let why = if !net.contains(&a) {
                        Some(format!("{a} is outside the private subnet {net}"))
                    } else if a == net.network() {
                        Some(format!("{a} is the network address of {net}"))
                    } else if a == net.broadcast() {
                        Some(format!("{a} is the broadcast address of {net}"))
                    } else if a == p.address.addr() {
                        Some(format!("{a} is the head node's own address"))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.err(
                            h.address.span(),
                            &f("address"),
                            why,
                            Some(&format!(
                                "pick a free host address in {net} other than {}",
                                p.address.addr()
                            )),
                        );
                    }
                }
            }
            let lease_time = h
                .lease_time
                .as_ref()
                .and_then(|d| self.duration(d, &f("lease_time")));
            let next_server = h
                .next_server
                .as_ref()
                .and_then(|s| self.ipv4(s, &f("next_server")));
            let filename = h
                .filename
                .as_ref()
                .and_then(|s| self.text(s, &f("filename"), 127));
            let dns_servers = h
                .dns_servers
                .as_ref()
                .map(|l| self.addrs(l, &f("dns_servers")));
            let domain_name = h
                .domain_name
                .as_ref()
                .and_then(|s| self.domain(s, &f("domain_name")));
            if let (true, Some(mac), Some(address)) = (name_ok, mac, address) {
                let dhcp = HostDhcp {
                    lease_time,
                    next_server,
                    filename,
                    dns_servers,
                    domain_name,
                };
                out.push(Host {
                    name: name.as_str().into(),
                    mac,
                    address,
                    line,
                    dhcp: (dhcp != HostDhcp::default()).then(|| Box::new(dhcp)),
                });
            }
        }
        Some(out)
    }

    fn dhcp(
        &mut self,
        raw: &RawDhcp,
        private: Option<&PrivateIface>,
        hosts: &[Host],
    ) -> Option<Dhcp> {
        let lease_time = raw
            .lease_time
            .as_ref()
            .and_then(|d| self.duration(d, "dhcp.lease_time"))
            .unwrap_or(Duration::from_secs(12 * 3600));
        let max_lease_time = raw
            .max_lease_time
            .as_ref()
            .and_then(|d| self.duration(d, "dhcp.max_lease_time"))
            .unwrap_or(lease_time.max(Duration::from_secs(24 * 3600)));
        if let Some(m) = &raw.max_lease_time
            && max_lease_time < lease_time
        {
            self.err(
                m.span(),
                "dhcp.max_lease_time",
                "is shorter than dhcp.lease_time".into(),
                Some("max_lease_time caps what a client may ask for; make it at least lease_time"),
            );
        }
        let routers = match &raw.routers {
            Some(l) => self.addrs(l, "dhcp.routers"),
            None => private.map(|p| vec![p.address.addr()]).unwrap_or_default(),
        };
        let dns_servers = self.addrs(&raw.dns_servers, "dhcp.dns_servers");
        let ntp_servers = self.addrs(&raw.ntp_servers, "dhcp.ntp_servers");
        let domain_name = raw
            .domain_name
            .as_ref()
            .and_then(|s| self.domain(s, "dhcp.domain_name"));
        let domain_search = raw
            .domain_search
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.domain(s, &format!("dhcp.domain_search[{i}]")))
            .collect();
        let next_server = raw
            .next_server
            .as_ref()
            .and_then(|s| self.ipv4(s, "dhcp.next_server"));
        let filename = raw
            .filename
            .as_ref()
            .and_then(|s| self.text(s, "dhcp.filename", 127));
        let lease_file = raw
            .lease_file
            .as_ref()
            .and_then(|s| self.text(s, "dhcp.lease_file", 4096))
            .unwrap_or_else(|| {
                crate::paths::state_dir()
                    .join("leases")
                    .display()
                    .to_string()
            });
        let pool = raw.pool.as_ref().and_then(|p| self.pool(p, private, hosts));
        Some(Dhcp {
            enabled: raw.enabled.unwrap_or(true),
            lease_time,
            max_lease_time,
            routers,
            dns_servers,
            domain_name,
            domain_search,
            ntp_servers,
            next_server,
            filename,
            lease_file: lease_file.into(),
            allow_default_route_interface: raw.allow_default_route_interface.unwrap_or(false),
            pool,
        })
    }

    fn pool(
        &mut self,
        raw: &S<RawPool>,
        private: Option<&PrivateIface>,
        hosts: &[Host],
    ) -> Option<Pool> {
        let p = raw.get_ref();
        let start = self.ipv4(&p.start, "dhcp.pool.start")?;
        let end = self.ipv4(&p.end, "dhcp.pool.end")?;
        if start > end {
            self.err(
                p.end.span(),
                "dhcp.pool.end",
                format!("{end} comes before the pool start {start}"),
                Some("write the lower address as start"),
            );
            return None;
        }
        let pool = Pool { start, end };
        if let Some(pr) = private {
            let net = pr.address.trunc();
            let inside =
                |a: Ipv4Addr| net.contains(&a) && a != net.network() && a != net.broadcast();
            if !inside(start) || !inside(end) {
                self.err(
                    raw.span(),
                    "dhcp.pool",
                    format!("{start}-{end} is not inside the usable addresses of {net}"),
                    Some(&format!(
                        "use addresses between {} and {}",
                        net.hosts().next().unwrap_or(net.network()),
                        net.hosts().last().unwrap_or(net.broadcast())
                    )),
                );
            } else if pool.contains(pr.address.addr()) {
                self.err(
                    raw.span(),
                    "dhcp.pool",
                    format!(
                        "{start}-{end} contains the head node's own address {}",
                        pr.address.addr()
                    ),
                    Some("end the pool before the head node's address"),
                );
            }
        }
        for h in hosts.iter().filter(|h| pool.contains(h.address)) {
            self.err(
                raw.span(),
                "dhcp.pool",
                format!(
                    "{start}-{end} overlaps the reservation of host \"{}\" ({}, line {})",
                    h.name, h.address, h.line
                ),
                Some("keep fixed addresses outside the dynamic pool"),
            );
        }
        Some(pool)
    }

    fn firewall(&mut self, raw: &RawFirewall, names: &Names) -> Firewall {
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

    fn action(&mut self, s: &S<String>, field: &str) -> Option<Action> {
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

    fn balancer(&mut self, raw: &RawBalancer, names: &Names) -> Balancer {
        let backend = raw
            .backend
            .as_ref()
            .and_then(|s| {
                self.choice(
                    s,
                    "balancer.backend",
                    &[
                        ("auto", Backend::Auto),
                        ("ipvs", Backend::Ipvs),
                        ("nftables", Backend::Nftables),
                    ],
                )
            })
            .unwrap_or(Backend::Auto);
        let mut services = Vec::new();
        for (i, rv) in raw.virtuals.iter().enumerate() {
            let line = self.line(&rv.span());
            let v = rv.get_ref();
            let f = |k: &str| format!("balancer.virtual[{i}].{k}");
            let key = match (&v.fwmark, &v.proto, &v.address, &v.port) {
                (Some(m), None, None, None) => self
                    .count(m, &f("fwmark"), 1, u32::MAX as i64)
                    .map(|mark| VirtualKey::Fwmark { mark }),
                (None, Some(p), Some(a), Some(port)) => {
                    let proto = self.proto(p, &f("proto"));
                    let address = self.addr_or_name(a, &f("address"), names);
                    let port = self.port(port, &f("port"));
                    match (proto, address, port) {
                        (Some(Proto::Icmp), _, _) => {
                            self.err(
                                p.span(),
                                &f("proto"),
                                "IPVS balances tcp or udp".into(),
                                None,
                            );
                            None
                        }
                        (Some(proto), Some(address), Some(port)) => Some(VirtualKey::Addr {
                            proto,
                            address,
                            port,
                        }),
                        _ => None,
                    }
                }
                _ => {
                    self.err(
                        rv.span(),
                        &format!("balancer.virtual[{i}]"),
                        "a virtual service needs either fwmark, or proto + address + port".into(),
                        Some("e.g. fwmark = 1, or proto = \"tcp\", address = \"public\", port = 8000"),
                    );
                    None
                }
            };
            let default_port = match &key {
                Some(VirtualKey::Addr { port, .. }) => Some(*port),
                _ => None,
            };
            let name = v
                .name
                .as_ref()
                .and_then(|n| self.text(n, &f("name"), 64))
                .unwrap_or_else(|| key.as_ref().map(|k| k.to_string()).unwrap_or_default());
            let common = self.virtual_common(
                &f(""),
                VirtualRaw {
                    scheduler: &v.scheduler,
                    method: &v.method,
                    persistence: &v.persistence,
                    persistence_netmask: &v.persistence_netmask,
                    real: &v.real,
                    health: &v.health,
                    sorry_server: &v.sorry_server,
                },
                default_port,
                names,
                rv.span(),
            );
            if let (Some(key), Some(c)) = (key, common) {
                services.push(c.into_service(
                    name,
                    key,
                    Origin {
                        line,
                        service: None,
                    },
                ));
            }
        }
        let mut seen: BTreeMap<VirtualKey, usize> = BTreeMap::new();
        for (i, s) in services.iter().enumerate() {
            if let Some(first) = seen.insert(s.key.clone(), s.origin.line) {
                let span = raw.virtuals[i].span();
                self.err(
                    span,
                    &format!("balancer.virtual[{i}]"),
                    format!(
                        "virtual service {} is already defined on line {first}",
                        s.key
                    ),
                    None,
                );
            }
        }
        Balancer {
            backend,
            exclusive: raw.exclusive.unwrap_or(false),
            services,
        }
    }

    fn virtual_common(
        &mut self,
        prefix: &str,
        v: VirtualRaw<'_>,
        default_port: Option<u16>,
        names: &Names,
        span: Range<usize>,
    ) -> Option<VirtualCommon> {
        let f = |k: &str| format!("{prefix}{k}");
        let scheduler = match v.scheduler {
            Some(s) if SCHEDULERS.contains(&s.get_ref().as_str()) => s.get_ref().clone(),
            Some(s) => {
                self.err(
                    s.span(),
                    &f("scheduler"),
                    format!("\"{}\" is not an IPVS scheduler", s.get_ref()),
                    Some(&format!("use one of: {}", SCHEDULERS.join(", "))),
                );
                String::new()
            }
            None => "rr".into(),
        };
        let method = v
            .method
            .as_ref()
            .and_then(|m| {
                self.choice(
                    m,
                    &f("method"),
                    &[
                        ("masq", Method::Masq),
                        ("nat", Method::Masq),
                        ("route", Method::Route),
                        ("dr", Method::Route),
                        ("tunnel", Method::Tunnel),
                        ("ipip", Method::Tunnel),
                    ],
                )
            })
            .unwrap_or(Method::Masq);
        let persistence = v
            .persistence
            .as_ref()
            .and_then(|d| self.duration_or_zero(d, &f("persistence")))
            .unwrap_or(Duration::ZERO);
        let persistence_netmask = v
            .persistence_netmask
            .as_ref()
            .and_then(|s| self.ipv4(s, &f("persistence_netmask")))
            .unwrap_or(Ipv4Addr::BROADCAST);
        if v.real.is_empty() {
            self.err(
                span,
                &f("real"),
                "no real servers".into(),
                Some("add real = [\"node1:8000\", \"node2:8000\"]"),
            );
        }
        let mut reals = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, r) in v.real.iter().enumerate() {
            let field = f(&format!("real[{i}]"));
            if let Some(real) = self.real(r, &field, default_port, names) {
                if !seen.insert((real.address, real.port)) {
                    self.err(
                        r.span(),
                        &field,
                        format!("{}:{} is listed twice", real.address, real.port),
                        None,
                    );
                }
                reals.push(real);
            }
        }
        let health = v.health.as_ref().and_then(|h| self.health(h, &f("health")));
        let sorry_server = v.sorry_server.as_ref().and_then(|s| {
            let (host, port) = match s.get_ref().rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse::<u16>().ok()),
                None => (s.get_ref().clone(), default_port),
            };
            let Some(port) = port.filter(|p| *p > 0) else {
                self.err(
                    s.span(),
                    &f("sorry_server"),
                    format!("\"{}\" needs a port", s.get_ref()),
                    Some("write host:port, e.g. \"192.168.1.50:8000\""),
                );
                return None;
            };
            let spanned = S::new(s.span(), host);
            self.addr_or_name(&spanned, &f("sorry_server"), names)
                .map(|a| (a, port))
        });
        if scheduler.is_empty() || reals.len() != v.real.len() {
            return None;
        }
        Some(VirtualCommon {
            scheduler,
            method,
            persistence,
            persistence_netmask,
            reals,
            health,
            sorry_server,
        })
    }

    fn real(
        &mut self,
        r: &S<RawReal>,
        field: &str,
        default_port: Option<u16>,
        names: &Names,
    ) -> Option<RealServer> {
        let (host, port, weight, upper, lower) = match r.get_ref() {
            RawReal::Short(s) => {
                let (h, p) = match s.rsplit_once(':') {
                    Some((h, p)) => match p.parse::<u16>() {
                        Ok(p) if p > 0 => (h.to_string(), Some(p)),
                        _ => {
                            self.err(
                                r.span(),
                                field,
                                format!("\"{s}\": port \"{p}\" is not 1-65535"),
                                Some("write host:port, e.g. \"node1:8000\""),
                            );
                            return None;
                        }
                    },
                    None => (s.clone(), None),
                };
                (h, p, 1, 0, 0)
            }
            RawReal::Full(full) => {
                let port = match full.port {
                    Some(p) => match u16::try_from(p).ok().filter(|p| *p > 0) {
                        Some(p) => Some(p),
                        None => {
                            self.err(
                                r.span(),
                                field,
                                format!("port {p} is out of range"),
                                Some("ports are 1-65535"),
                            );
                            return None;
                        }
                    },
                    None => None,
                };
                let num = |v: &mut Self, n: Option<i64>, what: &str, dflt: u32| match n {
                    None => Some(dflt),
                    Some(n) if (0..=65535).contains(&n) => Some(n as u32),
                    Some(n) => {
                        v.err(
                            r.span(),
                            field,
                            format!("{what} {n} is out of range"),
                            Some(&format!("{what} is 0-65535")),
                        );
                        None
                    }
                };
                let weight = num(self, full.weight, "weight", 1)?;
                let upper = num(self, full.upper_threshold, "upper_threshold", 0)?;
                let lower = num(self, full.lower_threshold, "lower_threshold", 0)?;
                (full.host.clone(), port, weight, upper, lower)
            }
        };
        let spanned = S::new(r.span(), host.clone());
        let address = self.addr_or_name(&spanned, field, names)?;
        let Some(port) = port.or(default_port) else {
            self.err(
                r.span(),
                field,
                format!("real server \"{host}\" needs a port"),
                Some("write host:port, e.g. \"node1:8000\""),
            );
            return None;
        };
        Some(RealServer {
            name: host,
            address,
            port,
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
        })
    }

    fn health(&mut self, s: &S<RawHealth>, field: &str) -> Option<HealthCheck> {
        let h = s.get_ref();
        let f = |k: &str| format!("{field}.{k}");
        let kind = match h.check.get_ref().as_str() {
            "tcp" => Some(CheckKind::Tcp),
            "http" => {
                let path = h
                    .path
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_else(|| "/".into());
                if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace()) {
                    let span = h.path.as_ref().map_or(s.span(), |p| p.span());
                    self.err(
                        span,
                        &f("path"),
                        format!("\"{path}\" is not an HTTP path"),
                        Some("start with '/', no spaces, e.g. \"/health\""),
                    );
                }
                let expect_status = h
                    .expect_status
                    .as_ref()
                    .and_then(|c| self.count(c, &f("expect_status"), 100, 599))
                    .unwrap_or(200) as u16;
                Some(CheckKind::Http {
                    path,
                    expect_status,
                })
            }
            other => {
                self.err(
                    h.check.span(),
                    &f("check"),
                    format!("\"{other}\" is not a health check"),
                    Some("use \"tcp\" (connect) or \"http\" (GET, status code)"),
                );
                None
            }
        };
        let interval = h
            .interval
            .as_ref()
            .and_then(|d| self.duration(d, &f("interval")))
            .unwrap_or(Duration::from_secs(2));
        let timeout = h
            .timeout
            .as_ref()
            .and_then(|d| self.duration(d, &f("timeout")))
            .unwrap_or(Duration::from_secs(1).min(interval));
        if timeout > interval {
            let span = h.timeout.as_ref().map_or(s.span(), |t| t.span());
            self.err(
                span,
                &f("timeout"),
                format!("timeout {timeout:?} is longer than the interval {interval:?}"),
                Some("a check must finish before the next one starts"),
            );
        }
        let rise = h
            .rise
            .as_ref()
            .and_then(|c| self.count(c, &f("rise"), 1, 100))
            .unwrap_or(2);
        let fall = h
            .fall
            .as_ref()
            .and_then(|c| self.count(c, &f("fall"), 1, 100))
            .unwrap_or(3);
        Some(HealthCheck {
            kind: kind?,
            interval,
            timeout,
            rise,
            fall,
        })
    }

    fn services(
        &mut self,
        raw: &[S<RawService>],
        names: &Names,
        firewall: &mut Firewall,
        balancer: &mut Balancer,
    ) -> Vec<ServiceSummary> {
        let mut used_marks: BTreeSet<u32> = firewall.marks.iter().map(|m| m.mark).collect();
        for s in &balancer.services {
            if let VirtualKey::Fwmark { mark } = s.key {
                used_marks.insert(mark);
            }
        }
        // Explicit marks first, so automatic ones never take a number a later block asks for.
        for rs in raw {
            if let Some(m) = &rs.get_ref().mark {
                used_marks.insert(*m.get_ref() as u32);
            }
        }
        let mut summaries = Vec::new();
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        for (i, rs) in raw.iter().enumerate() {
            let line = self.line(&rs.span());
            let s = rs.get_ref();
            let f = |k: &str| format!("service[{i}].{k}");
            let Some(name) = self.text(&s.name, &f("name"), 64) else {
                continue;
            };
            if let Some(first) = seen_names.insert(name.clone(), line) {
                self.err(
                    s.name.span(),
                    &f("name"),
                    format!("service \"{name}\" is already defined on line {first}"),
                    None,
                );
            }
            let origin = Origin {
                line,
                service: Some(name.clone()),
            };
            let proto = match &s.proto {
                Some(p) => self.proto(p, &f("proto")),
                None => Some(Proto::Tcp),
            };
            if proto == Some(Proto::Icmp) {
                let span = s.proto.as_ref().map_or(rs.span(), |p| p.span());
                self.err(span, &f("proto"), "a service is tcp or udp".into(), None);
            }
            let port = self.port(&s.port, &f("port"));
            let address = match &s.address {
                None => Some(names.public.unwrap_or(PLACEHOLDER_PUBLIC)),
                Some(a) => self.addr_or_name(a, &f("address"), names),
            };
            let is_public = s.address.as_ref().is_none_or(|a| a.get_ref() == "public");
            let from = match &s.from {
                Some(z) => self.zone(z, &f("from")),
                None => Some(Zone::Net),
            };
            let mark = match &s.mark {
                Some(m) => self.count(m, &f("mark"), 1, u32::MAX as i64),
                None => (1..).find(|m| !used_marks.contains(m)),
            };
            if let Some(m) = mark {
                used_marks.insert(m);
            }
            let common = self.virtual_common(
                &f(""),
                VirtualRaw {
                    scheduler: &s.scheduler,
                    method: &s.method,
                    persistence: &s.persistence,
                    persistence_netmask: &None,
                    real: &s.real,
                    health: &s.health,
                    sorry_server: &s.sorry_server,
                },
                port,
                names,
                rs.span(),
            );
            let (Some(proto), Some(port), Some(address), Some(from), Some(mark), Some(common)) =
                (proto, port, address, from, mark, common)
            else {
                continue;
            };
            let rule = Rule {
                action: Action::Accept,
                from,
                to: Zone::Fw,
                proto: Some(proto),
                ports: vec![PortRange::single(port)],
                source: None,
                dest: None,
                comment: Some(format!("service {name}")),
                origin: origin.clone(),
            };
            let mk = Mark {
                mark,
                dest: Some(Ipv4Net::from(address)),
                dest_is_public: is_public,
                source: None,
                proto: Some(proto),
                ports: vec![PortRange::single(port)],
                origin: origin.clone(),
            };
            let vs = common.into_service(name.clone(), VirtualKey::Fwmark { mark }, origin);
            let shown_addr = if is_public {
                "the public address".to_string()
            } else {
                address.to_string()
            };
            let reals: Vec<String> = vs
                .reals
                .iter()
                .map(|r| format!("{}:{} weight {}", r.name, r.port, r.weight))
                .collect();
            let expansion = vec![
                format!("firewall rule: accept {from} -> fw {proto} dport {port}"),
                format!("firewall mark: {proto} to {shown_addr} dport {port} -> mark {mark}"),
                format!(
                    "virtual service: FWM {mark} {} {} -> {}",
                    vs.scheduler,
                    vs.method,
                    reals.join(", ")
                ),
            ];
            firewall.rules.push(rule);
            firewall.marks.push(mk);
            balancer.services.push(vs);
            summaries.push(ServiceSummary {
                name,
                line,
                expansion,
            });
        }
        summaries
    }

    /// A mark nobody balances does nothing, and a fwmark service nothing marks
    /// never sees a packet: both are mistakes worth stopping for.
    fn check_marks(&mut self, raw: &RawConfig, firewall: &Firewall, balancer: &Balancer) {
        let balanced: BTreeSet<u32> = balancer
            .services
            .iter()
            .filter_map(|s| match s.key {
                VirtualKey::Fwmark { mark } => Some(mark),
                _ => None,
            })
            .collect();
        let marked: BTreeSet<u32> = firewall.marks.iter().map(|m| m.mark).collect();
        for (i, m) in raw.firewall.marks.iter().enumerate() {
            let n = *m.get_ref().mark.get_ref();
            if n > 0 && !balanced.contains(&(n as u32)) {
                self.err(
                    m.get_ref().mark.span(),
                    &format!("firewall.mark[{i}].mark"),
                    format!("mark {n} is set here but no balancer service uses fwmark {n}"),
                    Some(&format!(
                        "add [[balancer.virtual]] with fwmark = {n}, or remove this mark"
                    )),
                );
            }
        }
        for (i, v) in raw.balancer.virtuals.iter().enumerate() {
            if let Some(m) = &v.get_ref().fwmark {
                let n = *m.get_ref();
                if n > 0 && !marked.contains(&(n as u32)) {
                    self.err(
                        m.span(),
                        &format!("balancer.virtual[{i}].fwmark"),
                        format!("no firewall mark sets mark {n}, so this service gets no packets"),
                        Some(&format!(
                            "add [[firewall.mark]] with mark = {n}, proto, dest and ports"
                        )),
                    );
                }
            }
        }
        for (i, s) in raw.services.iter().enumerate() {
            if let Some(m) = &s.get_ref().mark {
                let n = *m.get_ref() as u32;
                let elsewhere = raw
                    .firewall
                    .marks
                    .iter()
                    .any(|x| *x.get_ref().mark.get_ref() as u32 == n)
                    || raw.balancer.virtuals.iter().any(|v| {
                        v.get_ref()
                            .fwmark
                            .as_ref()
                            .is_some_and(|f| *f.get_ref() as u32 == n)
                    })
                    || raw.services.iter().enumerate().any(|(j, o)| {
                        j < i
                            && o.get_ref()
                                .mark
                                .as_ref()
                                .is_some_and(|x| *x.get_ref() as u32 == n)
                    });
                if elsewhere {
                    self.err(
                        m.span(),
                        &format!("service[{i}].mark"),
                        format!("mark {n} is already used elsewhere in this file"),
                        Some("leave mark out and headnode picks a free one"),
                    );
                }
            }
        }
    }

    fn sysctls(&mut self, raw: &BTreeMap<String, S<RawSysctlValue>>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        for (k, v) in raw {
            let key_ok = k.split('.').count() >= 2
                && k.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            if !key_ok {
                self.err(
                    v.span(),
                    &format!("sysctl.\"{k}\""),
                    format!("\"{k}\" is not a sysctl name"),
                    Some("write the dotted name as sysctl shows it, e.g. \"net.ipv4.conf.all.rp_filter\""),
                );
                continue;
            }
            let value = match v.get_ref() {
                RawSysctlValue::Int(n) => n.to_string(),
                RawSysctlValue::Bool(b) => (*b as u8).to_string(),
                RawSysctlValue::Text(t) => t.clone(),
            };
            if k == "net.ipv4.ip_forward" && value != "1" {
                self.err(
                    v.span(),
                    &format!("sysctl.\"{k}\""),
                    "a head node must forward between its interfaces".into(),
                    Some("remove this line; headnode sets net.ipv4.ip_forward = 1 itself"),
                );
                continue;
            }
            out.insert(k.clone(), value);
        }
        out
    }
}

struct VirtualRaw<'a> {
    scheduler: &'a Option<S<String>>,
    method: &'a Option<S<String>>,
    persistence: &'a Option<S<RawDuration>>,
    persistence_netmask: &'a Option<S<String>>,
    real: &'a [S<RawReal>],
    health: &'a Option<S<RawHealth>>,
    sorry_server: &'a Option<S<String>>,
}

struct VirtualCommon {
    scheduler: String,
    method: Method,
    persistence: Duration,
    persistence_netmask: Ipv4Addr,
    reals: Vec<RealServer>,
    health: Option<HealthCheck>,
    sorry_server: Option<(Ipv4Addr, u16)>,
}

impl VirtualCommon {
    fn into_service(self, name: String, key: VirtualKey, origin: Origin) -> VirtualService {
        VirtualService {
            name,
            key,
            scheduler: self.scheduler,
            method: self.method,
            persistence: self.persistence,
            persistence_netmask: self.persistence_netmask,
            reals: self.reals,
            health: self.health,
            sorry_server: self.sorry_server,
            origin,
        }
    }
}

/// From serde's "unknown field `x`, expected one of `a`, `b`", the expected
/// name closest to the typo (by edit distance), if any is close.
fn closest_field(message: &str) -> Option<String> {
    let mut quoted = message.split('`').skip(1).step_by(2);
    let typo = quoted.next()?;
    quoted
        .map(|c| (edit_distance(typo, c), c))
        .filter(|(d, _)| *d <= 2.max(typo.len() / 3))
        .min()
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The `[table]` or `[[array]]` header above a byte offset, to name where a
/// syntax or type error sits when the TOML parser cannot say which field.
fn enclosing_table(text: &str, offset: usize) -> String {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map_or_else(
            || "top level".to_string(),
            |l| l.split('#').next().unwrap_or(l).trim().to_string(),
        )
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

pub fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86400)?),
        _ => return None,
    };
    Some(d)
}

fn valid_label(l: &str) -> bool {
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

    /// Whether the section-by-section path takes the whole text.
    fn sections_take(text: &str, min_hosts: usize) -> bool {
        super::super::host_blocks::split(text, min_hosts)
            .is_some_and(|(_, s)| s.hosts().all(|h| h.is_some()))
    }

    /// Both load paths on one text: the section-by-section one must be
    /// taken, and give the same config or the same diagnostics.
    fn both_paths(
        text: &str,
    ) -> (
        Result<Config, Vec<Diagnostic>>,
        Result<Config, Vec<Diagnostic>>,
    ) {
        assert!(
            sections_take(text, 0),
            "the host section path refused the text"
        );
        let p = Path::new("same.toml");
        (parse_with(text, p, 0), parse_with(text, p, usize::MAX))
    }

    fn same_config(text: &str) {
        let (fast, whole) = both_paths(text);
        // Debug, not JSON: the policy map has tuple keys, which JSON cannot.
        let json = |r: Result<Config, Vec<Diagnostic>>| {
            format!("{:?}", r.unwrap_or_else(|d| panic!("{d:?}")))
        };
        assert_eq!(json(fast), json(whole));
    }

    fn repo_file(rel: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect(rel)
    }

    /// `n` hosts in a /16 with per-host options on some, comments and blank
    /// lines between blocks, and tables after them that use host names.
    fn many_hosts(n: usize, edit: impl Fn(usize, String) -> String) -> String {
        let mut t = String::from(
            "[interfaces.public]\nname = \"eth1\"\naddress = \"203.0.113.210/24\"\n\n\
             [interfaces.private] # the LAN\nname = \"eth0\"\naddress = \"10.0.255.254/16\"\n\n",
        );
        for i in 0..n {
            let mut h = format!(
                "[[host]]\nname = \"n{i}\"\nmac = \"02:00:00:00:{:02x}:{:02x}\"\naddress = \"10.0.{}.{}\"\n",
                i >> 8,
                i & 255,
                i / 250,
                i % 250 + 1
            );
            if i % 7 == 0 {
                h.push_str("lease_time = \"1d\" # long\nnext_server = \"10.0.255.254\"\nfilename = \"pxe.efi\"\n");
            }
            if i % 11 == 0 {
                h.push_str("dns_servers = [\"10.0.255.254\",\n  \"192.0.2.53\"]\ndomain_name = \"c.example\"\n");
            }
            if i % 7 == 1 {
                h.push_str("lease_time = 600\n");
            }
            if i % 13 == 0 {
                h.push_str("\n# rack ✓ next\n\n");
            }
            t.push_str(&edit(i, h));
        }
        t.push_str(
            "[dhcp]\nlease_time = \"12h\"\n\n[[firewall.forward]]\nproto = \"tcp\"\nport = 2222\nto = \"n1999\"\nto_port = 22\n",
        );
        t
    }

    #[test]
    fn host_sections_origin_config() {
        same_config(&repo_file("fixtures/origin/headnode.toml"));
    }

    #[test]
    fn host_sections_readme_reference() {
        let readme = repo_file("README.md");
        let block = readme
            .split("<!-- reference:start -->")
            .nth(1)
            .and_then(|b| b.split("```toml").nth(1))
            .and_then(|b| b.split("```").next())
            .expect("reference block");
        same_config(block);
    }

    #[test]
    fn host_sections_2000_hosts() {
        let text = many_hosts(2000, |_, h| h);
        same_config(&text);
        same_config(&text.replace('\n', "\r\n"));
        // Hosts last, the file ending without a newline.
        let tail = text.find("[dhcp]").unwrap_or(text.len());
        same_config(text[..tail].trim_end());
        let cfg = parse(&text, Path::new("x")).expect("valid");
        assert_eq!(cfg.hosts.len(), 2000);
    }

    #[test]
    fn host_sections_hosts_last_same_diagnostics() {
        // Hosts end the file, so the rest is parsed cut short before them.
        let text = many_hosts(600, |_, h| h);
        let tail = text.find("[dhcp]").unwrap_or(text.len());
        let text = text[..tail]
            .replace("10.0.255.254/16", "10.0.255.254/33")
            .replace("\"n599\"", "\"n 599\"");
        let (fast, whole) = both_paths(&text);
        let fast = fast.expect_err("invalid");
        assert_eq!(fast.len(), 2, "{fast:?}");
        assert_eq!(fast, whole.expect_err("invalid"));
    }

    #[test]
    fn host_sections_same_diagnostics() {
        let text = many_hosts(2000, |i, h| match i {
            1500 => h
                .replace("02:00:00:00:05:dc", "02:00:00:00:00:07")
                .replace("10.0.6.1\"", "10.0.6.256\""),
            _ => h,
        });
        let (fast, whole) = both_paths(&text);
        let (fast, whole) = (fast.expect_err("invalid"), whole.expect_err("invalid"));
        assert_eq!(fast.len(), 2, "{fast:?}");
        assert_eq!(fast, whole);
        let shown = |d: Vec<Diagnostic>| {
            super::super::ConfigErrors {
                path: "x".into(),
                diagnostics: d,
            }
            .to_string()
        };
        assert_eq!(shown(fast), shown(whole));
    }

    /// A host section that does not parse on its own: the file goes to the
    /// whole-file parse, so the message is that parse's, with or without
    /// an [interfaces] table before the hosts.
    #[test]
    fn host_sections_fall_back_on_parse_errors() {
        for bad in ["macc = \"x\"\n", "name = \"dup\"\n", "lease_time = [1]\n"] {
            let with = many_hosts(2000, |i, h| if i == 1500 { h + bad } else { h });
            let without = with[with.find("[[host]]").unwrap_or(0)..].to_string();
            for text in [with, without] {
                assert!(super::super::host_blocks::split(&text, 0).is_some());
                assert!(!sections_take(&text, 0));
                let p = Path::new("same.toml");
                let fast = parse_with(&text, p, 0).expect_err("invalid");
                assert_eq!(fast, parse_with(&text, p, usize::MAX).expect_err("invalid"));
                assert_eq!(fast.len(), 1, "{fast:?}");
            }
        }
    }

    #[test]
    fn names_borrowed_from_the_file_when_written_plainly() {
        let text = "[[host]]\nname = \"n1\"\nmac = \"n\\u0031\"\naddress = 'x'\n";
        let raw: RawConfig = toml::from_str(text).expect("toml");
        let v = Validator::new(text);
        let h = raw.hosts[0].get_ref();
        assert!(matches!(v.as_written(&h.name), Cow::Borrowed("n1")));
        assert!(matches!(v.as_written(&h.mac), Cow::Owned(ref m) if m == "n1"));
        assert!(matches!(v.as_written(&h.address), Cow::Borrowed("x")));
    }

    #[test]
    fn host_sections_refuse_unusual_layouts() {
        let base = many_hosts(3, |_, h| h);
        for odd in [
            "[ host ]\n",
            "[\"quoted\"]\n",
            "[host.x]\n",
            "[dhcp]\ndomain_name = \"\"\"a\"\"\"\n",
            "[[host]]\nname = 1\n",
        ] {
            assert!(!sections_take(&format!("{base}{odd}"), 0), "{odd}");
        }
        let inline = format!("host = [{{ name = \"a\" }}]\n{base}");
        assert!(!sections_take(&inline, 0));
        assert!(!sections_take(&base, 4));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5 weeks"), None);
    }
}
