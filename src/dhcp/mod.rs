//! The DHCPv4 server for the private LAN.
//!
//! - `request` parses and checks a packet, `responder` decides the reply
//!   (pure, explicit time), `reply` writes it, `target` says where it goes
//!   (RFC 2131 §4.1), `socket` sends it;
//! - `tables` is the config in wire form, `leases` the bindings and pool
//!   allocator, `store` the crash-safe lease file;
//! - this module runs them on two threads: the server thread reads
//!   packets in batches (`recvmmsg`), answers and sends (`sendmmsg`); the
//!   lease writer appends records and fdatasyncs once for everything queued
//!   (group commit), then sends the pool ACKs that waited for it. Neither
//!   needs an async runtime; `wait` is async so the daemon can select on it.
//!
//! API for the daemon: [`Server::start`], [`Server::reload`],
//! [`Server::leases`], [`Server::counters`], [`Server::stop`], [`Server::wait`].

pub mod fuzzing;
pub mod leases;
pub mod limits;
pub mod link;
pub mod reply;
pub mod request;
pub mod responder;
pub mod socket;
pub mod store;
pub mod tables;
pub mod target;
pub mod unknown;

use crate::config::Config;
use crate::config::model::Mac;
use leases::{LeaseDb, Record, State};
use limits::{Counters, CountersView, LogGate, RateLimit};
use responder::{Outcome, Quiet};
use serde::{Deserialize, Serialize};
use socket::Outbox;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use store::LeaseFile;
use tables::Tables;
use tracing::{error, info, warn};

/// Per-MAC packet rate (packets/s) and burst; far above what a client needs
/// (4 packets per lease), low enough that one MAC cannot crowd out others.
const RATE: u32 = 250;
const BURST: u32 = 500;
/// Longest a record that needs no sync waits before it is written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Write lazy records at once when this many have piled up.
const LAZY_RECORDS: usize = 1024;
/// Most pool ACKs waiting for the lease writer. A disk that stalls (one
/// fdatasync on a shared disk has taken 0.4 s) must not grow memory without
/// bound under a flood; past this, ACKs are dropped and counted, and the
/// clients retry, as they would for a lost packet.
const MAX_HELD: usize = 4096;
/// Held ACKs leave in bursts of this many, this far apart: up to 32,000 a
/// second, above the pool's flood rate (10,000-13,000/s), yet slow enough
/// that a relay (or perfdhcp, which drains about 26,000 packets a second)
/// keeps up after a 0.4 s sync released a few thousand at once.
const PACE_BURST: usize = 32;
const PACE_GAP: std::time::Duration = std::time::Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("DHCP is off in the config (dhcp.enabled = false)")]
    Disabled,
    #[error(
        "refusing to serve DHCP on {0}: it holds the default route, so it is probably the public side; \
         set dhcp.allow_default_route_interface = true if it really is the private LAN"
    )]
    DefaultRoute(String),
    #[error("cannot listen for DHCP on {iface} (0.0.0.0:67)")]
    Bind { iface: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{what} changed from {old} to {new}: restart the server to apply it")]
    NeedsRestart {
        what: &'static str,
        old: String,
        new: String,
    },
    #[error("DHCP server failed")]
    Io(#[from] io::Error),
}

impl DhcpError {
    /// True when the fix is in the config, not the system.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            DhcpError::Disabled | DhcpError::DefaultRoute(_) | DhcpError::NeedsRestart { .. }
        )
    }
}

/// One row of `headnode leases` (and of the daemon's `leases` answer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseView {
    pub address: Ipv4Addr,
    pub mac: String,
    pub kind: LeaseKind,
    /// Reservation name, or the host name a pool client sent.
    pub name: Option<String>,
    pub state: LeaseState,
    /// Unix seconds; for declined addresses, the end of the quarantine.
    pub expires: Option<u64>,
    pub last_seen: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// A `[[host]]` reservation.
    Fixed,
    /// From the pool.
    Dynamic,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// A reservation whose client was never seen.
    Reserved,
    Offered,
    Bound,
    Expired,
    Released,
    Declined,
}

impl LeaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Fixed => "fixed",
            LeaseKind::Dynamic => "dynamic",
        }
    }
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Reserved => "reserved",
            LeaseState::Offered => "offered",
            LeaseState::Bound => "bound",
            LeaseState::Expired => "expired",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
        }
    }
}

/// Every reservation and every lease binding, by address.
pub fn lease_views<'a>(
    t: &Tables,
    records: impl Iterator<Item = &'a Record>,
    now: u64,
) -> Vec<LeaseView> {
    let mut rows = Vec::new();
    let mut seen_fixed = std::collections::HashSet::new();
    let state_of = |r: &Record| match r.state {
        State::Bound | State::Offered if r.expires <= now => LeaseState::Expired,
        State::Bound => LeaseState::Bound,
        State::Offered => LeaseState::Offered,
        State::Released => LeaseState::Released,
        State::Declined => LeaseState::Declined,
    };
    for r in records {
        let host = t.hosts.get(&r.mac).filter(|h| h.address == r.ip);
        if host.is_some() {
            seen_fixed.insert(r.mac);
        }
        rows.push(LeaseView {
            address: r.ip,
            mac: r.mac.to_string(),
            kind: if host.is_some() {
                LeaseKind::Fixed
            } else {
                LeaseKind::Dynamic
            },
            name: host
                .map(|h| h.name.to_string())
                .or_else(|| r.hostname.as_deref().map(str::to_string)),
            state: state_of(r),
            expires: Some(r.expires),
            last_seen: Some(r.seen),
        });
    }
    for (mac, h) in &t.hosts {
        if !seen_fixed.contains(mac) {
            rows.push(LeaseView {
                address: h.address,
                mac: mac.to_string(),
                kind: LeaseKind::Fixed,
                name: Some(h.name.to_string()),
                state: LeaseState::Reserved,
                expires: None,
                last_seen: None,
            });
        }
    }
    // A released reservation and a pool lease can share nothing, but two
    // rows for one address can exist when a reservation replaced a binding.
    rows.sort_by(|a, b| (a.address, a.kind, &a.mac).cmp(&(b.address, b.kind, &b.mac)));
    rows
}

/// Which lease `headnode leases release` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum LeaseKey {
    Address { address: Ipv4Addr },
    Mac { mac: [u8; 6] },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReleaseOutcome {
    Released {
        address: Ipv4Addr,
        mac: String,
    },
    /// No pool lease to end, and why (none, a reservation, already over).
    NotFound {
        why: String,
    },
}

/// End the pool lease `key` names at `now`; the db then holds the released
/// record. Reservations are not leases to end: their `[[host]]` block is.
fn release(tables: &Tables, db: &mut LeaseDb, key: LeaseKey, now: u64) -> ReleaseOutcome {
    let not_found = |why: String| ReleaseOutcome::NotFound { why };
    let record = match key {
        LeaseKey::Address { address } => {
            if let Some(mac) = tables.reserved.get(&address) {
                return not_found(format!(
                    "{address} is reserved for {mac} by a [[host]] block; remove the block to free it"
                ));
            }
            db.get(address)
        }
        LeaseKey::Mac { mac } => {
            let mac = Mac(mac);
            if let Some(r) = tables.hosts.get(&mac) {
                return not_found(format!(
                    "{mac} has a [[host]] reservation ({}); remove the block to free it",
                    r.address
                ));
            }
            db.of_mac(mac)
        }
    };
    let shown = match key {
        LeaseKey::Address { address } => address.to_string(),
        LeaseKey::Mac { mac } => Mac(mac).to_string(),
    };
    let Some(r) = record else {
        return not_found(format!("no lease for {shown}"));
    };
    let live = matches!(r.state, State::Bound | State::Offered) && r.expires > now;
    if !live {
        return not_found(format!(
            "the lease of {} for {} is already over",
            r.ip, r.mac
        ));
    }
    let mut r = r.clone();
    r.state = State::Released;
    r.expires = now;
    r.seen = now;
    let (address, mac) = (r.ip, r.mac.to_string());
    db.put(r);
    ReleaseOutcome::Released { address, mac }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the packet loop and the API share.
struct Core {
    tables: Arc<Tables>,
    db: LeaseDb,
    /// Clients refused for want of a reservation or a pool.
    unknown: unknown::Unknown,
    /// Records made outside the packet loop (`leases release`), for the
    /// loop to hand to the lease writer with its own.
    outside: Vec<Record>,
}

/// What the server's threads and the API share.
struct Shared {
    core: Mutex<Core>,
    counters: Counters,
    status: Mutex<Status>,
    /// The lease file is open and appended to: pool clients are answered.
    /// Without it only reservations are (they need no lease file).
    pool_ok: AtomicBool,
    /// Replies handed to the lease writer and not sent yet.
    held: AtomicUsize,
    stop: Arc<AtomicBool>,
    /// The address of every ACK, for the daemon (a real server that just
    /// took its lease is health-checked at once). Dropped when full: the
    /// periodic checks cover what is missed.
    acked: tokio::sync::mpsc::Sender<Ipv4Addr>,
    turns: Turns,
}

/// What the server is doing, for `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub interface: String,
    /// Listening on the interface.
    pub serving: bool,
    /// Why not, when not serving.
    pub deaf: Option<String>,
    /// Why pool clients get no lease, when they do not: the lease file
    /// cannot be used (reservations are still served).
    pub pool_refused: Option<String>,
    /// Times the socket was bound again after the interface changed.
    pub rebinds: u64,
    /// Seconds since the server's loop last went round, once that is
    /// `STALLED` or more: it is stuck, and only a restart of the daemon
    /// helps (the daemon stops feeding systemd's watchdog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_s: Option<u64>,
}

/// A server loop that has not gone round for this long is stuck: it turns
/// at least every `socket::RECV_TIMEOUT` (or `DEAF_WAIT`), and its slowest
/// step, reading the interfaces, gives up well before this.
pub const STALLED: std::time::Duration = std::time::Duration::from_secs(20);

/// When the server's loop last went round.
struct Turns {
    epoch: Instant,
    /// Milliseconds since `epoch` at the last turn.
    last: AtomicU64,
}

impl Turns {
    fn new() -> Turns {
        Turns {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn turn(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn since(&self) -> std::time::Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

/// Lines to append and the replies that wait for them.
#[derive(Default)]
struct Job {
    records: Vec<Record>,
    held: Outbox,
    /// The socket the held replies leave by: the one their requests came in on.
    sock: Option<Arc<UdpSocket>>,
}

/// A running DHCP server.
pub struct Server {
    shared: Arc<Shared>,
    lease_file: PathBuf,
    thread: Option<std::thread::JoinHandle<Result<(), DhcpError>>>,
    /// Closed when the server thread ends.
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    /// The addresses ACKed, until the daemon takes the receiver.
    acked: Option<tokio::sync::mpsc::Receiver<Ipv4Addr>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave Core half-updated in a way that matters
    // more than stopping DHCP would; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// What a running server tells the daemon.
#[derive(Debug)]
pub enum Event {
    /// An ACK for this address went out (or waits for the lease file).
    Acked(Ipv4Addr),
    /// The server ended without being asked to.
    Ended(Result<(), DhcpError>),
}

/// ACKed addresses the daemon has not read yet, at most.
const ACKED_QUEUE: usize = 256;

/// How often a lease file that could not be opened is tried again.
const REOPEN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Server {
    /// Check the config, load the lease file and start serving on a thread
    /// of its own. The interface need not be there yet: the server listens
    /// once it is (and follows it when it changes). A lease file that
    /// cannot be used leaves reservations served and the pool refused
    /// until it can; only one held by another server stops the start.
    pub fn start(cfg: Arc<Config>) -> Result<Server, DhcpError> {
        if !cfg.dhcp.enabled {
            return Err(DhcpError::Disabled);
        }
        let iface = cfg.private.name.clone();
        if !cfg.dhcp.allow_default_route_interface
            && socket::default_route_interface().as_deref() == Some(iface.as_str())
        {
            return Err(DhcpError::DefaultRoute(iface));
        }
        let path = cfg.dhcp.lease_file.clone();
        let tables = Arc::new(Tables::new(&cfg));
        let mut db = LeaseDb::new(tables.pool);
        let mut status = Status {
            interface: iface.clone(),
            deaf: Some("starting".into()),
            ..Status::default()
        };
        let file = match LeaseFile::open(&path) {
            Ok((file, loaded)) => {
                for r in loaded.records {
                    db.put(r);
                }
                Some(file)
            }
            Err(e @ store::StoreError::Locked { .. }) => return Err(e.into()),
            Err(e) => {
                let why = chain(&e);
                error!(
                    "{why}; serving reservations only, pool clients get no lease until the lease file works (tried again every {} s)",
                    REOPEN_EVERY.as_secs()
                );
                status.pool_refused = Some(why);
                None
            }
        };
        info!(
            "DHCP on {iface} as {}: {} reservation(s), {}, {} lease record(s) from {}",
            tables.server_ip,
            tables.hosts.len(),
            tables
                .pool
                .map_or("no pool".into(), |p| format!("pool {}-{}", p.start, p.end)),
            db.len(),
            path.display()
        );
        let (acked_tx, acked) = tokio::sync::mpsc::channel(ACKED_QUEUE);
        let shared = Arc::new(Shared {
            pool_ok: AtomicBool::new(file.is_some()),
            core: Mutex::new(Core {
                tables,
                db,
                unknown: unknown::Unknown::default(),
                outside: Vec::new(),
            }),
            counters: Counters::default(),
            status: Mutex::new(status),
            held: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            acked: acked_tx,
            turns: Turns::new(),
        });
        let (job_tx, job_rx) = std_mpsc::channel::<Job>();
        let wsh = shared.clone();
        let wpath = path.clone();
        let writer = std::thread::Builder::new()
            .name("dhcp-leases".into())
            .spawn(move || writer(file, wpath, job_rx, wsh))?;
        let watch = match link::Watch::start(shared.stop.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(
                    "cannot follow interface changes ({e}); looking at {iface} every {} s instead",
                    link::RECHECK.as_secs()
                );
                None
            }
        };
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let lp = Loop::new(iface, shared.clone());
        let thread = std::thread::Builder::new()
            .name("dhcp".into())
            .spawn(move || {
                let r = serve(lp, watch, job_tx);
                // The writer drains what it was given once the sender is gone.
                let _ = writer.join();
                drop(done_tx);
                r
            })?;
        Ok(Server {
            shared,
            lease_file: path,
            thread: Some(thread),
            done: Some(done),
            acked: Some(acked),
        })
    }
    /// Serve a new config: reservations and options change at once,
    /// leases are kept. Changes that need a new socket or file are refused.
    pub fn reload(&self, cfg: Arc<Config>) -> Result<(), DhcpError> {
        let mut core = lock(&self.shared.core);
        let old = core.tables.clone();
        if !cfg.dhcp.enabled {
            return Err(DhcpError::NeedsRestart {
                what: "dhcp.enabled",
                old: "true".into(),
                new: "false".into(),
            });
        }
        if cfg.private.name != old.interface {
            return Err(DhcpError::NeedsRestart {
                what: "interfaces.private.name",
                old: old.interface.clone(),
                new: cfg.private.name.clone(),
            });
        }
        if cfg.dhcp.lease_file != self.lease_file {
            return Err(DhcpError::NeedsRestart {
                what: "dhcp.lease_file",
                old: self.lease_file.display().to_string(),
                new: cfg.dhcp.lease_file.display().to_string(),
            });
        }
        let new = Tables::new(&cfg);
        let added = new
            .hosts
            .keys()
            .filter(|m| !old.hosts.contains_key(m))
            .count();
        let removed = old
            .hosts
            .keys()
            .filter(|m| !new.hosts.contains_key(m))
            .count();
        if new.pool != old.pool {
            core.db.set_pool(new.pool);
        }
        core.unknown.forget_known(|m| new.hosts.contains_key(m));
        info!(
            "DHCP config reloaded: {} reservation(s) ({added} added, {removed} removed), {}",
            new.hosts.len(),
            new.pool
                .map_or("no pool".into(), |p| format!("pool {}-{}", p.start, p.end))
        );
        core.tables = Arc::new(new);
        Ok(())
    }

    /// Every reservation and lease, as `headnode leases` shows them.
    pub fn leases(&self) -> Vec<LeaseView> {
        let core = lock(&self.shared.core);
        lease_views(&core.tables, core.db.records(), unix_now())
    }

    /// The clients refused for want of a reservation or a pool.
    pub fn unknown(&self) -> unknown::UnknownList {
        lock(&self.shared.core).unknown.list()
    }

    /// End a pool lease as if its client had sent a RELEASE: the address
    /// goes back to the pool and the lease file records it.
    pub fn release(&self, key: LeaseKey) -> ReleaseOutcome {
        let mut core = lock(&self.shared.core);
        let core = &mut *core;
        let outcome = release(&core.tables, &mut core.db, key, unix_now());
        if let ReleaseOutcome::Released { address, mac } = &outcome {
            info!(ip = %address, mac = %mac, "lease of {address} released by `headnode leases release`");
            if let Some(r) = core.db.get(*address) {
                core.outside.push(r.clone());
            }
        }
        outcome
    }

    pub fn counters(&self) -> CountersView {
        self.shared.counters.snapshot()
    }

    /// Listening or deaf (and why), and whether the pool is served.
    pub fn status(&self) -> Status {
        let mut st = lock(&self.shared.status).clone();
        st.stalled_s = stalled(self.shared.turns.since());
        st
    }

    /// Ask the server to stop (within `socket::RECV_TIMEOUT`); `wait`
    /// returns once it has.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Run until stopped or failed, the lease writer included. Cancel-safe
    /// (fine in a `select!` loop); returns the result once.
    pub async fn wait(&mut self) -> Result<(), DhcpError> {
        if let Some(done) = self.done.as_mut() {
            let _ = done.await;
            self.done = None;
        }
        self.join()
    }

    /// The next ACK's address, or the end of the server (what `wait` gives).
    pub async fn next_event(&mut self) -> Event {
        let (acked, done) = (&mut self.acked, &mut self.done);
        let ack = async {
            match acked.as_mut() {
                Some(rx) => rx.recv().await,
                None => None,
            }
        };
        let end = async {
            if let Some(d) = done.as_mut() {
                let _ = d.await;
            }
        };
        tokio::select! {
            Some(ip) = ack => return Event::Acked(ip),
            () = end => {}
        }
        self.done = None;
        Event::Ended(self.join())
    }

    fn join(&mut self) -> Result<(), DhcpError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(DhcpError::Io(io::Error::other("the DHCP thread panicked"))),
            None => Ok(()),
        }
    }
}

/// PURE: the stall `status` reports for a loop idle this long.
fn stalled(idle: std::time::Duration) -> Option<u64> {
    (idle >= STALLED).then_some(idle.as_secs())
}

/// Per-thread state of the server loop.
struct Loop {
    iface: String,
    shared: Arc<Shared>,
    rate: RateLimit,
    unknown_log: LogGate,
    exhausted_log: LogGate,
    refused_log: LogGate,
    started: Instant,
    /// The reply being written.
    out: Vec<u8>,
    /// Replies to send at the end of this batch.
    now_out: Outbox,
}

/// The socket and the interface index it listens on.
struct Bound {
    index: u32,
    sock: Arc<UdpSocket>,
}

/// How long the loop sleeps between looks at the interface while deaf.
const DEAF_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

fn serve(
    mut lp: Loop,
    watch: Option<link::Watch>,
    jobs: std_mpsc::Sender<Job>,
) -> Result<(), DhcpError> {
    let shared = lp.shared.clone();
    let mut rx = socket::RecvBatch::default();
    // Records that need no sync (fixed-address ACKs, releases, declines)
    // wait for the next durable batch or a second, whichever comes first:
    // a reservation ACK then costs no write of its own.
    let mut pending = Job::default();
    let mut last_flush = Instant::now();
    let mut bound: Option<Bound> = None;
    // Look at the interface at once, then on every event and every RECHECK.
    let mut acted_on = None::<Option<u64>>;
    let mut looked = Instant::now();
    loop {
        shared.turns.turn();
        let stopping = shared.stop.load(Ordering::Relaxed);
        if !stopping {
            let changes = watch.as_ref().map(|w| w.changes.load(Ordering::Relaxed));
            if acted_on != Some(changes) || looked.elapsed() >= link::RECHECK {
                acted_on = Some(changes);
                looked = Instant::now();
                lp.follow_link(&mut bound);
            }
            match &bound {
                Some(b) => match rx.recv(&b.sock) {
                    Ok(n) => {
                        if n > 0 {
                            let sock = b.sock.clone();
                            let core = lp.shared.clone();
                            let mut core = lock(&core.core);
                            let now = unix_now();
                            for i in 0..n {
                                lp.handle(rx.get(i), &mut core, now, &sock, &mut pending);
                            }
                        }
                        lp.send_now(&b.sock);
                    }
                    Err(e) => {
                        // Drop the socket and look at the interface again.
                        warn!(
                            "DHCP: receiving on {} failed ({e}); binding again",
                            lp.iface
                        );
                        bound = None;
                        acted_on = None;
                        lp.set_deaf(format!("receiving failed: {e}"));
                    }
                },
                None => std::thread::sleep(DEAF_WAIT),
            }
        }
        {
            let mut core = lock(&shared.core);
            if !core.outside.is_empty() {
                pending.records.append(&mut core.outside);
            }
        }
        let due = !pending.held.is_empty()
            || pending.records.len() >= LAZY_RECORDS
            || (!pending.records.is_empty() && last_flush.elapsed() >= FLUSH_EVERY)
            || stopping;
        if due {
            last_flush = Instant::now();
            if !(pending.records.is_empty() && pending.held.is_empty()) {
                shared.held.fetch_add(pending.held.len(), Ordering::Relaxed);
                if jobs.send(std::mem::take(&mut pending)).is_err() {
                    return Err(io::Error::other("the lease writer thread stopped").into());
                }
            }
        }
        if stopping {
            info!("DHCP server stopping");
            return Ok(());
        }
    }
}

impl Loop {
    fn new(iface: String, shared: Arc<Shared>) -> Loop {
        Loop {
            iface,
            shared,
            rate: RateLimit::new(RATE, BURST),
            unknown_log: LogGate::new(60),
            exhausted_log: LogGate::new(60),
            refused_log: LogGate::new(60),
            started: Instant::now(),
            out: Vec::with_capacity(1500),
            now_out: Outbox::default(),
        }
    }

    fn set_deaf(&self, why: String) {
        let mut st = lock(&self.shared.status);
        if st.deaf.as_deref() != Some(why.as_str()) {
            warn!("DHCP not listening: {why}; listening again as soon as that changes");
        }
        st.serving = false;
        st.deaf = Some(why);
    }

    /// Read the interfaces and listen where the config says, if it can.
    fn follow_link(&self, bound: &mut Option<Bound>) {
        let server_ip = lock(&self.shared.core).tables.server_ip;
        let decision = match crate::netinfo::read() {
            Ok(snap) => link::decide(&snap, &self.iface, server_ip),
            // Keep what we have: the kernel did not answer, nothing changed.
            Err(e) => {
                warn!("DHCP: cannot read the interfaces: {e}");
                return;
            }
        };
        match decision {
            link::Decision::Serve { index } => {
                if bound.as_ref().is_some_and(|b| b.index == index) {
                    return;
                }
                match socket::bind(&self.iface) {
                    Ok(sock) => {
                        // The first bind since start is not a rebind.
                        let again = lock(&self.shared.status).deaf.as_deref() != Some("starting");
                        *bound = Some(Bound {
                            index,
                            sock: Arc::new(sock),
                        });
                        let mut st = lock(&self.shared.status);
                        st.serving = true;
                        st.deaf = None;
                        if again {
                            st.rebinds += 1;
                        }
                        info!(
                            "DHCP serving on {} (interface index {index}){}",
                            self.iface,
                            if again { ", bound again" } else { "" }
                        );
                    }
                    Err(e) => {
                        *bound = None;
                        self.set_deaf(format!("cannot listen on {} (0.0.0.0:67): {e}", self.iface));
                    }
                }
            }
            link::Decision::Deaf(why) => {
                *bound = None;
                self.set_deaf(why);
            }
        }
    }

    fn handle(
        &mut self,
        pkt: &[u8],
        core: &mut Core,
        now: u64,
        sock: &Arc<UdpSocket>,
        job: &mut Job,
    ) {
        let c = &self.shared.counters;
        Counters::bump(&c.received);
        let req = match request::parse(pkt) {
            Ok(r) => r,
            Err(why) => {
                use request::Malformed as M;
                Counters::bump(match why {
                    M::Truncated => &c.dropped_truncated,
                    M::NotRequest => &c.dropped_not_request,
                    M::BadHardware => &c.dropped_bad_hardware,
                    M::BadCookie => &c.dropped_bad_cookie,
                    M::BadOption => &c.dropped_bad_option,
                    M::NoMessageType => &c.dropped_no_message_type,
                    M::BadMessageType => &c.dropped_bad_message_type,
                });
                tracing::trace!(?why, len = pkt.len(), "dropped a malformed packet");
                return;
            }
        };
        let ms = self.started.elapsed().as_millis() as u64;
        if !self.rate.allow(req.mac, ms) {
            Counters::bump(&c.dropped_rate_limited);
            return;
        }
        // Without a lease file a pool lease could not be kept: pool
        // clients wait (their DISCOVERs go unanswered), reservations do not.
        if !self.shared.pool_ok.load(Ordering::Relaxed)
            && core.tables.pool.is_some()
            && !core.tables.hosts.contains_key(&req.mac)
            && req.kind != dhcproto::v4::MessageType::Inform
        {
            Counters::bump(&c.pool_refused);
            if self.refused_log.allow(Mac([0; 6]), now) {
                warn!(mac = %req.mac, "no lease for {}: the lease file cannot be used (logged once a minute)", req.mac);
            }
            return;
        }
        match responder::respond(&req, &core.tables, &mut core.db, now, &mut self.out) {
            Outcome::Reply {
                kind,
                target,
                record,
                wait,
            } => {
                use dhcproto::v4::MessageType as T;
                Counters::bump(match kind {
                    T::Offer => &c.offers,
                    T::Nak => &c.naks,
                    _ => &c.acks,
                });
                if kind == T::Ack
                    && let Some(yiaddr) = self.out.get(16..20)
                {
                    let yiaddr = Ipv4Addr::new(yiaddr[0], yiaddr[1], yiaddr[2], yiaddr[3]);
                    if !yiaddr.is_unspecified() {
                        let _ = self.shared.acked.try_send(yiaddr);
                    }
                }
                // The record is kept even when its ACK is dropped below:
                // the binding is already made, and the retry finds it.
                if let Some(r) = record {
                    job.records.push(r);
                }
                if wait && self.shared.held.load(Ordering::Relaxed) + job.held.len() >= MAX_HELD {
                    Counters::bump(&c.dropped_writer_behind);
                    return;
                }
                // Only for a reply that goes: a hardware target sets a neighbour entry.
                let to = socket::destination(sock, &self.iface, target);
                if wait {
                    job.held.push(to, &self.out);
                    job.sock = Some(sock.clone());
                } else {
                    self.now_out.push(to, &self.out);
                }
            }
            Outcome::Quiet { why, record } => {
                if let Some(r) = record {
                    job.records.push(r);
                }
                match why {
                    Quiet::UnknownClient => {
                        Counters::bump(&c.unknown_client);
                        core.unknown.saw(req.mac, &self.iface, now);
                        if self.unknown_log.allow(req.mac, now) {
                            info!(mac = %req.mac, "no reservation for {} and no pool: not answering (logged once a minute per MAC)", req.mac);
                        }
                    }
                    Quiet::PoolExhausted => {
                        Counters::bump(&c.pool_exhausted);
                        if self.exhausted_log.allow(Mac([0; 6]), now) {
                            warn!(mac = %req.mac, "DHCP pool exhausted: no address for {}", req.mac);
                        }
                    }
                    Quiet::OtherServer => Counters::bump(&c.other_server),
                    Quiet::ForeignRelay => Counters::bump(&c.foreign_relay),
                    Quiet::ForeignInform => Counters::bump(&c.foreign_inform),
                    Quiet::Incomplete => Counters::bump(&c.incomplete),
                    Quiet::Done => Counters::bump(match req.kind {
                        dhcproto::v4::MessageType::Decline => &c.declines,
                        _ => &c.releases,
                    }),
                }
            }
        }
    }

    /// Send this batch's replies.
    fn send_now(&mut self, sock: &UdpSocket) {
        if self.now_out.is_empty() {
            return;
        }
        let failed = self.now_out.send(sock);
        if failed > 0 {
            self.shared
                .counters
                .send_errors
                .fetch_add(failed as u64, Ordering::Relaxed);
        }
    }
}

/// The lease writer: waits for work, takes everything queued, appends it
/// in one write, syncs once, then sends the replies that waited. Without a
/// lease file (it could not be opened) it tries again every `REOPEN_EVERY`
/// and lets the pool be served once it can.
fn writer(
    mut file: Option<LeaseFile>,
    path: PathBuf,
    jobs: std_mpsc::Receiver<Job>,
    shared: Arc<Shared>,
) {
    let counters = &shared.counters;
    let mut text = String::new();
    let mut last_error = None::<Instant>;
    let mut tried = Instant::now();
    loop {
        let first = match jobs.recv_timeout(REOPEN_EVERY) {
            Ok(job) => Some(job),
            Err(std_mpsc::RecvTimeoutError::Timeout) => None,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if file.is_none() && tried.elapsed() >= REOPEN_EVERY {
            tried = Instant::now();
            file = reopen(&path, &shared);
        }
        let Some(first) = first else { continue };
        let Job {
            mut records,
            held,
            sock,
        } = first;
        // Held replies by the socket they leave from (one, unless the
        // interface changed in between).
        let mut outs: Vec<(Option<Arc<UdpSocket>>, Outbox)> = vec![(sock, held)];
        while let Ok(mut more) = jobs.try_recv() {
            records.append(&mut more.records);
            match outs.last_mut() {
                Some((s, o)) if same_socket(s, &more.sock) || more.held.is_empty() => {
                    o.append(&mut more.held);
                }
                _ => outs.push((more.sock, more.held)),
            }
        }
        let waiting: usize = outs.iter().map(|(_, o)| o.len()).sum();
        let sync = waiting > 0;
        let written = match file.as_mut() {
            Some(f) if sync => {
                crate::timings::LEASE_SYNC.time(|| f.append(&records, sync, &mut text))
            }
            Some(f) => f.append(&records, sync, &mut text),
            None => Err(io::Error::other("the lease file is not open")),
        };
        match written {
            Ok(()) => {
                counters
                    .lease_writes
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                if sync {
                    Counters::bump(&counters.lease_syncs);
                }
                for (sock, mut out) in outs {
                    if let Some(sock) = sock {
                        let failed = out.send_paced(&sock, PACE_BURST, PACE_GAP);
                        counters
                            .send_errors
                            .fetch_add(failed as u64, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                counters
                    .not_durable
                    .fetch_add(waiting as u64, Ordering::Relaxed);
                if file.is_some() && last_error.is_none_or(|t| t.elapsed().as_secs() >= 60) {
                    error!(
                        "cannot write the lease file {}: {e}; pool clients get no ACK until it works again (logged once a minute)",
                        path.display()
                    );
                    last_error = Some(Instant::now());
                }
            }
        }
        shared.held.fetch_sub(waiting, Ordering::Relaxed);
        if let Some(f) = file.as_mut()
            && f.wants_compaction()
        {
            // The bindings are the server's; a few ms of its lock to write
            // them out beats a second copy of 50,000 records.
            let written = f.write_compacted(lock(&shared.core).db.records());
            if let Err(e) = written.and_then(|c| f.install(c)) {
                f.postpone_compaction();
                error!("cannot compact the lease file: {e}; still appending to it");
            }
        }
    }
}

fn same_socket(a: &Option<Arc<UdpSocket>>, b: &Option<Arc<UdpSocket>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => a.is_none() && b.is_none(),
    }
}

/// Try the lease file again; once it opens, its records join the bindings
/// made meanwhile (those win: they are newer) and the pool is served.
fn reopen(path: &std::path::Path, shared: &Shared) -> Option<LeaseFile> {
    match LeaseFile::open(path) {
        Ok((file, loaded)) => {
            let mut core = lock(&shared.core);
            let newer: Vec<Record> = core.db.records().cloned().collect();
            for r in loaded.records.into_iter().chain(newer) {
                core.db.put(r);
            }
            drop(core);
            lock(&shared.status).pool_refused = None;
            shared.pool_ok.store(true, Ordering::Relaxed);
            info!(
                "lease file {} is usable again: pool clients are served",
                path.display()
            );
            Some(file)
        }
        Err(e) => {
            let why = chain(&e);
            let mut st = lock(&shared.status);
            if st.pool_refused.as_deref() != Some(why.as_str()) {
                error!("{why}; pool clients still get no lease");
                st.pool_refused = Some(why);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::request::tests::packet;
    use dhcproto::v4::{DhcpOption, MessageType};
    use std::path::Path;

    const POOL: &str = r#"
[dhcp.pool]
start = "192.168.1.200"
end = "192.168.1.200"
"#;
    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 7];

    /// A packet as a relay on our subnet forwards it, so the reply goes to
    /// the relay's address and the test needs no neighbour entry.
    fn relayed(kind: MessageType, opts: Vec<DhcpOption>) -> Vec<u8> {
        let mut b = packet(kind, MAC, opts);
        b[24..28].copy_from_slice(&[192, 168, 1, 1]);
        b
    }

    fn shared(extra: &str) -> Arc<Shared> {
        shared_with_acks(extra).0
    }

    #[test]
    fn a_loop_idle_for_stalled_is_reported_stuck() {
        use std::time::Duration;
        assert_eq!(stalled(Duration::from_millis(200)), None);
        assert_eq!(stalled(STALLED - Duration::from_millis(1)), None);
        assert_eq!(stalled(STALLED + Duration::from_millis(1500)), Some(21));
        let turns = Turns::new();
        turns.turn();
        assert!(turns.since() < STALLED);
    }

    fn shared_with_acks(extra: &str) -> (Arc<Shared>, tokio::sync::mpsc::Receiver<Ipv4Addr>) {
        let (acked, acks) = tokio::sync::mpsc::channel(ACKED_QUEUE);
        let text = format!("{}{extra}", crate::config::test_text::INTERFACES);
        let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid");
        let tables = Arc::new(Tables::new(&cfg));
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                db: LeaseDb::new(tables.pool),
                tables,
                unknown: unknown::Unknown::default(),
                outside: Vec::new(),
            }),
            counters: Counters::default(),
            status: Mutex::new(Status::default()),
            pool_ok: AtomicBool::new(true),
            held: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            acked,
            turns: Turns::new(),
        });
        (shared, acks)
    }

    #[test]
    fn an_ack_tells_the_daemon_its_address_and_an_offer_does_not() {
        let host =
            "[[host]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.168.1.10\"\n";
        let (shared, mut acks) = shared_with_acks(host);
        let mut lp = Loop::new("eth0".into(), shared.clone());
        let mut core = lock(&shared.core);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
        let mut job = Job::default();
        let now = 1_800_000_000;
        let mac = [2, 0, 0, 0, 0, 1];
        lp.handle(
            &packet(MessageType::Discover, mac, vec![]),
            &mut core,
            now,
            &sock,
            &mut job,
        );
        assert!(acks.try_recv().is_err(), "an OFFER is no lease yet");
        let request = packet(
            MessageType::Request,
            mac,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(
                192, 168, 1, 10,
            ))],
        );
        lp.handle(&request, &mut core, now, &sock, &mut job);
        assert_eq!(lp.shared.counters.snapshot().acks, 1);
        assert_eq!(acks.try_recv().ok(), Some(Ipv4Addr::new(192, 168, 1, 10)));
    }

    #[test]
    fn a_refused_client_is_listed_with_its_interface() {
        let shared = shared("");
        let mut lp = Loop::new("eth7".into(), shared.clone());
        let mut core = lock(&shared.core);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
        let mut job = Job::default();
        for now in [100, 160] {
            let pkt = relayed(MessageType::Discover, vec![]);
            lp.handle(&pkt, &mut core, now, &sock, &mut job);
        }
        let list = core.unknown.list();
        assert_eq!(list.clients.len(), 1, "{list:?}");
        let c = &list.clients[0];
        assert_eq!(c.mac, "02:00:00:00:00:07");
        assert_eq!((c.first_seen, c.last_seen, c.requests), (100, 160, 2));
        assert_eq!(c.interface, "eth7");
    }

    #[test]
    fn release_ends_pool_leases_only() {
        let host =
            "[[host]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.168.1.10\"\n";
        let shared = shared(&format!("{POOL}{host}"));
        let mut core = lock(&shared.core);
        let core = &mut *core;
        let ip = Ipv4Addr::new(192, 168, 1, 200);
        let now = 1_800_000_000;
        core.db.put(Record {
            state: State::Bound,
            ip,
            mac: Mac(MAC),
            expires: now + 600,
            seen: now - 10,
            hostname: None,
        });
        let by_mac = LeaseKey::Mac { mac: MAC };
        assert_eq!(
            release(&core.tables, &mut core.db, by_mac, now),
            ReleaseOutcome::Released {
                address: ip,
                mac: "02:00:00:00:00:07".into()
            }
        );
        let r = core.db.get(ip).expect("kept as released");
        assert_eq!((r.state, r.expires), (State::Released, now));
        // Once over, and for addresses without a lease or reserved: refused.
        let by_ip = LeaseKey::Address { address: ip };
        let why = |o| match o {
            ReleaseOutcome::NotFound { why } => why,
            o => panic!("{o:?}"),
        };
        assert!(why(release(&core.tables, &mut core.db, by_ip, now)).contains("already over"));
        let other = LeaseKey::Address {
            address: Ipv4Addr::new(192, 168, 1, 201),
        };
        assert!(why(release(&core.tables, &mut core.db, other, now)).contains("no lease"));
        let reserved = LeaseKey::Address {
            address: Ipv4Addr::new(192, 168, 1, 10),
        };
        assert!(why(release(&core.tables, &mut core.db, reserved, now)).contains("[[host]]"));
        let reserved = LeaseKey::Mac {
            mac: [2, 0, 0, 0, 0, 1],
        };
        assert!(why(release(&core.tables, &mut core.db, reserved, now)).contains("[[host]]"));
    }

    #[test]
    fn without_a_lease_file_reservations_are_served_and_the_pool_refused() {
        let host =
            "[[host]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.168.1.10\"\n";
        let shared = shared(&format!("{POOL}{host}"));
        shared.pool_ok.store(false, Ordering::Relaxed);
        let mut lp = Loop::new("eth0".into(), shared.clone());
        let mut core = lock(&shared.core);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
        let mut job = Job::default();
        let now = 1_800_000_000;
        lp.handle(
            &relayed(MessageType::Discover, vec![]),
            &mut core,
            now,
            &sock,
            &mut job,
        );
        assert!(lp.now_out.is_empty(), "no pool OFFER");
        assert_eq!(lp.shared.counters.snapshot().pool_refused, 1);
        let mut reserved = packet(MessageType::Discover, [2, 0, 0, 0, 0, 1], vec![]);
        reserved[24..28].copy_from_slice(&[192, 168, 1, 1]);
        lp.handle(&reserved, &mut core, now, &sock, &mut job);
        assert_eq!(lp.now_out.len(), 1, "the reservation gets its OFFER");
    }

    #[test]
    fn a_lease_file_that_opens_again_brings_its_leases_and_the_pool_back() {
        let dir = std::env::temp_dir().join(format!("hn-dhcp-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("leases");
        std::fs::write(
            &path,
            "bound 192.168.1.200 02:00:00:00:00:07 2000000000 1 -\n",
        )
        .expect("write");
        let shared = shared(POOL);
        shared.pool_ok.store(false, Ordering::Relaxed);
        store::fail_at(&path, store::Step::Read);
        assert!(reopen(&path, &shared).is_none());
        let st = lock(&shared.status).clone();
        assert!(
            st.pool_refused
                .as_ref()
                .is_some_and(|w| w.contains("injected")),
            "{st:?}"
        );
        assert!(!shared.pool_ok.load(Ordering::Relaxed));
        store::heal(&path);
        assert!(reopen(&path, &shared).is_some());
        assert!(shared.pool_ok.load(Ordering::Relaxed));
        assert_eq!(lock(&shared.status).pool_refused, None);
        assert_eq!(
            lock(&shared.core)
                .db
                .get([192, 168, 1, 200].into())
                .map(|r| r.mac),
            Some(Mac(MAC)),
            "the file's lease is known again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pool_acks_past_the_writer_backlog_are_dropped_and_counted() {
        let shared = shared(POOL);
        shared.held.store(MAX_HELD, Ordering::Relaxed);
        let mut lp = Loop::new("eth0".into(), shared.clone());
        let mut core = lock(&shared.core);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
        let mut job = Job::default();
        let now = 1_800_000_000;
        lp.handle(
            &relayed(MessageType::Discover, vec![]),
            &mut core,
            now,
            &sock,
            &mut job,
        );
        assert_eq!(lp.now_out.len(), 1, "the OFFER needs no sync");
        let request = relayed(
            MessageType::Request,
            vec![
                DhcpOption::RequestedIpAddress([192, 168, 1, 200].into()),
                DhcpOption::ServerIdentifier([192, 168, 1, 254].into()),
            ],
        );
        lp.handle(&request, &mut core, now, &sock, &mut job);
        assert!(job.held.is_empty(), "the writer is MAX_HELD behind");
        assert_eq!(lp.shared.counters.snapshot().dropped_writer_behind, 1);
        assert_eq!(
            job.records.iter().map(|r| r.state).collect::<Vec<_>>(),
            [State::Bound],
            "the binding is still written"
        );
        lp.shared.held.store(MAX_HELD - 1, Ordering::Relaxed);
        lp.handle(&request, &mut core, now, &sock, &mut job);
        assert_eq!(job.held.len(), 1, "the retry's ACK waits for the sync");
        lp.handle(&request, &mut core, now, &sock, &mut job);
        assert_eq!(job.held.len(), 1, "held in this batch counts too");
        assert_eq!(lp.shared.counters.snapshot().dropped_writer_behind, 2);
    }
}
