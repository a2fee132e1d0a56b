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

/// What `atomic_write` does when `path` already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    /// Fail with `AlreadyExists` (a file that appears meanwhile is never clobbered).
    Keep,
}

/// Write `path` so that a crash or power loss leaves the old file or the
/// new one, never part of either, and the new one once this returns: write a
/// temporary file beside it (mode `mode`, whatever the umask), fsync it,
/// rename (or hard-link, for `Existing::Keep`) it into place, fsync the
/// directory so the rename itself is on disk. Every state file goes through
/// here; the lease file has its own append log (`dhcp::store`).
pub fn atomic_write(
    path: &std::path::Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        match existing {
            Existing::Replace => std::fs::rename(&tmp, path),
            Existing::Keep => {
                std::fs::hard_link(&tmp, path)?;
                std::fs::remove_file(&tmp)
            }
        }
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_or_keeps() {
        let dir = std::env::temp_dir().join(format!("hn-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("state.json");
        atomic_write(&f, b"one", 0o640, Existing::Keep).unwrap();
        let e = atomic_write(&f, b"two", 0o640, Existing::Keep).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        atomic_write(&f, b"three", 0o600, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"three");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
