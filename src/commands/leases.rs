//! `headnode leases`: reservations and leases, from the config and the lease
//! file (which a running server keeps current: every ACK is written there).

use crate::cli::JsonArgs;
use crate::dhcp::leases::LeaseDb;
use crate::dhcp::tables::Tables;
use crate::dhcp::{LeaseView, lease_views, store, unix_now};
use anyhow::Context;
use std::path::Path;

pub fn run(path: &Path, args: &JsonArgs) -> anyhow::Result<()> {
    let cfg = super::load_config(path)?;
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
    let mut width = [0usize; 7];
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
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
}
