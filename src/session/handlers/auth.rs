//! USER, PASS, REIN: logging in and out.

use std::sync::Arc;

use super::super::state::{Account, Connection, LoginState, State};
use super::super::{Action, Handled};
use super::tls::check_login_protected;
use super::{Cx, Witness};
use crate::auth::{LoginCheck, LoginKind, Password, User};
use crate::context::ServerContext;
use crate::deadline;
use crate::hooks::EventKind;
use crate::limits::LoginAttempt;
use crate::reply::{Code, Reply};
use crate::tls::resumption::Holder;

/// `user` as the resumption rules see it: the anonymous user is nobody's sibling.
pub(in crate::session) fn holder(user: &User) -> Holder {
    match &user.login {
        Some(login) => Holder::Named(Arc::from(login.as_str())),
        None => Holder::Anonymous,
    }
}

pub(in crate::session) async fn user(cx: Cx<'_>, login: String) -> Handled {
    let user_override = cx.server.users.tls_policy(&login).await;
    check_login_protected(cx.server, cx.conn, user_override)?;
    logout(cx.server, cx.conn, cx.state).await;
    let kind = cx.server.users.get_user(&login).await;
    let text = match kind {
        LoginKind::Anonymous => "Anonymous login ok, send your e-mail address as password",
        LoginKind::PasswordRequired => "Password required",
    };
    cx.state.login = LoginState::NeedPassword { login };
    Ok(Reply::new(Code::NeedPassword, text).into())
}

pub(in crate::session) async fn pass(cx: Cx<'_>, password: String) -> Handled {
    let LoginState::NeedPassword { login } =
        std::mem::replace(&mut cx.state.login, LoginState::NeedUser)
    else {
        return match cx.state.login {
            LoginState::LoggedIn(_) => Err(Reply::new(Code::BadSequence, "Already logged in")),
            _ => Err(Reply::new(Code::BadSequence, "Send USER first")),
        };
    };
    let password = Password::new(password);
    let peer = cx.conn.peer;
    // The address's budget holds on every connection, not only at connect.
    let attempt = match cx.server.login_failures.begin(peer.ip(), &login, &password) {
        Ok(attempt) => attempt,
        Err(refused) => {
            crate::metrics::get()
                .logins
                .with_label_values(&["blocked"])
                .inc();
            tracing::warn!(%peer, ?refused, "login not checked: address over its failure budget");
            return Ok(Action::Close(Reply::new(
                Code::ServiceUnavailable,
                "Too many failed logins from your address, try again later",
            )));
        }
    };
    let asked = tokio::time::Instant::now();
    let user = match cx
        .server
        .users
        .check_password(&login, &password, peer.ip())
        .await
    {
        LoginCheck::Accepted(user) => user,
        LoginCheck::Refused => {
            return login_failed(cx.server, cx.conn, &login, attempt, asked).await
        }
        LoginCheck::Unavailable => {
            // Not a failed guess: nothing was judged, so neither the
            // budgets nor fail2ban hear of it. The manager logged why.
            attempt.not_checked();
            crate::metrics::get()
                .logins
                .with_label_values(&["unavailable"])
                .inc();
            tracing::warn!(address = %peer.ip(), login, "login not checked: the user manager cannot check it now");
            return Ok(Action::Close(Reply::new(
                Code::ServiceUnavailable,
                "Cannot check logins now, try again later",
            )));
        }
    };
    attempt.succeeded();
    // Asked at USER too; asked again for the account found, in case the
    // policy there was not known then (a users database that did not answer).
    if let Err(refused) = check_login_protected(cx.server, cx.conn, user.tls_required) {
        tracing::warn!(%peer, user = user.display_name(), "login refused: the account requires TLS");
        return Err(refused);
    }
    crate::metrics::get()
        .logins
        .with_label_values(&["ok"])
        .inc();
    let Some(slot) = cx.server.user_slots.claim(&user) else {
        tracing::warn!(%peer, user = user.display_name(), "login refused: user at max_connections");
        return Err(Reply::new(
            Code::NotLoggedIn,
            "Too many sessions for this user, try again later",
        ));
    };
    tracing::info!(address = %peer.ip(), user = user.display_name(), tls = cx.conn.tls.is_some(), "login ok");
    cx.witness()
        .saw(EventKind::Login, user.login.as_deref(), |e| e);
    cx.conn.record_holder(holder(&user));
    cx.state.cwd = user.home.clone();
    cx.state.login = LoginState::LoggedIn(Account::new(user, slot, cx.server));
    Ok(Reply::new(Code::LoggedIn, "Login successful").into())
}

/// A failed `PASS` (asked at `asked`): logged for fail2ban, counted
/// against the connection and the address, answered no sooner than the
/// failure delay after it was asked, however long the check took.
async fn login_failed(
    server: &ServerContext,
    conn: &mut Connection,
    login: &str,
    attempt: LoginAttempt,
    asked: tokio::time::Instant,
) -> Handled {
    let ip = conn.peer.ip().to_canonical();
    // One line per failure, for packaging/fail2ban/aioftpd.conf: the
    // address first, the client-chosen login last, a string field that
    // the text format quotes and escapes and JSON encodes.
    tracing::warn!(
        address = %ip,
        login,
        "login failed [aioftpd-auth-failure]"
    );
    crate::metrics::get()
        .logins
        .with_label_values(&["failed"])
        .inc();
    Witness::new(server, conn).saw(EventKind::LoginFailed, Some(login), |e| e);
    let blocked = attempt.failed();
    conn.failed_logins += 1;
    let protection = &server.settings.login;
    tokio::time::sleep_until(deadline::after(asked, protection.failure_delay)).await;
    if blocked {
        tracing::warn!("address {ip} blocked after too many failed logins");
        return Ok(Action::Close(Reply::new(
            Code::ServiceUnavailable,
            "Too many failed logins from your address, try again later",
        )));
    }
    if conn.failed_logins >= protection.max_failures_per_connection {
        return Ok(Action::Close(Reply::new(
            Code::ServiceUnavailable,
            "Too many failed logins, closing connection",
        )));
    }
    Err(Reply::new(Code::NotLoggedIn, "Login incorrect"))
}

pub(in crate::session) async fn rein(cx: Cx<'_>) -> Handled {
    logout(cx.server, cx.conn, cx.state).await;
    *cx.state = State::new();
    Ok(Action::Reply(Reply::new(
        Code::Ready,
        "Ready for a new user",
    )))
}

/// Ends the login, if any, as USER and REIN do: this connection's TLS
/// sessions belong to nobody from now on.
async fn logout(server: &ServerContext, conn: &Connection, state: &mut State) {
    conn.record_holder(Holder::Nobody);
    end_login(server, state).await;
}

/// Ends the login, if any: its slot and buckets go back as the account is
/// dropped, and the user manager hears of it. When the connection closes,
/// its TLS sessions keep their holder: a data connection of a sibling may
/// still resume them (the sibling rule, docs/tls.md).
pub(in crate::session) async fn end_login(server: &ServerContext, state: &mut State) {
    if let LoginState::LoggedIn(account) = std::mem::replace(&mut state.login, LoginState::NeedUser)
    {
        let user = account.user.clone();
        drop(account);
        tracing::info!(user = user.display_name(), "logout");
        server.users.notify_logout(&user).await;
    }
}
