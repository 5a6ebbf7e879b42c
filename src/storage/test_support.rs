//! Helpers shared by the backends' unit tests: every backend must behave the same.

use futures::TryStreamExt;
use tokio::io::AsyncReadExt;

use super::{DirEntry, Storage, StorageError, WriteMode};
use crate::path::VirtualPath;

pub(super) fn vp(path: &str) -> VirtualPath {
    VirtualPath::new(path)
}

pub(super) async fn read_all(
    storage: &dyn Storage,
    path: &str,
    offset: u64,
) -> Result<Vec<u8>, StorageError> {
    let mut reader = storage.open_read(&vp(path), offset).await?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    Ok(out)
}

pub(super) async fn upload(
    storage: &dyn Storage,
    path: &str,
    mode: WriteMode,
    data: &[u8],
) -> Result<(), StorageError> {
    let mut upload = storage.open_write(&vp(path), mode).await?;
    upload.write_block(data.to_vec()).await?;
    upload.finish().await
}

/// The names in directory `path`, sorted.
pub(super) async fn names(storage: &dyn Storage, path: &str) -> Result<Vec<String>, StorageError> {
    let entries: Vec<DirEntry> = storage.list(&vp(path)).await?.try_collect().await?;
    let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    names.sort();
    Ok(names)
}

/// The names `list_names` gives for directory `path`, sorted.
pub(super) async fn bare_names(storage: &dyn Storage, path: &str) -> Vec<String> {
    let mut names: Vec<String> = storage
        .list_names(&vp(path))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}
