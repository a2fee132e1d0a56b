//! TFTP from `headnode run` with the firewall loaded, in namespaces: a head
//! node (eth1 public, eth0 192.168.1.254/24 private) and a node on its LAN
//! (192.168.1.50). Real clients (tftp-hpa, curl) fetch files; a hostile
//! client (a thread moved into the node's namespace) tries traversal,
//! symlinks and device files, writes, huge values and floods of options,
//! vanishes mid-transfer, and opens 500 transfers at once.

use super::common;

use common::{Netns, can_netns, headnode, veth, wait_for};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

const SERVER: &str = "192.168.1.254:69";

struct Lab {
    head: Netns,
    node: Netns,
    dir: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let head = Netns::new("tftph");
        let net = Netns::new("tftpn");
        let node = Netns::new("tftp0");
        veth(
            &net,
            "eth0",
            Some("203.0.113.253/24"),
            &head,
            "eth1",
            Some("203.0.113.210/24"),
        );
        head.ok(&["ip", "route", "add", "default", "via", "203.0.113.253"]);
        veth(
            &head,
            "eth0",
            Some("192.168.1.254/24"),
            &node,
            "eth0",
            Some("192.168.1.50/24"),
        );
        // `net` only gives the head node its default route; it may go now.
        drop(net);
        let dir = std::env::temp_dir().join(format!("hn-tftp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/boot")).unwrap();
        Lab { head, node, dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn headnode(&self, args: &[&str]) -> std::process::Output {
        let cfg = self.dir.join("headnode.toml");
        let mut argv = vec![
            "env".to_string(),
            format!("HEADNODE_STATE_DIR={}", self.dir.join("state").display()),
            format!("HEADNODE_RUN_DIR={}", self.dir.join("run").display()),
            headnode().display().to_string(),
            "-c".into(),
            cfg.display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.head.run(&refs)
    }

    fn status(&self) -> serde_json::Value {
        let out = self.headnode(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tftp"].clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 977) as u8).collect()
}

/// Run `f` on a thread inside namespace `ns` (sockets it opens live there).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: a valid namespace descriptor; only this thread moves.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("client thread")
}

fn rrq(op: u8, name: &str, mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, op];
    for f in [name, mode]
        .into_iter()
        .chain(opts.iter().flat_map(|(a, b)| [*a, *b]))
    {
        p.extend_from_slice(f.as_bytes());
        p.push(0);
    }
    p
}

/// The first answer to a request: Err((code, text)) for an ERROR, Ok(opcode) else.
fn first_answer(sock: &UdpSocket, request: &[u8]) -> Result<u16, (u16, String)> {
    let server: SocketAddr = SERVER.parse().unwrap();
    sock.send_to(request, server).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("an answer within the timeout");
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    if op == 5 {
        let code = u16::from_be_bytes([buf[2], buf[3]]);
        return Err((code, String::from_utf8_lossy(&buf[4..n - 1]).into_owned()));
    }
    Ok(op)
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Fetch `name` with plain RFC 1350 (512-byte blocks, ACK each); Err is the
/// server's ERROR.
fn fetch(sock: &UdpSocket, name: &str) -> Result<Vec<u8>, (u16, String)> {
    let server: SocketAddr = SERVER.parse().unwrap();
    sock.send_to(&rrq(1, name, "octet", &[]), server).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 600];
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| (999, e.to_string()))?;
        match u16::from_be_bytes([buf[0], buf[1]]) {
            5 => {
                let code = u16::from_be_bytes([buf[2], buf[3]]);
                return Err((code, String::from_utf8_lossy(&buf[4..n - 1]).into_owned()));
            }
            3 => {
                out.extend_from_slice(&buf[4..n]);
                sock.send_to(&[0, 4, buf[2], buf[3]], from).unwrap();
                if n - 4 < 512 {
                    return Ok(out);
                }
            }
            op => return Err((998, format!("opcode {op}"))),
        }
    }
}

#[test]
fn tftp_served_to_real_clients_and_safe_against_hostile_ones() {
    if !can_netns(&["tftp", "curl"]) {
        return;
    }
    let mut lab = Lab::new();
    let kernel = body(3_000_000);
    std::fs::write(lab.root().join("boot/vmlinuz"), &kernel).unwrap();
    std::fs::write(lab.root().join("small"), b"hello node\n").unwrap();
    std::fs::write(lab.dir.join("secret"), b"outside the root").unwrap();
    std::os::unix::fs::symlink("../secret", lab.root().join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", lab.root().join("passwd")).unwrap();
    let null = std::ffi::CString::new(lab.root().join("null").to_str().unwrap()).unwrap();
    // SAFETY: a valid path; a character device like /dev/null (1, 3).
    let rc = unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
    let config = format!(
        r#"
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"

[dhcp]
enabled = false

[tftp]
root = "{}"
max_transfers = 200
max_transfers_per_client = 500
"#,
        lab.root().display()
    );
    std::fs::write(lab.dir.join("headnode.toml"), config).unwrap();
    let cfg = lab.dir.join("headnode.toml").display().to_string();
    let argv = [
        "env".to_string(),
        format!("HEADNODE_STATE_DIR={}", lab.dir.join("state").display()),
        format!("HEADNODE_RUN_DIR={}", lab.dir.join("run").display()),
        headnode().display().to_string(),
        "-c".into(),
        cfg,
        "run".into(),
    ];
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let log = lab.dir.join("daemon.log");
    let pid = lab.head.spawn_logged(&refs, &log);
    assert!(
        wait_for(Duration::from_secs(15), || lab
            .log()
            .contains(" ready")
            .then_some(()))
        .is_some(),
        "daemon not ready:\n{}",
        lab.log()
    );

    // tftp-hpa, RFC 1350 only; and curl with blksize 1468 (OACK), both
    // through the firewall (loc to fw is reject but for TFTP).
    let out = lab.dir.join("via-tftp");
    let o = lab.node.run(&[
        "tftp",
        "-m",
        "binary",
        "192.168.1.254",
        "-c",
        "get",
        "boot/vmlinuz",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "tftp-hpa: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        kernel,
        "tftp-hpa got another file"
    );
    let out = lab.dir.join("via-curl");
    let o = lab.node.run(&[
        "curl",
        "-sS",
        "-m",
        "30",
        "--tftp-blksize",
        "1468",
        "-o",
        out.to_str().unwrap(),
        "tftp://192.168.1.254/boot/vmlinuz",
    ]);
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        kernel,
        "curl got another file"
    );
    let o = lab
        .node
        .run(&["curl", "-sS", "-m", "10", "tftp://192.168.1.254/small"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello node\n");

    // Hostile requests: each is an ERROR packet, nothing outside the root is read.
    let node = lab.node.name.clone();
    let answers = in_netns(&node, || {
        let s = client();
        let flood: Vec<(&str, &str)> = (0..40).map(|_| ("x", "1")).collect();
        let huge = "9".repeat(400);
        vec![
            (
                "traversal",
                first_answer(&s, &rrq(1, "../secret", "octet", &[])),
            ),
            (
                "deep traversal",
                first_answer(&s, &rrq(1, "boot/../../secret", "octet", &[])),
            ),
            (
                "absolute",
                first_answer(&s, &rrq(1, "/etc/passwd", "octet", &[])),
            ),
            (
                "symlink out",
                first_answer(&s, &rrq(1, "escape", "octet", &[])),
            ),
            (
                "absolute symlink",
                first_answer(&s, &rrq(1, "passwd", "octet", &[])),
            ),
            ("device", first_answer(&s, &rrq(1, "null", "octet", &[]))),
            ("directory", first_answer(&s, &rrq(1, "boot", "octet", &[]))),
            ("write", first_answer(&s, &rrq(2, "small", "octet", &[]))),
            (
                "option flood",
                first_answer(&s, &rrq(1, "small", "octet", &flood)),
            ),
            (
                "huge blksize",
                first_answer(&s, &rrq(1, "small", "octet", &[("blksize", &huge)])),
            ),
        ]
    });
    let codes: Vec<_> = answers
        .iter()
        .map(|(what, a)| {
            (
                *what,
                a.as_ref()
                    .map_err(|e| e.0)
                    .map_or_else(|c| c as i32, |op| -(*op as i32)),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("traversal", 2),
            ("deep traversal", 2),
            ("absolute", 1),
            ("symlink out", 2),
            ("absolute symlink", 2),
            ("device", 2),
            ("directory", 2),
            ("write", 2),
            ("option flood", 4),
            // Left out of the OACK, so no OACK: the data comes at once.
            ("huge blksize", -3),
        ],
        "{answers:#?}"
    );

    // A client that vanishes: one gone at once (ICMP port unreachable ends
    // the transfer), one silent (retransmissions, then given up).
    in_netns(&node, || {
        let s = client();
        assert_eq!(
            first_answer(&s, &rrq(1, "boot/vmlinuz", "octet", &[])),
            Ok(3)
        );
        drop(s);
        let silent = client();
        assert_eq!(
            first_answer(&silent, &rrq(1, "boot/vmlinuz", "octet", &[])),
            Ok(3)
        );
        std::mem::forget(silent);
    });

    // 500 clients at once: each is served or told the server is busy.
    let outcomes = in_netns(&node, || {
        let socks: Vec<UdpSocket> = (0..500).map(|_| client()).collect();
        let server: SocketAddr = SERVER.parse().unwrap();
        // In bursts of 100: a boot storm, not more than a socket buffer.
        for (i, s) in socks.iter().enumerate() {
            s.send_to(&rrq(1, "small", "octet", &[]), server).unwrap();
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut served = 0;
        let mut busy = 0;
        for s in &socks {
            let mut buf = [0u8; 600];
            let (n, from) = s.recv_from(&mut buf).expect("every client hears back");
            match buf[1] {
                3 => {
                    assert_eq!(&buf[4..n], b"hello node\n");
                    s.send_to(&[0, 4, 0, 1], from).unwrap();
                    served += 1;
                }
                5 => {
                    assert!(String::from_utf8_lossy(&buf[4..n]).contains("busy"));
                    busy += 1;
                }
                op => panic!("opcode {op}"),
            }
        }
        // A client told "busy" that retries gets the file once the rush is
        // over (the 197 must first be acknowledged, read and closed).
        // Each retry the server still refuses (busy) counts as refused too.
        let mut retry = fetch(&socks[0], "small");
        let mut refused_retries = 0;
        for _ in 0..50 {
            match &retry {
                Ok(_) => break,
                Err((code, _)) if *code < 998 => refused_retries += 1,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(100));
            retry = fetch(&socks[0], "small");
        }
        (served, busy, retry, refused_retries)
    });
    assert_eq!(outcomes.0 + outcomes.1, 500);
    // The vanished clients' and the huge-blksize transfers (never
    // acknowledged) may still hold three of the 200 slots.
    assert!(outcomes.0 >= 197, "{outcomes:?}");
    assert_eq!(outcomes.2, Ok(b"hello node\n".to_vec()));

    // The silent client is given up after its retransmissions (5 x 1 s);
    // the closed ones (the one that vanished and the huge-blksize one,
    // which never ACKed) answer the first retransmission with ICMP.
    let settled = wait_for(Duration::from_secs(15), || {
        let s = lab.status();
        (s["counters"]["timed_out"] == 1 && s["active"] == 0).then_some(s)
    });
    let s = settled.unwrap_or_else(|| panic!("transfers did not settle: {}", lab.status()));
    // `tftp` is null unless the daemon serves TFTP.
    assert!(s["listen"].is_string(), "{s}");
    assert_eq!(
        s["counters"]["refused"].as_u64().unwrap() as usize,
        9 + outcomes.1 + outcomes.3,
        "{s}"
    );
    assert_eq!(s["counters"]["failed"], 2, "{s}");
    assert!(s["recent"].as_array().unwrap().len() == 16);
    let text = String::from_utf8_lossy(&lab.headnode(&["status"]).stdout).into_owned();
    assert!(text.contains("tftp: serving"), "{text}");

    // Memory stays bounded: the peak resident size of the daemon.
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm: u64 = st
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(hwm < 64 * 1024, "daemon peak RSS {hwm} kB");
    let log = lab.log();
    for why in [
        "leads out of the TFTP root",
        "read-only",
        "'..'",
        "more than 16 options",
    ] {
        assert!(log.contains(why), "no log line for {why}:\n{log}");
    }
}
