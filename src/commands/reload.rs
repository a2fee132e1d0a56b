//! `headnode reload`: ask the running daemon to re-read its config. The
//! daemon validates it first and keeps the running config when it is invalid.

use crate::daemon::control::{self, Request};
use crate::paths;

pub fn run() -> anyhow::Result<()> {
    let sock = paths::control_socket();
    match control::ask(&sock, Request::Reload)? {
        None => anyhow::bail!(
            "no headnode daemon is running (no control socket at {})",
            sock.display()
        ),
        Some(v) if v["reloaded"] == true => {
            println!("reloaded");
            Ok(())
        }
        Some(_) => Err(super::InvalidInput(
            "the daemon rejected the new config and keeps running the previous one; \
             `headnode check` shows why"
                .into(),
        )
        .into()),
    }
}
