//! The firewall and the nftables balancer with real traffic in network
//! namespaces: a `net` host, the head node (origin config: public eth1
//! 203.0.113.210, private eth0 192.168.1.254), and node1/node2 on a LAN
//! bridge serving NODE1/NODE2 on :8000.

use super::common;

use common::{Netns, chmod_x, veth};
use headnode::config;
use headnode::firewall::{Endpoint, NftBalancer, nft::Nft};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const PUBLIC: &str = "203.0.113.210";
const NET_HOST: &str = "203.0.113.50";

struct Topo {
    net: Netns,
    head: Netns,
    nodes: [Netns; 2],
    _switch: Netns,
    dir: PathBuf,
}

fn python_server(ns: &mut Netns, dir: &Path, port: u16) {
    let d = dir.to_str().expect("utf-8 path");
    let p = port.to_string();
    ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        &p,
        "--bind",
        "0.0.0.0",
        "--directory",
        d,
    ]);
}

/// Wait until `ns` can fetch `url` (servers take a moment to start).
fn wait_http(ns: &Netns, url: &str) {
    let ok = common::wait_for(Duration::from_secs(10), || {
        ns.run(&["curl", "-s", "-m", "1", url])
            .status
            .success()
            .then_some(())
    });
    assert!(ok.is_some(), "{url} never answered from {}", ns.name);
}

fn topo(tag: &str) -> Topo {
    let dir = std::env::temp_dir().join(format!("hn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let net = Netns::new(&format!("{tag}n"));
    let head = Netns::new(&format!("{tag}h"));
    let switch = Netns::new(&format!("{tag}s"));
    let mut nodes = [
        Netns::new(&format!("{tag}1")),
        Netns::new(&format!("{tag}2")),
    ];
    veth(
        &net,
        "eth0",
        Some(&format!("{NET_HOST}/24")),
        &head,
        "eth1",
        Some(&format!("{PUBLIC}/24")),
    );
    veth(&head, "eth0", Some("192.168.1.254/24"), &switch, "p0", None);
    switch.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch.ok(&["ip", "link", "set", "br0", "up"]);
    switch.ok(&["ip", "link", "set", "p0", "master", "br0"]);
    for (i, node) in nodes.iter_mut().enumerate() {
        let port = format!("p{}", i + 1);
        veth(
            node,
            "eth0",
            Some(&format!("192.168.1.10{}/24", i + 1)),
            &switch,
            &port,
            None,
        );
        switch.ok(&["ip", "link", "set", &port, "master", "br0"]);
        node.ok(&["ip", "route", "add", "default", "via", "192.168.1.254"]);
        let web = dir.join(format!("node{}", i + 1));
        std::fs::create_dir_all(&web).expect("web dir");
        std::fs::write(web.join("index.html"), format!("NODE{}\n", i + 1)).expect("index");
        python_server(node, &web, 8000);
    }
    // Without a firewall the net host could reach the LAN through the head.
    net.ok(&["ip", "route", "add", "192.168.1.0/24", "via", PUBLIC]);
    Topo {
        net,
        head,
        nodes,
        _switch: switch,
        dir,
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Topo {
    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let origin = std::fs::read_to_string(common::root().join("fixtures/origin/headnode.toml"))
            .expect("origin config");
        let path = self.dir.join(name);
        std::fs::write(&path, format!("{origin}\n{extra}")).expect("config");
        path
    }

    fn headnode(&self, cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.headnode_wrapped(&[], cfg, args, env)
    }

    /// `headnode` run through `wrapper` (e.g. setpriv) inside the head namespace.
    fn headnode_wrapped(
        &self,
        wrapper: &[&str],
        cfg: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let hn = common::headnode();
        let mut argv = wrapper.to_vec();
        argv.extend([
            hn.to_str().expect("path"),
            "-c",
            cfg.to_str().expect("path"),
        ]);
        argv.extend_from_slice(args);
        let mut cmd = self.head.cmd(&argv);
        cmd.env("HEADNODE_STATE_DIR", self.dir.join("state"));
        cmd.env_remove("SSH_CONNECTION");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run headnode")
    }

    fn apply_ok(&self, cfg: &Path, args: &[&str]) -> String {
        let out = self.headnode(cfg, &[&["apply"], args].concat(), &[]);
        assert!(
            out.status.success(),
            "apply failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A wrapper for `nft` that runs inside the head namespace, for the library API.
    fn nft(&self) -> Nft {
        let path = self.dir.join("nft-in-head");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec ip netns exec {} nft \"$@\"\n",
                self.head.name
            ),
        )
        .expect("wrapper");
        chmod_x(&path);
        Nft::new(path)
    }

    fn get(&self, from: &Netns, url: &str) -> Option<String> {
        let out = from.run(&["curl", "-s", "-m", "2", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// TCP connect with a timeout; true when the handshake completes.
fn connects(ns: &Netns, addr: &str, port: u16) -> bool {
    let code = format!(
        "import socket\ntry:\n    socket.create_connection(('{addr}', {port}), 1.5).close()\nexcept OSError:\n    raise SystemExit(1)\n"
    );
    ns.run(&["python3", "-c", &code]).status.success()
}

/// Packets counted by rules of `chain` whose match includes `meta mark == mark`.
fn mark_rule_packets(head: &Netns, chain: &str, mark: u64) -> u64 {
    let out = head.ok(&["nft", "-j", "list", "chain", "inet", "headnode", chain]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft json");
    let mut total = 0;
    for obj in v["nftables"].as_array().into_iter().flatten() {
        let Some(exprs) = obj["rule"]["expr"].as_array() else {
            continue;
        };
        let has_mark = exprs.iter().any(|e| {
            e["match"]["left"]["meta"]["key"] == "mark"
                && e["match"]["right"].as_u64() == Some(mark)
        });
        if has_mark {
            total += exprs
                .iter()
                .filter_map(|e| e["counter"]["packets"].as_u64())
                .sum::<u64>();
        }
    }
    total
}

fn tables(head: &Netns) -> String {
    head.ok(&["nft", "list", "tables"])
}

#[test]
fn firewall_with_real_traffic() {
    if !common::can_netns(&["nft", "python3", "curl"]) {
        return;
    }
    let mut tp = topo("fw");
    // A foreign table (docker, libvirt...) that must survive apply and clear.
    tp.head.ok(&["nft", "add", "table", "ip", "foreign"]);
    tp.head.ok(&["nft", "add", "chain", "ip", "foreign", "c"]);
    tp.head
        .ok(&["nft", "add", "rule", "ip", "foreign", "c", "counter"]);
    // Listeners on the head for ports that must stay closed from net.
    python_server(&mut tp.head, &tp.dir, 22);
    python_server(&mut tp.head, &tp.dir, 9999);
    // The net host reports the source address it sees.
    let echo = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 7000))\ns.listen(8)\nwhile True:\n    c, a = s.accept()\n    c.sendall(a[0].encode())\n    c.close()\n";
    tp.net.spawn(&["python3", "-c", echo]);
    for n in &tp.nodes {
        wait_http(n, "http://127.0.0.1:8000/");
    }
    wait_http(&tp.head, "http://127.0.0.1:22/");

    let cfg = tp.config("headnode.toml", "[balancer]\nbackend = \"nftables\"\n");
    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: applied"), "{out}");
    assert_eq!(
        tp.head.ok(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(),
        "1"
    );

    // net -> public:8000 is accepted (and balanced to a node).
    let got = tp.get(&tp.net, &format!("http://{PUBLIC}:8000/"));
    assert!(matches!(got.as_deref(), Some("NODE1" | "NODE2")), "{got:?}");
    // ...and those packets carried mark 1: the balance rule matching it counted them.
    assert!(
        mark_rule_packets(&tp.head, "balance", 1) > 0,
        "no packet matched meta mark 1"
    );

    // net -> head tcp 22 and 9999: listeners exist (reachable from loc / lo), but net is refused.
    assert!(
        connects(&tp.nodes[0], "192.168.1.254", 22),
        "ssh from loc must be open"
    );
    assert!(connects(&tp.head, "127.0.0.1", 9999));
    assert!(!connects(&tp.net, PUBLIC, 22), "net reached tcp 22");
    assert!(!connects(&tp.net, PUBLIC, 9999), "net reached tcp 9999");
    // net cannot reach the LAN even with a route to it.
    assert!(
        !connects(&tp.net, "192.168.1.101", 8000),
        "net reached a LAN host"
    );
    // LAN -> net arrives masqueraded with the head's public address.
    let src = tp.nodes[0].ok(&[
        "python3",
        "-c",
        &format!("import socket\ns=socket.create_connection(('{NET_HOST}', 7000), 2)\nprint(s.recv(64).decode())"),
    ]);
    assert_eq!(
        src.trim(),
        PUBLIC,
        "LAN traffic must leave with the public address"
    );

    // Apply twice: nothing changes, counters keep counting (no reload).
    let before = mark_rule_packets(&tp.head, "balance", 1);
    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: unchanged"), "{out}");
    assert!(out.contains("sysctls: unchanged"), "{out}");
    assert_eq!(
        mark_rule_packets(&tp.head, "balance", 1),
        before,
        "second apply reloaded the table"
    );
    let plan = tp.headnode(&cfg, &["plan"], &[]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("live: unchanged"));

    // A rejected ruleset: nft (through a wrapper) refuses the mark rule; the
    // error names it and its config line, and the old table stays live.
    let live = tp
        .head
        .ok(&["nft", "-s", "list", "table", "inet", "headnode"]);
    let wrapper = tp.dir.join("nft-broken");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\ncase \" $* \" in\n  *\" -f \"*) sed 's/\"key\":\"mark\"}},\"value\":1}/\"key\":\"mark\"}},\"value\":\"bogus\"}/' | nft \"$@\" ;;\n  *) exec nft \"$@\" ;;\nesac\n",
    )
    .expect("wrapper");
    chmod_x(&wrapper);
    let cfg_b = tp.config(
        "b.toml",
        "[balancer]\nbackend = \"nftables\"\n[firewall]\nlog_drops = false\n",
    );
    let out = tp.headnode(
        &cfg_b,
        &["apply"],
        &[("HEADNODE_NFT", wrapper.to_str().expect("path"))],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mangle_pre") && err.contains("b.toml:33 service web"),
        "{err}"
    );
    assert!(err.contains("previous ruleset stays live"), "{err}");
    assert_eq!(
        tp.head
            .ok(&["nft", "-s", "list", "table", "inet", "headnode"]),
        live
    );

    // --confirm without confirm rolls back to the previous table.
    let out = tp.apply_ok(&cfg_b, &["--confirm", "1s"]);
    assert!(out.contains("headnode confirm"), "{out}");
    assert_ne!(
        tp.head
            .ok(&["nft", "-s", "list", "table", "inet", "headnode"]),
        live
    );
    let restored = common::wait_for(Duration::from_secs(5), || {
        (tp.head
            .ok(&["nft", "-s", "list", "table", "inet", "headnode"])
            == live)
            .then_some(())
    });
    assert!(
        restored.is_some(),
        "the unconfirmed ruleset was not rolled back"
    );
    // With confirm it stays.
    tp.apply_ok(&cfg_b, &["--confirm", "30s"]);
    let out = tp.headnode(&cfg_b, &["confirm"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !tp.head
            .ok(&["nft", "list", "table", "inet", "headnode"])
            .contains("log prefix")
    );

    // The SSH guard: a session from net would be locked out, so apply refuses without --force.
    let ssh = [("SSH_CONNECTION", "203.0.113.50 40000 203.0.113.210 22")];
    let out = tp.headnode(&cfg, &["apply"], &ssh);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSH"));
    let out = tp.headnode(&cfg, &["apply", "--force"], &ssh);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The foreign table survived every apply; clear removes only ours.
    assert!(tables(&tp.head).contains("table ip foreign"));
    let out = tp.headnode(&cfg, &["clear"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("net.ipv4.ip_forward = 1"),
        "{text}"
    );
    let left = tables(&tp.head);
    assert!(
        left.contains("table ip foreign") && !left.contains("headnode"),
        "{left}"
    );
}

/// The handle of the last rule in `chain` (`nft -a` prints `# handle N`).
fn last_rule_handle(head: &Netns, chain: &str) -> String {
    let out = head.ok(&["nft", "-a", "list", "chain", "inet", "headnode", chain]);
    out.lines()
        .filter(|l| !l.trim_start().starts_with("chain "))
        .filter_map(|l| l.split("# handle ").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no rule in {chain}:\n{out}"))
        .trim()
        .to_string()
}

/// Apply decides "unchanged" from its record of the last load, not from a
/// scratch namespace: traffic in the persistence sets is no change, a rule
/// deleted by hand or a damaged record is, and apply and plan work with only
/// the units' capabilities (plan without nft syntax).
#[test]
fn apply_compares_with_its_record_of_the_last_load() {
    if !common::can_netns(&["nft", "python3", "curl"]) {
        return;
    }
    let tp = topo("fr");
    for n in &tp.nodes {
        wait_http(n, "http://127.0.0.1:8000/");
    }
    let origin = std::fs::read_to_string(common::root().join("fixtures/origin/headnode.toml"))
        .expect("origin")
        .replace(
            "scheduler = \"rr\"",
            "scheduler = \"rr\"\npersistence = \"5m\"",
        );
    let cfg = tp.dir.join("persist.toml");
    std::fs::write(
        &cfg,
        format!("{origin}\n[balancer]\nbackend = \"nftables\"\n"),
    )
    .expect("config");
    let record = tp.dir.join("state/firewall.applied");
    let nft = tp.nft();

    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: applied"), "{out}");
    assert!(record.exists(), "apply recorded nothing");
    let loaded = nft.live_text().expect("list").expect("table");

    // Traffic fills the persistence sets (elements with expiry times): not a change.
    let url = format!("http://{PUBLIC}:8000/");
    let got: Vec<String> = (0..3).filter_map(|_| tp.get(&tp.net, &url)).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|g| *g == got[0]),
        "persistence spread one client: {got:?}"
    );
    let full = tp.head.ok(&["nft", "list", "table", "inet", "headnode"]);
    assert!(full.contains("expires"), "no affinity element:\n{full}");
    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: unchanged"), "{out}");

    // With only the capabilities the units grant (no CAP_SYS_ADMIN, so no
    // scratch namespace): apply still finds the table unchanged, and plan
    // shows the JSON instead of nft syntax and still compares.
    let unit_caps = [
        "setpriv",
        "--bounding-set",
        "-all,+net_admin,+net_bind_service,+net_raw",
    ];
    let out = tp.headnode_wrapped(&unit_caps, &cfg, &["apply"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ruleset: unchanged"),
        "{text}"
    );
    let plan = tp.headnode_wrapped(&unit_caps, &cfg, &["plan"], &[]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{text}");
    assert!(text.contains("nft syntax unavailable"), "{text}");
    assert!(text.contains("\"nftables\""), "no JSON shown:\n{text}");
    assert!(text.contains("live: unchanged"), "{text}");

    // Someone deletes a rule by hand: plan shows it, apply loads again.
    let handle = last_rule_handle(&tp.head, "input");
    tp.head.ok(&[
        "nft", "delete", "rule", "inet", "headnode", "input", "handle", &handle,
    ]);
    let edited = nft.live_text().expect("list").expect("table");
    assert_ne!(edited, loaded);
    let plan = tp.headnode(&cfg, &["plan"], &[]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("changed since headnode loaded it") && text.contains("(- live, + desired)"),
        "{text}"
    );
    let plan = tp.headnode_wrapped(&unit_caps, &cfg, &["plan"], &[]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("(- live, + as loaded)"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("+ ")),
        "no deleted line:\n{text}"
    );
    let out = tp.headnode_wrapped(&unit_caps, &cfg, &["apply"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ruleset: applied"),
        "{text}"
    );
    assert_eq!(nft.live_text().expect("list").expect("table"), loaded);
    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: unchanged"), "{out}");

    // A damaged record is no record: load once, record again.
    std::fs::write(&record, "{\"fingerprint\": ").expect("damage");
    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: applied"), "{out}");
    let out = tp.apply_ok(&cfg, &[]);
    assert!(out.contains("ruleset: unchanged"), "{out}");
}

#[test]
fn nftables_balancer_with_real_traffic() {
    if !common::can_netns(&["nft", "python3", "curl"]) {
        return;
    }
    let mut tp = topo("lb");
    let sorry = tp.dir.join("sorry");
    std::fs::create_dir_all(&sorry).expect("dir");
    std::fs::write(sorry.join("index.html"), "SORRY\n").expect("index");
    python_server(&mut tp.nodes[0], &sorry, 8001);
    for n in &tp.nodes {
        wait_http(n, "http://127.0.0.1:8000/");
    }
    wait_http(&tp.nodes[0], "http://127.0.0.1:8001/");
    let url = format!("http://{PUBLIC}:8000/");

    // Round robin: six requests alternate.
    let cfg = tp.config("rr.toml", "[balancer]\nbackend = \"nftables\"\n");
    tp.apply_ok(&cfg, &[]);
    let got: Vec<String> = (0..6).filter_map(|_| tp.get(&tp.net, &url)).collect();
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(
        got.windows(2).all(|w| w[0] != w[1]),
        "not alternating: {got:?}"
    );

    // Weights 2:1 (wrr): a 2:1 split over 30 requests.
    let text = std::fs::read_to_string(common::root().join("fixtures/origin/headnode.toml"))
        .expect("origin")
        .replace(
            "real = [\"node1:8000\", \"node2:8000\"]",
            "real = [{ host = \"node1\", port = 8000, weight = 2 }, { host = \"node2\", port = 8000, weight = 1 }]\nsorry_server = \"192.168.1.101:8001\"",
        )
        .replace("scheduler = \"rr\"", "scheduler = \"wrr\"");
    let wcfg = tp.dir.join("wrr.toml");
    std::fs::write(
        &wcfg,
        format!("{text}\n[balancer]\nbackend = \"nftables\"\n"),
    )
    .expect("config");
    tp.apply_ok(&wcfg, &[]);
    let got: Vec<String> = (0..30).filter_map(|_| tp.get(&tp.net, &url)).collect();
    let n1 = got.iter().filter(|g| *g == "NODE1").count();
    let n2 = got.iter().filter(|g| *g == "NODE2").count();
    assert_eq!((n1, n2), (20, 10), "{got:?}");

    // Source hashing: one client always lands on the same real.
    let sh = tp.dir.join("sh.toml");
    std::fs::write(
        &sh,
        text.replace("scheduler = \"wrr\"", "scheduler = \"sh\"")
            + "\n[balancer]\nbackend = \"nftables\"\n",
    )
    .expect("config");
    tp.apply_ok(&sh, &[]);
    let got: Vec<String> = (0..6).filter_map(|_| tp.get(&tp.net, &url)).collect();
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(
        got.iter().all(|g| *g == got[0]),
        "sh spread one client: {got:?}"
    );
    tp.apply_ok(&wcfg, &[]);

    // Health changes replace only the balance chain (library API the daemon uses).
    let cfg = config::load(&wcfg).expect("config");
    let nft = tp.nft();
    let mut bal = NftBalancer::all_up(&cfg);
    let node = |i: u8| Endpoint {
        address: std::net::Ipv4Addr::new(192, 168, 1, 100 + i),
        port: 8000,
    };
    let forward_before = tp
        .head
        .ok(&["nft", "list", "chain", "inet", "headnode", "forward"]);
    assert!(bal.set_up("web", node(2), false));
    nft.update_balancer(&cfg, &bal).expect("update");
    let got: Vec<String> = (0..6).filter_map(|_| tp.get(&tp.net, &url)).collect();
    assert_eq!(got, vec!["NODE1"; 6]);
    // The rest of the table (and its counters) was not reloaded.
    assert_eq!(
        tp.head
            .ok(&["nft", "list", "chain", "inet", "headnode", "forward"])
            .lines()
            .filter(|l| l.contains("meta mark"))
            .count(),
        forward_before
            .lines()
            .filter(|l| l.contains("meta mark"))
            .count()
    );
    assert!(bal.set_up("web", node(2), true));
    nft.update_balancer(&cfg, &bal).expect("update");
    let got: Vec<String> = (0..6).filter_map(|_| tp.get(&tp.net, &url)).collect();
    assert!(got.contains(&"NODE2".to_string()), "{got:?}");
    // Both down: the sorry server answers.
    bal.set_up("web", node(1), false);
    bal.set_up("web", node(2), false);
    nft.update_balancer(&cfg, &bal).expect("update");
    assert_eq!(tp.get(&tp.net, &url).as_deref(), Some("SORRY"));

    // Both down and no sorry server: new connections are refused at once
    // (a TCP reset from the input chain), not left to time out.
    let rr = tp.dir.join("rr.toml");
    tp.apply_ok(&rr, &[]);
    let cfg = config::load(&rr).expect("config");
    let mut bal = NftBalancer::all_up(&cfg);
    bal.set_up("web", node(1), false);
    bal.set_up("web", node(2), false);
    nft.update_balancer(&cfg, &bal).expect("update");
    let started = std::time::Instant::now();
    let code = format!(
        "import socket\ntry:\n    socket.create_connection(('{PUBLIC}', 8000), 3)\nexcept ConnectionRefusedError:\n    raise SystemExit(0)\nraise SystemExit(1)\n"
    );
    let out = tp.net.run(&["python3", "-c", &code]);
    assert!(
        out.status.success(),
        "expected a refused connection: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let _ = std::io::stderr().flush();
}
