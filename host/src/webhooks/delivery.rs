//! Delivering one event to one endpoint: a record in the endpoint's log, attempted
//! until a 2xx answer or `webhooks.max_attempts`, waiting `backoff_initial_ms`,
//! doubling, between attempts. The host that starts a delivery holds a lease on it
//! and writes each attempt under that lease; a pending delivery whose lease lapsed
//! (its host stopped) is taken over by any host's recovery pass and goes on from
//! its last attempt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Host;
use utoipa::ToSchema;

use super::events::{self, EventKind, Payload};
use super::{address, keys, signing, Endpoint, Owner, Webhooks};
use crate::deploys::DeployRecord;
use crate::jobs::{self, Lease, LEASE_TTL};
use crate::store::{self, Precondition, StoreError, StoreResult};
use crate::users::UserName;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Attempts go on.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: every attempt failed, or the endpoint went.
    Failed,
}

/// One POST and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The HTTP status answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it did not count: a status other than 2xx, a timeout, a refused connection, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One event for one endpoint, as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Also the payload's `id` and the `Warship-Delivery` header.
    pub id: String,
    pub endpoint: String,
    pub event: EventKind,
    pub user: String,
    pub env: String,
    pub deploy: String,
    pub outcome: Outcome,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the next attempt is due, while pending.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Why it was given up without using its attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_up: Option<String>,
    /// The body sent, the same bytes on every attempt.
    pub body: String,
}

/// What the pending index holds: where the delivery and its endpoint are.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingDelivery {
    endpoint: String,
    delivery: String,
}

/// The wait after `failed` attempts have failed: `initial`, doubling, at most an hour.
pub fn backoff(initial_ms: u64, failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(30);
    Duration::from_millis(initial_ms.saturating_mul(1 << doublings)).min(Duration::from_secs(3600))
}

/// A client that follows no redirect (a 3xx to an internal address would get round the
/// address check), optionally pinned to the address that was checked for `name`.
pub(super) fn client(pinned: Option<(&str, SocketAddr)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("warship-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some((name, addr)) = pinned {
        builder = builder.resolve(name, addr);
    }
    builder.build().expect("the webhook client builds")
}

impl Webhooks {
    /// Records a delivery of `kind` for `endpoint`, under a lease of this host, and
    /// starts attempting it.
    pub(super) async fn start(
        &self,
        endpoint_key: &str,
        endpoint: &Endpoint,
        kind: EventKind,
        user: &UserName,
        record: &DeployRecord,
    ) -> StoreResult<()> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lease = Lease::take(&self.store, &keys::lock(&id), &self.holder, LEASE_TTL).await?;
        let now = OffsetDateTime::now_utc();
        let payload = Payload::of(&id, kind, user.as_str(), record, self.config.webhooks.base_url.as_deref());
        let body = String::from_utf8(events::body(&payload, endpoint.format)).expect("JSON is UTF-8");
        let delivery_key = keys::delivery(&endpoint.id, now, &id);
        let delivery = Delivery {
            id: id.clone(),
            endpoint: endpoint.id.clone(),
            event: kind,
            user: user.to_string(),
            env: record.env.clone(),
            deploy: record.id.clone(),
            outcome: Outcome::Pending,
            attempts: Vec::new(),
            created_at: now,
            next_attempt_at: Some(now),
            given_up: None,
            body,
        };
        let pending = PendingDelivery { endpoint: endpoint_key.to_owned(), delivery: delivery_key.clone() };
        // The index first: a host that stops before the record is written leaves an
        // entry that recovery drops, never a record pending forever.
        let written = async {
            lease.put_json(&keys::pending(&id), &pending, Precondition::Absent).await?;
            lease.put_json(&delivery_key, &delivery, Precondition::Absent).await
        };
        if let Err(e) = written.await {
            let _ = self.store.delete(&keys::pending(&id), Precondition::Any).await;
            lease.release().await;
            return Err(e);
        }
        self.prune(&endpoint.id).await;
        if let Some(this) = self.me.upgrade() {
            tokio::spawn(this.run(lease, id, pending));
        }
        Ok(())
    }

    /// Attempts a delivery to its end while its lease holds; a lease lost leaves it to
    /// the host that takes it over.
    async fn run(self: Arc<Self>, lease: Arc<Lease>, id: String, pending: PendingDelivery) {
        tokio::select! {
            () = self.attempt_all(&lease, &id, &pending) => {}
            lost = lease.hold() => tracing::warn!(delivery = %id, error = %lost, "lost a webhook delivery's lease; another host carries it on"),
        }
        lease.release().await;
    }

    async fn attempt_all(&self, lease: &Lease, id: &str, pending: &PendingDelivery) {
        let settings = &self.config.webhooks;
        loop {
            let (mut delivery, revision) = match store::get_json::<Delivery>(&*self.store, &pending.delivery).await {
                Ok(Some(found)) => found,
                // Removed with its endpoint, or never written by a host that stopped.
                Ok(None) => return self.forget(id).await,
                Err(e) => {
                    tracing::warn!(delivery = %id, error = %e, "could not read a webhook delivery; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if delivery.outcome != Outcome::Pending {
                return self.forget(id).await;
            }
            let endpoint = match store::get_json::<Endpoint>(&*self.store, &pending.endpoint).await {
                Ok(found) => found.map(|(e, _)| e),
                Err(e) => {
                    tracing::warn!(delivery = %id, error = %e, "could not read a webhook endpoint; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let user_endpoint = endpoint.as_ref().is_some_and(|e| matches!(e.owner, Owner::Env { .. }));
            let gone = match &endpoint {
                None => Some("the endpoint was removed"),
                Some(_) if user_endpoint && !settings.users_may_add => {
                    Some("users' webhooks were turned off (webhooks.users_may_add)")
                }
                Some(_) => None,
            };
            if let Some(reason) = gone {
                delivery.outcome = Outcome::Failed;
                delivery.next_attempt_at = None;
                delivery.given_up = Some(reason.to_owned());
            } else if let Some(endpoint) = endpoint {
                if let Some(due) = delivery.next_attempt_at {
                    let wait = (due - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
                    tokio::time::sleep(wait).await;
                }
                let attempt = self.attempt(&endpoint, &delivery).await;
                let delivered = attempt.error.is_none();
                tracing::info!(delivery = %id, endpoint = %endpoint.id, event = delivery.event.name(), status = ?attempt.status, error = ?attempt.error, "webhook attempt");
                delivery.attempts.push(attempt);
                let tried = delivery.attempts.len() as u32;
                (delivery.outcome, delivery.next_attempt_at) = match (delivered, tried >= settings.max_attempts) {
                    (true, _) => (Outcome::Delivered, None),
                    (false, true) => (Outcome::Failed, None),
                    (false, false) => (
                        Outcome::Pending,
                        Some(OffsetDateTime::now_utc() + backoff(settings.backoff_initial_ms, tried)),
                    ),
                };
            }
            let key = &pending.delivery;
            let written = jobs::retrying(lease, "webhook delivery", || {
                lease.put_json(key, &delivery, Precondition::Revision(revision))
            })
            .await;
            match written {
                Ok(_) if delivery.outcome == Outcome::Pending => {}
                Ok(_) => {
                    if delivery.outcome == Outcome::Failed {
                        tracing::warn!(delivery = %id, endpoint = %delivery.endpoint, attempts = delivery.attempts.len(), reason = ?delivery.given_up, "webhook delivery given up");
                    }
                    return self.forget(id).await;
                }
                // Removed meanwhile (with its endpoint), or the lease is gone: stop here.
                Err(StoreError::Conflict { .. }) => return self.forget(id).await,
                Err(e) => {
                    tracing::warn!(delivery = %id, error = %e, "could not record a webhook attempt; the delivery stops here for another host to carry on");
                    return;
                }
            }
        }
    }

    async fn forget(&self, id: &str) {
        if let Err(e) = self.store.delete(&keys::pending(id), Precondition::Any).await {
            tracing::warn!(delivery = %id, error = %e, "could not drop an ended webhook delivery from the pending index");
        }
    }

    /// One signed POST of the delivery's body.
    async fn attempt(&self, endpoint: &Endpoint, delivery: &Delivery) -> Attempt {
        let (at, started) = (OffsetDateTime::now_utc(), Instant::now());
        let (status, error) = match self.post(endpoint, delivery).await {
            Ok(status) => (Some(status), None),
            Err((status, error)) => (status, Some(error)),
        };
        Attempt { at, status, error, duration_ms: started.elapsed().as_millis() as u64 }
    }

    async fn post(&self, endpoint: &Endpoint, delivery: &Delivery) -> Result<u16, (Option<u16>, String)> {
        let url = address::parse_url(&endpoint.url).map_err(|e| (None, e.to_string()))?;
        let client = match (&endpoint.owner, url.host()) {
            // Checked again now, and the connection made to the address checked.
            (Owner::Env { .. }, host) => {
                let addrs = address::resolve(&url, self.config.webhooks.allow_private_addresses)
                    .await
                    .map_err(|e| (None, e.to_string()))?;
                match host {
                    Some(Host::Domain(name)) => client(Some((name, addrs[0]))),
                    _ => self.client.clone(),
                }
            }
            (Owner::Admin, _) => self.client.clone(),
        };
        let timeout = Duration::from_secs(self.config.webhooks.timeout_secs);
        let sent_at = OffsetDateTime::now_utc().unix_timestamp();
        let signature = signing::signature_header(&endpoint.secret, sent_at, delivery.body.as_bytes());
        let answer = client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Warship-Event", delivery.event.name())
            .header("Warship-Delivery", &delivery.id)
            .header("Warship-Signature", signature)
            .body(delivery.body.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
            Ok(response) => {
                Err((Some(response.status().as_u16()), format!("the endpoint answered {}", response.status())))
            }
            Err(e) if e.is_timeout() => {
                Err((None, format!("no answer within {} s (webhooks.timeout_secs)", timeout.as_secs())))
            }
            Err(e) if e.is_connect() => Err((None, format!("could not connect: {}", error_chain(&e)))),
            Err(e) => Err((None, error_chain(&e))),
        }
    }

    /// Keeps the endpoint's log to `deliveries_kept`: the oldest ended ones go.
    async fn prune(&self, endpoint: &str) {
        let kept = self.config.webhooks.deliveries_kept;
        let Ok(all) = self.store.list(&keys::deliveries(endpoint)).await else { return };
        let excess = all.len().saturating_sub(kept);
        let ended = all.iter().filter(|entry| {
            serde_json::from_slice::<Delivery>(&entry.value).map_or(true, |d| d.outcome != Outcome::Pending)
        });
        for old in ended.take(excess) {
            let _ = self.store.delete(&old.key, Precondition::Any).await;
        }
    }

    /// Takes over each pending delivery whose lease lapsed (its host stopped).
    pub(super) async fn resume_lapsed(self: Arc<Self>) -> Result<(), StoreError> {
        for entry in self.store.list(keys::PENDING).await? {
            let Some(id) = entry.key.strip_prefix(keys::PENDING).map(str::to_owned) else { continue };
            let Ok(pending) = serde_json::from_slice::<PendingDelivery>(&entry.value) else {
                self.store.delete(&entry.key, Precondition::Any).await?;
                continue;
            };
            let lease = match Lease::take(&self.store, &keys::lock(&id), &self.holder, LEASE_TTL).await {
                Ok(lease) => lease,
                Err(StoreError::Locked { .. }) => continue,
                Err(e) => return Err(e),
            };
            tracing::warn!(delivery = %id, "taking over a webhook delivery whose host stopped");
            tokio::spawn(self.clone().run(lease, id, pending));
        }
        Ok(())
    }
}

/// reqwest's error with its sources: "error sending request" alone says little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_its_start_and_is_capped() {
        let waits: Vec<u64> = (1..=5).map(|failed| backoff(1000, failed).as_millis() as u64).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 16000]);
        assert_eq!(backoff(200, 1), Duration::from_millis(200));
        assert_eq!(backoff(1000, 40), Duration::from_secs(3600));
        assert_eq!(backoff(0, 3), Duration::ZERO);
    }
}
