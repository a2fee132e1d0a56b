//! Writing a reply: BOOTP header, then options in the order the client asked
//! for them (RFC 2132 §9.8), within the size the client can take (option 57),
//! padded to the 300 bytes BOOTP-era clients and PXE ROMs expect.
//!
//! Written by hand because dhcproto keeps options in a BTreeMap (ascending
//! code order, 53 after 51) and allocates per option.

use super::request::{HEADER_LEN, MAGIC, Request};
use dhcproto::v4::MessageType;
use std::net::Ipv4Addr;

/// The BOOTP minimum message size.
pub const MIN_LEN: usize = 300;
/// IPv4 + UDP headers, which option 57 counts (RFC 2132 §9.10).
const IP_UDP: usize = 28;
/// Every client must accept 576-byte datagrams (RFC 2131 §2).
const DEFAULT_MAX: usize = 576;
/// Our own ceiling: one Ethernet frame.
const MTU: usize = 1500;

/// A reply being written into a reused buffer.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    /// Byte limit for the whole DHCP message, End option included.
    limit: usize,
    /// Room kept for options that must go last (82, End).
    reserve: usize,
    /// Option codes already written.
    done: [u64; 4],
    /// Options left out for lack of room.
    pub skipped: u32,
}

impl<'a> Writer<'a> {
    /// Write the fixed header for a reply to `req`.
    pub fn new(
        buf: &'a mut Vec<u8>,
        req: &Request,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        yiaddr: Ipv4Addr,
        siaddr: Ipv4Addr,
        file: Option<&[u8]>,
    ) -> Writer<'a> {
        buf.clear();
        buf.resize(HEADER_LEN, 0);
        buf[0] = 2; // BOOTREPLY
        buf[1] = 1; // Ethernet
        buf[2] = 6;
        buf[4..8].copy_from_slice(&req.xid.to_be_bytes());
        // A NAK to a relay asks it to broadcast (RFC 2131 §4.3.2).
        let flags = if kind == MessageType::Nak && !req.giaddr.is_unspecified() {
            req.flags | super::request::BROADCAST_FLAG
        } else {
            req.flags
        };
        buf[10..12].copy_from_slice(&flags.to_be_bytes());
        buf[12..16].copy_from_slice(&ciaddr.octets());
        buf[16..20].copy_from_slice(&yiaddr.octets());
        buf[20..24].copy_from_slice(&siaddr.octets());
        buf[24..28].copy_from_slice(&req.giaddr.octets());
        buf[28..34].copy_from_slice(&req.mac.0);
        if let Some(f) = file {
            // Validation keeps file names within 127 bytes; the field is 128 with its NUL.
            let n = f.len().min(127);
            buf[108..108 + n].copy_from_slice(&f[..n]);
        }
        buf[236..240].copy_from_slice(&MAGIC);
        let max = req
            .max_size
            .map_or(DEFAULT_MAX, |m| usize::from(m).max(DEFAULT_MAX))
            .min(MTU);
        let reserve = 1 + req.relay_info().map_or(0, |r| 2 + r.len());
        let mut w = Writer {
            buf,
            limit: max - IP_UDP,
            reserve,
            done: [0; 4],
            skipped: 0,
        };
        w.put(53, &[u8::from(kind)]);
        w
    }

    pub fn written(&self, code: u8) -> bool {
        self.done[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    /// Add an option unless it was written already or does not fit. Values
    /// over 255 bytes are split into consecutive instances (RFC 3396).
    pub fn put(&mut self, code: u8, value: &[u8]) -> bool {
        if self.written(code) {
            return false;
        }
        let pieces = value.len().div_ceil(255).max(1);
        let need = value.len() + 2 * pieces;
        if self.buf.len() + need + self.reserve > self.limit {
            self.skipped += 1;
            return false;
        }
        if value.is_empty() {
            self.buf.extend_from_slice(&[code, 0]);
        }
        for chunk in value.chunks(255) {
            self.buf.push(code);
            self.buf.push(chunk.len() as u8);
            self.buf.extend_from_slice(chunk);
        }
        self.done[usize::from(code / 64)] |= 1 << (code % 64);
        true
    }

    pub fn put_u32(&mut self, code: u8, v: u32) -> bool {
        self.put(code, &v.to_be_bytes())
    }

    pub fn put_ip(&mut self, code: u8, ip: Ipv4Addr) -> bool {
        self.put(code, &ip.octets())
    }

    /// Echo the relay agent information (last, RFC 3046 §2.2), End, padding.
    pub fn finish(self, req: &Request) {
        if let Some(r) = req.relay_info() {
            self.buf.push(82);
            self.buf.push(r.len() as u8);
            self.buf.extend_from_slice(r);
        }
        self.buf.push(255);
        if self.buf.len() < MIN_LEN {
            self.buf.resize(MIN_LEN, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::request::parse;
    use crate::dhcp::request::tests::{CLIENT, packet};
    use dhcproto::v4::{DhcpOption, Message};
    use dhcproto::{Decodable, Decoder};

    fn req(opts: Vec<DhcpOption>) -> Request {
        parse(&packet(MessageType::Discover, CLIENT, opts)).expect("valid")
    }

    #[test]
    fn padded_decodable_and_type_first() {
        let r = req(vec![]);
        let mut buf = Vec::new();
        let mut w = Writer::new(
            &mut buf,
            &r,
            MessageType::Offer,
            Ipv4Addr::UNSPECIFIED,
            [10, 0, 0, 5].into(),
            [10, 0, 0, 1].into(),
            Some(b"pxelinux.0"),
        );
        w.put_ip(54, [10, 0, 0, 1].into());
        w.finish(&r);
        assert_eq!(buf.len(), MIN_LEN);
        assert_eq!(&buf[240..243], &[53, 1, 2], "message type comes first");
        let m = Message::decode(&mut Decoder::new(&buf)).expect("dhcproto decodes it");
        assert_eq!(m.xid(), 0x1234_5678);
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(m.fname(), Some(&b"pxelinux.0\0"[..]));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    }

    #[test]
    fn respects_client_max_size_and_splits_long_values() {
        let r = req(vec![DhcpOption::MaxMessageSize(576)]);
        let mut buf = Vec::new();
        let mut w = Writer::new(
            &mut buf,
            &r,
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            None,
        );
        // 548 bytes allowed: 240 header, 3 for 53, End.
        assert!(w.put(6, &[1; 260]), "a 260-byte value fits, split in two");
        assert!(!w.put(42, &[2; 100]), "no room left for 100 more");
        assert_eq!(w.skipped, 1);
        w.finish(&r);
        assert!(buf.len() <= 548);
        let m = Message::decode(&mut Decoder::new(&buf)).expect("decodes");
        match m.opts().get(dhcproto::v4::OptionCode::DomainNameServer) {
            Some(DhcpOption::DomainNameServer(v)) => assert_eq!(v.len(), 65),
            other => panic!("DNS option joined back: {other:?}"),
        }
    }
}
