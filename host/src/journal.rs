//! A job's events, appended to the store beside its record, so that any host streams
//! any job's events live (a store watch, not a poll) and a client that reconnects
//! resumes after the last event it saw. Each event has a sequence number, its SSE
//! `id`; the last [`KEPT`] per job are kept, and all go with the job's record.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::jobs::Lease;
use crate::store::{self, DynStore, Precondition, StoreError, StoreResult};

/// Events kept per job; older ones are deleted as new ones come.
pub const KEPT: u64 = 1000;

/// Where a job's events live, under its own prefix.
pub fn prefix(user: &str, kind: &str, id: &str) -> String {
    format!("u/{user}/events/{kind}/{id}/")
}

fn key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:010}")
}

fn seq_of(prefix: &str, key: &str) -> Option<u64> {
    key.strip_prefix(prefix)?.parse().ok()
}

/// The appending end, held by the job's runner.
pub struct Journal<T> {
    store: DynStore,
    prefix: String,
    /// Fences every append while the job runs.
    lease: Option<Arc<Lease>>,
    last: Mutex<u64>,
    _events: PhantomData<fn(T)>,
}

impl<T: Serialize> Journal<T> {
    /// Opens a job's journal, after the events a previous host appended.
    pub async fn open(store: &DynStore, prefix: String, lease: Option<Arc<Lease>>) -> StoreResult<Self> {
        let last = store.list(&prefix).await?.iter().filter_map(|v| seq_of(&prefix, &v.key)).max().unwrap_or(0);
        Ok(Self { store: store.clone(), prefix, lease, last: Mutex::new(last), _events: PhantomData })
    }

    /// Appends an event; returns its sequence number. An event the store refuses is
    /// logged and lost: the record, not the events, is the job's truth.
    pub async fn append(&self, event: &T) -> Option<u64> {
        self.write(event, true).await
    }

    /// Appends after the job let its lease go (the end, told once the next job may start).
    pub async fn append_unfenced(&self, event: &T) -> Option<u64> {
        self.write(event, false).await
    }

    async fn write(&self, event: &T, fenced: bool) -> Option<u64> {
        let seq = {
            let mut last = self.last.lock().expect("journal lock");
            *last += 1;
            *last
        };
        let at = key(&self.prefix, seq);
        let written = match (&self.lease, fenced) {
            (Some(lease), true) => lease.put_json(&at, event, Precondition::Absent).await,
            _ => store::put_json(&*self.store, &at, event, Precondition::Absent).await,
        };
        if let Err(e) = written {
            tracing::warn!(key = %at, error = %e, "could not store an event; watchers will miss it");
            return None;
        }
        if seq > KEPT {
            let _ = self.store.delete(&key(&self.prefix, seq - KEPT), Precondition::Any).await;
        }
        Some(seq)
    }
}

/// A job's events after `after` (0: from the first kept), then each new one, until
/// `last` says an event is the job's end. Ends with an error if the store fails.
pub async fn follow<T>(
    store: &DynStore,
    prefix: String,
    after: u64,
    last: fn(&T) -> bool,
) -> StoreResult<impl Stream<Item = StoreResult<(u64, T)>> + Send + 'static>
where
    T: DeserializeOwned + Send + 'static,
{
    let watch = store.watch(&prefix, 0).await?;
    let events = watch
        .filter_map(move |written| {
            let prefix = prefix.clone();
            async move {
                match written {
                    Err(e) => Some(Err(e)),
                    Ok(v) => match seq_of(&prefix, &v.key) {
                        Some(seq) if seq > after => Some(
                            serde_json::from_slice::<T>(&v.value)
                                .map(|event| (seq, event))
                                .map_err(|e| StoreError::Corrupt { key: v.key.clone(), message: e.to_string() }),
                        ),
                        _ => None,
                    },
                }
            }
        })
        .boxed();
    // Through the end, then stop at once (not on the next write).
    let events = futures_util::stream::unfold((events, false), move |(mut events, ended)| async move {
        if ended {
            return None;
        }
        let item = events.next().await?;
        let ends = match &item {
            Ok((_, event)) => last(event),
            Err(_) => true,
        };
        Some((item, (events, ends)))
    });
    Ok(events)
}

/// Deletes a job's events.
pub async fn remove(store: &DynStore, prefix: &str) -> StoreResult<()> {
    for v in store.list(prefix).await? {
        store.delete(&v.key, Precondition::Any).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;


    #[tokio::test]
    async fn a_follower_gets_the_past_then_live_events_and_stops_at_the_end() {
        let (store, _dir) = crate::store::scratch();
        let journal = Journal::<i32>::open(&store, prefix("alice", "deploy", "d1"), None).await.unwrap();
        journal.append(&1).await.unwrap();
        journal.append(&2).await.unwrap();
        let following = tokio::spawn({
            let store = store.clone();
            async move {
                let events = follow::<i32>(&store, prefix("alice", "deploy", "d1"), 0, |e| *e == 99).await.unwrap();
                events.map(|e| e.unwrap()).collect::<Vec<_>>().await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        journal.append(&3).await.unwrap();
        journal.append(&99).await.unwrap();
        journal.append(&100).await.unwrap();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), following).await.unwrap().unwrap();
        assert_eq!(seen, vec![(1, 1), (2, 2), (3, 3), (4, 99)], "the past, the live, through the end and no further");

        let resumed = follow::<i32>(&store, prefix("alice", "deploy", "d1"), 2, |e| *e == 99).await.unwrap();
        let resumed: Vec<_> = resumed.map(|e| e.unwrap().0).collect().await;
        assert_eq!(resumed, vec![3, 4], "a client that saw 2 resumes after it");
    }

    #[tokio::test]
    async fn a_journal_reopened_by_another_host_goes_on_numbering_and_keeps_the_last_ones() {
        let (store, _dir) = crate::store::scratch();
        let p = prefix("alice", "deploy", "d2");
        let first = Journal::<u64>::open(&store, p.clone(), None).await.unwrap();
        for n in 0..(KEPT + 5) {
            first.append(&n).await.unwrap();
        }
        let second = Journal::<u64>::open(&store, p.clone(), None).await.unwrap();
        assert_eq!(second.append(&0).await, Some(KEPT + 6));
        let kept = store.list(&p).await.unwrap();
        assert_eq!(kept.len() as u64, KEPT);
        assert_eq!(seq_of(&p, &kept[0].key), Some(7));
        remove(&store, &p).await.unwrap();
        assert!(store.list(&p).await.unwrap().is_empty());
    }
}
