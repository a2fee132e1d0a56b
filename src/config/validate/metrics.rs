//! `[metrics]`: where the daemon serves Prometheus metrics. Only on the
//! LAN address or loopback: the numbers (leases, MACs in rule names, load)
//! are for the cluster's admins, not for the public side.

use super::Validator;
use crate::config::model::PrivateIface;
use crate::config::raw::*;
use std::net::SocketAddrV4;

impl Validator<'_> {
    pub(super) fn metrics(
        &mut self,
        raw: &S<RawMetrics>,
        private: Option<&PrivateIface>,
    ) -> Option<SocketAddrV4> {
        let Some(listen) = &raw.get_ref().listen else {
            self.err(
                raw.span(),
                "metrics.listen",
                "[metrics] has no listen address".into(),
                Some("add listen = \"LAN-ADDRESS:9100\" (or \"127.0.0.1:9100\"), or remove [metrics]"),
            );
            return None;
        };
        let Ok(addr) = listen.get_ref().parse::<SocketAddrV4>() else {
            self.err(
                listen.span(),
                "metrics.listen",
                format!("`{}` is not an IPv4 address and port", listen.get_ref()),
                Some("write it as \"192.168.1.254:9100\""),
            );
            return None;
        };
        let lan = private.map(|p| p.address.addr());
        if !addr.ip().is_loopback() && Some(*addr.ip()) != lan {
            let hint = match lan {
                Some(a) => format!(
                    "use the LAN address ({a}:{}) or loopback (127.0.0.1:{}); metrics are never served on the public side",
                    addr.port(),
                    addr.port()
                ),
                None => "use the LAN address or loopback".into(),
            };
            self.err(
                listen.span(),
                "metrics.listen",
                format!("{} is neither the LAN address nor loopback", addr.ip()),
                Some(&hint),
            );
            return None;
        }
        if addr.port() == 0 {
            self.err(
                listen.span(),
                "metrics.listen",
                "port 0 is not a port to scrape".into(),
                Some("9100 is the usual one"),
            );
            return None;
        }
        Some(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};
    use crate::config::parse;
    use std::path::Path;

    #[test]
    fn lan_and_loopback_only() {
        let p = |m: &str| parse(&lan(&format!("[metrics]\n{m}\n")), Path::new("t.toml"));
        assert_eq!(
            p("listen = \"127.0.0.1:9100\"").unwrap().metrics,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert!(
            parse(&lan(""), Path::new("t.toml"))
                .unwrap()
                .metrics
                .is_none()
        );
    }

    #[test]
    fn bad_listen_addresses_name_the_fix() {
        check_all(&[
            (
                lan("[metrics]\nlisten = \"203.0.113.210:9100\" # <-\n"),
                "metrics.listen",
                "neither the LAN address nor loopback",
            ),
            (
                lan("[metrics]\nlisten = \"x\" # <-\n"),
                "metrics.listen",
                "not an IPv4 address and port",
            ),
            (
                lan("[metrics] # <-\n"),
                "metrics.listen",
                "[metrics] has no listen address",
            ),
            (
                lan("[metrics]\nlisten = \"127.0.0.1:0\" # <-\n"),
                "metrics.listen",
                "port 0",
            ),
        ]);
        let lan_ok = parse(
            &lan("[metrics]\nlisten = \"192.168.1.254:9100\"\n"),
            Path::new("t.toml"),
        );
        assert!(lan_ok.unwrap().metrics.is_some());
    }
}
