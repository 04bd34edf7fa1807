//! Environments: where a user's WAR runs (Tomcat × JDK, replicas, JVM options,
//! resources). Records live under the user's prefix; every change re-validates the
//! whole spec so callers see every bad field at once.

pub mod keys;
mod ops;
mod status;

use time::OffsetDateTime;

use crate::config::Config;
use crate::domain::{Env, EnvName, EnvPatch, EnvSpec, Release, Violation};
use crate::plugins::{PluginError, Plugins};
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;

pub use ops::{EnvOps, EnvOpsError};
pub use status::{EnvStatus, ServiceStatus, WorkloadStatus};

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
    #[error("release {revision} of env {env} is recorded already, by another deploy")]
    ReleaseTaken { env: String, revision: u32 },
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
        // The probe path becomes part of every pod's spec: the host's rule too.
        violations.extend(spec.health_path.as_deref().and_then(crate::domain::health_path_problem));
        Ok(violations)
    }

    pub async fn create(&self, user: &UserName, spec: EnvSpec, origin: Origin) -> Result<Env, EnvError> {
        let violations = self.validate(&spec, origin).await?;
        if !violations.is_empty() {
            return Err(EnvError::Invalid(violations));
        }
        let existing = self.store.list(&keys::envs(user)).await?.len();
        if existing >= self.config.envs.max_envs_per_user {
            return Err(EnvError::TooMany(existing));
        }
        let now = OffsetDateTime::now_utc();
        let mut env = Env { spec, used: 0, current: None, created_at: now, updated_at: now, revision: 0 };
        let name = env.spec.name.clone();
        env.revision = store::put_json(&*self.store, &keys::env(user, &name), &env, Precondition::Absent)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EnvError::Exists(name.clone()),
                other => other.into(),
            })?;
        Ok(env)
    }

    pub async fn list(&self, user: &UserName) -> Result<Vec<Env>, EnvError> {
        let records: Vec<(Env, u64)> = store::list_json(&*self.store, &keys::envs(user)).await?;
        Ok(records.into_iter().map(|(env, rev)| Env { revision: rev, ..env }).collect())
    }

    pub async fn get(&self, user: &UserName, name: &EnvName) -> Result<Env, EnvError> {
        let found: Option<(Env, u64)> = store::get_json(&*self.store, &keys::env(user, name.as_str())).await?;
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
        env.revision = store::put_json(&*self.store, &keys::env(user, name.as_str()), &env, Precondition::Revision(env.revision))
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EnvError::Conflict(name.to_string()),
                other => other.into(),
            })?;
        Ok(env)
    }

    /// A deploy succeeded: `release` is recorded (never over another release of the
    /// same revision), serves now, and `used` counts one more. Retries on concurrent
    /// writes to the env (a PATCH meanwhile) rather than losing either; a release
    /// recorded already by the same deploy (a retried write) is not recorded twice.
    pub async fn record_release(&self, user: &UserName, name: &EnvName, release: &Release) -> Result<Env, EnvError> {
        let key = keys::release(user, name.as_str(), release.revision);
        match store::put_json(&*self.store, &key, release, Precondition::Absent).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                let existing: Option<(Release, u64)> = store::get_json(&*self.store, &key).await?;
                if existing.as_ref().is_none_or(|(r, _)| r.deploy != release.deploy) {
                    return Err(EnvError::ReleaseTaken { env: name.to_string(), revision: release.revision });
                }
                let env = self.get(user, name).await?;
                if env.current.as_ref().is_some_and(|c| c.deploy == release.deploy) {
                    return Ok(env);
                }
            }
            Err(e) => return Err(e.into()),
        }
        loop {
            let mut env = self.get(user, name).await?;
            env.used += 1;
            env.current = Some(release.clone());
            env.updated_at = OffsetDateTime::now_utc();
            match store::put_json(&*self.store, &keys::env(user, name.as_str()), &env, Precondition::Revision(env.revision)).await {
                Ok(revision) => return Ok(Env { revision, ..env }),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// An env's releases, oldest first.
    pub async fn releases(&self, user: &UserName, name: &EnvName) -> Result<Vec<Release>, EnvError> {
        let found: Vec<(Release, u64)> = store::list_json(&*self.store, &keys::releases(user, name.as_str())).await?;
        Ok(found.into_iter().map(|(r, _)| r).collect())
    }

    pub async fn delete(&self, user: &UserName, name: &EnvName) -> Result<(), EnvError> {
        if self.store.delete(&keys::env(user, name.as_str()), Precondition::Any).await? {
            Ok(())
        } else {
            Err(EnvError::NotFound(name.to_string()))
        }
    }
}
