//! Command handlers, one file per command family, all `impl Session`.
//!
//! Shared here: resolving a client path against the cwd and the permission
//! check every path command makes. Errors become replies in `crate::reply`.

mod auth;
mod data_setup;
mod file_ops;
mod listing;
mod misc;
mod navigation;
mod tls;
mod transfer;

use std::future::Future;
use std::sync::Arc;

use super::Session;
use crate::auth::User;
use crate::path::VirtualPath;
use crate::reply::{Code, Reply};

/// The right a command needs on its path.
#[derive(Clone, Copy)]
enum Need {
    Read,
    /// Changing what is there: writing a file's contents, its time.
    Write,
    /// Creating, removing or renaming the entry itself (see `User::may_change_entry`).
    Entry,
}

impl Session {
    /// Resolves a client path against the cwd and checks the user's right on
    /// it, and on the path the storage's links make of it: a rule holds for
    /// what a link leads to, whatever the link is called.
    fn authorize(
        &self,
        arg: &str,
        need: Need,
    ) -> impl Future<Output = Result<(Arc<User>, VirtualPath), Reply>> + Send + 'static {
        // Taken now: no borrow of the session is held across the storage's await.
        let named = self
            .logged_in()
            .cloned()
            .map(|user| (user, self.state.cwd.join(arg)));
        async move {
            let (user, path) = named?;
            if !allows(&user, &path, need) {
                tracing::info!(user = user.display_name(), path = ?path, "permission denied");
                return Err(Reply::new(Code::FileUnavailable, "Permission denied"));
            }
            let real = real_path(&user, &path, need).await?;
            if real != path && !allows(&user, &real, need) {
                tracing::info!(user = user.display_name(), path = ?path, ?real, "permission denied");
                return Err(Reply::new(Code::FileUnavailable, "Permission denied"));
            }
            Ok((user, path))
        }
    }
}

fn allows(user: &User, path: &VirtualPath, need: Need) -> bool {
    let access = user.access(path);
    match need {
        Need::Read => access.readable,
        Need::Write => access.writable,
        Need::Entry => user.may_change_entry(path),
    }
}

/// Where `path` leads in `user`'s storage, as far as the rules can tell
/// (with rights the same everywhere, a link changes nothing). For a change to the entry itself
/// (create, remove, rename) only the links above it are followed: those
/// commands act on a link, not on what it names.
async fn real_path(user: &User, path: &VirtualPath, need: Need) -> Result<VirtualPath, Reply> {
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
