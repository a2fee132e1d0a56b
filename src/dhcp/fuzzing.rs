//! The whole request path on arbitrary bytes, for the cargo-fuzz target in
//! `tests/fuzz` and the stable smoke test below: parse, answer with
//! reservations and a pool whose bindings carry over between inputs, then
//! check the reply by decoding it with dhcproto. Any panic is a bug.
//!
//! `lease_file` does the same for the lease file loader: arbitrary bytes
//! as the file, then `LeaseFile::open` as the server does at start.
//!
//! Received bytes never go through dhcproto's `Message::decode` in the
//! server: with debug assertions it panics on some malformed options
//! (`assertion failed: len == 3`, found by this harness), and its
//! `chaddr()` panics on `hlen > 16`.

use super::leases::{LeaseDb, Record};
use super::request;
use super::responder::{Outcome, respond};
use super::store::{self, LeaseFile};
use super::tables::Tables;
use dhcproto::{Decodable, Decoder};
use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::path::PathBuf;

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

/// Where `lease_file` writes its files: tmpfs when there is one, so the
/// syncs of a rewrite cost nothing.
pub fn lease_dir() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_owned()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("hn-fuzz-leases-{}", std::process::id()))
}

/// Feed one lease file. `parse` must place every problem on a line of the
/// text and keep only records that write back as lines it reads the same;
/// `LeaseFile::open` must recover (a healthy disk leaves no excuse) to a
/// file that loads with no problem and holds the same binding per address.
pub fn lease_file(dir: &Path, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let loaded = store::parse(&text);
    let lines = text.split('\n').count();
    for p in &loaded.problems {
        assert!((1..=lines).contains(&p.line), "{p:?} is past the end");
        assert!(!p.message.is_empty(), "{p:?}");
    }
    let mut line = String::new();
    for r in &loaded.records {
        line.clear();
        r.write_line(&mut line);
        assert_eq!(
            Record::parse_line(line.trim_end_matches('\n')).as_ref(),
            Ok(r),
            "{line:?}"
        );
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join("leases");
    fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (file, opened) =
        LeaseFile::open(&path).unwrap_or_else(|e| panic!("no recovery from {text:?}: {e:?}"));
    drop(file);
    let again = store::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(again.problems, vec![], "not clean after open: {text:?}");
    let latest = |rs: &[Record]| -> BTreeMap<Ipv4Addr, Record> {
        rs.iter().map(|r| (r.ip, r.clone())).collect()
    };
    assert_eq!(latest(&again.records), latest(&opened.records), "{text:?}");
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

    /// Lease files cut, flipped, spliced and filled with hostile lines, on
    /// every `cargo test`.
    #[test]
    fn lease_file_smoke() {
        let good = "# headnode leases v1: state address mac expires seen hostname\n\
            bound 192.168.1.200 02:00:00:00:00:01 1800000600 1800000000 lap-top\n\
            released 192.168.1.201 02:00:00:00:00:02 1800000000 1800000000 -\n\
            declined 192.168.1.202 02:00:00:00:00:03 1800003600 1800000000 -\n\
            bound 192.168.1.200 02:00:00:00:00:04 1800000900 1800000300 x.y_z\n";
        let hostile: &[&[u8]] = &[
            b"offered 192.168.1.9 02:00:00:00:00:09 1 1 -\n",
            b"bound 192.168.1.9 02:00:00:00:00:09 99999999999999999999999 1 -\n",
            b"bound 192.168.1.9 02:00:00:00:00:09 +5 1 -\n",
            b"bound 192.168.1.9 02:00:00:00:00:09 1 1 a;rm -rf /\n",
            b"bound  192.168.1.9 02:00:00:00:00:09 1 1 -\n",
            b"bound 192.168.1.9 02:00:00:00:00:09 1 1 -\r\n",
            b"\xff\xfe\0\n",
            b"\n\n#\n",
        ];
        let dir = lease_dir();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2_000 {
            let mut d = good.as_bytes().to_vec();
            for _ in 0..next() % 3 {
                let h = hostile[(next() as usize) % hostile.len()];
                let at = (next() as usize) % (d.len() + 1);
                d.splice(at..at, h.iter().copied());
            }
            for _ in 0..next() % 4 {
                let at = (next() as usize) % d.len();
                d[at] = next() as u8;
            }
            if next() % 3 == 0 {
                d.truncate((next() as usize) % (d.len() + 1));
            }
            lease_file(&dir, &d);
        }
        let long = format!(
            "bound 192.168.1.9 02:00:00:00:00:09 1 1 {}\n",
            "h".repeat(100_000)
        );
        lease_file(&dir, long.as_bytes());
        let _ = fs::remove_dir_all(&dir);
    }
}
