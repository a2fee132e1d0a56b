//! Load balancing with kernel IPVS, spoken over generic netlink.
//!
//! The split follows the crate rule: [`desired`] (config + health → table)
//! and [`diff`] (desired × observed × owned → ops) are pure; [`netlink`]
//! reads the kernel's table and carries out ops; [`reconcile`] glues them
//! together and records which services headnode owns.
//!
//! Identity is kept apart from attributes (keepalived's `vs_iseq`): a
//! [`ServiceKey`] or [`DestKey`] change is a delete plus an add, an attribute
//! change is an edit.

pub mod desired;
pub mod diff;
pub mod netlink;
pub mod render;
pub mod state;
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
/// table takes 2.6 s to build under QEMU without KVM.
const NETLINK_DEADLINE: Duration = Duration::from_secs(60);

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

/// Bring the kernel's IPVS table to what `cfg` and `health` ask for: read
/// it, diff, carry out the difference, record ownership. Runs in the calling
/// thread's network namespace, within `NETLINK_DEADLINE`.
pub fn reconcile(cfg: &Arc<Config>, health: &HealthMap) -> Result<Report, Error> {
    let (cfg, health) = (cfg.clone(), health.clone());
    within("IPVS reconcile", NETLINK_DEADLINE, move || {
        reconcile_now(&cfg, &health)
    })
}

fn reconcile_now(cfg: &Config, health: &HealthMap) -> Result<Report, Error> {
    let want = desired(cfg, health);
    let handle = netlink::Handle::open()?;
    let mut report = Report::default();
    // After open: these keys exist only once ip_vs is loaded. The same
    // read-compare-write as the other sysctls, with the same log line.
    let proc_sys = crate::sysctl::Sysctls::default();
    let want_sysctls = sysctls(cfg)
        .into_iter()
        .map(|(k, v, _why)| (k, v))
        .collect();
    let changes = proc_sys.plan(&want_sysctls)?;
    proc_sys.apply(&changes)?;
    report.sysctls = changes.into_iter().map(|c| (c.key, c.to)).collect();
    let store = state::Store::from_env();
    let owned = store.load()?;
    let started = std::time::Instant::now();
    let observed = handle.table()?;
    report.read = started.elapsed();
    let ops = diff(&want, &observed, &owned, cfg.balancer.exclusive);
    // Record ownership of what we are about to create before creating it, so
    // a crash half way never leaves services nobody owns.
    let mut owned_now: BTreeSet<ServiceKey> = owned
        .union(&want.keys().copied().collect())
        .copied()
        .collect();
    store.save(&owned_now)?;
    let started = std::time::Instant::now();
    let results = handle.exec_all(&ops);
    report.write = started.elapsed();
    for (op, result) in ops.iter().zip(results) {
        match result {
            Ok(()) => {
                tracing::info!(change = %op, "ipvs");
                if let Op::DelService(k) = op {
                    owned_now.remove(k);
                }
                report.applied.push(op.clone());
            }
            Err(e) => {
                tracing::warn!(change = %op, error = %e, "ipvs change failed");
                report.failed.push((op.clone(), e.to_string()));
            }
        }
    }
    owned_now.retain(|k| want.contains_key(k) || observed.contains_key(k));
    store.save(&owned_now)?;
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
    within("IPVS clear", NETLINK_DEADLINE, clear_owned_now)
}

fn clear_owned_now() -> Result<Vec<ServiceKey>, Error> {
    let handle = match netlink::Handle::open() {
        Ok(h) => h,
        Err(Error::NoIpvs(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let store = state::Store::from_env();
    let owned = store.load()?;
    let live = handle.table()?;
    let mut removed = Vec::new();
    for key in owned.iter().filter(|k| live.contains_key(k)) {
        handle.exec(&Op::DelService(*key))?;
        tracing::info!(change = %Op::DelService(*key), "ipvs");
        removed.push(*key);
    }
    store.save(&BTreeSet::new())?;
    Ok(removed)
}

/// `headnode plan`'s IPVS section: the desired table and the changes apply
/// would make to the live one (or to an empty one when it cannot be read).
pub fn plan_text(cfg: &Config, health: &HealthMap) -> String {
    let want = desired(cfg, health);
    let live = live_table();
    let owned = state::Store::from_env().load().unwrap_or_default();
    render::plan(
        &want,
        live.map_err(|e| e.to_string()),
        &owned,
        cfg.balancer.exclusive,
        &sysctls(cfg),
    )
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
}
