//! The rollout target on Kubernetes: one Deployment per release, one Service per env,
//! observed from the watch caches, written by server-side apply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};

use super::{Change, Observed, Target, Targets, View};
use crate::cluster::diagnosis::{self, Diagnosis};
use crate::cluster::{Cluster, ClusterError, PodView};
use crate::cluster::routes::Backends;
use crate::domain::{EnvSpec, ReleaseSpec, Traffic};
use crate::users::UserName;

/// How many unready pods' warning events a diagnosis reads.
const PODS_ASKED_FOR_WARNINGS: usize = 3;

pub struct KubeTargets(pub Arc<Cluster>);

impl Targets for KubeTargets {
    fn target(&self, user: &UserName, env: &EnvSpec, release: ReleaseSpec) -> Arc<dyn Target> {
        let changes = Mutex::new(self.0.caches().changes());
        Arc::new(KubeTarget { cluster: self.0.clone(), user: user.clone(), env: env.clone(), release, changes })
    }
}

pub struct KubeTarget {
    cluster: Arc<Cluster>,
    user: UserName,
    env: EnvSpec,
    release: ReleaseSpec,
    changes: Mutex<watch::Receiver<u64>>,
}

impl View for KubeTarget {
    fn releases(&self) -> Vec<u32> {
        self.cluster.objects(&self.user, &self.env.name).deployments.iter().filter_map(|d| d.release).collect()
    }

    fn observe(&self, revision: u32) -> Observed {
        let objects = self.cluster.objects(&self.user, &self.env.name);
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000;
        let pods: Vec<&Arc<PodView>> = objects.pods_of(revision).collect();
        let deployment = objects.deployment_of(revision);
        Observed {
            exists: deployment.is_some(),
            desired: deployment.map_or(0, |d| d.desired),
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
    }

    fn exact_weights(&self) -> bool {
        self.cluster.routes_enabled()
    }
}

#[async_trait]
impl Target for KubeTarget {
    async fn sync(&self, within: Duration) -> Result<(), ClusterError> {
        tokio::time::timeout(within, self.cluster.caches().wait_synced()).await.map_err(|_| ClusterError::Unreachable {
            what: "list the cluster's objects".into(),
            message: format!("the watch caches did not sync within {}s; is the API server up?", within.as_secs()),
        })
    }

    async fn apply(&self, change: Change) -> Result<(), ClusterError> {
        let (user, env) = (&self.user, self.env.name.as_str());
        match change {
            Change::Candidate { replicas } => self.cluster.apply_release(user, &self.env, &self.release, replicas).await,
            Change::Scale { revision, replicas } => self.cluster.scale_release(user, env, revision, replicas).await,
            Change::Route { traffic, weight, stable, candidate } => {
                self.cluster.apply_service(user, env, traffic, stable, candidate).await?;
                let backends = match (traffic, weight, stable) {
                    (Traffic::Both, Some(weight), Some(stable)) => Backends::Weighted { stable, candidate, weight },
                    _ => Backends::Env,
                };
                self.cluster.apply_routes(user, env, &self.env.context_path, backends).await
            }
            Change::Remove { revision } => self.cluster.delete_release(user, env, revision).await,
        }
    }

    async fn changed(&self, at_most: Duration) {
        let mut changes = self.changes.lock().await;
        let _ = tokio::time::timeout(at_most, changes.changed()).await;
    }

    /// From the caches and the warnings of a few unready pods.
    async fn diagnose(&self, revision: u32) -> Diagnosis {
        let objects = self.cluster.objects(&self.user, &self.env.name);
        let pods: Vec<&PodView> = objects.pods_of(revision).map(|p| &**p).collect();
        let mut warnings = HashMap::new();
        for pod in pods.iter().filter(|p| !p.ready && !p.terminating).take(PODS_ASKED_FOR_WARNINGS) {
            match self.cluster.pod_warnings(&self.user, &pod.name).await {
                Ok(said) => {
                    warnings.insert(pod.name.clone(), said);
                }
                Err(e) => tracing::warn!(pod = %pod.name, error = %e, "could not read the pod's events"),
            }
        }
        let mut last_words = HashMap::new();
        for pod in pods.iter().filter(|p| !p.ready && !p.terminating && p.restarts > 0).take(PODS_ASKED_FOR_WARNINGS) {
            match self.cluster.last_log_line(&self.user, &pod.name).await {
                Ok(Some(line)) => {
                    last_words.insert(pod.name.clone(), line);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(pod = %pod.name, error = %e, "could not read the crashed container's log"),
            }
        }
        let probe_path = self.env.probe_path();
        let context = diagnosis::Context {
            image: &self.release.image,
            probe_path: &probe_path,
            env: &self.env.name,
            memory_limit: self.env.resources.limits.memory.as_deref(),
            refused: objects
                .deployment_of(revision)
                .and_then(|d| d.refused.as_deref()),
            jvm_options: &self.env.jvm_options,
        };
        let evidence = diagnosis::Evidence {
            warnings: &|pod| warnings.get(pod).cloned().unwrap_or_default(),
            last_words: &|pod| last_words.get(pod).cloned(),
        };
        diagnosis::diagnose(&pods, &evidence, &context)
    }
}
