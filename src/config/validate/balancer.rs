//! `[balancer]` with its `[[balancer.virtual]]` services, and `[[service]]`,
//! the shorthand that expands to a fwmark virtual service plus the firewall
//! rule and mark that feed it: both share the scheduler, real server and
//! health check parts, so they live together.

use super::{Names, PLACEHOLDER_PUBLIC, Validator};
use crate::config::model::*;
use crate::config::raw::*;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

impl Validator<'_> {
    pub(super) fn balancer(&mut self, raw: &RawBalancer, names: &Names) -> Balancer {
        let backend = raw
            .backend
            .as_ref()
            .and_then(|s| {
                self.choice(
                    s,
                    "balancer.backend",
                    &[
                        ("auto", Backend::Auto),
                        ("ipvs", Backend::Ipvs),
                        ("nftables", Backend::Nftables),
                    ],
                )
            })
            .unwrap_or(Backend::Auto);
        let mut services = Vec::new();
        for (i, rv) in raw.virtuals.iter().enumerate() {
            let line = self.line(&rv.span());
            let v = rv.get_ref();
            let f = |k: &str| format!("balancer.virtual[{i}].{k}");
            let key = match (&v.fwmark, &v.proto, &v.address, &v.port) {
                (Some(m), None, None, None) => self
                    .count(m, &f("fwmark"), 1, u32::MAX as i64)
                    .map(|mark| VirtualKey::Fwmark { mark }),
                (None, Some(p), Some(a), Some(port)) => {
                    let proto = self.proto(p, &f("proto"));
                    let address = self.addr_or_name(a, &f("address"), names);
                    let port = self.port(port, &f("port"));
                    match (proto, address, port) {
                        (Some(Proto::Icmp), _, _) => {
                            self.err(
                                p.span(),
                                &f("proto"),
                                "IPVS balances tcp or udp".into(),
                                None,
                            );
                            None
                        }
                        (Some(proto), Some(address), Some(port)) => Some(VirtualKey::Addr {
                            proto,
                            address,
                            port,
                        }),
                        _ => None,
                    }
                }
                _ => {
                    self.err(
                        rv.span(),
                        &format!("balancer.virtual[{i}]"),
                        "a virtual service needs either fwmark, or proto + address + port".into(),
                        Some("e.g. fwmark = 1, or proto = \"tcp\", address = \"public\", port = 8000"),
                    );
                    None
                }
            };
            let default_port = match &key {
                Some(VirtualKey::Addr { port, .. }) => Some(*port),
                _ => None,
            };
            let name = v
                .name
                .as_ref()
                .and_then(|n| self.text(n, &f("name"), 64))
                .unwrap_or_else(|| key.as_ref().map(|k| k.to_string()).unwrap_or_default());
            let common = self.virtual_common(
                &f(""),
                VirtualRaw {
                    scheduler: &v.scheduler,
                    method: &v.method,
                    persistence: &v.persistence,
                    persistence_netmask: &v.persistence_netmask,
                    real: &v.real,
                    health: &v.health,
                    sorry_server: &v.sorry_server,
                },
                default_port,
                names,
                rv.span(),
            );
            if let (Some(key), Some(c)) = (key, common) {
                services.push(c.into_service(
                    name,
                    key,
                    Origin {
                        line,
                        service: None,
                    },
                ));
            }
        }
        let mut seen: BTreeMap<VirtualKey, usize> = BTreeMap::new();
        for (i, s) in services.iter().enumerate() {
            if let Some(first) = seen.insert(s.key.clone(), s.origin.line) {
                let span = raw.virtuals[i].span();
                self.err(
                    span,
                    &format!("balancer.virtual[{i}]"),
                    format!(
                        "virtual service {} is already defined on line {first}",
                        s.key
                    ),
                    None,
                );
            }
        }
        Balancer {
            backend,
            exclusive: raw.exclusive.unwrap_or(false),
            services,
        }
    }

    fn virtual_common(
        &mut self,
        prefix: &str,
        v: VirtualRaw<'_>,
        default_port: Option<u16>,
        names: &Names,
        span: Range<usize>,
    ) -> Option<VirtualCommon> {
        let f = |k: &str| format!("{prefix}{k}");
        let scheduler = match v.scheduler {
            Some(s) if SCHEDULERS.contains(&s.get_ref().as_str()) => s.get_ref().clone(),
            Some(s) => {
                self.err(
                    s.span(),
                    &f("scheduler"),
                    format!("\"{}\" is not an IPVS scheduler", s.get_ref()),
                    Some(&format!("use one of: {}", SCHEDULERS.join(", "))),
                );
                String::new()
            }
            None => "rr".into(),
        };
        let method = v
            .method
            .as_ref()
            .and_then(|m| {
                self.choice(
                    m,
                    &f("method"),
                    &[
                        ("masq", Method::Masq),
                        ("nat", Method::Masq),
                        ("route", Method::Route),
                        ("dr", Method::Route),
                        ("tunnel", Method::Tunnel),
                        ("ipip", Method::Tunnel),
                    ],
                )
            })
            .unwrap_or(Method::Masq);
        let persistence = v
            .persistence
            .as_ref()
            .and_then(|d| self.duration_or_zero(d, &f("persistence")))
            .unwrap_or(Duration::ZERO);
        let persistence_netmask = v
            .persistence_netmask
            .as_ref()
            .and_then(|s| self.ipv4(s, &f("persistence_netmask")))
            .unwrap_or(Ipv4Addr::BROADCAST);
        if v.real.is_empty() {
            self.err(
                span,
                &f("real"),
                "no real servers".into(),
                Some("add real = [\"node1:8000\", \"node2:8000\"]"),
            );
        }
        let mut reals = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, r) in v.real.iter().enumerate() {
            let field = f(&format!("real[{i}]"));
            if let Some(real) = self.real(r, &field, default_port, names) {
                if !seen.insert((real.address, real.port)) {
                    self.err(
                        r.span(),
                        &field,
                        format!("{}:{} is listed twice", real.address, real.port),
                        None,
                    );
                }
                reals.push(real);
            }
        }
        let health = v.health.as_ref().and_then(|h| self.health(h, &f("health")));
        let sorry_server = v.sorry_server.as_ref().and_then(|s| {
            let (host, port) = match s.get_ref().rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse::<u16>().ok()),
                None => (s.get_ref().clone(), default_port),
            };
            let Some(port) = port.filter(|p| *p > 0) else {
                self.err(
                    s.span(),
                    &f("sorry_server"),
                    format!("\"{}\" needs a port", s.get_ref()),
                    Some("write host:port, e.g. \"192.168.1.50:8000\""),
                );
                return None;
            };
            let spanned = S::new(s.span(), host);
            self.addr_or_name(&spanned, &f("sorry_server"), names)
                .map(|a| (a, port))
        });
        if scheduler.is_empty() || reals.len() != v.real.len() {
            return None;
        }
        Some(VirtualCommon {
            scheduler,
            method,
            persistence,
            persistence_netmask,
            reals,
            health,
            sorry_server,
        })
    }

    fn real(
        &mut self,
        r: &S<RawReal>,
        field: &str,
        default_port: Option<u16>,
        names: &Names,
    ) -> Option<RealServer> {
        let (host, port, weight, upper, lower) = match r.get_ref() {
            RawReal::Short(s) => {
                let (h, p) = match s.rsplit_once(':') {
                    Some((h, p)) => match p.parse::<u16>() {
                        Ok(p) if p > 0 => (h.to_string(), Some(p)),
                        _ => {
                            self.err(
                                r.span(),
                                field,
                                format!("\"{s}\": port \"{p}\" is not 1-65535"),
                                Some("write host:port, e.g. \"node1:8000\""),
                            );
                            return None;
                        }
                    },
                    None => (s.clone(), None),
                };
                (h, p, 1, 0, 0)
            }
            RawReal::Full(full) => {
                let port = match full.port {
                    Some(p) => match u16::try_from(p).ok().filter(|p| *p > 0) {
                        Some(p) => Some(p),
                        None => {
                            self.err(
                                r.span(),
                                field,
                                format!("port {p} is out of range"),
                                Some("ports are 1-65535"),
                            );
                            return None;
                        }
                    },
                    None => None,
                };
                let num = |v: &mut Self, n: Option<i64>, what: &str, dflt: u32| match n {
                    None => Some(dflt),
                    Some(n) if (0..=65535).contains(&n) => Some(n as u32),
                    Some(n) => {
                        v.err(
                            r.span(),
                            field,
                            format!("{what} {n} is out of range"),
                            Some(&format!("{what} is 0-65535")),
                        );
                        None
                    }
                };
                let weight = num(self, full.weight, "weight", 1)?;
                let upper = num(self, full.upper_threshold, "upper_threshold", 0)?;
                let lower = num(self, full.lower_threshold, "lower_threshold", 0)?;
                (full.host.clone(), port, weight, upper, lower)
            }
        };
        let spanned = S::new(r.span(), host.clone());
        let address = self.addr_or_name(&spanned, field, names)?;
        let Some(port) = port.or(default_port) else {
            self.err(
                r.span(),
                field,
                format!("real server \"{host}\" needs a port"),
                Some("write host:port, e.g. \"node1:8000\""),
            );
            return None;
        };
        Some(RealServer {
            name: host,
            address,
            port,
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
        })
    }

    fn health(&mut self, s: &S<RawHealth>, field: &str) -> Option<HealthCheck> {
        let h = s.get_ref();
        let f = |k: &str| format!("{field}.{k}");
        let kind = match h.check.get_ref().as_str() {
            "tcp" => Some(CheckKind::Tcp),
            "http" => {
                let path = h
                    .path
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_else(|| "/".into());
                if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace()) {
                    let span = h.path.as_ref().map_or(s.span(), |p| p.span());
                    self.err(
                        span,
                        &f("path"),
                        format!("\"{path}\" is not an HTTP path"),
                        Some("start with '/', no spaces, e.g. \"/health\""),
                    );
                }
                let expect_status = h
                    .expect_status
                    .as_ref()
                    .and_then(|c| self.count(c, &f("expect_status"), 100, 599))
                    .unwrap_or(200) as u16;
                Some(CheckKind::Http {
                    path,
                    expect_status,
                })
            }
            other => {
                self.err(
                    h.check.span(),
                    &f("check"),
                    format!("\"{other}\" is not a health check"),
                    Some("use \"tcp\" (connect) or \"http\" (GET, status code)"),
                );
                None
            }
        };
        let interval = h
            .interval
            .as_ref()
            .and_then(|d| self.duration(d, &f("interval")))
            .unwrap_or(Duration::from_secs(2));
        let timeout = h
            .timeout
            .as_ref()
            .and_then(|d| self.duration(d, &f("timeout")))
            .unwrap_or(Duration::from_secs(1).min(interval));
        if timeout > interval {
            let span = h.timeout.as_ref().map_or(s.span(), |t| t.span());
            self.err(
                span,
                &f("timeout"),
                format!("timeout {timeout:?} is longer than the interval {interval:?}"),
                Some("a check must finish before the next one starts"),
            );
        }
        let rise = h
            .rise
            .as_ref()
            .and_then(|c| self.count(c, &f("rise"), 1, 100))
            .unwrap_or(2);
        let fall = h
            .fall
            .as_ref()
            .and_then(|c| self.count(c, &f("fall"), 1, 100))
            .unwrap_or(3);
        Some(HealthCheck {
            kind: kind?,
            interval,
            timeout,
            rise,
            fall,
        })
    }

    pub(super) fn services(
        &mut self,
        raw: &[S<RawService>],
        names: &Names,
        firewall: &mut Firewall,
        balancer: &mut Balancer,
    ) -> Vec<ServiceSummary> {
        let mut used_marks: BTreeSet<u32> = firewall.marks.iter().map(|m| m.mark).collect();
        for s in &balancer.services {
            if let VirtualKey::Fwmark { mark } = s.key {
                used_marks.insert(mark);
            }
        }
        // Explicit marks first, so automatic ones never take a number a later block asks for.
        for rs in raw {
            if let Some(m) = &rs.get_ref().mark {
                used_marks.insert(*m.get_ref() as u32);
            }
        }
        let mut summaries = Vec::new();
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        for (i, rs) in raw.iter().enumerate() {
            let line = self.line(&rs.span());
            let s = rs.get_ref();
            let f = |k: &str| format!("service[{i}].{k}");
            let Some(name) = self.text(&s.name, &f("name"), 64) else {
                continue;
            };
            if let Some(first) = seen_names.insert(name.clone(), line) {
                self.err(
                    s.name.span(),
                    &f("name"),
                    format!("service \"{name}\" is already defined on line {first}"),
                    None,
                );
            }
            let origin = Origin {
                line,
                service: Some(name.clone()),
            };
            let proto = match &s.proto {
                Some(p) => self.proto(p, &f("proto")),
                None => Some(Proto::Tcp),
            };
            if proto == Some(Proto::Icmp) {
                let span = s.proto.as_ref().map_or(rs.span(), |p| p.span());
                self.err(span, &f("proto"), "a service is tcp or udp".into(), None);
            }
            let port = self.port(&s.port, &f("port"));
            let address = match &s.address {
                None => Some(names.public.unwrap_or(PLACEHOLDER_PUBLIC)),
                Some(a) => self.addr_or_name(a, &f("address"), names),
            };
            let is_public = s.address.as_ref().is_none_or(|a| a.get_ref() == "public");
            let from = match &s.from {
                Some(z) => self.zone(z, &f("from")),
                None => Some(Zone::Net),
            };
            let mark = match &s.mark {
                Some(m) => self.count(m, &f("mark"), 1, u32::MAX as i64),
                None => (1..).find(|m| !used_marks.contains(m)),
            };
            if let Some(m) = mark {
                used_marks.insert(m);
            }
            let common = self.virtual_common(
                &f(""),
                VirtualRaw {
                    scheduler: &s.scheduler,
                    method: &s.method,
                    persistence: &s.persistence,
                    persistence_netmask: &None,
                    real: &s.real,
                    health: &s.health,
                    sorry_server: &s.sorry_server,
                },
                port,
                names,
                rs.span(),
            );
            let (Some(proto), Some(port), Some(address), Some(from), Some(mark), Some(common)) =
                (proto, port, address, from, mark, common)
            else {
                continue;
            };
            let rule = Rule {
                action: Action::Accept,
                from,
                to: Zone::Fw,
                proto: Some(proto),
                ports: vec![PortRange::single(port)],
                source: None,
                dest: None,
                comment: Some(format!("service {name}")),
                origin: origin.clone(),
            };
            let mk = Mark {
                mark,
                dest: Some(Ipv4Net::from(address)),
                dest_is_public: is_public,
                source: None,
                proto: Some(proto),
                ports: vec![PortRange::single(port)],
                origin: origin.clone(),
            };
            let vs = common.into_service(name.clone(), VirtualKey::Fwmark { mark }, origin);
            let shown_addr = if is_public {
                "the public address".to_string()
            } else {
                address.to_string()
            };
            let reals: Vec<String> = vs
                .reals
                .iter()
                .map(|r| format!("{}:{} weight {}", r.name, r.port, r.weight))
                .collect();
            let expansion = vec![
                format!("firewall rule: accept {from} -> fw {proto} dport {port}"),
                format!("firewall mark: {proto} to {shown_addr} dport {port} -> mark {mark}"),
                format!(
                    "virtual service: FWM {mark} {} {} -> {}",
                    vs.scheduler,
                    vs.method,
                    reals.join(", ")
                ),
            ];
            firewall.rules.push(rule);
            firewall.marks.push(mk);
            balancer.services.push(vs);
            summaries.push(ServiceSummary {
                name,
                line,
                expansion,
            });
        }
        summaries
    }
}

struct VirtualRaw<'a> {
    scheduler: &'a Option<S<String>>,
    method: &'a Option<S<String>>,
    persistence: &'a Option<S<RawDuration>>,
    persistence_netmask: &'a Option<S<String>>,
    real: &'a [S<RawReal>],
    health: &'a Option<S<RawHealth>>,
    sorry_server: &'a Option<S<String>>,
}

struct VirtualCommon {
    scheduler: String,
    method: Method,
    persistence: Duration,
    persistence_netmask: Ipv4Addr,
    reals: Vec<RealServer>,
    health: Option<HealthCheck>,
    sorry_server: Option<(Ipv4Addr, u16)>,
}

impl VirtualCommon {
    fn into_service(self, name: String, key: VirtualKey, origin: Origin) -> VirtualService {
        VirtualService {
            name,
            key,
            scheduler: self.scheduler,
            method: self.method,
            persistence: self.persistence,
            persistence_netmask: self.persistence_netmask,
            reals: self.reals,
            health: self.health,
            sorry_server: self.sorry_server,
            origin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, check_among, lan};

    /// A `[[balancer.virtual]]` for tcp to the public address, port 80, with
    /// `rest` added.
    fn public_80(rest: &str) -> String {
        format!("[[balancer.virtual]]\nproto = \"tcp\"\naddress = \"public\"\nport = 80\n{rest}")
    }

    /// A `public_80` service with one real server written as `real`.
    fn real(real: &str) -> String {
        lan(&public_80(&format!("real = [{real}] # <-\n")))
    }

    /// A `public_80` service with a health check written as `health`.
    fn health(health: &str) -> String {
        lan(&public_80(&format!(
            "real = [\"192.168.1.10\"]\nhealth = {{ {health} }} # <-\n"
        )))
    }

    /// A `[[service]]` named `name` on `port` with one real server.
    fn service(name: &str, port: u16, rest: &str) -> String {
        format!("[[service]]\nname = \"{name}\"\nport = {port}\nreal = [\"192.168.1.10\"]\n{rest}")
    }

    #[test]
    fn diagnostics() {
        check_all(&[
            (
                lan(
                    "[[balancer.virtual]]\nproto = \"icmp\" # <-\naddress = \"public\"\nport = 80\nreal = [\"192.168.1.10:80\"]\n",
                ),
                "balancer.virtual[0].proto",
                "IPVS balances tcp or udp",
            ),
            (
                lan("[[balancer.virtual]] # <-\nproto = \"tcp\"\nreal = [\"192.168.1.10:80\"]\n"),
                "balancer.virtual[0]",
                "a virtual service needs either fwmark, or proto + address + port",
            ),
            (
                lan(&(public_80("real = [\"192.168.1.10\"]\n")
                    + &public_80("real = [\"192.168.1.11\"]\n").replacen("]]", "]] # <-", 1))),
                "balancer.virtual[1]",
                "virtual service TCP 203.0.113.210:80 is already defined on line 9",
            ),
            (
                lan(&public_80(
                    "real = [\"192.168.1.10\"]\nscheduler = \"fastest\" # <-\n",
                )),
                "balancer.virtual[0].scheduler",
                "\"fastest\" is not an IPVS scheduler",
            ),
            (
                lan(&public_80("").replacen("]]", "]] # <-", 1)),
                "balancer.virtual[0].real",
                "no real servers",
            ),
            (
                lan(&public_80(
                    "real = [\n  \"192.168.1.10\",\n  \"192.168.1.10:80\", # <-\n]\n",
                )),
                "balancer.virtual[0].real[1]",
                "192.168.1.10:80 is listed twice",
            ),
            (
                lan(&public_80(
                    "real = [\"192.168.1.10\"]\nsorry_server = \"192.168.1.50:http\" # <-\n",
                )),
                "balancer.virtual[0].sorry_server",
                "\"192.168.1.50:http\" needs a port",
            ),
            (
                real("\"192.168.1.10:0\""),
                "balancer.virtual[0].real[0]",
                "\"192.168.1.10:0\": port \"0\" is not 1-65535",
            ),
            (
                real("{ host = \"192.168.1.10\", port = 70000 }"),
                "balancer.virtual[0].real[0]",
                "port 70000 is out of range",
            ),
            (
                real("{ host = \"192.168.1.10\", weight = -1 }"),
                "balancer.virtual[0].real[0]",
                "weight -1 is out of range",
            ),
            (
                real("{ host = \"192.168.1.10\", upper_threshold = 65536 }"),
                "balancer.virtual[0].real[0]",
                "upper_threshold 65536 is out of range",
            ),
            (
                real("{ host = \"192.168.1.10\", lower_threshold = 65536 }"),
                "balancer.virtual[0].real[0]",
                "lower_threshold 65536 is out of range",
            ),
            (
                health("check = \"http\", path = \"health\""),
                "balancer.virtual[0].health.path",
                "\"health\" is not an HTTP path",
            ),
            (
                health("check = \"none\""),
                "balancer.virtual[0].health.check",
                "\"none\" is not a health check",
            ),
            (
                health("check = \"tcp\", interval = \"1s\", timeout = \"2s\""),
                "balancer.virtual[0].health.timeout",
                "timeout 2s is longer than the interval 1s",
            ),
            (
                lan(&format!(
                    "{}[[service]]\nname = \"web\" # <-\nport = 81\nreal = [\"192.168.1.10\"]\n",
                    service("web", 80, "")
                )),
                "service[1].name",
                "service \"web\" is already defined on line 9",
            ),
            (
                lan(&service("ping", 80, "proto = \"icmp\" # <-\n")),
                "service[0].proto",
                "a service is tcp or udp",
            ),
        ]);
        // A fwmark service has no port to lend its real servers. Its mark
        // then counts as unused, as the service is not valid.
        let fwmark_1 = "[[firewall.mark]]\nmark = 1\nproto = \"tcp\"\nports = [80]\n\n\
                        [[balancer.virtual]]\nfwmark = 1\nreal = [\"192.168.1.10\"] # <-\n";
        check_among(
            &lan(fwmark_1),
            "balancer.virtual[0].real[0]",
            "real server \"192.168.1.10\" needs a port",
        );
    }
}
