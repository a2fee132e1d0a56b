//! Which IPVS services headnode created, so it deletes only its own (netavark
//! keeps firewall ownership the same way). One line per service key, in the
//! `ipvsadm` service syntax, so an admin can read it.

use super::{Error, Family, ServiceKey};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

const FILE: &str = "ipvs-owned";

pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn from_env() -> Store {
        Store {
            path: crate::paths::state_dir().join(FILE),
        }
    }

    pub fn at(path: PathBuf) -> Store {
        Store { path }
    }

    /// The owned keys; none when the file does not exist yet.
    pub fn load(&self) -> Result<BTreeSet<ServiceKey>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(source) => return Err(self.err(source)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                parse(l).ok_or_else(|| {
                    self.err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("cannot read line {l:?}; delete the file to forget ownership"),
                    ))
                })
            })
            .collect()
    }

    /// Replace the file with `crate::paths::atomic_write`: a crash leaves
    /// the old record or the new one, and the new one is on disk on return.
    pub fn save(&self, keys: &BTreeSet<ServiceKey>) -> Result<(), Error> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let mut text = String::from("# IPVS services created by headnode; do not edit\n");
        for k in keys {
            text.push_str(&format(k));
            text.push('\n');
        }
        crate::paths::atomic_write(
            &self.path,
            text.as_bytes(),
            0o644,
            crate::paths::Existing::Replace,
        )
        .map_err(|e| self.err(e))
    }

    fn err(&self, source: std::io::Error) -> Error {
        Error::State {
            path: self.path.clone(),
            source,
        }
    }
}

fn format(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Fwmark {
            family: Family::Inet,
            mark,
        } => format!("fwmark {mark}"),
        ServiceKey::Fwmark {
            family: Family::Inet6,
            mark,
        } => format!("fwmark6 {mark}"),
        ServiceKey::Tuple { proto, addr, port } => format!("proto {proto} {addr} {port}"),
    }
}

fn parse(line: &str) -> Option<ServiceKey> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["fwmark", m] => Some(ServiceKey::Fwmark {
            family: Family::Inet,
            mark: m.parse().ok()?,
        }),
        ["fwmark6", m] => Some(ServiceKey::Fwmark {
            family: Family::Inet6,
            mark: m.parse().ok()?,
        }),
        ["proto", p, a, port] => Some(ServiceKey::Tuple {
            proto: p.parse().ok()?,
            addr: a.parse::<IpAddr>().ok()?,
            port: port.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("hn-ipvs-state-{}", std::process::id()));
        let store = Store::at(dir.join("ipvs-owned"));
        assert!(store.load().unwrap().is_empty());
        let keys: BTreeSet<ServiceKey> = [
            ServiceKey::Fwmark {
                family: Family::Inet,
                mark: 1,
            },
            ServiceKey::Fwmark {
                family: Family::Inet6,
                mark: 2,
            },
            ServiceKey::Tuple {
                proto: 6,
                addr: "203.0.113.210".parse().unwrap(),
                port: 8000,
            },
            ServiceKey::Tuple {
                proto: 17,
                addr: "2001:db8::1".parse().unwrap(),
                port: 53,
            },
        ]
        .into_iter()
        .collect();
        store.save(&keys).unwrap();
        assert_eq!(store.load().unwrap(), keys);
        std::fs::write(dir.join("ipvs-owned"), "garbage\n").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("garbage"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
