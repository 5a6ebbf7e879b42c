//! AUTH, PBSZ, PROT, CCC: FTPS (RFC 2228, RFC 4217), and the TLS policy checks
//! other handlers ask for.

use super::super::{Action, ControlTls, Handled, LoginState, Reply, Session};
use super::auth::holder;
use crate::reply::Code;
use crate::tls::resumption::Holder;
use crate::tls::TlsPolicy;

impl Session {
    pub(in crate::session) fn auth(&mut self, mechanism: &str) -> Handled {
        if self.context.settings.tls.is_none() {
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
        if self.tls.is_some() {
            return Err(Reply::new(
                Code::BadSequence,
                "The control connection is already protected",
            ));
        }
        if self.control.has_buffered_input() || !self.pending.is_empty() {
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

    /// Runs the control connection's TLS handshake; from then on the
    /// sessions it issues are recorded against it and its login.
    pub(in crate::session) async fn protect_control_connection(&mut self) -> std::io::Result<()> {
        let Some(tls) = self.context.settings.tls.clone() else {
            return Err(std::io::Error::other("TLS is not configured"));
        };
        let tickets = self.context.resumption.open_control(self.peer.ip());
        let acceptor = tls.control_acceptor(&tickets);
        self.control.start_tls(&tls, acceptor).await?;
        if let LoginState::LoggedIn(user) = &self.state.login {
            tickets.set_holder(holder(user));
        }
        self.tls = Some(ControlTls {
            tickets,
            pbsz: false,
            protect_data: false,
        });
        Ok(())
    }

    /// Records who is logged in on this control connection, for the
    /// sibling rule of data-connection resumption.
    pub(in crate::session) fn record_holder(&self, holder: Holder) {
        if let Some(tls) = &self.tls {
            tls.tickets.set_holder(holder);
        }
    }

    pub(in crate::session) fn pbsz(&mut self, size: &str) -> Handled {
        let Some(tls) = &mut self.tls else {
            return Err(Reply::new(Code::BadSequence, "PBSZ needs AUTH TLS first"));
        };
        if size.parse::<u64>().is_err() {
            return Err(Reply::new(Code::BadArguments, "PBSZ needs a number"));
        }
        tls.pbsz = true;
        // RFC 4217 §8: a TLS stream has no buffer size; always 0.
        Ok(Reply::new(Code::Ok, "PBSZ=0").into())
    }

    pub(in crate::session) fn prot(&mut self, level: &str) -> Handled {
        let Some(tls) = &mut self.tls else {
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

    pub(in crate::session) fn ccc(&mut self) -> Handled {
        if self.tls.is_none() {
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
    fn tls_policy(&self, user_override: Option<TlsPolicy>) -> Option<TlsPolicy> {
        let server = self.context.settings.tls.as_ref()?.required;
        Some(user_override.unwrap_or(server))
    }

    /// `USER` before `AUTH TLS` under `required = "login"` or `"data"`.
    pub(in crate::session) async fn check_login_protected(
        &mut self,
        login: &str,
    ) -> Result<(), Reply> {
        if self.tls.is_some() {
            return Ok(());
        }
        let user_override = self.context.users.tls_policy(login).await;
        if self.tls_policy(user_override) >= Some(TlsPolicy::Login) {
            return Err(Reply::new(
                Code::NotLoggedIn,
                "This server requires TLS: send AUTH TLS before USER",
            ));
        }
        Ok(())
    }

    /// A transfer without `PROT P` under `required = "data"`.
    pub(in crate::session) fn check_data_protected(&self) -> Result<(), Reply> {
        let protected = self.tls.as_ref().is_some_and(|t| t.protect_data);
        let user_override = self.logged_in().ok().and_then(|user| user.tls_required);
        if !protected && self.tls_policy(user_override) == Some(TlsPolicy::Data) {
            // RFC 4217 §9
            return Err(Reply::new(
                Code::ProtectionRequired,
                "Data connections must be protected: send PBSZ 0 and PROT P",
            ));
        }
        Ok(())
    }
}
