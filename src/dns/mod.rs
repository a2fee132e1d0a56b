//! DNS for the cluster on the private address (UDP and TCP port 53): the
//! hosts' names from the config, answered here (`zone`), everything else
//! forwarded to the upstream resolvers through a bounded cache (`cache`),
//! each client held to a rate (`limit`). The wire format is hickory-proto's;
//! this file is the socket adapter.
//!
//! Never an open resolver: the sockets are bound to the LAN address and
//! interface, and a packet from a source outside the LAN is dropped unread.
//! UDP answers larger than the client offered are truncated (TC) so that
//! large answers go over TCP, which a spoofed source cannot complete.

pub mod cache;
pub mod fuzzing;
pub mod limit;
pub mod zone;

use cache::{Cache, Key};
use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use ipnet::Ipv4Net;
use limit::Limiter;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tracing::{debug, info};
use zone::{Answer, Zone};

/// Forwarded queries waiting for upstream at once; more get SERVFAIL.
const MAX_FORWARDS: usize = 512;
/// TCP connections at once; more are closed at once.
const MAX_TCP: usize = 64;
/// A TCP client that sends nothing this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Wait this long for one upstream before asking the next.
const UPSTREAM_WAIT: Duration = Duration::from_millis(1500);

/// What the server needs; the daemon builds it from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Port 53 on the private address in the daemon; anything in tests.
    pub listen: SocketAddr,
    /// Bind to this interface too (SO_BINDTODEVICE).
    pub device: Option<String>,
    /// Only sources inside it are answered.
    pub lan: Ipv4Net,
    pub domain: String,
    pub head: (String, Ipv4Addr),
    /// (name, address) of every named host.
    pub hosts: Vec<(String, Ipv4Addr)>,
    pub ttl: u32,
    pub upstream: Vec<SocketAddr>,
    pub cache_size: usize,
    pub rate_limit: u32,
    /// Answer the names pool clients sent (`set_pool_names`).
    pub pool_names: bool,
}

impl Settings {
    /// The daemon's server: `[dns]` on port 53 of the private address;
    /// `hostname` names the head node unless `[dns] name` does, and
    /// `resolv_conf` (the text of /etc/resolv.conf) gives the upstreams
    /// unless `[dns] upstream` does. `None` when `[dns]` is off.
    pub fn from_config(
        cfg: &crate::config::Config,
        hostname: &str,
        resolv_conf: &str,
    ) -> Option<Settings> {
        let d = cfg.dns.as_ref()?;
        let me = cfg.private.address.addr();
        let head = d.name.clone().unwrap_or_else(|| {
            let short = hostname
                .split('.')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if short.is_empty() {
                "headnode".into()
            } else {
                short
            }
        });
        let upstream = match &d.upstream {
            Some(u) => u.clone(),
            None => nameservers(resolv_conf, &[IpAddr::V4(me)]),
        };
        Some(Settings {
            listen: SocketAddr::new(me.into(), 53),
            device: Some(cfg.private.name.clone()),
            lan: cfg.private.address.trunc(),
            domain: d.domain.clone(),
            head: (head, me),
            hosts: cfg
                .hosts
                .iter()
                .map(|h| (h.name.to_string(), h.address))
                .collect(),
            ttl: d.ttl,
            upstream,
            cache_size: d.cache_size as usize,
            rate_limit: d.rate_limit,
            pool_names: d.pool_names,
        })
    }
}

/// The `nameserver` lines of resolv.conf, less the head node's own
/// addresses (asking ourselves would loop).
pub fn nameservers(resolv_conf: &str, own: &[IpAddr]) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|a| !own.contains(a) && !a.is_unspecified())
        .map(|a| SocketAddr::new(a, 53))
        .take(3)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS zone: {0}")]
    Zone(String),
    #[error("cannot listen for DNS on {0}: {1}")]
    Bind(SocketAddr, io::Error),
}

#[derive(Debug, Default)]
struct Counters {
    queries: AtomicU64,
    local: AtomicU64,
    nxdomain: AtomicU64,
    forwarded: AtomicU64,
    cache_hits: AtomicU64,
    upstream_failures: AtomicU64,
    refused_outside_lan: AtomicU64,
    rate_limited: AtomicU64,
    malformed: AtomicU64,
    truncated: AtomicU64,
    tcp_connections: AtomicU64,
}

struct Shared {
    zone: std::sync::RwLock<Zone>,
    lan: Ipv4Net,
    upstream: Vec<SocketAddr>,
    cache: Mutex<Cache>,
    limiter: Mutex<Limiter>,
    forwards: Arc<Semaphore>,
    tcp_active: AtomicUsize,
    counters: Counters,
}

/// What to do with a packet after the zone and the cache had their say.
enum Step {
    Reply(Message),
    Forward(Message),
    Drop,
}

impl Shared {
    /// Is this source one we answer (inside the LAN, under its rate)?
    fn admit(&self, peer: SocketAddr) -> bool {
        let inside = match peer.ip() {
            IpAddr::V4(a) => self.lan.contains(&a),
            IpAddr::V6(a) => a.to_ipv4_mapped().is_some_and(|a| self.lan.contains(&a)),
        };
        if !inside || peer.port() == 0 {
            self.counters
                .refused_outside_lan
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if !self
            .limiter
            .lock()
            .unwrap()
            .allow(peer.ip(), Instant::now())
        {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// What to do with `packet`, and the UDP size its client takes.
    fn step(&self, packet: &[u8]) -> (Step, usize) {
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let (answer, limit) = self
            .zone
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .answer_sized(packet);
        let step = match answer {
            Answer::Reply(m) => {
                let c = &self.counters;
                match m.metadata.response_code {
                    ResponseCode::FormErr => c.malformed.fetch_add(1, Ordering::Relaxed),
                    ResponseCode::NXDomain => c.nxdomain.fetch_add(1, Ordering::Relaxed),
                    _ => c.local.fetch_add(1, Ordering::Relaxed),
                };
                Step::Reply(m)
            }
            Answer::Drop => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                Step::Drop
            }
            Answer::Forward(req) => {
                let cached =
                    Key::of(&req).and_then(|k| self.cache.lock().unwrap().get(&k, Instant::now()));
                match cached {
                    Some(hit) => {
                        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                        Step::Reply(reply_from(&req, &hit))
                    }
                    None => Step::Forward(req),
                }
            }
        };
        (step, limit)
    }

    /// Ask the upstreams in turn; SERVFAIL when none answers.
    async fn forward(&self, req: Message) -> Message {
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        for up in &self.upstream {
            match ask(*up, &req).await {
                Ok(resp) => {
                    if let Some(k) = Key::of(&req) {
                        self.cache.lock().unwrap().insert(k, &resp, Instant::now());
                    }
                    return reply_from(&req, &resp);
                }
                Err(e) => debug!(upstream = %up, "DNS upstream: {e}"),
            }
        }
        self.counters
            .upstream_failures
            .fetch_add(1, Ordering::Relaxed);
        let mut m = zone::response(&req);
        m.metadata.response_code = ResponseCode::ServFail;
        m
    }

    fn encode(&self, resp: &Message, limit: usize) -> Option<Vec<u8>> {
        let bytes = zone::encode(resp, limit)?;
        if bytes.len() > 3 && bytes[2] & 0x02 != 0 && !resp.metadata.truncation {
            self.counters.truncated.fetch_add(1, Ordering::Relaxed);
        }
        Some(bytes)
    }
}

/// The client's answer from an upstream's (or the cache's): its records
/// under the client's id, question and EDNS.
fn reply_from(req: &Message, upstream: &Message) -> Message {
    let mut m = zone::response(req);
    m.metadata.response_code = upstream.metadata.response_code;
    m.metadata.authentic_data = false;
    m.answers = upstream.answers.clone();
    m.authorities = upstream.authorities.clone();
    m.additionals = upstream.additionals.clone();
    m
}

/// An empty query with a random id (from the kernel: hickory's own random
/// ids need its `std` feature, which brings more crates into the build).
pub fn new_query() -> Message {
    let mut id = [0u8; 2];
    // SAFETY: getrandom writes at most the 2 bytes of the buffer it is given.
    let n = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
    if n != 2 {
        // Never seen for 2 bytes; a clock-derived id still varies.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        id = (t.subsec_nanos() as u16).to_ne_bytes();
    }
    Message::new(
        u16::from_ne_bytes(id),
        MessageType::Query,
        hickory_proto::op::OpCode::Query,
    )
}

/// One query to one upstream over UDP from a fresh random port; the answer
/// must come from it, with our id and our question.
async fn ask(upstream: SocketAddr, req: &Message) -> io::Result<Message> {
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    let mut q = crate::dns::new_query();
    q.metadata.recursion_desired = true;
    q.add_queries(req.queries.iter().cloned());
    let mut e = Edns::new();
    e.set_max_payload(zone::MAX_UDP);
    q.set_edns(e);
    let bytes = q.to_vec().map_err(io::Error::other)?;
    sock.send(&bytes).await?;
    let deadline = tokio::time::Instant::now() + UPSTREAM_WAIT;
    let mut buf = vec![0u8; 4096];
    // A few stray packets at most, then give up on this upstream.
    for _ in 0..8 {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        let Ok(resp) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if resp.metadata.id == q.metadata.id
            && resp.metadata.message_type == MessageType::Response
            && resp.queries == q.queries
        {
            return Ok(resp);
        }
    }
    Err(io::Error::other("no matching answer"))
}

/// A running server; dropping it ends it.
pub struct Server {
    settings: Settings,
    shared: Arc<Shared>,
    local: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Build the zone and bind UDP and TCP; fails (and nothing runs) when
    /// any of it fails.
    pub fn start(settings: Settings) -> Result<Server, DnsError> {
        let zone = Zone::new(
            &settings.domain,
            (&settings.head.0, settings.head.1),
            settings.lan,
            settings.hosts.iter().map(|(n, a)| (n.as_str(), *a)),
            settings.ttl,
        )
        .map_err(DnsError::Zone)?;
        let bind_err = |e| DnsError::Bind(settings.listen, e);
        let udp = bind_udp(settings.listen, settings.device.as_deref()).map_err(bind_err)?;
        let local = udp.local_addr().map_err(bind_err)?;
        // TCP on the same port as UDP (which may have been port 0).
        let tcp = bind_tcp(local, settings.device.as_deref()).map_err(bind_err)?;
        let shared = Arc::new(Shared {
            zone: std::sync::RwLock::new(zone),
            lan: settings.lan,
            upstream: settings.upstream.clone(),
            cache: Mutex::new(Cache::new(settings.cache_size)),
            limiter: Mutex::new(Limiter::new(settings.rate_limit, limit::MAX_CLIENTS)),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            tcp_active: AtomicUsize::new(0),
            counters: Counters::default(),
        });
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), shared.clone())),
            tokio::spawn(serve_tcp(tcp, shared.clone())),
        ];
        info!(listen = %local, domain = %settings.domain, names = shared.zone.read().map(|z| z.len()).unwrap_or(0),
              upstream = ?settings.upstream, "DNS serving");
        Ok(Server {
            settings,
            shared,
            local,
            tasks,
        })
    }

    /// Answer these names of pool clients (the host names their DHCP
    /// requests carried), replacing the last set, when `[dns] pool_names`
    /// is on; how many are answered.
    pub fn set_pool_names<'a>(
        &self,
        leases: impl IntoIterator<Item = (&'a str, Ipv4Addr)>,
    ) -> usize {
        if !self.settings.pool_names {
            return 0;
        }
        self.shared
            .zone
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_pool(leases)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn status(&self) -> DnsStatus {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let cache = self.shared.cache.lock().unwrap();
        DnsStatus {
            listen: self.local,
            domain: self.settings.domain.clone(),
            names: self.shared.zone.read().map(|z| z.len()).unwrap_or(0),
            upstream: self.settings.upstream.clone(),
            cache_entries: cache.len(),
            cache_capacity: cache.capacity(),
            counters: DnsCounters {
                queries: get(&c.queries),
                local: get(&c.local),
                nxdomain: get(&c.nxdomain),
                forwarded: get(&c.forwarded),
                cache_hits: get(&c.cache_hits),
                upstream_failures: get(&c.upstream_failures),
                refused_outside_lan: get(&c.refused_outside_lan),
                rate_limited: get(&c.rate_limited),
                malformed: get(&c.malformed),
                truncated: get(&c.truncated),
                tcp_connections: get(&c.tcp_connections),
            },
        }
    }
}

impl Server {
    /// Stop and wait until the sockets are closed, so that a new server can
    /// bind the same address at once (a TCP listener still open in an
    /// aborted task that has not been dropped yet makes that bind fail).
    pub async fn stop(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The daemon's DNS server as `headnode status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsStatus {
    pub listen: SocketAddr,
    pub domain: String,
    /// Names answered locally (hosts and the head node).
    pub names: usize,
    pub upstream: Vec<SocketAddr>,
    pub cache_entries: usize,
    pub cache_capacity: usize,
    pub counters: DnsCounters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsCounters {
    pub queries: u64,
    pub local: u64,
    pub nxdomain: u64,
    pub forwarded: u64,
    pub cache_hits: u64,
    pub upstream_failures: u64,
    pub refused_outside_lan: u64,
    pub rate_limited: u64,
    pub malformed: u64,
    pub truncated: u64,
    pub tcp_connections: u64,
}

fn socket(
    addr: SocketAddr,
    ty: socket2::Type,
    device: Option<&str>,
) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    if let Some(dev) = device {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn bind_udp(addr: SocketAddr, device: Option<&str>) -> io::Result<UdpSocket> {
    UdpSocket::from_std(socket(addr, socket2::Type::DGRAM, device)?.into())
}

fn bind_tcp(addr: SocketAddr, device: Option<&str>) -> io::Result<TcpListener> {
    let s = socket(addr, socket2::Type::STREAM, device)?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

async fn serve_udp(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors for earlier answers and the like: keep serving.
            Err(e) => {
                debug!("DNS receive: {e}");
                continue;
            }
        };
        if !shared.admit(peer) {
            continue;
        }
        let (step, limit) = shared.step(&buf[..n]);
        match step {
            Step::Reply(m) => {
                if let Some(b) = shared.encode(&m, limit) {
                    let _ = sock.send_to(&b, peer).await;
                }
            }
            Step::Forward(req) => match shared.forwards.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (sock, shared) = (sock.clone(), shared.clone());
                    tokio::spawn(async move {
                        let resp = shared.forward(req).await;
                        if let Some(b) = shared.encode(&resp, limit) {
                            let _ = sock.send_to(&b, peer).await;
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    let mut m = zone::response(&req);
                    m.metadata.response_code = ResponseCode::ServFail;
                    if let Some(b) = shared.encode(&m, limit) {
                        let _ = sock.send_to(&b, peer).await;
                    }
                }
            },
            Step::Drop => {}
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((conn, peer)) = listener.accept().await else {
            continue;
        };
        let inside = match peer.ip() {
            IpAddr::V4(a) => shared.lan.contains(&a),
            IpAddr::V6(_) => false,
        };
        if !inside {
            shared
                .counters
                .refused_outside_lan
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if shared.tcp_active.fetch_add(1, Ordering::Relaxed) >= MAX_TCP {
            shared.tcp_active.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        shared
            .counters
            .tcp_connections
            .fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tcp_client(conn, peer, &shared).await;
            shared.tcp_active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Length-prefixed queries on one connection, answered in order, until the
/// client closes, idles or has sent 100.
async fn tcp_client(mut conn: TcpStream, peer: SocketAddr, shared: &Shared) -> io::Result<()> {
    let mut buf = vec![0u8; 65_535];
    for _ in 0..100 {
        let len = tokio::time::timeout(TCP_IDLE, conn.read_u16())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let packet = &mut buf[..usize::from(len)];
        tokio::time::timeout(TCP_IDLE, conn.read_exact(packet))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if !shared.admit(peer) {
            return Ok(());
        }
        let resp = match shared.step(packet).0 {
            Step::Reply(m) => m,
            Step::Forward(req) => {
                let Ok(_permit) = shared.forwards.try_acquire() else {
                    return Ok(());
                };
                shared.forward(req).await
            }
            Step::Drop => return Ok(()),
        };
        let Some(bytes) = shared.encode(&resp, 65_535) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(bytes.len() + 2);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
        conn.write_all(&out).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    /// An upstream on loopback that answers every A query with 192.0.2.7
    /// (TTL 300) and counts what it was asked.
    async fn fake_upstream() -> (SocketAddr, Arc<AtomicU64>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let asked = Arc::new(AtomicU64::new(0));
        let n = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((len, peer)) = sock.recv_from(&mut buf).await {
                n.fetch_add(1, Ordering::Relaxed);
                let q = Message::from_vec(&buf[..len]).unwrap();
                let mut r = zone::response(&q);
                let name = q.queries[0].name().clone();
                r.add_answer(Record::from_rdata(
                    name,
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
                sock.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
            }
        });
        (addr, asked)
    }

    fn settings(lan: &str, upstream: SocketAddr) -> Settings {
        Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            device: None,
            lan: lan.parse().unwrap(),
            domain: "cluster.example".into(),
            head: ("head".into(), "127.0.0.1".parse().unwrap()),
            hosts: vec![("node2".into(), "127.0.0.12".parse().unwrap())],
            ttl: 60,
            upstream: vec![upstream],
            cache_size: 100,
            rate_limit: 1000,
            pool_names: true,
        }
    }

    async fn ask_udp(server: SocketAddr, name: &str) -> Option<Message> {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut m = crate::dns::new_query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        sock.send_to(&m.to_vec().unwrap(), server).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let got = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await;
        let n = got.ok()?.unwrap();
        let r = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(r.metadata.id, m.metadata.id);
        Some(r)
    }

    fn first_a(m: &Message) -> String {
        m.answers[0].data.to_string()
    }

    #[tokio::test]
    async fn local_forwarded_cached_and_tcp() {
        let (up, asked) = fake_upstream().await;
        let server = Server::start(settings("127.0.0.0/8", up)).unwrap();
        let at = server.local_addr();
        assert_eq!(first_a(&ask_udp(at, "node2").await.unwrap()), "127.0.0.12");
        for _ in 0..3 {
            let r = ask_udp(at, "www.example.test.").await.unwrap();
            assert_eq!(first_a(&r), "192.0.2.7");
        }
        assert_eq!(
            asked.load(Ordering::Relaxed),
            1,
            "answered from the cache after the first"
        );
        // TCP, length-prefixed.
        let mut conn = TcpStream::connect(at).await.unwrap();
        let mut m = crate::dns::new_query();
        m.add_query(Query::query(
            Name::from_ascii("node2.cluster.example.").unwrap(),
            RecordType::A,
        ));
        let q = m.to_vec().unwrap();
        conn.write_all(&(q.len() as u16).to_be_bytes())
            .await
            .unwrap();
        conn.write_all(&q).await.unwrap();
        let len = conn.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(first_a(&Message::from_vec(&buf).unwrap()), "127.0.0.12");
        let st = server.status();
        assert_eq!(
            (
                st.counters.local,
                st.counters.forwarded,
                st.counters.cache_hits,
                st.cache_entries
            ),
            (2, 1, 2, 1)
        );
    }

    #[tokio::test]
    async fn outside_the_lan_gets_nothing() {
        let (up, asked) = fake_upstream().await;
        // The client (127.0.0.1) is outside this "LAN".
        let server = Server::start(settings("10.9.0.0/16", up)).unwrap();
        assert!(
            ask_udp(server.local_addr(), "www.example.test.")
                .await
                .is_none()
        );
        assert_eq!(asked.load(Ordering::Relaxed), 0);
        assert_eq!(server.status().counters.refused_outside_lan, 1);
    }

    #[tokio::test]
    async fn silent_upstream_is_servfail() {
        // A bound socket that never answers.
        let mute = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(settings("127.0.0.0/8", mute.local_addr().unwrap())).unwrap();
        let r = ask_udp(server.local_addr(), "www.example.test.")
            .await
            .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(server.status().counters.upstream_failures, 1);
    }

    #[test]
    fn upstreams_from_resolv_conf() {
        let text = "# comment\nnameserver 192.168.1.254\nnameserver 192.0.2.53\n\
                    search x\nnameserver ::1\nnameserver bogus\nnameserver 0.0.0.0\n";
        let own = [IpAddr::from([192, 168, 1, 254])];
        assert_eq!(
            nameservers(text, &own),
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn settings_from_config() {
        let text = format!(
            "{}[dns]\ndomain = \"c.example\"\n[[host]]\nname = \"node1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.168.1.11\"\n",
            crate::config::test_text::INTERFACES
        );
        let cfg = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let s =
            Settings::from_config(&cfg, "Head.site.example", "nameserver 192.0.2.53\n").unwrap();
        assert_eq!(
            s.head,
            ("head".to_string(), "192.168.1.254".parse().unwrap())
        );
        assert_eq!(s.listen, "192.168.1.254:53".parse().unwrap());
        assert_eq!(
            s.hosts,
            vec![("node1".to_string(), "192.168.1.11".parse().unwrap())]
        );
        assert_eq!(s.upstream, vec!["192.0.2.53:53".parse().unwrap()]);
        assert_eq!(s.device.as_deref(), Some("eth0"));
    }
}
