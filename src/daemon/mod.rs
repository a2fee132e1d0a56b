//! `headnode run`: the long-running daemon.
//!
//! Start-up applies everything (sysctls, firewall, balancer) before DHCP
//! answers, then tells systemd READY. While running it reconciles on a timer
//! so drift (`nft flush ruleset`, `ipvsadm -C`) is repaired, follows health
//! checks, reloads on SIGHUP or `headnode reload`, and answers the requests
//! of `crate::control` on its control socket. SIGTERM stops DHCP and health checks but
//! leaves the firewall in place: a stopped daemon must not open the box.

pub mod confirm;
pub mod notify;
mod running;

use crate::config;
use crate::control::{self, Answer, ApplyOutcome, Request};
use crate::health::HealthMap;
use crate::paths;
use running::{PendingConfirm, Running};
use std::path::{Path, PathBuf};
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
    match control::health(&paths::control_socket()) {
        Ok(health) => health.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}; planning with every real server up");
            HealthMap::default()
        }
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
    reply: tokio::sync::oneshot::Sender<Answer>,
}

pub async fn run(path: PathBuf) -> anyhow::Result<()> {
    let (cfg, text) = config::load_resolved_text(&path, crate::netinfo::ipv4_of)?;
    let (cfg, text, pending) = held_at_start(&path, cfg, text);
    let started = Instant::now();
    // Bind the control socket first: a second daemon stops here, before it
    // touches the firewall the first one manages.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlMsg>(16);
    let socket = bind_control()?;
    tokio::spawn(serve_control(socket, ctl_tx));

    let mut state = Running::start(Arc::new(cfg), text, pending).await?;
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
        let confirm_deadline = state.confirm_deadline();
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
            () = until(confirm_deadline) => state.roll_back().await,
            Some(msg) = ctl_rx.recv() => {
                let answer = match msg.req {
                    Request::Reload => Answer::Reload(state.reload(&path).await),
                    Request::Apply { config, confirm_s } => Answer::Apply(match same_file(&config, &path) {
                        true => state.apply(&path, confirm_s.map(Duration::from_secs)).await,
                        false => ApplyOutcome::Refused {
                            why: format!(
                                "the daemon runs {}, not {}; apply that file, or stop the daemon first",
                                path.display(),
                                config.display()
                            ),
                        },
                    }),
                    Request::Confirm => Answer::Confirm(state.confirm()),
                    Request::Status => Answer::Status(Box::new(state.status(started.elapsed()).await)),
                    Request::Leases => Answer::Leases { leases: state.leases() },
                    Request::Health => Answer::Health { health: state.health().clone() },
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

/// An `apply --confirm` whose window was open when the daemon stopped: still
/// open, it is held again for the time left; over, the config from before
/// that apply is the one to run (the file keeps the new text for the next
/// reload).
fn held_at_start(
    path: &Path,
    cfg: config::Config,
    text: String,
) -> (config::Config, String, Option<PendingConfirm>) {
    let dir = paths::state_dir();
    let Some(held) = confirm::Held::load(&dir) else {
        return (cfg, text, None);
    };
    let previous = match config::parse_resolved(&held.previous, path, crate::netinfo::ipv4_of) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                "an apply --confirm was pending, but the config from before it no longer loads ({e:#}); running {}",
                path.display()
            );
            confirm::Held::remove(&dir);
            return (cfg, text, None);
        }
    };
    match held.remaining() {
        Some(left) => {
            tracing::warn!(
                "an apply --confirm is still pending: rolled back in {}s unless `headnode confirm` arrives",
                left.as_secs()
            );
            let pending = PendingConfirm {
                deadline: Instant::now() + left,
                previous: Arc::new(previous),
                previous_text: held.previous,
            };
            (cfg, text, Some(pending))
        }
        None => {
            tracing::warn!(
                "an apply --confirm was not confirmed before the daemon stopped: running the config from before it"
            );
            confirm::Held::remove(&dir);
            (previous, held.previous, None)
        }
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Whether two config paths name the same file (relative paths and links
/// resolved); paths that cannot be resolved compare as given.
fn same_file(a: &Path, b: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    real(a) == real(b)
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
    if control::listening(&sock)? {
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
            let request = match read {
                Ok(Ok(_)) => {
                    control::decode::<Request>(&line, "the client").map_err(|e| e.to_string())
                }
                Ok(Err(e)) => Err(format!("cannot read the request: {e}")),
                Err(_) => Err("no request within 5 s".to_string()),
            };
            let answer = match request {
                Ok(req) => {
                    let (reply, rx) = tokio::sync::oneshot::channel();
                    if tx.send(ControlMsg { req, reply }).await.is_err() {
                        return;
                    }
                    // The main loop drops the sender only when it stops.
                    let Ok(answer) = rx.await else { return };
                    answer
                }
                Err(message) => Answer::Error { message },
            };
            let _ = wr.write_all(control::encode(&answer).as_bytes()).await;
        });
    }
}
