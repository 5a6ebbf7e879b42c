use std::sync::Arc;

use super::*;
use crate::storage::MemoryStorage;

/// A memory tree holding `files` (with their directories) of those sizes.
async fn tree(files: &[(&str, usize)]) -> Arc<dyn Storage> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    for (path, size) in files {
        let path = VirtualPath::new(path);
        let mut dirs = Vec::new();
        let mut dir = path.parent();
        while !dir.is_root() {
            dirs.push(dir.clone());
            dir = dir.parent();
        }
        for dir in dirs.iter().rev() {
            let _ = storage.mkdir(dir).await;
        }
        let mode = WriteMode::Replace { atomic: false };
        let mut upload = storage.open_write(&path, mode).await.unwrap();
        upload.write_block(vec![b'x'; *size]).await.unwrap();
        upload.finish().await.unwrap();
    }
    storage
}

fn quota(bytes: Option<u64>, files: Option<u64>, storage: &Arc<dyn Storage>) -> Arc<UserQuota> {
    Arc::new(UserQuota::new(
        Quota { bytes, files },
        Arc::new(MemoryLedger::default()),
        storage.clone(),
    ))
}

async fn upload(
    quota: &Arc<UserQuota>,
    storage: &Arc<dyn Storage>,
    path: &str,
    mode: WriteMode,
    blocks: &[usize],
) -> Result<(), StorageError> {
    let path = VirtualPath::new(path);
    let existing = match storage.metadata(&path).await {
        Ok(meta) => Some(meta.size),
        Err(_) => None,
    };
    let admitted = quota.admit(&path, mode, existing).await?;
    let mut upload = admitted.meter(storage.open_write(&path, mode).await?);
    for &size in blocks {
        upload.write_block(vec![b'y'; size]).await?;
    }
    upload.finish().await
}

async fn size(storage: &Arc<dyn Storage>, path: &str) -> Option<u64> {
    storage
        .metadata(&VirtualPath::new(path))
        .await
        .ok()
        .map(|meta| meta.size)
}

#[tokio::test]
async fn usage_is_counted_from_the_tree_when_first_needed() {
    let storage = tree(&[("/a", 10), ("/d/b", 20), ("/d/e/c", 5)]).await;
    let q = quota(Some(100), None, &storage);
    assert_eq!(
        q.usage().await.unwrap(),
        Usage {
            bytes: 35,
            files: 3
        }
    );
}

#[tokio::test]
async fn an_upload_that_crosses_the_quota_fails_and_leaves_the_old_file() {
    let storage = tree(&[("/old", 10)]).await;
    let q = quota(Some(100), None, &storage);
    let atomic = WriteMode::Replace { atomic: true };
    let err = upload(&q, &storage, "/old", atomic, &[60, 60])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::QuotaExceeded), "{err:?}");
    // Dropped mid-way: the settlement runs on the runtime.
    tokio::task::yield_now().await;
    assert_eq!(size(&storage, "/old").await, Some(10));
    assert_eq!(
        q.usage().await.unwrap(),
        Usage {
            bytes: 10,
            files: 1
        }
    );
    // Replacing it with what fits is fine: the old bytes make room.
    upload(&q, &storage, "/old", atomic, &[100]).await.unwrap();
    assert_eq!(
        q.usage().await.unwrap(),
        Usage {
            bytes: 100,
            files: 1
        }
    );
}

#[tokio::test]
async fn append_and_restart_count_only_what_they_add() {
    let storage = tree(&[("/f", 50)]).await;
    let q = quota(Some(80), None, &storage);
    upload(&q, &storage, "/f", WriteMode::Append, &[20])
        .await
        .unwrap();
    assert_eq!(
        q.usage().await.unwrap(),
        Usage {
            bytes: 70,
            files: 1
        }
    );
    // From offset 60 of 70: 25 bytes make the file 85 long, 15 more than it was.
    let err = upload(&q, &storage, "/f", WriteMode::At(60), &[25])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::QuotaExceeded));
    tokio::task::yield_now().await;
    upload(&q, &storage, "/f", WriteMode::At(60), &[20])
        .await
        .unwrap();
    assert_eq!(size(&storage, "/f").await, Some(80));
    assert_eq!(
        q.usage().await.unwrap(),
        Usage {
            bytes: 80,
            files: 1
        }
    );
}

#[tokio::test]
async fn a_user_at_the_limit_is_refused_before_anything_is_opened() {
    let storage = tree(&[("/a", 100)]).await;
    let q = quota(Some(100), Some(5), &storage);
    let path = VirtualPath::new("/b");
    let refused = q
        .admit(&path, WriteMode::Replace { atomic: true }, None)
        .await;
    assert!(matches!(refused, Err(StorageError::QuotaExceeded)));
    let files = quota(None, Some(1), &storage);
    let refused = files
        .admit(&path, WriteMode::Replace { atomic: true }, None)
        .await;
    assert!(matches!(refused, Err(StorageError::QuotaExceeded)));
    // Replacing the one file it has is not a new file.
    assert!(files
        .admit(
            &VirtualPath::new("/a"),
            WriteMode::Replace { atomic: true },
            Some(100)
        )
        .await
        .is_ok());
}

#[tokio::test]
async fn a_new_files_place_is_given_back_when_the_upload_never_starts() {
    let storage = tree(&[]).await;
    let q = quota(None, Some(1), &storage);
    let path = VirtualPath::new("/a");
    let admitted = q.admit(&path, WriteMode::CreateNew, None).await.unwrap();
    assert_eq!(q.usage().await.unwrap().files, 1);
    drop(admitted);
    tokio::task::yield_now().await;
    assert_eq!(q.usage().await.unwrap().files, 0);
    upload(&q, &storage, "/a", WriteMode::CreateNew, &[3])
        .await
        .unwrap();
    assert_eq!(q.usage().await.unwrap(), Usage { bytes: 3, files: 1 });
}

#[tokio::test]
async fn removing_a_file_gives_its_bytes_and_place_back() {
    let storage = tree(&[("/a", 40)]).await;
    let q = quota(Some(50), None, &storage);
    assert_eq!(q.usage().await.unwrap().bytes, 40);
    q.removed(40).await;
    assert_eq!(q.usage().await.unwrap(), Usage { bytes: 0, files: 0 });
}

#[tokio::test]
async fn two_uploads_at_once_cannot_both_take_the_last_bytes() {
    let storage = tree(&[]).await;
    let q = quota(Some(CHUNK + 10), None, &storage);
    let a = VirtualPath::new("/a");
    let b = VirtualPath::new("/b");
    let mode = WriteMode::Replace { atomic: true };
    let mut first = q
        .admit(&a, mode, None)
        .await
        .unwrap()
        .meter(storage.open_write(&a, mode).await.unwrap());
    let mut second = q
        .admit(&b, mode, None)
        .await
        .unwrap()
        .meter(storage.open_write(&b, mode).await.unwrap());
    first.write_block(vec![0; 10]).await.unwrap();
    second.write_block(vec![0; 10]).await.unwrap();
    let small = CHUNK as usize - 15;
    first.write_block(vec![0; small]).await.unwrap();
    // What is left is 10 + CHUNK - (10 + 10 + small) = 5 bytes.
    // First still holds the rest of its chunk; once it finishes, what it
    // did not use is given back.
    first.finish().await.unwrap();
    let err = second.write_block(vec![0; 6]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::QuotaExceeded);
    second.write_block(vec![0; 5]).await.unwrap();
    second.finish().await.unwrap();
    assert_eq!(
        q.usage().await.unwrap(),
        Usage {
            bytes: CHUNK + 10,
            files: 2
        }
    );
}

/// A storage that counts its listings, over another.
struct Listings {
    inner: Arc<dyn Storage>,
    count: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Storage for Listings {
    async fn metadata(&self, path: &VirtualPath) -> Result<crate::storage::Metadata, StorageError> {
        self.inner.metadata(path).await
    }
    async fn list(&self, path: &VirtualPath) -> Result<crate::storage::EntryStream, StorageError> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Let the other sessions reach the count meanwhile.
        tokio::task::yield_now().await;
        self.inner.list(path).await
    }
    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<crate::storage::ReadStream, StorageError> {
        self.inner.open_read(path, offset).await
    }
    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        self.inner.open_write(path, mode).await
    }
    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.inner.mkdir(path).await
    }
    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.inner.rmdir(path).await
    }
    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.inner.remove(path).await
    }
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        self.inner.rename(from, to).await
    }
    async fn set_modified(
        &self,
        path: &VirtualPath,
        time: std::time::SystemTime,
    ) -> Result<(), StorageError> {
        self.inner.set_modified(path, time).await
    }
}

#[tokio::test]
async fn many_sessions_needing_the_usage_at_once_walk_the_tree_once() {
    let listings = Arc::new(Listings {
        inner: tree(&[("/a", 1), ("/d/b", 2)]).await,
        count: Default::default(),
    });
    let storage: Arc<dyn Storage> = listings.clone();
    let q = quota(Some(100), None, &storage);
    let asking: Vec<_> = (0..20)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move { q.usage().await.unwrap() })
        })
        .collect();
    for asked in asking {
        assert_eq!(asked.await.unwrap(), Usage { bytes: 3, files: 2 });
    }
    // The root and /d, once.
    assert_eq!(listings.count.load(std::sync::atomic::Ordering::SeqCst), 2);
}
