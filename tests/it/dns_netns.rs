//! The DNS server as nodes use it, in namespaces: a node takes its lease
//! from `headnode run` (which hands out the head node as DNS server and the
//! cluster domain as search domain), writes its resolv.conf from it, and
//! resolves the cluster's names and an outside name through the forwarder
//! with `getent`, `dig` and busybox `nslookup`; dnsmasq in a third namespace
//! plays the upstream resolver with a known answer. From the public side
//! nothing answers; a reload answers a new host at once; a flood from one
//! client and from many leaves the others answered and the memory bounded.

use super::common;
use common::{Netns, can_netns, headnode, signal, veth, wait_for};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Lab {
    net: Netns,
    head: Netns,
    node: Netns,
    dir: PathBuf,
}

const NODE_MAC: &str = "02:00:00:00:53:01";

impl Lab {
    /// net 203.0.113.253 (dnsmasq) -- eth1 203.0.113.210 head eth0
    /// 192.168.1.254 -- node.
    fn new(tag: &str) -> Lab {
        let net = Netns::new(&format!("{tag}n"));
        let head = Netns::new(&format!("{tag}h"));
        let node = Netns::new(&format!("{tag}c"));
        veth(
            &net,
            "eth0",
            Some("203.0.113.253/24"),
            &head,
            "eth1",
            Some("203.0.113.210/24"),
        );
        veth(&head, "eth0", Some("192.168.1.254/24"), &node, "eth0", None);
        node.ok(&["ip", "link", "set", "eth0", "address", NODE_MAC]);
        head.ok(&["ip", "route", "add", "default", "via", "203.0.113.253"]);
        let dir = std::env::temp_dir().join(format!("hn-dns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Lab {
            net,
            head,
            node,
            dir,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("headnode.toml")
    }

    fn write_config(&self, extra_hosts: &str) {
        self.write_config_with(extra_hosts, "");
    }

    /// `dns_extra`: more `[dns]` keys.
    fn write_config_with(&self, extra_hosts: &str, dns_extra: &str) {
        let text = format!(
            r#"
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"

[dhcp]
lease_file = "{}"

[dhcp.pool]
start = "192.168.1.200"
end = "192.168.1.210"

[dns]
domain = "cluster.test"
name = "head"
upstream = ["203.0.113.253"]
{dns_extra}

[[host]]
name = "node1"
mac = "{NODE_MAC}"
address = "192.168.1.101"

[[host]]
name = "node2"
mac = "02:00:00:00:53:02"
address = "192.168.1.102"
{extra_hosts}"#,
            self.dir.join("leases").display()
        );
        std::fs::write(self.config(), text).expect("config");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn start(&mut self) -> u32 {
        let env = [
            format!("HEADNODE_STATE_DIR={}", self.dir.join("state").display()),
            format!("HEADNODE_RUN_DIR={}", self.dir.join("run").display()),
        ];
        let bin = headnode().display().to_string();
        let cfg = self.config().display().to_string();
        let mut argv = vec!["env"];
        argv.extend(env.iter().map(String::as_str));
        argv.extend([bin.as_str(), "-c", cfg.as_str(), "run"]);
        let log = self.dir.join("daemon.log");
        let pid = self.head.spawn_logged(&argv, &log);
        let ready = wait_for(Duration::from_secs(15), || {
            self.log().contains("DNS").then_some(())
        });
        assert!(ready.is_some(), "no DNS server:\n{}", self.log());
        pid
    }

    fn headnode(&self, args: &[&str]) -> std::process::Output {
        let mut argv = vec![
            "env".to_string(),
            format!("HEADNODE_RUN_DIR={}", self.dir.join("run").display()),
            headnode().display().to_string(),
            "-c".into(),
            self.config().display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.head.run(&argv)
    }

    /// `dig +short` from the node (one try, 2 s).
    fn dig(&self, args: &[&str]) -> String {
        let mut argv = vec!["dig", "+short", "+time=1", "+tries=1"];
        argv.extend(args);
        stdout(&self.node.run(&argv)).trim().to_string()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn nodes_resolve_the_cluster_and_the_world_and_the_net_gets_nothing() {
    if !can_netns(&["nft", "busybox", "dig", "dnsmasq", "getent"]) {
        return;
    }
    let mut lab = Lab::new("dnsr");
    // The upstream: dnsmasq with one known answer, on the net side only.
    let pidfile = lab.dir.join("dnsmasq.pid");
    let pidfile_arg = format!("--pid-file={}", pidfile.display());
    lab.net.spawn(&[
        "dnsmasq",
        "-k",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=203.0.113.253",
        "--address=/outside.test/10.9.9.9",
        &pidfile_arg,
    ]);
    lab.write_config("");
    lab.start();

    // The node's lease carries the head node as DNS server and the domain
    // to search; its resolv.conf is written from them, as resolvconf would.
    let lease_env = lab.dir.join("lease.env");
    let script = common::root().join("tests/udhcpc.script");
    let out = lab
        .node
        .cmd(&[
            "env",
            &format!("HEADNODE_LEASE_ENV={}", lease_env.display()),
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
            &script.display().to_string(),
        ])
        .output()
        .expect("udhcpc");
    let env = std::fs::read_to_string(&lease_env)
        .unwrap_or_else(|_| panic!("no lease: {}\n{}", common::text(&out), lab.log()));
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(var("ip"), "192.168.1.101", "{env}");
    assert_eq!(var("dns"), "192.168.1.254", "{env}");
    assert_eq!(var("search"), "cluster.test", "{env}");
    std::fs::write(
        PathBuf::from("/etc/netns")
            .join(&lab.node.name)
            .join("resolv.conf"),
        format!("nameserver {}\nsearch {}\n", var("dns"), var("search")),
    )
    .expect("the node's resolv.conf");

    // getent (glibc, through the search domain), dig and busybox nslookup.
    let getent = stdout(&lab.node.run(&["getent", "hosts", "node2"]));
    assert!(
        getent.starts_with("192.168.1.102"),
        "getent hosts node2: {getent}"
    );
    let getent = stdout(&lab.node.run(&["getent", "hosts", "www.outside.test"]));
    assert!(
        getent.starts_with("10.9.9.9"),
        "getent outside: {getent}\n{}",
        lab.log()
    );
    assert_eq!(lab.dig(&["@192.168.1.254", "node2"]), "192.168.1.102");
    assert_eq!(
        lab.dig(&["@192.168.1.254", "node2.cluster.test"]),
        "192.168.1.102"
    );
    assert_eq!(
        lab.dig(&["@192.168.1.254", "head.cluster.test"]),
        "192.168.1.254"
    );
    assert_eq!(
        lab.dig(&["@192.168.1.254", "-x", "192.168.1.101"]),
        "node1.cluster.test."
    );
    assert_eq!(lab.dig(&["@192.168.1.254", "www.outside.test"]), "10.9.9.9");
    assert_eq!(
        lab.dig(&["@192.168.1.254", "+tcp", "node1.cluster.test"]),
        "192.168.1.101"
    );
    let nx = common::text(&lab.node.run(&[
        "dig",
        "+time=2",
        "+tries=1",
        "@192.168.1.254",
        "nosuch.cluster.test",
    ]));
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("SOA"),
        "{nx}"
    );
    let ns = common::text(&lab.node.run(&[
        "busybox",
        "nslookup",
        "node2.cluster.test",
        "192.168.1.254",
    ]));
    assert!(ns.contains("192.168.1.102"), "busybox nslookup: {ns}");

    // From the public side: no answer at all (the firewall drops it, and the
    // server listens on the private address only).
    let from_net = common::text(&lab.net.run(&[
        "dig",
        "+time=1",
        "+tries=1",
        "@203.0.113.210",
        "node1.cluster.test",
    ]));
    assert!(
        from_net.contains("timed out") || from_net.contains("no servers could be reached"),
        "{from_net}"
    );
    assert!(!from_net.contains("192.168.1.101"), "{from_net}");

    // A pool client that sends its host name is answered by it, as with
    // dnsmasq (`[dns] pool_names`, on by default).
    lab.node.ok(&["ip", "link", "set", "eth0", "down"]);
    lab.node
        .ok(&["ip", "link", "set", "eth0", "address", "02:00:00:00:53:99"]);
    lab.node.ok(&["ip", "link", "set", "eth0", "up"]);
    let out = lab.node.run(&[
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
        "-x",
        "hostname:lap1",
        "-s",
        &script.display().to_string(),
    ]);
    assert!(
        common::text(&out).contains("192.168.1.200"),
        "no pool lease: {}",
        common::text(&out)
    );
    let named = wait_for(Duration::from_secs(3), || {
        (lab.dig(&["@192.168.1.254", "lap1.cluster.test"]) == "192.168.1.200").then_some(())
    });
    assert!(named.is_some(), "lap1 not answered:\n{}", lab.log());
    assert_eq!(
        lab.dig(&["@192.168.1.254", "-x", "192.168.1.200"]),
        "lap1.cluster.test."
    );

    // The counters say what happened.
    let status = stdout(&lab.headnode(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let c = &v["dns"]["counters"];
    assert!(c["forwarded"].as_u64() >= Some(1), "{c}");
    assert!(c["local"].as_u64() >= Some(5), "{c}");
    assert!(c["tcp_connections"].as_u64() >= Some(1), "{c}");
    // A reload answers a new host at once.
    lab.write_config(
        "\n[[host]]\nname = \"node3\"\nmac = \"02:00:00:00:53:03\"\naddress = \"192.168.1.103\"\n",
    );
    let reload = lab.headnode(&["reload"]);
    assert!(reload.status.success(), "reload: {}", common::text(&reload));
    assert_eq!(lab.dig(&["@192.168.1.254", "node3"]), "192.168.1.103");
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// VmHWM (peak resident memory) of `pid` in kB.
fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn floods_and_hostile_packets_leave_the_others_answered() {
    if !can_netns(&["nft", "dig", "python3"]) {
        return;
    }
    let mut lab = Lab::new("dnsf");
    // 100 queries a second per client: the flooders are held to it, and
    // what they send past it is dropped before it is parsed.
    lab.write_config_with("", "rate_limit = 100");
    let daemon = lab.start();
    // The node gets many addresses: one flooding client and 200 others.
    lab.node
        .ok(&["ip", "addr", "add", "192.168.1.50/24", "dev", "eth0"]);
    for i in 150..250 {
        lab.node.ok(&[
            "ip",
            "addr",
            "add",
            &format!("192.168.1.{i}/32"),
            "dev",
            "eth0",
        ]);
    }
    assert_eq!(
        lab.dig(&["@192.168.1.254", "-b", "192.168.1.50", "node1"]),
        "192.168.1.101"
    );
    let before = peak_kb(daemon);
    // Hostile shapes and a flood, bounded in count and time: from one
    // source, then from 100; malformed packets, a compression loop, 127
    // labels, ANY, a query for a huge name, truncated headers.
    let flood = r#"
import os, random, socket, struct, sys, time
random.seed(7)
def q(name, qtype=1, qid=None):
    qn = b"".join(bytes([len(l)]) + l for l in name.split(b".") if l) + b"\0"
    return struct.pack("!HHHHHH", qid if qid is not None else random.randrange(65536), 0x0100, 1, 0, 0, 0) + qn + struct.pack("!HH", qtype, 1)
hostile = [
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x01a" * 127 + b"\x00\x00\x01\x00\x01",
    b"\x12\x34\x01\x00\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",
    b"\x12", b"", os.urandom(512),
    q(b"node1.cluster.test", 255), q(b"cluster.test", 252), q(b"x" * 63 + b"." + b"y" * 63 + b".cluster.test"),
]
sources = sys.argv[1:]
deadline = time.time() + 8
sent = 0
socks = []
for s in sources:
    k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    k.bind((s, 0))
    k.setblocking(False)
    socks.append(k)
while time.time() < deadline and sent < 200000:
    for k in socks:
        p = random.choice(hostile) if random.random() < 0.3 else q(b"node%d.cluster.test" % random.randrange(4))
        try:
            k.sendto(p, ("192.168.1.254", 53))
            sent += 1
        except BlockingIOError:
            pass
        try:
            while True:
                k.recv(4096)
        except (BlockingIOError, OSError):
            pass
print(sent)
"#;
    let script = lab.dir.join("flood.py");
    std::fs::write(&script, flood).unwrap();
    let script = script.display().to_string();
    let many: Vec<String> = (150..250).map(|i| format!("192.168.1.{i}")).collect();
    let mut one = vec!["python3", script.as_str(), "192.168.1.150"];
    let flooder = lab
        .node
        .cmd(&one)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flood");
    // While one source floods, another client is still answered.
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    assert_eq!(
        lab.dig(&["@192.168.1.254", "-b", "192.168.1.50", "node2"]),
        "192.168.1.102",
        "answered during the flood from one"
    );
    assert!(t.elapsed() < Duration::from_secs(4));
    let out = flooder.wait_with_output().expect("flood ends");
    let sent: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(sent > 1000, "the flood sent {sent}");
    eprintln!("flood from one source: {sent} packets");
    // Then 100 sources at once.
    one.truncate(2);
    one.extend(many.iter().map(String::as_str));
    let flooder = lab
        .node
        .cmd(&one)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flood");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.dig(&["@192.168.1.254", "-b", "192.168.1.50", "node1"]),
        "192.168.1.101",
        "answered during the flood from many"
    );
    let _ = flooder.wait_with_output();
    // Alive, answering, counting, and its memory bounded.
    assert_eq!(
        lab.dig(&["@192.168.1.254", "-b", "192.168.1.50", "head"]),
        "192.168.1.254"
    );
    let after = peak_kb(daemon);
    assert!(
        after < before + 16 * 1024,
        "peak RSS grew from {before} kB to {after} kB"
    );
    let status = stdout(&lab.headnode(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let c = &v["dns"]["counters"];
    assert!(c["rate_limited"].as_u64() > Some(0), "{c}");
    assert!(c["malformed"].as_u64() > Some(0), "{c}");
    signal(daemon, "TERM");
}
