//! USER, PASS, REIN: logging in and out.

use super::super::{Action, Handled, LoginState, Reply, Session, State};
use crate::auth::{LoginKind, Password};

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
        Ok(Reply::new(331, text).into())
    }

    pub(in crate::session) async fn pass(&mut self, password: String) -> Handled {
        let LoginState::NeedPassword { login } =
            std::mem::replace(&mut self.state.login, LoginState::NeedUser)
        else {
            return match self.state.login {
                LoginState::LoggedIn(_) => Err(Reply::new(503, "Already logged in")),
                _ => Err(Reply::new(503, "Send USER first")),
            };
        };
        let password = Password::new(password);
        match self.context.users.authenticate(&login, &password).await {
            Some(user) => {
                tracing::info!(peer = %self.peer, user = user.display_name(), tls = self.tls.is_some(), "login ok");
                if let Some(tls) = &self.tls {
                    self.context.tls_sessions.register(
                        user.display_name(),
                        self.peer.ip(),
                        &tls.store,
                    );
                }
                self.state.cwd = user.home.clone();
                self.state.login = LoginState::LoggedIn(user);
                Ok(Reply::new(230, "Login successful").into())
            }
            None => {
                tracing::warn!(peer = %self.peer, login = %login.escape_debug(), "login failed");
                Err(Reply::new(530, "Login incorrect"))
            }
        }
    }

    pub(in crate::session) async fn rein(&mut self) -> Handled {
        self.logout().await;
        self.state = State::new();
        Ok(Action::Reply(Reply::new(220, "Ready for a new user")))
    }

    async fn logout(&mut self) {
        if let LoginState::LoggedIn(user) =
            std::mem::replace(&mut self.state.login, LoginState::NeedUser)
        {
            self.context.users.notify_logout(&user).await;
        }
    }
}
