//! The subsystems of a running daemon and what it does on each event:
//! start, timer (drift repair), health change, reload, status, stop.

use super::confirm;
use super::heartbeat::blocking;
use crate::config::model::{Backend, VirtualService};
use crate::config::{self, Config};
use crate::control::{
    ApplyOutcome, BalancerStatus, ConfirmOutcome, DaemonInfo, DaemonStatus, DhcpServing,
    DhcpStatus, FirewallState, FirewallStatus, Health, IpvsState, RealStatus, ReloadOutcome,
    ServiceStatus,
};
use crate::dhcp::{self, DhcpError, LeaseView};
use crate::dns;
use crate::firewall::applied::{Applied, Comparison};
use crate::firewall::nft::{Nft, NftError};
use crate::firewall::{NftBalancer, fallback, rollback};
use crate::health::{self, HealthMap};
use crate::ipvs;
use crate::plan::live::IpvsLive;
use crate::plan::{self, NftLive};
use crate::sysctl::Sysctls;
use crate::tftp;
use anyhow::Context;
use nftables::schema::Nftables;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{error, info, warn};

pub(super) struct Running {
    /// The config as loaded: with `address = "auto"` its public address is unset.
    base: Arc<Config>,
    /// `base` with the public address read from the interface (when it has one).
    cfg: Arc<Config>,
    /// Which firewall is loaded: the config's, or a fallback and why.
    firewall_source: fallback::Source,
    /// Sysctls that could not be set (retried at every reconcile).
    sysctl_problems: Vec<String>,
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
    tftp: Option<tftp::Server>,
    dns: Option<dns::Server>,
    /// Times the DHCP server ended on its own and was started again.
    dhcp_restarts: u64,
    /// `watch_dhcp` found the server's loop stuck.
    dhcp_stuck: bool,
    /// An ACK came since the DNS server last got the pool's names.
    pool_names_stale: bool,
    pool_names_answered: usize,
    /// The last load of our table and nft's listing right after it: the
    /// live table has drifted when nft lists it differently.
    applied: Option<Applied>,
    firewall_repairs: u64,
    ipvs_repairs: u64,
    last_error: Option<String>,
    /// The text `cfg` was read from.
    text: String,
    /// An `apply --confirm` made through the daemon, waiting for `confirm`.
    pending: Option<PendingConfirm>,
    /// With `[ha]`: keepalived's state and the sync daemon following it.
    ha: Option<super::ha::HaRuntime>,
}

/// The config to go back to unless `headnode confirm` arrives by `deadline`
/// (also on disk, `confirm::Held`, for a daemon that restarts meanwhile).
pub(super) struct PendingConfirm {
    pub(super) deadline: Instant,
    pub(super) previous: Arc<Config>,
    pub(super) previous_text: String,
}

fn select_backend(cfg: &Config) -> (Backend, String) {
    plan::select_backend(cfg.balancer.backend, &plan::live::ipvs_for(cfg))
}

/// `base` with its `"auto"` public address read from the interface, when
/// it has one now; otherwise `base` as it is (the ruleset then leaves out
/// what needs the address).
pub(super) fn resolve(base: &Arc<Config>) -> Arc<Config> {
    if base.public.address.is_some() {
        return base.clone();
    }
    match blocking(|| crate::netinfo::ipv4_of(&base.public.name)) {
        Some(a) => {
            let mut cfg = (**base).clone();
            cfg.resolve_public(a);
            Arc::new(cfg)
        }
        None => base.clone(),
    }
}

/// The sysctls without which the head node does not do its job: a failure
/// to set one of them stops the start. Others are retried and reported.
fn required_sysctl(key: &str) -> bool {
    matches!(
        key,
        "net.ipv4.ip_forward" | "net.ipv6.conf.all.forwarding" | "net.ipv4.vs.conntrack"
    )
}

impl Running {
    /// Firewall, then sysctls (forwarding only once the firewall is in
    /// place), then the balancer, then DHCP. When the config's ruleset cannot
    /// be loaded, the fallback (`firewall::fallback`) is, and the next
    /// reconcile tries the config's again; only when neither can be loaded
    /// does the start fail: DHCP must not answer on an unprotected box.
    pub(super) async fn start(
        base: Arc<Config>,
        text: String,
        pending: Option<PendingConfirm>,
    ) -> anyhow::Result<Running> {
        let cfg = resolve(&base);
        if cfg.public.address.is_none() {
            warn!(
                interface = %cfg.public.name,
                "interfaces.public.address is \"auto\" and the interface has no IPv4 address yet; \
                 marks to it and port forwards wait for it"
            );
        }
        let (backend, backend_reason) = blocking(|| select_backend(&cfg));
        info!(backend = ?backend, "{backend_reason}");
        let (health_tx, _) = watch::channel(HealthMap::default());
        let mut r = Running {
            base,
            cfg,
            firewall_source: fallback::Source::Config,
            sysctl_problems: Vec::new(),
            nft: Nft::from_env(),
            sysctls: Sysctls::default(),
            backend,
            backend_reason,
            health: HealthMap::default(),
            health_tx,
            checks: None,
            dhcp: None,
            tftp: None,
            dns: None,
            dhcp_restarts: 0,
            dhcp_stuck: false,
            pool_names_stale: false,
            pool_names_answered: 0,
            // A restarted daemon keeps an unchanged table (and its counters).
            applied: Applied::load(&crate::paths::state_dir()),
            firewall_repairs: 0,
            ipvs_repairs: 0,
            last_error: None,
            text,
            pending,
            ha: None,
        };
        if let Err(e) = r.ensure_firewall(true) {
            r.fall_back(&format!("cannot load the config's ruleset: {e:#}"))
                .context("cannot put any firewall in place")?;
        }
        r.ensure_sysctls().context("cannot set sysctls")?;
        r.ensure_ipvs(false);
        r.ensure_ha(true);
        r.start_checks();
        // Before DHCP, which points nodes at it.
        if let Some(s) = tftp::Settings::from_config(&r.cfg) {
            r.tftp = Some(tftp::Server::start(s)?);
        }
        // Before DHCP too, which hands out its address; a server that cannot
        // start leaves the rest running and is tried again at reload.
        r.reload_dns().await;
        if r.cfg.dhcp.enabled {
            match dhcp::Server::start(r.cfg.clone()) {
                Ok(s) => r.dhcp = Some(s),
                // The config must change first: say so and stop.
                Err(e) if e.is_config() => return Err(e.into()),
                // Tried again at every reconcile: the box is not left
                // without DHCP for good by something passing.
                Err(e) => r.note_error(format!("dhcp: {e}")),
            }
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

    /// The live table as `plan::firewall_state` compares it, with the
    /// daemon's own record of its last load.
    fn nft_live(&self, listing: Option<String>) -> NftLive {
        NftLive {
            listing,
            record: self.applied.clone(),
        }
    }

    fn nft_balancer(&self) -> Option<NftBalancer> {
        crate::plan::nft_balancer(&self.cfg, self.backend, &self.health)
    }

    fn desired_ruleset(&self) -> Option<Nftables<'static>> {
        plan::desired_ruleset(&self.cfg, self.backend, &self.health)
    }

    /// Load the fallback firewall; the record stays, so the next reconcile
    /// loads the config's ruleset again.
    fn fall_back(&mut self, why: &str) -> anyhow::Result<()> {
        let dir = crate::paths::state_dir();
        let source = blocking(|| fallback::put_in_place(&self.nft, &dir, why))?;
        self.note_error(format!("firewall: {}", source.describe()));
        self.firewall_source = source;
        Ok(())
    }

    /// Compare the live table with the record of the last load and load the
    /// desired ruleset when the config or the table changed since. `recompute`
    /// after the config or health changed (for the log line only).
    fn ensure_firewall(&mut self, recompute: bool) -> anyhow::Result<()> {
        let rs = self.desired_ruleset();
        let live = blocking(|| self.nft.live_text())?;
        let Some(rs) = rs else {
            if live.is_some() && blocking(|| self.nft.delete_table())? {
                info!("firewall disabled in the config: table inet headnode removed");
            }
            return Ok(());
        };
        let found = plan::firewall_state(Some(&rs), &self.nft_live(live.clone()))?;
        if found == Comparison::Unchanged {
            return Ok(());
        }
        self.load_recorded(&rs, |nft| nft.apply(&rs))?;
        match found {
            Comparison::NoTable | Comparison::LiveChanged if !recompute => {
                self.firewall_repairs += 1;
                warn!(
                    "firewall drift: table inet headnode was {}; reloaded it",
                    if live.is_none() { "missing" } else { "changed" }
                );
            }
            Comparison::NoTable => info!("firewall: table inet headnode loaded"),
            _ => info!("firewall: table inet headnode updated"),
        }
        Ok(())
    }

    /// Load our table (all of it, or a part with `update_balancer`) so that it
    /// becomes what `rs` describes, then list it back and record that. Under
    /// the state lock, so that no `headnode apply` loads between our load and
    /// our listing (the record would pair our ruleset with its table).
    fn load_recorded(
        &mut self,
        rs: &Nftables,
        load: impl FnOnce(&Nft) -> Result<(), NftError>,
    ) -> anyhow::Result<()> {
        let dir = crate::paths::state_dir();
        let lock = blocking(rollback::Lock::take)
            .map_err(|e| warn!("{e}; loading the firewall without the state lock"))
            .ok();
        // A failed load leaves the table as it was; the old record still
        // describes it if it did before.
        blocking(|| crate::timings::NFT_LOAD.time(|| load(&self.nft)))?;
        let recorded = blocking(|| self.nft.read_back(rs));
        drop(lock);
        match recorded {
            Ok(a) => {
                // The file lets `headnode apply` and a restarted daemon skip
                // loading an unchanged table; without it they load once more.
                if let Err(e) = blocking(|| a.save(&dir)) {
                    warn!("cannot record the firewall in {}: {e}", dir.display());
                }
                self.applied = Some(a);
            }
            Err(e) => {
                // Without a record the next reconcile loads the table again.
                self.applied = None;
                self.note_error(format!(
                    "firewall: cannot list the table after loading it: {e}"
                ));
            }
        }
        Ok(())
    }

    /// Set the sysctls that differ. One the setup needs (`required_sysctl`)
    /// that cannot be set is an error; any other is reported in `status`
    /// and the journal and tried again at the next reconcile (a per-interface
    /// key whose interface comes up later, a key the unit may not write).
    fn ensure_sysctls(&mut self) -> anyhow::Result<()> {
        let changes = self.sysctls.pending(&self.cfg.sysctls)?;
        let mut problems = Vec::new();
        for c in &changes {
            if let Err(e) = self.sysctls.apply(std::slice::from_ref(c)) {
                if required_sysctl(&c.key) {
                    return Err(e.into());
                }
                problems.push(e.to_string());
            }
        }
        if problems != self.sysctl_problems {
            for p in &problems {
                warn!("{p}; tried again at every reconcile");
            }
        }
        self.sysctl_problems = problems;
        Ok(())
    }

    /// Reconcile IPVS when it balances. Errors are logged and shown in
    /// status, never fatal: DHCP and the firewall keep working without it.
    fn ensure_ipvs(&mut self, drift: bool) {
        if self.backend != Backend::Ipvs || self.cfg.balancer.services.is_empty() {
            return;
        }
        let reconciled = blocking(|| {
            crate::timings::IPVS_RECONCILE.time(|| ipvs::reconcile_live(&self.cfg, &self.health))
        });
        match reconciled {
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

    /// With `[ha]`: the keepalived file (when `write`: at start and
    /// reload) and the IPVS sync daemons for the current state.
    fn ensure_ha(&mut self, write: bool) {
        let ipvs = self.backend == Backend::Ipvs;
        let Some(ha) = self.cfg.ha.clone() else {
            if let Some(mut rt) = self.ha.take() {
                // [ha] removed: the sync daemons it started go too.
                rt.set_state(crate::ha::State::Stop);
                if ipvs && let Err(e) = blocking(|| ipvs::sync_reconcile_live(Vec::new())) {
                    self.note_error(format!("IPVS sync daemon: {e}"));
                }
            }
            return;
        };
        if write {
            super::ha::write_keepalived(&self.cfg, &ha);
        }
        let rt = self
            .ha
            .get_or_insert_with(|| super::ha::HaRuntime::start(&ha));
        rt.sync(&ha, ipvs);
    }

    /// keepalived's new state (`headnode ha-notify`): the sync daemons
    /// follow before the answer; the error when they could not.
    pub(super) fn ha_state(&mut self, state: crate::ha::State) -> Option<String> {
        let Some(ha) = self.cfg.ha.clone() else {
            return Some("this head node has no [ha] in its config".into());
        };
        let ipvs = self.backend == Backend::Ipvs;
        let rt = self
            .ha
            .get_or_insert_with(|| super::ha::HaRuntime::start(&ha));
        rt.set_state(state);
        rt.sync(&ha, ipvs)
    }

    fn note_error(&mut self, msg: String) {
        if self.last_error.as_deref() != Some(msg.as_str()) {
            error!("{msg}");
        }
        self.last_error = Some(msg);
    }

    /// `ensure_firewall`, and when the config's ruleset cannot be loaded
    /// while the config's is what is loaded (or no table is), the fallback.
    fn ensure_firewall_or_fall_back(&mut self, recompute: bool) {
        let Err(e) = self.ensure_firewall(recompute) else {
            return;
        };
        let msg = format!("cannot load the config's ruleset: {e:#}");
        let table_gone = blocking(|| self.nft.live_text()).is_ok_and(|t| t.is_none());
        if self.firewall_source == fallback::Source::Config || table_gone {
            if let Err(f) = self.fall_back(&msg) {
                self.note_error(format!("{msg}; and no fallback either: {f:#}"));
            }
        } else {
            self.note_error(format!("firewall: {msg}"));
        }
    }

    /// The address of an `"auto"` public interface changed (a DHCP renewal,
    /// the link came up at boot): plan everything that uses it again.
    pub(super) async fn follow_public_address(&mut self) {
        if self.base.public.address.is_some() {
            return;
        }
        let cfg = resolve(&self.base);
        if cfg.public.address == self.cfg.public.address {
            return;
        }
        info!(
            interface = %cfg.public.name,
            from = %self.cfg.public.address.map_or("none".into(), |a| a.to_string()),
            to = %cfg.public.address.map_or("none".into(), |a| a.to_string()),
            "public address changed; planning again"
        );
        self.cfg = cfg;
        self.ensure_firewall_or_fall_back(true);
        self.ensure_ipvs(false);
    }

    /// The timer: repair whatever drifted from the config.
    pub(super) async fn reconcile(&mut self) {
        let started = Instant::now();
        self.reconcile_once();
        crate::timings::RECONCILE.observe(started.elapsed());
    }

    /// Give the DNS server the names of the pool's bound leases: after ACKs
    /// (at most once a second, from the main loop) and at every reconcile,
    /// which also drops the names of leases that ended.
    pub(super) fn refresh_pool_names(&mut self) {
        self.pool_names_stale = false;
        let Some(dns) = &self.dns else { return };
        let leases = self.leases();
        let named = leases.iter().filter_map(|l| {
            let bound = l.kind == dhcp::LeaseKind::Dynamic && l.state == dhcp::LeaseState::Bound;
            Some((l.name.as_deref().filter(|_| bound)?, l.address))
        });
        let n = dns.set_pool_names(named);
        if n != self.pool_names_answered {
            info!(names = n, "DNS: names of pool clients answered");
            self.pool_names_answered = n;
        }
    }

    /// `refresh_pool_names` when an ACK came since the last one.
    pub(super) fn refresh_pool_names_if_stale(&mut self) {
        if self.pool_names_stale {
            self.refresh_pool_names();
        }
    }

    fn reconcile_once(&mut self) {
        self.refresh_pool_names();
        self.ensure_firewall_or_fall_back(false);
        if let Err(e) = self.ensure_sysctls() {
            self.note_error(format!("sysctls: {e:#}"));
        }
        self.ensure_ipvs(true);
        self.ensure_ha(false);
        if self.cfg.dhcp.enabled && self.dhcp.is_none() {
            self.start_dhcp();
        }
    }

    fn start_dhcp(&mut self) {
        match dhcp::Server::start(self.cfg.clone()) {
            Ok(s) => {
                self.dhcp = Some(s);
                if self
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("dhcp: "))
                {
                    self.last_error = None;
                }
            }
            Err(e) => self.note_error(format!("dhcp: {e}")),
        }
    }

    /// The DHCP server's next event (never, without one): an ACK, or its
    /// end without being asked to; the daemon then calls `dhcp_event`.
    pub(super) async fn next_dhcp_event(&mut self) -> dhcp::Event {
        match self.dhcp.as_mut() {
            Some(d) => d.next_event().await,
            None => std::future::pending().await,
        }
    }

    pub(super) fn dhcp_event(&mut self, event: dhcp::Event) {
        match event {
            // A real server that just took its lease is checked at once
            // rather than at the next interval.
            dhcp::Event::Acked(ip) => {
                self.pool_names_stale = true;
                if let Some(checks) = &self.checks
                    && checks.check_now(ip) > 0
                {
                    tracing::debug!(%ip, "real server took its lease: checking it now");
                }
            }
            dhcp::Event::Ended(why) => self.dhcp_ended(why),
        }
    }

    /// Start an ended DHCP server again, and count it.
    /// A DHCP server whose loop has stopped going round cannot be stopped or
    /// replaced from here (its thread holds the lease file's lock): mark it
    /// stuck, so the watchdog pings stop and systemd restarts the daemon.
    pub(super) fn watch_dhcp(&mut self) {
        let stalled = self.dhcp.as_ref().and_then(|d| d.status().stalled_s);
        let why = stalled.map(|s| format!("the DHCP server has not moved for {s} s"));
        match (&why, self.dhcp_stuck) {
            (Some(w), false) => tracing::error!("{w}; systemd's watchdog will restart the daemon"),
            (None, true) => tracing::info!("the DHCP server moves again"),
            _ => {}
        }
        self.dhcp_stuck = why.is_some();
        super::heartbeat::set_stuck(why);
    }

    fn dhcp_ended(&mut self, why: Result<(), DhcpError>) {
        self.dhcp = None;
        self.dhcp_restarts += 1;
        let why = why.err().map_or("no error".to_string(), |e| e.to_string());
        self.note_error(format!("dhcp: the server ended ({why}); started again"));
        if self.cfg.dhcp.enabled {
            self.start_dhcp();
        }
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
                // Only the balance chain is replaced (the rest of the table
                // keeps its counters); the record is of the whole ruleset it
                // now matches, so the next reconcile sees no drift.
                let cfg = self.cfg.clone();
                let rs = crate::firewall::ruleset(&cfg, Some(&bal));
                if let Err(e) = self.load_recorded(&rs, |nft| nft.update_balancer(&cfg, &bal)) {
                    self.note_error(format!("nftables balancer: {e:#}"));
                }
            }
            _ => {}
        }
    }

    /// Re-read the config and put it in effect. An invalid config, or one
    /// whose ruleset nft refuses, changes nothing: the running config and
    /// its firewall stay, and the outcome says why.
    pub(super) async fn reload(&mut self, path: &Path, force: bool) -> ReloadOutcome {
        let (base, text) = match config::load_text(path) {
            Ok((cfg, text)) => (Arc::new(cfg), text),
            Err(e) => {
                let errors = crate::errors::render(&e.into());
                error!("reload rejected, keeping the running config:\n{errors}");
                return ReloadOutcome::Rejected { errors };
            }
        };
        let outcome = self.put_in_effect(base, text, force).await;
        if outcome == ReloadOutcome::Reloaded {
            info!(config = %path.display(), "reloaded");
        }
        outcome
    }

    /// Make `base` the running config (its `"auto"` public address read
    /// now), the firewall first: when nft refuses its ruleset (one
    /// transaction, so the old table is untouched) the old config stays in
    /// effect everywhere and the outcome says why.
    /// Unless `force`, a config whose ruleset would not let an SSH session
    /// into the box back in is rejected, as `apply` does.
    async fn put_in_effect(
        &mut self,
        base: Arc<Config>,
        text: String,
        force: bool,
    ) -> ReloadOutcome {
        let cfg = resolve(&base);
        let sessions = blocking(crate::firewall::guard::sessions);
        for l in plan::lockouts(&cfg, &sessions) {
            if !force {
                let errors = format!(
                    "refusing the new config: {l}; add a rule for it, or `headnode reload --force`"
                );
                error!("{errors}");
                return ReloadOutcome::Rejected { errors };
            }
            warn!("--force: {l}");
        }
        let services_changed = serde_json::to_value(&cfg.balancer.services).ok()
            != serde_json::to_value(&self.cfg.balancer.services).ok();
        let previous = (
            std::mem::replace(&mut self.base, base),
            std::mem::replace(&mut self.cfg, cfg),
            self.backend,
            self.backend_reason.clone(),
        );
        let (backend, reason) = blocking(|| select_backend(&self.cfg));
        self.backend = backend;
        self.backend_reason = reason;
        if let Err(e) = self.ensure_firewall(true) {
            (self.base, self.cfg, self.backend, self.backend_reason) = previous;
            let error = format!("{e:#}");
            error!("reload failed, keeping the running config and firewall: {error}");
            return ReloadOutcome::Failed { error };
        }
        self.text = text;
        if self.backend != previous.2 {
            info!(backend = ?self.backend, "{}", self.backend_reason);
        }
        if services_changed {
            self.checks = None;
            self.health = HealthMap::default();
            self.start_checks();
        }
        if let Err(e) = self.ensure_sysctls() {
            self.note_error(format!("sysctls: {e:#}"));
        }
        self.ensure_ipvs(false);
        self.ensure_ha(true);
        self.reload_tftp().await;
        self.reload_dns().await;
        self.reload_dhcp().await;
        ReloadOutcome::Reloaded
    }

    /// `headnode apply` while the daemon runs: the daemon puts the config
    /// in effect itself (so its next reconcile does not undo it), and with
    /// `confirm` goes back to the running config unless `headnode confirm`
    /// arrives in time.
    pub(super) async fn apply(
        &mut self,
        path: &Path,
        confirm: Option<Duration>,
        force: bool,
    ) -> ApplyOutcome {
        if let Some(p) = &self.pending {
            return ApplyOutcome::Refused {
                why: format!(
                    "an apply --confirm is waiting for `headnode confirm` (rolled back in {}s); \
                     confirm it (or let it roll back) first",
                    p.deadline
                        .saturating_duration_since(Instant::now())
                        .as_secs()
                ),
            };
        }
        let (previous, previous_text) = (self.base.clone(), self.text.clone());
        match self.reload(path, force).await {
            ReloadOutcome::Reloaded => {}
            ReloadOutcome::Rejected { errors } => return ApplyOutcome::Rejected { errors },
            ReloadOutcome::Failed { error } => return ApplyOutcome::Failed { error },
        }
        if let Some(d) = confirm {
            info!(
                "applied; rolled back in {}s unless `headnode confirm` arrives",
                d.as_secs()
            );
            let held = confirm::Held::new(d, previous_text.clone());
            if let Err(e) = held.save(&crate::paths::state_dir()) {
                self.note_error(format!(
                    "cannot record the pending confirm ({e}); a daemon restarted before the deadline will not roll back"
                ));
            }
            self.pending = Some(PendingConfirm {
                deadline: Instant::now() + d,
                previous,
                previous_text,
            });
        }
        ApplyOutcome::Applied {
            confirm_within_s: confirm.map(|d| d.as_secs()),
        }
    }

    pub(super) fn confirm(&mut self) -> ConfirmOutcome {
        match self.pending.take() {
            Some(_) => {
                confirm::Held::remove(&crate::paths::state_dir());
                info!("apply confirmed: the new config stays");
                ConfirmOutcome::Confirmed
            }
            None => ConfirmOutcome::NothingPending,
        }
    }

    /// When a pending confirm runs out, if one is pending.
    pub(super) fn confirm_deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// No `headnode confirm` in time: the config that ran before the apply
    /// runs again, and its firewall is loaded. The file on disk keeps the
    /// new text; the next reload reads it again.
    pub(super) async fn roll_back(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        warn!(
            "no `headnode confirm` in time: rolling back to the config that ran before the apply"
        );
        if let ReloadOutcome::Failed { error } =
            // Going back is never refused: it restores what ran before.
            self.put_in_effect(p.previous, p.previous_text, true).await
        {
            self.note_error(format!("rollback: {error}"));
        }
        confirm::Held::remove(&crate::paths::state_dir());
    }

    /// Restart the TFTP server when its settings changed (transfers running
    /// then end; the nodes retry).
    async fn reload_tftp(&mut self) {
        let want = tftp::Settings::from_config(&self.cfg);
        if self.tftp.as_ref().map(|s| s.settings()) == want.as_ref() {
            return;
        }
        if let Some(old) = self.tftp.take() {
            info!("TFTP restarts: [tftp] changed");
            old.stop().await;
        }
        if let Some(s) = want {
            match tftp::Server::start(s) {
                Ok(s) => self.tftp = Some(s),
                Err(e) => self.note_error(format!("tftp: {e}")),
            }
        }
    }

    /// Start, stop or restart the DNS server when its settings changed:
    /// they hold every name, so a reload answers the new names at once.
    async fn reload_dns(&mut self) {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let want = dns::Settings::from_config(&self.cfg, hostname.trim(), &resolv);
        if self.dns.as_ref().map(|s| s.settings()) == want.as_ref() {
            return;
        }
        if let Some(old) = self.dns.take() {
            info!("DNS restarts: [dns] or the names changed");
            old.stop().await;
        }
        if let Some(s) = want {
            match dns::Server::start(s) {
                Ok(s) => {
                    self.dns = Some(s);
                    self.pool_names_stale = true;
                }
                Err(e) => self.note_error(format!("dns: {e}")),
            }
        }
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
            self.start_dhcp();
        }
    }

    pub(super) async fn status(&self, uptime: Duration) -> DaemonStatus {
        let services = self
            .cfg
            .balancer
            .services
            .iter()
            .map(|s| service_status(s, &self.health))
            .collect();
        DaemonStatus {
            daemon: DaemonInfo {
                pid: std::process::id(),
                uptime_s: uptime.as_secs(),
                config: self.cfg.path.clone(),
                reconcile_interval_s: super::reconcile_interval().as_secs_f64(),
                last_error: self.last_error.clone(),
            },
            firewall: FirewallStatus {
                state: self.firewall_state(),
                source: self.firewall_source.clone(),
                public_address: self.cfg.public.address,
                drift_repairs: self.firewall_repairs,
            },
            sysctl_problems: self.sysctl_problems.clone(),
            balancer: BalancerStatus {
                backend: self.backend,
                reason: self.backend_reason.clone(),
                drift_repairs: self.ipvs_repairs,
                ipvs: self.ipvs_state(),
                services,
            },
            dhcp: DhcpStatus {
                enabled: self.cfg.dhcp.enabled,
                server: self.dhcp.as_ref().map(|d| DhcpServing {
                    status: d.status(),
                    counters: d.counters(),
                }),
                restarts: self.dhcp_restarts,
            },
            tftp: self.tftp.as_ref().map(tftp::Server::status),
            dns: self.dns.as_ref().map(dns::Server::status),
            ha: match (&self.ha, &self.cfg.ha) {
                (Some(rt), Some(ha)) => {
                    Some(rt.status(&self.cfg, ha, self.backend == Backend::Ipvs))
                }
                _ => None,
            },
            leases: self.leases(),
        }
    }

    fn firewall_state(&self) -> FirewallState {
        if self.firewall_source != fallback::Source::Config {
            return FirewallState::Fallback {
                loaded: self.firewall_source.describe(),
            };
        }
        let Some(rs) = self.desired_ruleset() else {
            return FirewallState::Disabled;
        };
        let live = match blocking(|| self.nft.live_text()) {
            Ok(live) => live,
            Err(e) => {
                return FirewallState::Unknown {
                    error: e.to_string(),
                };
            }
        };
        match plan::firewall_state(Some(&rs), &self.nft_live(live)) {
            Ok(Comparison::Unchanged) => FirewallState::InSync,
            Ok(Comparison::NoTable) => FirewallState::Missing,
            Ok(Comparison::LiveChanged) => FirewallState::Drifted,
            // The last load failed (see last_error) or was not recorded.
            Ok(c @ (Comparison::NotRecorded | Comparison::ConfigChanged)) => {
                FirewallState::NotInSync {
                    reason: c.reason().unwrap_or_default().to_string(),
                }
            }
            Err(e) => FirewallState::Unknown {
                error: e.to_string(),
            },
        }
    }

    /// What the next IPVS reconcile would change; `None` when IPVS does not balance.
    fn ipvs_state(&self) -> Option<IpvsState> {
        if self.backend != Backend::Ipvs || self.cfg.balancer.services.is_empty() {
            return None;
        }
        let want = ipvs::desired(&self.cfg, &self.health);
        Some(match blocking(|| plan::live::ipvs_for(&self.cfg)) {
            IpvsLive::Table { table, owned } => {
                let ops = ipvs::diff(&want, &table, &owned, self.cfg.balancer.exclusive);
                if ops.is_empty() {
                    IpvsState::InSync
                } else {
                    IpvsState::Drifted {
                        changes: ops.iter().map(ToString::to_string).collect(),
                    }
                }
            }
            IpvsLive::NoIpvs(why) | IpvsLive::Unreadable(why) | IpvsLive::NotRead(why) => {
                IpvsState::Unknown { error: why }
            }
        })
    }

    /// Where `[metrics]` wants the metrics served, if anywhere.
    pub(super) fn metrics_listen(&self) -> Option<std::net::SocketAddrV4> {
        self.cfg.metrics
    }

    /// What a scrape shows: the status, the pool's size and our table's
    /// rule counters (one nft listing).
    pub(super) async fn metrics(&self, uptime: Duration) -> String {
        let status = self.status(uptime).await;
        let pool_size =
            self.cfg.dhcp.pool.as_ref().map(|p| {
                u64::from(u32::from(p.end)).saturating_sub(u64::from(u32::from(p.start))) + 1
            });
        let rules = match blocking(|| self.nft.rule_counters()) {
            Ok(rules) => rules,
            Err(e) => {
                warn!("metrics: cannot read the rule counters: {e}");
                None
            }
        };
        crate::metrics::render(&crate::metrics::Snapshot::new(status, pool_size, rules))
    }

    /// The one line `systemctl status` shows (sd_notify `STATUS=`).
    pub(super) fn summary(&self) -> super::notify::Summary {
        let checked = self
            .cfg
            .balancer
            .services
            .iter()
            .filter(|s| s.health.is_some())
            .flat_map(|s| s.reals.iter().map(move |r| health::Target::of(s, r)));
        let (mut up, mut all) = (0, 0);
        for t in checked {
            all += 1;
            up += usize::from(self.health.is_up(&t));
        }
        super::notify::Summary {
            dhcp_serving: self.dhcp.as_ref().map(|d| d.status().serving),
            leases: self
                .leases()
                .iter()
                .filter(|l| l.state == dhcp::LeaseState::Bound)
                .count(),
            reals_up: up,
            reals_checked: all,
            firewall: match &self.firewall_source {
                fallback::Source::Config if self.cfg.firewall.enabled => "in place".into(),
                fallback::Source::Config => "off".into(),
                other => format!("fallback: {}", other.describe()),
            },
        }
    }

    pub(super) fn health(&self) -> &HealthMap {
        &self.health
    }

    pub(super) fn leases(&self) -> Vec<LeaseView> {
        self.dhcp.as_ref().map(|d| d.leases()).unwrap_or_default()
    }

    pub(super) fn unknown_clients(&self) -> crate::dhcp::unknown::UnknownList {
        self.dhcp.as_ref().map(|d| d.unknown()).unwrap_or_default()
    }

    pub(super) fn release(&self, key: crate::dhcp::LeaseKey) -> crate::dhcp::ReleaseOutcome {
        match &self.dhcp {
            Some(d) => d.release(key),
            None => crate::dhcp::ReleaseOutcome::NotFound {
                why: "the daemon runs no DHCP server (dhcp.enabled = false, or it failed)".into(),
            },
        }
    }

    /// DHCP and health checks stop; the firewall and IPVS stay as they are.
    pub(super) async fn stop(mut self) {
        self.checks = None;
        self.tftp = None;
        self.dns = None;
        if let Some(mut d) = self.dhcp.take() {
            d.stop();
            if let Err(e) = d.wait().await {
                warn!("DHCP stopped with an error: {e}");
            }
        }
    }
}

fn service_status(s: &VirtualService, health: &HealthMap) -> ServiceStatus {
    let reals = s
        .reals
        .iter()
        .map(|r| RealStatus {
            name: r.name.clone(),
            address: r.address,
            port: r.port,
            weight: r.weight,
            health: if s.health.is_none() {
                Health::NotChecked
            } else if health.is_up(&health::Target::of(s, r)) {
                Health::Up
            } else {
                Health::Down
            },
        })
        .collect();
    ServiceStatus {
        name: s.name.clone(),
        key: s.key.to_string(),
        scheduler: s.scheduler.clone(),
        method: s.method,
        reals,
    }
}
