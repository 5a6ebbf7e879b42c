//! A short-lived memory of verified passwords, like Dovecot's `auth_cache`.
//!
//! argon2 is slow on purpose; a client that logs in again and again (a
//! mirror job, a monitoring probe) should not pay for it every time. After a
//! successful verification the password is remembered as a keyed hash (the
//! key is random and lives only in this process) for a short time, and a
//! login with the same login and password within that time skips argon2.
//! Failures are never cached, so a wrong password always costs a full
//! verification. A reload or a password change builds a new user manager,
//! and with it an empty cache.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use tokio::time::Instant;

use super::Password;
use crate::deadline;

type Keyed = Blake2bMac<U32>;

/// Verified credentials, by login, until they expire.
pub(super) struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<String, ([u8; 32], Instant)>>,
}

impl CredentialCache {
    /// A cache keeping each verified password for `ttl`.
    pub(super) fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        CredentialCache {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
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

    /// Whether `password` verified for `login` less than `ttl` ago.
    pub(super) fn hit(&self, login: &str, password: &Password) -> bool {
        let stored = {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get(login) {
                Some((digest, until)) if *until > Instant::now() => *digest,
                _ => return false,
            }
        };
        // Constant-time comparison.
        self.mac(login, password).verify_slice(&stored).is_ok()
    }

    /// Remembers that `password` verified for `login`.
    pub(super) fn remember(&self, login: &str, password: &Password) {
        let digest: [u8; 32] = self.mac(login, password).finalize().into_bytes().into();
        let until = deadline::after(Instant::now(), self.ttl);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(login.to_owned(), (digest, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_verified_password_is_remembered_until_it_expires() {
        let cache = CredentialCache::new(Duration::from_secs(300));
        let right = Password::new("s3cret");
        assert!(!cache.hit("alice", &right));
        cache.remember("alice", &right);
        assert!(cache.hit("alice", &right));
        assert!(!cache.hit("alice", &Password::new("s3cret ")));
        assert!(!cache.hit("bob", &right), "entries are per login");
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(!cache.hit("alice", &right));
    }

    #[test]
    fn a_lifetime_too_long_for_the_clock_remembers_without_panicking() {
        let cache = CredentialCache::new(Duration::MAX);
        let right = Password::new("s3cret");
        cache.remember("alice", &right);
        assert!(cache.hit("alice", &right));
    }
}
