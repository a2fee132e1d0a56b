//! `headnode ha-notify`: keepalived's notify hook. keepalived runs it on
//! every VRRP state change with `INSTANCE name STATE priority`; it tells the
//! daemon, which makes the IPVS sync daemon follow before it answers.
//! A state keepalived may add later is refused (exit 1), not guessed.

use crate::cli::HaNotifyArgs;
use crate::control;
use crate::ha::State;

pub fn run(args: &HaNotifyArgs) -> anyhow::Result<()> {
    // keepalived's order is TYPE NAME STATE PRIORITY; the state is the
    // word that is one, wherever it stands.
    let Some(state) = args.words.iter().find_map(|w| State::parse(w)) else {
        return Err(super::InvalidInput(format!(
            "no VRRP state (MASTER, BACKUP, FAULT or STOP) in `{}`",
            args.words.join(" ")
        ))
        .into());
    };
    let sock = args
        .socket
        .clone()
        .unwrap_or_else(crate::paths::control_socket);
    match control::ha_state(&sock, state)? {
        None => anyhow::bail!(
            "no headnode daemon is running (no control socket at {}); state {state} not delivered",
            sock.display()
        ),
        Some(None) => {
            println!("{state}");
            Ok(())
        }
        Some(Some(error)) => anyhow::bail!("state {state} taken, but: {error}"),
    }
}
