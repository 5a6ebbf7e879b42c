//! Local-disk storage, confined beneath one base directory.
//!
//! This module owns the mapping from [`VirtualPath`]s onto a base directory.
//! Every open, mkdir, remove, rename, stat and directory read goes through a
//! `cap_std::fs::Dir` handle on the base, so the path is resolved *beneath*
//! it (`openat2(RESOLVE_BENEATH)` where the kernel has it, cap-std's own
//! resolver elsewhere): `..` or a symlink, absolute or relative, that would
//! lead outside fails, and that failure is reported as
//! [`StorageError::PermissionDenied`]. Symlinks that stay inside are followed;
//! [`Storage::resolve`] tells the session where they lead, so the permission
//! rules hold there too.
//!
//! It never opens an ambient path after [`FsStorage::new`], never runs a
//! blocking filesystem call on an async worker (everything goes through
//! `spawn_blocking`) with two exceptions: an open for reading or a `stat`
//! that the kernel can do from its caches alone (see [`open_cached`] and
//! [`describe_cached`]), and the one unlink
//! that removes an abandoned upload's temporary file (see `TempFile`'s
//! `Drop`), which runs wherever the upload is dropped so that the old file's
//! state is settled before the abort is answered. It never puts the real
//! base path into an error.

use std::ffi::{CStr, OsStr};
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cap_std::fs::{Dir, MetadataExt, OpenOptions};
use futures::stream::BoxStream;
use futures::StreamExt;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RawDir, ResolveFlags, Statx, StatxFlags, StatxTimestamp,
};
use tokio::sync::mpsc;

use super::block_writer::BlockWriter;
use super::{
    os_file_stream, BlockingFinish, DirEntry, EntryStream, FileKind, Metadata, NameStream,
    ReadStream, Storage, StorageError, Upload, WriteMode,
};
use crate::path::VirtualPath;

/// How many listing entries go from the reading thread to the session in
/// one message. Each message wakes the session (a futex, an eventfd write, a
/// context switch), which per entry cost more than reading the entry; the
/// sizes were chosen by measurement (docs/performance.md, "Listings").
const ENTRY_BATCH: usize = 512;

/// The same for bare names (`NLST`): cheaper to read, so more of them per
/// message before the wake-ups stop showing.
const NAME_BATCH: usize = 2048;

/// Bytes of directory entries one getdents(2) call may return.
const GETDENTS_BUFFER: usize = 32 * 1024;

/// How many batches may wait between the reading thread and the session:
/// enough to keep the disk busy, small enough that a listing holds at most
/// four batches (two waiting, one being filled, one being sent; about
/// 300 KiB), so a listing of a million files costs no more memory than one
/// of ten thousand.
const LIST_CHANNEL_CAPACITY: usize = 2;

/// A lookup beneath the base that the kernel answers from its caches alone
/// or not at all (`EAGAIN`), for the opens and stats done on the async
/// worker ([`open_cached`], [`describe_cached`]).
const FROM_CACHES: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::CACHED);

/// How often an atomic upload tries a fresh temporary name when one is taken
/// (e.g. left behind by a crash of a process that had the same pid).
const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Distinguishes temporary upload files made by this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A user's tree on the local disk, rooted at a base directory that no path
/// can leave.
///
/// Symlinks: [`Storage::metadata`] and listings report a link whose target
/// resolves inside the base as its target (a linked directory is a `Dir`, so
/// `CWD` into it works); a link that dangles or points outside is reported
/// as [`FileKind::Symlink`] of size 0 and is never followed.
#[derive(Debug)]
pub struct FsStorage {
    base: Arc<Dir>,
    sync: UploadSync,
}

/// Which uploads are flushed to the disk (fsync) before their `226`.
///
/// A `226` without a flush means the bytes are in the page cache: a power
/// cut or a kernel crash in the next seconds can lose them. That is what
/// every common FTP server (and rsync) does; the flush costs the client a
/// wait for the disk, about 0.3 s per GiB on the machine in
/// docs/performance.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UploadSync {
    /// Every upload, in every mode.
    Always,
    /// Only an atomic upload that replaces an existing file, before the
    /// rename: otherwise a crash right after it could leave an empty file
    /// where the old one was on filesystems that do not order the rename
    /// after the data (XFS; ext4 with `noauto_da_alloc`). New files, appends
    /// and resumed uploads are not flushed.
    #[default]
    Replaced,
    /// None.
    Never,
}

impl FsStorage {
    /// Opens `base` as the root of the storage; fails if it is not a directory.
    pub fn new(base: &Path) -> io::Result<Self> {
        let dir = Dir::open_ambient_dir(base, cap_std::ambient_authority())?;
        Ok(FsStorage {
            base: Arc::new(dir),
            sync: UploadSync::default(),
        })
    }

    /// Sets which uploads are flushed to the disk before they count as done.
    pub fn with_upload_sync(mut self, sync: UploadSync) -> Self {
        self.sync = sync;
        self
    }

    /// Runs `op` on the blocking pool with the base directory.
    async fn on_base<T, F>(&self, op: F) -> Result<T, StorageError>
    where
        F: FnOnce(&Dir) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        let base = Arc::clone(&self.base);
        run_blocking(move || op(&base)).await
    }

    /// Opens the regular file at `path` for reading, with its size: from
    /// the kernel's caches on this thread where it can, else on the
    /// blocking pool.
    async fn open_file(&self, path: &VirtualPath) -> Result<(std::fs::File, u64), StorageError> {
        let path = beneath(path)?;
        match open_cached(&self.base, &path) {
            Some(opened) => Ok(opened),
            None => self.on_base(move |base| open_regular(base, &path)).await,
        }
    }

    /// Opens directory `path` for reading its entries; also returns its
    /// path beneath the base.
    async fn open_listing(&self, path: &VirtualPath) -> Result<(PathBuf, OwnedFd), StorageError> {
        let path = beneath(path)?;
        self.on_base(move |base| {
            // Resolved beneath the base like every other open; cap-std's
            // handle may be O_PATH, so the entries are read through a fresh
            // descriptor of the same directory (`.` resolves nowhere else).
            let dir = base.open_dir(&path)?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd =
                rustix::fs::openat(&dir, ".", flags, Mode::empty()).map_err(io::Error::from)?;
            Ok((path, fd))
        })
        .await
    }
}

/// Runs `op` on tokio's blocking pool, never on an async worker.
async fn run_blocking<T, F>(op: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result,
        Err(join) => Err(StorageError::Io(io::Error::other(join))),
    }
}

/// The path of `path` beneath the base, which every operation opens
/// relative to the base directory; cap-std names the base itself `.`.
/// A path that names an upload's temporary file is refused: a client that
/// could write there could stand in for another's upload, and one that
/// could create such names would make entries no listing shows.
/// Public for the microbenchmarks.
pub fn beneath(path: &VirtualPath) -> Result<PathBuf, StorageError> {
    if path.is_root() {
        return Ok(PathBuf::from("."));
    }
    let relative = path.relative();
    if relative
        .split('/')
        .any(|name| is_upload_in_progress(name.as_ref()))
    {
        return Err(StorageError::InvalidName);
    }
    Ok(PathBuf::from(relative))
}

/// Metadata of `path` as [`FsStorage`] reports it (see the type's doc on symlinks).
fn describe(base: &Dir, path: &Path) -> io::Result<Metadata> {
    let link = base.symlink_metadata(path)?;
    if link.file_type().is_symlink() {
        // Following fails for a link that dangles or leads out of the base.
        return Ok(match base.metadata(path) {
            Ok(target) => to_metadata(&target),
            Err(_) => to_metadata(&link),
        });
    }
    Ok(to_metadata(&link))
}

/// What a listing learns of entry `name` of directory `dir` (open as `fd`,
/// at path `dir` beneath the base), to be reported as [`describe`] reports
/// it: one `statx` for anything but a symlink, relative to the open
/// directory, without following. That is safe because the name is one
/// component read from that directory itself (never `.`, `..` or a path),
/// so it names nothing outside it; only a symlink needs resolving beneath
/// the base.
fn stat_entry(base: &Dir, dir: &Path, fd: BorrowedFd<'_>, name: &CStr) -> io::Result<Found> {
    let wanted = StatxFlags::TYPE
        | StatxFlags::MODE
        | StatxFlags::SIZE
        | StatxFlags::MTIME
        | StatxFlags::INO;
    let own = rustix::fs::statx(fd, name, AtFlags::SYMLINK_NOFOLLOW, wanted)?;
    if rustix::fs::FileType::from_raw_mode(own.stx_mode.into()) == rustix::fs::FileType::Symlink {
        let path = dir.join(OsStr::from_bytes(name.to_bytes()));
        if let Ok(target) = base.metadata(path) {
            return Ok(Found::Target(Box::new(to_metadata(&target))));
        }
    }
    Ok(Found::Own(EntryStat::from(&own)))
}

/// What the thread reading a directory hands over for one entry: kept raw,
/// because that thread is what a listing waits for, and turning it into
/// [`Metadata`] (a `String` for `unique`, a `SystemTime`) can as well be
/// done on the session's side.
enum Found {
    /// The entry itself, as `statx` saw it.
    Own(EntryStat),
    /// What a symlink inside the base leads to (boxed: links are rare, and
    /// batches stay small).
    Target(Box<Metadata>),
}

impl Found {
    fn into_metadata(self) -> Metadata {
        match self {
            Found::Own(stat) => stat.into_metadata(),
            Found::Target(metadata) => *metadata,
        }
    }
}

/// The fields of a `statx` result that [`Metadata`] needs.
struct EntryStat {
    mode: u16,
    size: u64,
    modified: Option<StatxTimestamp>,
    dev: u64,
    ino: u64,
}

impl From<&Statx> for EntryStat {
    fn from(stat: &Statx) -> Self {
        let has_mtime = stat.stx_mask & StatxFlags::MTIME.bits() != 0;
        EntryStat {
            mode: stat.stx_mode,
            size: stat.stx_size,
            modified: has_mtime.then_some(stat.stx_mtime),
            dev: rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            ino: stat.stx_ino,
        }
    }
}

impl EntryStat {
    /// [`Metadata`] as [`to_metadata`] makes it from cap-std's.
    fn into_metadata(self) -> Metadata {
        let kind = match rustix::fs::FileType::from_raw_mode(self.mode.into()) {
            rustix::fs::FileType::Directory => FileKind::Dir,
            rustix::fs::FileType::Symlink => FileKind::Symlink,
            _ => FileKind::File,
        };
        Metadata {
            kind,
            size: reachable_size(kind, self.size),
            modified: self.modified.as_ref().and_then(system_time),
            mode: u32::from(self.mode) & 0o7777,
            unique: Some(inode_unique(self.dev, self.ino)),
        }
    }
}

/// The `unique` value of an object on disk: device and inode in hex,
/// `803g1a2b`. Written by hand: a listing makes one per entry, and
/// `format!` took several times as long.
fn inode_unique(dev: u64, ino: u64) -> String {
    let mut out = String::with_capacity(2 * 16 + 1);
    push_hex(&mut out, dev);
    out.push('g');
    push_hex(&mut out, ino);
    out
}

/// Appends `n` in lower-case hex without leading zeros.
fn push_hex(out: &mut String, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        let digit = (n >> (shift * 4)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[digit as usize]));
    }
}

/// A `statx` timestamp as a `SystemTime`, `None` if it cannot be represented.
fn system_time(ts: &StatxTimestamp) -> Option<SystemTime> {
    let whole = Duration::from_secs(ts.tv_sec.unsigned_abs());
    let seconds = if ts.tv_sec >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(whole)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(whole)
    };
    seconds?.checked_add(Duration::from_nanos(ts.tv_nsec.into()))
}

/// The size a client is told. A symlink that is reported as one leads
/// nowhere the client can reach; its own size is the length of its target's
/// path, which would tell how long the real base path is.
fn reachable_size(kind: FileKind, size: u64) -> u64 {
    match kind {
        FileKind::Symlink => 0,
        FileKind::File | FileKind::Dir => size,
    }
}

fn to_metadata(meta: &cap_std::fs::Metadata) -> Metadata {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::File
    };
    Metadata {
        kind,
        size: reachable_size(kind, meta.len()),
        modified: meta.modified().ok().map(|t| t.into_std()),
        mode: meta.mode() & 0o7777,
        unique: Some(inode_unique(meta.dev(), meta.ino())),
    }
}

/// Refuses to open anything but a regular file (or nothing at all) at `path`:
/// opening a FIFO or device would block a pool thread or worse.
/// Returns whether a file exists at `path`.
fn expect_file_or_nothing(base: &Dir, path: &Path) -> Result<bool, StorageError> {
    match base.metadata(path) {
        Ok(meta) if meta.is_dir() => Err(StorageError::IsADirectory),
        Ok(meta) if !meta.is_file() => Err(StorageError::PermissionDenied),
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Opens the file at `path` for reading, with its size: what was opened is
/// judged (the path may have changed since the check), and its size comes
/// from the same trip to the blocking pool, so RETR needs no separate stat.
fn open_regular(base: &Dir, path: &Path) -> Result<(std::fs::File, u64), StorageError> {
    expect_file_or_nothing(base, path)?;
    let file = base.open(path)?.into_std();
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(StorageError::IsADirectory);
    }
    Ok((file, meta.len()))
}

/// Opens the regular file at `path` for reading right here, on the async
/// worker, when the kernel can do it without waiting for a disk or a
/// server: every step of the path must come from the dentry cache
/// (`RESOLVE_CACHED`, Linux 5.12: the test io_uring makes before it opens a
/// file inline instead of on a worker thread). The path resolves beneath the
/// base as in cap-std's own `openat2`, and, as in [`open_regular`], what is
/// there is checked before it is opened and again after.
///
/// `None` when the kernel can't, or when anything but a regular file is
/// there: the caller then takes the blocking path, which also gives the
/// error. This saves a small download the trip to the blocking pool, which
/// was most of its cost (docs/performance.md).
fn open_cached(base: &Dir, path: &Path) -> Option<(std::fs::File, u64)> {
    let open = |flags| rustix::fs::openat2(base, path, flags, Mode::empty(), FROM_CACHES).ok();
    // DONT_SYNC: what the open just cached, no round trip to a network
    // filesystem's server.
    let regular_size = |fd: &OwnedFd| {
        let how = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
        let stat = rustix::fs::statx(fd, c"", how, StatxFlags::TYPE | StatxFlags::SIZE).ok()?;
        let regular = FileType::from_raw_mode(stat.stx_mode.into()) == FileType::RegularFile;
        regular.then_some(stat.stx_size)
    };
    regular_size(&open(OFlags::PATH | OFlags::CLOEXEC)?)?;
    let file = open(OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC)?;
    let size = regular_size(&file)?;
    Some((file.into(), size))
}

/// [`describe`] from the kernel's caches alone, on this thread: the same
/// resolution beneath the base (`openat2`, `RESOLVE_CACHED`), one `statx` of
/// what it found. `None` when the kernel would have to read the disk, for a
/// symlink (whose target is resolved on the blocking pool), or on any error
/// but "not there", which the blocking path then reports as it always does.
/// An upload's checks (the target, its directory) and a `SIZE` or `MDTM`
/// are then no trip to the blocking pool.
fn describe_cached(base: &Dir, path: &Path) -> Option<Result<Metadata, StorageError>> {
    let how = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let found = match rustix::fs::openat2(base, path, how, Mode::empty(), FROM_CACHES) {
        Ok(found) => found,
        Err(rustix::io::Errno::NOENT) => return Some(Err(StorageError::NotFound)),
        Err(_) => return None,
    };
    let wanted = StatxFlags::TYPE
        | StatxFlags::MODE
        | StatxFlags::SIZE
        | StatxFlags::MTIME
        | StatxFlags::INO;
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC;
    let own = rustix::fs::statx(&found, c"", flags, wanted).ok()?;
    if FileType::from_raw_mode(own.stx_mode.into()) == FileType::Symlink {
        return None;
    }
    Some(Ok(EntryStat::from(&own).into_metadata()))
}

#[async_trait]
impl Storage for FsStorage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        let path = beneath(path)?;
        if let Some(cached) = describe_cached(&self.base, &path) {
            return cached;
        }
        self.on_base(move |base| Ok(describe(base, &path)?)).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        let (path, dir) = self.open_listing(path).await?;
        let base = Arc::clone(&self.base);
        let stat = move |dir: BorrowedFd<'_>, name: &CStr| {
            match stat_entry(&base, &path, dir, name) {
                Ok(found) => Some(found),
                // Deleted since it was read, or unreadable: one entry
                // must not break the whole listing.
                Err(err) => {
                    tracing::debug!(?name, error = %err, "skipping listing entry");
                    None
                }
            }
        };
        Ok(read_in_batches(dir, ENTRY_BATCH, stat, |name, found| {
            DirEntry {
                name,
                metadata: found.into_metadata(),
            }
        }))
    }

    /// Names straight from the directory (getdents), no metadata read.
    async fn list_names(&self, path: &VirtualPath) -> Result<NameStream, StorageError> {
        let (_, dir) = self.open_listing(path).await?;
        Ok(read_in_batches(
            dir,
            NAME_BATCH,
            |_, _| Some(()),
            |name, ()| name,
        ))
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let (file, _) = self.open_file(path).await?;
        Ok(os_file_stream(file, offset)?)
    }

    async fn open_os_file(
        &self,
        path: &VirtualPath,
    ) -> Result<Option<(std::fs::File, u64)>, StorageError> {
        Ok(Some(self.open_file(path).await?))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let target = beneath(path)?;
        let (base, sync) = (Arc::clone(&self.base), self.sync);
        let upload = run_blocking(move || FsUpload::open(base, target, mode, sync)).await?;
        Ok(Box::new(upload))
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let path = beneath(path)?;
        self.on_base(move |base| Ok(base.create_dir(&path)?)).await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let path = beneath(path)?;
        self.on_base(move |base| Ok(base.remove_dir(&path)?)).await
    }

    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let path = beneath(path)?;
        // unlinkat never follows the final component: a link is removed, not its target.
        self.on_base(move |base| Ok(base.remove_file(&path)?)).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let (from, to) = (beneath(from)?, beneath(to)?);
        self.on_base(move |base| Ok(base.rename(&from, base, &to)?))
            .await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        let path = beneath(path)?;
        self.on_base(move |base| {
            // A FIFO or device is never opened (the open could block).
            let meta = base.metadata(&path)?;
            if !meta.is_file() && !meta.is_dir() {
                return Err(StorageError::Unsupported);
            }
            // futimens on a read-only descriptor: no write access to the
            // content is needed. (cap-std's directory handles are O_PATH,
            // which futimens refuses, so directories are opened this way too.)
            let handle = base.open(&path)?.into_std();
            handle.set_modified(time)?;
            Ok(())
        })
        .await
    }

    async fn resolve(&self, path: &VirtualPath) -> Result<VirtualPath, StorageError> {
        if free_of_links(&self.base, &beneath(path)?) {
            return Ok(path.clone());
        }
        let path = path.clone();
        self.on_base(move |base| follow_links(base, &path)).await
    }
}

/// Most links the resolution of one path follows, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// Whether the kernel can tell right here, from its caches (as in
/// [`open_cached`]), that no component of `path` is a symlink: the common
/// case, which then costs a command no trip to the blocking pool. A path
/// that doesn't exist yet (an upload's target) is free of links when its
/// directory is. `false` means "ask [`follow_links`]", not "there are links".
fn free_of_links(base: &Dir, path: &Path) -> bool {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::CACHED;
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let open = |path: &Path| rustix::fs::openat2(base, path, flags, Mode::empty(), resolve);
    match open(path) {
        Ok(_) => true,
        Err(rustix::io::Errno::NOENT) => match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => open(parent).is_ok(),
            _ => true,
        },
        Err(_) => false,
    }
}

/// [`Storage::resolve`] for the disk: walks `path` a component at a time
/// and replaces each symlink by what it holds, relative to the link's own
/// directory.
///
/// A link that leads out of the base (absolute, or `..` above it) or into a
/// loop is never followed by any operation; what such a path names is at
/// most the link itself, when it is the last component (its metadata, its
/// removal), so that is the path returned, and any other such path is
/// refused.
fn follow_links(base: &Dir, path: &VirtualPath) -> Result<VirtualPath, StorageError> {
    let mut pending: Vec<String> = path.relative().rsplit('/').map(str::to_owned).collect();
    let mut real: Vec<String> = Vec::new();
    let mut links = 0;
    // Where the last component, if it is a link, is itself.
    let mut last_link: Option<String> = None;
    let unreachable = |last_link: Option<String>| {
        last_link
            .map(|p| VirtualPath::new(&p))
            .ok_or(StorageError::PermissionDenied)
    };
    while let Some(name) = pending.pop() {
        match name.as_str() {
            "" | "." => continue,
            ".." => {
                if real.pop().is_none() {
                    return unreachable(last_link);
                }
                continue;
            }
            _ => real.push(name),
        }
        let here = real.join("/");
        match base.symlink_metadata(&here) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if pending.is_empty() && last_link.is_none() {
                    last_link = Some(here.clone());
                }
                links += 1;
                let target = base.read_link_contents(&here)?;
                if links > MAX_LINKS || target.has_root() {
                    return unreachable(last_link);
                }
                // A name a rule can't be checked on is not followed.
                let target = target.to_str().ok_or(StorageError::PermissionDenied)?;
                real.pop();
                pending.extend(target.split('/').rev().map(str::to_owned));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                // Nothing exists from here on, so there is no link to follow.
                real.extend(pending.drain(..).rev());
                break;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(VirtualPath::new(&real.join("/")))
}

/// Names of uploads in progress, or left behind by a crash mid-upload
/// (SIGKILL, power loss): never listed, so clients see only whole files.
pub const TEMP_PREFIX: &str = ".aioftpd-upload.";

fn is_upload_in_progress(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// A batch of directory entries as the reading thread hands them over:
/// the names' bytes in one buffer (no allocation per entry on that thread),
/// each with what it learned, and the error that ended the reading, if any.
struct Batch<T> {
    names: Vec<u8>,
    entries: Vec<(Range<usize>, T)>,
    error: Option<io::Error>,
}

impl<T> Batch<T> {
    fn with_capacity(entries: usize) -> Self {
        Batch {
            names: Vec::with_capacity(entries * 24),
            entries: Vec::with_capacity(entries),
            error: None,
        }
    }
}

/// Streams directory `dir`: on a blocking thread, `stat` learns what it
/// needs of each entry from the directory and the entry's name (`None`
/// skips the entry), leaving out `.`, `..` and uploads in progress; on the
/// stream's side, `make` builds the item from the name (lossily converted
/// to UTF-8) and what `stat` learned. The thread sends `batch_size` entries
/// at a time and stops at the first error or once the stream is dropped.
fn read_in_batches<T, U, S, M>(
    dir: OwnedFd,
    batch_size: usize,
    mut stat: S,
    mut make: M,
) -> BoxStream<'static, Result<U, StorageError>>
where
    T: Send + 'static,
    U: Send + 'static,
    S: FnMut(BorrowedFd<'_>, &CStr) -> Option<T> + Send + 'static,
    M: FnMut(String, T) -> U + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Batch<T>>(LIST_CHANNEL_CAPACITY);
    // Not awaited: the task ends when the directory is read or the stream
    // is dropped, whichever comes first.
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(GETDENTS_BUFFER);
        let mut entries = RawDir::new(&dir, buf.spare_capacity_mut());
        let mut batch = Batch::with_capacity(batch_size);
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    batch.error = Some(err.into());
                    break;
                }
            };
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." || is_upload_in_progress(OsStr::from_bytes(bytes)) {
                continue;
            }
            if let Some(found) = stat(dir.as_fd(), name) {
                let start = batch.names.len();
                batch.names.extend_from_slice(bytes);
                batch.entries.push((start..batch.names.len(), found));
            }
            if batch.entries.len() == batch_size {
                let full = std::mem::replace(&mut batch, Batch::with_capacity(batch_size));
                if tx.blocking_send(full).is_err() {
                    return;
                }
            }
        }
        if !batch.entries.is_empty() || batch.error.is_some() {
            let _ = tx.blocking_send(batch);
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let batch = rx.recv().await?;
        Some((batch, rx))
    })
    .map(move |batch| {
        let Batch {
            names,
            entries,
            error,
        } = batch;
        let made: Vec<Result<U, StorageError>> = entries
            .into_iter()
            .map(|(range, found)| {
                let name = String::from_utf8_lossy(&names[range]).into_owned();
                Ok(make(name, found))
            })
            .chain(error.map(|err| Err(err.into())))
            .collect();
        futures::stream::iter(made)
    })
    .flatten()
    .boxed()
}

/// What [`Upload::finish`] does after the last byte is flushed.
enum Commit {
    /// Nothing more: the bytes are already where they belong.
    Nothing,
    /// Cut the file where the upload ended (`REST` + `STOR`).
    TruncateAtEnd,
    /// Rename the temporary file over the target.
    RenameOver(TempFile),
}

/// An upload to the local disk.
struct FsUpload {
    /// Written from its offset on: the next byte goes where the last went
    /// ([`Commit::TruncateAtEnd`] cuts the file there).
    file: BlockWriter,
    /// Opened with `O_APPEND` (APPE).
    append: bool,
    commit: Commit,
    /// Flush the file to the disk before committing it.
    sync: bool,
}

impl FsUpload {
    /// Opens the file as `mode` says; runs on a blocking thread.
    fn open(
        base: Arc<Dir>,
        target: PathBuf,
        mode: WriteMode,
        sync: UploadSync,
    ) -> Result<Self, StorageError> {
        let mut options = OpenOptions::new();
        options.write(true);
        let mut replaces = false;
        let (file, commit) = match mode {
            WriteMode::Replace { atomic: true } => {
                replaces = expect_file_or_nothing(&base, &target)?;
                let (file, temp) = TempFile::create_beside(base, target)?;
                (file, Commit::RenameOver(temp))
            }
            WriteMode::Replace { atomic: false } => {
                expect_file_or_nothing(&base, &target)?;
                options.create(true).truncate(true);
                (base.open_with(&target, &options)?, Commit::Nothing)
            }
            WriteMode::At(offset) => {
                expect_file_or_nothing(&base, &target)?;
                options.create(true);
                let mut file = base.open_with(&target, &options)?;
                file.seek(SeekFrom::Start(offset))?;
                (file, Commit::TruncateAtEnd)
            }
            WriteMode::Append => {
                expect_file_or_nothing(&base, &target)?;
                options.append(true).create(true);
                (base.open_with(&target, &options)?, Commit::Nothing)
            }
            // O_CREAT|O_EXCL never opens an existing object, so no check is needed.
            WriteMode::CreateNew => {
                options.create_new(true);
                (base.open_with(&target, &options)?, Commit::Nothing)
            }
        };
        Ok(FsUpload {
            file: BlockWriter::new(file.into_std()),
            append: matches!(mode, WriteMode::Append),
            commit,
            sync: match sync {
                UploadSync::Always => true,
                UploadSync::Replaced => replaces,
                UploadSync::Never => false,
            },
        })
    }
}

#[async_trait]
impl Upload for FsUpload {
    async fn write_block(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
        self.file.write_block(block).await
    }

    fn os_file(&self) -> Option<std::fs::File> {
        match self.append {
            true => None,
            false => self.file.file()?.try_clone().ok(),
        }
    }

    fn blocking_finish(&mut self) -> Option<BlockingFinish> {
        let file = self.file.take_idle()?;
        let commit = std::mem::replace(&mut self.commit, Commit::Nothing);
        let sync = self.sync;
        Some(Box::new(move || commit_upload(file, commit, sync)))
    }

    async fn finish(self: Box<Self>) -> Result<(), StorageError> {
        let FsUpload {
            file, commit, sync, ..
        } = *self;
        // Waits for the write in flight and reports its error.
        let file = file.into_file().await?;
        run_blocking(move || commit_upload(file, commit, sync)).await
    }
}

/// Makes an upload's bytes final as `commit` says; on a blocking thread.
fn commit_upload(mut file: std::fs::File, commit: Commit, sync: bool) -> Result<(), StorageError> {
    if let Commit::TruncateAtEnd = commit {
        let end = file.stream_position()?;
        file.set_len(end)?;
    }
    if sync {
        file.sync_data()?;
    }
    if let Commit::RenameOver(temp) = commit {
        temp.rename_over_target()?;
    }
    // Dropped here, so close() also runs on the blocking thread.
    drop(file);
    Ok(())
}

/// The temporary file of an atomic upload, removed unless it was renamed
/// over its target.
struct TempFile {
    base: Arc<Dir>,
    temp: PathBuf,
    target: PathBuf,
    renamed: bool,
}

impl TempFile {
    /// Creates `.aioftpd-upload.<pid>.<n>.tmp` next to `target` (see [`TEMP_PREFIX`]); a rename
    /// is atomic only within one directory (and one filesystem).
    fn create_beside(
        base: Arc<Dir>,
        target: PathBuf,
    ) -> Result<(cap_std::fs::File, Self), StorageError> {
        let dir = target.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut attempts = 0;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!("{TEMP_PREFIX}{}.{n}.tmp", std::process::id()));
            match base.open_with(&temp, &options) {
                Ok(file) => {
                    let guard = TempFile {
                        base,
                        temp,
                        target,
                        renamed: false,
                    };
                    return Ok((file, guard));
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    attempts += 1;
                    if attempts == TEMP_NAME_ATTEMPTS {
                        return Err(err.into());
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Makes the upload visible under the target name.
    fn rename_over_target(mut self) -> Result<(), StorageError> {
        self.base.rename(&self.temp, &self.base, &self.target)?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.renamed {
            return;
        }
        // One unlink, done inline (on an async worker if the upload is
        // dropped there: the exception the module doc names) so the old
        // file's state is settled the moment the upload is abandoned; a
        // deferred removal could be lost at shutdown.
        if let Err(err) = self.base.remove_file(&self.temp) {
            tracing::warn!(temp = ?self.temp, error = %err, "could not remove abandoned upload");
        }
    }
}

// The behaviour every backend shares is tested in `conformance`; what is
// left here is the disk's own: symlinks, confinement, temporary files.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::{bare_names, names, read_all, upload, vp};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;

    use futures::TryStreamExt;
    use rustix::fs::{Timespec, Timestamps};

    /// A storage on `<tmp>/base`, next to `<tmp>/outside/secret.txt` that no
    /// path may reach.
    struct Fixture {
        tmp: tempfile::TempDir,
        storage: FsStorage,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::create_dir(tmp.path().join("base")).unwrap();
            std::fs::create_dir(tmp.path().join("outside")).unwrap();
            std::fs::write(tmp.path().join("outside/secret.txt"), b"secret").unwrap();
            let storage = FsStorage::new(&tmp.path().join("base")).unwrap();
            Fixture { tmp, storage }
        }

        fn base(&self) -> PathBuf {
            self.tmp.path().join("base")
        }

        fn write(&self, rel: &str, data: &[u8]) {
            std::fs::write(self.base().join(rel), data).unwrap();
        }

        fn read(&self, rel: &str) -> Vec<u8> {
            std::fs::read(self.base().join(rel)).unwrap()
        }

        fn link(&self, target: &str, rel: &str) {
            std::os::unix::fs::symlink(target, self.base().join(rel)).unwrap();
        }

        fn secret(&self) -> Vec<u8> {
            std::fs::read(self.tmp.path().join("outside/secret.txt")).unwrap()
        }

        fn outside_names(&self) -> Vec<String> {
            names_in(&self.tmp.path().join("outside"))
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[track_caller]
    fn assert_refused<T>(result: Result<T, StorageError>) {
        match result {
            Err(StorageError::PermissionDenied | StorageError::NotFound) => {}
            Err(other) => panic!("expected a refusal, got {other:?}"),
            Ok(_) => panic!("escape succeeded"),
        }
    }

    const ATOMIC: WriteMode = WriteMode::Replace { atomic: true };
    const IN_PLACE: WriteMode = WriteMode::Replace { atomic: false };

    #[test]
    fn new_refuses_a_file_as_base() {
        let fx = Fixture::new();
        fx.write("file", b"x");
        assert!(FsStorage::new(&fx.base().join("file")).is_err());
        assert!(FsStorage::new(&fx.base().join("missing")).is_err());
    }

    #[tokio::test]
    async fn root_maps_to_the_base_directory() {
        let fx = Fixture::new();
        fx.write("a.txt", b"abc");
        assert!(fx
            .storage
            .metadata(&VirtualPath::root())
            .await
            .unwrap()
            .is_dir());
        assert_eq!(names(&fx.storage, "/").await.unwrap(), ["a.txt"]);
    }

    /// What the caches answer on the async worker is what the blocking
    /// path answers, and a link always takes the blocking path.
    #[test]
    fn a_stat_from_the_caches_agrees_with_the_blocking_one() {
        let fx = Fixture::new();
        fx.write("a.txt", b"hello");
        std::fs::create_dir(fx.base().join("d")).unwrap();
        fx.write("d/b.txt", b"x");
        std::os::unix::fs::symlink("a.txt", fx.base().join("link")).unwrap();
        std::os::unix::fs::symlink("../outside", fx.base().join("out")).unwrap();
        let base = &fx.storage.base;
        let mut from_cache = 0;
        for path in [".", "a.txt", "d", "d/b.txt"] {
            // Warm the caches, as the blocking path does for the next command.
            let blocking = describe(base, Path::new(path)).unwrap();
            match describe_cached(base, Path::new(path)) {
                Some(Ok(cached)) => {
                    assert_eq!(cached, blocking, "{path}");
                    from_cache += 1;
                }
                Some(Err(err)) => panic!("{path}: {err}"),
                // The kernel may still have to read the disk: allowed.
                None => {}
            }
        }
        // Just looked up, on a kernel with RESOLVE_CACHED (Linux 5.12).
        assert!(from_cache > 0, "nothing came from the caches");
        assert!(matches!(
            describe_cached(base, Path::new("missing/deeper")),
            None | Some(Err(StorageError::NotFound))
        ));
        for link in ["link", "out/secret.txt", "out"] {
            assert!(
                !matches!(describe_cached(base, Path::new(link)), Some(Ok(_))),
                "{link} is answered the careful way"
            );
        }
    }

    #[tokio::test]
    async fn metadata_reports_kind_size_mode_and_unique() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt};
        let fx = Fixture::new();
        fx.write("a.txt", b"hello");
        let real = fx.base().join("a.txt");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = fx.storage.metadata(&vp("/a.txt")).await.unwrap();
        let std_meta = std::fs::metadata(&real).unwrap();
        assert_eq!(meta.kind, FileKind::File);
        assert_eq!(meta.size, 5);
        assert_eq!(meta.mode, 0o640);
        assert_eq!(meta.modified, Some(std_meta.modified().unwrap()));
        let unique = format!("{:x}g{:x}", std_meta.dev(), std_meta.ino());
        assert_eq!(meta.unique, Some(unique));
    }

    #[test]
    fn inode_unique_is_hex_device_g_inode() {
        for (dev, ino) in [(0, 0), (0x803, 0x1a2b), (1, u64::MAX), (u64::MAX, 16)] {
            assert_eq!(inode_unique(dev, ino), format!("{dev:x}g{ino:x}"));
        }
    }

    #[tokio::test]
    async fn dotdot_cannot_escape() {
        let fx = Fixture::new();
        // VirtualPath clamps `..` at the root, so this names /outside/secret.txt in the base.
        assert_refused(read_all(&fx.storage, "/../outside/secret.txt", 0).await);
        assert_refused(read_all(&fx.storage, "/../../../../etc/passwd", 0).await);
    }

    /// The open on the async worker must judge a path as the blocking one
    /// does: a regular file beneath the base, and nothing else (the rest is
    /// left to the blocking path, which refuses or opens it).
    #[test]
    fn the_cached_open_opens_only_regular_files_beneath_the_base() {
        let fx = Fixture::new();
        fx.write("file.txt", b"hello");
        std::fs::create_dir(fx.base().join("dir")).unwrap();
        fx.link("file.txt", "inside");
        // Following a link whose atime relatime would update needs more than
        // the caches, and so goes the blocking way (as it should). A fresh
        // link may or may not (its atime is coarse, its mtime fine-grained):
        // an atime after its ctime makes it need none.
        let later = Timespec {
            tv_sec: fx.base().join("inside").symlink_metadata().unwrap().ctime() + 3600,
            tv_nsec: 0,
        };
        let atime_only = Timestamps {
            last_access: later,
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
        };
        rustix::fs::utimensat(
            &*fx.storage.base,
            "inside",
            &atime_only,
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        fx.link("../outside/secret.txt", "leak");
        let absolute = fx.tmp.path().join("outside/secret.txt");
        fx.link(absolute.to_str().unwrap(), "absolute");
        rustix::fs::mknodat(&*fx.storage.base, "fifo", FileType::Fifo, Mode::RUSR, 0).unwrap();

        for path in ["file.txt", "inside"] {
            let (file, size) = open_cached(&fx.storage.base, Path::new(path))
                .unwrap_or_else(|| panic!("{path}: not opened from the caches"));
            assert_eq!(size, 5, "{path}");
            assert_eq!(io::read_to_string(file).unwrap(), "hello", "{path}");
        }
        let refused = [
            "dir",
            ".",
            "fifo",
            "leak",
            "absolute",
            "../outside/secret.txt",
        ];
        for path in refused.into_iter().chain(["missing", "file.txt/x"]) {
            assert!(
                open_cached(&fx.storage.base, Path::new(path)).is_none(),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn symlink_inside_base_is_followed() {
        let fx = Fixture::new();
        std::fs::create_dir(fx.base().join("real")).unwrap();
        fx.write("real/f.txt", b"inside");
        fx.link("real", "alias");
        fx.link("../f.txt", "real/up");
        fx.write("f.txt", b"top");
        assert!(fx.storage.metadata(&vp("/alias")).await.unwrap().is_dir());
        assert_eq!(
            read_all(&fx.storage, "/alias/f.txt", 0).await.unwrap(),
            b"inside"
        );
        assert_eq!(read_all(&fx.storage, "/real/up", 0).await.unwrap(), b"top");
        assert_eq!(names(&fx.storage, "/alias").await.unwrap(), ["f.txt", "up"]);
    }

    #[tokio::test]
    async fn resolve_follows_every_link_inside_the_base() {
        let fx = Fixture::new();
        std::fs::create_dir_all(fx.base().join("home/secret")).unwrap();
        std::fs::create_dir(fx.base().join("pub")).unwrap();
        fx.write("home/secret/s.txt", b"s");
        fx.link("../home/secret", "pub/link");
        fx.link("link/s.txt", "pub/file");
        fx.link("loop", "pub/loop");
        let storage = &fx.storage;
        let resolve = |path: &'static str| async move { storage.resolve(&vp(path)).await };
        assert_eq!(resolve("/pub").await.unwrap(), vp("/pub"));
        assert_eq!(resolve("/pub/new.txt").await.unwrap(), vp("/pub/new.txt"));
        assert_eq!(resolve("/").await.unwrap(), vp("/"));
        assert_eq!(
            resolve("/pub/link/s.txt").await.unwrap(),
            vp("/home/secret/s.txt")
        );
        assert_eq!(
            resolve("/pub/file").await.unwrap(),
            vp("/home/secret/s.txt")
        );
        assert_eq!(
            resolve("/pub/link/new/deeper").await.unwrap(),
            vp("/home/secret/new/deeper")
        );
        assert_refused(resolve("/pub/loop/x").await);
        assert_eq!(resolve("/pub/loop").await.unwrap(), vp("/pub/loop"));
    }

    /// No operation follows such a link; the most a path through it can
    /// name is the link itself.
    #[tokio::test]
    async fn resolve_stops_at_a_link_that_leads_out() {
        let fx = Fixture::new();
        std::fs::create_dir(fx.base().join("d")).unwrap();
        fx.link("/etc", "d/abs");
        fx.link("../../outside", "d/rel");
        fx.link("d", "alias");
        for path in ["/d/abs/passwd", "/alias/rel/x"] {
            assert_refused(fx.storage.resolve(&vp(path)).await);
        }
        for (path, link) in [("/d/abs", "/d/abs"), ("/alias/rel", "/d/rel")] {
            assert_eq!(fx.storage.resolve(&vp(path)).await.unwrap(), vp(link));
        }
    }

    #[tokio::test]
    async fn symlink_to_outside_base_is_refused() {
        let fx = Fixture::new();
        let outside = fx.tmp.path().join("outside");
        fx.link(outside.to_str().unwrap(), "abs");
        fx.link("/etc", "etc");
        fx.link("../outside", "rel");
        fx.link("../../../../../../../tmp", "deep");
        for link in ["/abs", "/etc", "/rel", "/deep"] {
            assert_refused(names(&fx.storage, link).await);
            assert_refused(read_all(&fx.storage, &format!("{link}/secret.txt"), 0).await);
            assert_refused(read_all(&fx.storage, &format!("{link}/passwd"), 0).await);
            for mode in [
                ATOMIC,
                IN_PLACE,
                WriteMode::Append,
                WriteMode::At(0),
                WriteMode::CreateNew,
            ] {
                assert_refused(upload(&fx.storage, &format!("{link}/new.txt"), mode, b"x").await);
                assert_refused(
                    upload(&fx.storage, &format!("{link}/secret.txt"), mode, b"x").await,
                );
            }
            assert_refused(fx.storage.mkdir(&vp(&format!("{link}/sub"))).await);
            assert_refused(fx.storage.remove(&vp(&format!("{link}/secret.txt"))).await);
            assert_refused(
                fx.storage
                    .rename(&vp(&format!("{link}/secret.txt")), &vp("/stolen"))
                    .await,
            );
            assert_refused(
                fx.storage
                    .set_modified(&vp(&format!("{link}/secret.txt")), SystemTime::UNIX_EPOCH)
                    .await,
            );
        }
        assert_eq!(fx.secret(), b"secret");
        assert_eq!(fx.outside_names(), ["secret.txt"]);
    }

    #[tokio::test]
    async fn symlink_to_outside_file_is_refused() {
        let fx = Fixture::new();
        fx.link("../outside/secret.txt", "leak");
        assert_refused(read_all(&fx.storage, "/leak", 0).await);
        for mode in [ATOMIC, IN_PLACE, WriteMode::Append, WriteMode::At(0)] {
            assert_refused(upload(&fx.storage, "/leak", mode, b"pwned").await);
        }
        assert_refused(
            fx.storage
                .set_modified(&vp("/leak"), SystemTime::UNIX_EPOCH)
                .await,
        );
        assert_eq!(fx.secret(), b"secret");
    }

    #[tokio::test]
    async fn escaping_symlink_is_reported_as_a_symlink() {
        let fx = Fixture::new();
        fx.link("../outside/secret.txt", "leak");
        fx.link("/etc", "etc");
        let meta = fx.storage.metadata(&vp("/leak")).await.unwrap();
        assert_eq!(meta.kind, FileKind::Symlink);
        let entries: Vec<DirEntry> = fx
            .storage
            .list(&vp("/"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.metadata.kind == FileKind::Symlink));
    }

    #[tokio::test]
    async fn remove_of_escaping_symlink_removes_only_the_link() {
        let fx = Fixture::new();
        fx.link("../outside/secret.txt", "leak");
        fx.storage.remove(&vp("/leak")).await.unwrap();
        assert!(names(&fx.storage, "/").await.unwrap().is_empty());
        assert_eq!(fx.secret(), b"secret");
    }

    #[tokio::test]
    async fn errors_do_not_reveal_the_base_path() {
        let fx = Fixture::new();
        fx.link("/etc", "etc");
        let base = fx.tmp.path().to_string_lossy().into_owned();
        let errors = [
            fx.storage.metadata(&vp("/missing")).await.unwrap_err(),
            fx.storage.list(&vp("/etc")).await.err().unwrap(),
            fx.storage.mkdir(&vp("/a/b/c")).await.unwrap_err(),
            fx.storage.rmdir(&vp("/")).await.unwrap_err(),
        ];
        for err in errors {
            assert!(!err.to_string().contains(&base), "{err}");
            assert!(!format!("{err:?}").contains(&base), "{err:?}");
        }
    }

    /// What the conformance suite checks through listings, on the disk
    /// itself: an atomic upload's temporary file lasts as long as the
    /// upload, and a refused one makes none.
    #[tokio::test]
    async fn an_atomic_uploads_temporary_file_lasts_as_long_as_the_upload() {
        let fx = Fixture::new();
        fx.write("a.txt", b"old");
        std::fs::create_dir(fx.base().join("d")).unwrap();
        let mut up = fx.storage.open_write(&vp("/a.txt"), ATOMIC).await.unwrap();
        up.write_block(b"half an upl".to_vec()).await.unwrap();
        assert_eq!(
            names_in(&fx.base()).len(),
            3,
            "the temporary file exists meanwhile"
        );
        drop(up);
        assert_eq!(names_in(&fx.base()), ["a.txt", "d"]);
        upload(&fx.storage, "/a.txt", ATOMIC, b"new content")
            .await
            .unwrap();
        assert_eq!(names_in(&fx.base()), ["a.txt", "d"]);
        assert!(matches!(
            upload(&fx.storage, "/d", ATOMIC, b"x").await,
            Err(StorageError::IsADirectory)
        ));
        assert_eq!(names_in(&fx.base()), ["a.txt", "d"]);
        assert_eq!(fx.read("a.txt"), b"new content");
    }

    /// The finish a splice loop runs in its last job commits as `finish`
    /// does; one dropped unrun abandons the upload as dropping it does.
    #[tokio::test]
    async fn a_blocking_finish_commits_or_abandons_like_the_upload_itself() {
        use std::io::Write as _;
        let fx = Fixture::new();
        fx.write("a.txt", b"old");
        for run in [false, true] {
            let mut up = fx.storage.open_write(&vp("/a.txt"), ATOMIC).await.unwrap();
            up.os_file().unwrap().write_all(b"spliced").unwrap();
            let finish = up.blocking_finish().expect("no write in flight");
            if run {
                finish().unwrap();
            } else {
                drop(finish);
            }
            drop(up);
            assert_eq!(names_in(&fx.base()), ["a.txt"], "no temporary file left");
            let expected: &[u8] = if run { b"spliced" } else { b"old" };
            assert_eq!(fx.read("a.txt"), expected);
        }
    }

    #[test]
    fn the_sync_policy_picks_which_uploads_are_flushed() {
        let fx = Fixture::new();
        fx.write("old.txt", b"old");
        let fresh = std::cell::Cell::new(0);
        let flushed = |mode, sync| {
            let base = Arc::clone(&fx.storage.base);
            let target = if matches!(mode, WriteMode::CreateNew) {
                fresh.set(fresh.get() + 1);
                beneath(&vp(&format!("/unique-{}.txt", fresh.get()))).unwrap()
            } else {
                beneath(&vp("/old.txt")).unwrap()
            };
            FsUpload::open(base, target, mode, sync).unwrap().sync
        };
        let new_file = |sync| {
            let base = Arc::clone(&fx.storage.base);
            FsUpload::open(base, beneath(&vp("/new.txt")).unwrap(), ATOMIC, sync)
                .unwrap()
                .sync
        };
        assert!(flushed(ATOMIC, UploadSync::Replaced), "a replaced file");
        assert!(!new_file(UploadSync::Replaced), "a new file");
        assert!(!flushed(IN_PLACE, UploadSync::Replaced));
        assert!(!flushed(WriteMode::Append, UploadSync::Replaced));
        assert!(!flushed(WriteMode::At(1), UploadSync::Replaced));
        for mode in [
            ATOMIC,
            IN_PLACE,
            WriteMode::Append,
            WriteMode::At(1),
            WriteMode::CreateNew,
        ] {
            assert!(flushed(mode, UploadSync::Always), "{mode:?}");
            assert!(!flushed(mode, UploadSync::Never), "{mode:?}");
        }
        assert!(new_file(UploadSync::Always));
        assert!(!new_file(UploadSync::Never));
    }

    #[tokio::test]
    async fn bytes_written_through_the_os_file_are_committed_by_finish() {
        use std::io::Write;
        let fx = Fixture::new();
        fx.write("a.txt", b"0123456789");
        fx.write("b.txt", b"old");
        for (name, mode, expected) in [
            ("a.txt", WriteMode::At(4), &b"0123ab"[..]),
            ("b.txt", ATOMIC, &b"ab"[..]),
            ("c.txt", IN_PLACE, &b"ab"[..]),
        ] {
            let path = VirtualPath::new(&format!("/{name}"));
            let upload = fx.storage.open_write(&path, mode).await.unwrap();
            // The offset is shared: finish truncates where these bytes end.
            upload.os_file().unwrap().write_all(b"ab").unwrap();
            upload.finish().await.unwrap();
            assert_eq!(fx.read(name), expected, "{name}");
        }
        // splice(2) refuses a file opened with O_APPEND.
        let path = VirtualPath::new("/a.txt");
        let upload = fx.storage.open_write(&path, WriteMode::Append).await;
        assert!(upload.unwrap().os_file().is_none());
    }

    #[tokio::test]
    async fn uploads_in_progress_are_not_listed() {
        let fx = Fixture::new();
        fx.write("done.txt", b"x");
        let mut up = fx
            .storage
            .open_write(&vp("/new.txt"), WriteMode::Replace { atomic: true })
            .await
            .unwrap();
        up.write_block(b"half".to_vec()).await.unwrap();
        assert_eq!(
            names_in(&fx.base()).len(),
            2,
            "the temporary file is on disk"
        );
        assert_eq!(names(&fx.storage, "/").await.unwrap(), ["done.txt"]);
    }

    #[tokio::test]
    async fn listing_non_utf8_names_does_not_fail() {
        let fx = Fixture::new();
        let name = OsStr::from_bytes(b"caf\xe9.txt");
        std::fs::write(fx.base().join(name), b"x").unwrap();
        let entries: Vec<DirEntry> = fx
            .storage
            .list(&vp("/"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "caf\u{fffd}.txt");
        assert_eq!(entries[0].metadata.size, 1);
    }

    /// Every kind of entry a listing meets, in `/mixed`.
    fn mixed_directory(fx: &Fixture) {
        std::fs::create_dir_all(fx.base().join("mixed/sub")).unwrap();
        fx.write("mixed/a.txt", b"hello");
        fx.write("mixed/.hidden", b"");
        fx.write(&format!("mixed/{TEMP_PREFIX}1.2.tmp"), b"half");
        std::fs::write(
            fx.base().join("mixed").join(OsStr::from_bytes(b"caf\xe9")),
            b"x",
        )
        .unwrap();
        fx.link("a.txt", "mixed/to-file");
        fx.link("sub", "mixed/to-dir");
        fx.link("../mixed/sub", "mixed/to-dir-up-and-back");
        fx.link("../../outside/secret.txt", "mixed/out");
        fx.link("/etc", "mixed/etc");
        fx.link("nowhere", "mixed/dangling");
    }

    #[tokio::test]
    async fn listed_metadata_is_what_metadata_reports() {
        let fx = Fixture::new();
        mixed_directory(&fx);
        let entries: Vec<DirEntry> = fx
            .storage
            .list(&vp("/mixed"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(entries.len(), 10, "{entries:?}");
        for entry in &entries {
            if entry.name.contains('\u{fffd}') {
                continue; // the lossy name names no file
            }
            let path = format!("/mixed/{}", entry.name);
            let expected = fx.storage.metadata(&vp(&path)).await.unwrap();
            assert_eq!(entry.metadata, expected, "{path}");
        }
        let kind = |name: &str| {
            let entry = entries.iter().find(|e| e.name == name).unwrap();
            (entry.metadata.kind, entry.metadata.size)
        };
        assert_eq!(kind("to-file"), (FileKind::File, 5));
        assert_eq!(kind("to-dir").0, FileKind::Dir);
        assert_eq!(kind("to-dir-up-and-back").0, FileKind::Dir);
        for escaping in ["out", "etc", "dangling"] {
            assert_eq!(kind(escaping).0, FileKind::Symlink, "{escaping}");
        }
    }

    #[tokio::test]
    async fn list_names_lists_what_list_lists() {
        let fx = Fixture::new();
        mixed_directory(&fx);
        // More than one batch of names and of entries.
        for i in 0..NAME_BATCH + 100 {
            fx.write(&format!("mixed/f{i:04}"), b"");
        }
        for dir in ["/", "/mixed", "/mixed/sub", "/mixed/to-dir"] {
            assert_eq!(
                bare_names(&fx.storage, dir).await,
                names(&fx.storage, dir).await.unwrap(),
                "{dir}"
            );
        }
        assert_eq!(
            names(&fx.storage, "/mixed").await.unwrap().len(),
            NAME_BATCH + 110
        );
        for refused in ["/mixed/etc", "/mixed/out", "/mixed/a.txt", "/nope"] {
            assert!(
                fx.storage.list_names(&vp(refused)).await.is_err(),
                "{refused}"
            );
        }
    }
}
