//! Watch caches of warship's Deployments, pods and Services: one reflector per kind
//! (a list, then a watch, restarted with backoff), keeping a small projection of each
//! object indexed by namespace and env. Status reads and rollout observations come from
//! here, never from a LIST per request; every change bumps one generation counter that
//! rollouts wait on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

use super::objects::{ENV, IMAGE, MANAGED_BY, MANAGER, RELEASE, VERSION, WAR_SHA256};

/// A pod as status and rollouts need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PodView {
    pub name: String,
    #[serde(skip)]
    pub release: Option<u32>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    pub ready: bool,
    /// Container restarts.
    pub restarts: u32,
    /// The node it was scheduled on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Being deleted.
    pub terminating: bool,
    /// Why a container waits (`ImagePullBackOff`, `CrashLoopBackOff`), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// What the kubelet said with that reason (`Back-off pulling image …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_message: Option<String>,
    /// The exit code of the container's last run, when it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
    /// Why the container's last run ended (`OOMKilled`, `Error`), when it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit_reason: Option<String>,
    /// Every container is running (started, whether or not its probe passes).
    pub running: bool,
    /// Why the pod as a whole stopped (`Evicted`), and the kubelet's words for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the scheduler has not placed it (`0/3 nodes are available: 3 Insufficient cpu.`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
    /// Since when it has been unready (Unix milliseconds); `None` while ready.
    #[serde(skip)]
    pub unready_since_ms: Option<i64>,
}

/// A Deployment as status and rollouts need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeploymentView {
    pub name: String,
    #[serde(skip)]
    pub release: Option<u32>,
    /// Replicas asked for.
    pub desired: u32,
    /// Ready replicas, as the Deployment controller counts them.
    pub ready: u32,
    pub image: String,
    pub version: String,
    pub war_sha256: String,
    /// Why Kubernetes refused to create some of its pods (a quota, a LimitRange), while
    /// it does.
    #[serde(skip)]
    pub refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
}

/// Where an object belongs: its namespace and env.
type EnvKey = (String, String);

/// A kind's objects that belong to an env, by name.
struct Index<V> {
    by_env: HashMap<EnvKey, BTreeMap<String, Arc<V>>>,
    /// Objects listed since the last restart of the watch, swapped in when the list ends.
    relisting: Option<HashMap<EnvKey, BTreeMap<String, Arc<V>>>>,
    synced: bool,
}

impl<V> Default for Index<V> {
    fn default() -> Self {
        Self { by_env: HashMap::new(), relisting: None, synced: false }
    }
}

fn insert<V>(map: &mut HashMap<EnvKey, BTreeMap<String, Arc<V>>>, key: EnvKey, name: String, view: V) {
    map.entry(key).or_default().insert(name, Arc::new(view));
}

fn remove<V>(map: &mut HashMap<EnvKey, BTreeMap<String, Arc<V>>>, key: &EnvKey, name: &str) {
    if let Some(objects) = map.get_mut(key) {
        objects.remove(name);
        if objects.is_empty() {
            map.remove(key);
        }
    }
}

impl<V> Index<V> {
    fn apply(&mut self, event: Event<(EnvKey, String, V)>) {
        match event {
            Event::Apply((key, name, view)) => insert(&mut self.by_env, key, name, view),
            Event::Delete((key, name, _)) => remove(&mut self.by_env, &key, &name),
            Event::Init => self.relisting = Some(HashMap::new()),
            Event::InitApply((key, name, view)) => insert(self.relisting.get_or_insert_with(HashMap::new), key, name, view),
            Event::InitDone => {
                self.by_env = self.relisting.take().unwrap_or_default();
                self.synced = true;
            }
        }
    }
}

/// What a kind contributes to the caches: its projection, keyed by env.
trait Project: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static {
    type View: Send + Sync + 'static;
    fn project(&self) -> Self::View;
}

fn env_key<K: Resource>(object: &K) -> Option<(EnvKey, String)> {
    let meta = object.meta();
    let env = meta.labels.as_ref()?.get(ENV)?.clone();
    Some(((meta.namespace.clone()?, env), meta.name.clone()?))
}

fn release_of<K: Resource>(object: &K) -> Option<u32> {
    object.meta().labels.as_ref()?.get(RELEASE)?.parse().ok()
}

impl Project for Pod {
    type View = PodView;
    fn project(&self) -> PodView {
        let status = self.status.as_ref();
        let ready_condition = status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let containers = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
        let unready_since_ms = (!ready).then(|| {
            ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .or(self.metadata.creation_timestamp.as_ref())
                .map(|t| t.0.as_millisecond())
                .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp() * 1000)
        });
        PodView {
            name: self.metadata.name.clone().unwrap_or_default(),
            release: release_of(self),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into()),
            ready,
            restarts: containers.iter().map(|c| c.restart_count.max(0) as u32).sum(),
            node: self.spec.as_ref().and_then(|s| s.node_name.clone()),
            terminating: self.metadata.deletion_timestamp.is_some(),
            waiting: containers
                .iter()
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone()),
            waiting_message: containers
                .iter()
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone()),
            last_exit_code: containers
                .iter()
                .find_map(|c| Some(c.last_state.as_ref()?.terminated.as_ref()?.exit_code)),
            last_exit_reason: containers.iter().find_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.reason.clone()),
            running: !containers.is_empty() && containers.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())),
            reason: status.and_then(|s| s.reason.clone()),
            message: status.and_then(|s| s.message.clone()),
            unschedulable: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False"))
                .map(|c| c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default()),
            unready_since_ms,
        }
    }
}

impl Project for Deployment {
    type View = DeploymentView;
    fn project(&self) -> DeploymentView {
        let annotation = |key: &str| self.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned().unwrap_or_default();
        DeploymentView {
            name: self.metadata.name.clone().unwrap_or_default(),
            release: release_of(self),
            desired: self.spec.replicas.unwrap_or(1).max(0) as u32,
            ready: self.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0).max(0) as u32,
            image: annotation(IMAGE),
            version: annotation(VERSION),
            war_sha256: annotation(WAR_SHA256),
            refused: self
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| {
                    c.iter().find(|c| {
                        c.type_.as_deref() == Some("ReplicaFailure")
                            && c.status.as_deref() == Some("True")
                    })
                })
                .and_then(|c| c.message.clone()),
        }
    }
}

impl Project for Service {
    type View = ServiceView;
    fn project(&self) -> ServiceView {
        let spec = self.spec.as_ref();
        ServiceView {
            name: self.metadata.name.clone().unwrap_or_default(),
            selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
            cluster_ip: spec.and_then(|s| s.cluster_ip.clone()),
        }
    }
}

/// What the caches hold of one env.
#[derive(Debug, Clone, Default)]
pub struct EnvObjects {
    pub service: Option<Arc<ServiceView>>,
    /// Releases' own Services, which the env's route weighs against each other.
    pub release_services: Vec<Arc<ServiceView>>,
    pub deployments: Vec<Arc<DeploymentView>>,
    pub pods: Vec<Arc<PodView>>,
}

impl EnvObjects {
    pub fn is_empty(&self) -> bool {
        self.service.is_none() && self.release_services.is_empty() && self.deployments.is_empty() && self.pods.is_empty()
    }

    pub fn pods_of(&self, release: u32) -> impl Iterator<Item = &Arc<PodView>> {
        self.pods.iter().filter(move |p| p.release == Some(release))
    }

    pub fn deployment_of(&self, release: u32) -> Option<&Arc<DeploymentView>> {
        self.deployments.iter().find(|d| d.release == Some(release))
    }
}

pub struct Caches {
    deployments: Arc<RwLock<Index<DeploymentView>>>,
    pods: Arc<RwLock<Index<PodView>>>,
    services: Arc<RwLock<Index<ServiceView>>>,
    generation: watch::Receiver<u64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Caches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn read<V>(index: &RwLock<Index<V>>, key: &EnvKey) -> Vec<Arc<V>> {
    let index = index.read().expect("cache lock");
    index.by_env.get(key).map(|objects| objects.values().cloned().collect()).unwrap_or_default()
}

impl Caches {
    /// Starts the three reflectors, cluster-wide, on warship's objects only.
    pub fn start(client: &Client) -> Self {
        let (bump, generation) = watch::channel(0u64);
        let bump = Arc::new(bump);
        let deployments = Arc::new(RwLock::new(Index::default()));
        let pods = Arc::new(RwLock::new(Index::default()));
        let services = Arc::new(RwLock::new(Index::default()));
        let tasks = vec![
            tokio::spawn(reflect(Api::<Deployment>::all(client.clone()), deployments.clone(), bump.clone())),
            tokio::spawn(reflect(Api::<Pod>::all(client.clone()), pods.clone(), bump.clone())),
            tokio::spawn(reflect(Api::<Service>::all(client.clone()), services.clone(), bump)),
        ];
        Self { deployments, pods, services, generation, tasks }
    }

    /// Every kind has been listed once.
    pub fn synced(&self) -> bool {
        self.deployments.read().expect("cache lock").synced
            && self.pods.read().expect("cache lock").synced
            && self.services.read().expect("cache lock").synced
    }

    /// A receiver that wakes on every change of any cache.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }

    /// Waits until every kind has been listed once.
    pub async fn wait_synced(&self) {
        let mut changes = self.changes();
        while !self.synced() {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), changes.changed()).await;
        }
    }

    pub fn env(&self, namespace: &str, env: &str) -> EnvObjects {
        let key = (namespace.to_owned(), env.to_owned());
        let (mut service, release_services): (Vec<_>, Vec<_>) = read(&self.services, &key).into_iter().partition(|s| s.name == env);
        EnvObjects {
            service: service.pop(),
            release_services,
            deployments: read(&self.deployments, &key),
            pods: read(&self.pods, &key),
        }
    }
}

async fn reflect<K: Project>(api: Api<K>, index: Arc<RwLock<Index<K::View>>>, bump: Arc<watch::Sender<u64>>)
where
    K::View: Send + Sync,
{
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        let projected = match event {
            Event::Apply(k) => env_key(&k).map(|(key, name)| Event::Apply((key, name, k.project()))),
            Event::Delete(k) => env_key(&k).map(|(key, name)| Event::Delete((key, name, k.project()))),
            Event::InitApply(k) => env_key(&k).map(|(key, name)| Event::InitApply((key, name, k.project()))),
            Event::Init => Some(Event::Init),
            Event::InitDone => Some(Event::InitDone),
        };
        if let Some(event) = projected {
            index.write().expect("cache lock").apply(event);
            bump.send_modify(|g| *g += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(env: &str) -> EnvKey {
        ("ns".into(), env.into())
    }

    #[test]
    fn a_relist_replaces_what_was_there_only_once_it_is_complete() {
        let mut index = Index::<u32>::default();
        index.apply(Event::Init);
        index.apply(Event::InitApply((key("a"), "a-r1".into(), 1)));
        index.apply(Event::InitDone);
        index.apply(Event::Apply((key("a"), "a-r2".into(), 2)));
        assert_eq!(index.by_env[&key("a")].len(), 2);
        assert!(index.synced);
        // The watch restarts: until the new list ends, the old objects stay visible.
        index.apply(Event::Init);
        index.apply(Event::InitApply((key("b"), "b-r1".into(), 3)));
        assert_eq!(index.by_env[&key("a")].len(), 2);
        index.apply(Event::InitDone);
        assert!(!index.by_env.contains_key(&key("a")), "a-r1 and a-r2 were deleted while the watch was down");
        assert_eq!(*index.by_env[&key("b")]["b-r1"], 3);
        index.apply(Event::Delete((key("b"), "b-r1".into(), 3)));
        assert!(index.by_env.is_empty(), "an env with nothing left has no entry");
    }
}
