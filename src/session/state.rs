//! What a session knows, in two parts with two lifetimes: the
//! [`Connection`] lasts as long as the control connection, the [`State`] as
//! long as one login (REIN starts a new one). The logged-in user's
//! resources live inside the login state, so leaving it returns them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::command::TransferType;
use super::handlers::hash::Algorithm;
use crate::auth::User;
use crate::context::ServerContext;
use crate::data::DataSetup;
use crate::limits::UserSlot;
use crate::listing::FactSet;
use crate::path::VirtualPath;
use crate::proxy_protocol::TrustedProxies;
use crate::throttle::{Bucket, Rate, Throttle};
use crate::tls::resumption::{ControlTickets, Holder};

/// The control connection: its addresses and what outlasts a REIN.
pub(super) struct Connection {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The connection came in on an implicit-TLS listener.
    pub implicit_tls: bool,
    /// When the connection was accepted, for the login timeout.
    pub connected_at: Instant,
    /// Set once the control connection is protected by TLS.
    pub tls: Option<ControlTls>,
    /// Failed `PASS` attempts on this connection; REIN does not reset it,
    /// or it would reset the per-connection budget.
    pub failed_logins: u32,
    /// The proxies the connection came through, if it did (`peer` is then
    /// the client their PROXY header named).
    pub proxy: Option<Arc<TrustedProxies>>,
}

impl Connection {
    /// Records who is logged in on this control connection, for the
    /// sibling rule of data-connection resumption.
    pub(super) fn record_holder(&self, holder: Holder) {
        if let Some(tls) = &self.tls {
            tls.tickets.set_holder(holder);
        }
    }
}

/// The protection of a TLS control connection and of its data connections.
pub(super) struct ControlTls {
    /// The sessions issued on this control connection, for data connections to resume.
    pub tickets: ControlTickets,
    /// `PBSZ` has been given (RFC 4217 §8: it must precede `PROT`).
    pub pbsz: bool,
    /// `PROT P`: data connections are TLS too.
    pub protect_data: bool,
}

/// A logged-in user with what its login holds: its place among the user's
/// sessions (with the buckets they share) and this connection's buckets.
/// Dropping it returns them all.
pub(super) struct Account {
    pub user: Arc<User>,
    slot: UserSlot,
    own: (Option<Arc<Bucket>>, Option<Arc<Bucket>>),
}

impl Account {
    /// `user` logged in, in `slot`, on a server whose per-connection limits
    /// `context` gives.
    pub(super) fn new(user: Arc<User>, slot: UserSlot, context: &ServerContext) -> Self {
        let limits = &context.settings.limits;
        let per_connection = |server: Option<Rate>, user: Option<Rate>| {
            server.into_iter().chain(user).min().map(Bucket::new)
        };
        let own = (
            per_connection(
                limits.download_per_connection,
                user.limits.download_per_connection,
            ),
            per_connection(
                limits.upload_per_connection,
                user.limits.upload_per_connection,
            ),
        );
        Account { user, slot, own }
    }

    /// Every bandwidth limit on a transfer in this direction: the server's,
    /// the user's (shared by its sessions) and this connection's.
    pub(super) fn throttle(&self, context: &ServerContext, upload: bool) -> Throttle {
        if upload {
            Throttle::new([
                context.upload.clone(),
                self.slot.upload.clone(),
                self.own.1.clone(),
            ])
        } else {
            Throttle::new([
                context.download.clone(),
                self.slot.download.clone(),
                self.own.0.clone(),
            ])
        }
    }
}

/// Where a session is in the login sequence.
pub(super) enum LoginState {
    /// Waiting for `USER`.
    NeedUser,
    /// `USER` given; waiting for `PASS`.
    NeedPassword { login: String },
    /// Logged in.
    LoggedIn(Account),
}

/// One login's protocol state; REIN starts a fresh one.
pub(super) struct State {
    pub login: LoginState,
    pub cwd: VirtualPath,
    pub transfer_type: TransferType,
    pub restart_offset: u64,
    /// The size the last `ALLO` announced, for the next upload's
    /// pre-upload check.
    pub announced_size: Option<u64>,
    pub rename_from: Option<VirtualPath>,
    pub data: DataSetup,
    /// A passive listener that no transfer took by then is closed, so its
    /// port goes back to the pool.
    pub passive_until: Option<Instant>,
    pub epsv_all: bool,
    pub facts: FactSet,
    /// What `HASH` computes (`OPTS HASH`).
    pub hash_algorithm: Algorithm,
}

impl State {
    pub(super) fn new() -> Self {
        State {
            login: LoginState::NeedUser,
            cwd: VirtualPath::root(),
            transfer_type: TransferType::Ascii,
            restart_offset: 0,
            announced_size: None,
            rename_from: None,
            data: DataSetup::None,
            passive_until: None,
            epsv_all: false,
            facts: FactSet::default(),
            hash_algorithm: Algorithm::Sha256,
        }
    }

    /// The logged-in account, if any.
    pub(super) fn account(&self) -> Option<&Account> {
        match &self.login {
            LoginState::LoggedIn(account) => Some(account),
            _ => None,
        }
    }

    /// The logged-in user, if any.
    pub(super) fn user(&self) -> Option<&Arc<User>> {
        self.account().map(|account| &account.user)
    }
}
