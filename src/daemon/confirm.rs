//! An `apply --confirm` the daemon holds, kept on disk as well: a daemon
//! that restarts (crash, watchdog, reboot) inside the confirm window must
//! still go back to the config from before the apply, since the unconfirmed
//! config may be the one that locked the admin out.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What survives a restart: when the window ends, and the text of the
/// config to go back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub deadline_unix: u64,
    pub previous: String,
}

fn file(dir: &Path) -> PathBuf {
    dir.join("confirm.pending")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Held {
    pub fn new(within: Duration, previous: String) -> Held {
        Held {
            deadline_unix: now_unix() + within.as_secs().max(1),
            previous,
        }
    }

    /// Time left in the window; `None` once it has ended.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline_unix
            .checked_sub(now_unix())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::paths::atomic_write(&file(dir), &json, 0o600, crate::paths::Existing::Replace)
    }

    /// The held confirm in `dir`, if any; an unreadable file is reported
    /// and treated as none (it cannot tell what to go back to).
    pub fn load(dir: &Path) -> Option<Held> {
        let bytes = match std::fs::read(file(dir)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", file(dir).display());
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| tracing::warn!("{} is not readable: {e}", file(dir).display()))
            .ok()
    }

    pub fn remove(dir: &Path) {
        match std::fs::remove_file(file(dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("cannot remove {}: {e}", file(dir).display());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_confirm_survives_on_disk_until_removed() {
        let dir = std::env::temp_dir().join(format!("hn-held-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Held::load(&dir), None);
        let held = Held::new(Duration::from_secs(120), "[interfaces]\n".into());
        assert!(
            held.remaining()
                .is_some_and(|r| r > Duration::from_secs(100))
        );
        held.save(&dir).unwrap();
        assert_eq!(Held::load(&dir), Some(held));
        Held::remove(&dir);
        assert_eq!(Held::load(&dir), None);
        let over = Held {
            deadline_unix: 1,
            previous: String::new(),
        };
        assert_eq!(over.remaining(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
