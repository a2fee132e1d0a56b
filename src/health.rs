//! Health checks for the balancer's real servers: tcp connect or HTTP GET
//! (status code), every `interval`, each with a `timeout`. A server goes
//! down after `fall` failures in a row and comes back after `rise`
//! successes; the balancer drains a down server (weight 0). While none of
//! a service's reals is up, the first one that passes a check comes back at
//! once: `rise` guards the other reals' clients against a flapping server,
//! and when nothing else serves there is nobody to guard.
//!
//! [`Tracker`] is the pure rise/fall state machine; [`spawn`] runs one task
//! per real server and publishes the states on a `watch` channel that the
//! daemon reconciles from; [`Checks::check_now`] probes a server at once.
//!
//! The checks run on a thread of their own with a single-threaded runtime,
//! as keepalived's checker is one process with one event loop: thousands
//! of short connections a second then wake one thread, not the daemon's
//! workers in turn (no work stealing, no cross-thread wake-ups), and DHCP
//! never waits behind them.

use crate::config::model::{CheckKind, HealthCheck, RealServer, VirtualService};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
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

    /// Record one probe result; the new state when it changed. `others_up`
    /// says whether another real of the same service is up: when none is, a
    /// down server comes back on its first success.
    pub fn observe(&mut self, ok: bool, others_up: bool) -> Option<State> {
        let (against, need, flip) = match self.state {
            State::Up => (!ok, self.fall, State::Down),
            State::Down if !others_up => (ok, 1, State::Up),
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
    /// Per real server address, the wake-up of each task checking it (one
    /// per service it serves).
    now: BTreeMap<Ipv4Addr, Vec<Arc<Notify>>>,
    /// Dropped with `Checks`: the checks' thread then ends its runtime,
    /// which cancels every check.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Checks {
    pub fn subscribe(&self) -> watch::Receiver<HealthMap> {
        self.rx.clone()
    }

    /// Check every real server at `addr` now rather than at its next
    /// interval (for a node that has just taken its DHCP lease); the next
    /// periodic check then comes one interval later. When that check fails
    /// (the node's service is not up yet), it looks again after 0.5 s, 1 s,
    /// 2 s, ... while that is sooner than the interval. Returns how many
    /// checks were started: 0 when `addr` is no checked real server. A check
    /// already under way is followed by one more.
    pub fn check_now(&self, addr: Ipv4Addr) -> usize {
        let wake = self.now.get(&addr).map_or(&[][..], Vec::as_slice);
        for n in wake {
            n.notify_one();
        }
        wake.len()
    }
}

/// Start a check task for every real server of every service that has a
/// health check, on the checks' own thread. State changes are logged at info.
pub fn spawn(services: &[VirtualService]) -> Checks {
    let (tx, rx) = watch::channel(HealthMap::default());
    let mut ones = Vec::new();
    let mut now: BTreeMap<Ipv4Addr, Vec<Arc<Notify>>> = BTreeMap::new();
    let checked = || services.iter().filter(|s| s.health.is_some());
    let total = checked().map(|s| s.reals.len()).sum::<usize>().max(1);
    let mut k = 0;
    for s in checked() {
        let Some(check) = &s.health else { continue };
        let service: Arc<[Target]> = s.reals.iter().map(|r| Target::of(s, r)).collect();
        for (i, r) in s.reals.iter().enumerate() {
            let wake = Arc::new(Notify::new());
            now.entry(r.address).or_default().push(wake.clone());
            let one = One {
                me: i,
                service: service.clone(),
                check: check.clone(),
                // Spread evenly over the interval, as keepalived spreads its
                // first checks at random: 2,000 checks fired in the same
                // millisecond overflow listen backlogs and neighbour queues
                // and fail for no fault of the servers.
                phase: check.interval.mul_f64(k as f64 / total as f64),
                wake,
            };
            k += 1;
            ones.push(one);
        }
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("health checks cannot run: no runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let mut tasks = JoinSet::new();
                for one in ones {
                    tasks.spawn(one.run(tx.clone()));
                }
                // Until `Checks` is dropped; dropping the runtime then
                // cancels the tasks.
                let _ = stopped.await;
            });
        });
    if let Err(e) = started {
        tracing::error!("health checks cannot run: no thread: {e}");
    }
    Checks {
        rx,
        now,
        _stop: stop,
    }
}

/// The first look again after a `check_now` that failed; then 2x, 4x, ...
/// while shorter than the check's interval.
const FIRST_FOLLOW_UP: Duration = Duration::from_millis(500);

/// Resolves at `at`; never without it.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The check of one real server.
struct One {
    /// Its index in `service`, every real of its service.
    me: usize,
    service: Arc<[Target]>,
    check: HealthCheck,
    /// When its first check comes, after start.
    phase: Duration,
    wake: Arc<Notify>,
}

impl One {
    async fn run(self, tx: watch::Sender<HealthMap>) {
        let target = &self.service[self.me];
        let addr = SocketAddrV4::new(target.addr, target.port);
        let mut tracker = Tracker::new(self.check.rise, self.check.fall);
        let first = tokio::time::Instant::now() + self.phase;
        let mut tick = tokio::time::interval_at(first, self.check.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After `check_now` fails (a node that just took its lease is often
        // not serving yet): when to look again, and the delay that led there.
        let mut follow_up: Option<(tokio::time::Instant, Duration)> = None;
        loop {
            let woken = tokio::select! {
                _ = tick.tick() => false,
                () = self.wake.notified() => {
                    tick.reset();
                    follow_up = None;
                    true
                }
                () = until(follow_up.map(|(at, _)| at)) => true,
            };
            let result = probe(&self.check.kind, addr, self.check.timeout).await;
            // Look again soon, backing off, until it answers or the regular
            // interval is sooner.
            follow_up = match (woken, result.is_ok()) {
                (true, false) => {
                    let delay = follow_up.map_or(FIRST_FOLLOW_UP, |(_, d)| d * 2);
                    (delay < self.check.interval)
                        .then(|| (tokio::time::Instant::now() + delay, delay))
                }
                _ => None,
            };
            // Only a success of a down server needs the rest of the service:
            // scanning it at every check costs O(reals) each, O(reals²) per
            // interval (2,000 reals: 4 million lookups a second).
            let others_up = tracker.state() == State::Down && result.is_ok() && {
                let map = tx.borrow();
                (self.service.iter().enumerate()).any(|(i, t)| i != self.me && map.is_up(t))
            };
            let Some(state) = tracker.observe(result.is_ok(), others_up) else {
                continue;
            };
            match (&result, others_up) {
                (Err(why), _) => {
                    tracing::info!(service = %target.service, real = %addr, %why, "health: down, draining")
                }
                (Ok(()), true) => {
                    tracing::info!(service = %target.service, real = %addr, "health: up, restoring")
                }
                (Ok(()), false) => tracing::info!(
                    service = %target.service,
                    real = %addr,
                    "health: up, restoring at once (no other real of the service is up)"
                ),
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
    fn tracker_needs_fall_failures_and_rise_successes_in_a_row_while_others_serve() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.observe(false, true), None);
        assert_eq!(t.observe(false, true), None);
        assert_eq!(
            t.observe(true, true),
            None,
            "a success resets the failure streak"
        );
        assert_eq!(t.observe(false, true), None);
        assert_eq!(t.observe(false, true), None);
        assert_eq!(t.observe(false, true), Some(State::Down));
        assert_eq!(t.observe(false, true), None);
        assert_eq!(t.observe(true, true), None);
        assert_eq!(
            t.observe(false, true),
            None,
            "a failure resets the success streak"
        );
        assert_eq!(t.observe(true, true), None);
        assert_eq!(t.observe(true, true), Some(State::Up));
        assert_eq!(t.state(), State::Up);
    }

    #[test]
    fn tracker_restores_at_once_when_no_other_real_is_up() {
        // (ok, others_up, the new state if it changes)
        let steps: [(bool, bool, Option<State>); 9] = [
            (false, false, None),
            (false, false, None),
            (false, false, Some(State::Down)),
            (false, false, None),
            // The first success while nothing else serves: up at once.
            (true, false, Some(State::Up)),
            // Going down still takes `fall` failures, alone or not.
            (false, false, None),
            (false, false, None),
            (false, true, Some(State::Down)),
            // Others up: a success is one of `rise`.
            (true, true, None),
        ];
        let mut t = Tracker::new(4, 3);
        for (i, (ok, others_up, want)) in steps.into_iter().enumerate() {
            assert_eq!(t.observe(ok, others_up), want, "step {i}");
        }
        // Another real went down meanwhile: the next success completes it.
        assert_eq!(t.observe(true, false), Some(State::Up));
        let mut t = Tracker::new(4, 1);
        assert_eq!(t.observe(false, true), Some(State::Down));
        for _ in 0..3 {
            assert_eq!(t.observe(true, true), None);
        }
        assert_eq!(
            t.observe(true, true),
            Some(State::Up),
            "rise = 4 with others up"
        );
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
        service_with(reals, kind, Duration::from_millis(50), 2, 2)
    }

    fn service_with(
        reals: &[SocketAddrV4],
        kind: CheckKind,
        interval: Duration,
        rise: u32,
        fall: u32,
    ) -> VirtualService {
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
                interval,
                timeout: Duration::from_millis(500),
                rise,
                fall,
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

    /// A tcp listener on `addr` that accepts and closes, until dropped.
    async fn listen(addr: SocketAddrV4) -> tokio::task::JoinHandle<()> {
        let l = TcpListener::bind(SocketAddr::V4(addr)).await.unwrap();
        tokio::spawn(async move { while l.accept().await.is_ok() {} })
    }

    #[tokio::test]
    async fn the_first_real_back_while_all_are_down_is_restored_after_one_check() {
        let (a, b) = (closed_port().await, closed_port().await);
        // rise x interval is 5 s; the test allows 2.
        let s = service_with(&[a, b], CheckKind::Tcp, Duration::from_millis(100), 50, 1);
        let checks = spawn(std::slice::from_ref(&s));
        let mut rx = checks.subscribe();
        let (ta, tb) = (Target::of(&s, &s.reals[0]), Target::of(&s, &s.reals[1]));
        tokio::time::timeout(T, rx.wait_for(|m| !m.is_up(&ta) && !m.is_up(&tb)))
            .await
            .expect("both down after one failed check each")
            .unwrap();
        let _a = listen(a).await;
        tokio::time::timeout(T, rx.wait_for(|m| m.is_up(&ta)))
            .await
            .expect("the first back is up well before rise x interval")
            .unwrap();
        // With `a` serving, `b` coming back waits its rise successes.
        let _b = listen(b).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(!rx.borrow().is_up(&tb), "b waits rise x interval");
        drop(checks);
    }

    #[tokio::test]
    async fn check_now_probes_at_once_and_rise_still_counts_with_others_up() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(up) = live.local_addr().unwrap() else {
            unreachable!()
        };
        // A second loopback address, so check_now picks one real by address.
        let dead = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), closed_port().await.port());
        let hour = Duration::from_secs(3600);
        let s = service_with(&[up, dead], CheckKind::Tcp, hour, 2, 1);
        let checks = spawn(std::slice::from_ref(&s));
        let mut rx = checks.subscribe();
        let t = Target::of(&s, &s.reals[1]);
        // Its first check is half an hour after start (the two checks are
        // spread over the interval): ask for it now.
        assert_eq!(checks.check_now(*dead.ip()), 1);
        tokio::time::timeout(T, rx.wait_for(|m| !m.is_up(&t)))
            .await
            .expect("down after its first check")
            .unwrap();
        let _l = listen(dead).await;
        assert_eq!(checks.check_now(*dead.ip()), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!rx.borrow().is_up(&t), "one success of rise = 2");
        assert_eq!(checks.check_now(*dead.ip()), 1);
        tokio::time::timeout(T, rx.wait_for(|m| m.is_up(&t)))
            .await
            .expect("the second check at once completes rise")
            .unwrap();
        assert_eq!(checks.check_now(Ipv4Addr::new(192, 0, 2, 1)), 0);
        drop(checks);
    }

    #[tokio::test]
    async fn check_now_alone_restores_a_service_with_every_real_down() {
        let dead = closed_port().await;
        let s = service_with(&[dead], CheckKind::Tcp, Duration::from_secs(3600), 3, 1);
        let checks = spawn(std::slice::from_ref(&s));
        let mut rx = checks.subscribe();
        let t = Target::of(&s, &s.reals[0]);
        tokio::time::timeout(T, rx.wait_for(|m| !m.is_up(&t)))
            .await
            .expect("down after its first check")
            .unwrap();
        let _l = listen(dead).await;
        assert_eq!(checks.check_now(*dead.ip()), 1);
        tokio::time::timeout(T, rx.wait_for(|m| m.is_up(&t)))
            .await
            .expect("restored by the one check it was asked for")
            .unwrap();
        drop(checks);
    }

    #[tokio::test]
    async fn check_now_looks_again_soon_until_the_node_serves() {
        let dead = closed_port().await;
        let s = service_with(&[dead], CheckKind::Tcp, Duration::from_secs(3600), 1, 1);
        let checks = spawn(std::slice::from_ref(&s));
        let mut rx = checks.subscribe();
        let t = Target::of(&s, &s.reals[0]);
        tokio::time::timeout(T, rx.wait_for(|m| !m.is_up(&t)))
            .await
            .expect("down after its first check")
            .unwrap();
        // The lease comes before the node's server: the check at once fails.
        assert_eq!(checks.check_now(*dead.ip()), 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(!rx.borrow().is_up(&t));
        let _l = listen(dead).await;
        // Looked at again at 0.5 + 1 + 2 s after the wake, not in an hour.
        tokio::time::timeout(Duration::from_secs(4), rx.wait_for(|m| m.is_up(&t)))
            .await
            .expect("restored by a follow-up look")
            .unwrap();
        drop(checks);
    }
}
