//! From what the legacy files say to the config text: pick the LAN, the two
//! interfaces and the head node's addresses, check the pieces against each other (a mark for an
//! address that is not this box balances nothing), fold the origin pattern
//! (accept rule + mark + fwmark service) into a `[[service]]`, and write
//! everything else as the low-level blocks.

use crate::config::model::{Action, Mac, PortRange, Proto, Zone};
use crate::config::parse_mac;
use crate::import::dhcpd::{Dhcpd, Param, Subnet};
use crate::import::draft::{Key, Mark, Nat, Real, Rule, Source, Virtual};
use crate::import::hosts::Hosts;
use crate::import::ifupdown::Ifupdown;
use crate::import::report::{Loc, Report};
use crate::import::shorewall::Shorewall;
use crate::import::sysctl::Setting;
use crate::import::tftpd::Tftpd;
use crate::import::toml_out::{Block, push_comment};
use crate::import::values::{self, quote};
use crate::import::{HEADER, Inputs};
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

pub struct Sources<'a> {
    pub inputs: &'a Inputs,
    pub interfaces: Option<&'a Ifupdown>,
    pub hosts: &'a Hosts,
    pub dhcpd: Option<&'a Dhcpd>,
    pub shorewall: Option<&'a Shorewall>,
    pub virtuals: Vec<Virtual>,
    /// keepalived.conf's VRRP instances (the first gives `[ha]` its settings).
    pub vrrp: Vec<crate::import::keepalived::Instance>,
    pub sysctls: Vec<Setting>,
    pub tftpd: Option<Tftpd>,
    /// dnsmasq's DNS side.
    pub dns: Option<crate::import::dnsmasq::Dns>,
}

/// What the inputs say about this box's public address.
#[derive(Debug, Clone)]
enum Public {
    /// `from` says where: `hosts:1 (node.example.com)`.
    Known {
        ip: Ipv4Addr,
        from: String,
    },
    Invalid {
        text: String,
        from: String,
        why: String,
    },
    Unknown,
}

impl Public {
    fn is(&self, ip: Ipv4Addr) -> bool {
        matches!(self, Public::Known { ip: p, .. } if *p == ip)
    }
}

/// The private LAN: its network, and the head node's address on it.
struct Lan<'a> {
    subnet: &'a Subnet,
    net: Ipv4Net,
    /// The head node's own address on it.
    head: Option<Ipv4Addr>,
    /// keepalived's virtual address on it (the nodes' gateway with `[ha]`).
    vip: Option<Ipv4Addr>,
}

/// A `[[host]]` that made it into the config.
struct HostOut {
    name: String,
    addr: Ipv4Addr,
}

pub fn build(s: Sources, report: &mut Report) -> (String, Option<Ipv4Addr>) {
    let mut b = Builder {
        s: &s,
        report,
        hosts_out: Vec::new(),
        ifs: ifaces::Roles::default(),
    };
    let lan = s.dhcpd.and_then(|d| b.lan(d));
    let host_blocks = match (s.dhcpd, &lan) {
        (Some(d), lan) => b.hosts(d, lan.as_ref()),
        (None, _) => Vec::new(),
    };
    b.ifs = b.roles(lan.as_ref());
    let public = b.public(lan.as_ref());
    // With [ha] the services are on the virtual public address.
    let (ha, service_public) = b.ha(lan.as_ref(), &public);
    let mut out = String::new();
    b.header(&mut out);
    b.interfaces(lan.as_ref(), &public)
        .into_iter()
        .for_each(|bl| bl.render(&mut out));
    let dhcp = b.dhcp(lan.as_ref());
    if !dhcp.is_blank() {
        dhcp.render(&mut out);
    }
    if let Some(d) = s.dhcpd {
        for bl in b.boot_blocks(d) {
            bl.render(&mut out);
        }
    }
    for h in host_blocks {
        h.render(&mut out);
    }
    b.firewall_and_balancer(lan.as_ref(), &service_public, &mut out);
    b.sysctl(&mut out);
    b.tftp(&mut out);
    b.dns(&mut out);
    if let Some(bl) = ha {
        bl.render(&mut out);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    let ip = match public {
        Public::Known { ip, .. } => Some(ip),
        _ => None,
    };
    (out, ip)
}

struct Builder<'s, 'r> {
    s: &'s Sources<'s>,
    report: &'r mut Report,
    hosts_out: Vec<HostOut>,
    /// The public and private stanzas of /etc/network/interfaces.
    ifs: ifaces::Roles<'s>,
}

fn from(src: &Source) -> String {
    format!("{}: {}", src.at, src.text)
}

impl<'s> Builder<'s, '_> {
    fn header(&self, out: &mut String) {
        out.push_str(HEADER);
        out.push_str(" from:\n");
        let i = self.s.inputs;
        for (flag, p) in [
            ("--interfaces", &i.interfaces),
            ("--dhcpd", &i.dhcpd),
            ("--hosts", &i.hosts),
            ("--shorewall", &i.shorewall),
            ("--ipvsadm", &i.ipvsadm),
            ("--sysctl", &i.sysctl),
            ("--tftpd-hpa", &i.tftpd),
            ("--dnsmasq", &i.dnsmasq),
            ("--keepalived", &i.keepalived),
        ] {
            if let Some(p) = p {
                out.push_str(&format!("#   {flag} {}\n", p.display()));
            }
        }
        push_comment(
            out,
            "Comments say which legacy line each block comes from; the import report\n\
             lists what was not translated. Resolve every FIXME before `headnode apply`.",
        );
        out.push('\n');
    }

    fn sysctl(&mut self, out: &mut String) {
        if self.s.sysctls.is_empty() {
            return;
        }
        let mut bl = Block::new("[sysctl]");
        for s in &self.s.sysctls {
            bl.key_comment(format!("{}: {} = {}", s.at, s.key, s.value));
            let v = match s.value.parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) => quote(&s.value),
            };
            bl.raw(&quote(&s.key), v);
        }
        bl.render(out);
    }
}

impl Builder<'_, '_> {
    fn tftp(&mut self, out: &mut String) {
        let Some(t) = &self.s.tftpd else { return };
        let mut bl = Block::new("[tftp]");
        bl.key_comment(format!("{}: TFTP_DIRECTORY=\"{}\"", t.at, t.root));
        bl.raw("root", quote(&t.root));
        if let Some((b, at)) = &t.max_blksize {
            bl.key_comment(format!("{at}: --blocksize {b}"));
            bl.raw("max_blksize", b.to_string());
        }
        bl.render(out);
    }
}

impl Builder<'_, '_> {
    /// `[dns]` from dnsmasq's `domain=` and `server=` lines.
    fn dns(&mut self, out: &mut String) {
        let Some(d) = &self.s.dns else { return };
        let Some((at, domain)) = &d.domain else {
            if let Some((at, _)) = d.upstream.first() {
                self.report.skip(
                    at,
                    "dnsmasq.conf sets no domain=: [dns] needs one; add [dns] domain to answer the hosts' names",
                );
            }
            return;
        };
        let mut bl = Block::new("[dns]");
        bl.key_comment(format!("{at}: domain={domain}"));
        bl.str("domain", domain);
        if !d.upstream.is_empty() {
            for (at, s) in &d.upstream {
                bl.key_comment(format!("{at}: server={s}"));
            }
            let list: Vec<&str> = d.upstream.iter().map(|(_, s)| s.as_str()).collect();
            bl.strs("upstream", &list);
        }
        bl.render(out);
    }
}

fn from_param(p: &Param, what: &str) -> String {
    format!("{}: {what} {}", p.at, p.values.join(", "))
}

fn secs(p: &Param) -> Result<u64, String> {
    let v = p.values.first().map(String::as_str).unwrap_or("");
    v.parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("lease time \"{v}\" is not a positive number of seconds"))
}

mod balance;
mod ha;
mod hosts;
mod ifaces;
mod lan;
mod public;
