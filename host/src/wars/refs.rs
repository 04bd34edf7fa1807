//! How many index records point at each blob, kept in the store (`blobs/<sha256>`) and
//! changed only by compare-and-swap, so hosts sharing a store and a bucket count
//! together without any lock of their own.
//!
//! The last reference does not delete the count: it marks it `removing` first, removes
//! the bytes, then deletes the mark. A host that wants the blob meanwhile waits for the
//! mark to go, so it never counts on bytes that are being removed. A mark left by a host
//! that died mid-removal is taken over after `TAKEOVER`; removals give up long before
//! that (`REMOVE_WITHIN`), so a live remover cannot delete bytes a taker has just kept.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{self, DynStore, Precondition, StoreError};

pub(super) const REMOVE_WITHIN: Duration = Duration::from_secs(20);
const TAKEOVER: Duration = Duration::from_secs(60);
const WAIT_STEP: Duration = Duration::from_millis(25);

#[derive(Serialize, Deserialize)]
struct BlobRefs {
    refs: u64,
    /// Unix seconds when the last reference went and removal began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    removing_since: Option<i64>,
}

fn key(sha256: &str) -> String {
    format!("blobs/{sha256}")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Counts one more reference. Afterwards no host removes the bytes until it is dropped.
pub(super) async fn add(store: &DynStore, sha256: &str) -> Result<(), StoreError> {
    let key = key(sha256);
    loop {
        let current: Option<(BlobRefs, u64)> = store::get_json(&**store, &key).await?;
        let (next, when) = match current {
            None => (1, Precondition::Absent),
            Some((BlobRefs { removing_since: Some(since), .. }, rev)) => {
                if now() - since < TAKEOVER.as_secs() as i64 {
                    tokio::time::sleep(WAIT_STEP).await;
                    continue;
                }
                tracing::warn!(sha256, "taking over a blob whose removal never finished");
                (1, Precondition::Revision(rev))
            }
            Some((BlobRefs { refs, .. }, rev)) => (refs + 1, Precondition::Revision(rev)),
        };
        match store::put_json(&**store, &key, &BlobRefs { refs: next, removing_since: None }, when).await {
            Err(StoreError::Conflict { .. }) => continue,
            other => return other.map(drop),
        }
    }
}

/// Drops one reference; the last one runs `remove_bytes` (bounded by `REMOVE_WITHIN`),
/// on a task of its own so a caller that goes away cannot stop it half way. A removal
/// that fails takes its mark back (the bytes stay, for whoever wants them next); one that
/// times out leaves it, to be taken over.
pub(super) async fn drop_one<F, E>(store: &DynStore, sha256: &str, remove_bytes: impl FnOnce() -> F + Send + 'static) -> Result<(), StoreError>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let key = key(sha256);
    let marked = loop {
        let current: Option<(BlobRefs, u64)> = store::get_json(&**store, &key).await?;
        let Some((BlobRefs { refs, removing_since }, rev)) = current else { return Ok(()) };
        if removing_since.is_some() {
            return Ok(()); // someone else's removal: there was no reference to drop
        }
        let next = BlobRefs { refs: refs.saturating_sub(1), removing_since: (refs <= 1).then(now) };
        match store::put_json(&**store, &key, &next, Precondition::Revision(rev)).await {
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
            Ok(_) if refs > 1 => return Ok(()),
            Ok(marked) => break marked,
        }
    };
    let (store, sha256) = (store.clone(), sha256.to_owned());
    let removal = tokio::spawn(async move {
        // A conflict: taken over in the meantime, the mark is someone's count now.
        let unmark = || async {
            match store.delete(&key, Precondition::Revision(marked)).await {
                Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        };
        match tokio::time::timeout(REMOVE_WITHIN, remove_bytes()).await {
            Ok(Ok(())) => unmark().await,
            Ok(Err(e)) => {
                tracing::warn!(sha256, error = %e, "removing an unreferenced WAR's bytes failed; they stay, for the next upload of them");
                unmark().await
            }
            Err(_) => {
                tracing::warn!(sha256, "removing an unreferenced WAR's bytes took over {REMOVE_WITHIN:?}; the mark stays, to be taken over");
                Ok(())
            }
        }
    });
    removal.await.map_err(|e| StoreError::Unavailable(format!("removing a blob: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    async fn count(store: &DynStore) -> Option<(u64, bool)> {
        let found: Option<(BlobRefs, u64)> = store::get_json(&**store, &key("ab")).await.unwrap();
        found.map(|(r, _)| (r.refs, r.removing_since.is_some()))
    }

    #[tokio::test]
    async fn a_reference_taken_during_a_removal_waits_until_the_bytes_are_gone() {
        let (store, _dir) = crate::store::scratch();
        add(&store, "ab").await.unwrap();
        let removed = Arc::new(AtomicBool::new(false));
        let remover = {
            let (store, removed) = (store.clone(), removed.clone());
            tokio::spawn(async move {
                drop_one(&store, "ab", || async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    removed.store(true, Ordering::SeqCst);
                    Ok::<_, String>(())
                })
                .await
            })
        };
        while count(&store).await != Some((0, true)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        add(&store, "ab").await.unwrap();
        assert!(removed.load(Ordering::SeqCst), "the new reference was counted only after the old bytes went");
        remover.await.unwrap().unwrap();
        assert_eq!(count(&store).await, Some((1, false)), "the new reference stands; the remover's mark is gone");
    }

    #[tokio::test]
    async fn a_failed_removal_takes_its_mark_back_and_a_dead_hosts_mark_is_taken_over() {
        let (store, _dir) = crate::store::scratch();
        add(&store, "ab").await.unwrap();
        drop_one(&store, "ab", || async { Err::<(), _>("the bucket said no") }).await.unwrap();
        assert_eq!(count(&store).await, None, "a removal that failed takes its mark back: nothing waits for it");
        // A mark as a host that died mid-removal a while ago leaves it.
        let old = BlobRefs { refs: 0, removing_since: Some(now() - TAKEOVER.as_secs() as i64 - 1) };
        store::put_json(&*store, &key("ab"), &old, Precondition::Absent).await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), add(&store, "ab")).await.expect("taken over at once").unwrap();
        assert_eq!(count(&store).await, Some((1, false)));
        drop_one(&store, "ab", || async { Ok::<_, String>(()) }).await.unwrap();
        assert_eq!(count(&store).await, None, "the last reference, removed cleanly, leaves nothing");
    }
}
