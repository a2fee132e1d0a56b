//! Firewall and balancer: policies, rules, marks, forwards, virtual services,
//! and the origin pattern folded into `[[service]]`.

use super::*;

impl<'s> Builder<'s, '_> {
    // ---- firewall and balancer -------------------------------------------

    pub(super) fn firewall_and_balancer(
        &mut self,
        lan: Option<&Lan>,
        public: &Public,
        out: &mut String,
    ) {
        let Some(sw) = self.s.shorewall else {
            // Without shorewall there are no marks: only address-keyed services remain.
            let virtuals = self.s.virtuals.clone();
            self.virtual_blocks(&virtuals, &[], lan, public, out);
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
        self.virtual_blocks(&virtuals, &marks, lan, public, out);
        for s in services {
            s.render(out);
        }
    }

    pub(super) fn virtual_blocks(
        &mut self,
        virtuals: &[Virtual],
        marks: &[Mark],
        lan: Option<&Lan>,
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
                    if let Some(this) = elsewhere(addr, lan, public) {
                        let why = format!(
                            "the virtual service is on {addr}, but {this}; IPVS sees only packets addressed to the box itself"
                        );
                        self.report
                            .error(&v.srcs[0].at, format!("`{}`: {why}", v.srcs[0].text));
                        bl.comment(format!(
                            "FIXME {}: {why}.\nIf {addr} was meant to be this box, write address = \"public\".",
                            v.srcs[0].at
                        ));
                    }
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

    /// scheduler, method, persistence, reals, health, sorry server; a real
    /// without a port takes `default_port`.
    pub(super) fn common_keys(&mut self, v: &Virtual, default_port: Option<u16>, bl: &mut Block) {
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
        match &v.health {
            Some(h) => {
                bl.key_comment(format!(
                    "{}: {}\n(keepalived's timers; it took a server back after one good check)",
                    h.src.at, h.src.text
                ));
                bl.raw("health", health_value(h));
            }
            None => {
                bl.key_comment(format!("{} had no health checks; this one drains a node that stops answering:\nhealth = {{ check = \"tcp\", interval = \"2s\", timeout = \"1s\", rise = 2, fall = 2 }}", v.tool));
            }
        }
        if let Some((a, p)) = v.sorry {
            bl.str("sorry_server", &format!("{}:{p}", self.host_or_addr(a)));
        }
    }

    pub(super) fn real_value(&self, r: &Real, port: u16) -> String {
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

    pub(super) fn host_or_addr(&self, a: Ipv4Addr) -> String {
        self.hosts_out
            .iter()
            .find(|h| h.addr == a)
            .map_or_else(|| a.to_string(), |h| h.name.clone())
    }

    /// The origin pattern: a fwmark service whose one mark is for the public
    /// address and one tcp/udp port, with an accept rule for that port into
    /// the box. Consumes the rule and the mark when it matches.
    pub(super) fn service(
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

    pub(super) fn rule_block(&mut self, r: &Rule, public: &Public) -> Block {
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

    pub(super) fn mark_block(&mut self, m: &Mark, lan: Option<&Lan>, public: &Public) -> Block {
        let mut bl = Block::new("[[firewall.mark]]");
        bl.comment(from(&m.src));
        bl.raw("mark", m.mark.to_string());
        match m.dest {
            Some(d) if d.prefix_len() == 32 && public.is(d.addr()) => {
                bl.str("dest", "public");
            }
            Some(d) => {
                if d.prefix_len() == 32
                    && let Some(this) = elsewhere(d.addr(), lan, public)
                {
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

/// When `addr` is not this box's (neither the public address the inputs name
/// nor the head node's LAN address), what this box has instead.
fn elsewhere(addr: Ipv4Addr, lan: Option<&Lan>, public: &Public) -> Option<String> {
    if lan.is_some_and(|l| l.head == Some(addr) || l.vip == Some(addr)) {
        return None;
    }
    match public {
        Public::Known { ip, from } if *ip != addr => {
            Some(format!("the public interface has {ip} ({from})"))
        }
        Public::Invalid { text, from, .. } => {
            Some(format!("the public interface has {text} ({from})"))
        }
        _ => None,
    }
}

/// `{ check = "tcp", interval = 6, ... }`.
fn health_value(h: &crate::import::draft::Health) -> String {
    let ms = |ms: u64| match ms % 1000 {
        0 => values::duration(ms / 1000),
        _ => quote(&format!("{ms}ms")),
    };
    let mut t = format!("{{ check = {}", quote(h.check));
    if let Some(p) = &h.path {
        t.push_str(&format!(", path = {}", quote(p)));
    }
    if let Some(s) = h.expect_status {
        t.push_str(&format!(", expect_status = {s}"));
    }
    t.push_str(&format!(
        ", interval = {}, timeout = {}, rise = {}, fall = {} }}",
        ms(h.interval),
        ms(h.timeout),
        h.rise,
        h.fall
    ));
    t
}
