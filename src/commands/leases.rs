//! `headnode leases`: reservations and leases, from the config and the lease
//! file (which a running server keeps current: every ACK is written there).
//! `--unknown` and `release` go through the running daemon: the refused
//! clients live in its memory, and only the server may change its leases.

use crate::cli::{LeasesAction, LeasesArgs};
use crate::config::Config;
use crate::control;
use crate::dhcp::leases::LeaseDb;
use crate::dhcp::tables::Tables;
use crate::dhcp::unknown::{CAP, UnknownClient, UnknownList};
use crate::dhcp::{LeaseKey, LeaseView, ReleaseOutcome, lease_views, store, unix_now};
use crate::paths;
use anyhow::Context;
use std::net::Ipv4Addr;
use std::path::Path;

pub fn run(path: &Path, args: &LeasesArgs) -> anyhow::Result<()> {
    if let Some(LeasesAction::Release { lease }) = &args.action {
        return release(lease);
    }
    let cfg = super::load_config(path)?;
    if args.unknown {
        return unknown(&cfg, path, args.json);
    }
    let file = &cfg.dhcp.lease_file;
    let loaded =
        store::read(file).with_context(|| format!("cannot read lease file {}", file.display()))?;
    for p in &loaded.problems {
        eprintln!(
            "warning: {}:{}: {} (line skipped)",
            file.display(),
            p.line,
            p.message
        );
    }
    let tables = Tables::new(&cfg);
    let mut db = LeaseDb::new(tables.pool);
    for r in loaded.records {
        db.put(r);
    }
    let now = unix_now();
    let rows = lease_views(&tables, db.records(), now);
    if args.json {
        let doc = LeasesJson {
            version: JSON_VERSION,
            leases: rows,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", table(&rows, now));
    }
    Ok(())
}

fn no_daemon() -> anyhow::Error {
    anyhow::anyhow!(
        "no headnode daemon is running (no control socket at {}); \
         the refused clients and the leases are the running DHCP server's",
        paths::control_socket().display()
    )
}

/// `headnode leases release IP|MAC`.
fn release(lease: &str) -> anyhow::Result<()> {
    let key = match (
        crate::config::parse_ipv4(lease),
        crate::config::parse_mac(lease),
    ) {
        (Ok(address), _) => LeaseKey::Address { address },
        (_, Ok(mac)) => LeaseKey::Mac { mac: mac.0 },
        (Err(_), Err(_)) => {
            return Err(super::InvalidInput(format!(
                "{lease:?} is neither an IPv4 address nor a MAC; write e.g. 192.168.1.200 or 52:54:00:12:34:56"
            ))
            .into());
        }
    };
    match control::release(&paths::control_socket(), key)? {
        None => Err(no_daemon()),
        Some(ReleaseOutcome::Released { address, mac }) => {
            println!("released {address} ({mac}); it is back in the pool");
            Ok(())
        }
        Some(ReleaseOutcome::NotFound { why }) => Err(super::InvalidInput(why).into()),
    }
}

/// `headnode leases --unknown`.
fn unknown(cfg: &Config, path: &Path, json: bool) -> anyhow::Result<()> {
    let list = control::unknown(&paths::control_socket())?.ok_or_else(no_daemon)?;
    let tables = Tables::new(cfg);
    let addresses = suggest_addresses(&tables, list.clients.len());
    if json {
        let doc = UnknownJson {
            version: JSON_VERSION,
            dropped: list.dropped,
            clients: list
                .clients
                .iter()
                .zip(&addresses)
                .map(|(c, a)| UnknownRow {
                    client: c.clone(),
                    suggested_name: host_name(&c.mac),
                    suggested_address: *a,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", unknown_text(&list, &addresses, path, unix_now()));
    }
    Ok(())
}

/// `headnode leases --unknown --json`.
#[derive(serde::Serialize)]
struct UnknownJson {
    version: u32,
    /// MACs pushed out of the daemon's bounded table.
    dropped: u64,
    clients: Vec<UnknownRow>,
}

#[derive(serde::Serialize)]
struct UnknownRow {
    #[serde(flatten)]
    client: UnknownClient,
    suggested_name: String,
    suggested_address: Option<Ipv4Addr>,
}

/// "node-123456" from the MAC's last three bytes: a valid host label.
fn host_name(mac: &str) -> String {
    let hex: String = mac.chars().filter(char::is_ascii_hexdigit).collect();
    format!("node-{}", &hex[hex.len().saturating_sub(6)..])
}

/// The lowest free addresses of the LAN for `n` new reservations: not the
/// server's, not reserved, not in the pool. `None` once they run out.
fn suggest_addresses(t: &Tables, n: usize) -> Vec<Option<Ipv4Addr>> {
    let mut free = t.net.hosts().filter(|ip| {
        *ip != t.server_ip
            && !t.reserved.contains_key(ip)
            && !t.pool.is_some_and(|p| p.contains(*ip))
    });
    (0..n).map(|_| free.next()).collect()
}

fn unknown_text(
    list: &UnknownList,
    addresses: &[Option<Ipv4Addr>],
    path: &Path,
    now: u64,
) -> String {
    if list.clients.is_empty() && list.dropped == 0 {
        return "no client was refused since the daemon started\n".into();
    }
    let mut rows = vec![[
        "MAC".to_string(),
        "VENDOR".into(),
        "INTERFACE".into(),
        "REQUESTS".into(),
        "FIRST SEEN".into(),
        "LAST SEEN".into(),
    ]];
    for c in &list.clients {
        rows.push([
            c.mac.clone(),
            c.vendor.clone().unwrap_or_else(|| "-".into()),
            c.interface.clone(),
            c.requests.to_string(),
            relative(c.first_seen, now),
            relative(c.last_seen, now),
        ]);
    }
    let mut out = columns(&rows);
    if list.dropped > 0 {
        out.push_str(&format!(
            "({} more were dropped: the daemon keeps the {CAP} heard from last)\n",
            list.dropped
        ));
    }
    if list.clients.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "\n# To serve them, add to {} and run `systemctl reload headnode`:\n",
        path.display()
    ));
    for (c, a) in list.clients.iter().zip(addresses) {
        out.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\nmac = \"{}\"\n",
            host_name(&c.mac),
            c.mac
        ));
        match a {
            Some(a) => out.push_str(&format!("address = \"{a}\"\n")),
            None => out.push_str("# address = ? (no free address left outside the pool)\n"),
        }
    }
    out
}

/// `headnode leases --json`; `version` changes when the shape does.
#[derive(serde::Serialize)]
struct LeasesJson {
    version: u32,
    leases: Vec<LeaseView>,
}

const JSON_VERSION: u32 = 1;

/// "in 3h 2m", "5m ago".
fn relative(t: u64, now: u64) -> String {
    let (d, future) = if t >= now {
        (t - now, true)
    } else {
        (now - t, false)
    };
    let s = if d >= 86_400 {
        format!("{}d {}h", d / 86_400, d % 86_400 / 3600)
    } else if d >= 3600 {
        format!("{}h {}m", d / 3600, d % 3600 / 60)
    } else if d >= 60 {
        format!("{}m", d / 60)
    } else {
        format!("{d}s")
    };
    if future {
        format!("in {s}")
    } else {
        format!("{s} ago")
    }
}

fn table(rows: &[LeaseView], now: u64) -> String {
    let mut lines = vec![[
        "ADDRESS".to_string(),
        "MAC".into(),
        "KIND".into(),
        "NAME".into(),
        "STATE".into(),
        "EXPIRES".into(),
        "LAST SEEN".into(),
    ]];
    for r in rows {
        lines.push([
            r.address.to_string(),
            r.mac.clone(),
            r.kind.as_str().into(),
            r.name.clone().unwrap_or_else(|| "-".into()),
            r.state.as_str().into(),
            r.expires.map_or("-".into(), |t| relative(t, now)),
            r.last_seen.map_or("never".into(), |t| relative(t, now)),
        ]);
    }
    columns(&lines)
}

/// Rows as left-aligned columns two spaces apart.
fn columns<const N: usize>(lines: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for l in lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(1000 + 3 * 3600 + 120, 1000), "in 3h 2m");
        assert_eq!(relative(1000, 1300), "5m ago");
        assert_eq!(relative(1000, 1000), "in 0s");
    }

    fn tables() -> Tables {
        let text = format!(
            "{}[dhcp.pool]\nstart = \"192.168.1.3\"\nend = \"192.168.1.4\"\n\
             [[host]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.168.1.2\"\n",
            crate::config::test_text::INTERFACES
        );
        Tables::new(&crate::config::parse(&text, Path::new("t.toml")).expect("valid"))
    }

    #[test]
    fn suggested_addresses_skip_server_reservations_and_pool() {
        let t = tables();
        let got = suggest_addresses(&t, 2);
        assert!(got.iter().all(|a| a.is_some_and(|a| a != t.server_ip
            && !t.reserved.contains_key(&a)
            && !t.pool.is_some_and(|p| p.contains(a)))));
        assert_ne!(got[0], got[1]);
        assert_eq!(host_name("52:54:00:12:34:56"), "node-123456");
    }

    #[test]
    fn unknown_clients_come_with_a_host_block_that_validates() {
        let list = UnknownList {
            clients: vec![UnknownClient {
                mac: "52:54:00:12:34:56".into(),
                first_seen: 1000,
                last_seen: 1290,
                requests: 4,
                interface: "eth1".into(),
                vendor: Some("QEMU/KVM (virtual)".into()),
            }],
            dropped: 3,
        };
        let t = tables();
        let addresses = suggest_addresses(&t, 1);
        let text = unknown_text(
            &list,
            &addresses,
            Path::new("/etc/headnode/headnode.toml"),
            1300,
        );
        assert!(
            text.contains("52:54:00:12:34:56  QEMU/KVM (virtual)  eth1       4         5m ago"),
            "{text}"
        );
        assert!(text.contains("3 more were dropped"), "{text}");
        // The block pasted after the config is still a valid config.
        let block = &text[text.find("[[host]]").expect("block")..];
        let config = format!(
            "{}[dhcp.pool]\nstart = \"192.168.1.3\"\nend = \"192.168.1.4\"\n{block}",
            crate::config::test_text::INTERFACES
        );
        if let Err(e) = crate::config::parse(&config, Path::new("t.toml")) {
            panic!("{e}\n{config}");
        }
    }
}
