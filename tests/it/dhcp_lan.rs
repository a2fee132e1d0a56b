//! Shared by the DHCP integration tests: a server namespace with the private
//! side `lan0` (a bridge, so every client gets its own veth) and the public
//! side `wan0` holding the default route, a config and `headnode dhcp`.
#![allow(dead_code)]

use super::common::{Netns, headnode, headnode_run, signal, text, veth, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NODE1: &str = "00:12:34:56:78:91";
pub const NODE2: &str = "00:12:34:56:78:92";
pub const NODE3: &str = "00:12:34:56:78:93";
pub const STRANGER: &str = "02:aa:bb:cc:dd:01";

/// The server namespace: `lan0` (private, 192.168.77.1/24) and `wan0`
/// (public, holds the default route), plus a config and lease file.
pub struct Lan {
    pub srv: Netns,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub pid: Option<u32>,
    /// Prefix length of the LAN (24, or 16 for big pools).
    pub prefix: u8,
}

pub fn config(extra_dhcp: &str, hosts: &str) -> String {
    format!(
        r#"
[interfaces.public]
name = "wan0"
address = "203.0.113.2/24"
gateway = "203.0.113.1"

[interfaces.private]
name = "lan0"
address = "192.168.77.1/24"

[dhcp]
dns_servers = ["192.168.77.53", "192.168.77.54"]
domain_name = "cluster.test"
domain_search = ["cluster.test"]
lease_time = "10m"
lease_file = "LEASES"
{extra_dhcp}

[firewall]
enabled = false

[[host]]
name = "node1"
mac = "{NODE1}"
address = "192.168.77.11"

[[host]]
name = "node2"
mac = "{NODE2}"
address = "192.168.77.12"

[[host]]
name = "node3"
mac = "{NODE3}"
address = "192.168.77.13"
{hosts}
"#
    )
}

impl Lan {
    pub fn new(test: &str) -> Lan {
        let srv = Netns::new("dhcp");
        let dir = std::env::temp_dir().join(format!("hn-dhcp-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("server.log");
        Lan {
            srv,
            dir,
            log,
            pid: None,
            prefix: 24,
        }
    }

    /// A /16 LAN, for pools larger than a /24 holds.
    pub fn wide(test: &str) -> Lan {
        let mut lan = Lan::new(test);
        lan.prefix = 16;
        lan
    }

    pub fn write_config(&self, extra_dhcp: &str, hosts: &str) -> PathBuf {
        let path = self.dir.join("headnode.toml");
        let leases = self.dir.join("leases");
        let text = config(extra_dhcp, hosts)
            .replace("LEASES", &leases.to_string_lossy())
            .replace("192.168.77.1/24", &format!("192.168.77.1/{}", self.prefix));
        std::fs::write(&path, text).expect("config");
        path
    }

    /// A client namespace on its own veth to `lan0` (or `wan0`), with `mac`.
    pub fn client(&self, srv_if: &str, cli_if: &str, mac: &str) -> Netns {
        let cli = Netns::new("dhcp");
        let addr = match srv_if {
            "wan0" => "203.0.113.2/24".to_string(),
            _ => format!("192.168.77.1/{}", self.prefix),
        };
        // Only the first veth on each side carries the address; more clients
        // hang off a bridge so the server keeps one private interface.
        let have_if = self
            .srv
            .run(&["ip", "link", "show", srv_if])
            .status
            .success();
        if have_if {
            let port = format!("p{cli_if}");
            veth(&self.srv, &port, None, &cli, cli_if, None);
            self.srv.ok(&["ip", "link", "set", &port, "master", srv_if]);
        } else {
            self.srv
                .ok(&["ip", "link", "add", srv_if, "type", "bridge"]);
            self.srv.ok(&["ip", "addr", "add", &addr, "dev", srv_if]);
            self.srv.ok(&["ip", "link", "set", srv_if, "up"]);
            let port = format!("p{cli_if}");
            veth(&self.srv, &port, None, &cli, cli_if, None);
            self.srv.ok(&["ip", "link", "set", &port, "master", srv_if]);
            if srv_if == "wan0" {
                self.srv
                    .ok(&["ip", "route", "add", "default", "via", "203.0.113.1"]);
            }
        }
        cli.ok(&["ip", "link", "set", cli_if, "down"]);
        cli.ok(&["ip", "link", "set", cli_if, "address", mac]);
        cli.ok(&["ip", "link", "set", cli_if, "up"]);
        cli
    }

    /// Start `headnode dhcp` and wait until it serves.
    pub fn start(&mut self, config: &Path) {
        let pid = self.srv.spawn_logged(
            &[
                &headnode().to_string_lossy(),
                "-c",
                &config.to_string_lossy(),
                "-v",
                "dhcp",
            ],
            &self.log,
        );
        self.pid = Some(pid);
        let up = wait_for(Duration::from_secs(10), || {
            self.log_text().contains("DHCP serving").then_some(())
        });
        assert!(up.is_some(), "server did not start:\n{}", self.log_text());
    }

    /// A client namespace that plays a relay agent at 192.168.77.2, for
    /// `tests/dhcp/relay_client.py`.
    pub fn relay(&self, cli_if: &str) -> Netns {
        let cli = self.client("lan0", cli_if, "02:52:00:00:00:02");
        let a = format!("192.168.77.2/{}", self.prefix);
        cli.ok(&["ip", "addr", "add", &a, "dev", cli_if]);
        cli
    }

    /// Run the relay client; its stdout.
    pub fn py(&self, relay: &Netns, args: &[&str]) -> String {
        let script = super::common::root().join("tests/dhcp/relay_client.py");
        let mut argv = vec![
            "python3",
            script.to_str().expect("utf-8 path"),
            "192.168.77.1",
            "192.168.77.2",
        ];
        argv.extend_from_slice(args);
        let o = relay.run(&argv);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Kill the server with `sig` and wait for it to exit.
    pub fn stop_with(&mut self, sig: &str) {
        let pid = self.pid.take().expect("started");
        signal(pid, sig);
        if let Some(mut c) = self.srv.take_child(pid) {
            let _ = c.wait();
        }
    }

    /// `headnode leases --json` with no server running: address → (mac, state).
    pub fn leases(&self, config: &Path) -> std::collections::BTreeMap<String, (String, String)> {
        let o = headnode_run(&["-c", &config.to_string_lossy(), "leases", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(doc["version"], 1, "{doc:#}");
        let rows = doc["leases"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (s("address"), (s("mac"), s("state")))
            })
            .collect()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid.expect("started"), sig);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server log:\n{}", self.log_text());
        }
    }
}
