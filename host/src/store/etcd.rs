//! The shared store: etcd's v3 API. Every key is written under a configured prefix;
//! compare-and-swap is an etcd transaction on `mod_revision`; locks are keys bound to
//! a lease, so a holder that dies or stops renewing loses the lock when the lease ends.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use futures_util::StreamExt;

use super::{LockLease, Precondition, Store, StoreError, StoreResult, Versioned};

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
}

fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(format!("etcd: {e}"))
}

/// How warship proves itself to etcd, as production runs it: TLS with a CA (and a client
/// certificate), and etcd's own users. Empty: plain HTTP, no auth.
#[derive(Default, Clone)]
pub struct EtcdAccess {
    /// PEM of the CA that signed etcd's certificate.
    pub ca: Option<Vec<u8>>,
    /// PEM of a client certificate and of its key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// A user and its password.
    pub user: Option<(String, String)>,
}

impl EtcdStore {
    pub async fn connect(
        endpoints: &[String],
        prefix: &str,
        timeout: Duration,
    ) -> StoreResult<Self> {
        Self::connect_with(endpoints, prefix, timeout, &EtcdAccess::default()).await
    }

    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        timeout: Duration,
        access: &EtcdAccess,
    ) -> StoreResult<Self> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(10), timeout);
        if access.ca.is_some() || access.identity.is_some() {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &access.ca {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &access.identity {
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(tls);
        }
        if let Some((user, password)) = &access.user {
            options = options.with_user(user, password);
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn versioned(&self, kv: &etcd_client::KeyValue) -> StoreResult<Versioned> {
        let full = kv.key_str().map_err(unavailable)?;
        Ok(Versioned {
            key: full.strip_prefix(&self.prefix).unwrap_or(full).to_owned(),
            value: kv.value().to_vec(),
            revision: kv.mod_revision() as u64,
        })
    }

    fn compare(&self, key: &str, when: Precondition) -> Option<Compare> {
        match when {
            Precondition::Any => None,
            Precondition::Absent => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
            Precondition::Revision(rev) => Some(Compare::mod_revision(key, CompareOp::Equal, rev as i64)),
        }
    }

    /// Runs `then` guarded by `when`; on a failed guard, reports what was found instead.
    async fn guarded(&self, key: &str, full: &str, when: Precondition, then: TxnOp) -> StoreResult<etcd_client::TxnResponse> {
        let compare = self.compare(full, when).expect("guarded writes have a precondition");
        let txn = Txn::new()
            .when(vec![compare])
            .and_then(vec![then])
            .or_else(vec![TxnOp::get(full, None)]);
        let response = self.client.clone().txn(txn).await.map_err(unavailable)?;
        if response.succeeded() {
            return Ok(response);
        }
        let found = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision() as u64),
            _ => None,
        });
        Err(StoreError::Conflict { key: key.into(), expected: when, found })
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Versioned>> {
        let response = self.client.clone().get(self.full(key), None).await.map_err(unavailable)?;
        response.kvs().first().map(|kv| self.versioned(kv)).transpose()
    }

    async fn put(&self, key: &str, value: Vec<u8>, when: Precondition) -> StoreResult<u64> {
        let full = self.full(key);
        if when == Precondition::Any {
            let response = self.client.clone().put(full, value, None).await.map_err(unavailable)?;
            return Ok(response.header().map(|h| h.revision() as u64).unwrap_or_default());
        }
        let response = self.guarded(key, &full, when, TxnOp::put(full.as_str(), value, None)).await?;
        Ok(response.header().map(|h| h.revision() as u64).unwrap_or_default())
    }

    async fn put_held(&self, key: &str, value: Vec<u8>, when: Precondition, lease: &LockLease) -> StoreResult<u64> {
        let (full, lock) = (self.full(key), self.full(&format!("locks/{}", lease.key)));
        let mut compares = vec![Compare::lease(lock.as_str(), CompareOp::Equal, lease.token as i64)];
        compares.extend(self.compare(&full, when));
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![TxnOp::put(full.as_str(), value, None)])
            .or_else(vec![TxnOp::get(lock.as_str(), None), TxnOp::get(full.as_str(), None)]);
        let response = self.client.clone().txn(txn).await.map_err(unavailable)?;
        if response.succeeded() {
            return Ok(response.header().map(|h| h.revision() as u64).unwrap_or_default());
        }
        let mut gets = response.op_responses().into_iter().filter_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| (kv.lease(), kv.mod_revision() as u64))),
            _ => None,
        });
        let (held, found) = (gets.next().flatten(), gets.next().flatten());
        if held.is_none_or(|(owner, _)| owner != lease.token as i64) {
            return Err(StoreError::LockLost { key: lease.key.clone() });
        }
        Err(StoreError::Conflict { key: key.into(), expected: when, found: found.map(|(_, revision)| revision) })
    }

    async fn delete(&self, key: &str, when: Precondition) -> StoreResult<bool> {
        let full = self.full(key);
        if when == Precondition::Any {
            let response = self.client.clone().delete(full, None).await.map_err(unavailable)?;
            return Ok(response.deleted() > 0);
        }
        let response = self
            .guarded(key, &full, when, TxnOp::delete(full.as_str(), None::<DeleteOptions>))
            .await?;
        Ok(response.op_responses().into_iter().any(|op| matches!(op, TxnOpResponse::Delete(d) if d.deleted() > 0)))
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<Versioned>> {
        let options = GetOptions::new().with_prefix();
        let response = self
            .client
            .clone()
            .get(self.full(prefix), Some(options))
            .await
            .map_err(unavailable)?;
        response.kvs().iter().map(|kv| self.versioned(kv)).collect()
    }

    async fn try_lock(&self, key: &str, holder: &str, ttl: Duration) -> StoreResult<LockLease> {
        let full = self.full(&format!("locks/{key}"));
        let mut client = self.client.clone();
        let ttl_secs = ttl.as_secs().max(1) as i64;
        let lease = client.lease_grant(ttl_secs, None).await.map_err(unavailable)?.id();
        let txn = Txn::new()
            .when(vec![Compare::create_revision(full.as_str(), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(full.as_str(), holder, Some(PutOptions::new().with_lease(lease)))])
            .or_else(vec![TxnOp::get(full.as_str(), None)]);
        let response = client.txn(txn).await.map_err(unavailable)?;
        if response.succeeded() {
            return Ok(LockLease { key: key.into(), holder: holder.into(), ttl, token: lease as u64 });
        }
        // Not ours: give back the lease we took for it.
        let _ = client.lease_revoke(lease).await;
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        });
        Err(StoreError::Locked { key: key.into(), holder: current.unwrap_or_default() })
    }

    async fn renew_lock(&self, lease: &LockLease) -> StoreResult<()> {
        let lost = || StoreError::LockLost { key: lease.key.clone() };
        let mut client = self.client.clone();
        let renewed = async {
            let (mut keeper, mut responses) = client.lease_keep_alive(lease.token as i64).await?;
            keeper.keep_alive().await?;
            responses.message().await
        };
        match renewed.await {
            Ok(Some(r)) if r.ttl() > 0 => Ok(()),
            Ok(_) => Err(lost()),
            Err(e) if is_lease_not_found(&e) => Err(lost()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release_lock(&self, lease: &LockLease) -> StoreResult<()> {
        match self.client.clone().lease_revoke(lease.token as i64).await {
            Ok(_) => Ok(()),
            // An expired lease is already released.
            Err(e) if is_lease_not_found(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.client.clone().get(self.full("ping"), Some(GetOptions::new().with_count_only())).await.map_err(unavailable)?;
        Ok(())
    }

    async fn watch(&self, prefix: &str, after: u64) -> StoreResult<super::Watch> {
        // What is there now, then every write after the revision that read saw.
        let full = self.full(prefix);
        let mut client = self.client.clone();
        let now = client.get(full.as_str(), Some(GetOptions::new().with_prefix())).await.map_err(unavailable)?;
        let read_at = now.header().map(|h| h.revision()).unwrap_or_default();
        let mut present: Vec<Versioned> =
            now.kvs().iter().map(|kv| self.versioned(kv)).collect::<StoreResult<Vec<_>>>()?.into_iter().filter(|v| v.revision > after).collect();
        present.sort_by_key(|v| v.revision);
        let options = WatchOptions::new().with_prefix().with_start_revision(read_at + 1);
        let (watcher, stream) = client.watch(full.as_str(), Some(options)).await.map_err(unavailable)?;
        let this = self.clone();
        let live = futures_util::stream::unfold((stream, watcher), move |(mut stream, watcher)| {
            let this = this.clone();
            async move {
                loop {
                    match stream.message().await {
                        Ok(Some(response)) => {
                            let puts: Vec<StoreResult<Versioned>> = response
                                .events()
                                .iter()
                                .filter(|e| e.event_type() == etcd_client::EventType::Put)
                                .filter_map(|e| e.kv().map(|kv| this.versioned(kv)))
                                .collect();
                            if response.canceled() {
                                let why = format!("etcd cancelled the watch: {}", response.cancel_reason());
                                return Some((futures_util::stream::iter(vec![Err(StoreError::Unavailable(why))]), (stream, watcher)));
                            }
                            if !puts.is_empty() {
                                return Some((futures_util::stream::iter(puts), (stream, watcher)));
                            }
                        }
                        Ok(None) => return None,
                        Err(e) => return Some((futures_util::stream::iter(vec![Err(unavailable(e))]), (stream, watcher))),
                    }
                }
            }
        })
        .flatten();
        Ok(Box::pin(futures_util::stream::iter(present.into_iter().map(Ok)).chain(live)))
    }
}

/// etcd answers "lease not found" for a lease that expired or was revoked.
fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    e.to_string().contains("lease not found")
}
