//! Raw TOML → validated model. Collects every problem instead of stopping at
//! the first, so an admin fixes a file in one round trip.
//!
//! This module holds the entry point, the [`Validator`] that collects the
//! diagnostics, and `config`, which runs the sections in order. Each section
//! (`interfaces`, `hosts`, `dhcp`, `firewall`, `balancer` with `[[service]]`,
//! `sysctl`, `tftp`, `dns`, then `cross_checks`) adds its methods to the `Validator` and
//! uses only this module and `values`, the shared value parsers.

mod balancer;
mod cross_checks;
mod dhcp;
mod dns;
mod firewall;
mod ha;
mod hosts;
mod interfaces;
mod metrics;
mod sysctl;
mod tftp;
mod values;

pub use values::{parse_duration, parse_ipv4, parse_mac};

use super::model::*;
use super::raw::*;
use super::{Diagnostic, column, line_col};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;

pub(super) fn parse(text: &str, path: &Path) -> Result<Config, Vec<Diagnostic>> {
    parse_with(text, path, super::host_blocks::MIN_HOSTS)
}

/// `parse`, taking the section-by-section path when the file has at least
/// `min_hosts` `[[host]]` tables (tests compare both paths on one file).
pub(super) fn parse_with(
    text: &str,
    path: &Path,
    min_hosts: usize,
) -> Result<Config, Vec<Diagnostic>> {
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
                        format!("did you mean `{f}`? (see headnode.toml(5))")
                    }
                    None => "check the spelling against headnode.toml(5)".into(),
                })
            } else if message.contains("did not match any variant") {
                Some("see headnode.toml(5) for the accepted forms of this value".to_string())
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
        let ha = raw
            .ha
            .as_ref()
            .and_then(|h| self.ha(h, public.as_ref(), private.as_ref()));
        let hosts = self.hosts(raw_hosts, private.as_ref())?;
        let names = Names {
            hosts: hosts.iter().map(|h| (&*h.name, h.address)).collect(),
            // With [ha], "public" is the service address that moves.
            public: ha.as_ref().map(|h| h.public_address.addr()).or(public_ip),
        };
        let mut dhcp = self.dhcp(&raw.dhcp, private.as_ref(), &hosts);
        if let (Some(ha), Some(dhcp)) = (&ha, dhcp.as_mut()) {
            self.ha_routers(&raw.dhcp, ha, dhcp);
        }
        let mut firewall = self.firewall(&raw.firewall, &names);
        let mut balancer = self.balancer(&raw.balancer, &names);
        let services = self.services(&raw.services, &names, &mut firewall, &mut balancer);
        self.check_marks(&raw, &firewall, &balancer);
        if let Some(ha) = &ha {
            self.ha_service_addresses(&raw, ha, public_ip);
        }
        let sysctls = self.sysctls(&raw.sysctl);
        let tftp = raw.tftp.as_ref().and_then(|t| self.tftp(t));
        let dns = raw
            .dns
            .as_ref()
            .and_then(|d| self.dns(d, dhcp.as_ref(), private.as_ref(), public_ip));
        if let (Some(dns), Some(dhcp), Some(private)) = (&dns, dhcp.as_mut(), &private) {
            // The nodes ask the head node and search the cluster domain,
            // unless [dhcp] says otherwise.
            if raw.dhcp.dns_servers.is_empty() {
                // Each head node answers on its own address; with [ha] the
                // nodes get both, in one order, so both give one answer.
                dhcp.dns_servers = vec![private.address.addr()];
                if let Some(ha) = &ha {
                    dhcp.dns_servers.push(ha.peer);
                    dhcp.dns_servers.sort();
                }
            }
            if raw.dhcp.domain_search.is_empty() {
                dhcp.domain_search = vec![dns.domain.clone()];
            }
            dhcp.domain_name.get_or_insert_with(|| dns.domain.clone());
        }
        let metrics = raw
            .metrics
            .as_ref()
            .and_then(|m| self.metrics(m, private.as_ref()));
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
            tftp,
            dns,
            metrics,
            ha,
        })
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

/// The per-diagnostic tests of every section: each case is a whole config
/// that must give exactly one diagnostic, on the line marked `# <-`, with
/// the expected field and a fragment of the expected message.
#[cfg(test)]
pub(super) mod cases {
    use super::super::{Diagnostic, test_text::INTERFACES};
    use std::path::Path;

    /// `snippet` after the origin box's two interfaces (eth1 203.0.113.210/24
    /// public, eth0 192.168.1.254/24 private), which take lines 1-8.
    pub fn lan(snippet: &str) -> String {
        format!("{INTERFACES}{snippet}")
    }

    /// The origin box's interfaces with `old` written as `new`.
    pub fn interfaces_with(old: &str, new: &str) -> String {
        assert!(INTERFACES.contains(old), "{old} is not in the interfaces");
        INTERFACES.replacen(old, new, 1)
    }

    /// The one diagnostic `text` gives, checked against the marked line,
    /// `field` and `message`.
    pub fn check(text: &str, field: &str, message: &str) -> Diagnostic {
        let line = marked_line(text);
        let diags = match super::parse(text, Path::new("case.toml")) {
            Ok(_) => panic!("no diagnostic for:\n{text}"),
            Err(d) => d,
        };
        match <[Diagnostic; 1]>::try_from(diags) {
            Ok([d]) if d.field == field && d.line == line && d.message.contains(message) => d,
            other => panic!(
                "expected one diagnostic on {field}, line {line}, with {message:?}; got {other:#?}\nfor:\n{text}"
            ),
        }
    }

    /// The diagnostic `text` gives on the marked line and `field`, for the
    /// cases where a second one follows from the first.
    pub fn check_among(text: &str, field: &str, message: &str) -> Diagnostic {
        let line = marked_line(text);
        let diags = super::parse(text, Path::new("case.toml")).err();
        let found = diags
            .iter()
            .flatten()
            .find(|d| d.field == field && d.line == line);
        match found {
            Some(d) if d.message.contains(message) => d.clone(),
            _ => panic!("no diagnostic on {field}, line {line}, with {message:?} in {diags:#?}"),
        }
    }

    fn marked_line(text: &str) -> usize {
        text.lines()
            .position(|l| l.contains("# <-"))
            .unwrap_or_else(|| panic!("no line marked `# <-` in:\n{text}"))
            + 1
    }

    /// `check` on each (text, field, message) row.
    pub fn check_all(cases: &[(String, &str, &str)]) {
        for (text, field, message) in cases {
            check(text, field, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn diagnostics() {
        use super::cases::{check, lan};
        check(
            "# <-\n[dhcp]\nenabled = true\n",
            "interfaces",
            "the [interfaces] table is missing",
        );
        // Errors the TOML parser finds point at the enclosing table, with a
        // hint for a misspelt key and for a value of the wrong shape.
        let typo = check(
            &lan("[dhcp]\nleas_time = \"1h\" # <-\n"),
            "[dhcp]",
            "unknown field `leas_time`",
        );
        assert!(typo.hint.unwrap().contains("did you mean `lease_time`?"));
        let unknown = check(
            &lan("[dhcp]\ncolour = \"blue\" # <-\n"),
            "[dhcp]",
            "unknown field `colour`",
        );
        assert!(unknown.hint.unwrap().contains("check the spelling"));
        let shape = check(
            &lan("[dhcp]\nlease_time = true # <-\n"),
            "[dhcp]",
            "did not match any variant",
        );
        assert!(shape.hint.unwrap().contains("accepted forms"));
        let syntax = check(
            &lan("[dhcp]\nlease_time = \"1h # <-\n"),
            "[dhcp]",
            "invalid basic string",
        );
        assert_eq!(syntax.hint, None);
        check("lease_time = 1 # <-\n", "top level", "unknown field");
    }
}
