//! argon2 password hashing and verification, off the async workers.
//!
//! Verification is CPU-heavy on purpose; it runs on blocking threads, at most
//! one per core at a time, so a burst of logins cannot starve the sessions.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHasher, PasswordVerifier as _};
use tokio::sync::Semaphore;

use super::Password;

/// A validated argon2 PHC string (`$argon2id$v=19$...`).
#[derive(Clone)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Accepts `phc` if it is an argon2 PHC string; plain-text passwords are refused.
    pub fn parse(phc: &str) -> Result<Self, String> {
        let parsed = argon2::PasswordHash::new(phc).map_err(|e| {
            format!("not an argon2 PHC string ({e}); create one with `aioftpd hash-password`")
        })?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "algorithm {} is not argon2; create a hash with `aioftpd hash-password`",
                parsed.algorithm
            ));
        }
        Ok(PasswordHash(phc.to_owned()))
    }

    fn verify(&self, password: &str) -> bool {
        argon2::PasswordHash::new(&self.0)
            .map(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// Hashes `password` as an argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Runs argon2 verifications on blocking threads with bounded concurrency.
#[derive(Clone)]
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
    /// Verified against when a login is unknown, so that it costs as much as a wrong password.
    decoy: PasswordHash,
}

impl PasswordVerifier {
    /// A verifier allowing as many parallel verifications as there are cores.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let decoy = hash_password("aioftpd decoy password")
            .ok()
            .and_then(|phc| PasswordHash::parse(&phc).ok())
            .unwrap_or_else(|| PasswordHash(String::new()));
        PasswordVerifier {
            permits: Arc::new(Semaphore::new(cores)),
            decoy,
        }
    }

    /// Whether `password` matches `hash`; with `None` it checks against a decoy and fails.
    pub async fn verify(&self, hash: Option<&PasswordHash>, password: &Password) -> bool {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).clone();
        let password = password.clone();
        let matched = tokio::task::spawn_blocking(move || hash.verify(password.expose()))
            .await
            .unwrap_or(false);
        known && matched
    }
}

impl Default for PasswordVerifier {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_a_password_hash() {
        assert!(PasswordHash::parse("secret").is_err());
        assert!(PasswordHash::parse("$2b$12$abcdefghijklmnopqrstuv").is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hash = PasswordHash::parse(&hash_password("s3cret").unwrap()).unwrap();
        let verifier = PasswordVerifier::new();
        assert!(verifier.verify(Some(&hash), &Password::new("s3cret")).await);
        assert!(!verifier.verify(Some(&hash), &Password::new("wrong")).await);
        assert!(
            !verifier
                .verify(None, &Password::new("aioftpd decoy password"))
                .await
        );
    }
}
