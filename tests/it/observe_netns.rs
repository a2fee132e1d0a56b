//! What an operator's tools see of a running daemon, in namespaces: the
//! journal (priority prefixes when stderr is the journal stream, lease lines
//! with their fields), systemd's notify socket (READY, STATUS, RELOADING
//! around a reload) and the Prometheus metrics, scraped from the LAN and
//! checked with `promtool`.

use super::common;

use common::{Netns, can_netns, headnode, signal, veth, wait_for};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

struct Lab {
    head: Netns,
    node: Netns,
    dir: PathBuf,
}

impl Lab {
    /// head: eth0 192.168.1.254/24 to the node, eth1 a public side that goes nowhere.
    fn new(tag: &str) -> Lab {
        let head = Netns::new(&format!("{tag}h"));
        let node = Netns::new(&format!("{tag}n"));
        veth(&head, "eth0", Some("192.168.1.254/24"), &node, "eth0", None);
        node.ok(&["ip", "link", "set", "eth0", "address", "02:00:00:00:77:01"]);
        // The public side goes nowhere (this kernel has no dummy links).
        head.ok(&[
            "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
        ]);
        head.ok(&["ip", "link", "set", "eth1p", "up"]);
        head.ok(&["ip", "addr", "add", "203.0.113.210/24", "dev", "eth1"]);
        head.ok(&["ip", "link", "set", "eth1", "up"]);
        let dir = std::env::temp_dir().join(format!("hn-observe-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Lab { head, node, dir }
    }

    fn write_config(&self, extra: &str) {
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
lease_time = "1h"

[dhcp.pool]
start = "192.168.1.100"
end = "192.168.1.110"
{extra}"#,
            self.dir.join("leases").display()
        );
        std::fs::write(self.dir.join("headnode.toml"), text).expect("config");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Start `headnode run` with stderr to a file that `$JOURNAL_STREAM`
    /// names (as systemd does for the journal) and `$NOTIFY_SOCKET` set.
    /// Journald's native socket is `journal` (a path where nothing listens
    /// by default, so the lines go to stderr).
    fn start(&mut self, notify: &std::path::Path) -> u32 {
        let pid = self.start_with_journal(notify, &self.dir.join("no-journald"));
        let ready = wait_for(Duration::from_secs(15), || {
            self.log().contains(" ready").then_some(())
        });
        assert!(ready.is_some(), "daemon did not start:\n{}", self.log());
        pid
    }

    fn start_with_journal(&mut self, notify: &std::path::Path, journal: &std::path::Path) -> u32 {
        let log = self.dir.join("daemon.log");
        std::fs::File::create(&log).expect("log");
        let meta = std::fs::metadata(&log).expect("stat log");
        let env = [
            format!("HEADNODE_STATE_DIR={}", self.dir.join("state").display()),
            format!("HEADNODE_RUN_DIR={}", self.dir.join("run").display()),
            "HEADNODE_RECONCILE_INTERVAL=1s".to_string(),
            format!("JOURNAL_STREAM={}:{}", meta.dev(), meta.ino()),
            format!("NOTIFY_SOCKET={}", notify.display()),
            format!("HEADNODE_JOURNAL_SOCKET={}", journal.display()),
        ];
        let bin = headnode().display().to_string();
        let cfg = self.dir.join("headnode.toml").display().to_string();
        let mut argv = vec!["env"];
        argv.extend(env.iter().map(String::as_str));
        argv.extend([bin.as_str(), "-c", cfg.as_str(), "run"]);
        // spawn_logged truncates the file it opens: same inode.
        self.head.spawn_logged(&argv, &log)
    }

    fn lease(&self) -> String {
        let script = common::root().join("tests/udhcpc.script");
        let out = self.node.run(&[
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
        ]);
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every datagram that arrives within `limit`, until one contains `want`.
fn datagrams_until(sock: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        if let Ok(n) = sock.recv(&mut buf) {
            let s = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = s.contains(want);
            got.push(s);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn journal_priorities_lease_fields_and_notify_status_around_reloads() {
    if !can_netns(&["nft", "busybox"]) {
        return;
    }
    let mut lab = Lab::new("obsj");
    lab.write_config("");
    let notify_path = lab.dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let pid = lab.start(&notify_path);

    let got = datagrams_until(&notify, "STATUS=", Duration::from_secs(10));
    assert!(got.iter().any(|d| d == "READY=1"), "{got:?}");
    // DHCP binds its socket right after READY; the next status says so.
    let got = datagrams_until(&notify, "STATUS=DHCP serving", Duration::from_secs(10));
    let status = got.last().expect("a STATUS datagram");
    assert_eq!(
        status, "STATUS=DHCP serving, 0 lease(s); firewall in place",
        "{got:?}"
    );

    let out = lab.lease();
    assert!(
        out.contains("192.168.1.100"),
        "no lease: {out}\n{}",
        lab.log()
    );
    let log = lab.log();
    let ack = log
        .lines()
        .find(|l| l.contains("DHCPACK: new lease"))
        .unwrap_or_else(|| panic!("no lease line:\n{log}"));
    assert!(ack.starts_with("<6>"), "{ack}");
    assert!(ack.contains("mac=02:00:00:00:77:01"), "{ack}");
    assert!(ack.contains("ip=192.168.1.100"), "{ack}");
    // Every line the daemon wrote carries its priority.
    for line in log.lines() {
        assert!(
            line.len() > 3 && line.starts_with('<') && line.as_bytes()[2] == b'>',
            "line without a priority: {line:?}\n{log}"
        );
    }

    // A reload: RELOADING=1 (with the monotonic clock), then READY=1 and
    // the status, which counts the lease by now.
    signal(pid, "HUP");
    let got = datagrams_until(&notify, "READY=1", Duration::from_secs(10));
    let reloading = got
        .iter()
        .position(|d| d.starts_with("RELOADING=1\nMONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no RELOADING: {got:?}"));
    let ready = got.last().unwrap();
    assert!(got.len() > reloading + 1, "{got:?}");
    assert!(
        ready.starts_with("READY=1\nSTATUS=DHCP serving, 1 lease(s)"),
        "{got:?}"
    );

    // A rejected reload is an error, at priority 3 on each of its lines.
    std::fs::write(lab.dir.join("headnode.toml"), "[interfaces\n").unwrap();
    signal(pid, "HUP");
    let rejected = wait_for(Duration::from_secs(10), || {
        let log = lab.log();
        log.contains("reload rejected").then_some(log)
    })
    .expect("reload rejected");
    let mut lines = rejected
        .lines()
        .skip_while(|l| !l.contains("reload rejected"));
    let first = lines.next().unwrap_or_default();
    let following = lines.next().unwrap_or_default();
    assert!(first.starts_with("<3>"), "{rejected}");
    assert!(following.starts_with("<3>"), "{rejected}");
}

#[test]
fn journald_gets_each_lease_with_its_fields() {
    if !can_netns(&["nft", "busybox"]) {
        return;
    }
    let mut lab = Lab::new("obsd");
    lab.write_config("");
    let journal_path = lab.dir.join("journal");
    let journal = UnixDatagram::bind(&journal_path).expect("journal socket");
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify_path = lab.dir.join("notify");
    let _notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    lab.start_with_journal(&notify_path, &journal_path);
    let started = datagrams_until(&journal, "MESSAGE=ready ", Duration::from_secs(15));
    assert!(
        started
            .iter()
            .any(|d| d.starts_with("MESSAGE=ready ") && d.contains("\nPRIORITY=6\n")),
        "not started: {started:?}\n{}",
        lab.log()
    );
    // DHCP binds its socket just after "ready".
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.lease();
    assert!(out.contains("192.168.1.100"), "no lease: {out}");
    let got = datagrams_until(&journal, "HEADNODE_MAC=", Duration::from_secs(10));
    let entry = got
        .iter()
        .find(|d| d.contains("DHCPACK: new lease"))
        .unwrap_or_else(|| panic!("no lease entry in {got:?}"));
    let fields: Vec<&str> = entry.lines().collect();
    for want in [
        "MESSAGE=DHCPACK: new lease ip=192.168.1.100 mac=02:00:00:00:77:01",
        "PRIORITY=6",
        "SYSLOG_IDENTIFIER=headnode",
        "HEADNODE_MAC=02:00:00:00:77:01",
        "HEADNODE_IP=192.168.1.100",
    ] {
        assert!(
            fields.iter().any(|f| f.starts_with(want)),
            "no {want:?} in {entry:?}"
        );
    }
    // Nothing went to stderr.
    assert_eq!(lab.log(), "");
}

/// `curl` from the node; the body, or "" when nothing answered.
fn scrape(node: &Netns, url: &str) -> String {
    let out = node.run(&["curl", "-s", "-m", "5", url]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the one sample whose line starts with `series ` in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_are_scraped_from_the_lan_and_pass_promtool() {
    if !can_netns(&["nft", "busybox", "curl", "promtool"]) {
        return;
    }
    let mut lab = Lab::new("obsm");
    lab.write_config(
        "\n[metrics]\nlisten = \"192.168.1.254:9100\"\n\n[dns]\ndomain = \"cluster.test\"\nupstream = [\"192.0.2.1\"]\n",
    );
    let notify_path = lab.dir.join("notify");
    let _notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    lab.start(&notify_path);
    let out = lab.lease();
    assert!(
        out.contains("192.168.1.100"),
        "no lease: {out}\n{}",
        lab.log()
    );

    // One DNS query (a name the cluster does not have: NXDOMAIN, so busybox
    // exits non-zero) for the DNS counters.
    let _ = lab.node.run(&[
        "busybox",
        "nslookup",
        "nosuch.cluster.test",
        "192.168.1.254",
    ]);

    // From the LAN, through the firewall's built-in rule for the port.
    let url = "http://192.168.1.254:9100/metrics";
    let text = wait_for(Duration::from_secs(10), || {
        let t = scrape(&lab.node, url);
        (!t.is_empty()).then_some(t)
    })
    .unwrap_or_else(|| panic!("no metrics from {url}:\n{}", lab.log()));

    let path = lab.dir.join("scrape.txt");
    std::fs::write(&path, &text).unwrap();
    let check = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", path.display()))
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    for (series, want) in [
        ("headnode_dhcp_serving", 1.0),
        ("headnode_dhcp_replies_total{type=\"offer\"}", 1.0),
        ("headnode_dhcp_replies_total{type=\"ack\"}", 1.0),
        (
            "headnode_dhcp_leases{kind=\"dynamic\",state=\"bound\"}",
            1.0,
        ),
        ("headnode_dhcp_pool_addresses", 11.0),
        ("headnode_dhcp_pool_used_addresses", 1.0),
        ("headnode_dhcp_lease_sync_duration_seconds_count", 1.0),
        ("headnode_firewall_fallback", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series} in:\n{text}");
    }
    // Per-rule counters carry the rule's comment; DHCP's rule (which nft's
    // merge joins with DNS's, the names kept in the comment) counted the
    // node's DISCOVER and REQUEST.
    let dhcp_rule = text.lines().find_map(|l| {
        let rest = l.strip_prefix(
            "headnode_firewall_rule_packets_total{chain=\"input\",rule=\"built-in: ",
        )?;
        let (names, n) = rest.split_once("\"} ")?;
        names
            .contains("dhcp from loc")
            .then(|| n.parse::<f64>().ok())?
    });
    assert!(
        dhcp_rule.is_some_and(|n| n >= 2.0),
        "no dhcp rule counter of 2 or more in:\n{text}"
    );
    assert!(
        value(&text, "headnode_nft_load_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // busybox asks for A and AAAA: both NXDOMAIN.
    assert!(
        value(&text, "headnode_dns_nxdomain_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Only /metrics, only GET.
    let other = lab.node.run(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "5",
        "http://192.168.1.254:9100/",
    ]);
    assert_eq!(String::from_utf8_lossy(&other.stdout), "404");
}
