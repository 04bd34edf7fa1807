//! Runs a deploy to its end under its lease: the pipeline (validated → build stage →
//! rollout), the end (the release recorded, the record final), and the recovery of
//! deploys whose host died. Every record write is fenced by the lease and compared
//! against the record's store revision; a failed write is retried while the lease holds.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{watch, Notify};

use super::record::{failure, note_milestone, status_words, DeployEvent, DeployFailure, DeployRecord, DeployStatus, Phase};
use super::rollout::{self, Ending, Limits};
use super::signals::{self, Signal, Signals};
use super::target::{Change, Target};
use super::{keys, DeployListener, Deploys};
use crate::domain::{EnvName, Release, ReleaseSpec};
use crate::envs::keys as env_keys;
use crate::journal::{self, Journal};
use crate::image::{BuildEvent, Progress, ProgressThrottle};
use crate::images::{ImageError, ImageRequest, ImageStatus, PreparedBuild};
use crate::jobs::{self, Lease, LEASE_TTL};
use crate::plugins::Plugin;
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;


/// One running deploy: its record, where it is stored, what it needs.
pub struct Run {
    pub user: UserName,
    pub env_name: EnvName,
    pub record: DeployRecord,
    pub settings: String,
    /// None when the strategy is no longer loaded (a deploy taken over to be failed).
    pub plugin: Option<Arc<Plugin>>,
    /// The deploy's events, in the store.
    pub journal: Arc<Journal<DeployEvent>>,
    /// Promote and abort requests, as the deploy's driver sees them.
    pub signals: watch::Receiver<Signals>,
    lease: Arc<Lease>,
    store: DynStore,
    /// The record's store revision as this run last wrote it.
    stored: u64,
    /// Hears of each change told to watchers (the webhooks); none in tests.
    pub listener: Option<Arc<dyn DeployListener>>,
    /// What the listener was last told: a deploy taken over is not told again what
    /// its record already said.
    told: Phase,
}

/// Where a run of the pipeline begins.
pub enum Begin {
    /// From validating, with the build the request checked.
    Build(PreparedBuild),
    /// A rollback: the image exists, straight to rolling out.
    Release,
    /// A rollout resumed from its record.
    Rollout,
}

fn store_failure(e: StoreError) -> DeployFailure {
    match e {
        StoreError::LockLost { .. } => failure("deploy.fenced", format!("{e}; another host carries the deploy on")),
        other => failure("store.unavailable", format!("{other}; the deploy could not go on")),
    }
}

impl Run {
    pub fn new(user: UserName, env_name: EnvName, record: DeployRecord, stored: u64, settings: String, plugin: Option<Arc<Plugin>>, journal: Arc<Journal<DeployEvent>>, lease: Arc<Lease>, store: DynStore) -> Self {
        // The driver replaces this with the live channel before anything reads it.
        let signals = watch::channel(Signals::default()).1;
        let told = Phase::of(&record);
        Self { user, env_name, record, settings, plugin, journal, signals, lease, store, stored, listener: None, told }
    }

    /// One change to the target, only while the lease is provably held.
    pub async fn apply(&mut self, target: &dyn Target, change: Change) -> Result<(), DeployFailure> {
        self.lease.check().map_err(|fenced| store_failure(fenced.into()))?;
        target.apply(change).await.map_err(DeployFailure::from)
    }

    /// Writes the record and tells watchers.
    pub async fn save(&mut self) -> Result<(), DeployFailure> {
        self.persist().await.map_err(store_failure)?;
        self.journal.append(&DeployEvent::Record(Box::new(self.record.clone()))).await;
        self.tell_listener();
        Ok(())
    }

    /// The one place a deploy's changes reach its listener: after they are stored and
    /// told to watchers. The listener returns at once, so this never holds a deploy up.
    fn tell_listener(&mut self) {
        let now = Phase::of(&self.record);
        if now == self.told {
            return;
        }
        if let Some(listener) = &self.listener {
            listener.changed(&self.user, self.told, &self.record);
        }
        self.told = now;
    }

    /// Writes the record without telling watchers (the final one is told once the env
    /// is free for the next deploy): fenced, compared with the revision this run last
    /// wrote, retried with backoff while the store fails and the lease holds.
    pub async fn persist(&mut self) -> Result<(), StoreError> {
        self.record.updated_at = OffsetDateTime::now_utc();
        note_milestone(&mut self.record);
        let key = keys::record(&self.user, &self.record.id);
        let (lease, record, stored) = (self.lease.clone(), &self.record, self.stored);
        let written = jobs::retrying(&lease, "deploy record", || lease.put_json(&key, record, Precondition::Revision(stored))).await;
        self.stored = match written {
            Ok(revision) => revision,
            // A write that landed although its answer was lost reads back as ours.
            Err(StoreError::Conflict { .. }) => match store::get_json::<DeployRecord>(&*self.store, &key).await? {
                Some((stored, revision)) if stored == self.record => revision,
                _ => return Err(StoreError::LockLost { key }),
            },
            Err(e) => return Err(e),
        };
        Ok(())
    }

    async fn set_status(&mut self, status: DeployStatus) -> Result<(), Ending> {
        self.record.status = status;
        tracing::info!(id = %self.record.id, status = ?status, "deploy step");
        self.save().await.map_err(Ending::Failed)
    }

    fn release_spec(&self) -> ReleaseSpec {
        ReleaseSpec {
            revision: self.record.revision,
            image: self.record.image.clone().unwrap_or_default(),
            version: self.record.version.clone(),
            war_sha256: self.record.war_sha256.clone(),
            deploy_id: self.record.id.clone(),
        }
    }
}

impl Deploys {
    /// Runs a deploy to its end under its lease, renewing it; a lease lost or no
    /// longer provably held (another host may carry the deploy on) stops it without
    /// acting any more. An abort asked meanwhile cuts the pipeline short wherever it is.
    pub(super) async fn drive(self: Arc<Self>, mut run: Run, begin: Begin) {
        let (id, user, lease) = (run.record.id.clone(), run.user.clone(), run.lease.clone());
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
            signal = signals::abort_asked(signals) => Stop::Abort(signal),
            lost = lease.hold() => Stop::LostLock(lost),
            never = signals::watch(self.store.clone(), user.clone(), id.clone(), signals_tx, poke) => match never {},
        };
        let ending = match stop {
            Stop::Ended(ending) => Some(ending),
            Stop::Abort(signal) => tokio::select! {
                ending = self.aborted(&mut run, signal) => Some(ending),
                lost = lease.hold() => {
                    tracing::error!(%id, error = %lost, "lost the deploy's lease while aborting it; another host carries it on");
                    None
                }
            },
            Stop::LostLock(lost) => {
                tracing::error!(%id, error = %lost, "lost the deploy's lease; another host carries it on");
                None
            }
        };
        let told = match ending {
            Some(ending) => self.finish(&mut run, ending).await,
            None => false,
        };
        if told {
            self.forget(&run).await;
        }
        lease.release().await;
        self.pokes.lock().expect("pokes lock").remove(&id);
        self.tell_end(&mut run, told).await;
    }

    /// Drops an ended deploy from the active index, and its signals; prunes old records.
    async fn forget(&self, run: &Run) {
        let _ = self.store.delete(&env_keys::active(&run.user, &run.record.env, &run.record.id), Precondition::Any).await;
        signals::clear(&self.store, &run.user, &run.record.id).await;
        if let Err(e) = self.prune(&run.user, &run.record.env).await {
            tracing::warn!(env = %run.record.env, error = %e, "could not prune old deploys");
        }
    }

    /// Ends a deploy a user aborted: during the rollout the previous release is put back.
    async fn aborted(&self, run: &mut Run, signal: Signal) -> Ending {
        let who = signal.by;
        if run.record.status != DeployStatus::RollingOut {
            let message = format!("aborted by {who} while {}; nothing was rolled out", status_words(run.record.status));
            return Ending::Aborted(failure("deploy.aborted", message));
        }
        if self.targets.is_none() {
            return Ending::Aborted(failure("deploy.aborted", format!("aborted by {who}")));
        }
        match self.put_back(run).await {
            Ok(()) => {
                let now = match run.record.stable {
                    Some(stable) => format!("release {stable} serves alone again"),
                    None => "the new release was removed".to_owned(),
                };
                Ending::Aborted(failure("deploy.aborted", format!("aborted by {who} during the rollout; {now}")))
            }
            Err(e) => Ending::Failed(failure(&e.code, format!("aborted by {who}, but putting the previous release back failed: {}", e.message))),
        }
    }

    /// The release that served before serves alone again; the candidate is removed.
    async fn put_back(&self, run: &mut Run) -> Result<(), DeployFailure> {
        let targets = self.targets.clone().ok_or_else(|| failure("kubernetes.not_configured", "no Kubernetes cluster is configured"))?;
        let env = self.envs.get(&run.user, &run.env_name).await.map_err(|e| failure("env.unavailable", format!("the env could not be read: {e}")))?;
        let target = targets.target(&run.user, &env.spec, run.release_spec());
        rollout::restore(run, &*target, env.spec.replicas).await
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
        if let Err(ending) = run.set_status(DeployStatus::RollingOut).await {
            return ending;
        }
        self.roll_out(run).await
    }

    /// The build stage: the image builder runs as a plain step of the deploy, in its
    /// task and under its lease, its progress told to the deploy's watchers.
    async fn build(&self, run: &mut Run, prepared: PreparedBuild) -> Result<(), Ending> {
        // The validator plugins ran on the request, before it was accepted, so a refused
        // deploy leaves no record; this step records that they passed.
        run.set_status(DeployStatus::Validating).await?;
        run.set_status(DeployStatus::Building).await?;
        let image_id = uuid::Uuid::new_v4().simple().to_string();
        let started = self.images.begin(&run.user, &image_id, prepared, &run.lease).await.map_err(|e| Ending::Failed(build_failure(e)))?;
        run.record.image_build = Some(image_id);
        run.save().await.map_err(Ending::Failed)?;
        let (told, mut progress) = tokio::sync::mpsc::unbounded_channel::<BuildEvent>();
        let tell: Progress = Arc::new(move |event| {
            let _ = told.send(event);
        });
        let (user, lease) = (run.user.clone(), run.lease.clone());
        let building = self.images.run(&user, started, tell, &lease);
        tokio::pin!(building);
        let mut throttle = ProgressThrottle::default();
        let built = loop {
            tokio::select! {
                built = &mut building => break built,
                Some(event) = progress.recv() => self.tell_build(run, event, &mut throttle).await?,
            }
        };
        while let Ok(event) = progress.try_recv() {
            self.tell_build(run, event, &mut throttle).await?;
        }
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

    /// One build event: `pushing` once bytes go to the registry; bytes a few times a second.
    async fn tell_build(&self, run: &mut Run, event: BuildEvent, throttle: &mut ProgressThrottle) -> Result<(), Ending> {
        let pushing = matches!(&event, BuildEvent::Bytes { .. })
            || matches!(&event, BuildEvent::Step { step, .. } if ["layer", "config", "manifest", "push"].contains(&step.as_str()));
        if pushing && run.record.status == DeployStatus::Building {
            run.set_status(DeployStatus::Pushing).await?;
        }
        if throttle.lets_through(&event) {
            run.journal.append(&DeployEvent::Build(event)).await;
        }
        Ok(())
    }

    /// The strategy loop. When the target or the store fails under it, the previous
    /// release is put back as far as they let us.
    async fn roll_out(&self, run: &mut Run) -> Ending {
        let Some(targets) = self.targets.clone() else {
            return Ending::Failed(failure("kubernetes.not_configured", "no Kubernetes cluster is configured"));
        };
        let env = match self.envs.get(&run.user, &run.env_name).await {
            Ok(env) => env,
            Err(e) => return Ending::Failed(failure("env.unavailable", e.to_string())),
        };
        let limits = Limits {
            deadline: Duration::from_secs(env.spec.rollout_deadline_secs.unwrap_or(self.config.deploys.rollout_deadline_secs)),
            max_replicas: self.config.deploys.max_replicas,
        };
        let target = targets.target(&run.user, &env.spec, run.release_spec());
        match rollout::roll(run, &*target, &env.spec, &limits).await {
            Ok(ending) => ending,
            Err(cause) => {
                if let Err(e) = rollout::restore(run, &*target, env.spec.replicas).await {
                    tracing::error!(id = %run.record.id, error = %e.message, "could not restore the previous release");
                }
                Ending::Failed(cause)
            }
        }
    }

    /// Records how the deploy ended. Returns whether the final record is stored: only
    /// then are watchers told, and is the deploy dropped from the active index. One
    /// not stored stays active, for a host to carry on once the store answers again.
    async fn finish(&self, run: &mut Run, ending: Ending) -> bool {
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
                    run.lease.check().map_err(|fenced| fenced.to_string())?;
                    self.envs.record_release(&run.user, &run.env_name, &release).await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(())
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
        match run.persist().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(id = %run.record.id, error = %e, "could not record the deploy's end; it stays active for a host to settle");
                false
            }
        }
    }

    /// Tells watchers the record as it ended, once the env is free again.
    async fn tell_end(&self, run: &mut Run, stored: bool) {
        if stored {
            run.journal.append_unfenced(&DeployEvent::Record(Box::new(run.record.clone()))).await;
            run.tell_listener();
        }
    }

    /// One pass over the active index: each deploy whose lock is free is resumed when
    /// it can be (a rollout with its image built and its strategy loaded), and failed
    /// cleanly when it cannot. None is left active without a live lease.
    pub async fn resume_once(self: &Arc<Self>) -> Result<(), StoreError> {
        jobs::Recover::recover_once(self.clone()).await
    }
}

#[async_trait::async_trait]
impl jobs::Recover for Deploys {
    fn kind(&self) -> &'static str {
        "deploys"
    }

    async fn recover_once(self: Arc<Self>) -> Result<(), StoreError> {
        for entry in self.store.list(env_keys::ACTIVE).await? {
            let Ok(active) = serde_json::from_slice::<env_keys::ActiveDeploy>(&entry.value) else { continue };
            let id = active.id.clone();
            let lease = match Lease::take(&self.store, &env_keys::lock(&active.user, &active.env), &id, LEASE_TTL).await {
                Ok(lease) => lease,
                Err(StoreError::Locked { .. }) => continue,
                Err(e) => return Err(e),
            };
            let (mut record, stored) = match store::get_json::<DeployRecord>(&*self.store, &keys::record(&active.user, &id)).await? {
                Some((record, stored)) if !record.status.is_final() => (record, stored),
                _ => {
                    self.store.delete(&entry.key, Precondition::Any).await?;
                    lease.release().await;
                    continue;
                }
            };
            let env_name = match EnvName::parse(&record.env) {
                Ok(name) => name,
                Err(_) => {
                    tracing::error!(%id, env = %record.env, "an active deploy names an impossible env; dropping it from the index");
                    self.store.delete(&entry.key, Precondition::Any).await?;
                    lease.release().await;
                    continue;
                }
            };
            let journal = Arc::new(Journal::open(&self.store, journal::prefix(active.user.as_str(), "deploy", &id), Some(lease.clone())).await?);
            let plugin = self.plugins.strategy(&record.strategy).cloned();
            let resumed = match &plugin {
                Some(_) => self.resumption(&active.user, &mut record).await,
                None => Err(failure(
                    "deploy.strategy_gone",
                    format!(
                        "the host running this deploy stopped, and this platform no longer has its strategy {:?} to carry it on. Deploy again with another strategy",
                        record.strategy
                    ),
                )),
            };
            tracing::warn!(%id, status = ?record.status, resumed = resumed.is_ok(), "taking over a deploy whose host stopped");
            let settings = record.settings.to_string();
            let mut run = Run::new(active.user.clone(), env_name, record, stored, settings, plugin, journal, lease.clone(), self.store.clone());
            run.listener = self.listener();
            let this = self.clone();
            tokio::spawn(async move {
                match resumed {
                    Ok(begin) => this.drive(run, begin).await,
                    Err(mut cause) => {
                        // Mid-rollout, the previous release is put back before the deploy ends.
                        if run.record.status == DeployStatus::RollingOut && run.record.image.is_some() {
                            match this.put_back(&mut run).await {
                                Ok(()) => cause.message.push_str("; the previous release was put back"),
                                Err(e) => cause.message.push_str(&format!("; putting the previous release back failed: {}", e.message)),
                            }
                        }
                        let told = this.finish(&mut run, Ending::Failed(cause)).await;
                        if told {
                            this.forget(&run).await;
                        }
                        lease.release().await;
                        this.tell_end(&mut run, told).await;
                    }
                }
            });
        }
        Ok(())
    }
}

impl Deploys {
    /// How a deploy taken over goes on: a rollout from its step; a release whose image
    /// exists (a rollback, or a build that ended just before the host did) from its
    /// start; a build begun again from the WAR, since the same WAR on the same base
    /// gives the same image, unless the WAR was replaced meanwhile, or builds of it
    /// already stopped their hosts `MAX_BUILDS_RESUMED` times (a WAR whose build takes its
    /// host down must not take down every host in turn).
    async fn resumption(&self, user: &UserName, record: &mut DeployRecord) -> Result<Begin, DeployFailure> {
        const MAX_BUILDS_RESUMED: u32 = 2;
        match (&record.image, record.status) {
            (Some(_), DeployStatus::RollingOut) => return Ok(Begin::Rollout),
            (Some(_), _) => return Ok(Begin::Release),
            (None, _) => {}
        }
        let stopped = format!("the host running this deploy stopped while it was {}", status_words(record.status));
        if record.builds_resumed >= MAX_BUILDS_RESUMED {
            return Err(failure(
                "deploy.interrupted",
                format!("{stopped}, and its build was begun again {} times already, each time stopping its host; nothing was rolled out. Check the WAR, then deploy again", record.builds_resumed),
            ));
        }
        record.builds_resumed += 1;
        let request = ImageRequest { war: record.war.clone(), env: record.env.clone(), version: record.version.clone() };
        match self.images.prepare(user, request).await {
            Ok(prepared) if prepared.war.sha256 == record.war_sha256 => Ok(Begin::Build(prepared)),
            Ok(_) => Err(failure(
                "deploy.interrupted",
                format!("{stopped}, and WAR {} was replaced since, so it is not built again; nothing was rolled out. Deploy again", record.war),
            )),
            Err(e) => Err(failure(
                "deploy.interrupted",
                format!("{stopped}, and it cannot be built again ({}); nothing was rolled out. Deploy again", build_failure(e).message),
            )),
        }
    }
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
