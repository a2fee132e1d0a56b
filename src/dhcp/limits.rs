//! Counters, the per-MAC rate limit and the once-a-minute log gate. Both
//! maps are bounded, so a flood of random MACs cannot grow memory.

use crate::config::model::Mac;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most MACs tracked by a limiter before old entries are forgotten: 7/8 of
/// 65,536, the most a table of 65,536 slots holds before it doubles.
const MAX_TRACKED: usize = 57_344;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Packet and lease counters, shared with whoever asks (`Server::counters`).
        #[derive(Debug, Default)]
        pub struct Counters { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A copy of the counters at one instant.
        #[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    /// Relayed by an address that is not a unicast address of the LAN
    /// (another subnet, or the LAN's network or broadcast address).
    foreign_relay,
    /// DHCPINFORM from an address that is not a unicast address of the LAN.
    foreign_inform,
    /// Missing fields its message type needs.
    incomplete,
    releases,
    declines,
    /// Pool requests not answered because the lease file cannot be used
    /// (reservations are still answered).
    pool_refused,
    /// Pool ACKs not sent because the lease could not be written.
    not_durable,
    /// Pool ACKs dropped because the lease writer was `MAX_HELD` behind
    /// (a stalled disk under a flood); the clients retry.
    dropped_writer_behind,
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
    /// MAC → (tokens in thousandths, last refill in ms mod 2^32): 16 bytes
    /// a slot, 1 MB for a full table. The clock may wrap because no bucket
    /// is kept idle for more than a sweep period.
    buckets: HashMap<Mac, (u32, u32)>,
    /// When idle buckets were last forgotten (ms).
    swept: u64,
}

/// How often buckets idle long enough to be full again are forgotten.
const SWEEP_MS: u64 = 60_000;

impl RateLimit {
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            burst: burst.min(u32::MAX / 1000),
            buckets: HashMap::new(),
            swept: 0,
        }
    }

    /// May a packet from `mac` be handled at `now_ms`?
    pub fn allow(&mut self, mac: Mac, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let now = now_ms as u32;
        let full = self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&mac);
        if full || now_ms.saturating_sub(self.swept) >= SWEEP_MS {
            self.swept = now_ms;
            // A bucket idle this long is full again: forgetting it changes nothing.
            let full_after = u64::from(self.burst) * 1000 / u64::from(self.rate) + 1;
            self.buckets
                .retain(|_, (_, last)| u64::from(now.wrapping_sub(*last)) < full_after);
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let cap = self.burst * 1000;
        let (tokens, last) = self.buckets.entry(mac).or_insert((cap, now));
        let refill = u64::from(now.wrapping_sub(*last)) * u64::from(self.rate);
        *tokens = (u64::from(*tokens) + refill).min(u64::from(cap)) as u32;
        *last = now;
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
    fn idle_buckets_are_forgotten_and_refill() {
        let mut rl = RateLimit::new(10, 20);
        let passed = (0..30).filter(|_| rl.allow(A, 1000)).count();
        assert_eq!(passed, 20);
        assert!(rl.allow(B, 1000 + SWEEP_MS), "the sweep runs");
        assert_eq!(
            rl.buckets.len(),
            1,
            "A was idle long enough to be full: forgotten"
        );
        let passed = (0..30).filter(|_| rl.allow(A, 1000 + SWEEP_MS)).count();
        assert_eq!(passed, 20, "A starts full again");
    }

    #[test]
    fn the_millisecond_clock_may_wrap() {
        let mut rl = RateLimit::new(10, 20);
        let t = u64::from(u32::MAX) - 50;
        rl.swept = t;
        assert_eq!((0..30).filter(|_| rl.allow(A, t)).count(), 20);
        assert!(!rl.allow(A, t + 50), "half a token is not enough");
        assert!(
            rl.allow(A, t + 100),
            "one token 100 ms later, across the wrap"
        );
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
