//! `[dhcp]` and `[dhcp.pool]`.

use super::Validator;
use crate::config::model::*;
use crate::config::raw::*;
use std::net::Ipv4Addr;
use std::time::Duration;

impl Validator<'_> {
    pub(super) fn dhcp(
        &mut self,
        raw: &RawDhcp,
        private: Option<&PrivateIface>,
        hosts: &[Host],
    ) -> Option<Dhcp> {
        let lease_time = raw
            .lease_time
            .as_ref()
            .and_then(|d| self.duration(d, "dhcp.lease_time"))
            .unwrap_or(Duration::from_secs(12 * 3600));
        let max_lease_time = raw
            .max_lease_time
            .as_ref()
            .and_then(|d| self.duration(d, "dhcp.max_lease_time"))
            .unwrap_or(lease_time.max(Duration::from_secs(24 * 3600)));
        if let Some(m) = &raw.max_lease_time
            && max_lease_time < lease_time
        {
            self.err(
                m.span(),
                "dhcp.max_lease_time",
                "is shorter than dhcp.lease_time".into(),
                Some("max_lease_time caps what a client may ask for; make it at least lease_time"),
            );
        }
        let routers = match &raw.routers {
            Some(l) => self.addrs(l, "dhcp.routers"),
            None => private.map(|p| vec![p.address.addr()]).unwrap_or_default(),
        };
        let dns_servers = self.addrs(&raw.dns_servers, "dhcp.dns_servers");
        let ntp_servers = self.addrs(&raw.ntp_servers, "dhcp.ntp_servers");
        let domain_name = raw
            .domain_name
            .as_ref()
            .and_then(|s| self.domain(s, "dhcp.domain_name"));
        let domain_search = raw
            .domain_search
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.domain(s, &format!("dhcp.domain_search[{i}]")))
            .collect();
        let next_server = raw
            .next_server
            .as_ref()
            .and_then(|s| self.ipv4(s, "dhcp.next_server"));
        let filename = raw
            .filename
            .as_ref()
            .and_then(|s| self.text(s, "dhcp.filename", 127));
        let lease_file = raw
            .lease_file
            .as_ref()
            .and_then(|s| self.text(s, "dhcp.lease_file", 4096))
            .unwrap_or_else(|| {
                crate::paths::state_dir()
                    .join("leases")
                    .display()
                    .to_string()
            });
        let pool = raw.pool.as_ref().and_then(|p| self.pool(p, private, hosts));
        let boot = self.boot_rules(&raw.boot, "dhcp.boot");
        Some(Dhcp {
            enabled: raw.enabled.unwrap_or(true),
            lease_time,
            max_lease_time,
            routers,
            dns_servers,
            domain_name,
            domain_search,
            ntp_servers,
            next_server,
            filename,
            lease_file: lease_file.into(),
            allow_default_route_interface: raw.allow_default_route_interface.unwrap_or(false),
            pool,
            boot,
        })
    }

    /// `[[dhcp.boot]]` or a host's `boot`: each rule valid on its own.
    pub(super) fn boot_rules(&mut self, raw: &[S<RawBoot>], field: &str) -> Vec<Boot> {
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let f = |k: &str| format!("{field}[{i}].{k}");
            let b = r.get_ref();
            let arch = match &b.arch {
                Some(a) => match arch_codes(a.get_ref()) {
                    Some(codes) => Some(codes),
                    None => {
                        self.err(
                            a.span(),
                            &f("arch"),
                            "is not a client architecture".into(),
                            Some("use bios, efi-ia32, efi-x64, efi-arm32, efi-arm64, efi-x64-http, efi-arm64-http or the option 93 number (0-65535)"),
                        );
                        None
                    }
                },
                None => Some(Vec::new()),
            };
            let user_class = b
                .user_class
                .as_ref()
                .and_then(|s| self.text(s, &f("user_class"), 255));
            if b.arch.is_none() && b.user_class.is_none() {
                self.err(
                    r.span(),
                    field,
                    "a boot rule without arch or user_class matches every client".into(),
                    Some("add arch and/or user_class; the file for everyone else is `filename` in [dhcp]"),
                );
                continue;
            }
            let filename = self.text(&b.filename, &f("filename"), 127);
            let next_server = b
                .next_server
                .as_ref()
                .and_then(|s| self.ipv4(s, &f("next_server")));
            if let (Some(arch), Some(filename)) = (arch, filename) {
                out.push(Boot {
                    arch,
                    user_class,
                    filename,
                    next_server,
                });
            }
        }
        out
    }

    fn pool(
        &mut self,
        raw: &S<RawPool>,
        private: Option<&PrivateIface>,
        hosts: &[Host],
    ) -> Option<Pool> {
        let p = raw.get_ref();
        let start = self.ipv4(&p.start, "dhcp.pool.start")?;
        let end = self.ipv4(&p.end, "dhcp.pool.end")?;
        if start > end {
            self.err(
                p.end.span(),
                "dhcp.pool.end",
                format!("{end} comes before the pool start {start}"),
                Some("write the lower address as start"),
            );
            return None;
        }
        let pool = Pool { start, end };
        if let Some(pr) = private {
            let net = pr.address.trunc();
            let inside =
                |a: Ipv4Addr| net.contains(&a) && a != net.network() && a != net.broadcast();
            if !inside(start) || !inside(end) {
                self.err(
                    raw.span(),
                    "dhcp.pool",
                    format!("{start}-{end} is not inside the usable addresses of {net}"),
                    Some(&format!(
                        "use addresses between {} and {}",
                        net.hosts().next().unwrap_or(net.network()),
                        net.hosts().last().unwrap_or(net.broadcast())
                    )),
                );
            } else if pool.contains(pr.address.addr()) {
                self.err(
                    raw.span(),
                    "dhcp.pool",
                    format!(
                        "{start}-{end} contains the head node's own address {}",
                        pr.address.addr()
                    ),
                    Some("end the pool before the head node's address"),
                );
            }
        }
        for h in hosts.iter().filter(|h| pool.contains(h.address)) {
            self.err(
                raw.span(),
                "dhcp.pool",
                format!(
                    "{start}-{end} overlaps the reservation of host \"{}\" ({}, line {})",
                    h.name, h.address, h.line
                ),
                Some("keep fixed addresses outside the dynamic pool"),
            );
        }
        Some(pool)
    }
}

/// Option 93 values (RFC 4578, IANA Processor Architecture Types) by name.
/// efi-x64 is both 7 and 9: firmware sends either for x86-64 UEFI.
fn arch_codes(a: &RawArch) -> Option<Vec<u16>> {
    match a {
        RawArch::Number(n) => u16::try_from(*n).ok().map(|n| vec![n]),
        RawArch::Name(name) => Some(match name.as_str() {
            "bios" => vec![0],
            "efi-ia32" => vec![6],
            "efi-x64" => vec![7, 9],
            "efi-arm32" => vec![10],
            "efi-arm64" => vec![11],
            "efi-x64-http" => vec![16],
            "efi-arm64-http" => vec![19],
            _ => return None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};

    #[test]
    fn diagnostics() {
        let pool = |start: &str, end: &str| {
            lan(&format!(
                "[dhcp.pool] # <-\nstart = \"192.168.1.{start}\"\nend = \"192.168.1.{end}\"\n"
            ))
        };
        check_all(&[
            (
                lan("[[dhcp.boot]]\narch = \"efi-x86\" # <-\nfilename = \"a\"\n"),
                "dhcp.boot[0].arch",
                "is not a client architecture",
            ),
            (
                lan("[[dhcp.boot]]\narch = 70000 # <-\nfilename = \"a\"\n"),
                "dhcp.boot[0].arch",
                "is not a client architecture",
            ),
            (
                lan("[[dhcp.boot]] # <-\nfilename = \"a\"\n"),
                "dhcp.boot",
                "a boot rule without arch or user_class matches every client",
            ),
            (
                lan(
                    "[[dhcp.boot]]\nuser_class = \"iPXE\"\nfilename = \"a\"\nnext_server = \"x\" # <-\n",
                ),
                "dhcp.boot[0].next_server",
                "",
            ),
            (
                lan("[dhcp]\nlease_time = \"2h\"\nmax_lease_time = \"1h\" # <-\n"),
                "dhcp.max_lease_time",
                "is shorter than dhcp.lease_time",
            ),
            (
                lan("[dhcp.pool]\nstart = \"192.168.1.210\"\nend = \"192.168.1.200\" # <-\n"),
                "dhcp.pool.end",
                "192.168.1.200 comes before the pool start 192.168.1.210",
            ),
            (
                pool("200", "255"),
                "dhcp.pool",
                "192.168.1.200-192.168.1.255 is not inside the usable addresses of 192.168.1.0/24",
            ),
            (
                pool("200", "254"),
                "dhcp.pool",
                "192.168.1.200-192.168.1.254 contains the head node's own address 192.168.1.254",
            ),
            (
                lan(
                    "[[host]]\nname = \"node1\"\nmac = \"00:12:34:56:78:91\"\naddress = \"192.168.1.101\"\n\
                     [dhcp.pool] # <-\nstart = \"192.168.1.100\"\nend = \"192.168.1.110\"\n",
                ),
                "dhcp.pool",
                "overlaps the reservation of host \"node1\" (192.168.1.101, line 9)",
            ),
        ]);
    }
}
