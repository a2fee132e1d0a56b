//! `netinfo::read` against a real kernel: links with their MACs and flags,
//! primary and secondary addresses, and which default route wins (metric,
//! other tables, multipath), compared with what `ip` reports.

use super::common;

use common::{Netns, head_and_peer};
use headnode::netinfo::{self, Snapshot};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// Read the snapshot from inside `ns`: a network namespace is per thread, so a
/// short-lived thread joins it and opens the netlink socket there.
fn read_in(ns: &Netns) -> Snapshot {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let f = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a valid namespace fd only changes this thread's netns.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        netinfo::read().expect("netinfo::read")
    })
    .join()
    .expect("reader thread")
}

fn mac_of(ns: &Netns, ifname: &str) -> String {
    let out = ns.ok(&["ip", "-o", "link", "show", ifname]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "link/ether").expect("link/ether");
    words.next().expect("mac").to_string()
}

/// Head node `ns` with wan0 198.51.100.10/24 and lan0 192.168.77.254/24 (+ a
/// secondary 192.168.77.10/24); returns it and the peer namespace.
fn two_links() -> (Netns, Netns) {
    let (ns, peer) = head_and_peer("initni", "initnp", true);
    ns.ok(&["ip", "addr", "add", "192.168.77.10/24", "dev", "lan0"]);
    (ns, peer)
}

#[test]
fn links_addresses_and_flags_match_ip() {
    if !common::can_netns(&[]) {
        return;
    }
    let (ns, peer) = two_links();
    let snap = read_in(&ns);

    let lo = snap.link("lo").expect("lo");
    assert!(lo.loopback && lo.up && lo.mac.is_none(), "{lo:?}");
    for name in ["wan0", "lan0"] {
        let l = snap.link(name).expect(name);
        assert!(l.up && !l.loopback, "{l:?}");
        assert_eq!(l.mac.map(|m| m.to_string()), Some(mac_of(&ns, name)));
        // `ip -o link` lines start with "INDEX: NAME".
        let idx: u32 = ns
            .ok(&["ip", "-o", "link", "show", name])
            .split(':')
            .next()
            .and_then(|i| i.trim().parse().ok())
            .expect("index");
        assert_eq!(l.index, idx);
    }
    assert_eq!(
        snap.ipv4_of("wan0"),
        Some("198.51.100.10/24".parse().unwrap())
    );
    // The primary address, not the secondary one added later in the same subnet.
    assert_eq!(
        snap.ipv4_of("lan0"),
        Some("192.168.77.254/24".parse().unwrap())
    );
    let lan0 = snap.link("lan0").unwrap().index;
    let all: Vec<String> = snap
        .addrs_of(lan0)
        .iter()
        .map(|a| a.net.to_string())
        .collect();
    assert_eq!(all, ["192.168.77.254/24", "192.168.77.10/24"]);
    assert!(snap.addrs_of(lan0).iter().all(|a| !a.dynamic));
    assert_eq!(snap.default_route, None, "no default route yet");

    // Down, and no carrier once the peer end is down.
    ns.ok(&["ip", "link", "set", "lan0", "down"]);
    peer.ok(&["ip", "link", "set", "up0", "down"]);
    let snap = read_in(&ns);
    assert!(!snap.link("lan0").unwrap().up);
    let wan0 = snap.link("wan0").unwrap();
    assert!(wan0.up && !wan0.carrier, "{wan0:?}");
}

#[test]
fn default_route_is_the_main_tables_lowest_metric() {
    if !common::can_netns(&[]) {
        return;
    }
    let (ns, _peer) = two_links();
    // Decoys: a better metric in another table, and one in a table above 255
    // (only reported through RTA_TABLE).
    ns.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
        "table",
        "100",
    ]);
    ns.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
        "table",
        "1000",
    ]);
    ns.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "198.51.100.1",
        "metric",
        "100",
    ]);
    let snap = read_in(&ns);
    let wan0 = snap.link("wan0").unwrap().index;
    let r = snap.default_route.expect("default route");
    assert_eq!(
        (r.oif, r.gateway, r.metric),
        (wan0, Some(Ipv4Addr::new(198, 51, 100, 1)), 100)
    );

    ns.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
        "metric",
        "50",
    ]);
    let snap = read_in(&ns);
    assert_eq!(snap.default_link().map(|l| l.name.as_str()), Some("lan0"));

    let views = netinfo::summary(&snap);
    let lan = views.iter().find(|v| v.name == "lan0").unwrap();
    assert!(lan.default_route);
    assert_eq!(lan.gateway, Some(Ipv4Addr::new(192, 168, 77, 1)));
    assert!(
        !views
            .iter()
            .find(|v| v.name == "wan0")
            .unwrap()
            .default_route
    );
    let json = serde_json::to_value(&views).unwrap();
    assert_eq!(json[0]["name"], "lo");
}

#[test]
fn multipath_default_route_uses_its_first_hop() {
    if !common::can_netns(&[]) {
        return;
    }
    let (ns, _peer) = two_links();
    ns.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "nexthop",
        "via",
        "198.51.100.1",
        "dev",
        "wan0",
        "nexthop",
        "via",
        "192.168.77.1",
        "dev",
        "lan0",
    ]);
    let snap = read_in(&ns);
    assert_eq!(snap.default_link().map(|l| l.name.as_str()), Some("wan0"));
    assert_eq!(
        snap.default_route.and_then(|r| r.gateway),
        Some(Ipv4Addr::new(198, 51, 100, 1))
    );
}
