//! Deadlines from configured durations: `start + wait` that cannot panic.
//!
//! The config refuses durations too long to be meant, but settings built in
//! code (the library API) are not checked, and adding a `Duration` near
//! `u64::MAX` seconds to an `Instant` overflows it. A wait that long means
//! "never", so it is cut to one that no process outlives.

use std::time::Duration;

use tokio::time::Instant;

/// Thirty years, as tokio's own "far future": longer than any process runs,
/// and small enough that adding it to a monotonic clock reading (time since
/// boot) cannot overflow.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// The instant `wait` after `start`; a wait longer than [`FOREVER`] is taken as forever.
pub(crate) fn after(start: Instant, wait: Duration) -> Instant {
    start + wait.min(FOREVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_too_long_for_the_clock_ends_in_the_far_future() {
        let start = Instant::now();
        assert_eq!(after(start, Duration::MAX), start + FOREVER);
        assert_eq!(
            after(start, Duration::from_secs(u64::MAX >> 1)),
            start + FOREVER
        );
        assert_eq!(
            after(start, Duration::from_secs(5)),
            start + Duration::from_secs(5)
        );
    }
}
