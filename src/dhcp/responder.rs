//! The DHCP exchange (RFC 2131 §4.3), as a pure function of the request,
//! the tables, the lease bindings and the time. No sockets, no clock, no
//! files: the caller sends the reply and saves the record.

use super::leases::{self, LeaseDb, Record, State};
use super::reply::Writer;
use super::request::Request;
use super::tables::{HOSTNAME, Reservation, Tables};
use super::target::{Target, reply_target};
use dhcproto::v4::MessageType;
use std::net::Ipv4Addr;
use tracing::{debug, info, warn};

/// What to do after a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send the reply written into the buffer to `target`. When `wait` is
    /// set, only once `record` is on disk (pool leases: an ACK is a promise).
    Reply {
        kind: MessageType,
        target: Target,
        record: Option<Record>,
        wait: bool,
    },
    /// Send nothing; save `record` if there is one (release, decline).
    Quiet { why: Quiet, record: Option<Record> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// No reservation for this MAC and no pool.
    UnknownClient,
    PoolExhausted,
    /// A REQUEST, DECLINE or RELEASE meant for another server.
    OtherServer,
    /// Relayed by an address that is not a unicast address of the LAN.
    ForeignRelay,
    /// DHCPINFORM from an address that is not a unicast address of the LAN.
    ForeignInform,
    /// Missing the fields its message type needs (e.g. REQUEST with no address).
    Incomplete,
    /// Handled; no reply is due (RELEASE, DECLINE).
    Done,
}

/// The client's state in a REQUEST (RFC 2131 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqState {
    Selecting,
    InitReboot,
    /// Renewing or rebinding: the client has ciaddr.
    Renewing,
}

struct Ctx<'a> {
    req: &'a Request,
    t: &'a Tables,
    db: &'a mut LeaseDb,
    now: u64,
    buf: &'a mut Vec<u8>,
}

/// Renewals are logged at info at most this often per lease (seconds).
const RENEWAL_LOG_EVERY: u64 = 3600;

/// Answer one request.
pub fn respond(
    req: &Request,
    t: &Tables,
    db: &mut LeaseDb,
    now: u64,
    buf: &mut Vec<u8>,
) -> Outcome {
    // Relayed requests must come from a relay on our subnet: it is the
    // only subnet we have addresses and options for. Its network or
    // broadcast address is no relay's: the reply would go out as a broadcast.
    if !req.giaddr.is_unspecified() && !t.lan_unicast(req.giaddr) {
        return quiet(Quiet::ForeignRelay);
    }
    let mut cx = Ctx {
        req,
        t,
        db,
        now,
        buf,
    };
    match req.kind {
        MessageType::Discover => cx.discover(),
        MessageType::Request => cx.request(),
        MessageType::Decline => cx.decline(),
        MessageType::Release => cx.release(),
        MessageType::Inform => cx.inform(),
        // The parser lets nothing else through.
        _ => quiet(Quiet::Incomplete),
    }
}

fn quiet(why: Quiet) -> Outcome {
    Outcome::Quiet { why, record: None }
}

impl Ctx<'_> {
    fn host(&self) -> Option<&Reservation> {
        self.t.hosts.get(&self.req.mac)
    }

    fn discover(&mut self) -> Outcome {
        let mac = self.req.mac;
        if let Some(h) = self.t.hosts.get(&mac) {
            let ip = h.address;
            return self.offer_or_ack(MessageType::Offer, ip, None, false);
        }
        if self.t.pool.is_none() {
            return quiet(Quiet::UnknownClient);
        }
        let t = self.t;
        let Some(ip) = self
            .db
            .choose(mac, self.req.requested_ip, self.now, |ip| t.poolable(ip))
        else {
            return quiet(Quiet::PoolExhausted);
        };
        // Hold the address for this client; a bound lease keeps its state.
        let keep = self
            .db
            .get(ip)
            .filter(|r| r.mac == mac && r.state == State::Bound && r.expires > self.now)
            .is_some();
        if !keep {
            self.db.put(Record {
                state: State::Offered,
                ip,
                mac,
                expires: self.now + leases::OFFER_HOLD,
                seen: self.now,
                hostname: None,
            });
        }
        self.offer_or_ack(MessageType::Offer, ip, None, false)
    }

    fn request(&mut self) -> Outcome {
        let req = self.req;
        let (state, ip) = match (req.server_id, req.ciaddr.is_unspecified(), req.requested_ip) {
            (Some(sid), _, requested) => {
                if sid != self.t.server_ip {
                    self.drop_offer();
                    return quiet(Quiet::OtherServer);
                }
                match requested.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr)) {
                    Some(ip) => (ReqState::Selecting, ip),
                    None => return quiet(Quiet::Incomplete),
                }
            }
            (None, false, _) => (ReqState::Renewing, req.ciaddr),
            (None, true, Some(ip)) => (ReqState::InitReboot, ip),
            (None, true, None) => return quiet(Quiet::Incomplete),
        };
        if !self.t.net.contains(&ip) {
            return self.nak(ip, "is not on this network");
        }
        if let Some(h) = self.host() {
            let fixed = h.address;
            if ip == fixed {
                return self.ack(ip, state);
            }
            // A reservation made after the client got a pool address: free
            // that one and send the client back to DISCOVER for its own.
            let record = self.release_binding(ip, "the client has a reservation now");
            let out = self.nak(ip, "is not the client's reserved address");
            return match out {
                Outcome::Reply {
                    kind,
                    target,
                    record: None,
                    wait,
                } => Outcome::Reply {
                    kind,
                    target,
                    record,
                    wait,
                },
                other => other,
            };
        }
        if self.t.poolable(ip) && self.db.free_for(ip, req.mac, self.now) {
            return self.ack(ip, state);
        }
        // The other head node's half: its lease to confirm or refuse. A NAK
        // from here would cut off a client the peer serves.
        if self.t.peer_pool.is_some_and(|p| p.contains(ip)) {
            self.drop_offer();
            return quiet(Quiet::OtherServer);
        }
        self.nak(ip, "is not available to this client")
    }

    /// Bind (or re-bind) `ip` to the client and acknowledge.
    fn ack(&mut self, ip: Ipv4Addr, state: ReqState) -> Outcome {
        let req = self.req;
        let host = self.t.hosts.get(&req.mac);
        let lease = u64::from(self.t.lease_for(host, req.lease_time));
        // When the client last had this binding confirmed, if it still holds it.
        let previous = self
            .db
            .get(ip)
            .filter(|r| r.mac == req.mac && r.state == State::Bound && r.expires > self.now)
            .map(|r| r.seen);
        let record = self
            .db
            .put(Record {
                state: State::Bound,
                ip,
                mac: req.mac,
                expires: self.now + lease,
                seen: self.now,
                hostname: req.hostname().and_then(leases::sanitize),
            })
            .clone();
        let name = host.map_or("", |h| &h.name);
        match previous {
            // One info line per lease an hour: a node renewing every few
            // minutes does not flood the journal, and still shows it is alive.
            Some(seen) if self.now.saturating_sub(seen) < RENEWAL_LOG_EVERY => {
                debug!(%ip, mac = %req.mac, host = name, ?state, lease, "DHCPACK (renewal)");
            }
            Some(_) => {
                info!(%ip, mac = %req.mac, host = name, lease, "DHCPACK (renewal; logged once an hour per lease)");
            }
            None => info!(%ip, mac = %req.mac, host = name, lease, "DHCPACK: new lease"),
        }
        // Fixed addresses come from the config, so their record only feeds
        // `headnode leases`; a pool lease must be on disk before the ACK.
        let wait = host.is_none();
        self.offer_or_ack(MessageType::Ack, ip, Some(record), wait)
    }

    fn offer_or_ack(
        &mut self,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        record: Option<Record>,
        wait: bool,
    ) -> Outcome {
        let req = self.req;
        let host = self.t.hosts.get(&req.mac);
        let ciaddr = if kind == MessageType::Ack {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        self.write(kind, ciaddr, yiaddr, host, true);
        Outcome::Reply {
            kind,
            target: reply_target(
                req.giaddr,
                req.ciaddr,
                req.broadcast(),
                false,
                req.mac,
                yiaddr,
            ),
            record,
            wait,
        }
    }

    /// Write an OFFER/ACK: header, lease times (unless INFORM), the options
    /// the client asked for in its order, then the rest we have, as room allows.
    fn write(
        &mut self,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        yiaddr: Ipv4Addr,
        host: Option<&Reservation>,
        lease: bool,
    ) {
        let t = self.t;
        let req = self.req;
        // PXE by architecture and user class: a matching boot rule's file
        // and server win, in the header and in options 66/67 alike.
        let boot = t.boot_for(host, req);
        let siaddr = boot
            .and_then(|b| b.siaddr)
            .or(host.and_then(Reservation::siaddr))
            .unwrap_or(t.siaddr);
        let file = match boot {
            Some(b) => Some(&b.file[..]),
            None => host.and_then(Reservation::file).or(t.file.as_deref()),
        };
        let mut w = Writer::new(self.buf, req, kind, ciaddr, yiaddr, siaddr, file);
        w.put_ip(54, t.server_ip);
        if let Some(b) = boot {
            w.put(67, &b.file);
            if let Some(n) = &b.server_name {
                w.put(66, n);
            }
        }
        if lease {
            let secs = t.lease_for(host, req.lease_time);
            w.put_u32(51, secs);
            if secs != u32::MAX {
                w.put_u32(58, secs / 2);
                w.put_u32(59, (u64::from(secs) * 7 / 8) as u32);
            }
        }
        for &code in req.prl() {
            if let Some(v) = t.option(host, code) {
                w.put(code, v);
            }
        }
        if let Some(h) = host {
            w.put(HOSTNAME, h.name.as_bytes());
            for code in h.options().codes() {
                if let Some(v) = h.options().get(code) {
                    w.put(code, v);
                }
            }
        }
        for code in t.options.codes() {
            if let Some(v) = t.option(host, code) {
                w.put(code, v);
            }
        }
        if w.skipped > 0 {
            debug!(mac = %req.mac, skipped = w.skipped, "options left out to fit the client's maximum message size");
        }
        w.finish(req);
    }

    fn nak(&mut self, ip: Ipv4Addr, why: &str) -> Outcome {
        let req = self.req;
        info!(%ip, mac = %req.mac, "DHCPNAK: {ip} {why}");
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut w = Writer::new(self.buf, req, MessageType::Nak, zero, zero, zero, None);
        w.put_ip(54, self.t.server_ip);
        w.put(56, why.as_bytes());
        w.finish(req);
        Outcome::Reply {
            kind: MessageType::Nak,
            target: reply_target(req.giaddr, req.ciaddr, req.broadcast(), true, req.mac, zero),
            record: None,
            wait: false,
        }
    }

    /// The client chose another server: let go of what we offered it.
    fn drop_offer(&mut self) {
        let mac = self.req.mac;
        if let Some(r) = self.db.of_mac(mac)
            && r.state == State::Offered
        {
            let mut r = r.clone();
            r.state = State::Released;
            r.expires = self.now;
            self.db.put(r);
        }
    }

    /// Free the client's binding of `ip`, if it has one; the record to save.
    fn release_binding(&mut self, ip: Ipv4Addr, why: &str) -> Option<Record> {
        let r = self.db.get(ip)?;
        if r.mac != self.req.mac || r.state != State::Bound {
            return None;
        }
        let mut r = r.clone();
        r.state = State::Released;
        r.expires = self.now;
        r.seen = self.now;
        info!(%ip, mac = %r.mac, "lease of {ip} released: {why}");
        Some(self.db.put(r).clone())
    }

    fn ours(&self) -> bool {
        self.req.server_id == Some(self.t.server_ip)
    }

    fn decline(&mut self) -> Outcome {
        let req = self.req;
        let (true, Some(ip)) = (self.ours(), req.requested_ip) else {
            return quiet(Quiet::OtherServer);
        };
        if self.host().is_some_and(|h| h.address == ip) {
            warn!(%ip, mac = %req.mac, "DHCPDECLINE: reserved address {ip} is in use by another machine");
            return quiet(Quiet::Done);
        }
        let Some(r) = self.db.get(ip).filter(|r| r.mac == req.mac) else {
            return quiet(Quiet::Done);
        };
        let mut r = r.clone();
        r.state = State::Declined;
        r.expires = self.now + leases::DECLINE_QUARANTINE;
        r.seen = self.now;
        warn!(%ip, mac = %req.mac, "DHCPDECLINE: {ip} is in use by another machine; out of the pool for {}s", leases::DECLINE_QUARANTINE);
        Outcome::Quiet {
            why: Quiet::Done,
            record: Some(self.db.put(r).clone()),
        }
    }

    fn release(&mut self) -> Outcome {
        if !self.ours() {
            return quiet(Quiet::OtherServer);
        }
        let ip = self.req.ciaddr;
        let record = self.release_binding(ip, "DHCPRELEASE");
        Outcome::Quiet {
            why: Quiet::Done,
            record,
        }
    }

    /// DHCPINFORM (§4.3.5): configuration only, to ciaddr, no lease.
    fn inform(&mut self) -> Outcome {
        let req = self.req;
        if req.ciaddr.is_unspecified() {
            return quiet(Quiet::Incomplete);
        }
        // Options are for this LAN only, and a reply to its network or
        // broadcast address would be a broadcast.
        if !self.t.lan_unicast(req.ciaddr) {
            return quiet(Quiet::ForeignInform);
        }
        if self.host().is_none() && self.t.pool.is_none() {
            return quiet(Quiet::UnknownClient);
        }
        let t = self.t;
        let host = t.hosts.get(&req.mac);
        let zero = Ipv4Addr::UNSPECIFIED;
        self.write(MessageType::Ack, req.ciaddr, zero, host, false);
        debug!(ip = %req.ciaddr, mac = %req.mac, "DHCPACK to DHCPINFORM");
        Outcome::Reply {
            kind: MessageType::Ack,
            target: reply_target(
                req.giaddr,
                req.ciaddr,
                req.broadcast(),
                false,
                req.mac,
                zero,
            ),
            record: None,
            wait: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Mac;
    use crate::dhcp::request::{parse, tests::packet};
    use dhcproto::v4::{DhcpOption, Message, OptionCode};
    use dhcproto::{Decodable, Decoder};
    use std::path::Path;

    const NOW: u64 = 1_800_000_000;
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 254);
    const NODE1: [u8; 6] = [0x00, 0x12, 0x34, 0x56, 0x78, 0x91];
    const NODE1_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 101);
    const NODE2: [u8; 6] = [0x00, 0x12, 0x34, 0x56, 0x78, 0x92];
    const STRANGER: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];

    const BASE: &str = r#"
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"
gateway = "203.0.113.253"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"

[dhcp]
dns_servers = ["203.0.113.1", "203.0.113.3"]
domain_name = "cluster.example.com"
domain_search = ["something.example.com"]
ntp_servers = ["192.168.1.254"]
lease_time = "12h"
next_server = "192.168.1.254"
filename = "pxelinux.0"
POOL

[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[host]]
name = "node2"
mac = "00:12:34:56:78:92"
address = "192.168.1.102"
filename = "uefi/grub.efi"
dns_servers = ["192.168.1.1"]
lease_time = "1h"
"#;

    fn tables(pool: bool) -> Tables {
        let text = BASE.replace(
            "POOL",
            if pool {
                "pool = { start = \"192.168.1.200\", end = \"192.168.1.201\" }"
            } else {
                ""
            },
        );
        let cfg = crate::config::parse(&text, Path::new("test.toml")).expect("valid config");
        Tables::new(&cfg)
    }

    struct Env {
        t: Tables,
        db: LeaseDb,
        buf: Vec<u8>,
    }

    impl Env {
        fn new(pool: bool) -> Env {
            let t = tables(pool);
            let db = LeaseDb::new(t.pool);
            Env {
                t,
                db,
                buf: Vec::new(),
            }
        }
        fn send(&mut self, bytes: &[u8], now: u64) -> (Outcome, Option<Message>) {
            let req = parse(bytes).expect("test packets are valid");
            let out = respond(&req, &self.t, &mut self.db, now, &mut self.buf);
            let msg = matches!(out, Outcome::Reply { .. })
                .then(|| Message::decode(&mut Decoder::new(&self.buf)).expect("reply decodes"));
            (out, msg)
        }
    }

    fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
        m.opts().get(code)
    }

    /// Option codes in wire order.
    fn wire_order(buf: &[u8]) -> Vec<u8> {
        let mut codes = Vec::new();
        let mut i = 240;
        while i < buf.len() && buf[i] != 255 {
            codes.push(buf[i]);
            i += 2 + buf[i + 1] as usize;
        }
        codes
    }

    /// One DISCOVER against `cfg`: the boot file and the server, from the
    /// header and from options 67 and 66.
    fn boot_answer(t: &Tables, mac: [u8; 6], opts: Vec<DhcpOption>) -> (String, Ipv4Addr, String) {
        let mut db = LeaseDb::new(t.pool);
        let mut buf = Vec::new();
        let opts = opts
            .into_iter()
            .chain([DhcpOption::ParameterRequestList(vec![
                OptionCode::TFTPServerName,
                OptionCode::BootfileName,
            ])])
            .collect();
        let req = parse(&packet(MessageType::Discover, mac, opts)).unwrap();
        respond(&req, t, &mut db, NOW, &mut buf);
        let m = Message::decode(&mut Decoder::new(&buf)).unwrap();
        let file = String::from_utf8_lossy(m.fname().unwrap_or_default())
            .trim_end_matches('\0')
            .to_string();
        let opt67 = match m.opts().get(OptionCode::BootfileName) {
            Some(DhcpOption::BootfileName(f)) => String::from_utf8_lossy(f).into_owned(),
            other => panic!("option 67: {other:?}"),
        };
        assert_eq!(file, opt67, "header and option 67 agree");
        let opt66 = match m.opts().get(OptionCode::TFTPServerName) {
            Some(DhcpOption::TFTPServerName(n)) => String::from_utf8_lossy(n).into_owned(),
            other => panic!("option 66: {other:?}"),
        };
        (file, m.siaddr(), opt66)
    }

    #[test]
    fn pxe_boot_file_by_architecture_and_user_class() {
        use dhcproto::v4::UnknownOption;
        let text = format!(
            r#"{}
[dhcp]
next_server = "192.168.1.254"
filename = "default.0"
pool = {{ start = "192.168.1.200", end = "192.168.1.201" }}

[[dhcp.boot]]
user_class = "iPXE"
filename = "http://192.168.1.254/boot.ipxe"

[[dhcp.boot]]
arch = "efi-x64"
filename = "ipxe.efi"

[[dhcp.boot]]
arch = "bios"
filename = "undionly.kpxe"
next_server = "192.168.1.253"

[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"
boot = [{{ arch = "efi-x64", filename = "node1.efi" }}]

[[host]]
name = "node2"
mac = "00:12:34:56:78:92"
address = "192.168.1.102"
filename = "own.0"
"#,
            crate::config::test_text::INTERFACES
        );
        let cfg = crate::config::parse(&text, Path::new("t.toml")).unwrap();
        let t = Tables::new(&cfg);
        let arch = |n: u16| {
            DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(93),
                n.to_be_bytes().to_vec(),
            ))
        };
        let class =
            |b: &[u8]| DhcpOption::Unknown(UnknownOption::new(OptionCode::from(77), b.to_vec()));
        let anon = [0x02, 0, 0, 0, 0, 1];
        let node2 = [0x00, 0x12, 0x34, 0x56, 0x78, 0x92];
        let dflt = Ipv4Addr::new(192, 168, 1, 254);
        let bios = Ipv4Addr::new(192, 168, 1, 253);
        let url = "http://192.168.1.254/boot.ipxe";
        // Client MAC, its options, then file, siaddr and option 66 expected.
        type Case<'a> = ([u8; 6], Vec<DhcpOption>, (&'a str, Ipv4Addr, &'a str));
        let cases: Vec<Case> = vec![
            (anon, vec![], ("default.0", dflt, "192.168.1.254")),
            (
                anon,
                vec![arch(0)],
                ("undionly.kpxe", bios, "192.168.1.253"),
            ),
            (anon, vec![arch(7)], ("ipxe.efi", dflt, "192.168.1.254")),
            (anon, vec![arch(9)], ("ipxe.efi", dflt, "192.168.1.254")),
            // iPXE itself (bare "iPXE", or an RFC 3004 list): the script,
            // not the loader again.
            (
                anon,
                vec![arch(0), class(b"iPXE")],
                (url, dflt, "192.168.1.254"),
            ),
            (
                anon,
                vec![arch(7), class(b"\x03abc\x04iPXE")],
                (url, dflt, "192.168.1.254"),
            ),
            (
                anon,
                vec![arch(7), class(b"iPXEx")],
                ("ipxe.efi", dflt, "192.168.1.254"),
            ),
            (NODE1, vec![arch(7)], ("node1.efi", dflt, "192.168.1.254")),
            (
                NODE1,
                vec![arch(0)],
                ("undionly.kpxe", bios, "192.168.1.253"),
            ),
            (node2, vec![arch(0)], ("own.0", dflt, "192.168.1.254")),
        ];
        for (mac, opts, want) in cases {
            let what = format!("{mac:02x?} {opts:?}");
            let (file, siaddr, opt66) = boot_answer(&t, mac, opts);
            assert_eq!((file.as_str(), siaddr, opt66.as_str()), want, "{what}");
        }
    }

    #[test]
    fn reservation_gets_offer_with_its_options_in_requested_order() {
        let mut e = Env::new(false);
        let prl = vec![
            OptionCode::DomainNameServer,
            OptionCode::Router,
            OptionCode::SubnetMask,
            OptionCode::Hostname,
        ];
        let (out, m) = e.send(
            &packet(
                MessageType::Discover,
                NODE1,
                vec![DhcpOption::ParameterRequestList(prl)],
            ),
            NOW,
        );
        let Outcome::Reply {
            kind,
            target,
            record,
            wait,
        } = out
        else {
            panic!("expected a reply, got {out:?}");
        };
        assert_eq!(kind, MessageType::Offer);
        assert_eq!(
            target,
            Target::Hardware {
                mac: Mac(NODE1),
                ip: NODE1_IP
            }
        );
        assert_eq!((record, wait), (None, false), "an OFFER is not recorded");
        let m = m.expect("reply");
        assert_eq!(m.yiaddr(), NODE1_IP);
        assert_eq!(m.siaddr(), SERVER);
        assert_eq!(m.fname(), Some(&b"pxelinux.0\0"[..]));
        assert_eq!(m.chaddr(), &NODE1);
        assert_eq!(
            &wire_order(&e.buf)[..8],
            &[53, 54, 51, 58, 59, 6, 3, 1],
            "type and lease first, then the client's order"
        );
        assert_eq!(e.buf.len(), 300.max(e.buf.len()));
        assert!(e.buf.len() >= 300);
        assert_eq!(
            opt(&m, OptionCode::Hostname),
            Some(&DhcpOption::Hostname("node1".into()))
        );
        assert_eq!(
            opt(&m, OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(
            opt(&m, OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(43_200))
        );
        assert_eq!(
            opt(&m, OptionCode::Renewal),
            Some(&DhcpOption::Renewal(21_600))
        );
        assert_eq!(
            opt(&m, OptionCode::Rebinding),
            Some(&DhcpOption::Rebinding(37_800))
        );
        assert_eq!(
            opt(&m, OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask([255, 255, 255, 0].into()))
        );
        assert_eq!(
            opt(&m, OptionCode::BroadcastAddr),
            Some(&DhcpOption::BroadcastAddr([192, 168, 1, 255].into()))
        );
        assert_eq!(
            opt(&m, OptionCode::Router),
            Some(&DhcpOption::Router(vec![SERVER]))
        );
        assert_eq!(
            opt(&m, OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![
                [203, 0, 113, 1].into(),
                [203, 0, 113, 3].into()
            ]))
        );
        assert_eq!(
            opt(&m, OptionCode::DomainName),
            Some(&DhcpOption::DomainName("cluster.example.com".into()))
        );
        assert_eq!(
            opt(&m, OptionCode::NtpServers),
            Some(&DhcpOption::NtpServers(vec![SERVER]))
        );
        assert!(matches!(
            opt(&m, OptionCode::DomainSearch),
            Some(DhcpOption::DomainSearch(v)) if v.len() == 1
        ));
        assert_eq!(
            opt(&m, OptionCode::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(b"192.168.1.254".to_vec()))
        );
        assert_eq!(
            opt(&m, OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(b"pxelinux.0".to_vec()))
        );
    }

    #[test]
    fn per_host_overrides_win() {
        let mut e = Env::new(false);
        let (_, m) = e.send(&packet(MessageType::Discover, NODE2, vec![]), NOW);
        let m = m.expect("offer");
        assert_eq!(m.yiaddr(), Ipv4Addr::new(192, 168, 1, 102));
        assert_eq!(m.fname(), Some(&b"uefi/grub.efi\0"[..]));
        assert_eq!(
            opt(&m, OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![[192, 168, 1, 1].into()]))
        );
        assert_eq!(
            opt(&m, OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(3600))
        );
        assert_eq!(
            opt(&m, OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(b"uefi/grub.efi".to_vec()))
        );
    }

    fn selecting(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
        packet(
            MessageType::Request,
            mac,
            vec![
                DhcpOption::RequestedIpAddress(ip),
                DhcpOption::ServerIdentifier(SERVER),
            ],
        )
    }

    #[test]
    fn request_for_the_reserved_address_is_acked_and_recorded_without_waiting() {
        let mut e = Env::new(false);
        let (out, m) = e.send(&selecting(NODE1, NODE1_IP), NOW);
        let Outcome::Reply {
            kind: MessageType::Ack,
            record: Some(r),
            wait: false,
            ..
        } = out
        else {
            panic!("expected an ACK, got {out:?}");
        };
        assert_eq!(
            (r.ip, r.state, r.expires),
            (NODE1_IP, State::Bound, NOW + 43_200)
        );
        assert_eq!(m.expect("ack").yiaddr(), NODE1_IP);
    }

    #[test]
    fn wrong_requests_are_naked_by_broadcast() {
        let mut e = Env::new(false);
        for bytes in [
            selecting(NODE1, Ipv4Addr::new(192, 168, 1, 150)),
            // INIT-REBOOT from another network.
            packet(
                MessageType::Request,
                NODE1,
                vec![DhcpOption::RequestedIpAddress([10, 1, 1, 1].into())],
            ),
        ] {
            let (out, m) = e.send(&bytes, NOW);
            assert!(
                matches!(
                    out,
                    Outcome::Reply {
                        kind: MessageType::Nak,
                        target: Target::Broadcast,
                        ..
                    }
                ),
                "{out:?}"
            );
            let m = m.expect("nak");
            assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
            assert_eq!(
                opt(&m, OptionCode::ServerIdentifier),
                Some(&DhcpOption::ServerIdentifier(SERVER))
            );
        }
    }

    #[test]
    fn strangers_get_nothing_without_a_pool() {
        let mut e = Env::new(false);
        let (out, _) = e.send(&packet(MessageType::Discover, STRANGER, vec![]), NOW);
        assert_eq!(out, quiet(Quiet::UnknownClient));
        let inform = {
            let mut b = packet(MessageType::Inform, STRANGER, vec![]);
            b[12..16].copy_from_slice(&[192, 168, 1, 50]);
            b
        };
        assert_eq!(e.send(&inform, NOW).0, quiet(Quiet::UnknownClient));
    }

    #[test]
    fn request_for_another_server_is_ignored() {
        let mut e = Env::new(true);
        let b = packet(
            MessageType::Request,
            STRANGER,
            vec![
                DhcpOption::RequestedIpAddress([192, 168, 1, 200].into()),
                DhcpOption::ServerIdentifier([192, 168, 1, 1].into()),
            ],
        );
        assert_eq!(e.send(&b, NOW).0, quiet(Quiet::OtherServer));
    }

    fn ack_ip(out: &Outcome) -> Option<(Ipv4Addr, bool)> {
        match out {
            Outcome::Reply {
                kind: MessageType::Ack,
                record: Some(r),
                wait,
                ..
            } => Some((r.ip, *wait)),
            _ => None,
        }
    }

    /// Two head nodes with one pool: each leases from its half, and a
    /// request for the other's half is left to the other (no NAK).
    #[test]
    fn two_head_nodes_lease_from_their_own_half_and_leave_the_other_alone() {
        let node = |role: &str| {
            let text = BASE.replace(
                "POOL",
                "pool = { start = \"192.168.1.200\", end = \"192.168.1.203\" }",
            ) + &format!(
                "[ha]\nrole = \"{role}\"\npeer = \"192.168.1.253\"\npublic_address = \"203.0.113.200/24\"\nlan_address = \"192.168.1.1/24\"\n"
            );
            let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid config");
            let t = Tables::new(&cfg);
            let db = LeaseDb::new(t.pool);
            Env {
                t,
                db,
                buf: Vec::new(),
            }
        };
        let (mut primary, mut secondary) = (node("primary"), node("secondary"));
        let offer = |e: &mut Env, mac| {
            let (_, m) = e.send(&packet(MessageType::Discover, mac, vec![]), NOW);
            m.expect("offer").yiaddr()
        };
        assert_eq!(
            offer(&mut primary, STRANGER),
            Ipv4Addr::new(192, 168, 1, 200)
        );
        assert_eq!(
            offer(&mut secondary, STRANGER),
            Ipv4Addr::new(192, 168, 1, 202)
        );
        // Both answer a reservation alike.
        assert_eq!(offer(&mut primary, NODE1), NODE1_IP);
        assert_eq!(offer(&mut secondary, NODE1), NODE1_IP);
        // A rebinding client of the secondary's half asks the primary: quiet.
        let rebind = |ip: Ipv4Addr| {
            let mut p = packet(MessageType::Request, STRANGER, vec![]);
            p[12..16].copy_from_slice(&ip.octets());
            p
        };
        let theirs = Ipv4Addr::new(192, 168, 1, 203);
        assert_eq!(
            primary.send(&rebind(theirs), NOW).0,
            quiet(Quiet::OtherServer)
        );
        assert_eq!(
            ack_ip(&secondary.send(&rebind(theirs), NOW).0),
            Some((theirs, true))
        );
        // One of its own it confirms.
        let ours = Ipv4Addr::new(192, 168, 1, 201);
        assert_eq!(
            ack_ip(&primary.send(&rebind(ours), NOW).0),
            Some((ours, true))
        );
    }

    #[test]
    fn pool_lifecycle() {
        let mut e = Env::new(true);
        let (out, m) = e.send(&packet(MessageType::Discover, STRANGER, vec![]), NOW);
        assert!(matches!(
            out,
            Outcome::Reply {
                kind: MessageType::Offer,
                ..
            }
        ));
        let ip = m.expect("offer").yiaddr();
        assert_eq!(ip, Ipv4Addr::new(192, 168, 1, 200));
        // Another client does not get the offered address.
        let other = [0x02, 0xbb, 0, 0, 0, 2];
        let (_, m2) = e.send(&packet(MessageType::Discover, other, vec![]), NOW);
        assert_eq!(m2.expect("offer").yiaddr(), Ipv4Addr::new(192, 168, 1, 201));
        // A third finds the pool full.
        let third = [0x02, 0xcc, 0, 0, 0, 3];
        assert_eq!(
            e.send(&packet(MessageType::Discover, third, vec![]), NOW).0,
            quiet(Quiet::PoolExhausted)
        );
        // REQUEST: the ACK waits for the disk.
        let (out, _) = e.send(&selecting(STRANGER, ip), NOW);
        assert_eq!(ack_ip(&out), Some((ip, true)));
        // Renewal (ciaddr, unicast): same address, extended.
        let mut renew = packet(MessageType::Request, STRANGER, vec![]);
        renew[12..16].copy_from_slice(&ip.octets());
        let (out, _) = e.send(&renew, NOW + 100);
        assert_eq!(ack_ip(&out), Some((ip, true)));
        assert!(matches!(out, Outcome::Reply { target: Target::Client(c), .. } if c == ip));
        // Coming back after expiry: the same address while nobody took it.
        let (_, m) = e.send(
            &packet(MessageType::Discover, STRANGER, vec![]),
            NOW + 200_000,
        );
        assert_eq!(m.expect("offer").yiaddr(), ip);
        // Renewing someone else's address is refused.
        let mut steal = packet(MessageType::Request, other, vec![]);
        steal[12..16].copy_from_slice(&ip.octets());
        let (out, _) = e.send(&steal, NOW + 100);
        assert!(matches!(
            out,
            Outcome::Reply {
                kind: MessageType::Nak,
                ..
            }
        ));
        // INFORM: options, no lease, to ciaddr.
        let mut inform = packet(MessageType::Inform, other, vec![]);
        inform[12..16].copy_from_slice(&[192, 168, 1, 60]);
        let (out, m) = e.send(&inform, NOW);
        assert!(matches!(
            out,
            Outcome::Reply {
                kind: MessageType::Ack,
                target: Target::Client(_),
                record: None,
                ..
            }
        ));
        let m = m.expect("ack");
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(opt(&m, OptionCode::AddressLeaseTime).is_none());
        assert!(opt(&m, OptionCode::SubnetMask).is_some());
    }

    #[test]
    fn release_frees_and_decline_quarantines() {
        let mut e = Env::new(true);
        let ip = Ipv4Addr::new(192, 168, 1, 200);
        e.send(&packet(MessageType::Discover, STRANGER, vec![]), NOW);
        assert_eq!(
            ack_ip(&e.send(&selecting(STRANGER, ip), NOW).0),
            Some((ip, true))
        );
        let mut rel = packet(
            MessageType::Release,
            STRANGER,
            vec![DhcpOption::ServerIdentifier(SERVER)],
        );
        rel[12..16].copy_from_slice(&ip.octets());
        let (out, _) = e.send(&rel, NOW + 10);
        assert!(matches!(
            out,
            Outcome::Quiet { why: Quiet::Done, record: Some(ref r) } if r.state == State::Released
        ));
        // A released address is free for the next client once the pool is otherwise used.
        let other = [0x02, 0xbb, 0, 0, 0, 2];
        let third = [0x02, 0xcc, 0, 0, 0, 3];
        let (_, m) = e.send(&packet(MessageType::Discover, other, vec![]), NOW + 20);
        assert_eq!(m.expect("offer").yiaddr(), Ipv4Addr::new(192, 168, 1, 201));
        let (_, m) = e.send(&packet(MessageType::Discover, third, vec![]), NOW + 20);
        assert_eq!(m.expect("offer").yiaddr(), ip, "the released one");
        // Third declines it: out of the pool for the quarantine.
        e.send(&selecting(third, ip), NOW + 20);
        let dec = packet(
            MessageType::Decline,
            third,
            vec![
                DhcpOption::ServerIdentifier(SERVER),
                DhcpOption::RequestedIpAddress(ip),
            ],
        );
        let (out, _) = e.send(&dec, NOW + 21);
        assert!(matches!(
            out,
            Outcome::Quiet { why: Quiet::Done, record: Some(ref r) } if r.state == State::Declined
        ));
        assert_eq!(
            e.send(&packet(MessageType::Discover, third, vec![]), NOW + 40)
                .0,
            quiet(Quiet::PoolExhausted),
            "the offer to `other` still holds .201 and .200 is quarantined"
        );
    }

    #[test]
    fn reservation_added_later_moves_the_client_off_its_pool_address() {
        let mut e = Env::new(true);
        let ip = Ipv4Addr::new(192, 168, 1, 200);
        e.send(&packet(MessageType::Discover, STRANGER, vec![]), NOW);
        e.send(&selecting(STRANGER, ip), NOW);
        // The admin reserves 192.168.1.120 for it and reloads.
        let text = BASE.replace(
            "POOL",
            "pool = { start = \"192.168.1.200\", end = \"192.168.1.201\" }",
        ) + "\n[[host]]\nname = \"late\"\nmac = \"02:aa:00:00:00:01\"\naddress = \"192.168.1.120\"\n";
        let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid");
        e.t = Tables::new(&cfg);
        let mut renew = packet(MessageType::Request, STRANGER, vec![]);
        renew[12..16].copy_from_slice(&ip.octets());
        let (out, _) = e.send(&renew, NOW + 100);
        assert!(
            matches!(out, Outcome::Reply { kind: MessageType::Nak, record: Some(ref r), .. } if r.state == State::Released && r.ip == ip),
            "{out:?}"
        );
        let (_, m) = e.send(&packet(MessageType::Discover, STRANGER, vec![]), NOW + 101);
        assert_eq!(m.expect("offer").yiaddr(), Ipv4Addr::new(192, 168, 1, 120));
    }

    #[test]
    fn relayed_requests_go_back_to_the_relay_with_option_82() {
        let mut e = Env::new(false);
        let mut b = packet(
            MessageType::Discover,
            NODE1,
            vec![DhcpOption::MaxMessageSize(1400)],
        );
        // giaddr on our subnet, plus relay agent information before End.
        b[24..28].copy_from_slice(&[192, 168, 1, 1]);
        let end = b.iter().rposition(|&x| x == 255).expect("end");
        b.truncate(end);
        b.extend_from_slice(&[82, 4, 1, 2, 0xab, 0xcd, 255]);
        let (out, _) = e.send(&b, NOW);
        assert!(
            matches!(out, Outcome::Reply { target: Target::Relay(r), .. } if r == Ipv4Addr::new(192, 168, 1, 1))
        );
        let codes = wire_order(&e.buf);
        assert_eq!(codes.last(), Some(&82), "option 82 is echoed last");
        // From a relay on a network we do not serve, or from the LAN's
        // network or broadcast address: dropped.
        for giaddr in [[10, 0, 0, 1], [192, 168, 1, 0], [192, 168, 1, 255]] {
            b[24..28].copy_from_slice(&giaddr);
            assert_eq!(e.send(&b, NOW).0, quiet(Quiet::ForeignRelay), "{giaddr:?}");
        }
    }

    #[test]
    fn inform_is_answered_only_for_unicast_addresses_of_the_lan() {
        let mut e = Env::new(true);
        let inform = |ciaddr: [u8; 4]| {
            let mut b = packet(MessageType::Inform, STRANGER, vec![]);
            b[12..16].copy_from_slice(&ciaddr);
            b
        };
        let (out, _) = e.send(&inform([192, 168, 1, 50]), NOW);
        assert!(
            matches!(out, Outcome::Reply { kind: MessageType::Ack, target: Target::Client(ip), .. } if ip == Ipv4Addr::new(192, 168, 1, 50)),
            "{out:?}"
        );
        for ciaddr in [[10, 0, 0, 5], [192, 168, 1, 0], [192, 168, 1, 255]] {
            assert_eq!(
                e.send(&inform(ciaddr), NOW).0,
                quiet(Quiet::ForeignInform),
                "{ciaddr:?}"
            );
        }
    }
}
