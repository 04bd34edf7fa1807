//! An in-memory cluster: releases with pods that become ready after a delay, or never,
//! or crash again and again, as scripted per version. It runs the real rollout loop
//! and real strategy plugins without Kubernetes, in unit tests and for plugin authors.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Change, Observed, Target, Targets, View};
use crate::cluster::diagnosis::{Cause, Diagnosis};
use crate::cluster::ClusterError;
use crate::domain::{EnvSpec, ReleaseSpec, Traffic};
use crate::users::UserName;

/// What a version's pods do instead of becoming ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFault {
    /// They run, and their readiness probe never passes.
    NeverReady,
    /// They exit at once and restart every `restart_every`.
    CrashLoop,
}

/// One env's releases, as a test looks at them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvView {
    /// Revision → (replicas asked, pods ready).
    pub releases: BTreeMap<u32, (u32, u32)>,
    pub traffic: Option<(Traffic, Option<u32>, u32)>,
    /// The candidate's share of requests, while traffic is split by weight.
    pub weight: Option<u8>,
}

#[derive(Clone, Default)]
pub struct MemoryCluster {
    inner: Arc<Inner>,
}

struct Inner {
    envs: Mutex<HashMap<(String, String), EnvState>>,
    faults: Mutex<HashMap<String, PodFault>>,
    ready_after: Mutex<Duration>,
    restart_every: Duration,
    unreachable: AtomicBool,
    /// Envs have a route that splits requests by exact weights.
    exact_weights: AtomicBool,
    writes: AtomicU64,
    changed: Notify,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            envs: Mutex::default(),
            faults: Mutex::default(),
            ready_after: Mutex::new(Duration::from_millis(20)),
            restart_every: Duration::from_millis(100),
            unreachable: AtomicBool::new(false),
            exact_weights: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }
}

#[derive(Default)]
struct EnvState {
    releases: BTreeMap<u32, Release>,
    traffic: Option<(Traffic, Option<u32>, u32)>,
    weight: Option<u8>,
}

struct Release {
    version: String,
    pods: Vec<Instant>,
}

impl MemoryCluster {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a healthy pod takes to become ready.
    pub fn set_ready_after(&self, after: Duration) {
        *self.inner.ready_after.lock().expect("memory cluster lock") = after;
    }

    /// Pods of `version` fail this way from now on.
    pub fn set_fault(&self, version: &str, fault: PodFault) {
        self.inner.faults.lock().expect("memory cluster lock").insert(version.to_owned(), fault);
    }

    /// Every change fails as if the API server could not be reached.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.inner.unreachable.store(unreachable, Ordering::SeqCst);
    }

    /// Envs get a route that splits requests by exact weights (as on a Gateway), or not.
    pub fn set_exact_weights(&self, exact: bool) {
        self.inner.exact_weights.store(exact, Ordering::SeqCst);
    }

    /// Changes applied so far, over all envs.
    pub fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::SeqCst)
    }

    pub fn env(&self, user: &str, env: &str) -> EnvView {
        let envs = self.inner.envs.lock().expect("memory cluster lock");
        let Some(state) = envs.get(&(user.to_owned(), env.to_owned())) else { return EnvView::default() };
        let releases = state.releases.iter().map(|(revision, r)| (*revision, (r.pods.len() as u32, self.inner.observe(r).ready))).collect();
        EnvView { releases, traffic: state.traffic, weight: state.weight }
    }
}

impl Inner {
    fn observe(&self, release: &Release) -> Observed {
        let fault = self.faults.lock().expect("memory cluster lock").get(&release.version).copied();
        let ready_after = *self.ready_after.lock().expect("memory cluster lock");
        let now = Instant::now();
        let ready = match fault {
            None => release.pods.iter().filter(|started| now - **started >= ready_after).count() as u32,
            Some(_) => 0,
        };
        let restarts = match fault {
            Some(PodFault::CrashLoop) => {
                release.pods.iter().map(|started| ((now - *started).as_millis() / self.restart_every.as_millis()) as u32).sum()
            }
            _ => 0,
        };
        let unready_ms = release
            .pods
            .iter()
            .filter(|started| fault.is_some() || now - **started < ready_after)
            .map(|started| (now - *started).as_millis() as u64)
            .max()
            .unwrap_or(0);
        Observed { exists: true, desired: release.pods.len() as u32, ready, restarts, unready_ms }
    }
}

impl Targets for MemoryCluster {
    fn target(&self, user: &UserName, env: &EnvSpec, release: ReleaseSpec) -> Arc<dyn Target> {
        Arc::new(MemoryTarget { inner: self.inner.clone(), key: (user.to_string(), env.name.clone()), release })
    }
}

struct MemoryTarget {
    inner: Arc<Inner>,
    key: (String, String),
    release: ReleaseSpec,
}

impl MemoryTarget {
    fn with_env<T>(&self, f: impl FnOnce(&mut EnvState) -> T) -> T {
        let mut envs = self.inner.envs.lock().expect("memory cluster lock");
        f(envs.entry(self.key.clone()).or_default())
    }
}

fn resize(pods: &mut Vec<Instant>, replicas: u32) {
    pods.truncate(replicas as usize);
    while pods.len() < replicas as usize {
        pods.push(Instant::now());
    }
}

impl View for MemoryTarget {
    fn releases(&self) -> Vec<u32> {
        self.with_env(|env| env.releases.keys().copied().collect())
    }

    fn observe(&self, revision: u32) -> Observed {
        self.with_env(|env| env.releases.get(&revision).map(|r| self.inner.observe(r)).unwrap_or_default())
    }

    fn exact_weights(&self) -> bool {
        self.inner.exact_weights.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Target for MemoryTarget {
    async fn sync(&self, _within: Duration) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn apply(&self, change: Change) -> Result<(), ClusterError> {
        if self.inner.unreachable.load(Ordering::SeqCst) {
            return Err(ClusterError::Unreachable { what: format!("{change:?}"), message: "the in-memory cluster is set unreachable".into() });
        }
        self.inner.writes.fetch_add(1, Ordering::SeqCst);
        self.with_env(|env| match change {
            Change::Candidate { replicas } => {
                let version = self.release.version.clone();
                let release = env.releases.entry(self.release.revision).or_insert_with(|| Release { version, pods: Vec::new() });
                resize(&mut release.pods, replicas);
            }
            Change::Scale { revision, replicas } => {
                if let Some(release) = env.releases.get_mut(&revision) {
                    resize(&mut release.pods, replicas);
                }
            }
            Change::Route { traffic, weight, stable, candidate } => {
                env.traffic = Some((traffic, stable, candidate));
                env.weight = weight;
            }
            Change::Remove { revision } => {
                env.releases.remove(&revision);
            }
        });
        self.inner.changed.notify_waiters();
        Ok(())
    }

    async fn changed(&self, at_most: Duration) {
        // Pods become ready on their own: look again soon, or when something is applied.
        let soon = (*self.inner.ready_after.lock().expect("memory cluster lock") / 2).max(Duration::from_millis(5));
        let _ = tokio::time::timeout(at_most.min(soon), self.inner.changed.notified()).await;
    }

    async fn diagnose(&self, revision: u32) -> Diagnosis {
        let fault = self.with_env(|env| env.releases.get(&revision).map(|r| r.version.clone()))
            .and_then(|version| self.inner.faults.lock().expect("memory cluster lock").get(&version).copied());
        match fault {
            Some(PodFault::CrashLoop) => Diagnosis { cause: Cause::CrashLoop, message: format!("the pods of release {revision} keep crashing") },
            Some(PodFault::NeverReady) => Diagnosis { cause: Cause::Readiness, message: format!("the pods of release {revision} never pass their readiness probe") },
            None => Diagnosis { cause: Cause::NotReady, message: format!("the pods of release {revision} are not ready yet") },
        }
    }
}
