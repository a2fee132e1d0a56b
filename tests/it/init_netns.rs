//! `headnode init` for real: namespaces with veth interfaces, a default route
//! and addresses; init reads them over rtnetlink and writes a config that
//! `headnode check` accepts.

use super::common;

use common::{Netns, head_and_peer, headnode, text, veth};
use headnode::config::model::{Action, Proto, Zone};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A head node namespace: `wan0` 198.51.100.10/24 with the default route via
/// 198.51.100.1, and (when `lan`) `lan0` 192.168.77.254/24; the far ends live in `peer`.
struct HeadNode {
    ns: Netns,
    peer: Netns,
    dir: PathBuf,
}

fn head_node(lan: bool) -> HeadNode {
    let (ns, peer) = head_and_peer("init", "initp", lan);
    ns.ok(&["ip", "route", "add", "default", "via", "198.51.100.1"]);
    let dir = std::env::temp_dir().join(format!("hn-init-{}", ns.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    HeadNode { ns, peer, dir }
}

impl Drop for HeadNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl HeadNode {
    /// `headnode init ARGS` in the namespace; `ssh` sets SSH_CONNECTION, else it is unset.
    fn init(&self, args: &[&str], ssh: Option<&str>) -> Output {
        let bin = headnode();
        let mut cmd = self.ns.cmd(&[bin.to_str().unwrap(), "init"]);
        cmd.args(args).env_remove("SSH_CONNECTION");
        if let Some(s) = ssh {
            cmd.env("SSH_CONNECTION", s);
        }
        cmd.output().expect("run headnode init")
    }

    fn check(&self, file: &Path) -> String {
        let bin = headnode();
        self.ns
            .ok(&[bin.to_str().unwrap(), "check", "-c", file.to_str().unwrap()])
    }
}

#[test]
fn writes_a_valid_config_for_two_interfaces() {
    if !common::can_netns(&[]) {
        return;
    }
    let b = head_node(true);
    // The parent directory does not exist yet: init creates it.
    let file = b.dir.join("etc/headnode.toml");
    let out = b.init(&["--output", file.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));

    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "mode {mode:o}");

    let summary = b.check(&file);
    assert!(
        summary.contains("public wan0 (198.51.100.10/24), private lan0 (192.168.77.254/24)"),
        "{summary}"
    );
    let cfg = headnode::config::load(&file).unwrap();
    assert_eq!(
        cfg.public.gateway,
        Some("198.51.100.1".parse().unwrap()),
        "gateway from the default route"
    );
    assert!(
        cfg.firewall.rules.is_empty(),
        "no SSH session, no extra rule"
    );

    // Never overwrite without --force; the file stays as it was.
    let before = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, "# edited by the admin\n").unwrap();
    let out = b.init(&["--output", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# edited by the admin\n"
    );

    let out = b.init(&["--output", file.to_str().unwrap(), "--force"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "mode after --force {mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
}

#[test]
fn dry_run_prints_and_writes_nothing() {
    if !common::can_netns(&[]) {
        return;
    }
    let b = head_node(true);
    let file = b.dir.join("headnode.toml");
    let out = b.init(&["--output", file.to_str().unwrap(), "--dry-run"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!file.exists(), "--dry-run wrote {}", file.display());
    let printed = String::from_utf8_lossy(&out.stdout);
    let cfg = headnode::config::parse(&printed, Path::new("stdout")).unwrap();
    assert_eq!(
        (cfg.public.name.as_str(), cfg.private.name.as_str()),
        ("wan0", "lan0")
    );
}

#[test]
fn one_interface_asks_for_private() {
    if !common::can_netns(&[]) {
        return;
    }
    let b = head_node(false);
    let file = b.dir.join("headnode.toml");
    let out = b.init(&["--output", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--private"), "{}", text(&out));
    assert!(
        err.contains("wan0 (198.51.100.10/24, default route)"),
        "{}",
        text(&out)
    );
    assert!(!file.exists());
}

#[test]
fn several_lan_candidates_ask_for_private_and_the_flag_decides() {
    if !common::can_netns(&[]) {
        return;
    }
    let b = head_node(true);
    veth(&b.ns, "lan1", Some("10.9.0.1/16"), &b.peer, "node1", None);
    let file = b.dir.join("headnode.toml");
    let out = b.init(&["--output", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lan0 (192.168.77.254/24), lan1 (10.9.0.1/16)") && err.contains("--private"),
        "{}",
        text(&out)
    );
    let out = b.init(
        &["--output", file.to_str().unwrap(), "--private", "lan1"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(b.check(&file).contains("private lan1 (10.9.0.1/16)"));
}

#[test]
fn ssh_session_keeps_its_port_open() {
    if !common::can_netns(&[]) {
        return;
    }
    let b = head_node(true);
    // From outside, to a non-standard port: accept tcp 2222 from net.
    let file = b.dir.join("wan.toml");
    let ssh = "198.51.100.1 50122 198.51.100.10 2222";
    let out = b.init(&["--output", file.to_str().unwrap()], Some(ssh));
    assert!(out.status.success(), "{}", text(&out));
    b.check(&file);
    let cfg = headnode::config::load(&file).unwrap();
    let kept: Vec<_> = cfg
        .firewall
        .rules
        .iter()
        .map(|r| {
            (
                r.action,
                r.from,
                r.to,
                r.proto,
                r.ports.iter().map(|p| p.first).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [(
            Action::Accept,
            Zone::Net,
            Zone::Fw,
            Some(Proto::Tcp),
            vec![2222]
        )]
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("lock the admin out"), "{written}");

    // From the LAN, port 22: accept tcp 22 from loc.
    let file = b.dir.join("lan.toml");
    let ssh = "192.168.77.1 40000 192.168.77.254 22";
    let out = b.init(&["--output", file.to_str().unwrap()], Some(ssh));
    assert!(out.status.success(), "{}", text(&out));
    let cfg = headnode::config::load(&file).unwrap();
    let r = &cfg.firewall.rules[0];
    assert_eq!((r.from, r.to, r.ports[0].first), (Zone::Loc, Zone::Fw, 22));
}

#[test]
fn dhcp_assigned_public_address_is_read_at_apply() {
    if !common::can_netns(&[]) {
        return;
    }
    let b = head_node(true);
    // Replace wan0's address with one that has a lifetime, as a DHCP client sets it.
    b.ns.ok(&["ip", "addr", "flush", "dev", "wan0"]);
    b.ns.ok(&[
        "ip",
        "addr",
        "add",
        "198.51.100.20/24",
        "dev",
        "wan0",
        "valid_lft",
        "3600",
        "preferred_lft",
        "3600",
    ]);
    b.ns.ok(&["ip", "route", "add", "default", "via", "198.51.100.1"]);
    let out = b.init(&["--dry-run"], None);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("address = \"auto\""), "{printed}");
    assert!(
        printed.contains("198.51.100.20/24 has a lifetime"),
        "{printed}"
    );
    let cfg = headnode::config::parse(&printed, Path::new("stdout")).unwrap();
    assert_eq!(cfg.public.address, None);
}

/// Listens on the given ports for at most 30 s and greets every connection.
const LISTENER: &str = r#"
import socket, sys, time
socks = []
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen()
    s.settimeout(0.1)
    socks.append(s)
end = time.time() + 30
while time.time() < end:
    for s in socks:
        try:
            c, _ = s.accept()
            c.sendall(b"hi\n")
            c.close()
        except socket.timeout:
            pass
"#;

/// Connects with a 1 s timeout; exit 0 only if the greeting arrives.
const CONNECT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
sys.exit(0 if s.recv(3) == b"hi\n" else 1)
"#;

/// The rule init writes for the SSH session really keeps that port reachable
/// once the firewall built from the written config is loaded, while other
/// ports from net are dropped.
#[test]
fn ssh_port_stays_reachable_through_the_applied_firewall() {
    if !common::can_netns(&["nft", "python3"]) {
        return;
    }
    let mut b = head_node(true);
    let file = b.dir.join("headnode.toml");
    let ssh = "198.51.100.1 50122 198.51.100.10 2222";
    let out = b.init(&["--output", file.to_str().unwrap()], Some(ssh));
    assert!(out.status.success(), "{}", text(&out));
    let cfg = headnode::config::load(&file).unwrap();
    let json = serde_json::to_string(&headnode::firewall::ruleset(&cfg, None)).unwrap();
    let mut nft =
        b.ns.cmd(&["nft", "-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
    use std::io::Write as _;
    nft.stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let applied = nft.wait_with_output().unwrap();
    assert!(
        applied.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&applied.stderr)
    );

    b.ns.spawn(&["python3", "-c", LISTENER, "2222", "2223"]);
    let reach = |port: &str| {
        b.peer
            .run(&["python3", "-c", CONNECT, "198.51.100.10", port])
            .status
            .success()
    };
    assert!(
        common::wait_for(std::time::Duration::from_secs(5), || reach("2222")
            .then_some(()))
        .is_some(),
        "tcp 2222 (the SSH session's port) is not reachable from net"
    );
    assert!(
        !reach("2223"),
        "tcp 2223 is reachable from net: the firewall is not in effect"
    );
}
