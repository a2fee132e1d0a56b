//! `headnode plan`: everything `apply` would do, computed without changing
//! anything. Sections: balancing backend choice, sysctl changes, the firewall
//! ruleset (nft syntax and JSON), the difference to what is live, and nft's
//! own check. More sections (the IPVS plan) are added as fields here.

use crate::balancer;
use crate::config::Config;
use crate::config::model::Backend;
use crate::firewall::applied::{self, Applied, Comparison};
use crate::firewall::{self, NftBalancer, nft::Nft};
use crate::health::{self, HealthMap};
use crate::sysctl::{self, Sysctls};
use nftables::schema::Nftables;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Plan {
    pub backend: Backend,
    pub backend_reason: String,
    pub notes: Vec<String>,
    pub sysctls: Vec<sysctl::Change>,
    pub firewall: FirewallPlan,
    /// The IPVS section (`ipvs::plan_text`) when IPVS balances.
    pub ipvs: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct FirewallPlan {
    /// `None` when the firewall is disabled (apply removes headnode's table).
    pub ruleset: Option<Nftables<'static>>,
    /// The ruleset as nft lists it (loaded into a scratch namespace), when that was possible.
    pub text: Option<String>,
    /// Why `text` is missing (no root, no nft, no permission to create a namespace).
    pub text_unavailable: Option<String>,
    /// Headnode's live table (`nft -s list table inet headnode`); `None` when absent.
    pub live: Option<String>,
    pub state: RulesetState,
    /// Why apply would load the ruleset (when `state` is changed).
    pub reason: Option<String>,
    /// Line diff live → desired (or → as loaded, for drift), when both are known.
    pub diff: Option<String>,
    /// `nft -c` result: "ok", "skipped: ..." or the error (naming the rule).
    pub check: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "reason")]
pub enum RulesetState {
    Unchanged,
    Changed,
    /// Could not compare (no nft, not root): apply loads it.
    Unknown(String),
}

/// The balancer loaded with the ruleset when nftables balances: every real
/// server up except those `health` has down.
pub fn nft_balancer(cfg: &Config, backend: Backend, health: &HealthMap) -> Option<NftBalancer> {
    if backend != Backend::Nftables || cfg.balancer.services.is_empty() {
        return None;
    }
    let mut bal = NftBalancer::all_up(cfg);
    for (t, state) in health.iter() {
        let real = firewall::RealBackend {
            address: t.addr,
            port: t.port,
        };
        bal.set_up(&t.service, real, *state != health::State::Down);
    }
    Some(bal)
}

/// How much of the plan to compute: `apply` skips what it does not need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Everything, for the admin: nft text, `nft -c`, diff.
    Show,
    /// Only what decides whether to load: the comparison with the live table
    /// (loading is one transaction, so a separate `nft -c` adds nothing).
    Apply,
}

/// Build the plan. `cfg` must have its public address resolved.
/// `health` is what the running daemon's checks see (`daemon::live_health`):
/// a real server it drained stays drained in the plan and in what apply loads.
pub fn build(
    cfg: &Config,
    nft: &Nft,
    sysctls: &Sysctls,
    health: &HealthMap,
    purpose: Purpose,
) -> anyhow::Result<Plan> {
    let (backend, backend_reason) = balancer::select_backend(cfg);
    let mut notes = Vec::new();
    for (t, state) in health.iter() {
        if *state == health::State::Down {
            notes.push(format!(
                "service {}: real server {}:{} is down by the running daemon's health checks; kept drained",
                t.service, t.addr, t.port
            ));
        }
    }
    if backend == Backend::Nftables {
        for s in &cfg.balancer.services {
            let (how, note) = firewall::scheduler_mode(&s.scheduler);
            notes.push(format!("service {}: {} by {how}", s.name, s.scheduler));
            if let Some(n) = note {
                notes.push(format!("service {}: {n}", s.name));
            }
        }
    }
    let sysctl_changes = sysctls.plan(&cfg.sysctls)?;
    let bal = nft_balancer(cfg, backend, health);
    let ruleset = if cfg.firewall.enabled {
        Some(firewall::ruleset(cfg, bal.as_ref())?)
    } else {
        notes.push("firewall.enabled = false: headnode's table is removed".into());
        None
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Listing, checking and the scratch namespace all need CAP_NET_ADMIN.
    let without = if !nft.available() {
        "nft is not installed"
    } else if !root {
        "needs root"
    } else {
        ""
    };
    let have_nft = without.is_empty();
    let live = if have_nft { nft.live_text() } else { Ok(None) };
    // Whether the live table is what the config wants is decided by the
    // record of the last load, as apply and the daemon decide it.
    let comparison = match (&ruleset, &live) {
        (_, Err(e)) => Err(format!("cannot list the live table: {e}")),
        (Some(_), Ok(_)) if !have_nft => Err(without.to_string()),
        (Some(rs), Ok(live)) => {
            let record = Applied::load(&crate::paths::state_dir());
            let fp = applied::fingerprint(rs)?;
            Ok((
                applied::compare(record.as_ref(), &fp, live.as_deref()),
                record,
            ))
        }
        (None, Ok(None)) => Ok((Comparison::Unchanged, None)),
        // Firewall disabled: apply removes the table.
        (None, Ok(Some(_))) => Ok((Comparison::ConfigChanged, None)),
    };
    // nft syntax only for showing: the scratch namespace needs CAP_SYS_ADMIN,
    // and the admin's shell may not have it (containers, sandboxes).
    let text = match (&ruleset, have_nft) {
        _ if purpose == Purpose::Apply => Err("not needed by apply".to_string()),
        (Some(rs), true) => nft
            .canonical_text(rs)
            .map_err(|e| format!("nft syntax unavailable: {e}")),
        (Some(_), false) => Err(format!("nft syntax {without}")),
        (None, _) => Ok(String::new()),
    };
    let check = match (&ruleset, have_nft) {
        _ if purpose == Purpose::Apply => "skipped: apply loads in one transaction".to_string(),
        (_, false) => format!("skipped: {without}"),
        (None, true) => "skipped: no ruleset".to_string(),
        (Some(rs), true) => match nft.check(rs) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        },
    };
    let live = live.ok().flatten();
    let (state, reason, diff) = match comparison {
        Err(e) => (RulesetState::Unknown(e), None, None),
        Ok((Comparison::Unchanged, _)) => (RulesetState::Unchanged, None, None),
        Ok((c, record)) => {
            let have = live.as_deref().unwrap_or_default();
            // Against the desired text when nft could show it, else (drift)
            // against what headnode loaded.
            let diff = match (&text, &record) {
                _ if purpose == Purpose::Apply => None,
                (Ok(want), _) => Some(line_diff(have, want)),
                (Err(_), Some(r)) if c == Comparison::LiveChanged => {
                    Some(line_diff(have, &r.listing))
                }
                (Err(_), _) => None,
            };
            (RulesetState::Changed, c.reason().map(str::to_string), diff)
        }
    };
    let (text, text_unavailable) = match text {
        Ok(t) => (Some(t).filter(|t| !t.is_empty()), None),
        Err(e) => (None, Some(e).filter(|_| purpose == Purpose::Show)),
    };
    Ok(Plan {
        backend,
        backend_reason,
        notes,
        sysctls: sysctl_changes,
        firewall: FirewallPlan {
            ruleset,
            text,
            text_unavailable,
            live,
            state,
            reason,
            diff,
            check,
        },
        // Apply reconciles IPVS itself (reading the table once there).
        ipvs: (purpose == Purpose::Show
            && backend == Backend::Ipvs
            && !cfg.balancer.services.is_empty())
        .then(|| {
            crate::ipvs::plan_text(cfg, health)
                .lines()
                .map(str::to_string)
                .collect()
        }),
    })
}

impl Plan {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let backend = format!("{:?}", self.backend).to_lowercase();
        o.push_str(&format!(
            "balancer backend: {backend} ({})\n",
            self.backend_reason
        ));
        for n in &self.notes {
            o.push_str(&format!("  note: {n}\n"));
        }
        o.push_str("\nsysctls:\n");
        if self.sysctls.is_empty() {
            o.push_str("  no changes\n");
        }
        for c in &self.sysctls {
            o.push_str(&format!(
                "  {} = {} (now {})\n",
                c.key,
                c.to,
                c.from.as_deref().unwrap_or("missing")
            ));
        }
        let fw = &self.firewall;
        o.push_str("\nfirewall ruleset (table inet headnode):\n");
        match (&fw.text, &fw.ruleset) {
            (Some(t), _) => o.push_str(t),
            (None, Some(rs)) => {
                let why = fw
                    .text_unavailable
                    .as_deref()
                    .unwrap_or("nft syntax unavailable");
                o.push_str(&format!("  ({why}; the JSON that would be loaded:)\n"));
                o.push_str(&serde_json::to_string_pretty(rs).unwrap_or_default());
                o.push('\n');
            }
            (None, None) => o.push_str("  none (firewall disabled)\n"),
        }
        o.push_str(&format!("\nnft -c: {}\n", fw.check));
        match &fw.state {
            RulesetState::Unchanged => o.push_str("live: unchanged, apply will not touch it\n"),
            RulesetState::Changed if fw.live.is_none() => {
                o.push_str("live: no headnode table yet, apply creates it\n")
            }
            RulesetState::Changed if fw.ruleset.is_none() => {
                o.push_str("live: headnode's table is loaded, apply removes it\n")
            }
            RulesetState::Changed => {
                let why = fw.reason.as_deref().unwrap_or("differs");
                match fw.diff.as_deref() {
                    Some("") => o.push_str(&format!(
                        "live: {why}; nft lists the same rules, apply loads them once to record them\n"
                    )),
                    Some(d) if fw.text.is_some() => {
                        o.push_str(&format!("live: {why}; apply loads it (- live, + desired):\n"));
                        o.push_str(d);
                    }
                    Some(d) => {
                        o.push_str(&format!("live: {why}; apply loads it (- live, + as loaded):\n"));
                        o.push_str(d);
                    }
                    None => o.push_str(&format!("live: {why}; apply loads it\n")),
                }
            }
            RulesetState::Unknown(why) => o.push_str(&format!("live: not compared ({why})\n")),
        }
        if let Some(lines) = &self.ipvs {
            o.push_str("\nipvs:\n");
            for l in lines {
                o.push_str(&format!("{l}\n"));
            }
        }
        o
    }
}

/// A plain line diff (longest common subsequence), only the changed lines
/// with their neighbours' context left out; big tables get a summary.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return format!(
            "  ({} live lines, {} desired lines; too large to diff)\n",
            a.len(),
            b.len()
        );
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::line_diff;

    #[test]
    fn diff_shows_only_changed_lines() {
        assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), "- b\n+ x\n");
        assert_eq!(line_diff("", "a\n"), "+ a\n");
        assert_eq!(line_diff("a\n", "a\n"), "");
    }
}
