//! The real servers of the health-check benchmark (tests/bench/health.sh):
//! one wildcard TCP listener that accepts and closes every connection (the
//! addresses are local through an "AnyIP" route), and notes when each
//! checker (told apart by its source address; "local" when that is the
//! target's own address) reached each target. After
//! WARM + WINDOW seconds it prints, per checker, the intervals between two
//! checks of the same target that fell in the window, and exits.
//!
//! std only, so run.sh builds it with plain rustc; one thread is plenty for
//! a few thousand accepts a second.
//!
//! Usage: health_listener PORT WARM_SECS WINDOW_SECS

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("PORT WARM_SECS WINDOW_SECS"))
        .collect();
    let [port, warm, window] = args[..] else {
        panic!("usage: health_listener PORT WARM_SECS WINDOW_SECS")
    };
    let l = TcpListener::bind(("0.0.0.0", port as u16)).expect("bind");
    let start = Instant::now();
    let (from, to) = (
        Duration::from_secs(warm),
        Duration::from_secs(warm + window),
    );
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(to);
            done.store(true, Ordering::SeqCst);
            // Wake the accept below.
            let _ = TcpStream::connect(("127.0.0.1", port as u16));
        });
    }
    // (checker, target) -> when it was last checked
    let mut last: BTreeMap<(String, IpAddr), Duration> = BTreeMap::new();
    // checker -> intervals (microseconds) that ended inside the window
    let mut intervals: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut checks: BTreeMap<String, u64> = BTreeMap::new();
    while !done.load(Ordering::SeqCst) {
        let Ok((conn, peer)) = l.accept() else {
            continue;
        };
        if done.load(Ordering::SeqCst) {
            break; // the wake-up connection
        }
        let now = start.elapsed();
        let (Ok(local), SocketAddr::V4(_)) = (conn.local_addr(), peer) else {
            continue;
        };
        drop(conn);
        let checker = if peer.ip() == local.ip() {
            "local".to_string()
        } else {
            peer.ip().to_string()
        };
        if let Some(prev) = last.insert((checker.clone(), local.ip()), now)
            && now >= from
            && now < to
        {
            intervals
                .entry(checker.clone())
                .or_default()
                .push((now - prev).as_micros() as u64);
            *checks.entry(checker).or_default() += 1;
        }
    }
    for (checker, mut iv) in intervals {
        iv.sort_unstable();
        let n = iv.len();
        let targets = last.keys().filter(|(c, _)| *c == checker).count();
        let mean = iv.iter().sum::<u64>() as f64 / n as f64 / 1000.0;
        let pct = |p: f64| iv[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
        println!(
            "checker {checker} targets {targets} checks {} per_s {:.0} mean_ms {mean:.1} p50_ms {:.1} p99_ms {:.1} max_ms {:.1} min_ms {:.1}",
            checks[&checker],
            checks[&checker] as f64 / window as f64,
            pct(0.5),
            pct(0.99),
            iv[n - 1] as f64 / 1000.0,
            iv[0] as f64 / 1000.0,
        );
    }
}
