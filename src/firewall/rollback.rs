//! Commit-confirmed apply: before a ruleset is loaded with `--confirm`, the
//! previous table (nft syntax) and a deadline are written to the state
//! directory, and a detached timer process is started. Unless `headnode
//! confirm` removes the pending state in time, the timer restores the
//! snapshot. The state lives on disk, so neither a crash of the applying
//! process nor a lost SSH session prevents the rollback.

use super::nft::{Nft, NftError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Identifies one `apply --confirm`, so an old timer never acts on a newer one.
    pub token: String,
    pub deadline_unix: u64,
    /// The previous table as `nft list table` printed it; `None`: there was none.
    pub snapshot: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("cannot use the state directory {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pending-confirm file {path} is damaged: {source}")]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("rolling back failed: {0}")]
    Restore(#[from] NftError),
}

fn dir() -> PathBuf {
    crate::paths::state_dir()
}

fn file() -> PathBuf {
    dir().join("firewall-pending.json")
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn state_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> RollbackError {
    move |source| RollbackError::State { path, source }
}

/// An exclusive lock on the state directory, so `confirm` and the timer never race.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn take() -> Result<Lock, RollbackError> {
        std::fs::create_dir_all(dir()).map_err(state_err(dir()))?;
        let path = dir().join("firewall.lock");
        let f = File::create(&path).map_err(state_err(path.clone()))?;
        // SAFETY: flock on a file descriptor we own; released when the file closes.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        if rc != 0 {
            return Err(RollbackError::State {
                path,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Lock { _file: f })
    }
}

pub fn load(_lock: &Lock) -> Result<Option<Pending>, RollbackError> {
    let path = file();
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|source| RollbackError::Damaged { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RollbackError::State { path, source: e }),
    }
}

pub fn save(_lock: &Lock, p: &Pending) -> Result<(), RollbackError> {
    let path = file();
    let text = serde_json::to_string(p).unwrap_or_default();
    crate::paths::atomic_write(
        &path,
        text.as_bytes(),
        0o600,
        crate::paths::Existing::Replace,
    )
    .map_err(state_err(path))
}

pub fn remove(_lock: &Lock) -> Result<(), RollbackError> {
    match std::fs::remove_file(file()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RollbackError::State {
            path: file(),
            source: e,
        }),
    }
}

/// Restore the snapshot of a pending apply and forget it.
pub fn roll_back(lock: &Lock, p: &Pending, nft: &Nft) -> Result<(), RollbackError> {
    nft.restore(p.snapshot.as_deref())?;
    remove(lock)?;
    tracing::info!(
        token = %p.token,
        "ruleset rolled back: the apply was not confirmed in time"
    );
    Ok(())
}

/// The detached timer's body: wait for the deadline (or for the pending
/// state to go away), then roll back if it is still the same apply.
pub fn run_timer(token: &str, nft: &Nft) -> Result<(), RollbackError> {
    loop {
        {
            let lock = Lock::take()?;
            match load(&lock)? {
                Some(p) if p.token == token => {
                    if now_unix() >= p.deadline_unix {
                        return roll_back(&lock, &p, nft);
                    }
                }
                // Confirmed, cleared, or superseded.
                _ => return Ok(()),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
