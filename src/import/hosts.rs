//! /etc/hosts: names for addresses. The import uses it to name DHCP hosts,
//! to resolve names in dhcpd.conf and ipvsadm (`-r node1:8000`), and to find
//! the head node's own public address.

use super::report::{Loc, Report};
use super::values;
use std::net::Ipv4Addr;
use std::path::Path;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub struct Entry {
    pub at: Loc,
    /// The address as written.
    pub text: String,
    /// The parsed address, or why it is not one.
    pub addr: Result<Ipv4Addr, String>,
    pub names: Vec<String>,
}

impl Entry {
    /// The name to use for a `[[host]]`: the first one that is a plain label
    /// (`node` out of `node.example.com node`), else the first label of the first name.
    pub fn short_name(&self) -> Option<&str> {
        self.names
            .iter()
            .find(|n| !n.contains('.'))
            .or_else(|| self.names.first())
            .map(|n| n.split('.').next().unwrap_or(n))
    }
}

#[derive(Debug, Default)]
pub struct Hosts {
    pub entries: Vec<Entry>,
}

impl Hosts {
    pub fn parse(text: &str, path: &Path, report: &mut Report) -> Hosts {
        let file: Rc<str> = path.display().to_string().into();
        report.saw(&file);
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let at = Loc {
                file: file.clone(),
                line: i + 1,
            };
            let line = raw.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(addr) = words.next() else { continue };
            let names: Vec<String> = words.map(str::to_string).collect();
            // IPv6 lines (::1, ff02::1) name nothing headnode's IPv4 config uses.
            if addr.contains(':') {
                continue;
            }
            if names.is_empty() {
                report.skip(&at, format!("\"{addr}\" has no names"));
                continue;
            }
            let parsed = values::ipv4(addr);
            if let Err(why) = &parsed {
                report.error(
                    &at,
                    format!("{why}; the names {} cannot be used", names.join(", ")),
                );
            }
            entries.push(Entry {
                at,
                text: addr.to_string(),
                addr: parsed,
                names,
            });
        }
        Hosts { entries }
    }

    /// The entry that names `name` (any of its names, case-insensitive).
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    pub fn by_addr(&self, addr: Ipv4Addr) -> Option<&Entry> {
        self.entries.iter().find(|e| e.addr == Ok(addr))
    }

    /// An address or a host name to an address; the error says which and why.
    pub fn resolve(&self, text: &str) -> Result<Ipv4Addr, String> {
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return values::ipv4(text);
        }
        match self.by_name(text) {
            Some(e) => e
                .addr
                .clone()
                .map_err(|why| format!("\"{text}\" is named in {} as {}, but {why}", e.at, e.text)),
            None => Err(format!(
                "\"{text}\" is neither an address nor a name in the hosts file"
            )),
        }
    }
}
