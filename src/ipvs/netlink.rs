//! I/O: the kernel's IPVS table over generic netlink (neli's router).
//! Reads the table and carries out [`Op`]s; decides nothing.

use super::sync::{Daemon, SyncKernel, SyncOp};
use super::wire::{self, Request};
use super::{Error, Kernel, Op, Service, Table};
use neli::consts::nl::NlmF;
use neli::consts::socket::NlFamily;
use neli::nl::NlPayload;
use neli::router::synchronous::{NlRouter, NlRouterReceiverHandle};
use neli::utils::Groups;
use std::collections::{BTreeMap, VecDeque};

/// Requests in flight at once. The kernel handles each message in order as
/// it is sent, so pipelining keeps the order while saving a round trip per op.
const WINDOW: usize = 64;

pub struct Handle {
    router: NlRouter,
    family: u16,
}

type Reply = NlRouterReceiverHandle<u16, Request>;

fn netlink_err(e: impl std::fmt::Display) -> Error {
    Error::Netlink(e.to_string())
}

impl Handle {
    /// Connect and resolve the IPVS family. Resolving asks the kernel to
    /// autoload ip_vs (module alias `net-pf-16-proto-16-family-IPVS`); when
    /// that fails we try `modprobe ip_vs` once before giving up.
    pub fn open() -> Result<Handle, Error> {
        let (router, _multicast) =
            NlRouter::connect(NlFamily::Generic, None, Groups::empty()).map_err(netlink_err)?;
        let family = match router.resolve_genl_family(wire::FAMILY_NAME) {
            Ok(id) => id,
            Err(first) => {
                let modprobe = std::process::Command::new("modprobe")
                    .arg("ip_vs")
                    .output()
                    .map(|o| {
                        if o.status.success() {
                            "modprobe ip_vs succeeded".to_string()
                        } else {
                            format!(
                                "modprobe ip_vs: {}",
                                String::from_utf8_lossy(&o.stderr).trim()
                            )
                        }
                    })
                    .unwrap_or_else(|e| format!("running modprobe: {e}"));
                router
                    .resolve_genl_family(wire::FAMILY_NAME)
                    .map_err(|_| Error::NoIpvs(format!("{}; {modprobe}", short(first))))?
            }
        };
        Ok(Handle { router, family })
    }

    fn send(&self, req: Request, flags: NlmF) -> Result<Reply, Error> {
        self.router
            .send(self.family, flags, NlPayload::Payload(req))
            .map_err(netlink_err)
    }

    /// Every message of a dump; kernel errors (which neli hands back as
    /// `DumpExtAck`/`Err` payloads, not as `Err`) become errors.
    fn dump(&self, req: Request, what: &str) -> Result<Vec<Request>, Error> {
        let mut out = Vec::new();
        for msg in self.send(req, NlmF::DUMP)? {
            let msg = msg.map_err(|e| kernel_err(what, e))?;
            match msg.nl_payload() {
                NlPayload::Payload(p) => out.push(p.clone()),
                NlPayload::DumpExtAck(e) if *e.error() != 0 => {
                    return Err(errno(what, *e.error()));
                }
                NlPayload::Err(e) if *e.error() != 0 => return Err(errno(what, *e.error())),
                _ => {}
            }
        }
        Ok(out)
    }
}

impl Kernel for Handle {
    /// Services, then each one's destinations: one dump each.
    fn table(&self) -> Result<Table, Error> {
        let mut table = Table::new();
        for reply in self.dump(wire::dump_services().map_err(netlink_err)?, "list services")? {
            let (key, attrs) = wire::decode_service(&reply).map_err(netlink_err)?;
            let mut dests = BTreeMap::new();
            let what = format!("list real servers of {key}");
            for d in self.dump(wire::dump_dests(&key).map_err(netlink_err)?, &what)? {
                let (dk, da) = wire::decode_dest(&d, key.family()).map_err(netlink_err)?;
                dests.insert(dk, da);
            }
            table.insert(key, Service { attrs, dests });
        }
        Ok(table)
    }

    /// Pipelined: up to `WINDOW` requests in flight.
    fn exec_all(&self, ops: &[Op]) -> Vec<Result<(), Error>> {
        let mut results = Vec::with_capacity(ops.len());
        let mut inflight: VecDeque<(usize, Result<Reply, Error>)> = VecDeque::new();
        let finish = |op: &Op, r: Result<Reply, Error>| -> Result<(), Error> {
            for msg in r? {
                msg.map_err(|e| kernel_err(&op.to_string(), e))?;
            }
            Ok(())
        };
        for (i, op) in ops.iter().enumerate() {
            let sent = wire::encode(op)
                .map_err(netlink_err)
                .and_then(|req| self.send(req, NlmF::ACK));
            inflight.push_back((i, sent));
            if inflight.len() >= WINDOW
                && let Some((j, r)) = inflight.pop_front()
            {
                results.push(finish(&ops[j], r));
            }
        }
        for (j, r) in inflight {
            results.push(finish(&ops[j], r));
        }
        results
    }
}

impl SyncKernel for Handle {
    fn sync_daemons(&self) -> Result<Vec<Daemon>, Error> {
        let req = wire::dump_sync().map_err(netlink_err)?;
        self.dump(req, "list sync daemons")?
            .iter()
            .map(|r| wire::decode_sync(r).map_err(netlink_err))
            .collect()
    }

    fn sync_exec(&self, op: &SyncOp) -> Result<(), Error> {
        let req = wire::encode_sync(op).map_err(netlink_err)?;
        for msg in self.send(req, NlmF::ACK)? {
            msg.map_err(|e| kernel_err(&op.to_string(), e))?;
        }
        Ok(())
    }
}

/// A router error without neli's full message dump.
fn short<T, P>(e: neli::err::RouterError<T, P>) -> String
where
    T: std::fmt::Debug,
    P: std::fmt::Debug,
{
    match e {
        neli::err::RouterError::Nlmsgerr(m) => format!(
            "resolving generic netlink family IPVS: {}",
            std::io::Error::from_raw_os_error(m.error().abs())
        ),
        other => other.to_string(),
    }
}

fn errno(what: &str, e: i32) -> Error {
    Error::Kernel {
        op: what.to_string(),
        errno: std::io::Error::from_raw_os_error(e.abs()),
    }
}

fn kernel_err<T: std::fmt::Debug, P: std::fmt::Debug>(
    what: &str,
    e: neli::err::RouterError<T, P>,
) -> Error {
    match e {
        neli::err::RouterError::Nlmsgerr(m) => errno(what, *m.error()),
        other => Error::Netlink(format!("{what}: {other}")),
    }
}
