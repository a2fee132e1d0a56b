//! Where headnode keeps state, overridable so tests and the demo can run
//! several instances side by side without touching the real locations.

use std::path::PathBuf;

/// Persistent state (IPVS ownership, pending rollbacks): `/var/lib/headnode`,
/// or `$HEADNODE_STATE_DIR`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("HEADNODE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/headnode"))
}

/// Runtime files (the daemon's control socket): `/run/headnode`, or
/// `$HEADNODE_RUN_DIR`.
pub fn run_dir() -> PathBuf {
    std::env::var_os("HEADNODE_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/headnode"))
}

/// The daemon's control socket.
pub fn control_socket() -> PathBuf {
    run_dir().join("control.sock")
}
