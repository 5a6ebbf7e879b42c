//! USER, PASS, REIN: logging in and out.

use std::sync::Arc;

use super::super::{Action, Handled, LoginState, Reply, Session, State};
use crate::auth::{LoginKind, Password, User};
use crate::deadline;
use crate::limits::LoginAttempt;
use crate::reply::Code;
use crate::throttle::{Bucket, Rate};
use crate::tls::resumption::Holder;

/// `user` as the resumption rules see it: the anonymous user is nobody's sibling.
pub(in crate::session) fn holder(user: &User) -> Holder {
    match &user.login {
        Some(login) => Holder::Named(Arc::from(login.as_str())),
        None => Holder::Anonymous,
    }
}

impl Session {
    pub(in crate::session) async fn user(&mut self, login: String) -> Handled {
        self.check_login_protected(&login).await?;
        self.logout().await;
        let kind = self.context.users.get_user(&login).await;
        let text = match kind {
            LoginKind::Anonymous => "Anonymous login ok, send your e-mail address as password",
            LoginKind::PasswordRequired => "Password required",
        };
        self.state.login = LoginState::NeedPassword { login };
        Ok(Reply::new(Code::NeedPassword, text).into())
    }

    pub(in crate::session) async fn pass(&mut self, password: String) -> Handled {
        let LoginState::NeedPassword { login } =
            std::mem::replace(&mut self.state.login, LoginState::NeedUser)
        else {
            return match self.state.login {
                LoginState::LoggedIn(_) => Err(Reply::new(Code::BadSequence, "Already logged in")),
                _ => Err(Reply::new(Code::BadSequence, "Send USER first")),
            };
        };
        let password = Password::new(password);
        // The address's budget holds on every connection, not only at connect.
        let attempt = match self.context.login_failures.begin(self.peer.ip()) {
            Ok(attempt) => attempt,
            Err(refused) => {
                tracing::warn!(peer = %self.peer, ?refused, "login not checked: address over its failure budget");
                return Ok(Action::Close(Reply::new(
                    Code::ServiceUnavailable,
                    "Too many failed logins from your address, try again later",
                )));
            }
        };
        let asked = tokio::time::Instant::now();
        match self
            .context
            .users
            .authenticate(&login, &password, self.peer.ip())
            .await
        {
            Some(user) => {
                attempt.succeeded();
                let Some(slot) = self.context.user_slots.claim(&user) else {
                    tracing::warn!(peer = %self.peer, user = user.display_name(), "login refused: user at max_connections");
                    return Err(Reply::new(
                        Code::NotLoggedIn,
                        "Too many sessions for this user, try again later",
                    ));
                };
                tracing::info!(address = %self.peer.ip(), user = user.display_name(), tls = self.tls.is_some(), "login ok");
                let limits = &self.context.settings.limits;
                let per_connection = |server: Option<Rate>, user: Option<Rate>| {
                    server.into_iter().chain(user).min().map(Bucket::new)
                };
                self.connection_buckets = (
                    per_connection(
                        limits.download_per_connection,
                        user.limits.download_per_connection,
                    ),
                    per_connection(
                        limits.upload_per_connection,
                        user.limits.upload_per_connection,
                    ),
                );
                self.user_slot = Some(slot);
                self.record_holder(holder(&user));
                self.state.cwd = user.home.clone();
                self.state.login = LoginState::LoggedIn(user);
                Ok(Reply::new(Code::LoggedIn, "Login successful").into())
            }
            None => self.login_failed(&login, attempt, asked).await,
        }
    }

    /// A failed `PASS` (asked at `asked`): logged for fail2ban, counted
    /// against the connection and the address, answered no sooner than the
    /// failure delay after it was asked, however long the check took.
    async fn login_failed(
        &mut self,
        login: &str,
        attempt: LoginAttempt,
        asked: tokio::time::Instant,
    ) -> Handled {
        let ip = self.peer.ip().to_canonical();
        // One line per failure, for packaging/fail2ban/aioftpd.conf: the
        // address first, the client-chosen login last, a string field that
        // the text format quotes and escapes and JSON encodes.
        tracing::warn!(
            address = %ip,
            login,
            "login failed [aioftpd-auth-failure]"
        );
        let blocked = attempt.failed();
        self.failed_logins += 1;
        let protection = &self.context.settings.login;
        tokio::time::sleep_until(deadline::after(asked, protection.failure_delay)).await;
        if blocked {
            tracing::warn!("address {ip} blocked after too many failed logins");
            return Ok(Action::Close(Reply::new(
                Code::ServiceUnavailable,
                "Too many failed logins from your address, try again later",
            )));
        }
        if self.failed_logins >= protection.max_failures_per_connection {
            return Ok(Action::Close(Reply::new(
                Code::ServiceUnavailable,
                "Too many failed logins, closing connection",
            )));
        }
        Err(Reply::new(Code::NotLoggedIn, "Login incorrect"))
    }

    pub(in crate::session) async fn rein(&mut self) -> Handled {
        self.logout().await;
        self.state = State::new();
        Ok(Action::Reply(Reply::new(
            Code::Ready,
            "Ready for a new user",
        )))
    }

    async fn logout(&mut self) {
        self.user_slot = None;
        self.connection_buckets = (None, None);
        self.record_holder(Holder::Nobody);
        if let LoginState::LoggedIn(user) =
            std::mem::replace(&mut self.state.login, LoginState::NeedUser)
        {
            tracing::info!(user = user.display_name(), "logout");
            self.context.users.notify_logout(&user).await;
        }
    }
}
