//! Command handlers, one file per command family: functions over what each
//! command may touch, never the whole session.
//!
//! A handler that changes the session takes a [`Cx`]; one that only reads a
//! path takes the [`Target`] dispatch has already authorized, so a
//! signature tells what a command can change. Shared here: resolving a
//! client path against the cwd and the permission check, made once at
//! dispatch for the right the command table declares. Errors become replies
//! in `crate::reply`.

pub(super) mod auth;
pub(super) mod data_setup;
pub(super) mod file_ops;
pub(super) mod hash;
pub(super) mod listing;
pub(super) mod misc;
pub(super) mod navigation;
pub(super) mod tls;
pub(super) mod transfer;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use super::command::Need;
use super::state::{Connection, State};
use crate::auth::User;
use crate::context::ServerContext;
use crate::hooks::{Event, EventKind, Hooks};
use crate::path::VirtualPath;
use crate::reply::{Code, Reply};

/// What a command may see and change: the shared server state, the control
/// connection, and the session's protocol state (which holds the logged-in
/// user's resources). Not the control channel, the running transfer or the
/// commands queued behind it: those stay the session's.
pub(super) struct Cx<'a> {
    pub server: &'a ServerContext,
    pub conn: &'a mut Connection,
    pub state: &'a mut State,
    /// The client sent more after this command before reading its reply.
    pub pipelined: bool,
}

/// A path a command may act on, resolved against the cwd and checked for
/// the right the command needs, with the user whose storage holds it.
pub(super) struct Target {
    pub user: Arc<User>,
    pub path: VirtualPath,
    /// The path as the client wrote it (a listing's pattern keeps its
    /// directory part as typed).
    pub written: String,
}

impl Cx<'_> {
    /// The logged-in user; handlers behind the login check may rely on it.
    pub(super) fn user(&self) -> Result<&Arc<User>, Reply> {
        self.state.user().ok_or_else(not_logged_in)
    }

    /// Whom this command tells what it did.
    pub(super) fn witness(&self) -> Witness<'_> {
        Witness::new(self.server, self.conn)
    }
}

/// Where a command tells the hooks what it did, once it has done it: the
/// generation's hooks, and the client it did it for.
pub(super) struct Witness<'a> {
    hooks: &'a Hooks,
    address: IpAddr,
    tls: bool,
}

impl<'a> Witness<'a> {
    pub(super) fn new(server: &'a ServerContext, conn: &Connection) -> Self {
        Witness {
            hooks: &server.hooks,
            address: conn.peer.ip(),
            tls: conn.tls.is_some(),
        }
    }

    /// Tells the hooks that hear of `kind` that `user` (`None`: anonymous)
    /// did it; `detail` adds the event's own fields. Never waits.
    pub(super) fn saw(
        &self,
        kind: EventKind,
        user: Option<&str>,
        detail: impl FnOnce(Event) -> Event,
    ) {
        if self.hooks.wants(kind) {
            let event = Event::new(kind, user.map(str::to_owned), self.address, self.tls);
            self.hooks.emit(detail(event));
        }
    }
}

/// The reply to a command that needs a login, before one.
pub(super) fn not_logged_in() -> Reply {
    Reply::new(Code::NotLoggedIn, "Please log in with USER and PASS first")
}

/// The reply should a verb name a path and its table entry no right for it:
/// a mistake in the table, refused rather than run unchecked.
pub(super) fn unchecked_path() -> Reply {
    Reply::new(Code::LocalError, "Internal error: the path was not checked")
}

/// Resolves a client path against the cwd and checks the user's right on
/// it, and on the path the storage's links make of it: a rule holds for
/// what a link leads to, whatever the link is called.
pub(super) fn authorize(
    state: &State,
    arg: &str,
    need: Need,
) -> impl Future<Output = Result<Target, Reply>> + Send + 'static {
    // Taken now: no borrow of the session is held across the storage's await.
    let named = state
        .user()
        .cloned()
        .map(|user| (user, state.cwd.join(arg), arg.to_owned()))
        .ok_or_else(not_logged_in);
    async move {
        let (user, path, written) = named?;
        if !allows(&user, &path, need) {
            tracing::info!(user = user.display_name(), path = ?path, "permission denied");
            return Err(Reply::new(Code::FileUnavailable, "Permission denied"));
        }
        let real = real_path(&user, &path, need).await?;
        if real != path && !allows(&user, &real, need) {
            tracing::info!(user = user.display_name(), path = ?path, ?real, "permission denied");
            return Err(Reply::new(Code::FileUnavailable, "Permission denied"));
        }
        Ok(Target {
            user,
            path,
            written,
        })
    }
}

fn allows(user: &User, path: &VirtualPath, need: Need) -> bool {
    let access = user.access(path);
    match need {
        Need::Nothing => true,
        Need::Read => access.readable,
        Need::Write => access.writable,
        Need::Entry => user.may_change_entry(path),
    }
}

/// Where `path` leads in `user`'s storage, as far as the rules can tell
/// (with rights the same everywhere, a link changes nothing). For a change to the entry itself
/// (create, remove, rename) only the links above it are followed: those
/// commands act on a link, not on what it names.
pub(super) async fn real_path(
    user: &User,
    path: &VirtualPath,
    need: Need,
) -> Result<VirtualPath, Reply> {
    if user.rights_are_uniform() {
        return Ok(path.clone());
    }
    Ok(match (need, path.file_name()) {
        (Need::Entry, Some(name)) => user.storage.resolve(&path.parent()).await?.join(name),
        _ => user.storage.resolve(path).await?,
    })
}

/// Quotes a path for a 257 reply: embedded quotes are doubled (RFC 959 Appendix II).
fn quote_path(path: &VirtualPath) -> String {
    format!("\"{}\"", path.as_str().replace('"', "\"\""))
}
