//! PURE: the changes that turn the kernel's IPVS table into the desired one.
//!
//! Diffing against what the kernel reports (not against the last config)
//! repairs drift such as `ipvsadm -C`. Services headnode did not create are
//! left alone unless the balancer is exclusive (kube-proxy's
//! `cleanLegacyService` rule).

use super::{DestAttrs, DestKey, ServiceAttrs, ServiceKey, Table};
use std::collections::BTreeSet;
use std::fmt;

/// One change to the kernel's table, in the order [`diff`] emits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddService(ServiceKey, ServiceAttrs),
    EditService(ServiceKey, ServiceAttrs),
    AddDest(ServiceKey, DestKey, DestAttrs),
    EditDest(ServiceKey, DestKey, DestAttrs),
    DelDest(ServiceKey, DestKey),
    DelService(ServiceKey),
}

impl Op {
    /// Safe order: a service exists before its destinations, destinations
    /// are added (and weights changed) before others are removed, so a
    /// service never runs empty on the way.
    fn phase(&self) -> u8 {
        match self {
            Op::AddService(..) => 0,
            Op::EditService(..) => 1,
            Op::AddDest(..) => 2,
            Op::EditDest(..) => 3,
            Op::DelDest(..) => 4,
            Op::DelService(..) => 5,
        }
    }
}

impl fmt::Display for Op {
    /// In `ipvsadm` command form, which admins already read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn svc(k: &ServiceKey) -> String {
            match k {
                ServiceKey::Fwmark { family, mark } => match family {
                    super::Family::Inet => format!("-f {mark}"),
                    super::Family::Inet6 => format!("-f {mark} -6"),
                },
                ServiceKey::Tuple { proto, addr, port } => {
                    let flag = match proto {
                        17 => "-u",
                        132 => "--sctp-service",
                        _ => "-t",
                    };
                    format!(
                        "{flag} {}",
                        DestKey {
                            addr: *addr,
                            port: *port
                        }
                    )
                }
            }
        }
        fn attrs(a: &ServiceAttrs) -> String {
            let mut s = format!("-s {}", a.scheduler);
            if a.flags & super::SVC_F_PERSISTENT != 0 {
                s.push_str(&format!(" -p {}", a.timeout));
                if a.netmask != u32::MAX {
                    s.push_str(&format!(" -M {}", super::netmask(a.netmask)));
                }
            }
            s
        }
        fn dest(d: &DestKey, a: &DestAttrs) -> String {
            let m = match a.forward {
                super::Forward::Masq => "-m",
                super::Forward::Route => "-g",
                super::Forward::Tunnel => "-i",
                super::Forward::Local => "-g",
            };
            let mut s = format!("-r {d} {m} -w {}", a.weight);
            if a.upper_threshold != 0 {
                s.push_str(&format!(" -x {}", a.upper_threshold));
            }
            if a.lower_threshold != 0 {
                s.push_str(&format!(" -y {}", a.lower_threshold));
            }
            s
        }
        match self {
            Op::AddService(k, a) => write!(f, "-A {} {}", svc(k), attrs(a)),
            Op::EditService(k, a) => write!(f, "-E {} {}", svc(k), attrs(a)),
            Op::AddDest(k, d, a) => write!(f, "-a {} {}", svc(k), dest(d, a)),
            Op::EditDest(k, d, a) => write!(f, "-e {} {}", svc(k), dest(d, a)),
            Op::DelDest(k, d) => write!(f, "-d {} -r {d}", svc(k)),
            Op::DelService(k) => write!(f, "-D {}", svc(k)),
        }
    }
}

/// The ops that turn `observed` into `desired`. `owned` are the services
/// headnode created earlier; with `exclusive` every service not desired goes.
pub fn diff(
    desired: &Table,
    observed: &Table,
    owned: &BTreeSet<ServiceKey>,
    exclusive: bool,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (key, want) in desired {
        match observed.get(key) {
            None => {
                ops.push(Op::AddService(*key, want.attrs.clone()));
                for (d, a) in &want.dests {
                    ops.push(Op::AddDest(*key, *d, *a));
                }
            }
            Some(have) => {
                if have.attrs != want.attrs {
                    ops.push(Op::EditService(*key, want.attrs.clone()));
                }
                for (d, a) in &want.dests {
                    match have.dests.get(d) {
                        None => ops.push(Op::AddDest(*key, *d, *a)),
                        Some(h) if h != a => ops.push(Op::EditDest(*key, *d, *a)),
                        Some(_) => {}
                    }
                }
                // A desired service is ours in full: foreign real servers in it go.
                for d in have.dests.keys().filter(|d| !want.dests.contains_key(d)) {
                    ops.push(Op::DelDest(*key, *d));
                }
            }
        }
    }
    for key in observed.keys() {
        if !desired.contains_key(key) && (exclusive || owned.contains(key)) {
            // Deleting the service deletes its destinations with it.
            ops.push(Op::DelService(*key));
        }
    }
    ops.sort_by_key(Op::phase);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::fake::Fake;
    use crate::ipvs::{Family, Forward, Kernel, Service};
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    fn fwm(mark: u32) -> ServiceKey {
        ServiceKey::Fwmark {
            family: Family::Inet,
            mark,
        }
    }
    fn tcp(last: u8, port: u16) -> ServiceKey {
        ServiceKey::Tuple {
            proto: 6,
            addr: IpAddr::from([203, 0, 113, last]),
            port,
        }
    }
    fn sched(s: &str) -> ServiceAttrs {
        ServiceAttrs {
            scheduler: s.into(),
            flags: 0,
            timeout: 0,
            netmask: u32::MAX,
        }
    }
    fn node(n: u8) -> DestKey {
        DestKey {
            addr: IpAddr::from([192, 168, 1, 100 + n]),
            port: 8000,
        }
    }
    fn w(weight: u32) -> DestAttrs {
        DestAttrs {
            forward: Forward::Masq,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }
    fn svc(s: &str, dests: &[(u8, u32)]) -> Service {
        Service {
            attrs: sched(s),
            dests: dests.iter().map(|(n, wt)| (node(*n), w(*wt))).collect(),
        }
    }
    fn table(entries: Vec<(ServiceKey, Service)>) -> Table {
        entries.into_iter().collect::<BTreeMap<_, _>>()
    }
    fn owned(keys: &[ServiceKey]) -> BTreeSet<ServiceKey> {
        keys.iter().copied().collect()
    }

    struct Case {
        name: &'static str,
        desired: Table,
        observed: Table,
        owned: BTreeSet<ServiceKey>,
        exclusive: bool,
        want: Vec<Op>,
    }

    fn cases() -> Vec<Case> {
        let origin = || table(vec![(fwm(1), svc("rr", &[(1, 1), (2, 1)]))]);
        vec![
            Case {
                name: "empty kernel: add service, then its reals",
                desired: origin(),
                observed: Table::new(),
                owned: owned(&[]),
                exclusive: false,
                want: vec![
                    Op::AddService(fwm(1), sched("rr")),
                    Op::AddDest(fwm(1), node(1), w(1)),
                    Op::AddDest(fwm(1), node(2), w(1)),
                ],
            },
            Case {
                name: "in sync: nothing",
                desired: origin(),
                observed: origin(),
                owned: owned(&[fwm(1)]),
                exclusive: true,
                want: vec![],
            },
            Case {
                name: "drained real: weight edit only",
                desired: table(vec![(fwm(1), svc("rr", &[(1, 1), (2, 0)]))]),
                observed: origin(),
                owned: owned(&[fwm(1)]),
                exclusive: false,
                want: vec![Op::EditDest(fwm(1), node(2), w(0))],
            },
            Case {
                name: "scheduler change edits, never recreates",
                desired: table(vec![(fwm(1), svc("wlc", &[(1, 1), (2, 1)]))]),
                observed: origin(),
                owned: owned(&[fwm(1)]),
                exclusive: false,
                want: vec![Op::EditService(fwm(1), sched("wlc"))],
            },
            Case {
                name: "real replaced: add before delete",
                desired: table(vec![(fwm(1), svc("rr", &[(1, 1), (3, 1)]))]),
                observed: origin(),
                owned: owned(&[fwm(1)]),
                exclusive: false,
                want: vec![
                    Op::AddDest(fwm(1), node(3), w(1)),
                    Op::DelDest(fwm(1), node(2)),
                ],
            },
            Case {
                name: "identity change: add new service, delete old owned one last",
                desired: table(vec![(fwm(2), svc("rr", &[(1, 1)]))]),
                observed: table(vec![(fwm(1), svc("rr", &[(1, 1)]))]),
                owned: owned(&[fwm(1)]),
                exclusive: false,
                want: vec![
                    Op::AddService(fwm(2), sched("rr")),
                    Op::AddDest(fwm(2), node(1), w(1)),
                    Op::DelService(fwm(1)),
                ],
            },
            Case {
                name: "foreign service left alone",
                desired: origin(),
                observed: table(vec![
                    (fwm(1), svc("rr", &[(1, 1), (2, 1)])),
                    (tcp(5, 80), svc("wlc", &[(4, 1)])),
                ]),
                owned: owned(&[fwm(1)]),
                exclusive: false,
                want: vec![],
            },
            Case {
                name: "foreign service removed when exclusive",
                desired: origin(),
                observed: table(vec![
                    (fwm(1), svc("rr", &[(1, 1), (2, 1)])),
                    (tcp(5, 80), svc("wlc", &[(4, 1)])),
                ]),
                owned: owned(&[fwm(1)]),
                exclusive: true,
                want: vec![Op::DelService(tcp(5, 80))],
            },
            Case {
                name: "service removed from config but owned: deleted",
                desired: Table::new(),
                observed: origin(),
                owned: owned(&[fwm(1)]),
                exclusive: false,
                want: vec![Op::DelService(fwm(1))],
            },
            Case {
                name: "foreign real inside a desired service is removed",
                desired: table(vec![(fwm(1), svc("rr", &[(1, 1)]))]),
                observed: table(vec![(fwm(1), svc("rr", &[(1, 1), (9, 1)]))]),
                owned: owned(&[]),
                exclusive: false,
                want: vec![Op::DelDest(fwm(1), node(9))],
            },
            Case {
                name: "mixed: every phase in order",
                desired: table(vec![
                    (fwm(1), svc("wrr", &[(1, 3), (3, 1)])),
                    (tcp(10, 443), svc("sh", &[(4, 1)])),
                ]),
                observed: table(vec![
                    (fwm(1), svc("rr", &[(1, 1), (2, 1)])),
                    (fwm(7), svc("rr", &[(5, 1)])),
                ]),
                owned: owned(&[fwm(1), fwm(7)]),
                exclusive: false,
                want: vec![
                    Op::AddService(tcp(10, 443), sched("sh")),
                    Op::EditService(fwm(1), sched("wrr")),
                    Op::AddDest(fwm(1), node(3), w(1)),
                    Op::AddDest(tcp(10, 443), node(4), w(1)),
                    Op::EditDest(fwm(1), node(1), w(3)),
                    Op::DelDest(fwm(1), node(2)),
                    Op::DelService(fwm(7)),
                ],
            },
        ]
    }

    #[test]
    fn table_driven() {
        for c in cases() {
            let got = diff(&c.desired, &c.observed, &c.owned, c.exclusive);
            assert_eq!(got, c.want, "case: {}", c.name);
        }
    }

    #[test]
    fn applying_the_diff_converges_and_a_second_diff_is_empty() {
        for c in cases() {
            // The fake kernel refuses what IPVS would (an add of what exists,
            // an edit of what does not): every op must be accepted.
            let fake = Fake::new(c.observed.clone());
            let ops = diff(&c.desired, &c.observed, &c.owned, c.exclusive);
            for (op, r) in ops.iter().zip(fake.exec_all(&ops)) {
                assert!(r.is_ok(), "case {}: {op}: {r:?}", c.name);
            }
            let kernel = fake.now();
            for (k, s) in &c.desired {
                assert_eq!(kernel.get(k), Some(s), "case: {}", c.name);
            }
            let again = diff(&c.desired, &kernel, &c.owned, c.exclusive);
            assert!(again.is_empty(), "case {}: second diff {again:?}", c.name);
        }
    }

    #[test]
    fn ops_read_as_ipvsadm_commands() {
        assert_eq!(
            Op::AddService(fwm(1), sched("rr")).to_string(),
            "-A -f 1 -s rr"
        );
        assert_eq!(
            Op::AddDest(fwm(1), node(1), w(1)).to_string(),
            "-a -f 1 -r 192.168.1.101:8000 -m -w 1"
        );
        assert_eq!(
            Op::DelDest(tcp(5, 80), node(2)).to_string(),
            "-d -t 203.0.113.5:80 -r 192.168.1.102:8000"
        );
    }
}
