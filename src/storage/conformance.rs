//! The behaviour every [`Storage`] backend must show, as one suite that
//! every backend runs.
//!
//! Each behaviour is one function over a [`Subject`] (a fresh backend),
//! seeding what it needs through the trait itself, so it holds for any
//! backend. [`conformance_suite!`] turns every behaviour into a
//! `#[tokio::test]` for one backend; the lines at the end of this file are
//! the backends that run it. What only one backend does (the disk's
//! symlinks and temporary files, the memory tree's fixed modes, the
//! injected faults) is tested in that backend's own module.
//!
//! A backend that cannot do an [`Optional`] operation names it after
//! `except`, and the suite then checks that the operation answers
//! [`StorageError::Unsupported`] (and changes nothing): a missing feature is
//! declared and checked, never skipped.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use super::faults::FaultyStorage;
use super::garage::garage;
use super::test_support::{bare_names, names, read_all, upload, vp};
use super::{
    DirEntry, EntryStream, FileKind, FsStorage, MemoryStorage, Metadata, ReadStream, Storage,
    StorageError, TimedStorage, Upload, WriteMode,
};
use crate::path::VirtualPath;

const ATOMIC: WriteMode = WriteMode::Replace { atomic: true };
const IN_PLACE: WriteMode = WriteMode::Replace { atomic: false };

/// Operations a backend may lack, as the trait allows (an object store
/// cannot append to an object or rename a directory in one step, and its
/// objects have no identity beyond their keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Optional {
    /// Uploads with [`WriteMode::Append`] (`APPE`).
    Append,
    /// Uploads with [`WriteMode::At`] (`REST` + `STOR`).
    WriteAt,
    /// [`Storage::set_modified`] (`MFMT`).
    SetModified,
    /// [`Storage::rename`] of a directory.
    RenameDir,
    /// [`Metadata::unique`] (MLSD `unique`): a lacking backend reports
    /// none, rather than one that a rename would change.
    Unique,
}

/// A fresh backend for one test, and what it declared it lacks.
pub(super) struct Subject {
    storage: Arc<dyn Storage>,
    /// The directory an on-disk backend lives in, held only to be removed
    /// with it; declared after `storage`, so dropped after the backend.
    _home: Option<tempfile::TempDir>,
    lacks: &'static [Optional],
}

impl Subject {
    /// `storage`, which lives nowhere but in itself.
    pub(super) fn new(storage: impl Storage) -> Self {
        Subject {
            storage: Arc::new(storage),
            _home: None,
            lacks: &[],
        }
    }

    /// An [`FsStorage`] on a fresh temporary directory.
    pub(super) fn on_disk() -> Self {
        let home = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(home.path()).unwrap();
        Subject {
            _home: Some(home),
            ..Subject::new(storage)
        }
    }

    /// This backend inside a decorator.
    pub(super) fn wrapped(self, wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>) -> Self {
        Subject {
            storage: wrap(self.storage),
            ..self
        }
    }

    /// This backend, declared to lack `lacks`.
    pub(super) fn lacking(self, lacks: &'static [Optional]) -> Self {
        Subject { lacks, ..self }
    }

    fn lacks(&self, op: Optional) -> bool {
        self.lacks.contains(&op)
    }

    /// The upload modes this backend offers.
    fn write_modes(&self) -> Vec<WriteMode> {
        let mut modes = vec![ATOMIC, IN_PLACE, WriteMode::CreateNew];
        if !self.lacks(Optional::Append) {
            modes.push(WriteMode::Append);
        }
        if !self.lacks(Optional::WriteAt) {
            modes.push(WriteMode::At(0));
        }
        modes
    }

    async fn upload(&self, path: &str, mode: WriteMode, data: &[u8]) -> Result<(), StorageError> {
        upload(&*self.storage, path, mode, data).await
    }

    /// Uploads `data` to `path` as a whole new file.
    async fn put(&self, path: &str, data: &[u8]) {
        self.upload(path, ATOMIC, data).await.unwrap();
    }

    async fn read_at(&self, path: &str, offset: u64) -> Result<Vec<u8>, StorageError> {
        read_all(&*self.storage, path, offset).await
    }

    async fn content(&self, path: &str) -> Vec<u8> {
        self.read_at(path, 0).await.unwrap()
    }

    /// The sorted names in directory `path`.
    async fn names(&self, path: &str) -> Vec<String> {
        names(&*self.storage, path).await.unwrap()
    }

    async fn mkdirs(&self, paths: &[&str]) {
        for path in paths {
            self.mkdir(&vp(path)).await.unwrap();
        }
    }
}

impl Deref for Subject {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        &*self.storage
    }
}

#[track_caller]
fn assert_unsupported<T>(result: Result<T, StorageError>) {
    assert!(
        matches!(result, Err(StorageError::Unsupported)),
        "a lacking operation must answer Unsupported, got {:?}",
        result.map(|_| ())
    );
}

pub(super) async fn a_new_storage_is_an_empty_root(b: &Subject) {
    assert_eq!(
        b.metadata(&VirtualPath::root()).await.unwrap().kind,
        FileKind::Dir
    );
    assert!(b.names("/").await.is_empty());
}

pub(super) async fn uploaded_file_reads_back_with_metadata(b: &Subject) {
    b.put("/a.txt", b"0123456789").await;
    assert_eq!(b.content("/a.txt").await, b"0123456789");
    let meta = b.metadata(&vp("/a.txt")).await.unwrap();
    assert_eq!((meta.kind, meta.size), (FileKind::File, 10));
}

pub(super) async fn metadata_tells_directories_and_missing_paths(b: &Subject) {
    b.mkdirs(&["/d"]).await;
    assert!(b.metadata(&vp("/d")).await.unwrap().is_dir());
    assert!(matches!(
        b.metadata(&vp("/nope")).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        b.metadata(&vp("/d/nope")).await,
        Err(StorageError::NotFound)
    ));
}

pub(super) async fn open_read_starts_at_offset(b: &Subject) {
    b.put("/a.txt", b"0123456789").await;
    assert_eq!(b.read_at("/a.txt", 4).await.unwrap(), b"456789");
    assert_eq!(b.read_at("/a.txt", 10).await.unwrap(), b"");
    assert_eq!(b.read_at("/a.txt", 50).await.unwrap(), b"");
    assert_eq!(b.read_at("/a.txt", 99).await.unwrap(), b"");
}

pub(super) async fn open_read_of_directory_is_refused(b: &Subject) {
    b.mkdirs(&["/d"]).await;
    for dir in ["/d", "/"] {
        assert!(matches!(
            b.read_at(dir, 0).await,
            Err(StorageError::IsADirectory)
        ));
    }
    assert!(matches!(
        b.read_at("/nope", 0).await,
        Err(StorageError::NotFound)
    ));
}

/// What the kernel says (`ENOTDIR`) when the nearest existing ancestor is a file.
pub(super) async fn path_beneath_a_file_is_not_a_directory(b: &Subject) {
    b.put("/f", b"").await;
    assert!(matches!(
        b.metadata(&vp("/f/x/y")).await,
        Err(StorageError::NotADirectory)
    ));
    assert!(matches!(
        b.mkdir(&vp("/f/x")).await,
        Err(StorageError::NotADirectory)
    ));
}

/// An upload whose bytes a listing could show, or a reader see, before it
/// ends would hand clients half files.
pub(super) async fn atomic_upload_is_invisible_until_finish(b: &Subject) {
    b.put("/a.txt", b"old").await;
    let mut up = b.open_write(&vp("/a.txt"), ATOMIC).await.unwrap();
    up.write_block(b"new content".to_vec()).await.unwrap();
    assert_eq!(b.content("/a.txt").await, b"old");
    assert_eq!(b.names("/").await, ["a.txt"]);
    up.finish().await.unwrap();
    assert_eq!(b.content("/a.txt").await, b"new content");
    assert_eq!(b.names("/").await, ["a.txt"]);
}

/// A dropped upload is what a cut data connection or an `ABOR` leaves.
pub(super) async fn failed_atomic_upload_keeps_old_file(b: &Subject) {
    b.put("/a.txt", b"old").await;
    let mut up = b.open_write(&vp("/a.txt"), ATOMIC).await.unwrap();
    up.write_block(b"half an upl".to_vec()).await.unwrap();
    drop(up);
    assert_eq!(b.content("/a.txt").await, b"old");
    assert_eq!(b.names("/").await, ["a.txt"]);
}

/// A download in progress while the file is replaced sends the file it began.
pub(super) async fn reader_keeps_its_snapshot(b: &Subject) {
    b.put("/a.txt", b"old").await;
    let mut reader = b.open_read(&vp("/a.txt"), 0).await.unwrap();
    b.put("/a.txt", b"new!").await;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"old");
}

pub(super) async fn in_place_replace_truncates(b: &Subject) {
    b.put("/a.txt", b"a long old content").await;
    b.upload("/a.txt", IN_PLACE, b"short").await.unwrap();
    assert_eq!(b.content("/a.txt").await, b"short");
    b.upload("/b.txt", IN_PLACE, b"created").await.unwrap();
    assert_eq!(b.content("/b.txt").await, b"created");
}

pub(super) async fn rest_at_offset_keeps_prefix_and_truncates_tail(b: &Subject) {
    b.put("/a.txt", b"0123456789").await;
    if b.lacks(Optional::WriteAt) {
        assert_unsupported(b.upload("/a.txt", WriteMode::At(4), b"ab").await);
        assert_eq!(b.content("/a.txt").await, b"0123456789");
        return;
    }
    b.upload("/a.txt", WriteMode::At(4), b"ab").await.unwrap();
    assert_eq!(b.content("/a.txt").await, b"0123ab");
    // A gap past the old end reads as zeros, as a sparse hole does on disk.
    b.upload("/a.txt", WriteMode::At(8), b"z").await.unwrap();
    assert_eq!(b.content("/a.txt").await, b"0123ab\0\0z");
    b.upload("/new.txt", WriteMode::At(0), b"fresh")
        .await
        .unwrap();
    assert_eq!(b.content("/new.txt").await, b"fresh");
}

pub(super) async fn append_appends(b: &Subject) {
    if b.lacks(Optional::Append) {
        b.put("/a.txt", b"one ").await;
        assert_unsupported(b.upload("/a.txt", WriteMode::Append, b"two").await);
        assert_unsupported(b.upload("/b.txt", WriteMode::Append, b"new").await);
        assert_eq!(b.content("/a.txt").await, b"one ");
        assert_eq!(b.names("/").await, ["a.txt"]);
        return;
    }
    b.upload("/a.txt", WriteMode::Append, b"one ")
        .await
        .unwrap();
    b.upload("/a.txt", WriteMode::Append, b"two").await.unwrap();
    assert_eq!(b.content("/a.txt").await, b"one two");
    b.upload("/b.txt", WriteMode::Append, b"new").await.unwrap();
    assert_eq!(b.content("/b.txt").await, b"new");
}

pub(super) async fn create_new_refuses_existing(b: &Subject) {
    b.put("/a.txt", b"keep").await;
    b.mkdirs(&["/d"]).await;
    for path in ["/a.txt", "/d"] {
        assert!(matches!(
            b.upload(path, WriteMode::CreateNew, b"x").await,
            Err(StorageError::AlreadyExists)
        ));
    }
    assert_eq!(b.content("/a.txt").await, b"keep");
    b.upload("/b.txt", WriteMode::CreateNew, b"b")
        .await
        .unwrap();
    assert_eq!(b.content("/b.txt").await, b"b");
}

/// Two `STOU`s must not pick the same name, as `O_EXCL` ensures on disk.
pub(super) async fn create_new_takes_the_name_at_open(b: &Subject) {
    let mut first = b.open_write(&vp("/u"), WriteMode::CreateNew).await.unwrap();
    assert!(matches!(
        b.open_write(&vp("/u"), WriteMode::CreateNew).await.err(),
        Some(StorageError::AlreadyExists)
    ));
    first.write_block(b"mine".to_vec()).await.unwrap();
    first.finish().await.unwrap();
    assert_eq!(b.content("/u").await, b"mine");
}

pub(super) async fn upload_needs_an_existing_parent_and_no_directory_at_target(b: &Subject) {
    b.mkdirs(&["/d"]).await;
    for mode in b.write_modes() {
        assert!(
            matches!(
                b.upload("/no/such.txt", mode, b"x").await,
                Err(StorageError::NotFound)
            ),
            "{mode:?}"
        );
    }
    for mode in b.write_modes() {
        if mode == WriteMode::CreateNew {
            continue; // create_new_refuses_existing: the name is taken
        }
        assert!(
            matches!(
                b.upload("/d", mode, b"x").await,
                Err(StorageError::IsADirectory)
            ),
            "{mode:?}"
        );
    }
    assert!(matches!(
        b.upload("/", ATOMIC, b"x").await,
        Err(StorageError::IsADirectory)
    ));
    assert_eq!(b.names("/").await, ["d"]);
    assert!(b.names("/d").await.is_empty());
}

pub(super) async fn mkdir_needs_parent_and_refuses_existing(b: &Subject) {
    b.mkdirs(&["/d"]).await;
    assert!(b.metadata(&vp("/d")).await.unwrap().is_dir());
    for existing in ["/d", "/"] {
        assert!(matches!(
            b.mkdir(&vp(existing)).await,
            Err(StorageError::AlreadyExists)
        ));
    }
    assert!(matches!(
        b.mkdir(&vp("/x/y")).await,
        Err(StorageError::NotFound)
    ));
}

pub(super) async fn rmdir_removes_only_empty_directories(b: &Subject) {
    b.mkdirs(&["/full", "/full/sub"]).await;
    b.put("/f.txt", b"").await;
    assert!(matches!(
        b.rmdir(&vp("/full")).await,
        Err(StorageError::DirectoryNotEmpty)
    ));
    assert!(matches!(
        b.rmdir(&vp("/f.txt")).await,
        Err(StorageError::NotADirectory)
    ));
    assert!(matches!(
        b.rmdir(&vp("/")).await,
        Err(StorageError::PermissionDenied)
    ));
    assert!(matches!(
        b.rmdir(&vp("/nope")).await,
        Err(StorageError::NotFound)
    ));
    b.rmdir(&vp("/full/sub")).await.unwrap();
    assert!(b.names("/full").await.is_empty());
    b.rmdir(&vp("/full")).await.unwrap();
    assert_eq!(b.names("/").await, ["f.txt"]);
}

pub(super) async fn remove_deletes_files_but_not_directories(b: &Subject) {
    b.mkdirs(&["/d"]).await;
    b.put("/f.txt", b"").await;
    assert!(matches!(
        b.remove(&vp("/d")).await,
        Err(StorageError::IsADirectory)
    ));
    assert!(matches!(
        b.remove(&vp("/")).await,
        Err(StorageError::PermissionDenied)
    ));
    assert!(matches!(
        b.remove(&vp("/nope")).await,
        Err(StorageError::NotFound)
    ));
    b.remove(&vp("/f.txt")).await.unwrap();
    assert_eq!(b.names("/").await, ["d"]);
}

pub(super) async fn rename_moves_and_replaces_files(b: &Subject) {
    b.mkdirs(&["/d"]).await;
    b.put("/a.txt", b"a").await;
    b.put("/b.txt", b"b").await;
    b.rename(&vp("/a.txt"), &vp("/b.txt")).await.unwrap();
    assert_eq!(b.content("/b.txt").await, b"a");
    assert!(matches!(
        b.rename(&vp("/b.txt"), &vp("/d")).await,
        Err(StorageError::IsADirectory)
    ));
    assert!(matches!(
        b.rename(&vp("/b.txt"), &vp("/nope/x")).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        b.rename(&vp("/nope"), &vp("/x")).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(b.names("/").await, ["b.txt", "d"]);
    b.rename(&vp("/b.txt"), &vp("/d/c.txt")).await.unwrap();
    assert_eq!(b.content("/d/c.txt").await, b"a");
    assert_eq!(b.names("/").await, ["d"]);
}

pub(super) async fn rename_moves_a_whole_subtree(b: &Subject) {
    b.mkdirs(&["/a", "/a/sub"]).await;
    b.put("/a/sub/f", b"deep").await;
    // Sorts right after "/a" in a map of paths, yet is no part of it.
    b.put("/a b", b"sibling").await;
    if b.lacks(Optional::RenameDir) {
        assert_unsupported(b.rename(&vp("/a"), &vp("/z")).await);
        assert_eq!(b.names("/").await, ["a", "a b"]);
        assert_eq!(b.content("/a/sub/f").await, b"deep");
        return;
    }
    b.rename(&vp("/a"), &vp("/z")).await.unwrap();
    assert_eq!(b.content("/z/sub/f").await, b"deep");
    assert_eq!(b.content("/a b").await, b"sibling");
    assert_eq!(b.names("/").await, ["a b", "z"]);
    // rename(2) says EINVAL: a directory cannot move into itself.
    assert!(matches!(
        b.rename(&vp("/z"), &vp("/z/sub/inner")).await,
        Err(StorageError::InvalidName)
    ));
    assert!(matches!(
        b.rename(&vp("/"), &vp("/x")).await,
        Err(StorageError::PermissionDenied)
    ));
    assert!(matches!(
        b.rename(&vp("/z"), &vp("/")).await,
        Err(StorageError::PermissionDenied)
    ));
    assert_eq!(b.names("/").await, ["a b", "z"]);
}

/// As rename(2): a directory replaces an empty directory, nothing else.
pub(super) async fn rename_of_a_directory_replaces_only_an_empty_directory(b: &Subject) {
    b.mkdirs(&["/d", "/empty", "/full"]).await;
    b.put("/d/f", b"f").await;
    b.put("/full/g", b"g").await;
    b.put("/file", b"").await;
    if b.lacks(Optional::RenameDir) {
        assert_unsupported(b.rename(&vp("/d"), &vp("/empty")).await);
        assert_eq!(b.names("/").await, ["d", "empty", "file", "full"]);
        return;
    }
    assert!(matches!(
        b.rename(&vp("/d"), &vp("/full")).await,
        Err(StorageError::DirectoryNotEmpty)
    ));
    assert!(matches!(
        b.rename(&vp("/d"), &vp("/file")).await,
        Err(StorageError::NotADirectory)
    ));
    b.rename(&vp("/d"), &vp("/empty")).await.unwrap();
    assert_eq!(b.names("/").await, ["empty", "file", "full"]);
    assert_eq!(b.content("/empty/f").await, b"f");
    assert_eq!(b.content("/full/g").await, b"g");
}

pub(super) async fn list_shows_only_direct_children(b: &Subject) {
    b.mkdirs(&["/a", "/a/sub"]).await;
    for file in ["/a/sub/deep", "/a/f", "/a b", "/a0"] {
        b.put(file, b"").await;
    }
    assert_eq!(b.names("/a").await, ["f", "sub"]);
    assert_eq!(b.names("/").await, ["a", "a b", "a0"]);
    assert!(matches!(
        b.list(&vp("/a/f")).await.err(),
        Some(StorageError::NotADirectory)
    ));
    assert!(matches!(
        b.list(&vp("/nope")).await.err(),
        Some(StorageError::NotFound)
    ));
}

/// `LIST` and `MLSD` show what `MLST` of each entry would.
pub(super) async fn listed_metadata_is_what_metadata_reports(b: &Subject) {
    b.mkdirs(&["/d", "/d/sub"]).await;
    b.put("/d/a.txt", b"hello").await;
    b.put("/d/.hidden", b"").await;
    let mut entries: Vec<DirEntry> = b
        .list(&vp("/d"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    entries.sort_by(|x, y| x.name.cmp(&y.name));
    let listed: Vec<(&str, FileKind)> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.metadata.kind))
        .collect();
    assert_eq!(
        listed,
        [
            (".hidden", FileKind::File),
            ("a.txt", FileKind::File),
            ("sub", FileKind::Dir)
        ]
    );
    assert_eq!(entries[1].metadata.size, 5);
    for entry in &entries {
        let path = format!("/d/{}", entry.name);
        let expected = b.metadata(&vp(&path)).await.unwrap();
        assert_eq!(entry.metadata, expected, "{path}");
    }
}

pub(super) async fn list_names_lists_what_list_lists(b: &Subject) {
    b.mkdirs(&["/d", "/d/sub"]).await;
    b.put("/d/a.txt", b"").await;
    for dir in ["/", "/d", "/d/sub"] {
        assert_eq!(bare_names(&**b, dir).await, b.names(dir).await, "{dir}");
    }
    assert_eq!(b.names("/d").await, ["a.txt", "sub"]);
    for refused in ["/d/a.txt", "/nope"] {
        assert!(b.list_names(&vp(refused)).await.is_err(), "{refused}");
    }
}

/// More entries than any backend reads in one batch.
pub(super) async fn list_streams_many_entries(b: &Subject) {
    for i in 0..2000 {
        b.put(&format!("/f{i:04}"), b"").await;
    }
    let expected: Vec<String> = (0..2000).map(|i| format!("f{i:04}")).collect();
    assert_eq!(b.names("/").await, expected);
}

/// A client that goes away mid-listing must not leave the backend stuck
/// (the disk's reading thread, say, blocked on a full channel).
pub(super) async fn dropping_a_listing_early_stops_it(b: &Subject) {
    for i in 0..500 {
        b.put(&format!("/f{i}"), b"").await;
    }
    let mut stream = b.list(&vp("/")).await.unwrap();
    assert!(stream.try_next().await.unwrap().is_some());
    drop(stream);
    assert_eq!(b.names("/").await.len(), 500);
}

/// MLSD's `unique` fact names an object, not a path.
pub(super) async fn unique_is_per_object(b: &Subject) {
    b.put("/a", b"").await;
    b.put("/b", b"").await;
    if b.lacks(Optional::Unique) {
        b.mkdirs(&["/d"]).await;
        for path in ["/", "/a", "/d"] {
            let meta = b.metadata(&vp(path)).await.unwrap();
            assert_eq!(meta.unique, None, "{path}");
        }
        let listed: Vec<DirEntry> = b.list(&vp("/")).await.unwrap().try_collect().await.unwrap();
        assert!(
            listed.iter().all(|e| e.metadata.unique.is_none()),
            "{listed:?}"
        );
        return;
    }
    let unique = |m: Metadata| m.unique.unwrap();
    let a = unique(b.metadata(&vp("/a")).await.unwrap());
    assert_ne!(a, unique(b.metadata(&vp("/b")).await.unwrap()));
    if !b.lacks(Optional::Append) {
        b.upload("/a", WriteMode::Append, b"more").await.unwrap();
        assert_eq!(a, unique(b.metadata(&vp("/a")).await.unwrap()));
    }
    b.rename(&vp("/a"), &vp("/c")).await.unwrap();
    assert_eq!(a, unique(b.metadata(&vp("/c")).await.unwrap()));
}

pub(super) async fn set_modified_round_trips(b: &Subject) {
    b.put("/a.txt", b"a").await;
    b.mkdirs(&["/d"]).await;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    if b.lacks(Optional::SetModified) {
        let before = b.metadata(&vp("/a.txt")).await.unwrap().modified;
        assert_unsupported(b.set_modified(&vp("/a.txt"), when).await);
        assert_eq!(b.metadata(&vp("/a.txt")).await.unwrap().modified, before);
        return;
    }
    for path in ["/a.txt", "/d"] {
        b.set_modified(&vp(path), when).await.unwrap();
        let meta = b.metadata(&vp(path)).await.unwrap();
        assert_eq!(meta.modified, Some(when), "{path}");
    }
    assert!(matches!(
        b.set_modified(&vp("/nope"), when).await,
        Err(StorageError::NotFound)
    ));
}

/// [`VirtualPath`] clamps `..` at the root, so no path names anything
/// above it: every backend sees the root itself.
pub(super) async fn dotdot_stays_at_the_root(b: &Subject) {
    b.put("/a.txt", b"top").await;
    assert_eq!(b.content("/../a.txt").await, b"top");
    assert_eq!(b.content("/../../../../a.txt").await, b"top");
    b.mkdir(&vp("/../../d")).await.unwrap();
    b.upload("/d/../../../b.txt", ATOMIC, b"b").await.unwrap();
    assert_eq!(b.names("/").await, ["a.txt", "b.txt", "d"]);
    assert_eq!(b.names("/..").await, ["a.txt", "b.txt", "d"]);
}

/// Permission rules are checked on the resolved path too; where nothing is
/// a link, that must be the path as named (existing or not yet).
pub(super) async fn a_path_without_links_resolves_to_itself(b: &Subject) {
    b.mkdirs(&["/pub"]).await;
    b.put("/pub/f.txt", b"").await;
    for path in ["/", "/pub", "/pub/f.txt", "/pub/new.txt", "/no/such/dir"] {
        assert_eq!(b.resolve(&vp(path)).await.unwrap(), vp(path), "{path}");
    }
}

/// The transfer loop sends an offered operating-system file as it is
/// (sendfile), so it must hold what [`Storage::open_read`] reads.
pub(super) async fn an_offered_os_file_holds_the_files_bytes(b: &Subject) {
    b.put("/a.txt", b"0123456789").await;
    match b.open_os_file(&vp("/a.txt")).await.unwrap() {
        Some((file, size)) => {
            assert_eq!(size, 10);
            assert_eq!(std::io::read_to_string(file).unwrap(), "0123456789");
        }
        None => assert_eq!(b.content("/a.txt").await, b"0123456789"),
    }
}

/// Runs every behaviour above as a `#[tokio::test]`, in a module named
/// `$backend`: `conformance_suite!(name, subject)`, where `subject` makes a
/// fresh [`Subject`] for each test, then optionally `except [Append, ...]`
/// naming the [`Optional`] operations the backend lacks. A new behaviour is
/// a function above and its name in the list below.
macro_rules! conformance_suite {
    ($backend:ident, $subject:expr $(, except [$($lacks:ident),* $(,)?])?
        $(, unless $skip:expr)? $(,)?) => {
        conformance_suite!(@tests $backend, $subject, [$($($lacks),*)?], [$($skip)?];
            a_new_storage_is_an_empty_root,
            uploaded_file_reads_back_with_metadata,
            metadata_tells_directories_and_missing_paths,
            open_read_starts_at_offset,
            open_read_of_directory_is_refused,
            path_beneath_a_file_is_not_a_directory,
            atomic_upload_is_invisible_until_finish,
            failed_atomic_upload_keeps_old_file,
            reader_keeps_its_snapshot,
            in_place_replace_truncates,
            rest_at_offset_keeps_prefix_and_truncates_tail,
            append_appends,
            create_new_refuses_existing,
            create_new_takes_the_name_at_open,
            upload_needs_an_existing_parent_and_no_directory_at_target,
            mkdir_needs_parent_and_refuses_existing,
            rmdir_removes_only_empty_directories,
            remove_deletes_files_but_not_directories,
            rename_moves_and_replaces_files,
            rename_moves_a_whole_subtree,
            rename_of_a_directory_replaces_only_an_empty_directory,
            list_shows_only_direct_children,
            listed_metadata_is_what_metadata_reports,
            list_names_lists_what_list_lists,
            list_streams_many_entries,
            dropping_a_listing_early_stops_it,
            unique_is_per_object,
            set_modified_round_trips,
            dotdot_stays_at_the_root,
            a_path_without_links_resolves_to_itself,
            an_offered_os_file_holds_the_files_bytes,
        );
    };
    (@tests $backend:ident, $subject:expr, [$($lacks:ident),*], [$($skip:expr)?];
        $($behaviour:ident),* $(,)?) => {
        mod $backend {
            use super::*;

            fn subject() -> $crate::storage::conformance::Subject {
                ($subject).lacking(&[$($crate::storage::conformance::Optional::$lacks),*])
            }

            /// A backend whose server is not installed here skips.
            fn skipped() -> bool {
                false $(|| $skip)?
            }

            $(
                #[tokio::test]
                async fn $behaviour() {
                    if skipped() {
                        return;
                    }
                    $crate::storage::conformance::$behaviour(&subject()).await;
                }
            )*
        }
    };
}

/// Long enough never to fire: these tests check that the decorator passes
/// every operation through unchanged, not its timeout.
const NEVER: Duration = Duration::from_secs(24 * 3600);

fn timed(inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
    Arc::new(TimedStorage::new(inner, NEVER))
}

/// With no fault switched on.
fn faultless(inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
    Arc::new(FaultyStorage::new(inner).0)
}

conformance_suite!(fs, Subject::on_disk());
conformance_suite!(memory, Subject::new(MemoryStorage::new()));
conformance_suite!(timed_fs, Subject::on_disk().wrapped(timed));
conformance_suite!(
    timed_memory,
    Subject::new(MemoryStorage::new()).wrapped(timed)
);
conformance_suite!(faultless_fs, Subject::on_disk().wrapped(faultless));
conformance_suite!(
    faultless_memory,
    Subject::new(MemoryStorage::new()).wrapped(faultless)
);
conformance_suite!(
    memory_lacking_the_optional_operations,
    Subject::new(Lacking(MemoryStorage::new())),
    except [Append, WriteAt, SetModified, RenameDir, Unique]
);

/// A memory tree that refuses every [`Optional`] operation, as a backend
/// declaring them `except` would: it keeps the suite's checks of such
/// declarations honest.
struct Lacking(MemoryStorage);

#[async_trait]
impl Storage for Lacking {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        let meta = self.0.metadata(path).await?;
        Ok(Metadata {
            unique: None,
            ..meta
        })
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        let entries = self.0.list(path).await?;
        Ok(entries
            .map_ok(|mut entry| {
                entry.metadata.unique = None;
                entry
            })
            .boxed())
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        self.0.open_read(path, offset).await
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        match mode {
            WriteMode::Append | WriteMode::At(_) => Err(StorageError::Unsupported),
            _ => self.0.open_write(path, mode).await,
        }
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.0.mkdir(path).await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.0.rmdir(path).await
    }

    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.0.remove(path).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if self.0.metadata(from).await?.is_dir() {
            return Err(StorageError::Unsupported);
        }
        self.0.rename(from, to).await
    }

    async fn set_modified(&self, _: &VirtualPath, _: SystemTime) -> Result<(), StorageError> {
        Err(StorageError::Unsupported)
    }
}

// A real S3 server (Garage, started once for the test binary), each test
// under a fresh prefix of its bucket; skipped where Garage is not installed,
// unless under CI.
conformance_suite!(
    s3,
    Subject::new(garage().storage()),
    except [Append, WriteAt, SetModified, RenameDir, Unique],
    unless crate::storage::garage::missing(),
);
