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
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Serialize, Deserialize)]
struct UserRecord {
    name: UserName,
    token_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
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
    /// token sha256 → user, as the store said lately: every request authenticates, and
    /// tokens never change owner, so a store read per request is saved.
    known: Arc<Mutex<HashMap<String, (UserName, Instant)>>>,
}

/// How long a token read from the store is trusted without reading it again.
const KNOWN_FOR: Duration = Duration::from_secs(60);
/// Tokens remembered at most; the memory is cleared when it fills up.
const KNOWN_MAX: usize = 10_000;

impl Users {
    pub fn new(store: DynStore, declared: &[StaticUser]) -> Result<Self, UserError> {
        let declared = declared
            .iter()
            .map(|u| Ok((u.token_sha256.to_ascii_lowercase(), UserName::parse(&u.name)?)))
            .collect::<Result<_, UserError>>()?;
        Ok(Self { store, declared, known: Default::default() })
    }

    /// Creates the user and returns its token, which is never stored.
    pub async fn add(&self, name: &str) -> Result<String, UserError> {
        let name = UserName::parse(name)?;
        let token = new_token();
        let digest = token_sha256(&token);
        let record = UserRecord { name: name.clone(), token_sha256: digest.clone(), created_at: time::OffsetDateTime::now_utc() };
        store::put_json(&*self.store, &format!("users/{name}"), &record, Precondition::Absent)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => UserError::Exists(name.to_string()),
                other => other.into(),
            })?;
        store::put_json(&*self.store, &format!("tokens/{digest}"), &TokenRecord { user: name }, Precondition::Absent).await?;
        Ok(token)
    }

    /// The user this token names, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<UserName>, StoreError> {
        let digest = token_sha256(token);
        if let Some(user) = self.declared.get(&digest) {
            return Ok(Some(user.clone()));
        }
        if let Some((user, since)) = self.known.lock().expect("token cache lock").get(&digest) {
            if since.elapsed() < KNOWN_FOR {
                return Ok(Some(user.clone()));
            }
        }
        let record: Option<(TokenRecord, u64)> = store::get_json(&*self.store, &format!("tokens/{digest}")).await?;
        let user = record.map(|(r, _)| r.user);
        if let Some(user) = &user {
            let mut known = self.known.lock().expect("token cache lock");
            if known.len() >= KNOWN_MAX {
                known.clear();
            }
            known.insert(digest, (user.clone(), Instant::now()));
        }
        Ok(user)
    }
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
}
