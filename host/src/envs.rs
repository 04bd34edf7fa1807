//! Environments: where a user's WAR runs (Tomcat × JDK, replicas, JVM options,
//! resources). Records live under the user's prefix; every change re-validates the
//! whole spec so callers see every bad field at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::config::Config;
use crate::plugins::{PluginError, Plugins};
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;
use crate::validation::{dns_label_problem, Violation};

/// Longest env name: leaves room for suffixes like `-canary-` in Kubernetes names.
pub const ENV_NAME_MAX: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(name: &str) -> Result<Self, Violation> {
        match dns_label_problem(name, ENV_NAME_MAX) {
            None => Ok(Self(name.to_owned())),
            Some(problem) => Err(Violation::new("name", "env.name.invalid", format!("env name {name:?} {problem}"))),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnvName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceAmounts {
    /// Kubernetes CPU quantity: `500m`, `1`, `1.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Kubernetes memory quantity: `512Mi`, `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceAmounts,
    #[serde(default)]
    pub limits: ResourceAmounts,
}

/// What a user asks for when creating an env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    pub name: String,
    pub tomcat: String,
    pub jdk: String,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Passed to the JVM as `JAVA_OPTS`.
    #[serde(default)]
    pub jvm_options: String,
    /// Environment variables for the container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    /// Where the WAR is served: `/` (ROOT) or `/shop`.
    #[serde(default = "root_path")]
    pub context_path: String,
    /// How long a rollout may take to get every pod ready before it fails; the
    /// platform's `deploys.rollout_deadline_secs` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_deadline_secs: Option<u64>,
}

fn one() -> u32 {
    1
}
fn root_path() -> String {
    "/".into()
}

/// A partial update; absent fields stay as they are. The name and `used` cannot change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvPatch {
    pub tomcat: Option<String>,
    pub jdk: Option<String>,
    pub replicas: Option<u32>,
    pub jvm_options: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub resources: Option<Resources>,
    pub context_path: Option<String>,
    pub rollout_deadline_secs: Option<u64>,
}

/// A release: what a successful deploy left serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    pub revision: u32,
    /// What the pods run: `<pull registry>/<user>/<env>@sha256:…`.
    pub image: String,
    pub digest: String,
    pub war: String,
    pub war_sha256: String,
    pub version: String,
    pub strategy: String,
    /// The deploy that made it.
    pub deploy: String,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// An env as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Env {
    #[serde(flatten)]
    pub spec: EnvSpec,
    /// Successful deploys so far.
    pub used: u64,
    /// The release serving now, once a deploy succeeded.
    #[serde(default)]
    pub current: Option<Release>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Store revision of this record; changes on every write.
    #[serde(default)]
    pub revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("the env is invalid")]
    Invalid(Vec<Violation>),
    #[error("env {0} not found")]
    NotFound(String),
    #[error("env {0} already exists")]
    Exists(String),
    #[error("env {0} was changed by someone else meanwhile")]
    Conflict(String),
    #[error("you already have {0} envs, the most allowed")]
    TooMany(usize),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EnvError {
    fn from(e: StoreError) -> Self {
        EnvError::Store(e)
    }
}

impl EnvPatch {
    pub fn apply(self, spec: &mut EnvSpec) {
        let EnvPatch { tomcat, jdk, replicas, jvm_options, env, resources, context_path, rollout_deadline_secs } = self;
        if let Some(v) = tomcat { spec.tomcat = v }
        if let Some(v) = jdk { spec.jdk = v }
        if let Some(v) = replicas { spec.replicas = v }
        if let Some(v) = jvm_options { spec.jvm_options = v }
        if let Some(v) = env { spec.env = v }
        if let Some(v) = resources { spec.resources = v }
        if let Some(v) = context_path { spec.context_path = v }
        if let Some(v) = rollout_deadline_secs { spec.rollout_deadline_secs = Some(v) }
    }
}

fn key(user: &UserName, env: &str) -> String {
    format!("u/{user}/envs/{env}")
}

fn prefix(user: &UserName) -> String {
    format!("u/{user}/envs/")
}

/// The env operations, each scoped to one user.
#[derive(Clone)]
pub struct Envs {
    store: DynStore,
    config: std::sync::Arc<Config>,
    plugins: std::sync::Arc<Plugins>,
}

/// How a spec arrived: the original API sends the replica count as a string.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub node_num: Option<String>,
}

impl Envs {
    pub fn new(store: DynStore, config: std::sync::Arc<Config>, plugins: std::sync::Arc<Plugins>) -> Self {
        Self { store, config, plugins }
    }

    /// Every configured validator's violations, together. The name rule is also the
    /// host's own: names become store keys and Kubernetes names, whatever plugins say.
    pub async fn validate(&self, spec: &EnvSpec, origin: Origin) -> Result<Vec<Violation>, EnvError> {
        let mut violations = self.plugins.validate_env(&self.config, spec, origin.node_num).await?;
        if let Err(v) = EnvName::parse(&spec.name) {
            if !violations.iter().any(|found| found.field == v.field) {
                violations.insert(0, v);
            }
        }
        Ok(violations)
    }

    pub async fn create(&self, user: &UserName, spec: EnvSpec, origin: Origin) -> Result<Env, EnvError> {
        let violations = self.validate(&spec, origin).await?;
        if !violations.is_empty() {
            return Err(EnvError::Invalid(violations));
        }
        let existing = self.store.list(&prefix(user)).await?.len();
        if existing >= self.config.envs.max_envs_per_user {
            return Err(EnvError::TooMany(existing));
        }
        let now = OffsetDateTime::now_utc();
        let mut env = Env { spec, used: 0, current: None, created_at: now, updated_at: now, revision: 0 };
        let name = env.spec.name.clone();
        env.revision = store::put_json(&*self.store, &key(user, &name), &env, Precondition::Absent)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EnvError::Exists(name.clone()),
                other => other.into(),
            })?;
        Ok(env)
    }

    pub async fn list(&self, user: &UserName) -> Result<Vec<Env>, EnvError> {
        let records: Vec<(Env, u64)> = store::list_json(&*self.store, &prefix(user)).await?;
        Ok(records.into_iter().map(|(env, rev)| Env { revision: rev, ..env }).collect())
    }

    pub async fn get(&self, user: &UserName, name: &EnvName) -> Result<Env, EnvError> {
        let found: Option<(Env, u64)> = store::get_json(&*self.store, &key(user, name.as_str())).await?;
        found
            .map(|(env, rev)| Env { revision: rev, ..env })
            .ok_or_else(|| EnvError::NotFound(name.to_string()))
    }

    /// Applies `patch` to the current record with compare-and-swap, so two concurrent
    /// updates cannot silently overwrite each other.
    pub async fn update(&self, user: &UserName, name: &EnvName, patch: EnvPatch) -> Result<Env, EnvError> {
        let mut env = self.get(user, name).await?;
        patch.apply(&mut env.spec);
        let violations = self.validate(&env.spec, Origin::default()).await?;
        if !violations.is_empty() {
            return Err(EnvError::Invalid(violations));
        }
        env.updated_at = OffsetDateTime::now_utc();
        env.revision = store::put_json(&*self.store, &key(user, name.as_str()), &env, Precondition::Revision(env.revision))
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EnvError::Conflict(name.to_string()),
                other => other.into(),
            })?;
        Ok(env)
    }

    /// A deploy succeeded: `release` serves now and `used` counts one more. Retries on
    /// concurrent writes (a PATCH meanwhile) rather than losing either.
    pub async fn record_release(&self, user: &UserName, name: &EnvName, release: &Release) -> Result<Env, EnvError> {
        loop {
            let mut env = self.get(user, name).await?;
            env.used += 1;
            env.current = Some(release.clone());
            env.updated_at = OffsetDateTime::now_utc();
            match store::put_json(&*self.store, &key(user, name.as_str()), &env, Precondition::Revision(env.revision)).await {
                Ok(revision) => return Ok(Env { revision, ..env }),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub async fn delete(&self, user: &UserName, name: &EnvName) -> Result<(), EnvError> {
        if self.store.delete(&key(user, name.as_str()), Precondition::Any).await? {
            Ok(())
        } else {
            Err(EnvError::NotFound(name.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_spec_gets_defaults() {
        let s: EnvSpec = serde_json::from_str(r#"{"name":"shop","tomcat":"10.1","jdk":"17"}"#).unwrap();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.context_path, "/");
    }

    #[test]
    fn patch_keeps_what_it_does_not_name() {
        let mut s: EnvSpec = serde_json::from_str(r#"{"name":"shop","tomcat":"10.1","jdk":"17","jvm_options":"-Xmx1g"}"#).unwrap();
        let patch: EnvPatch = serde_json::from_str(r#"{"replicas":3}"#).unwrap();
        patch.apply(&mut s);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.jvm_options, "-Xmx1g");
        assert!(serde_json::from_str::<EnvPatch>(r#"{"name":"x"}"#).is_err());
        assert!(serde_json::from_str::<EnvPatch>(r#"{"used":3}"#).is_err());
    }

    #[test]
    fn env_names_are_dns_labels() {
        assert!(EnvName::parse("shop-1").is_ok());
        for bad in ["", "Shop", "1shop", "shop-", "a/b", ".."] {
            assert!(EnvName::parse(bad).is_err(), "{bad}");
        }
    }
}
