//! `headnode run` as an admin meets it, in namespaces: a net host, the head
//! node, a LAN switch (bridge) and cluster nodes. Checks the daemon's
//! lifecycle (lease, status, drift repair, reload, SIGTERM), `status`'s exit
//! codes, `reload` when nft refuses the new ruleset, and health-driven
//! balancing with the nftables backend (this host kernel has no IPVS).

use super::common;

use common::{Netns, can_netns, headnode, signal, text, veth, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The capability bounding set of packaging/headnode.service (no CAP_SYS_ADMIN).
const UNIT_CAPS: [&str; 3] = [
    "setpriv",
    "--bounding-set",
    "-all,+net_admin,+net_bind_service,+net_raw",
];

struct Lab {
    net: Netns,
    head: Netns,
    _lan: Netns,
    nodes: Vec<Netns>,
    dir: PathBuf,
    /// More `VAR=value` for the daemon and every command (e.g. `HEADNODE_NFT`).
    extra_env: Vec<String>,
    /// Flags after `run` (e.g. `--force`).
    run_flags: Vec<&'static str>,
    reconcile: &'static str,
}

impl Lab {
    /// net 203.0.113.253 -- head eth1 203.0.113.210 / eth0 192.168.1.254 -- bridge -- nodes.
    fn new(tag: &str, node_macs: &[&str]) -> Lab {
        let net = Netns::new(&format!("{tag}n"));
        let head = Netns::new(&format!("{tag}h"));
        let lan = Netns::new(&format!("{tag}l"));
        veth(
            &net,
            "eth0",
            Some("203.0.113.253/24"),
            &head,
            "eth1",
            Some("203.0.113.210/24"),
        );
        head.ok(&["ip", "route", "add", "default", "via", "203.0.113.253"]);
        lan.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
        lan.ok(&["ip", "link", "set", "br0", "up"]);
        veth(&head, "eth0", Some("192.168.1.254/24"), &lan, "p0", None);
        lan.ok(&["ip", "link", "set", "p0", "master", "br0"]);
        let mut nodes = Vec::new();
        for (i, mac) in node_macs.iter().enumerate() {
            let n = Netns::new(&format!("{tag}{i}"));
            let port = format!("p{}", i + 1);
            veth(&n, "eth0", None, &lan, &port, None);
            n.ok(&["ip", "link", "set", "eth0", "address", mac]);
            lan.ok(&["ip", "link", "set", &port, "master", "br0"]);
            nodes.push(n);
        }
        let dir = std::env::temp_dir().join(format!("hn-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Lab {
            net,
            head,
            _lan: lan,
            nodes,
            dir,
            extra_env: Vec::new(),
            run_flags: Vec::new(),
            reconcile: "2s",
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("headnode.toml")
    }

    fn env(&self) -> Vec<String> {
        let mut env = vec![
            format!("HEADNODE_STATE_DIR={}", self.dir.join("state").display()),
            format!("HEADNODE_RUN_DIR={}", self.dir.join("run").display()),
            format!("HEADNODE_RECONCILE_INTERVAL={}", self.reconcile),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// `headnode ARGS` inside the head namespace with this lab's state dirs.
    fn headnode(&self, args: &[&str]) -> std::process::Output {
        let bin = headnode();
        let cfg = self.config();
        let mut argv: Vec<String> = vec!["env".into()];
        argv.extend(self.env());
        argv.push(bin.display().to_string());
        argv.push("-c".into());
        argv.push(cfg.display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.head.run(&refs)
    }

    /// Start the daemon; returns its pid once it logged "ready". It runs
    /// with only the capabilities headnode.service grants (setpriv execs, so
    /// the pid is the daemon's).
    fn start_daemon(&mut self) -> u32 {
        self.start_daemon_until(" ready")
    }

    /// Start the daemon and wait until its log has `marker`.
    fn start_daemon_until(&mut self, marker: &str) -> u32 {
        let bin = headnode();
        let cfg = self.config();
        let mut argv: Vec<String> = UNIT_CAPS.iter().map(|s| s.to_string()).collect();
        argv.push("env".into());
        argv.extend(self.env());
        argv.extend([
            bin.display().to_string(),
            "-c".into(),
            cfg.display().to_string(),
            "run".into(),
        ]);
        argv.extend(self.run_flags.iter().map(|f| f.to_string()));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let log = self.dir.join("daemon.log");
        let pid = self.head.spawn_logged(&refs, &log);
        let ready = wait_for(Duration::from_secs(15), || {
            self.log().contains(marker).then_some(())
        });
        assert!(
            ready.is_some(),
            "daemon did not become ready:\n{}",
            self.log()
        );
        pid
    }

    /// `headnode status --json`: its exit code and the document, which
    /// carries the same code.
    fn status(&self) -> (i32, serde_json::Value) {
        let st = self.headnode(&["status", "--json"]);
        let code = st.status.code().unwrap_or(-1);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_else(|e| {
            panic!(
                "status JSON ({e}), exit {code}: {}",
                String::from_utf8_lossy(&st.stderr)
            )
        });
        assert_eq!(v["version"], 1, "{v:#}");
        assert_eq!(v["exit"]["code"], code, "{v:#}");
        (code, v)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// One HTTP GET from the net host to the public address.
    fn get(&self, port: u16) -> String {
        let url = format!("http://203.0.113.210:{port}/");
        let out = self.net.run(&["curl", "-s", "-m", "3", &url]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const BASE: &str = r#"
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"
gateway = "203.0.113.253"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"
"#;

fn write_config(lab: &Lab, body: &str) {
    let lease_file = lab.dir.join("leases");
    let text = format!(
        "{BASE}\n[dhcp]\nlease_file = \"{}\"\nlease_time = \"1h\"\n{body}",
        lease_file.display()
    );
    std::fs::write(lab.config(), text).expect("write config");
}

fn udhcpc(node: &Netns) -> String {
    let out = node.run(&[
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-t",
        "4",
        "-T",
        "1",
        "-s",
        &common::root()
            .join("tests/udhcpc.script")
            .display()
            .to_string(),
    ]);
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

fn table_exists(ns: &Netns) -> bool {
    ns.run(&["nft", "list", "table", "inet", "headnode"])
        .status
        .success()
}

#[test]
fn daemon_serves_repairs_drift_reloads_and_keeps_the_firewall_on_stop() {
    if !can_netns(&["nft", "busybox"]) {
        return;
    }
    let mut lab = Lab::new("dl", &["00:12:34:56:78:91"]);
    write_config(
        &lab,
        r#"
[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"
"#,
    );
    let pid = lab.start_daemon();

    // A real client gets its reservation, and status shows it.
    let out = udhcpc(&lab.nodes[0]);
    assert!(out.contains("lease of 192.168.1.101 obtained"), "{out}");
    let (code, v) = lab.status();
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["daemon"]["running"], true);
    assert_eq!(v["firewall"]["state"], "in_sync");
    let lease = v["leases"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["address"] == "192.168.1.101"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(lease["state"], "bound", "{v:#}");
    assert_eq!(v["dhcp"]["serving"], true, "{v:#}");

    // The private interface goes down: status says DHCP is deaf and why,
    // and it listens again once the interface is back.
    lab.head.ok(&["ip", "link", "set", "eth0", "down"]);
    let deaf = wait_for(Duration::from_secs(3), || {
        let (_, v) = lab.status();
        (v["dhcp"]["deaf"] == "interface eth0 is down").then_some(())
    });
    assert!(deaf.is_some(), "{:#}", lab.status().1);
    lab.head.ok(&["ip", "link", "set", "eth0", "up"]);
    let back = wait_for(Duration::from_secs(3), || {
        let (_, v) = lab.status();
        (v["dhcp"]["serving"] == true && v["dhcp"]["rebinds"] == 1).then_some(())
    });
    assert!(back.is_some(), "{:#}", lab.status().1);

    // Someone flushes the whole ruleset: repaired within the reconcile interval.
    lab.head.ok(&["nft", "flush", "ruleset"]);
    assert!(!table_exists(&lab.head));
    // The log line comes right after the reload, so wait for both.
    let repaired = wait_for(Duration::from_secs(15), || {
        (table_exists(&lab.head) && lab.log().contains("firewall drift")).then_some(())
    });
    assert!(repaired.is_some(), "ruleset not repaired:\n{}", lab.log());

    // One rule deleted by hand is drift too: the listing differs from the
    // one recorded at the last load.
    let chain = lab
        .head
        .ok(&["nft", "-a", "list", "chain", "inet", "headnode", "input"]);
    let handle = chain
        .lines()
        .filter(|l| !l.trim_start().starts_with("chain "))
        .filter_map(|l| l.split("# handle ").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no rule in input:\n{chain}"))
        .trim()
        .to_string();
    lab.head.ok(&[
        "nft", "delete", "rule", "inet", "headnode", "input", "handle", &handle,
    ]);
    let repaired = wait_for(Duration::from_secs(15), || {
        lab.log()
            .contains("table inet headnode was changed")
            .then_some(())
    });
    assert!(
        repaired.is_some(),
        "deleted rule not repaired:\n{}",
        lab.log()
    );
    let after = lab
        .head
        .ok(&["nft", "-a", "list", "chain", "inet", "headnode", "input"]);
    assert_eq!(after.lines().count(), chain.lines().count(), "{after}");

    // An invalid config on SIGHUP is rejected; the daemon keeps serving.
    let good = std::fs::read_to_string(lab.config()).unwrap();
    std::fs::write(lab.config(), good.replace("192.168.1.101", "192.168.1.300")).unwrap();
    signal(pid, "HUP");
    let rejected = wait_for(Duration::from_secs(5), || {
        lab.log().contains("reload rejected").then_some(())
    });
    assert!(rejected.is_some(), "{}", lab.log());
    assert!(
        lab.log().contains("192.168.1.300"),
        "the rejection names the bad value"
    );
    let out = udhcpc(&lab.nodes[0]);
    assert!(
        out.contains("lease of 192.168.1.101 obtained"),
        "after a bad reload: {out}"
    );

    // `headnode reload` with a valid change: node1 moves to .111 at its next request.
    std::fs::write(lab.config(), good.replace("192.168.1.101", "192.168.1.111")).unwrap();
    let r = lab.headnode(&["reload"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    lab.nodes[0].ok(&["ip", "addr", "flush", "dev", "eth0"]);
    let out = udhcpc(&lab.nodes[0]);
    assert!(
        out.contains("lease of 192.168.1.111 obtained"),
        "after reload: {out}"
    );

    // SIGTERM: the daemon exits cleanly and the firewall stays.
    signal(pid, "TERM");
    let child = lab.head.take_child(pid);
    let status = child.map(|mut c| c.wait().expect("wait"));
    assert!(status.is_some_and(|s| s.success()), "{}", lab.log());
    assert!(
        table_exists(&lab.head),
        "SIGTERM must leave the firewall in place"
    );
    assert!(lab.log().contains("firewall stays in place"));

    // Without the daemon, status reads the kernel: no daemon, rules still counted.
    let (code, v) = lab.status();
    assert_eq!(code, 3, "daemon not running: {v:#}");
    assert_eq!(v["daemon"]["running"], false);
    let rules = v["firewall"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        rules.iter().any(|r| r["packets"].as_u64() > Some(0)),
        "rule counters after stop: {v:#}"
    );

    // A restarted daemon finds its recorded table unchanged and keeps it
    // (and its counters): no load at start.
    lab.start_daemon();
    assert!(
        !lab.log().contains("firewall: table inet headnode"),
        "restart reloaded the table:\n{}",
        lab.log()
    );
    let (code, v) = lab.status();
    assert_eq!(
        (code, &v["firewall"]["state"]),
        (0, &"in_sync".into()),
        "{v:#}"
    );
}

fn serve(node: &mut Netns, dir: &Path, text: &str, port: u16) -> u32 {
    let www = dir.join(text);
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), format!("{text}\n")).unwrap();
    let port = port.to_string();
    let www = www.display().to_string();
    node.spawn(&["busybox", "httpd", "-f", "-p", &port, "-h", &www])
}

#[test]
fn health_checks_steer_the_nftables_balancer() {
    if !can_netns(&["curl", "busybox"]) {
        return;
    }
    let mut lab = Lab::new(
        "hb",
        &[
            "00:12:34:56:78:91",
            "00:12:34:56:78:92",
            "00:12:34:56:78:93",
        ],
    );
    for (i, n) in lab.nodes.iter().enumerate() {
        let addr = format!("192.168.1.{}/24", 101 + i);
        n.ok(&["ip", "addr", "add", &addr, "dev", "eth0"]);
        n.ok(&["ip", "route", "add", "default", "via", "192.168.1.254"]);
    }
    write_config(
        &lab,
        r#"
enabled = false

[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[host]]
name = "node2"
mac = "00:12:34:56:78:92"
address = "192.168.1.102"

[[host]]
name = "sorry"
mac = "00:12:34:56:78:93"
address = "192.168.1.103"

[[service]]
name = "web"
port = 8000
real = ["node1:8000", "node2:8000"]
health = { check = "http", path = "/", interval = "300ms", timeout = "250ms", rise = 2, fall = 2 }
sorry_server = "sorry:8000"
"#,
    );
    let dir = lab.dir.clone();
    let mut nodes = std::mem::take(&mut lab.nodes);
    serve(&mut nodes[0], &dir, "NODE1", 8000);
    let node2 = serve(&mut nodes[1], &dir, "NODE2", 8000);
    serve(&mut nodes[2], &dir, "SORRY", 8000);
    lab.nodes = nodes;
    lab.start_daemon();

    let six: Vec<String> = (0..6).map(|_| lab.get(8000)).collect();
    assert_eq!(
        six,
        ["NODE1", "NODE2", "NODE1", "NODE2", "NODE1", "NODE2"],
        "round robin"
    );

    // node2 stops: within interval x fall (plus one interval of slack) it gets no new connections.
    drop(lab.nodes[1].take_child(node2).map(|mut c| c.kill()));
    std::thread::sleep(Duration::from_millis(300 * 3 + 300));
    let after: Vec<String> = (0..4).map(|_| lab.get(8000)).collect();
    assert_eq!(after, ["NODE1"; 4], "drained node2:\n{}", lab.log());
    assert!(lab.log().contains("health: down"), "{}", lab.log());

    // `apply` by hand keeps what the daemon's checks drained drained (it
    // asks the daemon), so it has nothing to change.
    let out = lab.headnode(&["plan"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("real server 192.168.1.102:8000 is down"),
        "{plan}"
    );
    let out = lab.headnode(&["apply"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ruleset: unchanged"), "{text}");
    let after: Vec<String> = (0..4).map(|_| lab.get(8000)).collect();
    assert_eq!(
        after,
        ["NODE1"; 4],
        "still drained after apply:\n{}",
        lab.log()
    );

    // node2 comes back: alternation returns after rise checks.
    let dir = lab.dir.clone();
    serve(&mut lab.nodes[1], &dir, "NODE2", 8000);
    let back = wait_for(Duration::from_secs(5), || {
        let two = [lab.get(8000), lab.get(8000)];
        (two.contains(&"NODE2".to_string())).then_some(())
    });
    assert!(back.is_some(), "node2 not restored:\n{}", lab.log());

    // Both down: the sorry server answers.
    lab.nodes[0].ok(&["ip", "link", "set", "eth0", "down"]);
    lab.nodes[1].ok(&["ip", "link", "set", "eth0", "down"]);
    let sorry = wait_for(Duration::from_secs(5), || {
        (lab.get(8000) == "SORRY").then_some(())
    });
    assert!(sorry.is_some(), "sorry server not used:\n{}", lab.log());
    // Health changes replace the balance chain and record it: no drift.
    assert!(!lab.log().contains("firewall drift"), "{}", lab.log());
}

#[test]
fn status_exit_codes_say_what_is_wrong() {
    if !can_netns(&["busybox"]) {
        return;
    }
    let mut lab = Lab::new("pre", &["00:12:34:56:78:91"]);
    // No drift repair during the test: drift must stay visible.
    lab.reconcile = "1h";
    lab.nodes[0].ok(&["ip", "addr", "add", "192.168.1.101/24", "dev", "eth0"]);
    write_config(
        &lab,
        r#"
[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[service]]
name = "web"
port = 8000
real = ["node1:8000"]
health = { check = "tcp", interval = "200ms", timeout = "150ms", rise = 1, fall = 1 }

[balancer]
backend = "nftables"
"#,
    );
    let dir = lab.dir.clone();
    let mut nodes = std::mem::take(&mut lab.nodes);
    let httpd = serve(&mut nodes[0], &dir, "NODE1", 8000);
    lab.nodes = nodes;
    let pid = lab.start_daemon();

    let (code, v) = lab.status();
    assert_eq!(code, 0, "all well: {v:#}");

    // The only real server stops: 5.
    drop(lab.nodes[0].take_child(httpd).map(|mut c| c.kill()));
    let down = wait_for(Duration::from_secs(5), || {
        let (code, v) = lab.status();
        (code == 5).then_some(v)
    });
    let v = down.unwrap_or_else(|| panic!("no exit 5:\n{}", lab.log()));
    assert_eq!(v["exit"]["verdict"], "no_healthy_real", "{v:#}");
    assert_eq!(v["balancer"]["services"][0]["reals"][0]["health"], "down");
    let text = lab.headnode(&["status"]);
    assert_eq!(text.status.code(), Some(5));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("service web: no real server is healthy"),
        "{text}"
    );

    // The LAN interface goes down: DHCP is deaf (6), listed after the 5.
    lab.head.ok(&["ip", "link", "set", "eth0", "down"]);
    let dhcp_reason = |v: &serde_json::Value| {
        v["exit"]["reasons"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r.as_str()
                    .is_some_and(|r| r.starts_with("dhcp: not listening on eth0"))
            })
        })
    };
    let deaf = wait_for(Duration::from_secs(5), || {
        let (code, v) = lab.status();
        (code == 5 && dhcp_reason(&v)).then_some(v)
    });
    deaf.unwrap_or_else(|| panic!("no DHCP reason:\n{:#}\n{}", lab.status().1, lab.log()));
    lab.head.ok(&["ip", "link", "set", "eth0", "up"]);
    let back = wait_for(Duration::from_secs(5), || {
        let (_, v) = lab.status();
        (!dhcp_reason(&v)).then_some(())
    });
    back.unwrap_or_else(|| panic!("DHCP still deaf:\n{:#}", lab.status().1));

    // The table is flushed behind the daemon's back: drift (4) wins over 5.
    lab.head.ok(&["nft", "flush", "ruleset"]);
    let (code, v) = lab.status();
    assert_eq!(code, 4, "{v:#}");
    assert_eq!(v["firewall"]["state"], "missing", "{v:#}");

    // The daemon stops: 3.
    signal(pid, "TERM");
    drop(lab.head.take_child(pid).map(|mut c| c.wait()));
    let (code, v) = lab.status();
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["daemon"]["running"], false);

    // An invalid config: 1 (lower than 3), and status still prints.
    let good = std::fs::read_to_string(lab.config()).unwrap();
    std::fs::write(lab.config(), good.replace("192.168.1.101", "192.168.1.300")).unwrap();
    let (code, v) = lab.status();
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("192.168.1.300")),
        "{v:#}"
    );
}

#[test]
fn reload_fails_when_nft_refuses_the_new_ruleset_and_the_old_one_stays() {
    if !can_netns(&["nft"]) {
        return;
    }
    let mut lab = Lab::new("prl", &[]);
    // nft as the daemon runs it, refusing every load once `refuse` exists
    // (`nft -c` checks still pass through: the refusal is at commit).
    let refuse = lab.dir.join("refuse");
    let fake = lab.dir.join("nft");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ -e {} ] && [ \"$1\" = -j ] && [ \"$2\" = -f ]; then\n  \
             echo 'Error: Could not process rule: refused by the test' >&2\n  exit 1\nfi\n\
             exec nft \"$@\"\n",
            refuse.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    lab.extra_env
        .push(format!("HEADNODE_NFT={}", fake.display()));
    write_config(&lab, "");
    lab.start_daemon();
    let before = lab
        .head
        .ok(&["nft", "-s", "list", "table", "inet", "headnode"]);

    // A valid change (port 2222 opened) that nft refuses: exit 2, nothing changes.
    let good = std::fs::read_to_string(lab.config()).unwrap();
    let opened = format!(
        "{good}\n[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nproto = \"tcp\"\nports = [2222]\n"
    );
    std::fs::write(lab.config(), &opened).unwrap();
    let check = lab.headnode(&["check"]);
    assert!(
        check.status.success(),
        "the test config must be valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::write(&refuse, "").unwrap();
    let r = lab.headnode(&["reload"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("refused by the test"), "{err}");
    assert!(err.contains("keeps running the previous config"), "{err}");
    assert!(lab.log().contains("reload failed"), "{}", lab.log());
    let after = lab
        .head
        .ok(&["nft", "-s", "list", "table", "inet", "headnode"]);
    assert_eq!(after, before, "the previous table stays");
    let (code, v) = lab.status();
    assert_eq!(
        (code, &v["firewall"]["state"]),
        (0, &"in_sync".into()),
        "{v:#}"
    );

    // An invalid config: exit 1, with the diagnostic.
    std::fs::write(
        lab.config(),
        good.replace("192.168.1.254/24", "192.168.1.300/24"),
    )
    .unwrap();
    let r = lab.headnode(&["reload"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("192.168.1.300"), "{err}");

    // nft accepts again: the same change reloads, and the port is in the table.
    std::fs::remove_file(&refuse).unwrap();
    std::fs::write(lab.config(), &opened).unwrap();
    let r = lab.headnode(&["reload"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let now = lab
        .head
        .ok(&["nft", "-s", "list", "table", "inet", "headnode"]);
    assert!(now.contains("2222"), "{now}");
}

/// `[[firewall.rule]]` accepting tcp `port` from the internet, appended to `base`.
fn with_port(base: &str, port: u16) -> String {
    format!(
        "{base}\n[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nproto = \"tcp\"\nports = [{port}]\n"
    )
}

#[test]
fn apply_confirm_and_clear_go_through_the_running_daemon() {
    if !can_netns(&["nft"]) {
        return;
    }
    let mut lab = Lab::new("pra", &[]);
    // Reconciles often: a daemon that undid the admin's change would do it fast.
    lab.reconcile = "1s";
    write_config(&lab, "");
    let base = std::fs::read_to_string(lab.config()).unwrap();
    lab.start_daemon();
    let table = |lab: &Lab| lab.head.ok(&["nft", "list", "table", "inet", "headnode"]);

    // apply: the daemon makes the change, and its reconcile keeps it.
    std::fs::write(lab.config(), with_port(&base, 2222)).unwrap();
    let out = lab.headnode(&["apply"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("applied by the running daemon"),
        "{}",
        text(&out)
    );
    assert!(table(&lab).contains("2222"), "{}", table(&lab));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(table(&lab).contains("2222"), "undone:\n{}", lab.log());
    assert!(!lab.log().contains("firewall drift"), "{}", lab.log());
    let (code, v) = lab.status();
    assert_eq!(code, 0, "{v:#}");

    // apply --confirm without a confirm: the daemon goes back to 2222 only.
    std::fs::write(lab.config(), with_port(&base, 3333)).unwrap();
    let out = lab.headnode(&["apply", "--confirm", "2s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("headnode confirm"), "{}", text(&out));
    let t = table(&lab);
    assert!(t.contains("3333") && !t.contains("2222"), "{t}");
    let rolled = wait_for(Duration::from_secs(8), || {
        let t = table(&lab);
        (t.contains("2222") && !t.contains("3333")).then_some(())
    });
    assert!(rolled.is_some(), "not rolled back:\n{}", lab.log());
    assert!(lab.log().contains("rolling back"), "{}", lab.log());
    // And it stays rolled back: no repair towards the file's 3333.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!table(&lab).contains("3333"), "{}", lab.log());
    let out = lab.headnode(&["confirm"]);
    assert_eq!(out.status.code(), Some(1), "too late: {}", text(&out));

    // apply --confirm, then confirm: 3333 stays past the deadline.
    let out = lab.headnode(&["apply", "--confirm", "3s"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.headnode(&["confirm"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("confirmed"), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(4));
    assert!(table(&lab).contains("3333"), "{}", lab.log());

    // clear while the daemon runs: refused, with the command that stops it.
    let out = lab.headnode(&["clear"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("systemctl stop headnode"),
        "{}",
        text(&out)
    );
    assert!(table(&lab).contains("3333"));

    // A config file that is not the daemon's is refused, not applied.
    let other = lab.dir.join("other.toml");
    std::fs::write(&other, with_port(&base, 4444)).unwrap();
    let mut argv: Vec<String> = vec!["env".into()];
    argv.extend(lab.env());
    argv.extend([
        headnode().display().to_string(),
        "-c".into(),
        other.display().to_string(),
        "apply".into(),
    ]);
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = lab.head.run(&refs);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the daemon runs"), "{}", text(&out));
    assert!(!table(&lab).contains("4444"));
}

#[test]
fn a_confirm_window_survives_a_daemon_restart() {
    if !can_netns(&["nft"]) {
        return;
    }
    let mut lab = Lab::new("prc", &[]);
    write_config(&lab, "");
    let base = std::fs::read_to_string(lab.config()).unwrap();
    std::fs::write(lab.config(), with_port(&base, 2222)).unwrap();
    let mut pid = lab.start_daemon();
    let table = |lab: &Lab| lab.head.ok(&["nft", "list", "table", "inet", "headnode"]);
    let kill = |lab: &mut Lab, pid: u32| {
        signal(pid, "KILL");
        drop(lab.head.take_child(pid).map(|mut c| c.wait()));
    };

    // Killed inside the window: the restarted daemon holds the rest of it
    // and rolls back at the deadline.
    std::fs::write(lab.config(), with_port(&base, 5555)).unwrap();
    let out = lab.headnode(&["apply", "--confirm", "4s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table(&lab).contains("5555"));
    kill(&mut lab, pid);
    pid = lab.start_daemon();
    assert!(lab.log().contains("still pending"), "{}", lab.log());
    assert!(table(&lab).contains("5555"), "kept until the deadline");
    let rolled = wait_for(Duration::from_secs(8), || {
        let t = table(&lab);
        (t.contains("2222") && !t.contains("5555")).then_some(())
    });
    assert!(rolled.is_some(), "not rolled back:\n{}", lab.log());

    // Down past the window: the daemon starts with the config from before.
    std::fs::write(lab.config(), with_port(&base, 6666)).unwrap();
    let out = lab.headnode(&["apply", "--confirm", "1s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kill(&mut lab, pid);
    std::thread::sleep(Duration::from_secs(2));
    assert!(table(&lab).contains("6666"), "nobody rolled back yet");
    lab.start_daemon();
    assert!(lab.log().contains("not confirmed"), "{}", lab.log());
    let t = table(&lab);
    assert!(t.contains("2222") && !t.contains("6666"), "{t}");
}

/// One connection attempt from the net host to the public address: curl's
/// exit code (0 served, 7 refused, 28 timed out), body and how long it took.
fn attempt(lab: &Lab, port: u16) -> (i32, String, Duration) {
    let url = format!("http://203.0.113.210:{port}/");
    let started = std::time::Instant::now();
    let out = lab.net.run(&["curl", "-s", "-m", "3", &url]);
    let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.code().unwrap_or(-1), body, started.elapsed())
}

#[test]
fn all_reals_down_refuses_at_once_and_the_first_back_serves_after_one_check() {
    if !can_netns(&["curl", "busybox", "nft"]) {
        return;
    }
    let mut lab = Lab::new("ipfb", &["00:12:34:56:78:91", "00:12:34:56:78:92"]);
    for (i, n) in lab.nodes.iter().enumerate() {
        let addr = format!("192.168.1.{}/24", 101 + i);
        n.ok(&["ip", "addr", "add", &addr, "dev", "eth0"]);
        n.ok(&["ip", "route", "add", "default", "via", "192.168.1.254"]);
    }
    // rise x interval = 10 s: a real coming back while the other serves waits that long.
    write_config(
        &lab,
        r#"
enabled = false

[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[host]]
name = "node2"
mac = "00:12:34:56:78:92"
address = "192.168.1.102"

[[service]]
name = "web"
port = 8000
real = ["node1:8000", "node2:8000"]
health = { check = "tcp", interval = "500ms", timeout = "200ms", rise = 20, fall = 1 }

[balancer]
backend = "nftables"
"#,
    );
    let dir = lab.dir.clone();
    let mut nodes = std::mem::take(&mut lab.nodes);
    serve(&mut nodes[0], &dir, "NODE1", 8000);
    serve(&mut nodes[1], &dir, "NODE2", 8000);
    lab.nodes = nodes;
    lab.start_daemon();
    let served = wait_for(Duration::from_secs(5), || {
        lab.get(8000).starts_with("NODE").then_some(())
    });
    assert!(served.is_some(), "not served:\n{}", lab.log());

    // Both nodes drop off the LAN: their packets go nowhere, so a refusal
    // can only come from the balancer.
    for n in &lab.nodes {
        n.ok(&["ip", "link", "set", "eth0", "down"]);
    }
    let refused = wait_for(Duration::from_secs(10), || {
        (attempt(&lab, 8000).0 == 7).then_some(())
    });
    assert!(refused.is_some(), "never refused:\n{}", lab.log());
    for _ in 0..3 {
        let (code, _, took) = attempt(&lab, 8000);
        assert_eq!(code, 7, "refused while all are down:\n{}", lab.log());
        assert!(
            took < Duration::from_secs(1),
            "refused at once, took {took:?}"
        );
    }

    // node1 comes back: served after its first passing check, not rise x interval.
    let back = std::time::Instant::now();
    lab.nodes[0].ok(&["ip", "link", "set", "eth0", "up"]);
    let first = wait_for(Duration::from_secs(12), || {
        let (code, body, _) = attempt(&lab, 8000);
        (code == 0).then_some(body)
    });
    let took = back.elapsed();
    assert_eq!(first.as_deref(), Some("NODE1"), "{}", lab.log());
    assert!(
        took < Duration::from_secs(4),
        "the first real back took {took:?} (rise x interval is 10 s):\n{}",
        lab.log()
    );
    assert!(lab.log().contains("restoring at once"), "{}", lab.log());

    // node2 comes back while node1 serves: rise applies, so it gets no
    // new connections for a while.
    lab.nodes[1].ok(&["ip", "link", "set", "eth0", "up"]);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert_eq!(lab.get(8000), "NODE1", "node2 before rise:\n{}", lab.log());
    }
}

/// Whether a new TCP connection from the net host to the head node's
/// `addr:port` gets through (a listener is there).
fn connects(lab: &Lab, addr: &str, port: u16) -> bool {
    let url = format!("http://{addr}:{port}/");
    lab.net
        .run(&["curl", "-s", "-o", "/dev/null", "-m", "2", &url])
        .status
        .success()
}

fn listing(lab: &Lab) -> String {
    String::from_utf8_lossy(
        &lab.head
            .run(&["nft", "list", "table", "inet", "headnode"])
            .stdout,
    )
    .into_owned()
}

const SERVICE: &str = r#"
[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[service]]
name = "web"
port = 8000
real = ["node1:8000"]
"#;

/// At boot the public side may have no address yet (`address = "auto"`,
/// DHCP not done): the daemon starts anyway, with a ruleset that leaves out
/// what needs the address, so a connection from the net is dropped from the
/// first packet; the address is followed once it comes and when it changes.
#[test]
fn boot_without_the_public_address_is_closed_and_follows_it() {
    if !can_netns(&["nft", "busybox", "curl"]) {
        return;
    }
    let mut lab = Lab::new("ba", &[]);
    lab.head.ok(&["ip", "addr", "flush", "dev", "eth1"]);
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "head\n").unwrap();
    lab.head.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "9999",
        "-h",
        www.to_str().unwrap(),
    ]);
    let lease_file = lab.dir.join("leases");
    let text = format!(
        "[interfaces.public]\nname = \"eth1\"\naddress = \"auto\"\n\n\
         [interfaces.private]\nname = \"eth0\"\naddress = \"192.168.1.254/24\"\n\n\
         [dhcp]\nlease_file = \"{}\"\n{SERVICE}",
        lease_file.display()
    );
    std::fs::write(lab.config(), text).unwrap();
    lab.start_daemon();
    assert!(table_exists(&lab.head), "{}", lab.log());
    assert!(!listing(&lab).contains("203.0.113."), "{}", listing(&lab));

    // The address arrives: the firewall is already there.
    lab.head
        .ok(&["ip", "addr", "add", "203.0.113.210/24", "dev", "eth1"]);
    assert!(
        !connects(&lab, "203.0.113.210", 9999),
        "new connection from net got in"
    );
    let followed = wait_for(Duration::from_secs(3), || {
        listing(&lab)
            .contains("ip daddr 203.0.113.210 tcp dport 8000")
            .then_some(())
    });
    assert!(followed.is_some(), "{}\n{}", listing(&lab), lab.log());

    // A DHCP renewal that changes the address: marks follow within seconds.
    // (Deleting the primary address first: a secondary in the same subnet
    // would go with it.)
    lab.head
        .ok(&["ip", "addr", "del", "203.0.113.210/24", "dev", "eth1"]);
    lab.head
        .ok(&["ip", "addr", "add", "203.0.113.211/24", "dev", "eth1"]);
    let followed = wait_for(Duration::from_secs(3), || {
        let l = listing(&lab);
        (l.contains("ip daddr 203.0.113.211 tcp dport 8000") && !l.contains("203.0.113.210"))
            .then_some(())
    });
    assert!(followed.is_some(), "{}\n{}", listing(&lab), lab.log());
    assert!(
        lab.log().contains("public address changed"),
        "{}",
        lab.log()
    );
    assert!(!connects(&lab, "203.0.113.211", 9999));
}

/// A config that does not load at boot: the last ruleset headnode applied is
/// loaded, or without one a built-in minimal table; status says which, and
/// the daemon starts for real once the config is fixed.
#[test]
fn boot_with_a_broken_config_loads_the_last_ruleset_or_the_minimal_one() {
    if !can_netns(&["nft", "busybox", "curl"]) {
        return;
    }
    let mut lab = Lab::new("bb", &[]);
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "head\n").unwrap();
    lab.head.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "9999",
        "-h",
        www.to_str().unwrap(),
    ]);
    // httpd was just started: wait until it listens (under load it takes a moment).
    let up = wait_for(Duration::from_secs(5), || {
        connects(&lab, "203.0.113.210", 9999).then_some(())
    });
    assert!(up.is_some(), "the listener is not reachable");
    write_config(&lab, SERVICE);
    let applied = lab.headnode(&["apply"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // A reboot: the table is gone, the record of the last load is not, and
    // the config was saved broken.
    lab.head.ok(&["nft", "delete", "table", "inet", "headnode"]);
    assert!(connects(&lab, "203.0.113.210", 9999));
    let good = std::fs::read_to_string(lab.config()).unwrap();
    std::fs::write(lab.config(), good.replace("[[service]]", "[[servce]]")).unwrap();

    let pid = lab.start_daemon_until("loaded the last applied ruleset");
    assert!(
        !connects(&lab, "203.0.113.210", 9999),
        "new connection from net got in"
    );
    assert!(listing(&lab).contains("ip daddr 203.0.113.210 tcp dport 8000"));
    let (code, v) = lab.status();
    assert_eq!(v["firewall"]["source"]["kind"], "last_applied", "{v:#}");
    assert_eq!(v["firewall"]["state"], "fallback", "{v:#}");
    // Exit 1 (the config is invalid) comes first; the fallback is a reason too.
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["exit"]["reasons"]
            .to_string()
            .contains("firewall: fallback"),
        "{v:#}"
    );
    assert!(
        v["daemon"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("servce"),
        "{v:#}"
    );
    signal(pid, "TERM");
    let stopped = lab
        .head
        .take_child(pid)
        .map(|mut c| c.wait().expect("wait"));
    assert!(stopped.is_some_and(|s| s.success()), "{}", lab.log());

    // No record either: the built-in minimal table.
    lab.head.ok(&["nft", "delete", "table", "inet", "headnode"]);
    std::fs::remove_file(lab.dir.join("state").join("firewall.applied")).unwrap();
    std::fs::remove_file(lab.dir.join("daemon.log")).unwrap();
    lab.start_daemon_until("loaded the built-in minimal table");
    assert!(
        !connects(&lab, "203.0.113.210", 9999),
        "new connection from net got in"
    );
    assert!(
        listing(&lab).contains("built-in minimal table"),
        "{}",
        listing(&lab)
    );
    assert_eq!(lab.status().1["firewall"]["source"]["kind"], "minimal");

    // Fixed: the daemon notices within seconds and starts for real.
    std::fs::write(lab.config(), good).unwrap();
    let started = wait_for(Duration::from_secs(10), || {
        lab.log().contains(" ready").then_some(())
    });
    assert!(started.is_some(), "{}", lab.log());
    let (_, v) = lab.status();
    assert_eq!(v["firewall"]["source"]["kind"], "config", "{v:#}");
    assert_eq!(v["firewall"]["state"], "in_sync", "{v:#}");
    assert!(!connects(&lab, "203.0.113.210", 9999));
}

/// A sysctl the setup does not need, which cannot be set (its interface is
/// not there), does not stop the start: status reports it.
#[test]
fn an_optional_sysctl_that_fails_is_reported_not_fatal() {
    if !can_netns(&["nft"]) {
        return;
    }
    let mut lab = Lab::new("os", &[]);
    write_config(&lab, "[sysctl]\n\"net.ipv4.conf.bond7.rp_filter\" = 1\n");
    lab.start_daemon();
    let (_, v) = lab.status();
    let problems = v["sysctl_problems"].to_string();
    assert!(problems.contains("net.ipv4.conf.bond7.rp_filter"), "{v:#}");
    assert_eq!(v["firewall"]["state"], "in_sync", "{v:#}");
}

/// A real server that takes its DHCP lease is health-checked at once: with
/// a 30 s check interval it serves within seconds of its lease, not at the
/// next interval.
#[test]
fn a_real_that_takes_its_lease_is_checked_at_once() {
    if !can_netns(&["curl", "busybox", "nft"]) {
        return;
    }
    let mut lab = Lab::new("ack", &["00:12:34:56:78:91"]);
    write_config(
        &lab,
        r#"
[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[service]]
name = "web"
port = 8000
real = ["node1:8000"]
health = { check = "tcp", interval = "30s", timeout = "500ms", rise = 1, fall = 1 }

[balancer]
backend = "nftables"
"#,
    );
    lab.start_daemon();
    // The node has no address yet: its first check fails, it is drained.
    let down = wait_for(Duration::from_secs(5), || {
        lab.log().contains("health: down").then_some(())
    });
    assert!(down.is_some(), "{}", lab.log());
    let dir = lab.dir.clone();
    let mut nodes = std::mem::take(&mut lab.nodes);
    serve(&mut nodes[0], &dir, "NODE1", 8000);
    lab.nodes = nodes;
    // It boots: takes its lease, and its server is up.
    let out = udhcpc(&lab.nodes[0]);
    assert!(out.contains("lease of 192.168.1.101 obtained"), "{out}");
    lab.nodes[0].ok(&["ip", "route", "replace", "default", "via", "192.168.1.254"]);
    let leased = std::time::Instant::now();
    let served = wait_for(Duration::from_secs(10), || {
        (lab.get(8000) == "NODE1").then_some(())
    });
    assert!(
        served.is_some(),
        "not served after its lease:\n{}",
        lab.log()
    );
    assert!(
        leased.elapsed() < Duration::from_secs(5),
        "served {:?} after its lease (interval 30 s):\n{}",
        leased.elapsed(),
        lab.log()
    );
}

/// A node the config does not know asks (udhcpc, refused), shows in
/// `leases --unknown` with its vendor and a `[[host]]` block; that block
/// pasted into the config serves it. A pool lease is ended with `leases
/// release`, which the lease file records.
#[test]
fn refused_nodes_are_listed_with_a_host_block_and_leases_can_be_released() {
    if !can_netns(&["busybox", "nft"]) {
        return;
    }
    const QEMU: &str = "52:54:00:12:34:56";
    const SMC: &str = "00:25:90:ab:cd:ef";
    let mut lab = Lab::new("unk", &[QEMU, SMC]);
    write_config(&lab, "");
    let pid = lab.start_daemon();

    let out = udhcpc(&lab.nodes[0]);
    assert!(!out.contains("obtained"), "no reservation, no pool: {out}");
    let listed = lab.headnode(&["leases", "--unknown"]);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{listed:?}");
    let row = text
        .lines()
        .find(|l| l.starts_with(QEMU))
        .unwrap_or_else(|| panic!("{text}\n{}", lab.log()));
    assert!(
        row.contains("QEMU/KVM (virtual)") && row.contains("eth0"),
        "{row}"
    );
    let json = lab.headnode(&["leases", "--unknown", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["version"], 1, "{v:#}");
    assert_eq!(v["dropped"], 0, "{v:#}");
    assert_eq!(v["clients"][0]["mac"], QEMU, "{v:#}");
    assert_eq!(v["clients"][0]["interface"], "eth0", "{v:#}");
    assert!(v["clients"][0]["requests"].as_u64() >= Some(1), "{v:#}");
    let address = v["clients"][0]["suggested_address"]
        .as_str()
        .expect("an address")
        .to_string();

    // The printed block, pasted as is, plus a pool for the other node.
    let block = &text[text.find("[[host]]").expect("host block")..];
    let mut config = std::fs::read_to_string(lab.config()).expect("config");
    config.push_str(&format!(
        "\n[dhcp.pool]\nstart = \"192.168.1.200\"\nend = \"192.168.1.209\"\n\n{block}"
    ));
    std::fs::write(lab.config(), config).expect("config");
    let reload = lab.headnode(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    let out = udhcpc(&lab.nodes[0]);
    assert!(
        out.contains(&format!("lease of {address} obtained")),
        "{out}"
    );
    let listed = lab.headnode(&["leases", "--unknown"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(QEMU),
        "a reserved MAC is no longer unknown: {listed:?}"
    );

    // A pool lease, ended by MAC; then it is over.
    let out = udhcpc(&lab.nodes[1]);
    assert!(out.contains("lease of 192.168.1.20"), "{out}");
    let released = lab.headnode(&["leases", "release", SMC]);
    let said = String::from_utf8_lossy(&released.stdout).into_owned();
    assert!(released.status.success(), "{released:?}");
    assert!(said.starts_with("released 192.168.1.20"), "{said}");
    let ip = said.split_whitespace().nth(1).expect("ip").to_string();
    let recorded = wait_for(Duration::from_secs(5), || {
        let leases = std::fs::read_to_string(lab.dir.join("leases")).unwrap_or_default();
        let line = format!("released {ip} {SMC} ");
        leases.lines().any(|l| l.starts_with(&line)).then_some(())
    });
    assert!(recorded.is_some(), "the lease file records the release");
    let again = lab.headnode(&["leases", "release", &ip]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already over"),
        "{again:?}"
    );
    let reserved = lab.headnode(&["leases", "release", &address]);
    assert_eq!(reserved.status.code(), Some(1), "{reserved:?}");
    signal(pid, "TERM");
    // Without a daemon there is nobody to ask.
    let gone = wait_for(Duration::from_secs(10), || {
        let o = lab.headnode(&["leases", "--unknown"]);
        (o.status.code() == Some(2)).then_some(o)
    });
    assert!(gone.is_some(), "leases --unknown without a daemon exits 2");
}

/// The SSH guard sees the sessions in the kernel's socket table, not the
/// environment (sudo drops SSH_CONNECTION): with a session from the internet
/// that the config's ruleset would not let back in, the daemon refuses to
/// start and to reload unless forced, and `apply` through it likewise.
#[test]
fn the_ssh_guard_sees_sessions_and_guards_start_reload_and_apply() {
    if !can_netns(&["nft", "python3"]) {
        return;
    }
    let mut lab = Lab::new("gd", &[]);
    // sshd listens on 2222 here.
    let sshd_config = lab.dir.join("sshd_config");
    std::fs::write(&sshd_config, "Port 2222\n").unwrap();
    lab.extra_env
        .push(format!("HEADNODE_SSHD_CONFIG={}", sshd_config.display()));
    write_config(&lab, "");
    let listen = "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',2222))\ns.listen()\nc,_=s.accept()\ntime.sleep(120)";
    lab.head.spawn(&["python3", "-c", listen]);
    std::thread::sleep(Duration::from_millis(500));
    let connect = "import socket,time\nc=socket.create_connection(('203.0.113.210',2222),timeout=5)\ntime.sleep(120)";
    lab.net.spawn(&["python3", "-c", connect]);
    let up = wait_for(Duration::from_secs(5), || {
        let ss = lab.head.ok(&["ss", "-Htn", "state", "established"]);
        ss.contains("203.0.113.253").then_some(())
    });
    assert!(up.is_some(), "no session");

    // No SSH_CONNECTION anywhere: the guard still sees it.
    let out = lab.headnode(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("refusing to start")
            && err.contains("from 203.0.113.253 to 203.0.113.210 port 2222"),
        "{err}"
    );
    assert!(!table_exists(&lab.head), "nothing loaded");
    let plan = text(&lab.headnode(&["plan"]));
    assert!(
        plan.contains("ssh: the new ruleset would not accept"),
        "{plan}"
    );

    lab.run_flags = vec!["--force"];
    lab.start_daemon();
    assert!(
        lab.log()
            .contains("--force: the new ruleset would not accept"),
        "{}",
        lab.log()
    );
    // The session itself survives (established), and reload guards too.
    let reload = lab.headnode(&["reload"]);
    assert_eq!(reload.status.code(), Some(1), "{}", text(&reload));
    assert!(
        text(&reload).contains("refusing the new config"),
        "{}",
        text(&reload)
    );
    let forced = lab.headnode(&["reload", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    let apply = lab.headnode(&["apply"]);
    assert_eq!(apply.status.code(), Some(1), "{}", text(&apply));
    assert!(
        text(&apply).contains("refusing to apply"),
        "{}",
        text(&apply)
    );

    // A rule for it: everything goes through without --force.
    write_config(
        &lab,
        "[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nproto = \"tcp\"\nports = [2222]\n",
    );
    let reload = lab.headnode(&["reload"]);
    assert!(reload.status.success(), "{}", text(&reload));
}
