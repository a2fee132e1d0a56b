//! `headnode plan`: everything `apply` would do, computed without changing
//! anything. Sections: balancing backend choice, sysctl changes, the firewall
//! ruleset (nft syntax and JSON), the difference to what is live, and nft's
//! own check. More sections (the IPVS plan) are added as fields here.

use crate::balancer;
use crate::config::Config;
use crate::config::model::Backend;
use crate::firewall::{self, NftBalancer, nft::Nft};
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
    /// Headnode's live table (`nft -s list table inet headnode`); `None` when absent.
    pub live: Option<String>,
    pub state: RulesetState,
    /// Line diff live → desired, when both are known.
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

/// The balancer state `apply` loads: all reals up when nftables balances.
pub fn nft_balancer(cfg: &Config, backend: Backend) -> Option<NftBalancer> {
    (backend == Backend::Nftables && !cfg.balancer.services.is_empty())
        .then(|| NftBalancer::all_up(cfg))
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
pub fn build(cfg: &Config, nft: &Nft, sysctls: &Sysctls, purpose: Purpose) -> anyhow::Result<Plan> {
    let (backend, backend_reason) = balancer::select_backend(cfg);
    let mut notes = Vec::new();
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
    let bal = nft_balancer(cfg, backend);
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
    let no_live_table = matches!(live, Ok(None));
    let text = match (&ruleset, have_nft) {
        // Nothing live to compare with: apply loads it anyway.
        (Some(_), true) if purpose == Purpose::Apply && no_live_table => {
            Err("no headnode table is loaded".to_string())
        }
        // plan writes nothing, so only apply keeps the normal form cached.
        (Some(rs), true) if purpose == Purpose::Apply => nft
            .canonical_text_cached(rs, &crate::paths::state_dir())
            .map_err(|e| e.to_string()),
        (Some(rs), true) => nft.canonical_text(rs).map_err(|e| e.to_string()),
        (Some(_), false) => Err(without.to_string()),
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
    let (state, diff, text, live) = match (text, live) {
        (Ok(want), Ok(live)) => {
            let have = live.clone().unwrap_or_default();
            let state = if want == have {
                RulesetState::Unchanged
            } else {
                RulesetState::Changed
            };
            let diff = (state == RulesetState::Changed && purpose == Purpose::Show)
                .then(|| line_diff(&have, &want));
            (state, diff, Some(want).filter(|t| !t.is_empty()), live)
        }
        (Err(e), live) => (RulesetState::Unknown(e), None, None, live.ok().flatten()),
        (Ok(want), Err(e)) => (
            RulesetState::Unknown(format!("cannot list the live table: {e}")),
            None,
            Some(want),
            None,
        ),
    };
    Ok(Plan {
        backend,
        backend_reason,
        notes,
        sysctls: sysctl_changes,
        firewall: FirewallPlan {
            ruleset,
            text,
            live,
            state,
            diff,
            check,
        },
        ipvs: (backend == Backend::Ipvs && !cfg.balancer.services.is_empty()).then(|| {
            crate::ipvs::plan_text(cfg, &crate::health::HealthMap::default())
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
                o.push_str("  (nft syntax needs root and nft; the JSON that would be loaded:)\n");
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
            RulesetState::Changed => {
                o.push_str("live: differs (- live, + desired):\n");
                o.push_str(fw.diff.as_deref().unwrap_or(""));
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
