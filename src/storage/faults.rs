//! A `Storage` decorator that injects faults on demand: a disk that fills
//! up, a backend that refuses or hangs. It lets tests drive through the real
//! server what a real filesystem cannot do at will. Not meant for
//! production, so only tests build it: the library's own, and others through
//! the `test-support` feature.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    EntryStream, Metadata, NameStream, ReadStream, Storage, StorageError, Upload, WriteMode,
};
use crate::path::VirtualPath;

/// The faults in force; change them at any time through a [`FaultSwitch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Uploads fail with "no space left" once they have written this many bytes.
    pub full_after: Option<u64>,
    /// Every operation fails with "permission denied".
    pub deny: bool,
    /// Every operation hangs forever (a timeout above it must step in).
    pub hang: bool,
}

/// Changes the faults of the [`FaultyStorage`] it came with.
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch(Arc<Mutex<Faults>>);

impl FaultSwitch {
    /// Puts `faults` in force.
    pub fn set(&self, faults: Faults) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    fn get(&self) -> Faults {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wraps a backend and fails, refuses or hangs as its switch says.
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    switch: FaultSwitch,
}

impl FaultyStorage {
    /// `inner` with no fault yet, and the switch that injects them.
    pub fn new(inner: Arc<dyn Storage>) -> (Self, FaultSwitch) {
        let switch = FaultSwitch::default();
        (
            FaultyStorage {
                inner,
                switch: switch.clone(),
            },
            switch,
        )
    }

    async fn gate(&self) -> Result<Faults, StorageError> {
        let faults = self.switch.get();
        if faults.hang {
            std::future::pending::<()>().await;
        }
        if faults.deny {
            return Err(StorageError::PermissionDenied);
        }
        Ok(faults)
    }
}

#[async_trait]
impl Storage for FaultyStorage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        self.gate().await?;
        self.inner.metadata(path).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        self.gate().await?;
        self.inner.list(path).await
    }

    async fn list_names(&self, path: &VirtualPath) -> Result<NameStream, StorageError> {
        self.gate().await?;
        self.inner.list_names(path).await
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        self.gate().await?;
        self.inner.open_read(path, offset).await
    }

    async fn open_os_file(
        &self,
        path: &VirtualPath,
    ) -> Result<Option<(std::fs::File, u64)>, StorageError> {
        self.gate().await?;
        self.inner.open_os_file(path).await
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let faults = self.gate().await?;
        let inner = self.inner.open_write(path, mode).await?;
        Ok(Box::new(FillingUpload {
            inner,
            room: faults.full_after,
        }))
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.gate().await?;
        self.inner.mkdir(path).await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.gate().await?;
        self.inner.rmdir(path).await
    }

    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.gate().await?;
        self.inner.remove(path).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        self.gate().await?;
        self.inner.rename(from, to).await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        self.gate().await?;
        self.inner.set_modified(path, time).await
    }

    async fn resolve(&self, path: &VirtualPath) -> Result<VirtualPath, StorageError> {
        self.gate().await?;
        self.inner.resolve(path).await
    }
}

/// An upload on a disk with `room` bytes left (`None`: unlimited).
struct FillingUpload {
    inner: Box<dyn Upload>,
    room: Option<u64>,
}

#[async_trait]
impl Upload for FillingUpload {
    /// What fits is written; the rest fails as a full disk does.
    async fn write_block(&mut self, mut block: Vec<u8>) -> io::Result<Vec<u8>> {
        let Some(room) = &mut self.room else {
            return self.inner.write_block(block).await;
        };
        let fits = usize::try_from(*room).map_or(block.len(), |room| room.min(block.len()));
        let full = fits < block.len();
        block.truncate(fits);
        *room -= fits as u64;
        let spare = self.inner.write_block(block).await?;
        match full {
            true => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            )),
            false => Ok(spare),
        }
    }

    async fn finish(self: Box<Self>) -> Result<(), StorageError> {
        self.inner.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::{read_all, upload};
    use crate::storage::MemoryStorage;

    #[tokio::test]
    async fn a_full_disk_fails_the_upload_and_keeps_the_old_file() {
        let memory = Arc::new(MemoryStorage::new());
        let (storage, switch) = FaultyStorage::new(memory.clone());
        upload(&storage, "/f", WriteMode::Replace { atomic: true }, b"old")
            .await
            .unwrap();
        switch.set(Faults {
            full_after: Some(4),
            ..Faults::default()
        });
        let result = upload(
            &storage,
            "/f",
            WriteMode::Replace { atomic: true },
            b"too long",
        )
        .await;
        assert!(
            matches!(result, Err(StorageError::StorageFull)),
            "{result:?}"
        );
        assert_eq!(read_all(memory.as_ref(), "/f", 0).await.unwrap(), b"old");
    }

    #[tokio::test]
    async fn denial_refuses_every_operation() {
        let (storage, switch) = FaultyStorage::new(Arc::new(MemoryStorage::new()));
        switch.set(Faults {
            deny: true,
            ..Faults::default()
        });
        assert!(matches!(
            storage.mkdir(&VirtualPath::new("/d")).await,
            Err(StorageError::PermissionDenied)
        ));
        assert!(matches!(
            storage.metadata(&VirtualPath::root()).await,
            Err(StorageError::PermissionDenied)
        ));
    }
}
