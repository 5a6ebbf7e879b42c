//! The `Storage` trait (aioftp's PathIO) and its backends.
//!
//! Sessions speak to storage only through this trait, in virtual paths.
//! The trait keeps no local-only assumptions: data flows as async streams,
//! metadata comes back as values, and a backend may refuse an operation
//! with [`StorageError::Unsupported`]. Backends never run blocking I/O on
//! the async workers.
//!
//! # Adding a storage backend
//!
//! 1. Implement [`Storage`] (and [`Upload`]) in `storage/<name>.rs`, and
//!    declare the module here.
//! 2. Add one line at the end of `storage/conformance.rs`, say
//!    `conformance_suite!(name, Subject::new(NameStorage::new()));`. It runs
//!    every behaviour the trait promises (metadata, reads from an offset,
//!    atomic and abandoned uploads, every [`WriteMode`], mkdir, rmdir,
//!    remove, rename, listings large and small, `set_modified`, `..` at the
//!    root, [`Storage::resolve`]) as a test of the new backend; a backend
//!    that needs a home on disk or elsewhere builds its `Subject` the way
//!    `Subject::on_disk` does.
//! 3. If the backend cannot do an optional operation (an object store
//!    cannot append), answer [`StorageError::Unsupported`] for it and name
//!    it in that line: `conformance_suite!(name, ..., except [Append])`,
//!    from the operations `conformance::Optional` lists. The suite then
//!    checks that the operation is refused that way and changes nothing; an
//!    operation the backend does support must not be named there, or the
//!    suite fails.
//! 4. What only the new backend does gets its tests in its own module.
//!
//! Nothing outside `storage/` changes, except where the configuration
//! picks the backend.

mod block_reader;
mod block_writer;
#[cfg(test)]
mod conformance;
// Tests' fault injection only: the library's own tests, and the integration
// tests through the `test-support` feature; never in a release build.
#[cfg(any(test, feature = "test-support"))]
pub mod faults;
pub mod fs;
// Tests' S3 server only, as `faults`: a Garage started for the test binary.
#[cfg(any(test, feature = "test-support"))]
pub mod garage;
pub mod memory;
pub mod s3;
#[cfg(test)]
mod test_support;
pub mod timed;

use std::io::{self, Seek, SeekFrom};
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio::io::AsyncRead;

use crate::path::VirtualPath;

pub use fs::{FsStorage, UploadSync};
pub use memory::MemoryStorage;
pub use s3::S3Storage;
pub use timed::TimedStorage;

/// What kind of object a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link that stays inside the storage (listed, never followed out).
    Symlink,
}

/// Metadata of one object, as a plain value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// File, directory or link.
    pub kind: FileKind,
    /// Size in bytes (0 for directories where the backend has no better figure).
    pub size: u64,
    /// Last modification time, if the backend knows it.
    pub modified: Option<SystemTime>,
    /// POSIX permission bits (`0o644`), for `LIST` and `UNIX.mode`.
    pub mode: u32,
    /// A value unique per object within the storage (inode on disk), for MLSD `unique`.
    pub unique: Option<String>,
}

impl Metadata {
    /// Whether this names a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name within its directory, lossily converted to UTF-8
    /// when the name on disk is not valid UTF-8.
    pub name: String,
    /// The entry's metadata.
    pub metadata: Metadata,
}

/// How an upload opens its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace the file. With `atomic` the bytes go to a temporary file in the
    /// same directory that replaces the target only when the upload finishes,
    /// so a failed upload leaves the old file intact.
    Replace {
        /// Write to a temporary name and rename on success.
        atomic: bool,
    },
    /// Overwrite in place starting at this offset (`REST` + `STOR`); bytes
    /// before the offset are kept and the file ends where the upload ends.
    At(u64),
    /// Append to the end (`APPE`), creating the file if needed.
    Append,
    /// Create a new file; fail with [`StorageError::AlreadyExists`] if it exists (`STOU`).
    CreateNew,
}

/// A stream of directory entries, produced while the directory is read.
pub type EntryStream = BoxStream<'static, Result<DirEntry, StorageError>>;

/// A stream of the names in a directory, produced while the directory is read.
pub type NameStream = BoxStream<'static, Result<String, StorageError>>;

/// A readable file, positioned at the requested offset.
pub type ReadStream = Pin<Box<dyn AsyncRead + Send>>;

/// An operating-system file as a [`ReadStream`] from byte `offset`: its
/// reads go to the blocking pool, one block ahead of the caller; the seek
/// (lseek(2)) only sets a position.
pub fn os_file_stream(mut file: std::fs::File, offset: u64) -> io::Result<ReadStream> {
    file.seek(SeekFrom::Start(offset))?;
    Ok(Box::pin(block_reader::BlockReader::new(file)))
}

/// An upload in progress. Dropping it without [`Upload::finish`] abandons
/// the upload: an atomic replace leaves the old file as it was.
#[async_trait]
pub trait Upload: Send {
    /// Writes all of `block` and returns an empty buffer for the next one
    /// (maybe `block` itself, maybe one of less capacity). The fs backend
    /// hands the block as it is to the thread that writes it to the disk, so
    /// an upload's bytes are copied once in user space: from the socket into
    /// the block.
    async fn write_block(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>>;

    /// A second descriptor for the file being written, sharing its offset,
    /// so the transfer loop can move bytes into it without a copy in user
    /// space (splice(2)); the upload is then finished as usual. An optional
    /// capability: `None` (the default) when the upload is no
    /// operating-system file, the file is opened for appending (splice(2)
    /// refuses `O_APPEND`), or a write is in flight.
    fn os_file(&self) -> Option<std::fs::File> {
        None
    }

    /// What is left of [`Upload::finish`] once the bytes went in through
    /// [`Upload::os_file`], as work for a blocking thread (on disk: cut,
    /// flush, rename, close), so the transfer loop can run it in its last
    /// job instead of a trip of its own. `None` (the default) when the
    /// backend has no such work or a write is in flight: the loop then calls
    /// `finish`. Once taken, running it finishes the upload and dropping it
    /// unrun abandons it; the upload itself is then only to be dropped.
    fn blocking_finish(&mut self) -> Option<BlockingFinish> {
        None
    }

    /// Flushes and makes the upload visible under its target name.
    async fn finish(self: Box<Self>) -> Result<(), StorageError>;
}

/// The rest of an upload's finish, to run on a blocking thread (see
/// [`Upload::blocking_finish`]).
pub type BlockingFinish = Box<dyn FnOnce() -> Result<(), StorageError> + Send>;

/// Errors a backend reports; sessions map each kind to one reply code.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such file or directory.
    #[error("no such file or directory")]
    NotFound,
    /// The target exists already.
    #[error("file exists")]
    AlreadyExists,
    /// A directory was expected.
    #[error("not a directory")]
    NotADirectory,
    /// A file was expected.
    #[error("is a directory")]
    IsADirectory,
    /// The directory still has entries.
    #[error("directory not empty")]
    DirectoryNotEmpty,
    /// The backing store refused access, or the path would leave the storage root.
    #[error("permission denied")]
    PermissionDenied,
    /// The name cannot be used by this backend.
    #[error("invalid file name")]
    InvalidName,
    /// The disk is full.
    #[error("no space left on device")]
    StorageFull,
    /// The user's quota (aioftpd's, or the file system's) has no room left.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// This backend does not implement the operation.
    #[error("operation not supported by this storage")]
    Unsupported,
    /// The operation took longer than the storage timeout.
    #[error("storage operation timed out")]
    TimedOut,
    /// Any other I/O failure; the cause is logged, never sent to the client.
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for StorageError {
    fn from(err: io::Error) -> Self {
        use io::ErrorKind as K;
        match err.kind() {
            K::NotFound => StorageError::NotFound,
            K::AlreadyExists => StorageError::AlreadyExists,
            K::NotADirectory => StorageError::NotADirectory,
            K::IsADirectory => StorageError::IsADirectory,
            K::DirectoryNotEmpty => StorageError::DirectoryNotEmpty,
            K::PermissionDenied => StorageError::PermissionDenied,
            K::InvalidInput | K::InvalidFilename => StorageError::InvalidName,
            K::StorageFull | K::FileTooLarge => StorageError::StorageFull,
            K::QuotaExceeded => StorageError::QuotaExceeded,
            K::Unsupported => StorageError::Unsupported,
            _ => match err.raw_os_error() {
                // ELOOP / EXDEV: cap-std reports a path that would escape the base this way.
                Some(40) | Some(18) => StorageError::PermissionDenied,
                _ => StorageError::Io(err),
            },
        }
    }
}

/// A user's file tree, addressed by virtual paths (aioftp's `AbstractPathIO`).
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Metadata of `path`, without following a final symlink out of the storage.
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError>;
    /// The entries of directory `path` (without `.` and `..`), streamed as read.
    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError>;
    /// The names [`Storage::list`] lists in directory `path`, for listings
    /// that need nothing else (`NLST`). The default takes them from `list`;
    /// a backend that can read names without reading metadata overrides it
    /// (it may then also list an entry that vanishes while it is read,
    /// which `list` skips).
    async fn list_names(&self, path: &VirtualPath) -> Result<NameStream, StorageError> {
        let entries = self.list(path).await?;
        Ok(entries.map(|entry| entry.map(|e| e.name)).boxed())
    }
    /// Opens file `path` for reading from byte `offset`.
    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError>;
    /// An optional capability: file `path` as an operating-system file, with
    /// its size, so the transfer loop can send it without copying it through
    /// user space (sendfile). `None` (the default) when the backend has no
    /// such file; the transfer then uses [`Storage::open_read`].
    async fn open_os_file(
        &self,
        _path: &VirtualPath,
    ) -> Result<Option<(std::fs::File, u64)>, StorageError> {
        Ok(None)
    }
    /// Opens file `path` for writing as `mode` says.
    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError>;
    /// Creates directory `path` (its parent must exist).
    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Removes the empty directory `path`.
    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Removes the file (or symlink) `path`.
    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Renames `from` to `to`, replacing a file at `to`.
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;
    /// Sets the modification time of `path` (`MFMT`).
    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError>;
    /// The path that `path` names once the links inside the storage are
    /// followed, every component including the last; components that don't
    /// exist (yet) are kept as named. Sessions check the permission rules on
    /// this path as well as on the named one, so a link can't lead past a
    /// rule (`/pub/link -> ../home/secret`). The default, for backends
    /// without links, is `path` itself.
    async fn resolve(&self, path: &VirtualPath) -> Result<VirtualPath, StorageError> {
        Ok(path.clone())
    }
}
