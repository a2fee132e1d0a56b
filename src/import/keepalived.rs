//! keepalived.conf (with `include`): its `virtual_server` blocks (real
//! servers, TCP_CHECK and HTTP_GET health checks, sorry server) into the
//! shapes the ipvsadm reader gives, and its `vrrp_instance` (state, priority,
//! router id, advert interval, unicast peer, interface, virtual addresses)
//! for `[ha]`; `build` decides which virtual address is the LAN's. Everything
//! else (global_defs, vrrp_script, authentication, notify scripts, ...) is
//! reported at its line.

use super::draft::{Health, Key, Real, Source, Virtual};
use super::report::{Loc, Report};
use super::values;
use crate::config::model::{Method, Proto, SCHEDULERS};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What keepalived.conf says that headnode can carry.
#[derive(Debug, Default)]
pub struct Keepalived {
    pub virtuals: Vec<Virtual>,
    /// Every `vrrp_instance` in order; the first gives `[ha]` its settings.
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone)]
pub struct Instance {
    /// The `vrrp_instance NAME {` line.
    pub src: Source,
    pub name: String,
    pub state: Option<(Source, State)>,
    pub nopreempt: bool,
    /// 1-254 (keepalived's 255, the address owner, is read as 254).
    pub priority: Option<(Source, u8)>,
    pub interface: Option<(Source, String)>,
    pub router_id: Option<(Source, u8)>,
    /// Milliseconds.
    pub advert_ms: Option<(Source, u64)>,
    pub peers: Vec<(Source, Ipv4Addr)>,
    pub vips: Vec<Vip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Master,
    Backup,
}

/// One line of `virtual_ipaddress`.
#[derive(Debug, Clone)]
pub struct Vip {
    pub src: Source,
    pub addr: Ipv4Addr,
    /// The prefix length as written (keepalived takes /32 without one).
    pub len: Option<u8>,
    /// `dev X`; without it keepalived puts the address on the instance's interface.
    pub dev: Option<String>,
}

const MAX_DEPTH: usize = 8;
/// Deeper blocks than keepalived's own (real_server > HTTP_GET > url) are damage.
const MAX_NESTING: usize = 16;

pub fn load(path: &Path, report: &mut Report) -> Result<Keepalived, String> {
    let mut toks = Vec::new();
    read(path, 0, &mut toks, report)?;
    let stmts = tree(toks, report);
    let mut k = Keepalived::default();
    for s in &stmts {
        top(s, &mut k, report);
    }
    Ok(k)
}

// ---- syntax: words, blocks, comments, quotes, include ----------------------

#[derive(Debug)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    at: Loc,
    /// The line as written, without its comment.
    text: Rc<str>,
}

fn read(
    path: &Path,
    depth: usize,
    out: &mut Vec<Token>,
    report: &mut Report,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: Rc<str> = path.display().to_string().into();
    report.saw(&file);
    for (i, raw) in text.lines().enumerate() {
        let at = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let (words, end) = split_line(raw);
        let line: Rc<str> = raw.get(..end).unwrap_or(raw).trim().into();
        if let Some(Tok::Word(w)) = words.first()
            && w == "include"
        {
            include(path, &at, &words[1..], depth, out, report);
            continue;
        }
        for tok in words {
            out.push(Token {
                tok,
                at: at.clone(),
                text: line.clone(),
            });
        }
        out.push(Token {
            tok: Tok::Eol,
            at,
            text: line,
        });
    }
    Ok(())
}

/// The tokens of one line, and where its comment starts (a `#` or `!`
/// beginning a word, outside quotes).
fn split_line(raw: &str) -> (Vec<Tok>, usize) {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if !word.is_empty() {
            out.push(Tok::Word(std::mem::take(word)));
        }
    };
    let mut chars = raw.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '#' | '!' if word.is_empty() => return (out, at),
            '"' => {
                flush(&mut word, &mut out);
                let mut quoted = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    quoted.push(c);
                }
                out.push(Tok::Word(quoted));
            }
            '{' => {
                flush(&mut word, &mut out);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut word, &mut out);
                out.push(Tok::Close);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    (out, raw.len())
}

/// `include PATTERN`: followed where the file (or the files the pattern's
/// `*` and `?` match) can be found, as written or beside this file.
fn include(
    from: &Path,
    at: &Loc,
    args: &[Tok],
    depth: usize,
    out: &mut Vec<Token>,
    report: &mut Report,
) {
    let patterns: Vec<&str> = args
        .iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    if patterns.is_empty() {
        return report.error(at, "`include` names no file");
    }
    if depth >= MAX_DEPTH {
        return report.error(
            at,
            format!("includes nest deeper than {MAX_DEPTH}; not followed"),
        );
    }
    for p in patterns {
        let files = include_paths(from, p);
        if files.is_empty() {
            report.skip(
                at,
                format!("`include {p}`: no such file here or beside this file; not followed (give its contents in this file to import them)"),
            );
        }
        for f in files {
            if let Err(why) = read(&f, depth + 1, out, report) {
                report.skip(at, format!("`include {p}`: {why}; not followed"));
            }
        }
    }
}

fn include_paths(from: &Path, pattern: &str) -> Vec<PathBuf> {
    let given = Path::new(pattern);
    let Some(name) = given.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let here = from.parent().unwrap_or(Path::new("."));
    // A copy of /etc/keepalived imported elsewhere: the directory (or file) beside this one.
    let mut dirs: Vec<PathBuf> = Vec::new();
    match given.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) if d.is_absolute() => {
            dirs.push(d.to_path_buf());
            if let Some(last) = d.file_name() {
                dirs.push(here.join(last));
            }
        }
        Some(d) => dirs.push(here.join(d)),
        None => {}
    }
    dirs.push(here.to_path_buf());
    for dir in dirs {
        if !dir.is_dir() {
            continue;
        }
        if !name.contains(['*', '?']) {
            let f = dir.join(name);
            if f.is_file() {
                return vec![f];
            }
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| glob(name, n))
            })
            .collect();
        files.sort();
        if !files.is_empty() {
            return files;
        }
    }
    Vec::new()
}

/// Shell-style `*` and `?` matching of one file name.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(c) if *c == '?' || *c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i.min(p.len())..].iter().all(|c| *c == '*')
}

/// One statement: the words of a line, and the block it opens.
#[derive(Debug)]
struct Stmt {
    at: Loc,
    text: Rc<str>,
    words: Vec<String>,
    block: Option<Vec<Stmt>>,
}

impl Stmt {
    fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    fn src(&self) -> Source {
        Source {
            at: self.at.clone(),
            text: self.text.to_string(),
        }
    }
    /// The statement in messages: its words (without the braces).
    fn shown(&self) -> String {
        self.words.join(" ")
    }
    fn body(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }
}

fn tree(toks: Vec<Token>, report: &mut Report) -> Vec<Stmt> {
    // The open blocks: each statement that opened one, with what it holds so far.
    let mut stack: Vec<(Stmt, Vec<Stmt>)> = Vec::new();
    let mut top: Vec<Stmt> = Vec::new();
    let mut cur: Option<Stmt> = None;
    fn finish(cur: &mut Option<Stmt>, stack: &mut [(Stmt, Vec<Stmt>)], top: &mut Vec<Stmt>) {
        if let Some(s) = cur.take() {
            match stack.last_mut() {
                Some((_, list)) => list.push(s),
                None => top.push(s),
            }
        }
    }
    for t in toks {
        match t.tok {
            Tok::Word(w) => cur
                .get_or_insert_with(|| Stmt {
                    at: t.at.clone(),
                    text: t.text.clone(),
                    words: Vec::new(),
                    block: None,
                })
                .words
                .push(w),
            Tok::Eol => finish(&mut cur, &mut stack, &mut top),
            Tok::Open => {
                if stack.len() >= MAX_NESTING {
                    report.error(
                        &t.at,
                        format!("blocks nest deeper than {MAX_NESTING}; this `{{` is ignored"),
                    );
                    continue;
                }
                // `keyword` on one line and `{` on the next open one block.
                let opener = match cur.take() {
                    Some(s) => s,
                    None => {
                        let list = match stack.last_mut() {
                            Some((_, list)) => list,
                            None => &mut top,
                        };
                        match list.pop() {
                            Some(s) if s.block.is_none() => s,
                            other => {
                                list.extend(other);
                                Stmt {
                                    at: t.at.clone(),
                                    text: t.text.clone(),
                                    words: Vec::new(),
                                    block: None,
                                }
                            }
                        }
                    }
                };
                stack.push((opener, Vec::new()));
            }
            Tok::Close => {
                finish(&mut cur, &mut stack, &mut top);
                match stack.pop() {
                    Some((mut s, body)) => {
                        s.block = Some(body);
                        finish(&mut Some(s), &mut stack, &mut top);
                    }
                    None => report.error(&t.at, "`}` closes no block; ignored"),
                }
            }
        }
    }
    finish(&mut cur, &mut stack, &mut top);
    while let Some((mut s, body)) = stack.pop() {
        report.error(
            &s.at,
            format!(
                "`{} {{` is never closed; read up to the end of the file",
                s.shown()
            ),
        );
        s.block = Some(body);
        finish(&mut Some(s), &mut stack, &mut top);
    }
    top
}

// ---- meaning -----------------------------------------------------------

fn top(s: &Stmt, k: &mut Keepalived, report: &mut Report) {
    let why = match s.key() {
        "virtual_server" => return virtual_server(s, k, report),
        "vrrp_instance" => {
            if let Some(i) = instance(s, report) {
                k.instances.push(i);
            }
            return;
        }
        "" => "a block without a keyword",
        "global_defs" => {
            "keepalived's global settings (notification mail, router_id, script user) stay in keepalived.conf, which includes the file headnode writes for [ha]"
        }
        "vrrp_script" => {
            "headnode's VRRP instance tracks its interfaces, not scripts; a check that should move the addresses has no place in [ha]"
        }
        "vrrp_sync_group" => {
            "headnode's one VRRP instance moves both virtual addresses together, as a sync group does"
        }
        "virtual_server_group" => {
            "headnode has no groups of virtual services: write one [[balancer.virtual]] per address and port"
        }
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "the box's own addresses and routes belong to /etc/network/interfaces (--interfaces)"
        }
        "vrrp_track_process" | "vrrp_track_file" | "track_file" | "track_process"
        | "bfd_instance" => "headnode's VRRP instance tracks its interfaces only",
        _ => "not a keepalived section headnode imports",
    };
    report.skip(&s.at, format!("`{}`: {why}", s.shown()));
}

/// A number in `lo..=hi`, or an error naming the statement.
fn number(s: &Stmt, lo: u64, hi: u64, report: &mut Report) -> Option<u64> {
    let n = s
        .arg(1)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| (lo..=hi).contains(n));
    if n.is_none() {
        report.error(
            &s.at,
            format!("`{}`: needs a number {lo}-{hi}; left out", s.shown()),
        );
    }
    n
}

/// keepalived's timers: seconds, fractions allowed (`0.5`), as milliseconds.
fn millis(text: &str) -> Option<u64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || int.len() > 9 {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ms = 0;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms += u64::from(b - b'0') * [100, 10, 1][i];
    }
    Some(secs * 1000 + ms)
}

fn timer(s: &Stmt, report: &mut Report) -> Option<u64> {
    let ms = s.arg(1).and_then(millis).filter(|ms| *ms > 0);
    if ms.is_none() {
        report.error(
            &s.at,
            format!(
                "`{}`: needs a positive number of seconds; left out",
                s.shown()
            ),
        );
    }
    ms
}

fn instance(s: &Stmt, report: &mut Report) -> Option<Instance> {
    if s.block.is_none() {
        report.error(
            &s.at,
            format!("`{}` has no `{{ ... }}` block; left out", s.shown()),
        );
        return None;
    }
    let mut ins = Instance {
        src: s.src(),
        name: s.arg(1).unwrap_or("").to_string(),
        state: None,
        nopreempt: false,
        priority: None,
        interface: None,
        router_id: None,
        advert_ms: None,
        peers: Vec::new(),
        vips: Vec::new(),
    };
    for st in s.body() {
        let shown = st.shown();
        match st.key() {
            "state" => match st.arg(1).map(str::to_ascii_uppercase).as_deref() {
                Some("MASTER") => ins.state = Some((st.src(), State::Master)),
                Some("BACKUP") => ins.state = Some((st.src(), State::Backup)),
                _ => report.error(
                    &st.at,
                    format!("`{shown}`: the state is MASTER or BACKUP; left out"),
                ),
            },
            "interface" => match st.arg(1) {
                Some(i) => ins.interface = Some((st.src(), i.to_string())),
                None => report.error(&st.at, "`interface` names no interface; left out"),
            },
            "virtual_router_id" => {
                if let Some(n) = number(st, 1, 255, report) {
                    ins.router_id = Some((st.src(), n as u8));
                }
            }
            "priority" => {
                if let Some(n) = number(st, 1, 255, report) {
                    if n == 255 {
                        report.note(&st.at, "priority 255 marks keepalived's address owner; headnode's priorities are 1-254, so 254");
                    }
                    ins.priority = Some((st.src(), n.min(254) as u8));
                }
            }
            "advert_int" => {
                if let Some(ms) = timer(st, report) {
                    ins.advert_ms = Some((st.src(), ms));
                }
            }
            "unicast_peer" => {
                if st.block.is_none() {
                    report.error(&st.at, "`unicast_peer` has no `{ ... }` block");
                }
                for p in st.body() {
                    match values::ipv4(p.key()) {
                        Ok(a) => {
                            if p.words.len() > 1 {
                                report.skip(&p.at, format!("`{}`: only the address is imported", p.shown()));
                            }
                            ins.peers.push((p.src(), a));
                        }
                        Err(_) if p.key().contains(':') => report.skip(
                            &p.at,
                            format!("`{}`: IPv6 peers are not imported", p.shown()),
                        ),
                        Err(why) => report.error(&p.at, format!("unicast_peer: {why}")),
                    }
                }
            }
            "virtual_ipaddress" => {
                if st.block.is_none() {
                    report.error(&st.at, "`virtual_ipaddress` has no `{ ... }` block");
                }
                for v in st.body() {
                    if let Some(vip) = vip(v, report) {
                        ins.vips.push(vip);
                    }
                }
            }
            "nopreempt" => {
                ins.nopreempt = true;
                report.note(
                    &st.at,
                    "headnode's instance is nopreempt too: a head node that comes back does not take the addresses back",
                );
            }
            "preempt" | "preempt_delay" => report.skip(
                &st.at,
                format!("`{shown}`: headnode's instance never preempts (nopreempt): a head node that comes back does not take the addresses back"),
            ),
            "unicast_src_ip" => report.note(
                &st.at,
                format!("`{shown}`: headnode's instance sends from this head node's own address on ha.interface"),
            ),
            "authentication" => report.skip(
                &st.at,
                "`authentication`: VRRP version 3, which headnode's instance speaks, has no authentication; keep VRRP on the private LAN",
            ),
            "track_script" => report.skip(
                &st.at,
                "`track_script`: headnode's instance tracks its interfaces, not scripts",
            ),
            "track_interface" => report.note(
                &st.at,
                "`track_interface`: headnode's instance tracks the public and private interfaces",
            ),
            "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop"
            | "notify_deleted" | "notify_master_rx_lower_pri" => report.skip(
                &st.at,
                format!("`{shown}`: headnode's instance runs only `headnode ha-notify`; this script is no longer called"),
            ),
            "smtp_alert" => report.skip(
                &st.at,
                "`smtp_alert`: headnode's instance sends no mail",
            ),
            "version" | "vrrp_version" => report.note(
                &st.at,
                format!("`{shown}`: headnode's instance speaks VRRP version 3 (both head nodes must run headnode's)"),
            ),
            "lvs_sync_daemon_interface" => report.note(
                &st.at,
                format!("`{shown}`: headnode runs the IPVS sync daemon on ha.interface"),
            ),
            "virtual_routes" | "virtual_rules" | "virtual_ipaddress_excluded" => report.skip(
                &st.at,
                format!("`{}`: headnode's instance moves its two virtual addresses only", st.key()),
            ),
            _ => report.skip(
                &st.at,
                format!("`{shown}`: not imported (headnode writes its own vrrp_instance)"),
            ),
        }
    }
    Some(ins)
}

/// `ADDRESS[/LEN] [dev IFACE] [label ...] ...`.
fn vip(v: &Stmt, report: &mut Report) -> Option<Vip> {
    let first = v.key();
    if first.contains(':') {
        report.skip(
            &v.at,
            format!("`{}`: IPv6 addresses are not imported", v.shown()),
        );
        return None;
    }
    let (addr, len) = match first.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (first, None),
    };
    let addr = match values::ipv4(addr) {
        Ok(a) => a,
        Err(why) => {
            report.error(&v.at, format!("virtual_ipaddress: {why}; left out"));
            return None;
        }
    };
    let len = match len {
        None => None,
        Some(l) => {
            match l.parse::<u8>().ok().filter(|l| (1..=32).contains(l)) {
                Some(l) => Some(l),
                None => {
                    report.error(
                    &v.at,
                    format!("virtual_ipaddress `{first}`: prefix length \"{l}\" is not 1-32; left out"),
                );
                    return None;
                }
            }
        }
    };
    let mut dev = None;
    let mut rest = v.words.iter().skip(1);
    let mut other = Vec::new();
    while let Some(w) = rest.next() {
        match w.as_str() {
            "dev" => dev = rest.next().cloned(),
            w => other.push(w.to_string()),
        }
    }
    if !other.is_empty() {
        report.skip(
            &v.at,
            format!(
                "`{}`: only the address, its prefix and dev are imported",
                v.shown()
            ),
        );
    }
    Some(Vip {
        src: v.src(),
        addr,
        len,
        dev,
    })
}

/// A check as read, before the service's `delay_loop` is known.
struct CheckDraft {
    src: Source,
    check: &'static str,
    path: Option<String>,
    status: Option<u16>,
    timeout_ms: Option<u64>,
    retry: Option<u32>,
    delay_loop: Option<u64>,
}

struct RealDraft {
    real: Real,
    method: Option<(Method, Loc)>,
    checks: Vec<CheckDraft>,
}

fn virtual_server(s: &Stmt, k: &mut Keepalived, report: &mut Report) {
    let shown = s.shown();
    enum Head {
        Mark(u32),
        Addr(Ipv4Addr, u16),
    }
    let head = match (s.arg(1), s.arg(2)) {
        (Some("group"), _) => {
            return report.skip(&s.at, format!("`{shown}`: headnode has no groups of virtual services: write one [[balancer.virtual]] per address and port"));
        }
        (Some("fwmark"), Some(m)) => match m.parse::<u32>().ok().filter(|m| *m > 0) {
            Some(m) => Head::Mark(m),
            None => {
                return report.error(
                    &s.at,
                    format!("`{shown}`: fwmark \"{m}\" is not a positive number; left out"),
                );
            }
        },
        (Some(a), Some(_)) if a.contains(':') => {
            return report.skip(&s.at, format!("`{shown}`: IPv6 services are not imported"));
        }
        (Some(a), Some(p)) => match (values::ipv4(a), values::port(p)) {
            (Ok(a), Ok(p)) => Head::Addr(a, p),
            (Err(why), _) | (_, Err(why)) => {
                return report.error(&s.at, format!("`{shown}`: {why}; left out"));
            }
        },
        _ => {
            return report.error(
                &s.at,
                format!("`{shown}`: needs ADDRESS PORT or fwmark N; left out"),
            );
        }
    };
    if s.block.is_none() {
        return report.error(
            &s.at,
            format!("`{shown}` has no `{{ ... }}` block; left out"),
        );
    }
    let mut scheduler = None;
    let mut method = None;
    let mut proto = Proto::Tcp;
    let mut persistence = None;
    let mut netmask = None;
    let mut delay_loop = None;
    let mut sorry = None;
    let mut reals: Vec<RealDraft> = Vec::new();
    let mut bad = false;
    for st in s.body() {
        let sh = st.shown();
        match st.key() {
            "lb_algo" | "lvs_sched" => match st.arg(1) {
                Some(a) if SCHEDULERS.contains(&a) => scheduler = Some(a.to_string()),
                _ => {
                    report.error(&st.at, format!("`{sh}`: not an IPVS scheduler; the service is left out"));
                    bad = true;
                }
            },
            "lb_kind" | "lvs_method" => match forwarding(st.arg(1)) {
                Some(m) => method = Some(m),
                None => {
                    report.error(&st.at, format!("`{sh}`: headnode forwards by NAT (masq), DR (route) or TUN (tunnel); the service is left out"));
                    bad = true;
                }
            },
            "protocol" => match st.arg(1).map(str::to_ascii_uppercase).as_deref() {
                Some("TCP") => proto = Proto::Tcp,
                Some("UDP") => proto = Proto::Udp,
                _ => {
                    report.skip(&st.at, format!("`{sh}`: headnode balances TCP and UDP; the service is left out"));
                    bad = true;
                }
            },
            "persistence_timeout" => {
                if let Some(n) = number(st, 0, u64::from(u32::MAX), report) {
                    persistence = Some(n as u32).filter(|n| *n > 0);
                }
            }
            "persistence_granularity" => match st.arg(1).map(values::ipv4) {
                Some(Ok(m)) if values::prefix_of(&m).is_some() => netmask = Some(m),
                _ => report.error(&st.at, format!("`{sh}`: not a netmask; left out")),
            },
            "delay_loop" => delay_loop = timer(st, report),
            "sorry_server" => match (st.arg(1).map(values::ipv4), st.arg(2).map(values::port)) {
                (Some(Ok(a)), Some(Ok(p))) => sorry = Some((a, p)),
                (Some(Err(why)), _) | (_, Some(Err(why))) => {
                    report.error(&st.at, format!("`{sh}`: {why}; left out"))
                }
                _ => report.error(&st.at, format!("`{sh}`: needs ADDRESS PORT; left out")),
            },
            "real_server" => {
                if let Some(r) = real_server(st, report) {
                    if reals
                        .iter()
                        .any(|x| x.real.addr == r.real.addr && x.real.port == r.real.port)
                    {
                        report.error(&st.at, format!("`{sh}`: this real server is already in the service; left out"));
                    } else {
                        reals.push(r);
                    }
                }
            }
            "alpha" | "omega" | "quorum" | "quorum_up" | "quorum_down" | "hysteresis" => report.skip(
                &st.at,
                format!("`{sh}`: headnode has no quorum: a service keeps whichever real servers are healthy"),
            ),
            "ha_suspend" => report.skip(
                &st.at,
                "`ha_suspend`: headnode keeps the virtual services on both head nodes; the IPVS sync daemon follows VRRP",
            ),
            "inhibit_on_failure" => report.skip(
                &st.at,
                "`inhibit_on_failure`: headnode drains a failed real server its own way",
            ),
            "virtualhost" => report.skip(
                &st.at,
                format!("`{sh}`: headnode's http check sends no chosen Host header"),
            ),
            _ => report.skip(&st.at, format!("`{sh}`: not imported")),
        }
    }
    if bad {
        return;
    }
    let key = match head {
        Head::Mark(m) => Key::Fwmark(m),
        Head::Addr(a, p) => Key::Addr(proto, a, p),
    };
    if k.virtuals.iter().any(|v| v.key == key) {
        return report.error(
            &s.at,
            format!("`{shown}`: this service was already defined; left out"),
        );
    }
    let scheduler = scheduler.unwrap_or_else(|| {
        report.note(
            &s.at,
            "no lb_algo: scheduler = \"wlc\" (what ipvsadm uses without -s)",
        );
        "wlc".into()
    });
    // keepalived's default when neither the service nor a real says.
    let method = method.unwrap_or(Method::Masq);
    for r in &reals {
        if let Some((m, at)) = &r.method
            && *m != method
        {
            report.error(at, format!("forwarding method {m} differs from the service's ({method}); headnode uses one method per service"));
        }
    }
    let health = health(&reals, delay_loop, report);
    let mut srcs = vec![s.src()];
    srcs.extend(reals.iter().map(|r| r.real.src.clone()));
    k.virtuals.push(Virtual {
        srcs,
        key,
        scheduler,
        method,
        persistence,
        netmask,
        reals: reals.into_iter().map(|r| r.real).collect(),
        tool: "keepalived",
        health,
        sorry,
    });
}

fn forwarding(word: Option<&str>) -> Option<Method> {
    match word?.to_ascii_uppercase().as_str() {
        "NAT" => Some(Method::Masq),
        "DR" => Some(Method::Route),
        "TUN" => Some(Method::Tunnel),
        _ => None,
    }
}

fn real_server(s: &Stmt, report: &mut Report) -> Option<RealDraft> {
    let shown = s.shown();
    let addr = match s.arg(1).map(values::ipv4) {
        Some(Ok(a)) => a,
        Some(Err(_)) if s.arg(1).is_some_and(|a| a.contains(':')) => {
            report.skip(
                &s.at,
                format!("`{shown}`: IPv6 real servers are not imported"),
            );
            return None;
        }
        Some(Err(why)) => {
            report.error(&s.at, format!("`{shown}`: {why}; left out"));
            return None;
        }
        None => {
            report.error(&s.at, "`real_server` needs ADDRESS PORT; left out");
            return None;
        }
    };
    let port = match s.arg(2).map(values::port) {
        Some(Ok(p)) => Some(p),
        Some(Err(why)) => {
            report.error(&s.at, format!("`{shown}`: {why}; left out"));
            return None;
        }
        None => None,
    };
    let mut r = RealDraft {
        real: Real {
            src: s.src(),
            addr,
            port,
            weight: 1,
            upper: 0,
            lower: 0,
        },
        method: None,
        checks: Vec::new(),
    };
    for st in s.body() {
        let sh = st.shown();
        match st.key() {
            "weight" => {
                if let Some(n) = number(st, 0, 65535, report) {
                    r.real.weight = n as u32;
                }
            }
            "uthreshold" => {
                if let Some(n) = number(st, 0, 65535, report) {
                    r.real.upper = n as u32;
                }
            }
            "lthreshold" => {
                if let Some(n) = number(st, 0, 65535, report) {
                    r.real.lower = n as u32;
                }
            }
            "lb_kind" | "lvs_method" => match forwarding(st.arg(1)) {
                Some(m) => r.method = Some((m, st.at.clone())),
                None => report.error(&st.at, format!("`{sh}`: headnode forwards by NAT (masq), DR (route) or TUN (tunnel)")),
            },
            "TCP_CHECK" => r.checks.extend(check(st, "tcp", port, report)),
            "HTTP_GET" => r.checks.extend(check(st, "http", port, report)),
            "SSL_GET" => {
                report.skip(&st.at, "`SSL_GET`: headnode's checks speak no TLS; written as a tcp check (connect to the port), which drains a server that stops accepting connections but not one whose page fails");
                r.checks.extend(check(st, "tls", port, report));
            }
            "MISC_CHECK" => report.skip(
                &st.at,
                "`MISC_CHECK`: headnode runs no check scripts; its tcp or http check (health = { check = \"tcp\" }) covers a server that stops answering",
            ),
            "SMTP_CHECK" | "DNS_CHECK" | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => report.skip(
                &st.at,
                format!("`{}`: headnode has no such check; health = {{ check = \"tcp\" }} covers a TCP server that stops answering", st.key()),
            ),
            "inhibit_on_failure" => report.skip(
                &st.at,
                "`inhibit_on_failure`: headnode drains a failed real server its own way",
            ),
            "notify_up" | "notify_down" => report.skip(
                &st.at,
                format!("`{sh}`: headnode's checks run no scripts; `headnode status` and the metrics show each real server's state"),
            ),
            _ => report.skip(&st.at, format!("`{sh}`: not imported")),
        }
    }
    Some(r)
}

fn check(
    s: &Stmt,
    kind: &'static str,
    port: Option<u16>,
    report: &mut Report,
) -> Option<CheckDraft> {
    if s.block.is_none() {
        report.error(
            &s.at,
            format!("`{}` has no `{{ ... }}` block; left out", s.shown()),
        );
        return None;
    }
    // SSL_GET is checked by connecting, as TCP_CHECK.
    let mut c = CheckDraft {
        src: s.src(),
        check: if kind == "tls" { "tcp" } else { kind },
        path: None,
        status: None,
        timeout_ms: None,
        retry: None,
        delay_loop: None,
    };
    let mut urls = 0;
    for st in s.body() {
        let sh = st.shown();
        match st.key() {
            "connect_timeout" => c.timeout_ms = timer(st, report),
            "retry" | "nb_get_retry" => {
                if let Some(n) = number(st, 0, 1000, report) {
                    c.retry = Some(n as u32);
                }
            }
            "delay_loop" => c.delay_loop = timer(st, report),
            "delay_before_retry" => report.note(
                &st.at,
                format!("`{sh}`: headnode tries again at the next interval, not sooner"),
            ),
            "connect_port" => match st.arg(1).map(values::port) {
                Some(Ok(p)) if Some(p) == port => {}
                _ => report.skip(
                    &st.at,
                    format!(
                        "`{sh}`: headnode checks each real server on its own port{}",
                        port.map(|p| format!(" ({p})")).unwrap_or_default()
                    ),
                ),
            },
            "url" if kind == "tls" => report.skip(
                &st.at,
                "`url`: the tcp check that stands for SSL_GET asks for no page",
            ),
            "url" if kind == "http" => {
                urls += 1;
                if urls > 1 {
                    report.skip(&st.at, "a second `url`: headnode's http check asks for one path; the first is used");
                    continue;
                }
                url(st, &mut c, report);
            }
            _ => report.skip(&st.at, format!("`{sh}`: not imported")),
        }
    }
    if kind == "http" && urls == 0 {
        report.note(&s.at, "HTTP_GET without a `url`: headnode asks for \"/\"");
    }
    Some(c)
}

fn url(s: &Stmt, c: &mut CheckDraft, report: &mut Report) {
    let mut status_seen = false;
    for st in s.body() {
        let sh = st.shown();
        match st.key() {
            "path" => match st.arg(1) {
                Some(p) if p.starts_with('/') && !p.chars().any(char::is_whitespace) => {
                    c.path = Some(p.to_string())
                }
                _ => report.error(
                    &st.at,
                    format!("`{sh}`: not an HTTP path; headnode asks for \"/\""),
                ),
            },
            "status_code" => {
                status_seen = true;
                match st.arg(1).and_then(|v| v.parse::<u16>().ok()) {
                    Some(n) if (100..=599).contains(&n) && st.words.len() == 2 => {
                        c.status = Some(n)
                    }
                    _ => report.skip(&st.at, format!("`{sh}`: headnode's http check expects one status code (100-599); expect_status is left at 200")),
                }
            }
            "digest" => report.skip(
                &st.at,
                "`digest`: headnode's http check compares the status code, not the page",
            ),
            "virtualhost" => report.skip(
                &st.at,
                format!("`{sh}`: headnode's http check sends no chosen Host header"),
            ),
            _ => report.skip(&st.at, format!("`{sh}`: not imported")),
        }
    }
    if !status_seen {
        report.note(
            &s.at,
            "no status_code: keepalived took any 2xx; headnode expects 200",
        );
    }
}

/// headnode has one check per service: the first real server's, for all.
fn health(reals: &[RealDraft], delay_loop: Option<u64>, report: &mut Report) -> Option<Health> {
    let mut chosen: Option<Health> = None;
    for r in reals {
        let mut mine: Option<Health> = None;
        for c in &r.checks {
            let h = finish(c, delay_loop, chosen.is_none() && mine.is_none(), report);
            match &mine {
                None => mine = Some(h),
                Some(first) => report.skip(
                    &c.src.at,
                    format!(
                        "headnode runs one check per service: the check at {} is used",
                        first.src.at
                    ),
                ),
            }
        }
        match (&chosen, mine) {
            (None, Some(h)) => chosen = Some(h),
            (Some(first), Some(h)) if !h.same(first) => report.note(
                &h.src.at,
                format!("headnode runs one check per service: the check at {} is used for this real server too", first.src.at),
            ),
            (Some(first), None) => report.note(
                &r.real.src.at,
                format!("this real server had no check; headnode checks it too, as at {}", first.src.at),
            ),
            _ => {}
        }
    }
    if let Some(h) = &chosen {
        for r in reals.iter().take_while(|r| r.checks.is_empty()) {
            report.note(
                &r.real.src.at,
                format!(
                    "this real server had no check; headnode checks it too, as at {}",
                    h.src.at
                ),
            );
        }
    }
    chosen
}

/// keepalived's defaults: checks every 60 s (delay_loop), 5 s to connect,
/// one retry (so down after two failures), back up after one success.
fn finish(c: &CheckDraft, delay_loop: Option<u64>, speak: bool, report: &mut Report) -> Health {
    let interval = c.delay_loop.or(delay_loop).unwrap_or(60_000);
    let mut timeout = c.timeout_ms.unwrap_or(5_000);
    if timeout > interval {
        if speak {
            report.note(&c.src.at, format!("connect_timeout {} is longer than the interval {}; headnode ends a check before the next starts, so timeout = {}", ms_text(timeout), ms_text(interval), ms_text(interval)));
        }
        timeout = interval;
    }
    let retry = c.retry.unwrap_or(1);
    if retry >= 100 && speak {
        report.note(
            &c.src.at,
            format!("retry {retry}: headnode drains after at most 100 failures"),
        );
    }
    Health {
        src: c.src.clone(),
        check: c.check,
        path: c.path.clone(),
        expect_status: c.status,
        interval,
        timeout,
        rise: 1,
        fall: (retry + 1).min(100),
    }
}

/// Milliseconds as keepalived's seconds for messages (`1.5s`).
fn ms_text(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("{}s", ms / 1000),
        _ => format!("{}ms", ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Kind;

    fn run(text: &str) -> (Keepalived, Report) {
        let dir = std::env::temp_dir().join(format!("headnode-keepalived-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("k{}.conf", text.len()));
        std::fs::write(&path, text).unwrap();
        let mut r = Report::default();
        let k = load(&path, &mut r).unwrap();
        (k, r)
    }

    #[test]
    fn virtual_servers_with_checks() {
        let (k, r) = run("! Configuration File for keepalived\n\
            virtual_server 203.0.113.10 8000 {\n  delay_loop 6\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  persistence_timeout 300\n\
              sorry_server 192.168.1.50 8000\n\
              real_server 192.168.1.11 8000 {\n    weight 2\n    TCP_CHECK { connect_timeout 3\n retry 2\n }\n  }\n\
              real_server 192.168.1.12 8000 {\n    TCP_CHECK {\n      connect_timeout 3\n      retry 2\n    }\n  }\n}\n\
            virtual_server fwmark 5\n{\n  lb_algo sh\n  lb_kind DR\n  real_server 192.168.1.11 80 {\n    HTTP_GET {\n      url {\n        path /health\n        status_code 204\n        digest abc\n      }\n      connect_timeout 10\n    }\n    MISC_CHECK { misc_path \"/bin/check x\" }\n  }\n}\n");
        assert_eq!(k.virtuals.len(), 2, "{r}");
        let v = &k.virtuals[0];
        assert_eq!(
            v.key,
            Key::Addr(Proto::Tcp, "203.0.113.10".parse().unwrap(), 8000)
        );
        assert_eq!((v.scheduler.as_str(), v.method), ("rr", Method::Masq));
        assert_eq!(v.persistence, Some(300));
        assert_eq!(v.reals.len(), 2);
        assert_eq!(v.reals[0].weight, 2);
        assert_eq!(v.sorry, Some(("192.168.1.50".parse().unwrap(), 8000)));
        let h = v.health.as_ref().unwrap();
        assert_eq!(
            (h.check, h.interval, h.timeout, h.fall, h.rise),
            ("tcp", 6000, 3000, 3, 1)
        );
        let w = &k.virtuals[1];
        assert_eq!(w.key, Key::Fwmark(5));
        assert_eq!(w.method, Method::Route);
        let h = w.health.as_ref().unwrap();
        assert_eq!(
            (h.check, h.path.as_deref(), h.expect_status),
            ("http", Some("/health"), Some(204))
        );
        // keepalived's 60 s delay_loop; a timeout longer than that is cut to it.
        assert_eq!((h.interval, h.timeout), (60_000, 10_000));
        let text = r.to_string();
        assert!(
            text.contains("`digest`: headnode's http check compares the status code"),
            "{text}"
        );
        assert!(
            text.contains("`MISC_CHECK`: headnode runs no check scripts"),
            "{text}"
        );
        assert_eq!(r.count(Kind::Error), 0, "{text}");
    }

    #[test]
    fn vrrp_instance_and_the_rest() {
        let (k, r) = run(
            "global_defs {\n  router_id LVS1\n}\nvrrp_script chk { script \"/bin/true\" }\n\
            vrrp_instance VI_1 {\n  state BACKUP\n  nopreempt\n  interface eth1\n  virtual_router_id 60\n  priority 255\n  advert_int 0.5\n\
              authentication {\n    auth_type PASS\n    auth_pass x\n  }\n  unicast_peer {\n    10.0.0.3\n  }\n\
              virtual_ipaddress {\n    203.0.113.10/24 dev eth0\n    10.0.0.1\n    fe80::1/64\n  }\n  notify_master /x.sh\n}\n",
        );
        let [i] = &k.instances[..] else { panic!("{r}") };
        assert_eq!(i.name, "VI_1");
        assert_eq!(i.state.as_ref().map(|s| s.1), Some(State::Backup));
        assert!(i.nopreempt);
        assert_eq!(i.priority.as_ref().map(|p| p.1), Some(254));
        assert_eq!(i.router_id.as_ref().map(|p| p.1), Some(60));
        assert_eq!(i.advert_ms.as_ref().map(|p| p.1), Some(500));
        assert_eq!(i.peers.len(), 1);
        assert_eq!(i.vips.len(), 2);
        assert_eq!(
            (i.vips[0].len, i.vips[0].dev.as_deref()),
            (Some(24), Some("eth0"))
        );
        assert_eq!((i.vips[1].len, i.vips[1].dev.as_deref()), (None, None));
        let text = r.to_string();
        for want in [
            ":1: not translated: `global_defs`",
            ":4: not translated: `vrrp_script chk`",
            "`authentication`: VRRP version 3",
            "IPv6 addresses are not imported",
            "`notify_master /x.sh`",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }

    #[test]
    fn damaged_syntax_is_reported() {
        let (k, r) = run(
            "vrrp_instance A {\n  state MASTER\n}\n}\nvirtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n    weight x\n\"unclosed\n",
        );
        assert_eq!(k.instances.len(), 1);
        let text = r.to_string();
        assert!(text.contains(":4: error: `}` closes no block"), "{text}");
        assert!(text.contains("is never closed"), "{text}");
        assert!(text.contains("`weight x`: needs a number"), "{text}");
    }

    #[test]
    fn includes_are_followed_beside_the_file() {
        let dir = std::env::temp_dir().join(format!("headnode-ka-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("conf.d/web.conf"),
            "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n  }\n}\n",
        )
        .unwrap();
        let main = dir.join("keepalived.conf");
        std::fs::write(
            &main,
            "include /etc/keepalived/conf.d/*.conf\ninclude missing.conf\n",
        )
        .unwrap();
        let mut r = Report::default();
        let k = load(&main, &mut r).unwrap();
        assert_eq!(k.virtuals.len(), 1, "{r}");
        assert!(
            r.to_string()
                .contains("`include missing.conf`: no such file"),
            "{r}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn timers_and_globs() {
        assert_eq!(millis("1"), Some(1000));
        assert_eq!(millis("0.5"), Some(500));
        assert_eq!(millis(".25"), Some(250));
        assert_eq!(millis("1.2345"), Some(1234));
        assert_eq!(millis("x"), None);
        assert_eq!(millis("."), None);
        assert!(glob("*.conf", "a.conf"));
        assert!(glob("a?c*", "abcdef"));
        assert!(!glob("*.conf", "a.conf~"));
        assert!(glob("*", ""));
    }
}
