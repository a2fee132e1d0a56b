//! `headnode status [--json]`: what is live, in one view. The running
//! daemon answers for what only it knows (health, drift repairs, DHCP
//! counters); the rest is read from the kernel directly, so status also works
//! when the daemon is not running.

use crate::cli::JsonArgs;
use crate::daemon::control::{self, Request};
use crate::{ipvs, netinfo, paths, plan};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

pub fn run(path: &Path, args: &JsonArgs) -> anyhow::Result<()> {
    let daemon = control::ask(&paths::control_socket(), Request::Status)?;
    let cfg = super::load_resolved(path);
    let mut status = json!({});
    status["daemon"] = daemon.as_ref().map_or(json!({ "running": false }), |d| {
        let mut v = d["daemon"].clone();
        v["running"] = json!(true);
        v
    });
    status["interfaces"] = match netinfo::read() {
        Ok(snap) => {
            let problems = cfg
                .as_ref()
                .map(|c| netinfo::problems(c, &snap))
                .unwrap_or_default();
            json!({ "links": netinfo::summary(&snap), "problems": problems })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    let mut firewall = daemon.as_ref().map_or(json!({}), |d| d["firewall"].clone());
    firewall["rules"] = rule_counters();
    status["firewall"] = firewall;
    let mut bal = match (&daemon, &cfg) {
        (Some(d), _) => d["balancer"].clone(),
        (None, Ok(c)) => {
            let (backend, reason) =
                plan::select_backend(c.balancer.backend, &plan::live::ipvs_for(c));
            json!({ "backend": backend, "reason": reason })
        }
        (None, Err(_)) => json!({}),
    };
    if bal["backend"] == "ipvs" {
        bal["ipvs_live"] = match ipvs::live_table() {
            Ok(t) => json!(ipvs::render_table(&t).lines().collect::<Vec<_>>()),
            Err(e) => json!({ "error": e.to_string() }),
        };
    }
    status["balancer"] = bal;
    status["dhcp"] = daemon
        .as_ref()
        .map_or(json!({ "serving": false }), |d| d["dhcp"].clone());
    status["tftp"] = daemon
        .as_ref()
        .map_or(json!({ "serving": false }), |d| d["tftp"].clone());
    status["leases"] = daemon.as_ref().map_or(json!([]), |d| d["leases"].clone());
    if let Err(e) = &cfg {
        status["config_error"] = json!(crate::errors::render(e));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// Every rule of our table with its comment and counter, from `nft -j`.
fn rule_counters() -> Value {
    let nft = std::env::var_os("HEADNODE_NFT").unwrap_or_else(|| "nft".into());
    let out = Command::new(nft)
        .args(["-j", "list", "table", "inet", "headnode"])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(_) => return json!({ "error": "table inet headnode is not loaded" }),
        Err(e) => return json!({ "error": format!("cannot run nft: {e}") }),
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&out.stdout) else {
        return json!({ "error": "nft printed JSON that could not be read" });
    };
    let rules: Vec<Value> = doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .filter_map(|r| {
            let counter = r["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e.get("counter"))?;
            Some(json!({
                "chain": r["chain"],
                "comment": r["comment"],
                "packets": counter["packets"],
                "bytes": counter["bytes"],
            }))
        })
        .collect();
    json!(rules)
}

fn render(s: &Value) -> String {
    let mut o = String::new();
    let d = &s["daemon"];
    if d["running"] == true {
        let _ = writeln!(
            o,
            "daemon: running (pid {}, up {}s, config {})",
            d["pid"],
            d["uptime_s"],
            d["config"].as_str().unwrap_or("?")
        );
        if let Some(e) = d["last_error"].as_str() {
            let _ = writeln!(o, "  last error: {e}");
        }
    } else {
        let _ = writeln!(o, "daemon: not running (state read from the kernel)");
    }
    if let Some(e) = s["config_error"].as_str() {
        let _ = writeln!(o, "config: invalid\n{e}");
    }
    let _ = writeln!(o, "\ninterfaces:");
    if let Some(links) = s["interfaces"]["links"].as_array() {
        for l in links {
            let _ = writeln!(o, "  {}", compact(l));
        }
    }
    for p in s["interfaces"]["problems"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  problem: {}", p.as_str().unwrap_or_default());
    }
    let fw = &s["firewall"];
    let _ = writeln!(
        o,
        "\nfirewall: {}{}",
        fw["state"].as_str().unwrap_or("table inet headnode"),
        fw["drift_repairs"]
            .as_u64()
            .filter(|n| *n > 0)
            .map_or(String::new(), |n| format!(", {n} drift repair(s)"))
    );
    match fw["rules"].as_array() {
        Some(rules) => {
            let hit: Vec<_> = rules
                .iter()
                .filter(|r| r["packets"].as_u64().unwrap_or(0) > 0)
                .collect();
            let _ = writeln!(o, "  {} rules, {} with hits:", rules.len(), hit.len());
            for r in hit {
                let _ = writeln!(
                    o,
                    "  {:>8} pkts  {:<14} {}",
                    r["packets"].as_u64().unwrap_or(0),
                    r["chain"].as_str().unwrap_or(""),
                    r["comment"].as_str().unwrap_or("")
                );
            }
        }
        None => {
            let _ = writeln!(o, "  {}", fw["rules"]["error"].as_str().unwrap_or("?"));
        }
    }
    let b = &s["balancer"];
    let _ = writeln!(
        o,
        "\nbalancer: {} ({})",
        b["backend"].as_str().unwrap_or("?"),
        b["reason"].as_str().unwrap_or("")
    );
    for svc in b["services"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {} {} {} {}",
            svc["name"].as_str().unwrap_or(""),
            svc["key"].as_str().unwrap_or(""),
            svc["scheduler"].as_str().unwrap_or(""),
            svc["method"].as_str().unwrap_or("")
        );
        for r in svc["reals"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "    -> {}:{} ({}) weight {} health {}",
                r["address"].as_str().unwrap_or(""),
                r["port"],
                r["name"].as_str().unwrap_or(""),
                r["weight"],
                r["health"].as_str().unwrap_or("")
            );
        }
    }
    for l in b["ipvs_live"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  live: {}", l.as_str().unwrap_or(""));
    }
    let dh = &s["dhcp"];
    if dh["serving"] == true {
        let _ = writeln!(
            o,
            "\ndhcp: serving on {} ({})",
            dh["interface"].as_str().unwrap_or("?"),
            compact(&nonzero(&dh["counters"]))
        );
    } else if let Some(why) = dh["deaf"].as_str() {
        let _ = writeln!(o, "\ndhcp: NOT LISTENING: {why}");
    } else if dh.get("restarts").is_some() {
        let _ = writeln!(o, "\ndhcp: not running (see last_error)");
    } else {
        let _ = writeln!(
            o,
            "\ndhcp: not serving (no daemon); `headnode leases` reads the lease file"
        );
    }
    if let Some(why) = dh["pool_refused"].as_str() {
        let _ = writeln!(o, "  pool clients get no lease: {why}");
    }
    for l in s["leases"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<15} {}  {:<6} {:<10} {}",
            l["address"].as_str().unwrap_or(""),
            l["mac"].as_str().unwrap_or(""),
            l["kind"].as_str().unwrap_or(""),
            l["state"].as_str().unwrap_or(""),
            l["name"].as_str().unwrap_or("")
        );
    }
    let tf = &s["tftp"];
    if tf["serving"] == true {
        let _ = writeln!(
            o,
            "\ntftp: serving {} on {} ({} running; {})",
            tf["root"].as_str().unwrap_or("?"),
            tf["listen"].as_str().unwrap_or("?"),
            tf["active"],
            compact(&nonzero(&tf["counters"]))
        );
        for r in tf["recent"].as_array().into_iter().flatten().rev() {
            let _ = writeln!(
                o,
                "  {:<21} {} ({} bytes) {}",
                r["client"].as_str().unwrap_or(""),
                r["file"].as_str().unwrap_or(""),
                r["bytes"],
                r["outcome"].as_str().unwrap_or("")
            );
        }
    }
    o
}

/// Only the counters that counted something.
fn nonzero(v: &Value) -> Value {
    match v.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| v.as_u64() != Some(0))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => v.clone(),
    }
}

/// `{"a":1,"b":"x"}` as `a=1 b=x`.
fn compact(v: &Value) -> String {
    match v.as_object() {
        Some(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => v.to_string(),
    }
}
