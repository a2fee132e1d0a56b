//! Sysctls under /proc/sys: read, compare, write only what differs.
//! The root directory is injectable so tests can use a plain directory.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl {key} does not exist on this kernel ({path}); is its module loaded?")]
    Missing { key: String, path: PathBuf },
    #[error("cannot read sysctl {key} ({path}): {source}")]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write sysctl {key} = {value} ({path}): {source}")]
    Write {
        key: String,
        value: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One sysctl whose live value differs from the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    /// `None` when the sysctl does not exist (yet) on this kernel.
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone)]
pub struct Sysctls {
    root: PathBuf,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls::new("/proc/sys")
    }
}

impl Sysctls {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysctls { root: root.into() }
    }

    /// `net.ipv4.ip_forward` → `<root>/net/ipv4/ip_forward`. Keys are
    /// validated (alphanumerics, `_`, `-` between dots), so no `..` can appear.
    fn path(&self, key: &str) -> PathBuf {
        key.split('.')
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    pub fn read(&self, key: &str) -> Result<Option<String>, SysctlError> {
        let path = self.path(key);
        match std::fs::read_to_string(&path) {
            Ok(v) => Ok(Some(v.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysctlError::Read {
                key: key.into(),
                path,
                source,
            }),
        }
    }

    /// The live values of `keys` (`None`: the sysctl does not exist here).
    pub fn read_all<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, Option<String>>, SysctlError> {
        keys.into_iter()
            .map(|k| Ok((k.clone(), self.read(k)?)))
            .collect()
    }

    /// The changes needed to reach `desired` from what is live now.
    pub fn pending(&self, desired: &BTreeMap<String, String>) -> Result<Vec<Change>, SysctlError> {
        Ok(changes(desired, &self.read_all(desired.keys())?))
    }

    /// Write the changes, logging each one. A missing sysctl is an error.
    pub fn apply(&self, changes: &[Change]) -> Result<(), SysctlError> {
        for c in changes {
            let path = self.path(&c.key);
            if c.from.is_none() && !path.exists() {
                return Err(SysctlError::Missing {
                    key: c.key.clone(),
                    path,
                });
            }
            std::fs::write(&path, format!("{}\n", c.to)).map_err(|source| SysctlError::Write {
                key: c.key.clone(),
                value: c.to.clone(),
                path: path.clone(),
                source,
            })?;
            tracing::info!(
                key = %c.key,
                from = c.from.as_deref().unwrap_or("(missing)"),
                to = %c.to,
                "sysctl changed"
            );
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The changes from `live` to `desired` (values compared with whitespace
/// normalised: the kernel separates fields with tabs). Pure.
pub fn changes(
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, Option<String>>,
) -> Vec<Change> {
    desired
        .iter()
        .filter_map(|(key, want)| {
            let now = live.get(key).cloned().flatten();
            (now.as_deref().map(words) != Some(words(want))).then(|| Change {
                key: key.clone(),
                from: now,
                to: want.clone(),
            })
        })
        .collect()
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (PathBuf, Sysctls) {
        let dir = std::env::temp_dir().join(format!(
            "hn-sysctl-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("net/ipv4")).unwrap();
        std::fs::write(dir.join("net/ipv4/ip_forward"), "0\n").unwrap();
        std::fs::write(dir.join("net/ipv4/tcp_rmem"), "4096\t131072\t6291456\n").unwrap();
        (dir.clone(), Sysctls::new(dir))
    }

    #[test]
    fn only_differences_are_written() {
        let (dir, s) = tree();
        let want = BTreeMap::from([
            ("net.ipv4.ip_forward".to_string(), "1".to_string()),
            (
                "net.ipv4.tcp_rmem".to_string(),
                "4096 131072 6291456".to_string(),
            ),
        ]);
        let changes = s.pending(&want).unwrap();
        assert_eq!(
            changes,
            vec![Change {
                key: "net.ipv4.ip_forward".into(),
                from: Some("0".into()),
                to: "1".into()
            }]
        );
        s.apply(&changes).unwrap();
        assert_eq!(s.read("net.ipv4.ip_forward").unwrap().as_deref(), Some("1"));
        assert!(
            s.pending(&want).unwrap().is_empty(),
            "second run changes nothing"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_sysctl_is_planned_and_refused() {
        let (dir, s) = tree();
        let want = BTreeMap::from([("net.ipv4.vs.conntrack".to_string(), "1".to_string())]);
        let changes = s.pending(&want).unwrap();
        assert_eq!(changes[0].from, None);
        let err = s.apply(&changes).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
