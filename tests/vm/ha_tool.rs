//! The traffic of the two-head-node test (tests/vm/ha.sh), std only so
//! run.sh builds it with plain rustc.
//!
//!   ha_tool echo PORT
//!       a real server: echoes every line back, on every connection.
//!   ha_tool client ADDRESS SECONDS
//!       the client on the net side. For SECONDS it (1) opens a new
//!       connection to ADDRESS:8000 every 100 ms and asks `GET /id` (the
//!       nodes answer NODE1 or NODE2), with a 1 s limit, and (2) holds one
//!       connection to ADDRESS:9000 for the whole time, sending a numbered
//!       line every 200 ms and reading it back. It prints one `DOWN`/`UP`
//!       line per outage of the requests (with its length) and at the end:
//!         REQUESTS ok=N failed=M longest_outage_ms=X
//!         LONG sent=N echoed=M survived=yes|no longest_wait_ms=X
//!       The long connection survived when every line came back in order
//!       on the one connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["echo", port] => echo(port.parse().expect("PORT")),
        ["client", addr, secs] => client(
            addr.parse().expect("ADDRESS"),
            Duration::from_secs(secs.parse().expect("SECONDS")),
        ),
        _ => panic!("usage: ha_tool echo PORT | ha_tool client ADDRESS SECONDS"),
    }
}

fn echo(port: u16) {
    let l = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    for conn in l.incoming().flatten() {
        std::thread::spawn(move || {
            let mut w = conn.try_clone().expect("clone");
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { return };
                if writeln!(w, "{line}").is_err() {
                    return;
                }
            }
        });
    }
}

fn client(addr: std::net::Ipv4Addr, run: Duration) {
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let long = {
        let done = done.clone();
        std::thread::spawn(move || long_connection(SocketAddr::from((addr, 9000)), done))
    };
    let web = SocketAddr::from((addr, 8000));
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut down_since: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    while start.elapsed() < run {
        let t = Instant::now();
        if request(web) {
            ok += 1;
            if let Some(d) = down_since.take() {
                let outage = d.elapsed();
                longest = longest.max(outage);
                println!(
                    "UP at {:.1}s after {} ms",
                    start.elapsed().as_secs_f64(),
                    outage.as_millis()
                );
            }
        } else {
            failed += 1;
            if down_since.is_none() {
                down_since = Some(t);
                println!("DOWN at {:.1}s", start.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
    }
    if let Some(d) = down_since {
        longest = longest.max(d.elapsed());
        println!("still DOWN at the end");
    }
    done.store(true, Ordering::Relaxed);
    let (sent, echoed, survived, wait) = long.join().expect("long connection thread");
    println!(
        "REQUESTS ok={ok} failed={failed} longest_outage_ms={}",
        longest.as_millis()
    );
    println!(
        "LONG sent={sent} echoed={echoed} survived={} longest_wait_ms={}",
        if survived { "yes" } else { "no" },
        wait.as_millis()
    );
}

/// One `GET /id` on a new connection; true when a node answered.
fn request(to: SocketAddr) -> bool {
    let limit = Duration::from_secs(1);
    let Ok(mut s) = TcpStream::connect_timeout(&to, limit) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(limit));
    let _ = s.set_write_timeout(Some(limit));
    if s.write_all(b"GET /id HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("NODE")
}

/// Lines on one connection until `done`: (sent, echoed, survived, the
/// longest wait for an echo).
fn long_connection(to: SocketAddr, done: Arc<AtomicBool>) -> (u64, u64, bool, Duration) {
    let Ok(s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
        println!("LONG could not connect");
        return (0, 0, false, Duration::ZERO);
    };
    // TCP retransmits through an outage; 20 s covers a takeover with room.
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let (mut sent, mut echoed) = (0u64, 0u64);
    let mut longest = Duration::ZERO;
    let mut line = String::new();
    while !done.load(Ordering::Relaxed) {
        let t = Instant::now();
        if writeln!(w, "line {sent}").is_err() {
            println!("LONG write failed after {sent} lines");
            return (sent, echoed, false, longest);
        }
        sent += 1;
        line.clear();
        match r.read_line(&mut line) {
            Ok(n) if n > 0 && line.trim_end() == format!("line {}", sent - 1) => echoed += 1,
            other => {
                println!("LONG broken after {sent} lines: {other:?} {line:?}");
                return (sent, echoed, false, longest);
            }
        }
        let waited = t.elapsed();
        longest = longest.max(waited);
        std::thread::sleep(Duration::from_millis(200).saturating_sub(waited));
    }
    (sent, echoed, sent == echoed, longest)
}
