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
use socket::Outbox;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Lines to append and the replies that wait for them.
#[derive(Default)]
struct Job {
    records: Vec<Record>,
    held: Outbox,
}

/// A running DHCP server.
pub struct Server {
    core: Arc<Mutex<Core>>,
    counters: Arc<Counters>,
    lease_file: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), DhcpError>>>,
    /// Closed when the server thread ends.
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic elsewhere cannot leave Core half-updated in a way that matters
    // more than stopping DHCP would; keep serving.
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// Check the interface, bind to it, load the lease file and start
    /// serving on a thread of its own.
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
        let wc = counters.clone();
        let wsock = sock.try_clone()?;
        let held = Arc::new(AtomicUsize::new(0));
        let wheld = held.clone();
        let wcore = core.clone();
        let writer = std::thread::Builder::new()
            .name("dhcp-leases".into())
            .spawn(move || writer(file, job_rx, wsock, wc, wheld, wcore))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let lp = Loop::new(iface, core.clone(), counters.clone(), held);
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dhcp".into())
            .spawn(move || {
                let r = serve(lp, sock, job_tx, st);
                // The writer drains what it was given once the sender is gone.
                let _ = writer.join();
                drop(done_tx);
                r
            })?;
        Ok(Server {
            core,
            counters,
            lease_file: cfg.dhcp.lease_file.clone(),
            stop,
            thread: Some(thread),
            done: Some(done),
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

    /// Ask the server to stop (within `socket::RECV_TIMEOUT`); `wait`
    /// returns once it has.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Run until stopped or failed, the lease writer included. Cancel-safe
    /// (fine in a `select!` loop); returns the result once.
    pub async fn wait(&mut self) -> Result<(), DhcpError> {
        if let Some(done) = self.done.as_mut() {
            let _ = done.await;
            self.done = None;
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(DhcpError::Io(io::Error::other("the DHCP thread panicked"))),
            None => Ok(()),
        }
    }
}

/// Per-thread state of the server loop.
struct Loop {
    iface: String,
    core: Arc<Mutex<Core>>,
    counters: Arc<Counters>,
    rate: RateLimit,
    unknown_log: LogGate,
    exhausted_log: LogGate,
    started: Instant,
    /// The reply being written.
    out: Vec<u8>,
    /// Replies to send at the end of this batch.
    now_out: Outbox,
    /// Replies handed to the lease writer and not sent yet.
    held: Arc<AtomicUsize>,
}

fn serve(
    mut lp: Loop,
    sock: UdpSocket,
    jobs: std_mpsc::Sender<Job>,
    stop: Arc<AtomicBool>,
) -> Result<(), DhcpError> {
    let mut rx = socket::RecvBatch::default();
    // Records that need no sync (fixed-address ACKs, releases, declines)
    // wait for the next durable batch or a second, whichever comes first:
    // a reservation ACK then costs no write of its own.
    let mut pending = Job::default();
    let mut last_flush = Instant::now();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            let n = rx.recv(&sock)?;
            if n > 0 {
                let core = lp.core.clone();
                let mut core = lock(&core);
                let now = unix_now();
                for i in 0..n {
                    lp.handle(rx.get(i), &mut core, now, &sock, &mut pending);
                }
            }
            lp.send_now(&sock);
        }
        let due = !pending.held.is_empty()
            || pending.records.len() >= LAZY_RECORDS
            || (!pending.records.is_empty() && last_flush.elapsed() >= FLUSH_EVERY)
            || stopping;
        if due {
            last_flush = Instant::now();
            if !(pending.records.is_empty() && pending.held.is_empty()) {
                lp.held.fetch_add(pending.held.len(), Ordering::Relaxed);
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
    fn new(
        iface: String,
        core: Arc<Mutex<Core>>,
        counters: Arc<Counters>,
        held: Arc<AtomicUsize>,
    ) -> Loop {
        Loop {
            iface,
            core,
            counters,
            rate: RateLimit::new(RATE, BURST),
            unknown_log: LogGate::new(60),
            exhausted_log: LogGate::new(60),
            started: Instant::now(),
            out: Vec::with_capacity(1500),
            now_out: Outbox::default(),
            held,
        }
    }

    fn handle(&mut self, pkt: &[u8], core: &mut Core, now: u64, sock: &UdpSocket, job: &mut Job) {
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
                // The record is kept even when its ACK is dropped below:
                // the binding is already made, and the retry finds it.
                if let Some(r) = record {
                    job.records.push(r);
                }
                if wait && self.held.load(Ordering::Relaxed) + job.held.len() >= MAX_HELD {
                    Counters::bump(&c.dropped_writer_behind);
                    return;
                }
                // Only for a reply that goes: a hardware target sets a neighbour entry.
                let to = socket::destination(sock, &self.iface, target);
                if wait {
                    job.held.push(to, &self.out);
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

    /// Send this batch's replies.
    fn send_now(&mut self, sock: &UdpSocket) {
        if self.now_out.is_empty() {
            return;
        }
        let failed = self.now_out.send(sock);
        if failed > 0 {
            self.counters
                .send_errors
                .fetch_add(failed as u64, Ordering::Relaxed);
        }
    }
}

/// The lease writer: waits for work, takes everything queued, appends it
/// in one write, syncs once, then sends the replies that waited.
fn writer(
    mut file: LeaseFile,
    jobs: std_mpsc::Receiver<Job>,
    sock: UdpSocket,
    counters: Arc<Counters>,
    held_count: Arc<AtomicUsize>,
    core: Arc<Mutex<Core>>,
) {
    let mut text = String::new();
    let mut last_error = None::<Instant>;
    while let Ok(first) = jobs.recv() {
        let Job {
            mut records,
            mut held,
        } = first;
        while let Ok(mut more) = jobs.try_recv() {
            records.append(&mut more.records);
            held.append(&mut more.held);
        }
        let sync = !held.is_empty();
        let waiting = held.len();
        match file.append(&records, sync, &mut text) {
            Ok(()) => {
                counters
                    .lease_writes
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                if sync {
                    Counters::bump(&counters.lease_syncs);
                }
                let failed = held.send_paced(&sock, PACE_BURST, PACE_GAP);
                counters
                    .send_errors
                    .fetch_add(failed as u64, Ordering::Relaxed);
            }
            Err(e) => {
                counters
                    .not_durable
                    .fetch_add(waiting as u64, Ordering::Relaxed);
                if last_error.is_none_or(|t| t.elapsed().as_secs() >= 60) {
                    error!(
                        "cannot write the lease file: {e}; pool clients get no ACK until it works again (logged once a minute)"
                    );
                    last_error = Some(Instant::now());
                }
            }
        }
        held_count.fetch_sub(waiting, Ordering::Relaxed);
        if file.wants_compaction() {
            // The bindings are the server's; a few ms of its lock to write
            // them out beats a second copy of 50,000 records.
            let written = file.write_compacted(lock(&core).db.records());
            if let Err(e) = written.and_then(|c| file.install(c)) {
                file.postpone_compaction();
                error!("cannot compact the lease file: {e}; still appending to it");
            }
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

    #[test]
    fn pool_acks_past_the_writer_backlog_are_dropped_and_counted() {
        let text = format!("{}{POOL}", crate::config::test_text::INTERFACES);
        let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid");
        let tables = Arc::new(Tables::new(&cfg));
        let shared = Arc::new(Mutex::new(Core {
            db: LeaseDb::new(tables.pool),
            tables,
        }));
        let mut lp = Loop::new(
            "eth0".into(),
            shared.clone(),
            Arc::new(Counters::default()),
            Arc::new(AtomicUsize::new(MAX_HELD)),
        );
        let mut core = lock(&shared);
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
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
        assert_eq!(lp.counters.snapshot().dropped_writer_behind, 1);
        assert_eq!(
            job.records.iter().map(|r| r.state).collect::<Vec<_>>(),
            [State::Bound],
            "the binding is still written"
        );
        lp.held.store(MAX_HELD - 1, Ordering::Relaxed);
        lp.handle(&request, &mut core, now, &sock, &mut job);
        assert_eq!(job.held.len(), 1, "the retry's ACK waits for the sync");
        lp.handle(&request, &mut core, now, &sock, &mut job);
        assert_eq!(job.held.len(), 1, "held in this batch counts too");
        assert_eq!(lp.counters.snapshot().dropped_writer_behind, 2);
    }
}
