//! The deploy engine end to end without external parts: the embedded store, the real
//! built-in strategy plugins, and the in-memory cluster as the target.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::target::memory::{MemoryCluster, PodFault};
use super::*;
use crate::config::Config;
use crate::domain::{EnvSpec, Traffic};
use crate::envs::Origin;
use crate::wars::Wars;

struct Bed {
    deploys: Arc<Deploys>,
    envs: Envs,
    store: DynStore,
    cluster: MemoryCluster,
    user: UserName,
    env: EnvName,
    _dir: tempfile::TempDir,
}

fn plugins() -> Arc<Plugins> {
    static PLUGINS: OnceLock<Arc<Plugins>> = OnceLock::new();
    PLUGINS.get_or_init(|| Arc::new(Plugins::load(&crate::plugins::Runtime::new(None).unwrap(), &config(std::path::Path::new("/nowhere"), "")).unwrap())).clone()
}

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let text = format!(
        "[store]\ndata_dir = \"{}\"\n[deploys]\nrollout_deadline_secs = 5\n{extra}\n[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"warship/tomcat:10.1-jdk17\"\n",
        dir.display()
    );
    Config::from_toml(&text, std::path::Path::new("platform.toml"), []).unwrap()
}

/// A store whose fenced writes fail while `down` is set, as a store outage would.
struct Flaky {
    inner: DynStore,
    down: std::sync::atomic::AtomicBool,
    refused: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl store::Store for Flaky {
    async fn get(&self, key: &str) -> store::StoreResult<Option<store::Versioned>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, when: Precondition) -> store::StoreResult<u64> {
        self.inner.put(key, value, when).await
    }
    async fn put_held(&self, key: &str, value: Vec<u8>, when: Precondition, lease: &store::LockLease) -> store::StoreResult<u64> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            self.refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::Unavailable("etcd: connection refused (scripted)".into()));
        }
        self.inner.put_held(key, value, when, lease).await
    }
    async fn delete(&self, key: &str, when: Precondition) -> store::StoreResult<bool> {
        self.inner.delete(key, when).await
    }
    async fn list(&self, prefix: &str) -> store::StoreResult<Vec<store::Versioned>> {
        self.inner.list(prefix).await
    }
    async fn try_lock(&self, key: &str, holder: &str, ttl: Duration) -> store::StoreResult<store::LockLease> {
        self.inner.try_lock(key, holder, ttl).await
    }
    async fn renew_lock(&self, lease: &store::LockLease) -> store::StoreResult<()> {
        self.inner.renew_lock(lease).await
    }
    async fn release_lock(&self, lease: &store::LockLease) -> store::StoreResult<()> {
        self.inner.release_lock(lease).await
    }
    async fn ping(&self) -> store::StoreResult<()> {
        self.inner.ping().await
    }
    async fn watch(&self, prefix: &str, after: u64) -> store::StoreResult<store::Watch> {
        self.inner.watch(prefix, after).await
    }
}

/// An env `shop` of `replicas` with releases 1 and 2 recorded, release 2 serving.
async fn bed(replicas: u32, extra: &str) -> Bed {
    let (store, dir) = store::scratch();
    bed_on(store, dir, replicas, extra).await
}

async fn bed_on(store: DynStore, dir: tempfile::TempDir, replicas: u32, extra: &str) -> Bed {
    let config = Arc::new(config(dir.path(), extra));
    let plugins = plugins();
    let envs = Envs::new(store.clone(), config.clone(), plugins.clone());
    let wars = Arc::new(Wars::new(store.clone(), dir.path().join("wars"), config.uploads.clone()).unwrap());
    let client = crate::registry::RegistryClient::from_config(&config.registry).unwrap();
    let platform = crate::domain::Platform::parse(&config.build.platform).unwrap();
    let builder: Arc<dyn crate::image::Builder> = Arc::new(crate::image::OciBuilder::new(client.clone(), platform));
    let images = Arc::new(Images::new(store.clone(), config.clone(), plugins.clone(), envs.clone(), wars, builder, client));
    let cluster = MemoryCluster::new();
    cluster.set_ready_after(Duration::from_millis(5));
    let targets: Arc<dyn Targets> = Arc::new(cluster.clone());
    let deploys = Deploys::new(store.clone(), config, plugins, envs.clone(), images, Some(targets));
    let user = UserName::parse("alice").unwrap();
    let spec: EnvSpec = serde_json::from_value(serde_json::json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": replicas})).unwrap();
    envs.create(&user, spec.clone(), Origin::default()).await.unwrap();
    let env = EnvName::parse("shop").unwrap();
    for revision in [1, 2] {
        let release = Release {
            revision,
            image: format!("registry/alice/shop@sha256:{revision:064}"),
            digest: format!("sha256:{revision:064}"),
            war: "shop/shop.war".into(),
            war_sha256: "f00".into(),
            version: format!("{revision}.0"),
            strategy: "recreate".into(),
            deploy: format!("seed-{revision}"),
            by: "alice".into(),
            at: time::OffsetDateTime::now_utc(),
        };
        envs.record_release(&user, &env, &release).await.unwrap();
    }
    let serving = crate::domain::ReleaseSpec { revision: 2, image: "i".into(), version: "2.0".into(), war_sha256: "f00".into(), deploy_id: "seed-2".into() };
    let target = cluster.target(&user, &spec, serving);
    target.apply(Change::Candidate { replicas }).await.unwrap();
    target.apply(Change::Route { traffic: Traffic::Candidate, weight: None, stable: None, candidate: 2 }).await.unwrap();
    Bed { deploys, envs, store, cluster, user, env, _dir: dir }
}

impl Bed {
    async fn rollback(&self, revision: u32, strategy: &str) -> Result<DeployRecord, DeployError> {
        let request = RollbackRequest { revision: Some(revision), strategy: Some(strategy.into()) };
        self.deploys.rollback(&self.user, &self.env, request).await
    }

    /// Release 1's image again, by a strategy with these settings.
    async fn release_1_by(&self, strategy: &str, settings: &str) -> DeployRecord {
        let plugin = self.deploys.plugins.strategy(strategy).cloned().unwrap();
        let settings = plugin.settings_with(&serde_json::from_str(settings).unwrap()).unwrap().unwrap();
        let strategy = Strategy { name: strategy.into(), plugin, settings };
        let releases = self.envs.releases(&self.user, &self.env).await.unwrap();
        self.deploys
            .launch(&self.user, &self.env, strategy, Begin::Release, |record, env| {
                let target = rollback_target(env, &releases, Some(1))?;
                record.image = Some(target.image);
                record.digest = Some(target.digest);
                record.version = target.version;
                Ok(())
            })
            .await
            .unwrap()
    }

    async fn ended(&self, id: &str) -> DeployRecord {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let record = self.deploys.get(&self.user, id).await.unwrap();
            if record.status.is_final() && self.running().await.is_none() {
                return record;
            }
            assert!(std::time::Instant::now() < deadline, "deploy {id} did not end: {record:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn running(&self) -> Option<String> {
        let active = self.store.list(&env_keys::active_of_env(&self.user, "shop")).await.unwrap();
        active.first().map(|e| e.key.clone())
    }

    async fn at_step(&self, id: &str, action: &str) -> DeployRecord {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let record = self.deploys.get(&self.user, id).await.unwrap();
            if record.step.as_ref().is_some_and(|s| s.action == action) {
                return record;
            }
            assert!(!record.status.is_final() && std::time::Instant::now() < deadline, "deploy {id} never reached {action}: {record:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_runs_the_strategy_on_the_target_and_records_a_new_release() {
    let bed = bed(3, "").await;
    let started = bed.rollback(1, "recreate").await.unwrap();
    assert_eq!((started.revision, started.stable, started.rollback_of), (3, Some(2), Some(1)));
    let ended = bed.ended(&started.id).await;
    assert_eq!(ended.status, DeployStatus::Succeeded, "{ended:#?}");
    let view = bed.cluster.env("alice", "shop");
    assert_eq!(view.releases.keys().copied().collect::<Vec<_>>(), vec![3], "release 2 is gone, 3 runs");
    assert_eq!(view.releases[&3], (3, 3));
    assert_eq!(view.traffic.map(|t| t.0), Some(Traffic::Candidate));
    let env = bed.envs.get(&bed.user, &bed.env).await.unwrap();
    assert_eq!(env.current.as_ref().map(|r| (r.revision, r.digest.clone())), Some((3, format!("sha256:{:064}", 1))));
    let statuses: Vec<DeployStatus> = ended.history.iter().map(|m| m.status).collect();
    assert_eq!(statuses.first(), Some(&DeployStatus::Queued));
    assert_eq!(statuses.last(), Some(&DeployStatus::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_finishing_as_the_next_request_arrives_never_reuses_a_revision() {
    let bed = bed(1, "").await;
    let mut revisions = Vec::new();
    let mut last = bed.rollback(1, "recreate").await.unwrap();
    revisions.push(last.revision);
    // bench/revision-race runs 1,000.
    let rounds: u32 = std::env::var("WARSHIP_RACE_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(40);
    let mut refused = 0u32;
    for round in 0..rounds {
        // Ask again at once, while the previous deploy may be finishing: either it
        // waits for the lock to be let go, or it is told which deploy runs.
        let next = loop {
            match bed.rollback(if round % 2 == 0 { 2 } else { 1 }, "recreate").await {
                Ok(record) => break record,
                Err(DeployError::Running { running, .. }) => {
                    assert_eq!(running, last.id);
                    refused += 1;
                }
                Err(DeployError::Invalid(v)) if v[0].code == "rollback.revision.current" => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        assert_eq!(bed.ended(&last.id).await.status, DeployStatus::Succeeded);
        revisions.push(next.revision);
        last = next;
    }
    bed.ended(&last.id).await;
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "revisions only grow: {revisions:?}");
    let releases = bed.envs.releases(&bed.user, &bed.env).await.unwrap();
    let mut deploys: Vec<&str> = releases.iter().map(|r| r.deploy.as_str()).collect();
    deploys.sort();
    deploys.dedup();
    assert_eq!(deploys.len(), releases.len(), "each release was recorded by one deploy");
    let reused = revisions.len() - { let mut r = revisions.clone(); r.dedup(); r.len() };
    eprintln!("revision race: {rounds} rounds, {} deploys, {reused} revisions reused, {} release records, {refused} requests told a deploy runs", revisions.len(), releases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_strategy_is_gone_is_failed_when_taken_over() {
    let bed = bed(2, "").await;
    let id = "0123456789abcdef0123456789abcdef";
    let mut record = DeployRecord::queued(id.into(), "shop".into(), 3, Some(2), ("vanished".into(), serde_json::json!({})), "alice".into());
    record.status = DeployStatus::RollingOut;
    record.image = Some("registry/alice/shop@sha256:1".into());
    store::put_json(&*bed.store, &keys::record(&bed.user, id), &record, Precondition::Absent).await.unwrap();
    let active = env_keys::ActiveDeploy { user: bed.user.clone(), env: "shop".into(), id: id.into() };
    store::put_json(&*bed.store, &env_keys::active(&bed.user, "shop", id), &active, Precondition::Absent).await.unwrap();
    bed.deploys.resume_once().await.unwrap();
    let ended = bed.ended(id).await;
    assert_eq!(ended.status, DeployStatus::Failed);
    let error = ended.error.unwrap();
    assert_eq!(error.code, "deploy.strategy_gone");
    assert!(error.message.contains("\"vanished\"") && error.message.contains("put back"), "{}", error.message);
    // Release 2 asks its replicas and the candidate is gone (its pods may still be starting).
    let view = bed.cluster.env("alice", "shop");
    assert_eq!((view.releases.keys().copied().collect::<Vec<_>>(), view.releases[&2].0), (vec![2], 2), "release 2 serves alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_asking_past_the_platforms_maximum_fails_naming_it() {
    let bed = bed(3, "max_replicas = 2").await;
    let started = bed.rollback(1, "recreate").await.unwrap();
    let ended = bed.ended(&started.id).await;
    assert_eq!(ended.status, DeployStatus::Failed);
    let error = ended.error.unwrap();
    assert_eq!(error.code, "plugin.failed");
    assert!(error.message.contains("strategy recreate") && error.message.contains("maximum of 2"), "{}", error.message);
    assert_eq!(bed.cluster.env("alice", "shop").releases.keys().copied().collect::<Vec<_>>(), vec![2], "release 2 serves alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_waits_for_promotion_and_an_abort_puts_the_stable_release_back() {
    let bed = bed(4, "").await;
    let started = bed.release_1_by("canary", r#"{"steps": [{"weight": 25}, {"await-promotion": true}]}"#).await;
    bed.at_step(&started.id, "await-promotion").await;
    let view = bed.cluster.env("alice", "shop");
    assert!(view.releases.contains_key(&2) && view.releases.contains_key(&3), "both run: {view:?}");
    bed.deploys.abort(&bed.user, &started.id).await.unwrap();
    let ended = bed.ended(&started.id).await;
    assert_eq!(ended.status, DeployStatus::Aborted);
    let view = bed.cluster.env("alice", "shop");
    assert_eq!(view.releases.keys().copied().collect::<Vec<_>>(), vec![2]);
    assert_eq!(view.releases[&2].0, 4, "scaled back to the env's replicas");
    assert_eq!(view.traffic.map(|t| t.0), Some(Traffic::Stable));
    assert_eq!((ended.weight, ended.split), (None, None), "the stable release has it all again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_on_exact_weights_sets_the_candidates_share_of_requests_and_says_so() {
    let bed = bed(4, "").await;
    bed.cluster.set_exact_weights(true);
    let started = bed.release_1_by("canary", r#"{"steps": [{"weight": 25}, {"await-promotion": true}]}"#).await;
    let waiting = bed.at_step(&started.id, "await-promotion").await;
    assert_eq!((waiting.traffic, waiting.weight, waiting.split), (Traffic::Both, Some(25), Some(crate::domain::Split::Weights)));
    let view = bed.cluster.env("alice", "shop");
    assert_eq!(view.weight, Some(25));
    assert_eq!((view.releases[&2].0, view.releases[&3].0), (4, 1), "the stable keeps its pods; the candidate has its share");
    bed.deploys.promote(&bed.user, &started.id).await.unwrap();
    let ended = bed.ended(&started.id).await;
    assert_eq!(ended.status, DeployStatus::Succeeded, "{ended:#?}");
    assert_eq!((ended.traffic, ended.weight, ended.split), (Traffic::Candidate, None, None));
    let view = bed.cluster.env("alice", "shop");
    assert_eq!((view.releases.keys().copied().collect::<Vec<_>>(), view.weight), (vec![3], None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_exact_weights_a_canary_splits_by_pods_and_says_so() {
    let bed = bed(4, "").await;
    let started = bed.release_1_by("canary", r#"{"steps": [{"weight": 25}, {"await-promotion": true}]}"#).await;
    let waiting = bed.at_step(&started.id, "await-promotion").await;
    assert_eq!((waiting.traffic, waiting.weight, waiting.split), (Traffic::Both, None, Some(crate::domain::Split::PodRatio)));
    assert_eq!(bed.cluster.env("alice", "shop").weight, None);
    bed.deploys.abort(&bed.user, &started.id).await.unwrap();
    bed.ended(&started.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_never_get_ready_fail_the_rollout_at_its_deadline_with_the_cause() {
    let bed = bed(2, "").await;
    bed.cluster.set_fault("1.0", PodFault::NeverReady);
    let started = bed.rollback(1, "rolling").await.unwrap();
    let ended = bed.ended(&started.id).await;
    assert_eq!(ended.status, DeployStatus::Failed);
    let error = ended.error.unwrap();
    assert_eq!((error.code.as_str(), error.cause), ("rollout.deadline", Some(crate::cluster::diagnosis::Cause::Readiness)));
    assert_eq!(bed.cluster.env("alice", "shop").releases.keys().copied().collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_for_a_moment_mid_rollout_does_not_fail_the_deploy() {
    let (inner, dir) = store::scratch();
    let flaky = Arc::new(Flaky { inner, down: Default::default(), refused: Default::default() });
    let bed = bed_on(flaky.clone(), dir, 2, "").await;
    bed.cluster.set_ready_after(Duration::from_millis(400));
    let started = bed.rollback(1, "rolling").await.unwrap();
    bed.at_step(&started.id, "wait-ready").await;
    flaky.down.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    flaky.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let ended = bed.ended(&started.id).await;
    assert_eq!(ended.status, DeployStatus::Succeeded, "{ended:#?}");
    assert!(flaky.refused.load(std::sync::atomic::Ordering::SeqCst) > 0, "the outage hit the deploy's writes");
    assert_eq!(bed.cluster.env("alice", "shop").releases.keys().copied().collect::<Vec<_>>(), vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_job_died_is_failed_by_the_recovery_loop_and_leaves_the_index() {
    let bed = bed(1, "").await;
    let record = serde_json::json!({
        "id": "b1", "env": "shop", "war": "shop/shop.war", "war_sha256": "f00", "version": "3.0", "builder": "oci",
        "status": "building", "tagged": "registry/alice/shop:3.0", "dockerfile": "FROM x",
        "held_by": ["locks/deploy/alice/shop", "a-deploy-whose-host-died"],
        "created_at": "2026-12-02T00:00:00Z"
    });
    store::put_json(&*bed.store, "u/alice/images/b1", &record, Precondition::Absent).await.unwrap();
    store::put_json(&*bed.store, "images/active/alice/b1", &serde_json::json!({"user": "alice", "id": "b1"}), Precondition::Absent).await.unwrap();
    crate::jobs::Recover::recover_once(bed.deploys.images.clone()).await.unwrap();
    let settled = bed.deploys.images.get(&bed.user, "b1").await.unwrap();
    assert_eq!(settled.status, crate::images::ImageStatus::Failed);
    assert_eq!(settled.error.unwrap().code, "build.interrupted");
    assert!(bed.store.list("images/active/").await.unwrap().is_empty(), "no unfinished build is left without a live lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_cannot_change_what_the_admin_set_unless_it_is_overridable() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[[plugins]]\nname = \"canary\"\nkind = \"strategy\"\nsource = \"builtin:strategy-canary\"\noverridable = [\"max-unready-seconds\"]\n[plugins.settings]\nmax-restarts = 1\nmax-unready-seconds = 60\nsteps = [{weight = 50}]\n[[plugins]]\nname = \"rolling\"\nkind = \"strategy\"\nsource = \"builtin:strategy-rolling\"\n";
    let config = config(dir.path(), extra);
    let plugins = Plugins::load(&crate::plugins::Runtime::new(None).unwrap(), &config).unwrap();
    let canary = plugins.strategy("canary").unwrap();
    let asked: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"max-restarts": 50, "max-unready-seconds": 30, "steps": [{"weight": 10}]}"#).unwrap();
    let mut fixed = canary.fixed_keys(&asked);
    fixed.sort();
    assert_eq!(fixed, ["max-restarts", "steps"], "the admin's settings stay the admin's; max-unready-seconds is listed as overridable");
    let rolling = plugins.strategy("rolling").unwrap();
    let free: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"max-restarts": 50}"#).unwrap();
    assert!(rolling.fixed_keys(&free).is_empty(), "what the admin left unset, a deploy may set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploys_own_settings_are_checked_against_the_strategys_schema_each_field_named() {
    let bed = bed(3, "").await;
    let asked: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"max-restarts": -1, "steps": [{"weight": 250}]}"#).unwrap();
    let Err(DeployError::Invalid(violations)) = bed.deploys.strategy(Some("canary".into()), &asked).await else {
        panic!("accepted settings its schema refuses")
    };
    let mut fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
    fields.sort();
    // The canary's step items are one of two shapes, so the schema names the item.
    assert_eq!(fields, ["settings.max-restarts", "settings.steps.0"]);
    assert!(violations.iter().all(|v| v.code == "deploy.settings.invalid" && v.message.contains("GET /api/v1/plugins")), "{violations:?}");
    // What the schema allows still meets the plugin's own check-config.
    let allowed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"max-restarts": 5}"#).unwrap();
    assert!(bed.deploys.strategy(Some("canary".into()), &allowed).await.is_ok());
}
