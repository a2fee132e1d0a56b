//! Reading a client's packet: a bounded, allocation-free parser that checks
//! everything the responder relies on and names what was wrong otherwise.
//!
//! dhcproto's owned `Message::decode` allocates for every option and its
//! `chaddr()` panics on `hlen > 16`; the borrowed one stops silently at a
//! malformed option. The header is fixed and options are plain TLVs, so this
//! reads them directly and rejects what a well-behaved client never sends.

use crate::config::model::Mac;
use dhcproto::v4::MessageType;
use std::net::Ipv4Addr;

/// BOOTP header (236 bytes) plus the magic cookie.
pub const HEADER_LEN: usize = 240;
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Flags bit 15: the client cannot receive unicast before it is configured.
pub const BROADCAST_FLAG: u16 = 0x8000;

/// Why a packet was dropped before the responder saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the BOOTP header and cookie.
    Truncated,
    /// `op` is not BOOTREQUEST (a reply, or garbage).
    NotRequest,
    /// Not Ethernet (`htype` 1, `hlen` 6), or a group/zero MAC.
    BadHardware,
    BadCookie,
    /// An option runs past the end of the packet, or has the wrong length.
    BadOption,
    /// No option 53: BOOTP, which headnode does not serve.
    NoMessageType,
    /// A message type a server never receives (OFFER, ACK, ...).
    BadMessageType,
}

/// What the responder needs from a request, copied out of the packet.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: MessageType,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: Mac,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 51: the lease time the client asks for.
    pub lease_time: Option<u32>,
    /// Option 57.
    pub max_size: Option<u16>,
    /// Option 55, RFC 3396 concatenated when repeated.
    prl: [u8; 255],
    prl_len: u8,
    /// Option 12, cut to 63 bytes.
    hostname: [u8; 63],
    hostname_len: u8,
    /// Option 82 as received, echoed back to the relay (RFC 3046).
    relay: [u8; 255],
    relay_len: u8,
    /// Option 93 (RFC 4578): the client's architectures, the first four.
    arch: [u16; 4],
    arch_len: u8,
    /// Option 77 (RFC 3004, or iPXE's plain "iPXE"), cut to 63 bytes.
    user_class: [u8; 63],
    user_class_len: u8,
}

impl Request {
    pub fn broadcast(&self) -> bool {
        self.flags & BROADCAST_FLAG != 0
    }
    pub fn prl(&self) -> &[u8] {
        &self.prl[..self.prl_len as usize]
    }
    pub fn hostname(&self) -> Option<&[u8]> {
        (self.hostname_len > 0).then(|| &self.hostname[..self.hostname_len as usize])
    }
    pub fn relay_info(&self) -> Option<&[u8]> {
        (self.relay_len > 0).then(|| &self.relay[..self.relay_len as usize])
    }
    pub fn arch(&self) -> &[u16] {
        &self.arch[..self.arch_len as usize]
    }
    /// Does option 77 name `class`? Firmware sends RFC 3004's list of
    /// length-prefixed names; iPXE sends the bare name.
    pub fn has_user_class(&self, class: &[u8]) -> bool {
        let uc = &self.user_class[..self.user_class_len as usize];
        if uc == class {
            return true;
        }
        let mut rest = uc;
        while let Some((&n, tail)) = rest.split_first() {
            let Some(item) = tail.get(..n as usize) else {
                return false;
            };
            if item == class {
                return true;
            }
            rest = &tail[n as usize..];
        }
        false
    }
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn ip_opt(data: &[u8]) -> Result<Ipv4Addr, Malformed> {
    match data {
        [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(Malformed::BadOption),
    }
}

/// Append `data` to a fixed buffer, keeping what fits.
fn append(buf: &mut [u8; 255], len: &mut u8, data: &[u8]) {
    let at = *len as usize;
    let n = data.len().min(255 - at);
    buf[at..at + n].copy_from_slice(&data[..n]);
    *len = (at + n) as u8;
}

/// Parse and check a packet received on the server port.
pub fn parse(b: &[u8]) -> Result<Request, Malformed> {
    if b.len() < HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    if b[0] != 1 {
        return Err(Malformed::NotRequest);
    }
    if b[1] != 1 || b[2] != 6 {
        return Err(Malformed::BadHardware);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&b[28..34]);
    // Group bit set or all zeros: never a real client, and replying to it
    // (by ARP entry or L2 unicast) would be wrong.
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(Malformed::BadHardware);
    }
    if b[236..240] != MAGIC {
        return Err(Malformed::BadCookie);
    }
    let mut req = Request {
        kind: MessageType::Unknown(0),
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: ip_at(b, 12),
        giaddr: ip_at(b, 24),
        mac: Mac(mac),
        requested_ip: None,
        server_id: None,
        lease_time: None,
        max_size: None,
        prl: [0; 255],
        prl_len: 0,
        hostname: [0; 63],
        hostname_len: 0,
        relay: [0; 255],
        relay_len: 0,
        arch: [0; 4],
        arch_len: 0,
        user_class: [0; 63],
        user_class_len: 0,
    };
    let mut kind = None;
    let mut i = HEADER_LEN;
    while i < b.len() {
        let code = b[i];
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = *b.get(i + 1).ok_or(Malformed::BadOption)? as usize;
        let data = b.get(i + 2..i + 2 + len).ok_or(Malformed::BadOption)?;
        i += 2 + len;
        match code {
            53 => match data {
                [t] => kind = Some(*t),
                _ => return Err(Malformed::BadOption),
            },
            50 => req.requested_ip = Some(ip_opt(data)?),
            54 => req.server_id = Some(ip_opt(data)?),
            51 => match data {
                [a, b, c, d] => req.lease_time = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => return Err(Malformed::BadOption),
            },
            57 => match data {
                [a, b] => req.max_size = Some(u16::from_be_bytes([*a, *b])),
                _ => return Err(Malformed::BadOption),
            },
            55 => append(&mut req.prl, &mut req.prl_len, data),
            12 if req.hostname_len == 0 => {
                let n = data.len().min(63);
                req.hostname[..n].copy_from_slice(&data[..n]);
                req.hostname_len = n as u8;
            }
            82 => append(&mut req.relay, &mut req.relay_len, data),
            93 if req.arch_len == 0 => {
                for pair in data.chunks_exact(2).take(4) {
                    req.arch[req.arch_len as usize] = u16::from_be_bytes([pair[0], pair[1]]);
                    req.arch_len += 1;
                }
            }
            77 if req.user_class_len == 0 => {
                let n = data.len().min(63);
                req.user_class[..n].copy_from_slice(&data[..n]);
                req.user_class_len = n as u8;
            }
            _ => {}
        }
    }
    req.kind = match kind.map(MessageType::from) {
        None => return Err(Malformed::NoMessageType),
        Some(
            t @ (MessageType::Discover
            | MessageType::Request
            | MessageType::Decline
            | MessageType::Release
            | MessageType::Inform),
        ) => t,
        Some(_) => return Err(Malformed::BadMessageType),
    };
    Ok(req)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dhcproto::v4::{DhcpOption, Message, Opcode, OptionCode};
    use dhcproto::{Encodable, Encoder};

    pub(crate) const CLIENT: [u8; 6] = [0x00, 0x12, 0x34, 0x56, 0x78, 0x91];

    /// A client packet built with dhcproto, so the parser is checked against
    /// an independent encoder.
    pub(crate) fn packet(kind: MessageType, mac: [u8; 6], opts: Vec<DhcpOption>) -> Vec<u8> {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_xid(0x1234_5678)
            .set_chaddr(&mac);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        let mut v = Vec::new();
        m.encode(&mut Encoder::new(&mut v)).expect("encode");
        v
    }

    #[test]
    fn reads_what_dhcproto_wrote() {
        let b = packet(
            MessageType::Request,
            CLIENT,
            vec![
                DhcpOption::RequestedIpAddress([192, 168, 1, 101].into()),
                DhcpOption::ServerIdentifier([192, 168, 1, 254].into()),
                DhcpOption::ParameterRequestList(vec![
                    OptionCode::SubnetMask,
                    OptionCode::Router,
                    OptionCode::DomainNameServer,
                ]),
                DhcpOption::MaxMessageSize(1200),
                DhcpOption::Hostname("node1".into()),
            ],
        );
        let r = parse(&b).expect("valid");
        assert_eq!(r.kind, MessageType::Request);
        assert_eq!(r.xid, 0x1234_5678);
        assert_eq!(r.mac, Mac(CLIENT));
        assert_eq!(r.requested_ip, Some([192, 168, 1, 101].into()));
        assert_eq!(r.server_id, Some([192, 168, 1, 254].into()));
        assert_eq!(r.prl(), &[1, 3, 6]);
        assert_eq!(r.max_size, Some(1200));
        assert_eq!(r.hostname(), Some(&b"node1"[..]));
        assert!(!r.broadcast());
    }

    #[test]
    fn rejects_each_kind_of_bad_packet() {
        let good = packet(MessageType::Discover, CLIENT, vec![]);
        assert!(parse(&good).is_ok());
        assert_eq!(parse(&good[..239]).unwrap_err(), Malformed::Truncated);
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(parse(&b).unwrap_err(), Malformed::NotRequest);
        let mut b = good.clone();
        b[2] = 200; // hlen > 16 panics dhcproto's chaddr()
        assert_eq!(parse(&b).unwrap_err(), Malformed::BadHardware);
        let mut b = good.clone();
        b[28] = 0x01; // multicast MAC
        assert_eq!(parse(&b).unwrap_err(), Malformed::BadHardware);
        let mut b = good.clone();
        b[236] = 0;
        assert_eq!(parse(&b).unwrap_err(), Malformed::BadCookie);
        // An option whose length runs past the end.
        let mut b = good[..240].to_vec();
        b.extend_from_slice(&[53, 1, 1, 6, 200, 1, 2]);
        assert_eq!(parse(&b).unwrap_err(), Malformed::BadOption);
        let mut b = good[..240].to_vec();
        b.extend_from_slice(&[53, 2, 1, 1, 255]);
        assert_eq!(parse(&b).unwrap_err(), Malformed::BadOption);
        let mut b = good[..240].to_vec();
        b.extend_from_slice(&[255]);
        assert_eq!(parse(&b).unwrap_err(), Malformed::NoMessageType);
        let offer = packet(MessageType::Offer, CLIENT, vec![]);
        assert_eq!(parse(&offer).unwrap_err(), Malformed::BadMessageType);
    }

    #[test]
    fn repeated_parameter_lists_are_joined() {
        let mut b = packet(MessageType::Discover, CLIENT, vec![]);
        let end = b.iter().rposition(|&x| x == 255).expect("end");
        b.truncate(end);
        b.extend_from_slice(&[55, 2, 1, 3, 55, 1, 6, 255]);
        assert_eq!(parse(&b).expect("valid").prl(), &[1, 3, 6]);
    }
}
