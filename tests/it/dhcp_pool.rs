//! The dynamic pool and the lease file, driven by a scripted relay client
//! (tests/dhcp/relay_client.py) for exact exchanges: restart and `kill -9`
//! keep every acknowledged lease, RELEASE frees, NAK, INFORM, reload.

use super::common;

use super::dhcp_lan::*;
use common::{can_netns, wait_for};
use std::collections::BTreeMap;
use std::time::Duration;

const POOL2: &str = "[dhcp.pool]\nstart = \"192.168.77.100\"\nend = \"192.168.77.101\"\n";
const A: &str = "02:00:00:00:0a:01";
const B: &str = "02:00:00:00:0b:01";
const C: &str = "02:00:00:00:0c:01";

#[test]
fn pool_leases_survive_restart_and_release_frees() {
    if !can_netns(&["python3"]) {
        return;
    }
    let mut lan = Lan::new("pool");
    let cfg = lan.write_config(POOL2, "");
    let relay = lan.relay("cli0");
    lan.start(&cfg);
    assert_eq!(
        lan.py(&relay, &["dora", A, "renew"]),
        "ACK 192.168.77.100\nACK 192.168.77.100"
    );
    // Crash, restart: A's lease is still A's.
    lan.stop_with("KILL");
    lan.start(&cfg);
    assert_eq!(lan.py(&relay, &["dora", B]), "ACK 192.168.77.101");
    assert_eq!(
        lan.py(&relay, &["dora", A]),
        "ACK 192.168.77.100",
        "A comes back"
    );
    assert_eq!(lan.py(&relay, &["dora", C]), "NONE", "pool full");
    assert!(lan.log_text().contains("pool exhausted"));
    // Wrong requests get NAKs: off the pool, off the network.
    assert_eq!(lan.py(&relay, &["request", C, "192.168.77.150"]), "NAK");
    assert_eq!(lan.py(&relay, &["request", C, "10.1.2.3"]), "NAK");
    assert_eq!(
        lan.py(&relay, &["request", C, "192.168.77.101"]),
        "NAK",
        "B's"
    );
    // INFORM: options, no lease time.
    let inform = lan.py(&relay, &["inform", C, "192.168.77.50"]);
    assert!(inform.starts_with("ACK 0.0.0.0 53 54"), "{inform}");
    assert!(
        inform.contains(" 1 ") && !inform.contains(" 51"),
        "{inform}"
    );
    // RELEASE frees A's address for C.
    lan.py(&relay, &["release", A, "192.168.77.100"]);
    assert!(
        wait_for(Duration::from_secs(5), || {
            (lan.py(&relay, &["dora", C]) == "ACK 192.168.77.100").then_some(())
        })
        .is_some(),
        "C gets the released address"
    );
    lan.stop_with("TERM");
    let leases = lan.leases(&cfg);
    assert_eq!(
        leases["192.168.77.100"],
        (C.to_string(), "bound".to_string())
    );
    assert_eq!(
        leases["192.168.77.101"],
        (B.to_string(), "bound".to_string())
    );
    assert_eq!(
        leases["192.168.77.11"],
        (NODE1.to_string(), "reserved".to_string()),
        "reservations are listed too"
    );
}

#[test]
fn kill_9_loses_no_acknowledged_lease() {
    if !can_netns(&["python3"]) {
        return;
    }
    let mut lan = Lan::wide("kill9");
    let cfg = lan.write_config(
        "[dhcp.pool]\nstart = \"192.168.100.0\"\nend = \"192.168.199.255\"\n",
        "",
    );
    let mut relay = lan.relay("cli0");
    let script = common::root().join("tests/dhcp/relay_client.py");
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..6u64 {
        lan.start(&cfg);
        let out = lan.dir.join(format!("acks-{round}"));
        let pid = relay.spawn_logged(
            &[
                "python3",
                script.to_str().expect("path"),
                "192.168.77.1",
                "192.168.77.2",
                "loop",
                "100000",
            ],
            &out,
        );
        // Once ACKs flow, kill at a different point of the stream each round.
        let flowing = wait_for(Duration::from_secs(10), || {
            std::fs::metadata(&out)
                .is_ok_and(|m| m.len() > 0)
                .then_some(())
        });
        assert!(
            flowing.is_some(),
            "round {round}: no ACKs:\n{}",
            lan.log_text()
        );
        std::thread::sleep(Duration::from_millis(50 + round * 97));
        lan.stop_with("KILL");
        if let Some(mut c) = relay.take_child(pid) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let text = std::fs::read_to_string(&out).expect("acks");
        let before = acked.len();
        for line in text.lines() {
            if let Some((mac, ip)) = line.split_once(' ') {
                acked.insert(mac.to_string(), ip.to_string());
            }
        }
        assert!(acked.len() > before, "round {round}: no new ACKs");
        let leases = lan.leases(&cfg);
        for (mac, ip) in &acked {
            assert_eq!(
                leases.get(ip),
                Some(&(mac.clone(), "bound".to_string())),
                "round {round}: the ACKed lease of {mac} on {ip} is missing"
            );
        }
    }
    eprintln!("{} acknowledged leases checked over 6 kills", acked.len());
}

#[test]
fn corrupt_lease_file_is_reported_and_good_leases_kept() {
    if !can_netns(&["python3"]) {
        return;
    }
    let mut lan = Lan::new("corrupt");
    let cfg = lan.write_config(POOL2, "");
    let far = 4_000_000_000u64;
    std::fs::write(
        lan.dir.join("leases"),
        format!(
            "bound 192.168.77.100 {A} {far} 1 -\nbound 192.168.77.101 zz:zz {far} 1 -\nbound 192.168.77.101 {B} {far} 1 -\nbound 192.168.77"
        ),
    )
    .expect("write");
    let relay = lan.relay("cli0");
    lan.start(&cfg);
    let log = lan.log_text();
    assert!(log.contains("leases:2: bad MAC"), "{log}");
    // The cut last line was never acknowledged: cut off in place, logged.
    assert!(log.contains("the last line was cut short"), "{log}");
    assert!(log.contains("\"bound 192.168.77\""), "{log}");
    assert!(log.contains("2 good record(s) kept"), "{log}");
    assert!(std::fs::read_dir(&lan.dir).expect("dir").any(|e| {
        e.expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with("leases.bad-")
    }));
    assert_eq!(
        lan.py(&relay, &["dora", C]),
        "NONE",
        "both good leases still hold"
    );
    assert_eq!(lan.py(&relay, &["dora", B]), "ACK 192.168.77.101");
}

#[test]
fn an_unreadable_lease_file_refuses_the_pool_but_serves_reservations_until_it_works() {
    if !can_netns(&["python3"]) {
        return;
    }
    let mut lan = Lan::new("unreadable");
    let cfg = lan.write_config(POOL2, "");
    // A directory where the lease file should be: reading it fails.
    let leases = lan.dir.join("leases");
    std::fs::create_dir(&leases).expect("mkdir");
    let relay = lan.relay("cli0");
    lan.start(&cfg);
    assert!(
        lan.log_text().contains("serving reservations only"),
        "{}",
        lan.log_text()
    );
    assert_eq!(lan.py(&relay, &["dora", NODE1]), "ACK 192.168.77.11");
    assert_eq!(lan.py(&relay, &["dora", A]), "NONE", "no pool lease");
    std::fs::remove_dir(&leases).expect("rmdir");
    // Tried again every 5 s; then the pool is served and its leases kept.
    let acked = wait_for(Duration::from_secs(15), || {
        (lan.py(&relay, &["dora", A]) == "ACK 192.168.77.100").then_some(())
    });
    assert!(acked.is_some(), "{}", lan.log_text());
    assert!(lan.log_text().contains("is usable again"));
    lan.stop_with("TERM");
    assert_eq!(
        lan.leases(&cfg)["192.168.77.100"],
        (A.to_string(), "bound".to_string())
    );
}

#[test]
fn reload_moves_clients_at_their_next_renewal() {
    if !can_netns(&["python3"]) {
        return;
    }
    let mut lan = Lan::new("reload-pool");
    let cfg = lan.write_config(POOL2, "");
    let relay = lan.relay("cli0");
    lan.start(&cfg);
    assert_eq!(lan.py(&relay, &["dora", A]), "ACK 192.168.77.100");
    assert_eq!(lan.py(&relay, &["dora", NODE2]), "ACK 192.168.77.12");
    // Reserve an address for pool client A, drop node2's reservation.
    let hosts = format!("[[host]]\nname = \"a\"\nmac = \"{A}\"\naddress = \"192.168.77.20\"\n");
    let text = std::fs::read_to_string(&cfg).expect("cfg").replace(
        &format!("[[host]]\nname = \"node2\"\nmac = \"{NODE2}\"\naddress = \"192.168.77.12\"\n"),
        "",
    ) + &hosts;
    std::fs::write(&cfg, text).expect("write");
    lan.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(5), || lan
            .log_text()
            .contains("1 added, 1 removed")
            .then_some(()))
        .is_some(),
        "{}",
        lan.log_text()
    );
    // Renewal (ciaddr) of the old addresses: NAK; a new DORA gets the new ones.
    assert_eq!(lan.py(&relay, &["request", A, "192.168.77.100"]), "NAK");
    assert_eq!(lan.py(&relay, &["dora", A]), "ACK 192.168.77.20");
    assert_eq!(lan.py(&relay, &["request", NODE2, "192.168.77.12"]), "NAK");
    assert_eq!(
        lan.py(&relay, &["dora", NODE2]),
        "ACK 192.168.77.101",
        "now a pool client"
    );
}

#[test]
fn malformed_packets_and_floods_are_counted_and_do_not_stop_service() {
    if !can_netns(&["python3"]) {
        return;
    }
    let mut lan = Lan::new("garbage");
    let cfg = lan.write_config("", "");
    let relay = lan.relay("cli0");
    lan.start(&cfg);
    lan.py(&relay, &["garbage", "3000"]);
    lan.py(&relay, &["flood", NODE2, "3000"]);
    assert_eq!(lan.py(&relay, &["dora", NODE1]), "ACK 192.168.77.11");
    lan.stop_with("TERM");
    let log = lan.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("DHCP counters"))
        .unwrap_or_else(|| panic!("no counters in log:\n{log}"));
    for k in [
        "dropped_truncated",
        "dropped_not_request",
        "dropped_bad_hardware",
        "dropped_bad_cookie",
        "dropped_bad_option",
        "dropped_no_message_type",
        "dropped_bad_message_type",
        "dropped_rate_limited",
    ] {
        let n: u64 = line
            .split(&format!("\"{k}\":"))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(n > 100, "{k} = {n} in {line}");
    }
}
