//! LIST, NLST, MLSD, MLST, STAT: listings over the data connection or the control one.

use std::sync::Arc;
use std::time::SystemTime;

use futures::stream::{self, BoxStream, StreamExt};

use super::super::command::Need;
use super::super::state::{Connection, State};
use super::super::{Action, Handled};
use super::transfer::start_transfer;
use super::{authorize, Cx, Target};
use crate::auth::User;
use crate::data::Job;
use crate::listing::{
    facts_line, has_wildcard, list_line, wildcard_match, FactsFormatter, LineChunks, ListFormatter,
};
use crate::path::VirtualPath;
use crate::reply::{Code, Reply, StreamedReply};
use crate::storage::{DirEntry, EntryStream, Metadata, NameStream, StorageError};

/// Longest `STAT <path>` listing sent over the control connection.
const MAX_STAT_ENTRIES: usize = 10_000;

/// What to list: a directory's entries, one file standing for itself, or the
/// entries of a directory whose names match a wildcard (`NLST *.txt`, as `mget` sends).
enum Listed {
    Dir(VirtualPath),
    File(VirtualPath, Metadata),
    Matching {
        dir: VirtualPath,
        pattern: String,
        /// The directory part of the argument as typed, put before each name as a shell would.
        prefix: String,
    },
}

/// What `target` (checked for reading) lists.
async fn listed(state: &State, target: Target) -> Result<(Arc<User>, Listed), Reply> {
    let Target {
        user,
        path,
        written: arg,
    } = target;
    let meta = match user.storage.metadata(&path).await {
        Ok(meta) => meta,
        Err(StorageError::NotFound) if path.file_name().is_some_and(has_wildcard) => {
            let pattern = path.file_name().unwrap_or_default().to_owned();
            let prefix = arg.rfind('/').map_or("", |end| &arg[..=end]).to_owned();
            // The pattern's directory is what is read: it needs the right too.
            let Target {
                user, path: dir, ..
            } = authorize(state, &format!("{prefix}."), Need::Read).await?;
            if !user.storage.metadata(&dir).await?.is_dir() {
                return Err(StorageError::NotADirectory.into());
            }
            return Ok((
                user,
                Listed::Matching {
                    dir,
                    pattern,
                    prefix,
                },
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let listed = if meta.is_dir() {
        Listed::Dir(path)
    } else {
        Listed::File(path, meta)
    };
    Ok((user, listed))
}

/// Entries of what is listed, as a stream, one-element for a file.
async fn entries(user: &User, listed: Listed) -> Result<(VirtualPath, EntryStream), Reply> {
    match listed {
        Listed::Dir(path) => {
            let entries = user.storage.list(&path).await?;
            Ok((path, entries))
        }
        Listed::File(path, metadata) => {
            let name = path.file_name().unwrap_or_default().to_owned();
            let entry = DirEntry { name, metadata };
            Ok((path.parent(), stream::once(async { Ok(entry) }).boxed()))
        }
        Listed::Matching {
            dir,
            pattern,
            prefix,
        } => {
            let entries = user.storage.list(&dir).await?;
            Ok((
                dir,
                keep_matching(entries, pattern, prefix, |e| &mut e.name),
            ))
        }
    }
}

/// Names of what is listed (no metadata read where the storage can help
/// it), as a stream, one-element for a file.
async fn names(user: &User, listed: Listed) -> Result<(VirtualPath, NameStream), Reply> {
    match listed {
        Listed::Dir(path) => {
            let names = user.storage.list_names(&path).await?;
            Ok((path, names))
        }
        Listed::File(path, _) => {
            let name = path.file_name().unwrap_or_default().to_owned();
            Ok((path.parent(), stream::once(async { Ok(name) }).boxed()))
        }
        Listed::Matching {
            dir,
            pattern,
            prefix,
        } => {
            let names = user.storage.list_names(&dir).await?;
            Ok((dir, keep_matching(names, pattern, prefix, |name| name)))
        }
    }
}

pub(in crate::session) async fn list(cx: Cx<'_>, target: Target) -> Handled {
    let (user, listed) = listed(cx.state, target).await?;
    let (dir, entries) = entries(&user, listed).await?;
    let mut format = ListFormatter::new(SystemTime::now());
    let lines = LineChunks::new(entries, move |e: DirEntry, out: &mut Vec<u8>| {
        format.write(out, &e.name, &e.metadata);
    });
    start_transfer(
        cx,
        "LIST",
        dir,
        Job::Lines(lines.boxed()),
        "Here comes the directory listing",
    )
}

pub(in crate::session) async fn nlst(cx: Cx<'_>, target: Target) -> Handled {
    let (user, listed) = listed(cx.state, target).await?;
    let (dir, names) = names(&user, listed).await?;
    let lines = LineChunks::new(names, |name: String, out: &mut Vec<u8>| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
    start_transfer(
        cx,
        "NLST",
        dir,
        Job::Lines(lines.boxed()),
        "Here comes the name list",
    )
}

pub(in crate::session) async fn mlsd(cx: Cx<'_>, target: Target) -> Handled {
    let (user, listed) = listed(cx.state, target).await?;
    let Listed::Dir(dir) = listed else {
        // RFC 3659 §7.2.1: MLSD takes a directory, never a file or a pattern.
        return Err(Reply::new(Code::BadArguments, "Not a directory; use MLST"));
    };
    let entries = user.storage.list(&dir).await?;
    let access = user.entry_access(&dir);
    let mut format = FactsFormatter::new(cx.state.facts);
    let lines = LineChunks::new(entries, move |e: DirEntry, out: &mut Vec<u8>| {
        format.write(out, &e.name, &e.metadata, access.of(&e.name));
        out.extend_from_slice(b"\r\n");
    });
    start_transfer(
        cx,
        "MLSD",
        dir,
        Job::Lines(lines.boxed()),
        "Here comes the machine listing",
    )
}

pub(in crate::session) async fn mlst(state: &State, target: Target) -> Handled {
    let Target { user, path, .. } = target;
    let meta = user.storage.metadata(&path).await?;
    let line = facts_line(path.as_str(), &meta, user.access(&path), state.facts);
    // RFC 3659 §7.2: the facts line starts with a space, which `multiline` adds.
    Ok(Reply::multiline(Code::FileActionOk, format!("Listing {path}"), [line], "End").into())
}

/// `STAT <path>`: a listing over the control connection.
pub(in crate::session) async fn stat(state: &State, target: Target) -> Handled {
    let first = format!("Status of {}:", target.written);
    let (user, listed) = listed(state, target).await?;
    let (_, entries) = entries(&user, listed).await?;
    let now = SystemTime::now();
    let body = entries
        .take(MAX_STAT_ENTRIES)
        .filter_map(|entry| async move { entry.ok() })
        .map(move |e| list_line(&e.name, &e.metadata, now).trim_end().to_owned())
        .boxed();
    Ok(Action::Stream(StreamedReply {
        code: Code::FileStatus,
        first,
        body,
        last: "End of status".to_owned(),
    }))
}

/// `STAT` alone: the session's own status.
pub(in crate::session) fn status(conn: &Connection, state: &State) -> Reply {
    let who = match state.user() {
        Some(user) => format!("Logged in as {}", user.display_name()),
        None => "Not logged in".to_owned(),
    };
    let body = [
        format!("Connected from {}", conn.peer.ip()),
        who,
        format!(
            "TYPE: {:?}, STRUcture: File, MODE: Stream",
            state.transfer_type
        ),
        "No data connection".to_owned(),
    ];
    Reply::multiline(Code::SystemStatus, "aioftpd status:", body, "End of status")
}

/// The items of `items` whose name matches `pattern`, each name prefixed
/// with `prefix` (the directory part of the argument, as a shell puts it).
fn keep_matching<T: Send + 'static>(
    items: BoxStream<'static, Result<T, StorageError>>,
    pattern: String,
    prefix: String,
    name: fn(&mut T) -> &mut String,
) -> BoxStream<'static, Result<T, StorageError>> {
    items
        .filter_map(move |item| {
            let kept = match item {
                Ok(mut item) => {
                    let text = name(&mut item);
                    if wildcard_match(&pattern, text) {
                        text.insert_str(0, &prefix);
                        Some(Ok(item))
                    } else {
                        None
                    }
                }
                Err(err) => Some(Err(err)),
            };
            async move { kept }
        })
        .boxed()
}
