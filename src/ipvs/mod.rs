//! Load balancing with kernel IPVS, spoken over generic netlink.
//!
//! The split follows the crate rule: [`desired`] (config + health → table)
//! and [`diff`] (desired × observed × owned → ops) are pure; [`render`]
//! turns tables and ops into text. [`reconcile`] glues them together against
//! a [`Kernel`] (the [`netlink`] handle, or an in-memory fake in unit tests),
//! an ownership [`state::Store`] and the sysctls, all passed in;
//! [`reconcile_live`] is it on this machine.
//!
//! Identity is kept apart from attributes (keepalived's `vs_iseq`): a
//! [`ServiceKey`] or [`DestKey`] change is a delete plus an add, an attribute
//! change is an edit.

pub mod desired;
pub mod diff;
#[cfg(test)]
pub mod fake;
pub mod netlink;
pub mod render;
pub mod state;
pub mod sync;
pub mod wire;

pub use desired::{desired, sysctls};
pub use diff::{Op, diff};
pub use render::{render_ops, render_table};

use crate::config::Config;
use crate::health::HealthMap;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `AF_INET` / `AF_INET6` as IPVS carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
    pub fn number(self) -> u16 {
        match self {
            Family::Inet => libc::AF_INET as u16,
            Family::Inet6 => libc::AF_INET6 as u16,
        }
    }
    pub fn from_number(n: u16) -> Option<Family> {
        match i32::from(n) {
            libc::AF_INET => Some(Family::Inet),
            libc::AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }
}

/// What makes a virtual service the same service: its fwmark, or its
/// protocol, address and port (plus the address family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    Fwmark {
        family: Family,
        mark: u32,
    },
    /// `proto` is the IP protocol number (6 tcp, 17 udp, 132 sctp).
    Tuple {
        proto: u16,
        addr: IpAddr,
        port: u16,
    },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Fwmark { family, .. } => *family,
            ServiceKey::Tuple { addr, .. } => Family::of(*addr),
        }
    }
}

impl fmt::Display for ServiceKey {
    /// As `ipvsadm -Ln` prints it: `FWM  1`, `TCP  192.0.2.1:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Fwmark { family, mark } => {
                write!(f, "FWM  {mark}")?;
                if *family == Family::Inet6 {
                    f.write_str(" IPv6")?;
                }
                Ok(())
            }
            ServiceKey::Tuple { proto, addr, port } => {
                let p = match proto {
                    6 => "TCP".to_string(),
                    17 => "UDP".to_string(),
                    132 => "SCTP".to_string(),
                    n => format!("P{n}"),
                };
                match addr {
                    IpAddr::V4(a) => write!(f, "{p}  {a}:{port}"),
                    IpAddr::V6(a) => write!(f, "{p}  [{a}]:{port}"),
                }
            }
        }
    }
}

/// A v4 persistence netmask as dotted quad (it travels big-endian).
pub fn netmask(raw: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(raw.to_ne_bytes())
}

/// `IP_VS_SVC_F_PERSISTENT`: the service is persistent (ipvsadm `-p`).
pub const SVC_F_PERSISTENT: u32 = 0x1;
/// `IP_VS_SVC_F_HASHED`: set by the kernel on every live service; not ours to set.
pub const SVC_F_HASHED: u32 = 0x2;

/// The attributes of a service that an edit may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAttrs {
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags we manage (the kernel's own HASHED bit excluded).
    pub flags: u32,
    /// Persistence timeout in seconds; 0 = not persistent.
    pub timeout: u32,
    /// Persistence netmask as it travels on the wire: a big-endian IPv4 mask
    /// for IPv4 services (`0xffffffff` = /32), a prefix length for IPv6.
    pub netmask: u32,
}

/// How packets reach a real server (`IP_VS_CONN_F_*` forwarding methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    Masq,
    Local,
    Tunnel,
    Route,
}

impl Forward {
    pub fn number(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::Route => 3,
        }
    }
    pub fn from_number(n: u32) -> Forward {
        // The kernel masks with IP_VS_CONN_F_FWD_MASK (0x7); 4..7 are unused.
        match n & 0x7 {
            1 => Forward::Local,
            2 => Forward::Tunnel,
            3 => Forward::Route,
            _ => Forward::Masq,
        }
    }
    /// The word `ipvsadm -Ln` uses.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestAttrs {
    pub forward: Forward,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub attrs: ServiceAttrs,
    pub dests: BTreeMap<DestKey, DestAttrs>,
}

/// A whole IPVS table, desired or observed. Ordered, so plans are stable.
pub type Table = BTreeMap<ServiceKey, Service>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the kernel has no IPVS (modprobe ip_vs failed / family IPVS not found): {0}; \
         load the ip_vs module or use balancer backend \"nftables\""
    )]
    NoIpvs(String),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("IPVS {op}: {errno}")]
    Kernel { op: String, errno: std::io::Error },
    #[error("IPVS state file {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sysctl(#[from] crate::sysctl::SysctlError),
}

/// What a reconcile did.
#[derive(Debug, Default)]
pub struct Report {
    /// Every op carried out, in order.
    pub applied: Vec<Op>,
    /// Ops the kernel refused, with its error; reconcile goes on past them.
    pub failed: Vec<(Op, String)>,
    /// Sysctls written (key, value).
    pub sysctls: Vec<(String, String)>,
    /// Time spent reading the kernel's table, and carrying out the changes.
    pub read: std::time::Duration,
    pub write: std::time::Duration,
}

impl Report {
    pub fn is_noop(&self) -> bool {
        self.applied.is_empty() && self.failed.is_empty() && self.sysctls.is_empty()
    }
}

/// How long one exchange with the kernel's IPVS may take. neli's calls
/// block with no timeout; a kernel that never answers must not hang `apply`
/// or the daemon, so each exchange runs on a thread of its own and is given
/// up after this (that thread stays blocked; the error says so). A 1,000 x 10
/// table takes 2.6 s to build under QEMU without KVM; the limit stays below
/// the daemon's watchdog (30 s).
const NETLINK_DEADLINE: Duration = Duration::from_secs(20);

/// `f` within `limit` (`crate::deadline`), a missed deadline as an error.
fn within<T: Send + 'static>(
    what: &'static str,
    limit: Duration,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::deadline::within(limit, f)
        .unwrap_or_else(|missed| Err(Error::Netlink(format!("{what}: {missed}"))))
}

/// Whether this kernel has IPVS: the same open (family lookup, then one
/// `modprobe ip_vs`) that reconcile does, so `auto` and `apply` agree.
pub fn probe() -> Result<(), Error> {
    within("IPVS probe", NETLINK_DEADLINE, || {
        netlink::Handle::open().map(|_| ())
    })
}

/// The kernel's IPVS table as it is now.
pub fn live_table() -> Result<Table, Error> {
    within("reading the IPVS table", NETLINK_DEADLINE, || {
        netlink::Handle::open()?.table()
    })
}

/// What reconcile needs from the kernel: its table, and carrying out ops.
/// [`netlink::Handle`] is the real one; tests use an in-memory fake, so
/// ownership, exclusive mode and partial failure are tested without root.
pub trait Kernel {
    /// The whole table: every service with its destinations.
    fn table(&self) -> Result<Table, Error>;
    /// Carry out `ops` in order; one result per op. A refused op does not
    /// stop the others (a later op may still succeed, e.g. another service).
    fn exec_all(&self, ops: &[Op]) -> Vec<Result<(), Error>>;
}

/// [`reconcile`] on this machine: the kernel over netlink, the ownership
/// file under the state directory, `/proc/sys`. Runs in the calling
/// thread's network namespace, within `NETLINK_DEADLINE`.
pub fn reconcile_live(cfg: &Arc<Config>, health: &HealthMap) -> Result<Report, Error> {
    let (cfg, health) = (cfg.clone(), health.clone());
    within("IPVS reconcile", NETLINK_DEADLINE, move || {
        let handle = netlink::Handle::open()?;
        // After open: the IPVS sysctls exist only once ip_vs is loaded.
        reconcile(
            &handle,
            &state::Store::from_env(),
            &crate::sysctl::Sysctls::default(),
            &cfg,
            &health,
        )
    })
}

/// Bring `kernel`'s IPVS table to what `cfg` and `health` ask for: set the
/// sysctls IPVS needs, read the table, diff, carry out the difference, and
/// record in `store` which services headnode owns. An op the kernel refuses
/// is reported in [`Report::failed`] and the others still run.
pub fn reconcile(
    kernel: &impl Kernel,
    store: &state::Store,
    proc_sys: &crate::sysctl::Sysctls,
    cfg: &Config,
    health: &HealthMap,
) -> Result<Report, Error> {
    let want = desired(cfg, health);
    let mut report = Report::default();
    // The same read-compare-write as the other sysctls, with the same log line.
    let want_sysctls = sysctls(cfg)
        .into_iter()
        .map(|(k, v, _why)| (k, v))
        .collect();
    let changes = proc_sys.pending(&want_sysctls)?;
    proc_sys.apply(&changes)?;
    report.sysctls = changes.into_iter().map(|c| (c.key, c.to)).collect();
    let owned = store.load()?;
    let started = std::time::Instant::now();
    let observed = kernel.table()?;
    report.read = started.elapsed();
    let ops = diff(&want, &observed, &owned, cfg.balancer.exclusive);
    // Record ownership of what we are about to create before creating it, so
    // a crash half way never leaves services nobody owns.
    let claimed: BTreeSet<ServiceKey> = owned
        .union(&want.keys().copied().collect())
        .copied()
        .collect();
    store.save(&claimed)?;
    let started = std::time::Instant::now();
    let results = kernel.exec_all(&ops);
    report.write = started.elapsed();
    // Which services exist now: what was there, plus what was added, minus
    // what was deleted (a refused op changed nothing).
    let mut exists: BTreeSet<ServiceKey> = observed.keys().copied().collect();
    for (op, result) in ops.iter().zip(results) {
        match result {
            Ok(()) => {
                tracing::info!(change = %op, "ipvs");
                match op {
                    Op::AddService(k, _) => {
                        exists.insert(*k);
                    }
                    Op::DelService(k) => {
                        exists.remove(k);
                    }
                    _ => {}
                }
                report.applied.push(op.clone());
            }
            Err(e) => {
                tracing::warn!(change = %op, error = %e, "ipvs change failed");
                report.failed.push((op.clone(), e.to_string()));
            }
        }
    }
    store.save(&claimed.intersection(&exists).copied().collect())?;
    let (read_ms, write_ms) = (report.read.as_millis(), report.write.as_millis());
    if ops.is_empty() {
        tracing::debug!(services = observed.len(), read_ms, "ipvs in sync");
    } else {
        tracing::info!(
            changes = ops.len(),
            failed = report.failed.len(),
            read_ms,
            write_ms,
            "ipvs reconciled"
        );
    }
    Ok(report)
}

/// `headnode clear`: delete the virtual services headnode created (its
/// ownership record says which) and nothing else. A kernel without IPVS has
/// none, which is not an error here.
pub fn clear_owned() -> Result<Vec<ServiceKey>, Error> {
    within("IPVS clear", NETLINK_DEADLINE, || {
        let handle = match netlink::Handle::open() {
            Ok(h) => h,
            Err(Error::NoIpvs(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        clear(&handle, &state::Store::from_env())
    })
}

/// Delete the services `store` says headnode owns and `kernel` still has;
/// the ones deleted, in order. When the kernel refuses one, the others are
/// still deleted, the store keeps the refused ones (so a retry finds them)
/// and the first refusal is the error.
pub fn clear(kernel: &impl Kernel, store: &state::Store) -> Result<Vec<ServiceKey>, Error> {
    let owned = store.load()?;
    let live = kernel.table()?;
    let keys: Vec<ServiceKey> = owned
        .iter()
        .filter(|k| live.contains_key(k))
        .copied()
        .collect();
    let ops: Vec<Op> = keys.iter().map(|k| Op::DelService(*k)).collect();
    let mut removed = Vec::new();
    let mut kept = BTreeSet::new();
    let mut first_err = None;
    for ((key, op), result) in keys.iter().zip(&ops).zip(kernel.exec_all(&ops)) {
        match result {
            Ok(()) => {
                tracing::info!(change = %op, "ipvs");
                removed.push(*key);
            }
            Err(e) => {
                kept.insert(*key);
                first_err.get_or_insert(e);
            }
        }
    }
    store.save(&kept)?;
    first_err.map_or(Ok(removed), Err)
}

/// Bring this machine's IPVS sync daemons to `desired` (see [`sync`]), in
/// the calling thread's network namespace; the ops carried out.
pub fn sync_reconcile_live(desired: Vec<sync::Daemon>) -> Result<Vec<sync::SyncOp>, Error> {
    within("IPVS sync daemon", NETLINK_DEADLINE, move || {
        sync::reconcile(&netlink::Handle::open()?, &desired)
    })
}

/// The IPVS sync daemons running now.
pub fn sync_live() -> Result<Vec<sync::Daemon>, Error> {
    within("reading the IPVS sync daemons", NETLINK_DEADLINE, || {
        sync::SyncKernel::sync_daemons(&netlink::Handle::open()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_deadline_names_the_exchange() {
        let r = within("IPVS test", Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_secs(1));
            Ok(())
        });
        let e = r.expect_err("timed out").to_string();
        assert!(e.contains("IPVS test: no answer within 0.02 s"), "{e}");
    }

    use crate::config::model::VirtualKey;
    use fake::Fake;
    use std::net::Ipv4Addr;

    /// The origin config (FWM 1 rr, node1 and node2 masq) plus FWM 2, a
    /// copy of it, so a partial failure can hit one service and not the other.
    fn config(exclusive: bool) -> Config {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin/headnode.toml");
        let mut cfg = crate::config::load(std::path::Path::new(path)).unwrap();
        let mut second = cfg.balancer.services[0].clone();
        second.name = "web2".into();
        second.key = VirtualKey::Fwmark { mark: 2 };
        cfg.balancer.services.push(second);
        cfg.balancer.exclusive = exclusive;
        cfg
    }
    fn fwm(mark: u32) -> ServiceKey {
        ServiceKey::Fwmark {
            family: Family::Inet,
            mark,
        }
    }
    fn foreign() -> ServiceKey {
        ServiceKey::Tuple {
            proto: 6,
            addr: IpAddr::from([198, 51, 100, 9]),
            port: 80,
        }
    }
    fn node(n: u8) -> DestKey {
        DestKey {
            addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100 + n)),
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
    fn rr() -> ServiceAttrs {
        ServiceAttrs {
            scheduler: "rr".into(),
            flags: 0,
            timeout: 0,
            netmask: u32::MAX,
        }
    }
    fn svc(dests: &[(u8, u32)]) -> Service {
        Service {
            attrs: rr(),
            dests: dests.iter().map(|(n, wt)| (node(*n), w(*wt))).collect(),
        }
    }
    /// What the config asks for: FWM 1 and FWM 2, each with both nodes.
    fn wanted() -> Vec<(ServiceKey, Service)> {
        vec![
            (fwm(1), svc(&[(1, 1), (2, 1)])),
            (fwm(2), svc(&[(1, 1), (2, 1)])),
        ]
    }
    fn table(entries: Vec<(ServiceKey, Service)>) -> Table {
        entries.into_iter().collect()
    }
    fn keys(k: &[ServiceKey]) -> BTreeSet<ServiceKey> {
        k.iter().copied().collect()
    }

    /// A state directory and a sysctl tree of one test's own.
    struct Dirs {
        root: PathBuf,
    }
    impl Dirs {
        fn new(name: &str, conntrack: &str) -> Dirs {
            let root = std::env::temp_dir().join(format!(
                "hn-ipvs-{}-{}",
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            let vs = root.join("sys/net/ipv4/vs");
            std::fs::create_dir_all(&vs).unwrap();
            std::fs::write(vs.join("conntrack"), format!("{conntrack}\n")).unwrap();
            Dirs { root }
        }
        fn store(&self) -> state::Store {
            state::Store::at(self.root.join("state/ipvs-owned"))
        }
        fn sysctls(&self) -> crate::sysctl::Sysctls {
            crate::sysctl::Sysctls::new(self.root.join("sys"))
        }
    }
    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    struct Case {
        name: &'static str,
        kernel: Table,
        owned: BTreeSet<ServiceKey>,
        exclusive: bool,
        /// Ops the fake kernel refuses.
        refuse: Vec<Op>,
        applied: Vec<Op>,
        /// Ops reported failed (injected refusals and what follows from them).
        failed: Vec<Op>,
        /// The table after reconcile, and the ownership record.
        after: Table,
        owned_after: BTreeSet<ServiceKey>,
    }

    fn cases() -> Vec<Case> {
        let with = |extra: Vec<(ServiceKey, Service)>| {
            let mut t = table(wanted());
            t.extend(extra);
            t
        };
        vec![
            Case {
                name: "empty kernel: both services created and owned",
                kernel: Table::new(),
                owned: keys(&[]),
                exclusive: false,
                refuse: vec![],
                applied: vec![
                    Op::AddService(fwm(1), rr()),
                    Op::AddService(fwm(2), rr()),
                    Op::AddDest(fwm(1), node(1), w(1)),
                    Op::AddDest(fwm(1), node(2), w(1)),
                    Op::AddDest(fwm(2), node(1), w(1)),
                    Op::AddDest(fwm(2), node(2), w(1)),
                ],
                failed: vec![],
                after: table(wanted()),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "unchanged: nothing to do",
                kernel: table(wanted()),
                owned: keys(&[fwm(1), fwm(2)]),
                exclusive: false,
                refuse: vec![],
                applied: vec![],
                failed: vec![],
                after: table(wanted()),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "drift repaired: a weight set and a real deleted by hand",
                kernel: table(vec![
                    (fwm(1), svc(&[(1, 5)])),
                    (fwm(2), svc(&[(1, 1), (2, 1)])),
                ]),
                owned: keys(&[fwm(1), fwm(2)]),
                exclusive: false,
                refuse: vec![],
                applied: vec![
                    Op::AddDest(fwm(1), node(2), w(1)),
                    Op::EditDest(fwm(1), node(1), w(1)),
                ],
                failed: vec![],
                after: table(wanted()),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "ownership: a service headnode did not create is left alone and not recorded",
                kernel: with(vec![(foreign(), svc(&[(9, 1)]))]),
                owned: keys(&[fwm(1), fwm(2)]),
                exclusive: false,
                refuse: vec![],
                applied: vec![],
                failed: vec![],
                after: with(vec![(foreign(), svc(&[(9, 1)]))]),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "ownership: a service headnode created that the config dropped is deleted",
                kernel: with(vec![(fwm(7), svc(&[(3, 1)]))]),
                owned: keys(&[fwm(1), fwm(2), fwm(7)]),
                exclusive: false,
                refuse: vec![],
                applied: vec![Op::DelService(fwm(7))],
                failed: vec![],
                after: table(wanted()),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "ownership: a recorded service deleted by hand is recreated",
                kernel: table(vec![(fwm(1), svc(&[(1, 1), (2, 1)]))]),
                owned: keys(&[fwm(1), fwm(2)]),
                exclusive: false,
                refuse: vec![],
                applied: vec![
                    Op::AddService(fwm(2), rr()),
                    Op::AddDest(fwm(2), node(1), w(1)),
                    Op::AddDest(fwm(2), node(2), w(1)),
                ],
                failed: vec![],
                after: table(wanted()),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "exclusive: a service headnode did not create is deleted",
                kernel: with(vec![(foreign(), svc(&[(9, 1)]))]),
                owned: keys(&[fwm(1), fwm(2)]),
                exclusive: true,
                refuse: vec![],
                applied: vec![Op::DelService(foreign())],
                failed: vec![],
                after: table(wanted()),
                owned_after: keys(&[fwm(1), fwm(2)]),
            },
            Case {
                name: "partial failure: a refused service fails with its reals, the other is made, only it is owned",
                kernel: Table::new(),
                owned: keys(&[]),
                exclusive: false,
                refuse: vec![Op::AddService(fwm(2), rr())],
                applied: vec![
                    Op::AddService(fwm(1), rr()),
                    Op::AddDest(fwm(1), node(1), w(1)),
                    Op::AddDest(fwm(1), node(2), w(1)),
                ],
                failed: vec![
                    Op::AddService(fwm(2), rr()),
                    Op::AddDest(fwm(2), node(1), w(1)),
                    Op::AddDest(fwm(2), node(2), w(1)),
                ],
                after: table(vec![(fwm(1), svc(&[(1, 1), (2, 1)]))]),
                owned_after: keys(&[fwm(1)]),
            },
            Case {
                name: "partial failure: a refused delete keeps the service owned, the rest is done",
                kernel: table(vec![(fwm(1), svc(&[(1, 1)])), (fwm(7), svc(&[(3, 1)]))]),
                owned: keys(&[fwm(1), fwm(7)]),
                exclusive: false,
                refuse: vec![Op::DelService(fwm(7))],
                applied: vec![
                    Op::AddService(fwm(2), rr()),
                    Op::AddDest(fwm(1), node(2), w(1)),
                    Op::AddDest(fwm(2), node(1), w(1)),
                    Op::AddDest(fwm(2), node(2), w(1)),
                ],
                failed: vec![Op::DelService(fwm(7))],
                after: with(vec![(fwm(7), svc(&[(3, 1)]))]),
                owned_after: keys(&[fwm(1), fwm(2), fwm(7)]),
            },
        ]
    }

    #[test]
    fn reconcile_table_driven() {
        for c in cases() {
            let dirs = Dirs::new(c.name, "0");
            let store = dirs.store();
            store.save(&c.owned).unwrap();
            let kernel = c
                .refuse
                .iter()
                .fold(Fake::new(c.kernel.clone()), |k, op| k.refuse(op.clone()));
            let cfg = config(c.exclusive);
            let report = reconcile(
                &kernel,
                &store,
                &dirs.sysctls(),
                &cfg,
                &HealthMap::default(),
            )
            .unwrap_or_else(|e| panic!("case {}: {e}", c.name));
            assert_eq!(report.applied, c.applied, "case: {}", c.name);
            let failed: Vec<Op> = report.failed.iter().map(|(op, _)| op.clone()).collect();
            assert_eq!(failed, c.failed, "case: {}", c.name);
            for (op, e) in &report.failed {
                assert!(e.contains(&op.to_string()), "case {}: {e}", c.name);
            }
            assert_eq!(kernel.now(), c.after, "case: {}", c.name);
            assert_eq!(store.load().unwrap(), c.owned_after, "case: {}", c.name);
            assert_eq!(
                report.sysctls,
                vec![("net.ipv4.vs.conntrack".to_string(), "1".to_string())],
                "case: {}",
                c.name
            );
            // Reconcile again: what is left to do is exactly what failed.
            let again = reconcile(
                &kernel,
                &store,
                &dirs.sysctls(),
                &cfg,
                &HealthMap::default(),
            )
            .unwrap();
            assert!(
                again.applied.is_empty(),
                "case {}: {:?}",
                c.name,
                again.applied
            );
            let failed_again: Vec<Op> = again.failed.into_iter().map(|(op, _)| op).collect();
            assert_eq!(failed_again, c.failed, "case: {}", c.name);
            assert!(again.sysctls.is_empty(), "case: {}", c.name);
        }
    }

    /// A kernel that reads the ownership record when asked to make changes.
    struct Peek<'a> {
        fake: Fake,
        store: &'a state::Store,
        seen: std::cell::RefCell<Option<BTreeSet<ServiceKey>>>,
    }
    impl Kernel for Peek<'_> {
        fn table(&self) -> Result<Table, Error> {
            self.fake.table()
        }
        fn exec_all(&self, ops: &[Op]) -> Vec<Result<(), Error>> {
            *self.seen.borrow_mut() = Some(self.store.load().unwrap());
            self.fake.exec_all(ops)
        }
    }

    #[test]
    fn ownership_is_recorded_before_the_services_are_created() {
        let dirs = Dirs::new("claim-first", "1");
        let store = dirs.store();
        let kernel = Peek {
            fake: Fake::default(),
            store: &store,
            seen: Default::default(),
        };
        let cfg = config(false);
        let report = reconcile(
            &kernel,
            &store,
            &dirs.sysctls(),
            &cfg,
            &HealthMap::default(),
        )
        .unwrap();
        assert_eq!(report.applied.len(), 6);
        assert!(report.sysctls.is_empty(), "conntrack was 1 already");
        // A crash during the changes leaves both services owned.
        assert_eq!(kernel.seen.take(), Some(keys(&[fwm(1), fwm(2)])));
    }

    #[test]
    fn a_down_real_is_drained_through_the_kernel() {
        let dirs = Dirs::new("drain", "1");
        let cfg = config(false);
        let kernel = Fake::new(table(wanted()));
        let mut health = HealthMap::default();
        let s = &cfg.balancer.services[0];
        health.set(
            crate::health::Target::of(s, &s.reals[1]),
            crate::health::State::Down,
        );
        let report = reconcile(&kernel, &dirs.store(), &dirs.sysctls(), &cfg, &health).unwrap();
        assert_eq!(report.applied, vec![Op::EditDest(fwm(1), node(2), w(0))]);
    }

    #[test]
    fn a_missing_ipvs_sysctl_stops_before_any_change() {
        let dirs = Dirs::new("no-sysctl", "1");
        std::fs::remove_file(dirs.root.join("sys/net/ipv4/vs/conntrack")).unwrap();
        let kernel = Fake::default();
        let e = reconcile(
            &kernel,
            &dirs.store(),
            &dirs.sysctls(),
            &config(false),
            &HealthMap::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("net.ipv4.vs.conntrack does not exist"),
            "{e}"
        );
        assert!(kernel.now().is_empty());
    }

    #[test]
    fn clear_deletes_only_owned_services_and_keeps_what_it_could_not_delete() {
        let dirs = Dirs::new("clear", "1");
        let store = dirs.store();
        // FWM 3 is owned but already gone; the foreign service is not ours.
        store.save(&keys(&[fwm(1), fwm(2), fwm(3)])).unwrap();
        let kernel = Fake::new(table(vec![
            (fwm(1), svc(&[(1, 1)])),
            (fwm(2), svc(&[(1, 1)])),
            (foreign(), svc(&[(9, 1)])),
        ]))
        .refuse(Op::DelService(fwm(2)));
        let e = clear(&kernel, &store).unwrap_err();
        assert!(e.to_string().contains("-D -f 2"), "{e}");
        assert_eq!(
            kernel.now().keys().copied().collect::<Vec<_>>(),
            vec![fwm(2), foreign()]
        );
        assert_eq!(store.load().unwrap(), keys(&[fwm(2)]));
        // Once the kernel takes it, the record is empty.
        let kernel = Fake::new(kernel.now());
        assert_eq!(clear(&kernel, &store).unwrap(), vec![fwm(2)]);
        assert_eq!(
            kernel.now().keys().copied().collect::<Vec<_>>(),
            vec![foreign()]
        );
        assert!(store.load().unwrap().is_empty());
    }
}
