//! The translated pieces before they become config text, each remembering the
//! legacy line it came from so the config can say so in a comment.

use super::report::Loc;
use crate::config::model::{Action, Method, PortRange, Proto, Zone};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Where a piece came from: the location and the line as written.
#[derive(Debug, Clone)]
pub struct Source {
    pub at: Loc,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub src: Source,
    pub from: Zone,
    pub to: Zone,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub src: Source,
    pub action: Action,
    pub from: Zone,
    pub to: Zone,
    pub proto: Option<Proto>,
    pub ports: Vec<PortRange>,
    pub source: Option<Ipv4Net>,
    pub dest: Option<Ipv4Net>,
}

#[derive(Debug, Clone)]
pub struct Mark {
    pub src: Source,
    pub mark: u32,
    pub dest: Option<Ipv4Net>,
    pub source: Option<Ipv4Net>,
    pub proto: Option<Proto>,
    pub ports: Vec<PortRange>,
}

#[derive(Debug, Clone)]
pub struct Forward {
    pub src: Source,
    pub proto: Proto,
    pub port: PortRange,
    pub to: Ipv4Addr,
    pub to_port: Option<u16>,
    pub source: Option<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Fwmark(u32),
    Addr(Proto, Ipv4Addr, u16),
}

#[derive(Debug, Clone)]
pub struct Virtual {
    /// The `-A` line and then every `-a` line.
    pub srcs: Vec<Source>,
    pub key: Key,
    pub scheduler: String,
    pub method: Method,
    /// Persistence timeout in seconds (`-p`).
    pub persistence: Option<u32>,
    pub netmask: Option<Ipv4Addr>,
    pub reals: Vec<Real>,
    /// The tool that ran the service (`ipvsadm`, `keepalived`), for comments.
    pub tool: &'static str,
    /// keepalived's check, one for the whole service as headnode has it.
    pub health: Option<Health>,
    /// keepalived's `sorry_server`.
    pub sorry: Option<(Ipv4Addr, u16)>,
}

/// A health check as `[[balancer.virtual]] health` writes it.
#[derive(Debug, Clone)]
pub struct Health {
    /// The check's opening line and what it says (for the comment).
    pub src: Source,
    /// `tcp` or `http`.
    pub check: &'static str,
    pub path: Option<String>,
    pub expect_status: Option<u16>,
    /// Milliseconds.
    pub interval: u64,
    /// Milliseconds.
    pub timeout: u64,
    pub rise: u32,
    pub fall: u32,
}

impl Health {
    /// Everything but where it came from: two real servers' checks are the same check.
    pub fn same(&self, other: &Health) -> bool {
        (
            self.check,
            &self.path,
            self.expect_status,
            self.interval,
            self.timeout,
            self.rise,
            self.fall,
        ) == (
            other.check,
            &other.path,
            other.expect_status,
            other.interval,
            other.timeout,
            other.rise,
            other.fall,
        )
    }
}

#[derive(Debug, Clone)]
pub struct Real {
    pub src: Source,
    pub addr: Ipv4Addr,
    /// `None` when ipvsadm gave none (a fwmark service then keeps the packet's port).
    pub port: Option<u16>,
    pub weight: u32,
    pub upper: u32,
    pub lower: u32,
}

/// The NAT setting: masquerade, SNAT to an address, or none.
#[derive(Debug, Clone)]
pub enum Nat {
    Masquerade(Source),
    Snat(Source, Ipv4Addr),
    /// The shorewall directory has no masq/snat entries.
    None,
}
