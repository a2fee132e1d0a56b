//! The firewall when the config's own cannot be put in place: at boot with a
//! config that does not load, or when nft refuses the config's ruleset. The
//! box is never left without one: the last ruleset headnode loaded (its
//! record in the state directory), otherwise a built-in minimal table that
//! drops every new connection except SSH from private addresses.

use super::{FAMILY_NAME, TABLE};
use crate::firewall::applied::Applied;
use crate::firewall::nft::{Nft, NftError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which firewall is loaded, as `status` and the journal tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "why")]
pub enum Source {
    /// The ruleset of the running config.
    Config,
    /// The last ruleset headnode loaded, because of `why`.
    LastApplied(String),
    /// The built-in minimal table, because of `why`.
    Minimal(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Config => "the config's ruleset".into(),
            Source::LastApplied(why) => format!("the last applied ruleset ({why})"),
            Source::Minimal(why) => format!("the built-in minimal table ({why})"),
        }
    }
}

/// The built-in table: replies and loopback pass; new connections are
/// dropped in input and forward, except SSH from private (RFC 1918, IPv6
/// unique-local and link-local) sources, so an admin on the LAN can get in
/// to fix the config; ICMPv6 passes so that neighbour discovery keeps working.
pub fn minimal() -> String {
    format!(
        "table {FAMILY_NAME} {TABLE} {{
\tchain input {{
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept comment \"built-in minimal table: replies\"
\t\tiif \"lo\" accept comment \"built-in minimal table: loopback\"
\t\tmeta l4proto ipv6-icmp accept comment \"built-in minimal table: neighbour discovery\"
\t\tip saddr {{ 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 }} tcp dport 22 accept comment \"built-in minimal table: SSH from private addresses\"
\t\tip6 saddr {{ fc00::/7, fe80::/10 }} tcp dport 22 accept comment \"built-in minimal table: SSH from private addresses\"
\t}}
\tchain forward {{
\t\ttype filter hook forward priority filter; policy drop;
\t\tct state established,related accept comment \"built-in minimal table: replies\"
\t}}
}}
"
    )
}

/// Put the fallback in place (`why` the config's own cannot be) and say which.
pub fn put_in_place(nft: &Nft, state_dir: &Path, why: &str) -> Result<Source, NftError> {
    if let Some(last) = Applied::load(state_dir) {
        match nft.restore(Some(&last.listing)) {
            Ok(()) => {
                tracing::error!("{why}: firewall: loaded the last applied ruleset");
                return Ok(Source::LastApplied(why.to_string()));
            }
            Err(e) => tracing::error!("cannot load the last applied ruleset: {e}"),
        }
    }
    nft.restore(Some(&minimal()))?;
    tracing::error!("{why}: firewall: loaded the built-in minimal table");
    Ok(Source::Minimal(why.to_string()))
}
