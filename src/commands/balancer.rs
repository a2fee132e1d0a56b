//! The balancer (IPVS) part of `headnode apply` (its plan section is
//! `plan::Plan::ipvs`). The firewall's ruleset and sysctls come before it in
//! apply (sysctls → ruleset → IPVS), so the marks IPVS matches on exist when
//! it starts.

use crate::config::Config;
use crate::config::model::Backend;
use crate::health::HealthMap;
use crate::ipvs;
use std::sync::Arc;

/// Reconcile IPVS with `cfg` (its public address already resolved) and
/// `health` (real servers down get weight 0) and print what changed.
/// `apply` calls it after the ruleset.
pub fn apply(cfg: &Arc<Config>, health: &HealthMap) -> anyhow::Result<()> {
    let report = match ipvs::reconcile(cfg, health) {
        Ok(r) => r,
        Err(ipvs::Error::NoIpvs(why)) if cfg.balancer.backend == Backend::Auto => {
            tracing::warn!(%why, "the kernel has no IPVS; balancer backend auto leaves IPVS alone");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for (k, v) in &report.sysctls {
        println!("sysctl {k} = {v}");
    }
    // One line per change is what an admin wants to read, up to a point.
    const SHOW: usize = 50;
    print!(
        "{}",
        ipvs::render_ops(&report.applied[..report.applied.len().min(SHOW)])
    );
    if report.applied.len() > SHOW {
        println!("... and {} more", report.applied.len() - SHOW);
    }
    if report.is_noop() {
        println!(
            "ipvs: no changes (table read in {} ms)",
            report.read.as_millis()
        );
    } else {
        println!(
            "ipvs: {} changes (table read in {} ms, changes made in {} ms)",
            report.applied.len() + report.failed.len(),
            report.read.as_millis(),
            report.write.as_millis()
        );
    }
    if !report.failed.is_empty() {
        for (op, e) in &report.failed {
            eprintln!("ipvs: ipvsadm {op}: {e}");
        }
        anyhow::bail!("{} IPVS change(s) failed", report.failed.len());
    }
    Ok(())
}
