//! `[[host]]` reservations: names, MACs and addresses unique, addresses on the LAN.

use super::Validator;
use super::values::{parse_ipv4, parse_mac, valid_label};
use crate::config::model::*;
use crate::config::raw::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv4Addr;

impl<'a> Validator<'a> {
    /// `None` (and `host_missing` set) when the stream yields a `None`.
    pub(super) fn hosts(
        &mut self,
        raw: impl ExactSizeIterator<Item = Option<S<RawHost>>>,
        private: Option<&PrivateIface>,
    ) -> Option<Vec<Host>> {
        let mut out = Vec::with_capacity(raw.len());
        // First line of each name, MAC and address; u32 keeps the two maps
        // keyed by value at 8 and 12 bytes a slot for 50,000 hosts.
        let mut by_name: HashMap<Cow<'a, str>, u32> = HashMap::with_capacity(raw.len());
        let mut by_mac: HashMap<Mac, u32> = HashMap::with_capacity(raw.len());
        let mut by_ip: HashMap<Ipv4Addr, u32> = HashMap::with_capacity(raw.len());
        for (i, rh) in raw.enumerate() {
            let Some(rh) = rh else {
                self.host_missing = true;
                return None;
            };
            let line = u32::try_from(self.line(&rh.span())).unwrap_or(u32::MAX);
            let h = rh.get_ref();
            let f = |k: &str| format!("host[{i}].{k}");
            let name = h.name.get_ref();
            let name_ok = valid_label(name) && parse_ipv4(name).is_err() && name != "public";
            if !name_ok {
                self.err(
                    h.name.span(),
                    &f("name"),
                    format!("\"{name}\" is not a valid host name"),
                    Some("letters, digits and '-', at most 63, not an address and not \"public\""),
                );
            } else if let Some(first) = by_name.insert(self.as_written(&h.name), line) {
                self.err(
                    h.name.span(),
                    &f("name"),
                    format!("host name \"{name}\" is already used on line {first}"),
                    Some("each [[host]] needs its own name"),
                );
            }
            let mac = match parse_mac(h.mac.get_ref()) {
                Ok(m) => {
                    if let Some(first) = by_mac.insert(m, line) {
                        self.err(
                            h.mac.span(),
                            &f("mac"),
                            format!("MAC {m} is already reserved on line {first}"),
                            Some("a MAC can have only one reservation"),
                        );
                    }
                    Some(m)
                }
                Err(why) => {
                    self.err(
                        h.mac.span(),
                        &f("mac"),
                        format!("\"{}\" is not a MAC address: {why}", h.mac.get_ref()),
                        Some("six hex pairs separated by ':' or '-', e.g. 00:12:34:56:78:91"),
                    );
                    None
                }
            };
            let address = self.ipv4(&h.address, &f("address"));
            if let Some(a) = address {
                if let Some(first) = by_ip.insert(a, line) {
                    self.err(
                        h.address.span(),
                        &f("address"),
                        format!("{a} is already reserved on line {first}"),
                        Some("each reservation needs its own address"),
                    );
                }
                if let Some(p) = private {
                    let net = p.address.trunc();
                    let why = if !net.contains(&a) {
                        Some(format!("{a} is outside the private subnet {net}"))
                    } else if a == net.network() {
                        Some(format!("{a} is the network address of {net}"))
                    } else if a == net.broadcast() {
                        Some(format!("{a} is the broadcast address of {net}"))
                    } else if a == p.address.addr() {
                        Some(format!("{a} is the head node's own address"))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.err(
                            h.address.span(),
                            &f("address"),
                            why,
                            Some(&format!(
                                "pick a free host address in {net} other than {}",
                                p.address.addr()
                            )),
                        );
                    }
                }
            }
            let lease_time = h
                .lease_time
                .as_ref()
                .and_then(|d| self.duration(d, &f("lease_time")));
            let next_server = h
                .next_server
                .as_ref()
                .and_then(|s| self.ipv4(s, &f("next_server")));
            let filename = h
                .filename
                .as_ref()
                .and_then(|s| self.text(s, &f("filename"), 127));
            let dns_servers = h
                .dns_servers
                .as_ref()
                .map(|l| self.addrs(l, &f("dns_servers")));
            let domain_name = h
                .domain_name
                .as_ref()
                .and_then(|s| self.domain(s, &f("domain_name")));
            let boot = self.boot_rules(&h.boot, &f("boot"));
            if let (true, Some(mac), Some(address)) = (name_ok, mac, address) {
                let dhcp = HostDhcp {
                    boot,
                    lease_time,
                    next_server,
                    filename,
                    dns_servers,
                    domain_name,
                };
                out.push(Host {
                    name: name.as_str().into(),
                    mac,
                    address,
                    line,
                    dhcp: (dhcp != HostDhcp::default()).then(|| Box::new(dhcp)),
                });
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};

    /// A `[[host]]` block (the first in a case starts on line 9), with the
    /// line of the key `marked` marked as the one a diagnostic points at.
    fn host(name: &str, mac: &str, address: &str, marked: &str) -> String {
        [("name", name), ("mac", mac), ("address", address)]
            .iter()
            .fold("[[host]]\n".to_string(), |t, (k, v)| {
                let mark = if *k == marked { " # <-" } else { "" };
                format!("{t}{k} = \"{v}\"{mark}\n")
            })
    }

    #[test]
    fn diagnostics() {
        let node1 = host("node1", "00:12:34:56:78:91", "192.168.1.101", "");
        let second =
            |name, mac, address, marked| lan(&(node1.clone() + &host(name, mac, address, marked)));
        let address = |a| lan(&host("node1", "00:12:34:56:78:91", a, "address"));
        check_all(&[
            (
                lan(&host(
                    "node_1",
                    "00:12:34:56:78:91",
                    "192.168.1.101",
                    "name",
                )),
                "host[0].name",
                "\"node_1\" is not a valid host name",
            ),
            (
                second("node1", "00:12:34:56:78:92", "192.168.1.102", "name"),
                "host[1].name",
                "host name \"node1\" is already used on line 9",
            ),
            (
                second("node2", "00:12:34:56:78:91", "192.168.1.102", "mac"),
                "host[1].mac",
                "MAC 00:12:34:56:78:91 is already reserved on line 9",
            ),
            (
                lan(&host("node1", "01:12:34:56:78:91", "192.168.1.101", "mac")),
                "host[0].mac",
                "\"01:12:34:56:78:91\" is not a MAC address: it is a multicast address",
            ),
            (
                second("node2", "00:12:34:56:78:92", "192.168.1.101", "address"),
                "host[1].address",
                "192.168.1.101 is already reserved on line 9",
            ),
            (
                address("10.0.0.1"),
                "host[0].address",
                "10.0.0.1 is outside the private subnet 192.168.1.0/24",
            ),
            (
                address("192.168.1.0"),
                "host[0].address",
                "192.168.1.0 is the network address of 192.168.1.0/24",
            ),
            (
                address("192.168.1.255"),
                "host[0].address",
                "192.168.1.255 is the broadcast address of 192.168.1.0/24",
            ),
            (
                address("192.168.1.254"),
                "host[0].address",
                "192.168.1.254 is the head node's own address",
            ),
        ]);
    }
}
