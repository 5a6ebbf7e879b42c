//! Users from the users database beside the config's: the `UserManager`
//! the daemon runs with when `[users_database]` is set (docs/users.md).
//!
//! `[[users]]` answers first: a login it has, and the anonymous user's
//! names when it has one, never reach the database. Any other login is
//! looked up, its row checked as a `[[users]]` entry would be
//! (`config::AccountRules`), and the account kept for `cache_lifetime`, so
//! a change (a new user, a disabled one, a new password) takes effect
//! within that time without a reload. Unknown logins are never kept.
//!
//! Every way a login can fail costs one argon2 check, against the decoy
//! when there is no usable hash, as `ConfigUserManager` does; the one
//! verifier both use bounds how many run at once. A database that cannot
//! answer within its timeout makes a login [`LoginCheck::Unavailable`]
//! (421), never a login without a password check.

mod cache;
mod ledger;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::address::ClientKey;
use crate::auth::{
    ConfigUserManager, CredentialCache, LoginCheck, LoginKind, LoginPresence, Password,
    PasswordHash, PasswordVerifier, User, UserManager,
};
use crate::config::{AccountRules, FieldProblem, UsersDatabase};
use crate::storage::Storage;
use crate::tls::TlsPolicy;
use crate::user_store::{StoreError, UserRecord, UserStore};
use cache::{AccountCache, CAPACITY};
use ledger::DatabaseLedger;

/// A row of the users database, as what it lets a login do.
struct Looked {
    disabled: bool,
    /// `None` when the row's hash is unusable (already logged).
    hash: Option<PasswordHash>,
    /// The account, or the row's first problem (all of them logged).
    account: Result<Arc<User>, FieldProblem>,
    /// The row's `storage` and `storage_settings`, to tell whether a new
    /// look at the row may keep the storage opened for this one.
    storage_fields: (String, String),
}

impl Looked {
    fn tls_required(&self) -> Option<TlsPolicy> {
        self.account
            .as_ref()
            .ok()
            .and_then(|user| user.tls_required)
    }
}

/// `[[users]]` first, then the users database.
pub struct DatabaseUserManager {
    config: ConfigUserManager,
    store: Arc<UserStore>,
    rules: AccountRules,
    cache: AccountCache<Looked>,
    verifier: PasswordVerifier,
    credentials: Option<CredentialCache>,
}

impl DatabaseUserManager {
    /// The config's users, then `store`'s rows under `database`'s rules;
    /// verified passwords are remembered for `credential_cache` (`None`:
    /// every login runs argon2), as `[login] credential_cache` says.
    pub fn new(
        config: ConfigUserManager,
        store: Arc<UserStore>,
        database: &UsersDatabase,
        credential_cache: Option<Duration>,
    ) -> Self {
        DatabaseUserManager {
            verifier: config.verifier().clone(),
            config,
            store,
            rules: database.accounts.clone(),
            cache: AccountCache::new(database.cache_lifetime, CAPACITY),
            credentials: credential_cache.map(CredentialCache::new),
        }
    }

    /// The store this manager reads.
    pub fn store(&self) -> &Arc<UserStore> {
        &self.store
    }

    /// The row of `login` as an account: from the cache while fresh, else
    /// from the database. `Ok(None)`: the database has no such login.
    async fn lookup(&self, login: &str) -> Result<Option<Arc<Looked>>, StoreError> {
        if let Some(looked) = self.cache.fresh(login) {
            return Ok(Some(looked));
        }
        let found = self.store.find(login).await.inspect_err(|err| {
            tracing::error!(user = login, %err, "users database: cannot look the login up");
        })?;
        let Some(record) = found else {
            self.cache.forget(login);
            return Ok(None);
        };
        let looked = Arc::new(self.look(record).await);
        self.cache.insert(login, looked.clone());
        Ok(Some(looked))
    }

    /// Checks `record` and opens its storage (off the async workers),
    /// keeping the storage of the last look at the row if its storage
    /// fields are the same. Every problem is logged, naming user and field.
    async fn look(&self, record: UserRecord) -> Looked {
        let storage_fields = (record.storage.clone(), record.storage_settings.clone());
        let reuse: Option<Arc<dyn Storage>> = self
            .cache
            .last(&record.login)
            .filter(|last| last.storage_fields == storage_fields)
            .and_then(|last| last.account.as_ref().ok().map(|user| user.storage.clone()));
        let rules = self.rules.clone();
        let login = record.login.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let checked = rules.account(&record, reuse);
            (record, checked)
        })
        .await;
        let (record, checked) = match checked {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(user = login, %err, "users database: checking the row failed");
                return Looked {
                    disabled: true,
                    hash: None,
                    account: Err(FieldProblem {
                        field: String::new(),
                        message: "could not be checked".to_owned(),
                    }),
                    storage_fields,
                };
            }
        };
        let store = self.store.clone();
        let scope = record.usage_scope();
        let account = checked.map(|(mut user, _)| {
            // The row's usage is the database's, shared by every instance.
            user.quota = user.quota.map(|quota| {
                Arc::new(quota.with_ledger(Arc::new(DatabaseLedger {
                    store,
                    login: login.clone(),
                    scope,
                })))
            });
            Arc::new(user)
        });
        let account = account.map_err(|problems| {
            for problem in &problems {
                tracing::error!(
                    user = login,
                    field = problem.field,
                    problem = problem.message,
                    "users database: invalid value in this user's row, its logins are refused"
                );
            }
            problems.into_iter().next().unwrap_or_else(|| FieldProblem {
                field: String::new(),
                message: "invalid".to_owned(),
            })
        });
        Looked {
            disabled: record.disabled,
            hash: PasswordHash::parse(&record.password_hash).ok(),
            account,
            storage_fields,
        }
    }

    /// One argon2 check that fails, as an unknown login's does.
    async fn decoy(&self, password: &Password, client: ClientKey) {
        self.verifier.verify(None, password, client).await;
    }
}

#[async_trait]
impl UserManager for DatabaseUserManager {
    async fn get_user(&self, login: &str) -> LoginKind {
        // Only the config has an anonymous user; every database login needs
        // a password, as an unknown one seems to.
        self.config.get_user(login).await
    }

    async fn authenticate(
        &self,
        login: &str,
        password: &Password,
        from: IpAddr,
    ) -> Option<Arc<User>> {
        match self.check_password(login, password, from).await {
            LoginCheck::Accepted(user) => Some(user),
            LoginCheck::Refused | LoginCheck::Unavailable => None,
        }
    }

    async fn check_password(&self, login: &str, password: &Password, from: IpAddr) -> LoginCheck {
        if self.config.answers_for(login) {
            return self.config.check_password(login, password, from).await;
        }
        let client = ClientKey::of(from);
        let looked = match self.lookup(login).await {
            Ok(looked) => looked,
            Err(_) => return LoginCheck::Unavailable,
        };
        let (looked, hash) = match looked.as_deref() {
            Some(
                looked @ Looked {
                    disabled: false,
                    hash: Some(hash),
                    ..
                },
            ) => (looked, hash),
            // Unknown, disabled, or no usable hash: all cost the same.
            other => {
                if other.is_some_and(|looked| looked.disabled) {
                    tracing::info!(user = login, "login refused: the account is disabled");
                }
                self.decoy(password, client).await;
                return LoginCheck::Refused;
            }
        };
        let remembered = self
            .credentials
            .as_ref()
            .is_some_and(|cache| cache.hit(login, hash, password));
        if !remembered && !self.verifier.verify(Some(hash), password, client).await {
            return LoginCheck::Refused;
        }
        match &looked.account {
            Ok(user) => {
                if let Some(cache) = &self.credentials {
                    cache.remember(login, hash, password);
                }
                LoginCheck::Accepted(user.clone())
            }
            Err(problem) => {
                // The password was right: only its owner learns of this.
                tracing::error!(
                    user = login,
                    field = problem.field,
                    "login refused: the password is right but this user's row is invalid (see the error logged when it was read)"
                );
                LoginCheck::Unavailable
            }
        }
    }

    async fn notify_logout(&self, _user: &User) {}

    async fn presence(&self, login: &str) -> LoginPresence {
        if self.config.answers_for(login) {
            return LoginPresence::Known;
        }
        // A disabled or broken row is known too: its login is the
        // database's, refused there, never decided elsewhere.
        match self.lookup(login).await {
            Ok(Some(_)) => LoginPresence::Known,
            Ok(None) => LoginPresence::Unknown,
            Err(_) => LoginPresence::Unreachable,
        }
    }

    async fn tls_policy(&self, login: &str) -> Option<TlsPolicy> {
        if self.config.answers_for(login) {
            return self.config.tls_policy(login).await;
        }
        // A database that cannot answer leaves the server's policy; PASS
        // asks the account found again.
        let looked = self.lookup(login).await.ok()??;
        (!looked.disabled).then(|| looked.tls_required()).flatten()
    }

    async fn refresh(&self, user: &Arc<User>) -> Option<Arc<User>> {
        let Some(login) = user.login.as_deref() else {
            return self.config.refresh(user).await;
        };
        if self.config.answers_for(login) {
            return self.config.refresh(user).await;
        }
        match self.lookup(login).await {
            Ok(Some(looked)) if !looked.disabled => match &looked.account {
                Ok(current) => Some(current.clone()),
                // Broken since: the session keeps what it logged in with.
                Err(_) => Some(user.clone()),
            },
            Ok(_) => None,
            // The database is out of reach: nobody is logged out for that.
            Err(_) => Some(user.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
