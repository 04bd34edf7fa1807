//! The default store: one redb file under the data directory. redb is blocking, so
//! every call runs on the blocking pool; each call is one transaction.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use super::{LockLease, Precondition, Store, StoreError, StoreResult, Versioned};

/// key → 8-byte little-endian revision followed by the value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Each committed put, for watchers: one process holds the file, so every write
    /// passes through here.
    written: tokio::sync::broadcast::Sender<Versioned>,
    /// Locks live in memory: the file is this process's alone, so no lock can outlive
    /// it, and a renewal never queues behind the disk writes of others (under load,
    /// fsync'd event appends once held renewals up until leases lapsed mid-deploy).
    locks: Arc<Mutex<HashMap<String, LockRecord>>>,
}

/// Writes a slow watcher may fall behind by before it re-reads the store.
const WATCH_BACKLOG: usize = 1024;

/// The lock is `lease`'s and has not expired.
fn holds(locks: &HashMap<String, LockRecord>, lease: &LockLease) -> bool {
    locks.get(&lease.key).is_some_and(|c| c.token == lease.token && c.expires_unix_ms > now_ms())
}

struct LockRecord {
    holder: String,
    token: u64,
    expires_unix_ms: u64,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A stream fed by a task: `run` sends into the channel; an error it returns ends the
/// stream with that error.
fn async_stream<F, Fut>(run: F) -> super::Watch
where
    F: FnOnce(tokio::sync::mpsc::Sender<StoreResult<Versioned>>) -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let fut = run(tx.clone());
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn split(key: &str, raw: &[u8]) -> StoreResult<Versioned> {
    if raw.len() < 8 {
        return Err(StoreError::Corrupt { key: key.into(), message: "record shorter than its revision".into() });
    }
    let (rev, value) = raw.split_at(8);
    Ok(Versioned {
        key: key.into(),
        value: value.to_vec(),
        revision: u64::from_le_bytes(rev.try_into().expect("8 bytes")),
    })
}

fn check(key: &str, when: Precondition, found: Option<u64>) -> StoreResult<()> {
    let ok = match when {
        Precondition::Any => true,
        Precondition::Absent => found.is_none(),
        Precondition::Revision(rev) => found == Some(rev),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict { key: key.into(), expected: when, found })
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database file. Fails with a clear message when another
    /// process (a running `warship serve`) holds it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(unavailable)?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                "{} is in use by another process (a running `warship serve`?); stop it, or use the etcd store to share one store between processes",
                path.display()
            )),
            other => unavailable(other),
        })?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(KV).map_err(unavailable)?;
        txn.open_table(META).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(Self { db: Arc::new(db), written: tokio::sync::broadcast::channel(WATCH_BACKLOG).0, locks: Arc::default() })
    }

    async fn put_maybe_held(&self, key: &str, value: Vec<u8>, when: Precondition, lease: Option<LockLease>) -> StoreResult<u64> {
        let (key, written, locks) = (key.to_owned(), self.written.clone(), self.locks.clone());
        self.blocking(move |db| {
            let revision = write(db, &key, &value, when, lease.as_ref().map(|lease| (lease, &*locks)))?;
            // Told inside the blocking call, so watchers see writes in commit order.
            let _ = written.send(Versioned { key, value, revision });
            Ok(revision)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(unavailable)?
    }
}

/// Bumps and returns the store-wide revision inside the caller's transaction.
fn next_revision(txn: &redb::WriteTransaction) -> StoreResult<u64> {
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    let next = meta.get(REVISION).map_err(unavailable)?.map(|g| g.value()).unwrap_or(0) + 1;
    meta.insert(REVISION, next).map_err(unavailable)?;
    Ok(next)
}

/// One write transaction: `when` checked on the key and, for a fenced write, the lock
/// checked to be `lease`'s and unexpired once the transaction is open. (A lock expiring
/// during the commit is covered by the holder's own fence, a third of the TTL early.)
fn write(db: &Database, key: &str, value: &[u8], when: Precondition, lease: Option<(&LockLease, &Mutex<HashMap<String, LockRecord>>)>) -> StoreResult<u64> {
    let txn = db.begin_write().map_err(unavailable)?;
    if let Some((lease, locks)) = lease {
        if !holds(&locks.lock().expect("locks lock"), lease) {
            return Err(StoreError::LockLost { key: lease.key.clone() });
        }
    }
    let revision = {
        let mut table = txn.open_table(KV).map_err(unavailable)?;
        let found = table.get(key).map_err(unavailable)?.map(|raw| split(key, raw.value()).map(|v| v.revision)).transpose()?;
        check(key, when, found)?;
        let revision = next_revision(&txn)?;
        let mut record = Vec::with_capacity(8 + value.len());
        record.extend_from_slice(&revision.to_le_bytes());
        record.extend_from_slice(value);
        table.insert(key, record.as_slice()).map_err(unavailable)?;
        revision
    };
    txn.commit().map_err(unavailable)?;
    Ok(revision)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Versioned>> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(KV).map_err(unavailable)?;
            let found = table.get(key.as_str()).map_err(unavailable)?;
            found.map(|raw| split(&key, raw.value())).transpose()
        })
        .await
    }

    async fn put(&self, key: &str, value: Vec<u8>, when: Precondition) -> StoreResult<u64> {
        self.put_maybe_held(key, value, when, None).await
    }

    async fn put_held(&self, key: &str, value: Vec<u8>, when: Precondition, lease: &LockLease) -> StoreResult<u64> {
        self.put_maybe_held(key, value, when, Some(lease.clone())).await
    }

    async fn delete(&self, key: &str, when: Precondition) -> StoreResult<bool> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let existed = {
                let mut table = txn.open_table(KV).map_err(unavailable)?;
                let found = table
                    .get(key.as_str())
                    .map_err(unavailable)?
                    .map(|raw| split(&key, raw.value()).map(|v| v.revision))
                    .transpose()?;
                if when != Precondition::Any || found.is_some() {
                    check(&key, when, found)?;
                }
                if found.is_some() {
                    table.remove(key.as_str()).map_err(unavailable)?;
                    next_revision(&txn)?;
                }
                found.is_some()
            };
            txn.commit().map_err(unavailable)?;
            Ok(existed)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<Versioned>> {
        let prefix = prefix.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(KV).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in table.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push(split(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn try_lock(&self, key: &str, holder: &str, ttl: Duration) -> StoreResult<LockLease> {
        let mut locks = self.locks.lock().expect("locks lock");
        if let Some(current) = locks.get(key).filter(|c| c.expires_unix_ms > now_ms()) {
            return Err(StoreError::Locked { key: key.to_owned(), holder: current.holder.clone() });
        }
        let token = rand::random::<u64>();
        locks.insert(key.to_owned(), LockRecord { holder: holder.to_owned(), token, expires_unix_ms: now_ms() + ttl.as_millis() as u64 });
        Ok(LockLease { key: key.to_owned(), holder: holder.to_owned(), ttl, token })
    }

    async fn renew_lock(&self, lease: &LockLease) -> StoreResult<()> {
        let mut locks = self.locks.lock().expect("locks lock");
        if !holds(&locks, lease) {
            return Err(StoreError::LockLost { key: lease.key.clone() });
        }
        if let Some(c) = locks.get_mut(&lease.key) {
            c.expires_unix_ms = now_ms() + lease.ttl.as_millis() as u64;
        }
        Ok(())
    }

    async fn release_lock(&self, lease: &LockLease) -> StoreResult<()> {
        let mut locks = self.locks.lock().expect("locks lock");
        if locks.get(&lease.key).is_some_and(|c| c.token == lease.token) {
            locks.remove(&lease.key);
        }
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.blocking(|db| db.begin_read().map(drop).map_err(unavailable)).await
    }

    async fn watch(&self, prefix: &str, after: u64) -> StoreResult<super::Watch> {
        // Subscribe before reading, so nothing written in between is missed; what is
        // read and also told is told once, by revision.
        let (mut told, prefix) = (self.written.subscribe(), prefix.to_owned());
        let store = self.clone();
        let stream = async_stream(move |tx| async move {
            let mut seen = after;
            let mut backlog = store.list(&prefix).await?;
            loop {
                backlog.sort_by_key(|v| v.revision);
                let fresh: Vec<Versioned> = backlog.drain(..).filter(|v| v.revision > seen).collect();
                for v in fresh {
                    seen = v.revision;
                    if tx.send(Ok(v)).await.is_err() {
                        return Ok(());
                    }
                }
                let next = tokio::select! {
                    next = told.recv() => next,
                    () = tx.closed() => return Ok(()),
                };
                match next {
                    Ok(v) if v.key.starts_with(&prefix) => backlog.push(v),
                    Ok(_) => {}
                    // Fell behind: read the prefix again.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => backlog = store.list(&prefix).await?,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        });
        Ok(stream)
    }
}
