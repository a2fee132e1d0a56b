//! Shared helpers for integration tests: network namespaces and veth pairs
//! that clean up after themselves, and the headnode binary under test.
//!
//! Every namespace is named `hn-<tag>-<pid>-<n>`, so parallel tests and
//! parallel runs never collide, and dropping the guard kills what ran inside
//! it and deletes it, also when the test fails.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The headnode binary built for these tests.
pub fn headnode() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_headnode"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The variable `.ci/run` sets to `1`: a test that cannot run here (not root,
/// a program missing, a kernel feature missing) then fails, naming what was
/// missing, instead of passing without having run.
pub const STRICT: &str = "HEADNODE_TEST_STRICT";

/// The one way a test gives up: `missing` says what this machine lacks. Under
/// `HEADNODE_TEST_STRICT=1` it panics; otherwise it prints `SKIP` and returns
/// false, so a test reads `if !common::can_netns(&["nft"]) { return; }`.
pub fn cannot_run(missing: &str) -> bool {
    // libtest names each test's thread after the test.
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    if std::env::var(STRICT).is_ok_and(|v| v == "1") {
        panic!("{test} cannot run here: it needs {missing}; {STRICT}=1 makes that a failure");
    }
    // Straight to stderr: libtest hides what a passing test prints with
    // eprintln!, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIP {test}: needs {missing}");
    false
}

/// True when the test may create network namespaces (root, iproute2) and
/// every program in `programs` is on PATH; otherwise [`cannot_run`] with all
/// that is missing.
pub fn can_netns(programs: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (to create network namespaces)".to_string());
    }
    for prog in std::iter::once(&"ip").chain(programs) {
        if !on_path(prog) {
            missing.push(format!("`{prog}` (tests/setup.sh installs it)"));
        }
    }
    missing.is_empty() || cannot_run(&missing.join(", "))
}

fn on_path(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub struct Netns {
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    /// A fresh namespace with `lo` up.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("hn-{tag}-{}-{n}", std::process::id());
        run_ok("ip", &["netns", "add", &name]);
        // `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc, so a DHCP
        // client hook that writes /etc/resolv.conf writes this copy, not the host's.
        let etc = etc_dir(&name);
        std::fs::create_dir_all(&etc).expect("create /etc/netns/NAME");
        std::fs::write(etc.join("resolv.conf"), "").expect("namespace resolv.conf");
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Run and return the output, whatever the exit status.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.cmd(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?} in {}: {e}", self.name))
    }

    /// Run and panic with stderr unless it succeeds; returns stdout.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sh -c script` inside the namespace.
    pub fn sh(&self, script: &str) -> Output {
        self.run(&["sh", "-c", script])
    }

    /// Start a background process in the namespace; it is killed on drop.
    pub fn spawn(&mut self, argv: &[&str]) -> u32 {
        let child = self
            .cmd(argv)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Start with stdout/stderr captured to a file.
    pub fn spawn_logged(&mut self, argv: &[&str], log: &std::path::Path) -> u32 {
        let f = std::fs::File::create(log).expect("log file");
        let child = self
            .cmd(argv)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Take back a child started with `spawn`, e.g. to signal or wait for it.
    pub fn take_child(&mut self, pid: u32) -> Option<Child> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        Some(self.children.remove(i))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything else still inside (e.g. a daemonised DHCP client) was
        // started by this test in this namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(etc_dir(&self.name));
    }
}

fn etc_dir(name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(name)
}

/// A head node's namespace and one for everything around it: `wan0`
/// 198.51.100.10/24 (far end `up0`, .1) and, with `lan`, `lan0`
/// 192.168.77.254/24 (far end `node0`, .1).
pub fn head_and_peer(head: &str, peer: &str, lan: bool) -> (Netns, Netns) {
    let ns = Netns::new(head);
    let far = Netns::new(peer);
    veth(
        &ns,
        "wan0",
        Some("198.51.100.10/24"),
        &far,
        "up0",
        Some("198.51.100.1/24"),
    );
    if lan {
        veth(
            &ns,
            "lan0",
            Some("192.168.77.254/24"),
            &far,
            "node0",
            Some("192.168.77.1/24"),
        );
    }
    (ns, far)
}

/// A veth pair between two namespaces, with optional addresses ("10.0.0.1/24"), both up.
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_addr: Option<&str>,
    b: &Netns,
    b_if: &str,
    b_addr: Option<&str>,
) {
    let tmp = format!("hnv{}", COUNTER.fetch_add(1, Ordering::SeqCst));
    let tmp_peer = format!("{tmp}p");
    run_ok(
        "ip",
        &[
            "link", "add", &tmp, "type", "veth", "peer", "name", &tmp_peer,
        ],
    );
    run_ok("ip", &["link", "set", &tmp, "netns", &a.name]);
    run_ok("ip", &["link", "set", &tmp_peer, "netns", &b.name]);
    a.ok(&["ip", "link", "set", &tmp, "name", a_if]);
    b.ok(&["ip", "link", "set", &tmp_peer, "name", b_if]);
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        if let Some(addr) = addr {
            ns.ok(&["ip", "addr", "add", addr, "dev", ifname]);
        }
        ns.ok(&["ip", "link", "set", ifname, "up"]);
    }
}

fn run_ok(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Poll `f` every 100 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run the headnode binary (outside any namespace) from the repository root,
/// so fixture paths are relative to it as in the messages the tests expect.
pub fn headnode_run(args: &[&str]) -> Output {
    Command::new(headnode())
        .current_dir(root())
        .args(args)
        .output()
        .expect("run headnode")
}

/// Exit status, stdout and stderr of a finished command, for failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Send signal `sig` (a name: "TERM", "HUP", "KILL") to a process this test started.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{sig} {pid} failed");
}

/// Make a script the test wrote executable.
pub fn chmod_x(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Every skip goes through [`cannot_run`], so `HEADNODE_TEST_STRICT=1` can
/// fail it: no other module checks for root or prints its own SKIP line.
#[test]
fn every_skip_goes_through_cannot_run() {
    let dir = root().join("tests/it");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/it") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n == "common.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a test module");
        for needle in ["geteuid", "getuid", "\"SKIP"] {
            if text.contains(needle) {
                offenders.push(format!("{}: {needle}", path.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use common::can_netns / common::cannot_run instead:\n{}",
        offenders.join("\n")
    );
}
