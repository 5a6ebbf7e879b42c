//! S3 object storage through Apache OpenDAL: a user's tree is the objects
//! under one key prefix of one bucket.
//!
//! Paths map to keys one to one (`/a/b.txt` is `<prefix>a/b.txt`).
//! Directories are key prefixes: one exists while any key lies beneath it,
//! and `MKD` writes a marker object `<prefix>a/` so that an empty one
//! exists too. Every operation is a few HTTP requests on the async
//! workers; nothing here blocks. What S3 cannot do in one step (append,
//! write at an offset, rename a directory, set a modification time) is
//! refused with [`StorageError::Unsupported`], never emulated half-way.
//! docs/storage.md says what each FTP command does here.
//!
//! This module owns the mapping from paths to keys and from S3 answers to
//! [`StorageError`]s; it never reads the config file (it is handed an
//! [`S3Config`]) and never buffers a whole object or a whole listing.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use opendal::{EntryMode, ErrorKind, HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;
use tokio::runtime::Handle;
use tokio_util::io::StreamReader;
use tokio_util::task::TaskTracker;

use super::{
    DirEntry, EntryStream, FileKind, Metadata, ReadStream, Storage, StorageError, Upload, WriteMode,
};
use crate::path::VirtualPath;

/// Permission bits reported for every object: S3 keeps none.
const FILE_MODE: u32 = 0o644;
/// Permission bits reported for every directory.
const DIR_MODE: u32 = 0o755;

/// The longest key S3 takes, in bytes of UTF-8, prefix included.
const MAX_KEY_LEN: usize = 1024;

/// How long connecting to the endpoint may take; an unreachable one fails
/// the command (`451`) instead of holding it for the storage timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read of a response may wait for bytes: a stalled download
/// or listing fails instead of hanging (uploads are bounded by the
/// client's side: its data connection stalls).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The default size of an upload's parts.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (all but the last); a smaller setting is refused.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part this backend makes; S3 allows 5 GiB, but each part is
/// held in memory while it is sent.
pub const MAX_PART_SIZE: usize = 512 * 1024 * 1024;
/// The default number of an upload's parts sent at once.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;
/// The most parts of one upload sent at once.
pub const MAX_PARTS_IN_FLIGHT: usize = 16;

/// Where a user's objects are and how to reach them, as the config names it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The S3 endpoint's URL (`http://127.0.0.1:3900`, `https://s3.eu-west-1.amazonaws.com`).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region requests are signed for (`garage`, `us-east-1`).
    pub region: String,
    /// The key prefix that is the user's root, as [`normalize_prefix`] makes it.
    pub prefix: String,
    /// The access key.
    pub credentials: S3Credentials,
    /// The size of an upload's parts, [`MIN_PART_SIZE`]..=[`MAX_PART_SIZE`].
    pub part_size: usize,
    /// How many parts of one upload are sent at once, 1..=[`MAX_PARTS_IN_FLIGHT`].
    pub parts_in_flight: usize,
}

/// An access key: its id, and its secret, which `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    access_key_id: String,
    secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .finish()
    }
}

impl S3Credentials {
    /// A key from its two halves; neither may be empty or hold whitespace.
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Result<Self, String> {
        for (name, value) in [
            ("aws_access_key_id", access_key_id),
            ("aws_secret_access_key", secret_access_key),
        ] {
            if value.is_empty() {
                return Err(format!("{name} is empty"));
            }
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("{name} holds whitespace or control characters"));
            }
        }
        Ok(S3Credentials {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
        })
    }

    /// The key in a credentials file, in the AWS shared-credentials form
    /// with one profile:
    ///
    /// ```text
    /// [default]
    /// aws_access_key_id = GK31c2f218a2e44f485b94239e
    /// aws_secret_access_key = b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835
    /// ```
    ///
    /// Section headers, blank lines and `#`/`;` comments are skipped; any
    /// other line, or a key given twice, is refused, so a file holding
    /// several profiles is never read as one of them by chance.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut id, mut secret) = (None, None);
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(['#', ';']) || line.starts_with('[') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(format!("line {}: expected `name = value`", number + 1));
            };
            let slot = match name.trim() {
                "aws_access_key_id" => &mut id,
                "aws_secret_access_key" => &mut secret,
                // A session token would expire under a running daemon.
                other => {
                    return Err(format!(
                        "line {}: unknown name {other:?}: expected aws_access_key_id or aws_secret_access_key",
                        number + 1
                    ))
                }
            };
            if slot.replace(value.trim()).is_some() {
                return Err(format!(
                    "line {}: {} given twice: keep one key per file",
                    number + 1,
                    name.trim()
                ));
            }
        }
        match (id, secret) {
            (Some(id), Some(secret)) => S3Credentials::new(id, secret),
            (None, _) => Err("no aws_access_key_id".to_owned()),
            (_, None) => Err("no aws_secret_access_key".to_owned()),
        }
    }

    /// Reads a credentials file (see [`S3Credentials::parse`]); on Unix, one
    /// that others may read, or its group or others may write, is refused,
    /// as a TLS private key is.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let mut file =
            std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file
                .metadata()
                .map_err(|e| format!("cannot read the mode of {shown}: {e}"))?
                .permissions()
                .mode()
                & 0o7777;
            if mode & 0o026 != 0 {
                return Err(format!(
                    "{shown} has mode {mode:04o}: a credentials file must not be readable by others nor writable by its group or others; run `chmod 600 {shown}`"
                ));
            }
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        S3Credentials::parse(&text).map_err(|e| format!("{shown}: {e}"))
    }
}

/// A key prefix as the config writes it (`users/alice`, `/users/alice/`, or
/// empty for the whole bucket), made `users/alice/` (or empty).
pub fn normalize_prefix(written: &str) -> Result<String, String> {
    if written.chars().any(char::is_control) {
        return Err(format!("{written:?} must not contain control characters"));
    }
    let trimmed = written.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if let Some(bad) = trimmed
        .split('/')
        .find(|part| part.is_empty() || *part == "." || *part == "..")
    {
        return Err(format!(
            "{written:?} has a component {bad:?}: write the prefix as names separated by single slashes"
        ));
    }
    let prefix = format!("{trimmed}/");
    // Room for a few levels of names beneath it.
    if prefix.len() > MAX_KEY_LEN / 2 {
        return Err(format!(
            "{written:?} is longer than {} bytes",
            MAX_KEY_LEN / 2
        ));
    }
    Ok(prefix)
}

/// A user's tree in an S3 bucket.
///
/// Uploads are S3 multipart uploads: each holds at most
/// `(parts_in_flight + 2) × part_size` bytes (the parts being sent, the one
/// kept back until the next shows it was not the last, the one being
/// filled), and the object appears only when the upload completes. One
/// dropped before [`Upload::finish`] is aborted on a task of its own,
/// which [`S3Storage`] keeps track of.
pub struct S3Storage {
    op: Operator,
    /// Bytes of every key taken by the prefix, for the key length limit.
    prefix_len: usize,
    part_size: usize,
    parts_in_flight: usize,
    /// Held while a [`WriteMode::CreateNew`] upload checks that its name is
    /// free and takes it, so two `STOU`s of this daemon cannot take one name.
    claiming: tokio::sync::Mutex<()>,
    /// The tasks aborting abandoned uploads.
    abandoned: TaskTracker,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("info", &self.op.info())
            .finish()
    }
}

impl S3Storage {
    /// The storage `config` describes. Nothing is sent yet: an unreachable
    /// endpoint or a wrong key shows at the first command, as `451`.
    pub fn new(config: S3Config) -> Result<Self, String> {
        let prefix_len = config.prefix.len();
        let builder = opendal::services::S3::default()
            .endpoint(&config.endpoint)
            .bucket(&config.bucket)
            .region(&config.region)
            .root(&format!("/{}", config.prefix))
            .access_key_id(&config.credentials.access_key_id)
            .secret_access_key(&config.credentials.secret_access_key)
            // Only the key given: no profile files, no environment, and no
            // instance metadata service to ask over the network.
            .disable_config_load()
            .disable_ec2_metadata();
        let transport = HttpTransporter::new(ReqwestTransport::new(http_client()?));
        let op = Operator::new(builder)
            .map_err(|e| format!("cannot use this S3 storage: {e}"))?
            .with_context(OperationContext::new().with_http_transport(transport));
        Ok(S3Storage {
            op,
            prefix_len,
            part_size: config.part_size,
            parts_in_flight: config.parts_in_flight,
            claiming: tokio::sync::Mutex::new(()),
            abandoned: TaskTracker::new(),
        })
    }

    /// Waits until every abandoned upload is aborted, for tests that look
    /// for stray parts afterwards.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn abandoned_uploads_settled(&self) {
        self.abandoned.close();
        self.abandoned.wait().await;
        self.abandoned.reopen();
    }

    /// The object key of file `path`, relative to the prefix (`a/b.txt`).
    /// OpenDAL trims whitespace off both ends of a key, so a path that
    /// starts or ends with some would name another object (`/ a` would be
    /// `/a`): it is refused instead.
    fn key<'a>(&self, path: &'a VirtualPath) -> Result<&'a str, StorageError> {
        let key = path.relative();
        // +1: the slash of the directory marker the same name may take.
        if self.prefix_len + key.len() + 1 > MAX_KEY_LEN
            || key.starts_with(char::is_whitespace)
            || key.ends_with(char::is_whitespace)
        {
            return Err(StorageError::InvalidName);
        }
        Ok(key)
    }

    /// The key prefix of directory `path` (`a/b/`; `/` for the root).
    fn dir_key(&self, path: &VirtualPath) -> Result<String, StorageError> {
        if path.is_root() {
            return Ok("/".to_owned());
        }
        Ok(format!("{}/", self.key(path)?))
    }

    /// The object at `path`, if there is one (`HEAD`).
    async fn head(&self, path: &VirtualPath) -> Result<Option<opendal::Metadata>, StorageError> {
        match self.op.stat(self.key(path)?).await {
            Ok(meta) => Ok(Some(meta)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(storage_error(err)),
        }
    }

    /// Whether directory `path` exists: a marker or any key beneath it (a
    /// listing of one key).
    async fn is_dir(&self, path: &VirtualPath) -> Result<bool, StorageError> {
        if path.is_root() {
            return Ok(true);
        }
        match self.op.stat(&self.dir_key(path)?).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(storage_error(err)),
        }
    }

    /// The error a missing `path` deserves: like the kernel, `NotADirectory`
    /// when the nearest existing ancestor is a file.
    async fn why_missing(&self, path: &VirtualPath) -> StorageError {
        let mut ancestor = path.parent();
        while !ancestor.is_root() {
            match self.is_dir(&ancestor).await {
                Ok(true) => return StorageError::NotFound,
                Ok(false) => {}
                Err(err) => return err,
            }
            match self.head(&ancestor).await {
                Ok(Some(_)) => return StorageError::NotADirectory,
                Ok(None) => {}
                Err(err) => return err,
            }
            ancestor = ancestor.parent();
        }
        StorageError::NotFound
    }

    /// Checks that `path` can be created: its parent is a directory.
    async fn expect_parent_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let parent = path.parent();
        if self.is_dir(&parent).await? {
            return Ok(());
        }
        Err(match self.head(&parent).await? {
            Some(_) => StorageError::NotADirectory,
            None => self.why_missing(&parent).await,
        })
    }

    /// Why `path`, which is no object, cannot be read or removed as one.
    async fn not_a_file(&self, path: &VirtualPath) -> StorageError {
        match self.is_dir(path).await {
            Ok(true) => StorageError::IsADirectory,
            Ok(false) => self.why_missing(path).await,
            Err(err) => err,
        }
    }

    /// Takes `key` for a [`WriteMode::CreateNew`] upload with an empty
    /// object, unless something is there already.
    async fn claim(&self, path: &VirtualPath, key: &str) -> Result<(), StorageError> {
        let _claiming = self.claiming.lock().await;
        if self.head(path).await?.is_some() || self.is_dir(path).await? {
            return Err(StorageError::AlreadyExists);
        }
        self.op
            .write(key, Vec::<u8>::new())
            .await
            .map_err(storage_error)?;
        Ok(())
    }
}

/// The HTTP client: rustls with ring, the platform's roots, timeouts on
/// connecting and on each read.
fn http_client() -> Result<reqwest::Client, String> {
    let tls = crate::tls::https_client_config()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// What an S3 answer means for the session. A refused signature or key
/// (403) is the config's fault, not the client's: it becomes an I/O error,
/// logged with its cause and answered `451`, like an unreachable endpoint.
fn storage_error(err: opendal::Error) -> StorageError {
    match err.kind() {
        ErrorKind::NotFound => StorageError::NotFound,
        ErrorKind::AlreadyExists => StorageError::AlreadyExists,
        ErrorKind::IsADirectory => StorageError::IsADirectory,
        ErrorKind::NotADirectory => StorageError::NotADirectory,
        ErrorKind::Unsupported => StorageError::Unsupported,
        _ => StorageError::Io(io::Error::other(err)),
    }
}

/// Whole seconds: `HEAD` tells the time to the second, a listing to the
/// millisecond, and both must report the same.
fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        Err(_) => time,
    }
}

fn file_metadata(meta: &opendal::Metadata) -> Metadata {
    Metadata {
        kind: FileKind::File,
        size: meta.content_length(),
        modified: meta
            .last_modified()
            .map(|time| whole_seconds(SystemTime::from(time))),
        mode: FILE_MODE,
        // An object has no identity that outlives its key: a rename is a
        // copy, a new object (RFC 3659 §7.5.2: a fact a server cannot
        // give is left out).
        unique: None,
    }
}

/// A directory has no object of its own to tell a time or a size.
fn dir_metadata() -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        mode: DIR_MODE,
        unique: None,
    }
}

/// One listed entry of directory `dir` (its key prefix, `/` for the root)
/// as a [`DirEntry`]; `None` for the directory's own marker and for keys
/// no path can name (`a//b`, `a/./b`).
fn dir_entry(
    dir: &str,
    entry: opendal::Result<opendal::Entry>,
) -> Option<Result<DirEntry, StorageError>> {
    let entry = match entry {
        Ok(entry) => entry,
        Err(err) => return Some(Err(storage_error(err))),
    };
    let beneath = if dir == "/" { "" } else { dir };
    let rest = entry.path().strip_prefix(beneath)?;
    let name = rest.strip_suffix('/').unwrap_or(rest);
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return None;
    }
    let metadata = match entry.metadata().mode() {
        EntryMode::DIR => dir_metadata(),
        _ => file_metadata(entry.metadata()),
    };
    Some(Ok(DirEntry {
        name: name.to_owned(),
        metadata,
    }))
}

#[async_trait]
impl Storage for S3Storage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        if path.is_root() {
            return Ok(dir_metadata());
        }
        if let Some(meta) = self.head(path).await? {
            return Ok(file_metadata(&meta));
        }
        if self.is_dir(path).await? {
            return Ok(dir_metadata());
        }
        Err(self.why_missing(path).await)
    }

    /// Streamed page by page as OpenDAL's lister reads them (ListObjectsV2
    /// with a delimiter, 1000 keys a page): nothing holds the whole listing.
    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        let dir = self.dir_key(path)?;
        let mut lister = self.op.lister(&dir).await.map_err(storage_error)?;
        // No first entry means no such directory, but for the root; a
        // directory with only its marker lists that.
        let first = lister.next().await.transpose().map_err(storage_error)?;
        if first.is_none() && !path.is_root() {
            return Err(match self.head(path).await? {
                Some(_) => StorageError::NotADirectory,
                None => self.why_missing(path).await,
            });
        }
        let entries = futures::stream::iter(first.map(Ok))
            .chain(lister)
            .filter_map(move |entry| std::future::ready(dir_entry(&dir, entry)));
        Ok(entries.boxed())
    }

    /// One ranged `GET`, sent before this returns: the download then reads
    /// the object as it was at open even if it is replaced meanwhile.
    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let reader = self
            .op
            .reader(self.key(path)?)
            .await
            .map_err(storage_error)?;
        let mut stream = reader
            .into_bytes_stream(offset..)
            .await
            .map_err(storage_error)?;
        match stream.metadata().await {
            Ok(_) => Ok(Box::pin(StreamReader::new(stream))),
            Err(err) if err.kind() == ErrorKind::NotFound => Err(self.not_a_file(path).await),
            // An offset at or past the end: nothing left to read.
            Err(err) if err.kind() == ErrorKind::RangeNotSatisfied => {
                Ok(Box::pin(tokio::io::empty()))
            }
            Err(err) => Err(storage_error(err)),
        }
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if matches!(mode, WriteMode::Append | WriteMode::At(_)) {
            return Err(StorageError::Unsupported);
        }
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let key = self.key(path)?;
        self.expect_parent_dir(path).await?;
        if mode != WriteMode::CreateNew && self.is_dir(path).await? {
            return Err(StorageError::IsADirectory);
        }
        let writer = self
            .op
            .writer_with(key)
            .chunk(self.part_size)
            .concurrent(self.parts_in_flight)
            .await
            .map_err(storage_error)?;
        let mut upload = S3Upload {
            writer: Some(writer),
            claimed: None,
            op: self.op.clone(),
            abandoned: self.abandoned.clone(),
            runtime: Handle::current(),
        };
        if mode == WriteMode::CreateNew {
            self.claim(path, key).await?;
            upload.claimed = Some(key.to_owned());
        }
        Ok(Box::new(upload))
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        let dir = self.dir_key(path)?;
        self.expect_parent_dir(path).await?;
        if self.head(path).await?.is_some() || self.is_dir(path).await? {
            return Err(StorageError::AlreadyExists);
        }
        self.op.create_dir(&dir).await.map_err(storage_error)
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let dir = self.dir_key(path)?;
        // The marker and one child at most are all it takes to decide.
        let mut lister = self
            .op
            .lister_with(&dir)
            .limit(2)
            .await
            .map_err(storage_error)?;
        let mut marker = false;
        while let Some(entry) = lister.try_next().await.map_err(storage_error)? {
            if entry.path() != dir {
                return Err(StorageError::DirectoryNotEmpty);
            }
            marker = true;
        }
        if !marker {
            return Err(match self.head(path).await? {
                Some(_) => StorageError::NotADirectory,
                None => self.why_missing(path).await,
            });
        }
        self.op.delete(&dir).await.map_err(storage_error)
    }

    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if self.head(path).await?.is_none() {
            return Err(self.not_a_file(path).await);
        }
        self.op.delete(self.key(path)?).await.map_err(storage_error)
    }

    /// A server-side copy, then the delete of the source: a crash between
    /// the two leaves both, never neither. A directory would be one copy
    /// per key, visible half-done, so it is refused.
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let (from_key, to_key) = (self.key(from)?, self.key(to)?);
        if self.head(from).await?.is_none() {
            return Err(match self.not_a_file(from).await {
                StorageError::IsADirectory => StorageError::Unsupported,
                other => other,
            });
        }
        self.expect_parent_dir(to).await?;
        if from == to {
            return Ok(());
        }
        if self.is_dir(to).await? {
            return Err(StorageError::IsADirectory);
        }
        self.op
            .copy(from_key, to_key)
            .await
            .map_err(storage_error)?;
        self.op.delete(from_key).await.map_err(storage_error)
    }

    /// S3 sets an object's time when it is written, and only then.
    async fn set_modified(&self, _: &VirtualPath, _: SystemTime) -> Result<(), StorageError> {
        Err(StorageError::Unsupported)
    }
}

/// An S3 multipart upload (a single `PUT` when it ends within one part).
struct S3Upload {
    /// `None` once finished.
    writer: Option<opendal::Writer>,
    /// The key a [`WriteMode::CreateNew`] upload took at open, to give
    /// back if it is abandoned.
    claimed: Option<String>,
    op: Operator,
    abandoned: TaskTracker,
    /// Where an abandoned upload's abort runs: dropping happens outside
    /// any task as often as inside one.
    runtime: Handle,
}

#[async_trait]
impl Upload for S3Upload {
    /// The block goes into the upload as it is (no copy); a new one is
    /// handed back, since OpenDAL keeps this one until its part is sent.
    async fn write_block(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the upload is finished"))?;
        writer.write(block).await.map_err(io::Error::other)?;
        Ok(Vec::new())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StorageError> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| StorageError::Io(io::Error::other("the upload is finished")))?;
        // On failure the writer stays, and dropping it aborts the upload.
        writer.close().await.map_err(storage_error)?;
        self.writer = None;
        self.claimed = None;
        Ok(())
    }
}

impl Drop for S3Upload {
    /// Abandoned: the multipart upload is aborted, so no parts stay behind
    /// (nor the name a `STOU` took).
    fn drop(&mut self) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let (op, claimed) = (self.op.clone(), self.claimed.take());
        let abort = async move {
            if let Err(err) = writer.abort().await {
                tracing::warn!(%err, "cannot abort an abandoned S3 upload: its parts stay until the bucket's lifecycle rule removes them");
            }
            if let Some(key) = claimed {
                if let Err(err) = op.delete(&key).await {
                    tracing::warn!(%err, %key, "cannot remove the name an abandoned STOU took");
                }
            }
        };
        self.abandoned.spawn_on(abort, &self.runtime);
    }
}

// The behaviour every backend shares is tested in `conformance`, against a
// real Garage; what is left here is this backend's own.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::garage::{garage, missing};
    use crate::storage::test_support::{names, read_all, upload, vp};

    const ATOMIC: WriteMode = WriteMode::Replace { atomic: true };

    #[test]
    fn credentials_are_read_from_the_aws_form_with_one_profile() {
        let text =
            "# for aioftpd\n[default]\naws_access_key_id = GKabc\n\naws_secret_access_key=s3cr3t\n";
        assert_eq!(
            S3Credentials::parse(text).unwrap(),
            S3Credentials::new("GKabc", "s3cr3t").unwrap()
        );
        for (bad, why) in [
            ("aws_access_key_id = a\n", "no aws_secret_access_key"),
            ("aws_secret_access_key = b\n", "no aws_access_key_id"),
            (
                "[a]\naws_access_key_id = a\naws_secret_access_key = b\n[b]\naws_access_key_id = c\n",
                "given twice",
            ),
            ("aws_session_token = t\n", "unknown name"),
            ("just a key\n", "expected `name = value`"),
            ("aws_access_key_id =\naws_secret_access_key = b\n", "is empty"),
        ] {
            let err = S3Credentials::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let key = S3Credentials::new("GKabc", "s3cr3t").unwrap();
        let shown = format!("{key:?}");
        assert!(
            shown.contains("GKabc") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn a_credentials_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3.key");
        std::fs::write(&path, "aws_access_key_id = a\naws_secret_access_key = b\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(S3Credentials::read(&path)
            .unwrap_err()
            .contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(S3Credentials::read(&path).is_ok());
    }

    #[test]
    fn prefixes_are_names_between_single_slashes() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("users/alice").unwrap(), "users/alice/");
        assert_eq!(normalize_prefix("/users/alice/").unwrap(), "users/alice/");
        for bad in ["a//b", "a/../b", "./a", "a\nb", &"x".repeat(600)] {
            assert!(normalize_prefix(bad).is_err(), "{bad:?}");
        }
    }

    /// Larger than two parts, in blocks of the transfer loop's size.
    #[tokio::test]
    async fn a_multipart_upload_reads_back_whole_and_from_an_offset() {
        if missing() {
            return;
        }
        let storage = garage().storage();
        let data: Vec<u8> = (0..(2 * MIN_PART_SIZE + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut up = storage.open_write(&vp("/big"), ATOMIC).await.unwrap();
        for block in data.chunks(512 * 1024) {
            up.write_block(block.to_vec()).await.unwrap();
        }
        assert!(names(&storage, "/").await.unwrap().is_empty());
        up.finish().await.unwrap();
        let meta = storage.metadata(&vp("/big")).await.unwrap();
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(read_all(&storage, "/big", 0).await.unwrap(), data);
        let offset = MIN_PART_SIZE + 7;
        assert_eq!(
            read_all(&storage, "/big", offset as u64).await.unwrap(),
            &data[offset..]
        );
    }

    /// A cut data connection mid-upload: parts were sent, and none stays.
    #[tokio::test]
    async fn an_abandoned_multipart_upload_leaves_no_parts_and_no_object() {
        if missing() {
            return;
        }
        let garage = garage();
        let (storage, prefix) = garage.storage_and_prefix();
        upload(&storage, "/f", ATOMIC, b"old").await.unwrap();
        let mut up = storage.open_write(&vp("/f"), ATOMIC).await.unwrap();
        for block in vec![7u8; 3 * MIN_PART_SIZE].chunks(1024 * 1024) {
            up.write_block(block.to_vec()).await.unwrap();
        }
        assert_eq!(garage.multipart_uploads(&prefix), 1, "parts went out");
        drop(up);
        storage.abandoned_uploads_settled().await;
        assert_eq!(garage.multipart_uploads(&prefix), 0);
        assert_eq!(read_all(&storage, "/f", 0).await.unwrap(), b"old");
        assert_eq!(names(&storage, "/").await.unwrap(), ["f"]);
    }

    /// An abandoned `STOU` gives its name back.
    #[tokio::test]
    async fn an_abandoned_create_new_upload_gives_its_name_back() {
        if missing() {
            return;
        }
        let storage = garage().storage();
        let mut up = storage
            .open_write(&vp("/u"), WriteMode::CreateNew)
            .await
            .unwrap();
        up.write_block(b"half".to_vec()).await.unwrap();
        assert_eq!(names(&storage, "/").await.unwrap(), ["u"]);
        drop(up);
        storage.abandoned_uploads_settled().await;
        assert!(names(&storage, "/").await.unwrap().is_empty());
    }

    /// Keys written by another S3 client need no markers: a prefix with
    /// keys beneath it is a directory.
    #[tokio::test]
    async fn a_prefix_without_a_marker_is_a_directory() {
        if missing() {
            return;
        }
        let garage = garage();
        let (storage, prefix) = garage.storage_and_prefix();
        let deep = garage.storage_at(&format!("{prefix}a/b/"));
        upload(&deep, "/c.txt", ATOMIC, b"c").await.unwrap();
        for dir in ["/a", "/a/b"] {
            assert!(storage.metadata(&vp(dir)).await.unwrap().is_dir(), "{dir}");
        }
        assert_eq!(names(&storage, "/a").await.unwrap(), ["b"]);
        assert_eq!(read_all(&storage, "/a/b/c.txt", 0).await.unwrap(), b"c");
        // No marker to remove, and not empty.
        assert!(matches!(
            storage.rmdir(&vp("/a/b")).await,
            Err(StorageError::DirectoryNotEmpty)
        ));
    }

    /// Characters that URLs, XML or S3's signing treat specially are only
    /// bytes of a name here.
    #[tokio::test]
    async fn odd_names_round_trip() {
        if missing() {
            return;
        }
        let storage = garage().storage();
        let odd = [
            "a b",
            "100%",
            "q?x=1&y",
            "#hash",
            "plus+sign",
            "ü é ß",
            "back\\slash",
            "<&'\">",
            " lead",
            "~tilde",
            "semi;colon",
            "*star",
            "emoji 🦀",
        ];
        storage.mkdir(&vp("/d ir%")).await.unwrap();
        for name in odd {
            let path = format!("/d ir%/{name}");
            upload(&storage, &path, ATOMIC, name.as_bytes())
                .await
                .unwrap();
            assert_eq!(
                read_all(&storage, &path, 0).await.unwrap(),
                name.as_bytes(),
                "{name}"
            );
        }
        let mut expected: Vec<String> = odd.iter().map(|n| n.to_string()).collect();
        expected.sort();
        assert_eq!(names(&storage, "/d ir%").await.unwrap(), expected);
        assert_eq!(names(&storage, "/").await.unwrap(), ["d ir%"]);
        storage
            .rename(&vp("/d ir%/q?x=1&y"), &vp("/d ir%/r#1"))
            .await
            .unwrap();
        assert_eq!(
            read_all(&storage, "/d ir%/r#1", 0).await.unwrap(),
            b"q?x=1&y"
        );
    }

    /// OpenDAL would trim it and reach another object.
    #[tokio::test]
    async fn whitespace_at_either_end_of_a_key_is_an_invalid_name() {
        if missing() {
            return;
        }
        let storage = garage().storage();
        upload(&storage, "/a", ATOMIC, b"a").await.unwrap();
        for path in ["/ a", "/a ", "/\ta", "/d/x\u{3000}"] {
            assert!(
                matches!(
                    storage.metadata(&vp(path)).await,
                    Err(StorageError::InvalidName)
                ),
                "{path:?}"
            );
            assert!(
                matches!(
                    upload(&storage, path, ATOMIC, b"x").await,
                    Err(StorageError::InvalidName)
                ),
                "{path:?}"
            );
        }
        assert!(matches!(
            storage.mkdir(&vp("/d ")).await,
            Err(StorageError::InvalidName)
        ));
        // Inside a key, whitespace is only a byte of it.
        storage.mkdir(&vp("/d x")).await.unwrap();
        upload(&storage, "/d x/ y", ATOMIC, b"y").await.unwrap();
        assert_eq!(names(&storage, "/d x").await.unwrap(), [" y"]);
        assert_eq!(read_all(&storage, "/a", 0).await.unwrap(), b"a");
    }

    #[tokio::test]
    async fn a_key_longer_than_s3_takes_is_an_invalid_name() {
        if missing() {
            return;
        }
        let storage = garage().storage();
        let long = format!("/{}", "n".repeat(MAX_KEY_LEN));
        assert!(matches!(
            storage.metadata(&vp(&long)).await,
            Err(StorageError::InvalidName)
        ));
        assert!(matches!(
            upload(&storage, &long, ATOMIC, b"x").await,
            Err(StorageError::InvalidName)
        ));
    }

    /// Nothing listens there: every operation fails as an I/O error, which
    /// the session answers `451`.
    #[tokio::test]
    async fn an_unreachable_endpoint_is_an_io_error() {
        if missing() {
            return;
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let mut config = garage().config("unreachable/");
        config.endpoint = endpoint;
        let storage = S3Storage::new(config).unwrap();
        assert!(matches!(
            storage.metadata(&vp("/f")).await,
            Err(StorageError::Io(_))
        ));
        assert!(matches!(
            storage.list(&VirtualPath::root()).await.err(),
            Some(StorageError::Io(_))
        ));
        assert!(matches!(
            upload(&storage, "/f", ATOMIC, b"x").await,
            Err(StorageError::Io(_))
        ));
    }

    #[tokio::test]
    async fn a_wrong_secret_is_an_io_error_not_a_refusal() {
        if missing() {
            return;
        }
        let mut config = garage().config("wrong-key/");
        config.credentials =
            S3Credentials::new(&config.credentials.access_key_id, "0".repeat(64).as_str()).unwrap();
        let storage = S3Storage::new(config).unwrap();
        assert!(matches!(
            storage.metadata(&vp("/f")).await,
            Err(StorageError::Io(_))
        ));
    }
}
