//! Deploys: a WAR, as a version, onto an env, by a strategy. Each is a durable record
//! advanced step by step and written after every step: queued → validating → building
//! → pushing → rolling-out (the strategy's current step) → succeeded, failed (with the
//! cause) or aborted. One deploy per env at a time, enforced by a leased lock in the
//! store, so two hosts sharing one etcd agree. A host that dies mid-deploy leaves its
//! lock to lapse; any host then resumes the rollout from its record, or fails it as
//! interrupted when it died before the image was built.
//!
//! The rollout loop: observe the env's workloads from the watch caches, ask the
//! strategy plugin for the next action, apply it, persist the plugin's opaque memory,
//! repeat until done, aborted, or past the env's deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use utoipa::ToSchema;

use crate::cluster::diagnosis::{self, Cause};
use crate::cluster::{Cluster, ClusterError, EnvObjects, ReleaseSpec};
use crate::config::Config;
pub use crate::envs::Release;
use crate::envs::{Env, EnvError, EnvName, Envs};
use crate::events::EventLog;
use crate::image::BuildEvent;
use crate::images::{ImageError, ImageEvent, ImageRecord, ImageRequest, ImageStatus, Images, PreparedBuild};
use crate::plugins::types::{Action, RolloutState, Traffic, Workload};
use crate::plugins::{Plugin, PluginError, Plugins};
use crate::store::{self, DynStore, LockLease, Precondition, StoreError};
use crate::users::UserName;
use crate::validation::Violation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStatus {
    Queued,
    Validating,
    Building,
    Pushing,
    RollingOut,
    Succeeded,
    Failed,
    Aborted,
}

impl DeployStatus {
    pub fn is_final(self) -> bool {
        matches!(self, DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Aborted)
    }
}

/// Which release the env's Service sends traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrafficTo {
    Stable,
    Candidate,
    Both,
}

impl From<TrafficTo> for Traffic {
    fn from(t: TrafficTo) -> Self {
        match t {
            TrafficTo::Stable => Traffic::Stable,
            TrafficTo::Candidate => Traffic::Candidate,
            TrafficTo::Both => Traffic::Both,
        }
    }
}

impl From<Traffic> for TrafficTo {
    fn from(t: Traffic) -> Self {
        match t {
            Traffic::Stable => TrafficTo::Stable,
            Traffic::Candidate => TrafficTo::Candidate,
            Traffic::Both => TrafficTo::Both,
        }
    }
}

/// Where the strategy is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StrategyStep {
    pub index: u32,
    /// The action it answered last: `scale`, `wait-ready`, `await-promotion`, …
    pub action: String,
    /// What it is doing, in its own words.
    pub description: String,
    /// The plugin's opaque state, handed back on the next call.
    pub memory: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
}

/// Replicas warship asked of each workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Scale {
    pub stable: u32,
    pub candidate: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployFailure {
    /// Stable code: `deploy.invalid`, `registry.unreachable`, `rollout.deadline`, `rollout.aborted`,
    /// `deploy.aborted`, `deploy.interrupted`, …
    pub code: String,
    pub message: String,
    /// What kept the new pods from being ready, when a rollout failed on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// One point in a deploy's life: a status reached, or a strategy step begun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Milestone {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub status: DeployStatus,
    /// The strategy's step index and action, while rolling out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The step's own words, or the failure's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// How many milestones a record keeps; a rollout with more keeps its first and latest.
const MILESTONES_KEPT: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployRecord {
    pub id: String,
    pub env: String,
    /// `app/file` of the WAR.
    pub war: String,
    pub war_sha256: String,
    pub version: String,
    pub strategy: String,
    /// The strategy's settings for this deploy: the admin's, with the request's over them.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Who asked for it.
    pub by: String,
    pub status: DeployStatus,
    /// The release this deploy creates.
    pub revision: u32,
    /// The release serving when it started; none on a first deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_build: Option<String>,
    /// What the pods run, pinned by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub traffic: TrafficTo,
    pub scale: Scale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StrategyStep>,
    /// Someone promoted the rollout during its current step.
    #[serde(default)]
    pub promoted: bool,
    /// The release this deploy brings back, for a rollback (no image is built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u32>,
    /// Time the rollout spent waiting for Kubernetes to make pods ready (or stop them);
    /// the rest of the deploy's time is warship's own (build, push, API calls).
    #[serde(default)]
    pub waited_for_kubernetes_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DeployFailure>,
    /// What happened so far, oldest first, so a client connecting late (or to another
    /// host) can see how the deploy got where it is.
    #[serde(default)]
    pub history: Vec<Milestone>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

/// What a client asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// `app/file.war`, or just `file.war` when one app has it.
    pub war: String,
    /// The image tag, e.g. `1.0.3`.
    pub version: String,
    /// A strategy plugin's name; the platform's default when absent.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Settings laid over the admin's settings of the strategy, e.g. `{"max-surge": 2}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Asks a rollback: back to a recorded release, by its digest, without building.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The release to bring back; by default the one before the release serving now.
    #[serde(default)]
    pub revision: Option<u32>,
    /// A strategy plugin's name; the platform's default when absent.
    #[serde(default)]
    pub strategy: Option<String>,
}

/// What watchers of a deploy see.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeployEvent {
    /// The record after each persisted step.
    Record(Box<DeployRecord>),
    /// Build and push progress.
    Build(BuildEvent),
    /// Replicas ready of each workload, as observed.
    Replicas { stable: Option<WorkloadReplicas>, candidate: WorkloadReplicas },
}

/// A workload as events show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkloadReplicas {
    pub revision: u32,
    pub replicas: u32,
    pub ready: u32,
    pub restarts: u32,
}

impl WorkloadReplicas {
    fn of(revision: u32, w: &Workload) -> Self {
        Self { revision, replicas: w.replicas, ready: w.ready, restarts: w.restarts }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the deploy request is invalid")]
    Invalid(Vec<Violation>),
    #[error("deploy {0} not found")]
    NotFound(String),
    #[error("deploy {running} is running on env {env}")]
    Running { env: String, running: String },
    #[error("deploy {id} already ended: {status:?}")]
    Finished { id: String, status: DeployStatus },
    #[error("deploy {id} is not waiting for promotion: {now}")]
    NotAwaitingPromotion { id: String, now: String },
    #[error("env {env} has no pod {pod:?}")]
    NoSuchPod { env: String, pod: String, pods: Vec<String> },
    #[error("env {0} has no pods")]
    NoPods(String),
    #[error("Kubernetes could not give the log of pod {pod}: {source}")]
    Logs { pod: String, source: ClusterError },
    #[error("no Kubernetes cluster is configured")]
    NoCluster,
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl From<ImageError> for DeployError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Invalid(v) => DeployError::Invalid(v),
            ImageError::Env(e) => DeployError::Env(e),
            ImageError::War(e) => DeployError::Invalid(vec![Violation::new("war", "deploy.war.not_found", e.to_string())]),
            ImageError::Plugin(e) => DeployError::Plugin(e),
            ImageError::Store(e) => DeployError::Store(e),
            ImageError::NotFound(id) => DeployError::NotFound(id),
            ImageError::Failed(f) => DeployError::Invalid(vec![Violation::new("war", &f.code, f.message)]),
        }
    }
}

/// How long a deploy's lock lives without renewal.
const LOCK_TTL: Duration = Duration::from_secs(15);
/// How often the rollout loop looks again when nothing changed.
const TICK: Duration = Duration::from_secs(1);
/// How often a host looks for deploys whose host stopped.
const RESUME_EVERY: Duration = Duration::from_secs(10);

fn key(user: &UserName, id: &str) -> String {
    format!("u/{user}/deploys/{id}")
}
fn release_prefix(user: &UserName, env: &str) -> String {
    format!("u/{user}/releases/{env}/")
}
fn release_key(user: &UserName, env: &str, revision: u32) -> String {
    format!("{}{revision:010}", release_prefix(user, env))
}
/// The per-env lock; its holder is the running deploy's id.
fn lock_key(user: &UserName, env: &str) -> String {
    format!("locks/deploy/{user}/{env}")
}
/// The env lock's holder while an env is deleted (deploys hold it by their id).
const DELETING: &str = "deleting-";
/// Deploys not yet final, so any host can find one whose host died, and a status
/// read can name the deploy in progress without touching the lock.
const ACTIVE: &str = "deploys/active/";
fn active_key(user: &UserName, env: &str, id: &str) -> String {
    format!("{ACTIVE}{user}/{env}/{id}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Active {
    user: UserName,
    env: String,
    id: String,
}

/// A user's request to a running deploy (promote, abort), stored beside it so that
/// whichever host runs the deploy sees it, and one that takes it over after a crash too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signal {
    by: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// For a promotion: the strategy step it promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Signals {
    promote: Option<Signal>,
    abort: Option<Signal>,
}

const PROMOTE: &str = "promote";
const ABORT: &str = "abort";
/// How often a running deploy looks for signals sent through another host.
const SIGNAL_POLL: Duration = Duration::from_secs(1);
fn signals_prefix(user: &UserName, id: &str) -> String {
    format!("u/{user}/deploy-signals/{id}/")
}
/// How many ended deploys' full event logs a host keeps for replay.
const ENDED_LOGS_KEPT: usize = 128;

pub struct Deploys {
    store: DynStore,
    config: Arc<Config>,
    plugins: Arc<Plugins>,
    envs: Envs,
    images: Arc<Images>,
    cluster: Option<Arc<Cluster>>,
    /// Event logs of the deploys this host runs, and of the last ones it ended.
    logs: Mutex<EventLogs>,
    /// Wakes a deploy this host runs when a signal for it arrives here.
    pokes: Mutex<HashMap<String, Arc<Notify>>>,
}

#[derive(Default)]
struct EventLogs {
    by_id: HashMap<String, Arc<EventLog<DeployEvent>>>,
    ended: VecDeque<String>,
}

/// One running deploy: its record, where it is stored, what it needs.
struct Run {
    user: UserName,
    env_name: EnvName,
    record: DeployRecord,
    settings: String,
    plugin: Arc<Plugin>,
    log: Arc<EventLog<DeployEvent>>,
    /// Promote and abort requests, as the deploy's driver sees them.
    signals: watch::Receiver<Signals>,
}

impl Run {
    fn new(user: UserName, env_name: EnvName, record: DeployRecord, settings: String, plugin: Arc<Plugin>, log: Arc<EventLog<DeployEvent>>) -> Self {
        // The driver replaces this with the live channel before anything reads it.
        let signals = watch::channel(Signals::default()).1;
        Self { user, env_name, record, settings, plugin, log, signals }
    }
}

/// Where a run of the pipeline begins.
enum Begin {
    /// From validating, with the build the request checked.
    Build(PreparedBuild),
    /// A rollback: the image exists, straight to rolling out.
    Release,
    /// A rollout resumed from its record.
    Rollout,
}

enum Ending {
    Succeeded,
    Failed(DeployFailure),
    Aborted(DeployFailure),
}

impl From<ClusterError> for DeployFailure {
    fn from(e: ClusterError) -> Self {
        failure(e.code(), e.to_string())
    }
}

impl From<StoreError> for DeployFailure {
    fn from(e: StoreError) -> Self {
        failure("store.unavailable", format!("{e}; the deploy could not go on"))
    }
}

fn failure(code: &str, message: impl Into<String>) -> DeployFailure {
    DeployFailure { code: code.into(), message: message.into(), cause: None }
}

impl Deploys {
    pub fn new(
        store: DynStore,
        config: Arc<Config>,
        plugins: Arc<Plugins>,
        envs: Envs,
        images: Arc<Images>,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        Arc::new(Self { store, config, plugins, envs, images, cluster, logs: Mutex::default(), pokes: Mutex::default() })
    }

    fn cluster_or_err(&self) -> Result<&Arc<Cluster>, DeployError> {
        self.cluster.as_ref().ok_or(DeployError::NoCluster)
    }

    /// The strategy plugin and its settings for this deploy, or what is wrong with them.
    async fn strategy(&self, name: &str, overrides: &serde_json::Map<String, serde_json::Value>) -> Result<(Arc<Plugin>, String), DeployError> {
        let Some(plugin) = self.plugins.strategy(name).cloned() else {
            let known = self.plugins.names().get("strategy").cloned().unwrap_or_default().join(", ");
            return Err(DeployError::Invalid(vec![Violation::new(
                "strategy",
                "deploy.strategy.unknown",
                format!("there is no strategy {name:?}; this platform has: {known}"),
            )]));
        };
        let (checked, overrides) = (plugin.clone(), overrides.clone());
        let settings = tokio::task::spawn_blocking(move || checked.settings_with(&overrides)).await.expect("plugin calls do not panic")?;
        match settings {
            Ok(settings) => Ok((plugin, settings)),
            Err(message) => Err(DeployError::Invalid(vec![Violation::new(
                "settings",
                "deploy.settings.invalid",
                format!("strategy {name} refused these settings: {message}"),
            )])),
        }
    }

    /// Checks the request, takes the env's lock and starts the deploy; returns its
    /// record (status `queued`) at once.
    pub async fn start(self: &Arc<Self>, user: &UserName, env_name: &EnvName, request: DeployRequest) -> Result<DeployRecord, DeployError> {
        self.cluster_or_err()?;
        let env = self.envs.get(user, env_name).await?;
        let strategy = request.strategy.clone().unwrap_or_else(|| self.config.deploys.default_strategy.clone());
        let overrides = request.settings.clone().unwrap_or_default();
        let (plugin, settings) = self.strategy(&strategy, &overrides).await?;
        let prepared = self
            .images
            .prepare(user, ImageRequest { war: request.war.clone(), env: env_name.to_string(), version: request.version.clone() })
            .await?;
        let (war, war_sha256) = (format!("{}/{}", prepared.war.app, prepared.war.file), prepared.war.sha256.clone());
        self.launch(user, env_name, &env, (strategy, plugin, settings), Begin::Build(prepared), |record| {
            record.war = war;
            record.war_sha256 = war_sha256;
            record.version = request.version;
        })
        .await
    }

    /// Brings back a recorded release by its digest, without building: a deploy like
    /// any other (its own revision, the strategy's rollout, history), of an old image.
    pub async fn rollback(self: &Arc<Self>, user: &UserName, env_name: &EnvName, request: RollbackRequest) -> Result<DeployRecord, DeployError> {
        self.cluster_or_err()?;
        let env = self.envs.get(user, env_name).await?;
        let invalid = |code: &str, message: String| DeployError::Invalid(vec![Violation::new("revision", code, message)]);
        let Some(current) = env.current.clone() else {
            return Err(invalid("rollback.no_release", format!("env {env_name} has no release yet; deploy one first")));
        };
        let mut releases: Vec<Release> =
            store::list_json(&*self.store, &release_prefix(user, env_name.as_str())).await?.into_iter().map(|(r, _)| r).collect();
        releases.sort_by_key(|r| r.revision);
        let target = match request.revision {
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
        let strategy = request.strategy.clone().unwrap_or_else(|| self.config.deploys.default_strategy.clone());
        let (plugin, settings) = self.strategy(&strategy, &serde_json::Map::new()).await?;
        self.launch(user, env_name, &env, (strategy, plugin, settings), Begin::Release, |record| {
            record.war = target.war;
            record.war_sha256 = target.war_sha256;
            record.version = target.version;
            record.image = Some(target.image);
            record.digest = Some(target.digest);
            record.rollback_of = Some(target.revision);
        })
        .await
    }

    /// Takes the env's lock, writes the deploy's first record (as `fill` completes it)
    /// and starts driving it.
    async fn launch(
        self: &Arc<Self>,
        user: &UserName,
        env_name: &EnvName,
        env: &Env,
        (strategy, plugin, settings): (String, Arc<Plugin>, String),
        begin: Begin,
        fill: impl FnOnce(&mut DeployRecord),
    ) -> Result<DeployRecord, DeployError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lease = self.take_env_lock(user, env_name, &id).await?;
        // Releases are recorded only on success, and the latest is the env's current.
        let revision = env.current.as_ref().map_or(1, |r| r.revision + 1);
        let now = OffsetDateTime::now_utc();
        let stable = env.current.as_ref().map(|r| r.revision);
        let mut record = DeployRecord {
            id: id.clone(),
            env: env_name.to_string(),
            war: String::new(),
            war_sha256: String::new(),
            version: String::new(),
            strategy,
            settings: serde_json::from_str(&settings).expect("settings are JSON"),
            by: user.to_string(),
            status: DeployStatus::Queued,
            revision,
            stable,
            image_build: None,
            image: None,
            digest: None,
            traffic: if stable.is_some() { TrafficTo::Stable } else { TrafficTo::Candidate },
            scale: Scale::default(),
            step: None,
            promoted: false,
            rollback_of: None,
            waited_for_kubernetes_ms: 0,
            error: None,
            history: Vec::new(),
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        fill(&mut record);
        note_milestone(&mut record);
        let started = async {
            store::put_json(&*self.store, &key(user, &id), &record, Precondition::Absent).await?;
            let active = Active { user: user.clone(), env: env_name.to_string(), id: id.clone() };
            store::put_json(&*self.store, &active_key(user, env_name.as_str(), &id), &active, Precondition::Any).await?;
            Ok::<_, DeployError>(())
        };
        if let Err(e) = started.await {
            let _ = self.store.release_lock(&lease).await;
            return Err(e);
        }
        tracing::info!(id = %record.id, %user, env = %env_name, strategy = %record.strategy, revision = record.revision, rollback_of = ?record.rollback_of, "deploy queued");
        let log = self.log_for(&id);
        log.push(DeployEvent::Record(Box::new(record.clone())));
        let run = Run::new(user.clone(), env_name.clone(), record.clone(), settings, plugin, log);
        let this = self.clone();
        tokio::spawn(async move { this.drive(run, lease, begin).await });
        Ok(record)
    }

    /// The env's deploy lock, held by `id`. A deploy that just ended lets go of it a
    /// moment after its final record is written; a request in that moment waits for it
    /// rather than being told that a finished deploy runs.
    async fn take_env_lock(&self, user: &UserName, env_name: &EnvName, id: &str) -> Result<LockLease, DeployError> {
        let key = lock_key(user, env_name.as_str());
        let mut tries = 0;
        loop {
            let holder = match self.store.try_lock(&key, id, LOCK_TTL).await {
                Ok(lease) => return Ok(lease),
                Err(StoreError::Locked { holder, .. }) => holder,
                Err(other) => return Err(other.into()),
            };
            if holder.starts_with(DELETING) {
                return Err(DeployError::Invalid(vec![Violation::new(
                    "env",
                    "deploy.env.deleting",
                    format!("env {env_name} is being deleted; create it again once it is gone"),
                )]));
            }
            tries += 1;
            let ended = tries < 40 && self.get(user, &holder).await.is_ok_and(|r| r.status.is_final());
            if !ended {
                return Err(DeployError::Running { env: env_name.to_string(), running: holder });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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
                (_, status) => format!("it is {}", status_words(status)),
            };
            return Err(DeployError::NotAwaitingPromotion { id: id.to_owned(), now });
        };
        self.signal(user, id, PROMOTE, Some(step.index)).await?;
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
        self.signal(user, id, ABORT, None).await?;
        tracing::info!(%id, %user, "deploy abort asked");
        Ok(record)
    }

    async fn signal(&self, user: &UserName, id: &str, kind: &str, step: Option<u32>) -> Result<(), StoreError> {
        let signal = Signal { by: user.to_string(), at: OffsetDateTime::now_utc(), step };
        store::put_json(&*self.store, &format!("{}{kind}", signals_prefix(user, id)), &signal, Precondition::Any).await?;
        if let Some(poke) = self.pokes.lock().expect("pokes lock").get(id) {
            poke.notify_one();
        }
        Ok(())
    }

    /// Keeps `signals` up to date with what is stored for the deploy: at once when this
    /// host receives one, and every second for those sent through another host.
    async fn watch_signals(&self, user: &UserName, id: &str, signals: watch::Sender<Signals>, poke: Arc<Notify>) -> std::convert::Infallible {
        let prefix = signals_prefix(user, id);
        loop {
            match self.store.list(&prefix).await {
                Ok(entries) => {
                    let read = |kind: &str| {
                        let key = format!("{prefix}{kind}");
                        entries.iter().find(|e| e.key == key).and_then(|e| serde_json::from_slice::<Signal>(&e.value).ok())
                    };
                    let now = Signals { promote: read(PROMOTE), abort: read(ABORT) };
                    signals.send_if_modified(|seen| std::mem::replace(seen, now.clone()) != now);
                }
                Err(e) => tracing::warn!(%id, error = %e, "could not read the deploy's signals"),
            }
            let _ = tokio::time::timeout(SIGNAL_POLL, poke.notified()).await;
        }
    }

    fn log_for(&self, id: &str) -> Arc<EventLog<DeployEvent>> {
        self.logs.lock().expect("logs lock").by_id.entry(id.to_owned()).or_insert_with(EventLog::new).clone()
    }

    /// Tells watchers the record as it ended, once the env is free again, and closes
    /// the log, kept for replay among the last few.
    fn retire_log(&self, run: &Run) {
        if run.record.status.is_final() {
            run.log.push(DeployEvent::Record(Box::new(run.record.clone())));
        }
        run.log.close();
        let mut logs = self.logs.lock().expect("logs lock");
        logs.ended.push_back(run.record.id.clone());
        while logs.ended.len() > ENDED_LOGS_KEPT {
            if let Some(old) = logs.ended.pop_front() {
                logs.by_id.remove(&old);
            }
        }
    }

    /// Runs a deploy to its end under its lease, renewing it; a lost lease (another
    /// host judged this one dead) stops it without writing anything more. An abort
    /// asked meanwhile cuts the pipeline short wherever it is.
    async fn drive(self: Arc<Self>, mut run: Run, lease: LockLease, begin: Begin) {
        let (id, user) = (run.record.id.clone(), run.user.clone());
        let poke = Arc::new(Notify::new());
        self.pokes.lock().expect("pokes lock").insert(id.clone(), poke.clone());
        let (signals_tx, signals) = watch::channel(Signals::default());
        run.signals = signals.clone();

        enum Stop {
            Ended(Ending),
            Abort(Signal),
            LostLock(StoreError),
        }
        let stop = tokio::select! {
            ending = self.pipeline(&mut run, begin) => Stop::Ended(ending),
            signal = abort_asked(signals) => Stop::Abort(signal),
            lost = store::hold_lock(&*self.store, &lease) => Stop::LostLock(lost),
            never = self.watch_signals(&user, &id, signals_tx, poke) => match never {},
        };
        let ending = match stop {
            Stop::Ended(ending) => Some(ending),
            Stop::Abort(signal) => tokio::select! {
                ending = self.aborted(&mut run, signal) => Some(ending),
                lost = store::hold_lock(&*self.store, &lease) => {
                    tracing::error!(%id, error = %lost, "lost the deploy's lock while aborting it; another host carries it on");
                    None
                }
            },
            Stop::LostLock(lost) => {
                tracing::error!(%id, error = %lost, "lost the deploy's lock; another host carries it on");
                None
            }
        };
        if let Some(ending) = ending {
            self.finish(&mut run, ending).await;
            self.forget(&run).await;
        }
        let _ = self.store.release_lock(&lease).await;
        self.pokes.lock().expect("pokes lock").remove(&id);
        self.retire_log(&run);
    }

    /// Drops an ended deploy from the active index, and its signals.
    async fn forget(&self, run: &Run) {
        let _ = self.store.delete(&active_key(&run.user, &run.record.env, &run.record.id), Precondition::Any).await;
        for kind in [PROMOTE, ABORT] {
            let _ = self.store.delete(&format!("{}{kind}", signals_prefix(&run.user, &run.record.id)), Precondition::Any).await;
        }
    }

    /// Ends a deploy a user aborted: during the rollout the previous release is put back.
    async fn aborted(&self, run: &mut Run, signal: Signal) -> Ending {
        let who = signal.by;
        if run.record.status != DeployStatus::RollingOut {
            let message = format!("aborted by {who} while {}; nothing was rolled out", status_words(run.record.status));
            return Ending::Aborted(failure("deploy.aborted", message));
        }
        let Some(cluster) = self.cluster.clone() else {
            return Ending::Aborted(failure("deploy.aborted", format!("aborted by {who}")));
        };
        let desired = self.envs.get(&run.user, &run.env_name).await.map_or(run.record.scale.stable, |e| e.spec.replicas);
        match self.restore(&cluster, run, desired).await {
            Ok(()) => {
                let now = match run.record.stable {
                    Some(stable) => format!("release {stable} serves alone again"),
                    None => "the new release was removed".to_owned(),
                };
                Ending::Aborted(failure("deploy.aborted", format!("aborted by {who} during the rollout; {now}")))
            }
            Err(e) => Ending::Failed(failure(e.code(), format!("aborted by {who}, but putting the previous release back failed: {e}"))),
        }
    }

    async fn save(&self, run: &mut Run) -> Result<(), StoreError> {
        self.persist(run).await?;
        run.log.push(DeployEvent::Record(Box::new(run.record.clone())));
        Ok(())
    }

    /// Writes the record without telling watchers (the final one is told once the env
    /// is free for the next deploy).
    async fn persist(&self, run: &mut Run) -> Result<(), StoreError> {
        run.record.updated_at = OffsetDateTime::now_utc();
        note_milestone(&mut run.record);
        store::put_json(&*self.store, &key(&run.user, &run.record.id), &run.record, Precondition::Any).await.map(drop)
    }

    async fn set_status(&self, run: &mut Run, status: DeployStatus) -> Result<(), Ending> {
        run.record.status = status;
        tracing::info!(id = %run.record.id, status = ?status, "deploy step");
        self.save(run).await.map_err(|e| Ending::Failed(failure("store.unavailable", e.to_string())))
    }

    /// Everything from validating to the rollout's end.
    async fn pipeline(&self, run: &mut Run, begin: Begin) -> Ending {
        match begin {
            Begin::Build(prepared) => {
                if let Err(ending) = self.build(run, prepared).await {
                    return ending;
                }
            }
            Begin::Release => {}
            Begin::Rollout => return self.roll_out(run).await,
        }
        if let Err(ending) = self.set_status(run, DeployStatus::RollingOut).await {
            return ending;
        }
        self.roll_out(run).await
    }

    async fn build(&self, run: &mut Run, prepared: PreparedBuild) -> Result<(), Ending> {
        // The validator plugins ran on the request, before it was accepted, so a refused
        // deploy leaves no record; this step records that they passed.
        self.set_status(run, DeployStatus::Validating).await?;
        self.set_status(run, DeployStatus::Building).await?;
        let image = self.images.start(&run.user, prepared).await.map_err(|e| Ending::Failed(build_failure(e)))?;
        run.record.image_build = Some(image.id.clone());
        self.save(run).await.map_err(|e| Ending::Failed(failure("store.unavailable", e.to_string())))?;
        let events = self.images.events(&run.user, &image.id).await.map_err(|e| Ending::Failed(build_failure(e)))?;
        let mut events = std::pin::pin!(events.follow());
        let mut built: Option<ImageRecord> = None;
        while let Some(event) = events.next().await {
            match event {
                ImageEvent::Progress(progress) => {
                    let pushing = matches!(&progress, BuildEvent::Bytes { .. })
                        || matches!(&progress, BuildEvent::Step { step, .. } if ["layer", "config", "manifest", "push"].contains(&step.as_str()));
                    if pushing && run.record.status == DeployStatus::Building {
                        self.set_status(run, DeployStatus::Pushing).await?;
                    }
                    run.log.push(DeployEvent::Build(progress));
                }
                ImageEvent::Finished(record) => built = Some(record),
            }
        }
        let built = match built {
            Some(record) => record,
            None => self.images.get(&run.user, &image.id).await.map_err(|e| Ending::Failed(build_failure(e)))?,
        };
        match (built.status, built.image, built.digest) {
            (ImageStatus::Built, Some(image), Some(digest)) => {
                run.record.image = Some(image);
                run.record.digest = Some(digest);
                Ok(())
            }
            _ => {
                let cause = built.error.map_or_else(|| failure("build.failed", "the image build did not finish"), |e| failure(&e.code, e.message));
                Err(Ending::Failed(cause))
            }
        }
    }

    fn release_spec(&self, run: &Run) -> ReleaseSpec {
        ReleaseSpec {
            revision: run.record.revision,
            image: run.record.image.clone().unwrap_or_default(),
            version: run.record.version.clone(),
            war_sha256: run.record.war_sha256.clone(),
            deploy_id: run.record.id.clone(),
        }
    }

    /// The strategy loop. When Kubernetes or the store fails under it, the previous
    /// release is put back as far as they let us.
    async fn roll_out(&self, run: &mut Run) -> Ending {
        let Some(cluster) = self.cluster.clone() else {
            return Ending::Failed(failure("kubernetes.not_configured", DeployError::NoCluster.to_string()));
        };
        match self.roll(&cluster, run).await {
            Ok(ending) => ending,
            Err(cause) => {
                let desired = self.envs.get(&run.user, &run.env_name).await.map_or(run.record.scale.stable, |e| e.spec.replicas);
                if let Err(e) = self.restore(&cluster, run, desired).await {
                    tracing::error!(id = %run.record.id, error = %e, "could not restore the previous release");
                }
                Ending::Failed(cause)
            }
        }
    }

    async fn roll(&self, cluster: &Cluster, run: &mut Run) -> Result<Ending, DeployFailure> {
        let env = match self.envs.get(&run.user, &run.env_name).await {
            Ok(env) => env,
            Err(e) => return Ok(Ending::Failed(failure("env.unavailable", e.to_string()))),
        };
        let deadline = Duration::from_secs(env.spec.rollout_deadline_secs.unwrap_or(self.config.deploys.rollout_deadline_secs));
        tokio::time::timeout(Duration::from_secs(60), cluster.caches().wait_synced())
            .await
            .map_err(|_| failure("kubernetes.unreachable", "could not list the cluster's objects within 60s; is the API server up?"))?;
        let (user, env_name) = (run.user.clone(), run.env_name.to_string());
        let release = self.release_spec(run);
        if run.record.step.is_none() {
            // The release recorded as serving may have been deleted behind warship's back.
            if let Some(gone) = run.record.stable.filter(|s| cluster.objects(&user, &env_name).deployment_of(*s).is_none()) {
                tracing::warn!(id = %run.record.id, release = gone, "the serving release has no Deployment; rolling out as a first deploy");
                run.record.stable = None;
                run.record.traffic = TrafficTo::Candidate;
            }
        }
        let (stable, candidate) = (run.record.stable, run.record.revision);

        // Leftovers of deploys whose host died (or whose cleanup failed) go first.
        for stray in cluster.objects(&user, &env_name).deployments {
            if stray.release.is_some_and(|r| Some(r) != stable && r != candidate) {
                cluster.delete_release(&user, &env_name, stray.release.expect("checked")).await?;
            }
        }
        if run.record.step.is_none() {
            if let Some(stable) = stable {
                run.record.scale.stable =
                    cluster.objects(&user, &env_name).deployment_of(stable).map_or(env.spec.replicas, |d| d.desired);
            }
        }
        cluster.apply_service(&user, &env_name, run.record.traffic.into(), stable, candidate).await?;

        let mut changes = cluster.caches().changes();
        let mut last_seen = None;
        let watching_since = OffsetDateTime::now_utc();
        let mut signals = run.signals.clone();
        loop {
            // A promotion counts for the step it was given in.
            let promoted_at = signals.borrow_and_update().promote.as_ref().and_then(|p| p.step);
            if promoted_at.is_some() && promoted_at == run.record.step.as_ref().map(|s| s.index) {
                run.record.promoted = true;
            }
            let objects = cluster.objects(&user, &env_name);
            let state = self.observe(run, &objects, env.spec.replicas);
            let seen = DeployEvent::Replicas {
                stable: stable.zip(state.stable).map(|(revision, w)| WorkloadReplicas::of(revision, &w)),
                candidate: WorkloadReplicas::of(candidate, &state.candidate),
            };
            if last_seen.as_ref() != Some(&seen) {
                run.log.push(seen.clone());
                last_seen = Some(seen);
            }
            let step = {
                let (plugin, settings, state) = (run.plugin.clone(), run.settings.clone(), state.clone());
                tokio::task::spawn_blocking(move || plugin.next_step_with(&settings, &state)).await.expect("plugin calls do not panic")
            };
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    self.restore(cluster, run, env.spec.replicas).await?;
                    return Ok(Ending::Failed(failure("plugin.failed", format!("{e}; the previous release was restored"))));
                }
            };
            let action = crate::plugins::action_name(&step.action);
            let now = OffsetDateTime::now_utc();
            let previous = run.record.step.clone();
            let since = match &previous {
                Some(p) if p.index == step.step_index => p.since,
                _ => now,
            };
            let next = StrategyStep { index: step.step_index, action: action.into(), description: step.description.clone(), memory: step.memory.clone(), since };
            if previous.as_ref().is_some_and(|p| p.index != next.index) {
                run.record.promoted = false;
            }
            if previous.as_ref() != Some(&next) {
                run.record.step = Some(next);
                self.save(run).await?;
            }
            // Time in the step, as the deadline counts it: a host that resumes a rollout
            // gives it a full deadline, rather than charging it for the time no host ran it.
            let in_step = (now - since.max(watching_since)).unsigned_abs();
            match step.action {
                Action::Scale(to) => {
                    cluster.apply_release(&user, &env.spec, &release, to.candidate).await?;
                    if let Some(stable) = stable.filter(|_| to.stable != run.record.scale.stable) {
                        cluster.scale_release(&user, &env_name, stable, to.stable).await?;
                    }
                    run.record.scale = Scale { stable: if stable.is_some() { to.stable } else { 0 }, candidate: to.candidate };
                    self.save(run).await?;
                }
                Action::SwitchTraffic(traffic) => {
                    cluster.apply_service(&user, &env_name, traffic, stable, candidate).await?;
                    run.record.traffic = traffic.into();
                    self.save(run).await?;
                }
                Action::WaitReady => {
                    if in_step > deadline {
                        let diagnosis = self.diagnose(cluster, run, &env, &objects).await;
                        let message = format!(
                            "the rollout was not ready within the env's deadline of {}s: {} of {} new pods ready; {}; the previous release was restored",
                            deadline.as_secs(),
                            state.candidate.ready,
                            state.candidate.replicas,
                            diagnosis.message,
                        );
                        self.restore(cluster, run, env.spec.replicas).await?;
                        return Ok(Ending::Failed(DeployFailure { cause: Some(diagnosis.cause), ..failure("rollout.deadline", message) }));
                    }
                    if !all_ready(&state) {
                        let waiting = Instant::now();
                        let _ = tokio::time::timeout(TICK, changes.changed()).await;
                        run.record.waited_for_kubernetes_ms += waiting.elapsed().as_millis() as u64;
                    }
                }
                Action::Pause(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms).min(TICK)).await;
                }
                Action::AwaitPromotion => {
                    if run.record.promoted {
                        // Promoted, yet the plugin still waits: ask again, but not in a spin.
                        tokio::time::sleep(TICK).await;
                    } else {
                        let _ = tokio::time::timeout(TICK, signals.changed()).await;
                    }
                }
                Action::Done => {
                    cluster.apply_service(&user, &env_name, Traffic::Candidate, stable, candidate).await?;
                    run.record.traffic = TrafficTo::Candidate;
                    if let Some(stable) = stable {
                        cluster.delete_release(&user, &env_name, stable).await?;
                        run.record.scale.stable = 0;
                    }
                    return Ok(Ending::Succeeded);
                }
                Action::Abort(reason) => {
                    // What the pods say, when some are unready: the limit hit is rarely the whole story.
                    let diagnosis = match state.candidate.ready < state.candidate.replicas || state.candidate.restarts > 0 {
                        true => Some(self.diagnose(cluster, run, &env, &objects).await),
                        false => None,
                    };
                    self.restore(cluster, run, env.spec.replicas).await?;
                    let said = diagnosis.as_ref().map_or_else(String::new, |d| format!(" ({})", d.message));
                    let message = format!("the {} strategy gave up: {reason}{said}; the previous release was restored", run.record.strategy);
                    return Ok(Ending::Aborted(DeployFailure { cause: diagnosis.map(|d| d.cause), ..failure("rollout.aborted", message) }));
                }
            }
        }
    }

    /// Why the candidate's pods are not ready, from the caches and the pods' warnings
    /// (read for a few of them only).
    async fn diagnose(&self, cluster: &Cluster, run: &Run, env: &Env, objects: &EnvObjects) -> diagnosis::Diagnosis {
        let pods: Vec<&crate::cluster::PodView> = objects.pods_of(run.record.revision).map(|p| &**p).collect();
        let mut warnings = HashMap::new();
        for pod in pods.iter().filter(|p| !p.ready && !p.terminating).take(3) {
            match cluster.pod_warnings(&run.user, &pod.name).await {
                Ok(said) => {
                    warnings.insert(pod.name.clone(), said);
                }
                Err(e) => tracing::warn!(id = %run.record.id, pod = %pod.name, error = %e, "could not read the pod's events"),
            }
        }
        let context = diagnosis::Context { image: run.record.image.as_deref().unwrap_or_default(), probe_path: &env.spec.context_path, env: &run.record.env };
        diagnosis::diagnose(&pods, &|pod| warnings.get(pod).cloned().unwrap_or_default(), &context)
    }

    /// The state the strategy sees: replicas as asked, readiness and restarts from pods.
    fn observe(&self, run: &Run, objects: &EnvObjects, desired: u32) -> RolloutState {
        let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000;
        let workload = |revision: u32, replicas: u32| {
            let pods: Vec<_> = objects.pods_of(revision).collect();
            Workload {
                replicas,
                ready: pods.iter().filter(|p| p.ready).count() as u32,
                restarts: pods.iter().map(|p| p.restarts).sum(),
                unready_ms: pods
                    .iter()
                    .filter(|p| !p.terminating)
                    .filter_map(|p| p.unready_since_ms)
                    .map(|since| (now_ms - since).max(0) as u64)
                    .max()
                    .unwrap_or(0),
            }
        };
        let step = run.record.step.as_ref();
        RolloutState {
            desired_replicas: desired,
            stable: run.record.stable.map(|s| workload(s, run.record.scale.stable)),
            candidate: workload(run.record.revision, run.record.scale.candidate),
            traffic: run.record.traffic.into(),
            step_index: step.map_or(0, |s| s.index),
            time_in_step_ms: step.map_or(0, |s| (OffsetDateTime::now_utc() - s.since).whole_milliseconds().max(0) as u64),
            promoted: run.record.promoted,
            memory: step.map_or_else(String::new, |s| s.memory.clone()),
        }
    }

    /// Back to the release that served before: scaled to the env's replicas, with all
    /// traffic, and the candidate gone.
    async fn restore(&self, cluster: &Cluster, run: &mut Run, desired: u32) -> Result<(), ClusterError> {
        let (user, env) = (run.user.clone(), run.record.env.clone());
        if let Some(stable) = run.record.stable {
            cluster.scale_release(&user, &env, stable, desired).await?;
            cluster.apply_service(&user, &env, Traffic::Stable, Some(stable), run.record.revision).await?;
            run.record.traffic = TrafficTo::Stable;
            run.record.scale.stable = desired;
        }
        cluster.delete_release(&user, &env, run.record.revision).await?;
        run.record.scale.candidate = 0;
        Ok(())
    }

    async fn finish(&self, run: &mut Run, ending: Ending) {
        let now = OffsetDateTime::now_utc();
        match ending {
            Ending::Succeeded => {
                let release = Release {
                    revision: run.record.revision,
                    image: run.record.image.clone().unwrap_or_default(),
                    digest: run.record.digest.clone().unwrap_or_default(),
                    war: run.record.war.clone(),
                    war_sha256: run.record.war_sha256.clone(),
                    version: run.record.version.clone(),
                    strategy: run.record.strategy.clone(),
                    deploy: run.record.id.clone(),
                    by: run.record.by.clone(),
                    at: now,
                };
                let recorded = async {
                    store::put_json(&*self.store, &release_key(&run.user, &run.record.env, release.revision), &release, Precondition::Any).await?;
                    self.envs.record_release(&run.user, &run.env_name, &release).await?;
                    Ok::<_, DeployError>(())
                };
                match recorded.await {
                    Ok(()) => run.record.status = DeployStatus::Succeeded,
                    Err(e) => {
                        run.record.status = DeployStatus::Failed;
                        run.record.error = Some(failure("store.unavailable", format!("the release serves, but recording it failed: {e}")));
                    }
                }
            }
            Ending::Failed(cause) => {
                run.record.status = DeployStatus::Failed;
                run.record.error = Some(cause);
            }
            Ending::Aborted(cause) => {
                run.record.status = DeployStatus::Aborted;
                run.record.error = Some(cause);
            }
        }
        run.record.finished_at = Some(now);
        tracing::info!(id = %run.record.id, status = ?run.record.status, error = ?run.record.error, "deploy ended");
        metrics::counter!("warship_deploys_total", "status" => format!("{:?}", run.record.status).to_lowercase()).increment(1);
        if let Err(e) = self.persist(run).await {
            tracing::error!(id = %run.record.id, error = %e, "could not record the deploy's end");
        }
    }

    pub async fn get(&self, user: &UserName, id: &str) -> Result<DeployRecord, DeployError> {
        store::get_json(&*self.store, &key(user, id)).await?.map(|(r, _)| r).ok_or_else(|| DeployError::NotFound(id.to_owned()))
    }

    /// An env's deploys, newest first.
    pub async fn list(&self, user: &UserName, env: &str) -> Result<Vec<DeployRecord>, DeployError> {
        let mut all: Vec<DeployRecord> =
            store::list_json(&*self.store, &format!("u/{user}/deploys/")).await?.into_iter().map(|(r, _)| r).filter(|r: &DeployRecord| r.env == env).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(all)
    }

    /// The id of the deploy in progress on an env, if any (one whose host died counts
    /// until a host resumes or ends it).
    pub async fn running(&self, user: &UserName, env: &str) -> Result<Option<String>, StoreError> {
        let active = self.store.list(&format!("{ACTIVE}{user}/{env}/")).await?;
        Ok(active.iter().filter_map(|entry| serde_json::from_slice::<Active>(&entry.value).ok()).map(|a| a.id).next())
    }

    /// Deletes an env: its Kubernetes objects first (waiting until they are gone),
    /// then its records. Refused while a deploy runs on it.
    pub async fn delete_env(&self, user: &UserName, env: &EnvName) -> Result<(), DeployError> {
        self.envs.get(user, env).await?;
        let lease = self.store.try_lock(&lock_key(user, env.as_str()), &format!("{DELETING}{}", uuid::Uuid::new_v4().simple()), LOCK_TTL).await.map_err(|e| match e {
            StoreError::Locked { holder, .. } => DeployError::Running { env: env.to_string(), running: holder },
            other => other.into(),
        })?;
        let result = async {
            if let Some(cluster) = &self.cluster {
                let timeout = Duration::from_secs(self.config.deploys.delete_timeout_secs);
                tokio::select! {
                    deleted = cluster.delete_env(user, env.as_str(), timeout) => deleted?,
                    lost = store::hold_lock(&*self.store, &lease) => return Err(lost.into()),
                }
            }
            for release in self.store.list(&release_prefix(user, env.as_str())).await? {
                self.store.delete(&release.key, Precondition::Any).await?;
            }
            self.envs.delete(user, env).await?;
            Ok(())
        }
        .await;
        let _ = self.store.release_lock(&lease).await;
        result
    }

    /// A pod's log, streamed: `pod` must be one of the env's; by default a pod of the
    /// release serving now, ready ones first. Returns the pod's name with the stream.
    pub async fn logs(
        &self,
        user: &UserName,
        env_name: &EnvName,
        pod: Option<&str>,
        follow: bool,
        tail: Option<i64>,
    ) -> Result<(String, impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static), DeployError> {
        let cluster = self.cluster_or_err()?;
        let env = self.envs.get(user, env_name).await?;
        let objects = cluster.objects(user, env_name.as_str());
        let pod = match pod {
            Some(wanted) => objects.pods.iter().find(|p| p.name == wanted).map(|p| p.name.clone()).ok_or_else(|| DeployError::NoSuchPod {
                env: env_name.to_string(),
                pod: wanted.to_owned(),
                pods: objects.pods.iter().map(|p| p.name.clone()).collect(),
            })?,
            None => {
                let serving = env.current.as_ref().map(|r| r.revision);
                let mut pods: Vec<_> = objects.pods.iter().collect();
                pods.sort_by_key(|p| (p.release != serving, !p.ready, p.terminating, p.name.clone()));
                pods.first().map(|p| p.name.clone()).ok_or_else(|| DeployError::NoPods(env_name.to_string()))?
            }
        };
        let stream = cluster.pod_logs(user, &pod, follow, tail).await.map_err(|source| DeployError::Logs { pod: pod.clone(), source })?;
        Ok((pod, stream))
    }

    /// Looks for deploys whose host stopped (their lock lapsed) and carries them on,
    /// now and every few seconds, for as long as the host runs.
    pub fn resume_orphans(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        // Weak, so the loop ends with the host's services.
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(this) = weak.upgrade() {
                if let Err(e) = this.resume_once().await {
                    tracing::warn!(error = %e, "could not look for interrupted deploys");
                }
                drop(this);
                tokio::time::sleep(RESUME_EVERY).await;
            }
        })
    }

    async fn resume_once(self: &Arc<Self>) -> Result<(), StoreError> {
        for entry in self.store.list(ACTIVE).await? {
            let Ok(active) = serde_json::from_slice::<Active>(&entry.value) else { continue };
            let id = active.id.clone();
            let lease = match self.store.try_lock(&lock_key(&active.user, &active.env), &id, LOCK_TTL).await {
                Ok(lease) => lease,
                Err(StoreError::Locked { .. }) => continue,
                Err(e) => return Err(e),
            };
            let record = match store::get_json::<DeployRecord>(&*self.store, &key(&active.user, &id)).await? {
                Some((record, _)) if !record.status.is_final() => record,
                _ => {
                    self.store.delete(&entry.key, Precondition::Any).await?;
                    self.store.release_lock(&lease).await?;
                    continue;
                }
            };
            let (Ok(env_name), Some(plugin)) = (EnvName::parse(&record.env), self.plugins.strategy(&record.strategy).cloned()) else {
                self.store.release_lock(&lease).await?;
                continue;
            };
            tracing::warn!(%id, status = ?record.status, "resuming a deploy whose host stopped");
            let settings = record.settings.to_string();
            let log = self.log_for(&id);
            let mut run = Run::new(active.user.clone(), env_name, record, settings, plugin, log);
            let this = self.clone();
            tokio::spawn(async move {
                if run.record.status == DeployStatus::RollingOut && run.record.image.is_some() {
                    this.drive(run, lease, Begin::Rollout).await;
                } else {
                    // Before the image was built, nothing reached the cluster: fail it cleanly.
                    let cause = failure(
                        "deploy.interrupted",
                        format!("the host running this deploy stopped while it was {}; nothing was rolled out. Deploy again", status_words(run.record.status)),
                    );
                    this.finish(&mut run, Ending::Failed(cause)).await;
                    this.forget(&run).await;
                    let _ = this.store.release_lock(&lease).await;
                    this.retire_log(&run);
                }
            });
        }
        Ok(())
    }

    /// A deploy's events: everything so far, then live ones while this host runs it;
    /// for one that ended (or runs elsewhere), its record as it is now.
    pub async fn events(&self, user: &UserName, id: &str) -> Result<Arc<EventLog<DeployEvent>>, DeployError> {
        let record = self.get(user, id).await?;
        if let Some(live) = self.logs.lock().expect("logs lock").by_id.get(id).cloned() {
            return Ok(live);
        }
        let log = EventLog::new();
        log.push(DeployEvent::Record(Box::new(record)));
        log.close();
        Ok(log)
    }
}


/// Resolves once an abort is asked (never, if the signals stop).
async fn abort_asked(mut signals: watch::Receiver<Signals>) -> Signal {
    loop {
        if let Some(abort) = signals.borrow_and_update().abort.clone() {
            return abort;
        }
        if signals.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Adds a milestone when the status or the strategy's step changed since the last one.
fn note_milestone(record: &mut DeployRecord) {
    let (step, action, words) = match (&record.step, record.status) {
        (Some(s), DeployStatus::RollingOut) => (Some(s.index), Some(s.action.clone()), s.description.clone()),
        _ => (None, None, String::new()),
    };
    if record.history.last().is_some_and(|m| m.status == record.status && m.step == step && m.action == action) {
        return;
    }
    let description = match &record.error {
        Some(error) if record.status.is_final() => error.message.clone(),
        _ => words,
    };
    if record.history.len() >= MILESTONES_KEPT {
        // Keep the first (queued) and the latest ones.
        record.history.remove(1);
    }
    record.history.push(Milestone { at: record.updated_at, status: record.status, step, action, description });
}

fn status_words(status: DeployStatus) -> &'static str {
    match status {
        DeployStatus::Queued => "queued",
        DeployStatus::Validating => "validating",
        DeployStatus::Building => "building the image",
        DeployStatus::Pushing => "pushing the image",
        DeployStatus::RollingOut => "rolling out",
        DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Aborted => "finishing",
    }
}

fn all_ready(state: &RolloutState) -> bool {
    let ready = |w: &Workload| w.ready == w.replicas;
    ready(&state.candidate) && state.stable.as_ref().is_none_or(ready)
}

fn build_failure(e: ImageError) -> DeployFailure {
    match e {
        ImageError::Invalid(violations) => failure(
            "deploy.invalid",
            violations.iter().map(|v| format!("{}: {}", v.field, v.message)).collect::<Vec<_>>().join("; "),
        ),
        ImageError::Failed(f) => failure(&f.code, f.message),
        other => failure("build.failed", other.to_string()),
    }
}

/// What GET /api/v1/envs/{env} answers: the env, its release, and what runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnvStatus {
    /// The env, with the release serving now as `current`.
    #[serde(flatten)]
    pub env: Env,
    /// The id of the deploy running on it, if any.
    pub deploying: Option<String>,
    /// What runs in Kubernetes; absent when no cluster is configured.
    pub service: Option<ServiceStatus>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceStatus {
    pub name: String,
    pub namespace: String,
    /// Which releases the Service selects.
    pub selector: std::collections::BTreeMap<String, String>,
    pub workloads: Vec<WorkloadStatus>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkloadStatus {
    pub name: String,
    pub release: Option<u32>,
    pub version: String,
    pub image: String,
    /// `sha256:…` of the image the pods run.
    pub digest: String,
    pub war_sha256: String,
    pub desired: u32,
    pub ready: u32,
    /// Receives traffic from the Service.
    pub serving: bool,
    pub pods: Vec<crate::cluster::PodView>,
}

impl Deploys {
    /// The status tree of an env, from the store (env and deploy in progress, read
    /// together) and the watch caches.
    pub async fn status(&self, user: &UserName, name: &EnvName) -> Result<EnvStatus, DeployError> {
        let (env, deploying) = tokio::join!(self.envs.get(user, name), self.running(user, name.as_str()));
        let (env, deploying) = (env?, deploying?);
        let service = self.cluster.as_ref().map(|cluster| {
            let objects = cluster.objects(user, name.as_str());
            let selector = objects.service.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
            let workloads = objects
                .deployments
                .iter()
                .map(|d| {
                    let pods: Vec<_> = d.release.map(|r| objects.pods_of(r).map(|p| (**p).clone()).collect()).unwrap_or_default();
                    let serving = objects.service.is_some()
                        && selector.get(crate::cluster::objects::RELEASE).is_none_or(|r| Some(r.as_str()) == d.release.map(|x| x.to_string()).as_deref());
                    WorkloadStatus {
                        name: d.name.clone(),
                        release: d.release,
                        version: d.version.clone(),
                        image: d.image.clone(),
                        digest: d.image.rsplit_once('@').map(|(_, digest)| digest.to_owned()).unwrap_or_default(),
                        war_sha256: d.war_sha256.clone(),
                        desired: d.desired,
                        ready: pods.iter().filter(|p| p.ready).count() as u32,
                        serving,
                        pods,
                    }
                })
                .collect();
            ServiceStatus { name: name.to_string(), namespace: cluster.namespace(user), selector, workloads }
        });
        Ok(EnvStatus { env, deploying, service })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DeployRecord {
        let now = OffsetDateTime::now_utc();
        DeployRecord {
            id: "d1".into(),
            env: "shop".into(),
            war: "shop/shop.war".into(),
            war_sha256: String::new(),
            version: "1.0".into(),
            strategy: "canary".into(),
            settings: serde_json::json!({}),
            by: "alice".into(),
            status: DeployStatus::Queued,
            revision: 2,
            stable: Some(1),
            image_build: None,
            image: None,
            digest: None,
            traffic: TrafficTo::Stable,
            scale: Scale::default(),
            step: None,
            promoted: false,
            rollback_of: None,
            waited_for_kubernetes_ms: 0,
            error: None,
            history: Vec::new(),
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    fn step(index: u32, action: &str, description: &str) -> Option<StrategyStep> {
        let since = OffsetDateTime::now_utc();
        Some(StrategyStep { index, action: action.into(), description: description.into(), memory: String::new(), since })
    }

    #[test]
    fn milestones_mark_each_status_and_step_once_and_the_end_with_its_cause() {
        let mut r = record();
        note_milestone(&mut r);
        note_milestone(&mut r);
        r.status = DeployStatus::RollingOut;
        r.step = step(0, "wait-ready", "canary at 10%: 0 of 1 candidate pods ready");
        note_milestone(&mut r);
        // The same step in other words (a pod became ready) is not a new milestone.
        r.step = step(0, "wait-ready", "canary at 10%: 1 of 1 candidate pods ready");
        note_milestone(&mut r);
        r.step = step(1, "await-promotion", "canary at 10%: waiting for someone to promote it");
        note_milestone(&mut r);
        r.status = DeployStatus::Aborted;
        r.error = Some(failure("deploy.aborted", "aborted by alice during the rollout; release 1 serves alone again"));
        note_milestone(&mut r);
        let seen: Vec<(DeployStatus, Option<u32>, Option<&str>, &str)> =
            r.history.iter().map(|m| (m.status, m.step, m.action.as_deref(), m.description.as_str())).collect();
        assert_eq!(
            seen,
            [
                (DeployStatus::Queued, None, None, ""),
                (DeployStatus::RollingOut, Some(0), Some("wait-ready"), "canary at 10%: 0 of 1 candidate pods ready"),
                (DeployStatus::RollingOut, Some(1), Some("await-promotion"), "canary at 10%: waiting for someone to promote it"),
                (DeployStatus::Aborted, None, None, "aborted by alice during the rollout; release 1 serves alone again"),
            ]
        );
    }

    #[test]
    fn a_long_rollout_keeps_its_first_and_latest_milestones() {
        let mut r = record();
        note_milestone(&mut r);
        r.status = DeployStatus::RollingOut;
        for index in 0..(MILESTONES_KEPT as u32 * 2) {
            r.step = step(index, "scale", "");
            note_milestone(&mut r);
        }
        assert_eq!(r.history.len(), MILESTONES_KEPT);
        assert_eq!(r.history[0].status, DeployStatus::Queued);
        assert_eq!(r.history.last().unwrap().step, Some(MILESTONES_KEPT as u32 * 2 - 1));
    }
}
