//! `headnode run`: the long-running daemon.
//!
//! Start-up applies everything (sysctls, firewall, balancer) before DHCP
//! answers, then tells systemd READY. While running it reconciles on a timer
//! so drift (`nft flush ruleset`, `ipvsadm -C`) is repaired, follows health
//! checks, reloads on SIGHUP or `headnode reload`, and answers the requests
//! of `crate::control` on its control socket. SIGTERM stops DHCP and health checks but
//! leaves the firewall in place: a stopped daemon must not open the box.

pub mod confirm;
mod ha;
mod heartbeat;
pub mod notify;
mod running;

use crate::config::model::Backend;
use crate::config::{self, Config};
use crate::control::{
    self, Answer, ApplyOutcome, BalancerStatus, ConfirmOutcome, DaemonInfo, DaemonStatus,
    DhcpStatus, FirewallState, FirewallStatus, ReloadOutcome, Request,
};
use crate::dhcp::ReleaseOutcome;
use crate::firewall::fallback::Source;
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

/// `force`: start even when the config's ruleset would not let an SSH
/// session into the box back in (the guard `apply` runs).
pub async fn run(path: PathBuf, force: bool) -> anyhow::Result<()> {
    // Signals from the first instant: a SIGTERM or SIGHUP during start-up is
    // handled, not fatal.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let started = Instant::now();
    heartbeat::beat();
    // Bind the control socket first: a second daemon stops here, before it
    // touches the firewall the first one manages.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlMsg>(16);
    let socket = bind_control()?;
    tokio::spawn(serve_control(socket, ctl_tx));
    spawn_watchdog();

    // The firewall comes first: the config's, or until the config loads,
    // the fallback (last applied, else the built-in minimal table).
    let (base, text) = match config::load_text(&path) {
        Ok((cfg, text)) => (cfg, text),
        Err(e) => {
            let mut waiting = Waiting {
                path: &path,
                started,
                hup: &mut hup,
                term: &mut term,
                int: &mut int,
                ctl: &mut ctl_rx,
            };
            match waiting.for_config(e).await? {
                Some(loaded) => loaded,
                None => return Ok(()),
            }
        }
    };
    let (base, text, pending) = held_at_start(&path, base, text);
    // At boot nobody is logged in; started by hand over SSH, the admin must
    // not be locked out by it.
    let base = Arc::new(base);
    guard_start(&base, force)?;
    let mut state = Running::start(base, text, pending).await?;
    let mut health = state.health_updates();
    let (scrape_tx, mut scrapes) = mpsc::channel::<crate::metrics::Scrape>(4);
    let mut metrics = crate::metrics::Endpoint::new(scrape_tx);
    metrics.follow(state.metrics_listen());
    notify::notify("READY=1");
    notify::status(&notify::status_line(&state.summary()));
    tracing::info!(config = %path.display(), "ready");

    let mut reconcile = tokio::time::interval(reconcile_interval());
    reconcile.tick().await;
    // An "auto" public address is followed within a second.
    let mut address = tokio::time::interval(Duration::from_secs(1));
    address.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let confirm_deadline = state.confirm_deadline();
        heartbeat::beat();
        // After a reload, or to retry a bind that failed.
        metrics.follow(state.metrics_listen());
        tokio::select! {
            _ = hup.recv() => {
                notify::reloading();
                state.reload(&path, false).await;
                notify::reloaded(&notify::status_line(&state.summary()));
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = reconcile.tick() => {
                state.reconcile().await;
                notify::status(&notify::status_line(&state.summary()));
            }
            Some(reply) = scrapes.recv() => {
                let _ = reply.send(state.metrics(started.elapsed()).await);
            }
            _ = address.tick() => {
                state.follow_public_address().await;
                state.watch_dhcp();
                state.refresh_pool_names_if_stale();
            }
            Ok(()) = health.changed() => {
                let map = health.borrow_and_update().clone();
                state.health_changed(map).await;
                notify::status(&notify::status_line(&state.summary()));
            }
            event = state.next_dhcp_event() => state.dhcp_event(event),
            () = until(confirm_deadline) => state.roll_back().await,
            Some(msg) = ctl_rx.recv() => {
                let answer = match msg.req {
                    Request::Reload { force } => {
                        notify::reloading();
                        let outcome = state.reload(&path, force).await;
                        notify::reloaded(&notify::status_line(&state.summary()));
                        Answer::Reload(outcome)
                    }
                    Request::Apply { config, confirm_s, force } => Answer::Apply(match same_file(&config, &path) {
                        true => {
                            notify::reloading();
                            let outcome = state.apply(&path, confirm_s.map(Duration::from_secs), force).await;
                            notify::reloaded(&notify::status_line(&state.summary()));
                            outcome
                        }
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
                    Request::Unknown => Answer::Unknown(state.unknown_clients()),
                    Request::Release { key } => Answer::Release(state.release(key)),
                    Request::Health => Answer::Health { health: state.health().clone() },
                    Request::HaState { state: s } => Answer::HaState { error: state.ha_state(s) },
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
    let previous = match config::parse(&held.previous, path) {
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

fn guard_start(base: &Arc<Config>, force: bool) -> anyhow::Result<()> {
    let cfg = running::resolve(base);
    for l in crate::plan::lockouts(&cfg, &crate::firewall::guard::sessions()) {
        if !force {
            return Err(crate::errors::InvalidInput(format!(
                "refusing to start: {l}; add a rule for it, or `headnode run --force`"
            ))
            .into());
        }
        tracing::warn!("--force: {l}");
    }
    Ok(())
}

/// Ping systemd's watchdog while the main loop's heartbeat is recent and no
/// part is stuck (`heartbeat::stuck`); otherwise the pings stop and systemd
/// restarts the daemon.
fn spawn_watchdog() {
    let Some(every) = notify::watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match heartbeat::stuck() {
                None => notify::notify("WATCHDOG=1"),
                Some(why) => tracing::error!("{why}; no watchdog ping"),
            }
        }
    });
}

/// The daemon before it has a config that loads: the fallback firewall is
/// in place, the config is read again every 2 s, on SIGHUP and on `reload`,
/// and `status` says why.
struct Waiting<'a> {
    path: &'a std::path::Path,
    started: Instant,
    hup: &'a mut tokio::signal::unix::Signal,
    term: &'a mut tokio::signal::unix::Signal,
    int: &'a mut tokio::signal::unix::Signal,
    ctl: &'a mut mpsc::Receiver<ControlMsg>,
}

impl Waiting<'_> {
    /// The config once it loads; `None` when stopped first.
    async fn for_config(
        &mut self,
        first: config::LoadError,
    ) -> anyhow::Result<Option<(Config, String)>> {
        let mut why = one_line(first);
        let nft = crate::firewall::nft::Nft::from_env();
        let dir = paths::state_dir();
        let reason = format!("the config does not load: {why}");
        let source = tokio::task::block_in_place(|| {
            crate::firewall::fallback::put_in_place(&nft, &dir, &reason)
        })
        .map_err(|e| anyhow::anyhow!("{reason}; and no fallback firewall could be loaded: {e}"))?;
        notify::notify("READY=1");
        notify::notify(&format!(
            "STATUS=waiting for a valid config; firewall: {}",
            source.describe()
        ));
        let mut retry = tokio::time::interval(Duration::from_secs(2));
        retry.tick().await;
        loop {
            heartbeat::beat();
            let attempt = tokio::select! {
                _ = retry.tick() => true,
                _ = self.hup.recv() => true,
                _ = self.term.recv() => return Ok(None),
                _ = self.int.recv() => return Ok(None),
                Some(msg) = self.ctl.recv() => {
                    let answer = match msg.req {
                        Request::Reload { .. } => match config::load_text(self.path) {
                            Ok(loaded) => {
                                let _ = msg.reply.send(Answer::Reload(ReloadOutcome::Reloaded));
                                tracing::info!(config = %self.path.display(), "the config loads now; starting");
                                return Ok(Some(loaded));
                            }
                            Err(e) => Answer::Reload(ReloadOutcome::Rejected {
                                errors: crate::errors::render(&e.into()),
                            }),
                        },
                        // The config must load before anything can be held for a confirm.
                        Request::Apply { confirm_s: Some(_), .. } => Answer::Apply(ApplyOutcome::Refused {
                            why: "the daemon waits for a config that loads and runs the fallback firewall; \
                                  apply without --confirm (or `headnode reload`) once the config is fixed"
                                .into(),
                        }),
                        Request::Apply { config, .. } if !same_file(&config, self.path) => {
                            Answer::Apply(ApplyOutcome::Refused {
                                why: format!(
                                    "the daemon runs {}; apply that file, or stop the daemon",
                                    self.path.display()
                                ),
                            })
                        }
                        Request::Apply { confirm_s: None, .. } => match config::load_text(self.path) {
                            Ok(loaded) => {
                                let _ = msg.reply.send(Answer::Apply(ApplyOutcome::Applied {
                                    confirm_within_s: None,
                                }));
                                tracing::info!(config = %self.path.display(), "the config loads now; starting");
                                return Ok(Some(loaded));
                            }
                            Err(e) => Answer::Apply(ApplyOutcome::Rejected {
                                errors: crate::errors::render(&e.into()),
                            }),
                        },
                        Request::Confirm => Answer::Confirm(ConfirmOutcome::NothingPending),
                        Request::Status => Answer::Status(Box::new(self.status(&why, &source))),
                        Request::Leases => Answer::Leases { leases: Vec::new() },
                        Request::Unknown => Answer::Unknown(Default::default()),
                        Request::Release { .. } => Answer::Release(ReleaseOutcome::NotFound {
                            why: "the daemon runs no DHCP server until its config loads".into(),
                        }),
                        Request::Health => Answer::Health { health: HealthMap::default() },
                        Request::HaState { .. } => Answer::HaState {
                            error: Some(format!("no config in effect yet: {why}")),
                        },
                    };
                    let _ = msg.reply.send(answer);
                    false
                }
            };
            if !attempt {
                continue;
            }
            match config::load_text(self.path) {
                Ok(loaded) => {
                    tracing::info!(config = %self.path.display(), "the config loads now; starting");
                    return Ok(Some(loaded));
                }
                Err(e) => {
                    let now = one_line(e);
                    if now != why {
                        tracing::error!("the config still does not load: {now}");
                        why = now;
                    }
                }
            }
        }
    }
}

impl Waiting<'_> {
    fn status(&self, why: &str, source: &Source) -> DaemonStatus {
        DaemonStatus {
            daemon: DaemonInfo {
                pid: std::process::id(),
                uptime_s: self.started.elapsed().as_secs(),
                config: self.path.to_owned(),
                reconcile_interval_s: reconcile_interval().as_secs_f64(),
                last_error: Some(format!("the config does not load: {why}")),
            },
            firewall: FirewallStatus {
                state: FirewallState::Fallback {
                    loaded: source.describe(),
                },
                source: source.clone(),
                public_address: None,
                drift_repairs: 0,
            },
            sysctl_problems: Vec::new(),
            balancer: BalancerStatus {
                backend: Backend::Auto,
                reason: "no config loaded yet".into(),
                drift_repairs: 0,
                ipvs: None,
                services: Vec::new(),
            },
            dhcp: DhcpStatus {
                enabled: false,
                server: None,
                restarts: 0,
            },
            tftp: None,
            dns: None,
            ha: None,
            leases: Vec::new(),
        }
    }
}

/// A load error in one line for status and the journal (`headnode check`
/// shows every diagnostic).
fn one_line(e: config::LoadError) -> String {
    crate::errors::render(&e.into())
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
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
