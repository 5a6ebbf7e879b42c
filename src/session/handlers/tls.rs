//! AUTH, PBSZ, PROT, CCC: FTPS (RFC 2228, RFC 4217), and the TLS policy checks
//! other handlers ask for.

use super::super::state::Connection;
use super::super::{Action, Handled};
use super::Cx;
use crate::context::ServerContext;
use crate::data::DataProtection;
use crate::reply::{Code, Reply};
use crate::tls::TlsPolicy;

pub(in crate::session) fn auth(cx: &Cx<'_>, mechanism: &str) -> Handled {
    if cx.server.settings.tls.is_none() {
        return Err(Reply::new(
            Code::NotImplemented,
            "TLS is not configured on this server",
        ));
    }
    if !matches!(mechanism, "TLS" | "SSL" | "TLS-C" | "TLS-P") {
        return Err(Reply::new(
            Code::ParameterNotImplemented,
            "Unknown security mechanism; use AUTH TLS",
        ));
    }
    if cx.conn.tls.is_some() {
        return Err(Reply::new(
            Code::BadSequence,
            "The control connection is already protected",
        ));
    }
    if cx.pipelined {
        // The handshake must start right after our reply: commands sent
        // in clear behind AUTH would otherwise run as if they had come
        // under TLS (the STARTTLS injection, CVE-2011-0411).
        return Err(Reply::new(
            Code::BadSequence,
            "Wait for the reply to AUTH before sending more",
        ));
    }
    Ok(Action::StartTls(Reply::new(
        Code::SecurityAccepted,
        "AUTH TLS successful",
    )))
}

pub(in crate::session) fn pbsz(conn: &mut Connection, size: &str) -> Handled {
    let Some(tls) = &mut conn.tls else {
        return Err(Reply::new(Code::BadSequence, "PBSZ needs AUTH TLS first"));
    };
    if size.parse::<u64>().is_err() {
        return Err(Reply::new(Code::BadArguments, "PBSZ needs a number"));
    }
    tls.pbsz = true;
    // RFC 4217 §8: a TLS stream has no buffer size; always 0.
    Ok(Reply::new(Code::Ok, "PBSZ=0").into())
}

pub(in crate::session) fn prot(conn: &mut Connection, level: &str) -> Handled {
    let Some(tls) = &mut conn.tls else {
        return Err(Reply::new(Code::BadSequence, "PROT needs AUTH TLS first"));
    };
    if !tls.pbsz {
        return Err(Reply::new(Code::BadSequence, "PROT needs PBSZ first"));
    }
    match level {
        "P" => tls.protect_data = true,
        "C" => tls.protect_data = false,
        "S" | "E" => {
            return Err(Reply::new(
                Code::ProtectionNotSupported,
                "Only PROT P and PROT C are supported",
            ))
        }
        _ => {
            return Err(Reply::new(
                Code::ParameterNotImplemented,
                "Unknown protection level",
            ))
        }
    }
    Ok(Reply::new(Code::Ok, format!("Protection level set to {level}")).into())
}

pub(in crate::session) fn ccc(conn: &Connection) -> Handled {
    if conn.tls.is_none() {
        return Err(Reply::new(
            Code::ProtectionDenied,
            "The control connection is not protected",
        ));
    }
    Err(Reply::new(
        Code::PolicyDenied,
        "CCC refused: the control connection stays protected",
    ))
}

/// The policy in force: the user's override, else the server's; `None`
/// when TLS is not configured.
fn tls_policy(server: &ServerContext, user_override: Option<TlsPolicy>) -> Option<TlsPolicy> {
    let policy = server.settings.tls.as_ref()?.required;
    Some(user_override.unwrap_or(policy))
}

/// `USER` before `AUTH TLS` under `required = "login"` or `"data"`, the
/// server's or the login's own (`user_override`).
pub(in crate::session) fn check_login_protected(
    server: &ServerContext,
    conn: &Connection,
    user_override: Option<TlsPolicy>,
) -> Result<(), Reply> {
    if conn.tls.is_some() {
        return Ok(());
    }
    if tls_policy(server, user_override) >= Some(TlsPolicy::Login) {
        return Err(Reply::new(
            Code::NotLoggedIn,
            "This server requires TLS: send AUTH TLS before USER",
        ));
    }
    Ok(())
}

/// A transfer without `PROT P` under `required = "data"`.
pub(in crate::session) fn check_data_protected(cx: &Cx<'_>) -> Result<(), Reply> {
    let protected = cx.conn.tls.as_ref().is_some_and(|t| t.protect_data);
    let user_override = cx.state.user().and_then(|user| user.tls_required);
    if !protected && tls_policy(cx.server, user_override) == Some(TlsPolicy::Data) {
        // RFC 4217 §9
        return Err(Reply::new(
            Code::ProtectionRequired,
            "Data connections must be protected: send PBSZ 0 and PROT P",
        ));
    }
    Ok(())
}

/// With `PROT P` in force, how to protect a data connection for a
/// transfer in the direction `upload` says.
pub(in crate::session) fn data_protection(
    server: &ServerContext,
    conn: &Connection,
    upload: bool,
) -> Option<DataProtection> {
    let control = conn.tls.as_ref().filter(|t| t.protect_data)?;
    let tls = server.settings.tls.clone()?;
    let tickets = server
        .resumption
        .data_connection(&control.tickets, conn.peer.ip());
    Some(DataProtection::new(tls, tickets, upload))
}
