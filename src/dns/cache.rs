//! The forwarder's cache: upstream answers kept for their TTL, denials
//! (NXDOMAIN, no data) for the SOA's minimum (RFC 2308), at most `cap`
//! entries, the oldest evicted first. Pure: the caller passes the clock.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, RecordType};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Nothing is kept longer than a day, whatever upstream says.
const MAX_TTL: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    name: LowerName,
    qtype: RecordType,
    class: DNSClass,
}

impl Key {
    pub fn of(req: &Message) -> Option<Key> {
        let q = req.queries.first()?;
        Some(Key {
            name: LowerName::new(q.name()),
            qtype: q.query_type(),
            class: q.query_class(),
        })
    }
}

struct Entry {
    /// The records of the answer; header and question come from the request.
    resp: Message,
    stored: Instant,
    ttl: u32,
    seq: u64,
}

pub struct Cache {
    cap: usize,
    map: HashMap<Key, Entry>,
    /// Insertion order, for eviction.
    order: BTreeMap<u64, Key>,
    next: u64,
}

impl Cache {
    pub fn new(cap: usize) -> Cache {
        Cache {
            cap,
            map: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The cached answer with its TTLs counted down, or `None` (an expired
    /// entry is removed).
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Message> {
        let e = self.map.get(key)?;
        let age =
            u32::try_from(now.saturating_duration_since(e.stored).as_secs()).unwrap_or(u32::MAX);
        if age >= e.ttl {
            let seq = e.seq;
            self.map.remove(key);
            self.order.remove(&seq);
            return None;
        }
        let mut m = e.resp.clone();
        for r in m
            .answers
            .iter_mut()
            .chain(&mut m.authorities)
            .chain(&mut m.additionals)
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(m)
    }

    /// Keep `resp` if it may be cached; returns whether it was.
    pub fn insert(&mut self, key: Key, resp: &Message, now: Instant) -> bool {
        let Some(ttl) = cache_ttl(resp) else {
            return false;
        };
        if self.cap == 0 {
            return false;
        }
        if let Some(old) = self.map.remove(&key) {
            self.order.remove(&old.seq);
        }
        while self.map.len() >= self.cap {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&k);
        }
        let seq = self.next;
        self.next += 1;
        let mut kept = Message::new(0, resp.metadata.message_type, resp.metadata.op_code);
        kept.metadata.response_code = resp.metadata.response_code;
        kept.answers = resp.answers.clone();
        kept.authorities = resp.authorities.clone();
        kept.additionals = resp.additionals.clone();
        self.order.insert(seq, key.clone());
        self.map.insert(
            key,
            Entry {
                resp: kept,
                stored: now,
                ttl,
                seq,
            },
        );
        true
    }
}

/// How long an upstream answer may be kept: the smallest TTL of its
/// answers; for a denial, the SOA's TTL or minimum, whichever is less;
/// `None` for errors, truncated answers and denials without a SOA.
pub fn cache_ttl(resp: &Message) -> Option<u32> {
    if resp.metadata.truncation {
        return None;
    }
    let ttl = match resp.metadata.response_code {
        ResponseCode::NoError if !resp.answers.is_empty() => {
            resp.answers.iter().map(|r| r.ttl).min()?
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            resp.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?
        }
        _ => return None,
    };
    Some(ttl.min(MAX_TTL)).filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, Record};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn req(name: &str) -> Message {
        let mut m = crate::dns::new_query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m
    }

    fn answer(name: &str, ttl: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
        ));
        m
    }

    fn denial(ttl: u32, minimum: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = ResponseCode::NXDomain;
        let n = Name::from_ascii("example.").unwrap();
        let soa = SOA::new(n.clone(), n.clone(), 1, 1, 1, 1, minimum);
        m.add_authority(Record::from_rdata(n, ttl, RData::SOA(soa)));
        m
    }

    #[test]
    fn ttls_count_down_and_expire() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        let k = Key::of(&req("a.example.")).unwrap();
        assert!(c.insert(k.clone(), &answer("a.example.", 30), t0));
        // Case does not matter.
        let k2 = Key::of(&req("A.Example.")).unwrap();
        let m = c.get(&k2, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(m.answers[0].ttl, 20);
        assert!(c.get(&k, t0 + Duration::from_secs(30)).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn denials_for_the_soa_minimum() {
        assert_eq!(cache_ttl(&denial(3600, 5)), Some(5));
        assert_eq!(cache_ttl(&denial(7, 300)), Some(7));
        let mut no_soa = denial(1, 1);
        no_soa.authorities.clear();
        assert_eq!(cache_ttl(&no_soa), None);
        let mut fail = answer("a.", 30);
        fail.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(cache_ttl(&fail), None);
        assert_eq!(cache_ttl(&answer("a.", 0)), None);
        assert_eq!(cache_ttl(&answer("a.", u32::MAX)), Some(MAX_TTL));
    }

    #[test]
    fn bounded_oldest_evicted() {
        let t0 = Instant::now();
        let mut c = Cache::new(100);
        for i in 0..1000 {
            let n = format!("n{i}.example.");
            assert!(c.insert(Key::of(&req(&n)).unwrap(), &answer(&n, 60), t0));
            // Replacing a name keeps one entry.
            assert!(c.insert(Key::of(&req(&n)).unwrap(), &answer(&n, 60), t0));
        }
        assert_eq!((c.len(), c.order.len()), (100, 100));
        assert!(
            c.get(&Key::of(&req("n899.example.")).unwrap(), t0)
                .is_none()
        );
        assert!(
            c.get(&Key::of(&req("n999.example.")).unwrap(), t0)
                .is_some()
        );
        assert!(!Cache::new(0).insert(Key::of(&req("a.")).unwrap(), &answer("a.", 5), t0));
    }
}
