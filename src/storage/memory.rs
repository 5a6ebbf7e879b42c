//! In-memory storage: a file tree in a map, for tests and throw-away servers.
//!
//! This module owns a tree of directories and files keyed by [`VirtualPath`]
//! and gives it the same semantics as the disk backend: a parent must exist,
//! `rmdir` wants an empty directory, a rename moves a subtree and may replace
//! a file, every [`WriteMode`] behaves as it does on disk.
//!
//! It never holds its lock across an `.await` (the lock is a plain
//! `std::sync::Mutex` taken only inside synchronous helpers) and never
//! touches the disk. Everything it stores, including uploads in progress,
//! lives in memory, so it sets no limits of its own.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use futures::StreamExt;

use super::{
    DirEntry, EntryStream, FileKind, Metadata, ReadStream, Storage, StorageError, Upload, WriteMode,
};
use crate::path::VirtualPath;

/// Permission bits reported for every file.
const FILE_MODE: u32 = 0o644;
/// Permission bits reported for every directory.
const DIR_MODE: u32 = 0o755;

/// A file tree held in memory.
///
/// Uploads are buffered and committed by [`Upload::finish`] in every mode, so
/// an abandoned upload never changes a file; only [`WriteMode::CreateNew`]
/// takes its name at open (as an empty file), like `O_EXCL` on disk, so two
/// `STOU`s cannot pick the same name. Reads see the file as it was when
/// opened.
#[derive(Debug)]
pub struct MemoryStorage {
    tree: Arc<Mutex<Tree>>,
}

impl MemoryStorage {
    /// An empty tree: just the root directory.
    pub fn new() -> Self {
        let mut tree = Tree {
            nodes: BTreeMap::new(),
            next_unique: 0,
        };
        tree.insert(VirtualPath::root(), Content::Dir);
        MemoryStorage {
            tree: Arc::new(Mutex::new(tree)),
        }
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        lock(&self.tree)
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// Locks the tree; a panic while it was held left no half-made change
/// (every change is one map operation), so a poisoned lock is still usable.
fn lock(tree: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    tree.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Tree {
    nodes: BTreeMap<VirtualPath, Node>,
    next_unique: u64,
}

#[derive(Clone, Debug)]
struct Node {
    content: Content,
    modified: SystemTime,
    /// Stands in for an inode number.
    unique: u64,
}

#[derive(Clone, Debug)]
enum Content {
    Dir,
    /// Shared with readers, who keep their snapshot when the file changes.
    File(Arc<[u8]>),
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir)
    }

    fn metadata(&self) -> Metadata {
        let (kind, size, mode) = match &self.content {
            Content::Dir => (FileKind::Dir, 0, DIR_MODE),
            Content::File(data) => (FileKind::File, data.len() as u64, FILE_MODE),
        };
        Metadata {
            kind,
            size,
            modified: Some(self.modified),
            mode,
            unique: Some(self.unique.to_string()),
        }
    }
}

impl Tree {
    /// Adds a node with a fresh unique id, replacing any node at `path`.
    fn insert(&mut self, path: VirtualPath, content: Content) {
        let unique = self.next_unique;
        self.next_unique += 1;
        let node = Node {
            content,
            modified: SystemTime::now(),
            unique,
        };
        self.nodes.insert(path, node);
    }

    fn get(&self, path: &VirtualPath) -> Result<&Node, StorageError> {
        self.nodes.get(path).ok_or_else(|| self.why_missing(path))
    }

    /// The error a missing `path` deserves: like the kernel, `NotADirectory`
    /// when the nearest existing ancestor is a file.
    fn why_missing(&self, path: &VirtualPath) -> StorageError {
        let mut ancestor = path.parent();
        loop {
            if let Some(node) = self.nodes.get(&ancestor) {
                return if node.is_dir() {
                    StorageError::NotFound
                } else {
                    StorageError::NotADirectory
                };
            }
            if ancestor.is_root() {
                return StorageError::NotFound;
            }
            ancestor = ancestor.parent();
        }
    }

    /// Checks that `path` can be created: its parent is an existing directory.
    fn expect_parent_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if self.get(&path.parent())?.is_dir() {
            Ok(())
        } else {
            Err(StorageError::NotADirectory)
        }
    }

    /// `dir` itself (first) and everything beneath it.
    fn subtree<'a>(
        &'a self,
        dir: &'a VirtualPath,
    ) -> impl Iterator<Item = (&'a VirtualPath, &'a Node)> + 'a {
        // Paths that extend `dir`'s text sort together right after it;
        // descendants are among them (as are siblings like "/a b" for "/a").
        self.nodes
            .range((Bound::Included(dir), Bound::Unbounded))
            .take_while(move |(path, _)| path.as_str().starts_with(dir.as_str()))
            .filter(move |(path, _)| path.starts_with(dir))
    }

    /// The direct children of `dir`.
    fn children<'a>(
        &'a self,
        dir: &'a VirtualPath,
    ) -> impl Iterator<Item = (&'a VirtualPath, &'a Node)> + 'a {
        self.subtree(dir)
            .filter(move |(path, _)| *path != dir && path.parent() == *dir)
    }

    fn rename(&mut self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let moving_dir = self.get(from)?.is_dir();
        self.expect_parent_dir(to)?;
        if from == to {
            return Ok(());
        }
        if to.starts_with(from) {
            // rename(2) says EINVAL: a directory cannot move into itself.
            return Err(StorageError::InvalidName);
        }
        if let Some(existing) = self.nodes.get(to) {
            match (moving_dir, existing.is_dir()) {
                (false, true) => return Err(StorageError::IsADirectory),
                (true, false) => return Err(StorageError::NotADirectory),
                (true, true) if self.children(to).next().is_some() => {
                    return Err(StorageError::DirectoryNotEmpty)
                }
                _ => {}
            }
        }
        let moved: Vec<VirtualPath> = self.subtree(from).map(|(path, _)| path.clone()).collect();
        for old in moved {
            if let Some(node) = self.nodes.remove(&old) {
                let suffix = &old.as_str()[from.as_str().len()..];
                let new = VirtualPath::new(&format!("{}{suffix}", to.as_str()));
                self.nodes.insert(new, node);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        Ok(self.tree().get(path)?.metadata())
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        let tree = self.tree();
        if !tree.get(path)?.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        let entries: Vec<Result<DirEntry, StorageError>> = tree
            .children(path)
            .map(|(child, node)| {
                Ok(DirEntry {
                    name: child.file_name().unwrap_or_default().to_owned(),
                    metadata: node.metadata(),
                })
            })
            .collect();
        Ok(futures::stream::iter(entries).boxed())
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let data = match &self.tree().get(path)?.content {
            Content::Dir => return Err(StorageError::IsADirectory),
            Content::File(data) => Arc::clone(data),
        };
        let mut reader = Cursor::new(data);
        reader.set_position(offset);
        Ok(Box::pin(reader))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let mut tree = self.tree();
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        tree.expect_parent_dir(path)?;
        match tree.nodes.get(path) {
            Some(_) if mode == WriteMode::CreateNew => return Err(StorageError::AlreadyExists),
            Some(node) if node.is_dir() => return Err(StorageError::IsADirectory),
            Some(_) => {}
            None if mode == WriteMode::CreateNew => {
                tree.insert(path.clone(), Content::File(Arc::from(Vec::new())));
            }
            None => {}
        }
        Ok(Box::new(MemoryUpload {
            tree: Arc::clone(&self.tree),
            path: path.clone(),
            mode,
            buffer: Vec::new(),
        }))
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.tree();
        if tree.nodes.contains_key(path) {
            return Err(StorageError::AlreadyExists);
        }
        tree.expect_parent_dir(path)?;
        tree.insert(path.clone(), Content::Dir);
        Ok(())
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.tree();
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if !tree.get(path)?.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        if tree.children(path).next().is_some() {
            return Err(StorageError::DirectoryNotEmpty);
        }
        tree.nodes.remove(path);
        Ok(())
    }

    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.tree();
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if tree.get(path)?.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        tree.nodes.remove(path);
        Ok(())
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        self.tree().rename(from, to)
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        let mut tree = self.tree();
        tree.get(path)?;
        if let Some(node) = tree.nodes.get_mut(path) {
            node.modified = time;
        }
        Ok(())
    }
}

/// An upload buffered in memory until [`Upload::finish`] commits it.
struct MemoryUpload {
    tree: Arc<Mutex<Tree>>,
    path: VirtualPath,
    mode: WriteMode,
    buffer: Vec<u8>,
}

impl MemoryUpload {
    /// Writes the buffer into the tree as `mode` says, checking again what
    /// may have changed since the upload was opened.
    fn commit(self) -> Result<(), StorageError> {
        let mut tree = lock(&self.tree);
        tree.expect_parent_dir(&self.path)?;
        let existing = match tree.nodes.get(&self.path) {
            Some(node) => match &node.content {
                Content::Dir => return Err(StorageError::IsADirectory),
                Content::File(data) => Some(Arc::clone(data)),
            },
            None => None,
        };
        let old = existing.as_deref().unwrap_or_default();
        let data: Vec<u8> = match self.mode {
            WriteMode::Replace { .. } | WriteMode::CreateNew => self.buffer,
            WriteMode::Append => [old, &self.buffer].concat(),
            WriteMode::At(offset) => {
                // Bytes before the offset stay; a gap past the old end reads
                // as zeros, as a sparse hole does on disk.
                let offset = usize::try_from(offset).map_err(|_| StorageError::StorageFull)?;
                let mut data = old[..offset.min(old.len())].to_vec();
                data.resize(offset, 0);
                data.extend_from_slice(&self.buffer);
                data
            }
        };
        let content = Content::File(Arc::from(data));
        let in_place = existing.is_some() && self.mode != (WriteMode::Replace { atomic: true });
        match tree.nodes.get_mut(&self.path) {
            // Written through the existing file: same object, as on disk.
            Some(node) if in_place => {
                node.content = content;
                node.modified = SystemTime::now();
            }
            // Created, or renamed over the target: a new object.
            _ => tree.insert(self.path, content),
        }
        Ok(())
    }
}

#[async_trait]
impl Upload for MemoryUpload {
    async fn write_block(&mut self, mut block: Vec<u8>) -> io::Result<Vec<u8>> {
        self.buffer.extend_from_slice(&block);
        block.clear();
        Ok(block)
    }

    async fn finish(self: Box<Self>) -> Result<(), StorageError> {
        self.commit()
    }
}

// The behaviour every backend shares is tested in `conformance`; what is
// left here is the memory tree's own.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::{names, upload, vp};

    const ATOMIC: WriteMode = WriteMode::Replace { atomic: true };

    /// With no disk to ask, the modes are [`FILE_MODE`] and [`DIR_MODE`].
    #[tokio::test]
    async fn files_and_directories_report_fixed_modes() {
        let storage = MemoryStorage::default();
        let root = storage.metadata(&VirtualPath::root()).await.unwrap();
        assert_eq!((root.kind, root.mode), (FileKind::Dir, 0o755));
        upload(&storage, "/a.txt", ATOMIC, b"0123456789")
            .await
            .unwrap();
        let meta = storage.metadata(&vp("/a.txt")).await.unwrap();
        assert_eq!(
            (meta.kind, meta.size, meta.mode),
            (FileKind::File, 10, 0o644)
        );
    }

    /// On disk the upload's temporary file keeps its directory from being
    /// removed; here nothing does, so the commit must check again.
    #[tokio::test]
    async fn upload_fails_if_its_directory_vanished_meanwhile() {
        let storage = MemoryStorage::new();
        storage.mkdir(&vp("/d")).await.unwrap();
        let mut up = storage.open_write(&vp("/d/a"), ATOMIC).await.unwrap();
        up.write_block(b"x".to_vec()).await.unwrap();
        storage.rmdir(&vp("/d")).await.unwrap();
        assert!(matches!(up.finish().await, Err(StorageError::NotFound)));
        assert!(names(&storage, "/").await.unwrap().is_empty());
    }
}
