//! A users-database row's quota usage, kept in the database's
//! `aioftpd_usage` table so that every instance sharing it counts one usage
//! (docs/users.md "Quotas"). Each change is one conditional statement there.

use std::sync::Arc;

use async_trait::async_trait;

use crate::quota::{Change, Ledger, LedgerError, Quota, Usage};
use crate::user_store::{StoreError, UserStore};

/// The usage of `login` counted in `scope` (its row's storage fields).
pub(super) struct DatabaseLedger {
    pub store: Arc<UserStore>,
    pub login: String,
    pub scope: String,
}

fn failed(err: StoreError) -> LedgerError {
    LedgerError(err.to_string())
}

fn usage((bytes, files): (i64, i64)) -> Usage {
    Usage {
        bytes: u64::try_from(bytes).unwrap_or(0),
        files: u64::try_from(files).unwrap_or(0),
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn limit(n: Option<u64>) -> Option<i64> {
    n.map(signed)
}

#[async_trait]
impl Ledger for DatabaseLedger {
    async fn usage(&self) -> Result<Option<Usage>, LedgerError> {
        let found = self.store.usage(&self.login, &self.scope).await;
        Ok(found.map_err(failed)?.map(usage))
    }

    async fn start(&self, counted: Usage) -> Result<Usage, LedgerError> {
        let counted = (signed(counted.bytes), signed(counted.files));
        let store = &self.store;
        let now = store.start_usage(&self.login, &self.scope, counted).await;
        Ok(usage(now.map_err(failed)?))
    }

    async fn reserve(&self, change: Change, quota: Quota) -> Result<bool, LedgerError> {
        let limits = Some((limit(quota.bytes), limit(quota.files)));
        let change = (change.bytes, change.files);
        let store = &self.store;
        let done = store
            .add_usage(&self.login, &self.scope, change, limits)
            .await;
        done.map_err(failed)
    }

    async fn adjust(&self, change: Change) -> Result<(), LedgerError> {
        let change = (change.bytes, change.files);
        let store = &self.store;
        let done = store
            .add_usage(&self.login, &self.scope, change, None)
            .await;
        done.map(|_| ()).map_err(failed)
    }
}
