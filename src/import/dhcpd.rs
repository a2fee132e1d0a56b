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
    /// Boot rules from `if` blocks inside the host.
    pub boot: Vec<BootRule>,
}

/// A PXE boot choice by client: an `if`/`elsif` branch, or a class's
/// `match if`, that tests the architecture (option 93) and/or the user
/// class (option 77) and sets `filename` (and `next-server`).
#[derive(Debug, Clone)]
pub struct BootRule {
    pub at: Loc,
    /// The test as written, for the config's comment.
    pub test: String,
    pub arch: Option<u16>,
    pub user_class: Option<String>,
    pub filename: Param,
    pub next_server: Option<Param>,
}

/// What one alternative of a test asks of a client.
#[derive(Debug, Clone, Default, PartialEq)]
struct Wants {
    arch: Option<u16>,
    user_class: Option<String>,
}

impl Wants {
    /// Both at once; `None` when they contradict each other.
    fn and(&self, other: &Wants) -> Option<Wants> {
        fn one<T: Clone + PartialEq>(a: &Option<T>, b: &Option<T>) -> Option<Option<T>> {
            match (a, b) {
                (Some(x), Some(y)) if x != y => None,
                (Some(x), _) | (_, Some(x)) => Some(Some(x.clone())),
                (None, None) => Some(None),
            }
        }
        Some(Wants {
            arch: one(&self.arch, &other.arch)?,
            user_class: one(&self.user_class, &other.user_class)?,
        })
    }
}

/// Option names that mean option 93 without a declaration: dhcpd.conf
/// files declare it under one of these (`option arch code 93 = unsigned
/// integer 16;`), and a declaration of code 93 adds its name.
const ARCH_NAMES: &[&str] = &[
    "arch",
    "architecture-type",
    "client-arch",
    "client-architecture",
    "pxe-system-type",
];

/// PURE: the alternatives a test allows (`a or b`, each `x and y`), or why
/// it cannot be translated.
fn parse_test(words: &[String], arch_names: &[String]) -> Result<Vec<Wants>, String> {
    let mut alternatives = Vec::new();
    for alt in words.split(|w| w == "or") {
        let mut want = Wants::default();
        for term in alt.split(|w| w == "and") {
            let term: Vec<&str> = term.iter().map(String::as_str).collect();
            let this = match term.as_slice() {
                // Implied by the comparison that goes with it.
                ["exists", "user-class"] => Wants::default(),
                ["option", "user-class", "=", v] => Wants {
                    user_class: Some(v.to_string()),
                    ..Wants::default()
                },
                ["option", name, "=", v] if arch_names.iter().any(|a| a == name) => Wants {
                    arch: Some(arch_value(v)?),
                    ..Wants::default()
                },
                _ => {
                    return Err(format!(
                        "`{}` is not a test of the client architecture (option 93) or user class",
                        term.join(" ")
                    ));
                }
            };
            want = want
                .and(&this)
                .ok_or_else(|| format!("`{}` can never be true", alt.join(" ")))?;
        }
        if want == Wants::default() {
            return Err(format!(
                "`{}` tests neither the architecture nor the user class",
                alt.join(" ")
            ));
        }
        alternatives.push(want);
    }
    Ok(alternatives)
}

/// `00:07` (the bytes, as dhcpd writes them) or `7`.
fn arch_value(v: &str) -> Result<u16, String> {
    let bad = || format!("architecture `{v}` is not 00:07-style hex bytes or a number");
    if v.contains(':') {
        let bytes: Vec<u8> = v
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        return match bytes.as_slice() {
            [b] => Ok(u16::from(*b)),
            [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
            _ => Err(bad()),
        };
    }
    v.parse().map_err(|_| bad())
}

#[derive(Debug, Default)]
pub struct Dhcpd {
    pub globals: Params,
    pub subnets: Vec<Subnet>,
    pub hosts: Vec<HostDecl>,
    /// `#range a b;` lines: kept so the config can show them as comments too.
    pub commented_ranges: Vec<(Loc, String)>,
    /// Boot rules of the global and subnet scopes, first match first.
    pub boot: Vec<BootRule>,
    /// The names option 93 goes by here.
    arch_names: Vec<String>,
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
            arch_names: ARCH_NAMES.iter().map(|n| n.to_string()).collect(),
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
        let blocks: Vec<&Stmt> = stmts.iter().filter(|s| s.block.is_some()).collect();
        let mut i = 0;
        while i < blocks.len() {
            let s = blocks[i];
            i += 1;
            match branch_kind(s) {
                Some(Branch::If) => {
                    let mut chain = vec![s];
                    while let Some(next) = blocks
                        .get(i)
                        .filter(|b| matches!(branch_kind(b), Some(Branch::Elsif | Branch::Else)))
                    {
                        chain.push(next);
                        i += 1;
                    }
                    self.chain(&chain, scope, &[Wants::default()], params, report);
                }
                Some(_) => report.skip(&s.at, format!("`{s}` without its `if`")),
                None => self.block(s, scope, params, report),
            }
        }
    }

    /// An `if`/`elsif`/`else` chain: each branch's `filename` and
    /// `next-server` become boot rules for what its test (and the tests
    /// around it, `outer`) asks of the client, in order, the rules of
    /// nested chains before their branch's own; a last `else` at the top
    /// sets the scope's own `filename`.
    fn chain(
        &mut self,
        chain: &[&Stmt],
        scope: Scope,
        outer: &[Wants],
        params: &mut Params,
        report: &mut Report,
    ) {
        if matches!(scope, Scope::Group) {
            report.skip(
                &chain[0].at,
                format!(
                    "`{} {{ ... }}` in a group: not translated; give each host of the group its `boot` list",
                    chain[0].words.join(" ")
                ),
            );
            return;
        }
        for s in chain {
            let test = match branch_kind(s) {
                Some(Branch::Else) => vec![Wants::default()],
                _ => {
                    let skip = if s.words[0] == "else" { 2 } else { 1 };
                    match parse_test(&s.words[skip..], &self.arch_names) {
                        Ok(t) => t,
                        Err(why) => {
                            report.skip(
                                &s.at,
                                format!(
                                    "`{} {{`: {why}; what it sets is not translated",
                                    s.words.join(" ")
                                ),
                            );
                            continue;
                        }
                    }
                }
            };
            let wants: Vec<Wants> = outer
                .iter()
                .flat_map(|o| test.iter().filter_map(move |t| o.and(t)))
                .collect();
            self.branch(s, scope, &wants, params, report);
        }
    }

    fn branch(
        &mut self,
        s: &Stmt,
        scope: Scope,
        wants: &[Wants],
        params: &mut Params,
        report: &mut Report,
    ) {
        let body = s.block.as_deref().unwrap_or(&[]);
        let mut own = Params::new();
        for st in body.iter().filter(|st| st.block.is_none()) {
            let key = if st.words[0] == "option" && st.words.len() > 1 {
                &st.words[1]
            } else {
                &st.words[0]
            };
            let values =
                &st.words[st
                    .words
                    .len()
                    .min(if st.words[0] == "option" { 2 } else { 1 })..];
            match key.as_str() {
                "filename" | "next-server" => {
                    let k = if key == "filename" { "filename" } else { "next-server" };
                    own.insert(
                        k,
                        Param {
                            at: st.at.clone(),
                            values: values.to_vec(),
                        },
                    );
                }
                _ => report.skip(
                    &st.at,
                    format!("`{st}` inside `{}`: only filename and next-server are translated per client", s.words.join(" ")),
                ),
            }
        }
        let nested: Vec<&Stmt> = body.iter().filter(|st| st.block.is_some()).collect();
        let mut i = 0;
        while i < nested.len() {
            let st = nested[i];
            i += 1;
            if branch_kind(st) == Some(Branch::If) {
                let mut chain = vec![st];
                while let Some(next) = nested
                    .get(i)
                    .filter(|b| matches!(branch_kind(b), Some(Branch::Elsif | Branch::Else)))
                {
                    chain.push(next);
                    i += 1;
                }
                self.chain(&chain, scope, wants, params, report);
            } else {
                report.skip(
                    &st.at,
                    format!(
                        "`{st} {{ ... }}` inside `{}`: not translated",
                        s.words.join(" ")
                    ),
                );
            }
        }
        let (filename, next_server) = (own.remove("filename"), own.remove("next-server"));
        // The top level's `else`: what every other client gets.
        if wants == [Wants::default()] {
            for (k, p) in [("filename", filename), ("next-server", next_server)] {
                if let Some(p) = p {
                    if let Some(old) = params.get(k) {
                        report.note(
                            &p.at,
                            format!("{k} of the last `else` replaces the one at {}", old.at),
                        );
                    }
                    params.insert(k, p);
                }
            }
            return;
        }
        let Some(filename) = filename else {
            if let Some(p) = next_server {
                report.skip(
                    &p.at,
                    "next-server without a filename in the same branch: not translated",
                );
            }
            return;
        };
        for w in wants {
            self.boot.push(BootRule {
                at: s.at.clone(),
                test: s.words.join(" "),
                arch: w.arch,
                user_class: w.user_class.clone(),
                filename: filename.clone(),
                next_server: next_server.clone(),
            });
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
        if values.first().map(String::as_str) == Some("code") && words[0] == "option" {
            if values.get(1).map(String::as_str) == Some("93") {
                self.arch_names.push(key.to_string());
                report.note(
                    &s.at,
                    format!("`{s}`: option 93 is called {key} here; the boot rules read it"),
                );
            } else {
                report.skip(&s.at, format!("`{s}`: headnode has no custom options"));
            }
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
                let first_rule = self.boot.len();
                self.scope(body, Scope::Host, &mut own, report);
                let boot = self.boot.split_off(first_rule);
                let mac = own.remove("hardware");
                let fixed = own.remove("fixed-address");
                self.hosts.push(HostDecl {
                    at: s.at.clone(),
                    name: name.clone(),
                    mac,
                    fixed,
                    params: own,
                    boot,
                });
            }
            ("class", Scope::Global | Scope::Subnet(_)) => self.class(s, scope, report),
            _ => report.skip(
                &s.at,
                format!("`{s} {{ ... }}`: headnode has no equivalent"),
            ),
        }
    }

    /// `class "name" { match if TEST; filename ...; }`: a boot rule, as an
    /// `if` branch would be.
    fn class(&mut self, s: &Stmt, scope: Scope, report: &mut Report) {
        let body = s.block.as_deref().unwrap_or(&[]);
        let is_match = |st: &&Stmt| {
            st.block.is_none() && st.words.first().map(String::as_str) == Some("match")
        };
        let test = match body.iter().find(is_match).map(|m| m.words.as_slice()) {
            Some([_, kw, test @ ..]) if kw == "if" => parse_test(test, &self.arch_names),
            _ => Err("only a class with `match if TEST;` is translated".into()),
        };
        let wants = match test {
            Ok(w) => w,
            Err(why) => {
                report.skip(&s.at, format!("`{s} {{ ... }}`: {why}"));
                return;
            }
        };
        let rest = Stmt {
            at: s.at.clone(),
            words: s.words.clone(),
            block: Some(body.iter().filter(|st| !is_match(st)).cloned().collect()),
        };
        let mut unused = Params::new();
        self.branch(&rest, scope, &wants, &mut unused, report);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Branch {
    If,
    Elsif,
    Else,
}

fn branch_kind(s: &Stmt) -> Option<Branch> {
    let word = |i: usize| s.words.get(i).map(String::as_str);
    match (word(0)?, word(1)) {
        ("if", _) => Some(Branch::If),
        ("elsif", _) | ("else", Some("if")) => Some(Branch::Elsif),
        ("else", None) => Some(Branch::Else),
        _ => None,
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
    fn boot_tests_of_arch_and_user_class() {
        let names: Vec<String> = ARCH_NAMES.iter().map(|n| n.to_string()).collect();
        let t = |s: &str| {
            let words: Vec<String> = s.split(' ').map(String::from).collect();
            parse_test(&words, &names)
        };
        let arch = |a| Wants {
            arch: Some(a),
            user_class: None,
        };
        assert_eq!(t("option arch = 00:07").unwrap(), [arch(7)]);
        assert_eq!(
            t("option arch = 00:07 or option arch = 9").unwrap(),
            [arch(7), arch(9)]
        );
        assert_eq!(
            t("exists user-class and option user-class = iPXE and option arch = 00:00").unwrap(),
            [Wants {
                arch: Some(0),
                user_class: Some("iPXE".into())
            }]
        );
        assert!(
            t("option arch = 00:07 and option arch = 00:09")
                .unwrap_err()
                .contains("never be true")
        );
        assert!(t("exists user-class").unwrap_err().contains("neither"));
        assert!(t("not option arch = 00:07").is_err());
        assert!(t("option arch = zz").unwrap_err().contains("hex bytes"));
        assert_eq!(arch_value("01:02"), Ok(258));
        assert!(arch_value("00:01:02").is_err());
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
