//! ISC dhcpd.conf: a tokenizer (words, quoted strings, braces, `;`, `,`,
//! `#` comments), a statement tree with `include` spliced in, and the
//! parameters headnode's `[dhcp]` and `[[host]]` can carry.
//!
//! Values stay text here; the import judges them and reports at their line.

use super::report::{Loc, Report};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Semi,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: Loc,
}

/// A syntax error that stops the import of this file.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct SyntaxError {
    pub at: Loc,
    pub message: String,
}

/// One parameter as written: `option routers 192.168.1.254;` is
/// `routers` with values `["192.168.1.254"]`.
#[derive(Debug, Clone)]
pub struct Param {
    pub at: Loc,
    pub values: Vec<String>,
}

/// The parameters in one scope (global, subnet, group, host), by name.
pub type Params = BTreeMap<&'static str, Param>;

#[derive(Debug, Clone)]
pub struct Subnet {
    pub at: Loc,
    pub network: String,
    pub netmask: String,
    pub params: Params,
    /// `range a b;` (from the subnet or a pool inside it).
    pub ranges: Vec<(Loc, String, String)>,
}

#[derive(Debug, Clone)]
pub struct HostDecl {
    pub at: Loc,
    pub name: String,
    pub mac: Option<Param>,
    pub fixed: Option<Param>,
    /// Own parameters, with those of enclosing groups filled in.
    pub params: Params,
}

#[derive(Debug, Default)]
pub struct Dhcpd {
    pub globals: Params,
    pub subnets: Vec<Subnet>,
    pub hosts: Vec<HostDecl>,
    /// `#range a b;` lines: kept so the config can show them as comments too.
    pub commented_ranges: Vec<(Loc, String)>,
}

/// The parameters headnode carries. `option X` and plain `X` statements share the table.
const KNOWN: &[&str] = &[
    "subnet-mask",
    "broadcast-address",
    "routers",
    "domain-name-servers",
    "domain-name",
    "domain-search",
    "ntp-servers",
    "default-lease-time",
    "max-lease-time",
    "next-server",
    "filename",
    "host-name",
];

/// Statements that do not matter for headnode, with the reason the report gives.
const NOT_NEEDED: &[(&str, &str)] = &[
    (
        "authoritative",
        "headnode always answers authoritatively on its LAN",
    ),
    ("ddns-update-style", "headnode does no dynamic DNS updates"),
    ("ddns-updates", "headnode does no dynamic DNS updates"),
    ("log-facility", "headnode logs through its own logger"),
];

impl Dhcpd {
    /// Read `path` and the files it includes.
    pub fn load(path: &Path, report: &mut Report) -> Result<Dhcpd, SyntaxError> {
        let mut reader = Reader {
            stack: Vec::new(),
            comments: Vec::new(),
            report,
        };
        let stmts = reader.file(path, None)?;
        let comments = std::mem::take(&mut reader.comments);
        let mut d = Dhcpd {
            commented_ranges: comments,
            ..Dhcpd::default()
        };
        let mut globals = Params::new();
        d.scope(&stmts, Scope::Global, &mut globals, report);
        d.globals = globals;
        Ok(d)
    }

    fn scope(&mut self, stmts: &[Stmt], scope: Scope, params: &mut Params, report: &mut Report) {
        // Parameters first, so hosts in a group inherit those written after them too.
        for s in stmts.iter().filter(|s| s.block.is_none()) {
            self.simple(s, scope, params, report);
        }
        for s in stmts.iter().filter(|s| s.block.is_some()) {
            self.block(s, scope, params, report);
        }
    }

    fn simple(&mut self, s: &Stmt, scope: Scope, params: &mut Params, report: &mut Report) {
        let words = &s.words;
        let (key, values) = if words[0] == "option" && words.len() > 1 {
            (words[1].as_str(), &words[2..])
        } else {
            (words[0].as_str(), &words[1..])
        };
        if key == "range" {
            match (scope, values) {
                (Scope::Subnet(i), [a, b]) => {
                    self.subnets[i]
                        .ranges
                        .push((s.at.clone(), a.clone(), b.clone()))
                }
                (Scope::Subnet(_), _) => report.skip(
                    &s.at,
                    format!("`{s}`: only `range first last;` is translated (no dynamic-bootp)"),
                ),
                _ => report.skip(&s.at, format!("`{s}`: a range outside a subnet")),
            }
            return;
        }
        if matches!(scope, Scope::Host) && matches!(key, "hardware" | "fixed-address") {
            let (name, values) = if key == "hardware" {
                if values.first().map(String::as_str) != Some("ethernet") {
                    report.skip(
                        &s.at,
                        format!("`{s}`: only `hardware ethernet` is translated"),
                    );
                    return;
                }
                ("hardware", &values[1..])
            } else {
                ("fixed-address", values)
            };
            params.insert(
                name,
                Param {
                    at: s.at.clone(),
                    values: values.to_vec(),
                },
            );
            return;
        }
        if let Some(k) = KNOWN.iter().find(|k| **k == key) {
            if *k == "host-name" && !matches!(scope, Scope::Host) {
                report.skip(&s.at, format!("`{s}`: host-name outside a host block"));
                return;
            }
            params.insert(
                k,
                Param {
                    at: s.at.clone(),
                    values: values.to_vec(),
                },
            );
            return;
        }
        match NOT_NEEDED.iter().find(|(k, _)| *k == key) {
            Some((_, why)) => report.note(&s.at, format!("`{s}` left out: {why}")),
            None => report.skip(&s.at, format!("`{s}`: headnode has no equivalent")),
        }
    }

    fn block(&mut self, s: &Stmt, scope: Scope, params: &Params, report: &mut Report) {
        let body = s.block.as_deref().unwrap_or(&[]);
        let kind = s.words.first().map(String::as_str).unwrap_or("");
        match (kind, scope) {
            ("subnet", Scope::Global | Scope::Group) => {
                let (Some(network), Some("netmask"), Some(netmask)) = (
                    s.words.get(1),
                    s.words.get(2).map(String::as_str),
                    s.words.get(3),
                ) else {
                    report.skip(&s.at, format!("`{s}`: expected `subnet A netmask M {{`"));
                    return;
                };
                self.subnets.push(Subnet {
                    at: s.at.clone(),
                    network: network.clone(),
                    netmask: netmask.clone(),
                    params: Params::new(),
                    ranges: Vec::new(),
                });
                let i = self.subnets.len() - 1;
                let mut own = Params::new();
                self.scope(body, Scope::Subnet(i), &mut own, report);
                self.subnets[i].params = own;
            }
            ("pool", Scope::Subnet(i)) => {
                // A pool's ranges belong to its subnet; its permit lists are not translated.
                let mut own = Params::new();
                self.scope(body, Scope::Subnet(i), &mut own, report);
                for p in own.values() {
                    report.skip(&p.at, "parameters inside a pool are not translated");
                }
            }
            ("shared-network", Scope::Global)
            | ("group", Scope::Global | Scope::Group | Scope::Subnet(_)) => {
                // Nested groups inherit; global and subnet parameters become [dhcp] instead.
                let mut own = match scope {
                    Scope::Group => params.clone(),
                    _ => Params::new(),
                };
                self.scope(body, Scope::Group, &mut own, report);
            }
            ("host", Scope::Global | Scope::Group | Scope::Subnet(_)) => {
                let Some(name) = s.words.get(1) else {
                    report.skip(&s.at, "`host {`: a host block needs a name");
                    return;
                };
                // Hosts inherit group parameters; global and subnet ones become [dhcp].
                let mut own = match scope {
                    Scope::Group => params.clone(),
                    _ => Params::new(),
                };
                self.scope(body, Scope::Host, &mut own, report);
                let mac = own.remove("hardware");
                let fixed = own.remove("fixed-address");
                self.hosts.push(HostDecl {
                    at: s.at.clone(),
                    name: name.clone(),
                    mac,
                    fixed,
                    params: own,
                });
            }
            _ => report.skip(
                &s.at,
                format!("`{s} {{ ... }}`: headnode has no equivalent"),
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Scope {
    Global,
    Subnet(usize),
    Group,
    Host,
}

/// A statement: words up to `;`, or up to `{` with a body.
#[derive(Debug, Clone)]
struct Stmt {
    at: Loc,
    words: Vec<String>,
    block: Option<Vec<Stmt>>,
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words.join(" "))?;
        if self.block.is_none() {
            f.write_str(";")?;
        }
        Ok(())
    }
}

const MAX_INCLUDE_DEPTH: usize = 8;

/// Reads a file and the files it includes into one statement list.
struct Reader<'r> {
    stack: Vec<PathBuf>,
    comments: Vec<(Loc, String)>,
    report: &'r mut Report,
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, from: Option<&Loc>) -> Result<Vec<Stmt>, SyntaxError> {
        let file: Rc<str> = path.display().to_string().into();
        let here = Loc {
            file: file.clone(),
            line: 1,
        };
        let at = from.unwrap_or(&here);
        if self.stack.len() >= MAX_INCLUDE_DEPTH || self.stack.iter().any(|p| p == path) {
            return Err(SyntaxError {
                at: at.clone(),
                message: format!("include of {} loops or nests too deep", path.display()),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| SyntaxError {
            at: at.clone(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        self.report.saw(&file);
        commented_ranges(&text, &file, &mut self.comments);
        let tokens = tokenize(&text, &file)?;
        let mut pos = 0;
        self.stack.push(path.to_owned());
        let stmts = self.statements(&tokens, &mut pos, false, path)?;
        self.stack.pop();
        Ok(stmts)
    }

    fn statements(
        &mut self,
        tokens: &[Token],
        pos: &mut usize,
        nested: bool,
        path: &Path,
    ) -> Result<Vec<Stmt>, SyntaxError> {
        let mut out = Vec::new();
        let mut words: Vec<String> = Vec::new();
        let mut start: Option<Loc> = None;
        while let Some(t) = tokens.get(*pos) {
            *pos += 1;
            match &t.tok {
                Tok::Word(w) | Tok::Str(w) => {
                    start.get_or_insert_with(|| t.at.clone());
                    words.push(w.clone());
                }
                // Lists keep their items; the commas only separate them.
                Tok::Comma => {}
                Tok::Semi => {
                    let Some(at) = start.take() else { continue };
                    let stmt = Stmt {
                        at,
                        words: std::mem::take(&mut words),
                        block: None,
                    };
                    if stmt.words[0] == "include" {
                        out.extend(self.include(&stmt, path)?);
                    } else {
                        out.push(stmt);
                    }
                }
                Tok::Open => {
                    let at = start.take().unwrap_or_else(|| t.at.clone());
                    let body = self.statements(tokens, pos, true, path)?;
                    out.push(Stmt {
                        at,
                        words: std::mem::take(&mut words),
                        block: Some(body),
                    });
                }
                Tok::Close => {
                    if !nested {
                        return Err(SyntaxError {
                            at: t.at.clone(),
                            message: "`}` without a matching `{`".into(),
                        });
                    }
                    if let Some(at) = start {
                        return Err(SyntaxError {
                            at,
                            message: format!("`{}` is missing its `;`", words.join(" ")),
                        });
                    }
                    return Ok(out);
                }
            }
        }
        if let Some(at) = start {
            return Err(SyntaxError {
                at,
                message: format!("`{}` is missing its `;`", words.join(" ")),
            });
        }
        if nested {
            let at = tokens.last().map_or_else(
                || Loc {
                    file: path.display().to_string().into(),
                    line: 1,
                },
                |t| t.at.clone(),
            );
            return Err(SyntaxError {
                at,
                message: "a `{` block is not closed before the end of the file".into(),
            });
        }
        Ok(out)
    }

    /// `include "file";` — read as given (relative to the including file); when
    /// that does not exist (a copy of /etc/dhcp imported elsewhere), the file of
    /// the same name next to the including file.
    fn include(&mut self, stmt: &Stmt, path: &Path) -> Result<Vec<Stmt>, SyntaxError> {
        let Some(target) = stmt.words.get(1) else {
            self.report.skip(&stmt.at, "`include` without a file name");
            return Ok(Vec::new());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let given = Path::new(target);
        let candidate = dir.join(given);
        let file = if candidate.exists() {
            candidate
        } else {
            let beside = dir.join(given.file_name().unwrap_or(given.as_os_str()));
            if beside.exists() {
                self.report.note(
                    &stmt.at,
                    format!(
                        "{target} does not exist here; read {} instead",
                        beside.display()
                    ),
                );
            }
            beside
        };
        self.file(&file, Some(&stmt.at))
    }
}

fn tokenize(text: &str, file: &Rc<str>) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let at = |line| Loc {
        file: file.clone(),
        line,
    };
    while let Some(c) = chars.next() {
        let tok = match c {
            '\n' => {
                line += 1;
                continue;
            }
            c if c.is_whitespace() => continue,
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
                continue;
            }
            '{' => Tok::Open,
            '}' => Tok::Close,
            ';' => Tok::Semi,
            ',' => Tok::Comma,
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(SyntaxError {
                                at: at(start),
                                message: "a quoted string is not closed".into(),
                            });
                        }
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    at: at(start),
                });
                continue;
            }
            c => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};,\"#".contains(n) {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                Tok::Word(w)
            }
        };
        out.push(Token { tok, at: at(line) });
    }
    Ok(out)
}

/// `#range a b;` lines (commented-out ranges stay comments; the import shows them).
fn commented_ranges(text: &str, file: &Rc<str>, out: &mut Vec<(Loc, String)>) {
    for (i, l) in text.lines().enumerate() {
        let Some(rest) = l.trim_start().strip_prefix('#') else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with("range ") && rest.ends_with(';') {
            out.push((
                Loc {
                    file: file.clone(),
                    line: i + 1,
                },
                rest.to_string(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Result<Dhcpd, SyntaxError>, Report) {
        let dir = std::env::temp_dir().join(format!("headnode-dhcpd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.conf", text.len()));
        std::fs::write(&path, text).unwrap();
        let mut r = Report::default();
        let d = Dhcpd::load(&path, &mut r);
        (d, r)
    }

    #[test]
    fn braces_quotes_comments() {
        let (d, r) = parse(
            "option domain-name \"a;b # c\"; # comment { \n\
             option domain-name-servers 192.0.2.1, 192.0.2.2;\n\
             subnet 10.0.0.0 netmask 255.255.255.0 {\n  #range 10.0.0.10 10.0.0.20;\n  range 10.0.0.30 10.0.0.40;\n\
             group { filename \"pxe\"; host a { hardware ethernet 00:11:22:33:44:55; fixed-address 10.0.0.5; } }\n}\n",
        );
        let d = d.unwrap();
        assert_eq!(d.globals["domain-name"].values, ["a;b # c"]);
        assert_eq!(
            d.globals["domain-name-servers"].values,
            ["192.0.2.1", "192.0.2.2"]
        );
        assert_eq!(d.subnets[0].ranges.len(), 1);
        assert_eq!(d.subnets[0].ranges[0].0.line, 5);
        assert_eq!(d.commented_ranges.len(), 1);
        assert_eq!(d.hosts[0].params["filename"].values, ["pxe"]);
        assert_eq!(d.hosts[0].fixed.as_ref().unwrap().values, ["10.0.0.5"]);
        assert!(r.entries.is_empty(), "{r}");
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let (d, _) = parse("subnet 10.0.0.0 netmask 255.0.0.0 {\n range 10.0.0.1 10.0.0.2\n}\n");
        assert!(
            d.unwrap_err()
                .to_string()
                .ends_with(":2: `range 10.0.0.1 10.0.0.2` is missing its `;`")
        );
        let (d, _) = parse("host a {\n");
        assert!(d.unwrap_err().to_string().contains("not closed"));
        let (d, _) = parse("}\n");
        assert!(d.unwrap_err().to_string().contains("without a matching"));
    }
}
