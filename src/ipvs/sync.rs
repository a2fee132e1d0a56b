//! The kernel's IPVS connection sync daemon (`ipvsadm --start-daemon`). A
//! master sends the state of the connections it balances as multicast on
//! one interface; a backup applies what it hears to its own connection
//! table. With two head nodes, the one that holds the virtual addresses runs
//! the master and the other the backup, so a takeover finds the established
//! connections already known and does not reset them.
//!
//! The split is the one of the rest of `ipvs`: [`plan`] (desired x live →
//! ops) is pure; [`reconcile`] runs it against a [`SyncKernel`] (the netlink
//! handle, or a fake in the tests); [`reconcile_live`] is it on this machine.

use super::Error;
use std::fmt;

/// `IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn number(self) -> u32 {
        match self {
            Role::Master => 1,
            Role::Backup => 2,
        }
    }

    pub fn from_number(n: u32) -> Option<Role> {
        match n {
            1 => Some(Role::Master),
            2 => Some(Role::Backup),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Backup => "backup",
        })
    }
}

/// One running sync daemon. The kernel runs at most one of each role per
/// network namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Daemon {
    pub role: Role,
    /// The interface the multicast goes out of (master) or is read on (backup).
    pub interface: String,
    /// Messages carry it; a backup drops those of another id, so two pairs
    /// of head nodes can share a segment (ipvsadm's `--syncid`, 0-255).
    pub sync_id: u8,
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sync daemon on {} (syncid {})",
            self.role, self.interface, self.sync_id
        )
    }
}

/// A change to the sync daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOp {
    Start(Daemon),
    Stop(Role),
}

impl fmt::Display for SyncOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncOp::Start(d) => write!(f, "start the {d}"),
            SyncOp::Stop(r) => write!(f, "stop the {r} sync daemon"),
        }
    }
}

/// What the sync daemons are and how to change them.
pub trait SyncKernel {
    fn sync_daemons(&self) -> Result<Vec<Daemon>, Error>;
    fn sync_exec(&self, op: &SyncOp) -> Result<(), Error>;
}

/// PURE: the ops that turn `live` into `desired`. A daemon whose interface
/// or id differs is stopped, then started as wanted (the kernel cannot
/// change a running one); one of a role not wanted is stopped. Stops come
/// first, so a role's start never meets the old daemon of that role.
pub fn plan(desired: &[Daemon], live: &[Daemon]) -> Vec<SyncOp> {
    let mut stops = Vec::new();
    let mut starts = Vec::new();
    for role in [Role::Master, Role::Backup] {
        let want = desired.iter().find(|d| d.role == role);
        let have = live.iter().find(|d| d.role == role);
        match (want, have) {
            (Some(w), Some(h)) if w == h => {}
            (Some(w), Some(_)) => {
                stops.push(SyncOp::Stop(role));
                starts.push(SyncOp::Start(w.clone()));
            }
            (Some(w), None) => starts.push(SyncOp::Start(w.clone())),
            (None, Some(_)) => stops.push(SyncOp::Stop(role)),
            (None, None) => {}
        }
    }
    stops.extend(starts);
    stops
}

/// Bring `kernel`'s sync daemons to `desired`; the ops carried out. Stops
/// on the first refusal: a start after a failed stop would only be refused
/// too (`EEXIST`).
pub fn reconcile(kernel: &impl SyncKernel, desired: &[Daemon]) -> Result<Vec<SyncOp>, Error> {
    let ops = plan(desired, &kernel.sync_daemons()?);
    for op in &ops {
        kernel.sync_exec(op)?;
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn d(role: Role, interface: &str, sync_id: u8) -> Daemon {
        Daemon {
            role,
            interface: interface.into(),
            sync_id,
        }
    }

    #[test]
    fn plan_starts_stops_and_restarts_what_differs() {
        let master = d(Role::Master, "eth2", 7);
        let backup = d(Role::Backup, "eth2", 7);
        assert_eq!(
            plan(std::slice::from_ref(&master), &[]),
            [SyncOp::Start(master.clone())]
        );
        assert!(plan(std::slice::from_ref(&master), std::slice::from_ref(&master)).is_empty());
        // A takeover: the backup goes, the master comes.
        assert_eq!(
            plan(std::slice::from_ref(&master), std::slice::from_ref(&backup)),
            [SyncOp::Stop(Role::Backup), SyncOp::Start(master.clone())]
        );
        // Another interface: stopped first, then started as wanted.
        let moved = d(Role::Master, "eth3", 7);
        assert_eq!(
            plan(std::slice::from_ref(&moved), std::slice::from_ref(&master)),
            [SyncOp::Stop(Role::Master), SyncOp::Start(moved)]
        );
        assert_eq!(
            plan(&[], &[master, backup]),
            [SyncOp::Stop(Role::Master), SyncOp::Stop(Role::Backup)]
        );
    }

    /// The kernel's rules: one daemon per role, `EEXIST` for a second,
    /// `ESRCH` to stop one that does not run.
    #[derive(Default)]
    struct Fake(RefCell<Vec<Daemon>>);

    impl SyncKernel for Fake {
        fn sync_daemons(&self) -> Result<Vec<Daemon>, Error> {
            Ok(self.0.borrow().clone())
        }
        fn sync_exec(&self, op: &SyncOp) -> Result<(), Error> {
            let mut live = self.0.borrow_mut();
            let refuse = |errno| Error::Kernel {
                op: op.to_string(),
                errno: std::io::Error::from_raw_os_error(errno),
            };
            match op {
                SyncOp::Start(d) if live.iter().any(|l| l.role == d.role) => {
                    Err(refuse(libc::EEXIST))
                }
                SyncOp::Start(d) => {
                    live.push(d.clone());
                    Ok(())
                }
                SyncOp::Stop(r) => match live.iter().position(|l| l.role == *r) {
                    Some(i) => {
                        live.remove(i);
                        Ok(())
                    }
                    None => Err(refuse(libc::ESRCH)),
                },
            }
        }
    }

    #[test]
    fn reconcile_reaches_the_desired_daemons_and_twice_changes_nothing() {
        let kernel = Fake::default();
        let backup = vec![d(Role::Backup, "eth2", 1)];
        assert_eq!(reconcile(&kernel, &backup).unwrap().len(), 1);
        assert!(reconcile(&kernel, &backup).unwrap().is_empty());
        let master = vec![d(Role::Master, "eth2", 1)];
        assert_eq!(reconcile(&kernel, &master).unwrap().len(), 2);
        assert_eq!(kernel.sync_daemons().unwrap(), master);
        assert!(reconcile(&kernel, &master).unwrap().is_empty());
        reconcile(&kernel, &[]).unwrap();
        assert!(kernel.sync_daemons().unwrap().is_empty());
    }
}
