//! One suite, both stores: the embedded one and etcd, a real server on loopback.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use warship_host::store::{DynStore, EmbeddedStore, Precondition, Store, StoreError};

pub(crate) async fn suite(store: DynStore) {
    get_put_and_compare_and_swap(&*store).await;
    delete_with_preconditions(&*store).await;
    prefix_listing(&*store).await;
    concurrent_compare_and_swap_loses_no_update(store.clone()).await;
    locks_exclude_and_release(&*store).await;
    lock_lapses_when_its_holder_stops_renewing(&*store).await;
    writes_held_under_a_lock_are_fenced_by_it(&*store).await;
    watches_tell_what_is_there_then_each_write(&*store).await;
}

async fn writes_held_under_a_lock_are_fenced_by_it(store: &dyn Store) {
    let ttl = Duration::from_secs(2);
    let holder = store.try_lock("job/fence", "host-a", ttl).await.unwrap();
    let r1 = store.put_held("job/record", b"a1".to_vec(), Precondition::Absent, &holder).await.unwrap();
    let r2 = store.put_held("job/record", b"a2".to_vec(), Precondition::Revision(r1), &holder).await.unwrap();
    match store.put_held("job/record", b"stale".to_vec(), Precondition::Revision(r1), &holder).await {
        Err(StoreError::Conflict { found, .. }) => assert_eq!(found, Some(r2)),
        other => panic!("a held write with a stale revision: {other:?}"),
    }
    // The holder stops renewing; another takes the lock over: the old lease writes nothing more.
    let taken = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match store.try_lock("job/fence", "host-b", ttl).await {
            Ok(lease) => break lease,
            Err(StoreError::Locked { .. }) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert!(matches!(
        store.put_held("job/record", b"late".to_vec(), Precondition::Revision(r2), &holder).await,
        Err(StoreError::LockLost { .. })
    ));
    store.put_held("job/record", b"b1".to_vec(), Precondition::Revision(r2), &taken).await.unwrap();
    assert_eq!(store.get("job/record").await.unwrap().unwrap().value, b"b1");
    store.release_lock(&taken).await.unwrap();
    assert!(matches!(store.put_held("job/record", b"after".to_vec(), Precondition::Any, &taken).await, Err(StoreError::LockLost { .. })));
}

async fn next(watch: &mut warship_host::store::Watch) -> warship_host::store::Versioned {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("a write is told").unwrap().unwrap()
}

async fn watches_tell_what_is_there_then_each_write(store: &dyn Store) {
    let before = store.put("w/1", b"one".to_vec(), Precondition::Any).await.unwrap();
    store.put("w/2", b"two".to_vec(), Precondition::Any).await.unwrap();
    store.put("elsewhere", b"x".to_vec(), Precondition::Any).await.unwrap();
    let mut watch = store.watch("w/", before).await.unwrap();
    assert_eq!(next(&mut watch).await.value, b"two", "only what came after `after`");
    store.put("elsewhere", b"y".to_vec(), Precondition::Any).await.unwrap();
    let three = store.put("w/3", b"three".to_vec(), Precondition::Absent).await.unwrap();
    let told = next(&mut watch).await;
    assert_eq!((told.key.as_str(), told.value.as_slice(), told.revision), ("w/3", &b"three"[..], three));
    store.put("w/1", b"uno".to_vec(), Precondition::Any).await.unwrap();
    assert_eq!(next(&mut watch).await.value, b"uno");
}

async fn get_put_and_compare_and_swap(store: &dyn Store) {
    assert_eq!(store.get("k").await.unwrap(), None);
    let r1 = store.put("k", b"one".to_vec(), Precondition::Absent).await.unwrap();
    let got = store.get("k").await.unwrap().unwrap();
    assert_eq!((got.key.as_str(), got.value.as_slice(), got.revision), ("k", &b"one"[..], r1));

    match store.put("k", b"again".to_vec(), Precondition::Absent).await {
        Err(StoreError::Conflict { found, .. }) => assert_eq!(found, Some(r1)),
        other => panic!("create over an existing key: {other:?}"),
    }
    let r2 = store.put("k", b"two".to_vec(), Precondition::Revision(r1)).await.unwrap();
    assert!(r2 > r1, "revisions grow: {r1} then {r2}");
    match store.put("k", b"stale".to_vec(), Precondition::Revision(r1)).await {
        Err(StoreError::Conflict { found, .. }) => assert_eq!(found, Some(r2)),
        other => panic!("write with a stale revision: {other:?}"),
    }
    assert!(matches!(
        store.put("never", b"x".to_vec(), Precondition::Revision(r2)).await,
        Err(StoreError::Conflict { found: None, .. })
    ));
    let r3 = store.put("k", b"three".to_vec(), Precondition::Any).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"three");
}

async fn delete_with_preconditions(store: &dyn Store) {
    let rev = store.put("d", b"x".to_vec(), Precondition::Any).await.unwrap();
    assert!(matches!(
        store.delete("d", Precondition::Revision(rev - 1)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.get("d").await.unwrap().is_some(), "a refused delete deletes nothing");
    assert!(store.delete("d", Precondition::Revision(rev)).await.unwrap());
    assert_eq!(store.get("d").await.unwrap(), None);
    assert!(!store.delete("d", Precondition::Any).await.unwrap());
}

async fn prefix_listing(store: &dyn Store) {
    for key in ["p/b", "p/a", "p/c/deep", "pz", "o/p/a"] {
        store.put(key, key.as_bytes().to_vec(), Precondition::Any).await.unwrap();
    }
    let listed = store.list("p/").await.unwrap();
    let keys: Vec<_> = listed.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["p/a", "p/b", "p/c/deep"]);
    assert!(listed.iter().all(|v| v.value == v.key.as_bytes()));
    assert!(store.list("nothing/").await.unwrap().is_empty());
}

async fn concurrent_compare_and_swap_loses_no_update(store: DynStore) {
    store.put("counter", b"0".to_vec(), Precondition::Any).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    loop {
                        let current = store.get("counter").await.unwrap().unwrap();
                        let n: u64 = String::from_utf8(current.value).unwrap().parse().unwrap();
                        let next = (n + 1).to_string().into_bytes();
                        match store.put("counter", next, Precondition::Revision(current.revision)).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.get("counter").await.unwrap().unwrap().value, b"40");
}

async fn locks_exclude_and_release(store: &dyn Store) {
    let ttl = Duration::from_secs(10);
    let lease = store.try_lock("env/shop", "deploy-1", ttl).await.unwrap();
    match store.try_lock("env/shop", "deploy-2", ttl).await {
        Err(StoreError::Locked { holder, .. }) => assert_eq!(holder, "deploy-1"),
        other => panic!("second holder got {other:?}"),
    }
    let other = store.try_lock("env/other", "deploy-3", ttl).await.unwrap();
    store.renew_lock(&lease).await.unwrap();
    store.release_lock(&lease).await.unwrap();
    store.release_lock(&lease).await.unwrap();
    let next = store.try_lock("env/shop", "deploy-2", ttl).await.unwrap();
    let renewed = store.renew_lock(&lease).await;
    assert!(matches!(renewed, Err(StoreError::LockLost { .. })), "a released lease cannot be renewed: {renewed:?}");
    store.release_lock(&next).await.unwrap();
    store.release_lock(&other).await.unwrap();
}

async fn lock_lapses_when_its_holder_stops_renewing(store: &dyn Store) {
    let ttl = Duration::from_secs(2);
    let dead = store.try_lock("env/lapse", "crashed-host", ttl).await.unwrap();
    store.renew_lock(&dead).await.unwrap();
    assert!(matches!(store.try_lock("env/lapse", "other-host", ttl).await, Err(StoreError::Locked { .. })));
    // The holder "dies": it renews no more. The lock must free itself.
    let mut waited = Duration::ZERO;
    let taken = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
        match store.try_lock("env/lapse", "other-host", ttl).await {
            Ok(lease) => break lease,
            Err(StoreError::Locked { .. }) if waited < Duration::from_secs(10) => continue,
            other => panic!("lock never lapsed: {other:?}"),
        }
    };
    assert!(waited >= Duration::from_millis(1500), "lapsed too early, after {waited:?}");
    assert!(matches!(store.renew_lock(&dead).await, Err(StoreError::LockLost { .. })));
    store.release_lock(&dead).await.unwrap();
    assert!(matches!(store.try_lock("env/lapse", "third", ttl).await, Err(StoreError::Locked { .. })), "a stale release must not free another's lock");
    store.release_lock(&taken).await.unwrap();
}

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("db.redb")).unwrap();
    suite(Arc::new(store)).await;
}

#[tokio::test]
async fn embedded_store_keeps_data_across_reopen_and_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let store = EmbeddedStore::open(&path).unwrap();
    let rev = store.put("k", b"v".to_vec(), Precondition::Any).await.unwrap();
    let err = EmbeddedStore::open(&path).err().expect("second open must fail");
    assert!(err.to_string().contains("in use by another process"), "{err}");
    drop(store);
    let reopened = EmbeddedStore::open(&path).unwrap();
    assert_eq!(reopened.get("k").await.unwrap().unwrap().revision, rev);
    assert!(reopened.put("k2", b"v".to_vec(), Precondition::Any).await.unwrap() > rev, "revisions keep growing after reopen");
}

#[tokio::test]
async fn etcd_store_conforms() {
    let etcd = support::Etcd::start().await;
    let store = etcd.connect("/conformance/").await.unwrap();
    suite(Arc::new(store)).await;
    // Everything was written under the prefix: another prefix sees none of it.
    let neighbour = etcd.connect("/neighbour/").await.unwrap();
    assert!(neighbour.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn etcd_store_reports_an_unreachable_server() {
    let mut etcd = support::Etcd::start().await;
    let store = etcd.connect("/gone/").await.unwrap();
    etcd.kill();
    match store.get("k").await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("etcd"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
