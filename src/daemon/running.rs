//! The subsystems of a running daemon and what it does on each event:
//! start, timer (drift repair), health change, reload, status, stop.

use super::load;
use crate::balancer;
use crate::config::Config;
use crate::config::model::{Backend, VirtualService};
use crate::dhcp::{self, DhcpError};
use crate::firewall::{self, NftBalancer, nft::Nft};
use crate::health::{self, HealthMap};
use crate::ipvs;
use crate::sysctl::Sysctls;
use anyhow::Context;
use nftables::schema::Nftables;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

pub(super) struct Running {
    cfg: Arc<Config>,
    nft: Nft,
    sysctls: Sysctls,
    backend: Backend,
    backend_reason: String,
    health: HealthMap,
    /// Every check set's changes are forwarded here, so the main loop keeps
    /// one receiver across reloads.
    health_tx: watch::Sender<HealthMap>,
    checks: Option<health::Checks>,
    dhcp: Option<dhcp::Server>,
    /// The ruleset as nft would list it, to compare with what is live.
    desired_text: Option<String>,
    firewall_repairs: u64,
    ipvs_repairs: u64,
    last_error: Option<String>,
}

/// Run blocking work (nft processes, netlink) without stalling DHCP.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Running {
    /// Firewall, then sysctls (forwarding only once the firewall is in
    /// place), then the balancer, then DHCP. A firewall that cannot be put in
    /// place stops the start: DHCP must not answer on an unprotected box.
    pub(super) async fn start(cfg: Arc<Config>) -> anyhow::Result<Running> {
        let (backend, backend_reason) = blocking(|| balancer::select_backend(&cfg));
        info!(backend = ?backend, "{backend_reason}");
        let (health_tx, _) = watch::channel(HealthMap::default());
        let mut r = Running {
            cfg,
            nft: Nft::from_env(),
            sysctls: Sysctls::default(),
            backend,
            backend_reason,
            health: HealthMap::default(),
            health_tx,
            checks: None,
            dhcp: None,
            desired_text: None,
            firewall_repairs: 0,
            ipvs_repairs: 0,
            last_error: None,
        };
        r.ensure_firewall(true)
            .context("cannot put the firewall in place")?;
        r.ensure_sysctls().context("cannot set sysctls")?;
        r.ensure_ipvs(false);
        r.start_checks();
        if r.cfg.dhcp.enabled {
            r.dhcp = Some(dhcp::Server::start(r.cfg.clone())?);
        }
        Ok(r)
    }

    pub(super) fn health_updates(&self) -> watch::Receiver<HealthMap> {
        self.health_tx.subscribe()
    }

    fn start_checks(&mut self) {
        let checks = health::spawn(&self.cfg.balancer.services);
        let mut rx = checks.subscribe();
        let tx = self.health_tx.clone();
        // Ends when `checks` is dropped (its sender goes away).
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let map = rx.borrow_and_update().clone();
                tx.send_replace(map);
            }
        });
        self.checks = Some(checks);
    }

    fn nft_balancer(&self) -> Option<NftBalancer> {
        if self.backend != Backend::Nftables || self.cfg.balancer.services.is_empty() {
            return None;
        }
        let mut bal = NftBalancer::all_up(&self.cfg);
        for (t, state) in self.health.iter() {
            let real = firewall::RealBackend {
                address: t.addr,
                port: t.port,
            };
            bal.set_up(&t.service, real, *state != health::State::Down);
        }
        Some(bal)
    }

    fn desired_ruleset(&self) -> anyhow::Result<Option<Nftables<'static>>> {
        if !self.cfg.firewall.enabled {
            return Ok(None);
        }
        Ok(Some(firewall::ruleset(
            &self.cfg,
            self.nft_balancer().as_ref(),
        )?))
    }

    /// Compare the live table with the desired one and load the desired one
    /// when they differ. `recompute` after the config or health changed.
    fn ensure_firewall(&mut self, recompute: bool) -> anyhow::Result<()> {
        let rs = self.desired_ruleset()?;
        if recompute || self.desired_text.is_none() {
            self.desired_text = match &rs {
                Some(rs) => Some(blocking(|| self.nft.canonical_text(rs))?),
                None => None,
            };
        }
        let live = blocking(|| self.nft.live_text())?;
        match (&rs, &self.desired_text) {
            (None, _) => {
                if live.is_some() && blocking(|| self.nft.delete_table())? {
                    info!("firewall disabled in the config: table inet headnode removed");
                }
            }
            (Some(rs), desired) => {
                if live.as_ref() == desired.as_ref() {
                    return Ok(());
                }
                let first = recompute && live.is_none();
                blocking(|| self.nft.apply(rs))?;
                if recompute {
                    info!(
                        "firewall: table inet headnode {}",
                        if first { "loaded" } else { "updated" }
                    );
                } else {
                    self.firewall_repairs += 1;
                    warn!(
                        "firewall drift: table inet headnode was {}; reloaded it",
                        if live.is_none() { "missing" } else { "changed" }
                    );
                }
            }
        }
        Ok(())
    }

    fn ensure_sysctls(&self) -> anyhow::Result<()> {
        let changes = self.sysctls.plan(&self.cfg.sysctls)?;
        self.sysctls.apply(&changes)?;
        Ok(())
    }

    /// Reconcile IPVS when it balances. Errors are logged and shown in
    /// status, never fatal: DHCP and the firewall keep working without it.
    fn ensure_ipvs(&mut self, drift: bool) {
        if self.backend != Backend::Ipvs || self.cfg.balancer.services.is_empty() {
            return;
        }
        match blocking(|| ipvs::reconcile(&self.cfg, &self.health)) {
            Ok(report) => {
                if drift && !report.applied.is_empty() {
                    self.ipvs_repairs += 1;
                    warn!(
                        "ipvs drift: {} change(s) made to match the config",
                        report.applied.len()
                    );
                }
                for (op, e) in &report.failed {
                    self.note_error(format!("ipvs {op}: {e}"));
                }
            }
            Err(e) => self.note_error(format!("ipvs: {e}")),
        }
    }

    fn note_error(&mut self, msg: String) {
        if self.last_error.as_deref() != Some(msg.as_str()) {
            error!("{msg}");
        }
        self.last_error = Some(msg);
    }

    /// The timer: repair whatever drifted from the config.
    pub(super) async fn reconcile(&mut self) {
        if let Err(e) = self.ensure_firewall(false) {
            self.note_error(format!("firewall: {e:#}"));
        }
        if let Err(e) = self.ensure_sysctls() {
            self.note_error(format!("sysctls: {e:#}"));
        }
        self.ensure_ipvs(true);
    }

    /// A real server went down or came back: steer new connections.
    pub(super) async fn health_changed(&mut self, map: HealthMap) {
        self.health = map;
        match self.backend {
            Backend::Ipvs => self.ensure_ipvs(false),
            Backend::Nftables if self.cfg.firewall.enabled => {
                let Some(bal) = self.nft_balancer() else {
                    return;
                };
                let updated = blocking(|| self.nft.update_balancer(&self.cfg, &bal));
                match updated {
                    // The balance chain changed, so the desired text did too.
                    Ok(()) => {
                        if let Err(e) = self.ensure_firewall(true) {
                            self.note_error(format!("firewall: {e:#}"));
                        }
                    }
                    Err(e) => self.note_error(format!("nftables balancer: {e}")),
                }
            }
            _ => {}
        }
    }

    /// Re-read the config; an invalid one is logged with every error and
    /// changes nothing. Returns whether the new config is now in effect.
    pub(super) async fn reload(&mut self, path: &Path) -> bool {
        let cfg = match load(path) {
            Ok(cfg) => Arc::new(cfg),
            Err(e) => {
                error!(
                    "reload rejected, keeping the running config:\n{}",
                    crate::commands::render_error(&e)
                );
                return false;
            }
        };
        let services_changed = json!(cfg.balancer.services) != json!(self.cfg.balancer.services);
        self.cfg = cfg;
        let (backend, reason) = blocking(|| balancer::select_backend(&self.cfg));
        if backend != self.backend {
            info!(backend = ?backend, "{reason}");
        }
        self.backend = backend;
        self.backend_reason = reason;
        if services_changed {
            self.checks = None;
            self.health = HealthMap::default();
            self.start_checks();
        }
        if let Err(e) = self.ensure_firewall(true) {
            self.note_error(format!("firewall: {e:#}"));
        }
        if let Err(e) = self.ensure_sysctls() {
            self.note_error(format!("sysctls: {e:#}"));
        }
        self.ensure_ipvs(false);
        self.reload_dhcp().await;
        info!(config = %path.display(), "reloaded");
        true
    }

    async fn reload_dhcp(&mut self) {
        let result = match &self.dhcp {
            Some(server) if self.cfg.dhcp.enabled => server.reload(self.cfg.clone()),
            Some(_) => Err(DhcpError::Disabled),
            None if self.cfg.dhcp.enabled => Err(DhcpError::Disabled),
            None => Ok(()),
        };
        let Err(why) = result else { return };
        // Interface, lease file or on/off changed: restart the server.
        info!("DHCP restarts: {why}");
        if let Some(mut old) = self.dhcp.take() {
            old.stop();
            let _ = old.wait().await;
        }
        if self.cfg.dhcp.enabled {
            match dhcp::Server::start(self.cfg.clone()) {
                Ok(s) => self.dhcp = Some(s),
                Err(e) => self.note_error(format!("dhcp: {e}")),
            }
        }
    }

    pub(super) async fn status(&self, uptime: Duration) -> serde_json::Value {
        let services: Vec<_> = self
            .cfg
            .balancer
            .services
            .iter()
            .map(|s| service_status(s, &self.health))
            .collect();
        let firewall_state = match &self.desired_text {
            None => "disabled".to_string(),
            Some(want) => match blocking(|| self.nft.live_text()) {
                Ok(Some(live)) if &live == want => "in sync".into(),
                Ok(Some(_)) => "drifted (repaired at the next reconcile)".into(),
                Ok(None) => "missing (repaired at the next reconcile)".into(),
                Err(e) => format!("unknown: {e}"),
            },
        };
        json!({
            "daemon": {
                "pid": std::process::id(),
                "uptime_s": uptime.as_secs(),
                "config": self.cfg.path,
                "reconcile_interval_s": super::RECONCILE_INTERVAL.as_secs(),
                "last_error": self.last_error,
            },
            "firewall": {
                "state": firewall_state,
                "drift_repairs": self.firewall_repairs,
            },
            "balancer": {
                "backend": self.backend,
                "reason": self.backend_reason,
                "drift_repairs": self.ipvs_repairs,
                "services": services,
            },
            "dhcp": match &self.dhcp {
                Some(d) => json!({ "serving": true, "interface": self.cfg.private.name, "counters": d.counters() }),
                None => json!({ "serving": false }),
            },
            "leases": self.leases(),
        })
    }

    pub(super) fn leases(&self) -> serde_json::Value {
        match &self.dhcp {
            Some(d) => json!(d.leases()),
            None => json!([]),
        }
    }

    /// DHCP and health checks stop; the firewall and IPVS stay as they are.
    pub(super) async fn stop(mut self) {
        self.checks = None;
        if let Some(mut d) = self.dhcp.take() {
            d.stop();
            if let Err(e) = d.wait().await {
                warn!("DHCP stopped with an error: {e}");
            }
        }
    }
}

fn service_status(s: &VirtualService, health: &HealthMap) -> serde_json::Value {
    let reals: Vec<_> = s
        .reals
        .iter()
        .map(|r| {
            let t = health::Target::of(s, r);
            let state = if s.health.is_none() {
                "not checked"
            } else if health.is_up(&t) {
                "up"
            } else {
                "down"
            };
            json!({
                "name": r.name, "address": r.address, "port": r.port,
                "weight": r.weight, "health": state,
            })
        })
        .collect();
    json!({
        "name": s.name,
        "key": s.key.to_string(),
        "scheduler": s.scheduler,
        "method": s.method.to_string(),
        "reals": reals,
    })
}
