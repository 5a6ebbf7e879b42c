//! Bandwidth limits as token buckets, one per level (server, user,
//! connection) and direction (download, upload).
//!
//! Each bucket is a virtual clock (GCRA): taking `n` bytes moves the time at
//! which the bucket is next free by `n / rate`, and the taker waits until its
//! share has come due. Reservations are served in the order they are made,
//! so concurrent transfers sharing a bucket get equal shares, and the bytes
//! let through over any window never exceed `rate × window + burst`. No task
//! is spawned per block, and an unlimited throttle costs one branch.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of its rate a bucket lets bytes run: a quarter of a second's worth.
const BURST: Duration = Duration::from_millis(250);

/// A rate in bytes per second; never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(u64);

impl Rate {
    /// `bytes_per_second`, or `None` for zero (which means "no limit" in the config).
    pub fn new(bytes_per_second: u64) -> Option<Self> {
        (bytes_per_second > 0).then_some(Rate(bytes_per_second))
    }

    /// Bytes per second.
    pub fn bytes_per_second(self) -> u64 {
        self.0
    }
}

/// One shared limit: a token bucket that any number of transfers draw from.
#[derive(Debug)]
pub struct Bucket {
    rate: Rate,
    /// When the bucket has paid off every reservation made so far.
    free_at: Mutex<Option<Instant>>,
}

impl Bucket {
    /// A bucket letting `rate` through on average.
    pub fn new(rate: Rate) -> Arc<Self> {
        Arc::new(Bucket {
            rate,
            free_at: Mutex::new(None),
        })
    }

    /// The bucket's rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Reserves `bytes` and returns when they may go.
    fn reserve(&self, bytes: usize, now: Instant) -> Instant {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate.0 as f64);
        let mut free_at = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
        // Time an idle bucket did not use is gone: it cannot be spent later.
        let start = free_at.map_or(now, |t| t.max(now));
        let end = start + cost;
        *free_at = Some(end);
        // The bytes may run at most BURST ahead of the bucket's clock.
        end.checked_sub(BURST).unwrap_or(end).max(now)
    }
}

/// The limits one transfer direction is subject to, all applied together.
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    buckets: Vec<Arc<Bucket>>,
}

impl Throttle {
    /// No limit at all.
    pub fn unlimited() -> Self {
        Throttle::default()
    }

    /// Subject to every bucket given (`None`s are levels without a limit).
    pub fn new(buckets: impl IntoIterator<Item = Option<Arc<Bucket>>>) -> Self {
        Throttle {
            buckets: buckets.into_iter().flatten().collect(),
        }
    }

    /// Whether any limit applies.
    pub fn is_limited(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// Waits until `bytes` may pass every bucket.
    pub async fn take(&self, bytes: usize) {
        if self.buckets.is_empty() || bytes == 0 {
            return;
        }
        let now = Instant::now();
        let due = self
            .buckets
            .iter()
            .map(|bucket| bucket.reserve(bytes, now))
            .max()
            .unwrap_or(now);
        if due > now {
            tokio::time::sleep_until(due).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    fn bucket(bytes_per_second: u64) -> Option<Arc<Bucket>> {
        Rate::new(bytes_per_second).map(Bucket::new)
    }

    /// Moves `total` bytes through `throttle` in `block`-sized steps; returns the virtual time taken.
    async fn transfer(throttle: Throttle, total: usize, block: usize) -> Duration {
        let start = Instant::now();
        let mut left = total;
        while left > 0 {
            let n = left.min(block);
            throttle.take(n).await;
            left -= n;
        }
        start.elapsed()
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_transfer_holds_the_rate() {
        let throttle = Throttle::new([bucket(100 * KIB as u64)]);
        let took = transfer(throttle, 1000 * KIB, 16 * KIB).await;
        // 10 s at the rate, less the burst the idle bucket had banked.
        assert!((9.7..=10.0).contains(&secs(took)), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_tightest_level_wins() {
        let throttle = Throttle::new([bucket(1000 * KIB as u64), None, bucket(50 * KIB as u64)]);
        let took = transfer(throttle, 500 * KIB, 8 * KIB).await;
        assert!((9.7..=10.0).contains(&secs(took)), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_bucket_is_divided_fairly() {
        let shared = bucket(100 * KIB as u64);
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let throttle = Throttle::new([shared.clone()]);
                tokio::spawn(transfer(throttle, 250 * KIB, 16 * KIB))
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(secs(task.await.unwrap()));
        }
        // Together they moved 1000 KiB at 100 KiB/s, and each finished near the end:
        // nobody was starved, nobody got ahead by more than a round of blocks.
        for t in &times {
            assert!((8.5..=10.0).contains(t), "{times:?}");
        }
        let spread = times.iter().cloned().fold(0.0, f64::max)
            - times.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread <= 1.0, "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn per_connection_and_shared_limits_combine() {
        // Each connection may do 100 KiB/s, the user 150 KiB/s in all: two connections share 150.
        let user = bucket(150 * KIB as u64);
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let throttle = Throttle::new([user.clone(), bucket(100 * KIB as u64)]);
                tokio::spawn(transfer(throttle, 750 * KIB, 16 * KIB))
            })
            .collect();
        for task in tasks {
            let took = secs(task.await.unwrap());
            assert!((9.5..=10.1).contains(&took), "{took}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_takes_no_time() {
        let took = transfer(Throttle::unlimited(), 100 << 20, 128 * KIB).await;
        assert_eq!(took, Duration::ZERO);
        assert!(!Throttle::new([None, None]).is_limited());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_banks_only_the_burst() {
        let throttle = Throttle::new([bucket(100 * KIB as u64)]);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let took = transfer(throttle, 1000 * KIB, 16 * KIB).await;
        assert!(
            secs(took) >= 9.7,
            "a long idle time must not buy a long burst: {took:?}"
        );
    }

    #[test]
    fn zero_is_no_rate() {
        assert_eq!(Rate::new(0), None);
        assert_eq!(Rate::new(5).map(Rate::bytes_per_second), Some(5));
    }
}
