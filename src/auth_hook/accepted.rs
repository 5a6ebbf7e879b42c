//! The hook's yes, kept for `cache_lifetime`: a login and password the
//! hook accepted less than that ago gets the same account without asking
//! again. As in `auth::CredentialCache`, the password is kept only as a
//! keyed hash (the key is random and lives only in this process), a no or
//! a failure is never kept, so a wrong password always reaches the hook,
//! and at most [`CAPACITY`] logins are held. An expired entry stays until
//! it is pushed out: its storage may serve the login's next answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use serde_json::Value as Json;
use tokio::time::Instant;

use crate::auth::{Password, User};
use crate::deadline;

type Keyed = Blake2bMac<U32>;

/// Logins kept at most; past that the expired go first, then the oldest.
pub(super) const CAPACITY: usize = 4096;

/// One login's last accepted answer.
struct Entry {
    digest: [u8; 32],
    until: Instant,
    user: Arc<User>,
    /// The answer's storage keys, to tell whether its storage may serve
    /// the next answer.
    storage_keys: Json,
}

/// Accepted answers by login.
pub(super) struct Accepted {
    key: [u8; 32],
    lifetime: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Accepted {
    /// Answers reused for `lifetime` (zero: never), at most `capacity` logins.
    pub(super) fn new(lifetime: Duration, capacity: usize) -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Accepted {
            key,
            lifetime,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mac(&self, login: &str, password: &Password) -> Keyed {
        // A 32-byte key always fits Blake2b's key size.
        let mut mac =
            <Keyed as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(login.as_bytes());
        mac.update(&[0]);
        mac.update(password.expose().as_bytes());
        mac
    }

    /// The account the hook gave `login` with `password` less than the
    /// lifetime ago.
    pub(super) fn hit(&self, login: &str, password: &Password) -> Option<Arc<User>> {
        let (digest, user) = {
            let entries = self.lock();
            let entry = entries
                .get(login)
                .filter(|entry| entry.until > Instant::now())?;
            (entry.digest, entry.user.clone())
        };
        // Constant-time comparison.
        self.mac(login, password)
            .verify_slice(&digest)
            .is_ok()
            .then_some(user)
    }

    /// The storage of `login`'s last account, however old, if it was
    /// opened for the same storage keys.
    pub(super) fn account_for(&self, login: &str, keys: &Json) -> Option<Arc<User>> {
        let entries = self.lock();
        let entry = entries.get(login)?;
        (entry.storage_keys == *keys).then(|| entry.user.clone())
    }

    /// Keeps the hook's yes for `login` with `password`: `user`, opened
    /// for `storage_keys`.
    pub(super) fn remember(
        &self,
        login: &str,
        password: &Password,
        user: Arc<User>,
        storage_keys: Json,
    ) {
        let digest: [u8; 32] = self.mac(login, password).finalize().into_bytes().into();
        let now = Instant::now();
        let entry = Entry {
            digest,
            until: deadline::after(now, self.lifetime),
            user,
            storage_keys,
        };
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(login) {
            entries.retain(|_, entry| entry.until > now);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.until)
                    .map(|(login, _)| login.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(login.to_owned(), entry);
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
    use crate::path::VirtualPath;
    use crate::storage::MemoryStorage;
    use serde_json::json;

    fn user(login: &str) -> Arc<User> {
        Arc::new(User {
            login: Some(login.to_owned()),
            home: VirtualPath::root(),
            permissions: Vec::new(),
            storage: Arc::new(MemoryStorage::new()),
            tls_required: None,
            max_connections: None,
            limits: Default::default(),
            quota: None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_yes_is_reused_for_the_same_password_until_it_expires() {
        let cache = Accepted::new(Duration::from_secs(30), 8);
        let right = Password::new("s3cret");
        assert!(cache.hit("bob", &right).is_none());
        cache.remember("bob", &right, user("bob"), json!({}));
        assert!(cache.hit("bob", &right).is_some());
        assert!(cache.hit("bob", &Password::new("s3cret ")).is_none());
        assert!(
            cache.hit("carol", &right).is_none(),
            "entries are per login"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(cache.hit("bob", &right).is_none());
        assert!(
            cache.account_for("bob", &json!({})).is_some(),
            "an expired entry's storage may serve the next answer"
        );
        assert!(cache
            .account_for("bob", &json!({"base_path": "x"}))
            .is_none());
    }

    #[test]
    fn a_zero_lifetime_reuses_nothing() {
        let cache = Accepted::new(Duration::ZERO, 8);
        let right = Password::new("s3cret");
        cache.remember("bob", &right, user("bob"), json!({}));
        assert!(cache.hit("bob", &right).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn it_never_holds_more_than_its_capacity() {
        let cache = Accepted::new(Duration::from_secs(30), 3);
        for n in 0..1000 {
            let login = format!("flood{n}");
            cache.remember(&login, &Password::new("x"), user(&login), json!({}));
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.hit("flood999", &Password::new("x")).is_some());
    }

    #[test]
    fn a_lifetime_too_long_for_the_clock_does_not_panic() {
        let cache = Accepted::new(Duration::MAX, 8);
        let right = Password::new("s3cret");
        cache.remember("bob", &right, user("bob"), json!({}));
        assert!(cache.hit("bob", &right).is_some());
    }
}
