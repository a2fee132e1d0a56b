//! An in-memory IPVS for unit tests: a table that carries out [`Op`]s the
//! way the kernel does, refusing what it refuses (`EEXIST` for a service or
//! real that exists, `ESRCH` for a missing service, `ENOENT` for a missing
//! real), plus refusals a test injects.

use super::{Error, Kernel, Op, Service, Table};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Fake {
    table: RefCell<Table>,
    refused: Vec<Op>,
}

impl Fake {
    pub fn new(table: Table) -> Fake {
        Fake {
            table: RefCell::new(table),
            refused: Vec::new(),
        }
    }

    /// The kernel will refuse `op` (with `EINVAL`), as it might for a
    /// scheduler whose module is missing.
    pub fn refuse(mut self, op: Op) -> Fake {
        self.refused.push(op);
        self
    }

    /// The table as it is now.
    pub fn now(&self) -> Table {
        self.table.borrow().clone()
    }

    fn exec(&self, op: &Op) -> Result<(), i32> {
        if self.refused.contains(op) {
            return Err(libc::EINVAL);
        }
        let mut t = self.table.borrow_mut();
        match op {
            Op::AddService(k, a) => {
                if t.contains_key(k) {
                    return Err(libc::EEXIST);
                }
                t.insert(
                    *k,
                    Service {
                        attrs: a.clone(),
                        dests: BTreeMap::new(),
                    },
                );
            }
            Op::EditService(k, a) => t.get_mut(k).ok_or(libc::ESRCH)?.attrs = a.clone(),
            Op::DelService(k) => {
                t.remove(k).ok_or(libc::ESRCH)?;
            }
            Op::AddDest(k, d, a) => {
                let s = t.get_mut(k).ok_or(libc::ESRCH)?;
                if s.dests.contains_key(d) {
                    return Err(libc::EEXIST);
                }
                s.dests.insert(*d, *a);
            }
            Op::EditDest(k, d, a) => {
                *t.get_mut(k)
                    .ok_or(libc::ESRCH)?
                    .dests
                    .get_mut(d)
                    .ok_or(libc::ENOENT)? = *a
            }
            Op::DelDest(k, d) => {
                t.get_mut(k)
                    .ok_or(libc::ESRCH)?
                    .dests
                    .remove(d)
                    .ok_or(libc::ENOENT)?;
            }
        }
        Ok(())
    }
}

impl Kernel for Fake {
    fn table(&self) -> Result<Table, Error> {
        Ok(self.now())
    }

    fn exec_all(&self, ops: &[Op]) -> Vec<Result<(), Error>> {
        ops.iter()
            .map(|op| {
                self.exec(op).map_err(|e| Error::Kernel {
                    op: op.to_string(),
                    errno: std::io::Error::from_raw_os_error(e),
                })
            })
            .collect()
    }
}
