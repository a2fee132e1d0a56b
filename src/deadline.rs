//! A deadline for blocking calls that have none of their own: neli's netlink
//! requests wait for the kernel's answer forever, and a kernel that never
//! answers must not hang `apply`, `status` or the daemon.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Missed {
    #[error(
        "no answer within {} s; gave up waiting (the request may still complete)",
        .0.as_secs_f64()
    )]
    Elapsed(Duration),
    #[error("cannot start a thread for it: {0}")]
    Spawn(std::io::Error),
}

/// Run `f` on a thread of its own (which inherits the caller's network
/// namespace) and wait at most `limit` for its result. When the time is up
/// that thread is left to finish, or stay blocked, alone.
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Missed> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("netlink".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(Missed::Spawn)?;
    rx.recv_timeout(limit).map_err(|_| Missed::Elapsed(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_never_returns_is_given_up_on() {
        let started = std::time::Instant::now();
        let r = within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            1
        });
        assert!(started.elapsed() < Duration::from_secs(1));
        let e = r.expect_err("timed out").to_string();
        assert!(e.starts_with("no answer within 0.05 s"), "{e}");
        assert_eq!(within(Duration::from_secs(5), || 7).ok(), Some(7));
    }
}
