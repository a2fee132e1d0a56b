//! What the server hands out, computed once from the config: the option
//! values already in wire form, reservations in a hash map by MAC. Replies
//! then only copy bytes, whatever the number of reservations.

use crate::config::Config;
use crate::config::model::{Boot, Host, HostDhcp, Mac, Pool};
use crate::dhcp::request::Request;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Option 12: a reservation's name.
pub const HOSTNAME: u8 = 12;

/// Option values in wire form, looked up by code. Small (a dozen entries),
/// so a sorted vector beats any map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionSet {
    values: Vec<(u8, Box<[u8]>)>,
}

impl OptionSet {
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| &v[..])
    }
    fn set(&mut self, code: u8, value: Vec<u8>) {
        match self.values.binary_search_by_key(&code, |(c, _)| *c) {
            Ok(i) => self.values[i].1 = value.into(),
            Err(i) => self.values.insert(i, (code, value.into())),
        }
    }
    pub fn codes(&self) -> impl Iterator<Item = u8> + '_ {
        self.values.iter().map(|(c, _)| *c)
    }
}

/// One `[[host]]`, ready to answer. 32 bytes, so 50,000 of them fit in a
/// couple of megabytes: the per-host settings few reservations have are boxed.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub name: Box<str>,
    pub address: Ipv4Addr,
    own: Option<Box<HostWire>>,
}

/// A reservation's own settings, in wire form.
#[derive(Debug, Clone, Default)]
struct HostWire {
    lease_time: Option<u32>,
    /// DNS, domain, PXE; the host name (option 12) is `Reservation::name`.
    options: OptionSet,
    siaddr: Option<Ipv4Addr>,
    file: Option<Box<[u8]>>,
    boot: Vec<BootRule>,
}

/// A `[[dhcp.boot]]` rule, ready to match a request.
#[derive(Debug, Clone)]
pub struct BootRule {
    arch: Box<[u16]>,
    user_class: Option<Box<[u8]>>,
    pub siaddr: Option<Ipv4Addr>,
    pub file: Box<[u8]>,
    /// Option 66 for `siaddr`, in wire form.
    pub server_name: Option<Box<[u8]>>,
}

impl BootRule {
    fn new(b: &Boot) -> BootRule {
        BootRule {
            arch: b.arch.clone().into(),
            user_class: b.user_class.as_ref().map(|u| u.as_bytes().into()),
            siaddr: b.next_server,
            file: b.filename.as_bytes().into(),
            server_name: b.next_server.map(|a| a.to_string().into_bytes().into()),
        }
    }

    fn matches(&self, req: &Request) -> bool {
        (self.arch.is_empty() || req.arch().iter().any(|a| self.arch.contains(a)))
            && self
                .user_class
                .as_ref()
                .is_none_or(|u| req.has_user_class(u))
    }
}

static NO_OPTIONS: OptionSet = OptionSet { values: Vec::new() };

#[derive(Debug, Clone)]
pub struct Tables {
    pub interface: String,
    pub server_ip: Ipv4Addr,
    pub net: Ipv4Net,
    pub lease_time: u32,
    pub max_lease_time: u32,
    pub pool: Option<Pool>,
    /// With `[ha]`: the half of the pool the other head node leases from.
    pub peer_pool: Option<Pool>,
    pub options: OptionSet,
    pub siaddr: Ipv4Addr,
    pub file: Option<Box<[u8]>>,
    pub boot: Vec<BootRule>,
    pub hosts: HashMap<Mac, Reservation>,
    /// Reserved address → MAC, to keep the pool off reserved addresses.
    pub reserved: HashMap<Ipv4Addr, Mac>,
}

/// Seconds for the wire, saturating below 0xffffffff ("infinite").
fn secs(d: Duration) -> u32 {
    d.as_secs().min(u64::from(u32::MAX - 1)) as u32
}

fn addrs(list: &[Ipv4Addr]) -> Vec<u8> {
    list.iter().flat_map(|a| a.octets()).collect()
}

/// RFC 1035 name encoding without compression (RFC 3397 allows it, and
/// clients must accept the uncompressed form).
fn dns_names(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        for label in n.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    out
}

impl Tables {
    pub fn new(cfg: &Config) -> Tables {
        let d = &cfg.dhcp;
        let net = cfg.private.address;
        let mut options = OptionSet::default();
        options.set(1, net.netmask().octets().to_vec());
        options.set(28, net.broadcast().octets().to_vec());
        if !d.routers.is_empty() {
            options.set(3, addrs(&d.routers));
        }
        if !d.dns_servers.is_empty() {
            options.set(6, addrs(&d.dns_servers));
        }
        if let Some(n) = &d.domain_name {
            options.set(15, n.as_bytes().to_vec());
        }
        if !d.ntp_servers.is_empty() {
            options.set(42, addrs(&d.ntp_servers));
        }
        if !d.domain_search.is_empty() {
            options.set(119, dns_names(&d.domain_search));
        }
        if let Some(ns) = d.next_server {
            options.set(66, ns.to_string().into_bytes());
        }
        if let Some(f) = &d.filename {
            options.set(67, f.as_bytes().to_vec());
        }
        let hosts: HashMap<Mac, Reservation> = cfg
            .hosts
            .iter()
            .map(|h| (h.mac, Reservation::new(h)))
            .collect();
        let reserved = cfg.hosts.iter().map(|h| (h.address, h.mac)).collect();
        // With [ha] each node leases from its half; the other half is the peer's.
        let (pool, peer_pool) = cfg.pool_halves();
        Tables {
            interface: cfg.private.name.clone(),
            server_ip: cfg.private_ip(),
            net: net.trunc(),
            lease_time: secs(d.lease_time),
            max_lease_time: secs(d.max_lease_time),
            pool,
            peer_pool,
            options,
            siaddr: d.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED),
            file: d.filename.as_ref().map(|f| f.as_bytes().into()),
            boot: d.boot.iter().map(BootRule::new).collect(),
            hosts,
            reserved,
        }
    }

    /// The value of `code` for this client: its reservation's first.
    pub fn option<'a>(&'a self, host: Option<&'a Reservation>, code: u8) -> Option<&'a [u8]> {
        match host {
            Some(h) if code == HOSTNAME => Some(h.name.as_bytes()),
            Some(h) => h.options().get(code).or_else(|| self.options.get(code)),
            None => self.options.get(code),
        }
    }

    /// The boot rule for this request: the host's first match, else (when
    /// the host names no file of its own) the first global match.
    pub fn boot_for<'a>(
        &'a self,
        host: Option<&'a Reservation>,
        req: &Request,
    ) -> Option<&'a BootRule> {
        let own = host.and_then(|h| h.own.as_deref());
        if let Some(o) = own {
            if let Some(b) = o.boot.iter().find(|b| b.matches(req)) {
                return Some(b);
            }
            if o.file.is_some() {
                return None;
            }
        }
        self.boot.iter().find(|b| b.matches(req))
    }

    /// Lease time for a client that asked for `asked` seconds (option 51).
    pub fn lease_for(&self, host: Option<&Reservation>, asked: Option<u32>) -> u32 {
        let default = host
            .and_then(Reservation::lease_time)
            .unwrap_or(self.lease_time);
        match asked {
            // Below a minute clients renew in a storm; above the cap is not ours to give.
            Some(a) => a.clamp(60.min(default), self.max_lease_time.max(default)),
            None => default,
        }
    }

    /// Is `ip` a host address of the LAN: inside it, and neither its
    /// network nor its broadcast address (a /31 or /32 has no such two)?
    pub fn lan_unicast(&self, ip: Ipv4Addr) -> bool {
        self.net.contains(&ip)
            && (self.net.prefix_len() >= 31
                || (ip != self.net.network() && ip != self.net.broadcast()))
    }

    /// May the pool hand out `ip`? (In the pool, not reserved, not ours.)
    pub fn poolable(&self, ip: Ipv4Addr) -> bool {
        self.pool.is_some_and(|p| p.contains(ip))
            && ip != self.server_ip
            && !self.reserved.contains_key(&ip)
    }
}

impl Reservation {
    fn new(h: &Host) -> Reservation {
        Reservation {
            name: h.name.clone(),
            address: h.address,
            own: h.dhcp.as_deref().map(|d| Box::new(HostWire::new(d))),
        }
    }
    pub fn lease_time(&self) -> Option<u32> {
        self.own.as_ref().and_then(|o| o.lease_time)
    }
    /// Per-host option values that win over the globals.
    pub fn options(&self) -> &OptionSet {
        self.own.as_ref().map_or(&NO_OPTIONS, |o| &o.options)
    }
    pub fn siaddr(&self) -> Option<Ipv4Addr> {
        self.own.as_ref().and_then(|o| o.siaddr)
    }
    pub fn file(&self) -> Option<&[u8]> {
        self.own.as_ref().and_then(|o| o.file.as_deref())
    }
}

impl HostWire {
    fn new(h: &HostDhcp) -> HostWire {
        let mut options = OptionSet::default();
        if let Some(dns) = &h.dns_servers {
            options.set(6, addrs(dns));
        }
        if let Some(n) = &h.domain_name {
            options.set(15, n.as_bytes().to_vec());
        }
        if let Some(ns) = h.next_server {
            options.set(66, ns.to_string().into_bytes());
        }
        if let Some(f) = &h.filename {
            options.set(67, f.as_bytes().to_vec());
        }
        HostWire {
            lease_time: h.lease_time.map(secs),
            options,
            siaddr: h.next_server,
            file: h.filename.as_ref().map(|f| f.as_bytes().into()),
            boot: h.boot.iter().map(BootRule::new).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_search_is_rfc1035_encoded() {
        let v = dns_names(&["a.example.com".into(), "b.org.".into()]);
        assert_eq!(
            v,
            b"\x01a\x07example\x03com\x00\x01b\x03org\x00".to_vec(),
            "labels with length prefixes, each name ends with the root"
        );
    }
}
