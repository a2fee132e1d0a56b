//! The one I/O step of planning: read what is live into a [`Live`] value
//! that `plan::compute` turns into a plan without further I/O.

use crate::config::Config;
use crate::config::model::Backend;
use crate::firewall::applied::Applied;
use crate::firewall::guard::SshConnection;
use crate::firewall::nft::Nft;
use crate::health::HealthMap;
use crate::ipvs;
use crate::sysctl::Sysctls;
use std::collections::{BTreeMap, BTreeSet};

/// Everything live that a plan depends on.
#[derive(Debug, Clone)]
pub struct Live {
    /// Headnode's table and the record of its last load, or why they could
    /// not be read (no `nft`, not root).
    pub nft: Result<NftLive, String>,
    /// The live values of the sysctls the config names.
    pub sysctls: BTreeMap<String, Option<String>>,
    pub ipvs: IpvsLive,
    /// SSH sessions into this box (the guard keeps them able to come back).
    pub ssh: Vec<SshConnection>,
    /// The running daemon's health view (all up when no daemon runs).
    pub health: HealthMap,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftLive {
    /// `nft -s list table inet headnode`, normalised; `None`: no table.
    pub listing: Option<String>,
    /// What headnode last loaded and how nft listed it right after.
    pub record: Option<Applied>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsLive {
    /// The kernel's IPVS table and the services headnode created in it.
    Table {
        table: ipvs::Table,
        owned: BTreeSet<ipvs::ServiceKey>,
    },
    /// The kernel has no IPVS: what the family lookup and `modprobe ip_vs` said.
    NoIpvs(String),
    /// The kernel's IPVS table could not be read (or headnode's record of it): why.
    Unreadable(String),
    /// Not looked at (the config balances with nftables): why.
    NotRead(String),
}

impl Default for IpvsLive {
    fn default() -> Self {
        IpvsLive::NotRead("not read".into())
    }
}

/// Read what is live. `health` is the running daemon's view
/// (`daemon::live_health`), passed in so that planning never talks to the
/// daemon itself.
pub fn observe(
    cfg: &Config,
    nft: &Nft,
    sysctls: &Sysctls,
    health: HealthMap,
) -> anyhow::Result<Live> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Listing the table needs CAP_NET_ADMIN.
    let nft_live = if !nft.available() {
        Err("nft is not installed".to_string())
    } else if !root {
        Err("needs root".to_string())
    } else {
        match nft.live_text() {
            Ok(listing) => Ok(NftLive {
                listing,
                record: Applied::load(&crate::paths::state_dir()),
            }),
            Err(e) => Err(format!("cannot list the live table: {e}")),
        }
    };
    Ok(Live {
        nft: nft_live,
        sysctls: sysctls.read_all(cfg.sysctls.keys())?,
        ipvs: ipvs_for(cfg),
        ssh: crate::firewall::guard::sessions(),
        health,
    })
}

/// The kernel's IPVS table, unless the config balances with nftables (then
/// it is not looked at). Reading it is also the probe backend `auto` uses.
pub fn ipvs_for(cfg: &Config) -> IpvsLive {
    if cfg.balancer.backend == Backend::Nftables {
        return IpvsLive::NotRead("balancer.backend = \"nftables\"".into());
    }
    let table = match ipvs::live_table() {
        Ok(t) => t,
        Err(ipvs::Error::NoIpvs(why)) => return IpvsLive::NoIpvs(why),
        Err(e) => return IpvsLive::Unreadable(e.to_string()),
    };
    match ipvs::state::Store::from_env().load() {
        Ok(owned) => IpvsLive::Table { table, owned },
        Err(e) => IpvsLive::Unreadable(e.to_string()),
    }
}
