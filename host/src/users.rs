//! Users are named by the bearer token they present. Tokens are random and shown
//! once; only their sha256 is kept (in the store, or in `platform.toml`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::StaticUser;
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::domain::dns_label_problem;

/// A user's name; it also names the user's Kubernetes namespace, hence DNS rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub const MAX_LEN: usize = 30;

    pub fn parse(name: &str) -> Result<Self, UserError> {
        if crate::domain::RESERVED_NAMES.contains(&name) {
            return Err(UserError::InvalidName(format!(
                "user name {name:?} is reserved: the platform's own images live under it; pick another name"
            )));
        }
        match dns_label_problem(name, Self::MAX_LEN) {
            None => Ok(Self(name.to_owned())),
            Some(problem) => Err(UserError::InvalidName(format!("user name {name:?} {problem}"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    InvalidName(String),
    #[error("user {0} already exists")]
    Exists(String),
    #[error("there is no user {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Serialize, Deserialize)]
struct UserRecord {
    name: UserName,
    /// Empty once revoked.
    token_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    rotated_at: Option<time::OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    revoked_at: Option<time::OffsetDateTime>,
}

/// A user as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    /// Its token works (not revoked).
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub rotated_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// What a token says of its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    User(UserName),
    Unknown,
    /// Too many unknown tokens came from this address lately: not looked up.
    Throttled { retry_after_secs: u64 },
}

#[derive(Serialize, Deserialize)]
struct TokenRecord {
    user: UserName,
}

pub fn token_sha256(token: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()))
}

fn new_token() -> String {
    format!("wsp_{}", hex::encode(rand::random::<[u8; 24]>()))
}

#[derive(Clone)]
pub struct Users {
    store: DynStore,
    /// token sha256 → user, from `[[users.static]]`.
    declared: HashMap<String, UserName>,
    /// token sha256 → user, as the store said lately: every request authenticates, so
    /// a store read per request is saved. A revocation or rotation on any host evicts
    /// the user's tokens here at once ([`Users::follow`]).
    known: Arc<Mutex<HashMap<String, (UserName, Instant)>>>,
    /// token sha256 → when the store said it is no one's: a flood of wrong tokens
    /// is answered without reading the store each time.
    refused: Arc<Mutex<HashMap<String, Instant>>>,
    /// Unknown tokens lately, per client address.
    failures: Arc<Mutex<HashMap<std::net::IpAddr, FailureBudget>>>,
}

/// How long a token read from the store is trusted without reading it again.
const KNOWN_FOR: Duration = Duration::from_secs(60);
/// How long an unknown token is remembered as unknown.
const REFUSED_FOR: Duration = Duration::from_secs(10);
/// Tokens (or addresses) remembered at most; the memory is cleared when it fills up.
const KNOWN_MAX: usize = 10_000;
/// Unknown tokens an address may try in a burst, then per second.
const FAILURES_BURST: f64 = 20.0;
const FAILURES_PER_SEC: f64 = 2.0;

/// A token bucket of unknown tokens for one address.
#[derive(Debug, Clone, Copy)]
struct FailureBudget {
    tokens: f64,
    at: Instant,
}

impl FailureBudget {
    fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * FAILURES_PER_SEC).min(FAILURES_BURST);
        self.at = now;
    }
}

impl Users {
    pub fn new(store: DynStore, declared: &[StaticUser]) -> Result<Self, UserError> {
        let declared = declared
            .iter()
            .map(|u| Ok((u.token_sha256.to_ascii_lowercase(), UserName::parse(&u.name)?)))
            .collect::<Result<_, UserError>>()?;
        Ok(Self { store, declared, known: Default::default(), refused: Default::default(), failures: Default::default() })
    }

    /// Creates the user and returns its token, which is never stored.
    pub async fn add(&self, name: &str) -> Result<String, UserError> {
        let name = UserName::parse(name)?;
        let token = new_token();
        let digest = token_sha256(&token);
        let record = UserRecord {
            name: name.clone(),
            token_sha256: digest.clone(),
            created_at: time::OffsetDateTime::now_utc(),
            rotated_at: None,
            revoked_at: None,
        };
        store::put_json(&*self.store, &format!("users/{name}"), &record, Precondition::Absent)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => UserError::Exists(name.to_string()),
                other => other.into(),
            })?;
        store::put_json(&*self.store, &format!("tokens/{digest}"), &TokenRecord { user: name }, Precondition::Absent).await?;
        Ok(token)
    }

    /// Every user added with `warship user add` or the admin API, by name.
    pub async fn list(&self) -> Result<Vec<UserView>, UserError> {
        let mut users: Vec<UserView> = self
            .store
            .list("users/")
            .await?
            .into_iter()
            .filter_map(|v| serde_json::from_slice::<UserRecord>(&v.value).ok())
            .map(|r| UserView {
                name: r.name.to_string(),
                active: !r.token_sha256.is_empty(),
                created_at: r.created_at,
                rotated_at: r.rotated_at,
                revoked_at: r.revoked_at,
            })
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// Gives the user a new token (also one that was revoked) and ends the old one.
    pub async fn rotate(&self, name: &str) -> Result<String, UserError> {
        let (mut record, revision) = self.record(name).await?;
        let token = new_token();
        let digest = token_sha256(&token);
        store::put_json(&*self.store, &format!("tokens/{digest}"), &TokenRecord { user: record.name.clone() }, Precondition::Absent).await?;
        let old = std::mem::replace(&mut record.token_sha256, digest);
        self.end_token(&old).await?;
        record.rotated_at = Some(time::OffsetDateTime::now_utc());
        record.revoked_at = None;
        store::put_json(&*self.store, &format!("users/{}", record.name), &record, Precondition::Revision(revision)).await?;
        Ok(token)
    }

    /// Ends the user's token; requests bearing it answer 401 from now on, on every host.
    pub async fn revoke(&self, name: &str) -> Result<(), UserError> {
        let (mut record, revision) = self.record(name).await?;
        if record.token_sha256.is_empty() {
            return Ok(());
        }
        // The token goes first: a host that stops here has still revoked it.
        let old = std::mem::take(&mut record.token_sha256);
        self.end_token(&old).await?;
        record.revoked_at = Some(time::OffsetDateTime::now_utc());
        store::put_json(&*self.store, &format!("users/{}", record.name), &record, Precondition::Revision(revision)).await?;
        Ok(())
    }

    async fn record(&self, name: &str) -> Result<(UserRecord, u64), UserError> {
        let name = UserName::parse(name)?;
        store::get_json(&*self.store, &format!("users/{name}")).await?.ok_or_else(|| UserError::NotFound(name.to_string()))
    }

    async fn end_token(&self, digest: &str) -> Result<(), StoreError> {
        if !digest.is_empty() {
            self.store.delete(&format!("tokens/{digest}"), Precondition::Any).await?;
            self.known.lock().expect("token cache lock").remove(digest);
        }
        Ok(())
    }

    /// Keeps this host's memory of tokens in step with every host's revocations and
    /// rotations: each write of a user record evicts that user's other tokens. Runs
    /// until the store's watch ends, then watches again.
    pub fn follow(&self) -> tokio::task::JoinHandle<()> {
        let users = self.clone();
        tokio::spawn(async move {
            loop {
                match users.store.watch("users/", 0).await {
                    Ok(mut written) => {
                        while let Some(Ok(v)) = futures_util::StreamExt::next(&mut written).await {
                            if let Ok(record) = serde_json::from_slice::<UserRecord>(&v.value) {
                                let mut known = users.known.lock().expect("token cache lock");
                                known.retain(|digest, (user, _)| *user != record.name || *digest == record.token_sha256);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot watch user records; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Whether the token whose sha256 is `digest` still opens the API: declared in
    /// platform.toml, or live in the store (revoke and rotate delete it there). Read
    /// afresh, never from this host's memory of tokens: a session must end at once.
    pub async fn digest_is_live(&self, digest: &str) -> Result<bool, StoreError> {
        if self.declared.keys().any(|d| d.eq_ignore_ascii_case(digest)) {
            return Ok(true);
        }
        Ok(self.store.get(&format!("tokens/{digest}")).await?.is_some())
    }

    /// The user this token names, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<UserName>, StoreError> {
        Ok(match self.bearer(token, None).await? {
            Bearer::User(user) => Some(user),
            _ => None,
        })
    }

    /// Who bears `token`, for a request from `from`: unknown tokens are remembered a
    /// while, and an address that tries too many is throttled before the store is read.
    pub async fn bearer(&self, token: &str, from: Option<std::net::IpAddr>) -> Result<Bearer, StoreError> {
        let digest = token_sha256(token);
        if let Some(user) = self.declared.get(&digest) {
            return Ok(Bearer::User(user.clone()));
        }
        if let Some((user, since)) = self.known.lock().expect("token cache lock").get(&digest) {
            if since.elapsed() < KNOWN_FOR {
                return Ok(Bearer::User(user.clone()));
            }
        }
        let now = Instant::now();
        if let Some(from) = from {
            let mut failures = self.failures.lock().expect("failures lock");
            if let Some(budget) = failures.get_mut(&from) {
                budget.refill(now);
                if budget.tokens < 1.0 {
                    let retry_after_secs = ((1.0 - budget.tokens) / FAILURES_PER_SEC).ceil().max(1.0) as u64;
                    return Ok(Bearer::Throttled { retry_after_secs });
                }
            }
        }
        let refused_lately = self.refused.lock().expect("refused lock").get(&digest).is_some_and(|at| at.elapsed() < REFUSED_FOR);
        let user = match refused_lately {
            true => None,
            false => store::get_json::<TokenRecord>(&*self.store, &format!("tokens/{digest}")).await?.map(|(r, _)| r.user),
        };
        let Some(user) = user else {
            remember(&self.refused, digest, now);
            if let Some(from) = from {
                let mut failures = self.failures.lock().expect("failures lock");
                if failures.len() >= KNOWN_MAX {
                    failures.clear();
                }
                let budget = failures.entry(from).or_insert(FailureBudget { tokens: FAILURES_BURST, at: now });
                budget.tokens -= 1.0;
            }
            return Ok(Bearer::Unknown);
        };
        self.refused.lock().expect("refused lock").remove(&digest);
        let mut known = self.known.lock().expect("token cache lock");
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert(digest, (user.clone(), now));
        Ok(Bearer::User(user))
    }
}

fn remember(map: &Mutex<HashMap<String, Instant>>, digest: String, at: Instant) {
    let mut map = map.lock().expect("refused lock");
    if map.len() >= KNOWN_MAX {
        map.clear();
    }
    map.insert(digest, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_own_name_is_no_users() {
        let refused = UserName::parse("warship").unwrap_err().to_string();
        assert!(refused.contains("reserved"), "{refused}");
        assert!(UserName::parse("warship-fan").is_ok());
        assert!(UserName::parse("Alice").is_err());
    }

    #[tokio::test]
    async fn revoked_and_rotated_tokens_end_at_once_and_unknown_ones_are_throttled_per_address() {
        let (store, _dir) = crate::store::scratch();
        let users = Users::new(store, &[]).unwrap();
        let token = users.add("alice").await.unwrap();
        assert_eq!(users.bearer(&token, None).await.unwrap(), Bearer::User(UserName::parse("alice").unwrap()));
        let fresh = users.rotate("alice").await.unwrap();
        assert_eq!(users.bearer(&token, None).await.unwrap(), Bearer::Unknown, "the old token ended");
        assert!(matches!(users.bearer(&fresh, None).await.unwrap(), Bearer::User(_)));
        users.revoke("alice").await.unwrap();
        assert_eq!(users.bearer(&fresh, None).await.unwrap(), Bearer::Unknown);
        let listed = users.list().await.unwrap();
        assert_eq!((listed.len(), listed[0].active, listed[0].revoked_at.is_some()), (1, false, true));
        assert!(matches!(users.rotate("bob").await, Err(UserError::NotFound(_))));

        let from: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let mut throttled = 0;
        for i in 0..30 {
            if let Bearer::Throttled { retry_after_secs } = users.bearer(&format!("wsp_guess{i}"), Some(from)).await.unwrap() {
                assert!(retry_after_secs >= 1);
                throttled += 1;
            }
        }
        assert_eq!(throttled, 30 - FAILURES_BURST as usize, "a burst of unknown tokens, then throttled");
        // Another address is not held to this one's failures.
        assert_eq!(users.bearer("wsp_other", Some("192.0.2.8".parse().unwrap())).await.unwrap(), Bearer::Unknown);
    }
}
