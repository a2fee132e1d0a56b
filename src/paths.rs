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

/// Replace `path` with `bytes` so that a crash leaves the old file or the
/// new one, never part of either: write `PATH.tmp` (mode `mode`), fsync it,
/// rename it over `path`.
pub fn replace_file(path: &std::path::Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
