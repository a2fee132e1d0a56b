//! The pure part: a query's bytes → an answer from the cluster's names, a
//! request to forward, or nothing. No sockets, no clock.
//!
//! Authoritative for the cluster domain and the LAN's reverse zone (the
//! octets the LAN prefix covers, e.g. `1.168.192.in-addr.arpa` for a /24):
//! names there are answered or denied here, never forwarded (dnsmasq's
//! `local=/cluster/`). Bare names (one label) are the hosts' names with the
//! domain left off (dnsmasq's `expand-hosts`) and are never forwarded either
//! (`domain-needed`): nothing outside knows them.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Largest UDP answer we send, whatever the client offers (the DNS flag
/// day 2020 size: no IP fragmentation on usual paths).
pub const MAX_UDP: u16 = 1232;

/// The cluster's names, built once per config.
#[derive(Debug)]
pub struct Zone {
    domain: Name,
    reverse: Name,
    lan: Ipv4Net,
    /// Host label (lowercase) → address; the head node is one of them.
    names: HashMap<Box<str>, Ipv4Addr>,
    /// Address → the first name that has it, as an FQDN.
    ptr: HashMap<Ipv4Addr, Name>,
    head: Name,
    ttl: u32,
    serial: u32,
    /// Names pool clients sent with their DHCP request (`set_pool`): below
    /// the config's names, which they never shadow.
    pool: HashMap<Box<str>, Ipv4Addr>,
    pool_ptr: HashMap<Ipv4Addr, Name>,
}

/// What to do with one packet.
#[derive(Debug)]
pub enum Answer {
    /// Send this (after [`encode`] fits it to the transport).
    Reply(Message),
    /// Not ours: ask the upstream resolvers (the request, parsed).
    Forward(Message),
    /// Send nothing: an answer, or too broken to answer.
    Drop,
}

impl Zone {
    /// `hosts` are (name, address) pairs; names that are not DNS labels are
    /// left out. The head node's name goes first, so it keeps its address's
    /// PTR record.
    pub fn new<'a>(
        domain: &str,
        head: (&str, Ipv4Addr),
        lan: Ipv4Net,
        hosts: impl IntoIterator<Item = (&'a str, Ipv4Addr)>,
        ttl: u32,
    ) -> Result<Zone, String> {
        let domain = Name::from_ascii(format!("{}.", domain.trim_end_matches('.')))
            .map_err(|e| format!("domain {domain:?}: {e}"))?
            .to_lowercase();
        let lan = lan.trunc();
        let mut names = HashMap::new();
        let mut ptr = HashMap::new();
        let mut serial: u32 = 0x811c_9dc5;
        let mut add = |label: &str, addr: Ipv4Addr| {
            let label = label.to_ascii_lowercase();
            let Ok(fqdn) = Name::from_ascii(&label).and_then(|n| n.append_domain(&domain)) else {
                return;
            };
            if fqdn.num_labels() != domain.num_labels() + 1 || names.contains_key(&*label) {
                return;
            }
            // FNV-1a over the records: the SOA serial changes when they do.
            for b in label.bytes().chain(addr.octets()) {
                serial = (serial ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
            ptr.entry(addr).or_insert(fqdn);
            names.insert(label.into_boxed_str(), addr);
        };
        add(head.0, head.1);
        for (n, a) in hosts {
            add(n, a);
        }
        let head = Name::from_ascii(head.0)
            .and_then(|n| n.append_domain(&domain))
            .map_err(|e| format!("head node name {:?}: {e}", head.0))?
            .to_lowercase();
        Ok(Zone {
            reverse: reverse_zone(lan),
            domain,
            lan,
            names,
            ptr,
            head,
            ttl,
            serial,
            pool: HashMap::new(),
            pool_ptr: HashMap::new(),
        })
    }

    /// The names of the pool's bound leases, replacing the last set. A name
    /// that is not one DNS label, or that a `[[host]]` (or the head node)
    /// has, is left out, as is a second lease with a name already taken;
    /// returns how many are answered.
    pub fn set_pool<'a>(&mut self, leases: impl IntoIterator<Item = (&'a str, Ipv4Addr)>) -> usize {
        self.pool.clear();
        self.pool_ptr.clear();
        for (name, addr) in leases {
            let label = name.to_ascii_lowercase();
            if !self.lan.contains(&addr)
                || self.names.contains_key(&*label)
                || self.pool.contains_key(&*label)
            {
                continue;
            }
            let Ok(fqdn) = Name::from_ascii(&label).and_then(|n| n.append_domain(&self.domain))
            else {
                continue;
            };
            if fqdn.num_labels() != self.domain.num_labels() + 1 {
                continue;
            }
            if !self.ptr.contains_key(&addr) {
                self.pool_ptr.insert(addr, fqdn);
            }
            self.pool.insert(label.into_boxed_str(), addr);
        }
        self.pool.len()
    }

    /// A host's address by its (lowercase) label: the config's, then the pool's.
    fn host(&self, label: &str) -> Option<&Ipv4Addr> {
        self.names.get(label).or_else(|| self.pool.get(label))
    }

    /// Names answered (the head node's included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn domain(&self) -> &Name {
        &self.domain
    }

    fn soa(&self, zone: &Name) -> Record {
        let rname = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let soa = SOA::new(
            self.head.clone(),
            rname,
            self.serial,
            3600,
            600,
            86_400,
            self.ttl,
        );
        Record::from_rdata(zone.clone(), self.ttl, RData::SOA(soa))
    }

    /// Records for `name` (lowercase, fully qualified) of type `qtype`, when
    /// the name is ours: `Some((rcode, answers, zone apex for the SOA))`.
    fn lookup(&self, name: &Name, qtype: RecordType) -> Option<Local> {
        let n = name.to_lowercase();
        if n.num_labels() == 1 && !self.domain.zone_of(&n) {
            // A bare name: a host, or nothing anywhere.
            let label = std::str::from_utf8(n.iter().next()?).ok()?;
            return Some(match self.host(label) {
                Some(a) => self.address(name, *a, qtype, &self.domain),
                None => Local::nx(&self.domain),
            });
        }
        for apex in [&self.domain, &self.reverse] {
            if !apex.zone_of(&n) {
                continue;
            }
            if n == *apex {
                let rdata = match qtype {
                    RecordType::SOA => Some(self.soa(apex)),
                    RecordType::NS | RecordType::ANY => Some(Record::from_rdata(
                        apex.clone(),
                        self.ttl,
                        RData::NS(NS(self.head.clone())),
                    )),
                    _ => None,
                };
                return Some(Local::found(rdata.into_iter().collect(), apex));
            }
            if apex == &self.domain {
                let label = std::str::from_utf8(n.iter().next()?).ok()?;
                return Some(match self.host(label) {
                    Some(a) if n.num_labels() == apex.num_labels() + 1 => {
                        self.address(name, *a, qtype, apex)
                    }
                    _ => Local::nx(apex),
                });
            }
            let found = reverse_addr(&n)
                .filter(|a| self.lan.contains(a))
                .and_then(|a| self.ptr.get(&a).or_else(|| self.pool_ptr.get(&a)));
            return Some(match found {
                Some(target) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                    let r =
                        Record::from_rdata(name.clone(), self.ttl, RData::PTR(PTR(target.clone())));
                    Local::found(vec![r], apex)
                }
                Some(_) => Local::found(Vec::new(), apex),
                None => Local::nx(apex),
            });
        }
        None
    }

    fn address(&self, name: &Name, addr: Ipv4Addr, qtype: RecordType, apex: &Name) -> Local {
        let answers = match qtype {
            // ANY gets the A record alone (RFC 8482: a subset is enough).
            RecordType::A | RecordType::ANY => {
                vec![Record::from_rdata(
                    name.clone(),
                    self.ttl,
                    RData::A(A(addr)),
                )]
            }
            _ => Vec::new(),
        };
        Local::found(answers, apex)
    }

    /// The whole decision for one packet.
    pub fn answer(&self, packet: &[u8]) -> Answer {
        self.answer_sized(packet).0
    }

    /// [`answer`](Zone::answer) and the UDP size the client takes (its EDNS
    /// payload, 512 without), from one parse of the packet: parsing is most
    /// of a local answer's cost.
    pub fn answer_sized(&self, packet: &[u8]) -> (Answer, usize) {
        match Message::from_vec(packet) {
            Ok(req) => {
                let limit = udp_limit(req.edns.as_ref().map_or(512, |e| e.max_payload()));
                (self.answer_request(req), limit)
            }
            Err(_) => (malformed(packet), udp_limit(512)),
        }
    }

    fn answer_request(&self, req: Message) -> Answer {
        if req.metadata.message_type != MessageType::Query {
            return Answer::Drop;
        }
        let mut resp = response(&req);
        if req.metadata.op_code != OpCode::Query {
            resp.metadata.response_code = ResponseCode::NotImp;
            return Answer::Reply(resp);
        }
        let [q] = req.queries.as_slice() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return Answer::Reply(resp);
        };
        if q.query_class() != DNSClass::IN
            || matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            resp.metadata.response_code = ResponseCode::Refused;
            return Answer::Reply(resp);
        }
        match self.lookup(q.name(), q.query_type()) {
            Some(local) => {
                resp.metadata.authoritative = true;
                resp.metadata.response_code = local.rcode;
                if local.answers.is_empty() {
                    // NXDOMAIN and "no such type" carry the SOA, so that
                    // resolvers cache the denial for its minimum.
                    resp.add_authority(self.soa(&local.apex));
                }
                resp.add_answers(local.answers);
                Answer::Reply(resp)
            }
            None => Answer::Forward(req),
        }
    }
}

struct Local {
    rcode: ResponseCode,
    answers: Vec<Record>,
    apex: Name,
}

impl Local {
    fn found(answers: Vec<Record>, apex: &Name) -> Local {
        Local {
            rcode: ResponseCode::NoError,
            answers,
            apex: apex.clone(),
        }
    }
    fn nx(apex: &Name) -> Local {
        Local {
            rcode: ResponseCode::NXDomain,
            answers: Vec::new(),
            apex: apex.clone(),
        }
    }
}

/// A query that does not parse: FORMERR when the header says it is a query
/// (so the client stops waiting), else nothing.
fn malformed(packet: &[u8]) -> Answer {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Answer::Drop;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let op = OpCode::from_u8((packet[2] >> 3) & 0x0f);
    Answer::Reply(Message::error_msg(id, op, ResponseCode::FormErr))
}

/// An empty response to `req`: its id, question, RD flag, and EDNS with our
/// UDP size when it used EDNS.
pub fn response(req: &Message) -> Message {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_queries(req.queries.iter().cloned());
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP);
        resp.set_edns(e);
    }
    resp
}

/// The largest UDP answer this request may get.
pub fn udp_limit(req_payload: u16) -> usize {
    usize::from(req_payload.clamp(512, MAX_UDP))
}

/// Encode, truncated (TC, no records) when larger than `limit`: the client
/// asks again over TCP. `None` only when hickory cannot encode it.
pub fn encode(resp: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = resp.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    resp.truncate().to_vec().ok()
}

/// `d.c.b.a.in-addr.arpa.` → a.b.c.d (a full address only).
fn reverse_addr(n: &Name) -> Option<Ipv4Addr> {
    if n.num_labels() != 6 {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, l) in n.iter().take(4).enumerate() {
        let s = std::str::from_utf8(l).ok()?;
        if s.len() > 1 && s.starts_with('0') {
            return None;
        }
        o[3 - i] = s.parse().ok()?;
    }
    Some(Ipv4Addr::from(o))
}

/// The reverse zone for the LAN: the whole octets its prefix fixes (a /24 →
/// three, a /20 → two), so that every LAN address falls inside it.
fn reverse_zone(lan: Ipv4Net) -> Name {
    let octets = usize::from(lan.prefix_len() / 8);
    let o = lan.network().octets();
    let mut s = String::new();
    for b in o[..octets].iter().rev() {
        s.push_str(&format!("{b}."));
    }
    s.push_str("in-addr.arpa.");
    Name::from_ascii(s).expect("digits and in-addr.arpa make a valid name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        Zone::new(
            "cluster.example",
            ("head", "192.168.1.254".parse().unwrap()),
            "192.168.1.0/24".parse().unwrap(),
            [
                ("node1", "192.168.1.11".parse().unwrap()),
                ("Node2", "192.168.1.12".parse().unwrap()),
                ("bad.name", "192.168.1.13".parse().unwrap()),
            ],
            60,
        )
        .unwrap()
    }

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = crate::dns::new_query();
        m.metadata.id = 77;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn reply(z: &Zone, name: &str, t: RecordType) -> Message {
        match z.answer(&query(name, t)) {
            Answer::Reply(m) => m,
            other => panic!("{name} {t}: {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn pool_names_are_answered_below_the_configs() {
        let mut z = Zone::new(
            "cluster.test",
            ("head", Ipv4Addr::new(192, 168, 1, 254)),
            "192.168.1.0/24".parse().unwrap(),
            [("node1", Ipv4Addr::new(192, 168, 1, 101))],
            60,
        )
        .unwrap();
        let n = z.set_pool([
            ("Lap1", Ipv4Addr::new(192, 168, 1, 200)),
            ("node1", Ipv4Addr::new(192, 168, 1, 201)),
            ("lap1", Ipv4Addr::new(192, 168, 1, 202)),
            ("bad name", Ipv4Addr::new(192, 168, 1, 203)),
            ("a.b", Ipv4Addr::new(192, 168, 1, 204)),
            ("far", Ipv4Addr::new(10, 0, 0, 1)),
        ]);
        assert_eq!(
            n, 1,
            "only lap1 (once): the others shadow, are no label, or are off the LAN"
        );
        let a = |z: &Zone, name: &str| match z
            .lookup(&Name::from_ascii(name).unwrap(), RecordType::A)
        {
            Some(l) => l.answers.first().map(|r| r.data.to_string()),
            None => None,
        };
        assert_eq!(
            a(&z, "lap1.cluster.test.").as_deref(),
            Some("192.168.1.200")
        );
        assert_eq!(a(&z, "lap1.").as_deref(), Some("192.168.1.200"));
        assert_eq!(
            a(&z, "node1.cluster.test.").as_deref(),
            Some("192.168.1.101")
        );
        let ptr = z
            .lookup(
                &Name::from_ascii("200.1.168.192.in-addr.arpa.").unwrap(),
                RecordType::PTR,
            )
            .unwrap();
        assert_eq!(ptr.answers[0].data.to_string(), "lap1.cluster.test.");
        // The next set replaces it: an ended lease's name is gone.
        assert_eq!(z.set_pool([]), 0);
        assert_eq!(a(&z, "lap1.cluster.test."), None);
    }

    #[test]
    fn names_of_hosts_and_head() {
        let z = zone();
        assert_eq!(z.len(), 3, "bad.name is not a label");
        for n in ["node2", "node2.cluster.example.", "NODE2.Cluster.Example."] {
            let m = reply(&z, n, RecordType::A);
            assert_eq!(addrs(&m), ["192.168.1.12"], "{n}");
            assert!(m.metadata.authoritative);
            assert_eq!(m.metadata.id, 77);
            // The name as asked (case kept), so stub resolvers match it.
            assert_eq!(
                m.answers[0].name.to_ascii().trim_end_matches('.'),
                n.trim_end_matches('.')
            );
        }
        assert_eq!(
            addrs(&reply(&z, "head.cluster.example.", RecordType::A)),
            ["192.168.1.254"]
        );
        let any = reply(&z, "node1", RecordType::ANY);
        assert_eq!(addrs(&any), ["192.168.1.11"]);
    }

    #[test]
    fn denials_carry_the_soa() {
        let z = zone();
        for (n, t, code) in [
            (
                "node9.cluster.example.",
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            (
                "a.node1.cluster.example.",
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            (
                "node1.cluster.example.",
                RecordType::AAAA,
                ResponseCode::NoError,
            ),
            ("nosuch", RecordType::A, ResponseCode::NXDomain),
            (
                "99.1.168.192.in-addr.arpa.",
                RecordType::PTR,
                ResponseCode::NXDomain,
            ),
        ] {
            let m = reply(&z, n, t);
            assert_eq!(m.metadata.response_code, code, "{n}");
            assert!(m.answers.is_empty(), "{n}");
            let RData::SOA(soa) = &m.authorities[0].data else {
                panic!("{n}: no SOA")
            };
            assert_eq!(soa.minimum, 60);
            assert_eq!(soa.mname.to_ascii(), "head.cluster.example.");
        }
        let soa = reply(&z, "cluster.example.", RecordType::SOA);
        assert_eq!(soa.answers.len(), 1);
        let ns = reply(&z, "cluster.example.", RecordType::NS);
        assert_eq!(addrs(&ns), ["head.cluster.example."]);
    }

    #[test]
    fn reverse_zone_of_the_lan() {
        let z = zone();
        let m = reply(&z, "12.1.168.192.in-addr.arpa.", RecordType::PTR);
        assert_eq!(addrs(&m), ["node2.cluster.example."]);
        let m = reply(&z, "254.1.168.192.in-addr.arpa.", RecordType::PTR);
        assert_eq!(addrs(&m), ["head.cluster.example."]);
        assert_eq!(
            reverse_zone("10.20.0.0/20".parse().unwrap()).to_ascii(),
            "20.10.in-addr.arpa."
        );
        assert_eq!(
            reverse_zone("10.0.0.0/8".parse().unwrap()).to_ascii(),
            "10.in-addr.arpa."
        );
        assert_eq!(
            reverse_addr(&Name::from_ascii("1.01.168.192.in-addr.arpa.").unwrap()),
            None
        );
    }

    #[test]
    fn everything_else_is_forwarded() {
        let z = zone();
        for n in [
            "example.org.",
            "8.8.8.8.in-addr.arpa.",
            ".",
            "cluster.example.org.",
        ] {
            assert!(
                matches!(z.answer(&query(n, RecordType::A)), Answer::Forward(_)),
                "{n}"
            );
        }
    }

    #[test]
    fn refusals_and_garbage() {
        let z = zone();
        let m = reply(&z, "cluster.example.", RecordType::AXFR);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(matches!(z.answer(&[1, 2, 3]), Answer::Drop));
        let mut bad = query("node1", RecordType::A);
        bad.truncate(bad.len() - 2);
        let Answer::Reply(m) = z.answer(&bad) else {
            panic!()
        };
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (77, ResponseCode::FormErr)
        );
        // Answers are never answered (no loops between servers).
        let mut resp = query("node1", RecordType::A);
        resp[2] |= 0x80;
        assert!(matches!(z.answer(&resp), Answer::Drop));
        // A compression pointer to itself.
        let mut looped = query("node1", RecordType::A)[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(z.answer(&looped), Answer::Reply(_)));
    }

    #[test]
    fn large_udp_answers_are_truncated() {
        let mut resp = Message::response(5, OpCode::Query);
        resp.add_query(Query::query(Name::from_ascii("x.").unwrap(), RecordType::A));
        for i in 0..100u8 {
            resp.add_answer(Record::from_rdata(
                Name::from_ascii("x.").unwrap(),
                60,
                RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
            ));
        }
        let full = encode(&resp, 65_535).unwrap();
        assert!(full.len() > 512);
        let small = encode(&resp, udp_limit(0)).unwrap();
        let m = Message::from_vec(&small).unwrap();
        assert!(m.metadata.truncation && m.answers.is_empty() && small.len() <= 512);
        assert_eq!(udp_limit(4096), 1232);
    }
}
