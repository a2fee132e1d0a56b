//! PURE: the IPVS table the config asks for, given what health checks say.
//! Real servers are already resolved to addresses by config validation
//! (host names → their fixed address).

use super::{DestAttrs, DestKey, Family, Forward, Service, ServiceAttrs, ServiceKey, Table};
use crate::config::Config;
use crate::config::model::{Backend, Method, VirtualKey, VirtualService};
use crate::health::{HealthMap, Target};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Why `net.ipv4.vs.conntrack` is set, for `headnode plan`.
pub const CONNTRACK_WHY: &str = "IPVS keeps the connections it masquerades out of \
netfilter conntrack unless this is 1; then the firewall's `ct state established` never matches \
the replies from the real servers, and its invalid-state drop cuts them. With 1, balanced \
connections are tracked like any other and close cleanly.";

pub fn key(s: &VirtualService) -> ServiceKey {
    match &s.key {
        VirtualKey::Fwmark { mark } => ServiceKey::Fwmark {
            family: Family::Inet,
            mark: *mark,
        },
        VirtualKey::Addr {
            proto,
            address,
            port,
        } => ServiceKey::Tuple {
            proto: u16::from(proto.number()),
            addr: IpAddr::V4(*address),
            port: *port,
        },
    }
}

fn forward(m: Method) -> Forward {
    match m {
        Method::Masq => Forward::Masq,
        Method::Route => Forward::Route,
        Method::Tunnel => Forward::Tunnel,
    }
}

/// True when IPVS is the backend that serves the balancer (`auto` means
/// IPVS when the kernel has it; the caller decides that).
pub fn uses_ipvs(cfg: &Config) -> bool {
    cfg.balancer.backend != Backend::Nftables
}

/// The table for `cfg`. A real server that health checks report down keeps
/// its place with weight 0 (drained: existing connections finish); when all
/// of a service's reals are down its sorry server, if any, takes the traffic.
pub fn desired(cfg: &Config, health: &HealthMap) -> Table {
    let mut table = Table::new();
    if !uses_ipvs(cfg) {
        return table;
    }
    for s in &cfg.balancer.services {
        let persistent = !s.persistence.is_zero();
        let attrs = ServiceAttrs {
            scheduler: s.scheduler.clone(),
            flags: if persistent {
                super::SVC_F_PERSISTENT
            } else {
                0
            },
            timeout: u32::try_from(s.persistence.as_secs()).unwrap_or(u32::MAX),
            netmask: u32::from_ne_bytes(s.persistence_netmask.octets()),
        };
        let mut dests = BTreeMap::new();
        let mut any_up = false;
        for r in &s.reals {
            let up = health.is_up(&Target::of(s, r));
            any_up |= up;
            dests.insert(
                DestKey {
                    addr: IpAddr::V4(r.address),
                    port: r.port,
                },
                DestAttrs {
                    forward: forward(s.method),
                    weight: if up { r.weight } else { 0 },
                    upper_threshold: r.upper_threshold,
                    lower_threshold: r.lower_threshold,
                },
            );
        }
        if let (false, Some((addr, port))) = (any_up, s.sorry_server) {
            dests
                .entry(DestKey {
                    addr: IpAddr::V4(addr),
                    port,
                })
                .or_insert(DestAttrs {
                    forward: forward(s.method),
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                })
                .weight = 1;
        }
        table.insert(key(s), Service { attrs, dests });
    }
    table
}

/// Sysctls the IPVS setup needs: (key, value, why). They exist only once
/// ip_vs is loaded, so reconcile sets them after opening IPVS.
pub fn sysctls(cfg: &Config) -> Vec<(String, String, &'static str)> {
    let masq = cfg
        .balancer
        .services
        .iter()
        .any(|s| s.method == Method::Masq);
    if uses_ipvs(cfg) && masq {
        vec![("net.ipv4.vs.conntrack".into(), "1".into(), CONNTRACK_WHY)]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;

    fn origin() -> Config {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin/headnode.toml");
        crate::config::load(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn origin_is_fwmark_1_rr_with_two_masq_reals() {
        let cfg = origin();
        let t = desired(&cfg, &HealthMap::default());
        let text = super::super::render_table(&t);
        assert_eq!(
            text,
            "FWM  1 rr\n  -> 192.168.1.101:8000           Masq    1\n  -> 192.168.1.102:8000           Masq    1\n"
        );
        assert_eq!(sysctls(&cfg)[0].0, "net.ipv4.vs.conntrack");
    }

    #[test]
    fn down_real_is_drained_to_weight_zero() {
        let cfg = origin();
        let s = &cfg.balancer.services[0];
        let mut h = HealthMap::default();
        h.set(Target::of(s, &s.reals[1]), State::Down);
        let t = desired(&cfg, &h);
        let weights: Vec<u32> = t
            .values()
            .next()
            .unwrap()
            .dests
            .values()
            .map(|d| d.weight)
            .collect();
        assert_eq!(weights, vec![1, 0]);
    }

    #[test]
    fn sorry_server_only_when_all_down() {
        let mut cfg = origin();
        cfg.balancer.services[0].sorry_server = Some(("192.168.1.254".parse().unwrap(), 8080));
        let s = cfg.balancer.services[0].clone();
        let mut h = HealthMap::default();
        h.set(Target::of(&s, &s.reals[0]), State::Down);
        assert_eq!(desired(&cfg, &h).values().next().unwrap().dests.len(), 2);
        h.set(Target::of(&s, &s.reals[1]), State::Down);
        let t = desired(&cfg, &h);
        let dests = &t.values().next().unwrap().dests;
        assert_eq!(dests.len(), 3);
        assert_eq!(dests.values().map(|d| d.weight).sum::<u32>(), 1);
    }

    #[test]
    fn nftables_backend_wants_no_ipvs() {
        let mut cfg = origin();
        cfg.balancer.backend = Backend::Nftables;
        assert!(desired(&cfg, &HealthMap::default()).is_empty());
        assert!(sysctls(&cfg).is_empty());
    }
}
