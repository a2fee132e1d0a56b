//! A shorewall two-interface directory: zones, interfaces, policy, rules
//! (with macros such as `SSH(ACCEPT)`), masq/snat and tcrules/mangle marks.
//!
//! headnode's built-in firewall *is* the two-interface sample, so lines of the
//! sample are recognised as covered and only what the admin changed is carried
//! over: policy pairs that differ from the sample, rules the policy does not
//! already imply, the NAT setting and the marks.

use crate::config::model::{Action, PortRange, Proto, Zone};
use crate::import::draft::{Forward, Mark, Nat, Policy, Rule, Source};
use crate::import::hosts::Hosts;
use crate::import::report::{Loc, Report};
use crate::import::values;
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

mod marks;
mod nat;
mod policy;
mod rules;
