//! systemd's notify protocol (sd_notify), by hand: one datagram to the unix
//! socket named in `$NOTIFY_SOCKET`. Without systemd it does nothing.
//!
//! Hand-rolled rather than the `sd-notify` crate: the protocol is one
//! datagram of `KEY=value` lines, which std's `UnixDatagram` sends (abstract
//! sockets included) in a dozen lines, and the daemon needs nothing else
//! from a crate (no fd store, no barrier).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!("cannot notify systemd ({state}): {e}");
    }
}

/// Send `state` to the notify socket `path` (`@name` for an abstract one).
fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        // Abstract namespace socket (systemd uses these in containers).
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

/// A reload begins: systemd (`Type=notify-reload` or `ExecReload` with
/// `Type=notify`) shows the unit as reloading until the next `READY=1`.
/// It wants the monotonic clock with it, to tell this reload from an older one.
pub fn reloading() {
    notify(&reloading_message(monotonic_usec()));
}

fn reloading_message(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// The reload is done; `status` is the new STATUS= line.
pub fn reloaded(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// `STATUS=`: what `systemctl status headnode` shows under the unit.
pub fn status(status: &str) {
    notify(&format!("STATUS={status}"));
}

fn monotonic_usec() -> u64 {
    // SAFETY: clock_gettime only writes into the struct it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// What the daemon is doing, in one line for `STATUS=`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// `None` when DHCP is off; else whether it listens.
    pub dhcp_serving: Option<bool>,
    pub leases: usize,
    /// Real servers with a health check: up and checked in all.
    pub reals_up: usize,
    pub reals_checked: usize,
    /// The firewall in one word or phrase: "in place", "fallback: …".
    pub firewall: String,
}

pub fn status_line(s: &Summary) -> String {
    let dhcp = match s.dhcp_serving {
        None => "DHCP off".to_string(),
        Some(true) => format!("DHCP serving, {} lease(s)", s.leases),
        Some(false) => format!("DHCP not listening, {} lease(s)", s.leases),
    };
    let health = if s.reals_checked == 0 {
        String::new()
    } else {
        format!("; {}/{} real servers up", s.reals_up, s.reals_checked)
    };
    format!("{dhcp}{health}; firewall {}", s.firewall)
}

/// Half the watchdog period systemd asked for (`$WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_notify_socket() {
        let dir = std::env::temp_dir().join(format!("hn-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let fake = UnixDatagram::bind(&path).unwrap();
        fake.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        send(path.as_os_str(), &reloading_message(42)).unwrap();
        let n = fake.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"RELOADING=1\nMONOTONIC_USEC=42");
        send(path.as_os_str(), "READY=1\nSTATUS=x").unwrap();
        let n = fake.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn abstract_sockets_too() {
        let name = format!("hn-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let fake = UnixDatagram::bind_addr(&addr).unwrap();
        fake.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STATUS=y").unwrap();
        let mut buf = [0u8; 64];
        let n = fake.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=y");
    }

    #[test]
    fn status_line_says_dhcp_leases_health_and_firewall() {
        let mut s = Summary {
            dhcp_serving: Some(true),
            leases: 3,
            reals_up: 1,
            reals_checked: 2,
            firewall: "in place".into(),
        };
        assert_eq!(
            status_line(&s),
            "DHCP serving, 3 lease(s); 1/2 real servers up; firewall in place"
        );
        s.reals_checked = 0;
        s.dhcp_serving = None;
        assert_eq!(status_line(&s), "DHCP off; firewall in place");
        s.dhcp_serving = Some(false);
        assert_eq!(
            status_line(&s),
            "DHCP not listening, 3 lease(s); firewall in place"
        );
    }

    #[test]
    fn the_monotonic_clock_moves() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() > a);
    }
}
