//! Deploys: a WAR, as a version, onto an env, by a strategy. Each is a durable record
//! advanced step by step and written after every step: queued → validating → building
//! → pushing → rolling-out (the strategy's current step) → succeeded, failed (with the
//! cause) or aborted. One deploy per env at a time, enforced by a leased lock in the
//! store, so two hosts sharing one etcd agree. A host that dies mid-deploy leaves its
//! lock to lapse; any host then resumes the rollout from its record, or fails it
//! cleanly when it cannot.
//!
//! This file is the facade users reach through the API; `driver` runs a deploy,
//! `rollout` is the strategy loop against a `target`, `record` the stored shapes.

mod driver;
mod error;
mod keys;
pub mod record;
mod rollout;
mod signals;
pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::Config;
use crate::domain::{Env, EnvName, Release, Violation};
use crate::envs::{keys as env_keys, Envs};
use crate::journal::{self, Journal};
use crate::images::{ImageRequest, Images};
use crate::jobs::{Lease, LEASE_TTL};
use crate::plugins::{Plugin, Plugins};
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;

use driver::{Begin, Run};
pub use error::DeployError;
pub use record::{
    DeployEvent, DeployFailure, DeployRecord, DeployRequest, DeployStatus, Milestone, Phase, RollbackRequest, Scale, StrategyStep, WorkloadReplicas,
};
pub use warship_rollout::{DESCRIPTION_MAX, MEMORY_MAX};
pub use target::{Change, Observed, Target, Targets};

pub struct Deploys {
    store: DynStore,
    config: Arc<Config>,
    plugins: Arc<Plugins>,
    envs: Envs,
    images: Arc<Images>,
    /// Where releases run; none when no cluster is configured.
    targets: Option<Arc<dyn Targets>>,
    /// Wakes a deploy this host runs when a signal for it arrives here.
    pokes: Mutex<HashMap<String, Arc<Notify>>>,
    /// Hears of every stored change of a deploy this host runs (the webhooks).
    listener: std::sync::OnceLock<Arc<dyn DeployListener>>,
}

/// Hears of a deploy's stored changes: `before` is what it was last told, `after` the
/// record as just stored. Called on the deploy's own task, so it must return at once
/// and never fail: whatever it does with the change runs on its own.
pub trait DeployListener: Send + Sync {
    fn changed(&self, user: &UserName, before: Phase, after: &DeployRecord);
}

/// A strategy as a deploy will run it.
struct Strategy {
    name: String,
    plugin: Arc<Plugin>,
    settings: String,
}

impl Deploys {
    pub fn new(
        store: DynStore,
        config: Arc<Config>,
        plugins: Arc<Plugins>,
        envs: Envs,
        images: Arc<Images>,
        targets: Option<Arc<dyn Targets>>,
    ) -> Arc<Self> {
        Arc::new(Self { store, config, plugins, envs, images, targets, pokes: Mutex::default(), listener: Default::default() })
    }

    /// Tells `listener` of every deploy's changes from now on (one listener per host).
    pub fn tell_changes_to(&self, listener: Arc<dyn DeployListener>) {
        if self.listener.set(listener).is_err() {
            tracing::warn!("deploys already tell their changes to a listener; the second one is ignored");
        }
    }

    fn listener(&self) -> Option<Arc<dyn DeployListener>> {
        self.listener.get().cloned()
    }

    /// The strategy plugin and its settings for this deploy, or what is wrong with them.
    async fn strategy(&self, name: Option<String>, overrides: &serde_json::Map<String, serde_json::Value>) -> Result<Strategy, DeployError> {
        let name = name.unwrap_or_else(|| self.config.deploys.default_strategy.clone());
        let Some(plugin) = self.plugins.strategy(&name).cloned() else {
            let known = self.plugins.names().get("strategy").cloned().unwrap_or_default().join(", ");
            return Err(DeployError::Invalid(vec![Violation::new(
                "strategy",
                "deploy.strategy.unknown",
                format!("there is no strategy {name:?}; this platform has: {known}"),
            )]));
        };
        let fixed: Vec<Violation> = plugin
            .fixed_keys(overrides)
            .into_iter()
            .map(|key| {
                Violation::new(
                    &format!("settings.{key}"),
                    "deploy.settings.fixed",
                    format!("{key} of strategy {name} is set by the platform's admin (platform.toml) and a deploy cannot change it; leave it out, or ask the admin to list it in the plugin's `overridable`"),
                )
            })
            .collect();
        if !fixed.is_empty() {
            return Err(DeployError::Invalid(fixed));
        }
        let (checked, overrides) = (plugin.clone(), overrides.clone());
        let settings = tokio::task::spawn_blocking(move || checked.settings_with(&overrides)).await.expect("plugin calls do not panic")?;
        match settings {
            Ok(settings) => Ok(Strategy { name, plugin, settings }),
            Err(problems) => Err(DeployError::Invalid(
                problems
                    .into_iter()
                    .map(|problem| {
                        let field = match problem.field.as_str() {
                            "" => "settings".to_owned(),
                            field => format!("settings.{field}"),
                        };
                        let advice = "GET /api/v1/plugins shows its settings schema";
                        Violation::new(&field, "deploy.settings.invalid", format!("strategy {name} refused these settings: {}; {advice}", problem.message))
                    })
                    .collect(),
            )),
        }
    }

    /// Checks the request (env, WAR, version, strategy, settings) and only then
    /// whether a cluster is there to deploy to; takes the env's lock and starts the
    /// deploy; returns its record (status `queued`) at once.
    pub async fn start(self: &Arc<Self>, user: &UserName, env_name: &EnvName, request: DeployRequest) -> Result<DeployRecord, DeployError> {
        self.envs.get(user, env_name).await?;
        let overrides = request.settings.clone().unwrap_or_default();
        let strategy = self.strategy(request.strategy.clone(), &overrides).await?;
        let prepared = self
            .images
            .prepare(user, ImageRequest { war: request.war.clone(), env: env_name.to_string(), version: request.version.clone() })
            .await?;
        if self.targets.is_none() {
            return Err(DeployError::NoCluster);
        }
        let (war, war_sha256) = (format!("{}/{}", prepared.war.app, prepared.war.file), prepared.war.sha256.clone());
        self.launch(user, env_name, strategy, Begin::Build(prepared), |record, _| {
            record.war = war;
            record.war_sha256 = war_sha256;
            record.version = request.version;
            Ok(())
        })
        .await
    }

    /// Brings back a recorded release by its digest, without building: a deploy like
    /// any other (its own revision, the strategy's rollout, history), of an old image.
    pub async fn rollback(self: &Arc<Self>, user: &UserName, env_name: &EnvName, request: RollbackRequest) -> Result<DeployRecord, DeployError> {
        let env = self.envs.get(user, env_name).await?;
        let releases = self.envs.releases(user, env_name).await?;
        // Checked here for a clear answer before anything is locked, and again under
        // the lock, against the env as it is then.
        rollback_target(&env, &releases, request.revision)?;
        let strategy = self.strategy(request.strategy.clone(), &serde_json::Map::new()).await?;
        if self.targets.is_none() {
            return Err(DeployError::NoCluster);
        }
        self.launch(user, env_name, strategy, Begin::Release, |record, env| {
            let target = rollback_target(env, &releases, request.revision)?;
            record.war = target.war;
            record.war_sha256 = target.war_sha256;
            record.version = target.version;
            record.image = Some(target.image);
            record.digest = Some(target.digest);
            record.rollback_of = Some(target.revision);
            Ok(())
        })
        .await
    }

    /// Takes the env's lock, then reads the env (so the revision follows the release
    /// that serves once the previous deploy is over), writes the deploy's first record
    /// (as `fill` completes it) and starts driving it.
    async fn launch(
        self: &Arc<Self>,
        user: &UserName,
        env_name: &EnvName,
        strategy: Strategy,
        begin: Begin,
        fill: impl FnOnce(&mut DeployRecord, &Env) -> Result<(), DeployError>,
    ) -> Result<DeployRecord, DeployError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lease = self.take_env_lock(user, env_name, &id).await?;
        let started = async {
            let env = self.envs.get(user, env_name).await?;
            // Read under the lock: the release serving once the previous deploy is over.
            // Releases are recorded only on success, so a failed deploy's revision is
            // used again by the next; a recorded release is never written twice.
            let stable = env.current.as_ref().map(|r| r.revision);
            let revision = stable.unwrap_or(0) + 1;
            let settings: serde_json::Value = serde_json::from_str(&strategy.settings).expect("settings are JSON");
            let mut record = DeployRecord::queued(id.clone(), env_name.to_string(), revision, stable, (strategy.name.clone(), settings), user.to_string());
            fill(&mut record, &env)?;
            let stored = lease.put_json(&keys::record(user, &id), &record, Precondition::Absent).await?;
            let active = env_keys::ActiveDeploy { user: user.clone(), env: env_name.to_string(), id: id.clone() };
            lease.put_json(&env_keys::active(user, env_name.as_str(), &id), &active, Precondition::Any).await?;
            let journal = Journal::open(&self.store, journal::prefix(user.as_str(), "deploy", &id), Some(lease.clone())).await?;
            journal.append(&DeployEvent::Record(Box::new(record.clone()))).await;
            Ok::<_, DeployError>((record, stored, Arc::new(journal)))
        };
        let (record, stored, journal) = match started.await {
            Ok(started) => started,
            Err(e) => {
                lease.release().await;
                return Err(e);
            }
        };
        tracing::info!(id = %record.id, %user, env = %env_name, strategy = %record.strategy, revision = record.revision, rollback_of = ?record.rollback_of, "deploy queued");
        let mut run = Run::new(user.clone(), env_name.clone(), record.clone(), stored, strategy.settings, Some(strategy.plugin), journal, lease, self.store.clone());
        run.listener = self.listener();
        let this = self.clone();
        tokio::spawn(async move { this.drive(run, begin).await });
        Ok(record)
    }

    /// The env's deploy lock, held by `id`. A deploy that just ended lets go of it a
    /// moment after its final record is written; a request in that moment waits for it
    /// rather than being told that a finished deploy runs.
    async fn take_env_lock(&self, user: &UserName, env_name: &EnvName, id: &str) -> Result<Arc<Lease>, DeployError> {
        let key = env_keys::lock(user, env_name.as_str());
        let waiting_since = std::time::Instant::now();
        loop {
            let holder = match Lease::take(&self.store, &key, id, LEASE_TTL).await {
                Ok(lease) => return Ok(lease),
                Err(StoreError::Locked { holder, .. }) => holder,
                Err(other) => return Err(other.into()),
            };
            if holder.starts_with(env_keys::DELETING) {
                return Err(DeployError::Invalid(vec![Violation::new(
                    "env",
                    "deploy.env.deleting",
                    format!("env {env_name} is being deleted; create it again once it is gone"),
                )]));
            }
            let ended = waiting_since.elapsed() < env_keys::ENDING_GRACE && self.get(user, &holder).await.is_ok_and(|r| r.status.is_final());
            if !ended {
                return Err(DeployError::Running { env: env_name.to_string(), running: holder });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets a rollout that waits for promotion go on. Refused unless it waits for one.
    pub async fn promote(&self, user: &UserName, id: &str) -> Result<DeployRecord, DeployError> {
        let record = self.get(user, id).await?;
        if record.status.is_final() {
            return Err(DeployError::Finished { id: id.to_owned(), status: record.status });
        }
        let step = record.step.as_ref().filter(|s| record.status == DeployStatus::RollingOut && s.action == "await-promotion");
        let Some(step) = step else {
            let now = match (&record.step, record.status) {
                (Some(step), DeployStatus::RollingOut) => format!("it is at step {} ({})", step.index, step.description),
                (_, status) => format!("it is {}", record::status_words(status)),
            };
            return Err(DeployError::NotAwaitingPromotion { id: id.to_owned(), now });
        };
        self.signal(user, id, signals::PROMOTE, Some(step.index)).await?;
        tracing::info!(%id, %user, step = step.index, "deploy promoted");
        Ok(record)
    }

    /// Stops a deploy: before its rollout nothing reaches the cluster; during it the
    /// release that served before serves alone again and the new one is removed.
    pub async fn abort(&self, user: &UserName, id: &str) -> Result<DeployRecord, DeployError> {
        let record = self.get(user, id).await?;
        if record.status.is_final() {
            return Err(DeployError::Finished { id: id.to_owned(), status: record.status });
        }
        self.signal(user, id, signals::ABORT, None).await?;
        tracing::info!(%id, %user, "deploy abort asked");
        Ok(record)
    }

    async fn signal(&self, user: &UserName, id: &str, kind: &str, step: Option<u32>) -> Result<(), StoreError> {
        signals::send(&self.store, user, id, kind, step).await?;
        if let Some(poke) = self.pokes.lock().expect("pokes lock").get(id) {
            poke.notify_one();
        }
        Ok(())
    }

    /// The deploy an id names, or an unambiguous start of one (at least 4 characters):
    /// what a person copies from a listing.
    pub async fn resolve(&self, user: &UserName, id: &str) -> Result<String, DeployError> {
        const FULL: usize = 32;
        let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
        if id.len() == FULL || id.len() < 4 || id.len() > FULL || !hex(id) {
            return Ok(id.to_owned());
        }
        let records = keys::records(user);
        let ids: Vec<String> =
            self.store.list(&keys::record(user, id)).await?.into_iter().filter_map(|e| e.key.strip_prefix(&records).map(str::to_owned)).collect();
        match ids.as_slice() {
            [] => Err(DeployError::NotFound(id.to_owned())),
            [one] => Ok(one.clone()),
            _ => Err(DeployError::Ambiguous { prefix: id.to_owned(), ids }),
        }
    }

    /// The deploy in progress on an env, for the verbs addressed by env.
    pub async fn running(&self, user: &UserName, env: &EnvName) -> Result<String, DeployError> {
        self.envs.get(user, env).await?;
        let active = self.store.list(&env_keys::active_of_env(user, env.as_str())).await?;
        active
            .iter()
            .filter_map(|entry| serde_json::from_slice::<env_keys::ActiveDeploy>(&entry.value).ok())
            .map(|a| a.id)
            .next()
            .ok_or_else(|| DeployError::NoneRunning(env.to_string()))
    }

    pub async fn get(&self, user: &UserName, id: &str) -> Result<DeployRecord, DeployError> {
        store::get_json(&*self.store, &keys::record(user, id)).await?.map(|(r, _)| r).ok_or_else(|| DeployError::NotFound(id.to_owned()))
    }

    /// An env's deploys, newest first.
    pub async fn list(&self, user: &UserName, env: &str) -> Result<Vec<DeployRecord>, DeployError> {
        let mut all: Vec<DeployRecord> =
            store::list_json(&*self.store, &keys::records(user)).await?.into_iter().map(|(r, _)| r).filter(|r: &DeployRecord| r.env == env).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(all)
    }

    /// Keeps the newest `deploys.keep_per_env` deploys of an env (the running one
    /// among them); older ones go, with their signals.
    async fn prune(&self, user: &UserName, env: &str) -> Result<(), DeployError> {
        let keep = self.config.deploys.keep_per_env;
        for old in self.list(user, env).await?.into_iter().skip(keep).filter(|r| r.status.is_final()) {
            journal::remove(&self.store, &journal::prefix(user.as_str(), "deploy", &old.id)).await?;
            self.store.delete(&keys::record(user, &old.id), Precondition::Any).await?;
            signals::clear(&self.store, user, &old.id).await;
        }
        Ok(())
    }

    /// A deploy's events after `after` (0: from its start), each with its sequence
    /// number, then live ones as whichever host runs it appends them, through its end.
    pub async fn events(
        &self,
        user: &UserName,
        id: &str,
        after: u64,
    ) -> Result<impl futures_util::Stream<Item = Result<(u64, DeployEvent), StoreError>> + Send + 'static, DeployError> {
        self.get(user, id).await?;
        Ok(journal::follow(&self.store, journal::prefix(user.as_str(), "deploy", id), after, DeployEvent::is_end).await?)
    }
}

/// The release a rollback brings back: the one asked for, or the one before the
/// release serving now.
fn rollback_target(env: &Env, releases: &[Release], wanted: Option<u32>) -> Result<Release, DeployError> {
    let env_name = &env.spec.name;
    let invalid = |code: &str, message: String| DeployError::Invalid(vec![Violation::new("revision", code, message)]);
    let Some(current) = env.current.as_ref() else {
        return Err(invalid("rollback.no_release", format!("env {env_name} has no release yet; deploy one first")));
    };
    let target = match wanted {
        Some(wanted) => releases.iter().find(|r| r.revision == wanted).cloned().ok_or_else(|| {
            let known = releases.iter().map(|r| r.revision.to_string()).collect::<Vec<_>>().join(", ");
            invalid("rollback.revision.unknown", format!("env {env_name} has no release {wanted}; its releases are: {known}"))
        })?,
        None => releases.iter().rev().find(|r| r.revision < current.revision).cloned().ok_or_else(|| {
            invalid("rollback.revision.none_before", format!("release {} is env {env_name}'s first; there is none before it to go back to", current.revision))
        })?,
    };
    if target.revision == current.revision {
        return Err(invalid("rollback.revision.current", format!("release {} already serves env {env_name}", target.revision)));
    }
    Ok(target)
}

#[cfg(test)]
mod tests;
