//! What `apply` will do, decided without touching anything: observe →
//! compute → render.
//!
//! - `live::observe` is the one I/O step: it reads the nft table and the
//!   record of the last load, the sysctls the config names, the IPVS table
//!   (or why there is none), the SSH sessions into the box and the running
//!   daemon's health view, into a [`Live`].
//! - [`compute`] is pure: config + `Live` → [`Plan`]. It decides the
//!   balancing backend, the sysctl changes, the ruleset and whether it must be
//!   loaded, the IPVS table and the operations that reach it, and which SSH
//!   sessions the new ruleset would lock out. Unit tests drive it with
//!   hand-made `Live` values, without root or `nft`.
//! - `render` shows a plan (text or JSON); `render::preview` adds what only
//!   `nft` itself can show (its normal form, `nft -c`).
//!
//! `plan` and `apply` use the whole of it; the daemon and `status` use
//! [`firewall_state`], the one place that decides whether the live table is
//! what the config wants.

pub mod live;
pub mod render;

pub use live::{IpvsLive, Live, NftLive};

use crate::config::Config;
use crate::config::model::Backend;
use crate::firewall::applied::{self, Comparison};
use crate::firewall::guard::{self, SshConnection};
use crate::firewall::{self, NftBalancer};
use crate::health::{self, HealthMap};
use crate::ipvs;
use crate::sysctl;
use nftables::schema::Nftables;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Plan {
    pub backend: Backend,
    pub backend_reason: String,
    pub notes: Vec<String>,
    pub sysctls: Vec<sysctl::Change>,
    pub firewall: FirewallPlan,
    /// When IPVS balances: the table the config wants and how to get there.
    pub ipvs: Option<IpvsPlan>,
    /// SSH sessions into the box that the new ruleset would not let back
    /// in; `apply` refuses unless forced.
    pub lockouts: Vec<Lockout>,
}

#[derive(Debug, Serialize)]
pub struct FirewallPlan {
    /// `None` when the firewall is disabled (apply removes headnode's table).
    pub ruleset: Option<Nftables<'static>>,
    /// Headnode's live table (`nft -s list table inet headnode`); `None` when absent.
    pub live: Option<String>,
    pub state: RulesetState,
    /// Why apply would load the ruleset (when `state` is changed).
    pub reason: Option<String>,
    /// The table as headnode last loaded it, when the live one drifted from it.
    #[serde(skip)]
    pub loaded: Option<String>,
    /// What only nft can show (`render::preview`, for `headnode plan`).
    #[serde(flatten)]
    pub preview: Option<render::Preview>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "reason")]
pub enum RulesetState {
    Unchanged,
    Changed,
    /// Could not compare (no nft, not root): apply loads it.
    Unknown(String),
}

/// The IPVS part of a plan: the desired table, the operations from the live
/// table to it (from an empty one when the live table could not be read),
/// and the IPVS sysctls.
#[derive(Debug, Serialize)]
pub struct IpvsPlan {
    #[serde(serialize_with = "as_ipvsadm_table")]
    pub desired: ipvs::Table,
    /// Why the live table could not be read; the operations then start from an empty table.
    pub live_unreadable: Option<String>,
    #[serde(serialize_with = "as_ipvsadm_ops")]
    pub ops: Vec<ipvs::Op>,
    pub sysctls: Vec<IpvsSysctl>,
}

#[derive(Debug, Serialize)]
pub struct IpvsSysctl {
    pub key: String,
    pub value: String,
    pub why: &'static str,
}

/// An SSH session the new ruleset would not accept again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lockout {
    pub session: SshConnection,
    /// The rule or policy that decides.
    pub why: String,
}

fn as_ipvsadm_table<S: serde::Serializer>(t: &ipvs::Table, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ipvs::render_table(t).lines())
}

fn as_ipvsadm_ops<S: serde::Serializer>(ops: &[ipvs::Op], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ops.iter().map(|op| format!("ipvsadm {op}")))
}

/// The SSH `sessions` that `cfg`'s ruleset would not accept again. Pure;
/// `apply`, `init`, the daemon's start and its reloads all ask it.
pub fn lockouts(cfg: &Config, sessions: &[SshConnection]) -> Vec<Lockout> {
    if !cfg.firewall.enabled {
        return Vec::new();
    }
    sessions
        .iter()
        .filter_map(|c| match guard::ssh_allowed(cfg, c) {
            (true, _) => None,
            (false, why) => Some(Lockout {
                session: c.clone(),
                why,
            }),
        })
        .collect()
}

impl std::fmt::Display for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.session;
        write!(
            f,
            "the new ruleset would not accept a new SSH connection from {} to {} port {} ({})",
            c.client, c.server, c.port, self.why
        )
    }
}

/// The balancer loaded with the ruleset when nftables balances: every real
/// server up except those `health` has down.
pub fn nft_balancer(cfg: &Config, backend: Backend, health: &HealthMap) -> Option<NftBalancer> {
    if backend != Backend::Nftables || cfg.balancer.services.is_empty() {
        return None;
    }
    let mut bal = NftBalancer::all_up(cfg);
    for (t, state) in health.iter() {
        let real = firewall::Endpoint {
            address: t.addr,
            port: t.port,
        };
        bal.set_up(&t.service, real, *state != health::State::Down);
    }
    Some(bal)
}

/// The ruleset the config wants with `backend` balancing and the real
/// servers `health` has down drained; `None` when the firewall is disabled.
pub fn desired_ruleset(
    cfg: &Config,
    backend: Backend,
    health: &HealthMap,
) -> Option<Nftables<'static>> {
    cfg.firewall.enabled.then(|| {
        let bal = nft_balancer(cfg, backend, health);
        firewall::ruleset(cfg, bal.as_ref())
    })
}

/// The backend that balances, and why: the configured one, or for `auto`
/// IPVS when the kernel has it.
pub fn select_backend(configured: Backend, ipvs: &IpvsLive) -> (Backend, String) {
    match configured {
        Backend::Ipvs => (Backend::Ipvs, "balancer.backend = \"ipvs\"".into()),
        Backend::Nftables => (Backend::Nftables, "balancer.backend = \"nftables\"".into()),
        Backend::Auto => match ipvs {
            IpvsLive::Table { .. } => (
                Backend::Ipvs,
                "backend auto: the kernel has IPVS (generic netlink family \"IPVS\" resolved)"
                    .into(),
            ),
            // Not the error's own advice (load ip_vs or choose nftables):
            // auto has already chosen.
            IpvsLive::NoIpvs(why) => (
                Backend::Nftables,
                format!("backend auto: the kernel has no IPVS ({why})"),
            ),
            IpvsLive::Unreadable(why) | IpvsLive::NotRead(why) => {
                (Backend::Nftables, format!("backend auto: {why}"))
            }
        },
    }
}

/// Whether the live table is what loading `desired` produced, and if not,
/// why: the one decision `plan`, `apply`, `status` and the daemon share.
/// `desired` is `None` when the firewall is disabled.
pub fn firewall_state(
    desired: Option<&Nftables>,
    nft: &NftLive,
) -> Result<Comparison, serde_json::Error> {
    let live = nft.listing.as_deref();
    Ok(match desired {
        Some(rs) => applied::compare(nft.record.as_ref(), &applied::fingerprint(rs)?, live),
        None if live.is_none() => Comparison::Unchanged,
        // Firewall disabled: apply removes the table.
        None => Comparison::ConfigChanged,
    })
}

/// Everything `apply` will do, from the config and what is live. Pure.
/// `cfg` must have its public address resolved.
pub fn compute(cfg: &Config, live: &Live) -> anyhow::Result<Plan> {
    let (backend, backend_reason) = select_backend(cfg.balancer.backend, &live.ipvs);
    let mut notes = Vec::new();
    for (t, state) in live.health.iter() {
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
    let ruleset = desired_ruleset(cfg, backend, &live.health);
    if ruleset.is_none() {
        notes.push("firewall.enabled = false: headnode's table is removed".into());
    }
    if cfg.public.address.is_none() {
        notes.push(format!(
            "interfaces.public.address = \"auto\" and {} has no IPv4 address yet: marks to the public address and port forwards are left out until it has one",
            cfg.public.name
        ));
    }
    let firewall = firewall_plan(ruleset, &live.nft)?;
    let ipvs = (backend == Backend::Ipvs && !cfg.balancer.services.is_empty())
        .then(|| ipvs_plan(cfg, live));
    let lockouts = lockouts(cfg, &live.ssh);
    Ok(Plan {
        backend,
        backend_reason,
        notes,
        sysctls: sysctl::changes(&cfg.sysctls, &live.sysctls),
        firewall,
        ipvs,
        lockouts,
    })
}

fn firewall_plan(
    ruleset: Option<Nftables<'static>>,
    nft: &Result<NftLive, String>,
) -> anyhow::Result<FirewallPlan> {
    let (state, reason, live, loaded) = match nft {
        Err(why) => (RulesetState::Unknown(why.clone()), None, None, None),
        Ok(n) => {
            let c = firewall_state(ruleset.as_ref(), n)?;
            let loaded = n
                .record
                .as_ref()
                .filter(|_| c == Comparison::LiveChanged)
                .map(|r| r.listing.clone());
            let (state, reason) = match c {
                Comparison::Unchanged => (RulesetState::Unchanged, None),
                c => (RulesetState::Changed, c.reason().map(str::to_string)),
            };
            (state, reason, n.listing.clone(), loaded)
        }
    };
    Ok(FirewallPlan {
        ruleset,
        live,
        state,
        reason,
        loaded,
        preview: None,
    })
}

fn ipvs_plan(cfg: &Config, live: &Live) -> IpvsPlan {
    let desired = ipvs::desired(cfg, &live.health);
    let (observed, owned, live_unreadable) = match &live.ipvs {
        IpvsLive::Table { table, owned } => (table.clone(), owned.clone(), None),
        IpvsLive::NoIpvs(why) => (
            ipvs::Table::new(),
            Default::default(),
            Some(ipvs::Error::NoIpvs(why.clone()).to_string()),
        ),
        IpvsLive::Unreadable(why) | IpvsLive::NotRead(why) => {
            (ipvs::Table::new(), Default::default(), Some(why.clone()))
        }
    };
    let ops = ipvs::diff(&desired, &observed, &owned, cfg.balancer.exclusive);
    IpvsPlan {
        desired,
        live_unreadable,
        ops,
        sysctls: ipvs::sysctls(cfg)
            .into_iter()
            .map(|(key, value, why)| IpvsSysctl { key, value, why })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
