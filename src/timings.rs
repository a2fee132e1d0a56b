//! Durations observed where they happen (nft loads, IPVS reconciles,
//! lease-file syncs, reconcile passes), kept as histograms for `metrics`.
//!
//! A leaf module on purpose: the code that observes (the DHCP writer, the
//! daemon) and the code that reports (`metrics`, which reads the control
//! protocol's status) must not depend on each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the histograms' buckets: from a fast fsync
/// (1 ms) to an nft load of a large table (a few seconds).
pub const BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of durations that any thread may observe into.
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len()],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Time `f` into this histogram.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let r = f();
        self.observe(start.elapsed());
        r
    }

    pub fn view(&self) -> HistogramView {
        let mut cumulative = 0;
        let buckets = self
            .buckets
            .iter()
            .map(|b| {
                cumulative += b.load(Ordering::Relaxed);
                cumulative
            })
            .collect();
        HistogramView {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// A histogram at one instant: cumulative counts per bucket of `BOUNDS`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramView {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// A whole pass of the reconcile timer.
pub static RECONCILE: Histogram = Histogram::new();
/// Each load of our nft table (whole or the balancer chain).
pub static NFT_LOAD: Histogram = Histogram::new();
/// Each IPVS reconcile (read, compare, change).
pub static IPVS_RECONCILE: Histogram = Histogram::new();
/// Each append-and-fsync of the lease file that replies waited for.
pub static LEASE_SYNC: Histogram = Histogram::new();
