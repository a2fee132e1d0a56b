//! The daemon's side of `[ha]`: the keepalived file it writes, the VRRP
//! state keepalived tells it, and the IPVS sync daemon that follows that
//! state (the plan is `crate::ha`'s; this carries it out).

use crate::config::Config;
use crate::config::model::Ha;
use crate::control::HaStatus;
use crate::ha::{self, Known, State};
use crate::ipvs;
use std::time::Instant;
use tracing::{error, info, warn};

pub(super) struct HaRuntime {
    state: State,
    known: Known,
    since: Instant,
    sync_error: Option<String>,
}

impl HaRuntime {
    /// Until keepalived says, the state is what the addresses show: a
    /// restarted daemon on the master finds the virtual address there.
    pub(super) fn start(ha: &Ha) -> HaRuntime {
        let state = match crate::netinfo::read() {
            Ok(snap) => {
                let local: Vec<_> = snap.addrs.iter().map(|a| a.net.addr()).collect();
                ha::state_from_address(ha, &local)
            }
            Err(e) => {
                warn!("HA: cannot read the addresses ({e}); backup until keepalived says");
                State::Backup
            }
        };
        info!(state = %state, "HA: {state} (from the addresses, until keepalived says)");
        HaRuntime {
            state,
            known: Known::FromAddress,
            since: Instant::now(),
            sync_error: None,
        }
    }

    /// keepalived's word. Logged at warning when this node stops serving.
    pub(super) fn set_state(&mut self, state: State) {
        if state == self.state && self.known == Known::Notified {
            return;
        }
        let from = self.state;
        self.state = state;
        self.known = Known::Notified;
        self.since = Instant::now();
        match state {
            State::Master => {
                info!(from = %from, state = %state, "HA: master: this node holds the virtual addresses")
            }
            State::Backup => {
                info!(from = %from, state = %state, "HA: backup: the peer holds the virtual addresses")
            }
            State::Fault | State::Stop => {
                warn!(from = %from, state = %state, "HA: {state}: this node does not hold the virtual addresses")
            }
        }
    }

    /// Bring the IPVS sync daemons to what the state asks (reconcile: an
    /// unchanged state changes nothing). Only with the IPVS backend.
    pub(super) fn sync(&mut self, ha: &Ha, ipvs_backend: bool) -> Option<String> {
        if !ipvs_backend {
            self.sync_error = None;
            return None;
        }
        let desired = ha::sync_daemons(ha, self.state, true);
        let result = super::heartbeat::blocking(|| ipvs::sync_reconcile_live(desired));
        self.sync_error = match result {
            Ok(ops) => {
                for op in ops {
                    info!("HA: {op}");
                }
                None
            }
            Err(e) => {
                let msg = format!("IPVS sync daemon: {e}");
                if self.sync_error.as_deref() != Some(msg.as_str()) {
                    error!("HA: {msg}");
                }
                Some(msg)
            }
        };
        self.sync_error.clone()
    }

    pub(super) fn status(&self, cfg: &Config, ha: &Ha, ipvs_backend: bool) -> HaStatus {
        let (sync_daemons, sync_error) = if ipvs_backend {
            match super::heartbeat::blocking(ipvs::sync_live) {
                Ok(d) => (d.iter().map(ToString::to_string).collect(), None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            }
        } else {
            (Vec::new(), None)
        };
        HaStatus {
            role: ha.role,
            priority: ha.priority,
            state: self.state,
            known: self.known,
            since_s: self.since.elapsed().as_secs(),
            peer: ha.peer,
            public_address: ha.public_address,
            lan_address: ha.lan_address,
            sync_daemons,
            sync_error: sync_error.or_else(|| self.sync_error.clone()),
            pool: cfg.pool_halves().0,
        }
    }
}

/// Write the keepalived file for `cfg` when it differs from what is there;
/// keepalived reads it at its next start or reload (`systemctl reload
/// keepalived`), which the log line asks for.
pub(super) fn write_keepalived(cfg: &Config, ha: &Ha) {
    let text = ha::keepalived_config_here(cfg, ha);
    let path = &ha.keepalived_config;
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return;
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            crate::paths::atomic_write(
                path,
                text.as_bytes(),
                0o644,
                crate::paths::Existing::Replace,
            )
        });
    match written {
        Ok(()) => warn!(
            file = %path.display(),
            "HA: keepalived config written; reload keepalived to use it (systemctl reload keepalived)"
        ),
        Err(e) => error!(file = %path.display(), "HA: cannot write the keepalived config: {e}"),
    }
}
