//! MKD, RMD, DELE, RNFR, RNTO, SIZE, MDTM, MFMT: operations on single paths.

use super::super::command::Need;
use super::super::Handled;
use super::{quote_path, real_path, Target, Witness};
use crate::hooks::EventKind;
use crate::listing::time_format::{parse_timestamp, timestamp};
use crate::path::VirtualPath;
use crate::reply::{Code, Reply};
use crate::storage::{FileKind, StorageError};

pub(in crate::session) async fn mkd(target: Target, witness: Witness<'_>) -> Handled {
    let Target { user, path, .. } = target;
    if path.is_root() {
        return Err(Reply::new(Code::FileUnavailable, "File exists"));
    }
    user.storage.mkdir(&path).await?;
    tracing::info!(
        user = user.display_name(),
        path = path.as_str(),
        "directory created"
    );
    witness.saw(EventKind::Mkdir, user.login.as_deref(), |e| {
        e.with_path(path.as_str())
    });
    Ok(Reply::new(Code::PathName, format!("{} created", quote_path(&path))).into())
}

pub(in crate::session) async fn rmd(
    cwd: &VirtualPath,
    target: Target,
    witness: Witness<'_>,
) -> Handled {
    let Target { user, path, .. } = target;
    if path.is_root() || cwd.starts_with(&path) {
        return Err(Reply::new(
            Code::FileUnavailable,
            "Cannot remove the current directory or one above it",
        ));
    }
    user.storage.rmdir(&path).await?;
    tracing::info!(
        user = user.display_name(),
        path = path.as_str(),
        "directory removed"
    );
    witness.saw(EventKind::Rmdir, user.login.as_deref(), |e| {
        e.with_path(path.as_str())
    });
    Ok(Reply::new(Code::FileActionOk, "Directory removed").into())
}

pub(in crate::session) async fn dele(target: Target, witness: Witness<'_>) -> Handled {
    let Target { user, path, .. } = target;
    let meta = user.storage.metadata(&path).await?;
    if meta.is_dir() {
        return Err(Reply::new(Code::FileUnavailable, "Is a directory; use RMD"));
    }
    user.storage.remove(&path).await?;
    if let Some(quota) = user.quota.as_ref().filter(|_| meta.kind == FileKind::File) {
        // Boxed: a ledger's state should not set the size of every command's future.
        Box::pin(quota.removed(meta.size)).await;
    }
    tracing::info!(user = user.display_name(), path = path.as_str(), "deleted");
    witness.saw(EventKind::Delete, user.login.as_deref(), |e| {
        e.with_path(path.as_str())
    });
    Ok(Reply::new(Code::FileActionOk, "File deleted").into())
}

/// RNFR: `rename_from` keeps the path for the RNTO that must come next.
pub(in crate::session) async fn rnfr(
    rename_from: &mut Option<VirtualPath>,
    target: Target,
) -> Handled {
    let Target { user, path, .. } = target;
    if path.is_root() {
        return Err(Reply::new(Code::FileUnavailable, "Cannot rename the root"));
    }
    user.storage.metadata(&path).await?;
    *rename_from = Some(path);
    Ok(Reply::new(Code::PendingMoreInfo, "Ready for RNTO").into())
}

/// `from` is what the preceding command (it must be RNFR) left behind.
pub(in crate::session) async fn rnto(
    from: Option<VirtualPath>,
    target: Target,
    witness: Witness<'_>,
) -> Handled {
    let Some(from) = from else {
        return Err(Reply::new(Code::BadSequence, "Send RNFR first"));
    };
    let Target { user, path: to, .. } = target;
    if to.is_root() || to.starts_with(&from) && to != from {
        return Err(Reply::new(
            Code::NameNotAllowed,
            "Cannot move a directory into itself",
        ));
    }
    // What moves is what the links lead to, and where they lead it.
    let real_from = real_path(&user, &from, Need::Entry).await?;
    let real_to = real_path(&user, &to, Need::Entry).await?;
    if !user.rename_keeps_rights(&from, &to) || !user.rename_keeps_rights(&real_from, &real_to) {
        tracing::info!(
            user = user.display_name(),
            ?from,
            ?to,
            "rename refused: it would lift a rule"
        );
        return Err(Reply::new(
            Code::FileUnavailable,
            "Permission denied: the rename would give its contents more rights",
        ));
    }
    // A file the rename replaces is gone from the quota's count.
    let replaced = match &user.quota {
        Some(_) if to != from => user
            .storage
            .metadata(&to)
            .await
            .ok()
            .filter(|meta| meta.kind == FileKind::File),
        _ => None,
    };
    user.storage.rename(&from, &to).await?;
    if let (Some(quota), Some(meta)) = (&user.quota, replaced) {
        // Boxed: a ledger's state should not set the size of every command's future.
        Box::pin(quota.removed(meta.size)).await;
    }
    tracing::info!(
        user = user.display_name(),
        from = from.as_str(),
        to = to.as_str(),
        "renamed"
    );
    witness.saw(EventKind::Rename, user.login.as_deref(), |e| {
        e.with_rename(from.as_str(), to.as_str())
    });
    Ok(Reply::new(Code::FileActionOk, "Renamed").into())
}

pub(in crate::session) async fn size(target: Target) -> Handled {
    let meta = target.user.storage.metadata(&target.path).await?;
    if meta.kind != FileKind::File {
        return Err(Reply::new(Code::FileUnavailable, "Not a regular file"));
    }
    Ok(Reply::new(Code::FileStatus, meta.size.to_string()).into())
}

pub(in crate::session) async fn mdtm(target: Target) -> Handled {
    let meta = target.user.storage.metadata(&target.path).await?;
    match meta.modified {
        Some(time) if meta.kind == FileKind::File => {
            Ok(Reply::new(Code::FileStatus, timestamp(time)).into())
        }
        Some(_) => Err(Reply::new(Code::FileUnavailable, "Not a regular file")),
        None => Err(Reply::new(
            Code::FileUnavailable,
            "Modification time not known",
        )),
    }
}

/// `MFMT`: the reply names the time the file has afterwards. A storage
/// that keeps its own times (S3 sets them when an object is written, and
/// only then) leaves the time as it is and the reply says which it is,
/// rather than failing: rclone and lftp set the time after every upload,
/// and rclone counts a refusal as a failed copy, while both take the
/// reply's time for what the server keeps.
pub(in crate::session) async fn mfmt(time: &str, target: Target) -> Handled {
    let when = parse_timestamp(time)
        .ok_or_else(|| Reply::new(Code::BadArguments, "Time must be YYYYMMDDHHMMSS"))?;
    let Target { user, path, .. } = target;
    let kept = match user.storage.set_modified(&path, when).await {
        Ok(()) => when,
        Err(StorageError::Unsupported) => {
            let meta = user.storage.metadata(&path).await?;
            match meta.modified {
                Some(time) if meta.kind == FileKind::File => time,
                _ => return Err(StorageError::Unsupported.into()),
            }
        }
        Err(err) => return Err(err.into()),
    };
    Ok(Reply::new(
        Code::FileStatus,
        format!("Modify={}; {}", timestamp(kept), path),
    )
    .into())
}
