//! A `Storage` decorator that bounds every operation by a timeout
//! (aioftp's `path_timeout`): a hung disk or remote store fails the command
//! with `451` instead of hanging the session.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{
    EntryStream, Metadata, NameStream, ReadStream, Storage, StorageError, Upload, WriteMode,
};
use crate::path::VirtualPath;

/// Wraps a backend so each call gives up after `limit`.
pub struct TimedStorage {
    inner: Arc<dyn Storage>,
    limit: Duration,
}

impl TimedStorage {
    /// `inner`, with every operation bounded by `limit`.
    pub fn new(inner: Arc<dyn Storage>, limit: Duration) -> Self {
        TimedStorage { inner, limit }
    }

    /// `op` within the limit; its latency goes to
    /// `aioftpd_storage_operation_seconds` under `name`.
    async fn bounded<T>(
        &self,
        name: &'static str,
        op: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.limit, op)
            .await
            .unwrap_or(Err(StorageError::TimedOut));
        crate::metrics::get().storage_operation(name, started.elapsed());
        result
    }
}

#[async_trait]
impl Storage for TimedStorage {
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        self.bounded("metadata", self.inner.metadata(path)).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        self.bounded("list", self.inner.list(path)).await
    }

    async fn list_names(&self, path: &VirtualPath) -> Result<NameStream, StorageError> {
        self.bounded("list_names", self.inner.list_names(path))
            .await
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        self.bounded("open_read", self.inner.open_read(path, offset))
            .await
    }

    async fn open_os_file(
        &self,
        path: &VirtualPath,
    ) -> Result<Option<(std::fs::File, u64)>, StorageError> {
        self.bounded("open_os_file", self.inner.open_os_file(path))
            .await
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn Upload>, StorageError> {
        self.bounded("open_write", self.inner.open_write(path, mode))
            .await
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.bounded("mkdir", self.inner.mkdir(path)).await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.bounded("rmdir", self.inner.rmdir(path)).await
    }

    async fn remove(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.bounded("remove", self.inner.remove(path)).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        self.bounded("rename", self.inner.rename(from, to)).await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        self.bounded("set_modified", self.inner.set_modified(path, time))
            .await
    }

    async fn resolve(&self, path: &VirtualPath) -> Result<VirtualPath, StorageError> {
        self.bounded("resolve", self.inner.resolve(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend whose every operation hangs.
    struct Hanging;

    #[async_trait]
    impl Storage for Hanging {
        async fn metadata(&self, _: &VirtualPath) -> Result<Metadata, StorageError> {
            std::future::pending().await
        }
        async fn list(&self, _: &VirtualPath) -> Result<EntryStream, StorageError> {
            std::future::pending().await
        }
        async fn open_read(&self, _: &VirtualPath, _: u64) -> Result<ReadStream, StorageError> {
            std::future::pending().await
        }
        async fn open_write(
            &self,
            _: &VirtualPath,
            _: WriteMode,
        ) -> Result<Box<dyn Upload>, StorageError> {
            std::future::pending().await
        }
        async fn mkdir(&self, _: &VirtualPath) -> Result<(), StorageError> {
            std::future::pending().await
        }
        async fn rmdir(&self, _: &VirtualPath) -> Result<(), StorageError> {
            std::future::pending().await
        }
        async fn remove(&self, _: &VirtualPath) -> Result<(), StorageError> {
            std::future::pending().await
        }
        async fn rename(&self, _: &VirtualPath, _: &VirtualPath) -> Result<(), StorageError> {
            std::future::pending().await
        }
        async fn set_modified(&self, _: &VirtualPath, _: SystemTime) -> Result<(), StorageError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_operation_times_out() {
        let storage = TimedStorage::new(Arc::new(Hanging), Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let result = storage.metadata(&VirtualPath::root()).await;
        assert!(matches!(result, Err(StorageError::TimedOut)));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(matches!(
            storage.mkdir(&VirtualPath::new("/d")).await,
            Err(StorageError::TimedOut)
        ));
    }
}
