//! What every long job (an image build, a deploy) shares: a lease on its lock that it
//! keeps renewing, and a fence. A lease is not a lock once the network can split, so a
//! job acts (writes its record, touches Kubernetes) only while its last successful
//! renewal is younger than the lease's TTL minus a margin, and every record write is
//! conditional on the lock still being this lease's, in the same store transaction.
//! A host cut off from the store thus stops acting before its lease can pass to
//! another host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::store::{self, DynStore, LockLease, Precondition, StoreError, StoreResult};

/// How long a job's lock lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// A held lock and when it was last known to be ours.
pub struct Lease {
    store: DynStore,
    lock: LockLease,
    /// When the last successful renewal (or the grant) was sent: the store's own
    /// expiry is at least a TTL after it.
    renewed: Mutex<Instant>,
    /// The store said the lock is gone: never act again.
    lost: AtomicBool,
}

/// The job no longer provably holds its lock: it must not act.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the lease on {key} is no longer provably held (last renewed {since:?} ago); this host stops acting on it")]
pub struct Fenced {
    pub key: String,
    pub since: Duration,
}

impl From<Fenced> for StoreError {
    fn from(f: Fenced) -> Self {
        StoreError::LockLost { key: f.key }
    }
}

impl Lease {
    /// Takes `key` for `holder`; `Locked` says who holds it.
    pub async fn take(store: &DynStore, key: &str, holder: &str, ttl: Duration) -> StoreResult<Arc<Self>> {
        let asked = Instant::now();
        let lock = store.try_lock(key, holder, ttl).await?;
        Ok(Arc::new(Self { store: store.clone(), lock, renewed: Mutex::new(asked), lost: AtomicBool::new(false) }))
    }

    pub fn lock(&self) -> &LockLease {
        &self.lock
    }

    /// How long before the TTL a job stops acting: covers a write sent just before
    /// the fence and clock drift between host and store.
    fn margin(&self) -> Duration {
        self.lock.ttl / 3
    }

    fn since_renewed(&self) -> Duration {
        self.renewed.lock().expect("lease lock").elapsed()
    }

    /// Ok while the job may act.
    pub fn check(&self) -> Result<(), Fenced> {
        let since = self.since_renewed();
        match !self.lost.load(Ordering::SeqCst) && since + self.margin() < self.lock.ttl {
            true => Ok(()),
            false => Err(Fenced { key: self.lock.key.clone(), since }),
        }
    }

    /// Keeps renewing the lease (three times per TTL, more often after a failure) for
    /// as long as it is awaited; returns once it is lost or can no longer be proven
    /// held, and from then on [`Lease::check`] fails too.
    pub async fn hold(&self) -> StoreError {
        let ttl = self.lock.ttl;
        let mut wait = ttl / 3;
        loop {
            let fence_in = (ttl - self.margin()).saturating_sub(self.since_renewed());
            tokio::time::sleep(wait.min(fence_in)).await;
            if let Err(fenced) = self.check() {
                return fenced.into();
            }
            let asked = Instant::now();
            match self.store.renew_lock(&self.lock).await {
                Ok(()) => {
                    *self.renewed.lock().expect("lease lock") = asked;
                    wait = ttl / 3;
                }
                Err(e @ StoreError::LockLost { .. }) => {
                    // Never act again on a lease the store says is gone.
                    self.lost.store(true, Ordering::SeqCst);
                    return e;
                }
                Err(e) => {
                    tracing::warn!(key = %self.lock.key, error = %e, "could not renew a lease; trying again");
                    wait = Duration::from_secs(1).min(ttl / 3);
                }
            }
        }
    }

    /// Writes a record only while the lease is provably held, and only if the store
    /// still has the lock under this lease.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T, when: Precondition) -> StoreResult<u64> {
        self.check()?;
        store::put_json_held(&*self.store, key, value, when, &self.lock).await
    }

    /// Gives the lock up; a lost lock is already given up.
    pub async fn release(&self) {
        if let Err(e) = self.store.release_lock(&self.lock).await {
            tracing::warn!(key = %self.lock.key, error = %e, "could not release a lease; it will lapse");
        }
    }
}

/// Jobs of one kind, as the recovery loop sees them: each pass takes over those whose
/// host died (their lock lapsed), resuming what can be resumed and failing the rest
/// cleanly, so no record stays unfinished without a live lease.
#[async_trait::async_trait]
pub trait Recover: Send + Sync {
    /// What the logs call these jobs.
    fn kind(&self) -> &'static str;
    async fn recover_once(self: Arc<Self>) -> StoreResult<()>;
}

/// How often a host looks for jobs whose host stopped.
pub const RECOVER_EVERY: Duration = Duration::from_secs(10);

/// One recovery loop for every kind of job, now and every `every`, for as long as the
/// jobs' owners live (weak handles: the loop ends with the host's services).
pub fn recover_every(kinds: Vec<Arc<dyn Recover>>, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak: Vec<std::sync::Weak<dyn Recover>> = kinds.iter().map(Arc::downgrade).collect();
    drop(kinds);
    tokio::spawn(async move {
        loop {
            let mut alive = false;
            for kind in weak.iter().filter_map(std::sync::Weak::upgrade) {
                alive = true;
                let name = kind.kind();
                if let Err(e) = kind.recover_once().await {
                    tracing::warn!(jobs = name, error = %e, "could not look for interrupted jobs");
                }
            }
            if !alive {
                return;
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Retries a store write with backoff while `lease` is held: a store that fails for a
/// moment does not end a job. Conflicts and a lost lease are not retried.
pub async fn retrying<T, F, Fut>(lease: &Lease, what: &str, mut write: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match write().await {
            Err(StoreError::Unavailable(message)) if lease.check().is_ok() => {
                tracing::warn!(%what, %message, retry_in = ?backoff, "store write failed; retrying while the lease holds");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;


    #[tokio::test]
    async fn a_lease_unrenewed_past_its_ttl_less_the_margin_fences_its_writes() {
        let (store, _dir) = crate::store::scratch();
        let lease = Lease::take(&store, "job", "me", Duration::from_millis(600)).await.unwrap();
        lease.put_json("record", &1, Precondition::Absent).await.unwrap();
        // Nobody renews it: a third of the TTL before it lapses, the job stops acting.
        tokio::time::sleep(Duration::from_millis(420)).await;
        assert!(lease.check().is_err());
        let refused = lease.put_json("record", &2, Precondition::Any).await;
        assert!(matches!(refused, Err(StoreError::LockLost { .. })), "{refused:?}");
        assert_eq!(store::get_json::<i32>(&*store, "record").await.unwrap().unwrap().0, 1);
    }

    #[tokio::test]
    async fn a_write_under_a_lock_taken_over_is_refused_by_the_store() {
        let (store, _dir) = crate::store::scratch();
        let old = Lease::take(&store, "job", "old", Duration::from_millis(300)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        let new = Lease::take(&store, "job", "new", Duration::from_secs(15)).await.unwrap();
        new.put_json("record", &"new", Precondition::Any).await.unwrap();
        // Even past the local fence check, the store itself refuses the old holder.
        let refused = store::put_json_held(&*store, "record", &"old", Precondition::Any, old.lock()).await;
        assert!(matches!(refused, Err(StoreError::LockLost { .. })), "{refused:?}");
    }

    #[tokio::test]
    async fn holding_renews_and_keeps_the_fence_open() {
        let (store, _dir) = crate::store::scratch();
        let lease = Lease::take(&store, "job", "me", Duration::from_millis(600)).await.unwrap();
        let held = tokio::time::timeout(Duration::from_millis(1500), lease.hold()).await;
        assert!(held.is_err(), "hold returns only once the lease is lost");
        assert!(lease.check().is_ok());
    }
}
