//! What GET /api/v1/envs/{env} answers: the env, the deploy in progress, and the tree
//! env ▸ service ▸ workloads ▸ pods from the watch caches.

use serde::Serialize;
use utoipa::ToSchema;

use super::{keys, EnvOps, EnvOpsError};
use crate::cluster::PodView;
use crate::domain::{Env, EnvName};
use crate::store::StoreError;
use crate::users::UserName;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnvStatus {
    /// The env, with the release serving now as `current`.
    #[serde(flatten)]
    pub env: Env,
    /// The id of the deploy running on it, if any.
    pub deploying: Option<String>,
    /// Where the app answers from outside the cluster (its hostname on the Gateway);
    /// absent without a Gateway or before the first deploy.
    pub url: Option<String>,
    /// The same app under the Gateway's own address, for setups without wildcard DNS.
    pub path_url: Option<String>,
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
    pub pods: Vec<PodView>,
}

impl EnvOps {
    /// The id of the deploy in progress on an env, if any (one whose host died counts
    /// until a host resumes or ends it).
    pub async fn running(&self, user: &UserName, env: &str) -> Result<Option<String>, StoreError> {
        let active = self.store.list(&keys::active_of_env(user, env)).await?;
        Ok(active.iter().filter_map(|entry| serde_json::from_slice::<keys::ActiveDeploy>(&entry.value).ok()).map(|a| a.id).next())
    }

    /// The status tree of an env, from the store (env and deploy in progress, read
    /// together) and the watch caches.
    pub async fn status(&self, user: &UserName, name: &EnvName) -> Result<EnvStatus, EnvOpsError> {
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
        let address = self.cluster.as_ref().filter(|_| env.current.is_some()).and_then(|c| c.address(user, name.as_str(), &env.spec.context_path));
        let (url, path_url) = address.map(|a| (Some(a.url), Some(a.path_url))).unwrap_or_default();
        Ok(EnvStatus { env, deploying, url, path_url, service })
    }
}
