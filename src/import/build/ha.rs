//! `[ha]` from keepalived.conf's vrrp_instance: which virtual address is the
//! LAN's (the nodes' gateway) and which the public one (the services'), the
//! role, the peer and the VRRP settings.

use super::*;
use crate::import::keepalived::{State, Vip};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Lan,
    Public,
}

impl Side {
    fn key(self) -> &'static str {
        match self {
            Side::Lan => "lan_address",
            Side::Public => "public_address",
        }
    }
}

impl Builder<'_, '_> {
    /// Every virtual address of keepalived.conf.
    pub(super) fn vips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.s
            .vrrp
            .iter()
            .flat_map(|i| i.vips.iter().map(|v| v.addr))
    }

    pub(super) fn is_vip(&self, a: Ipv4Addr) -> bool {
        self.vips().any(|v| v == a)
    }

    /// The `[ha]` block, and what `"public"` means for the services: the
    /// virtual public address when there is one, else this box's own.
    pub(super) fn ha(&mut self, lan: Option<&Lan>, public: &Public) -> (Option<Block>, Public) {
        let s = self.s;
        let Some(first) = s.vrrp.first() else {
            return (None, public.clone());
        };
        let sw = s.shorewall;
        let private_name = self.ifs.private.map(|i| i.name.clone()).or_else(|| {
            sw.and_then(|s| s.private_if.as_ref())
                .map(|(_, n)| n.clone())
        });
        let public_name = self.ifs.public.map(|i| i.name.clone()).or_else(|| {
            sw.and_then(|s| s.public_if.as_ref())
                .map(|(_, n)| n.clone())
        });
        let lan_net = lan
            .map(|l| l.net)
            .or_else(|| self.ifs.private.and_then(|i| i.net).map(|n| n.trunc()));
        let public_net = self.ifs.public.and_then(|i| i.net).map(|n| n.trunc());

        let mut bl = Block::new("[ha]");
        bl.comment(format!(
            "{}: {}\n(keepalived's VRRP instance; headnode writes its own for keepalived to include)",
            first.src.at, first.src.text
        ));
        self.report.note(
            &first.src.at,
            "headnode writes its own vrrp_instance (VRRP version 3, unicast to the peer, nopreempt) to ha.keepalived_config (/etc/keepalived/headnode.conf) and runs IPVS and the health checks itself: replace this instance and the virtual_server blocks with `include /etc/keepalived/headnode.conf`",
        );
        for other in &s.vrrp[1..] {
            self.report.note(
                &other.src.at,
                format!(
                    "headnode runs one VRRP instance for both virtual addresses: its settings come from {} ({}); this one's addresses join it",
                    first.name, first.src.at
                ),
            );
        }

        // The role: the state, or with both nodes BACKUP (nopreempt) the priority.
        let priority = first.priority.as_ref().map(|(_, p)| *p);
        match &first.state {
            Some((src, State::Master)) => {
                bl.key_comment(from(src));
                bl.str("role", "primary");
            }
            Some((src, State::Backup)) if !first.nopreempt => {
                bl.key_comment(from(src));
                bl.str("role", "secondary");
            }
            state => {
                let p = priority.unwrap_or(100);
                let role = if p > 100 { "primary" } else { "secondary" };
                let said = match state {
                    Some(_) => "state BACKUP with nopreempt",
                    None => "no state",
                };
                self.report.note(
                    &first.src.at,
                    format!("{said}: the role follows the priority ({p}, {} keepalived's default 100), so {role}; give the other head node the other role", if p > 100 { "above" } else { "not above" }),
                );
                bl.key_comment(format!("{}: {said}, priority {p}", first.src.at));
                bl.str("role", role);
            }
        }
        if let Some((src, p)) = &first.priority {
            bl.key_comment(from(src));
            bl.raw("priority", p.to_string());
        }

        match first.peers.as_slice() {
            [] => {
                let why = format!(
                    "vrrp_instance {} has no unicast_peer (keepalived sent multicast); headnode's instance speaks unicast: fill in peer, the other head node's own LAN address",
                    first.name
                );
                self.report.error(&first.src.at, why.clone());
                bl.fixme_key(format!("{}: {why}", first.src.at), "peer", quote("ADDRESS"));
            }
            [(src, a), rest @ ..] => {
                for (o, _) in rest {
                    self.report.skip(
                        &o.at,
                        format!(
                            "`{}`: headnode has two head nodes, so one peer ({a})",
                            o.text
                        ),
                    );
                }
                bl.key_comment(format!("{}: unicast_peer {a}", src.at));
                bl.str("peer", &a.to_string());
            }
        }

        // Which virtual address is which: on the LAN's network, or on the
        // private (public) interface by `dev`, or by the instance's interface.
        let mut sides: Vec<(&Vip, Option<(Side, String)>)> = Vec::new();
        for ins in &s.vrrp {
            let default_dev = ins.interface.as_ref().map(|(_, d)| d.as_str());
            for v in &ins.vips {
                let by_name = |d: &str, how: &str| {
                    if private_name.as_deref() == Some(d) {
                        Some((Side::Lan, format!("{how} {d}, the private interface")))
                    } else if public_name.as_deref() == Some(d) {
                        Some((Side::Public, format!("{how} {d}, the public interface")))
                    } else {
                        None
                    }
                };
                let side = if let Some(n) = lan_net.filter(|n| n.contains(&v.addr)) {
                    Some((Side::Lan, format!("on the LAN {n}")))
                } else if let Some(side) = v.dev.as_deref().and_then(|d| by_name(d, "dev")) {
                    Some(side)
                } else if let Some(n) = public_net.filter(|n| n.contains(&v.addr)) {
                    Some((Side::Public, format!("on the public network {n}")))
                } else {
                    default_dev.and_then(|d| by_name(d, "on the instance's interface"))
                };
                sides.push((v, side));
            }
        }
        let has = |sides: &[(&Vip, Option<(Side, String)>)], side: Side| {
            sides
                .iter()
                .any(|(_, s)| s.as_ref().is_some_and(|(x, _)| *x == side))
        };
        if let [(_, None)] = sides
            .iter()
            .filter(|(_, s)| s.is_none())
            .collect::<Vec<_>>()[..]
        {
            let missing = [Side::Lan, Side::Public]
                .into_iter()
                .filter(|side| !has(&sides, *side))
                .collect::<Vec<_>>();
            if let [side] = missing[..]
                && let Some(slot) = sides.iter_mut().find(|(_, s)| s.is_none())
            {
                slot.1 = Some((side, "the other virtual address".into()));
            }
        }
        let mut chosen: Vec<(Side, &Vip, String)> = Vec::new();
        for (v, side) in &sides {
            match side {
                None => self.report.error(
                    &v.src.at,
                    format!("`{}`: cannot tell whether {} is the LAN's virtual address or the public one (give --interfaces or --dhcpd); left out", v.src.text, v.addr),
                ),
                Some((side, why)) => match chosen.iter().find(|(s, _, _)| s == side) {
                    Some((_, f, _)) => self.report.skip(
                        &v.src.at,
                        format!("`{}`: headnode moves one virtual address per side; {} is ha.{}", v.src.text, f.addr, side.key()),
                    ),
                    None => chosen.push((*side, v, why.clone())),
                },
            }
        }
        let mut service_public = public.clone();
        for side in [Side::Public, Side::Lan] {
            let Some((_, v, why)) = chosen.iter().find(|(s, _, _)| *s == side) else {
                let why = format!(
                    "keepalived.conf has no virtual address the import can tell is on the {} side: fill in ha.{}",
                    if side == Side::Lan { "LAN" } else { "public" },
                    side.key()
                );
                self.report.error(&first.src.at, why.clone());
                bl.fixme_key(why, side.key(), quote("ADDRESS/PREFIX"));
                continue;
            };
            let net_len = match side {
                Side::Lan => lan_net.map(|n| n.prefix_len()),
                Side::Public => public_net.map(|n| n.prefix_len()),
            };
            let len = match (v.len, net_len, side) {
                (Some(l), _, _) => l,
                (None, Some(l), _) => {
                    self.report.note(&v.src.at, format!("{} has no prefix length (keepalived took /32); headnode needs the network's, /{l}", v.addr));
                    l
                }
                (None, None, Side::Public) => 32,
                (None, None, Side::Lan) => {
                    let why = format!("{} has no prefix length and the LAN's is unknown", v.addr);
                    self.report.error(&v.src.at, why.clone());
                    bl.fixme_key(
                        format!("{}: {why}", v.src.at),
                        side.key(),
                        quote(&format!("{}/PREFIX", v.addr)),
                    );
                    continue;
                }
            };
            bl.key_comment(format!("{}: {} ({why})", v.src.at, v.src.text));
            bl.str(side.key(), &format!("{}/{len}", v.addr));
            if side == Side::Public {
                service_public = Public::Known {
                    ip: v.addr,
                    from: format!("{}: the virtual public address", v.src.at),
                };
            } else {
                self.lan_router_note(lan, v.addr);
            }
        }

        if let Some((src, i)) = &first.interface {
            bl.key_comment(from(src));
            bl.str("interface", i);
        }
        if let Some((src, n)) = &first.router_id {
            bl.key_comment(from(src));
            bl.raw("virtual_router_id", n.to_string());
        }
        if let Some((src, ms)) = &first.advert_ms {
            bl.key_comment(from(src));
            let text = match ms % 1000 {
                0 => format!("{}s", ms / 1000),
                _ => format!("{ms}ms"),
            };
            bl.str("advert_interval", &text);
        }
        (Some(bl), service_public)
    }

    /// dhcpd's `option routers` that is not the virtual LAN address: with
    /// `[ha]` the nodes route through the virtual one.
    fn lan_router_note(&mut self, lan: Option<&Lan>, vip: Ipv4Addr) {
        let Some(l) = lan else { return };
        let globals = self.s.dhcpd.map(|d| &d.globals);
        let Some(p) = l
            .subnet
            .params
            .get("routers")
            .or_else(|| globals.and_then(|g| g.get("routers")))
        else {
            return;
        };
        if p.values.len() == 1 && !p.values.iter().any(|r| *r == vip.to_string()) {
            self.report.note(
                &p.at,
                format!(
                    "with [ha] the nodes' router is keepalived's virtual LAN address {vip} (ha.lan_address), not {}",
                    p.values.join(" ")
                ),
            );
        }
    }
}
