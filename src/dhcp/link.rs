//! Following the private interface: the socket is bound to one interface
//! index, and `ifdown/ifup` of a bridge or VLAN, `systemctl restart
//! networking` or a rename makes a new index or moves the name, which left
//! the server deaf. Here:
//! - [`decide`] says, from a [`Snapshot`] of links and addresses, whether to
//!   serve and on which index, or why not (pure, unit-tested);
//! - [`Watch`] wakes the server thread when rtnetlink reports a link or IPv4
//!   address change. The events are only a wake-up: the server reads the
//!   whole state again and decides from it (reconcile, don't replay), so a
//!   lost event (socket buffer overrun) costs at most `RECHECK`.

use crate::netinfo::Snapshot;
use neli::consts::rtnl::Rtm;
use neli::consts::socket::NlFamily;
use neli::socket::synchronous::NlSocketHandle;
use neli::types::Buffer;
use neli::utils::Groups;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The state is read again this often even without events.
pub const RECHECK: Duration = Duration::from_secs(10);
/// How long the watcher waits for an event before it looks at the stop flag.
const WAIT: Duration = Duration::from_millis(500);

/// What to do about the private interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Listen on the interface with this index.
    Serve { index: u32 },
    /// Do not listen; why, for the log and `status`.
    Deaf(String),
}

/// Serve on `iface` when it exists, is up and has the server's address
/// (the server identifier clients send renewals to must be on it).
pub fn decide(snap: &Snapshot, iface: &str, server_ip: Ipv4Addr) -> Decision {
    let Some(link) = snap.link(iface) else {
        return Decision::Deaf(format!("interface {iface} does not exist"));
    };
    if !link.up {
        return Decision::Deaf(format!("interface {iface} is down"));
    }
    if !snap
        .addrs_of(link.index)
        .iter()
        .any(|a| a.net.addr() == server_ip)
    {
        return Decision::Deaf(format!(
            "interface {iface} does not have the server's address {server_ip}"
        ));
    }
    Decision::Serve { index: link.index }
}

/// Counts rtnetlink link and IPv4 address events on a thread of its own;
/// the server compares the count with the one it last acted on.
pub struct Watch {
    pub changes: Arc<AtomicU64>,
}

impl Watch {
    /// Subscribe to link and IPv4 address events; the thread ends when
    /// `stop` is set. An error here leaves the server with `RECHECK` only.
    pub fn start(stop: Arc<AtomicBool>) -> std::io::Result<Watch> {
        let groups = Groups::new_bitmask((libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR) as u32);
        let sock = NlSocketHandle::connect(NlFamily::Route, None, groups)
            .map_err(|e| std::io::Error::other(format!("rtnetlink events: {e}")))?;
        // A bounded wait, so the thread notices `stop`.
        let tv = libc::timeval {
            tv_sec: WAIT.as_secs() as _,
            tv_usec: WAIT.subsec_micros() as _,
        };
        // SAFETY: setsockopt reads a timeval that lives across the call.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let changes = Arc::new(AtomicU64::new(0));
        let seen = changes.clone();
        std::thread::Builder::new()
            .name("dhcp-links".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Any message or error but a timeout means "look again":
                    // ENOBUFS says events were lost, so look too.
                    match sock.recv::<Rtm, Buffer>() {
                        Ok(_) => {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if is_timeout(&e) => {}
                        Err(_) => {
                            seen.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(WAIT);
                        }
                    }
                }
            })?;
        Ok(Watch { changes })
    }
}

fn is_timeout(e: &neli::err::SocketError) -> bool {
    matches!(e, neli::err::SocketError::Io(io)
        if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netinfo::fixtures::{addr, link, origin_box};

    const IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 254);

    #[test]
    fn serves_only_an_existing_up_interface_with_the_address() {
        let mut snap = origin_box();
        assert_eq!(decide(&snap, "eth0", IP), Decision::Serve { index: 2 });
        // Recreated (ifdown/ifup of a bridge): a new index.
        snap.links[1] = link(7, "eth0", true);
        snap.addrs[1] = addr(7, "192.168.1.254/24", false);
        assert_eq!(decide(&snap, "eth0", IP), Decision::Serve { index: 7 });
        // Renamed away: the name is what the config says.
        snap.links[1].name = "lan9".into();
        assert_eq!(
            decide(&snap, "eth0", IP),
            Decision::Deaf("interface eth0 does not exist".into())
        );
        snap.links[1] = link(7, "eth0", false);
        assert_eq!(
            decide(&snap, "eth0", IP),
            Decision::Deaf("interface eth0 is down".into())
        );
        snap.links[1].up = true;
        snap.addrs[1] = addr(7, "192.168.2.254/24", false);
        assert_eq!(
            decide(&snap, "eth0", IP),
            Decision::Deaf(
                "interface eth0 does not have the server's address 192.168.1.254".into()
            )
        );
        // A secondary address is enough, whatever the prefix.
        snap.addrs.push(addr(7, "192.168.1.254/16", true));
        assert_eq!(decide(&snap, "eth0", IP), Decision::Serve { index: 7 });
    }
}
