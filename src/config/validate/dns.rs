//! `[dns]`: names for the cluster, answered on the private address.

use super::Validator;
use super::values::{parse_ipv4, valid_label};
use crate::config::model::{Dhcp, Dns, PrivateIface};
use crate::config::raw::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

impl Validator<'_> {
    /// The server's settings, or `None` when it is off or the table is wrong.
    pub(super) fn dns(
        &mut self,
        raw: &S<RawDns>,
        dhcp: Option<&Dhcp>,
        private: Option<&PrivateIface>,
        public: Option<Ipv4Addr>,
    ) -> Option<Dns> {
        let d = raw.get_ref();
        let domain = match &d.domain {
            Some(s) => self.domain(s, "dns.domain"),
            None => match dhcp.and_then(|h| h.domain_name.clone()) {
                Some(n) => Some(n),
                None => {
                    self.err(
                        raw.span(),
                        "dns.domain",
                        "[dns] has no domain to answer for".into(),
                        Some("add domain = \"cluster.example.com\" to [dns] (or set dhcp.domain_name)"),
                    );
                    None
                }
            },
        };
        let name = match &d.name {
            Some(s) if valid_label(s.get_ref()) => Some(s.get_ref().to_ascii_lowercase()),
            Some(s) => {
                self.err(
                    s.span(),
                    "dns.name",
                    format!("\"{}\" is not a host name", s.get_ref()),
                    Some(
                        "one label of letters, digits and '-', e.g. \"head\" (the domain is added)",
                    ),
                );
                None
            }
            None => None,
        };
        let upstream = d.upstream.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    self.upstream(s, &format!("dns.upstream[{i}]"), private, public)
                })
                .collect::<Vec<_>>()
        });
        let ttl = d
            .ttl
            .as_ref()
            .and_then(|n| self.count(n, "dns.ttl", 0, 86_400))
            .unwrap_or(60);
        let cache_size = d
            .cache_size
            .as_ref()
            .and_then(|n| self.count(n, "dns.cache_size", 0, 1_000_000))
            .unwrap_or(10_000);
        let rate_limit = d
            .rate_limit
            .as_ref()
            .and_then(|n| self.count(n, "dns.rate_limit", 1, 1_000_000))
            .unwrap_or(1_000);
        if !d.enabled.unwrap_or(true) {
            return None;
        }
        Some(Dns {
            domain: domain?.trim_end_matches('.').to_ascii_lowercase(),
            name,
            upstream,
            ttl,
            cache_size,
            rate_limit,
            pool_names: d.pool_names.unwrap_or(true),
        })
    }

    /// `a.b.c.d` or `a.b.c.d:port`, and not the head node itself (a loop).
    fn upstream(
        &mut self,
        s: &S<String>,
        field: &str,
        private: Option<&PrivateIface>,
        public: Option<Ipv4Addr>,
    ) -> Option<SocketAddr> {
        let text = s.get_ref();
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p != 0)),
            None => (text.as_str(), Some(53)),
        };
        let addr = match (parse_ipv4(host), port) {
            (Ok(a), Some(p)) => SocketAddr::new(IpAddr::V4(a), p),
            (Err(why), _) => {
                self.err(
                    s.span(),
                    field,
                    format!("\"{text}\" is not an IPv4 address: {why}"),
                    Some(
                        "write the resolver's address, e.g. \"192.0.2.53\" or \"192.0.2.53:5353\"",
                    ),
                );
                return None;
            }
            (_, None) => {
                self.err(
                    s.span(),
                    field,
                    format!("\"{text}\" has no valid port"),
                    Some("a port is 1-65535, e.g. \"192.0.2.53:53\""),
                );
                return None;
            }
        };
        let own = private.map(|p| p.address.addr()) == Some(*host_v4(&addr))
            || public == Some(*host_v4(&addr));
        if own && addr.port() == 53 {
            self.err(
                s.span(),
                field,
                format!("{text} is the head node itself: queries would loop"),
                Some("name the resolvers the head node uses, e.g. your site's or the provider's"),
            );
            return None;
        }
        Some(addr)
    }
}

fn host_v4(a: &SocketAddr) -> &Ipv4Addr {
    match a {
        SocketAddr::V4(v) => v.ip(),
        SocketAddr::V6(_) => unreachable!("upstreams are parsed as IPv4"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};
    use crate::config::parse;
    use std::path::Path;

    #[test]
    fn defaults_dhcp_and_off() {
        let cfg = parse(
            &lan("[dns]\ndomain = \"Cluster.Example.\"\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        let d = cfg.dns.clone().unwrap();
        assert_eq!(d.domain, "cluster.example");
        assert_eq!(
            (d.ttl, d.cache_size, d.rate_limit, d.upstream, d.name),
            (60, 10_000, 1_000, None, None)
        );
        // DHCP points the nodes at the head node and the domain.
        assert_eq!(cfg.dhcp.dns_servers, vec![cfg.private.address.addr()]);
        assert_eq!(cfg.dhcp.domain_search, vec!["cluster.example".to_string()]);
        let off = lan("[dns]\nenabled = false\ndomain = \"c\"\n");
        let cfg = parse(&off, Path::new("t.toml")).unwrap();
        assert!(cfg.dns.is_none());
        assert!(cfg.dhcp.dns_servers.is_empty());
    }

    #[test]
    fn dhcp_settings_win() {
        let text = lan(
            "[dns]\nname = \"Head\"\nupstream = [\"192.0.2.53\", \"192.0.2.54:5353\"]\n\
             [dhcp]\ndomain_name = \"c.example\"\ndns_servers = [\"192.0.2.1\"]\n\
             domain_search = [\"x.example\"]\n",
        );
        let cfg = parse(&text, Path::new("t.toml")).unwrap();
        let d = cfg.dns.unwrap();
        assert_eq!(d.domain, "c.example");
        assert_eq!(d.name.as_deref(), Some("head"));
        assert_eq!(
            d.upstream.unwrap(),
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "192.0.2.54:5353".parse().unwrap()
            ]
        );
        assert_eq!(
            cfg.dhcp.dns_servers,
            vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(cfg.dhcp.domain_search, vec!["x.example".to_string()]);
    }

    #[test]
    fn diagnostics() {
        check_all(&[
            (
                lan("[dns] # <-\nttl = 5\n"),
                "dns.domain",
                "[dns] has no domain",
            ),
            (
                lan("[dns]\ndomain = \"a..b\" # <-\n"),
                "dns.domain",
                "is not a valid domain name",
            ),
            (
                lan("[dns]\ndomain = \"c\"\nname = \"a.b\" # <-\n"),
                "dns.name",
                "is not a host name",
            ),
            (
                lan("[dns]\ndomain = \"c\"\nupstream = [\"1.2.3\"] # <-\n"),
                "dns.upstream[0]",
                "is not an IPv4 address",
            ),
            (
                lan("[dns]\ndomain = \"c\"\nupstream = [\"1.2.3.4:0\"] # <-\n"),
                "dns.upstream[0]",
                "has no valid port",
            ),
            (
                lan("[dns]\ndomain = \"c\"\nupstream = [\"192.168.1.254\"] # <-\n"),
                "dns.upstream[0]",
                "is the head node itself",
            ),
            (
                lan("[dns]\ndomain = \"c\"\ncache_size = -1 # <-\n"),
                "dns.cache_size",
                "-1 is out of range",
            ),
            (
                lan("[dns]\ndomain = \"c\"\nrate_limit = 0 # <-\n"),
                "dns.rate_limit",
                "0 is out of range",
            ),
        ]);
    }
}
