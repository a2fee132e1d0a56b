//! `[interfaces.public]` and `[interfaces.private]`.

use super::Validator;
use crate::config::model::*;
use crate::config::raw::*;
use std::net::Ipv6Addr;
use std::str::FromStr;

impl Validator<'_> {
    pub(super) fn interfaces(
        &mut self,
        raw: &RawInterfaces,
    ) -> (Option<PublicIface>, Option<PrivateIface>) {
        let p = raw.public.get_ref();
        let q = raw.private.get_ref();
        let pub_name = self.ifname(&p.name, "interfaces.public.name");
        let priv_name = self.ifname(&q.name, "interfaces.private.name");
        if let (Some(a), Some(b)) = (&pub_name, &priv_name)
            && a == b
        {
            self.err(
                q.name.span(),
                "interfaces.private.name",
                format!("\"{b}\" is also the public interface"),
                Some("the private LAN must be a different interface from the public one"),
            );
        }
        let mut pub_ok = true;
        let address = match &p.address {
            None => None,
            Some(s) if s.get_ref() == "auto" => None,
            Some(s) => {
                let a = self.ipv4_iface(s, "interfaces.public.address");
                pub_ok &= a.is_some();
                a
            }
        };
        let gateway = p.gateway.as_ref().and_then(|g| {
            let a = self.ipv4(g, "interfaces.public.gateway");
            pub_ok &= a.is_some();
            a
        });
        let address6 = p.address6.as_ref().and_then(|s| {
            let t = s.get_ref();
            let a = Ipv6Addr::from_str(t.split('/').next().unwrap_or(t)).ok();
            if a.is_none() {
                pub_ok = false;
                self.err(
                    s.span(),
                    "interfaces.public.address6",
                    format!("\"{t}\" is not an IPv6 address"),
                    Some("e.g. 2001:db8::10"),
                );
            }
            a
        });
        let priv_addr = self.ipv4_iface(&q.address, "interfaces.private.address");
        if let Some(pa) = priv_addr {
            if pa.prefix_len() > 30 {
                self.err(
                    q.address.span(),
                    "interfaces.private.address",
                    format!("a /{} leaves no room for cluster nodes", pa.prefix_len()),
                    Some("use a LAN prefix of /30 or shorter, e.g. /24"),
                );
            } else if pa.addr() == pa.network() || pa.addr() == pa.broadcast() {
                self.err(
                    q.address.span(),
                    "interfaces.private.address",
                    format!(
                        "{} is the network or broadcast address of {}",
                        pa.addr(),
                        pa.trunc()
                    ),
                    Some("give the head node a host address, e.g. the last usable one"),
                );
            }
            if let Some(pu) = address
                && (pa.trunc().contains(&pu.addr()) || pu.trunc().contains(&pa.addr()))
            {
                self.err(
                    q.address.span(),
                    "interfaces.private.address",
                    format!("{} overlaps the public network {}", pa.trunc(), pu.trunc()),
                    Some("the private LAN needs its own subnet"),
                );
            }
        }
        let public = match (pub_name, pub_ok) {
            (Some(name), true) => Some(PublicIface {
                name,
                address,
                gateway,
                address6,
            }),
            _ => None,
        };
        let private = match (priv_name, priv_addr) {
            (Some(name), Some(address)) => Some(PrivateIface { name, address }),
            _ => None,
        };
        (public, private)
    }

    pub(super) fn ifname(&mut self, s: &S<String>, field: &str) -> Option<String> {
        let t = s.get_ref();
        let ok = !t.is_empty()
            && t.len() < 16
            && t != "."
            && t != ".."
            // nft reads `*` as a wildcard: "eth*" would match every interface.
            && !t.chars().any(|c| c.is_whitespace() || c == '/' || c == ':' || c == '*');
        if ok {
            Some(t.clone())
        } else {
            self.err(
                s.span(),
                field,
                format!("\"{t}\" is not a valid interface name"),
                Some("Linux interface names are 1-15 characters without '/', ':', '*' or spaces"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, interfaces_with};

    #[test]
    fn diagnostics() {
        let private =
            |address: &str| interfaces_with("\"192.168.1.254/24\"", &format!("\"{address}\" # <-"));
        check_all(&[
            (
                interfaces_with("name = \"eth0\"", "name = \"eth1\" # <-"),
                "interfaces.private.name",
                "\"eth1\" is also the public interface",
            ),
            (
                interfaces_with(
                    "address = \"203.0.113.210/24\"",
                    "address = \"203.0.113.210/24\"\naddress6 = \"2001:db8::zz\" # <-",
                ),
                "interfaces.public.address6",
                "\"2001:db8::zz\" is not an IPv6 address",
            ),
            (
                private("192.168.1.254/31"),
                "interfaces.private.address",
                "a /31 leaves no room for cluster nodes",
            ),
            (
                private("192.168.1.255/24"),
                "interfaces.private.address",
                "192.168.1.255 is the network or broadcast address of 192.168.1.0/24",
            ),
            (
                private("203.0.113.1/24"),
                "interfaces.private.address",
                "203.0.113.0/24 overlaps the public network 203.0.113.0/24",
            ),
            (
                interfaces_with("name = \"eth1\"", "name = \"eth*\" # <-"),
                "interfaces.public.name",
                "\"eth*\" is not a valid interface name",
            ),
        ]);
    }
}
