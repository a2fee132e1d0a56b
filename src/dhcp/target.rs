//! Where a reply goes: RFC 2131 §4.1, as a pure decision. The socket layer
//! carries it out.

use crate::config::model::Mac;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// To the relay agent's address, server port 67.
    Relay(Ipv4Addr),
    /// To a configured client's address, client port 68.
    Client(Ipv4Addr),
    /// To 255.255.255.255:68 on the private interface.
    Broadcast,
    /// To `ip`:68, delivered to `mac` without ARP (the client has no address yet).
    Hardware { mac: Mac, ip: Ipv4Addr },
}

/// RFC 2131 §4.1:
/// "If the 'giaddr' field in a DHCP message from a client is non-zero, the
/// server sends any return messages to the 'DHCP server' port on the BOOTP
/// relay agent whose address appears in 'giaddr'. If the 'giaddr' field is
/// zero and the 'ciaddr' field is nonzero, then the server unicasts DHCPOFFER
/// and DHCPACK messages to the address in 'ciaddr'. If 'giaddr' is zero and
/// 'ciaddr' is zero, and the broadcast bit is set, then the server broadcasts
/// DHCPOFFER and DHCPACK messages to 0xffffffff. If the broadcast bit is not
/// set and 'giaddr' is zero and 'ciaddr' is zero, then the server unicasts
/// DHCPOFFER and DHCPACK messages to the client's hardware address and
/// 'yiaddr' address. In all cases, when 'giaddr' is zero, the server
/// broadcasts any DHCPNAK messages to 0xffffffff."
pub fn reply_target(
    giaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
    broadcast: bool,
    nak: bool,
    mac: Mac,
    yiaddr: Ipv4Addr,
) -> Target {
    if !giaddr.is_unspecified() {
        Target::Relay(giaddr)
    } else if nak {
        Target::Broadcast
    } else if !ciaddr.is_unspecified() {
        Target::Client(ciaddr)
    } else if broadcast || yiaddr.is_unspecified() {
        Target::Broadcast
    } else {
        Target::Hardware { mac, ip: yiaddr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0, 0x12, 0x34, 0x56, 0x78, 0x91]);
    const NONE: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const RELAY: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    const CI: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 101);
    const YI: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 102);

    #[test]
    fn follows_rfc2131_section_4_1_in_order() {
        assert_eq!(
            reply_target(RELAY, CI, true, true, MAC, YI),
            Target::Relay(RELAY),
            "giaddr wins over everything, NAKs included"
        );
        assert_eq!(
            reply_target(NONE, CI, false, true, MAC, YI),
            Target::Broadcast
        );
        assert_eq!(
            reply_target(NONE, CI, true, false, MAC, YI),
            Target::Client(CI)
        );
        assert_eq!(
            reply_target(NONE, NONE, true, false, MAC, YI),
            Target::Broadcast
        );
        assert_eq!(
            reply_target(NONE, NONE, false, false, MAC, YI),
            Target::Hardware { mac: MAC, ip: YI }
        );
    }
}
