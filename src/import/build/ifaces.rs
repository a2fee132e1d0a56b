//! What /etc/network/interfaces says about the two sides: the public stanza
//! (the one with the gateway) and the private one, checked against the
//! shorewall interfaces, the dhcpd subnet and `option routers`.

use super::*;
use crate::import::ifupdown::{Iface, Opt};

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Roles<'s> {
    pub public: Option<&'s Iface>,
    pub private: Option<&'s Iface>,
}

impl<'s> Builder<'s, '_> {
    pub(super) fn roles(&mut self, lan: Option<&Lan>) -> Roles<'s> {
        let Some(ifs) = self.s.interfaces else {
            return Roles::default();
        };
        let sw = self.s.shorewall;
        let sw_net = sw.and_then(|s| s.public_if.as_ref());
        let sw_loc = sw.and_then(|s| s.private_if.as_ref());
        let named =
            |i: &Iface, slot: Option<&(Loc, String)>| slot.is_some_and(|(_, n)| *n == i.name);
        let up: Vec<&'s Iface> = ifs.ifaces.iter().filter(|i| !i.is_loopback()).collect();
        let with_gateway: Vec<&'s Iface> = up
            .iter()
            .copied()
            .filter(|i| i.opt("gateway").is_some())
            .collect();
        let public = match with_gateway.as_slice() {
            [one] => Some(*one),
            // Without a gateway line, the one interface configured by DHCP gets it from there.
            [] => match up.iter().filter(|i| i.method == "dhcp").collect::<Vec<_>>()[..] {
                [one] => Some(*one),
                _ => None,
            },
            many => {
                let pick = many.iter().find(|i| named(i, sw_net)).unwrap_or(&many[0]);
                let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
                self.report.note(
                    &pick.at,
                    format!(
                        "{} have a gateway; {} is taken as the public interface",
                        names.join(", "),
                        pick.name
                    ),
                );
                Some(*pick)
            }
        };
        let rest: Vec<&'s Iface> = up
            .iter()
            .copied()
            .filter(|i| public.is_none_or(|p| p.name != i.name))
            .collect();
        let private = match rest.as_slice() {
            [one] => Some(*one),
            [] => None,
            many => {
                let on_lan =
                    |i: &Iface| lan.is_some_and(|l| i.net.is_some_and(|n| n.trunc() == l.net));
                let pick = many
                    .iter()
                    .find(|i| on_lan(i))
                    .or_else(|| many.iter().find(|i| named(i, sw_loc)))
                    .copied();
                if pick.is_none() {
                    let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
                    self.report.note(
                        &many[0].at,
                        format!(
                            "cannot tell which of {} is the private LAN (none is on the dhcpd subnet)",
                            names.join(", ")
                        ),
                    );
                }
                pick
            }
        };
        for (slot, role, zone, side) in [
            (
                sw_net,
                public,
                "net",
                "has the gateway (the public interface)",
            ),
            (sw_loc, private, "loc", "is the private LAN"),
        ] {
            if let (Some((at, sw_name)), Some(i)) = (slot, role)
                && *sw_name != i.name
            {
                self.report.error(
                    at,
                    format!(
                        "zone {zone} is on {sw_name}, but {} says {} {side}; shorewall and ifupdown must name the same device",
                        i.at, i.name
                    ),
                );
            }
        }
        if let (Some(l), Some(i)) = (lan, private)
            && let Some(net) = i.net
        {
            if net.trunc() != l.net {
                self.report.error(
                    &l.subnet.at,
                    format!(
                        "subnet {} is not the network of the private interface {} ({}, {}); headnode serves DHCP on {}",
                        l.net,
                        i.name,
                        net.trunc(),
                        i.at,
                        net.trunc()
                    ),
                );
            } else if let Some(h) = l.head.filter(|h| *h != net.addr()) {
                let d = self.s.dhcpd.map(|d| &d.globals);
                let at = l
                    .subnet
                    .params
                    .get("routers")
                    .or_else(|| d.and_then(|g| g.get("routers")))
                    .map_or(&l.subnet.at, |p| &p.at);
                self.report.error(
                    at,
                    format!(
                        "option routers {h} is not the head node's LAN address {} ({} iface {}); with headnode the nodes route through the head node",
                        net.addr(),
                        i.at,
                        i.name
                    ),
                );
            }
        }
        Roles { public, private }
    }

    /// This box's address on `net` per the interfaces file, and where it is said.
    pub(super) fn ifupdown_address_on(&self, net: Ipv4Net) -> Option<(Loc, Ipv4Addr)> {
        self.s.interfaces?.ifaces.iter().find_map(|i| {
            let n = i.net.filter(|n| n.trunc() == net)?;
            Some((i.opt("address")?.at.clone(), n.addr()))
        })
    }

    /// An ifupdown option of the public stanza, else of the first stanza that has it.
    pub(super) fn ifupdown_opt(&self, key: &str) -> Option<(&'s Iface, &'s Opt)> {
        let ifs = self.s.interfaces?;
        self.ifs
            .public
            .into_iter()
            .chain(ifs.ifaces.iter())
            .find_map(|i| i.opt(key).map(|o| (i, o)))
    }

    /// The head node's own resolvers (`dns-nameservers`, `dns-search`) for the
    /// nodes too, where dhcpd.conf gives them none.
    pub(super) fn resolvers(
        &mut self,
        bl: &mut Block,
        dhcpd_dns: Option<&Param>,
        dhcpd_search: Option<&Param>,
    ) {
        for (key, dhcpd, option, conf_key) in [
            (
                "dns-nameservers",
                dhcpd_dns,
                "domain-name-servers",
                "dns_servers",
            ),
            ("dns-search", dhcpd_search, "domain-search", "domain_search"),
        ] {
            let Some((i, o)) = self.ifupdown_opt(key) else {
                continue;
            };
            if let Some(p) = dhcpd {
                self.report.note(
                    &o.at,
                    format!(
                        "`{key} {}` configures only the head node's own resolver; the nodes get option {option} from {}",
                        o.text(),
                        p.at
                    ),
                );
                continue;
            }
            bl.key_comment(format!(
                "{}: {key} {} (iface {}): the head node's own resolvers, for the nodes too",
                o.at,
                o.text(),
                i.name
            ));
            match o.values.iter().find_map(|v| values::ipv4(v).err()) {
                Some(why) if key == "dns-nameservers" => {
                    let list: Vec<String> = o.values.iter().map(|v| quote(v)).collect();
                    bl.fixme_key(
                        format!("{}: {why}", o.at),
                        conf_key,
                        format!("[{}]", list.join(", ")),
                    );
                }
                _ => {
                    bl.strs(conf_key, &o.values);
                }
            }
        }
    }
}
