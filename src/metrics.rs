//! Prometheus metrics: the daemon's counters and state in the text
//! exposition format 0.0.4, served on `[metrics] listen`.
//!
//! `render` is pure (a `Snapshot` in, the text out); the main loop makes
//! the snapshot when a scrape asks, so the numbers are those `headnode
//! status` shows. Durations that happen between scrapes (nft loads, IPVS
//! reconciles, lease-file syncs) go into the histograms below, which their
//! code observes directly (`crate::timings`).
//!
//! The HTTP side is hand-rolled on tokio: it answers one request per
//! connection, `GET /metrics`, with a body the main loop already rendered.
//! hyper (with its body and service crates) would bring a dozen crates and
//! minutes of build for that; what it would add (keep-alive, chunking,
//! HTTP/2) a scraper does not need.

use crate::control::{DaemonStatus, Health};
use crate::dhcp::{LeaseKind, LeaseState};
use crate::firewall::nft::RuleCounter;
use crate::timings::{BOUNDS, HistogramView, IPVS_RECONCILE, LEASE_SYNC, NFT_LOAD, RECONCILE};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Everything one scrape shows.
pub struct Snapshot {
    pub status: DaemonStatus,
    /// The pool's size, when there is a pool.
    pub pool_size: Option<u64>,
    /// Our table's counted rules; `None` when the table could not be read.
    pub rules: Option<Vec<RuleCounter>>,
    pub reconcile: HistogramView,
    pub nft_load: HistogramView,
    pub ipvs_reconcile: HistogramView,
    pub lease_sync: HistogramView,
}

impl Snapshot {
    /// The histograms as observed so far, with `status` and the rest given.
    pub fn new(
        status: DaemonStatus,
        pool_size: Option<u64>,
        rules: Option<Vec<RuleCounter>>,
    ) -> Snapshot {
        Snapshot {
            status,
            pool_size,
            rules,
            reconcile: RECONCILE.view(),
            nft_load: NFT_LOAD.view(),
            ipvs_reconcile: IPVS_RECONCILE.view(),
            lease_sync: LEASE_SYNC.view(),
        }
    }
}

/// The text exposition format, one family after another.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramView) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in BOUNDS.iter().zip(&h.buckets) {
            self.sample(&bucket, &[("le", &bound.to_string())], n);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escapes backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::new());
    let st = &s.status;
    o.family(
        "headnode_build_info",
        "gauge",
        "Always 1; the version of the running daemon.",
    );
    o.sample(
        "headnode_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    o.single(
        "headnode_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        st.daemon.uptime_s,
    );
    dhcp(&mut o, s);
    firewall(&mut o, s);
    balancer(&mut o, st);
    if let Some(t) = &st.tftp {
        tftp(&mut o, t);
    }
    if let Some(d) = &st.dns {
        dns(&mut o, d);
    }
    o.histogram(
        "headnode_reconcile_duration_seconds",
        "Time of a whole pass of the reconcile timer (firewall, sysctls, IPVS).",
        &s.reconcile,
    );
    o.histogram(
        "headnode_nft_load_duration_seconds",
        "Time of each load of the inet headnode table (whole, or its balancer chain).",
        &s.nft_load,
    );
    o.histogram(
        "headnode_ipvs_reconcile_duration_seconds",
        "Time of each IPVS reconcile (read the table, compare, change).",
        &s.ipvs_reconcile,
    );
    o.0
}

fn dhcp(o: &mut Out, s: &Snapshot) {
    let st = &s.status;
    o.single(
        "headnode_dhcp_serving",
        "gauge",
        "1 when the DHCP server listens on the LAN interface, else 0.",
        u8::from(st.dhcp.server.as_ref().is_some_and(|d| d.status.serving)),
    );
    o.single(
        "headnode_dhcp_restarts_total",
        "counter",
        "Times the DHCP server ended on its own and was started again.",
        st.dhcp.restarts,
    );
    if let Some(d) = &st.dhcp.server {
        let c = &d.counters;
        o.single(
            "headnode_dhcp_received_total",
            "counter",
            "DHCP packets received.",
            c.received,
        );
        o.family(
            "headnode_dhcp_replies_total",
            "counter",
            "DHCP replies sent, by message type.",
        );
        for (t, n) in [("offer", c.offers), ("ack", c.acks), ("nak", c.naks)] {
            o.sample("headnode_dhcp_replies_total", &[("type", t)], n);
        }
        o.family(
            "headnode_dhcp_handled_total",
            "counter",
            "DHCPRELEASE and DHCPDECLINE messages acted on, by message type.",
        );
        for (t, n) in [("release", c.releases), ("decline", c.declines)] {
            o.sample("headnode_dhcp_handled_total", &[("type", t)], n);
        }
        o.family(
            "headnode_dhcp_dropped_total",
            "counter",
            "DHCP packets dropped before an answer was considered, by reason.",
        );
        for (r, n) in [
            ("truncated", c.dropped_truncated),
            ("not_request", c.dropped_not_request),
            ("bad_hardware", c.dropped_bad_hardware),
            ("bad_cookie", c.dropped_bad_cookie),
            ("bad_option", c.dropped_bad_option),
            ("no_message_type", c.dropped_no_message_type),
            ("bad_message_type", c.dropped_bad_message_type),
            ("rate_limited", c.dropped_rate_limited),
            ("writer_behind", c.dropped_writer_behind),
        ] {
            o.sample("headnode_dhcp_dropped_total", &[("reason", r)], n);
        }
        o.family(
            "headnode_dhcp_unanswered_total",
            "counter",
            "Valid DHCP requests left without a reply, by reason.",
        );
        for (r, n) in [
            ("unknown_client", c.unknown_client),
            ("pool_exhausted", c.pool_exhausted),
            ("other_server", c.other_server),
            ("foreign_relay", c.foreign_relay),
            ("foreign_inform", c.foreign_inform),
            ("incomplete", c.incomplete),
            ("pool_refused", c.pool_refused),
            ("not_durable", c.not_durable),
        ] {
            o.sample("headnode_dhcp_unanswered_total", &[("reason", r)], n);
        }
        o.single(
            "headnode_dhcp_send_errors_total",
            "counter",
            "DHCP replies the socket refused to send.",
            c.send_errors,
        );
        o.single(
            "headnode_dhcp_lease_writes_total",
            "counter",
            "Lease records appended to the lease file.",
            c.lease_writes,
        );
    }
    let mut by: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for kind in [LeaseKind::Fixed, LeaseKind::Dynamic] {
        for state in [
            LeaseState::Reserved,
            LeaseState::Offered,
            LeaseState::Bound,
            LeaseState::Expired,
            LeaseState::Released,
            LeaseState::Declined,
        ] {
            by.insert((kind.as_str(), state.as_str()), 0);
        }
    }
    let mut pool_used = 0;
    for l in &st.leases {
        *by.entry((l.kind.as_str(), l.state.as_str())).or_default() += 1;
        if l.kind == LeaseKind::Dynamic
            && matches!(
                l.state,
                LeaseState::Offered | LeaseState::Bound | LeaseState::Declined
            )
        {
            pool_used += 1;
        }
    }
    o.family(
        "headnode_dhcp_leases",
        "gauge",
        "Reservations (kind fixed) and pool leases (kind dynamic), by state.",
    );
    for ((kind, state), n) in &by {
        o.sample(
            "headnode_dhcp_leases",
            &[("kind", kind), ("state", state)],
            n,
        );
    }
    if let Some(size) = s.pool_size {
        o.single(
            "headnode_dhcp_pool_addresses",
            "gauge",
            "Addresses in the DHCP pool.",
            size,
        );
        o.single(
            "headnode_dhcp_pool_used_addresses",
            "gauge",
            "Pool addresses offered, bound or held after a decline.",
            pool_used,
        );
    }
    o.histogram(
        "headnode_dhcp_lease_sync_duration_seconds",
        "Time of each append and fsync of the lease file that ACKs waited for.",
        &s.lease_sync,
    );
}

fn firewall(o: &mut Out, s: &Snapshot) {
    let st = &s.status;
    o.single(
        "headnode_firewall_fallback",
        "gauge",
        "1 when a fallback ruleset is loaded instead of the config's, else 0.",
        u8::from(st.firewall.source != crate::firewall::fallback::Source::Config),
    );
    o.single(
        "headnode_firewall_drift_repairs_total",
        "counter",
        "Times the reconcile found the table missing or changed and loaded it again.",
        st.firewall.drift_repairs,
    );
    let Some(rules) = &s.rules else { return };
    // Rules that share a comment (one config line may give several) are
    // summed: one series per chain and config line.
    let mut sums: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for r in rules {
        let e = sums
            .entry((&r.chain, r.comment.as_deref().unwrap_or("")))
            .or_default();
        e.0 += r.packets;
        e.1 += r.bytes;
    }
    o.family(
        "headnode_firewall_rule_packets_total",
        "counter",
        "Packets matched by the rules of one config line (label rule) in one chain.",
    );
    for ((chain, rule), (p, _)) in &sums {
        o.sample(
            "headnode_firewall_rule_packets_total",
            &[("chain", chain), ("rule", rule)],
            p,
        );
    }
    o.family(
        "headnode_firewall_rule_bytes_total",
        "counter",
        "Bytes matched by the rules of one config line (label rule) in one chain.",
    );
    for ((chain, rule), (_, b)) in &sums {
        o.sample(
            "headnode_firewall_rule_bytes_total",
            &[("chain", chain), ("rule", rule)],
            b,
        );
    }
}

fn balancer(o: &mut Out, st: &DaemonStatus) {
    o.single(
        "headnode_ipvs_drift_repairs_total",
        "counter",
        "Times the reconcile found the IPVS table changed and repaired it.",
        st.balancer.drift_repairs,
    );
    if st.balancer.services.is_empty() {
        return;
    }
    o.family(
        "headnode_real_server_up",
        "gauge",
        "1 when the real server passes its service's health check, 0 when it does not (only checked services).",
    );
    for s in &st.balancer.services {
        for r in &s.reals {
            let up = match r.health {
                Health::Up => 1,
                Health::Down => 0,
                Health::NotChecked => continue,
            };
            let addr = format!("{}:{}", r.address, r.port);
            o.sample(
                "headnode_real_server_up",
                &[("service", &s.name), ("real", &r.name), ("address", &addr)],
                up,
            );
        }
    }
    o.family(
        "headnode_real_server_weight",
        "gauge",
        "The real server's weight in the config.",
    );
    for s in &st.balancer.services {
        for r in &s.reals {
            let addr = format!("{}:{}", r.address, r.port);
            o.sample(
                "headnode_real_server_weight",
                &[("service", &s.name), ("real", &r.name), ("address", &addr)],
                r.weight,
            );
        }
    }
}

fn tftp(o: &mut Out, t: &crate::tftp::TftpStatus) {
    let c = &t.counters;
    o.single(
        "headnode_tftp_requests_total",
        "counter",
        "TFTP read requests received.",
        c.requests,
    );
    o.family(
        "headnode_tftp_transfers_total",
        "counter",
        "TFTP transfers ended, by outcome.",
    );
    for (r, n) in [
        ("completed", c.completed),
        ("refused", c.refused),
        ("aborted_by_client", c.aborted_by_client),
        ("timed_out", c.timed_out),
        ("failed", c.failed),
    ] {
        o.sample("headnode_tftp_transfers_total", &[("outcome", r)], n);
    }
    o.single(
        "headnode_tftp_sent_bytes_total",
        "counter",
        "File bytes sent by TFTP.",
        c.bytes_sent,
    );
    o.single(
        "headnode_tftp_active_transfers",
        "gauge",
        "TFTP transfers running now.",
        t.active,
    );
}

fn dns(o: &mut Out, d: &crate::dns::DnsStatus) {
    let c = &d.counters;
    o.single(
        "headnode_dns_queries_total",
        "counter",
        "DNS queries received from the LAN (UDP and TCP), malformed ones included.",
        c.queries,
    );
    o.family(
        "headnode_dns_answers_total",
        "counter",
        "DNS queries answered with records from the local names, from the cache, or by an upstream (NXDOMAIN for local names is counted apart).",
    );
    for (how, n) in [
        ("local", c.local),
        ("cache", c.cache_hits),
        ("forwarded", c.forwarded),
    ] {
        o.sample("headnode_dns_answers_total", &[("source", how)], n);
    }
    o.single(
        "headnode_dns_nxdomain_total",
        "counter",
        "Local names asked for that do not exist (answered NXDOMAIN with the SOA).",
        c.nxdomain,
    );
    o.family(
        "headnode_dns_dropped_total",
        "counter",
        "DNS queries not answered, by reason.",
    );
    for (why, n) in [
        ("outside_lan", c.refused_outside_lan),
        ("rate_limited", c.rate_limited),
        ("malformed", c.malformed),
    ] {
        o.sample("headnode_dns_dropped_total", &[("reason", why)], n);
    }
    o.single(
        "headnode_dns_upstream_failures_total",
        "counter",
        "Forwarded queries no upstream answered (the client got SERVFAIL).",
        c.upstream_failures,
    );
    o.single(
        "headnode_dns_truncated_total",
        "counter",
        "UDP answers sent truncated, so that the client asks again over TCP.",
        c.truncated,
    );
    o.single(
        "headnode_dns_tcp_connections_total",
        "counter",
        "TCP connections accepted by the DNS server.",
        c.tcp_connections,
    );
    o.single(
        "headnode_dns_cache_entries",
        "gauge",
        "Forwarded answers in the cache now.",
        d.cache_entries as u64,
    );
    o.single(
        "headnode_dns_cache_capacity",
        "gauge",
        "Forwarded answers the cache keeps at most ([dns] cache_size).",
        d.cache_capacity as u64,
    );
    o.single(
        "headnode_dns_local_names",
        "gauge",
        "Names answered from the config ([[host]] names and the head node's).",
        d.names as u64,
    );
}

/// A scrape waiting for the main loop's rendered text.
pub type Scrape = tokio::sync::oneshot::Sender<String>;

/// The listener on `[metrics] listen`, following the config across reloads.
pub struct Endpoint {
    addr: Option<std::net::SocketAddrV4>,
    task: Option<tokio::task::JoinHandle<()>>,
    scrapes: tokio::sync::mpsc::Sender<Scrape>,
}

impl Endpoint {
    pub fn new(scrapes: tokio::sync::mpsc::Sender<Scrape>) -> Endpoint {
        Endpoint {
            addr: None,
            task: None,
            scrapes,
        }
    }

    /// Listen on `want` (nowhere with `None`). A bind that fails is logged
    /// once and tried again at the next call (the main loop calls at every
    /// turn, at least once a second), e.g. until the LAN interface has its
    /// address.
    pub fn follow(&mut self, want: Option<std::net::SocketAddrV4>) {
        if want == self.addr && (want.is_none() || self.task.is_some()) {
            return;
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let first_try = want != self.addr;
        self.addr = want;
        let Some(addr) = want else { return };
        let bound = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std);
        match bound {
            Ok(listener) => {
                tracing::info!(%addr, "metrics served on http://{addr}/metrics");
                self.task = Some(tokio::spawn(serve(listener, self.scrapes.clone())));
            }
            Err(e) if first_try => {
                tracing::error!(%addr, "cannot serve metrics on {addr}: {e}; trying again every second")
            }
            Err(_) => {}
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// At most this many scrapes at once; more connections are closed at once.
const MAX_CONNECTIONS: usize = 8;

async fn serve(listener: tokio::net::TcpListener, scrapes: tokio::sync::mpsc::Sender<Scrape>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(Duration::from_secs(30), answer(stream, scrapes)).await;
        });
    }
}

/// Read one request head, answer it, close.
async fn answer(
    mut stream: tokio::net::TcpStream,
    scrapes: tokio::sync::mpsc::Sender<Scrape>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = match route(&head) {
        Route::Metrics => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if scrapes.send(tx).await.is_err() {
                return Ok(());
            }
            match rx.await {
                Ok(text) => ("200 OK", text),
                Err(_) => return Ok(()),
            }
        }
        Route::NotFound => ("404 Not Found", "only /metrics is here\n".to_string()),
        Route::NotAllowed => ("405 Method Not Allowed", "GET only\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    NotAllowed,
}

/// What a request head asks for: `GET /metrics` (a query string allowed).
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next());
    if method != Some(b"GET".as_slice()) {
        return Route::NotAllowed;
    }
    let path = target
        .unwrap_or_default()
        .split(|&b| b == b'?')
        .next()
        .unwrap_or_default();
    if path == b"/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timings::Histogram;

    fn snapshot() -> Snapshot {
        let mut h = Histogram::new();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let view = h.view();
        h = Histogram::new();
        Snapshot {
            status: crate::control::tests::status(),
            pool_size: Some(11),
            rules: Some(vec![
                RuleCounter {
                    chain: "input".into(),
                    comment: Some("headnode.toml:12 allow \"ssh\"".into()),
                    packets: 3,
                    bytes: 180,
                },
                RuleCounter {
                    chain: "input".into(),
                    comment: Some("headnode.toml:12 allow \"ssh\"".into()),
                    packets: 1,
                    bytes: 60,
                },
                RuleCounter {
                    chain: "forward".into(),
                    comment: None,
                    packets: 0,
                    bytes: 0,
                },
            ]),
            reconcile: view.clone(),
            nft_load: h.view(),
            ipvs_reconcile: HistogramView::default(),
            lease_sync: view,
        }
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let text = render(&snapshot());
        assert!(text.contains("headnode_reconcile_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("headnode_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("headnode_reconcile_duration_seconds_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("headnode_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("headnode_reconcile_duration_seconds_sum 20.003\n"));
        assert!(text.contains("headnode_reconcile_duration_seconds_count 2\n"));
        // An empty histogram still has all its lines.
        assert!(text.contains("headnode_ipvs_reconcile_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
    }

    #[test]
    fn rules_of_one_config_line_are_summed_and_labels_escaped() {
        let text = render(&snapshot());
        assert!(text.contains(
            "headnode_firewall_rule_packets_total{chain=\"input\",rule=\"headnode.toml:12 allow \\\"ssh\\\"\"} 4\n"
        ));
        assert!(text.contains(
            "headnode_firewall_rule_bytes_total{chain=\"input\",rule=\"headnode.toml:12 allow \\\"ssh\\\"\"} 240\n"
        ));
        assert!(
            text.contains("headnode_firewall_rule_packets_total{chain=\"forward\",rule=\"\"} 0\n")
        );
        assert_eq!(escape_label("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
        assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
    }

    #[test]
    fn dhcp_leases_pool_tftp_dns_and_reals() {
        let text = render(&snapshot());
        for line in [
            "headnode_dhcp_serving 0\n",
            "headnode_dhcp_restarts_total 2\n",
            "headnode_dhcp_received_total 3\n",
            "headnode_dhcp_replies_total{type=\"ack\"} 1\n",
            "headnode_dhcp_leases{kind=\"fixed\",state=\"bound\"} 1\n",
            "headnode_dhcp_leases{kind=\"dynamic\",state=\"bound\"} 0\n",
            "headnode_dhcp_pool_addresses 11\n",
            "headnode_dhcp_pool_used_addresses 0\n",
            "headnode_dhcp_lease_sync_duration_seconds_count 2\n",
            "headnode_firewall_fallback 1\n",
            "headnode_firewall_drift_repairs_total 2\n",
            "headnode_ipvs_drift_repairs_total 1\n",
            "headnode_real_server_weight{service=\"web\",real=\"node1\",address=\"192.168.1.101:80\"} 1\n",
            "headnode_tftp_requests_total 2\n",
            "headnode_tftp_active_transfers 1\n",
            "headnode_dns_queries_total 5\n",
            "headnode_dns_answers_total{source=\"cache\"} 1\n",
            "headnode_dns_dropped_total{reason=\"rate_limited\"} 0\n",
            "headnode_dns_cache_entries 1\n",
            "headnode_uptime_seconds 3600\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        // Not checked: no up/down series for it.
        assert!(!text.contains("headnode_real_server_up{"));
    }

    /// Every family has HELP and TYPE before its samples, counters end in
    /// `_total`, and each sample belongs to the family declared last.
    #[test]
    fn the_text_is_well_formed() {
        let text = render(&snapshot());
        let mut family = String::new();
        let mut kind = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, k) = rest.split_once(' ').unwrap();
                assert!(text.contains(&format!("# HELP {name} ")), "{name}");
                if k == "counter" {
                    assert!(name.ends_with("_total"), "{name}");
                }
                family = name.to_string();
                kind = k.to_string();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let ok = name == family
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{family}{s}")));
                assert!(ok, "{line} outside its family {family}");
            }
        }
    }

    #[test]
    fn only_get_metrics_is_answered() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotAllowed);
        assert_eq!(route(b""), Route::NotAllowed);
    }
}
