//! Lease bindings in memory and the pool allocator. Pure: time comes in as
//! `now` (Unix seconds), persistence is the caller's job (`store`), using the
//! `Record`s that every change returns.
//!
//! Allocation order for a client without a reservation: its previous address
//! if nobody else holds it, then the address it asks for if free, then a
//! never-used address, then the address that expired (or was released, or
//! left quarantine) longest ago.

use crate::config::model::{Mac, Pool};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

/// How long an OFFER holds a pool address for the client that got it.
pub const OFFER_HOLD: u64 = 30;
/// How long a declined address (in use by someone who did not ask us) stays out of the pool.
pub const DECLINE_QUARANTINE: u64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Offered, not yet requested (memory only).
    Offered,
    Bound,
    Released,
    Declined,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Offered => "offered",
            State::Bound => "bound",
            State::Released => "released",
            State::Declined => "declined",
        }
    }
}

/// One address's binding; also one line of the lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub state: State,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// Unix seconds when the binding ends (quarantine end for declined,
    /// release time for released).
    pub expires: u64,
    /// Unix seconds of the client's last packet that changed the binding.
    pub seen: u64,
    /// Host name the client sent (option 12), sanitised.
    pub hostname: Option<Box<str>>,
}

impl Record {
    /// One line of the lease file, newline included.
    pub fn write_line(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{} {} {} {} {} {}",
            self.state.name(),
            self.ip,
            self.mac,
            self.expires,
            self.seen,
            self.hostname.as_deref().unwrap_or("-")
        );
    }

    /// Parse a lease file line (without its newline).
    pub fn parse_line(line: &str) -> Result<Record, String> {
        let f: Vec<&str> = line.split(' ').collect();
        let [state, ip, mac, expires, seen, host] = f[..] else {
            return Err(format!("expected 6 fields, found {}", f.len()));
        };
        let state = match state {
            "bound" => State::Bound,
            "released" => State::Released,
            "declined" => State::Declined,
            s => return Err(format!("unknown state \"{}\"", s.escape_debug())),
        };
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("bad address \"{ip}\""))?;
        let mac = parse_mac(mac).ok_or_else(|| format!("bad MAC \"{mac}\""))?;
        let expires = expires
            .parse()
            .map_err(|_| format!("bad expiry \"{expires}\""))?;
        let seen = seen.parse().map_err(|_| format!("bad time \"{seen}\""))?;
        let hostname = match host {
            "-" => None,
            h if sanitize(h.as_bytes()).as_deref() == Some(h) => Some(h.into()),
            h => return Err(format!("bad host name \"{}\"", h.escape_debug())),
        };
        Ok(Record {
            state,
            ip,
            mac,
            expires,
            seen,
            hostname,
        })
    }
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(out))
}

/// A client-sent host name made safe for the lease file and logs: letters,
/// digits, '-', '.', '_'; anything else becomes '_'. None when empty.
pub fn sanitize(raw: &[u8]) -> Option<Box<str>> {
    let s: String = raw
        .iter()
        .take(63)
        .take_while(|&&b| b != 0)
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_' {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    (!s.is_empty()).then(|| s.into())
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pool's allocation state.
#[derive(Debug, Default)]
struct Alloc {
    pool: Option<Pool>,
    /// Offset of the next never-used address.
    fresh: u32,
    /// Pool addresses that have a binding, by the time they become free again.
    by_expiry: BTreeSet<(u64, Ipv4Addr)>,
}

#[derive(Debug, Default)]
pub struct LeaseDb {
    by_ip: HashMap<Ipv4Addr, Record>,
    /// The address of each MAC's latest binding.
    by_mac: HashMap<Mac, Ipv4Addr>,
    alloc: Alloc,
}

impl LeaseDb {
    pub fn new(pool: Option<Pool>) -> LeaseDb {
        LeaseDb {
            alloc: Alloc {
                pool,
                ..Alloc::default()
            },
            ..LeaseDb::default()
        }
    }

    /// Change the pool (on reload): bindings stay, the index is rebuilt.
    pub fn set_pool(&mut self, pool: Option<Pool>) {
        self.alloc = Alloc {
            pool,
            ..Alloc::default()
        };
        for r in self.by_ip.values() {
            if pool.is_some_and(|p| p.contains(r.ip)) {
                self.alloc.by_expiry.insert((r.expires, r.ip));
            }
        }
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<&Record> {
        self.by_ip.get(&ip)
    }

    /// The latest binding of `mac`, if it still belongs to it.
    pub fn of_mac(&self, mac: Mac) -> Option<&Record> {
        let ip = self.by_mac.get(&mac)?;
        self.by_ip.get(ip).filter(|r| r.mac == mac)
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.by_ip.values()
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Store a binding, keeping the indexes in step. Returns it.
    pub fn put(&mut self, r: Record) -> &Record {
        let in_pool = self.alloc.pool.is_some_and(|p| p.contains(r.ip));
        if let Some(old) = self.by_ip.get(&r.ip) {
            if in_pool {
                self.alloc.by_expiry.remove(&(old.expires, old.ip));
            }
            // The previous holder forgets this address, so `by_mac` never
            // outgrows `by_ip` however many MACs come by.
            if old.mac != r.mac && self.by_mac.get(&old.mac) == Some(&r.ip) {
                self.by_mac.remove(&old.mac);
            }
        }
        if in_pool {
            self.alloc.by_expiry.insert((r.expires, r.ip));
        }
        self.by_mac.insert(r.mac, r.ip);
        let ip = r.ip;
        self.by_ip.insert(ip, r);
        &self.by_ip[&ip]
    }

    /// Is `ip` free for `mac` at `now`: nobody else holds it?
    pub fn free_for(&self, ip: Ipv4Addr, mac: Mac, now: u64) -> bool {
        match self.by_ip.get(&ip) {
            None => true,
            Some(r) if r.mac == mac => r.state != State::Declined || r.expires <= now,
            Some(r) => r.expires <= now,
        }
    }

    /// Pick a pool address for `mac`; `usable` says whether an address may
    /// be handed out at all (in the pool, not reserved, not the server's).
    pub fn choose(
        &mut self,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: u64,
        usable: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        if let Some(r) = self.of_mac(mac)
            && usable(r.ip)
            && self.free_for(r.ip, mac, now)
        {
            return Some(r.ip);
        }
        if let Some(ip) = requested
            && usable(ip)
            && self.free_for(ip, mac, now)
        {
            return Some(ip);
        }
        let pool = self.alloc.pool?;
        while self.alloc.fresh < pool.size() {
            let ip = Ipv4Addr::from(u32::from(pool.start) + self.alloc.fresh);
            self.alloc.fresh += 1;
            if usable(ip) && !self.by_ip.contains_key(&ip) {
                return Some(ip);
            }
        }
        // Oldest expiry first; stop at the first one still running.
        let mut stale = Vec::new();
        let mut found = None;
        for &(exp, ip) in &self.alloc.by_expiry {
            if exp > now {
                break;
            }
            if usable(ip) {
                found = Some(ip);
                break;
            }
            stale.push((exp, ip));
        }
        // Addresses no longer usable (reserved since) leave the index.
        for s in stale {
            self.alloc.by_expiry.remove(&s);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const C: Mac = Mac([2, 0, 0, 0, 0, 3]);

    fn pool() -> Pool {
        Pool {
            start: [10, 0, 0, 10].into(),
            end: [10, 0, 0, 11].into(),
        }
    }

    fn bind(db: &mut LeaseDb, ip: Ipv4Addr, mac: Mac, state: State, expires: u64) {
        db.put(Record {
            state,
            ip,
            mac,
            expires,
            seen: 0,
            hostname: None,
        });
    }

    #[test]
    fn line_round_trip_and_errors() {
        let r = Record {
            state: State::Bound,
            ip: [10, 0, 0, 10].into(),
            mac: A,
            expires: 1_800_000_000,
            seen: 1_799_990_000,
            hostname: sanitize(b"lap top"),
        };
        let mut s = String::new();
        r.write_line(&mut s);
        assert_eq!(
            s,
            "bound 10.0.0.10 02:00:00:00:00:01 1800000000 1799990000 lap_top\n"
        );
        assert_eq!(Record::parse_line(s.trim_end()), Ok(r));
        assert!(Record::parse_line("bound 10.0.0.300 02:00:00:00:00:01 1 1 -").is_err());
        assert!(Record::parse_line("bound 10.0.0.3 02:00:00:00:00 1 1 -").is_err());
        assert!(Record::parse_line("offered 10.0.0.3 02:00:00:00:00:01 1 1 -").is_err());
        assert!(Record::parse_line("bound 10.0.0.3 02:00:00:00:00:01 1 1").is_err());
        assert!(Record::parse_line("bound 10.0.0.3 02:00:00:00:00:01 1 1 a;b").is_err());
    }

    #[test]
    fn allocation_prefers_previous_then_fresh_then_oldest_expired() {
        let usable = |ip: Ipv4Addr| pool().contains(ip);
        let mut db = LeaseDb::new(Some(pool()));
        let a = db.choose(A, None, 100, usable).expect("fresh");
        assert_eq!(a, Ipv4Addr::new(10, 0, 0, 10));
        bind(&mut db, a, A, State::Bound, 200);
        let b = db.choose(B, None, 100, usable).expect("fresh");
        assert_eq!(b, Ipv4Addr::new(10, 0, 0, 11));
        bind(&mut db, b, B, State::Bound, 150);
        assert_eq!(db.choose(C, None, 120, usable), None, "pool full");
        assert_eq!(db.choose(A, None, 120, usable), Some(a), "returning client");
        // B expired at 150, A at 200: C gets B's, the older one.
        assert_eq!(db.choose(C, None, 300, usable), Some(b));
        // A comes back after expiry: still its own address while nobody took it.
        assert_eq!(db.choose(A, None, 300, usable), Some(a));
    }

    #[test]
    fn memory_is_bounded_by_addresses_not_by_macs_seen() {
        let usable = |ip: Ipv4Addr| pool().contains(ip);
        let mut db = LeaseDb::new(Some(pool()));
        for i in 0..10_000u64 {
            let b = i.to_be_bytes();
            let mac = Mac([2, b[3], b[4], b[5], b[6], b[7]]);
            let now = i * (OFFER_HOLD + 1);
            if let Some(ip) = db.choose(mac, None, now, usable) {
                bind(&mut db, ip, mac, State::Offered, now + OFFER_HOLD);
            }
        }
        assert_eq!(db.by_ip.len(), 2);
        assert!(db.by_mac.len() <= 2, "{} MACs remembered", db.by_mac.len());
    }

    #[test]
    fn declined_addresses_wait_out_the_quarantine() {
        let usable = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 0, 0, 10);
        let mut db = LeaseDb::new(Some(pool()));
        let ip = Ipv4Addr::new(10, 0, 0, 10);
        bind(&mut db, ip, A, State::Declined, 100 + DECLINE_QUARANTINE);
        db.alloc.fresh = 2;
        assert_eq!(db.choose(A, None, 200, usable), None, "not even for A");
        assert_eq!(db.choose(B, None, 200, usable), None);
        assert_eq!(
            db.choose(B, None, 101 + DECLINE_QUARANTINE, usable),
            Some(ip)
        );
    }
}
