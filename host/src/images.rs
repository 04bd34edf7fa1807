//! Images of a user's WAR for one env: validated (validator plugins on env + WAR
//! facts), described (the template plugin's Dockerfile), built and pushed by the
//! configured builder as `<registry>/<user>/<env>:<version>`, and recorded. A record
//! says `built` only once the manifest is in the registry; a failed or interrupted
//! build is recorded as `failed` with its cause. The deploy pipeline calls [`Images::build`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::config::Config;
use crate::domain::EnvName;
use crate::envs::{EnvError, Envs};
use crate::journal::{self, Journal};
use crate::image::{BuildError, BuildEvent, BuildJob, Builder, ContextFile, Progress, ProgressThrottle};
use crate::plugins::{PluginError, Plugins};
use crate::registry::{tag_problem, RegistryClient};
use crate::jobs::{self, Lease, LEASE_TTL};
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;
use crate::domain::Violation;
use crate::wars::{WarError, WarRecord, Wars};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    Building,
    Built,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageFailure {
    /// Stable code: `registry.unreachable`, `registry.timed_out`, `build.dockerfile`, …
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageRecord {
    pub id: String,
    pub env: String,
    /// `app/file` of the WAR.
    pub war: String,
    pub war_sha256: String,
    pub version: String,
    pub builder: String,
    pub status: ImageStatus,
    /// `<push registry>/<user>/<env>:<version>`.
    pub tagged: String,
    /// Digest of the pushed manifest, once built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// What Kubernetes is given: `<pull registry>/<user>/<env>@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The base image, pinned to the digest it resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ImageFailure>,
    /// The Dockerfile the template plugin rendered.
    pub dockerfile: String,
    /// The lock of the job running the build (its own, or the deploy's that builds
    /// it as a stage), and the holder: a build whose job's lock is gone was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub held_by: Option<(String, String)>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

/// What a client asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRequest {
    /// `app/file.war`, or just `file.war` when one app has it.
    pub war: String,
    pub env: String,
    /// The image tag, e.g. `1.0.3`.
    pub version: String,
}

/// A build whose record is written, ready to run.
pub struct Started {
    pub record: ImageRecord,
    revision: u64,
    job: BuildJob,
}

/// A build that passed every check, ready to start.
#[derive(Debug, Clone)]
pub struct PreparedBuild {
    pub env: EnvName,
    pub war: WarRecord,
    pub version: String,
    target: crate::registry::ImageRef,
    dockerfile: String,
}

/// What watchers of a build see: progress, then the final record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageEvent {
    Progress(BuildEvent),
    Finished(ImageRecord),
}

impl ImageEvent {
    pub fn is_end(&self) -> bool {
        matches!(self, ImageEvent::Finished(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the build request is invalid")]
    Invalid(Vec<Violation>),
    #[error("image {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    War(#[from] WarError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Only from [`Images::build_and_wait`]: the build ran and failed.
    #[error("the build failed: {}", .0.message)]
    Failed(ImageFailure),
}


pub struct Images {
    store: DynStore,
    config: Arc<Config>,
    plugins: Arc<Plugins>,
    envs: Envs,
    wars: Arc<Wars>,
    builder: Arc<dyn Builder>,
    client: RegistryClient,
    host_id: String,
}


fn key(user: &UserName, id: &str) -> String {
    format!("u/{user}/images/{id}")
}

fn lock_key(id: &str) -> String {
    format!("images/{id}")
}

/// Builds not yet final, so the recovery loop finds those whose job died.
const ACTIVE: &str = "images/active/";

fn active_key(user: &UserName, id: &str) -> String {
    format!("{ACTIVE}{user}/{id}")
}

#[derive(Debug, Serialize, Deserialize)]
struct ActiveBuild {
    user: UserName,
    id: String,
}

impl Images {
    pub fn new(
        store: DynStore,
        config: Arc<Config>,
        plugins: Arc<Plugins>,
        envs: Envs,
        wars: Arc<Wars>,
        builder: Arc<dyn Builder>,
        client: RegistryClient,
    ) -> Self {
        let host_id = format!("host-{}", uuid::Uuid::new_v4().simple());
        Self { store, config, plugins, envs, wars, builder, client, host_id }
    }

    /// Finds the WAR a request names: `app/file`, or a file name only one app has.
    async fn find_war(&self, user: &UserName, war: &str) -> Result<WarRecord, ImageError> {
        if let Some((app, file)) = war.split_once('/') {
            return Ok(self.wars.get(user, app, file).await?);
        }
        let matching: Vec<WarRecord> = self.wars.list(user).await?.into_iter().filter(|w| w.file == war).collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one")),
            0 => Err(ImageError::Invalid(vec![Violation::new("war", "image.war.not_found", format!("you have no WAR named {war:?}; GET /api/v1/wars lists yours"))])),
            _ => {
                let apps: Vec<String> = matching.iter().map(|w| format!("{}/{}", w.app, w.file)).collect();
                Err(ImageError::Invalid(vec![Violation::new(
                    "war",
                    "image.war.ambiguous",
                    format!("several apps have {war:?}: say which, as one of {}", apps.join(", ")),
                )]))
            }
        }
    }

    /// Checks the request, renders the Dockerfile and starts the build; returns the
    /// record (status `building`) at once. The build goes on in the background.
    pub async fn build(self: &Arc<Self>, user: &UserName, request: ImageRequest) -> Result<ImageRecord, ImageError> {
        let prepared = self.prepare(user, request).await?;
        self.start(user, prepared).await
    }

    /// Everything a build checks before it starts: the env, the WAR, the version as a
    /// tag, the catalog, the validator plugins; then the template plugin's Dockerfile.
    pub async fn prepare(&self, user: &UserName, request: ImageRequest) -> Result<PreparedBuild, ImageError> {
        let mut violations = Vec::new();
        let env_name = EnvName::parse(&request.env).map_err(|mut v| {
            v.field = "env".into();
            ImageError::Invalid(vec![v])
        })?;
        let target = match tag_problem(&request.version) {
            None => Some(self.client.resolve(&format!("{user}/{env_name}:{}", request.version)).map_err(|e| {
                ImageError::Invalid(vec![Violation::new("env", "image.reference.invalid", e.to_string())])
            })?),
            Some(problem) => {
                violations.push(Violation::new("version", "image.version.invalid", format!("version {:?} cannot be an image tag: {problem}", request.version)));
                None
            }
        };
        let env = self.envs.get(user, &env_name).await?;
        let war = self.find_war(user, &request.war).await?;
        let entry = self.config.catalog_entry(env.spec.tomcat.as_str(), env.spec.jdk.as_str()).cloned();
        if entry.is_none() {
            violations.push(Violation::new(
                "env",
                "image.env.not_in_catalog",
                format!("tomcat {} with jdk {} is no longer in the catalog; PATCH the env to a pair GET /api/v1/catalog lists", env.spec.tomcat, env.spec.jdk),
            ));
        }
        violations.extend(self.plugins.validate_deploy(&self.config, &env.spec, &war).await?);
        let (Some(target), Some(entry), true) = (target, entry, violations.is_empty()) else {
            return Err(ImageError::Invalid(violations));
        };

        let dockerfile = self.plugins.render_dockerfile(&env.spec, &war, &entry, &request.version, user.as_str()).await?;
        Ok(PreparedBuild { env: env_name, war, version: request.version, target, dockerfile })
    }

    /// Starts a prepared build as a job of its own; returns its record (status
    /// `building`) at once. The build goes on in the background under the job's lease.
    pub async fn start(self: &Arc<Self>, user: &UserName, prepared: PreparedBuild) -> Result<ImageRecord, ImageError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lease = Lease::take(&self.store, &lock_key(&id), &self.host_id, LEASE_TTL).await?;
        let started = match self.begin(user, &id, prepared, &lease).await {
            Ok(started) => started,
            Err(e) => {
                lease.release().await;
                return Err(e);
            }
        };
        let record = started.record.clone();
        let journal = match Journal::open(&self.store, journal::prefix(user.as_str(), "image", &id), Some(lease.clone())).await {
            Ok(journal) => journal,
            Err(e) => {
                lease.release().await;
                return Err(e.into());
            }
        };
        let (this, user, told) = (self.clone(), user.clone(), record.clone());
        tokio::spawn(async move {
            let (progress, mut progressed) = tokio::sync::mpsc::unbounded_channel::<BuildEvent>();
            let progress: Progress = Arc::new(move |event| {
                let _ = progress.send(event);
            });
            let mut throttle = ProgressThrottle::default();
            let building = this.run(&user, started, progress, &lease);
            // One renewal loop for the whole build: made anew for each event, it would
            // restart its wait each time and never renew.
            let holding = lease.hold();
            tokio::pin!(building, holding);
            let record = loop {
                tokio::select! {
                    built = &mut building => break built,
                    Some(event) = progressed.recv() => {
                        if throttle.lets_through(&event) {
                            journal.append(&ImageEvent::Progress(event)).await;
                        }
                    }
                    lost = &mut holding => {
                        tracing::warn!(%id, error = %lost, "lost the build's lease; the next read settles it");
                        break this.get(&user, &id).await.unwrap_or(told);
                    }
                }
            };
            while let Ok(event) = progressed.try_recv() {
                if throttle.lets_through(&event) {
                    journal.append(&ImageEvent::Progress(event)).await;
                }
            }
            lease.release().await;
            journal.append_unfenced(&ImageEvent::Finished(record)).await;
        });
        Ok(record)
    }

    /// Writes a build's first record, `building`, held by `lease`'s job.
    pub async fn begin(&self, user: &UserName, id: &str, prepared: PreparedBuild, lease: &Lease) -> Result<Started, ImageError> {
        let PreparedBuild { env: env_name, war, version, target, dockerfile } = prepared;
        let record = ImageRecord {
            id: id.to_owned(),
            env: env_name.to_string(),
            war: format!("{}/{}", war.app, war.file),
            war_sha256: war.sha256.clone(),
            version,
            builder: self.builder.name().into(),
            status: ImageStatus::Building,
            tagged: target.tagged(),
            digest: None,
            image: None,
            base: None,
            size: None,
            error: None,
            dockerfile: dockerfile.clone(),
            held_by: Some((lease.lock().key.clone(), lease.lock().holder.clone())),
            created_at: OffsetDateTime::now_utc(),
            finished_at: None,
        };
        let revision = lease.put_json(&key(user, id), &record, Precondition::Absent).await?;
        lease.put_json(&active_key(user, id), &ActiveBuild { user: user.clone(), id: id.to_owned() }, Precondition::Any).await?;
        let job = BuildJob {
            dockerfile,
            context: BTreeMap::from([(
                war.file.clone(),
                ContextFile { source: self.wars.source(&war.sha256), size: war.size, sha256: Some(war.sha256.clone()) },
            )]),
            target,
            build_args: BTreeMap::new(),
        };
        Ok(Started { record, revision, job })
    }

    /// Runs a begun build in the caller's task, under the caller's lease: the builder
    /// as a plain stage of whatever job runs it. Returns the final record, `built` or
    /// `failed` with its cause, as written (fenced by the lease).
    pub async fn run(&self, user: &UserName, started: Started, progress: Progress, lease: &Lease) -> ImageRecord {
        let Started { mut record, revision, job } = started;
        // The builder runs as a task of its own, so a panic in it fails the record
        // instead of leaving it `building`.
        let clock = std::time::Instant::now();
        let building = {
            let (builder, job) = (self.builder.clone(), job.clone());
            AbortOnDrop(tokio::spawn(async move { builder.build(&job, progress).await }))
        };
        let result = building.join().await.unwrap_or_else(|e| Err(BuildError::Interrupted(format!("the builder stopped: {e}"))));
        metrics::histogram!("warship_image_build_seconds", "builder" => self.builder.name(), "ok" => result.is_ok().to_string())
            .record(clock.elapsed().as_secs_f64());
        record.finished_at = Some(OffsetDateTime::now_utc());
        match result {
            Ok(built) => {
                tracing::info!(id = %record.id, digest = %built.digest, elapsed = ?clock.elapsed(), "image built");
                record.status = ImageStatus::Built;
                record.image = Some(format!("{}/{}@{}", self.config.registry.pull, job.target.repository, built.digest));
                record.digest = Some(built.digest);
                record.base = built.base;
                record.size = Some(built.size);
            }
            Err(e) => {
                tracing::warn!(id = %record.id, error = %e, "image build failed");
                record.status = ImageStatus::Failed;
                record.error = Some(failure(&e));
            }
        }
        let at = key(user, &record.id);
        let written = jobs::retrying(lease, "image record", || lease.put_json(&at, &record, Precondition::Revision(revision))).await;
        match written {
            Ok(_) => {}
            // Settled meanwhile (as interrupted): what the store says is what watchers get.
            Err(StoreError::Conflict { .. }) => match self.get(user, &record.id).await {
                Ok(stored) => record = stored,
                Err(e) => tracing::error!(id = %record.id, error = %e, "could not read the build's record back"),
            },
            Err(e) => tracing::error!(id = %record.id, error = %e, "could not record the build's outcome"),
        }
        if record.status != ImageStatus::Building {
            let _ = self.store.delete(&active_key(user, &record.id), Precondition::Any).await;
        }
        if let Err(e) = self.prune(user, &record.env).await {
            tracing::warn!(env = %record.env, error = %e, "could not prune old image records");
        }
        record
    }

    /// Starts a build and waits for its end: the built record, or why it failed.
    pub async fn build_and_wait(self: &Arc<Self>, user: &UserName, request: ImageRequest) -> Result<ImageRecord, ImageError> {
        use futures_util::StreamExt;
        let started = self.build(user, request).await?;
        let mut events = std::pin::pin!(self.events(user, &started.id, 0).await?);
        while let Some(event) = events.next().await {
            if let (_, ImageEvent::Finished(record)) = event? {
                return match record.error {
                    Some(failure) => Err(ImageError::Failed(failure)),
                    None => Ok(record),
                };
            }
        }
        self.get(user, &started.id).await
    }

    /// One record. A `building` record whose host stopped renewing its lock is a
    /// build that was interrupted; it is recorded as failed the first time it is read.
    pub async fn get(&self, user: &UserName, id: &str) -> Result<ImageRecord, ImageError> {
        let found: Option<(ImageRecord, u64)> = store::get_json(&*self.store, &key(user, id)).await?;
        let (record, revision) = found.ok_or_else(|| ImageError::NotFound(id.to_owned()))?;
        self.settle(user, record, revision).await
    }

    async fn settle(&self, user: &UserName, mut record: ImageRecord, revision: u64) -> Result<ImageRecord, ImageError> {
        if record.status != ImageStatus::Building {
            return Ok(record);
        }
        let (lock, holder) = record.held_by.clone().unwrap_or_else(|| (lock_key(&record.id), String::new()));
        // The job's lock held by its holder: it runs. Held by another (the next deploy
        // of the env), or free: its job is gone.
        match self.store.try_lock(&lock, &self.host_id, Duration::from_secs(1)).await {
            Ok(probe) => {
                let _ = self.store.release_lock(&probe).await;
            }
            Err(StoreError::Locked { holder: now, .. }) if now == holder || holder.is_empty() => return Ok(record),
            Err(StoreError::Locked { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        record.status = ImageStatus::Failed;
        record.finished_at = Some(OffsetDateTime::now_utc());
        record.error = Some(ImageFailure {
            code: "build.interrupted".into(),
            message: "the host building this image stopped before it finished; nothing was recorded as built. Start the build again".into(),
        });
        let written = store::put_json(&*self.store, &key(user, &record.id), &record, Precondition::Revision(revision)).await;
        match written {
            Ok(_) => Ok(record),
            // Someone finished or settled it meanwhile: theirs is the truth.
            Err(StoreError::Conflict { .. }) => Box::pin(self.get(user, &record.id)).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps the newest `deploys.keep_per_env` image records of an env; older finished
    /// ones go.
    async fn prune(&self, user: &UserName, env: &str) -> Result<(), StoreError> {
        let mut records: Vec<ImageRecord> =
            store::list_json(&*self.store, &format!("u/{user}/images/")).await?.into_iter().map(|(r, _)| r).filter(|r: &ImageRecord| r.env == env).collect();
        records.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        for old in records.iter().skip(self.config.deploys.keep_per_env).filter(|r| r.status != ImageStatus::Building) {
            journal::remove(&self.store, &journal::prefix(user.as_str(), "image", &old.id)).await?;
            self.store.delete(&key(user, &old.id), Precondition::Any).await?;
        }
        Ok(())
    }

    pub async fn list(&self, user: &UserName) -> Result<Vec<ImageRecord>, ImageError> {
        let records: Vec<(ImageRecord, u64)> = store::list_json(&*self.store, &format!("u/{user}/images/")).await?;
        let mut out = Vec::with_capacity(records.len());
        for (record, revision) in records {
            out.push(self.settle(user, record, revision).await?);
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(out)
    }

    /// The build's events after `after` (0: from its start), each with its sequence
    /// number, then live ones from whichever host runs it, through its final record.
    /// A build whose host died before it told its end ends with its settled record.
    pub async fn events(
        self: &Arc<Self>,
        user: &UserName,
        id: &str,
        after: u64,
    ) -> Result<impl futures_util::Stream<Item = Result<(u64, ImageEvent), StoreError>> + Send + 'static, ImageError> {
        use futures_util::StreamExt;
        let record = self.get(user, id).await?;
        let prefix = journal::prefix(user.as_str(), "image", id);
        let told = journal::follow(&self.store, prefix.clone(), after, ImageEvent::is_end).await?;
        // Settled as interrupted on read: no host will tell its end, so it is told here.
        let (last, told_end) = journal_end(&self.store, &prefix).await?;
        let settled = (record.status != ImageStatus::Building && !told_end).then(|| Ok((last + 1, ImageEvent::Finished(record))));
        Ok(match settled {
            Some(end) => futures_util::stream::iter([end]).left_stream(),
            None => told.right_stream(),
        })
    }
}

#[async_trait::async_trait]
impl jobs::Recover for Images {
    fn kind(&self) -> &'static str {
        "image builds"
    }

    /// A build cannot be resumed: one whose job's lock is gone is failed as
    /// interrupted (see [`Images::get`]), and leaves the index once final.
    async fn recover_once(self: Arc<Self>) -> Result<(), StoreError> {
        for entry in self.store.list(ACTIVE).await? {
            let Ok(active) = serde_json::from_slice::<ActiveBuild>(&entry.value) else { continue };
            match self.get(&active.user, &active.id).await {
                Ok(record) if record.status == ImageStatus::Building => continue,
                Ok(_) | Err(ImageError::NotFound(_)) => {
                    self.store.delete(&entry.key, Precondition::Any).await?;
                }
                Err(ImageError::Store(e)) => return Err(e),
                Err(e) => tracing::warn!(id = %active.id, error = %e, "could not settle an interrupted build"),
            }
        }
        Ok(())
    }
}

/// A build journal's last sequence number, and whether that event is its end.
async fn journal_end(store: &DynStore, prefix: &str) -> Result<(u64, bool), StoreError> {
    let events = store.list(prefix).await?;
    let last = events.last();
    let seq = last.and_then(|v| v.key.strip_prefix(prefix)).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((seq, last.is_some_and(|v| serde_json::from_slice::<ImageEvent>(&v.value).is_ok_and(|e| e.is_end()))))
}

/// Aborts the task when dropped, so nothing outlives the build it belongs to.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn failure(e: &BuildError) -> ImageFailure {
    ImageFailure { code: e.code().into(), message: e.to_string() }
}
