//! The main loop's heartbeat, which the watchdog task reads. systemd's
//! watchdog must fire when the loop is stuck, not while it waits for a kernel
//! call that has a deadline of its own; so the loop beats at every turn and
//! around every blocking call, and a separate task pings systemd while the
//! last beat is recent.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();
/// Milliseconds since `START` at the last beat.
static LAST: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

pub fn beat() {
    LAST.store(now_ms(), Ordering::Relaxed);
}

/// Time since the last beat.
pub fn age() -> Duration {
    Duration::from_millis(now_ms().saturating_sub(LAST.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_makes_the_age_small() {
        beat();
        assert!(age() < Duration::from_secs(1));
    }
}
