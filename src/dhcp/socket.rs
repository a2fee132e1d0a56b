//! The UDP socket on the private interface, and carrying out a `Target`.
//!
//! `SO_BINDTODEVICE` is what keeps the server off the public side: the
//! kernel delivers only packets that arrived on the named interface.

use super::target::Target;
use crate::config::model::Mac;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// How long a receive waits before the loop looks at its clock and flags.
pub const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);
/// Datagrams read or written per system call.
pub const BATCH: usize = 64;
/// Largest request read; longer ones are cut and then fail to parse.
const MAX_DATAGRAM: usize = 1536;

/// Bind 0.0.0.0:67 on `ifname` only. Blocking, with a receive timeout:
/// the server thread waits in `recvmmsg`, not in an event loop.
pub fn bind(ifname: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(ifname.as_bytes()))?;
    // Room for a burst while a batch is being answered; the kernel caps it
    // at net.core.rmem_max, which is fine.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_read_timeout(Some(RECV_TIMEOUT))?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT).into())?;
    Ok(s.into())
}

/// The interface that holds the IPv4 default route, from /proc/net/route.
pub fn default_route_interface() -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_default_route(&text)
}

fn parse_default_route(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    })
}

/// Put `ip → mac` in the neighbour table of `ifname` so a unicast reply
/// reaches a client that cannot answer ARP yet (dnsmasq and dora do this).
fn inject_arp(sock: &UdpSocket, ifname: &str, ip: Ipv4Addr, mac: Mac) -> io::Result<()> {
    // SAFETY: arpreq is plain old data; all-zero is a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    let pa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in fits in sockaddr (both 16 bytes); copied bytewise.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&pa as *const libc::sockaddr_in).cast::<u8>(),
            (&mut req.arp_pa as *mut libc::sockaddr).cast::<u8>(),
            std::mem::size_of::<libc::sockaddr_in>(),
        );
    }
    req.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (d, s) in req.arp_ha.sa_data.iter_mut().zip(mac.0) {
        *d = s as libc::c_char;
    }
    req.arp_flags = libc::ATF_COM;
    for (d, s) in req.arp_dev.iter_mut().zip(ifname.bytes().take(15)) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCSARP reads a valid arpreq that lives across the call. The
    // request argument is c_ulong on glibc but c_int on musl (the .deb's
    // static build): `libc::Ioctl` is whichever this target has.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSARP as libc::Ioctl, &req) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Where a reply goes, as a socket address. A hardware-unicast reply
/// falls back to broadcast when the neighbour entry cannot be set.
pub fn destination(sock: &UdpSocket, ifname: &str, target: Target) -> SocketAddrV4 {
    match target {
        Target::Relay(ip) => SocketAddrV4::new(ip, SERVER_PORT),
        Target::Client(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
        Target::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        Target::Hardware { mac, ip } => match inject_arp(sock, ifname, ip, mac) {
            Ok(()) => SocketAddrV4::new(ip, CLIENT_PORT),
            Err(e) => {
                tracing::debug!(%ip, %mac, "cannot set neighbour entry ({e}); broadcasting");
                SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
            }
        },
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Receive buffers for one `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
        }
    }
}

impl RecvBatch {
    /// Wait for at least one datagram (up to `RECV_TIMEOUT`), then take
    /// what is queued, up to `BATCH`. Ok(0) on timeout.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        // SAFETY: mmsghdr/iovec are plain data; all-zero is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer of the stated length;
        // the kernel writes at most that many bytes and the lengths.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE as _, // c_int on glibc, c_uint on musl
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for (len, h) in self.lens.iter_mut().zip(&hdrs[..n]) {
            *len = (h.msg_len as usize).min(MAX_DATAGRAM);
        }
        Ok(n)
    }

    pub fn get(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }
}

/// Replies waiting to be sent, copied end to end into one buffer: no
/// allocation per reply, and a reply held for the lease writer costs its
/// length, not a 1,500-byte buffer.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    /// Destination and end offset of each reply in `bytes`.
    replies: Vec<(SocketAddrV4, usize)>,
}

impl Outbox {
    pub fn push(&mut self, to: SocketAddrV4, reply: &[u8]) {
        self.bytes.extend_from_slice(reply);
        self.replies.push((to, self.bytes.len()));
    }

    pub fn len(&self) -> usize {
        self.replies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// Move `other`'s replies to the end of this one.
    pub fn append(&mut self, other: &mut Outbox) {
        let base = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.replies
            .extend(other.replies.drain(..).map(|(to, end)| (to, base + end)));
    }

    /// Send everything and empty the box (keeping its memory); returns how
    /// many could not be sent.
    pub fn send(&mut self, sock: &UdpSocket) -> usize {
        self.send_paced(sock, usize::MAX, std::time::Duration::ZERO)
    }

    /// `send`, `burst` replies at a time with `gap` between bursts: replies
    /// held through a slow disk sync leave together, and hundreds at once
    /// overrun a relay's socket buffer (seen: 89 of 258 lost by perfdhcp).
    pub fn send_paced(
        &mut self,
        sock: &UdpSocket,
        burst: usize,
        gap: std::time::Duration,
    ) -> usize {
        let mut start = 0;
        let msgs: Vec<(SocketAddrV4, &[u8])> = self
            .replies
            .iter()
            .map(|&(to, end)| {
                let reply = &self.bytes[start..end];
                start = end;
                (to, reply)
            })
            .collect();
        let mut failed = 0;
        for (i, chunk) in msgs.chunks(burst.max(1)).enumerate() {
            if i > 0 {
                std::thread::sleep(gap);
            }
            failed += send_many(sock, chunk);
        }
        self.bytes.clear();
        self.replies.clear();
        failed
    }
}

/// Send datagrams with as few `sendmmsg` calls as the kernel allows.
/// Returns how many could not be sent.
fn send_many(sock: &UdpSocket, msgs: &[(SocketAddrV4, &[u8])]) -> usize {
    let mut failed = 0;
    for chunk in msgs.chunks(BATCH) {
        let mut addrs = [sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); BATCH];
        // SAFETY: plain data, all-zero is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (to, bytes)) in chunk.iter().enumerate() {
            addrs[i] = sockaddr(*to);
            iov[i] = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut at = 0;
        while at < chunk.len() {
            // SAFETY: headers from `at` on point at live addresses and
            // buffers; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    hdrs[at..].as_mut_ptr(),
                    (chunk.len() - at) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    // This datagram cannot go (no route, buffer full): skip it.
                    failed += 1;
                    at += 1;
                }
            } else {
                at += n as usize;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keeps_each_reply_whole_across_append() {
        let lo = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let std::net::SocketAddr::V4(at) = lo.local_addr().expect("addr") else {
            unreachable!("bound to IPv4")
        };
        let mut a = Outbox::default();
        a.push(at, b"one");
        let mut b = Outbox::default();
        b.push(at, b"two!");
        b.push(at, b"3");
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(a.len(), 3);
        assert_eq!(a.send(&lo), 0);
        assert!(a.is_empty());
        let mut buf = [0u8; 16];
        for want in [&b"one"[..], b"two!", b"3"] {
            let n = lo.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], want);
        }
    }

    #[test]
    fn finds_the_default_route_interface() {
        let t = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 eth1\t00000000\t0171A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(parse_default_route(t).as_deref(), Some("eth1"));
        assert_eq!(parse_default_route(&t[..t.find("eth1").unwrap_or(0)]), None);
    }
}
