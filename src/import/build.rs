//! From what the legacy files say to the config text: pick the LAN and the
//! head node's addresses, check the pieces against each other (a mark for an
//! address that is not this box balances nothing), fold the origin pattern
//! (accept rule + mark + fwmark service) into a `[[service]]`, and write
//! everything else as the low-level blocks.

use super::dhcpd::{Dhcpd, Param, Subnet};
use super::draft::{Key, Mark, Nat, Real, Rule, Source, Virtual};
use super::hosts::Hosts;
use super::report::{Loc, Report};
use super::shorewall::Shorewall;
use super::sysctl::Setting;
use super::toml_out::{Block, push_comment};
use super::values::{self, quote};
use super::{HEADER, Inputs};
use crate::config::model::{Action, Mac, PortRange, Proto, Zone};
use crate::config::parse_mac;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

pub struct Sources<'a> {
    pub inputs: &'a Inputs,
    pub hosts: &'a Hosts,
    pub dhcpd: Option<&'a Dhcpd>,
    pub shorewall: Option<&'a Shorewall>,
    pub virtuals: Vec<Virtual>,
    pub sysctls: Vec<Setting>,
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
    head: Option<Ipv4Addr>,
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
    };
    let lan = s.dhcpd.and_then(|d| b.lan(d));
    let host_blocks = match (s.dhcpd, &lan) {
        (Some(d), lan) => b.hosts(d, lan.as_ref()),
        (None, _) => Vec::new(),
    };
    let public = b.public(lan.as_ref());
    let mut out = String::new();
    b.header(&mut out);
    b.interfaces(lan.as_ref(), &public)
        .into_iter()
        .for_each(|bl| bl.render(&mut out));
    let dhcp = b.dhcp(lan.as_ref());
    if !dhcp.is_blank() {
        dhcp.render(&mut out);
    }
    for h in host_blocks {
        h.render(&mut out);
    }
    b.firewall_and_balancer(lan.as_ref(), &public, &mut out);
    b.sysctl(&mut out);
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
            ("--dhcpd", &i.dhcpd),
            ("--hosts", &i.hosts),
            ("--shorewall", &i.shorewall),
            ("--ipvsadm", &i.ipvsadm),
            ("--sysctl", &i.sysctl),
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

    // ---- the LAN -------------------------------------------------------

    fn lan(&mut self, d: &'s Dhcpd) -> Option<Lan<'s>> {
        let mut parsed: Vec<(&'s Subnet, Ipv4Net)> = Vec::new();
        for sn in &d.subnets {
            let net = values::ipv4(&sn.network).and_then(|n| {
                let mask = values::ipv4(&sn.netmask)?;
                let len = values::prefix_of(&mask)
                    .ok_or_else(|| format!("netmask {mask} is not contiguous"))?;
                Ipv4Net::new(n, len).map_err(|e| e.to_string())
            });
            match net {
                Ok(n) if n.trunc() == n => parsed.push((sn, n)),
                Ok(n) => self.report.error(
                    &sn.at,
                    format!(
                        "subnet {} has host bits set for netmask {} (did you mean {}?)",
                        sn.network,
                        sn.netmask,
                        n.trunc()
                    ),
                ),
                Err(why) => self.report.error(&sn.at, format!("subnet: {why}")),
            }
        }
        // The LAN is the subnet holding the reservations and ranges.
        let hosts = self.s.hosts;
        let score = |net: &Ipv4Net, sn: &Subnet| {
            d.hosts
                .iter()
                .filter_map(|h| h.fixed.as_ref()?.values.first())
                .filter_map(|a| hosts.resolve(a).ok())
                .filter(|a| net.contains(a))
                .count()
                + sn.ranges.len()
        };
        let best = parsed
            .iter()
            .enumerate()
            .max_by_key(|(i, (sn, net))| (score(net, sn), usize::MAX - i))
            .map(|(i, _)| i)?;
        for (i, (sn, net)) in parsed.iter().enumerate() {
            if i != best {
                self.report.skip(
                    &sn.at,
                    format!(
                        "subnet {net}: headnode serves DHCP on one LAN ({}), not this subnet",
                        parsed[best].1
                    ),
                );
            }
        }
        let (subnet, net) = parsed[best];
        let param = |k: &str| subnet.params.get(k).or_else(|| d.globals.get(k));
        let head = match param("routers") {
            Some(p) => self.head_from_routers(p, net),
            None => {
                let fixed: Vec<Ipv4Addr> = d
                    .hosts
                    .iter()
                    .filter_map(|h| hosts.resolve(h.fixed.as_ref()?.values.first()?).ok())
                    .collect();
                let mine: Vec<_> = hosts
                    .entries
                    .iter()
                    .filter_map(|e| e.addr.as_ref().ok().map(|a| (e, *a)))
                    .filter(|(_, a)| net.contains(a) && !fixed.contains(a))
                    .collect();
                match mine.as_slice() {
                    [(e, a)] => {
                        self.report.note(&e.at, format!("no `option routers`: {a} ({}) is taken as the head node's LAN address", e.names.join(" ")));
                        Some(*a)
                    }
                    _ => {
                        self.report.error(&subnet.at, "no `option routers`: the head node's LAN address is unknown; the config leaves interfaces.private.address to you");
                        None
                    }
                }
            }
        };
        for (k, want) in [
            ("subnet-mask", net.netmask()),
            ("broadcast-address", net.broadcast()),
        ] {
            if let Some(p) = param(k) {
                let v = p.values.first().map(String::as_str).unwrap_or("");
                match values::ipv4(v) {
                    Ok(a) if a == want => {}
                    Ok(a) => self.report.error(&p.at, format!("option {k} {a} does not match subnet {net} ({want}); headnode sends {want}")),
                    Err(why) => self.report.error(&p.at, format!("option {k}: {why}")),
                }
            }
        }
        Some(Lan { subnet, net, head })
    }

    fn head_from_routers(&mut self, p: &Param, net: Ipv4Net) -> Option<Ipv4Addr> {
        let first = p.values.first()?;
        match self.s.hosts.resolve(first) {
            Ok(a) if net.contains(&a) && a != net.network() && a != net.broadcast() => Some(a),
            Ok(a) => {
                self.report.error(&p.at, format!("option routers {a} is not a host address of {net}; the head node's LAN address is unknown"));
                None
            }
            Err(why) => {
                self.report.error(&p.at, format!("option routers: {why}"));
                None
            }
        }
    }

    // ---- hosts ---------------------------------------------------------

    fn hosts(&mut self, d: &Dhcpd, lan: Option<&Lan>) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut names: HashMap<String, Loc> = HashMap::new();
        let mut macs: HashMap<Mac, Loc> = HashMap::new();
        let mut addrs: HashMap<Ipv4Addr, Loc> = HashMap::new();
        for h in &d.hosts {
            let mut bl = Block::new("[[host]]");
            bl.comment(format!("{}: host {}", h.at, h.name));
            let mut problems: Vec<String> = Vec::new();
            // The address first: the hosts file may have to supply the name.
            let addr = match &h.fixed {
                None => {
                    self.report.skip(
                        &h.at,
                        format!(
                            "host {}: no fixed-address; headnode reservations need one",
                            h.name
                        ),
                    );
                    continue;
                }
                Some(p) => {
                    if p.values.len() > 1 {
                        self.report.skip(
                            &p.at,
                            format!(
                                "host {}: only the first fixed-address ({}) is translated",
                                h.name, p.values[0]
                            ),
                        );
                    }
                    match self.s.hosts.resolve(&p.values[0]) {
                        Ok(a) => Some((p, a)),
                        Err(why) => {
                            self.report
                                .error(&p.at, format!("host {}: fixed-address: {why}", h.name));
                            problems.push(format!("{}: {why}", p.at));
                            None
                        }
                    }
                }
            };
            let name = self.host_name(h, addr.map(|(_, a)| a));
            if let Some(first) = names.get(&name) {
                let why = format!("host name {name} is already used at {first}");
                self.report.error(&h.at, why.clone());
                problems.push(why);
            }
            let mac = match &h.mac {
                None => {
                    self.report.skip(
                        &h.at,
                        format!(
                            "host {}: no `hardware ethernet`; headnode reserves by MAC",
                            h.name
                        ),
                    );
                    continue;
                }
                Some(p) => {
                    let text = p.values.first().map(String::as_str).unwrap_or("");
                    match parse_mac(text) {
                        Ok(m) => {
                            if let Some(first) = macs.get(&m) {
                                let why = format!("MAC {m} is already reserved at {first}");
                                self.report.error(
                                    &p.at,
                                    format!("host {}: {why} (dhcpd accepts this silently)", h.name),
                                );
                                problems.push(why);
                            }
                            macs.entry(m).or_insert_with(|| p.at.clone());
                            Some((p, m))
                        }
                        Err(why) => {
                            let why = format!("\"{text}\" is not a MAC address: {why}");
                            self.report.error(&p.at, format!("host {}: {why}", h.name));
                            problems.push(why);
                            None
                        }
                    }
                }
            };
            if let Some((p, a)) = addr {
                if let Some(first) = addrs.get(&a) {
                    let why = format!("{a} is already reserved at {first}");
                    self.report.error(
                        &p.at,
                        format!("host {}: {why} (dhcpd accepts this silently)", h.name),
                    );
                    problems.push(why);
                }
                addrs.entry(a).or_insert_with(|| p.at.clone());
                if let Some(lan) = lan {
                    let why = if !lan.net.contains(&a) {
                        Some(format!("{a} is outside the LAN {}", lan.net))
                    } else if a == lan.net.network() || a == lan.net.broadcast() {
                        Some(format!(
                            "{a} is the network or broadcast address of {}",
                            lan.net
                        ))
                    } else if Some(a) == lan.head {
                        Some(format!("{a} is the head node's own address"))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.report.error(&p.at, format!("host {}: {why}", h.name));
                        problems.push(why);
                    }
                }
            }
            bl.str("name", &name);
            if let Some((_, m)) = mac {
                bl.str("mac", &m.to_string());
            }
            if let Some((_, a)) = addr {
                bl.str("address", &a.to_string());
            }
            self.host_params(h, &mut bl);
            if problems.is_empty()
                && let (Some(_), Some((_, a))) = (mac, addr)
            {
                names.insert(name.clone(), h.at.clone());
                self.hosts_out.push(HostOut { name, addr: a });
            } else {
                bl.disable(problems.join("; "));
            }
            blocks.push(bl);
        }
        blocks
    }

    /// The dhcpd host name when it is a valid label, else the hosts file's
    /// name for its address, else `option host-name`, else the name made valid.
    fn host_name(&mut self, h: &super::dhcpd::HostDecl, addr: Option<Ipv4Addr>) -> String {
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() <= 63
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !n.starts_with('-')
                && !n.ends_with('-')
                && values::ipv4(n).is_err()
                && n != "public"
        };
        let listed = addr.and_then(|a| self.s.hosts.by_addr(a));
        if valid(&h.name) {
            if let Some(e) = listed
                && !e
                    .names
                    .iter()
                    .any(|n| n.split('.').next() == Some(h.name.as_str()))
            {
                self.report.note(
                    &e.at,
                    format!(
                        "the hosts file calls {} {}; the config uses the dhcpd name {}",
                        e.text,
                        e.names.join(" "),
                        h.name
                    ),
                );
            }
            return h.name.clone();
        }
        let alt = listed
            .and_then(|e| e.short_name().map(str::to_string))
            .or_else(|| {
                h.params
                    .get("host-name")
                    .and_then(|p| p.values.first().cloned())
            })
            .map(|n| n.split('.').next().unwrap_or(&n).to_string())
            .filter(|n| valid(n));
        let name = alt.unwrap_or_else(|| {
            let mut n: String = h
                .name
                .split('.')
                .next()
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            n = n.trim_matches('-').chars().take(63).collect();
            if n.is_empty() || !valid(&n) {
                format!("host-{n}")
            } else {
                n
            }
        });
        self.report.note(
            &h.at,
            format!(
                "host {} is not a valid headnode host name; it is called {name}",
                h.name
            ),
        );
        name
    }

    fn host_params(&mut self, h: &super::dhcpd::HostDecl, bl: &mut Block) {
        for (k, p) in &h.params {
            match *k {
                "default-lease-time" => match secs(p) {
                    Ok(s) => {
                        bl.raw("lease_time", values::duration(s));
                    }
                    Err(why) => self.report.error(&p.at, why),
                },
                "next-server" => self.addr_key(p, "next_server", bl),
                "filename" => {
                    bl.str("filename", &p.values.join(" "));
                }
                "domain-name-servers" => {
                    let list = self.addr_list(p);
                    bl.strs("dns_servers", &list);
                }
                "domain-name" => {
                    bl.str("domain_name", &p.values.join(" "));
                }
                "host-name" => {}
                other => self.report.skip(
                    &p.at,
                    format!("host {}: per-host {other} is not translated", h.name),
                ),
            }
        }
    }

    fn addr_key(&mut self, p: &Param, key: &str, bl: &mut Block) {
        match self
            .s
            .hosts
            .resolve(p.values.first().map(String::as_str).unwrap_or(""))
        {
            Ok(a) => {
                bl.str(key, &a.to_string());
            }
            Err(why) => {
                self.report.error(&p.at, why.clone());
                bl.fixme_key(format!("{}: {why}", p.at), key, quote(&p.values.join(" ")));
            }
        }
    }

    fn addr_list(&mut self, p: &Param) -> Vec<String> {
        let mut out = Vec::new();
        for v in &p.values {
            match self.s.hosts.resolve(v) {
                Ok(a) => out.push(a.to_string()),
                Err(why) => self
                    .report
                    .error(&p.at, format!("{why}; left out of the list")),
            }
        }
        out
    }

    // ---- the public address --------------------------------------------

    /// The hosts entry that names this box on the public side: the one entry
    /// outside the LAN that is no DHCP host; with several, the one the marks or
    /// virtual services point at; with none, the single address those point at.
    fn public(&mut self, lan: Option<&Lan>) -> Public {
        let dhcp: Vec<Ipv4Addr> = self.hosts_out.iter().map(|h| h.addr).collect();
        let dhcp_names: Vec<&str> = self
            .s
            .dhcpd
            .map(|d| d.hosts.iter().map(|h| h.name.as_str()).collect())
            .unwrap_or_default();
        let option_values: Vec<String> = self
            .s
            .dhcpd
            .map(|d| {
                let subnets = d.subnets.iter().flat_map(|s| s.params.values());
                let hosts = d.hosts.iter().flat_map(|h| h.params.values());
                d.globals
                    .values()
                    .chain(subnets)
                    .chain(hosts)
                    .flat_map(|p| p.values.clone())
                    .collect()
            })
            .unwrap_or_default();
        let candidates: Vec<&super::hosts::Entry> = self
            .s
            .hosts
            .entries
            .iter()
            .filter(|e| !e.text.starts_with("127.") && e.text != "0.0.0.0")
            // Servers the LAN is pointed at (DNS, NTP, PXE) are other machines.
            .filter(|e| {
                !option_values
                    .iter()
                    .any(|v| *v == e.text || e.names.contains(v))
            })
            .filter(|e| match &e.addr {
                Ok(a) => !dhcp.contains(a) && !lan.is_some_and(|l| l.net.contains(a)),
                Err(_) => !e.names.iter().any(|n| dhcp_names.contains(&n.as_str())),
            })
            .collect();
        let pointed: Vec<(Ipv4Addr, Loc)> = self.pointed_at(lan);
        let chosen = match candidates.as_slice() {
            [one] => Some(*one),
            [] => None,
            many => {
                let hit: Vec<_> = many
                    .iter()
                    .filter(|e| {
                        e.addr
                            .as_ref()
                            .is_ok_and(|a| pointed.iter().any(|(p, _)| p == a))
                    })
                    .collect();
                match hit.as_slice() {
                    [one] => Some(**one),
                    _ => {
                        let at = &many[0].at;
                        self.report.note(at, format!("{} hosts entries lie outside the LAN; cannot tell which is this box, so interfaces.public.address = \"auto\"", many.len()));
                        return Public::Unknown;
                    }
                }
            }
        };
        if let Some(e) = chosen {
            let from = format!("{} {}", e.at, e.names.join(" "));
            return match &e.addr {
                Ok(ip) => Public::Known { ip: *ip, from },
                Err(why) => {
                    self.report.note(&e.at, format!("{} is taken to be this box's public address (the hosts entry outside the LAN); as it is invalid, the config reads the address from the interface (address = \"auto\")", e.text));
                    Public::Invalid {
                        text: e.text.clone(),
                        from,
                        why: why.clone(),
                    }
                }
            };
        }
        let mut unique: Vec<&(Ipv4Addr, Loc)> = Vec::new();
        for p in &pointed {
            if !unique.iter().any(|u| u.0 == p.0) {
                unique.push(p);
            }
        }
        match unique.as_slice() {
            [(ip, at)] => {
                self.report.note(
                    at,
                    format!("no hosts entry names this box; {ip} is taken as its public address"),
                );
                Public::Known {
                    ip: *ip,
                    from: at.to_string(),
                }
            }
            _ => Public::Unknown,
        }
    }

    /// Single addresses the marks and virtual services are for, outside the LAN.
    fn pointed_at(&self, lan: Option<&Lan>) -> Vec<(Ipv4Addr, Loc)> {
        let mut out = Vec::new();
        if let Some(sw) = self.s.shorewall {
            for m in &sw.marks {
                if let Some(d) = m.dest.filter(|d| d.prefix_len() == 32) {
                    out.push((d.addr(), m.src.at.clone()));
                }
            }
        }
        for v in &self.s.virtuals {
            if let Key::Addr(_, a, _) = v.key {
                out.push((a, v.srcs[0].at.clone()));
            }
        }
        out.retain(|(a, _)| !lan.is_some_and(|l| l.net.contains(a)));
        out
    }

    // ---- interfaces and dhcp ---------------------------------------------

    fn interfaces(&mut self, lan: Option<&Lan>, public: &Public) -> Vec<Block> {
        let sw = self.s.shorewall;
        let mut pubb = Block::new("[interfaces.public]");
        let mut privb = Block::new("[interfaces.private]");
        for (bl, slot, zone) in [
            (&mut pubb, sw.and_then(|s| s.public_if.as_ref()), "net"),
            (&mut privb, sw.and_then(|s| s.private_if.as_ref()), "loc"),
        ] {
            match slot {
                Some((at, name)) => {
                    bl.key_comment(format!("{at}: zone {zone}"));
                    bl.str("name", name);
                }
                None => {
                    let why = match sw {
                        None => {
                            "no --shorewall directory: the interface names are unknown".to_string()
                        }
                        Some(_) => format!(
                            "the shorewall interfaces file names no interface for zone {zone}"
                        ),
                    };
                    if sw.is_none() && zone == "net" {
                        let at = Loc {
                            file: "import".into(),
                            line: 0,
                        };
                        self.report.error(&at, why.clone());
                    }
                    bl.fixme_key(why, "name", quote("FIXME"));
                }
            }
        }
        match public {
            Public::Known { ip, from } => {
                pubb.key_comment(format!(
                    "{from}\n\
                     names this box on the public side. \"auto\" reads the address and prefix\n\
                     from the interface when headnode applies; pin it as \"{ip}/PREFIX\"."
                ));
                pubb.str("address", "auto");
            }
            Public::Invalid { from, why, .. } => {
                pubb.key_comment(format!(
                    "FIXME {from}\n\
                     names this box on the public side, but {why}.\n\
                     \"auto\" reads the address from the interface; correct the hosts file or pin\n\
                     the real address here (\"ADDRESS/PREFIX\")."
                ));
                pubb.str("address", "auto");
            }
            Public::Unknown => {
                pubb.key_comment(
                    "no input names this box's public address: read it from the interface",
                );
                pubb.str("address", "auto");
            }
        }
        match lan {
            Some(Lan {
                net,
                head: Some(h),
                subnet,
            }) => {
                privb.key_comment(format!(
                    "{}: subnet {net}, the head node is its router",
                    subnet.at
                ));
                privb.str("address", &format!("{h}/{}", net.prefix_len()));
            }
            Some(Lan {
                net,
                head: None,
                subnet,
            }) => {
                privb.fixme_key(
                    format!(
                        "{}: subnet {net}: the head node's own address on it is unknown",
                        subnet.at
                    ),
                    "address",
                    quote(&format!("ADDRESS/{}", net.prefix_len())),
                );
            }
            None => {
                let why = "no dhcpd subnet: the head node's LAN address is unknown".to_string();
                let at = Loc {
                    file: "import".into(),
                    line: 0,
                };
                self.report.error(&at, why.clone());
                privb.fixme_key(why, "address", quote("ADDRESS/PREFIX"));
            }
        }
        vec![pubb, privb]
    }

    fn dhcp(&mut self, lan: Option<&Lan>) -> Block {
        let mut bl = Block::new("[dhcp]");
        let Some(d) = self.s.dhcpd else {
            bl.comment("no --dhcpd file: headnode's DHCP server stays off");
            bl.raw("enabled", "false");
            return bl;
        };
        let empty = BTreeMap::new();
        let sp = lan.map_or(&empty, |l| &l.subnet.params);
        let param = |k: &str| sp.get(k).or_else(|| d.globals.get(k));
        if let Some(p) = param("routers")
            && p.values.len() > 1
        {
            bl.key_comment(from_param(p, "option routers"));
            let list = self.addr_list(p);
            bl.strs("routers", &list);
        }
        for (k, key) in [
            ("domain-name-servers", "dns_servers"),
            ("ntp-servers", "ntp_servers"),
        ] {
            if let Some(p) = param(k) {
                bl.key_comment(from_param(p, &format!("option {k}")));
                let list = self.addr_list(p);
                bl.strs(key, &list);
            }
        }
        if let Some(p) = param("domain-name") {
            bl.key_comment(from_param(p, "option domain-name"));
            bl.str("domain_name", &p.values.join(" "));
        }
        if let Some(p) = param("domain-search") {
            bl.key_comment(from_param(p, "option domain-search"));
            bl.strs("domain_search", &p.values);
        }
        // dhcpd's defaults (12 h, at most 24 h) are headnode's too.
        let mut lease = 43200;
        for (k, key, default) in [
            ("default-lease-time", "lease_time", 43200),
            ("max-lease-time", "max_lease_time", 0),
        ] {
            if let Some(p) = param(k) {
                match secs(p) {
                    Ok(s) => {
                        if k == "default-lease-time" {
                            lease = s;
                        }
                        let default = if default == 0 {
                            lease.max(86400)
                        } else {
                            default
                        };
                        if s != default {
                            bl.key_comment(from_param(p, k));
                            bl.raw(key, values::duration(s));
                        }
                    }
                    Err(why) => self.report.error(&p.at, why),
                }
            }
        }
        if let Some(p) = param("next-server") {
            bl.key_comment(from_param(p, "next-server"));
            self.addr_key(p, "next_server", &mut bl);
        }
        if let Some(p) = param("filename") {
            bl.key_comment(from_param(p, "filename"));
            bl.str("filename", &p.values.join(" "));
        }
        for p in [param("host-name")].into_iter().flatten() {
            self.report
                .skip(&p.at, "host-name outside a host block is not translated");
        }
        if let Some(lan) = lan {
            for (i, (at, a, z)) in lan.subnet.ranges.iter().enumerate() {
                if i > 0 {
                    self.report
                        .skip(at, format!("range {a} {z}: headnode has one dynamic pool"));
                    continue;
                }
                match (values::ipv4(a), values::ipv4(z)) {
                    (Ok(x), Ok(y)) => {
                        bl.key_comment(format!("{at}: range {a} {z};"));
                        bl.raw(
                            "pool",
                            format!(
                                "{{ start = {}, end = {} }}",
                                quote(&x.to_string()),
                                quote(&y.to_string())
                            ),
                        );
                    }
                    (Err(why), _) | (_, Err(why)) => {
                        self.report.error(at, format!("range: {why}"));
                        bl.fixme_key(
                            format!("{at}: {why}"),
                            "pool",
                            format!("{{ start = {}, end = {} }}", quote(a), quote(z)),
                        );
                    }
                }
            }
        }
        for (at, text) in &d.commented_ranges {
            let words: Vec<&str> = text.trim_end_matches(';').split_whitespace().collect();
            if let [_, a, z] = words.as_slice() {
                bl.key_comment(format!(
                    "{at}: `#{text}` is commented out,\n\
                     so there is no pool here either. To serve that range:\n\
                     pool = {{ start = \"{a}\", end = \"{z}\" }}"
                ));
            }
        }
        bl
    }

    // ---- firewall and balancer -------------------------------------------

    fn firewall_and_balancer(&mut self, lan: Option<&Lan>, public: &Public, out: &mut String) {
        let Some(sw) = self.s.shorewall else {
            // Without shorewall there are no marks: only address-keyed services remain.
            let virtuals = self.s.virtuals.clone();
            self.virtual_blocks(&virtuals, &[], public, out);
            return;
        };
        let mut fw = Block::new("[firewall]");
        match &sw.nat {
            Some(Nat::Snat(src, ip)) => {
                fw.key_comment(from(src));
                fw.str("snat", &ip.to_string());
            }
            Some(Nat::None) => {
                fw.key_comment("the shorewall directory has no masq/snat entry");
                fw.raw("masquerade", "false");
            }
            Some(Nat::Masquerade(src)) => {
                fw.key_comment(format!("{}\n(masquerade is headnode's default)", from(src)));
            }
            None => {}
        }
        if !fw.is_empty() {
            fw.render(out);
        }
        for p in &sw.policies {
            let mut bl = Block::new("[[firewall.policy]]");
            bl.comment(from(&p.src));
            bl.str("from", p.from.name())
                .str("to", p.to.name())
                .str("action", &p.action.to_string());
            bl.render(out);
        }
        let mut rules: Vec<Rule> = sw.rules.clone();
        let mut marks: Vec<Mark> = sw.marks.clone();
        let mut virtuals = self.s.virtuals.clone();
        let mut services = Vec::new();
        // Fold the origin pattern into [[service]] blocks.
        let mut i = 0;
        while i < virtuals.len() {
            match self.service(&virtuals[i], &mut rules, &mut marks, public) {
                Some(bl) => {
                    services.push(bl);
                    virtuals.remove(i);
                }
                None => i += 1,
            }
        }
        for r in &rules {
            self.rule_block(r, public).render(out);
        }
        let balanced: Vec<u32> = virtuals
            .iter()
            .filter_map(|v| match v.key {
                Key::Fwmark(m) => Some(m),
                _ => None,
            })
            .collect();
        for m in &marks {
            if !balanced.contains(&m.mark) {
                self.report.skip(&m.src.at, format!("`{}`: no ipvsadm fwmark service uses mark {}; headnode sets marks only for balancing", m.src.text, m.mark));
                continue;
            }
            self.mark_block(m, lan, public).render(out);
        }
        for f in &sw.forwards {
            let mut bl = Block::new("[[firewall.forward]]");
            bl.comment(from(&f.src));
            bl.str("proto", f.proto.name());
            port_key(&mut bl, "port", f.port);
            bl.str("to", &self.host_or_addr(f.to));
            if let Some(p) = f.to_port {
                bl.raw("to_port", p.to_string());
            }
            if let Some(s) = f.source {
                bl.str("source", &s.to_string());
            }
            bl.render(out);
        }
        self.virtual_blocks(&virtuals, &marks, public, out);
        for s in services {
            s.render(out);
        }
    }

    fn virtual_blocks(
        &mut self,
        virtuals: &[Virtual],
        marks: &[Mark],
        public: &Public,
        out: &mut String,
    ) {
        for v in virtuals {
            let mut bl = Block::new("[[balancer.virtual]]");
            for s in &v.srcs {
                bl.comment(from(s));
            }
            let default_port = match v.key {
                Key::Fwmark(m) => {
                    let of_mark: Vec<&Mark> = marks.iter().filter(|x| x.mark == m).collect();
                    if of_mark.is_empty() {
                        self.report.skip(&v.srcs[0].at, format!("`{}`: no tcrules/mangle mark sets {m}, so this service never received a packet", v.srcs[0].text));
                        continue;
                    }
                    bl.str("name", &format!("fwmark-{m}"));
                    bl.raw("fwmark", m.to_string());
                    single_port(&of_mark)
                }
                Key::Addr(proto, addr, port) => {
                    bl.str("name", &format!("{proto}-{port}"));
                    bl.str("proto", proto.name());
                    let a = if public.is(addr) {
                        "public".to_string()
                    } else {
                        addr.to_string()
                    };
                    bl.str("address", &a);
                    bl.raw("port", port.to_string());
                    Some(port)
                }
            };
            if v.reals.is_empty() {
                self.report.skip(
                    &v.srcs[0].at,
                    format!("`{}`: the service has no real servers", v.srcs[0].text),
                );
                continue;
            }
            self.common_keys(v, default_port, &mut bl);
            bl.render(out);
        }
    }

    /// scheduler, method, persistence, reals; a real without a port takes `default_port`.
    fn common_keys(&mut self, v: &Virtual, default_port: Option<u16>, bl: &mut Block) {
        bl.str("scheduler", &v.scheduler);
        bl.str("method", &v.method.to_string());
        if let Some(p) = v.persistence {
            bl.raw("persistence", values::duration(u64::from(p)));
        }
        // Only [[balancer.virtual]] has this; service() declines virtuals with a netmask.
        if let Some(n) = v.netmask.filter(|n| *n != Ipv4Addr::BROADCAST) {
            bl.str("persistence_netmask", &n.to_string());
        }
        let mut reals = Vec::new();
        let mut missing = Vec::new();
        for r in &v.reals {
            match r.port.or(default_port) {
                Some(port) => reals.push(self.real_value(r, port)),
                None => {
                    self.report.error(&r.src.at, format!("`{}`: the real server has no port and the marks do not name a single one", r.src.text));
                    missing.push(format!("{}: real server needs a port", r.src.at));
                }
            }
        }
        if missing.is_empty() {
            bl.raw("real", format!("[{}]", reals.join(", ")));
        } else {
            bl.disable(missing.join("; "));
            bl.raw("real", format!("[{}]", reals.join(", ")));
        }
        bl.key_comment("ipvsadm had no health checks; this one drains a node that stops answering:\nhealth = { check = \"tcp\", interval = \"2s\", timeout = \"1s\", rise = 2, fall = 2 }");
    }

    fn real_value(&self, r: &Real, port: u16) -> String {
        let host = self.host_or_addr(r.addr);
        if r.weight == 1 && r.upper == 0 && r.lower == 0 {
            return quote(&format!("{host}:{port}"));
        }
        let mut t = format!(
            "{{ host = {}, port = {port}, weight = {}",
            quote(&host),
            r.weight
        );
        if r.upper > 0 {
            t.push_str(&format!(", upper_threshold = {}", r.upper));
        }
        if r.lower > 0 {
            t.push_str(&format!(", lower_threshold = {}", r.lower));
        }
        t.push_str(" }");
        t
    }

    fn host_or_addr(&self, a: Ipv4Addr) -> String {
        self.hosts_out
            .iter()
            .find(|h| h.addr == a)
            .map_or_else(|| a.to_string(), |h| h.name.clone())
    }

    /// The origin pattern: a fwmark service whose one mark is for the public
    /// address and one tcp/udp port, with an accept rule for that port into
    /// the box. Consumes the rule and the mark when it matches.
    fn service(
        &mut self,
        v: &Virtual,
        rules: &mut Vec<Rule>,
        marks: &mut Vec<Mark>,
        public: &Public,
    ) -> Option<Block> {
        let Key::Fwmark(m) = v.key else { return None };
        let of_mark: Vec<usize> = (0..marks.len()).filter(|i| marks[*i].mark == m).collect();
        let [mi] = of_mark[..] else { return None };
        let mk = &marks[mi];
        let dest = mk.dest.filter(|d| d.prefix_len() == 32)?;
        let proto = mk.proto.filter(|p| *p != Proto::Icmp)?;
        let [port] = mk.ports.as_slice() else {
            return None;
        };
        let port = *port;
        if !public.is(dest.addr()) || mk.source.is_some() || port.first != port.last {
            return None;
        }
        if v.netmask.is_some_and(|n| n != Ipv4Addr::BROADCAST) || v.reals.is_empty() {
            return None;
        }
        let accepts = |r: &Rule| {
            r.action == Action::Accept
                && r.to == Zone::Fw
                && r.proto == Some(proto)
                && r.ports == [port]
                && r.source.is_none()
                && r.dest.is_none_or(|d| d == dest)
        };
        let ri = rules
            .iter()
            .position(|r| accepts(r) && r.from == Zone::Net)
            .or_else(|| rules.iter().position(accepts))?;
        let rule = rules.remove(ri);
        let mark = marks.remove(mi);
        let port = port.first;
        let mut bl = Block::new("[[service]]");
        bl.comment(format!(
            "{proto} {port} on the public address, balanced by IPVS fwmark {m}. From:"
        ));
        bl.comment(from(&rule.src));
        bl.comment(from(&mark.src));
        for s in &v.srcs {
            bl.comment(from(s));
        }
        bl.str("name", &format!("{proto}-{port}"));
        bl.str("proto", proto.name());
        bl.raw("port", port.to_string());
        if rule.from != Zone::Net {
            bl.str("from", rule.from.name());
        }
        bl.raw("mark", m.to_string());
        self.common_keys(v, Some(port), &mut bl);
        Some(bl)
    }

    fn rule_block(&mut self, r: &Rule, public: &Public) -> Block {
        let mut bl = Block::new("[[firewall.rule]]");
        bl.comment(from(&r.src));
        bl.str("action", &r.action.to_string())
            .str("from", r.from.name())
            .str("to", r.to.name());
        if let Some(p) = r.proto {
            bl.str("proto", p.name());
        }
        ports_key(&mut bl, &r.ports);
        if let Some(s) = r.source {
            bl.str("source", &net_text(s, public, self));
        }
        if let Some(d) = r.dest {
            bl.str("dest", &net_text(d, public, self));
        }
        bl
    }

    fn mark_block(&mut self, m: &Mark, lan: Option<&Lan>, public: &Public) -> Block {
        let mut bl = Block::new("[[firewall.mark]]");
        bl.comment(from(&m.src));
        bl.raw("mark", m.mark.to_string());
        match m.dest {
            Some(d) if d.prefix_len() == 32 && public.is(d.addr()) => {
                bl.str("dest", "public");
            }
            Some(d) => {
                let local = d.prefix_len() == 32 && lan.is_some_and(|l| l.head == Some(d.addr()));
                if d.prefix_len() == 32 && !local {
                    let this = match public {
                        Public::Known { ip, from } => {
                            format!("the public interface has {ip} ({from})")
                        }
                        Public::Invalid { text, from, .. } => {
                            format!("the public interface has {text} ({from})")
                        }
                        Public::Unknown => String::new(),
                    };
                    if !this.is_empty() {
                        let why = format!(
                            "marks packets to {}, but {this}; IPVS balances only packets addressed to the box itself, so fwmark {} would get none",
                            d.addr(),
                            m.mark
                        );
                        self.report
                            .error(&m.src.at, format!("`{}`: {why}", m.src.text));
                        bl.comment(format!(
                            "FIXME {}: {why}.\nIf {} was meant to be this box, write dest = \"public\" (or fold the rule,\nthis mark and the virtual service into one [[service]] block).",
                            m.src.at,
                            d.addr()
                        ));
                    }
                }
                bl.str("dest", d.to_string().trim_end_matches("/32"));
            }
            None => {
                bl.str("dest", "0.0.0.0/0");
            }
        }
        if let Some(s) = m.source {
            bl.str("source", &s.to_string());
        }
        if let Some(p) = m.proto {
            bl.str("proto", p.name());
        }
        ports_key(&mut bl, &m.ports);
        bl
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

/// The one port all marks of a fwmark service name, if they agree.
fn single_port(marks: &[&Mark]) -> Option<u16> {
    let mut port = None;
    for m in marks {
        match m.ports.as_slice() {
            [p] if p.first == p.last && port.is_none_or(|q| q == p.first) => port = Some(p.first),
            _ => return None,
        }
    }
    port
}

fn port_text(p: PortRange) -> String {
    if p.first == p.last {
        p.first.to_string()
    } else {
        quote(&format!("{}-{}", p.first, p.last))
    }
}

fn port_key(bl: &mut Block, key: &str, p: PortRange) {
    bl.raw(key, port_text(p));
}

fn ports_key(bl: &mut Block, ports: &[PortRange]) {
    if !ports.is_empty() {
        let items: Vec<String> = ports.iter().map(|p| port_text(*p)).collect();
        bl.raw("ports", format!("[{}]", items.join(", ")));
    }
}

/// An address as the config writes it: `public`, a host name, or the address/network.
fn net_text(n: Ipv4Net, public: &Public, b: &Builder) -> String {
    if n.prefix_len() == 32 {
        if public.is(n.addr()) {
            return "public".into();
        }
        return b.host_or_addr(n.addr());
    }
    n.to_string()
}
