//! `headnode run`: the long-running daemon.
//!
//! Start-up applies everything (sysctls, firewall, balancer) before DHCP
//! answers, then tells systemd READY. While running it reconciles on a timer
//! so drift (`nft flush ruleset`, `ipvsadm -C`) is repaired, follows health
//! checks, reloads on SIGHUP or `headnode reload`, and answers `status` and
//! `leases` on its control socket. SIGTERM stops DHCP and health checks but
//! leaves the firewall in place: a stopped daemon must not open the box.

pub mod control;
pub mod notify;
mod running;

use crate::config;
use crate::health::HealthMap;
use crate::paths;
use control::Request;
use running::Running;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// The health the running daemon's checks see, so `plan` and `apply` run by
/// hand keep the real servers it drained drained; all up (an empty map) when
/// no daemon answers.
pub fn live_health() -> HealthMap {
    match control::ask(&paths::control_socket(), Request::Health) {
        Ok(Some(answer)) => HealthMap::from_json(answer),
        _ => HealthMap::default(),
    }
}

/// How often live state is compared with the config and repaired, unless
/// `$HEADNODE_RECONCILE_INTERVAL` (e.g. `2s`) says otherwise.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

pub fn reconcile_interval() -> Duration {
    std::env::var("HEADNODE_RECONCILE_INTERVAL")
        .ok()
        .and_then(|t| config::parse_duration(&t))
        .filter(|d| !d.is_zero())
        .unwrap_or(RECONCILE_INTERVAL)
}

struct ControlMsg {
    req: Request,
    reply: tokio::sync::oneshot::Sender<serde_json::Value>,
}

pub async fn run(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Arc::new(config::load_resolved(&path, crate::netinfo::ipv4_of)?);
    let started = Instant::now();
    // Bind the control socket first: a second daemon stops here, before it
    // touches the firewall the first one manages.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlMsg>(16);
    let socket = bind_control()?;
    tokio::spawn(serve_control(socket, ctl_tx));

    let mut state = Running::start(cfg).await?;
    let mut health = state.health_updates();
    notify::notify("READY=1");
    tracing::info!(config = %path.display(), "ready");

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut reconcile = tokio::time::interval(reconcile_interval());
    reconcile.tick().await;
    let mut watchdog =
        tokio::time::interval(notify::watchdog_interval().unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                state.reload(&path).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = reconcile.tick() => state.reconcile().await,
            Ok(()) = health.changed() => {
                let map = health.borrow_and_update().clone();
                state.health_changed(map).await;
            }
            _ = watchdog.tick() => notify::notify("WATCHDOG=1"),
            ended = state.dhcp_end() => state.dhcp_ended(ended),
            Some(msg) = ctl_rx.recv() => {
                let answer = match msg.req {
                    Request::Reload => {
                        let ok = state.reload(&path).await;
                        serde_json::json!({ "reloaded": ok })
                    }
                    Request::Status => state.status(started.elapsed()).await,
                    Request::Leases => state.leases(),
                    Request::Health => state.health().to_json(),
                };
                let _ = msg.reply.send(answer);
            }
        }
    }
    notify::notify("STOPPING=1");
    state.stop().await;
    let _ = std::fs::remove_file(paths::control_socket());
    tracing::info!("stopped; the firewall stays in place (`headnode clear` removes it)");
    Ok(())
}

fn bind_control() -> anyhow::Result<UnixListener> {
    use anyhow::Context;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = paths::run_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let sock = paths::control_socket();
    // A socket file left by a daemon that was killed: nothing listens on it.
    if control::ask(&sock, Request::Status)?.is_some() {
        anyhow::bail!(
            "another headnode daemon is running (control socket {})",
            sock.display()
        );
    }
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).with_context(|| format!("cannot bind {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn serve_control(listener: UnixListener, tx: mpsc::Sender<ControlMsg>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                BufReader::new(rd).read_line(&mut line),
            )
            .await;
            let answer = match (read, Request::parse(&line)) {
                (Ok(Ok(_)), Some(req)) => {
                    let (reply, rx) = tokio::sync::oneshot::channel();
                    if tx.send(ControlMsg { req, reply }).await.is_err() {
                        return;
                    }
                    rx.await.unwrap_or(serde_json::Value::Null)
                }
                _ => {
                    serde_json::json!({ "error": "unknown request; use status, leases, health or reload" })
                }
            };
            let mut text = answer.to_string();
            text.push('\n');
            let _ = wr.write_all(text.as_bytes()).await;
        });
    }
}
