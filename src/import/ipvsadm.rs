//! ipvsadm: the output of `ipvsadm-save` (`-A -f 1 -s rr`) and shell scripts
//! of ipvsadm commands like the origin how-to's (`ipvsadm -a -f 1 -r node1:8000 -m`).
//! Commands are replayed in order (`-C`, `-D` and `-d` included), so the
//! result is the table the script leaves behind.

use super::draft::{Key, Real, Source, Virtual};
use super::hosts::Hosts;
use super::report::{Loc, Report};
use super::values;
use crate::config::model::{Method, Proto};
use std::net::Ipv4Addr;
use std::path::Path;
use std::rc::Rc;

/// One parsed command line.
#[derive(Debug, Default)]
struct Cmd {
    op: Option<char>,
    key: Option<Key>,
    scheduler: Option<String>,
    persistence: Option<u32>,
    netmask: Option<Ipv4Addr>,
    real: Option<(Ipv4Addr, Option<u16>)>,
    method: Option<Method>,
    weight: Option<u32>,
    upper: Option<u32>,
    lower: Option<u32>,
}

pub fn load(path: &Path, hosts: &Hosts, report: &mut Report) -> Result<Vec<Virtual>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: Rc<str> = path.display().to_string().into();
    report.saw(&file);
    let mut table: Vec<Virtual> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        // `ipvsadm ...`, `/sbin/ipvsadm ...`, `sudo ipvsadm ...`, or a bare
        // `-A ...` line from ipvsadm-save.
        let args = match words.iter().position(|w| w.ends_with("ipvsadm")) {
            Some(p) if words[..p].iter().all(|w| *w == "sudo") => &words[p + 1..],
            _ if words[0].starts_with('-') => &words[..],
            _ => {
                report.skip(&at, format!("`{line}` is not an ipvsadm command"));
                continue;
            }
        };
        let src = Source {
            at: at.clone(),
            text: line.to_string(),
        };
        let cmd = match parse(args, hosts) {
            Ok(c) => c,
            Err(Problem::Skip(why)) => {
                report.skip(&at, format!("`{line}`: {why}"));
                continue;
            }
            Err(Problem::Bad(why)) => {
                report.error(&at, format!("`{line}`: {why}"));
                continue;
            }
        };
        apply(cmd, src, &mut table, report);
    }
    Ok(table)
}

fn apply(cmd: Cmd, src: Source, table: &mut Vec<Virtual>, report: &mut Report) {
    let at = src.at.clone();
    let line = src.text.clone();
    let find = |table: &Vec<Virtual>, key: &Option<Key>| {
        key.as_ref()
            .and_then(|k| table.iter().position(|v| v.key == *k))
    };
    match cmd.op {
        Some('C') => {
            if !table.is_empty() {
                report.note(&at, "`-C` clears the services defined above it");
            }
            table.clear();
        }
        Some('A') => {
            let Some(key) = cmd.key else {
                return report.skip(&at, format!("`{line}`: -A needs -t, -u or -f"));
            };
            if find(table, &Some(key.clone())).is_some() {
                return report.error(&at, format!("`{line}`: this service was already added"));
            }
            if cmd.real.is_some() {
                report.skip(&at, format!("`{line}`: -r on -A is ignored"));
            }
            table.push(Virtual {
                srcs: vec![src],
                key,
                // ipvsadm's defaults: weighted least-connection, no persistence.
                scheduler: cmd.scheduler.unwrap_or_else(|| "wlc".into()),
                method: Method::Route,
                persistence: cmd.persistence,
                netmask: cmd.netmask,
                reals: Vec::new(),
                tool: "ipvsadm",
                health: None,
                sorry: None,
            });
        }
        Some('D') => match find(table, &cmd.key) {
            Some(i) => {
                table.remove(i);
            }
            None => report.skip(
                &at,
                format!("`{line}`: deletes a service not defined above"),
            ),
        },
        Some(op @ ('a' | 'd')) => {
            let Some(i) = find(table, &cmd.key) else {
                return report.error(
                    &at,
                    format!("`{line}`: the virtual service is not defined above (no matching -A); left out"),
                );
            };
            let Some((addr, port)) = cmd.real else {
                return report.skip(&at, format!("`{line}`: -{op} needs -r"));
            };
            let v = &mut table[i];
            let same = |r: &Real| r.addr == addr && r.port == port;
            if op == 'd' {
                v.reals.retain(|r| !same(r));
                return;
            }
            if v.reals.iter().any(same) {
                return report.error(
                    &at,
                    format!("`{line}`: this real server is already in the service"),
                );
            }
            // ipvsadm keeps one method per real server; headnode one per service.
            let method = cmd.method.unwrap_or(Method::Route);
            if v.reals.is_empty() {
                v.method = method;
            } else if v.method != method {
                report.error(
                    &at,
                    format!("`{line}`: forwarding method {method} differs from the other real servers ({}); headnode uses one method per service", v.method),
                );
            }
            v.srcs.push(src.clone());
            v.reals.push(Real {
                src,
                addr,
                port,
                weight: cmd.weight.unwrap_or(1),
                upper: cmd.upper.unwrap_or(0),
                lower: cmd.lower.unwrap_or(0),
            });
        }
        Some(op) => report.skip(&at, format!("`{line}`: -{op} is not translated")),
        None => report.skip(&at, format!("`{line}`: no command (-A, -a, ...)")),
    }
}

enum Problem {
    /// Not expressible in headnode.
    Skip(String),
    /// Wrong in the input.
    Bad(String),
}

fn parse(args: &[&str], hosts: &Hosts) -> Result<Cmd, Problem> {
    let mut c = Cmd::default();
    let mut i = 0;
    let op = |c: &mut Cmd, o: char| -> Result<(), Problem> {
        if c.op.is_some() {
            return Err(Problem::Bad("two commands on one line".into()));
        }
        c.op = Some(o);
        Ok(())
    };
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (args[i], None),
        };
        i += 1;
        let mut value = |what: &str| -> Result<String, Problem> {
            if let Some(v) = inline {
                return Ok(v.to_string());
            }
            let v = args
                .get(i)
                .ok_or_else(|| Problem::Bad(format!("{flag} needs {what}")))?;
            i += 1;
            Ok(v.to_string())
        };
        match flag {
            "-A" | "--add-service" => op(&mut c, 'A')?,
            "-E" | "--edit-service" => op(&mut c, 'E')?,
            "-D" | "--delete-service" => op(&mut c, 'D')?,
            "-C" | "--clear" => op(&mut c, 'C')?,
            "-a" | "--add-server" => op(&mut c, 'a')?,
            "-e" | "--edit-server" => op(&mut c, 'e')?,
            "-d" | "--delete-server" => op(&mut c, 'd')?,
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let proto = if matches!(flag, "-t" | "--tcp-service") {
                    Proto::Tcp
                } else {
                    Proto::Udp
                };
                let v = value("address:port")?;
                let (addr, port) = endpoint(&v, hosts)?;
                let port = port.ok_or_else(|| Problem::Bad(format!("{v} has no port")))?;
                c.key = Some(Key::Addr(proto, addr, port));
            }
            "-f" | "--fwmark-service" => {
                let v = value("a mark")?;
                let m = match v.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => v.parse().ok(),
                };
                let m = m.filter(|m| *m > 0).ok_or_else(|| {
                    Problem::Bad(format!("fwmark \"{v}\" is not a positive number"))
                })?;
                c.key = Some(Key::Fwmark(m));
            }
            "-s" | "--scheduler" => {
                let v = value("a scheduler")?;
                if !crate::config::model::SCHEDULERS.contains(&v.as_str()) {
                    return Err(Problem::Bad(format!("\"{v}\" is not an IPVS scheduler")));
                }
                c.scheduler = Some(v);
            }
            "-p" | "--persistent" => {
                // The timeout is optional (default 300 s).
                let t = match inline {
                    Some(v) => Some(v.to_string()),
                    None => match args.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(v.to_string())
                        }
                        _ => None,
                    },
                };
                let secs = match t {
                    None => 300,
                    Some(t) => t.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| {
                        Problem::Bad(format!("persistence \"{t}\" is not a number of seconds"))
                    })?,
                };
                c.persistence = Some(secs);
            }
            "-M" | "--netmask" => {
                let v = value("a netmask")?;
                c.netmask = Some(values::ipv4(&v).map_err(Problem::Bad)?);
            }
            "-r" | "--real-server" => {
                let v = value("address[:port]")?;
                c.real = Some(endpoint(&v, hosts)?);
            }
            "-g" | "--gatewaying" => c.method = Some(Method::Route),
            "-m" | "--masquerading" => c.method = Some(Method::Masq),
            "-i" | "--ipip" => c.method = Some(Method::Tunnel),
            "-w" | "--weight" | "-x" | "--u-threshold" | "-y" | "--l-threshold" => {
                let v = value("a number")?;
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 65535)
                    .ok_or_else(|| Problem::Bad(format!("{flag} \"{v}\" is not 0-65535")))?;
                match flag {
                    "-w" | "--weight" => c.weight = Some(n),
                    "-x" | "--u-threshold" => c.upper = Some(n),
                    _ => c.lower = Some(n),
                }
            }
            "-n" | "--numeric" => {}
            other => return Err(Problem::Skip(format!("option {other} is not translated"))),
        }
    }
    Ok(c)
}

/// `addr[:port]` where addr may be a hosts name and port a service name.
fn endpoint(text: &str, hosts: &Hosts) -> Result<(Ipv4Addr, Option<u16>), Problem> {
    if text.starts_with('[') {
        return Err(Problem::Skip("IPv6 services are not translated".into()));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(values::port(p).map_err(Problem::Bad)?)),
        None => (text, None),
    };
    let addr = hosts.resolve(host).map_err(Problem::Bad)?;
    Ok((addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, hosts: &str) -> (Vec<Virtual>, Report) {
        let dir = std::env::temp_dir().join(format!("headnode-ipvsadm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("s{}", script.len()));
        std::fs::write(&path, script).unwrap();
        let mut r = Report::default();
        let h = Hosts::parse(hosts, Path::new("hosts"), &mut r);
        let t = load(&path, &h, &mut r).unwrap();
        (t, r)
    }

    #[test]
    fn script_forms_and_defaults() {
        let (t, r) = run(
            "#!/bin/sh\nset -e\n/sbin/ipvsadm -C\nsudo ipvsadm --add-service --tcp-service=node:80 -p -s rr\n\
             ipvsadm -a -t node:80 -r n1 -w 3\nipvsadm -A -f 0x2\nipvsadm -a -f 2 -r 10.0.0.9:8080 -m\n",
            "198.51.100.1 node\n10.0.0.1 n1\n",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].key,
            Key::Addr(Proto::Tcp, "198.51.100.1".parse().unwrap(), 80)
        );
        assert_eq!(t[0].persistence, Some(300), "-p without a value is 300 s");
        assert_eq!(t[0].method, Method::Route, "ipvsadm's default is -g");
        assert_eq!((t[0].reals[0].port, t[0].reals[0].weight), (None, 3));
        assert_eq!(t[1].key, Key::Fwmark(2));
        assert_eq!(t[1].scheduler, "wlc", "ipvsadm's default scheduler");
        assert_eq!(t[1].method, Method::Masq);
        let text = r.to_string();
        assert!(
            text.contains("`set -e` is not an ipvsadm command"),
            "{text}"
        );
        assert_eq!(r.count(crate::import::Kind::Error), 0, "{text}");
    }

    #[test]
    fn replay_and_mistakes() {
        let (t, r) = run(
            "-A -f 1 -s rr\n-a -f 1 -r 10.0.0.1:80 -m\n-a -f 1 -r 10.0.0.2:80 -g\n-d -f 1 -r 10.0.0.1:80\n\
             -A -f 3 -s fastest\n-a -f 4 -r 10.0.0.1:80\n-A -f 5\n-D -f 5\n-a -f 1 -r nosuch:80\n",
            "",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].reals.len(), 1, "-d removed one real");
        let text = r.to_string();
        assert!(text.contains("forwarding method route differs"), "{text}");
        assert!(
            text.contains("\"fastest\" is not an IPVS scheduler"),
            "{text}"
        );
        assert!(text.contains("no matching -A"), "{text}");
        assert!(
            text.contains("\"nosuch\" is neither an address nor a name"),
            "{text}"
        );
    }
}
