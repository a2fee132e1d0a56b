//! The whole request path on arbitrary bytes, for the cargo-fuzz target in
//! `tests/fuzz` and the stable smoke test below: parse, answer with
//! reservations and a pool whose bindings carry over between inputs, then
//! check the reply by decoding it with dhcproto. Any panic is a bug.
//!
//! Received bytes never go through dhcproto's `Message::decode` in the
//! server: with debug assertions it panics on some malformed options
//! (`assertion failed: len == 3`, found by this harness), and its
//! `chaddr()` panics on `hlen > 16`.

use super::leases::LeaseDb;
use super::request;
use super::responder::{Outcome, respond};
use super::tables::Tables;
use dhcproto::{Decodable, Decoder};
use std::path::Path;

const CONFIG: &str = r#"
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"

[dhcp]
dns_servers = ["203.0.113.1"]
domain_name = "cluster.example.com"
domain_search = ["a.example.com", "b.example.com"]
ntp_servers = ["192.168.1.254"]
next_server = "192.168.1.254"
filename = "pxelinux.0"
lease_time = "1h"

[dhcp.pool]
start = "192.168.1.200"
end = "192.168.1.203"

[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"
filename = "uefi/grub.efi"
"#;

pub struct Harness {
    tables: Tables,
    db: LeaseDb,
    buf: Vec<u8>,
    now: u64,
}

impl Default for Harness {
    fn default() -> Self {
        let cfg = crate::config::parse(CONFIG, Path::new("fuzz.toml"))
            .unwrap_or_else(|e| panic!("the fuzz config is valid: {e}"));
        let tables = Tables::new(&cfg);
        Harness {
            db: LeaseDb::new(tables.pool),
            tables,
            buf: Vec::with_capacity(1500),
            now: 1_800_000_000,
        }
    }
}

impl Harness {
    /// Feed one packet; true when it was answered. The first byte moves
    /// the clock forward, so leases expire and offers lapse between inputs.
    pub fn run(&mut self, data: &[u8]) -> bool {
        let Some((&tick, pkt)) = data.split_first() else {
            return false;
        };
        self.now += u64::from(tick) * 60;
        let Ok(req) = request::parse(pkt) else {
            return false;
        };
        let out = respond(&req, &self.tables, &mut self.db, self.now, &mut self.buf);
        if let Outcome::Reply { .. } = out {
            let len = self.buf.len();
            assert!(len >= 300, "reply of {len} bytes is not padded");
            let max = req
                .max_size
                .map_or(576, |m| usize::from(m).max(576))
                .min(1500)
                - 28;
            assert!(len <= max.max(300), "reply of {len} bytes exceeds {max}");
            let m = dhcproto::v4::Message::decode(&mut Decoder::new(&self.buf))
                .unwrap_or_else(|e| panic!("our reply does not decode: {e}"));
            assert_eq!(m.xid(), req.xid);
            assert!(m.opts().msg_type().is_some());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::request::tests::{CLIENT, packet};
    use dhcproto::v4::{DhcpOption, MessageType, OptionCode};

    /// A short deterministic run on every `cargo test`: mutated valid
    /// packets and random bytes.
    #[test]
    fn smoke() {
        let mut h = Harness::default();
        let seeds: Vec<Vec<u8>> = [
            MessageType::Discover,
            MessageType::Request,
            MessageType::Decline,
            MessageType::Release,
            MessageType::Inform,
        ]
        .into_iter()
        .flat_map(|t| {
            [CLIENT, [2, 0, 0, 0, 0, 9]].map(|mac| {
                packet(
                    t,
                    mac,
                    vec![
                        DhcpOption::RequestedIpAddress([192, 168, 1, 200].into()),
                        DhcpOption::ServerIdentifier([192, 168, 1, 254].into()),
                        DhcpOption::ParameterRequestList(vec![
                            OptionCode::DomainSearch,
                            OptionCode::SubnetMask,
                            OptionCode::Hostname,
                        ]),
                        DhcpOption::MaxMessageSize(576),
                    ],
                )
            })
        })
        .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut replies = 0;
        for i in 0..50_000 {
            let mut d = vec![(next() % 4) as u8];
            if i % 10 == 0 {
                d.extend((0..next() % 600).map(|_| next() as u8));
            } else {
                let mut p = seeds[(next() as usize) % seeds.len()].clone();
                for _ in 0..1 + next() % 6 {
                    let at = (next() as usize) % p.len();
                    p[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    p.truncate((next() as usize) % p.len());
                }
                d.extend(p);
            }
            replies += usize::from(h.run(&d));
        }
        assert!(
            replies > 5_000,
            "only {replies} replies: the mutations rarely reach the responder"
        );
    }
}
