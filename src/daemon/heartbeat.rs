//! The main loop's heartbeat, which the watchdog task reads. systemd's
//! watchdog must fire when the loop is stuck, not while it waits for a kernel
//! call that has a deadline of its own; so the loop beats at every turn and
//! around every blocking call, and a separate task pings systemd while the
//! last beat is recent. A part that runs on a thread of its own (the DHCP
//! server) is watched by the main loop, which marks it stuck here; the pings
//! stop then too, since only a restart frees a stuck thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
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

/// Why a part other than the main loop is stuck, if one is.
static STUCK_PART: Mutex<Option<String>> = Mutex::new(None);

/// Mark a part stuck (`Some(why)`) or moving again (`None`).
pub fn set_stuck(why: Option<String>) {
    *STUCK_PART.lock().unwrap_or_else(|e| e.into_inner()) = why;
}

/// A beat older than this means the main loop itself is stuck: any one
/// blocking call has a deadline of at most 20 s.
const STUCK: Duration = Duration::from_secs(25);

/// Why systemd's watchdog must not be pinged now, if it must not.
pub fn stuck() -> Option<String> {
    let part = STUCK_PART.lock().unwrap_or_else(|e| e.into_inner()).clone();
    verdict(age(), part)
}

/// PURE: the main loop's beat is `age` old and `part` is stuck, if any.
fn verdict(age: Duration, part: Option<String>) -> Option<String> {
    if age >= STUCK {
        return Some(format!(
            "the main loop has not moved for {} s",
            age.as_secs()
        ));
    }
    part
}

/// Run blocking work (nft processes, netlink) without stalling DHCP. Each
/// such call has its own deadline below the watchdog's (nft 20 s, IPVS
/// netlink 20 s); the heartbeat tells the watchdog the loop is still moving.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    beat();
    let r = tokio::task::block_in_place(f);
    beat();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_makes_the_age_small() {
        beat();
        assert!(age() < Duration::from_secs(1));
    }

    #[test]
    fn the_pings_stop_when_the_loop_or_a_part_is_stuck() {
        let fresh = Duration::from_secs(1);
        assert_eq!(verdict(fresh, None), None);
        let part = Some("the DHCP server has not moved for 21 s".to_string());
        assert_eq!(verdict(fresh, part.clone()), part);
        let old = verdict(STUCK, None).expect("stuck");
        assert!(old.contains("main loop has not moved for 25 s"), "{old}");
    }
}
