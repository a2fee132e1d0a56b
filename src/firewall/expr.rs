//! Small constructors for the `nftables` crate's JSON schema, so the ruleset
//! code reads like nft rules. Every value that reaches nft is built here from
//! a parsed type (`Ipv4Addr`, `Ipv4Net`, `u16`, `u32`), never from config text.

use crate::config::model::{PortRange, Proto};
use ipnet::Ipv4Net;
use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range, SetItem,
};
use nftables::stmt::{
    self, AnonymousCounter, JumpTarget, Mangle, Match, NAT, NATFamily, Operator, Reject,
    RejectType, Statement,
};
use nftables::types::RejectCode;
use std::borrow::Cow;
use std::net::Ipv4Addr;

pub type Expr = Expression<'static>;
pub type Stmt = Statement<'static>;

pub fn payload(protocol: &'static str, field: &'static str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

pub fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub fn ct(key: &'static str) -> Expr {
    Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

pub fn text(s: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(s.into()))
}

pub fn ip(a: Ipv4Addr) -> Expr {
    text(a.to_string())
}

/// An address, or a prefix when the network is wider than one host.
pub fn net(n: Ipv4Net) -> Expr {
    if n.prefix_len() == 32 {
        ip(n.addr())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(ip(n.network())),
            len: u32::from(n.prefix_len()),
        }))
    }
}

fn port_expr(p: PortRange) -> Expr {
    if p.first == p.last {
        Expression::Number(u32::from(p.first))
    } else {
        Expression::Range(Box::new(Range {
            range: [
                Expression::Number(u32::from(p.first)),
                Expression::Number(u32::from(p.last)),
            ],
        }))
    }
}

/// One port, a range, or an anonymous set of them.
pub fn ports(ps: &[PortRange]) -> Expr {
    match ps {
        [one] => port_expr(*one),
        many => set(many.iter().map(|p| port_expr(*p)).collect()),
    }
}

pub fn set(items: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(SetItem::Element).collect(),
    ))
}

pub fn names(items: &[&'static str]) -> Expr {
    set(items.iter().map(|s| text(*s)).collect())
}

pub fn matches(left: Expr, right: Expr) -> Stmt {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

/// `left in right` (needed for flag fields such as `ct state`).
pub fn within(left: Expr, right: Expr) -> Stmt {
    Statement::Match(Match {
        left,
        right,
        op: Operator::IN,
    })
}

pub fn iif(name: &str) -> Stmt {
    matches(meta(MetaKey::Iifname), text(name))
}

pub fn oif(name: &str) -> Stmt {
    matches(meta(MetaKey::Oifname), text(name))
}

pub fn l4proto(p: Proto) -> Stmt {
    matches(meta(MetaKey::L4proto), text(p.name()))
}

/// An IP protocol by number (`meta l4proto 112`), for those without a name here.
pub fn l4proto_number(n: u32) -> Stmt {
    matches(meta(MetaKey::L4proto), Expression::Number(n))
}

pub fn ipv4_only() -> Stmt {
    matches(meta(MetaKey::Nfproto), text("ipv4"))
}

pub fn ipv6_only() -> Stmt {
    matches(meta(MetaKey::Nfproto), text("ipv6"))
}

pub fn saddr(n: Ipv4Net) -> Stmt {
    matches(payload("ip", "saddr"), net(n))
}

pub fn daddr(n: Ipv4Net) -> Stmt {
    matches(payload("ip", "daddr"), net(n))
}

/// `tcp dport 8000` / `udp dport { 53, 67-68 }`; `icmp` has no ports (validation ensures it).
pub fn dport(p: Proto, ps: &[PortRange]) -> Stmt {
    let proto: &'static str = match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
    };
    matches(payload(proto, "dport"), ports(ps))
}

pub fn mark_is(m: u32) -> Stmt {
    matches(meta(MetaKey::Mark), Expression::Number(m))
}

pub fn ct_state(states: &[&'static str]) -> Stmt {
    within(
        ct("state"),
        Expression::List(states.iter().map(|s| text(*s)).collect()),
    )
}

pub fn ct_dnat() -> Stmt {
    within(ct("status"), text("dnat"))
}

pub fn counter() -> Stmt {
    Statement::Counter(stmt::Counter::Anonymous(None::<AnonymousCounter>))
}

pub fn accept() -> Stmt {
    Statement::Accept(None)
}

pub fn drop() -> Stmt {
    Statement::Drop(None)
}

pub fn reject_tcp() -> Stmt {
    Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None)))
}

pub fn reject_icmpx() -> Stmt {
    Statement::Reject(Some(Reject::new(
        Some(RejectType::ICMPX),
        Some(RejectCode::AdminProhibited),
    )))
}

pub fn jump(target: &str) -> Stmt {
    Statement::Jump(JumpTarget {
        target: Cow::Owned(target.to_string()),
    })
}

pub fn goto(target: &str) -> Stmt {
    Statement::Goto(JumpTarget {
        target: Cow::Owned(target.to_string()),
    })
}

pub fn set_mark(m: u32) -> Stmt {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::Number(m),
    })
}

pub fn dnat(addr: Ipv4Addr, port: Option<u16>) -> Stmt {
    Statement::DNAT(Some(NAT {
        addr: Some(ip(addr)),
        family: Some(NATFamily::IP),
        port: port.map(|p| Expression::Number(u32::from(p))),
        flags: None,
    }))
}

pub fn snat(addr: Ipv4Addr) -> Stmt {
    Statement::SNAT(Some(NAT {
        addr: Some(ip(addr)),
        family: Some(NATFamily::IP),
        port: None,
        flags: None,
    }))
}

pub fn masquerade() -> Stmt {
    Statement::Masquerade(None)
}

/// `limit rate N/minute burst B packets`, so a flood cannot fill the log.
pub fn limit_per_minute(rate: u32, burst: u32) -> Stmt {
    Statement::Limit(stmt::Limit {
        rate,
        rate_unit: None,
        per: Some("minute".into()),
        burst: Some(burst),
        burst_unit: Some("packets".into()),
        inv: None,
    })
}

pub fn log(prefix: String) -> Stmt {
    Statement::Log(Some(stmt::Log {
        prefix: Some(Cow::Owned(prefix)),
        group: None,
        snaplen: None,
        queue_threshold: None,
        level: None,
        flags: None,
    }))
}

/// `dnat ip to tcp dport map { 2222 : 192.168.1.101 . 22, ... }`.
pub fn dnat_map(p: Proto, entries: &[(u16, Ipv4Addr, u16)]) -> Stmt {
    let data = Expression::Named(NamedExpression::Set(
        entries
            .iter()
            .map(|(from, to, port)| {
                SetItem::Mapping(
                    Expression::Number(u32::from(*from)),
                    Expression::Named(NamedExpression::Concat(vec![
                        ip(*to),
                        Expression::Number(u32::from(*port)),
                    ])),
                )
            })
            .collect(),
    ));
    Statement::DNAT(Some(NAT {
        addr: Some(Expression::Named(NamedExpression::Map(Box::new(
            nftables::expr::Map {
                key: payload(if p == Proto::Udp { "udp" } else { "tcp" }, "dport"),
                data,
            },
        )))),
        family: Some(NATFamily::IP),
        port: None,
        flags: None,
    }))
}
