//! The DHCPv4 server for the private LAN.
//!
//! - `request` parses and checks a packet, `responder` decides the reply
//!   (pure, explicit time), `reply` writes it, `target` says where it goes
//!   (RFC 2131 §4.1), `socket` sends it;
//! - `tables` is the config in wire form, `leases` the bindings and pool
//!   allocator, `store` the crash-safe lease file;
//! - this module runs them: one task reads packets in batches and answers,
//!   a writer thread appends lease records and fdatasyncs once per batch
//!   (group commit), and pool ACKs leave only after their sync.
//!
//! API for the daemon: [`Server::start`], [`Server::reload`],
//! [`Server::leases`], [`Server::counters`], [`Server::stop`], [`Server::wait`].

pub mod fuzzing;
pub mod leases;
pub mod limits;
pub mod reply;
pub mod request;
pub mod responder;
pub mod socket;
pub mod store;
pub mod tables;
pub mod target;

use crate::config::Config;
use crate::config::model::Mac;
use leases::{LeaseDb, Record, State};
use limits::{Counters, CountersView, LogGate, RateLimit};
use responder::{Outcome, Quiet};
use serde::Serialize;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use store::LeaseFile;
use tables::Tables;
use target::Target;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Packets handled per wake-up before looking at other work.
const BATCH: usize = 64;
/// Per-MAC packet rate (packets/s) and burst; far above what a client needs
/// (4 packets per lease), low enough that one MAC cannot crowd out others.
const RATE: u32 = 250;
const BURST: u32 = 500;
/// Longest a record that needs no sync waits before it is written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Write lazy records at once when this many have piled up.
const LAZY_RECORDS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("DHCP is off in the config (dhcp.enabled = false)")]
    Disabled,
    #[error(
        "refusing to serve DHCP on {0}: it holds the default route, so it is probably the public side; \
         set dhcp.allow_default_route_interface = true if it really is the private LAN"
    )]
    DefaultRoute(String),
    #[error("cannot listen for DHCP on {iface} (0.0.0.0:67): {source}")]
    Bind { iface: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{what} changed from {old} to {new}: restart the server to apply it")]
    NeedsRestart {
        what: &'static str,
        old: String,
        new: String,
    },
    #[error("DHCP server failed: {0}")]
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

/// One row of `headnode leases`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseView {
    pub address: Ipv4Addr,
    pub mac: String,
    /// `fixed` (a `[[host]]` reservation) or `dynamic` (pool).
    pub kind: &'static str,
    /// Reservation name, or the host name a pool client sent.
    pub name: Option<String>,
    /// `reserved` (never seen), `offered`, `bound`, `expired`, `released`, `declined`.
    pub state: &'static str,
    /// Unix seconds; for declined addresses, the end of the quarantine.
    pub expires: Option<u64>,
    pub last_seen: Option<u64>,
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
        State::Bound | State::Offered if r.expires <= now => "expired",
        State::Bound => "bound",
        State::Offered => "offered",
        State::Released => "released",
        State::Declined => "declined",
    };
    for r in records {
        let host = t.hosts.get(&r.mac).filter(|h| h.address == r.ip);
        if host.is_some() {
            seen_fixed.insert(r.mac);
        }
        rows.push(LeaseView {
            address: r.ip,
            mac: r.mac.to_string(),
            kind: if host.is_some() { "fixed" } else { "dynamic" },
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
                kind: "fixed",
                name: Some(h.name.to_string()),
                state: "reserved",
                expires: None,
                last_seen: None,
            });
        }
    }
    // A released reservation and a pool lease can share nothing, but two
    // rows for one address can exist when a reservation replaced a binding.
    rows.sort_by(|a, b| {
        (a.address, a.kind != "fixed", &a.mac).cmp(&(b.address, b.kind != "fixed", &b.mac))
    });
    rows
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
}

/// Lines to append and replies that wait for them.
#[derive(Default)]
struct Job {
    records: Vec<Record>,
    held: Vec<(Target, Vec<u8>)>,
}

/// Replies whose records are on disk.
struct Durable {
    held: Vec<(Target, Vec<u8>)>,
}

/// A running DHCP server.
pub struct Server {
    core: Arc<Mutex<Core>>,
    counters: Arc<Counters>,
    lease_file: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), DhcpError>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic elsewhere cannot leave Core half-updated in a way that matters
    // more than stopping DHCP would; keep serving.
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// Check the interface, bind to it, load the lease file and start
    /// serving. Call from inside a tokio runtime.
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
        let (file, loaded) = LeaseFile::open(&cfg.dhcp.lease_file)?;
        let sock = socket::bind(&iface).map_err(|source| DhcpError::Bind {
            iface: iface.clone(),
            source,
        })?;
        let tables = Arc::new(Tables::new(&cfg));
        let mut db = LeaseDb::new(tables.pool);
        for r in loaded.records {
            db.put(r);
        }
        info!(
            "DHCP serving on {iface} as {}: {} reservation(s), {}, {} lease record(s) from {}",
            tables.server_ip,
            tables.hosts.len(),
            tables
                .pool
                .map_or("no pool".into(), |p| format!("pool {}-{}", p.start, p.end)),
            db.len(),
            cfg.dhcp.lease_file.display()
        );
        let core = Arc::new(Mutex::new(Core { tables, db }));
        let counters = Arc::new(Counters::default());
        let (job_tx, job_rx) = std_mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Durable>();
        let wc = counters.clone();
        let writer = std::thread::Builder::new()
            .name("dhcp-leases".into())
            .spawn(move || writer(file, job_rx, done_tx, wc))?;
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            sock,
            iface,
            core.clone(),
            counters.clone(),
            job_tx,
            done_rx,
            stop_rx,
        ));
        Ok(Server {
            core,
            counters,
            lease_file: cfg.dhcp.lease_file.clone(),
            stop,
            task,
            writer: Some(writer),
        })
    }

    /// Serve a new config: reservations and options change at once,
    /// leases are kept. Changes that need a new socket or file are refused.
    pub fn reload(&self, cfg: Arc<Config>) -> Result<(), DhcpError> {
        let mut core = lock(&self.core);
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
        let core = lock(&self.core);
        lease_views(&core.tables, core.db.records(), unix_now())
    }

    pub fn counters(&self) -> CountersView {
        self.counters.snapshot()
    }

    /// Ask the server to stop; `wait` returns once it has.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Run until stopped or failed, then let the lease writer finish what
    /// it was given. Await it once.
    pub async fn wait(&mut self) -> Result<(), DhcpError> {
        let r = match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(DhcpError::Io(io::Error::other(e))),
        };
        if let Some(w) = self.writer.take() {
            // The packet task is gone with its sender, so the writer drains and exits.
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        r
    }
}

/// Per-loop state that is not shared.
struct Loop {
    iface: String,
    core: Arc<Mutex<Core>>,
    counters: Arc<Counters>,
    rate: RateLimit,
    unknown_log: LogGate,
    exhausted_log: LogGate,
    started: Instant,
    out: Vec<u8>,
}

async fn serve(
    sock: tokio::net::UdpSocket,
    iface: String,
    core: Arc<Mutex<Core>>,
    counters: Arc<Counters>,
    jobs: std_mpsc::Sender<Job>,
    mut durable: mpsc::UnboundedReceiver<Durable>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DhcpError> {
    let mut lp = Loop {
        iface,
        core,
        counters,
        rate: RateLimit::new(RATE, BURST),
        unknown_log: LogGate::new(60),
        exhausted_log: LogGate::new(60),
        started: Instant::now(),
        out: Vec::with_capacity(1500),
    };
    let mut buf = vec![0u8; 4096];
    // Records that need no sync (fixed-address ACKs, releases, declines)
    // wait for the next durable batch or the tick, whichever comes first:
    // a reservation ACK then costs no write of its own.
    let mut pending = Job::default();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let flush = |pending: &mut Job| {
        if pending.records.is_empty() && pending.held.is_empty() {
            return Ok(());
        }
        jobs.send(std::mem::take(pending))
            .map_err(|_| DhcpError::Io(io::Error::other("the lease writer thread stopped")))
    };
    loop {
        tokio::select! {
            r = sock.readable() => {
                r?;
                {
                    let core = lp.core.clone();
                    let mut core = lock(&core);
                    let now = unix_now();
                    for _ in 0..BATCH {
                        match sock.try_recv_from(&mut buf) {
                            Ok((n, _)) => lp.handle(&buf[..n], &mut core, now, &sock, &mut pending),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                if !pending.held.is_empty() || pending.records.len() >= LAZY_RECORDS {
                    flush(&mut pending)?;
                }
            }
            Some(d) = durable.recv() => {
                for (target, bytes) in d.held {
                    lp.send(&sock, target, &bytes);
                }
            }
            _ = tick.tick() => flush(&mut pending)?,
            _ = stop.changed() => {
                info!("DHCP server stopping");
                return flush(&mut pending);
            }
        }
    }
}

impl Loop {
    fn handle(
        &mut self,
        pkt: &[u8],
        core: &mut Core,
        now: u64,
        sock: &tokio::net::UdpSocket,
        job: &mut Job,
    ) {
        let c = &*self.counters;
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
                if let Some(r) = record {
                    job.records.push(r);
                }
                if wait {
                    job.held.push((target, self.out.clone()));
                } else {
                    let out = std::mem::take(&mut self.out);
                    self.send(sock, target, &out);
                    self.out = out;
                }
            }
            Outcome::Quiet { why, record } => {
                if let Some(r) = record {
                    job.records.push(r);
                }
                match why {
                    Quiet::UnknownClient => {
                        Counters::bump(&c.unknown_client);
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
                    Quiet::Incomplete => Counters::bump(&c.incomplete),
                    Quiet::Done => Counters::bump(match req.kind {
                        dhcproto::v4::MessageType::Decline => &c.declines,
                        _ => &c.releases,
                    }),
                }
            }
        }
    }

    fn send(&self, sock: &tokio::net::UdpSocket, target: Target, bytes: &[u8]) {
        if let Err(e) = socket::send(sock, &self.iface, target, bytes) {
            Counters::bump(&self.counters.send_errors);
            tracing::debug!(?target, "send failed: {e}");
        }
    }
}

/// The lease writer: waits for work, takes everything queued, appends it
/// in one write, syncs once, then releases the held replies.
fn writer(
    mut file: LeaseFile,
    jobs: std_mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Durable>,
    counters: Arc<Counters>,
) {
    let mut text = String::new();
    let mut last_error = None::<Instant>;
    while let Ok(first) = jobs.recv() {
        let mut records = first.records;
        let mut held = first.held;
        while let Ok(more) = jobs.try_recv() {
            records.extend(more.records);
            held.extend(more.held);
        }
        let sync = !held.is_empty();
        match file.append(&records, sync, &mut text) {
            Ok(()) => {
                counters
                    .lease_writes
                    .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if sync {
                    Counters::bump(&counters.lease_syncs);
                }
                if !held.is_empty() && done.send(Durable { held }).is_err() {
                    return;
                }
            }
            Err(e) => {
                counters
                    .not_durable
                    .fetch_add(held.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if last_error.is_none_or(|t| t.elapsed().as_secs() >= 60) {
                    error!(
                        "cannot write the lease file: {e}; pool clients get no ACK until it works again (logged once a minute)"
                    );
                    last_error = Some(Instant::now());
                }
            }
        }
    }
}
