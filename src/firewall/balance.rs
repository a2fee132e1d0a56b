//! The nftables balancing backend: each virtual service becomes DNAT in
//! headnode's table, the way kube-proxy's nftables mode does it. One chain per
//! real server (`lb<svc>_r<real>`) holds its DNAT; the `balance` chain picks
//! one of the currently healthy chains with a verdict map keyed by
//! `numgen inc` (round robin, weights by repeating entries) or
//! `jhash ip saddr` (source hashing). Only `balance` depends on health, so a
//! health change replaces that one chain in one transaction
//! ([`balance_update`]) and leaves the rest of the ruleset and its counters alone.

use super::expr::*;
use super::{Ruleset, origin_comment};
use crate::config::model::{Config, Proto, VirtualKey, VirtualService};
use nftables::expr::{
    BinaryOperation, Expression, JHash, NamedExpression, NgMode, Numgen, SetItem, Verdict,
};
use nftables::schema::{self, NfCmd, NfListObject, NfObject, Nftables, SetFlag, SetTypeValue};
use nftables::stmt::{JumpTarget, SetOp, Statement, VerdictMap};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

/// The regular chain that health changes replace.
pub const BALANCE_CHAIN: &str = "balance";

/// Most entries a weighted map gets; larger weight sums are scaled down.
const MAX_SLOTS: u32 = 256;
/// Fixed jhash seed, so reloading the ruleset keeps sources on the same real.
const HASH_SEED: u32 = 0x6864_6e64;

/// A real server as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub address: Ipv4Addr,
    pub port: u16,
}

/// The currently healthy reals of one virtual service (config order kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalancedService {
    pub name: String,
    pub healthy: BTreeSet<Endpoint>,
}

/// Health state the nftables balancer renders: per virtual service (same order
/// as `cfg.balancer.services`) the reals that may get new connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftBalancer {
    pub services: Vec<BalancedService>,
}

impl NftBalancer {
    /// Every real server up (the state before the first health check, and for one-shot `apply`).
    pub fn all_up(cfg: &Config) -> Self {
        NftBalancer {
            services: cfg
                .balancer
                .services
                .iter()
                .map(|s| BalancedService {
                    name: s.name.clone(),
                    healthy: s
                        .reals
                        .iter()
                        .map(|r| Endpoint {
                            address: r.address,
                            port: r.port,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Mark a real of a service up or down; returns true when that changed anything.
    pub fn set_up(&mut self, service: &str, real: Endpoint, up: bool) -> bool {
        let Some(s) = self.services.iter_mut().find(|s| s.name == service) else {
            return false;
        };
        if up {
            s.healthy.insert(real)
        } else {
            s.healthy.remove(&real)
        }
    }

    fn healthy(&self, service: &str) -> Option<&BTreeSet<Endpoint>> {
        self.services
            .iter()
            .find(|s| s.name == service)
            .map(|s| &s.healthy)
    }
}

/// How the nftables backend carries out an IPVS scheduler name.
pub fn scheduler_mode(scheduler: &str) -> (&'static str, Option<&'static str>) {
    match scheduler {
        "rr" => ("round robin (numgen inc)", None),
        "wrr" => (
            "weighted round robin (numgen inc, entries repeated by weight)",
            None,
        ),
        "sh" => ("source hashing (jhash ip saddr)", None),
        "mh" => (
            "source hashing (jhash ip saddr)",
            Some("mh is approximated by source hashing"),
        ),
        "dh" => ("destination hashing (jhash ip daddr)", None),
        _ => (
            "weighted round robin (numgen inc)",
            Some(
                "nftables has no connection counts; least-connection schedulers run as weighted round robin",
            ),
        ),
    }
}

fn chain_real(svc: usize, real: usize) -> String {
    format!("lb{svc}_r{real}")
}
fn chain_sorry(svc: usize) -> String {
    format!("lb{svc}_sorry")
}
fn set_affinity(svc: usize, real: usize) -> String {
    format!("lb{svc}_r{real}_aff")
}

/// The persistence key: the client address, masked by
/// `persistence_netmask` as IPVS does (`ip saddr & 255.255.255.0`).
fn client_key(s: &VirtualService) -> Expr {
    if s.persistence_netmask == Ipv4Addr::BROADCAST {
        payload("ip", "saddr")
    } else {
        Expression::BinaryOperation(Box::new(BinaryOperation::AND(
            payload("ip", "saddr"),
            ip(s.persistence_netmask),
        )))
    }
}

/// What identifies a packet of this virtual service in prerouting.
fn service_match(s: &VirtualService) -> Vec<Stmt> {
    match &s.key {
        VirtualKey::Fwmark { mark } => vec![ipv4_only(), mark_is(*mark)],
        VirtualKey::Addr {
            proto,
            address,
            port,
        } => vec![
            daddr((*address).into()),
            dport(*proto, &[crate::config::model::PortRange::single(*port)]),
        ],
    }
}

/// Transport protocols a service's packets can have: the service's own, or for
/// fwmark services those of the marks that set its mark (`None`: any protocol).
fn service_protos(cfg: &Config, s: &VirtualService) -> BTreeSet<Option<Proto>> {
    match &s.key {
        VirtualKey::Addr { proto, .. } => BTreeSet::from([Some(*proto)]),
        VirtualKey::Fwmark { mark } => cfg
            .firewall
            .marks
            .iter()
            .filter(|m| m.mark == *mark)
            .map(|m| m.proto.filter(|p| *p != Proto::Icmp))
            .collect(),
    }
}

/// DNAT rules into one chain: the port can only be rewritten once the
/// transport protocol is known, so one rule per protocol.
fn dnat_rules(
    rs: &mut Ruleset,
    chain: &str,
    protos: &BTreeSet<Option<Proto>>,
    pre: &[Stmt],
    to: Endpoint,
    comment: &str,
) {
    for p in protos {
        let mut s = pre.to_vec();
        match p {
            Some(p) if to.port != 0 => {
                s.push(l4proto(*p));
                s.push(dnat(to.address, Some(to.port)));
            }
            _ => s.push(dnat(to.address, None)),
        }
        rs.rule(chain, s, comment);
    }
}

/// Static part: per-real and sorry chains (and affinity sets), and the jump from dstnat.
pub(super) fn render(cfg: &Config, bal: &NftBalancer, rs: &mut Ruleset) {
    rs.rule(
        "dstnat",
        vec![jump(BALANCE_CHAIN)],
        "built-in: nftables balancer (balancer.backend)",
    );
    for (i, s) in cfg.balancer.services.iter().enumerate() {
        let comment = origin_comment(cfg, &s.origin);
        let protos = service_protos(cfg, s);
        let persist = s.persistence.as_secs();
        for (j, r) in s.reals.iter().enumerate() {
            let chain = chain_real(i, j);
            rs.chain(&chain, None);
            let mut pre = Vec::new();
            if persist > 0 {
                let set = set_affinity(i, j);
                rs.sets.push(schema::Set {
                    family: super::FAMILY,
                    table: super::TABLE.into(),
                    name: Cow::Owned(set.clone()),
                    handle: None,
                    set_type: SetTypeValue::Single(schema::SetType::Ipv4Addr),
                    policy: None,
                    flags: Some(HashSet::from([SetFlag::Timeout])),
                    elem: None,
                    timeout: Some(u32::try_from(persist).unwrap_or(u32::MAX)),
                    gc_interval: None,
                    size: Some(65535),
                    comment: None,
                });
                pre.push(Statement::Set(nftables::stmt::Set {
                    op: SetOp::Update,
                    elem: client_key(s),
                    set: Cow::Owned(format!("@{set}")),
                }));
            }
            let to = Endpoint {
                address: r.address,
                port: r.port,
            };
            dnat_rules(
                rs,
                &chain,
                &protos,
                &pre,
                to,
                &format!("{comment} real {}", r.name),
            );
        }
        if let Some((address, port)) = s.sorry_server {
            let chain = chain_sorry(i);
            rs.chain(&chain, None);
            dnat_rules(
                rs,
                &chain,
                &protos,
                &[],
                Endpoint { address, port },
                &format!("{comment} sorry server"),
            );
        }
    }
    render_balance(cfg, bal, rs);
}

/// The health-dependent `balance` chain.
fn render_balance(cfg: &Config, bal: &NftBalancer, rs: &mut Ruleset) {
    for (i, s) in cfg.balancer.services.iter().enumerate() {
        let comment = origin_comment(cfg, &s.origin);
        let healthy = bal.healthy(&s.name);
        // Config order, weight 0 (quiesced, as in IPVS) takes no new connections.
        let up: Vec<(usize, u32)> = s
            .reals
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.weight > 0
                    && healthy.is_some_and(|h| {
                        h.contains(&Endpoint {
                            address: r.address,
                            port: r.port,
                        })
                    })
            })
            .map(|(j, r)| (j, r.weight))
            .collect();
        let m = service_match(s);
        if up.is_empty() {
            if s.sorry_server.is_some() {
                let mut st = m.clone();
                st.push(goto(&chain_sorry(i)));
                rs.rule(
                    BALANCE_CHAIN,
                    st,
                    format!("{comment} no healthy real: sorry server"),
                );
            }
            // Otherwise the packet reaches input, which rejects it (render_unbalanced).
            continue;
        }
        if !s.persistence.is_zero() {
            for &(j, _) in &up {
                let mut st = m.clone();
                st.push(matches(
                    client_key(s),
                    text(format!("@{}", set_affinity(i, j))),
                ));
                st.push(goto(&chain_real(i, j)));
                rs.rule(BALANCE_CHAIN, st, format!("{comment} persistence"));
            }
        }
        let slots = slots(&s.scheduler, &up);
        let n = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        let key = match s.scheduler.as_str() {
            "sh" | "mh" | "dh" => Expression::Named(NamedExpression::JHash(JHash {
                hash_mod: n,
                offset: None,
                expr: Box::new(payload(
                    "ip",
                    if s.scheduler == "dh" {
                        "daddr"
                    } else {
                        "saddr"
                    },
                )),
                seed: Some(HASH_SEED),
            })),
            _ => Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Inc,
                ng_mod: n,
                offset: None,
            })),
        };
        let data = Expression::Named(NamedExpression::Set(
            slots
                .iter()
                .enumerate()
                .map(|(k, j)| {
                    SetItem::Mapping(
                        Expression::Number(u32::try_from(k).unwrap_or(u32::MAX)),
                        Expression::Verdict(Verdict::Goto(JumpTarget {
                            target: Cow::Owned(chain_real(i, *j)),
                        })),
                    )
                })
                .collect(),
        ));
        let mut st = m;
        st.push(Statement::VerdictMap(VerdictMap { key, data }));
        rs.rule(
            BALANCE_CHAIN,
            st,
            format!("{comment} scheduler {}", s.scheduler),
        );
    }
}

/// Map slots: one per real for `rr`, else repeated by weight (reduced by the
/// common divisor, scaled to at most MAX_SLOTS), interleaved so that
/// consecutive connections spread like IPVS wrr does.
fn slots(scheduler: &str, up: &[(usize, u32)]) -> Vec<usize> {
    if scheduler == "rr" {
        return up.iter().map(|(j, _)| *j).collect();
    }
    let g = up.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let mut weights: Vec<(usize, u32)> = up.iter().map(|(j, w)| (*j, w / g)).collect();
    let sum: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    if sum > u64::from(MAX_SLOTS) {
        for (_, w) in &mut weights {
            *w = ((u64::from(*w) * u64::from(MAX_SLOTS) / sum) as u32).max(1);
        }
    }
    // Interleave: round k takes every real whose weight exceeds k.
    let max = weights.iter().map(|(_, w)| *w).max().unwrap_or(0);
    let mut out = Vec::new();
    for k in 0..max {
        out.extend(weights.iter().filter(|(_, w)| *w > k).map(|(j, _)| *j));
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// In input: a service packet that was not DNATed has no healthy real and no
/// sorry server, so it is refused instead of reaching a local socket.
pub(super) fn render_unbalanced(cfg: &Config, _bal: &NftBalancer, rs: &mut Ruleset) {
    for s in &cfg.balancer.services {
        let comment = format!("{} no healthy real server", origin_comment(cfg, &s.origin));
        let mut tcp = service_match(s);
        tcp.push(l4proto(Proto::Tcp));
        tcp.push(reject_tcp());
        rs.rule("input", tcp, comment.clone());
        let mut other = service_match(s);
        other.push(reject_icmpx());
        rs.rule("input", other, comment);
    }
}

/// Matches for a service's DNATed connections to one real (or sorry) server.
fn to_real(s: &VirtualService, protos: &BTreeSet<Option<Proto>>, to: Endpoint) -> Vec<Vec<Stmt>> {
    match &s.key {
        VirtualKey::Fwmark { mark } => {
            vec![vec![mark_is(*mark), ct_dnat(), daddr(to.address.into())]]
        }
        VirtualKey::Addr { .. } => protos
            .iter()
            .map(|p| {
                let mut st = vec![ct_dnat(), daddr(to.address.into())];
                if let Some(p) = p
                    && to.port != 0
                {
                    st.push(dport(
                        *p,
                        &[crate::config::model::PortRange::single(to.port)],
                    ));
                }
                st
            })
            .collect(),
    }
}

fn each_target(s: &VirtualService) -> Vec<Endpoint> {
    let mut v: Vec<Endpoint> = s
        .reals
        .iter()
        .map(|r| Endpoint {
            address: r.address,
            port: r.port,
        })
        .collect();
    if let Some((address, port)) = s.sorry_server {
        v.push(Endpoint { address, port });
    }
    v
}

/// Forward accepts for balanced connections, whatever zone the client is in.
pub(super) fn render_forward(cfg: &Config, _bal: &NftBalancer, rs: &mut Ruleset) {
    for s in &cfg.balancer.services {
        let comment = origin_comment(cfg, &s.origin);
        let protos = service_protos(cfg, s);
        for to in each_target(s) {
            for mut st in to_real(s, &protos, to) {
                st.push(accept());
                rs.rule("forward", st, comment.clone());
            }
        }
    }
}

/// Masquerade balanced connections so the replies come back through the head
/// node even when a real server does not route through it.
pub(super) fn render_srcnat(cfg: &Config, _bal: &NftBalancer, rs: &mut Ruleset) {
    for s in &cfg.balancer.services {
        let comment = origin_comment(cfg, &s.origin);
        let protos = service_protos(cfg, s);
        for to in each_target(s) {
            for mut st in to_real(s, &protos, to) {
                st.push(masquerade());
                rs.rule("srcnat", st, comment.clone());
            }
        }
    }
}

/// One transaction that replaces only the `balance` chain: flush it, add its
/// rules for the given health. Other chains, sets and counters stay untouched.
pub fn balance_update(cfg: &Config, bal: &NftBalancer) -> Nftables<'static> {
    let mut rs = Ruleset::default();
    render_balance(cfg, bal, &mut rs);
    // Exactly as the full ruleset renders this chain, so the live table keeps
    // matching `plan`'s normal form after an update.
    rs.rules = super::merge::consecutive(rs.rules);
    let mut objs = vec![NfObject::CmdObject(NfCmd::Flush(
        schema::FlushObject::Chain(super::chain_object(&super::PlannedChain {
            name: BALANCE_CHAIN.into(),
            base: None,
        })),
    ))];
    objs.extend(
        rs.rules
            .iter()
            .map(|r| NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(super::rule_object(r))))),
    );
    Nftables {
        objects: Cow::Owned(objs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_slots_interleave_and_reduce() {
        assert_eq!(slots("wrr", &[(0, 2), (1, 1)]), vec![0, 1, 0]);
        assert_eq!(slots("wrr", &[(0, 4), (1, 2)]), vec![0, 1, 0]);
        assert_eq!(slots("rr", &[(0, 5), (1, 1)]), vec![0, 1]);
        let big = slots("wlc", &[(0, 1000), (1, 1)]);
        assert!(big.len() <= MAX_SLOTS as usize + 1);
        assert!(big.contains(&1));
    }

    #[test]
    fn the_update_renders_the_balance_chain_like_the_full_ruleset() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/full.toml");
        let cfg = crate::config::load(&path).expect("fixture");
        let mut bal = NftBalancer::all_up(&cfg);
        for r in &cfg.balancer.services[0].reals {
            bal.set_up(
                "dns",
                Endpoint {
                    address: r.address,
                    port: r.port,
                },
                false,
            );
        }
        let full: Vec<_> = super::super::build(&cfg, Some(&bal))
            .rules
            .into_iter()
            .filter(|r| r.chain == BALANCE_CHAIN)
            .map(|r| super::super::rule_object(&r))
            .collect();
        let update = balance_update(&cfg, &bal);
        let rules: Vec<_> = update.objects[1..]
            .iter()
            .map(|o| match o {
                NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(r))) => r.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(rules, full);
        assert!(matches!(
            update.objects[0],
            NfObject::CmdObject(NfCmd::Flush(_))
        ));
    }

    #[test]
    fn health_changes_report_whether_anything_changed() {
        let mut b = NftBalancer {
            services: vec![BalancedService {
                name: "web".into(),
                healthy: BTreeSet::new(),
            }],
        };
        let r = Endpoint {
            address: Ipv4Addr::new(10, 0, 0, 1),
            port: 80,
        };
        assert!(b.set_up("web", r, true));
        assert!(!b.set_up("web", r, true));
        assert!(b.set_up("web", r, false));
        assert!(!b.set_up("nope", r, true));
    }
}
