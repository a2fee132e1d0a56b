//! `headnode dhcp` against real DHCP clients (busybox udhcpc, ISC dhclient,
//! dhcpcd), each in its own namespace on its own veth, checked from the
//! client side. Root only; each test builds its own namespaces.

use super::common;

use super::dhcp_lan::*;
use common::{Netns, can_netns, chmod_x, headnode, text, wait_for};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// udhcpc with a script that applies the lease and writes what it got.
fn udhcpc(cli: &Netns, iface: &str, dir: &Path, tries: u32) -> (Output, String) {
    let script = dir.join(format!("udhcpc-{iface}.sh"));
    let out = dir.join(format!("udhcpc-{iface}.env"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in bound|renew)\n  ip addr flush dev \"$interface\"\n  \
             ip addr add \"$ip/$mask\" dev \"$interface\"\n  \
             [ -n \"$router\" ] && ip route replace default via \"${{router%% *}}\" dev \"$interface\"\n  \
             env | sort > {out}\n;;\nesac\nexit 0\n",
            out = out.display()
        ),
    )
    .expect("script");
    chmod_x(&script);
    let o = cli.run(&[
        "udhcpc",
        "-i",
        iface,
        "-f",
        "-q",
        "-n",
        "-t",
        &tries.to_string(),
        "-T",
        "1",
        "-A",
        "1",
        "-O",
        "search",
        "-s",
        &script.to_string_lossy(),
    ]);
    let env = std::fs::read_to_string(&out).unwrap_or_default();
    (o, env)
}

fn addr_of(cli: &Netns, iface: &str) -> String {
    cli.ok(&["ip", "-4", "-o", "addr", "show", "dev", iface])
}

fn default_route(cli: &Netns) -> String {
    cli.ok(&["ip", "-4", "route", "show", "default"])
}

#[test]
fn udhcpc_gets_its_reservation_and_strangers_get_nothing() {
    if !can_netns(&["udhcpc"]) {
        return;
    }
    let mut lan = Lan::new("udhcpc");
    let cfg = lan.write_config("", "");
    let cli = lan.client("lan0", "cli0", NODE1);
    lan.start(&cfg);
    let (o, env) = udhcpc(&cli, "cli0", &lan.dir, 3);
    assert!(o.status.success(), "udhcpc failed: {}", text(&o));
    assert!(env.contains("ip=192.168.77.11\n"), "{env}");
    assert!(env.contains("mask=24\n"), "{env}");
    assert!(env.contains("router=192.168.77.1\n"), "{env}");
    assert!(env.contains("dns=192.168.77.53 192.168.77.54"), "{env}");
    assert!(env.contains("hostname=node1\n"), "{env}");
    assert!(env.contains("domain=cluster.test\n"), "{env}");
    assert!(env.contains("search=cluster.test"), "{env}");
    assert!(env.contains("lease=600\n"), "{env}");
    assert!(env.contains("serverid=192.168.77.1\n"), "{env}");
    assert!(addr_of(&cli, "cli0").contains("192.168.77.11/24"));
    assert!(default_route(&cli).contains("via 192.168.77.1"));
    cli.ok(&["busybox", "ping", "-c1", "-W2", "192.168.77.1"]);

    // A MAC with no reservation gets nothing (no pool configured).
    let other = lan.client("lan0", "cli9", STRANGER);
    let (o, env) = udhcpc(&other, "cli9", &lan.dir, 2);
    assert!(!o.status.success(), "stranger got a lease: {env}");
    assert!(
        lan.log_text()
            .contains(&format!("no reservation for {STRANGER}"))
    );

    // `headnode leases` without a server: node1 bound and seen, node2 never.
    lan.stop_with("TERM");
    let o = common::headnode_run(&["-c", &cfg.to_string_lossy(), "leases"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let line = |ip: &str| {
        out.lines()
            .find(|l| l.starts_with(ip))
            .unwrap_or_else(|| panic!("no {ip} in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let n1 = line("192.168.77.11 ");
    assert_eq!(
        &n1[..5],
        &["192.168.77.11", NODE1, "fixed", "node1", "bound"],
        "{out}"
    );
    assert!(n1.join(" ").contains(" ago"), "{out}");
    let n2 = line("192.168.77.12 ");
    assert_eq!(
        &n2[..5],
        &["192.168.77.12", NODE2, "fixed", "node2", "reserved"],
        "{out}"
    );
    assert_eq!(n2.last(), Some(&"never"), "{out}");
}

#[test]
fn dhclient_gets_its_reservation() {
    if !can_netns(&["dhclient"]) {
        return;
    }
    let mut lan = Lan::new("dhclient");
    let cfg = lan.write_config("", "");
    let cli = lan.client("lan0", "cli1", NODE2);
    lan.start(&cfg);
    let script = lan.dir.join("dhclient.sh");
    let env = lan.dir.join("dhclient.env");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in\n PREINIT) ip link set \"$interface\" up;;\n \
             BOUND|RENEW|REBIND|REBOOT)\n  ip addr add \"$new_ip_address/$new_subnet_mask\" dev \"$interface\"\n  \
             ip route replace default via \"${{new_routers%% *}}\" dev \"$interface\"\n  env | sort > {};;\nesac\nexit 0\n",
            env.display()
        ),
    )
    .expect("script");
    chmod_x(&script);
    let lf = lan.dir.join("dhclient.leases");
    let pf = lan.dir.join("dhclient.pid");
    let o = cli.run(&[
        "timeout",
        "30",
        "dhclient",
        "-1",
        "-v",
        "-sf",
        &script.to_string_lossy(),
        "-lf",
        &lf.to_string_lossy(),
        "-pf",
        &pf.to_string_lossy(),
        "cli1",
    ]);
    assert!(o.status.success(), "dhclient failed: {}", text(&o));
    let env = std::fs::read_to_string(&env).unwrap_or_default();
    assert!(env.contains("new_ip_address=192.168.77.12\n"), "{env}");
    assert!(env.contains("new_subnet_mask=255.255.255.0\n"), "{env}");
    assert!(env.contains("new_routers=192.168.77.1\n"), "{env}");
    assert!(
        env.contains("new_domain_name_servers=192.168.77.53 192.168.77.54\n"),
        "{env}"
    );
    assert!(env.contains("new_host_name=node2\n"), "{env}");
    assert!(addr_of(&cli, "cli1").contains("192.168.77.12/24"));
    assert!(default_route(&cli).contains("via 192.168.77.1"));
    // dhclient sets no broadcast flag: the replies went by unicast to its
    // MAC, through the neighbour entry the server added.
    assert!(!lan.log_text().contains("cannot set neighbour entry"));
    let neigh = lan
        .srv
        .ok(&["ip", "neigh", "show", "192.168.77.12", "dev", "lan0"]);
    assert!(neigh.contains(NODE2), "{neigh}");
}

#[test]
fn dhcpcd_gets_its_reservation() {
    if !can_netns(&["dhcpcd"]) {
        return;
    }
    let mut lan = Lan::new("dhcpcd");
    let cfg = lan.write_config("", "");
    let cli = lan.client("lan0", "cli2", NODE3);
    lan.start(&cfg);
    // A hook script instead of dhcpcd-run-hooks, so nothing outside the
    // namespace (resolv.conf) is touched; dhcpcd applies address and route itself.
    let script = lan.dir.join("dhcpcd.sh");
    let env = lan.dir.join("dhcpcd.env");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBIND|REBOOT) env | sort > {};; esac\nexit 0\n",
            env.display()
        ),
    )
    .expect("script");
    chmod_x(&script);
    let conf = lan.dir.join("dhcpcd.conf");
    std::fs::write(
        &conf,
        "option domain_name_servers, domain_name, host_name\nnoipv4ll\nnoarp\n",
    )
    .expect("conf");
    let o = cli.run(&[
        "timeout",
        "30",
        "dhcpcd",
        "-4",
        "-1",
        "-B",
        "-t",
        "20",
        "-f",
        &conf.to_string_lossy(),
        "-c",
        &script.to_string_lossy(),
        "cli2",
    ]);
    assert!(o.status.success(), "dhcpcd failed: {}", text(&o));
    let env = std::fs::read_to_string(&env).unwrap_or_default();
    assert!(env.contains("new_ip_address=192.168.77.13\n"), "{env}");
    assert!(
        env.contains("new_domain_name_servers=192.168.77.53 192.168.77.54\n"),
        "{env}"
    );
    assert!(addr_of(&cli, "cli2").contains("192.168.77.13/24"));
    assert!(default_route(&cli).contains("via 192.168.77.1"));
}

#[test]
fn public_side_gets_no_offer_and_default_route_interface_is_refused() {
    if !can_netns(&["udhcpc"]) {
        return;
    }
    let mut lan = Lan::new("public");
    let cfg = lan.write_config("", "");
    let _cli = lan.client("lan0", "cli3", NODE2);
    // The reserved MAC, but on the public side: must get nothing.
    let outside = lan.client("wan0", "cli4", NODE1);
    lan.start(&cfg);
    let (o, env) = udhcpc(&outside, "cli4", &lan.dir, 2);
    assert!(!o.status.success(), "public side got a lease: {env}");

    // Pointing the private side at the default-route interface is refused...
    let bad = lan.dir.join("bad.toml");
    let text_cfg = std::fs::read_to_string(&cfg)
        .expect("cfg")
        .replace("name = \"lan0\"", "name = \"wan0\"")
        .replace(
            "name = \"wan0\"\naddress = \"203",
            "name = \"lan0\"\naddress = \"203",
        );
    std::fs::write(&bad, &text_cfg).expect("write");
    let o = lan.srv.run(&[
        &headnode().to_string_lossy(),
        "-c",
        &bad.to_string_lossy(),
        "dhcp",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("default route"), "{}", text(&o));
    // ...unless the config says so (and the interface has the address).
    lan.srv
        .ok(&["ip", "addr", "add", "192.168.77.1/24", "dev", "wan0"]);
    let ok = lan.dir.join("allowed.toml");
    std::fs::write(
        &ok,
        text_cfg
            .replace("[dhcp]\n", "[dhcp]\nallow_default_route_interface = true\n")
            .replace("/leases\"", "/leases2\""),
    )
    .expect("write");
    let o = lan.srv.run(&[
        "timeout",
        "2",
        &headnode().to_string_lossy(),
        "-c",
        &ok.to_string_lossy(),
        "dhcp",
    ]);
    assert!(text(&o).contains("DHCP serving on wan0"), "{}", text(&o));
}

#[test]
fn sighup_reload_adds_reservations_and_survives_a_bad_config() {
    if !can_netns(&["udhcpc"]) {
        return;
    }
    let mut lan = Lan::new("reload");
    let cfg = lan.write_config("", "");
    let cli = lan.client("lan0", "cli5", STRANGER);
    lan.start(&cfg);
    let (o, _) = udhcpc(&cli, "cli5", &lan.dir, 1);
    assert!(!o.status.success(), "no reservation yet");

    // A broken config is rejected and the old one keeps serving.
    std::fs::write(&cfg, "this is = not [valid").expect("write");
    lan.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(5), || lan
            .log_text()
            .contains("reload rejected")
            .then_some(()))
        .is_some(),
        "{}",
        lan.log_text()
    );
    let node = lan.client("lan0", "cli6", NODE1);
    let (o, env) = udhcpc(&node, "cli6", &lan.dir, 3);
    assert!(o.status.success(), "old config still serves: {}", text(&o));
    assert!(env.contains("ip=192.168.77.11\n"), "{env}");

    // A good config adding the stranger takes effect without a restart.
    lan.write_config(
        "",
        &format!("[[host]]\nname = \"late\"\nmac = \"{STRANGER}\"\naddress = \"192.168.77.99\"\n"),
    );
    lan.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(5), || lan
            .log_text()
            .contains("1 added")
            .then_some(()))
        .is_some(),
        "{}",
        lan.log_text()
    );
    let (o, env) = udhcpc(&cli, "cli5", &lan.dir, 3);
    assert!(o.status.success(), "{}", text(&o));
    assert!(env.contains("ip=192.168.77.99\n"), "{env}");
    assert!(env.contains("hostname=late\n"), "{env}");
}

/// udhcpc until it gets node1's lease; how long it took. The server must
/// listen again within 2 s of a change and udhcpc retries every second.
fn lease_again(lan: &Lan, cli: &Netns, what: &str) -> Duration {
    let t = std::time::Instant::now();
    let (o, env) = udhcpc(cli, "cli0", &lan.dir, 6);
    let took = t.elapsed();
    assert!(
        o.status.success() && env.contains("ip=192.168.77.11\n"),
        "{what}: no lease: {}\n{env}\nserver log:\n{}",
        text(&o),
        lan.log_text()
    );
    assert!(
        took < Duration::from_secs(5),
        "{what}: lease after {took:?}"
    );
    eprintln!("{what}: lease again after {took:?}");
    took
}

/// The server's log says `line` once more than `before` times (within 3 s).
fn logged(lan: &Lan, line: &str, before: usize) {
    let seen = wait_for(Duration::from_secs(3), || {
        (lan.log_text().matches(line).count() > before).then_some(())
    });
    assert!(seen.is_some(), "no \"{line}\" in:\n{}", lan.log_text());
}

#[test]
fn the_server_follows_the_lan_through_recreate_rename_down_up_and_readdress() {
    if !can_netns(&["udhcpc"]) {
        return;
    }
    let mut lan = Lan::new("follow");
    let cfg = lan.write_config("", "");
    let cli = lan.client("lan0", "cli0", NODE1);
    lan.start(&cfg);
    lease_again(&lan, &cli, "at start");
    let srv = &lan.srv;

    // ifdown/ifup of a bridge: deleted and made again, with a new index.
    let gone = "DHCP not listening: interface lan0 does not exist";
    srv.ok(&["ip", "link", "del", "lan0"]);
    logged(&lan, gone, 0);
    srv.ok(&["ip", "link", "add", "lan0", "type", "bridge"]);
    srv.ok(&["ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"]);
    srv.ok(&["ip", "link", "set", "lan0", "up"]);
    srv.ok(&["ip", "link", "set", "pcli0", "master", "lan0"]);
    lease_again(&lan, &cli, "recreated");

    // Renamed away: deaf (the old socket would still hear it), then back.
    let before = lan.log_text().matches(gone).count();
    srv.ok(&["ip", "link", "set", "lan0", "down"]);
    srv.ok(&["ip", "link", "set", "lan0", "name", "lanx"]);
    srv.ok(&["ip", "link", "set", "lanx", "up"]);
    logged(&lan, gone, before);
    let (o, env) = udhcpc(&cli, "cli0", &lan.dir, 2);
    assert!(
        !o.status.success(),
        "answered on a renamed interface: {env}"
    );
    srv.ok(&["ip", "link", "set", "lanx", "down"]);
    srv.ok(&["ip", "link", "set", "lanx", "name", "lan0"]);
    srv.ok(&["ip", "link", "set", "lan0", "up"]);
    lease_again(&lan, &cli, "renamed back");

    // Down and up again (up before the server looked is no change at all).
    let down = "DHCP not listening: interface lan0 is down";
    let before = lan.log_text().matches(down).count();
    srv.ok(&["ip", "link", "set", "lan0", "down"]);
    logged(&lan, down, before);
    srv.ok(&["ip", "link", "set", "lan0", "up"]);
    lease_again(&lan, &cli, "down/up");

    // The server's address goes away, then comes back.
    srv.ok(&["ip", "addr", "del", "192.168.77.1/24", "dev", "lan0"]);
    srv.ok(&["ip", "addr", "add", "192.168.77.5/24", "dev", "lan0"]);
    logged(&lan, "does not have the server's address 192.168.77.1", 0);
    let (o, env) = udhcpc(&cli, "cli0", &lan.dir, 2);
    assert!(!o.status.success(), "answered without its address: {env}");
    srv.ok(&["ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"]);
    lease_again(&lan, &cli, "readdressed");

    let rebinds = lan.log_text().matches("bound again").count();
    assert_eq!(rebinds, 4, "{}", lan.log_text());
}
