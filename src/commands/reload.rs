//! `headnode reload`: ask the running daemon to re-read its config, and say
//! truthfully whether it is in effect: a rejected config (exit 1) or a
//! failed load (exit 2) leave the daemon running the previous one. The
//! systemd unit's `ExecReload` runs this, so `systemctl reload` fails too.

use crate::cli::ReloadArgs;
use crate::control::{self, ReloadOutcome};
use crate::paths;

pub fn run(args: &ReloadArgs) -> anyhow::Result<()> {
    let sock = paths::control_socket();
    match control::reload(&sock, args.force)? {
        None => anyhow::bail!(
            "no headnode daemon is running (no control socket at {})",
            sock.display()
        ),
        Some(ReloadOutcome::Reloaded) => {
            println!("reloaded");
            Ok(())
        }
        Some(ReloadOutcome::Rejected { errors }) => Err(super::InvalidInput(format!(
            "{errors}\nthe daemon rejected the new config and keeps running the previous one"
        ))
        .into()),
        Some(ReloadOutcome::Failed { error }) => anyhow::bail!(
            "the new config could not be put in place: {error}\n\
             the daemon keeps running the previous config and firewall"
        ),
    }
}
