//! What an env is beyond its record: deleting it (its Kubernetes objects, releases and
//! record) and reading its pods' logs. Its status tree is in `status.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::{keys, EnvError, Envs};
use crate::cluster::{Cluster, ClusterError};
use crate::config::Config;
use crate::domain::EnvName;
use crate::jobs::{Lease, LEASE_TTL};
use crate::store::{DynStore, Precondition, StoreError};
use crate::users::UserName;

#[derive(Debug, thiserror::Error)]
pub enum EnvOpsError {
    #[error("deploy {running} is running on env {env}")]
    Running { env: String, running: String },
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
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Env operations that reach past the store, into the cluster.
pub struct EnvOps {
    pub(super) store: DynStore,
    pub(super) config: Arc<Config>,
    pub(super) envs: Envs,
    pub(super) cluster: Option<Arc<Cluster>>,
}

impl EnvOps {
    pub fn new(store: DynStore, config: Arc<Config>, envs: Envs, cluster: Option<Arc<Cluster>>) -> Arc<Self> {
        Arc::new(Self { store, config, envs, cluster })
    }

    /// Deletes an env: its Kubernetes objects first (waiting until they are gone),
    /// then its records. Refused while a deploy runs on it.
    pub async fn delete(&self, user: &UserName, env: &EnvName) -> Result<(), EnvOpsError> {
        self.envs.get(user, env).await?;
        let holder = format!("{}{}", keys::DELETING, uuid::Uuid::new_v4().simple());
        let waiting_since = std::time::Instant::now();
        let lease = loop {
            match Lease::take(&self.store, &keys::lock(user, env.as_str()), &holder, LEASE_TTL).await {
                Ok(lease) => break lease,
                // A deploy that just ended has left the active index a moment before it
                // lets go of the lock: wait for that moment rather than refuse.
                Err(StoreError::Locked { holder, .. }) => {
                    if waiting_since.elapsed() >= keys::ENDING_GRACE || self.running(user, env.as_str()).await?.is_some() {
                        return Err(EnvOpsError::Running { env: env.to_string(), running: holder });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(other) => return Err(other.into()),
            }
        };
        let result = async {
            if let Some(cluster) = &self.cluster {
                let timeout = Duration::from_secs(self.config.deploys.delete_timeout_secs);
                tokio::select! {
                    deleted = cluster.delete_env(user, env.as_str(), timeout) => deleted?,
                    lost = lease.hold() => return Err(lost.into()),
                }
            }
            for release in self.store.list(&keys::releases(user, env.as_str())).await? {
                self.store.delete(&release.key, Precondition::Any).await?;
            }
            self.envs.delete(user, env).await?;
            Ok(())
        }
        .await;
        lease.release().await;
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
    ) -> Result<(String, impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static), EnvOpsError> {
        let cluster = self.cluster.as_ref().ok_or(EnvOpsError::NoCluster)?;
        let env = self.envs.get(user, env_name).await?;
        let objects = cluster.objects(user, env_name.as_str());
        let pod = match pod {
            Some(wanted) => objects.pods.iter().find(|p| p.name == wanted).map(|p| p.name.clone()).ok_or_else(|| EnvOpsError::NoSuchPod {
                env: env_name.to_string(),
                pod: wanted.to_owned(),
                pods: objects.pods.iter().map(|p| p.name.clone()).collect(),
            })?,
            None => {
                let serving = env.current.as_ref().map(|r| r.revision);
                let mut pods: Vec<_> = objects.pods.iter().collect();
                pods.sort_by_key(|p| (p.release != serving, !p.ready, p.terminating, p.name.clone()));
                pods.first().map(|p| p.name.clone()).ok_or_else(|| EnvOpsError::NoPods(env_name.to_string()))?
            }
        };
        let stream = cluster.pod_logs(user, &pod, follow, tail).await.map_err(|source| EnvOpsError::Logs { pod: pod.clone(), source })?;
        Ok((pod, stream))
    }
}
