//! Fast load of files with many `[[host]]` reservations.
//!
//! `toml::from_str` on a whole 50,000-host file builds a token vector, an
//! event vector and a tree of spanned tables for all of it before serde sees
//! a single host: ~120 MB at peak and most of the start-up time. Here each
//! `[[host]]` section is cut out and parsed on its own (a few hundred bytes,
//! freed at once), and the rest of the file is parsed as before with the host
//! sections blanked out. Blanking keeps every byte offset, so every span, line
//! and column the validator reports is the one the whole-file parse gives.
//!
//! This is only a shortcut: whenever the file is not plainly laid out (a
//! multi-line string, a header it does not recognise, a section that does
//! not parse) it returns `None` and the caller parses the whole file, so
//! every error message stays exactly what the whole-file parse says.

use super::raw::{RawBoot, RawConfig, RawHost, S};
use std::ops::Range;
use toml::Spanned;

/// Below this many `[[host]]` headers the whole-file parse is fast enough.
pub(super) const MIN_HOSTS: usize = 500;

/// One `[[host]]` section: the span of its `[[host]]` header (the span the
/// whole-file parse gives the table) and its body, up to the next header.
/// Offsets are u32 (16 bytes a section, not 32): `split` declines files
/// of 4 GiB and more.
struct Section {
    header: Range<u32>,
    body: Range<u32>,
}

impl Section {
    fn header(&self) -> Range<usize> {
        self.header.start as usize..self.header.end as usize
    }
    fn body(&self) -> Range<usize> {
        self.body.start as usize..self.body.end as usize
    }
}

/// The file's host sections, parsed one at a time on demand.
pub(super) struct Sections<'a> {
    text: &'a str,
    sections: Vec<Section>,
}

impl Sections<'_> {
    /// Each host in file order with its spans in file offsets, or `None`
    /// for a section that does not parse on its own.
    pub(super) fn hosts(&self) -> impl ExactSizeIterator<Item = Option<S<RawHost>>> + '_ {
        self.sections.iter().map(|s| {
            let body = s.body();
            let raw = match super::plain_host::parse(&self.text[body.clone()], body.start) {
                Some(raw) => raw,
                None => shift(toml::from_str(&self.text[body.clone()]).ok()?, body.start),
            };
            Some(Spanned::new(s.header(), raw))
        })
    }
}

/// The file without its `[[host]]` sections, parsed, and those sections;
/// `None` when the file has fewer than `min_hosts` of them or anything looks
/// unusual.
pub(super) fn split(text: &str, min_hosts: usize) -> Option<(RawConfig, Sections<'_>)> {
    if text.contains("\"\"\"") || text.contains("'''") || u32::try_from(text.len()).is_err() {
        return None;
    }
    let sections = host_sections(text)?;
    if sections.len() < min_hosts.max(1) {
        return None;
    }
    // A `[[host]]` line inside a multi-line array would make the whole file
    // invalid, yet blanked the rest could still parse if the next header-like
    // line continued the array (`[1]`). That needs a nested-array field,
    // which the schema does not have, so such a rest fails to deserialize.
    let rest: RawConfig = toml::from_str(&blank(text, &sections)).ok()?;
    // `host = [...]` or dotted `host` keys outside the sections: let the
    // whole-file parse judge how they mix with the `[[host]]` tables.
    if !rest.hosts.is_empty() {
        return None;
    }
    Some((rest, Sections { text, sections }))
}

/// Every `[[host]]` section in file order, or `None` when a line starting
/// with `[` is not a plain header (quoted keys, spaces inside the brackets,
/// a nested array continued on its own line) or a header is a `host.`
/// sub-table: those the section split could get wrong.
fn host_sections(text: &str) -> Option<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut in_host = false;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let line_start = start;
        start += line.len();
        let trimmed = line.trim_start_matches([' ', '\t']);
        if !trimmed.starts_with('[') {
            continue;
        }
        let (name, is_array, len) = header(trimmed)?;
        if name.starts_with("host.") || (name == "host" && !is_array) {
            return None;
        }
        if in_host && let Some(last) = sections.last_mut() {
            last.body.end = line_start as u32;
        }
        in_host = name == "host";
        if in_host {
            let open = line_start + (line.len() - trimmed.len());
            sections.push(Section {
                header: open as u32..(open + len) as u32,
                body: (line_start + line.len()) as u32..text.len() as u32,
            });
        }
    }
    Some(sections)
}

/// A table header line: `[name]` or `[[name]]` with bare-key characters and
/// dots only, then optional blanks and a `#` comment. Returns the name,
/// whether it is an array table, and the length of the bracketed part.
fn header(line: &str) -> Option<(&str, bool, usize)> {
    let is_array = line.starts_with("[[");
    let (open, close) = if is_array { ("[[", "]]") } else { ("[", "]") };
    let inner = &line[open.len()..];
    let end = inner.find(close)?;
    let name = &inner[..end];
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || !name.chars().all(bare) {
        return None;
    }
    let after = inner[end + close.len()..].trim_start_matches([' ', '\t']);
    let after = after.trim_end_matches(['\n', '\r']);
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    Some((name, is_array, open.len() + end + close.len()))
}

/// The text with every host section turned into blanks. A run of adjacent
/// sections becomes one run of spaces ending in its last newline, so the
/// parser sees one blank line instead of thousands of lines of whitespace.
/// The sections that end the file are cut off instead: nothing after them
/// needs its offsets kept, and the parser copies its input, so a file of
/// settings then 50,000 hosts costs a few hundred bytes here, not megabytes.
fn blank(text: &str, sections: &[Section]) -> String {
    let line_start = |s: &Section| text[..s.header().start].rfind('\n').map_or(0, |i| i + 1);
    let mut end = text.len();
    let mut inside = sections.len();
    while inside > 0 && sections[inside - 1].body().end == end {
        inside -= 1;
        end = line_start(&sections[inside]);
    }
    let mut bytes = text.as_bytes()[..end].to_vec();
    for s in &sections[..inside] {
        let (from, to) = (line_start(s), s.body().end);
        bytes[from..to].fill(b' ');
        if to > from && text.as_bytes()[to - 1] == b'\n' {
            bytes[to - 1] = b'\n';
        }
    }
    // Whole lines were replaced by ASCII, so the text is still UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

fn shift_one<T>(s: S<T>, off: usize) -> S<T> {
    let span = s.span();
    Spanned::new(span.start + off..span.end + off, s.into_inner())
}

/// Move every span of a host parsed from its section body by the body's
/// offset in the file. Destructured in full so a new field cannot be missed.
pub(super) fn shift(h: RawHost, off: usize) -> RawHost {
    let RawHost {
        name,
        mac,
        address,
        lease_time,
        next_server,
        filename,
        dns_servers,
        domain_name,
        boot,
    } = h;
    let opt = |s: Option<S<String>>| s.map(|s| shift_one(s, off));
    RawHost {
        name: shift_one(name, off),
        mac: shift_one(mac, off),
        address: shift_one(address, off),
        lease_time: lease_time.map(|s| shift_one(s, off)),
        next_server: opt(next_server),
        filename: opt(filename),
        dns_servers: dns_servers.map(|l| l.into_iter().map(|s| shift_one(s, off)).collect()),
        domain_name: opt(domain_name),
        boot: boot
            .into_iter()
            .map(|b| {
                let b = shift_one(b, off);
                let span = b.span();
                let RawBoot {
                    arch,
                    user_class,
                    filename,
                    next_server,
                } = b.into_inner();
                Spanned::new(
                    span,
                    RawBoot {
                        arch: arch.map(|s| shift_one(s, off)),
                        user_class: opt(user_class),
                        filename: shift_one(filename, off),
                        next_server: opt(next_server),
                    },
                )
            })
            .collect(),
    }
}
