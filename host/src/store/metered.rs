//! Store latency as a Prometheus histogram, wrapped around any backend.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{LockLease, Precondition, Store, StoreResult, Versioned};

pub struct Metered<S>(pub S);

async fn timed<T>(op: &'static str, fut: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let started = Instant::now();
    let result = fut.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!("warship_store_seconds", "op" => op, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl<S: Store> Store for Metered<S> {
    async fn get(&self, key: &str) -> StoreResult<Option<Versioned>> {
        timed("get", self.0.get(key)).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, when: Precondition) -> StoreResult<u64> {
        timed("put", self.0.put(key, value, when)).await
    }
    async fn put_held(&self, key: &str, value: Vec<u8>, when: Precondition, lease: &LockLease) -> StoreResult<u64> {
        timed("put_held", self.0.put_held(key, value, when, lease)).await
    }
    async fn delete(&self, key: &str, when: Precondition) -> StoreResult<bool> {
        timed("delete", self.0.delete(key, when)).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<Versioned>> {
        timed("list", self.0.list(prefix)).await
    }
    async fn try_lock(&self, key: &str, holder: &str, ttl: Duration) -> StoreResult<LockLease> {
        timed("try_lock", self.0.try_lock(key, holder, ttl)).await
    }
    async fn renew_lock(&self, lease: &LockLease) -> StoreResult<()> {
        timed("renew_lock", self.0.renew_lock(lease)).await
    }
    async fn release_lock(&self, lease: &LockLease) -> StoreResult<()> {
        timed("release_lock", self.0.release_lock(lease)).await
    }
    async fn ping(&self) -> StoreResult<()> {
        timed("ping", self.0.ping()).await
    }
    async fn watch(&self, prefix: &str, after: u64) -> StoreResult<super::Watch> {
        timed("watch", self.0.watch(prefix, after)).await
    }
}
