//! The control protocol between the daemon (`headnode run`) and the commands
//! that talk to it (`status`, `reload`, `apply` and `confirm`, which the
//! daemon carries out itself while it runs, and `plan` for the health view):
//! one JSON line each way over a Unix socket, mode 0600 in a
//! root-only directory.
//!
//! Both sides use these types, so a renamed field is a compile error rather
//! than a `status` that silently shows nothing. Every line carries
//! [`VERSION`]; a daemon and a client of different versions (an upgrade
//! without a restart) refuse each other's lines with an error that says so,
//! instead of guessing at fields. This module imports neither `commands` nor
//! the daemon: it is the boundary between them.

use crate::config::model::{Backend, Method};
use crate::dhcp::limits::CountersView;
use crate::dhcp::unknown::UnknownList;
use crate::dhcp::{LeaseKey, LeaseView, ReleaseOutcome};
use crate::firewall::fallback::Source;
use crate::health::HealthMap;
use crate::tftp::TftpStatus;
use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The wire version. Bump it whenever a request or answer changes shape.
pub const VERSION: u32 = 1;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// What the daemon alone knows: health, drift repairs, DHCP counters.
    Status,
    /// Every reservation and lease the DHCP server holds.
    Leases,
    /// The health checks' view, so `plan` and `apply` drain what it drained.
    Health,
    /// Re-read the config and put it in effect. `force`: even when its
    /// ruleset would not let an SSH session into the box back in.
    Reload {
        #[serde(default)]
        force: bool,
    },
    /// `headnode apply` while the daemon runs: put `config` (which must be
    /// the daemon's own config file) in effect, and with `confirm_s` roll
    /// back unless `Confirm` arrives within that many seconds.
    Apply {
        config: PathBuf,
        confirm_s: Option<u64>,
        /// The client's `--force`: the SSH guard was overridden.
        #[serde(default)]
        force: bool,
    },
    /// Keep what a pending `Apply` with `confirm_s` put in effect.
    Confirm,
    /// The clients the DHCP server refused (no reservation, no pool).
    Unknown,
    /// End a pool lease (`headnode leases release IP|MAC`).
    Release { key: LeaseKey },
    /// keepalived's new VRRP state (`headnode ha-notify`).
    HaState { state: crate::ha::State },
}

impl Request {
    /// How long the client waits for the answer: a reload reconciles the
    /// firewall and IPVS, whose netlink calls are given up to a minute.
    fn timeout(&self) -> Duration {
        match self {
            Request::Status
            | Request::Leases
            | Request::Health
            | Request::Confirm
            | Request::Unknown
            | Request::Release { .. } => Duration::from_secs(10),
            // Carried out before the answer: the sync daemon's netlink calls.
            Request::HaState { .. } => Duration::from_secs(30),
            Request::Reload { .. } | Request::Apply { .. } => Duration::from_secs(90),
        }
    }
}

/// What the daemon answers; one variant per request, or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    Status(Box<DaemonStatus>),
    Leases {
        leases: Vec<LeaseView>,
    },
    Health {
        health: HealthMap,
    },
    Reload(ReloadOutcome),
    Apply(ApplyOutcome),
    Confirm(ConfirmOutcome),
    Unknown(UnknownList),
    Release(ReleaseOutcome),
    /// The state is in effect; `error` when the sync daemons could not follow.
    HaState {
        error: Option<String>,
    },
    /// The request was not understood (another version, or not a request).
    Error {
        message: String,
    },
}

/// The result of a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new config is in effect.
    Reloaded,
    /// The new config is invalid; the daemon runs the previous one. `errors`
    /// are the diagnostics as `headnode check` prints them.
    Rejected { errors: String },
    /// The new config is valid but could not be put in place (nft refused
    /// the ruleset); the daemon keeps the previous config and firewall.
    Failed { error: String },
}

/// The result of an apply through the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// The config is in effect; with `confirm_within_s`, only until then
    /// unless confirmed.
    Applied { confirm_within_s: Option<u64> },
    /// As for a reload: the config is invalid; nothing changed.
    Rejected { errors: String },
    /// As for a reload: nft refused the ruleset; nothing changed.
    Failed { error: String },
    /// Not tried: another apply waits for its confirm, or `config` is not
    /// the daemon's config file.
    Refused { why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ConfirmOutcome {
    Confirmed,
    /// No apply waits for a confirm (none was made, or it was rolled back).
    NothingPending,
}

/// The daemon's part of `headnode status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub daemon: DaemonInfo,
    pub firewall: FirewallStatus,
    /// Sysctls the daemon could not set (tried again at every reconcile).
    pub sysctl_problems: Vec<String>,
    pub balancer: BalancerStatus,
    pub dhcp: DhcpStatus,
    /// `None` when `[tftp]` is off (or its server failed to restart).
    pub tftp: Option<TftpStatus>,
    /// `None` when `[dns]` is off (or its server failed to start).
    #[serde(default)]
    pub dns: Option<crate::dns::DnsStatus>,
    /// `None` without `[ha]`.
    #[serde(default)]
    pub ha: Option<HaStatus>,
    pub leases: Vec<LeaseView>,
}

/// This head node and its peer (`[ha]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    pub role: crate::config::model::HaRole,
    pub priority: u8,
    pub state: crate::ha::State,
    pub known: crate::ha::Known,
    /// Seconds since the state last changed (or since the daemon started).
    pub since_s: u64,
    pub peer: std::net::Ipv4Addr,
    pub public_address: ipnet::Ipv4Net,
    pub lan_address: ipnet::Ipv4Net,
    /// The IPVS sync daemons running now, as the kernel reports them.
    pub sync_daemons: Vec<String>,
    /// Why the sync daemons could not be read or set, if so.
    pub sync_error: Option<String>,
    /// The half of the pool this node leases from.
    pub pool: Option<crate::config::model::Pool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub uptime_s: u64,
    pub config: PathBuf,
    pub reconcile_interval_s: f64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallStatus {
    #[serde(flatten)]
    pub state: FirewallState,
    /// Which firewall is loaded: the config's, or a fallback and why.
    pub source: Source,
    /// The public address the ruleset uses; `None` while `"auto"` has none.
    pub public_address: Option<Ipv4Net>,
    pub drift_repairs: u64,
}

/// Whether table inet headnode is what the config asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FirewallState {
    InSync,
    /// `[firewall] enabled = false`: no table is wanted.
    Disabled,
    /// The table is gone (`nft flush ruleset`).
    Missing,
    /// The table differs from what was loaded.
    Drifted,
    /// The last load failed or was not recorded, or the config changed since.
    NotInSync {
        reason: String,
    },
    /// nft could not be asked.
    Unknown {
        error: String,
    },
    /// The config's ruleset could not be loaded: a fallback is (`loaded`).
    Fallback {
        loaded: String,
    },
}

impl FirewallState {
    /// Whether this is the firewall the config asks for.
    pub fn in_sync(&self) -> bool {
        matches!(self, FirewallState::InSync | FirewallState::Disabled)
    }
}

impl fmt::Display for FirewallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallState::InSync => f.write_str("in sync"),
            FirewallState::Disabled => f.write_str("disabled"),
            FirewallState::Missing => f.write_str("missing (repaired at the next reconcile)"),
            FirewallState::Drifted => f.write_str("drifted (repaired at the next reconcile)"),
            FirewallState::NotInSync { reason } => {
                write!(f, "not in sync: {reason} (loaded at the next reconcile)")
            }
            FirewallState::Unknown { error } => write!(f, "unknown: {error}"),
            FirewallState::Fallback { loaded } => {
                write!(f, "fallback: {loaded} (the config's is tried again)")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancerStatus {
    pub backend: Backend,
    pub reason: String,
    pub drift_repairs: u64,
    /// Whether the kernel's IPVS table is what the config and health ask
    /// for; `None` when IPVS does not balance.
    pub ipvs: Option<IpvsState>,
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IpvsState {
    InSync,
    /// The changes the next reconcile makes, as `ipvsadm` arguments.
    Drifted {
        changes: Vec<String>,
    },
    Unknown {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    /// As `ipvsadm -Ln` names it: `TCP 203.0.113.210:80`, `FWM 1`.
    pub key: String,
    pub scheduler: String,
    pub method: Method,
    pub reals: Vec<RealStatus>,
}

impl ServiceStatus {
    /// Every real server is down: new connections go nowhere (or to the
    /// sorry server). A service without reals has none to lose.
    pub fn all_down(&self) -> bool {
        !self.reals.is_empty() && self.reals.iter().all(|r| r.health == Health::Down)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealStatus {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub health: Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Up,
    Down,
    /// The service has no health check: always counted up.
    NotChecked,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::NotChecked => "not checked",
        })
    }
}

/// The daemon's DHCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpStatus {
    /// `[dhcp] enabled` in the running config.
    pub enabled: bool,
    /// The server; `None` when none runs (disabled, or it failed to start:
    /// see `last_error`).
    #[serde(flatten)]
    pub server: Option<DhcpServing>,
    /// Times the server ended on its own and was started again.
    pub restarts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpServing {
    /// Listening or deaf (and why), and whether the pool is served.
    #[serde(flatten)]
    pub status: crate::dhcp::Status,
    pub counters: CountersView,
}

/// One line on the wire: the version, then the request or answer's fields.
#[derive(Serialize, Deserialize)]
struct Line<T> {
    version: u32,
    #[serde(flatten)]
    body: T,
}

/// Only the version, read before the rest so that a line of another version
/// is reported as such rather than as a field it lacks.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {socket}: {source}")]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{peer} speaks {}, this headnode control protocol version {VERSION}: \
         restart the daemon (`systemctl restart headnode`) so both are the installed version",
        match .theirs {
            Some(v) => format!("control protocol version {v}"),
            None => "an older control protocol (without versions)".into(),
        }
    )]
    Version {
        peer: &'static str,
        theirs: Option<u32>,
    },
    #[error("{peer} sent a line that is not a control message: {error}")]
    Malformed { peer: &'static str, error: String },
    #[error("the daemon refused the request: {0}")]
    Refused(String),
    #[error("the daemon answered {got} to {asked}")]
    Unexpected { asked: String, got: String },
}

/// A line to send: the message with the version, newline-terminated.
pub fn encode<T: Serialize>(body: &T) -> String {
    let line = Line {
        version: VERSION,
        body,
    };
    // Serializing these types cannot fail: no maps with non-string keys,
    // no custom serializers that error.
    let mut text = serde_json::to_string(&line).expect("control messages serialize");
    text.push('\n');
    text
}

/// A received line, after checking its version. `peer` names the other side
/// in errors ("the daemon", "the client").
pub fn decode<T: DeserializeOwned>(line: &str, peer: &'static str) -> Result<T, ControlError> {
    let malformed = |e: serde_json::Error| ControlError::Malformed {
        peer,
        error: e.to_string(),
    };
    // A bare word (`status`) is what daemons before the typed protocol sent
    // and read: no JSON object, so no version.
    let theirs = match serde_json::from_str::<VersionOnly>(line) {
        Ok(v) => v.version,
        Err(_) if !line.trim_start().starts_with('{') => None,
        Err(e) => return Err(malformed(e)),
    };
    if theirs != Some(VERSION) {
        return Err(ControlError::Version { peer, theirs });
    }
    serde_json::from_str::<Line<T>>(line)
        .map(|l| l.body)
        .map_err(malformed)
}

/// Whether a daemon listens at `socket` (of whatever version).
pub fn listening(socket: &Path) -> Result<bool, ControlError> {
    match UnixStream::connect(socket) {
        Ok(_) => Ok(true),
        Err(e) if no_daemon(&e) => Ok(false),
        Err(source) => Err(ControlError::Io {
            socket: socket.to_path_buf(),
            source,
        }),
    }
}

/// What connecting finds when no daemon runs: no socket file, or one left
/// by a daemon that was killed.
fn no_daemon(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

/// Ask the running daemon; `Ok(None)` when no daemon listens at `socket`.
pub fn ask(socket: &Path, req: &Request) -> Result<Option<Answer>, ControlError> {
    let io = |source| ControlError::Io {
        socket: socket.to_path_buf(),
        source,
    };
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if no_daemon(&e) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(req.timeout())).map_err(io)?;
    stream.write_all(encode(req).as_bytes()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(io)?;
    match decode::<Answer>(&line, "the daemon")? {
        Answer::Error { message } => Err(ControlError::Refused(message)),
        answer => Ok(Some(answer)),
    }
}

fn unexpected(asked: &Request, got: &Answer) -> ControlError {
    let name = |v: serde_json::Value, tag: &str| v[tag].as_str().unwrap_or("?").to_string();
    ControlError::Unexpected {
        asked: name(serde_json::to_value(asked).unwrap_or_default(), "request"),
        got: name(serde_json::to_value(got).unwrap_or_default(), "answer"),
    }
}

/// The daemon's status; `None` when no daemon runs.
pub fn status(socket: &Path) -> Result<Option<DaemonStatus>, ControlError> {
    match ask(socket, &Request::Status)? {
        None => Ok(None),
        Some(Answer::Status(s)) => Ok(Some(*s)),
        Some(other) => Err(unexpected(&Request::Status, &other)),
    }
}

/// The daemon's health checks' view; `None` when no daemon runs.
pub fn health(socket: &Path) -> Result<Option<HealthMap>, ControlError> {
    match ask(socket, &Request::Health)? {
        None => Ok(None),
        Some(Answer::Health { health }) => Ok(Some(health)),
        Some(other) => Err(unexpected(&Request::Health, &other)),
    }
}

/// Ask the daemon to reload; `None` when no daemon runs.
pub fn reload(socket: &Path, force: bool) -> Result<Option<ReloadOutcome>, ControlError> {
    let req = Request::Reload { force };
    match ask(socket, &req)? {
        None => Ok(None),
        Some(Answer::Reload(r)) => Ok(Some(r)),
        Some(other) => Err(unexpected(&req, &other)),
    }
}

/// Apply through the daemon; `None` when no daemon runs.
pub fn apply(
    socket: &Path,
    config: &Path,
    confirm: Option<Duration>,
    force: bool,
) -> Result<Option<ApplyOutcome>, ControlError> {
    let req = Request::Apply {
        config: config.to_path_buf(),
        confirm_s: confirm.map(|d| d.as_secs().max(1)),
        force,
    };
    match ask(socket, &req)? {
        None => Ok(None),
        Some(Answer::Apply(a)) => Ok(Some(a)),
        Some(other) => Err(unexpected(&req, &other)),
    }
}

/// Confirm a pending apply the daemon made; `None` when no daemon runs.
pub fn confirm(socket: &Path) -> Result<Option<ConfirmOutcome>, ControlError> {
    match ask(socket, &Request::Confirm)? {
        None => Ok(None),
        Some(Answer::Confirm(c)) => Ok(Some(c)),
        Some(other) => Err(unexpected(&Request::Confirm, &other)),
    }
}

/// The clients the daemon's DHCP server refused; `None` when no daemon runs.
pub fn unknown(socket: &Path) -> Result<Option<UnknownList>, ControlError> {
    match ask(socket, &Request::Unknown)? {
        None => Ok(None),
        Some(Answer::Unknown(u)) => Ok(Some(u)),
        Some(other) => Err(unexpected(&Request::Unknown, &other)),
    }
}

/// Tell the daemon keepalived's new state; `None` when no daemon runs.
pub fn ha_state(
    socket: &Path,
    state: crate::ha::State,
) -> Result<Option<Option<String>>, ControlError> {
    let req = Request::HaState { state };
    match ask(socket, &req)? {
        None => Ok(None),
        Some(Answer::HaState { error }) => Ok(Some(error)),
        Some(other) => Err(unexpected(&req, &other)),
    }
}

/// End a pool lease through the daemon; `None` when no daemon runs.
pub fn release(socket: &Path, key: LeaseKey) -> Result<Option<ReleaseOutcome>, ControlError> {
    let req = Request::Release { key };
    match ask(socket, &req)? {
        None => Ok(None),
        Some(Answer::Release(r)) => Ok(Some(r)),
        Some(other) => Err(unexpected(&req, &other)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dhcp::{LeaseKind, LeaseState};
    use crate::health::{State, Target};

    /// Encode, then decode as the other side does; the same value comes back.
    fn round_trip<T>(msg: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let line = encode(&msg);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        assert!(line.starts_with("{\"version\":1,"), "{line}");
        let back: T = decode(&line, "test").unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(back, msg, "{line}");
    }

    #[test]
    fn every_request_round_trips() {
        for req in [
            Request::Status,
            Request::Leases,
            Request::Health,
            Request::Reload { force: false },
            Request::Reload { force: true },
            Request::Apply {
                config: "/etc/headnode/headnode.toml".into(),
                confirm_s: Some(120),
                force: false,
            },
            Request::Apply {
                config: "/etc/headnode/headnode.toml".into(),
                confirm_s: None,
                force: true,
            },
            Request::Confirm,
            Request::Unknown,
            Request::Release {
                key: LeaseKey::Address {
                    address: Ipv4Addr::new(192, 168, 1, 200),
                },
            },
            Request::Release {
                key: LeaseKey::Mac {
                    mac: [0x52, 0x54, 0, 1, 2, 3],
                },
            },
        ] {
            round_trip(req);
        }
        assert_eq!(
            encode(&Request::Status),
            "{\"version\":1,\"request\":\"status\"}\n"
        );
    }

    fn lease() -> LeaseView {
        LeaseView {
            address: Ipv4Addr::new(192, 168, 1, 101),
            mac: "00:12:34:56:78:91".into(),
            kind: LeaseKind::Fixed,
            name: Some("node1".into()),
            state: LeaseState::Bound,
            expires: Some(1_700_000_000),
            last_seen: Some(1_699_999_000),
        }
    }

    /// A status with something in every part (also for `metrics` tests).
    pub(crate) fn status() -> DaemonStatus {
        DaemonStatus {
            daemon: DaemonInfo {
                pid: 42,
                uptime_s: 3600,
                config: "/etc/headnode/headnode.toml".into(),
                reconcile_interval_s: 10.0,
                last_error: Some("ipvs: netlink: busy".into()),
            },
            firewall: FirewallStatus {
                state: FirewallState::NotInSync {
                    reason: "the config changed".into(),
                },
                source: Source::LastApplied("nft refused the ruleset".into()),
                public_address: Some("203.0.113.210/24".parse().unwrap()),
                drift_repairs: 2,
            },
            sysctl_problems: vec!["cannot write sysctl net.ipv4.conf.bond0.rp_filter".into()],
            balancer: BalancerStatus {
                backend: Backend::Ipvs,
                reason: "the kernel has IPVS".into(),
                drift_repairs: 1,
                ipvs: Some(IpvsState::Drifted {
                    changes: vec!["-a -t 203.0.113.210:80 -r 192.168.1.101:80 -m -w 1".into()],
                }),
                services: vec![ServiceStatus {
                    name: "web".into(),
                    key: "TCP 203.0.113.210:80".into(),
                    scheduler: "wlc".into(),
                    method: Method::Masq,
                    reals: vec![RealStatus {
                        name: "node1".into(),
                        address: Ipv4Addr::new(192, 168, 1, 101),
                        port: 80,
                        weight: 1,
                        health: Health::NotChecked,
                    }],
                }],
            },
            dhcp: DhcpStatus {
                enabled: true,
                server: Some(DhcpServing {
                    status: crate::dhcp::Status {
                        interface: "eth0".into(),
                        serving: false,
                        deaf: Some("interface eth0 is down".into()),
                        pool_refused: Some("lease file unwritable".into()),
                        rebinds: 1,
                        stalled_s: Some(30),
                    },
                    counters: CountersView {
                        received: 3,
                        acks: 1,
                        ..CountersView::default()
                    },
                }),
                restarts: 2,
            },
            tftp: Some(TftpStatus {
                root: "/srv/tftp".into(),
                listen: "192.168.1.254:69".parse().unwrap(),
                active: 1,
                counters: crate::tftp::TftpCounters {
                    requests: 2,
                    ..Default::default()
                },
                recent: vec![crate::tftp::Served {
                    file: "pxelinux.0".into(),
                    client: "192.168.1.101:2070".parse().unwrap(),
                    bytes: 42_000,
                    outcome: "completed".into(),
                    at: 1_700_000_000,
                }],
            }),
            dns: Some(crate::dns::DnsStatus {
                listen: "192.168.1.254:53".parse().unwrap(),
                domain: "cluster.example".into(),
                names: 3,
                upstream: vec!["192.0.2.53:53".parse().unwrap()],
                cache_entries: 1,
                cache_capacity: 10_000,
                counters: crate::dns::DnsCounters {
                    queries: 5,
                    cache_hits: 1,
                    ..Default::default()
                },
            }),
            ha: Some(HaStatus {
                role: crate::config::model::HaRole::Primary,
                priority: 150,
                state: crate::ha::State::Master,
                known: crate::ha::Known::Notified,
                since_s: 12,
                peer: "192.168.1.253".parse().unwrap(),
                public_address: "203.0.113.200/24".parse().unwrap(),
                lan_address: "192.168.1.1/24".parse().unwrap(),
                sync_daemons: vec!["master sync daemon on eth0 (syncid 51)".into()],
                sync_error: None,
                pool: None,
            }),
            leases: vec![lease()],
        }
    }

    #[test]
    fn every_answer_round_trips() {
        round_trip(Answer::Status(Box::new(status())));
        let mut quiet = status();
        quiet.firewall.state = FirewallState::InSync;
        quiet.balancer.ipvs = None;
        quiet.dhcp.server = None;
        quiet.tftp = None;
        quiet.dns = None;
        round_trip(Answer::Status(Box::new(quiet)));
        round_trip(Answer::Leases {
            leases: vec![lease()],
        });
        let mut health = HealthMap::default();
        let t = |port| Target {
            service: "web".into(),
            addr: Ipv4Addr::new(192, 168, 1, 101),
            port,
        };
        health.set(t(8000), State::Down);
        health.set(t(8001), State::Up);
        round_trip(Answer::Health { health });
        round_trip(Answer::Reload(ReloadOutcome::Reloaded));
        round_trip(Answer::Unknown(UnknownList {
            clients: vec![crate::dhcp::unknown::UnknownClient {
                mac: "52:54:00:01:02:03".into(),
                first_seen: 1_700_000_000,
                last_seen: 1_700_000_060,
                requests: 3,
                interface: "eth1".into(),
                vendor: Some("QEMU/KVM (virtual)".into()),
            }],
            dropped: 2,
        }));
        round_trip(Answer::Release(ReleaseOutcome::Released {
            address: Ipv4Addr::new(192, 168, 1, 200),
            mac: "52:54:00:01:02:03".into(),
        }));
        round_trip(Answer::Release(ReleaseOutcome::NotFound {
            why: "no lease for 192.168.1.201".into(),
        }));
        round_trip(Answer::Reload(ReloadOutcome::Rejected {
            errors: "headnode.toml:3: bad".into(),
        }));
        round_trip(Answer::Reload(ReloadOutcome::Failed {
            error: "nft rejected the ruleset".into(),
        }));
        for outcome in [
            ApplyOutcome::Applied {
                confirm_within_s: Some(120),
            },
            ApplyOutcome::Applied {
                confirm_within_s: None,
            },
            ApplyOutcome::Rejected {
                errors: "headnode.toml:3: bad".into(),
            },
            ApplyOutcome::Failed {
                error: "nft rejected the ruleset".into(),
            },
            ApplyOutcome::Refused {
                why: "waiting for confirm".into(),
            },
        ] {
            round_trip(Answer::Apply(outcome));
        }
        round_trip(Answer::Confirm(ConfirmOutcome::Confirmed));
        round_trip(Answer::Confirm(ConfirmOutcome::NothingPending));
        round_trip(Answer::Error {
            message: "no".into(),
        });
    }

    #[test]
    fn another_version_is_named_not_guessed_at() {
        let newer = "{\"version\":2,\"answer\":\"status\",\"everything\":\"renamed\"}\n";
        let e = decode::<Answer>(newer, "the daemon").unwrap_err();
        assert!(
            matches!(
                e,
                ControlError::Version {
                    theirs: Some(2),
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("version 2") && text.contains("version 1"),
            "{text}"
        );
        assert!(text.contains("systemctl restart headnode"), "{text}");
        // What daemons before the typed protocol answered, and clients sent.
        for old in ["{\"error\":\"unknown request\"}\n", "status\n"] {
            let e = decode::<Answer>(old, "the daemon").unwrap_err();
            assert!(
                matches!(e, ControlError::Version { theirs: None, .. }),
                "{old}: {e:?}"
            );
            assert!(e.to_string().contains("an older control protocol"), "{e}");
        }
        let broken = decode::<Request>("{\"version\":1,\"request\":\"dance\"}", "the client");
        assert!(
            matches!(broken, Err(ControlError::Malformed { .. })),
            "{broken:?}"
        );
    }

    #[test]
    fn a_service_is_down_when_every_real_is() {
        let mut s = status().balancer.services.remove(0);
        assert!(!s.all_down(), "not checked counts as up");
        s.reals[0].health = Health::Down;
        assert!(s.all_down());
        s.reals.clear();
        assert!(!s.all_down(), "no reals: nothing is down");
    }
}
