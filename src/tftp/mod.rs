//! A read-only TFTP server for network boot: RFC 1350 with the options
//! firmware uses (2347 OACK, 2348 blksize, 2349 tsize and timeout, 7440
//! windowsize), on tokio, next to the DHCP server in the same daemon.
//!
//! Written here rather than taken from crates.io: the one maintained async
//! server crate, `async-tftp`, runs on its own executor and reactor
//! (async-executor, async-io, a `blocking` thread pool) beside tokio, keeps
//! no bound on concurrent transfers, and its directory handler follows
//! symlinks out of the root; `tftpd` is a thread per client. What is needed
//! is small: the codec (`packet`), option negotiation (`options`) and path
//! resolution (`path`) are pure and unit-tested; this file is the adapter.
//!
//! Safe by construction: names resolve beneath the root in the kernel
//! (`path`), write requests are refused, sessions are bounded in number
//! (overall and per client) and each holds one block buffer, retransmission
//! gives up after `retries` timeouts, and every refusal is an ERROR packet
//! and a log line. Files are read with `pread` on the runtime's thread:
//! boot files are read by many nodes and sit in the page cache, so a read is
//! a copy, and it keeps a transfer to one task without a thread hand-off.

pub mod options;
pub mod packet;
pub mod path;

use options::{Limits, Negotiated};
use packet::{ErrorCode, Mode, Reply, Request};
use path::Root;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, info, warn};

/// Files sent in netascii are converted in memory, so only this large.
const NETASCII_MAX: u64 = 1 << 20;
/// How many finished transfers `status` lists.
const RECENT: usize = 16;

/// What the server needs to run; the daemon builds it from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub root: PathBuf,
    /// Port 69 on the private address in the daemon; anything in tests.
    pub listen: SocketAddr,
    /// Bind to this interface too (SO_BINDTODEVICE), so nothing arriving on
    /// another interface reaches the server.
    pub device: Option<String>,
    pub max_sessions: usize,
    pub max_sessions_per_client: usize,
    pub max_blksize: u16,
    pub max_windowsize: u16,
    /// Wait this long for an ACK before sending again (unless the client
    /// negotiated `timeout`).
    pub retransmit: Duration,
    /// Give a transfer up after this many timeouts in a row.
    pub retries: u32,
}

impl Settings {
    /// The daemon's server: `[tftp]` on port 69 of the private address,
    /// bound to the private interface; `None` when `[tftp]` is off.
    pub fn from_config(cfg: &crate::config::Config) -> Option<Settings> {
        let t = cfg.tftp.as_ref()?;
        let listen = SocketAddr::new(cfg.private.address.addr().into(), 69);
        let mut s = Settings::new(t.root.clone(), listen);
        s.device = Some(cfg.private.name.clone());
        s.max_sessions = t.max_transfers as usize;
        s.max_sessions_per_client = t.max_transfers_per_client as usize;
        s.max_blksize = t.max_blksize;
        Some(s)
    }

    /// The defaults for everything but where to serve from and listen on.
    pub fn new(root: PathBuf, listen: SocketAddr) -> Settings {
        Settings {
            root,
            listen,
            device: None,
            max_sessions: 256,
            max_sessions_per_client: 8,
            max_blksize: options::MAX_BLKSIZE,
            max_windowsize: 64,
            retransmit: Duration::from_secs(1),
            retries: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("TFTP root {0}: {1}")]
    Root(PathBuf, io::Error),
    #[error("cannot listen for TFTP on {0}: {1}")]
    Bind(SocketAddr, io::Error),
}

/// Counters for `status`.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    completed: AtomicU64,
    refused: AtomicU64,
    aborted_by_client: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    bytes_sent: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub file: String,
    pub client: SocketAddr,
    pub bytes: u64,
    pub outcome: String,
    /// Seconds since the epoch when the transfer ended.
    pub at: u64,
}

#[derive(Debug, Default)]
struct Shared {
    counters: Counters,
    recent: Mutex<VecDeque<Served>>,
    /// Transfers running per client address.
    sessions: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    fn finish(&self, served: Served) {
        let mut r = self.recent.lock().unwrap();
        if r.len() == RECENT {
            r.pop_front();
        }
        r.push_back(served);
    }
}

/// A running server; dropping it (or `stop`) ends it and every transfer.
pub struct Server {
    shared: Arc<Shared>,
    settings: Settings,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Open the root and bind; fails (and nothing runs) when either fails.
    pub fn start(settings: Settings) -> Result<Server, TftpError> {
        let root =
            Root::open(&settings.root).map_err(|e| TftpError::Root(settings.root.clone(), e))?;
        let socket = bind(settings.listen, settings.device.as_deref())
            .map_err(|e| TftpError::Bind(settings.listen, e))?;
        let local = socket
            .local_addr()
            .map_err(|e| TftpError::Bind(settings.listen, e))?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(serve(
            socket,
            Arc::new(root),
            settings.clone(),
            shared.clone(),
        ));
        info!(root = %settings.root.display(), listen = %local, "TFTP serving");
        Ok(Server {
            shared,
            settings,
            local,
            task,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The address bound (the port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Counters, running transfers and the last files served.
    pub fn status(&self) -> TftpStatus {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TftpStatus {
            root: self.settings.root.clone(),
            listen: self.local,
            active: self.shared.sessions.lock().unwrap().values().sum(),
            counters: TftpCounters {
                requests: get(&c.requests),
                completed: get(&c.completed),
                refused: get(&c.refused),
                aborted_by_client: get(&c.aborted_by_client),
                timed_out: get(&c.timed_out),
                failed: get(&c.failed),
                bytes_sent: get(&c.bytes_sent),
            },
            recent: self.shared.recent.lock().unwrap().iter().cloned().collect(),
        }
    }
}

/// The daemon's TFTP server as `headnode status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TftpStatus {
    pub root: PathBuf,
    pub listen: SocketAddr,
    /// Transfers running now.
    pub active: usize,
    pub counters: TftpCounters,
    /// The last files served, oldest first.
    pub recent: Vec<Served>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TftpCounters {
    pub requests: u64,
    pub completed: u64,
    pub refused: u64,
    pub aborted_by_client: u64,
    pub timed_out: u64,
    pub failed: u64,
    pub bytes_sent: u64,
}

impl Server {
    /// Stop and wait until the socket is closed, so that a new server binds
    /// the same address at once.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind(addr: SocketAddr, device: Option<&str>) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(dev) = device {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

async fn serve(socket: UdpSocket, root: Arc<Root>, settings: Settings, shared: Arc<Shared>) {
    let settings = Arc::new(settings);
    // Dropped with this task: aborting the server aborts every transfer.
    let mut transfers = JoinSet::new();
    let mut buf = vec![0u8; packet::MAX_REQUEST + 1];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, peer)) => {
                    if let Some(t) = request(&socket, &buf[..n], peer, &root, &settings, &shared).await {
                        transfers.spawn(t);
                    }
                }
                // ICMP errors for earlier replies and the like: keep serving.
                Err(e) => debug!("TFTP receive: {e}"),
            },
            Some(_) = transfers.join_next() => {}
        }
    }
}

/// Refuse with an ERROR packet from the server port, a log line and a count.
async fn refuse(
    socket: &UdpSocket,
    shared: &Shared,
    peer: SocketAddr,
    name: &str,
    code: ErrorCode,
    why: &str,
) {
    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
    info!(client = %peer, file = name, "TFTP refused: {why}");
    let _ = socket.send_to(&packet::error(code, why), peer).await;
}

/// Check one packet to port 69; returns the transfer to run if it is served.
async fn request(
    socket: &UdpSocket,
    buf: &[u8],
    peer: SocketAddr,
    root: &Arc<Root>,
    settings: &Arc<Settings>,
    shared: &Arc<Shared>,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    // Port 0 cannot be answered, and answering ourselves would loop.
    if peer.port() == 0 || peer == socket.local_addr().ok()? {
        return None;
    }
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let rrq = match packet::parse_request(buf) {
        Ok(Request::Read(r)) => r,
        Ok(Request::Write(name)) => {
            let why = "write requests are refused: this server is read-only";
            refuse(socket, shared, peer, &name, ErrorCode::AccessViolation, why).await;
            return None;
        }
        Err(e) => {
            let why = e.to_string();
            refuse(socket, shared, peer, "", ErrorCode::IllegalOperation, &why).await;
            return None;
        }
    };
    let name = rrq.filename.as_str();
    let slot = match Slot::take(shared, peer.ip(), settings) {
        Ok(s) => s,
        Err(why) => {
            refuse(socket, shared, peer, name, ErrorCode::NotDefined, why).await;
            return None;
        }
    };
    let opened = path::relative(name).and_then(|rel| root.open_file(&rel));
    let (file, size) = match opened {
        Ok(f) => f,
        Err(r) => {
            refuse(socket, shared, peer, name, r.code(), &r.to_string()).await;
            return None;
        }
    };
    let source = match rrq.mode {
        Mode::Octet => Source::File(file),
        Mode::Netascii if size <= NETASCII_MAX => match netascii(&file, size) {
            Ok(bytes) => Source::Memory(bytes),
            Err(e) => {
                let why = format!("cannot read: {e}");
                refuse(socket, shared, peer, name, ErrorCode::NotDefined, &why).await;
                return None;
            }
        },
        Mode::Netascii => {
            let why = "netascii only for files up to 1 MiB; use octet mode";
            refuse(socket, shared, peer, name, ErrorCode::IllegalOperation, why).await;
            return None;
        }
    };
    let size = source.len(size);
    let limits = Limits {
        max_blksize: settings.max_blksize,
        max_windowsize: settings.max_windowsize,
    };
    let neg = options::negotiate(&rrq.options, size, limits);
    let local = SocketAddr::new(socket.local_addr().ok()?.ip(), 0);
    let settings = settings.clone();
    let shared = shared.clone();
    let name = rrq.filename.clone();
    debug!(client = %peer, file = %name, size, ?neg, "TFTP read request");
    Some(async move {
        let _slot = slot;
        let mut t = Transfer {
            source,
            size,
            neg,
            settings,
            shared: shared.clone(),
            sent: 0,
        };
        let outcome = match session_socket(local, peer, t.settings.device.as_deref()) {
            Ok(s) => t.run(&s).await,
            Err(e) => Outcome::Failed(format!("cannot open a transfer socket: {e}")),
        };
        let c = &shared.counters;
        let text = match &outcome {
            Outcome::Done => {
                c.completed.fetch_add(1, Ordering::Relaxed);
                info!(client = %peer, file = %name, bytes = t.sent, "TFTP sent");
                "sent".to_string()
            }
            Outcome::ClientError(code, msg) => {
                c.aborted_by_client.fetch_add(1, Ordering::Relaxed);
                // Firmware asks for tsize, then aborts with code 8: routine.
                debug!(client = %peer, file = %name, "TFTP aborted by the client: {code} {msg}");
                format!("aborted by the client: {msg}")
            }
            Outcome::TimedOut => {
                c.timed_out.fetch_add(1, Ordering::Relaxed);
                warn!(client = %peer, file = %name, bytes = t.sent, "TFTP transfer timed out");
                "timed out".to_string()
            }
            Outcome::Failed(e) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                warn!(client = %peer, file = %name, "TFTP transfer failed: {e}");
                format!("failed: {e}")
            }
        };
        shared.finish(Served {
            file: name,
            client: peer,
            bytes: t.sent,
            outcome: text,
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
    })
}

/// A place among the bounded sessions, given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    client: IpAddr,
}

impl Slot {
    fn take(shared: &Arc<Shared>, client: IpAddr, s: &Settings) -> Result<Slot, &'static str> {
        let mut m = shared.sessions.lock().unwrap();
        let total: usize = m.values().sum();
        if total >= s.max_sessions {
            return Err("server busy: too many transfers, try again");
        }
        let mine = m.entry(client).or_default();
        if *mine >= s.max_sessions_per_client {
            return Err("too many transfers from this client, try again");
        }
        *mine += 1;
        Ok(Slot {
            shared: shared.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.shared.sessions.lock().unwrap();
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

/// A transfer's own socket: a new port (the server's TID), connected to
/// the client, so the kernel delivers only its packets and ICMP errors.
fn session_socket(
    local: SocketAddr,
    peer: SocketAddr,
    device: Option<&str>,
) -> io::Result<UdpSocket> {
    let s = bind(local, device)?;
    let std = s.into_std()?;
    std.connect(peer)?;
    UdpSocket::from_std(std)
}

enum Source {
    File(File),
    Memory(Vec<u8>),
}

impl Source {
    fn len(&self, file_size: u64) -> u64 {
        match self {
            Source::File(_) => file_size,
            Source::Memory(b) => b.len() as u64,
        }
    }

    /// Fill `buf` from `offset`; fewer bytes only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Source::File(f) => {
                let mut n = 0;
                while n < buf.len() {
                    match f.read_at(&mut buf[n..], offset + n as u64) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(n)
            }
            Source::Memory(b) => {
                let start = (offset as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
        }
    }
}

/// RFC 1350 netascii: CR LF for a newline, CR NUL for a lone CR.
fn netascii(file: &File, size: u64) -> io::Result<Vec<u8>> {
    let mut raw = vec![0u8; size as usize];
    let n = Source::File(file.try_clone()?).read_at(&mut raw, 0)?;
    raw.truncate(n);
    Ok(to_netascii(&raw))
}

fn to_netascii(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 16);
    for &b in raw {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            b => out.push(b),
        }
    }
    out
}

enum Outcome {
    Done,
    ClientError(u16, String),
    TimedOut,
    Failed(String),
}

struct Transfer {
    source: Source,
    size: u64,
    neg: Negotiated,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    sent: u64,
}

/// What waiting for the client brought.
enum Heard {
    Ack(u16),
    Gone(Outcome),
    Timeout,
}

impl Transfer {
    async fn run(&mut self, sock: &UdpSocket) -> Outcome {
        let blksize = self.neg.blksize as u64;
        // The last block is shorter than blksize, empty if the size divides.
        let last = self.size / blksize + 1;
        let mut buf = vec![0u8; 4 + blksize as usize];
        if !self.neg.oack.is_empty() {
            let oack = packet::oack(&self.neg.oack);
            let mut tries = 0;
            'oack: loop {
                if let Err(e) = sock.send(&oack).await {
                    return gone(e);
                }
                loop {
                    match self.hear(sock, &mut buf).await {
                        Heard::Ack(0) => break 'oack,
                        Heard::Ack(_) => {}
                        Heard::Gone(o) => return o,
                        Heard::Timeout => {
                            tries += 1;
                            if tries > self.settings.retries {
                                return Outcome::TimedOut;
                            }
                            continue 'oack;
                        }
                    }
                }
            }
        }
        // Blocks are counted from 1 in u64; the wire carries the low 16
        // bits and wraps to 0 after 65535, as tftp-hpa and iPXE expect.
        let mut base = 1u64;
        let mut tries = 0;
        while base <= last {
            let end = (base + self.neg.windowsize as u64 - 1).min(last);
            for block in base..=end {
                let offset = (block - 1) * blksize;
                let n = match self.source.read_at(&mut buf[4..], offset) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = sock
                            .send(&packet::error(ErrorCode::NotDefined, "read error"))
                            .await;
                        return Outcome::Failed(format!("read: {e}"));
                    }
                };
                packet::data_header(&mut buf, block as u16);
                match sock.send(&buf[..4 + n]).await {
                    Ok(_) => {
                        self.sent += n as u64;
                        self.shared
                            .counters
                            .bytes_sent
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => return gone(e),
                }
            }
            // Wait for an ACK inside the window; older ones are duplicates
            // and are not answered (the Sorcerer's Apprentice bug).
            loop {
                match self.hear(sock, &mut buf).await {
                    Heard::Ack(n) => {
                        if let Some(acked) = (base..=end).find(|b| *b as u16 == n) {
                            // A partial window: the client missed what follows.
                            base = acked + 1;
                            tries = 0;
                            break;
                        }
                    }
                    Heard::Gone(o) => return o,
                    Heard::Timeout => {
                        tries += 1;
                        if tries > self.settings.retries {
                            return Outcome::TimedOut;
                        }
                        break;
                    }
                }
            }
        }
        Outcome::Done
    }

    /// Wait (until the retransmission time) for an ACK or an ERROR.
    async fn hear(&self, sock: &UdpSocket, buf: &mut [u8]) -> Heard {
        let wait = self.neg.timeout.unwrap_or(self.settings.retransmit);
        let deadline = Instant::now() + wait;
        loop {
            match timeout_at(deadline, sock.recv(buf)).await {
                Err(_) => return Heard::Timeout,
                Ok(Err(e)) => return Heard::Gone(gone(e)),
                Ok(Ok(n)) => match packet::parse_reply(&buf[..n]) {
                    Reply::Ack(b) => return Heard::Ack(b),
                    Reply::Error(code, msg) => {
                        return Heard::Gone(Outcome::ClientError(code, msg));
                    }
                    Reply::Other => {}
                },
            }
        }
    }
}

/// A send or receive failed: an ICMP port unreachable means the client is
/// gone, which ends the transfer at once instead of after every retry.
fn gone(e: io::Error) -> Outcome {
    Outcome::Failed(format!("client unreachable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netascii_conversion() {
        assert_eq!(to_netascii(b"a\nb\rc"), b"a\r\nb\r\0c".to_vec());
    }

    /// A temporary root with `files`, removed when dropped.
    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(tag: &str, files: &[(&str, &[u8])]) -> TempRoot {
            let dir =
                std::env::temp_dir().join(format!("headnode-tftp-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, body) in files {
                std::fs::write(dir.join(name), body).unwrap();
            }
            TempRoot(dir)
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn settings(root: &TempRoot) -> Settings {
        let mut s = Settings::new(root.0.clone(), "127.0.0.1:0".parse().unwrap());
        s.retransmit = Duration::from_millis(100);
        s.retries = 2;
        s
    }

    fn rrq(name: &str, mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
        let mut p = vec![0, 1];
        for f in [name, mode]
            .into_iter()
            .chain(opts.iter().flat_map(|(a, b)| [*a, *b]))
        {
            p.extend_from_slice(f.as_bytes());
            p.push(0);
        }
        p
    }

    /// A windowed client (RFC 7440: ACK at the end of each window, or the
    /// short last block); Err is the server's ERROR code and text.
    async fn fetch(
        server: SocketAddr,
        request: &[u8],
        window: usize,
    ) -> Result<Vec<u8>, (u16, String)> {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(request, server).await.unwrap();
        let mut buf = vec![0u8; 70000];
        let mut out = Vec::new();
        let mut expect: u16 = 1;
        let mut in_window = 0;
        let mut blksize = 512;
        loop {
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
                .await
                .expect("server silent")
                .unwrap();
            let p = &buf[..n];
            match u16::from_be_bytes([p[0], p[1]]) {
                packet::OP_ERROR => {
                    let code = u16::from_be_bytes([p[2], p[3]]);
                    return Err((code, String::from_utf8_lossy(&p[4..n - 1]).into()));
                }
                packet::OP_OACK => {
                    let fields: Vec<_> = p[2..n - 1].split(|&b| b == 0).collect();
                    for kv in fields.chunks(2) {
                        if kv[0] == b"blksize" {
                            blksize = std::str::from_utf8(kv[1]).unwrap().parse().unwrap();
                        }
                    }
                    sock.send_to(&[0, 4, 0, 0], from).await.unwrap();
                }
                packet::OP_DATA => {
                    let block = u16::from_be_bytes([p[2], p[3]]);
                    assert_eq!(block, expect, "blocks in order on loopback");
                    out.extend_from_slice(&p[4..]);
                    in_window += 1;
                    let short = n - 4 < blksize;
                    if in_window == window || short {
                        sock.send_to(&[0, 4, p[2], p[3]], from).await.unwrap();
                        in_window = 0;
                    }
                    if short {
                        return Ok(out);
                    }
                    expect = expect.wrapping_add(1);
                }
                op => panic!("unexpected opcode {op}"),
            }
        }
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn serves_with_and_without_options() {
        let big = body(300_000);
        let even = body(1024);
        let root = TempRoot::new(
            "serve",
            &[("big", &big), ("even", &even), ("t.cfg", b"a\nb")],
        );
        let server = Server::start(settings(&root)).unwrap();
        let addr = server.local_addr();
        let opts = [("tsize", "0"), ("blksize", "1468"), ("windowsize", "16")];
        assert_eq!(
            fetch(addr, &rrq("big", "octet", &opts), 16).await.unwrap(),
            big
        );
        // A size that is a multiple of 512 ends with an empty block.
        assert_eq!(
            fetch(addr, &rrq("/even", "octet", &[]), 1).await.unwrap(),
            even
        );
        assert_eq!(
            fetch(addr, &rrq("t.cfg", "netascii", &[]), 1)
                .await
                .unwrap(),
            b"a\r\nb"
        );
        // The server counts a transfer once it has read the last ACK.
        for _ in 0..50 {
            if server.status().counters.completed == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = server.status();
        assert_eq!(status.counters.completed, 3);
        assert_eq!(status.counters.bytes_sent, 300_000 + 1024 + 4);
        assert_eq!(status.recent[0].file, "big");
    }

    #[tokio::test]
    async fn refusals_are_error_packets() {
        let root = TempRoot::new("refuse", &[("f", b"x")]);
        let server = Server::start(settings(&root)).unwrap();
        let addr = server.local_addr();
        let mut wrq = rrq("f", "octet", &[]);
        wrq[1] = 2;
        assert_eq!(fetch(addr, &wrq, 1).await.unwrap_err().0, 2);
        assert_eq!(
            fetch(addr, &rrq("../etc/passwd", "octet", &[]), 1)
                .await
                .unwrap_err()
                .0,
            2
        );
        assert_eq!(
            fetch(addr, &rrq("nope", "octet", &[]), 1)
                .await
                .unwrap_err()
                .0,
            1
        );
        assert_eq!(
            fetch(addr, &rrq("f", "mail", &[]), 1).await.unwrap_err().0,
            4
        );
        let huge = "9".repeat(500);
        // A value nobody can use is left out of the OACK, the file still comes.
        assert_eq!(
            fetch(addr, &rrq("f", "octet", &[("blksize", &huge)]), 1)
                .await
                .unwrap(),
            b"x"
        );
        assert_eq!(server.status().counters.refused, 4);
    }

    #[tokio::test]
    async fn a_vanished_client_times_out_and_frees_its_slot() {
        let root = TempRoot::new("vanish", &[("f", &body(10_000))]);
        let mut s = settings(&root);
        s.max_sessions_per_client = 1;
        let server = Server::start(s).unwrap();
        let addr = server.local_addr();
        let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        quiet.send_to(&rrq("f", "octet", &[]), addr).await.unwrap();
        let mut buf = [0u8; 600];
        quiet.recv_from(&mut buf).await.unwrap();
        // The first transfer holds this client's only slot.
        let busy = fetch(addr, &rrq("f", "octet", &[]), 1).await.unwrap_err();
        assert_eq!(busy.0, 0, "{}", busy.1);
        // 100 ms, then 2 retries: gone after about 300 ms.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(server.status().counters.timed_out, 1);
        assert_eq!(server.status().active, 0);
        assert_eq!(
            fetch(addr, &rrq("f", "octet", &[]), 1).await.unwrap().len(),
            10_000
        );
    }
}
