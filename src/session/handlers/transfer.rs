//! RETR, STOR, APPE, STOU, REST, and starting a transfer over the prepared
//! data connection.

use std::sync::Arc;

use super::super::command::{Need, TransferType};
use super::super::state::State;
use super::super::transfer::Transfer;
use super::super::{Action, Handled};
use super::tls::{check_data_protected, data_protection};
use super::{authorize, not_logged_in, Cx, Target};
use crate::auth::User;
use crate::data::{DataSetup, Job, Source, TransferLimits};
use crate::hooks::{Decision, UploadRequest};
use crate::path::VirtualPath;
use crate::reply::{Code, Reply};
use crate::storage::{StorageError, WriteMode};

/// How many names STOU tries before giving up.
const STOU_ATTEMPTS: u32 = 100;

pub(in crate::session) fn rest(state: &mut State, offset: u64) -> Handled {
    state.restart_offset = offset;
    let text = format!("Restarting at {offset}; send RETR, STOR or APPE to resume");
    Ok(Reply::new(Code::PendingMoreInfo, text).into())
}

/// `ALLO`: nothing to reserve, but the size is remembered for the next
/// upload's pre-upload check (`size`).
pub(in crate::session) fn allo(state: &mut State, size: Option<u64>) -> Handled {
    state.announced_size = size;
    Ok(Reply::new(Code::Superfluous, "ALLO not needed").into())
}

pub(in crate::session) async fn retr(cx: Cx<'_>, target: Target) -> Handled {
    let Target { user, path, .. } = target;
    let offset = std::mem::take(&mut cx.state.restart_offset);
    let ascii = cx.state.transfer_type == TransferType::Ascii;
    let (source, size) = Source::open(&*user.storage, &path, offset).await?;
    restart_within(offset, size)?;
    let job = Job::Send { source, ascii };
    let opening = format!(
        "Opening {} mode data connection for {path} ({size} bytes)",
        mode_name(ascii),
    );
    start_transfer(cx, "RETR", path, job, &opening)
}

pub(in crate::session) async fn stor(cx: Cx<'_>, target: Target) -> Handled {
    let offset = std::mem::take(&mut cx.state.restart_offset);
    let mode = if offset > 0 {
        WriteMode::At(offset)
    } else {
        WriteMode::Replace {
            atomic: cx.server.settings.session.atomic_uploads,
        }
    };
    upload(cx, "STOR", target, mode).await
}

pub(in crate::session) async fn appe(cx: Cx<'_>, target: Target) -> Handled {
    let offset = std::mem::take(&mut cx.state.restart_offset);
    let mode = if offset > 0 {
        WriteMode::At(offset)
    } else {
        WriteMode::Append
    };
    upload(cx, "APPE", target, mode).await
}

/// STOU checks each name it tries for a new entry, as the command table
/// cannot: the names are made here.
pub(in crate::session) async fn stou(cx: Cx<'_>, hint: Option<&str>) -> Handled {
    cx.state.restart_offset = 0;
    let announced = cx.state.announced_size.take();
    let stem = hint
        .and_then(|h| VirtualPath::new(h).file_name().map(str::to_owned))
        .unwrap_or_else(|| "stou".to_owned());
    for attempt in 0..STOU_ATTEMPTS {
        let name = if attempt == 0 && hint.is_some() {
            stem.clone()
        } else {
            format!("{stem}.{}", unique_suffix(attempt))
        };
        let Target { user, path, .. } = authorize(cx.state, &name, Need::Entry).await?;
        match user.storage.metadata(&path).await {
            // Created only once the data connection is up: should another
            // client take the name first, the upload fails with 550.
            Err(StorageError::NotFound) => {
                parent_is_a_directory(&user, &path).await?;
                let asked = Asked {
                    verb: "STOU",
                    offset: 0,
                    size: announced,
                    existing_size: None,
                };
                pre_upload_check(&cx, &user, &path, asked).await?;
                return start_upload(cx, "STOU", user, path, WriteMode::CreateNew, None).await;
            }
            Ok(_) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(Reply::new(
        Code::FileBusy,
        "Could not find a unique file name",
    ))
}

/// `target` was checked for writing; a new file is also a new entry in its
/// directory, which is checked here once the file is known not to exist.
async fn upload(cx: Cx<'_>, verb: &'static str, target: Target, mode: WriteMode) -> Handled {
    let Target { user, path, .. } = target;
    if path.is_root() {
        return Err(Reply::new(Code::NameNotAllowed, "File name not allowed"));
    }
    let offset = match mode {
        WriteMode::At(offset) => offset,
        _ => 0,
    };
    let announced = cx.state.announced_size.take();
    let existing_size = match user.storage.metadata(&path).await {
        Err(StorageError::NotFound) => {
            drop(authorize(cx.state, path.as_str(), Need::Entry).await?);
            restart_within(offset, 0)?;
            parent_is_a_directory(&user, &path).await?;
            None
        }
        Err(err) => return Err(err.into()),
        Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory.into()),
        Ok(meta) => {
            restart_within(offset, meta.size)?;
            Some(meta.size)
        }
    };
    let asked = Asked {
        verb,
        offset,
        size: announced,
        existing_size,
    };
    pre_upload_check(&cx, &user, &path, asked).await?;
    start_upload(cx, verb, user, path, mode, existing_size).await
}

/// What the pre-upload check is asked about an upload, besides who and where.
struct Asked {
    verb: &'static str,
    offset: u64,
    size: Option<u64>,
    existing_size: Option<u64>,
}

/// `[pre_upload]`, asked last, once everything else allows the upload:
/// before its `150` and before the file is opened, so a refusal leaves the
/// old file as it was. A refusal is `553`; a check that cannot decide
/// refuses too, with `451` (docs/hooks.md).
async fn pre_upload_check(
    cx: &Cx<'_>,
    user: &User,
    path: &VirtualPath,
    asked: Asked,
) -> Result<(), Reply> {
    let Some(check) = cx.server.pre_upload.clone() else {
        return Ok(());
    };
    let request = UploadRequest {
        user: user.login.clone(),
        address: cx.conn.peer.ip(),
        tls: cx.conn.tls.is_some(),
        path: path.to_string(),
        verb: asked.verb,
        offset: asked.offset,
        size: asked.size,
        existing_size: asked.existing_size,
    };
    // Boxed: the program's or the request's state lives on the heap while
    // it runs, not in every upload's future.
    match Box::pin(async move { check.check(&request).await }).await {
        Decision::Allow => Ok(()),
        Decision::Refuse(message) => Err(Reply::new(
            Code::NameNotAllowed,
            message.unwrap_or_else(|| "Upload refused".to_owned()),
        )),
        Decision::Failed(_) => Err(Reply::new(
            Code::LocalError,
            "Upload refused: the upload check failed, try again later",
        )),
    }
}

/// Starts an upload whose file is opened only once the data connection
/// is up and protected as the policy requires: an upload refused before
/// then (no data connection, TLS policy, ABOR) leaves the file as it was.
/// Under a quota it is admitted first (552 when the user is at a limit, a
/// new file counted from here, `existing` being the file's size now) and
/// metered while it runs.
async fn start_upload(
    cx: Cx<'_>,
    verb: &'static str,
    user: Arc<User>,
    path: VirtualPath,
    mode: WriteMode,
    existing: Option<u64>,
) -> Handled {
    let admitted = match &user.quota {
        // Boxed: counting a tree may take a while, and its state should
        // not set the size of every command's future.
        Some(quota) => Some(Box::pin(quota.admit(&path, mode, existing)).await?),
        None => None,
    };
    let ascii = cx.state.transfer_type == TransferType::Ascii;
    let opening = if verb == "STOU" {
        // RFC 1123 §4.1.2.9
        format!("FILE: {}", path.file_name().unwrap_or_default())
    } else {
        format!(
            "Opening {} mode data connection for {path}",
            mode_name(ascii)
        )
    };
    let target = path.clone();
    let open = Box::pin(async move {
        let upload = user.storage.open_write(&target, mode).await?;
        Ok(match admitted {
            Some(admitted) => admitted.meter(upload),
            None => upload,
        })
    });
    start_transfer(cx, verb, path, Job::Receive { open, ascii }, &opening)
}

/// Takes the prepared data connection and starts `job` over it, under
/// every bandwidth limit of its direction.
pub(in crate::session) fn start_transfer(
    cx: Cx<'_>,
    verb: &'static str,
    path: VirtualPath,
    job: Job,
    opening: &str,
) -> Handled {
    check_data_protected(&cx)?;
    let account = cx.state.account().ok_or_else(not_logged_in)?;
    let session = &cx.server.settings.session;
    let upload = matches!(job, Job::Receive { .. });
    let limits = TransferLimits {
        block_size: session.block_size,
        stall: session.data_timeout,
        throttle: account.throttle(cx.server, upload),
    };
    let protection = data_protection(cx.server, cx.conn, upload);
    let setup = std::mem::replace(&mut cx.state.data, DataSetup::None);
    let connect = setup
        .connect(
            cx.conn.peer.ip(),
            cx.conn.local.ip(),
            session.data_timeout,
            protection,
        )
        .ok_or_else(|| Reply::new(Code::CannotOpenData, "Use PORT, EPRT, PASV or EPSV first"))?;
    let transfer = Transfer::new(connect, job, verb, path, opening.to_owned(), limits);
    Ok(Action::Transfer(Box::new(transfer)))
}

fn mode_name(ascii: bool) -> &'static str {
    if ascii {
        "ASCII"
    } else {
        "BINARY"
    }
}

/// A suffix unlikely to collide: time-derived, varied per attempt.
fn unique_suffix(attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}",
        nanos.wrapping_add(u128::from(attempt) * 7919) & 0xffff_ffff
    )
}

/// A new file's directory must exist before the upload is announced.
async fn parent_is_a_directory(user: &User, path: &VirtualPath) -> Result<(), Reply> {
    let parent = path.parent();
    match user.storage.metadata(&parent).await {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StorageError::NotADirectory.into()),
        Err(err) => Err(err.into()),
    }
}

/// A restart offset must not lie beyond the end of the file.
fn restart_within(offset: u64, size: u64) -> Result<(), Reply> {
    match offset <= size {
        true => Ok(()),
        false => Err(Reply::new(
            Code::InvalidRestart,
            "Restart offset beyond the end of the file",
        )),
    }
}
