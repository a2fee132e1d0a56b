//! Debian's /etc/network/interfaces (ifupdown): the interfaces, their
//! addresses with prefix, the gateway and the resolvers (`dns-*`, read by
//! resolvconf). The import tells the public interface (the one with the
//! gateway) from the private one with it and pins the public address.
//!
//! `source` (with `*`/`?` wildcards) and `source-directory` are read in place,
//! relative paths against the including file, as ifupdown does.

use super::report::{Loc, Report};
use super::values;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// An option line of a stanza: where, and its words after the option name.
#[derive(Debug, Clone)]
pub struct Opt {
    pub at: Loc,
    pub values: Vec<String>,
}

impl Opt {
    pub fn text(&self) -> String {
        self.values.join(" ")
    }
}

/// One `iface NAME inet METHOD` stanza.
#[derive(Debug, Clone)]
pub struct Iface {
    pub at: Loc,
    pub name: String,
    /// `static`, `dhcp`, `manual`, `loopback`, ...
    pub method: String,
    /// Options this import reads, by name; the others are reported.
    pub opts: Vec<(&'static str, Opt)>,
    /// The address with its prefix, when both are given and valid.
    pub net: Option<Ipv4Net>,
}

impl Iface {
    pub fn opt(&self, name: &str) -> Option<&Opt> {
        self.opts.iter().find(|(n, _)| *n == name).map(|(_, o)| o)
    }
    /// The `address` as written (without a `/prefix`) and parsed.
    pub fn address(&self) -> Option<(&Opt, &str, Result<Ipv4Addr, String>)> {
        let o = self.opt("address")?;
        let text = o.values.first()?.split('/').next().unwrap_or("");
        Some((o, text, values::ipv4(text)))
    }
    pub fn gateway(&self) -> Option<(&Opt, Result<Ipv4Addr, String>)> {
        let o = self.opt("gateway")?;
        Some((o, values::ipv4(o.values.first()?)))
    }
    pub fn is_loopback(&self) -> bool {
        self.method == "loopback" || self.name == "lo"
    }
}

#[derive(Debug, Default)]
pub struct Ifupdown {
    pub ifaces: Vec<Iface>,
}

impl Ifupdown {
    pub fn by_name(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }
}

/// The options headnode has a place for.
const READ: &[&str] = &[
    "address",
    "netmask",
    "network",
    "broadcast",
    "gateway",
    "dns-nameservers",
    "dns-search",
];

const MAX_SOURCE_DEPTH: usize = 8;

pub fn load(path: &Path, report: &mut Report) -> Result<Ifupdown, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut r = Reader {
        stack: Vec::new(),
        report,
        out: Ifupdown::default(),
    };
    r.file(path, &text);
    let mut out = r.out;
    for i in &mut out.ifaces {
        i.net = check(i, report);
    }
    Ok(out)
}

/// The stanza options under: an `iface inet` being read, or one whose options are not read.
enum Current {
    None,
    Iface(usize),
    Ignored,
}

struct Reader<'r> {
    stack: Vec<PathBuf>,
    report: &'r mut Report,
    out: Ifupdown,
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, text: &str) {
        let file: Rc<str> = path.display().to_string().into();
        self.report.saw(&file);
        self.stack.push(path.to_owned());
        let mut cur = Current::None;
        for (at, words) in logical_lines(text, &file) {
            let line = words.join(" ");
            match words[0].as_str() {
                "iface" => cur = self.iface(&at, &words),
                "auto" => cur = Current::None,
                w if w.starts_with("allow-") => cur = Current::None,
                "source" | "source-directory" | "source-dir" => {
                    cur = Current::None;
                    self.source(&at, &words, path);
                }
                "mapping" | "rename" | "no-auto-down" | "no-scripts" | "template" => {
                    cur = Current::Ignored;
                    self.report.skip(&at, format!("`{line}` is not translated"));
                }
                opt => match cur {
                    Current::Iface(i) => self.option(i, at, opt, &words, &line),
                    Current::Ignored => {}
                    Current::None => self
                        .report
                        .skip(&at, format!("`{line}` is outside an iface stanza")),
                },
            }
        }
        self.stack.pop();
    }

    fn iface(&mut self, at: &Loc, words: &[String]) -> Current {
        let [_, name, family, method, ..] = words else {
            self.report.error(
                at,
                format!(
                    "`{}` is not `iface NAME inet METHOD`; its options are not read",
                    words.join(" ")
                ),
            );
            return Current::Ignored;
        };
        if family != "inet" {
            self.report.skip(
                at,
                format!(
                    "`iface {name} {family} {method}`: only inet (IPv4) stanzas are translated"
                ),
            );
            return Current::Ignored;
        }
        if let Some(first) = self.out.by_name(name) {
            self.report.skip(
                at,
                format!(
                    "a second inet stanza for {name} (the first is {}): headnode gives an interface one address",
                    first.at
                ),
            );
            return Current::Ignored;
        }
        self.out.ifaces.push(Iface {
            at: at.clone(),
            name: name.clone(),
            method: method.clone(),
            opts: Vec::new(),
            net: None,
        });
        Current::Iface(self.out.ifaces.len() - 1)
    }

    fn option(&mut self, i: usize, at: Loc, opt: &str, words: &[String], line: &str) {
        let iface = &mut self.out.ifaces[i];
        let Some(name) = READ.iter().find(|r| **r == opt) else {
            self.report.skip(
                &at,
                format!("`{line}` ({}): option {opt} is not translated", iface.name),
            );
            return;
        };
        if let Some(first) = iface.opt(name) {
            let msg = format!("{name} is given again; the first ({}) is used", first.at);
            self.report.skip(&at, msg);
            return;
        }
        if words.len() < 2 {
            self.report.error(&at, format!("`{line}` has no value"));
            return;
        }
        iface.opts.push((
            name,
            Opt {
                at,
                values: words[1..].to_vec(),
            },
        ));
    }

    /// `source PATTERN` or `source-directory DIR`, read where they stand.
    fn source(&mut self, at: &Loc, words: &[String], path: &Path) {
        let line = words.join(" ");
        let Some(target) = words.get(1) else {
            self.report.error(at, format!("`{line}` names no file"));
            return;
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let target = dir.join(target);
        let files = if words[0] == "source" {
            glob(&target)
        } else {
            run_parts(&target)
        };
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        match names.as_slice() {
            [] => self.report.note(
                at,
                format!("`{line}` matches no file here ({})", target.display()),
            ),
            _ => self
                .report
                .note(at, format!("`{line}`: read {}", names.join(", "))),
        }
        for f in files {
            if self.stack.len() >= MAX_SOURCE_DEPTH || self.stack.contains(&f) {
                let msg = format!(
                    "`{line}`: {} loops or nests too deep; not read",
                    f.display()
                );
                self.report.error(at, msg);
                continue;
            }
            match std::fs::read_to_string(&f) {
                Ok(text) => self.file(&f, &text),
                Err(e) => self
                    .report
                    .error(at, format!("cannot read {}: {e}", f.display())),
            }
        }
    }
}

/// Lines without comments (a `#` starts one only at the start of a line, as in
/// ifupdown) and with `\` continuations joined, each split into words.
fn logical_lines(text: &str, file: &Rc<str>) -> Vec<(Loc, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        if raw.trim_start().starts_with('#') && pending.is_none() {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(head) = raw.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(raw);
        let words: Vec<String> = joined.split_whitespace().map(str::to_string).collect();
        if !words.is_empty() {
            let at = Loc {
                file: file.clone(),
                line: start,
            };
            out.push((at, words));
        }
    }
    out
}

/// The files a `source` pattern names: wildcards only in the last component, sorted.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return if pattern.is_file() {
            vec![pattern.to_owned()]
        } else {
            Vec::new()
        };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    listing(dir, |n| wildcard(name.as_bytes(), n.as_bytes()))
}

/// The files `source-directory` reads: names of letters, digits, `_` and `-`
/// only (run-parts' rule, so `foo.dpkg-old` is not read), sorted.
fn run_parts(dir: &Path) -> Vec<PathBuf> {
    listing(dir, |n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn listing(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Shell-style `*` and `?` matching.
fn wildcard(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pat[1..], name) || (!name.is_empty() && wildcard(pat, &name[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pat[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pat[1..], &name[1..]),
        _ => false,
    }
}

/// Check a stanza's values against each other; the address with its prefix when all agree.
fn check(i: &Iface, report: &mut Report) -> Option<Ipv4Net> {
    for key in ["network", "broadcast", "gateway"] {
        let Some(o) = i.opt(key) else { continue };
        // `broadcast +` (or `-`) asks ifupdown to compute it.
        if key == "broadcast" && matches!(o.values[0].as_str(), "+" | "-") {
            continue;
        }
        if let Err(why) = values::ipv4(&o.values[0]) {
            report.error(&o.at, format!("{key}: {why}"));
        }
    }
    if let Some(o) = i.opt("dns-nameservers") {
        let bad: Vec<String> = o
            .values
            .iter()
            .filter_map(|v| values::ipv4(v).err())
            .collect();
        if !bad.is_empty() {
            report.error(&o.at, format!("dns-nameservers: {}", bad.join("; ")));
        }
    }
    let Some((o, _, ip)) = i.address() else {
        if i.method == "static" {
            report.error(
                &i.at,
                format!("iface {} inet static has no address", i.name),
            );
        }
        return None;
    };
    let ip = ip
        .map_err(|why| report.error(&o.at, format!("address: {why}")))
        .ok();
    let from_address = o.values[0].split_once('/').map(|(_, l)| {
        l.parse::<u8>()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("address {}: prefix length \"{l}\" is not 0-32", o.values[0]))
    });
    let from_netmask = i.opt("netmask").map(|m| {
        let v = &m.values[0];
        let len = if v.contains('.') {
            values::ipv4(v).and_then(|a| {
                values::prefix_of(&a).ok_or_else(|| format!("netmask {v} is not contiguous"))
            })
        } else {
            v.parse::<u8>()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or_else(|| format!("netmask \"{v}\" is neither a dotted netmask nor 0-32"))
        };
        (m, len)
    });
    let prefix = match (from_address, from_netmask) {
        (Some(Err(why)), _) => {
            report.error(&o.at, why);
            None
        }
        (_, Some((m, Err(why)))) => {
            report.error(&m.at, format!("netmask: {why}"));
            None
        }
        (Some(Ok(a)), Some((m, Ok(n)))) if a != n => {
            report.error(
                &m.at,
                format!("netmask {} is /{n}, but the address says /{a}", m.text()),
            );
            None
        }
        (Some(Ok(len)), _) | (None, Some((_, Ok(len)))) => Some(len),
        (None, None) => {
            report.note(
                &o.at,
                format!(
                    "address {} has no netmask or /PREFIX; the prefix is left to the interface",
                    o.text()
                ),
            );
            None
        }
    };
    let net = Ipv4Net::new(ip?, prefix?).ok()?;
    for (key, want) in [("network", net.network()), ("broadcast", net.broadcast())] {
        if let Some(o) = i.opt(key)
            && let Ok(a) = values::ipv4(&o.values[0])
            && a != want
        {
            report.error(
                &o.at,
                format!("{key} {a} does not match address {net} ({want}); headnode uses {want}"),
            );
        }
    }
    if let Some((o, Ok(g))) = i.gateway()
        && !net.contains(&g)
    {
        report.error(
            &o.at,
            format!("gateway {g} is not on {}'s network {}", i.name, net.trunc()),
        );
    }
    Some(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Ifupdown, String) {
        let dir = std::env::temp_dir().join(format!("headnode-ifupdown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join(format!("interfaces-{}", text.len()));
        std::fs::write(&path, text).expect("write");
        let mut report = Report::default();
        let out = load(&path, &mut report).expect("readable");
        std::fs::remove_file(&path).ok();
        (out, report.to_string())
    }

    #[test]
    fn prefixes_from_cidr_dotted_or_length_netmasks() {
        let (ifs, report) = parse(
            "iface a inet static\n address 10.0.0.1/8\n\
             iface b inet static\n address 10.1.0.1\n netmask 255.255.0.0\n\
             iface c inet static\n address 10.2.0.1\n netmask 24\n",
        );
        let nets: Vec<String> = ifs
            .ifaces
            .iter()
            .filter_map(|i| i.net.map(|n| n.to_string()))
            .collect();
        assert_eq!(
            nets,
            ["10.0.0.1/8", "10.1.0.1/16", "10.2.0.1/24"],
            "{report}"
        );
        assert!(report.contains("0 errors"), "{report}");
    }

    #[test]
    fn contradictions_are_errors_at_their_line() {
        let (ifs, report) = parse(
            "iface a inet static\n\
             \taddress 10.0.0.1/24\n\
             \tnetmask 255.255.0.0\n\
             iface b inet static\n\
             \taddress 10.1.0.1/24\n\
             \tnetwork 10.1.1.0\n\
             \tgateway 10.9.0.1\n\
             iface c inet static\n",
        );
        assert_eq!(ifs.ifaces[0].net, None);
        assert!(
            report.contains(":3: error: netmask 255.255.0.0 is /16, but the address says /24"),
            "{report}"
        );
        assert!(
            report.contains(
                ":6: error: network 10.1.1.0 does not match address 10.1.0.1/24 (10.1.0.0)"
            ),
            "{report}"
        );
        assert!(
            report.contains(":7: error: gateway 10.9.0.1 is not on b's network 10.1.0.0/24"),
            "{report}"
        );
        assert!(
            report.contains(":8: error: iface c inet static has no address"),
            "{report}"
        );
    }

    #[test]
    fn a_file_that_sources_itself_is_an_error_not_a_loop() {
        let dir =
            std::env::temp_dir().join(format!("headnode-ifupdown-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("interfaces");
        std::fs::write(
            &path,
            "source interfaces\nsource missing\niface eth0 inet dhcp\n",
        )
        .expect("write");
        let mut report = Report::default();
        let ifs = load(&path, &mut report).expect("readable");
        let report = report.to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(ifs.ifaces.len(), 1, "{report}");
        assert!(
            report.contains(":1: error: `source interfaces`: "),
            "{report}"
        );
        assert!(report.contains("loops or nests too deep"), "{report}");
        assert!(
            report.contains(":2: note: `source missing` matches no file here"),
            "{report}"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*", b"eth0"));
        assert!(wildcard(b"e?h*", b"eth0"));
        assert!(!wildcard(b"*.conf", b"eth0"));
        assert!(wildcard(b"*.conf", b"a.conf"));
    }
}
