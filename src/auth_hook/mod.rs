//! The external authentication hook: the `UserManager` the daemon runs
//! with when `[auth_hook]` is set (docs/users.md, "External authentication
//! hook").
//!
//! It wraps the manager of `[[users]]` (and the users database, if any):
//! a login that one has, disabled or not, is its alone and never reaches
//! the hook; one it cannot tell about now (the database is down) gets what
//! it gets there (421). Any other login is posted to the hook with its
//! password and client address, and the hook's `user` object is checked
//! as a `[[users]]` entry (`config::AccountRules::answered_account`): the
//! same messages, the same defaults. A no, and every failure (a timeout,
//! an error, an answer that is not well formed or not a valid account),
//! is a refusal: 530, the failure delay and the budgets as for any wrong
//! password. Each failure is logged naming the login and, for a bad
//! answer, the field; never the password.
//!
//! An accepted answer is reused for `cache_lifetime` for the same login
//! and password (`accepted.rs`); a no never is.

mod accepted;
mod answer;
mod client;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;

use crate::auth::{LoginCheck, LoginKind, LoginPresence, Password, User, UserManager};
use crate::config::{storage_keys, AccountRules, AuthHook, FieldProblem};
use crate::tls::TlsPolicy;
use accepted::{Accepted, CAPACITY};
use answer::Answer;
use client::{Failure, HookClient};

pub use client::{MAX_BODY, MAX_REQUESTS};

/// The accounts the hook has given to sessions still running, kept across
/// reloads (each builds a new manager): a reload keeps them logged in with
/// what the hook answered, since it cannot be asked again without the
/// password, while a login no longer in `[[users]]` is still logged out.
#[derive(Default)]
pub struct IssuedAccounts {
    by_login: Mutex<HashMap<String, Vec<Weak<User>>>>,
}

impl IssuedAccounts {
    /// An empty record, for the daemon's lifetime.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn record(&self, login: &str, user: &Arc<User>) {
        let mut by_login = self.by_login.lock().unwrap_or_else(PoisonError::into_inner);
        // Accounts whose sessions all ended go as new ones come.
        by_login.retain(|_, users| {
            users.retain(|user| user.strong_count() > 0);
            !users.is_empty()
        });
        by_login
            .entry(login.to_owned())
            .or_default()
            .push(Arc::downgrade(user));
    }

    fn issued(&self, login: &str, user: &Arc<User>) -> bool {
        let by_login = self.by_login.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = Arc::downgrade(user);
        by_login
            .get(login)
            .is_some_and(|users| users.iter().any(|issued| issued.ptr_eq(&mine)))
    }
}

/// `[[users]]` and the users database first, then the hook.
pub struct HookUserManager {
    inner: Arc<dyn UserManager>,
    client: HookClient,
    rules: AccountRules,
    accepted: Accepted,
    issued: Arc<IssuedAccounts>,
}

impl HookUserManager {
    /// The logins `inner` has, then `hook` for the rest; the accounts it
    /// gives are recorded in `issued`. Fails only when the HTTP client
    /// cannot be made (no TLS roots).
    pub fn new(
        inner: Arc<dyn UserManager>,
        hook: &AuthHook,
        issued: Arc<IssuedAccounts>,
    ) -> Result<Self, String> {
        Ok(HookUserManager {
            inner,
            client: HookClient::new(hook)?,
            rules: hook.accounts.clone(),
            accepted: Accepted::new(hook.cache_lifetime, CAPACITY),
            issued,
        })
    }

    /// Asks the hook about a login no other manager has.
    async fn ask(&self, login: &str, password: &Password, from: IpAddr) -> LoginCheck {
        if let Some(user) = self.accepted.hit(login, password) {
            return LoginCheck::Accepted(user);
        }
        let answer = self.client.ask(login, password, from).await;
        let user = match answer {
            Ok(Answer::Allow(user)) => user,
            Ok(Answer::Refuse) => {
                count("refused");
                tracing::info!(user = login, "auth hook: login refused by the hook");
                return LoginCheck::Refused;
            }
            Err(Failure::Bad(bad)) => {
                count("failed");
                tracing::error!(
                    user = login,
                    field = bad.field,
                    problem = bad.message,
                    "auth hook: malformed answer, the login is refused"
                );
                return LoginCheck::Refused;
            }
            Err(failure) => {
                count("failed");
                tracing::error!(user = login, error = %failure, "auth hook: no usable answer, the login is refused");
                return LoginCheck::Refused;
            }
        };
        match self.account(login, &user).await {
            Ok(account) => {
                count("allowed");
                let account = Arc::new(account);
                self.issued.record(login, &account);
                self.accepted
                    .remember(login, password, account.clone(), storage_keys(&user));
                LoginCheck::Accepted(account)
            }
            Err(problems) => {
                count("failed");
                for problem in &problems {
                    tracing::error!(
                        user = login,
                        field = problem.field,
                        problem = problem.message,
                        "auth hook: invalid value in the hook's answer, the login is refused"
                    );
                }
                LoginCheck::Refused
            }
        }
    }

    /// The answer's `user` checked and its storage opened (off the async
    /// workers), reusing the storage of the login's last account if the
    /// storage keys are the same.
    async fn account(
        &self,
        login: &str,
        user: &serde_json::Value,
    ) -> Result<User, Vec<FieldProblem>> {
        let last = self.accepted.account_for(login, &storage_keys(user));
        let reuse = last.as_ref().map(|last| last.storage.clone());
        let rules = self.rules.clone();
        let (login_owned, user) = (login.to_owned(), user.clone());
        let mut account =
            tokio::task::spawn_blocking(move || rules.answered_account(&login_owned, &user, reuse))
                .await
                .unwrap_or_else(|err| {
                    Err(vec![FieldProblem {
                        field: "user".to_owned(),
                        message: format!("could not be checked: {err}"),
                    }])
                })?;
        // The same tree keeps the same count: every session of the login
        // reserves from one ledger.
        let ledger = last.and_then(|last| last.quota.as_ref().map(|q| q.ledger()));
        if let (Some(quota), Some(ledger)) = (&account.quota, ledger) {
            account.quota = Some(Arc::new(quota.with_ledger(ledger)));
        }
        Ok(account)
    }
}

fn count(result: &str) {
    crate::metrics::get()
        .auth_hook_answers
        .with_label_values(&[result])
        .inc();
}

#[async_trait]
impl UserManager for HookUserManager {
    async fn get_user(&self, login: &str) -> LoginKind {
        // The hook's logins all need a password, as an unknown one seems to.
        self.inner.get_user(login).await
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
        match self.inner.presence(login).await {
            LoginPresence::Known => self.inner.check_password(login, password, from).await,
            // It may be the database's: never the hook's to decide. The
            // inner manager logged why it cannot tell.
            LoginPresence::Unreachable => LoginCheck::Unavailable,
            LoginPresence::Unknown => self.ask(login, password, from).await,
        }
    }

    async fn notify_logout(&self, user: &User) {
        self.inner.notify_logout(user).await;
    }

    async fn presence(&self, login: &str) -> LoginPresence {
        self.inner.presence(login).await
    }

    async fn tls_policy(&self, login: &str) -> Option<TlsPolicy> {
        // Before the password the hook is not asked, so a login of its
        // gets the server's policy here; PASS applies its answer's.
        match self.inner.presence(login).await {
            LoginPresence::Known => self.inner.tls_policy(login).await,
            LoginPresence::Unknown | LoginPresence::Unreachable => None,
        }
    }

    async fn refresh(&self, user: &Arc<User>) -> Option<Arc<User>> {
        if let Some(login) = user.login.as_deref() {
            if self.issued.issued(login, user)
                && self.inner.presence(login).await != LoginPresence::Known
            {
                return Some(user.clone());
            }
        }
        self.inner.refresh(user).await
    }
}

#[cfg(test)]
mod tests;
