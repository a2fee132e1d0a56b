//! Per-client rate limit: a token bucket per source address, `rate` queries
//! a second with a burst of one second's worth. The table is bounded: when
//! it is full, idle clients (full buckets) are forgotten; if none is idle, a
//! new client waits (fail closed) until one is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A /16 LAN's worth of clients.
pub const MAX_CLIENTS: usize = 65_536;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter {
    rate: f64,
    max_clients: usize,
    clients: HashMap<IpAddr, Bucket>,
}

impl Limiter {
    pub fn new(rate: u32, max_clients: usize) -> Limiter {
        Limiter {
            rate: f64::from(rate.max(1)),
            max_clients,
            clients: HashMap::new(),
        }
    }

    /// May `ip` send one more query now?
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.clients.contains_key(&ip) && self.clients.len() >= self.max_clients {
            let rate = self.rate;
            self.clients.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < rate
            });
            if self.clients.len() >= self.max_clients {
                return false;
            }
        }
        let rate = self.rate;
        let b = self.clients.entry(ip).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(10, 4);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!((0..100).filter(|_| l.allow(a, t0)).count(), 10);
        // Another client is not held back by the first.
        assert!(l.allow(b, t0));
        let later = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| l.allow(a, later)).count(), 5);
    }

    #[test]
    fn bounded_table() {
        let t0 = Instant::now();
        let mut l = Limiter::new(10, 4);
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        for i in 0..4 {
            assert!(l.allow(ip(i), t0));
        }
        // All four are busy: a fifth waits.
        assert!(!l.allow(ip(9), t0));
        assert_eq!(l.clients(), 4);
        // A second later they are idle and forgotten.
        assert!(l.allow(ip(9), t0 + Duration::from_secs(1)));
        assert_eq!(l.clients(), 1);
    }
}
