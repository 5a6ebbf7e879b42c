//! Quotas: how many bytes and files a user's tree may hold (docs/users.md).
//!
//! A user's usage lives in a [`Ledger`]: in memory for `[[users]]` (one per
//! account, counted from its tree when first needed), or in the users
//! database for its rows, where every instance sharing a PostgreSQL store
//! reads and changes one row. A ledger only ever changes by conditional
//! additions, each one atomic where the ledger lives, so two sessions, or
//! two instances, cannot both take the last bytes.
//!
//! An upload is admitted before its data connection opens (refused when the
//! user is already at a limit, and a new file takes its place in the file
//! count then), and metered while it runs ([`Metered`]): before a block
//! grows the file past what was reserved, more is reserved, a chunk at a
//! time; when the quota cannot give it, the block is refused and the upload
//! fails with [`StorageError::QuotaExceeded`] (552), which an atomic upload
//! turns into no change at all. When the upload ends, however it ends, the
//! file is looked at and the ledger set to what really changed.

use std::io;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;

use crate::path::VirtualPath;
use crate::storage::{FileKind, Storage, StorageError, Upload, WriteMode};

/// What an upload reserves at a time beyond what it needs at once: few trips
/// to a shared ledger, little held that others cannot use.
const CHUNK: u64 = 4 << 20;

/// A user's limits; `None`: no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Bytes in all the user's files together.
    pub bytes: Option<u64>,
    /// Files (not directories) in the user's tree.
    pub files: Option<u64>,
}

/// What a user's tree holds, as a ledger counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in all its files.
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
}

impl Usage {
    /// `self` changed by `change`, never below zero.
    fn plus(self, change: Change) -> Usage {
        Usage {
            bytes: self.bytes.saturating_add_signed(change.bytes),
            files: self.files.saturating_add_signed(change.files),
        }
    }

    /// Whether `self` changed by `change` stays within `quota`, for the
    /// kinds `change` grows (shrinking is always allowed).
    fn admits(self, change: Change, quota: Quota) -> bool {
        let after = self.plus(change);
        let fits = |grows: bool, now: u64, limit: Option<u64>| {
            !grows || limit.is_none_or(|limit| now <= limit)
        };
        fits(change.bytes > 0, after.bytes, quota.bytes)
            && fits(change.files > 0, after.files, quota.files)
    }
}

/// A change to a usage, either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Bytes added (negative: removed).
    pub bytes: i64,
    /// Files added (negative: removed).
    pub files: i64,
}

/// Why a ledger could not answer (its database is down or too slow).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LedgerError(pub String);

/// Where one user's usage is kept.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// The usage recorded, or `None` when none is yet (the tree is then
    /// counted and [`Ledger::start`] called).
    async fn usage(&self) -> Result<Option<Usage>, LedgerError>;
    /// Records `counted` unless a usage is recorded already (another session
    /// counted first); returns the one in force.
    async fn start(&self, counted: Usage) -> Result<Usage, LedgerError>;
    /// Applies `change` if the result stays within `quota` for what it
    /// grows; `false` (and no change) otherwise.
    async fn reserve(&self, change: Change, quota: Quota) -> Result<bool, LedgerError>;
    /// Applies `change` whatever the quota (what really happened).
    async fn adjust(&self, change: Change) -> Result<(), LedgerError>;
}

/// A ledger in this process's memory: a `[[users]]` account's.
#[derive(Default)]
pub struct MemoryLedger {
    usage: Mutex<Option<Usage>>,
}

impl MemoryLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Usage>> {
        self.usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn usage(&self) -> Result<Option<Usage>, LedgerError> {
        Ok(*self.lock())
    }

    async fn start(&self, counted: Usage) -> Result<Usage, LedgerError> {
        Ok(*self.lock().get_or_insert(counted))
    }

    async fn reserve(&self, change: Change, quota: Quota) -> Result<bool, LedgerError> {
        let mut usage = self.lock();
        let now = usage.unwrap_or_default();
        if !now.admits(change, quota) {
            return Ok(false);
        }
        *usage = Some(now.plus(change));
        Ok(true)
    }

    async fn adjust(&self, change: Change) -> Result<(), LedgerError> {
        let mut usage = self.lock();
        *usage = Some(usage.unwrap_or_default().plus(change));
        Ok(())
    }
}

/// A user's quota: the limits, the ledger, and the tree they are about.
pub struct UserQuota {
    /// The limits.
    pub limits: Quota,
    ledger: Arc<dyn Ledger>,
    storage: Arc<dyn Storage>,
    /// Held while the tree is counted: many sessions starting at once walk
    /// it once, not once each.
    counting: tokio::sync::Mutex<()>,
}

impl UserQuota {
    /// `limits` on `storage`, counted in `ledger`.
    pub fn new(limits: Quota, ledger: Arc<dyn Ledger>, storage: Arc<dyn Storage>) -> Self {
        UserQuota {
            limits,
            ledger,
            storage,
            counting: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the usage is counted.
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }

    /// The same limits and tree, counted in `ledger` instead.
    pub fn with_ledger(&self, ledger: Arc<dyn Ledger>) -> Self {
        UserQuota::new(self.limits, ledger, self.storage.clone())
    }

    /// The usage now: as recorded, or counted from the tree when nothing is.
    pub async fn usage(&self) -> Result<Usage, StorageError> {
        if let Some(usage) = self.ledger.usage().await.map_err(unavailable)? {
            return Ok(usage);
        }
        let _counting = self.counting.lock().await;
        if let Some(usage) = self.ledger.usage().await.map_err(unavailable)? {
            return Ok(usage);
        }
        let counted = count(&*self.storage).await?;
        self.ledger.start(counted).await.map_err(unavailable)
    }

    /// Admits an upload to `path` in `mode` whose file has `existing` size
    /// now (`None`: there is none), or refuses it with
    /// [`StorageError::QuotaExceeded`] when the user is at a limit already
    /// and the upload can only grow the tree (a new file, an append);
    /// a new file is counted from here. The upload must then be
    /// [`Admitted::meter`]ed.
    pub async fn admit(
        self: &Arc<Self>,
        path: &VirtualPath,
        mode: WriteMode,
        existing: Option<u64>,
    ) -> Result<Admitted, StorageError> {
        let usage = self.usage().await?;
        let new_file = existing.is_none();
        // A new file or an append can only grow; a file written over may
        // end no larger than it was, so only its growth is refused.
        let grows = new_file || mode == WriteMode::Append;
        if grows && self.limits.bytes.is_some_and(|limit| usage.bytes >= limit) {
            return Err(StorageError::QuotaExceeded);
        }
        if new_file {
            let one = Change { bytes: 0, files: 1 };
            if !self.reserve(one).await? {
                return Err(StorageError::QuotaExceeded);
            }
        }
        let old = existing.unwrap_or(0);
        let start = match mode {
            WriteMode::Replace { .. } | WriteMode::CreateNew => 0,
            WriteMode::Append => old,
            WriteMode::At(offset) => offset,
        };
        Ok(Admitted {
            admission: Some(Admission {
                quota: self.clone(),
                path: path.clone(),
                old,
                start,
            }),
            reserved: 0,
        })
    }

    /// Counts a file of `size` bytes that is gone (DELE, or replaced by RNTO).
    pub async fn removed(&self, size: u64) {
        self.settle(Change {
            bytes: -signed(size),
            files: -1,
        })
        .await;
    }

    async fn reserve(&self, change: Change) -> Result<bool, StorageError> {
        self.ledger
            .reserve(change, self.limits)
            .await
            .map_err(unavailable)
    }

    /// Records what happened; a ledger that cannot take it now is logged:
    /// the usage is then off by `change` until it is counted again.
    async fn settle(&self, change: Change) {
        if change == Change::default() {
            return;
        }
        if let Err(err) = self.ledger.adjust(change).await {
            tracing::error!(
                %err,
                bytes = change.bytes,
                files = change.files,
                "quota usage could not be updated"
            );
        }
    }
}

/// An upload the quota let start, and what it holds of the quota until it
/// ends. However it ends (finished, failed, abandoned, or never started),
/// the file is looked at and the ledger set to what really changed.
pub struct Admitted {
    admission: Option<Admission>,
    /// Bytes reserved beyond the file's old size.
    reserved: u64,
}

struct Admission {
    quota: Arc<UserQuota>,
    path: VirtualPath,
    /// The file's size before the upload (0 for a new one).
    old: u64,
    /// Where the upload's first byte goes.
    start: u64,
}

impl Admitted {
    /// Puts `upload` under the quota.
    pub fn meter(self, upload: Box<dyn Upload>) -> Box<dyn Upload> {
        Box::new(Metered {
            inner: Some(upload),
            written: 0,
            admitted: self,
        })
    }

    /// How far past its old size the file is once `written` bytes are in.
    fn growth(&self, written: u64) -> u64 {
        self.admission.as_ref().map_or(0, |admission| {
            (admission.start + written).saturating_sub(admission.old)
        })
    }

    /// Makes sure `growth` bytes beyond the old size are reserved: a chunk
    /// more than needed when the quota has it, else just what is needed.
    async fn cover(&mut self, growth: u64) -> io::Result<()> {
        let Some(admission) = &self.admission else {
            return Ok(());
        };
        if growth <= self.reserved {
            return Ok(());
        }
        let needed = growth - self.reserved;
        let mut asks = vec![needed.max(CHUNK)];
        if needed < CHUNK {
            asks.push(needed);
        }
        for ask in asks {
            let change = Change {
                bytes: signed(ask),
                files: 0,
            };
            if admission
                .quota
                .reserve(change)
                .await
                .map_err(io::Error::other)?
            {
                self.reserved += ask;
                return Ok(());
            }
        }
        Err(io::Error::from(io::ErrorKind::QuotaExceeded))
    }

    /// Sets the ledger to what the upload changed, from the file as it is
    /// now; once settled, dropping it does nothing more.
    async fn settle(&mut self) {
        if let Some(admission) = self.admission.take() {
            admission.settle(self.reserved).await;
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            let reserved = self.reserved;
            spawn_settle(async move { admission.settle(reserved).await });
        }
    }
}

impl Admission {
    async fn settle(self, reserved: u64) {
        let now = match self.quota.storage.metadata(&self.path).await {
            Ok(meta) if meta.kind == FileKind::File => Some(meta.size),
            Ok(_) | Err(StorageError::NotFound) => None,
            Err(err) => {
                tracing::error!(
                    %err,
                    path = self.path.as_str(),
                    "quota: cannot see what an upload changed; its reservation stays counted"
                );
                return;
            }
        };
        let change = Change {
            bytes: signed(now.unwrap_or(0)) - signed(self.old) - signed(reserved),
            // A file that existed was counted, a new one's place reserved at
            // admission: either way one file is counted for it now.
            files: i64::from(now.is_some()) - 1,
        };
        self.quota.settle(change).await;
    }
}

/// An upload under a quota (see the module's docs). It never offers its
/// file for splice(2): every byte passes `write_block`, where it is counted.
/// `inner` is dropped before `admitted`, so an abandoned upload is gone
/// (an atomic one's temporary file removed) before its file is looked at.
struct Metered {
    inner: Option<Box<dyn Upload>>,
    written: u64,
    admitted: Admitted,
}

#[async_trait]
impl Upload for Metered {
    async fn write_block(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
        let after = self.written + block.len() as u64;
        self.admitted.cover(self.admitted.growth(after)).await?;
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("upload finished"))?;
        let buffer = inner.write_block(block).await?;
        self.written = after;
        Ok(buffer)
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StorageError> {
        let inner = self.inner.take().ok_or(StorageError::Unsupported)?;
        let result = inner.finish().await;
        self.admitted.settle().await;
        result
    }
}

/// Runs a settlement after its owner is gone, where a runtime is.
fn spawn_settle(work: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}

/// What `storage` holds: every regular file under its root, by walking it.
pub async fn count(storage: &dyn Storage) -> Result<Usage, StorageError> {
    let mut usage = Usage::default();
    let mut dirs = vec![VirtualPath::root()];
    while let Some(dir) = dirs.pop() {
        let mut entries = storage.list(&dir).await?;
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            match entry.metadata.kind {
                FileKind::File => {
                    usage.bytes = usage.bytes.saturating_add(entry.metadata.size);
                    usage.files += 1;
                }
                FileKind::Dir => dirs.push(dir.join(&entry.name)),
                // A link's target is counted where it is.
                FileKind::Symlink => {}
            }
        }
    }
    Ok(usage)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unavailable(err: LedgerError) -> StorageError {
    StorageError::Io(io::Error::other(format!("quota usage unavailable: {err}")))
}

#[cfg(test)]
mod tests;
