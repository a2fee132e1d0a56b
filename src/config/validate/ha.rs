//! `[ha]`: this box is one of two head nodes. keepalived's VRRP moves the
//! two virtual addresses between them; the rest of the file names the
//! virtual ones (`"public"` is the virtual public address, DHCP's router
//! the virtual LAN address).

use super::Validator;
use crate::config::model::*;
use crate::config::raw::*;
use std::time::Duration;

impl Validator<'_> {
    pub(super) fn ha(
        &mut self,
        raw: &S<RawHa>,
        public: Option<&PublicIface>,
        private: Option<&PrivateIface>,
    ) -> Option<Ha> {
        let h = raw.get_ref();
        let missing = |v: &mut Self, field: &str, hint: &str| {
            v.err(
                raw.span(),
                &format!("ha.{field}"),
                format!("[ha] has no {field}"),
                Some(hint),
            );
        };
        let role = match &h.role {
            Some(r) => self.choice(
                r,
                "ha.role",
                &[
                    ("primary", HaRole::Primary),
                    ("secondary", HaRole::Secondary),
                ],
            ),
            None => {
                missing(
                    self,
                    "role",
                    "add role = \"primary\" on one head node and role = \"secondary\" on the other",
                );
                None
            }
        };
        let priority = match &h.priority {
            Some(p) => self.count(p, "ha.priority", 1, 254).map(|p| p as u8),
            None => role.map(|r| match r {
                HaRole::Primary => 150,
                HaRole::Secondary => 100,
            }),
        };
        let lan = private.map(|p| p.address.trunc());
        let own_lan = private.map(|p| p.address.addr());
        let peer = match &h.peer {
            Some(p) => self.ipv4(p, "ha.peer").and_then(|a| {
                let why = if Some(a) == own_lan {
                    Some("is this head node's own LAN address")
                } else if lan.is_some_and(|n| !n.contains(&a)) {
                    Some("is not on the LAN")
                } else {
                    None
                };
                match why {
                    Some(why) => {
                        self.err(
                            p.span(),
                            "ha.peer",
                            format!("{a} {why}"),
                            Some("give the other head node's own address on the LAN"),
                        );
                        None
                    }
                    None => Some(a),
                }
            }),
            None => {
                missing(
                    self,
                    "peer",
                    "add peer = \"ADDRESS\": the other head node's own address on the LAN",
                );
                None
            }
        };
        let lan_address = match &h.lan_address {
            Some(s) => self.ipv4_iface(s, "ha.lan_address").and_then(|a| {
                let why = if Some(a.addr()) == own_lan {
                    Some(
                        "is this head node's own address; the virtual one must be a third address"
                            .to_string(),
                    )
                } else if Some(a.addr()) == peer {
                    Some("is the peer's address".to_string())
                } else {
                    lan.filter(|n| *n != a.trunc())
                        .map(|n| format!("is not on the LAN {n} with its prefix"))
                };
                match why {
                    Some(why) => {
                        self.err(
                            s.span(),
                            "ha.lan_address",
                            format!("{} {why}", a.addr()),
                            Some("the nodes' gateway: a free address of the LAN, e.g. 192.168.1.254/24"),
                        );
                        None
                    }
                    None => Some(a),
                }
            }),
            None => {
                missing(
                    self,
                    "lan_address",
                    "add lan_address = \"ADDRESS/LEN\": the gateway address the nodes use, held by whichever head node is master",
                );
                None
            }
        };
        let public_address = match &h.public_address {
            Some(s) => self.ipv4_iface(s, "ha.public_address").and_then(|a| {
                if public.and_then(|p| p.address).map(|p| p.addr()) == Some(a.addr()) {
                    self.err(
                        s.span(),
                        "ha.public_address",
                        format!("{} is this head node's own public address", a.addr()),
                        Some("the service address moves between the nodes: give each node its own public address and a third one here"),
                    );
                    return None;
                }
                Some(a)
            }),
            None => {
                missing(
                    self,
                    "public_address",
                    "add public_address = \"ADDRESS/LEN\": the service address the clients use, held by whichever head node is master",
                );
                None
            }
        };
        let interface = match &h.interface {
            Some(i) => self.ifname(i, "ha.interface"),
            None => private.map(|p| p.name.clone()),
        };
        let virtual_router_id = h
            .virtual_router_id
            .as_ref()
            .and_then(|n| self.count(n, "ha.virtual_router_id", 1, 255))
            .map_or(51, |n| n as u8);
        let advert_interval = match &h.advert_interval {
            Some(raw_d) => self.duration(raw_d, "ha.advert_interval").and_then(|d| {
                let ok = d >= Duration::from_millis(10)
                    && d <= Duration::from_secs(40)
                    && d.as_millis() % 10 == 0;
                if !ok {
                    self.err(
                        raw_d.span(),
                        "ha.advert_interval",
                        format!("{} is not a VRRP advert interval", humantime::format_duration(d)),
                        Some("VRRP version 3 counts in hundredths of a second: from \"10ms\" to \"40s\", e.g. \"500ms\""),
                    );
                    return None;
                }
                Some(d)
            }),
            None => Some(Duration::from_millis(500)),
        };
        let keepalived_config = match &h.keepalived_config {
            Some(p) => {
                self.text(p, "ha.keepalived_config", 4096)
                    .and_then(|t| match t.starts_with('/') {
                        true => Some(t),
                        false => {
                            self.err(
                                p.span(),
                                "ha.keepalived_config",
                                "is not an absolute path".into(),
                                Some("e.g. \"/etc/keepalived/headnode.conf\""),
                            );
                            None
                        }
                    })
            }
            None => Some("/etc/keepalived/headnode.conf".into()),
        };
        Some(Ha {
            role: role?,
            priority: priority?,
            peer: peer?,
            public_address: public_address?,
            lan_address: lan_address?,
            interface: interface?,
            virtual_router_id,
            advert_interval: advert_interval?,
            keepalived_config: keepalived_config?.into(),
        })
    }

    /// With `[ha]` the services must be on the virtual public address:
    /// one written with this node's own address stops at a takeover.
    pub(super) fn ha_service_addresses(
        &mut self,
        raw: &RawConfig,
        ha: &Ha,
        own: Option<std::net::Ipv4Addr>,
    ) {
        let Some(own) = own else { return };
        let is_own = |t: &str| {
            let a = t.strip_suffix("/32").unwrap_or(t);
            a.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a == own)
        };
        let hint = format!(
            "write \"public\" (with [ha], the virtual address {}), which moves to the node that is master",
            ha.public_address.addr()
        );
        let mut found = Vec::new();
        for (i, m) in raw.firewall.marks.iter().enumerate() {
            if let Some(d) = m.get_ref().dest.as_ref().filter(|d| is_own(d.get_ref())) {
                found.push((d.span(), format!("firewall.mark[{i}].dest")));
            }
        }
        for (i, v) in raw.balancer.virtuals.iter().enumerate() {
            if let Some(a) = v.get_ref().address.as_ref().filter(|a| is_own(a.get_ref())) {
                found.push((a.span(), format!("balancer.virtual[{i}].address")));
            }
        }
        for (i, sv) in raw.services.iter().enumerate() {
            if let Some(a) = sv
                .get_ref()
                .address
                .as_ref()
                .filter(|a| is_own(a.get_ref()))
            {
                found.push((a.span(), format!("service[{i}].address")));
            }
        }
        for (span, field) in found {
            self.err(
                span,
                &field,
                format!("{own} is this head node's own public address"),
                Some(&hint),
            );
        }
    }

    /// With `[ha]` the nodes' gateway is the virtual LAN address: the
    /// default router, and the one a configured list must hold.
    pub(super) fn ha_routers(&mut self, raw: &RawDhcp, ha: &Ha, dhcp: &mut Dhcp) {
        let vip = ha.lan_address.addr();
        match &raw.routers {
            None => dhcp.routers = vec![vip],
            Some(list) if !dhcp.routers.contains(&vip) && !list.is_empty() => {
                let span = list[0].span().start..list[list.len() - 1].span().end;
                self.err(
                    span,
                    "dhcp.routers",
                    format!("does not hold the virtual LAN address {vip}"),
                    Some("with [ha] the nodes' gateway is ha.lan_address, which moves to the head node that is master; remove routers to use it"),
                );
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    const HA: &str = "[ha]\nrole = \"primary\"\npeer = \"192.168.1.253\"\npublic_address = \"203.0.113.200/24\"\nlan_address = \"192.168.1.1/24\"\n";

    #[test]
    fn defaults_and_what_the_rest_of_the_file_gets() {
        let text = lan(&format!(
            "{HA}[[service]]\nname = \"web\"\nproto = \"tcp\"\nport = 8000\nreal = [\"192.168.1.10:8000\"]\nmark = 1\n"
        ));
        let cfg = parse(&text, Path::new("t.toml")).unwrap();
        let ha = cfg.ha.clone().unwrap();
        assert_eq!(
            (ha.priority, ha.virtual_router_id, ha.interface.as_str()),
            (150, 51, "eth0")
        );
        assert_eq!(ha.advert_interval, Duration::from_millis(500));
        // The nodes' gateway and the service address are the virtual ones.
        assert_eq!(
            cfg.dhcp.routers,
            vec!["192.168.1.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(cfg.service_ip(), Some("203.0.113.200".parse().unwrap()));
        assert!(
            cfg.firewall
                .marks
                .iter()
                .all(|m| m.dest == Some("203.0.113.200/32".parse().unwrap()))
        );
        let secondary = parse(
            &lan(&HA.replace("primary", "secondary")),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(secondary.ha.unwrap().priority, 100);
    }

    #[test]
    fn the_pool_is_split_in_halves_that_do_not_overlap() {
        let p = |a: &str, b: &str| Pool {
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        };
        let pool = p("192.168.1.100", "192.168.1.199");
        let (lower, upper) = (
            p("192.168.1.100", "192.168.1.149"),
            p("192.168.1.150", "192.168.1.199"),
        );
        assert_eq!(pool.half(HaRole::Primary), (Some(lower), Some(upper)));
        assert_eq!(pool.half(HaRole::Secondary), (Some(upper), Some(lower)));
        let odd = p("192.168.1.100", "192.168.1.102");
        assert_eq!(
            odd.half(HaRole::Primary).0,
            Some(p("192.168.1.100", "192.168.1.101"))
        );
        assert_eq!(
            odd.half(HaRole::Secondary).0,
            Some(p("192.168.1.102", "192.168.1.102"))
        );
        let one = p("192.168.1.100", "192.168.1.100");
        assert_eq!(one.half(HaRole::Primary), (Some(one), None));
        assert_eq!(one.half(HaRole::Secondary), (None, Some(one)));
    }

    #[test]
    fn diagnostics() {
        let with = |old: &str, new: &str| lan(&HA.replacen(old, new, 1));
        check_all(&[
            (
                lan(
                    "[ha] # <-\npeer = \"192.168.1.253\"\npublic_address = \"203.0.113.200/24\"\nlan_address = \"192.168.1.1/24\"\n",
                ),
                "ha.role",
                "[ha] has no role",
            ),
            (
                with("role = \"primary\"", "role = \"first\" # <-"),
                "ha.role",
                "is not one of: primary, secondary",
            ),
            (
                with("peer = \"192.168.1.253\"", "peer = \"192.168.1.254\" # <-"),
                "ha.peer",
                "own LAN address",
            ),
            (
                with("peer = \"192.168.1.253\"", "peer = \"10.0.0.2\" # <-"),
                "ha.peer",
                "is not on the LAN",
            ),
            (
                with(
                    "lan_address = \"192.168.1.1/24\"",
                    "lan_address = \"192.168.1.254/24\" # <-",
                ),
                "ha.lan_address",
                "own address",
            ),
            (
                with(
                    "lan_address = \"192.168.1.1/24\"",
                    "lan_address = \"192.168.1.1/16\" # <-",
                ),
                "ha.lan_address",
                "is not on the LAN",
            ),
            (
                with(
                    "public_address = \"203.0.113.200/24\"",
                    "public_address = \"203.0.113.210/24\" # <-",
                ),
                "ha.public_address",
                "own public address",
            ),
            (
                lan(&format!("{HA}advert_interval = \"5ms\" # <-\n")),
                "ha.advert_interval",
                "is not a VRRP advert interval",
            ),
            (
                lan(&format!("{HA}priority = 255 # <-\n")),
                "ha.priority",
                "255 is out of range",
            ),
            (
                lan(&format!("[dhcp]\nrouters = [\"192.168.1.254\"] # <-\n{HA}")),
                "dhcp.routers",
                "does not hold the virtual LAN address 192.168.1.1",
            ),
            (
                lan(&format!(
                    "[[balancer.virtual]]\nfwmark = 1\nreal = [\"192.168.1.10:80\"]\n[[firewall.mark]]\nmark = 1\ndest = \"203.0.113.210\" # <-\nproto = \"tcp\"\nports = [80]\n{HA}"
                )),
                "firewall.mark[0].dest",
                "own public address",
            ),
            (
                lan(&format!(
                    "[[service]]\nname = \"web\"\nport = 80\naddress = \"203.0.113.210\" # <-\nreal = [\"192.168.1.10\"]\n{HA}"
                )),
                "service[0].address",
                "own public address",
            ),
        ]);
    }
}
