//! `headnode apply [--confirm DURATION] [--force]`, `headnode confirm`, and
//! the detached rollback timer that `--confirm` starts.
//!
//! While the daemon runs it is the only writer: `apply` plans and checks
//! here (config, IPVS, the SSH guard), then asks the daemon to put the
//! config in effect, and `confirm` goes to the daemon, which owns the
//! deadline. Otherwise its own reconcile would undo the change, or repair a
//! rollback away.

use super::InvalidInput;
use crate::cli::ApplyArgs;
use crate::config::Config;
use crate::config::model::Backend;
use crate::control::{self, ApplyOutcome, ConfirmOutcome};
use crate::daemon::confirm::Held;
use crate::firewall::{nft::Nft, rollback};
use crate::health::HealthMap;
use crate::ipvs;
use crate::plan::{self, IpvsLive, RulesetState};
use crate::sysctl::Sysctls;
use anyhow::Context;
use nftables::schema::Nftables;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

pub fn run(path: &Path, args: &ApplyArgs) -> anyhow::Result<()> {
    let confirm = match &args.confirm {
        Some(d) => Some(
            crate::config::parse_duration(d)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    InvalidInput(format!(
                        "--confirm {d}: not a duration; write e.g. 120s or 5m"
                    ))
                })?,
        ),
        None => None,
    };
    let cfg = std::sync::Arc::new(super::load_resolved(path)?);
    let nft = Nft::from_env();
    let sysctls = Sysctls::default();
    {
        let lock = rollback::Lock::take()?;
        if let Some(p) = rollback::load(&lock)? {
            if rollback::now_unix() < p.deadline_unix {
                return Err(InvalidInput(
                    "an apply --confirm is waiting for `headnode confirm`; confirm it (or let it roll back) first".into(),
                )
                .into());
            }
            // Its timer died (e.g. killed): carry out the overdue rollback now.
            rollback::roll_back(&lock, &p, &nft)?;
        }
    }
    let live = plan::live::observe(&cfg, &nft, &sysctls, crate::daemon::live_health())?;
    let plan = plan::compute(&cfg, &live)?;
    let balances_ipvs = plan.backend == Backend::Ipvs && !cfg.balancer.services.is_empty();
    // Fail before changing anything rather than leave a half-applied box.
    match (&live.ipvs, balances_ipvs) {
        (IpvsLive::NoIpvs(why), true) => return Err(ipvs::Error::NoIpvs(why.clone()).into()),
        (IpvsLive::Unreadable(why), true) => anyhow::bail!("IPVS: {why}"),
        _ => {}
    }
    for l in &plan.lockouts {
        if !args.force {
            return Err(InvalidInput(format!(
                "refusing to apply: {l}; add a rule for it, or use --force (and --confirm) to apply anyway"
            ))
            .into());
        }
        tracing::warn!("--force: {l}");
    }
    let socket = crate::paths::control_socket();
    if control::listening(&socket)? {
        return through_daemon(&socket, path, &plan, confirm, args.force);
    }
    // A confirm window a stopped daemon still held would roll this apply
    // back when the daemon starts: this apply supersedes it.
    let state = crate::paths::state_dir();
    if Held::load(&state).is_some() {
        Held::remove(&state);
        println!("the pending apply --confirm of the stopped daemon is superseded by this apply");
    }
    apply_ruleset(&nft, &plan, confirm)?;
    // Forwarding only once the firewall is in place: a box that routes
    // before it filters is open for that moment.
    sysctls.apply(&plan.sysctls)?;
    if plan.sysctls.is_empty() {
        println!("sysctls: unchanged");
    } else {
        println!("sysctls: {} changed", plan.sysctls.len());
    }
    if balances_ipvs {
        // After the ruleset, so the marks IPVS matches on are already set.
        apply_ipvs(&cfg, &live.health)?;
    }
    Ok(())
}

fn through_daemon(
    socket: &Path,
    path: &Path,
    plan: &plan::Plan,
    confirm: Option<std::time::Duration>,
    force: bool,
) -> anyhow::Result<()> {
    let outcome = control::apply(socket, path, confirm, force)?.ok_or_else(|| {
        anyhow::anyhow!("the headnode daemon stopped while applying; run apply again")
    })?;
    match outcome {
        ApplyOutcome::Applied { confirm_within_s } => {
            if plan.firewall.state == RulesetState::Unchanged {
                println!("ruleset: unchanged (table inet headnode already matches)");
            } else {
                println!("ruleset: applied by the running daemon (table inet headnode)");
            }
            if let Some(s) = confirm_within_s {
                println!(
                    "run `headnode confirm` within {s}s or the daemon goes back to the config it ran before"
                );
            }
            println!(
                "sysctls and balancer: set by the running daemon (`headnode status` shows them)"
            );
            Ok(())
        }
        ApplyOutcome::Rejected { errors } => Err(InvalidInput(errors).into()),
        ApplyOutcome::Failed { error } => Err(anyhow::anyhow!(
            "the running daemon could not put the config in place: {error}; it keeps the previous config and firewall"
        )),
        ApplyOutcome::Refused { why } => {
            Err(InvalidInput(format!("refusing to apply: {why}")).into())
        }
    }
}

/// Reconcile IPVS with `cfg` (its public address already resolved) and
/// `health` (real servers down get weight 0) and print what changed.
/// `apply` calls it after the ruleset.
fn apply_ipvs(cfg: &Arc<Config>, health: &HealthMap) -> anyhow::Result<()> {
    let report = match ipvs::reconcile_live(cfg, health) {
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

fn apply_ruleset(
    nft: &Nft,
    plan: &plan::Plan,
    confirm: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    if plan.firewall.state == RulesetState::Unchanged {
        println!("ruleset: unchanged (table inet headnode already matches)");
        return Ok(());
    }
    let Some(rs) = &plan.firewall.ruleset else {
        let existed = nft.delete_table()?;
        println!(
            "ruleset: firewall disabled, {}",
            if existed { "table removed" } else { "no table" }
        );
        return Ok(());
    };
    // Held from the load until the listing is recorded, so that no other
    // headnode load (the daemon, a rollback timer) falls in between.
    let lock = rollback::Lock::take()?;
    if let Some(d) = confirm {
        let pending = rollback::Pending {
            token: format!("{}-{}", std::process::id(), rollback::now_unix()),
            deadline_unix: rollback::now_unix() + d.as_secs().max(1),
            snapshot: nft.snapshot()?,
        };
        // State and timer first: if this process dies after loading the
        // ruleset, the rollback still happens.
        rollback::save(&lock, &pending)?;
        spawn_timer(&pending.token)?;
        if let Err(e) = nft.apply(rs) {
            rollback::remove(&lock)?;
            return Err(e).context("the previous ruleset stays live");
        }
        record(nft, rs, &lock);
        tracing::info!(
            rules = rule_count(rs),
            "ruleset applied, waiting for confirm"
        );
        println!(
            "ruleset: applied; run `headnode confirm` within {}s or it is rolled back",
            d.as_secs()
        );
    } else {
        nft.apply(rs).context("the previous ruleset stays live")?;
        record(nft, rs, &lock);
        tracing::info!(rules = rule_count(rs), "ruleset applied");
        println!(
            "ruleset: applied (table inet headnode, {} rules)",
            rule_count(rs)
        );
    }
    Ok(())
}

/// Record what the load produced, so that the next apply finds it unchanged
/// (a rollback makes the live table differ from the record, so the apply
/// after it loads again). Failing to record costs one reload next time.
fn record(nft: &Nft, rs: &Nftables, _lock: &rollback::Lock) {
    let dir = crate::paths::state_dir();
    let saved = nft
        .read_back(rs)
        .map_err(anyhow::Error::from)
        .and_then(|a| Ok(a.save(&dir)?));
    if let Err(e) = saved {
        tracing::warn!(
            "cannot record the loaded ruleset in {}: {e:#}; the next apply loads it again",
            dir.display()
        );
    }
}

fn rule_count(rs: &Nftables) -> usize {
    use nftables::schema::{NfCmd, NfListObject, NfObject};
    rs.objects
        .iter()
        .filter(|o| matches!(o, NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(_)))))
        .count()
}

/// Start the rollback timer in its own session, so it outlives this process
/// and the terminal (or SSH session) it runs in.
fn spawn_timer(token: &str) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let dir = crate::paths::state_dir();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("rollback.log"))
        .with_context(|| format!("cannot open {}", dir.join("rollback.log").display()))?;
    let exe = std::env::current_exe().context("cannot find the headnode binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["rollback-timer", token])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().context("cannot start the rollback timer")?;
    Ok(())
}

pub fn confirm() -> anyhow::Result<()> {
    // An apply made through the daemon is pending there; one made without
    // a daemon (before it started) is in the rollback state below.
    if control::confirm(&crate::paths::control_socket())? == Some(ConfirmOutcome::Confirmed) {
        println!("confirmed: the running daemon keeps the new config");
        return Ok(());
    }
    // Held by a daemon that has stopped since: confirming keeps it from
    // rolling back when it starts again.
    let state = crate::paths::state_dir();
    if !control::listening(&crate::paths::control_socket())? && Held::load(&state).is_some() {
        Held::remove(&state);
        println!("confirmed: the daemon runs the new config when it starts");
        return Ok(());
    }
    let nft = Nft::from_env();
    let lock = rollback::Lock::take()?;
    match rollback::load(&lock)? {
        None => {
            Err(InvalidInput("nothing to confirm: no apply --confirm is pending".into()).into())
        }
        Some(p) if rollback::now_unix() >= p.deadline_unix => {
            rollback::roll_back(&lock, &p, &nft)?;
            Err(anyhow::anyhow!(
                "too late: the confirm deadline had passed, the previous ruleset is restored"
            ))
        }
        Some(_) => {
            rollback::remove(&lock)?;
            tracing::info!("ruleset confirmed");
            println!("confirmed: the new ruleset stays");
            Ok(())
        }
    }
}

pub fn rollback_timer(token: &str) -> anyhow::Result<()> {
    Ok(rollback::run_timer(token, &Nft::from_env())?)
}
