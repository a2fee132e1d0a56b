//! Counters, the per-MAC rate limit and the once-a-minute log gate. Both
//! maps are bounded, so a flood of random MACs cannot grow memory.

use crate::config::model::Mac;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most MACs tracked by a limiter before old entries are forgotten.
const MAX_TRACKED: usize = 65_536;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Packet and lease counters, shared with whoever asks (`Server::counters`).
        #[derive(Debug, Default)]
        pub struct Counters { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A copy of the counters at one instant.
        #[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
        pub struct CountersView { $($(#[$doc])* pub $name: u64,)* }

        impl Counters {
            pub fn snapshot(&self) -> CountersView {
                CountersView { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    received,
    offers,
    acks,
    naks,
    /// Shorter than a BOOTP header.
    dropped_truncated,
    /// A BOOTREPLY or other non-request.
    dropped_not_request,
    /// Not Ethernet, or a group/zero MAC.
    dropped_bad_hardware,
    dropped_bad_cookie,
    /// An option overruns the packet or has the wrong length.
    dropped_bad_option,
    /// No DHCP message type (BOOTP).
    dropped_no_message_type,
    dropped_bad_message_type,
    /// Over the per-MAC packet rate.
    dropped_rate_limited,
    /// No reservation and no pool.
    unknown_client,
    pool_exhausted,
    /// Meant for another DHCP server.
    other_server,
    /// Relayed from a subnet we do not serve.
    foreign_relay,
    /// Missing fields its message type needs.
    incomplete,
    releases,
    declines,
    /// Pool ACKs not sent because the lease could not be written.
    not_durable,
    lease_writes,
    lease_syncs,
    send_errors,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Token bucket per MAC: `rate` packets a second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimit {
    rate: u32,
    burst: u32,
    /// MAC → (tokens in thousandths, last refill in ms).
    buckets: HashMap<Mac, (u64, u64)>,
}

impl RateLimit {
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// May a packet from `mac` be handled at `now_ms`?
    pub fn allow(&mut self, mac: Mac, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&mac) {
            // Forget buckets idle long enough to be full again anyway.
            let full_after = u64::from(self.burst) * 1000 / u64::from(self.rate) + 1;
            self.buckets
                .retain(|_, (_, last)| now_ms.saturating_sub(*last) < full_after);
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let cap = u64::from(self.burst) * 1000;
        let (tokens, last) = self.buckets.entry(mac).or_insert((cap, now_ms));
        let refill = now_ms.saturating_sub(*last) * u64::from(self.rate);
        *tokens = (*tokens + refill).min(cap);
        *last = now_ms;
        if *tokens >= 1000 {
            *tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// Says yes at most once per `period` seconds per MAC.
#[derive(Debug)]
pub struct LogGate {
    period: u64,
    last: HashMap<Mac, u64>,
}

impl LogGate {
    pub fn new(period: u64) -> LogGate {
        LogGate {
            period,
            last: HashMap::new(),
        }
    }

    pub fn allow(&mut self, mac: Mac, now: u64) -> bool {
        if let Some(t) = self.last.get(&mac)
            && now.saturating_sub(*t) < self.period
        {
            return false;
        }
        if self.last.len() >= MAX_TRACKED {
            let period = self.period;
            self.last.retain(|_, t| now.saturating_sub(*t) < period);
            if self.last.len() >= MAX_TRACKED {
                return false;
            }
        }
        self.last.insert(mac, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);

    #[test]
    fn one_mac_cannot_use_up_anothers_budget() {
        let mut rl = RateLimit::new(10, 20);
        let passed = (0..100).filter(|_| rl.allow(A, 1000)).count();
        assert_eq!(passed, 20, "the burst, then nothing");
        assert!(rl.allow(B, 1000), "B has its own bucket");
        assert!(!rl.allow(A, 1050), "half a token is not enough");
        assert!(rl.allow(A, 1100), "one token after 100 ms at 10/s");
    }

    #[test]
    fn logs_once_per_period() {
        let mut g = LogGate::new(60);
        assert!(g.allow(A, 100));
        assert!(!g.allow(A, 159));
        assert!(g.allow(B, 159));
        assert!(g.allow(A, 160));
    }
}
