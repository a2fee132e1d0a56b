//! `plan::compute` driven by hand-made `Live` values: no root, no nft, no
//! kernel.

use super::*;
use crate::config::test_text::INTERFACES;
use crate::firewall::applied::Applied;
use crate::health::{State, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

const NODES: &str = r#"
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
scheduler = "rr"
"#;

fn config(extra: &str) -> Config {
    let text = format!("{INTERFACES}{NODES}{extra}");
    crate::config::parse(&text, Path::new("test.toml")).expect("valid config")
}

fn backend(b: &str) -> String {
    format!("[balancer]\nbackend = \"{b}\"\n")
}

/// Live state of a box where nothing of headnode's is loaded yet.
fn fresh() -> Live {
    Live {
        nft: Ok(NftLive::default()),
        sysctls: BTreeMap::from([("net.ipv4.ip_forward".to_string(), Some("1".to_string()))]),
        ipvs: IpvsLive::NoIpvs("test".into()),
        ssh: Vec::new(),
        health: HealthMap::default(),
    }
}

/// `live` after headnode loaded `cfg`'s ruleset and nft listed it as `listing`.
fn loaded(cfg: &Config, mut live: Live, listing: &str) -> Live {
    let rs = compute(cfg, &live).unwrap().firewall.ruleset.unwrap();
    live.nft = Ok(NftLive {
        listing: Some(listing.into()),
        record: Some(Applied::new(&rs, listing.into()).unwrap()),
    });
    live
}

fn node1_down() -> HealthMap {
    let mut h = HealthMap::default();
    h.set(
        Target {
            service: "web".into(),
            addr: "192.168.1.101".parse().unwrap(),
            port: 8000,
        },
        State::Down,
    );
    h
}

fn ssh(client: &str, server: &str) -> SshConnection {
    SshConnection {
        client: client.parse::<IpAddr>().unwrap(),
        server: server.parse::<IpAddr>().unwrap(),
        port: 22,
    }
}

#[test]
fn ruleset_state_follows_the_record_and_the_listing() {
    let cfg = config(&backend("nftables"));
    let other = config(&format!(
        "{}[sysctl]\n\"net.ipv4.tcp_syncookies\" = 1\n",
        backend("nftables")
    ));
    let other_rules = config(&format!(
        "{}[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nproto = \"tcp\"\nports = [22]\n",
        backend("nftables")
    ));
    struct Case {
        name: &'static str,
        live: Live,
        state: RulesetState,
        reason: Option<&'static str>,
        loaded: Option<&'static str>,
    }
    let mut drifted = loaded(&cfg, fresh(), "table as loaded\n");
    if let Ok(n) = &mut drifted.nft {
        n.listing = Some("table after nft flush chain\n".into());
    }
    let mut unreadable = fresh();
    unreadable.nft = Err("needs root".into());
    let cases = [
        Case {
            name: "unchanged",
            live: loaded(&cfg, fresh(), "table\n"),
            state: RulesetState::Unchanged,
            reason: None,
            loaded: None,
        },
        Case {
            name: "no table yet",
            live: fresh(),
            state: RulesetState::Changed,
            reason: Some("no headnode table is loaded"),
            loaded: None,
        },
        Case {
            name: "drift",
            live: drifted,
            state: RulesetState::Changed,
            reason: Some("the table was changed since headnode loaded it"),
            loaded: Some("table as loaded\n"),
        },
        Case {
            name: "a sysctl is not part of the ruleset",
            live: loaded(&other, fresh(), "table\n"),
            state: RulesetState::Unchanged,
            reason: None,
            loaded: None,
        },
        Case {
            name: "config changed",
            live: loaded(&other_rules, fresh(), "table\n"),
            state: RulesetState::Changed,
            reason: Some("the config's ruleset is not the one last loaded"),
            loaded: None,
        },
        Case {
            name: "cannot compare",
            live: unreadable,
            state: RulesetState::Unknown("needs root".into()),
            reason: None,
            loaded: None,
        },
    ];
    for c in cases {
        let fw = compute(&cfg, &c.live).unwrap().firewall;
        assert_eq!(fw.state, c.state, "{}", c.name);
        assert_eq!(fw.reason.as_deref(), c.reason, "{}", c.name);
        assert_eq!(fw.loaded.as_deref(), c.loaded, "{}", c.name);
        assert!(fw.ruleset.is_some(), "{}", c.name);
        assert!(fw.preview.is_none(), "{}: compute never runs nft", c.name);
    }
}

#[test]
fn firewall_disabled_removes_the_table_once() {
    let cfg = config("[firewall]\nenabled = false\n");
    let mut live = fresh();
    live.nft = Ok(NftLive {
        listing: Some("table\n".into()),
        record: None,
    });
    let plan = compute(&cfg, &live).unwrap();
    assert!(plan.firewall.ruleset.is_none());
    assert_eq!(plan.firewall.state, RulesetState::Changed);
    assert!(plan.notes.iter().any(|n| n.contains("table is removed")));
    let plan = compute(&cfg, &fresh()).unwrap();
    assert_eq!(plan.firewall.state, RulesetState::Unchanged);
}

#[test]
fn backend_auto_falls_back_to_nftables_and_explicit_choices_stand() {
    let table = IpvsLive::Table {
        table: ipvs::Table::new(),
        owned: BTreeSet::new(),
    };
    let no_ipvs = IpvsLive::NoIpvs("test".into());
    let cases = [
        (
            "auto",
            &no_ipvs,
            Backend::Nftables,
            "backend auto: the kernel has no IPVS (test)",
        ),
        (
            "auto",
            &table,
            Backend::Ipvs,
            "backend auto: the kernel has IPVS",
        ),
        (
            "nftables",
            &table,
            Backend::Nftables,
            "balancer.backend = \"nftables\"",
        ),
        (
            "ipvs",
            &no_ipvs,
            Backend::Ipvs,
            "balancer.backend = \"ipvs\"",
        ),
    ];
    for (configured, ipvs_live, want, why) in cases {
        let cfg = config(&backend(configured));
        let mut live = fresh();
        live.ipvs = ipvs_live.clone();
        let plan = compute(&cfg, &live).unwrap();
        assert_eq!(plan.backend, want, "{configured}");
        assert!(
            plan.backend_reason.starts_with(why),
            "{configured}: {}",
            plan.backend_reason
        );
        assert_eq!(plan.ipvs.is_some(), want == Backend::Ipvs, "{configured}");
        // The nftables balancer is in the ruleset exactly when it balances.
        let rs = serde_json::to_string(&plan.firewall.ruleset).unwrap();
        assert_eq!(
            rs.contains("\"balance\""),
            want == Backend::Nftables,
            "{configured}"
        );
    }
}

#[test]
fn ipvs_operations_start_from_the_live_table() {
    let cfg = config(&backend("ipvs"));
    let mut live = fresh();
    live.ipvs = IpvsLive::Table {
        table: ipvs::Table::new(),
        owned: BTreeSet::new(),
    };
    let first = compute(&cfg, &live).unwrap().ipvs.unwrap();
    // One service and its two real servers.
    assert_eq!(first.ops.len(), 3, "{:?}", first.ops);
    assert!(first.live_unreadable.is_none());
    // Once the kernel has what the config wants, nothing is left to do.
    live.ipvs = IpvsLive::Table {
        table: first.desired.clone(),
        owned: first.desired.keys().copied().collect(),
    };
    assert!(compute(&cfg, &live).unwrap().ipvs.unwrap().ops.is_empty());
    // Unreadable: changes from an empty table, and the plan says why.
    live.ipvs = IpvsLive::Unreadable("no answer".into());
    let p = compute(&cfg, &live).unwrap().ipvs.unwrap();
    assert_eq!(p.ops.len(), 3);
    assert_eq!(p.live_unreadable.as_deref(), Some("no answer"));
}

#[test]
fn servers_the_daemon_drained_stay_drained() {
    // nftables: node1 leaves the balance map, the plan says why.
    let cfg = config(&backend("nftables"));
    let mut live = fresh();
    let all_up = compute(&cfg, &live).unwrap();
    live.health = node1_down();
    let drained = compute(&cfg, &live).unwrap();
    assert!(
        drained
            .notes
            .iter()
            .any(|n| n.contains("192.168.1.101:8000 is down") && n.contains("kept drained")),
        "{:?}",
        drained.notes
    );
    let (a, d) = (
        serde_json::to_string(&all_up.firewall.ruleset).unwrap(),
        serde_json::to_string(&drained.firewall.ruleset).unwrap(),
    );
    assert_ne!(a, d, "the drained server is not balanced to");
    // IPVS: weight 0 for node1, node2 keeps its weight.
    let cfg = config(&backend("ipvs"));
    let mut live = fresh();
    live.health = node1_down();
    let table = compute(&cfg, &live).unwrap().ipvs.unwrap().desired;
    let text = ipvs::render_table(&table);
    assert!(
        text.contains("192.168.1.101:8000           Masq    0"),
        "{text}"
    );
    assert!(
        text.contains("192.168.1.102:8000           Masq    1"),
        "{text}"
    );
}

#[test]
fn ssh_guard_names_the_sessions_the_ruleset_would_lock_out() {
    let open22 = "[[firewall.rule]]\naction = \"accept\"\nfrom = \"net\"\nto = \"fw\"\nproto = \"tcp\"\nports = [22]\n";
    let cases = [
        (
            "from the internet, no rule",
            "",
            ssh("198.51.100.7", "203.0.113.210"),
            true,
        ),
        (
            "from the internet, rule for 22",
            open22,
            ssh("198.51.100.7", "203.0.113.210"),
            false,
        ),
        (
            "from the LAN (ssh_from_loc)",
            "",
            ssh("192.168.1.101", "192.168.1.254"),
            false,
        ),
        (
            "firewall disabled",
            "[firewall]\nenabled = false\n",
            ssh("198.51.100.7", "203.0.113.210"),
            false,
        ),
    ];
    for (name, extra, session, locked_out) in cases {
        let cfg = config(extra);
        let mut live = fresh();
        live.ssh = vec![session.clone()];
        let plan = compute(&cfg, &live).unwrap();
        assert_eq!(
            !plan.lockouts.is_empty(),
            locked_out,
            "{name}: {:?}",
            plan.lockouts
        );
        if locked_out {
            assert_eq!(plan.lockouts[0].session, session);
            assert!(!plan.lockouts[0].why.is_empty());
            assert!(plan.to_text().contains("apply refuses without --force"));
        }
    }
}

#[test]
fn sysctls_change_only_what_differs() {
    let cfg = config("[sysctl]\n\"net.ipv4.conf.all.rp_filter\" = 1\n");
    let mut live = fresh();
    live.sysctls = BTreeMap::from([
        ("net.ipv4.ip_forward".to_string(), Some("0".to_string())),
        (
            "net.ipv4.conf.all.rp_filter".to_string(),
            Some("1".to_string()),
        ),
    ]);
    let plan = compute(&cfg, &live).unwrap();
    assert_eq!(plan.sysctls.len(), 1, "{:?}", plan.sysctls);
    assert_eq!(plan.sysctls[0].key, "net.ipv4.ip_forward");
    assert_eq!(plan.sysctls[0].from.as_deref(), Some("0"));
    live.sysctls.remove("net.ipv4.conf.all.rp_filter");
    let plan = compute(&cfg, &live).unwrap();
    assert!(
        plan.sysctls
            .iter()
            .any(|c| c.key == "net.ipv4.conf.all.rp_filter" && c.from.is_none())
    );
}

/// compute does no I/O: run every case above again in a child process with
/// nothing on PATH, `nft` pointed at nothing and, when the tests run as
/// root, as an unprivileged user.
#[test]
fn compute_needs_neither_root_nor_nft() {
    if std::env::var_os("HEADNODE_PLAN_CHILD").is_some() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["plan::tests::", "--test-threads=1"])
        .env("HEADNODE_PLAN_CHILD", "1")
        .env("PATH", "")
        .env("HEADNODE_NFT", "/nonexistent/nft")
        .env("HEADNODE_STATE_DIR", "/nonexistent/state");
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run the test binary again");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("8 passed"), "{text}");
}
