//! The config-backed `UserManager`: users listed in `[[users]]`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::credential_cache::CredentialCache;
use super::{
    LoginKind, LoginPresence, Password, PasswordHash, PasswordVerifier, User, UserManager,
    ANONYMOUS_LOGINS,
};
use crate::address::ClientKey;
use crate::tls::TlsPolicy;

/// How long a verified password is remembered unless the config says otherwise.
pub const DEFAULT_CREDENTIAL_CACHE: Duration = Duration::from_secs(300);

/// Users from the config file, with argon2 password hashes.
pub struct ConfigUserManager {
    users: HashMap<String, (Arc<User>, PasswordHash)>,
    anonymous: Option<Arc<User>>,
    verifier: PasswordVerifier,
    cache: Option<CredentialCache>,
}

impl ConfigUserManager {
    /// Builds a manager from named users with their hashes and an optional anonymous user.
    pub fn new(named: Vec<(User, PasswordHash)>, anonymous: Option<User>) -> Self {
        let users = named
            .into_iter()
            .filter_map(|(user, hash)| Some((user.login.clone()?, (Arc::new(user), hash))))
            .collect::<HashMap<_, _>>();
        let verifier = PasswordVerifier::new(users.values().map(|(_, hash)| hash));
        ConfigUserManager {
            users,
            anonymous: anonymous.map(Arc::new),
            verifier,
            cache: Some(CredentialCache::new(DEFAULT_CREDENTIAL_CACHE)),
        }
    }

    /// Keeps verified passwords for `ttl` (`None`: every login runs argon2).
    pub fn with_credential_cache(mut self, ttl: Option<Duration>) -> Self {
        self.cache = ttl.map(CredentialCache::new);
        self
    }

    /// Whether `login` is one of these users (a named one, or the anonymous
    /// user's): a manager consulted after this one must not answer for it.
    pub fn answers_for(&self, login: &str) -> bool {
        self.users.contains_key(login) || self.anonymous_for(login).is_some()
    }

    /// The verifier of these users' passwords, for a manager that checks
    /// others beside them: one verifier keeps one bound on argon2 at once.
    pub fn verifier(&self) -> &PasswordVerifier {
        &self.verifier
    }

    fn anonymous_for(&self, login: &str) -> Option<&Arc<User>> {
        // A configured login named `ftp` or `anonymous` takes precedence over the anonymous user.
        if self.users.contains_key(login) {
            return None;
        }
        let is_anonymous = ANONYMOUS_LOGINS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(login));
        self.anonymous.as_ref().filter(|_| is_anonymous)
    }
}

#[async_trait]
impl UserManager for ConfigUserManager {
    async fn get_user(&self, login: &str) -> LoginKind {
        if self.anonymous_for(login).is_some() {
            LoginKind::Anonymous
        } else {
            LoginKind::PasswordRequired
        }
    }

    async fn authenticate(
        &self,
        login: &str,
        password: &Password,
        from: IpAddr,
    ) -> Option<Arc<User>> {
        if let Some(user) = self.anonymous_for(login) {
            return Some(user.clone());
        }
        let entry = self.users.get(login);
        if let (Some((user, hash)), Some(cache)) = (entry, &self.cache) {
            if cache.hit(login, hash, password) {
                return Some(user.clone());
            }
        }
        let ok = self
            .verifier
            .verify(entry.map(|(_, hash)| hash), password, ClientKey::of(from))
            .await;
        let entry = entry.filter(|_| ok)?;
        if let Some(cache) = &self.cache {
            cache.remember(login, &entry.1, password);
        }
        Some(entry.0.clone())
    }

    async fn notify_logout(&self, _user: &User) {}

    async fn presence(&self, login: &str) -> LoginPresence {
        if self.answers_for(login) {
            LoginPresence::Known
        } else {
            LoginPresence::Unknown
        }
    }

    async fn refresh(&self, user: &Arc<User>) -> Option<Arc<User>> {
        match &user.login {
            Some(login) => self.users.get(login).map(|(user, _)| user.clone()),
            None => self.anonymous.clone(),
        }
    }

    async fn tls_policy(&self, login: &str) -> Option<TlsPolicy> {
        let user = self
            .anonymous_for(login)
            .or_else(|| self.users.get(login).map(|(user, _)| user));
        user.and_then(|user| user.tls_required)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_password;
    use crate::path::VirtualPath;
    use crate::storage::MemoryStorage;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn user(login: Option<&str>) -> User {
        User {
            login: login.map(str::to_owned),
            home: VirtualPath::root(),
            permissions: Vec::new(),
            storage: Arc::new(MemoryStorage::new()),
            tls_required: None,
            max_connections: None,
            limits: crate::auth::UserLimits::default(),
            quota: None,
        }
    }

    fn manager(with_anonymous: bool) -> ConfigUserManager {
        let hash = PasswordHash::parse(&hash_password("pw").unwrap()).unwrap();
        ConfigUserManager::new(
            vec![(user(Some("alice")), hash)],
            with_anonymous.then(|| user(None)),
        )
    }

    #[tokio::test]
    async fn unknown_logins_are_refused_not_mapped_to_anonymous() {
        let m = manager(true);
        assert_eq!(m.get_user("mallory").await, LoginKind::PasswordRequired);
        assert!(m
            .authenticate("mallory", &Password::new("x"), LOCAL)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn anonymous_and_ftp_reach_the_anonymous_user_with_any_password() {
        let m = manager(true);
        assert_eq!(m.get_user("anonymous").await, LoginKind::Anonymous);
        assert!(m
            .authenticate("FTP", &Password::new("me@example.com"), LOCAL)
            .await
            .is_some());
        let without = manager(false);
        assert_eq!(
            without.get_user("anonymous").await,
            LoginKind::PasswordRequired
        );
        assert!(without
            .authenticate("anonymous", &Password::new(""), LOCAL)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn a_cached_login_still_refuses_a_wrong_password() {
        for cache in [Some(Duration::from_secs(60)), None] {
            let m = manager(false).with_credential_cache(cache);
            assert!(m
                .authenticate("alice", &Password::new("pw"), LOCAL)
                .await
                .is_some());
            assert!(m
                .authenticate("alice", &Password::new("pw"), LOCAL)
                .await
                .is_some());
            assert!(m
                .authenticate("alice", &Password::new("pw2"), LOCAL)
                .await
                .is_none());
            assert!(m
                .authenticate("mallory", &Password::new("pw"), LOCAL)
                .await
                .is_none());
        }
    }

    #[tokio::test]
    async fn named_users_need_their_password() {
        let m = manager(false);
        assert!(m
            .authenticate("alice", &Password::new("pw"), LOCAL)
            .await
            .is_some());
        assert!(m
            .authenticate("alice", &Password::new("nope"), LOCAL)
            .await
            .is_none());
    }

    /// 64 logins of one user at once, from 64 addresses, with the right
    /// password and then with a wrong one: each burst is one argon2
    /// verification, however the logins interleave, with or without the
    /// credential cache.
    #[tokio::test]
    async fn a_burst_of_logins_of_one_user_runs_one_verification() {
        for cache in [Some(Duration::from_secs(60)), None] {
            let m = manager(false).with_credential_cache(cache);
            for (password, expected) in [("pw", true), ("wrong", false)] {
                let before = m.verifier.verifications();
                let logins = (0..64u8).map(|n| {
                    let from = IpAddr::from([192, 0, 2, n]);
                    let password = Password::new(password);
                    let m = &m;
                    async move { m.authenticate("alice", &password, from).await.is_some() }
                });
                let results = futures::future::join_all(logins).await;
                assert!(results.iter().all(|&ok| ok == expected), "{password}");
                assert_eq!(
                    m.verifier.verifications() - before,
                    1,
                    "{password}, {cache:?}"
                );
            }
        }
    }
}
