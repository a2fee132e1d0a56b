//! Two head nodes (`[ha]`): what headnode asks of keepalived and what it
//! does on each of keepalived's state changes. All pure but
//! `keepalived_config_here`, which asks where this binary and its control
//! socket are; the daemon writes the file and carries out the sync-daemon
//! plan.
//!
//! keepalived is the VRRP engine: it moves the two virtual addresses and
//! runs `headnode ha-notify` on every change, which tells the daemon the new
//! state over the control socket. headnode does not elect anything itself.
//! The firewall, the IPVS table and DHCP for reservations stay the same on
//! both nodes whatever the state; DHCP's pool is split by role (see
//! `config::model::Pool::half`). Only the IPVS sync daemon follows the
//! state: the master sends its connections, the backup receives them, so
//! that a takeover finds the balanced connections already known.

use crate::config::Config;
use crate::config::model::Ha;
use crate::ipvs::sync::{Daemon, Role};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A VRRP state as keepalived names it to its notify scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Master,
    Backup,
    Fault,
    /// keepalived stopped (its `STOP` notification): the addresses are gone.
    Stop,
}

impl State {
    /// keepalived's word (`MASTER`, `BACKUP`, `FAULT`, `STOP`), any case.
    pub fn parse(word: &str) -> Option<State> {
        match word.to_ascii_uppercase().as_str() {
            "MASTER" => Some(State::Master),
            "BACKUP" => Some(State::Backup),
            "FAULT" => Some(State::Fault),
            "STOP" => Some(State::Stop),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Master => "master",
            State::Backup => "backup",
            State::Fault => "fault",
            State::Stop => "stop",
        })
    }
}

/// How the daemon knows its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Known {
    /// keepalived said so (`headnode ha-notify`).
    Notified,
    /// No word from keepalived since the daemon started: read from whether
    /// the virtual LAN address is on this box.
    FromAddress,
}

/// PURE: the IPVS sync daemons for `state`. The master sends; every other
/// state receives, so a node that becomes master already holds the
/// connections of the one before. Only with the IPVS backend: the nftables
/// balancer has nothing to sync.
pub fn sync_daemons(ha: &Ha, state: State, ipvs: bool) -> Vec<Daemon> {
    if !ipvs {
        return Vec::new();
    }
    let role = match state {
        State::Master => Role::Master,
        State::Backup | State::Fault | State::Stop => Role::Backup,
    };
    vec![Daemon {
        role,
        interface: ha.interface.clone(),
        sync_id: ha.virtual_router_id,
    }]
}

/// PURE: the state read from the addresses on the box, when keepalived has
/// not said: holding the virtual LAN address means master.
pub fn state_from_address(ha: &Ha, local: &[std::net::Ipv4Addr]) -> State {
    if local.contains(&ha.lan_address.addr()) {
        State::Master
    } else {
        State::Backup
    }
}

/// PURE: the keepalived configuration for this node, a file keepalived
/// includes (`include /etc/keepalived/headnode.conf`). `notify` is the
/// command keepalived runs on each change (it appends the instance, its
/// name, the state and the priority).
///
/// Both nodes start as BACKUP with `nopreempt`: the higher priority wins
/// when both start together, and a node that comes back does not take the
/// addresses again from one that serves (a second takeover for nothing).
/// VRRP version 3 allows adverts below a second; the peer is addressed by
/// unicast, which works where multicast does not. Either interface going
/// down puts the node in FAULT, so the peer takes over.
pub fn keepalived_config(cfg: &Config, ha: &Ha, notify: &str) -> String {
    let own = cfg.private_ip();
    let advert = ha.advert_interval.as_millis() as f64 / 1000.0;
    // The instance's own interface is tracked anyway (keepalived -t
    // warns when it is listed).
    let tracked: Vec<&str> = [cfg.private.name.as_str(), cfg.public.name.as_str()]
        .into_iter()
        .filter(|i| *i != ha.interface)
        .collect();
    let mut s = String::new();
    s += &format!(
        "# Written by headnode from {}: do not edit, headnode rewrites it at\n\
         # every start and reload. keepalived.conf includes it:\n\
         #     include {}\n",
        cfg.path.display(),
        ha.keepalived_config.display()
    );
    // The notify hook talks to the daemon's control socket (root only):
    // keepalived runs it as root, which it allows only with script security.
    s += "global_defs {\n    enable_script_security\n    script_user root\n}\n";
    s += "vrrp_instance headnode {\n";
    s += "    state BACKUP\n    nopreempt\n    version 3\n";
    s += &format!("    interface {}\n", ha.interface);
    s += &format!("    virtual_router_id {}\n", ha.virtual_router_id);
    s += &format!("    priority {}\n", ha.priority);
    s += &format!("    advert_int {advert}\n");
    s += &format!("    unicast_src_ip {own}\n");
    s += &format!("    unicast_peer {{\n        {}\n    }}\n", ha.peer);
    s += "    track_interface {\n";
    for t in tracked {
        s += &format!("        {t}\n");
    }
    s += "    }\n    virtual_ipaddress {\n";
    s += &format!("        {} dev {}\n", ha.lan_address, cfg.private.name);
    s += &format!("        {} dev {}\n", ha.public_address, cfg.public.name);
    s += "    }\n";
    s += &format!("    notify \"{notify}\"\n");
    s += "}\n";
    s
}

/// [`keepalived_config`] with the hook of this binary and this daemon's
/// control socket: the file the daemon writes and `check` tests.
pub fn keepalived_config_here(cfg: &Config, ha: &Ha) -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/usr/sbin/headnode".into());
    keepalived_config(
        cfg,
        ha,
        &notify_command(&exe, &crate::paths::control_socket()),
    )
}

/// The notify command for this daemon: this binary, told where its control
/// socket is (keepalived runs scripts without our environment).
pub fn notify_command(exe: &Path, socket: &Path) -> String {
    format!("{} ha-notify --socket {}", exe.display(), socket.display())
}

/// PURE: what keeps `mine` and `peer` (the other head node's config) from
/// working as a pair: each names the other as peer, one primary and one
/// secondary, the same virtual addresses and router id, and the same
/// answers for the nodes (reservations, DHCP options and pool, services).
/// Line numbers and file paths may differ.
pub fn pair_problems(mine: &Config, peer: &Config) -> Vec<String> {
    let (Some(a), Some(b)) = (&mine.ha, &peer.ha) else {
        return vec!["the peer's config has no [ha]".into()];
    };
    let mut out = Vec::new();
    if a.role == b.role {
        out.push(format!(
            "both are {}: one head node must be primary and the other secondary (they lease from opposite halves of the pool)",
            a.role.name()
        ));
    }
    if a.peer != peer.private_ip() {
        out.push(format!(
            "ha.peer is {}, but the peer's own LAN address is {}",
            a.peer,
            peer.private_ip()
        ));
    }
    if b.peer != mine.private_ip() {
        out.push(format!(
            "the peer's ha.peer is {}, but this node's LAN address is {}",
            b.peer,
            mine.private_ip()
        ));
    }
    let same = |what: &str, x: String, y: String, out: &mut Vec<String>| {
        if x != y {
            out.push(format!("{what} differs: {x} here, {y} on the peer"));
        }
    };
    same(
        "ha.public_address",
        a.public_address.to_string(),
        b.public_address.to_string(),
        &mut out,
    );
    same(
        "ha.lan_address",
        a.lan_address.to_string(),
        b.lan_address.to_string(),
        &mut out,
    );
    same(
        "ha.virtual_router_id",
        a.virtual_router_id.to_string(),
        b.virtual_router_id.to_string(),
        &mut out,
    );
    same(
        "ha.advert_interval",
        humantime::format_duration(a.advert_interval).to_string(),
        humantime::format_duration(b.advert_interval).to_string(),
        &mut out,
    );
    let answers = |c: &Config| {
        let mut dhcp = comparable(&c.dhcp);
        if let Some(d) = dhcp.as_object_mut() {
            d.remove("lease_file");
        }
        (dhcp, comparable(&c.hosts), comparable(&c.balancer.services))
    };
    let (x, y) = (answers(mine), answers(peer));
    if x.0 != y.0 {
        out.push("[dhcp] differs: both nodes must give the nodes the same options and pool".into());
    }
    if x.1 != y.1 {
        out.push("the [[host]] reservations differ: both nodes must answer each node alike".into());
    }
    if x.2 != y.2 {
        out.push(
            "the balanced services differ: a takeover would change what the clients get".into(),
        );
    }
    out
}

/// `v` as JSON without where it was written (origins, lines, paths).
fn comparable(v: &impl Serialize) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !matches!(k.as_str(), "origin" | "line" | "path"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(v).unwrap_or_default();
    strip(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(role: &str) -> Config {
        let text = format!(
            "{}[ha]\nrole = \"{role}\"\npeer = \"192.168.1.253\"\npublic_address = \"203.0.113.200/24\"\nlan_address = \"192.168.1.1/24\"\n",
            crate::config::test_text::INTERFACES
        );
        crate::config::parse(&text, Path::new("/etc/headnode/headnode.toml")).unwrap()
    }

    #[test]
    fn keepalived_gets_both_addresses_the_peer_and_the_hook() {
        let c = cfg("primary");
        let ha = c.ha.clone().unwrap();
        let text = keepalived_config(
            &c,
            &ha,
            &notify_command(
                Path::new("/usr/sbin/headnode"),
                Path::new("/run/headnode/control.sock"),
            ),
        );
        let want = "\
# Written by headnode from /etc/headnode/headnode.toml: do not edit, headnode rewrites it at
# every start and reload. keepalived.conf includes it:
#     include /etc/keepalived/headnode.conf
global_defs {
    enable_script_security
    script_user root
}
vrrp_instance headnode {
    state BACKUP
    nopreempt
    version 3
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.5
    unicast_src_ip 192.168.1.254
    unicast_peer {
        192.168.1.253
    }
    track_interface {
        eth1
    }
    virtual_ipaddress {
        192.168.1.1/24 dev eth0
        203.0.113.200/24 dev eth1
    }
    notify \"/usr/sbin/headnode ha-notify --socket /run/headnode/control.sock\"
}
";
        assert_eq!(text, want);
    }

    #[test]
    fn the_master_sends_and_every_other_state_receives() {
        let ha = cfg("secondary").ha.unwrap();
        let d = |role| Daemon {
            role,
            interface: "eth0".into(),
            sync_id: 51,
        };
        assert_eq!(
            sync_daemons(&ha, State::Master, true),
            vec![d(Role::Master)]
        );
        for s in [State::Backup, State::Fault, State::Stop] {
            assert_eq!(sync_daemons(&ha, s, true), vec![d(Role::Backup)]);
        }
        assert!(sync_daemons(&ha, State::Master, false).is_empty());
    }

    #[test]
    fn a_pair_must_mirror_each_other_and_answer_alike() {
        let node = |own: &str, role: &str, peer: &str, extra: &str| {
            let text = format!(
                "{}{extra}[ha]\nrole = \"{role}\"\npeer = \"{peer}\"\npublic_address = \"203.0.113.200/24\"\nlan_address = \"192.168.1.1/24\"\n",
                crate::config::test_text::INTERFACES.replace("192.168.1.254/24", own)
            );
            crate::config::parse(&text, Path::new("t.toml")).unwrap()
        };
        let host =
            "[[host]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.168.1.10\"\n";
        let a = node("192.168.1.252/24", "primary", "192.168.1.253", host);
        let b = node(
            "192.168.1.253/24",
            "secondary",
            "192.168.1.252",
            &format!("\n\n{host}"),
        );
        assert_eq!(pair_problems(&a, &b), Vec::<String>::new());
        assert_eq!(pair_problems(&b, &a), Vec::<String>::new());
        let same_role = node("192.168.1.253/24", "primary", "192.168.1.252", host);
        assert!(pair_problems(&a, &same_role)[0].contains("both are primary"));
        let wrong_peer = node("192.168.1.253/24", "secondary", "192.168.1.9", host);
        assert!(pair_problems(&a, &wrong_peer)[0].contains("the peer's ha.peer is 192.168.1.9"));
        let other_host = node(
            "192.168.1.253/24",
            "secondary",
            "192.168.1.252",
            &host.replace(".10", ".11"),
        );
        assert_eq!(
            pair_problems(&a, &other_host),
            vec![
                "the [[host]] reservations differ: both nodes must answer each node alike"
                    .to_string()
            ]
        );
    }

    #[test]
    fn states_from_keepalived_and_from_the_address() {
        assert_eq!(State::parse("MASTER"), Some(State::Master));
        assert_eq!(State::parse("fault"), Some(State::Fault));
        assert_eq!(State::parse("DELETED"), None);
        let ha = cfg("primary").ha.unwrap();
        let vip = "192.168.1.1".parse().unwrap();
        let own = "192.168.1.254".parse().unwrap();
        assert_eq!(state_from_address(&ha, &[own, vip]), State::Master);
        assert_eq!(state_from_address(&ha, &[own]), State::Backup);
    }
}
