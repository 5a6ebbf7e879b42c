//! Accounts looked up in the users database, kept for a while and bounded.
//!
//! Only logins the database has get in (unknown logins are never kept, so a
//! flood of made-up logins pins nothing), and at most [`CAPACITY`] of them:
//! past that the expired go first, then the longest kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Accounts kept at most.
pub(super) const CAPACITY: usize = 4096;

/// Looked-up values by login, each with when it was looked up.
pub(super) struct AccountCache<T> {
    lifetime: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, Arc<T>)>>,
}

impl<T> AccountCache<T> {
    /// A cache whose entries are fresh for `lifetime`, at most `capacity` of them.
    pub(super) fn new(lifetime: Duration, capacity: usize) -> Self {
        AccountCache {
            lifetime,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, Arc<T>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `login` if it was looked up less than the lifetime ago.
    pub(super) fn fresh(&self, login: &str) -> Option<Arc<T>> {
        let entries = self.lock();
        let (at, value) = entries.get(login)?;
        (at.elapsed() < self.lifetime).then(|| value.clone())
    }

    /// The value of `login`, however old: what a new lookup may reuse.
    pub(super) fn last(&self, login: &str) -> Option<Arc<T>> {
        self.lock().get(login).map(|(_, value)| value.clone())
    }

    /// Keeps `value` for `login`, looked up now.
    pub(super) fn insert(&self, login: &str, value: Arc<T>) {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(login) {
            let lifetime = self.lifetime;
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < lifetime);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(login, _)| login.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(login.to_owned(), (now, value));
    }

    /// Drops `login`: the database no longer has it.
    pub(super) fn forget(&self, login: &str) {
        self.lock().remove(login);
    }

    /// How many logins are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_fresh_for_its_lifetime_and_reusable_after() {
        let cache = AccountCache::new(Duration::from_secs(30), 8);
        cache.insert("alice", Arc::new(1));
        assert_eq!(cache.fresh("alice").as_deref(), Some(&1));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(cache.fresh("alice"), None);
        assert_eq!(cache.last("alice").as_deref(), Some(&1));
        cache.forget("alice");
        assert_eq!(cache.last("alice"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn it_never_holds_more_than_its_capacity_dropping_the_expired_then_the_oldest() {
        let cache = AccountCache::new(Duration::from_secs(30), 3);
        for (n, login) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(login, Arc::new(n));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        cache.insert("d", Arc::new(3));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.last("a"), None, "the oldest went");
        tokio::time::advance(Duration::from_secs(40)).await;
        cache.insert("e", Arc::new(4));
        assert_eq!(cache.len(), 1, "every expired entry went");
        for n in 0..1000 {
            cache.insert(&format!("flood{n}"), Arc::new(n));
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_zero_lifetime_keeps_nothing_fresh() {
        let cache = AccountCache::new(Duration::ZERO, 8);
        cache.insert("alice", Arc::new(1));
        assert_eq!(cache.fresh("alice"), None);
    }
}
