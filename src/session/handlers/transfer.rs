//! RETR, STOR, APPE, STOU, REST, and starting a transfer over the prepared
//! data connection.

use super::super::transfer::Transfer;
use super::super::{Action, Handled, Reply, Session, TransferType};
use super::Need;
use crate::data::{DataProtection, DataSetup, Job, Source, TransferLimits};
use crate::path::VirtualPath;
use std::sync::Arc;

use crate::auth::User;
use crate::reply::Code;
use crate::storage::{StorageError, WriteMode};
use crate::throttle::Throttle;

/// How many names STOU tries before giving up.
const STOU_ATTEMPTS: u32 = 100;

impl Session {
    pub(in crate::session) fn rest(&mut self, offset: u64) -> Handled {
        self.state.restart_offset = offset;
        let text = format!("Restarting at {offset}; send RETR, STOR or APPE to resume");
        Ok(Reply::new(Code::PendingMoreInfo, text).into())
    }

    pub(in crate::session) async fn retr(&mut self, arg: &str) -> Handled {
        let (user, path) = self.authorize(arg, Need::Read).await?;
        let offset = std::mem::take(&mut self.state.restart_offset);
        let ascii = self.state.transfer_type == TransferType::Ascii;
        let (source, size) = Source::open(&*user.storage, &path, offset).await?;
        restart_within(offset, size)?;
        let job = Job::Send { source, ascii };
        let opening = format!(
            "Opening {} mode data connection for {path} ({size} bytes)",
            mode_name(ascii),
        );
        self.start_transfer("RETR", path, job, &opening)
    }

    pub(in crate::session) async fn stor(&mut self, arg: &str) -> Handled {
        let offset = std::mem::take(&mut self.state.restart_offset);
        let mode = if offset > 0 {
            WriteMode::At(offset)
        } else {
            WriteMode::Replace {
                atomic: self.context.settings.session.atomic_uploads,
            }
        };
        self.upload("STOR", arg, mode).await
    }

    pub(in crate::session) async fn appe(&mut self, arg: &str) -> Handled {
        let offset = std::mem::take(&mut self.state.restart_offset);
        let mode = if offset > 0 {
            WriteMode::At(offset)
        } else {
            WriteMode::Append
        };
        self.upload("APPE", arg, mode).await
    }

    pub(in crate::session) async fn stou(&mut self, hint: Option<&str>) -> Handled {
        self.state.restart_offset = 0;
        let stem = hint
            .and_then(|h| VirtualPath::new(h).file_name().map(str::to_owned))
            .unwrap_or_else(|| "stou".to_owned());
        for attempt in 0..STOU_ATTEMPTS {
            let name = if attempt == 0 && hint.is_some() {
                stem.clone()
            } else {
                format!("{stem}.{}", unique_suffix(attempt))
            };
            let (user, path) = self.authorize(&name, Need::Entry).await?;
            match user.storage.metadata(&path).await {
                // Created only once the data connection is up: should another
                // client take the name first, the upload fails with 550.
                Err(StorageError::NotFound) => {
                    parent_is_a_directory(&user, &path).await?;
                    return self.start_upload("STOU", user, path, WriteMode::CreateNew);
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

    async fn upload(&mut self, verb: &'static str, arg: &str, mode: WriteMode) -> Handled {
        let (user, path) = self.authorize(arg, Need::Write).await?;
        if path.is_root() {
            return Err(Reply::new(Code::NameNotAllowed, "File name not allowed"));
        }
        let offset = match mode {
            WriteMode::At(offset) => offset,
            _ => 0,
        };
        match user.storage.metadata(&path).await {
            // A new file is a new entry in its directory.
            Err(StorageError::NotFound) => {
                drop(self.authorize(arg, Need::Entry).await?);
                restart_within(offset, 0)?;
                parent_is_a_directory(&user, &path).await?;
            }
            Err(err) => return Err(err.into()),
            Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory.into()),
            Ok(meta) => restart_within(offset, meta.size)?,
        }
        self.start_upload(verb, user, path, mode)
    }

    /// Starts an upload whose file is opened only once the data connection
    /// is up and protected as the policy requires: an upload refused before
    /// then (no data connection, TLS policy, ABOR) leaves the file as it was.
    fn start_upload(
        &mut self,
        verb: &'static str,
        user: Arc<User>,
        path: VirtualPath,
        mode: WriteMode,
    ) -> Handled {
        let ascii = self.state.transfer_type == TransferType::Ascii;
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
        let open = Box::pin(async move { user.storage.open_write(&target, mode).await });
        self.start_transfer(verb, path, Job::Receive { open, ascii }, &opening)
    }

    /// Takes the prepared data connection and starts `job` over it.
    pub(in crate::session) fn start_transfer(
        &mut self,
        verb: &'static str,
        path: VirtualPath,
        job: Job,
        opening: &str,
    ) -> Handled {
        self.check_data_protected()?;
        let wait = self.context.settings.session.data_timeout;
        let upload = matches!(job, Job::Receive { .. });
        let protection = self.data_protection(upload);
        let setup = std::mem::replace(&mut self.state.data, DataSetup::None);
        let connect = setup
            .connect(self.peer.ip(), self.local.ip(), wait, protection)
            .ok_or_else(|| {
                Reply::new(Code::CannotOpenData, "Use PORT, EPRT, PASV or EPSV first")
            })?;
        let session = &self.context.settings.session;
        let limits = TransferLimits {
            block_size: session.block_size,
            stall: session.data_timeout,
            throttle: self.throttle(upload),
        };
        let transfer = Transfer::new(connect, job, verb, path, opening.to_owned(), limits);
        Ok(Action::Transfer(Box::new(transfer)))
    }
}

impl Session {
    /// Every bandwidth limit on this transfer's direction: the server's, the
    /// user's (shared by its sessions) and this connection's.
    pub(in crate::session) fn throttle(&self, upload: bool) -> Throttle {
        let slot = self.user_slot.as_ref();
        let (connection_down, connection_up) = &self.connection_buckets;
        if upload {
            Throttle::new([
                self.context.upload.clone(),
                slot.and_then(|s| s.upload.clone()),
                connection_up.clone(),
            ])
        } else {
            Throttle::new([
                self.context.download.clone(),
                slot.and_then(|s| s.download.clone()),
                connection_down.clone(),
            ])
        }
    }

    /// With `PROT P` in force, how to protect a data connection for a
    /// transfer in the direction `upload` says.
    pub(in crate::session) fn data_protection(&self, upload: bool) -> Option<DataProtection> {
        let control = self.tls.as_ref().filter(|t| t.protect_data)?;
        let tls = self.context.settings.tls.clone()?;
        let tickets = self
            .context
            .resumption
            .data_connection(&control.tickets, self.peer.ip());
        Some(DataProtection::new(tls, tickets, upload))
    }
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
