//! The body of a `[[host]]` section as generated files and most people write
//! it: one `key = value` per line, basic strings without escapes, plain
//! integers, string arrays, comments. Read here without the TOML parser,
//! which allocates a token vector, an event vector and a table per section:
//! with 50,000 sections that churn (and musl's allocator returning each
//! freed group to the kernel) was most of the start-up time.
//!
//! Anything else (escapes, literal strings, other number forms, unknown or
//! repeated keys, a missing key) returns `None` and the section goes to
//! `toml`, so every value read here is what the TOML parser reads, and every
//! error is still the TOML parser's.

use super::raw::{RawDuration, RawHost, S};
use toml::Spanned;

/// The host in `body`, with spans in file offsets (`base` is where `body`
/// starts in the file), or `None` when the body is not plain.
pub(super) fn parse(body: &str, base: usize) -> Option<RawHost> {
    let mut p = Reader {
        b: body.as_bytes(),
        at: 0,
        base,
    };
    let mut h = Fields::default();
    loop {
        p.blank_lines()?;
        if p.at == p.b.len() {
            break;
        }
        let key = p.key()?;
        p.spaces();
        p.expect(b'=')?;
        p.spaces();
        match key {
            "name" => set(&mut h.name, p.string()?)?,
            "mac" => set(&mut h.mac, p.string()?)?,
            "address" => set(&mut h.address, p.string()?)?,
            "next_server" => set(&mut h.next_server, p.string()?)?,
            "filename" => set(&mut h.filename, p.string()?)?,
            "domain_name" => set(&mut h.domain_name, p.string()?)?,
            "dns_servers" => set(&mut h.dns_servers, p.strings()?)?,
            "lease_time" => set(&mut h.lease_time, p.duration()?)?,
            _ => return None,
        }
        p.end_of_line()?;
    }
    Some(RawHost {
        name: h.name?,
        mac: h.mac?,
        address: h.address?,
        lease_time: h.lease_time,
        next_server: h.next_server,
        filename: h.filename,
        dns_servers: h.dns_servers,
        domain_name: h.domain_name,
        // `boot = [...]` is not a plain line: such a host is read by TOML.
        boot: Vec::new(),
    })
}

#[derive(Default)]
struct Fields {
    name: Option<S<String>>,
    mac: Option<S<String>>,
    address: Option<S<String>>,
    lease_time: Option<S<RawDuration>>,
    next_server: Option<S<String>>,
    filename: Option<S<String>>,
    dns_servers: Option<Vec<S<String>>>,
    domain_name: Option<S<String>>,
}

/// A key given twice is TOML's error to report.
fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    slot.is_none().then(|| *slot = Some(v))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.at += 1)
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// A comment up to (not including) the line end. TOML forbids control
    /// characters other than tab in comments.
    fn comment(&mut self) -> Option<()> {
        if self.peek() == Some(b'#') {
            while let Some(c) = self.peek() {
                if c == b'\n' || c == b'\r' {
                    break;
                }
                if (c < 0x20 && c != b'\t') || c == 0x7f {
                    return None;
                }
                self.at += 1;
            }
        }
        Some(())
    }

    /// A line end (`\n` or `\r\n`) or the end of the body.
    fn newline(&mut self) -> Option<()> {
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.at += 1;
                Some(())
            }
            Some(b'\r') if self.b.get(self.at + 1) == Some(&b'\n') => {
                self.at += 2;
                Some(())
            }
            _ => None,
        }
    }

    fn end_of_line(&mut self) -> Option<()> {
        self.spaces();
        self.comment()?;
        self.newline()
    }

    /// Skip blank and comment-only lines, up to the next key or the end.
    fn blank_lines(&mut self) -> Option<()> {
        loop {
            let line = self.at;
            self.spaces();
            self.comment()?;
            if self.peek().is_none() {
                return Some(());
            }
            if !matches!(self.peek(), Some(b'\n' | b'\r')) {
                self.at = line;
                self.spaces();
                return Some(());
            }
            self.newline()?;
        }
    }

    fn key(&mut self) -> Option<&'a str> {
        let (b, start) = (self.b, self.at);
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.at += 1;
        }
        std::str::from_utf8(&b[start..self.at])
            .ok()
            .filter(|k| !k.is_empty())
    }

    /// A basic string without escapes; its span includes the quotes, as
    /// TOML's does.
    fn string(&mut self) -> Option<S<String>> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                c if (c < 0x20 && c != b'\t') || c == 0x7f => return None,
                _ => self.at += 1,
            }
        }
        let text = std::str::from_utf8(&self.b[start + 1..self.at]).ok()?;
        self.at += 1;
        Some(Spanned::new(
            self.base + start..self.base + self.at,
            text.to_string(),
        ))
    }

    /// An array of basic strings, over several lines if need be, with a
    /// trailing comma or comments allowed as TOML allows them.
    fn strings(&mut self) -> Option<Vec<S<String>>> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        loop {
            self.blank_lines()?;
            if self.expect(b']').is_some() {
                return Some(out);
            }
            out.push(self.string()?);
            self.blank_lines()?;
            if self.expect(b',').is_none() {
                self.blank_lines()?;
                self.expect(b']')?;
                return Some(out);
            }
        }
    }

    /// Seconds as a plain decimal integer, or a string such as "12h".
    fn duration(&mut self) -> Option<S<RawDuration>> {
        if self.peek() == Some(b'"') {
            let s = self.string()?;
            let span = s.span();
            return Some(Spanned::new(span, RawDuration::Text(s.into_inner())));
        }
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.b[start..self.at]).ok()?;
        // TOML has no leading zeros; `_`, signs, hex and floats go to TOML.
        if digits.is_empty()
            || (digits.len() > 1 && digits.starts_with('0'))
            || matches!(self.peek(), Some(c) if !matches!(c, b' ' | b'\t' | b'#' | b'\r' | b'\n'))
        {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        Some(Spanned::new(
            self.base + start..self.base + self.at,
            RawDuration::Seconds(n),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    /// Every value with its span, for comparing two parses field by field.
    fn flat(h: &RawHost) -> Vec<(Range<usize>, String)> {
        let s = |v: &S<String>| (v.span(), v.get_ref().clone());
        let mut out = vec![s(&h.name), s(&h.mac), s(&h.address)];
        out.extend(
            h.lease_time
                .as_ref()
                .map(|d| (d.span(), format!("{:?}", d.get_ref()))),
        );
        out.extend(h.next_server.as_ref().map(s));
        out.extend(h.filename.as_ref().map(s));
        out.extend(h.dns_servers.iter().flatten().map(s));
        out.push((
            0..0,
            format!(
                "{} dns",
                h.dns_servers.as_ref().map_or(-1, |l| l.len() as i64)
            ),
        ));
        out.extend(h.domain_name.as_ref().map(s));
        out
    }

    /// The TOML parser's reading of `body` at `base`, spans moved as
    /// `host_blocks` moves them.
    fn by_toml(body: &str, base: usize) -> Option<Vec<(Range<usize>, String)>> {
        let h: RawHost = toml::from_str(body).ok()?;
        Some(flat(&super::super::host_blocks::shift(h, base)))
    }

    const PLAIN: &[&str] = &[
        "name = \"n1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.1\"\n",
        "name=\"n1\"\r\nmac =\t\"m\" # the NIC ✓\r\n\n# note\naddress = \"a\"",
        "  name = \"n1\"\n  mac = \"m\"\n  address = \"a\"\n  lease_time = 600\n\n\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\nlease_time = \"1d\" # long\nnext_server = \"10.0.0.254\"\nfilename = \"pxe.efi\"\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\ndns_servers = [\"10.0.0.1\",\n  \"192.0.2.53\", # second\n]\ndomain_name = \"c.example\"\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\ndns_servers = []\nlease_time = 0\n",
        "name = \"ünï\"\nmac = \"m\"\naddress = \"a\"\n",
    ];

    /// Bodies this reader leaves to TOML (valid or not there).
    const NOT_PLAIN: &[&str] = &[
        "name = \"n\\u0031\"\nmac = \"m\"\naddress = \"a\"\n",
        "name = 'n1'\nmac = \"m\"\naddress = \"a\"\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\nlease_time = 1_000\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\nlease_time = 0600\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\nlease_time = -5\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\nlease_time = 60.5\n",
        "name = \"n1\"\nname = \"n2\"\nmac = \"m\"\naddress = \"a\"\n",
        "name = \"n1\"\nmac = \"m\"\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\ncolour = \"red\"\n",
        "\"name\" = \"n1\"\nmac = \"m\"\naddress = \"a\"\n",
        "name = \"n1\" mac = \"m\"\naddress = \"a\"\n",
        "name = \"n1\"\rmac = \"m\"\naddress = \"a\"\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\" # bell \u{7}\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\ndns_servers = [\"x\" \"y\"]\n",
        "name = \"n1\"\nmac = \"m\"\naddress = \"a\"\ndns_servers = [1]\n",
    ];

    #[test]
    fn reads_what_toml_reads() {
        for body in PLAIN {
            let mine = parse(body, 1000).unwrap_or_else(|| panic!("plain: {body:?}"));
            assert_eq!(Some(flat(&mine)), by_toml(body, 1000), "{body:?}");
        }
    }

    #[test]
    fn leaves_the_rest_to_toml() {
        for body in NOT_PLAIN {
            assert!(parse(body, 0).is_none(), "{body:?}");
        }
    }
}
