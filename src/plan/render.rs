//! How a plan is shown: `headnode plan` as text or JSON. `preview` is the
//! one step here that runs `nft`: the ruleset in nft's own normal form (in a
//! scratch network namespace) and `nft -c`, which only nft itself can give.

use super::{IpvsPlan, Plan, RulesetState};
use crate::firewall::nft::Nft;
use crate::ipvs;
use serde::Serialize;

/// What `nft` shows of the desired ruleset, for the admin.
#[derive(Debug, Serialize)]
pub struct Preview {
    /// The ruleset as nft lists it (loaded into a scratch namespace), when that was possible.
    pub text: Option<String>,
    /// Why `text` is missing (no root, no nft, no permission to create a namespace).
    pub text_unavailable: Option<String>,
    /// Line diff live → desired (or → as loaded, for drift), when both are known.
    pub diff: Option<String>,
    /// `nft -c` result: "ok", "skipped: ..." or the error (naming the rule).
    pub check: String,
}

/// Ask nft for its view of the plan's ruleset and fill in `plan.firewall.preview`.
pub fn preview(plan: &mut Plan, nft: &Nft) {
    let fw = &plan.firewall;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Checking and the scratch namespace need CAP_NET_ADMIN; the namespace
    // also CAP_SYS_ADMIN, which the admin's shell may not have (containers).
    let without = if !nft.available() {
        Some("nft is not installed")
    } else if !root {
        Some("needs root")
    } else {
        None
    };
    let text = match (&fw.ruleset, without) {
        (None, _) => Ok(String::new()),
        (Some(_), Some(why)) => Err(format!("nft syntax {why}")),
        (Some(rs), None) => nft
            .canonical_text(rs)
            .map_err(|e| format!("nft syntax unavailable: {e}")),
    };
    let check = match (&fw.ruleset, without) {
        (_, Some(why)) => format!("skipped: {why}"),
        (None, None) => "skipped: no ruleset".to_string(),
        (Some(rs), None) => match nft.check(rs) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        },
    };
    // Against the desired text when nft could show it, else (drift) against
    // what headnode loaded.
    let diff = match (&fw.state, &text, &fw.loaded) {
        (RulesetState::Changed, Ok(want), _) => {
            Some(line_diff(fw.live.as_deref().unwrap_or_default(), want))
        }
        (RulesetState::Changed, Err(_), Some(loaded)) => {
            Some(line_diff(fw.live.as_deref().unwrap_or_default(), loaded))
        }
        _ => None,
    };
    let (text, text_unavailable) = match text {
        Ok(t) => (Some(t).filter(|t| !t.is_empty()), None),
        Err(e) => (None, Some(e)),
    };
    plan.firewall.preview = Some(Preview {
        text,
        text_unavailable,
        diff,
        check,
    });
}

impl Plan {
    /// `headnode plan`'s text: with the preview when `preview` ran.
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
        let pv = fw.preview.as_ref();
        let text = pv.and_then(|p| p.text.as_ref());
        o.push_str("\nfirewall ruleset (table inet headnode):\n");
        match (text, &fw.ruleset) {
            (Some(t), _) => o.push_str(t),
            (None, Some(rs)) => {
                let why = pv
                    .and_then(|p| p.text_unavailable.as_deref())
                    .unwrap_or("nft syntax unavailable");
                o.push_str(&format!("  ({why}; the JSON that would be loaded:)\n"));
                o.push_str(&serde_json::to_string_pretty(rs).unwrap_or_default());
                o.push('\n');
            }
            (None, None) => o.push_str("  none (firewall disabled)\n"),
        }
        if let Some(p) = pv {
            o.push_str(&format!("\nnft -c: {}\n", p.check));
        }
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
                match pv.and_then(|p| p.diff.as_deref()) {
                    Some("") => o.push_str(&format!(
                        "live: {why}; nft lists the same rules, apply loads them once to record them\n"
                    )),
                    Some(d) if text.is_some() => {
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
        for l in &self.lockouts {
            o.push_str(&format!("ssh: {l}; apply refuses without --force\n"));
        }
        if let Some(ipvs) = &self.ipvs {
            o.push_str("\nipvs:\n");
            o.push_str(&ipvs_text(ipvs));
        }
        o
    }
}

/// The IPVS section, in the `ipvsadm -Ln` form admins already read.
fn ipvs_text(p: &IpvsPlan) -> String {
    let mut out = String::from(
        "IPVS (desired)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight\n",
    );
    out.push_str(&ipvs::render_table(&p.desired));
    for s in &p.sysctls {
        out.push_str(&format!("\nsysctl {} = {}\n  {}\n", s.key, s.value, s.why));
    }
    let note = p.live_unreadable.as_ref().map_or(String::new(), |e| {
        format!(" (live table not readable: {e}; changes from an empty table)")
    });
    out.push_str(&format!("\nIPVS changes{note}:\n"));
    if p.ops.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&ipvs::render_ops(&p.ops));
    }
    out
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
