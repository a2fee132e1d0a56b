//! What the box's network looks like right now, read over rtnetlink: links,
//! IPv4 addresses and the default route.
//!
//! `read` is the only function that talks to the kernel (three dumps on a
//! one-shot neli router); everything else works on the [`Snapshot`] it
//! returns, so the decisions built on it (`headnode init`'s interface choice,
//! `status`'s view) are pure and unit-tested.

use crate::config::Config;
use crate::config::model::Mac;
use ipnet::Ipv4Net;
use neli::{
    FromBytesWithInput, Size, ToBytes,
    consts::{
        nl::NlmF,
        rtnl::{
            Arphrd, Ifa, IfaF, Iff, Ifla, RtAddrFamily, RtScope, RtTable, Rta, Rtm, Rtn, Rtprot,
        },
        socket::NlFamily,
    },
    nl::NlPayload,
    router::synchronous::NlRouter,
    rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder, Rtmsg, RtmsgBuilder},
    utils::Groups,
};
use serde::Serialize;
use std::fmt::Debug;
use std::net::Ipv4Addr;

/// The main routing table's id (RT_TABLE_MAIN); tables above 255 only come as RTA_TABLE.
const MAIN_TABLE: u32 = 254;

#[derive(Debug, thiserror::Error)]
pub enum NetinfoError {
    #[error("cannot open an rtnetlink socket: {0}")]
    Connect(String),
    #[error("reading {what} over rtnetlink failed: {reason}")]
    Dump { what: &'static str, reason: String },
    #[error("reading interfaces over rtnetlink: {0}")]
    Deadline(#[from] crate::deadline::Missed),
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The link has carrier (IFF_LOWER_UP).
    pub carrier: bool,
    pub loopback: bool,
    /// Hardware address; `None` for links without an Ethernet-style one (lo, tun, ppp).
    pub mac: Option<Mac>,
}

/// An IPv4 address on an interface, with its prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    pub net: Ipv4Net,
    /// A secondary address (another one in the same subnet came first).
    pub secondary: bool,
    /// Assigned with a lifetime (DHCP, SLAAC-like tools), so it may change.
    pub dynamic: bool,
}

/// The default IPv4 route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DefaultRoute {
    pub gateway: Option<Ipv4Addr>,
    /// Index of the outgoing interface.
    pub oif: u32,
    pub metric: u32,
}

/// Links, IPv4 addresses and the default route, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub addrs: Vec<Address>,
    /// The default route with the lowest metric, if any.
    pub default_route: Option<DefaultRoute>,
}

impl Snapshot {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    /// IPv4 addresses of one interface, primary ones first, in kernel order otherwise.
    pub fn addrs_of(&self, index: u32) -> Vec<&Address> {
        let mut v: Vec<&Address> = self.addrs.iter().filter(|a| a.index == index).collect();
        v.sort_by_key(|a| a.secondary);
        v
    }

    /// The interface's main IPv4 address: its first primary one.
    pub fn primary_ipv4(&self, index: u32) -> Option<&Address> {
        self.addrs_of(index).into_iter().next()
    }

    /// The main IPv4 address of the interface called `name`.
    pub fn ipv4_of(&self, name: &str) -> Option<Ipv4Net> {
        let link = self.link(name)?;
        self.primary_ipv4(link.index).map(|a| a.net)
    }

    /// The interface holding the default route.
    pub fn default_link(&self) -> Option<&Link> {
        self.default_route.and_then(|r| self.link_by_index(r.oif))
    }

    /// The interface that has `ip` as one of its addresses.
    pub fn link_with_ip(&self, ip: Ipv4Addr) -> Option<&Link> {
        let a = self.addrs.iter().find(|a| a.net.addr() == ip)?;
        self.link_by_index(a.index)
    }
}

/// One interface as `headnode status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IfaceView {
    pub name: String,
    pub index: u32,
    pub up: bool,
    pub carrier: bool,
    pub loopback: bool,
    pub mac: Option<Mac>,
    /// Primary address first.
    pub ipv4: Vec<Ipv4Net>,
    /// This interface holds the default route.
    pub default_route: bool,
    /// The default route's gateway, on the interface that holds it.
    pub gateway: Option<Ipv4Addr>,
}

/// Every interface with its addresses and default-route role, in index order.
pub fn summary(snap: &Snapshot) -> Vec<IfaceView> {
    let mut links: Vec<&Link> = snap.links.iter().collect();
    links.sort_by_key(|l| l.index);
    links
        .into_iter()
        .map(|l| {
            let route = snap.default_route.filter(|r| r.oif == l.index);
            IfaceView {
                name: l.name.clone(),
                index: l.index,
                up: l.up,
                carrier: l.carrier,
                loopback: l.loopback,
                mac: l.mac,
                ipv4: snap.addrs_of(l.index).iter().map(|a| a.net).collect(),
                default_route: route.is_some(),
                gateway: route.and_then(|r| r.gateway),
            }
        })
        .collect()
}

/// The interface table of `headnode status`: one line per interface, e.g.
/// `eth1  up  52:54:00:12:34:56  203.0.113.210/24  default via 203.0.113.253`.
pub fn format_summary(views: &[IfaceView]) -> String {
    let rows: Vec<[String; 5]> = views
        .iter()
        .map(|v| {
            let state = match (v.up, v.carrier) {
                (false, _) => "down",
                (true, false) if !v.loopback => "up, no carrier",
                (true, _) => "up",
            };
            let addrs: Vec<String> = v.ipv4.iter().map(|a| a.to_string()).collect();
            let route = match (v.default_route, v.gateway) {
                (true, Some(g)) => format!("default via {g}"),
                (true, None) => "default".to_string(),
                (false, _) => String::new(),
            };
            [
                v.name.clone(),
                state.to_string(),
                v.mac.map_or("-".to_string(), |m| m.to_string()),
                if addrs.is_empty() {
                    "-".into()
                } else {
                    addrs.join(" ")
                },
                route,
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2), width(3)];
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (cell, w) in r.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&r[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Where the live interfaces disagree with the config, one sentence each, for
/// `status` (and as a preflight before apply or DHCP). Empty when all is well.
pub fn problems(cfg: &Config, snap: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let sides = [
        ("public", cfg.public.name.as_str(), cfg.public.address),
        (
            "private",
            cfg.private.name.as_str(),
            Some(cfg.private.address),
        ),
    ];
    for (side, name, want) in sides {
        let Some(link) = snap.link(name) else {
            out.push(format!("the {side} interface {name} does not exist"));
            continue;
        };
        if !link.up {
            out.push(format!("the {side} interface {name} is down"));
        } else if !link.carrier {
            out.push(format!(
                "the {side} interface {name} has no carrier (cable, peer down?)"
            ));
        }
        let have: Vec<Ipv4Net> = snap.addrs_of(link.index).iter().map(|a| a.net).collect();
        match want {
            Some(w) if !have.contains(&w) => out.push(format!(
                "the {side} interface {name} should have {w} but has {}",
                if have.is_empty() {
                    "no IPv4 address".to_string()
                } else {
                    have.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            None if have.is_empty() => out.push(format!(
                "the {side} interface {name} has no IPv4 address to use for address = \"auto\""
            )),
            _ => {}
        }
    }
    match (snap.default_route, snap.default_link()) {
        (None, _) => out.push("there is no IPv4 default route".to_string()),
        (Some(r), Some(l)) if l.name == cfg.private.name => out.push(format!(
            "the default route leaves through the private interface {}{}",
            l.name,
            r.gateway.map_or(String::new(), |g| format!(" (via {g})"))
        )),
        (Some(r), _) => {
            if let (Some(want), Some(have)) = (cfg.public.gateway, r.gateway)
                && want != have
            {
                out.push(format!(
                    "the config's public gateway is {want} but the default route goes via {have}"
                ));
            }
        }
    }
    out
}

/// The main IPv4 address of interface `ifname` as the kernel has it now.
/// `None` when the interface does not exist, has no IPv4 address, or
/// rtnetlink cannot be read (that failure is logged).
pub fn ipv4_of(ifname: &str) -> Option<Ipv4Net> {
    match read() {
        Ok(snap) => snap.ipv4_of(ifname),
        Err(e) => {
            tracing::warn!("cannot read the address of {ifname}: {e}");
            None
        }
    }
}

/// How long reading the interfaces may take: a few ms on any box.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Read links, IPv4 addresses and the default route of the current network
/// namespace, within `READ_DEADLINE`.
pub fn read() -> Result<Snapshot, NetinfoError> {
    crate::deadline::within(READ_DEADLINE, read_now)?
}

fn read_now() -> Result<Snapshot, NetinfoError> {
    let (router, _) = NlRouter::connect(NlFamily::Route, None, Groups::empty())
        .map_err(|e| NetinfoError::Connect(e.to_string()))?;
    // Best effort: with extended acks a rejected dump says why; old kernels lack it.
    let _ = router.enable_ext_ack(true);

    let mut links = Vec::new();
    // Every header field zero: a kernel with strict checking rejects filters it does
    // not support (Arphrd::None is 0xfffe, not 0).
    let req = IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .ifi_type(Arphrd::Netrom)
        .build()
        .map_err(|e| dump_err("links", e))?;
    dump(&router, Rtm::Getlink, req, "links", |m: &Ifinfomsg| {
        if let Some(l) = parse_link(m) {
            links.push(l);
        }
    })?;

    let mut addrs = Vec::new();
    let req = IfaddrmsgBuilder::default()
        .ifa_family(RtAddrFamily::Inet)
        .ifa_prefixlen(0)
        .ifa_scope(RtScope::Universe)
        .ifa_index(0)
        .build()
        .map_err(|e| dump_err("addresses", e))?;
    dump(&router, Rtm::Getaddr, req, "addresses", |m: &Ifaddrmsg| {
        if let Some(a) = parse_addr(m) {
            addrs.push(a);
        }
    })?;

    let mut routes = Vec::new();
    let req = RtmsgBuilder::default()
        .rtm_family(RtAddrFamily::Inet)
        .rtm_dst_len(0)
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::Unspec)
        .rtm_protocol(Rtprot::Unspec)
        .rtm_scope(RtScope::Universe)
        .rtm_type(Rtn::Unspec)
        .build()
        .map_err(|e| dump_err("routes", e))?;
    dump(&router, Rtm::Getroute, req, "routes", |m: &Rtmsg| {
        if let Some(r) = parse_default_route(m) {
            routes.push(r);
        }
    })?;
    let default_route = routes.into_iter().min_by_key(|r| r.metric);

    Ok(Snapshot {
        links,
        addrs,
        default_route,
    })
}

fn dump_err(what: &'static str, e: impl std::fmt::Display) -> NetinfoError {
    NetinfoError::Dump {
        what,
        reason: e.to_string(),
    }
}

/// Send one dump request and hand every answer to `each`. A dump the kernel
/// rejects ends with an errno in NLMSG_DONE, which neli returns as an `Ok`
/// message carrying `DumpExtAck`; that is turned into an error here.
fn dump<P>(
    router: &NlRouter,
    kind: Rtm,
    request: P,
    what: &'static str,
    mut each: impl FnMut(&P),
) -> Result<(), NetinfoError>
where
    P: Size + ToBytes + FromBytesWithInput<Input = usize> + Debug,
{
    let recv = router
        .send::<Rtm, P, Rtm, P>(kind, NlmF::DUMP, NlPayload::Payload(request))
        .map_err(|e| dump_err(what, e))?;
    for msg in recv {
        let msg = msg.map_err(|e| dump_err(what, e))?;
        match msg.nl_payload() {
            NlPayload::Payload(p) => each(p),
            NlPayload::DumpExtAck(e) if *e.error() != 0 => {
                return Err(dump_err(
                    what,
                    std::io::Error::from_raw_os_error(-*e.error()),
                ));
            }
            NlPayload::Err(e) => return Err(dump_err(what, e)),
            NlPayload::DumpExtAck(_) | NlPayload::Ack(_) | NlPayload::Empty => {}
        }
    }
    Ok(())
}

fn parse_link(m: &Ifinfomsg) -> Option<Link> {
    let attrs = m.rtattrs().get_attr_handle();
    let name = attrs
        .get_attr_payload_as_with_len::<String>(Ifla::Ifname)
        .ok()?;
    let mac = attrs
        .get_attribute(Ifla::Address)
        .and_then(|a| <[u8; 6]>::try_from(a.rta_payload().as_ref()).ok())
        // lo reports 00:00:00:00:00:00, which is no hardware address.
        .filter(|b| b.iter().any(|x| *x != 0))
        .map(Mac);
    let flags = m.ifi_flags();
    Some(Link {
        index: u32::try_from(*m.ifi_index()).ok()?,
        name,
        up: flags.contains(Iff::UP),
        carrier: flags.contains(Iff::LOWERUP),
        loopback: flags.contains(Iff::LOOPBACK),
        mac,
    })
}

fn parse_addr(m: &Ifaddrmsg) -> Option<Address> {
    if *m.ifa_family() != RtAddrFamily::Inet {
        return None;
    }
    let attrs = m.rtattrs().get_attr_handle();
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on
    // point-to-point links and equal to IFA_LOCAL elsewhere.
    let raw = attrs
        .get_attribute(Ifa::Local)
        .or_else(|| attrs.get_attribute(Ifa::Address))?;
    let octets = <[u8; 4]>::try_from(raw.rta_payload().as_ref()).ok()?;
    let net = Ipv4Net::new(Ipv4Addr::from(octets), *m.ifa_prefixlen()).ok()?;
    // IFA_FLAGS (u32) supersedes the 8-bit header field when present.
    let flags = attrs
        .get_attr_payload_as::<u32>(Ifa::Flags)
        .unwrap_or_else(|_| u32::from(u8::from(*m.ifa_flags())));
    Some(Address {
        index: *m.ifa_index(),
        net,
        secondary: flags & u32::from(u8::from(IfaF::SECONDARY)) != 0,
        dynamic: flags & u32::from(u8::from(IfaF::PERMANENT)) == 0,
    })
}

fn parse_default_route(m: &Rtmsg) -> Option<DefaultRoute> {
    if *m.rtm_family() != RtAddrFamily::Inet
        || *m.rtm_dst_len() != 0
        || *m.rtm_type() != Rtn::Unicast
    {
        return None;
    }
    let attrs = m.rtattrs().get_attr_handle();
    let table = attrs
        .get_attr_payload_as::<u32>(Rta::Table)
        .unwrap_or_else(|_| u32::from(u8::from(*m.rtm_table())));
    if table != MAIN_TABLE {
        return None;
    }
    let gateway = attrs
        .get_attribute(Rta::Gateway)
        .and_then(|a| ipv4_bytes(a.rta_payload().as_ref()));
    let oif = attrs.get_attr_payload_as::<u32>(Rta::Oif).ok();
    let metric = attrs.get_attr_payload_as::<u32>(Rta::Priority).unwrap_or(0);
    let (oif, gateway) = match oif {
        Some(oif) => (oif, gateway),
        // An ECMP default route has no RTA_OIF; its first next hop stands for it.
        None => {
            let mp = attrs.get_attribute(Rta::Multipath)?;
            first_nexthop(mp.rta_payload().as_ref())?
        }
    };
    Some(DefaultRoute {
        gateway,
        oif,
        metric,
    })
}

fn ipv4_bytes(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

/// Interface index and gateway of the first `struct rtnexthop` in an
/// RTA_MULTIPATH payload: {u16 len, u8 flags, u8 hops, i32 ifindex} then attributes.
fn first_nexthop(b: &[u8]) -> Option<(u32, Option<Ipv4Addr>)> {
    let len = usize::from(u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?));
    let ifindex = u32::try_from(i32::from_ne_bytes(b.get(4..8)?.try_into().ok()?)).ok()?;
    let mut attrs = b.get(8..len.min(b.len()))?;
    let mut gateway = None;
    while attrs.len() >= 4 {
        let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let atype = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if alen < 4 || alen > attrs.len() {
            break;
        }
        if atype == u16::from(Rta::Gateway) {
            gateway = ipv4_bytes(&attrs[4..alen]);
        }
        attrs = attrs.get(alen.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Some((ifindex, gateway))
}

/// Links and addresses for unit tests here and in `commands::init`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Address, DefaultRoute, Link, Snapshot};
    use std::net::Ipv4Addr;

    /// The origin box: lo, eth1 public with the default route via
    /// 203.0.113.253, eth0 on 192.168.1.254/24.
    pub(crate) fn origin_box() -> Snapshot {
        Snapshot {
            links: vec![
                link(1, "lo", true),
                link(2, "eth0", true),
                link(3, "eth1", true),
            ],
            addrs: vec![
                addr(1, "127.0.0.1/8", false),
                addr(2, "192.168.1.254/24", false),
                addr(3, "203.0.113.210/24", false),
            ],
            default_route: Some(DefaultRoute {
                gateway: Some(Ipv4Addr::new(203, 0, 113, 253)),
                oif: 3,
                metric: 0,
            }),
        }
    }

    pub(crate) fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            up,
            carrier: up,
            loopback: name == "lo",
            mac: None,
        }
    }

    pub(crate) fn addr(index: u32, net: &str, secondary: bool) -> Address {
        Address {
            index,
            net: net.parse().unwrap(),
            secondary,
            dynamic: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{addr, link, origin_box};
    use super::*;

    #[test]
    fn primary_address_comes_before_secondary() {
        let snap = Snapshot {
            links: vec![link(2, "eth0", true)],
            addrs: vec![
                addr(2, "192.168.1.10/24", true),
                addr(2, "192.168.1.254/24", false),
            ],
            default_route: None,
        };
        assert_eq!(
            snap.ipv4_of("eth0"),
            Some("192.168.1.254/24".parse().unwrap())
        );
        assert_eq!(snap.ipv4_of("eth9"), None);
    }

    #[test]
    fn summary_marks_the_default_route_interface() {
        let snap = Snapshot {
            links: vec![
                link(3, "eth1", true),
                link(1, "lo", true),
                link(2, "eth0", false),
            ],
            addrs: vec![addr(3, "203.0.113.210/24", false)],
            default_route: Some(DefaultRoute {
                gateway: Some(Ipv4Addr::new(203, 0, 113, 253)),
                oif: 3,
                metric: 0,
            }),
        };
        let v = summary(&snap);
        let names: Vec<&str> = v.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "eth1"]);
        assert!(v[2].default_route);
        assert_eq!(v[2].gateway, Some(Ipv4Addr::new(203, 0, 113, 253)));
        assert!(!v[1].default_route && !v[1].up);
        assert!(v[0].loopback);
    }

    #[test]
    fn summary_table_lines_up() {
        // The origin box, eth0 without carrier, eth1 with a MAC and a
        // secondary address, and a down eth2.
        let mut snap = origin_box();
        snap.links[1].carrier = false;
        snap.links[2].mac = Some(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        snap.links.push(link(4, "eth2", false));
        snap.addrs.push(addr(3, "203.0.113.211/24", true));
        assert_eq!(
            format_summary(&summary(&snap)),
            "lo    up              -                  127.0.0.1/8\n\
             eth0  up, no carrier  -                  192.168.1.254/24\n\
             eth1  up              52:54:00:12:34:56  203.0.113.210/24 203.0.113.211/24  default via 203.0.113.253\n\
             eth2  down            -                  -\n"
        );
    }

    fn origin_config() -> Config {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin/headnode.toml");
        crate::config::load(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn no_problems_when_the_box_matches_the_config() {
        assert_eq!(
            problems(&origin_config(), &origin_box()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn problems_name_interface_and_difference() {
        let cfg = origin_config();
        let mut snap = origin_box();
        snap.links[1].carrier = false;
        snap.addrs[1] = addr(2, "10.0.0.1/24", false); // eth0 (lo is [0])
        snap.links.retain(|l| l.name != "eth1");
        snap.default_route = Some(DefaultRoute {
            gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
            oif: 2,
            metric: 0,
        });
        assert_eq!(
            problems(&cfg, &snap),
            [
                "the public interface eth1 does not exist",
                "the private interface eth0 has no carrier (cable, peer down?)",
                "the private interface eth0 should have 192.168.1.254/24 but has 10.0.0.1/24",
                "the default route leaves through the private interface eth0 (via 10.0.0.254)",
            ]
        );
        let mut snap = origin_box();
        snap.default_route = snap.default_route.map(|mut r| {
            r.gateway = Some(Ipv4Addr::new(203, 0, 113, 1));
            r
        });
        snap.links[1].up = false;
        assert_eq!(
            problems(&cfg, &snap),
            [
                "the private interface eth0 is down",
                "the config's public gateway is 203.0.113.253 but the default route goes via 203.0.113.1",
            ]
        );
    }

    #[test]
    fn first_nexthop_reads_ifindex_and_gateway() {
        // rtnexthop {len 16, flags 0, hops 0, ifindex 7} + RTA_GATEWAY 192.0.2.1,
        // then a second hop that must be ignored.
        let mut b = Vec::new();
        b.extend_from_slice(&16u16.to_ne_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&7i32.to_ne_bytes());
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&u16::from(Rta::Gateway).to_ne_bytes());
        b.extend_from_slice(&[192, 0, 2, 1]);
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&9i32.to_ne_bytes());
        assert_eq!(
            first_nexthop(&b),
            Some((7, Some(Ipv4Addr::new(192, 0, 2, 1))))
        );
        assert_eq!(first_nexthop(&b[..6]), None);
    }
}
