//! The DNS request path on arbitrary bytes, for the cargo-fuzz target
//! `dns_request` in `tests/fuzz` and the smoke test below: the zone's
//! decision, the reply fitted to the UDP size the packet asks for (and
//! decoded again), and for a name the zone forwards, the packet read as the
//! upstream's answer, put into the cache and served from it. Any panic is a
//! bug; a reply larger than the client's UDP size is one too.

use super::cache::{Cache, Key};
use super::zone::{self, Answer, Zone};
use hickory_proto::op::Message;
use std::net::Ipv4Addr;
use std::time::Instant;

pub struct Harness {
    zone: Zone,
    cache: Cache,
    now: Instant,
}

impl Default for Harness {
    fn default() -> Self {
        let hosts = [
            ("node1", Ipv4Addr::new(192, 168, 1, 101)),
            ("node2", Ipv4Addr::new(192, 168, 1, 102)),
        ];
        Harness {
            zone: Zone::new(
                "cluster.example.com",
                ("head", Ipv4Addr::new(192, 168, 1, 254)),
                "192.168.1.0/24".parse().expect("net"),
                hosts,
                60,
            )
            .expect("zone"),
            // Small, so that eviction runs too.
            cache: Cache::new(8),
            now: Instant::now(),
        }
    }
}

impl Harness {
    pub fn run(&mut self, data: &[u8]) {
        let (answer, limit) = self.zone.answer_sized(data);
        match answer {
            Answer::Reply(m) => self.check_reply(&m, limit),
            Answer::Forward(req) => {
                let Some(key) = Key::of(&req) else { return };
                if let Ok(upstream) = Message::from_vec(data) {
                    self.cache.insert(key.clone(), &upstream, self.now);
                }
                if let Some(hit) = self.cache.get(&key, self.now) {
                    self.check_reply(&super::reply_from(&req, &hit), limit);
                }
            }
            Answer::Drop => {}
        }
    }

    fn check_reply(&self, m: &Message, limit: usize) {
        // hickory may refuse to encode what it decoded (then nothing is sent).
        let Some(bytes) = zone::encode(m, limit) else {
            return;
        };
        assert!(
            bytes.len() <= limit,
            "{} bytes for a limit of {limit}",
            bytes.len()
        );
        Message::from_vec(&bytes).expect("a reply we send decodes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::{Name, RecordType};

    fn query(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = crate::dns::new_query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// Hostile shapes by hand: a compression pointer to itself, a name of
    /// 127 one-letter labels, a header that claims 65,535 questions.
    fn hostile() -> Vec<Vec<u8>> {
        let header = |qd: u16| {
            let mut h = vec![0x12, 0x34, 0x01, 0x00];
            h.extend_from_slice(&qd.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            h
        };
        let mut looped = header(1);
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let mut long = header(1);
        for _ in 0..127 {
            long.extend_from_slice(&[1, b'a']);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut many = header(u16::MAX);
        many.extend_from_slice(&[0, 0, 1, 0, 1]);
        vec![looped, long, many, header(0), vec![0x12]]
    }

    /// A short deterministic run on every `cargo test`.
    #[test]
    fn smoke() {
        let mut h = Harness::default();
        let mut seeds = vec![
            query("node1.cluster.example.com.", RecordType::A, None),
            query("node2.", RecordType::AAAA, Some(4096)),
            query("101.1.168.192.in-addr.arpa.", RecordType::PTR, None),
            query("cluster.example.com.", RecordType::SOA, Some(1232)),
            query("node1.cluster.example.com.", RecordType::ANY, None),
            query("www.example.org.", RecordType::A, None),
            query("nosuch.cluster.example.com.", RecordType::MX, Some(512)),
        ];
        seeds.extend(hostile());
        for s in &seeds {
            h.run(s);
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..30_000 {
            let mut p = seeds[(next() % seeds.len() as u64) as usize].clone();
            match i % 4 {
                // Flip bytes.
                0 | 1 => {
                    for _ in 0..1 + next() % 4 {
                        if !p.is_empty() {
                            let at = (next() % p.len() as u64) as usize;
                            p[at] = next() as u8;
                        }
                    }
                }
                // Cut short.
                2 => p.truncate((next() % (p.len() as u64 + 1)) as usize),
                // Random bytes.
                _ => p = (0..next() % 600).map(|_| next() as u8).collect(),
            }
            h.run(&p);
        }
    }
}
