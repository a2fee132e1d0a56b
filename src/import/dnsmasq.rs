//! dnsmasq.conf (with `conf-file` and `conf-dir`), read into the shapes the
//! dhcpd.conf reader gives, so the LAN, the hosts and the boot rules are
//! built by the same code: `dhcp-range` is the subnet and its pool,
//! `dhcp-host` a host, `dhcp-option` the options headnode carries,
//! `dhcp-boot` with `dhcp-match`/`dhcp-userclass` tags the PXE rules,
//! `enable-tftp`/`tftp-root` the `[tftp]` root, and `domain`, `server`,
//! `address`, `host-record` the `[dns]` side.

use super::dhcpd::{BootRule, Dhcpd, HostDecl, Param, Params, Subnet};
use super::report::{Loc, Report};
use super::tftpd::Tftpd;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::rc::Rc;

/// What dnsmasq.conf says beyond DHCP.
#[derive(Debug, Default)]
pub struct Dnsmasq {
    pub dhcp: Dhcpd,
    pub tftp: Option<Tftpd>,
    /// The DNS side, unless `port=0` turned it off.
    pub dns: Option<Dns>,
}

#[derive(Debug, Default)]
pub struct Dns {
    /// `domain=`.
    pub domain: Option<(Loc, String)>,
    /// `server=` addresses (`server=/domain/ip` forwards are reported).
    pub upstream: Vec<(Loc, String)>,
}

/// One `key=value` line (or a bare `key`).
struct Line {
    at: Loc,
    key: String,
    value: String,
}

const MAX_DEPTH: usize = 8;

pub fn load(path: &Path, report: &mut Report) -> Result<Dnsmasq, String> {
    let mut lines = Vec::new();
    read(path, 0, &mut lines, report)?;
    Ok(translate(&lines, report))
}

fn read(path: &Path, depth: usize, out: &mut Vec<Line>, report: &mut Report) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: conf-file/conf-dir nest too deep",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: Rc<str> = path.display().to_string().into();
    report.saw(&file);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let (key, value) = (key.trim(), value.trim());
        match key {
            "conf-file" => read(&relative(path, value), depth + 1, out, report)?,
            "conf-dir" => {
                let mut parts = value.split(',');
                let dir = relative(path, parts.next().unwrap_or(""));
                let wanted: Vec<&str> = parts.collect();
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .map_err(|e| format!("{at}: conf-dir {}: {e}", dir.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        // dnsmasq's own rules: no dot files, no backups;
                        // `*.conf` style lists keep only those endings.
                        !name.starts_with('.')
                            && !name.ends_with('~')
                            && (wanted.is_empty()
                                || wanted
                                    .iter()
                                    .any(|w| name.ends_with(w.trim_start_matches('*'))))
                    })
                    .collect();
                files.sort();
                for f in files {
                    read(&f, depth + 1, out, report)?;
                }
            }
            _ => out.push(Line {
                at,
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
    }
    Ok(())
}

fn relative(from: &Path, p: &str) -> std::path::PathBuf {
    let given = Path::new(p);
    let dir = from.parent().unwrap_or(Path::new("."));
    // A copy of /etc imported elsewhere: the file beside this one.
    if given.is_absolute() && !given.exists() {
        return dir.join(given.file_name().unwrap_or(given.as_os_str()));
    }
    dir.join(given)
}

/// Options that change nothing for headnode, and why.
const NOTES: &[(&str, &str)] = &[
    (
        "interface",
        "headnode serves DHCP, DNS and TFTP on the private interface only",
    ),
    ("bind-interfaces", "headnode binds to the private interface"),
    (
        "dhcp-authoritative",
        "headnode always answers authoritatively on its LAN",
    ),
    ("log-dhcp", "headnode logs one line per lease"),
    (
        "log-queries",
        "headnode counts queries (headnode status, metrics)",
    ),
    (
        "dhcp-leasefile",
        "headnode keeps its own lease file ([dhcp] lease_file)",
    ),
    (
        "no-resolv",
        "headnode forwards to [dns] upstream when given",
    ),
    (
        "no-hosts",
        "headnode answers the [[host]] names, not /etc/hosts",
    ),
    ("domain-needed", "headnode never forwards bare names"),
    (
        "bogus-priv",
        "headnode answers the LAN's reverse zone itself",
    ),
    (
        "expand-hosts",
        "headnode answers each host bare and in the domain",
    ),
    (
        "local",
        "headnode answers for its domain and never forwards it",
    ),
    (
        "tftp-secure",
        "headnode resolves every name beneath the root",
    ),
];

/// `dhcp-option` names and numbers → the dhcpd parameter headnode carries.
fn option_param(name: &str) -> Option<&'static str> {
    Some(match name.trim_start_matches("option:") {
        "router" | "3" => "routers",
        "dns-server" | "6" => "domain-name-servers",
        "domain-name" | "15" => "domain-name",
        "domain-search" | "119" => "domain-search",
        "ntp-server" | "42" => "ntp-servers",
        "netmask" | "1" => "subnet-mask",
        "broadcast" | "28" => "broadcast-address",
        _ => return None,
    })
}

/// `12h`, `30m`, `45`, `infinite` → seconds.
fn lease_secs(v: &str) -> Option<u64> {
    if v == "infinite" {
        return Some(u64::from(u32::MAX));
    }
    let (num, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86400,
        'w' => n * 604_800,
        _ => return None,
    })
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A tag's condition: `set:X` by `dhcp-match`/`dhcp-userclass`.
#[derive(Debug, Clone, Default)]
struct TagTest {
    arch: Option<u16>,
    user_class: Option<String>,
}

fn translate(lines: &[Line], report: &mut Report) -> Dnsmasq {
    let mut out = Dnsmasq::default();
    let mut globals = Params::new();
    // A tag is set when any of its `dhcp-match` lines matches.
    let mut tags: BTreeMap<String, Vec<TagTest>> = BTreeMap::new();
    let mut boots: Vec<&Line> = Vec::new();
    let mut dns = Dns::default();
    let mut dns_on = true;
    let mut tftp_on = false;
    let mut tftp_root: Option<(Loc, String)> = None;
    let mut names: Vec<(&Line, String, Ipv4Addr)> = Vec::new();
    let param = |l: &Line, values: Vec<String>| Param {
        at: l.at.clone(),
        values,
    };
    for l in lines {
        let fields: Vec<String> = l.value.split(',').map(|f| f.trim().to_string()).collect();
        match l.key.as_str() {
            "dhcp-range" => {
                let plain: Vec<&String> = fields
                    .iter()
                    .filter(|f| !f.starts_with("set:") && !f.starts_with("tag:"))
                    .collect();
                if plain.len() < fields.len() {
                    report.note(&l.at, "dhcp-range: its tags are not kept");
                }
                let ips: Vec<Ipv4Addr> = plain.iter().filter_map(|f| f.parse().ok()).collect();
                let is_static = plain.iter().any(|f| *f == "static");
                let (start, end, mask) = match (is_static, ips.as_slice()) {
                    (true, [net, rest @ ..]) => (*net, None, rest.first().copied()),
                    (false, [a, b, rest @ ..]) => (*a, Some(*b), rest.first().copied()),
                    _ => {
                        report.skip(&l.at, "dhcp-range: expected `start,end[,netmask][,lease]` or `network,static`");
                        continue;
                    }
                };
                if let Some(secs) = plain
                    .last()
                    .and_then(|f| lease_secs(f))
                    .filter(|_| plain.len() > ips.len() + usize::from(is_static))
                {
                    globals.insert("default-lease-time", param(l, vec![secs.to_string()]));
                }
                let mask = mask.unwrap_or_else(|| {
                    report.note(&l.at, "dhcp-range has no netmask: the LAN is taken as /24 (dnsmasq reads it from the interface)");
                    Ipv4Addr::new(255, 255, 255, 0)
                });
                if !out.dhcp.subnets.is_empty() {
                    report.skip(
                        &l.at,
                        "another dhcp-range: headnode serves one LAN with one pool",
                    );
                    continue;
                }
                let network = Ipv4Addr::from(u32::from(start) & u32::from(mask));
                out.dhcp.subnets.push(Subnet {
                    at: l.at.clone(),
                    network: network.to_string(),
                    netmask: mask.to_string(),
                    params: Params::new(),
                    ranges: end
                        .map(|e| vec![(l.at.clone(), start.to_string(), e.to_string())])
                        .unwrap_or_default(),
                });
            }
            "dhcp-host" => {
                let mut host = HostDecl {
                    at: l.at.clone(),
                    name: String::new(),
                    mac: None,
                    fixed: None,
                    params: Params::new(),
                    boot: Vec::new(),
                };
                let mut other = Vec::new();
                for f in &fields {
                    if is_mac(f) {
                        host.mac = Some(param(l, vec![f.to_lowercase()]));
                    } else if f.parse::<Ipv4Addr>().is_ok() {
                        host.fixed = Some(param(l, vec![f.clone()]));
                    } else if let Some(secs) = lease_secs(f) {
                        host.params
                            .insert("default-lease-time", param(l, vec![secs.to_string()]));
                    } else if f.contains(':') || f == "ignore" {
                        other.push(f.clone());
                    } else if !f.is_empty() {
                        host.name = f.clone();
                    }
                }
                if !other.is_empty() {
                    report.skip(
                        &l.at,
                        format!("dhcp-host: {} not translated", other.join(", ")),
                    );
                }
                if host.mac.is_none() {
                    report.skip(&l.at, "dhcp-host without a MAC address: not translated");
                    continue;
                }
                if host.name.is_empty() {
                    host.name = host
                        .mac
                        .as_ref()
                        .map(|m| m.values[0].clone())
                        .unwrap_or_default();
                }
                out.dhcp.hosts.push(host);
            }
            "dhcp-option" | "dhcp-option-force" => {
                if fields.iter().any(|f| f.starts_with("tag:")) {
                    report.skip(
                        &l.at,
                        "dhcp-option for a tag: headnode sets options for all clients or per host",
                    );
                    continue;
                }
                let mut it = fields.iter().skip_while(|f| f.starts_with("set:"));
                let Some(name) = it.next() else { continue };
                match option_param(name) {
                    Some(k) => {
                        globals.insert(k, param(l, it.cloned().collect()));
                    }
                    None => report.skip(
                        &l.at,
                        format!("dhcp-option {name}: headnode does not send it"),
                    ),
                }
            }
            "dhcp-match" | "dhcp-userclass" => {
                let Some(tag) = fields.first().and_then(|f| f.strip_prefix("set:")) else {
                    report.skip(&l.at, format!("{}: expected `set:TAG,...`", l.key));
                    continue;
                };
                let rest: Vec<&str> = fields[1..].iter().map(String::as_str).collect();
                let test = match (l.key.as_str(), rest.as_slice()) {
                    ("dhcp-userclass", [class]) => Some(TagTest {
                        user_class: Some(class.to_string()),
                        ..TagTest::default()
                    }),
                    // iPXE sends its own option 175; it also says so in
                    // its user class, which is what headnode matches.
                    ("dhcp-match", ["175"] | ["option:175"]) => {
                        report.note(&l.at, "iPXE is told by its user class \"iPXE\" (headnode matches option 77, not 175)");
                        Some(TagTest {
                            user_class: Some("iPXE".into()),
                            ..TagTest::default()
                        })
                    }
                    ("dhcp-match", ["option:client-arch" | "93", n]) => {
                        n.parse().ok().map(|a| TagTest {
                            arch: Some(a),
                            ..TagTest::default()
                        })
                    }
                    _ => None,
                };
                match test {
                    Some(t) => tags.entry(tag.to_string()).or_default().push(t),
                    None => report.skip(&l.at, format!("{}={}: only client-arch, iPXE (175) and user-class tags are translated", l.key, l.value)),
                }
            }
            "dhcp-boot" => boots.push(l),
            "enable-tftp" => tftp_on = true,
            "tftp-root" => tftp_root = Some((l.at.clone(), fields[0].clone())),
            "port" if l.value == "0" => dns_on = false,
            "domain" => {
                if fields.len() > 1 {
                    report.note(
                        &l.at,
                        "domain: its address range is not kept (one domain for the LAN)",
                    );
                }
                globals
                    .entry("domain-name")
                    .or_insert_with(|| param(l, vec![fields[0].clone()]));
                dns.domain = Some((l.at.clone(), fields[0].clone()));
            }
            "server" => {
                if l.value.starts_with('/') {
                    report.skip(&l.at, "server=/domain/...: headnode forwards every other name to the same upstreams");
                } else {
                    dns.upstream
                        .push((l.at.clone(), fields[0].replace('#', ":")));
                }
            }
            "address" | "host-record" => {
                let (name, ip) = if l.key == "address" {
                    let parts: Vec<&str> = l.value.trim_matches('/').split('/').collect();
                    (
                        parts.first().copied().unwrap_or(""),
                        parts.get(1).copied().unwrap_or(""),
                    )
                } else {
                    (
                        fields[0].as_str(),
                        fields.get(1).map(String::as_str).unwrap_or(""),
                    )
                };
                match ip.parse::<Ipv4Addr>() {
                    Ok(a) if !name.is_empty() => names.push((l, name.to_string(), a)),
                    _ => report.skip(
                        &l.at,
                        format!(
                            "{}={}: only `name` to one IPv4 address is translated",
                            l.key, l.value
                        ),
                    ),
                }
            }
            key => match NOTES.iter().find(|(k, _)| *k == key) {
                Some((_, why)) => report.note(&l.at, format!("`{key}` left out: {why}")),
                None => report.skip(
                    &l.at,
                    format!(
                        "`{}{}{}`: headnode has no equivalent",
                        l.key,
                        if l.value.is_empty() { "" } else { "=" },
                        l.value
                    ),
                ),
            },
        }
    }
    // Names for fixed addresses become the host's name.
    for (l, name, ip) in names {
        let short = name.split('.').next().unwrap_or(&name).to_string();
        match out
            .dhcp
            .hosts
            .iter_mut()
            .find(|h| h.fixed.as_ref().is_some_and(|f| f.values[0] == ip.to_string()))
        {
            Some(h) => {
                report.note(&l.at, format!("{name} names the dhcp-host at {}", h.at));
                h.name = short;
            }
            None => report.skip(&l.at, format!("{name} → {ip}: headnode answers the names of [[host]] entries and its own; add a [[host]] for it")),
        }
    }
    // The boot rules: iPXE's first, so that iPXE gets its script and not
    // itself again; a rule for negated tags only is the default filename.
    let mut rules = Vec::new();
    for l in boots {
        let fields: Vec<&str> = l.value.split(',').map(str::trim).collect();
        let (conds, rest): (Vec<&str>, Vec<&str>) =
            fields.iter().partition(|f| f.starts_with("tag:"));
        let Some(file) = rest.first().filter(|f| !f.is_empty()) else {
            report.skip(&l.at, "dhcp-boot without a file name");
            continue;
        };
        let filename = param(l, vec![file.to_string()]);
        let next_server = rest.get(2).map(|s| param(l, vec![s.to_string()]));
        let positive: Vec<&str> = conds
            .iter()
            .map(|c| &c[4..])
            .filter(|c| !c.starts_with('!'))
            .collect();
        if positive.is_empty() {
            if !conds.is_empty() {
                report.note(&l.at, "dhcp-boot for clients without the tags: the default filename (the tagged rules come first)");
            }
            globals.insert("filename", filename);
            if let Some(n) = next_server {
                globals.insert("next-server", n);
            }
            continue;
        }
        // Every tag must be set: each combination of their alternatives.
        let mut tests = vec![TagTest::default()];
        let mut known = positive.len() == conds.len();
        for t in &positive {
            let Some(alts) = tags.get(*t) else {
                known = false;
                break;
            };
            tests = tests
                .iter()
                .flat_map(|have| {
                    alts.iter().filter_map(move |a| {
                        let arch = match (have.arch, a.arch) {
                            (Some(x), Some(y)) if x != y => return None,
                            (x, y) => x.or(y),
                        };
                        let user_class = match (&have.user_class, &a.user_class) {
                            (Some(x), Some(y)) if x != y => return None,
                            (x, y) => x.clone().or(y.clone()),
                        };
                        Some(TagTest { arch, user_class })
                    })
                })
                .collect();
        }
        if !known {
            report.skip(&l.at, format!("dhcp-boot={}: a tag no translated dhcp-match sets, or a mix of set and unset tags", l.value));
            continue;
        }
        for test in tests {
            rules.push(BootRule {
                at: l.at.clone(),
                test: format!("dhcp-boot={}", l.value),
                arch: test.arch,
                user_class: test.user_class,
                filename: filename.clone(),
                next_server: next_server.clone(),
            });
        }
    }
    rules.sort_by_key(|r| r.user_class.is_none());
    out.dhcp.boot = rules;
    out.dhcp.globals = globals;
    if tftp_on || tftp_root.is_some() {
        match tftp_root {
            Some((at, root)) => {
                out.tftp = Some(Tftpd {
                    at,
                    root,
                    max_blksize: None,
                })
            }
            None => report.skip(
                &lines
                    .iter()
                    .find(|l| l.key == "enable-tftp")
                    .map(|l| l.at.clone())
                    .unwrap_or_else(|| lines[0].at.clone()),
                "enable-tftp without tftp-root: give [tftp] root",
            ),
        }
    }
    if dns_on {
        out.dns = Some(dns);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_times_and_macs() {
        assert_eq!(lease_secs("12h"), Some(43_200));
        assert_eq!(lease_secs("45m"), Some(2_700));
        assert_eq!(lease_secs("600"), Some(600));
        assert_eq!(lease_secs("node1"), None);
        assert!(is_mac("52:54:00:AA:00:01"));
        assert!(!is_mac("52:54:00:aa:00"));
        assert_eq!(option_param("option:router"), Some("routers"));
        assert_eq!(option_param("6"), Some("domain-name-servers"));
        assert_eq!(option_param("option:tftp-server"), None);
    }
}
