//! `headnode status [--json]`: what is live, in one view, and an exit code
//! that scripts and monitoring can use. The running daemon answers for what
//! only it knows (health, drift, DHCP counters); the rest is read from the
//! kernel directly, so status also works when the daemon is not running.

use crate::cli::JsonArgs;
use crate::config::Config;
use crate::config::model::Backend;
use crate::control::{
    self, DaemonInfo, DaemonStatus, DhcpStatus, FirewallState, IpvsState, ServiceStatus,
};
use crate::dhcp::LeaseView;
use crate::dns::DnsStatus;
use crate::firewall::fallback::Source;
use crate::firewall::nft::{Nft, RuleCounter};
use crate::netinfo::{self, IfaceView};
use crate::tftp::TftpStatus;
use crate::{ipvs, paths, plan};
use ipnet::Ipv4Net;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// The exit codes of `headnode status`; when several apply, the lowest.
/// `headnode status --help` and the README's operations section list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The daemon runs, the firewall and IPVS are what the config asks for,
    /// and every service has a healthy real server.
    Ok = 0,
    /// The config is invalid (the daemon, if running, keeps the previous one).
    InvalidConfig = 1,
    /// No daemon answers on the control socket.
    NotRunning = 3,
    /// The firewall or the IPVS table is not (or not known to be) what the
    /// config asks for.
    Drift = 4,
    /// A load-balanced service has no healthy real server.
    NoHealthyReal = 5,
    /// DHCP is on but its server does not answer: none runs, it is deaf
    /// (the interface is gone, down or without its address), or stuck.
    DhcpNotServing = 6,
}

/// `headnode status --json`. `version` changes when the shape does.
#[derive(Debug, Serialize)]
struct Report {
    version: u32,
    exit: Exit,
    daemon: DaemonView,
    interfaces: Interfaces,
    firewall: FirewallView,
    balancer: BalancerView,
    /// `None` without a daemon.
    dhcp: Option<DhcpStatus>,
    tftp: Option<TftpStatus>,
    dns: Option<DnsStatus>,
    /// `[ha]`: the VRRP state, the peer and the IPVS sync daemons.
    ha: Option<crate::control::HaStatus>,
    leases: Vec<LeaseView>,
    /// Sysctls the daemon could not set; empty without a daemon.
    sysctl_problems: Vec<String>,
    config_error: Option<String>,
}

/// The JSON form of `status --json`; `control::VERSION` is the wire's, this
/// is the document's.
pub const JSON_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
struct Exit {
    code: u8,
    verdict: Verdict,
    /// Why, one sentence per problem found.
    reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DaemonView {
    running: bool,
    #[serde(flatten)]
    info: Option<DaemonInfo>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Interfaces {
    Read {
        links: Vec<IfaceView>,
        problems: Vec<String>,
    },
    Unreadable {
        error: String,
    },
}

#[derive(Debug, Serialize)]
struct FirewallView {
    /// What the daemon found; `None` without a daemon.
    #[serde(flatten)]
    state: Option<FirewallState>,
    /// Which firewall is loaded (the config's, or a fallback and why).
    source: Option<Source>,
    /// The public address the ruleset uses; `None` while `"auto"` has none.
    public_address: Option<Ipv4Net>,
    drift_repairs: Option<u64>,
    rules: Rules,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Rules {
    Counted(Vec<RuleCounter>),
    Unavailable { error: String },
}

#[derive(Debug, Serialize)]
struct BalancerView {
    backend: Option<Backend>,
    reason: Option<String>,
    drift_repairs: Option<u64>,
    /// The daemon's comparison of the IPVS table with the config.
    ipvs: Option<IpvsState>,
    services: Vec<ServiceStatus>,
    /// The kernel's IPVS table when IPVS balances.
    ipvs_live: Option<IpvsLive>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum IpvsLive {
    Table(Vec<IpvsService>),
    Unreadable { error: String },
}

/// One virtual service of the kernel's IPVS table.
#[derive(Debug, Serialize)]
struct IpvsService {
    /// `tcp`, `udp`, `sctp`; `None` for a fwmark service.
    protocol: Option<String>,
    address: Option<IpAddr>,
    port: Option<u16>,
    fwmark: Option<u32>,
    ipv6: bool,
    scheduler: String,
    /// Persistence timeout in seconds; `None` when not persistent.
    persistent_s: Option<u32>,
    reals: Vec<IpvsReal>,
}

#[derive(Debug, Serialize)]
struct IpvsReal {
    address: IpAddr,
    port: u16,
    /// `masq`, `route`, `tunnel` or `local`.
    forward: String,
    weight: u32,
}

fn ipvs_services(t: &ipvs::Table) -> Vec<IpvsService> {
    t.iter()
        .map(|(k, s)| {
            let (protocol, address, port, fwmark) = match *k {
                ipvs::ServiceKey::Fwmark { mark, .. } => (None, None, None, Some(mark)),
                ipvs::ServiceKey::Tuple { proto, addr, port } => {
                    let p = match proto {
                        6 => "tcp".to_string(),
                        17 => "udp".to_string(),
                        132 => "sctp".to_string(),
                        n => n.to_string(),
                    };
                    (Some(p), Some(addr), Some(port), None)
                }
            };
            IpvsService {
                protocol,
                address,
                port,
                fwmark,
                ipv6: k.family() == ipvs::Family::Inet6,
                scheduler: s.attrs.scheduler.clone(),
                persistent_s: (s.attrs.flags & ipvs::SVC_F_PERSISTENT != 0)
                    .then_some(s.attrs.timeout),
                reals: s
                    .dests
                    .iter()
                    .map(|(d, a)| IpvsReal {
                        address: d.addr,
                        port: d.port,
                        forward: a.forward.ipvsadm_name().to_lowercase(),
                        weight: a.weight,
                    })
                    .collect(),
            }
        })
        .collect()
}

pub fn run(path: &Path, args: &JsonArgs) -> anyhow::Result<u8> {
    let daemon = control::status(&paths::control_socket())?;
    let cfg = super::load_resolved(path);
    let report = observe(daemon, &cfg);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json)?);
    } else {
        print!("{}", render(&report.json, report.ipvs_text.as_deref()));
    }
    Ok(report.json.exit.code)
}

struct Observed {
    json: Report,
    /// The live IPVS table in `ipvsadm -Ln` form, for the text output.
    ipvs_text: Option<String>,
}

/// Read what the daemon did not answer for: interfaces, rule counters, the
/// IPVS table.
fn observe(daemon: Option<DaemonStatus>, cfg: &anyhow::Result<Config>) -> Observed {
    let interfaces = match netinfo::read() {
        Ok(snap) => Interfaces::Read {
            links: netinfo::summary(&snap),
            problems: cfg
                .as_ref()
                .map(|c| netinfo::problems(c, &snap))
                .unwrap_or_default(),
        },
        Err(e) => Interfaces::Unreadable {
            error: e.to_string(),
        },
    };
    let rules = match Nft::from_env().rule_counters() {
        Ok(Some(rules)) => Rules::Counted(rules),
        Ok(None) => Rules::Unavailable {
            error: "table inet headnode is not loaded".into(),
        },
        Err(e) => Rules::Unavailable {
            error: e.to_string(),
        },
    };
    let (info, firewall, balancer, dhcp, tftp, dns, ha, leases, sysctl_problems) = match daemon {
        Some(d) => (
            Some(d.daemon),
            Some(d.firewall),
            Some(d.balancer),
            Some(d.dhcp),
            d.tftp,
            d.dns,
            d.ha,
            d.leases,
            d.sysctl_problems,
        ),
        None => (
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Vec::new(),
            Vec::new(),
        ),
    };
    let firewall = FirewallView {
        state: firewall.as_ref().map(|f| f.state.clone()),
        source: firewall.as_ref().map(|f| f.source.clone()),
        public_address: firewall.as_ref().and_then(|f| f.public_address),
        drift_repairs: firewall.map(|f| f.drift_repairs),
        rules,
    };
    let mut balancer = match (balancer, cfg) {
        (Some(b), _) => BalancerView {
            backend: Some(b.backend),
            reason: Some(b.reason),
            drift_repairs: Some(b.drift_repairs),
            ipvs: b.ipvs,
            services: b.services,
            ipvs_live: None,
        },
        (None, cfg) => {
            let (backend, reason) = match cfg {
                Ok(c) => {
                    let (b, r) = plan::select_backend(c.balancer.backend, &plan::live::ipvs_for(c));
                    (Some(b), Some(r))
                }
                Err(_) => (None, None),
            };
            BalancerView {
                backend,
                reason,
                drift_repairs: None,
                ipvs: None,
                services: Vec::new(),
                ipvs_live: None,
            }
        }
    };
    let mut ipvs_text = None;
    if balancer.backend == Some(Backend::Ipvs) {
        balancer.ipvs_live = Some(match ipvs::live_table() {
            Ok(t) => {
                ipvs_text = Some(ipvs::render_table(&t));
                IpvsLive::Table(ipvs_services(&t))
            }
            Err(e) => IpvsLive::Unreadable {
                error: e.to_string(),
            },
        });
    }
    let mut json = Report {
        version: JSON_VERSION,
        exit: Exit {
            code: 0,
            verdict: Verdict::Ok,
            reasons: Vec::new(),
        },
        daemon: DaemonView {
            running: info.is_some(),
            info,
        },
        interfaces,
        firewall,
        balancer,
        dhcp,
        tftp,
        dns,
        ha,
        leases,
        sysctl_problems,
        config_error: cfg.as_ref().err().map(crate::errors::render),
    };
    json.exit = verdict(&json);
    Observed { json, ipvs_text }
}

/// PURE: the exit code from what was observed.
fn verdict(r: &Report) -> Exit {
    let mut found: Vec<(Verdict, String)> = Vec::new();
    if r.config_error.is_some() {
        found.push((Verdict::InvalidConfig, "the config is invalid".into()));
    }
    if !r.daemon.running {
        found.push((Verdict::NotRunning, "the daemon is not running".into()));
    }
    if let Some(s) = r.firewall.state.as_ref().filter(|s| !s.in_sync()) {
        found.push((Verdict::Drift, format!("firewall: {s}")));
    }
    match &r.balancer.ipvs {
        Some(IpvsState::Drifted { changes }) => found.push((
            Verdict::Drift,
            format!(
                "ipvs: {} change(s) to match the config (made at the next reconcile)",
                changes.len()
            ),
        )),
        Some(IpvsState::Unknown { error }) => {
            found.push((Verdict::Drift, format!("ipvs: unknown: {error}")))
        }
        Some(IpvsState::InSync) | None => {}
    }
    for s in r.balancer.services.iter().filter(|s| s.all_down()) {
        found.push((
            Verdict::NoHealthyReal,
            format!("service {}: no real server is healthy", s.name),
        ));
    }
    if let Some(why) = r.dhcp.as_ref().and_then(dhcp_not_serving) {
        found.push((Verdict::DhcpNotServing, why));
    }
    let verdict = found.iter().map(|(v, _)| *v).min().unwrap_or(Verdict::Ok);
    Exit {
        code: verdict as u8,
        verdict,
        reasons: found.into_iter().map(|(_, why)| why).collect(),
    }
}

/// PURE: why DHCP, when on, does not answer.
fn dhcp_not_serving(d: &DhcpStatus) -> Option<String> {
    if !d.enabled {
        return None;
    }
    let Some(server) = &d.server else {
        return Some("dhcp: no server runs (see the last error)".into());
    };
    let st = &server.status;
    if let Some(s) = st.stalled_s {
        return Some(format!("dhcp: the server has not moved for {s} s"));
    }
    (!st.serving).then(|| {
        format!(
            "dhcp: not listening on {}: {}",
            st.interface,
            st.deaf.as_deref().unwrap_or("unknown")
        )
    })
}

fn render(s: &Report, ipvs_text: Option<&str>) -> String {
    let mut o = String::new();
    match &s.daemon.info {
        Some(d) => {
            let _ = writeln!(
                o,
                "daemon: running (pid {}, up {}s, config {})",
                d.pid,
                d.uptime_s,
                d.config.display()
            );
            if let Some(e) = &d.last_error {
                let _ = writeln!(o, "  last error: {e}");
            }
        }
        None => {
            let _ = writeln!(o, "daemon: not running (state read from the kernel)");
        }
    }
    for p in &s.sysctl_problems {
        let _ = writeln!(o, "  sysctl not set: {p}");
    }
    if let Some(e) = &s.config_error {
        let _ = writeln!(o, "config: invalid\n{e}");
    }
    let _ = writeln!(o, "\ninterfaces:");
    match &s.interfaces {
        Interfaces::Read { links, problems } => {
            for l in netinfo::format_summary(links).lines() {
                let _ = writeln!(o, "  {l}");
            }
            for p in problems {
                let _ = writeln!(o, "  problem: {p}");
            }
        }
        Interfaces::Unreadable { error } => {
            let _ = writeln!(o, "  {error}");
        }
    }
    let fw = &s.firewall;
    let _ = writeln!(
        o,
        "\nfirewall: {}{}",
        fw.state
            .as_ref()
            .map_or("table inet headnode".to_string(), ToString::to_string),
        fw.drift_repairs
            .filter(|n| *n > 0)
            .map_or(String::new(), |n| format!(", {n} drift repair(s)"))
    );
    match &fw.rules {
        Rules::Counted(rules) => {
            let hit: Vec<_> = rules.iter().filter(|r| r.packets > 0).collect();
            let _ = writeln!(o, "  {} rules, {} with hits:", rules.len(), hit.len());
            for r in hit {
                let _ = writeln!(
                    o,
                    "  {:>8} pkts  {:<14} {}",
                    r.packets,
                    r.chain,
                    r.comment.as_deref().unwrap_or("")
                );
            }
        }
        Rules::Unavailable { error } => {
            let _ = writeln!(o, "  {error}");
        }
    }
    let b = &s.balancer;
    let _ = writeln!(
        o,
        "\nbalancer: {} ({})",
        b.backend
            .map_or("?".to_string(), |b| { format!("{b:?}").to_lowercase() }),
        b.reason.as_deref().unwrap_or("")
    );
    for svc in &b.services {
        let _ = writeln!(
            o,
            "  {} {} {} {}",
            svc.name, svc.key, svc.scheduler, svc.method
        );
        for r in &svc.reals {
            let _ = writeln!(
                o,
                "    -> {}:{} ({}) weight {} health {}",
                r.address, r.port, r.name, r.weight, r.health
            );
        }
    }
    match &b.ipvs {
        Some(IpvsState::Drifted { changes }) => {
            let _ = writeln!(o, "  ipvs: not in sync (changed at the next reconcile):");
            for c in changes {
                let _ = writeln!(o, "    ipvsadm {c}");
            }
        }
        Some(IpvsState::Unknown { error }) => {
            let _ = writeln!(o, "  ipvs: unknown: {error}");
        }
        Some(IpvsState::InSync) | None => {}
    }
    match &b.ipvs_live {
        Some(IpvsLive::Unreadable { error }) => {
            let _ = writeln!(o, "  live: {error}");
        }
        Some(IpvsLive::Table(_)) => {
            for l in ipvs_text.unwrap_or_default().lines() {
                let _ = writeln!(o, "  live: {l}");
            }
        }
        None => {}
    }
    let serving = s.dhcp.as_ref().and_then(|d| d.server.as_ref());
    match (&s.dhcp, serving) {
        (Some(_), Some(d)) if d.status.stalled_s.is_some() => {
            let secs = d.status.stalled_s.unwrap_or_default();
            let _ = writeln!(
                o,
                "\ndhcp: STUCK: its loop has not moved for {secs} s (systemd's watchdog restarts the daemon)"
            );
        }
        (Some(_), Some(d)) if d.status.serving => {
            let _ = writeln!(
                o,
                "\ndhcp: serving on {} ({})",
                d.status.interface,
                nonzero(&d.counters)
            );
        }
        (Some(_), Some(d)) => {
            let why = d.status.deaf.as_deref().unwrap_or("not listening");
            let _ = writeln!(o, "\ndhcp: NOT LISTENING: {why}");
        }
        (Some(d), None) if !d.enabled => {
            let _ = writeln!(o, "\ndhcp: off ([dhcp] enabled = false)");
        }
        (Some(_), None) => {
            let _ = writeln!(o, "\ndhcp: not running (see last_error)");
        }
        (None, _) => {
            let _ = writeln!(
                o,
                "\ndhcp: not serving (no daemon); `headnode leases` reads the lease file"
            );
        }
    }
    if let Some(why) = serving.and_then(|d| d.status.pool_refused.as_deref()) {
        let _ = writeln!(o, "  pool clients get no lease: {why}");
    }
    for l in &s.leases {
        let _ = writeln!(
            o,
            "  {:<15} {}  {:<6} {:<10} {}",
            l.address.to_string(),
            l.mac,
            l.kind.as_str(),
            l.state.as_str(),
            l.name.as_deref().unwrap_or("")
        );
    }
    if let Some(t) = &s.tftp {
        let _ = writeln!(
            o,
            "\ntftp: serving {} on {} ({} running; {})",
            t.root.display(),
            t.listen,
            t.active,
            nonzero(&t.counters)
        );
        for r in t.recent.iter().rev() {
            let _ = writeln!(
                o,
                "  {:<21} {} ({} bytes) {}",
                r.client.to_string(),
                r.file,
                r.bytes,
                r.outcome
            );
        }
    }
    if let Some(d) = &s.dns {
        let _ = writeln!(
            o,
            "\ndns: {} ({} names) on {}, upstream {}; cache {}/{}; {}",
            d.domain,
            d.names,
            d.listen,
            if d.upstream.is_empty() {
                "none".to_string()
            } else {
                d.upstream
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            d.cache_entries,
            d.cache_capacity,
            nonzero(&d.counters)
        );
    }
    if let Some(h) = &s.ha {
        let how = match h.known {
            crate::ha::Known::Notified => "keepalived says",
            crate::ha::Known::FromAddress => "from the addresses; no word from keepalived yet",
        };
        let _ = writeln!(
            o,
            "\nha: {} for {}s ({how}); {}, priority {}; peer {}",
            h.state,
            h.since_s,
            h.role.name(),
            h.priority,
            h.peer
        );
        let _ = writeln!(
            o,
            "  virtual addresses: {} (public), {} (LAN)",
            h.public_address, h.lan_address
        );
        if let Some(p) = h.pool {
            let _ = writeln!(o, "  pool: this node leases {}-{}", p.start, p.end);
        }
        for d in &h.sync_daemons {
            let _ = writeln!(o, "  ipvs: {d}");
        }
        if let Some(e) = &h.sync_error {
            let _ = writeln!(o, "  ipvs sync: {e}");
        }
    }
    if s.exit.verdict != Verdict::Ok {
        let _ = writeln!(o, "\nexit {}:", s.exit.code);
        for why in &s.exit.reasons {
            let _ = writeln!(o, "  {why}");
        }
    }
    o
}

/// Only the counters that counted something, as `name=value` words.
fn nonzero(c: &impl Serialize) -> String {
    let v = serde_json::to_value(c).unwrap_or_default();
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Method;
    use crate::control::{FirewallState, Health, RealStatus};

    fn report() -> Report {
        Report {
            version: JSON_VERSION,
            exit: Exit {
                code: 0,
                verdict: Verdict::Ok,
                reasons: Vec::new(),
            },
            daemon: DaemonView {
                running: true,
                info: Some(DaemonInfo {
                    pid: 1,
                    uptime_s: 5,
                    config: "/etc/headnode/headnode.toml".into(),
                    reconcile_interval_s: 10.0,
                    last_error: None,
                }),
            },
            interfaces: Interfaces::Unreadable {
                error: "not read in a unit test".into(),
            },
            firewall: FirewallView {
                state: Some(FirewallState::InSync),
                source: Some(Source::Config),
                public_address: None,
                drift_repairs: Some(0),
                rules: Rules::Counted(Vec::new()),
            },
            balancer: BalancerView {
                backend: Some(Backend::Nftables),
                reason: Some("configured".into()),
                drift_repairs: Some(0),
                ipvs: None,
                services: vec![ServiceStatus {
                    name: "web".into(),
                    key: "TCP 203.0.113.210:80".into(),
                    scheduler: "rr".into(),
                    method: Method::Masq,
                    reals: vec![RealStatus {
                        name: "node1".into(),
                        address: "192.168.1.101".parse().unwrap(),
                        port: 80,
                        weight: 1,
                        health: Health::Up,
                    }],
                }],
                ipvs_live: None,
            },
            dhcp: None,
            tftp: None,
            dns: None,
            ha: None,
            leases: Vec::new(),
            sysctl_problems: Vec::new(),
            config_error: None,
        }
    }

    fn dhcp(serving: bool, stalled_s: Option<u64>) -> DhcpStatus {
        DhcpStatus {
            enabled: true,
            server: Some(crate::control::DhcpServing {
                status: crate::dhcp::Status {
                    interface: "lan0".into(),
                    serving,
                    deaf: (!serving).then(|| "interface lan0 is down".into()),
                    pool_refused: None,
                    rebinds: 0,
                    stalled_s,
                },
                counters: Default::default(),
            }),
            restarts: 0,
        }
    }

    #[test]
    fn exit_codes_follow_what_was_found() {
        let all_well = report();
        assert_eq!(verdict(&all_well).code, 0);

        let mut down = report();
        down.balancer.services[0].reals[0].health = Health::Down;
        let e = verdict(&down);
        assert_eq!((e.code, e.verdict), (5, Verdict::NoHealthyReal));
        assert_eq!(e.reasons, ["service web: no real server is healthy"]);

        let mut drift = report();
        drift.firewall.state = Some(FirewallState::Drifted);
        assert_eq!(verdict(&drift).code, 4);
        let mut drift = report();
        drift.balancer.ipvs = Some(IpvsState::Drifted {
            changes: vec!["-D -t 203.0.113.210:80".into()],
        });
        assert_eq!(verdict(&drift).code, 4);
        let mut disabled = report();
        disabled.firewall.state = Some(FirewallState::Disabled);
        assert_eq!(verdict(&disabled).code, 0, "no table wanted, none there");

        let mut stopped = report();
        stopped.daemon = DaemonView {
            running: false,
            info: None,
        };
        stopped.firewall.state = None;
        stopped.balancer.services.clear();
        assert_eq!(verdict(&stopped).code, 3);

        let mut deaf = report();
        deaf.dhcp = Some(dhcp(false, None));
        let e = verdict(&deaf);
        assert_eq!((e.code, e.verdict), (6, Verdict::DhcpNotServing));
        assert_eq!(
            e.reasons,
            ["dhcp: not listening on lan0: interface lan0 is down"]
        );
        let mut stuck = report();
        stuck.dhcp = Some(dhcp(true, Some(21)));
        assert_eq!(
            verdict(&stuck).reasons,
            ["dhcp: the server has not moved for 21 s"]
        );
        let mut gone = report();
        gone.dhcp = Some(DhcpStatus {
            server: None,
            ..dhcp(true, None)
        });
        assert_eq!(verdict(&gone).code, 6);
        let mut off = report();
        off.dhcp = Some(DhcpStatus {
            enabled: false,
            server: None,
            restarts: 0,
        });
        assert_eq!(verdict(&off).code, 0, "DHCP off is not a fault");
        let mut serving = report();
        serving.dhcp = Some(dhcp(true, None));
        assert_eq!(verdict(&serving).code, 0);

        // Several at once: the lowest code, every reason.
        let mut all = down;
        all.firewall.state = Some(FirewallState::Missing);
        all.config_error = Some("headnode.toml:3: bad".into());
        let e = verdict(&all);
        assert_eq!(e.code, 1);
        assert_eq!(e.reasons.len(), 3, "{:?}", e.reasons);
    }

    #[test]
    fn the_help_lists_every_code() {
        use clap::CommandFactory;
        let help = crate::cli::Cli::command()
            .find_subcommand_mut("status")
            .expect("status")
            .render_help()
            .to_string();
        for v in [
            Verdict::Ok,
            Verdict::InvalidConfig,
            Verdict::NotRunning,
            Verdict::Drift,
            Verdict::NoHealthyReal,
            Verdict::DhcpNotServing,
        ] {
            assert!(
                help.contains(&format!("\n  {}  ", v as u8)),
                "{v:?}:\n{help}"
            );
        }
    }

    #[test]
    fn the_json_is_versioned_and_typed() {
        let mut r = report();
        r.exit = verdict(&r);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["version"], JSON_VERSION);
        assert_eq!(v["exit"]["code"], 0);
        assert_eq!(v["exit"]["verdict"], "ok");
        assert_eq!(v["daemon"]["running"], true);
        assert_eq!(v["daemon"]["pid"], 1);
        assert_eq!(v["firewall"]["state"], "in_sync");
        assert_eq!(v["balancer"]["services"][0]["reals"][0]["health"], "up");
    }

    #[test]
    fn the_ipvs_table_is_data() {
        use crate::ipvs::{DestAttrs, DestKey, Forward, Service, ServiceAttrs, ServiceKey};
        let mut t = ipvs::Table::new();
        t.insert(
            ServiceKey::Tuple {
                proto: 6,
                addr: "203.0.113.210".parse().unwrap(),
                port: 80,
            },
            Service {
                attrs: ServiceAttrs {
                    scheduler: "wlc".into(),
                    flags: ipvs::SVC_F_PERSISTENT,
                    timeout: 300,
                    netmask: u32::MAX,
                },
                dests: [(
                    DestKey {
                        addr: "192.168.1.101".parse().unwrap(),
                        port: 80,
                    },
                    DestAttrs {
                        forward: Forward::Masq,
                        weight: 2,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    },
                )]
                .into(),
            },
        );
        let v = serde_json::to_value(ipvs_services(&t)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{
                "protocol": "tcp", "address": "203.0.113.210", "port": 80, "fwmark": null,
                "ipv6": false, "scheduler": "wlc", "persistent_s": 300,
                "reals": [{ "address": "192.168.1.101", "port": 80, "forward": "masq", "weight": 2 }],
            }])
        );
    }
}
