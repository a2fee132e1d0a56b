//! The firewall as data: the config's zones, policies, rules, marks, port
//! forwards and NAT (shorewall's two-interface setup) become one nftables
//! ruleset for headnode's own `inet headnode` table. Pure: nothing here
//! touches the kernel; `nft` (the adapter) loads the result in one transaction.
//!
//! Layout of the table (priorities as nft numbers, see the chain list below):
//! - `mangle_pre` (prerouting, -150): marks (the origin's tcrules), so IPVS
//!   fwmark services and the nftables balancer see them.
//! - `dstnat` (nat prerouting, -100): port forwards, then the balancer.
//! - `input`/`forward`/`output` (filter, 0): conntrack state, ICMP, then one
//!   chain per zone pair (`net_fw`, `loc_net`, ...) holding that pair's rules
//!   and ending with its policy.
//! - `srcnat` (nat postrouting, 100): masquerade or SNAT of the LAN.

pub mod applied;
mod balance;
pub mod expr;
pub mod fallback;
pub mod guard;
mod merge;
pub mod nft;
pub mod rollback;

pub use balance::{
    BALANCE_CHAIN, BalancedService, Endpoint, NftBalancer, balance_update, scheduler_mode,
};

use crate::config::model::{Action, Config, Nat, Origin, PortRange, Zone};
use expr::*;
use nftables::schema::{self, Chain, NfCmd, NfListObject, NfObject, Nftables, Table};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;

pub const TABLE: &str = "headnode";
pub const FAMILY: NfFamily = NfFamily::INet;
/// The family as nft's command line spells it.
pub const FAMILY_NAME: &str = "inet";

/// One rule with the config line it came from (for nft errors and `status`).
#[derive(Debug, Clone)]
pub struct PlannedRule {
    pub chain: String,
    pub stmts: Vec<Stmt>,
    /// Stored as the nft rule comment: "headnode.toml:33 service web" or "built-in: ...".
    pub comment: String,
}

/// A chain and, for base chains, where it hooks in.
#[derive(Debug, Clone)]
pub struct PlannedChain {
    pub name: String,
    pub base: Option<(NfChainType, NfHook, i32, NfChainPolicy)>,
}

/// The desired content of `table inet headnode`, before it becomes a batch.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    pub chains: Vec<PlannedChain>,
    pub sets: Vec<schema::Set<'static>>,
    pub rules: Vec<PlannedRule>,
}

/// Standard nft priorities (`Chain.prio` is a plain number in the JSON schema).
const PRIO_MANGLE: i32 = -150;
const PRIO_DSTNAT: i32 = -100;
const PRIO_FILTER: i32 = 0;
const PRIO_SRCNAT: i32 = 100;

/// ICMP types that keep the network working whatever the policy (PMTU discovery, errors).
const ICMP_ESSENTIAL: &[&str] = &[
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
];
/// ICMPv6 without which IPv6 breaks: errors, PMTU, neighbour and router discovery.
const ICMPV6_ESSENTIAL: &[&str] = &[
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
];

/// The zone pairs that get a chain; `(from, to)` order as in shorewall's policy file.
const PAIRS: &[(Zone, Zone)] = &[
    (Zone::Net, Zone::Fw),
    (Zone::Loc, Zone::Fw),
    (Zone::Net, Zone::Loc),
    (Zone::Loc, Zone::Net),
    (Zone::Fw, Zone::Net),
    (Zone::Fw, Zone::Loc),
];

pub fn pair_chain(from: Zone, to: Zone) -> String {
    format!("{from}_{to}")
}

/// The whole desired ruleset as one nft transaction: add the table (so the
/// delete cannot fail), delete it, add it again with all its content.
pub fn ruleset(cfg: &Config, balancer: Option<&NftBalancer>) -> Nftables<'static> {
    build(cfg, balancer).to_nftables()
}

/// The ruleset in structured form (chains, sets, rules with their origins).
///
/// With `address = "auto"` not yet read from the interface (at boot, before
/// the public side has its DHCP lease), what needs the address is left out:
/// marks to the public address and port forwards. Both only let traffic in,
/// so the ruleset without them is closed where the full one is open; the
/// daemon plans again once the address appears.
pub fn build(cfg: &Config, balancer: Option<&NftBalancer>) -> Ruleset {
    let public = cfg.service_ip().filter(|a| !a.is_unspecified());
    let mut rs = Ruleset::default();
    let b = Build { cfg, public };
    b.chains(&mut rs, balancer.is_some());
    b.marks(&mut rs);
    b.dstnat(&mut rs);
    if let Some(bal) = balancer {
        balance::render(cfg, bal, &mut rs);
    }
    b.input(&mut rs, balancer);
    b.forward(&mut rs, balancer);
    b.output(&mut rs);
    b.pairs(&mut rs);
    b.srcnat(&mut rs, balancer);
    rs.rules = merge::consecutive(std::mem::take(&mut rs.rules));
    rs
}

/// The comment stored with a rule generated from the config.
pub fn origin_comment(cfg: &Config, origin: &Origin) -> String {
    let file = cfg
        .path
        .file_name()
        .map_or("config".into(), |f| f.to_string_lossy().into_owned());
    let text = match &origin.service {
        Some(s) => format!("{file}:{} service {s}", origin.line),
        None => format!("{file}:{}", origin.line),
    };
    sanitize_comment(&text)
}

/// nft comments are at most 128 bytes, and quotes or backslashes would make
/// `nft list` output that nft cannot read back (rollback reloads it).
fn sanitize_comment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .:_-/=+,()@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(120);
    out
}

struct Build<'a> {
    cfg: &'a Config,
    /// `None` while `address = "auto"` has not been read.
    public: Option<std::net::Ipv4Addr>,
}

impl Ruleset {
    fn chain(&mut self, name: &str, base: Option<(NfChainType, NfHook, i32, NfChainPolicy)>) {
        self.chains.push(PlannedChain {
            name: name.to_string(),
            base,
        });
    }

    /// Append a rule; a counter goes in front of the verdict so every rule counts its hits.
    pub fn rule(&mut self, chain: &str, mut stmts: Vec<Stmt>, comment: impl Into<String>) {
        let verdict_at = stmts
            .iter()
            .position(|s| !matches!(s, Stmt::Match(_)))
            .unwrap_or(stmts.len());
        stmts.insert(verdict_at, counter());
        self.rules.push(PlannedRule {
            chain: chain.to_string(),
            stmts,
            comment: sanitize_comment(&comment.into()),
        });
    }

    pub fn to_nftables(&self) -> Nftables<'static> {
        let mut objs: Vec<NfObject<'static>> = Vec::new();
        let table = || Table {
            family: FAMILY,
            name: TABLE.into(),
            handle: None,
        };
        objs.push(NfObject::CmdObject(NfCmd::Add(
            NfListObject::Table(table()),
        )));
        objs.push(NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(
            table(),
        ))));
        objs.push(NfObject::CmdObject(NfCmd::Add(
            NfListObject::Table(table()),
        )));
        for c in &self.chains {
            objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(
                chain_object(c),
            ))));
        }
        for s in &self.sets {
            objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Set(
                Box::new(s.clone()),
            ))));
        }
        for r in &self.rules {
            objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(
                rule_object(r),
            ))));
        }
        Nftables {
            objects: Cow::Owned(objs),
        }
    }
}

pub(crate) fn chain_object(c: &PlannedChain) -> Chain<'static> {
    let mut ch = Chain {
        family: FAMILY,
        table: TABLE.into(),
        name: Cow::Owned(c.name.clone()),
        ..Chain::default()
    };
    if let Some((t, hook, prio, policy)) = c.base {
        ch._type = Some(t);
        ch.hook = Some(hook);
        ch.prio = Some(prio);
        ch.policy = Some(policy);
    }
    ch
}

pub(crate) fn rule_object(r: &PlannedRule) -> schema::Rule<'static> {
    schema::Rule {
        family: FAMILY,
        table: TABLE.into(),
        chain: Cow::Owned(r.chain.clone()),
        expr: Cow::Owned(r.stmts.clone()),
        handle: None,
        index: None,
        comment: Some(Cow::Owned(r.comment.clone())),
    }
}

impl Build<'_> {
    fn zone_if(&self, z: Zone) -> Option<&str> {
        match z {
            Zone::Net => Some(&self.cfg.public.name),
            Zone::Loc => Some(&self.cfg.private.name),
            Zone::Fw => None,
        }
    }

    fn chains(&self, rs: &mut Ruleset, balancing: bool) {
        use NfChainPolicy::{Accept, Drop};
        rs.chain(
            "mangle_pre",
            Some((NfChainType::Filter, NfHook::Prerouting, PRIO_MANGLE, Accept)),
        );
        rs.chain(
            "dstnat",
            Some((NfChainType::NAT, NfHook::Prerouting, PRIO_DSTNAT, Accept)),
        );
        if balancing {
            rs.chain(BALANCE_CHAIN, None);
        }
        rs.chain(
            "input",
            Some((NfChainType::Filter, NfHook::Input, PRIO_FILTER, Drop)),
        );
        rs.chain(
            "forward",
            Some((NfChainType::Filter, NfHook::Forward, PRIO_FILTER, Drop)),
        );
        rs.chain(
            "output",
            Some((NfChainType::Filter, NfHook::Output, PRIO_FILTER, Accept)),
        );
        rs.chain(
            "srcnat",
            Some((NfChainType::NAT, NfHook::Postrouting, PRIO_SRCNAT, Accept)),
        );
        for (from, to) in PAIRS {
            rs.chain(&pair_chain(*from, *to), None);
        }
    }

    /// The origin's tcrules: `meta mark set N` in prerouting, before NAT and IPVS look.
    fn marks(&self, rs: &mut Ruleset) {
        for m in &self.cfg.firewall.marks {
            if m.dest_is_public && self.public.is_none() {
                continue;
            }
            let mut s = Vec::new();
            if let Some(src) = m.source {
                s.push(saddr(src));
            }
            if let Some(dst) = m.dest {
                s.push(daddr(dst));
            }
            match (m.proto, m.ports.is_empty()) {
                (Some(p), false) => s.push(dport(p, &m.ports)),
                (Some(p), true) => s.push(l4proto(p)),
                (None, _) => {}
            }
            s.push(set_mark(m.mark));
            rs.rule("mangle_pre", s, origin_comment(self.cfg, &m.origin));
        }
    }

    /// Port forwards: DNAT on the public address only, from the net side.
    /// Neighbouring single-port forwards of one protocol share one rule with
    /// a map `dport : address . port`.
    fn dstnat(&self, rs: &mut Ruleset) {
        let Some(public) = self.public else { return };
        let fwds = &self.cfg.firewall.forwards;
        let mut i = 0;
        while i < fwds.len() {
            let f = &fwds[i];
            let single = |g: &crate::config::model::PortForward| {
                g.port.first == g.port.last && g.proto == f.proto && g.source == f.source
            };
            let mut end = i + 1;
            if single(f) {
                while end < fwds.len() && single(&fwds[end]) {
                    end += 1;
                }
            }
            let mut s = vec![iif(&self.cfg.public.name)];
            if let Some(src) = f.source {
                s.push(saddr(src));
            }
            s.push(daddr(public.into()));
            if end - i < 2 {
                s.push(dport(f.proto, &[f.port]));
                s.push(dnat(f.to, f.to_port));
                rs.rule("dstnat", s, origin_comment(self.cfg, &f.origin));
                i += 1;
                continue;
            }
            let mut seen = std::collections::BTreeSet::new();
            // The first forward for a port wins, as it would with one rule each.
            let entries: Vec<(u16, std::net::Ipv4Addr, u16)> = fwds[i..end]
                .iter()
                .filter(|g| seen.insert(g.port.first))
                .map(|g| (g.port.first, g.to, g.to_port.unwrap_or(g.port.first)))
                .collect();
            s.push(dnat_map(f.proto, &entries));
            let comment = format!(
                "{} .. {} ({} forwards)",
                origin_comment(self.cfg, &f.origin),
                origin_comment(self.cfg, &fwds[end - 1].origin),
                end - i
            );
            rs.rule("dstnat", s, comment);
            i = end;
        }
    }

    /// Accepts that come before any zone logic, common to input and forward.
    fn conntrack(&self, rs: &mut Ruleset, chain: &str) {
        rs.rule(
            chain,
            vec![ct_state(&["established", "related"]), accept()],
            "built-in: replies to allowed traffic",
        );
        rs.rule(
            chain,
            vec![ct_state(&["invalid"]), drop()],
            "built-in: invalid packets",
        );
    }

    fn input(&self, rs: &mut Ruleset, balancer: Option<&NftBalancer>) {
        let fw = &self.cfg.firewall;
        self.conntrack(rs, "input");
        rs.rule("input", vec![iif("lo"), accept()], "built-in: loopback");
        rs.rule(
            "input",
            vec![
                matches(payload("icmp", "type"), names(ICMP_ESSENTIAL)),
                accept(),
            ],
            "built-in: icmp errors and path mtu",
        );
        rs.rule(
            "input",
            vec![
                matches(payload("icmpv6", "type"), names(ICMPV6_ESSENTIAL)),
                accept(),
            ],
            "built-in: icmpv6 errors, path mtu, neighbour discovery",
        );
        if let Some(bal) = balancer {
            balance::render_unbalanced(self.cfg, bal, rs);
        }
        let loc = &self.cfg.private.name;
        if self.cfg.dhcp.enabled {
            rs.rule(
                "input",
                vec![
                    iif(loc),
                    dport(crate::config::model::Proto::Udp, &[PortRange::single(67)]),
                    accept(),
                ],
                "built-in: dhcp from loc (dhcp.enabled)",
            );
        }
        if self.cfg.tftp.is_some() {
            // The transfer itself runs from a new server port: its first
            // packet leaves through output (fw to loc), and the client's
            // ACKs come back as replies, accepted by conntrack above.
            rs.rule(
                "input",
                vec![
                    iif(loc),
                    dport(crate::config::model::Proto::Udp, &[PortRange::single(69)]),
                    accept(),
                ],
                "built-in: tftp from loc ([tftp])",
            );
        }
        if self.cfg.dns.is_some() {
            // Forwarded queries leave through output; their answers come
            // back as replies, accepted by conntrack above.
            for proto in [
                crate::config::model::Proto::Udp,
                crate::config::model::Proto::Tcp,
            ] {
                rs.rule(
                    "input",
                    vec![iif(loc), dport(proto, &[PortRange::single(53)]), accept()],
                    "built-in: dns from loc ([dns])",
                );
            }
        }
        // On loopback the port needs no rule (lo is accepted); on the LAN
        // address it is opened from loc only.
        if let Some(m) = self.cfg.metrics.filter(|m| !m.ip().is_loopback()) {
            rs.rule(
                "input",
                vec![
                    iif(loc),
                    dport(
                        crate::config::model::Proto::Tcp,
                        &[PortRange::single(m.port())],
                    ),
                    accept(),
                ],
                "built-in: metrics from loc ([metrics] listen)",
            );
        }
        if let Some(ha) = &self.cfg.ha {
            // keepalived's adverts (IP protocol 112, by number: the box may
            // have no /etc/protocols) and the IPVS connection sync (udp
            // 8848), from the other head node only.
            let from_peer = || vec![iif(&ha.interface), saddr(ha.peer.into())];
            let mut vrrp = from_peer();
            vrrp.extend([l4proto_number(112), accept()]);
            rs.rule("input", vrrp, "built-in: vrrp from the peer ([ha])");
            let mut sync = from_peer();
            sync.extend([
                dport(crate::config::model::Proto::Udp, &[PortRange::single(8848)]),
                accept(),
            ]);
            rs.rule("input", sync, "built-in: ipvs sync from the peer ([ha])");
        }
        if fw.ssh_from_loc {
            rs.rule(
                "input",
                vec![
                    iif(loc),
                    dport(crate::config::model::Proto::Tcp, &[PortRange::single(22)]),
                    accept(),
                ],
                "built-in: ssh from loc (firewall.ssh_from_loc)",
            );
        }
        rs.rule(
            "input",
            vec![
                iif(loc),
                matches(payload("icmp", "type"), text("echo-request")),
                accept(),
            ],
            "built-in: ping from loc",
        );
        rs.rule(
            "input",
            vec![
                iif(loc),
                matches(payload("icmpv6", "type"), text("echo-request")),
                accept(),
            ],
            "built-in: ping6 from loc",
        );
        for z in [Zone::Net, Zone::Loc] {
            if let Some(name) = self.zone_if(z) {
                rs.rule(
                    "input",
                    vec![iif(name), jump(&pair_chain(z, Zone::Fw))],
                    format!("built-in: zone {z} to fw"),
                );
            }
        }
    }

    fn forward(&self, rs: &mut Ruleset, balancer: Option<&NftBalancer>) {
        let fw = &self.cfg.firewall;
        if !fw.ipv6_forward {
            rs.rule(
                "forward",
                vec![ipv6_only(), drop()],
                "built-in: no ipv6 forwarding (firewall.ipv6_forward = false)",
            );
        }
        rs.rule(
            "forward",
            vec![ct_state(&["established", "related"]), accept()],
            "built-in: replies to allowed traffic",
        );
        // Before the invalid drop: IPVS NAT replies from the real servers are
        // conntrack `new` or `invalid`, never `established`, unless
        // net.ipv4.vs.conntrack=1, so loc->net must be judged on its own.
        let (net, loc) = (&self.cfg.public.name, &self.cfg.private.name);
        rs.rule(
            "forward",
            vec![iif(loc), oif(net), jump(&pair_chain(Zone::Loc, Zone::Net))],
            "built-in: zone loc to net (before the invalid drop, for IPVS NAT replies)",
        );
        rs.rule(
            "forward",
            vec![ct_state(&["invalid"]), drop()],
            "built-in: invalid packets",
        );
        rs.rule(
            "forward",
            vec![
                matches(payload("icmp", "type"), names(ICMP_ESSENTIAL)),
                accept(),
            ],
            "built-in: icmp errors and path mtu",
        );
        if fw.ipv6_forward {
            rs.rule(
                "forward",
                vec![
                    matches(payload("icmpv6", "type"), names(&ICMPV6_ESSENTIAL[..4])),
                    accept(),
                ],
                "built-in: icmpv6 errors and path mtu",
            );
        }
        for f in &fw.forwards {
            let port = match f.to_port {
                Some(p) => crate::config::model::PortRange::single(p),
                None => f.port,
            };
            let mut s = vec![iif(net), oif(loc), ct_dnat()];
            if let Some(src) = f.source {
                s.push(saddr(src));
            }
            s.push(daddr(f.to.into()));
            s.push(dport(f.proto, &[port]));
            s.push(accept());
            rs.rule("forward", s, origin_comment(self.cfg, &f.origin));
        }
        if let Some(bal) = balancer {
            balance::render_forward(self.cfg, bal, rs);
        }
        rs.rule(
            "forward",
            vec![iif(net), oif(loc), jump(&pair_chain(Zone::Net, Zone::Loc))],
            "built-in: zone net to loc",
        );
    }

    fn output(&self, rs: &mut Ruleset) {
        rs.rule("output", vec![oif("lo"), accept()], "built-in: loopback");
        for z in [Zone::Net, Zone::Loc] {
            if let Some(name) = self.zone_if(z) {
                rs.rule(
                    "output",
                    vec![oif(name), jump(&pair_chain(Zone::Fw, z))],
                    format!("built-in: zone fw to {z}"),
                );
            }
        }
    }

    /// User rules in their zone-pair chain, in file order, then the pair's policy.
    fn pairs(&self, rs: &mut Ruleset) {
        let fw = &self.cfg.firewall;
        let v6_open = self.cfg.public.address6.is_some();
        for &(from, to) in PAIRS {
            let chain = pair_chain(from, to);
            for r in fw.rules.iter().filter(|r| r.from == from && r.to == to) {
                let mut s = Vec::new();
                // IPv6 from net is denied unless the box has a public v6
                // address configured; rules with addresses are IPv4 anyway.
                if from == Zone::Net && !v6_open && r.source.is_none() && r.dest.is_none() {
                    s.push(ipv4_only());
                }
                if let Some(src) = r.source {
                    s.push(saddr(src));
                }
                if let Some(dst) = r.dest {
                    s.push(daddr(dst));
                }
                match (r.proto, r.ports.is_empty()) {
                    (Some(p), false) => s.push(dport(p, &r.ports)),
                    (Some(p), true) => s.push(l4proto(p)),
                    (None, _) => {}
                }
                let mut comment = origin_comment(self.cfg, &r.origin);
                if let Some(c) = &r.comment {
                    comment = format!("{comment} {c}");
                }
                self.verdict(rs, &chain, s, r.action, r.proto, comment);
            }
            let policy = fw
                .policies
                .get(&(from, to))
                .copied()
                .unwrap_or(Action::Reject);
            if from == Zone::Net && fw.log_drops && policy != Action::Accept {
                rs.rule(
                    &chain,
                    vec![
                        limit_per_minute(10, 5),
                        log(format!("headnode {from}-{to} {policy}: ")),
                    ],
                    format!("policy {from} to {to}: log (firewall.log_drops)"),
                );
            }
            self.verdict(
                rs,
                &chain,
                vec![],
                policy,
                None,
                format!("policy {from} to {to}"),
            );
        }
    }

    /// Accept/drop, or reject the shorewall way: tcp gets a reset, the rest an ICMP error.
    fn verdict(
        &self,
        rs: &mut Ruleset,
        chain: &str,
        mut s: Vec<Stmt>,
        action: Action,
        proto: Option<crate::config::model::Proto>,
        comment: String,
    ) {
        use crate::config::model::Proto;
        match action {
            Action::Accept => {
                s.push(accept());
                rs.rule(chain, s, comment);
            }
            Action::Drop => {
                s.push(drop());
                rs.rule(chain, s, comment);
            }
            Action::Reject => match proto {
                Some(Proto::Tcp) => {
                    s.push(reject_tcp());
                    rs.rule(chain, s, comment);
                }
                Some(_) => {
                    s.push(reject_icmpx());
                    rs.rule(chain, s, comment);
                }
                None => {
                    let mut tcp = s.clone();
                    tcp.push(l4proto(Proto::Tcp));
                    tcp.push(reject_tcp());
                    rs.rule(chain, tcp, comment.clone());
                    s.push(reject_icmpx());
                    rs.rule(chain, s, comment);
                }
            },
        }
    }

    fn srcnat(&self, rs: &mut Ruleset, balancer: Option<&NftBalancer>) {
        let fw = &self.cfg.firewall;
        let net = &self.cfg.public.name;
        let lan = self.cfg.private_net();
        match fw.nat {
            Nat::None => {}
            Nat::Masquerade => rs.rule(
                "srcnat",
                vec![oif(net), saddr(lan), masquerade()],
                "built-in: masquerade loc to net (firewall.masquerade)",
            ),
            Nat::Snat(a) => rs.rule(
                "srcnat",
                vec![oif(net), saddr(lan), snat(a)],
                "built-in: snat loc to net (firewall.snat)",
            ),
        }
        if let Some(bal) = balancer {
            balance::render_srcnat(self.cfg, bal, rs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_safe_for_nft_text() {
        assert_eq!(sanitize_comment("a \"b\" \\c"), "a _b_ _c");
        assert!(sanitize_comment(&"x".repeat(300)).len() <= 120);
    }

    #[test]
    fn metrics_port_is_open_from_loc_only_on_the_lan_address() {
        let opens_9100 = |extra: &str| {
            let text = format!("{}{extra}", crate::config::test_text::INTERFACES);
            let cfg = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
            build(&cfg, None).rules.iter().any(|r| {
                let json = serde_json::to_string(&r.stmts).unwrap();
                r.chain == "input" && json.contains("\"eth0\"") && json.contains("9100")
            })
        };
        assert!(!opens_9100(""));
        assert!(!opens_9100("[metrics]\nlisten = \"127.0.0.1:9100\"\n"));
        assert!(opens_9100("[metrics]\nlisten = \"192.168.1.254:9100\"\n"));
    }

    #[test]
    fn tftp_is_open_from_loc_only_when_served() {
        // Port 69 joins DHCP's 67 in one merged `iif eth0 udp dport { 67, 69 }`.
        let opens_69 = |extra: &str| {
            let text = format!("{}{extra}", crate::config::test_text::INTERFACES);
            let cfg = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
            build(&cfg, None).rules.iter().any(|r| {
                let json = serde_json::to_string(&r.stmts).unwrap();
                r.chain == "input" && json.contains("\"eth0\"") && json.contains("69")
            })
        };
        assert!(!opens_69(""));
        assert!(!opens_69("[tftp]\nenabled = false\nroot = \"/srv/tftp\"\n"));
        assert!(opens_69("[tftp]\nroot = \"/srv/tftp\"\n"));
    }

    #[test]
    fn dns_is_open_from_loc_only_when_served() {
        let opens_53 = |extra: &str| {
            let text = format!("{}{extra}", crate::config::test_text::INTERFACES);
            let cfg = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
            let rules = build(&cfg, None).rules;
            let on = |proto: &str| {
                rules.iter().any(|r| {
                    let json = serde_json::to_string(&r.stmts).unwrap();
                    r.chain == "input"
                        && json.contains("\"eth0\"")
                        && json.contains(proto)
                        && json.contains("53")
                })
            };
            (on("udp"), on("tcp"))
        };
        assert_eq!(opens_53(""), (false, false));
        assert_eq!(
            opens_53("[dns]\nenabled = false\ndomain = \"c\"\n"),
            (false, false)
        );
        assert_eq!(opens_53("[dns]\ndomain = \"c\"\n"), (true, true));
    }
}
