//! A short-lived memory of verified passwords, like Dovecot's `auth_cache`.
//!
//! argon2 is slow on purpose; a client that logs in again and again (a
//! mirror job, a monitoring probe) should not pay for it every time. After a
//! successful verification the password is remembered as a keyed hash (the
//! key is random and lives only in this process) for a short time, and a
//! login with the same login and password within that time skips argon2.
//! Failures are never cached, so a wrong password always costs a full
//! verification. What is remembered is bound to the hash it verified
//! against, so a changed password (a reload, a row of the users database
//! changed) never lets the old one in.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use tokio::time::Instant;

use super::{Password, PasswordHash};
use crate::deadline;

type Keyed = Blake2bMac<U32>;

/// Logins remembered at most; past this expired entries are dropped, and
/// if none has expired, all (only logins that verified get here).
const REMEMBERED: usize = 16_384;

/// Verified credentials, by login, until they expire.
pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<String, ([u8; 32], Instant)>>,
}

impl CredentialCache {
    /// A cache keeping each verified password for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        CredentialCache {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, login: &str, hash: &PasswordHash, password: &Password) -> Keyed {
        // A 32-byte key always fits Blake2b's key size.
        let mut mac =
            <Keyed as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(login.as_bytes());
        mac.update(&[0]);
        mac.update(hash.phc().as_bytes());
        mac.update(&[0]);
        mac.update(password.expose().as_bytes());
        mac
    }

    /// Whether `password` verified against `hash` for `login` less than `ttl` ago.
    pub fn hit(&self, login: &str, hash: &PasswordHash, password: &Password) -> bool {
        let stored = {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get(login) {
                Some((digest, until)) if *until > Instant::now() => *digest,
                _ => return false,
            }
        };
        // Constant-time comparison.
        self.mac(login, hash, password)
            .verify_slice(&stored)
            .is_ok()
    }

    /// Remembers that `password` verified against `hash` for `login`.
    pub fn remember(&self, login: &str, hash: &PasswordHash, password: &Password) {
        let digest: [u8; 32] = self
            .mac(login, hash, password)
            .finalize()
            .into_bytes()
            .into();
        let now = Instant::now();
        let until = deadline::after(now, self.ttl);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= REMEMBERED && !entries.contains_key(login) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= REMEMBERED {
                entries.clear();
            }
        }
        entries.insert(login.to_owned(), (digest, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str) -> PasswordHash {
        PasswordHash::parse(&crate::auth::hash_password(password).unwrap()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_verified_password_is_remembered_until_it_expires() {
        let cache = CredentialCache::new(Duration::from_secs(300));
        let (right, phc) = (Password::new("s3cret"), hash("s3cret"));
        assert!(!cache.hit("alice", &phc, &right));
        cache.remember("alice", &phc, &right);
        assert!(cache.hit("alice", &phc, &right));
        assert!(!cache.hit("alice", &phc, &Password::new("s3cret ")));
        assert!(!cache.hit("bob", &phc, &right), "entries are per login");
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(!cache.hit("alice", &phc, &right));
    }

    #[test]
    fn a_changed_hash_forgets_the_old_password() {
        let cache = CredentialCache::new(Duration::from_secs(300));
        let old = Password::new("s3cret");
        cache.remember("alice", &hash("s3cret"), &old);
        assert!(!cache.hit("alice", &hash("n3w"), &old));
    }

    #[test]
    fn a_lifetime_too_long_for_the_clock_remembers_without_panicking() {
        let cache = CredentialCache::new(Duration::MAX);
        let (right, phc) = (Password::new("s3cret"), hash("s3cret"));
        cache.remember("alice", &phc, &right);
        assert!(cache.hit("alice", &phc, &right));
    }
}
