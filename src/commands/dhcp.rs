//! `headnode dhcp`: serve DHCP alone, re-reading the config on SIGHUP.

use super::InvalidInput;
use crate::config;
use crate::dhcp::{DhcpError, Server};
use std::path::Path;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

/// Config mistakes exit 1, the rest 2.
pub(super) fn wrap(e: DhcpError) -> anyhow::Error {
    if e.is_config() {
        InvalidInput(e.to_string()).into()
    } else {
        e.into()
    }
}

pub fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = super::load_config(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut server = Server::start(Arc::new(cfg)).map_err(wrap)?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => match config::load(path) {
                    Ok(c) => match server.reload(Arc::new(c)) {
                        Ok(()) => {}
                        Err(e) => error!("reload rejected, still serving the previous config: {e}"),
                    },
                    Err(e) => error!("reload rejected, still serving the previous config:\n{e}"),
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
                r = server.wait() => return r.map_err(wrap),
            }
        }
        info!("stopping on signal");
        server.stop();
        let r = server.wait().await.map_err(wrap);
        info!(
            "DHCP counters: {}",
            serde_json::to_string(&server.counters()).unwrap_or_default()
        );
        r
    })
}
