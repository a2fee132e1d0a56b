//! Health checks for the balancer's real servers: tcp connect or HTTP GET
//! (status code), every `interval`, each with a `timeout`. A server goes
//! down after `fall` failures in a row and comes back after `rise`
//! successes; the balancer drains a down server (weight 0).
//!
//! [`Tracker`] is the pure rise/fall state machine; [`spawn`] runs one task
//! per real server and publishes the states on a `watch` channel that the
//! daemon reconciles from.

use crate::config::model::{CheckKind, HealthCheck, RealServer, VirtualService};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One real server of one virtual service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    pub service: String,
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl Target {
    pub fn of(s: &VirtualService, r: &RealServer) -> Target {
        Target {
            service: s.name.clone(),
            addr: r.address,
            port: r.port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Up,
    Down,
}

/// Health of every checked real server. A server with no entry (no check
/// configured, or not checked yet) counts as up. On the control socket it
/// travels as a list of [target, state] (JSON object keys can only be strings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(Target, State)>", into = "Vec<(Target, State)>")]
pub struct HealthMap(BTreeMap<Target, State>);

impl From<Vec<(Target, State)>> for HealthMap {
    fn from(list: Vec<(Target, State)>) -> HealthMap {
        HealthMap(list.into_iter().collect())
    }
}

impl From<HealthMap> for Vec<(Target, State)> {
    fn from(m: HealthMap) -> Self {
        m.0.into_iter().collect()
    }
}

impl HealthMap {
    pub fn is_up(&self, t: &Target) -> bool {
        self.0.get(t) != Some(&State::Down)
    }
    pub fn set(&mut self, t: Target, s: State) {
        self.0.insert(t, s);
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Target, &State)> {
        self.0.iter()
    }
}

/// The rise/fall state machine of one server. Starts up, as keepalived
/// does, so a restart does not drain every server until checks pass.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: State,
    streak: u32,
    rise: u32,
    fall: u32,
}

impl Tracker {
    pub fn new(rise: u32, fall: u32) -> Tracker {
        Tracker {
            state: State::Up,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Record one probe result; the new state when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<State> {
        let (against, need, flip) = match self.state {
            State::Up => (!ok, self.fall, State::Down),
            State::Down => (ok, self.rise, State::Up),
        };
        if !against {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < need {
            return None;
        }
        self.streak = 0;
        self.state = flip;
        Some(flip)
    }
}

/// One probe; `Err` says why it failed.
pub async fn probe(kind: &CheckKind, addr: SocketAddrV4, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, probe_inner(kind, addr)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn probe_inner(kind: &CheckKind, addr: SocketAddrV4) -> Result<(), String> {
    let mut conn = TcpStream::connect(SocketAddr::V4(addr))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let CheckKind::Http {
        path,
        expect_status,
    } = kind
    else {
        return Ok(());
    };
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: headnode\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    // Only the status line matters; read until it is complete.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = conn
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP reply: {line:?}"))?;
    if code == *expect_status {
        Ok(())
    } else {
        Err(format!("HTTP status {code}, want {expect_status}"))
    }
}

/// Running checks; dropping it stops them.
pub struct Checks {
    rx: watch::Receiver<HealthMap>,
    _tasks: JoinSet<()>,
}

impl Checks {
    pub fn subscribe(&self) -> watch::Receiver<HealthMap> {
        self.rx.clone()
    }
}

/// Start a check task for every real server of every service that has a
/// health check. Needs a tokio runtime. State changes are logged at info.
pub fn spawn(services: &[VirtualService]) -> Checks {
    let (tx, rx) = watch::channel(HealthMap::default());
    let mut tasks = JoinSet::new();
    for s in services {
        let Some(check) = &s.health else { continue };
        for r in &s.reals {
            let target = Target::of(s, r);
            tasks.spawn(run_one(target, check.clone(), tx.clone()));
        }
    }
    Checks { rx, _tasks: tasks }
}

async fn run_one(target: Target, check: HealthCheck, tx: watch::Sender<HealthMap>) {
    let addr = SocketAddrV4::new(target.addr, target.port);
    let mut tracker = Tracker::new(check.rise, check.fall);
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = probe(&check.kind, addr, check.timeout).await;
        if let Some(state) = tracker.observe(result.is_ok()) {
            match &result {
                Err(why) => {
                    tracing::info!(service = %target.service, real = %addr, %why, "health: down, draining")
                }
                Ok(()) => {
                    tracing::info!(service = %target.service, real = %addr, "health: up, restoring")
                }
            }
            tx.send_modify(|m| m.set(target.clone(), state));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::model::{Method, Origin, VirtualKey};
    use tokio::net::TcpListener;

    #[test]
    fn tracker_needs_fall_failures_and_rise_successes_in_a_row() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None, "a success resets the failure streak");
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(State::Down));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(
            t.observe(false),
            None,
            "a failure resets the success streak"
        );
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(State::Up));
        assert_eq!(t.state(), State::Up);
    }

    /// A port on loopback with nothing listening.
    async fn closed_port() -> SocketAddrV4 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(a) = l.local_addr().unwrap() else {
            unreachable!()
        };
        drop(l);
        a
    }

    /// A one-line HTTP server on loopback answering every request with `status`.
    async fn http_server(status: u16) -> SocketAddrV4 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(a) = l.local_addr().unwrap() else {
            unreachable!()
        };
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(
                        format!("HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                    )
                    .await;
            }
        });
        a
    }

    fn http(path: &str) -> CheckKind {
        CheckKind::Http {
            path: path.into(),
            expect_status: 200,
        }
    }

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn tcp_probe_up_on_listener_down_on_closed_port() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(up) = l.local_addr().unwrap() else {
            unreachable!()
        };
        assert!(probe(&CheckKind::Tcp, up, T).await.is_ok());
        let err = probe(&CheckKind::Tcp, closed_port().await, T)
            .await
            .unwrap_err();
        assert!(err.contains("connect"), "{err}");
    }

    #[tokio::test]
    async fn http_probe_checks_the_status_code() {
        assert!(probe(&http("/"), http_server(200).await, T).await.is_ok());
        let err = probe(&http("/"), http_server(503).await, T)
            .await
            .unwrap_err();
        assert_eq!(err, "HTTP status 503, want 200");
    }

    #[tokio::test]
    async fn http_probe_times_out_on_a_silent_server() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(a) = l.local_addr().unwrap() else {
            unreachable!()
        };
        // Accepts (the kernel does) but never answers.
        let err = probe(&http("/"), a, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        drop(l);
    }

    fn service(reals: &[SocketAddrV4], kind: CheckKind) -> VirtualService {
        VirtualService {
            name: "web".into(),
            key: VirtualKey::Fwmark { mark: 1 },
            scheduler: "rr".into(),
            method: Method::Masq,
            persistence: Duration::ZERO,
            persistence_netmask: Ipv4Addr::BROADCAST,
            reals: reals
                .iter()
                .map(|a| RealServer {
                    name: a.to_string(),
                    address: *a.ip(),
                    port: a.port(),
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                })
                .collect(),
            health: Some(HealthCheck {
                kind,
                interval: Duration::from_millis(50),
                timeout: Duration::from_millis(500),
                rise: 2,
                fall: 2,
            }),
            sorry_server: None,
            origin: Origin {
                line: 1,
                service: None,
            },
        }
    }

    #[tokio::test]
    async fn spawned_checks_drain_a_dead_server_and_restore_it() {
        let good = http_server(200).await;
        let dead = closed_port().await;
        let s = service(&[good, dead], http("/health"));
        let checks = spawn(std::slice::from_ref(&s));
        let mut rx = checks.subscribe();
        let dead_t = Target::of(&s, &s.reals[1]);
        let good_t = Target::of(&s, &s.reals[0]);
        tokio::time::timeout(T, rx.wait_for(|m| !m.is_up(&dead_t)))
            .await
            .expect("dead server marked down within interval × fall")
            .unwrap();
        assert!(rx.borrow().is_up(&good_t));
        // Bring it back on the same port.
        let l = TcpListener::bind(SocketAddr::V4(dead)).await.unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        tokio::time::timeout(T, rx.wait_for(|m| m.is_up(&dead_t)))
            .await
            .expect("restored after rise successes")
            .unwrap();
        drop(checks);
    }
}
