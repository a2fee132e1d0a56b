//! Golden files for the rendered firewall ruleset (nftables JSON). Any
//! difference fails; `HEADNODE_BLESS=1 cargo test --test tests firewall_golden::`
//! rewrites them after a deliberate change. As root with nft installed, each
//! ruleset is also checked by `nft -c` inside a scratch network namespace.

use super::{common, golden};

use headnode::config;
use headnode::firewall::{self, Endpoint, NftBalancer};
use std::io::Write;
use std::process::Stdio;

enum Balancing {
    None,
    AllUp,
    /// These services have no healthy real server.
    Down(&'static [&'static str]),
}

fn render(cfg_path: &str, balancing: Balancing) -> String {
    let root = common::root();
    let cfg = config::load(&root.join(cfg_path)).expect("fixture config is valid");
    let bal = match balancing {
        Balancing::None => None,
        Balancing::AllUp => Some(NftBalancer::all_up(&cfg)),
        Balancing::Down(names) => {
            let mut b = NftBalancer::all_up(&cfg);
            for s in cfg
                .balancer
                .services
                .iter()
                .filter(|s| names.contains(&s.name.as_str()))
            {
                for r in &s.reals {
                    let real = Endpoint {
                        address: r.address,
                        port: r.port,
                    };
                    b.set_up(&s.name, real, false);
                }
            }
            Some(b)
        }
    };
    let rs = firewall::ruleset(&cfg, bal.as_ref());
    serde_json::to_string_pretty(&rs).expect("json") + "\n"
}

fn golden(name: &str, json: &str) {
    let path = common::root()
        .join("fixtures/golden")
        .join(format!("{name}.json"));
    golden::assert_or_bless(&path, json);
    nft_check(name, json);
}

/// `nft -c` in a scratch namespace: the kernel validates without committing.
fn nft_check(name: &str, json: &str) {
    if !common::can_netns(&["nft"]) {
        return;
    }
    let ns = common::Netns::new("fwg");
    let mut child = ns
        .cmd(&["nft", "-c", "-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "{name}: nft -c rejected the ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn origin() {
    golden(
        "origin",
        &render("fixtures/origin/headnode.toml", Balancing::None),
    );
}

#[test]
fn origin_nftables_balancer() {
    golden(
        "origin-nftables",
        &render("fixtures/origin/headnode.toml", Balancing::AllUp),
    );
}

#[test]
fn full() {
    golden(
        "full",
        &render("fixtures/golden/full.toml", Balancing::AllUp),
    );
}

#[test]
fn full_with_services_down() {
    golden(
        "full-down",
        &render(
            "fixtures/golden/full.toml",
            Balancing::Down(&["dns", "api"]),
        ),
    );
}
