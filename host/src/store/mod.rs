//! The store: a small ordered key-value map with revisions, compare-and-swap and
//! leased locks. `embedded` (redb, one file) is the default; `etcd` lets several
//! hosts share records and locks. Both pass the same conformance suite
//! (`tests/suite/store_conformance.rs`).

mod embedded;
mod etcd;
mod metered;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use embedded::EmbeddedStore;
pub use etcd::{EtcdAccess, EtcdStore};
pub use metered::Metered;

/// A value with the revision of its last write. Revisions only grow, store-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: u64,
}

/// What must hold for a write to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    Any,
    /// The key must not exist (create).
    Absent,
    /// The key must exist with exactly this revision (compare-and-swap).
    Revision(u64),
}

/// A lock held under a lease: it lasts while its holder keeps renewing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLease {
    pub key: String,
    pub holder: String,
    pub ttl: Duration,
    /// Backend-specific proof of ownership (etcd lease id, or a random nonce).
    pub(crate) token: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("precondition failed on {key}: expected {expected:?}, found revision {found:?}")]
    Conflict { key: String, expected: Precondition, found: Option<u64> },
    #[error("{key} is locked by {holder}")]
    Locked { key: String, holder: String },
    #[error("the lock on {key} was lost (expired or taken over)")]
    LockLost { key: String },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store is corrupt at {key}: {message}")]
    Corrupt { key: String, message: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> StoreResult<Option<Versioned>>;
    /// Writes `value` if `when` holds; returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>, when: Precondition) -> StoreResult<u64>;
    /// Writes `value` if `when` holds and `lease` still holds its lock, in one
    /// transaction: a job's fenced write. `LockLost` when the lock is not this lease's.
    async fn put_held(&self, key: &str, value: Vec<u8>, when: Precondition, lease: &LockLease) -> StoreResult<u64>;
    /// Deletes the key if `when` holds; `Ok(false)` when it did not exist.
    async fn delete(&self, key: &str, when: Precondition) -> StoreResult<bool>;
    /// Every key starting with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> StoreResult<Vec<Versioned>>;
    /// Takes the lock `key` for `holder`, or says who holds it.
    async fn try_lock(&self, key: &str, holder: &str, ttl: Duration) -> StoreResult<LockLease>;
    /// Extends the lease by its ttl; `LockLost` if it already expired.
    async fn renew_lock(&self, lease: &LockLease) -> StoreResult<()>;
    /// Gives the lock up; releasing a lost lock is not an error.
    async fn release_lock(&self, lease: &LockLease) -> StoreResult<()>;
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Every value written under `prefix` with a revision above `after`: those there
    /// now, in key order, then each new write as it commits (deletes are not told).
    /// Ends with an error when the store connection does.
    async fn watch(&self, prefix: &str, after: u64) -> StoreResult<Watch>;
}

/// The writes [`Store::watch`] tells.
pub type Watch = futures_util::stream::BoxStream<'static, StoreResult<Versioned>>;

pub type DynStore = Arc<dyn Store>;

/// JSON helpers shared by every caller, so records look the same in both backends.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> StoreResult<Option<(T, u64)>> {
    match store.get(key).await? {
        None => Ok(None),
        Some(v) => decode(&v).map(|t| Some((t, v.revision))),
    }
}

pub async fn list_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> StoreResult<Vec<(T, u64)>> {
    let entries = store.list(prefix).await?;
    entries.iter().map(|v| decode(v).map(|t| (t, v.revision))).collect()
}

/// [`Store::put_held`] of a record as JSON.
pub async fn put_json_held<T: serde::Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    when: Precondition,
    lease: &LockLease,
) -> StoreResult<u64> {
    let bytes = serde_json::to_vec(value).expect("records serialize");
    store.put_held(key, bytes, when, lease).await
}

pub async fn put_json<T: serde::Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    when: Precondition,
) -> StoreResult<u64> {
    let bytes = serde_json::to_vec(value).expect("records serialize");
    store.put(key, bytes, when).await
}

/// An embedded store in a folder of its own, for unit tests: on tmpfs when there is
/// one, since tests commit often and fsync would dominate.
#[cfg(test)]
pub fn scratch() -> (DynStore, tempfile::TempDir) {
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let store: DynStore = Arc::new(EmbeddedStore::open(&dir.path().join("warship.redb")).unwrap());
    (store, dir)
}

fn decode<T: serde::de::DeserializeOwned>(v: &Versioned) -> StoreResult<T> {
    serde_json::from_slice(&v.value)
        .map_err(|e| StoreError::Corrupt { key: v.key.clone(), message: e.to_string() })
}
