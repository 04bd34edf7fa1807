//! The Kubernetes target: each user's envs in the namespace `<prefix><user>`, created on
//! demand; per env one Service, per release one Deployment, written by server-side apply
//! under one field manager; observed through watch caches ([`cache`]).

pub mod cache;
pub mod diagnosis;
pub mod objects;
pub mod routes;
pub mod tenancy;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use bytes::Bytes;
use futures_util::Stream;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

pub use cache::{Caches, DeploymentView, EnvObjects, PodView, ServiceView};

use crate::config::{GatewayConfig, KubernetesConfig};
use crate::domain::{EnvSpec, ReleaseSpec, Traffic};
use crate::users::UserName;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the Kubernetes configuration cannot be used: {0}")]
    Config(String),
    #[error("Kubernetes refused to {what}: {message}")]
    Refused { what: String, message: String },
    #[error("cannot reach the Kubernetes API server to {what}: {message}")]
    Unreachable { what: String, message: String },
    #[error("{0}")]
    TimedOut(String),
}

impl ClusterError {
    pub fn code(&self) -> &'static str {
        match self {
            ClusterError::Config(_) => "kubernetes.config",
            ClusterError::Refused { .. } => "kubernetes.refused",
            ClusterError::Unreachable { .. } => "kubernetes.unreachable",
            ClusterError::TimedOut(_) => "kubernetes.timed_out",
        }
    }

    fn api(what: impl Into<String>, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => ClusterError::Refused { what: what.into(), message: status.message.clone() },
            other => ClusterError::Unreachable { what: what.into(), message: other.to_string() },
        }
    }
}

/// The last three lines of a log that are not stack frames, joined: a JVM that cannot start
/// says why in the line before its two generic `Error:` lines.
fn last_words(log: &str) -> Option<String> {
    let said: Vec<&str> =
        log.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("at ") && !l.starts_with("... ")).collect();
    let words = said[said.len().saturating_sub(3)..].join(" | ");
    (!words.is_empty()).then(|| words.chars().take(600).collect())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

pub struct Cluster {
    client: Client,
    caches: Caches,
    namespace_prefix: String,
    apply: PatchParams,
    /// Namespaces known to exist, so each is applied once per host.
    namespaces: Mutex<HashSet<String>>,
    gateway: Option<GatewayConfig>,
    /// The quota, limits and network policy of every user's namespace.
    tenancy: tenancy::Tenancy,
    /// The cluster answered that it has no Gateway API: envs get no route.
    no_gateway_api: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// The configured cluster, or `None` when none is configured.
    pub async fn connect(config: &KubernetesConfig) -> Result<Option<Arc<Self>>, ClusterError> {
        let kube_config = if let Some(path) = &config.kubeconfig {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?
        } else if config.in_cluster {
            kube::Config::incluster().map_err(|e| ClusterError::Config(format!("in-cluster config: {e}")))?
        } else {
            return Ok(None);
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_from(kube_config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Some(Arc::new(Self::with_client(client, config))))
    }

    pub fn with_client(client: Client, config: &KubernetesConfig) -> Self {
        Self {
            caches: Caches::start(&client),
            client,
            namespace_prefix: config.namespace_prefix.clone(),
            apply: PatchParams::apply(&config.field_manager).force(),
            namespaces: Mutex::new(HashSet::new()),
            gateway: config.gateway.clone(),
            tenancy: tenancy::Tenancy::new(config),
            no_gateway_api: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Where an env answers from outside the cluster, when a Gateway is configured and
    /// the cluster has the Gateway API.
    pub fn address(&self, user: &UserName, env: &str, context_path: &str) -> Option<routes::EnvAddress> {
        self.gateway.as_ref().filter(|_| self.routes_enabled()).map(|g| g.address(user.as_str(), env, context_path))
    }

    /// Envs get routes: a Gateway is configured, and the cluster has not said it lacks
    /// the Gateway API. Routes split requests between releases by exact weights.
    pub fn routes_enabled(&self) -> bool {
        self.gateway.is_some() && !self.no_gateway_api.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn route_api(&self, namespace: &str) -> Api<kube::api::DynamicObject> {
        let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", routes::KIND));
        Api::namespaced_with(self.client.clone(), namespace, &resource)
    }

    /// Applies the env's two HTTPRoutes (by hostname, by path) on the configured Gateway.
    /// A cluster without the Gateway API is remembered and the env keeps its Service only.
    pub async fn apply_routes(&self, user: &UserName, env: &str, context_path: &str, backends: routes::Backends) -> Result<(), ClusterError> {
        let Some(gateway) = &self.gateway else { return Ok(()) };
        if self.no_gateway_api.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let namespace = self.ensure_namespace(user).await?;
        let api = self.route_api(&namespace);
        if let routes::Backends::Weighted { stable, candidate, .. } = backends {
            // Each already exists when routes were on as it was applied; older releases may lack theirs.
            for revision in [stable, candidate] {
                self.apply_release_service(user, env, revision).await?;
            }
        }
        let mut applied = Vec::new();
        for route in [gateway.route(user.as_str(), env, context_path, backends), gateway.path_route(user.as_str(), env, context_path, backends)] {
            let name = route["metadata"]["name"].as_str().unwrap_or(env).to_owned();
            match api.patch(&name, &self.apply, &Patch::Apply(&route)).await {
                Ok(written) => applied.push((name, written.metadata.generation.unwrap_or(0))),
                Err(e) if is_not_found(&e) => {
                    tracing::warn!(%namespace, %name, "the cluster has no Gateway API (HTTPRoute): envs get no URL");
                    self.no_gateway_api.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => return Err(ClusterError::api(format!("apply httproute {namespace}/{name}"), e)),
            }
        }
        if matches!(backends, routes::Backends::Weighted { .. }) {
            // A share of requests is only set once the gateway took it: a strategy that
            // moves on (or a person who measures) should find it in force.
            for (name, generation) in applied {
                if !self.route_accepted(&api, &name, generation).await {
                    tracing::warn!(%namespace, %name, generation, "the gateway did not accept the route's new weights within {}s", routes::ACCEPT_WAIT.as_secs());
                }
            }
        }
        Ok(())
    }

    /// Waits until the gateway accepted generation `generation` of a route, at most
    /// [`routes::ACCEPT_WAIT`].
    async fn route_accepted(&self, api: &Api<kube::api::DynamicObject>, name: &str, generation: i64) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < routes::ACCEPT_WAIT {
            if let Ok(route) = api.get(name).await {
                if routes::accepted_generation(&route.data).is_some_and(|seen| seen >= generation) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn namespace(&self, user: &UserName) -> String {
        format!("{}{user}", self.namespace_prefix)
    }

    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// What the caches hold of an env.
    pub fn objects(&self, user: &UserName, env: &str) -> EnvObjects {
        self.caches.env(&self.namespace(user), env)
    }

    /// The warnings Kubernetes recorded about a pod (`Unhealthy: Readiness probe failed…`),
    /// newest first. Read once, when a rollout fails, so no events are watched.
    pub async fn pod_warnings(&self, user: &UserName, pod: &str) -> Result<Vec<String>, ClusterError> {
        let namespace = self.namespace(user);
        let params = ListParams::default().fields(&format!("involvedObject.name={pod},type=Warning"));
        let mut events = Api::<Event>::namespaced(self.client.clone(), &namespace)
            .list(&params)
            .await
            .map_err(|e| ClusterError::api(format!("list the events of pod {namespace}/{pod}"), e))?
            .items;
        let last_seen = |e: &Event| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0));
        events.sort_by_key(|e| std::cmp::Reverse(last_seen(e)));
        Ok(events
            .into_iter()
            .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default().trim()))
            .collect())
    }

    /// A pod's log as the API server streams it (it asks the pod's kubelet): the last
    /// `tail` lines, then new ones while `follow`.
    pub async fn pod_logs(
        &self,
        user: &UserName,
        pod: &str,
        follow: bool,
        tail: Option<i64>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ClusterError> {
        use futures_util::AsyncReadExt;
        let namespace = self.namespace(user);
        let params = LogParams { container: Some(objects::CONTAINER.into()), follow, tail_lines: tail, ..Default::default() };
        let reader = Api::<Pod>::namespaced(self.client.clone(), &namespace)
            .log_stream(pod, &params)
            .await
            .map_err(|e| ClusterError::api(format!("get the logs of pod {namespace}/{pod}"), e))?;
        // The stream ends after an error: the log cannot be resumed where it broke.
        Ok(futures_util::stream::unfold(Some(Box::pin(reader)), |reader| async move {
            let mut reader = reader?;
            let mut chunk = vec![0u8; 16 * 1024];
            match reader.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(Bytes::from(chunk)), Some(reader)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }))
    }

    /// What a pod's container last wrote before it ended (the JVM's dying words), or
    /// `None` when it wrote nothing or has not ended yet.
    pub async fn last_log_line(&self, user: &UserName, pod: &str) -> Result<Option<String>, ClusterError> {
        let namespace = self.namespace(user);
        let params = LogParams { container: Some(objects::CONTAINER.into()), previous: true, tail_lines: Some(20), limit_bytes: Some(16 * 1024), ..Default::default() };
        match Api::<Pod>::namespaced(self.client.clone(), &namespace).logs(pod, &params).await {
            Ok(text) => Ok(last_words(&text)),
            // No previous run (yet): nothing said.
            Err(kube::Error::Api(status)) if status.code == 400 || status.code == 404 => Ok(None),
            Err(e) => Err(ClusterError::api(format!("get the last log of pod {namespace}/{pod}"), e)),
        }
    }

    /// Refuses to write over an object of that name that warship did not create:
    /// server-side apply with force would otherwise take it over.
    async fn ensure_ours<K>(&self, api: &Api<K>, name: &str, what: &str) -> Result<(), ClusterError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.get_opt(name).await {
            Ok(None) => Ok(()),
            Ok(Some(found)) if found.meta().labels.as_ref().and_then(|l| l.get(objects::MANAGED_BY)).is_some_and(|m| m == objects::MANAGER) => Ok(()),
            Ok(Some(_)) => Err(ClusterError::Refused {
                what: format!("apply {what} {name}"),
                message: format!(
                    "{what} {name} exists and was not created by warship (it lacks the label {}={}); warship does not take over others' objects. Remove it, or use another env name",
                    objects::MANAGED_BY,
                    objects::MANAGER
                ),
            }),
            Err(e) => Err(ClusterError::api(format!("read {what} {name}"), e)),
        }
    }

    /// Creates the user's namespace, with its quota, limits and network policy, unless this
    /// host already did: a host applies them once, so a changed platform.toml reaches a
    /// namespace when a restarted host first writes there.
    pub async fn ensure_namespace(&self, user: &UserName) -> Result<String, ClusterError> {
        let name = self.namespace(user);
        if self.namespaces.lock().expect("namespaces lock").contains(&name) {
            return Ok(name);
        }
        self.ensure_ours(&Api::<Namespace>::all(self.client.clone()), &name, "namespace").await?;
        Api::<Namespace>::all(self.client.clone())
            .patch(&name, &self.apply, &Patch::Apply(objects::namespace(&name)))
            .await
            .map_err(|e| ClusterError::api(format!("create namespace {name}"), e))?;
        // The LimitRange first: a pod created under the quota without it would lack requests.
        self.apply_namespaced(&name, "limitrange", &self.tenancy.limit_range)
            .await?;
        self.apply_namespaced(&name, "resourcequota", &self.tenancy.quota)
            .await?;
        self.apply_namespaced(&name, "networkpolicy", &self.tenancy.network_policy)
            .await?;
        self.namespaces
            .lock()
            .expect("namespaces lock")
            .insert(name.clone());
        Ok(name)
    }

    /// Applies `object` (named [`tenancy::NAME`]) in `namespace`, unless an object of that
    /// name is someone else's.
    async fn apply_namespaced<K>(
        &self,
        namespace: &str,
        what: &str,
        object: &K,
    ) -> Result<(), ClusterError>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        let name = tenancy::NAME;
        self.ensure_ours(&api, name, what).await?;
        api.patch(name, &self.apply, &Patch::Apply(object))
            .await
            .map_err(|e| ClusterError::api(format!("apply {what} {namespace}/{name}"), e))?;
        Ok(())
    }

    /// Applies the release's Deployment with `replicas` pods.
    pub async fn apply_release(&self, user: &UserName, env: &EnvSpec, release: &ReleaseSpec, replicas: u32) -> Result<(), ClusterError> {
        let namespace = self.ensure_namespace(user).await?;
        let deployment =
            objects::deployment(user.as_str(), env, release, replicas, self.tenancy.limits());
        let name = objects::deployment_name(&env.name, release.revision);
        let api = Api::<Deployment>::namespaced(self.client.clone(), &namespace);
        // Ours when the caches (which hold only warship's objects) have it.
        if self.caches.env(&namespace, &env.name).deployment_of(release.revision).is_none() {
            self.ensure_ours(&api, &name, "deployment").await?;
        }
        api.patch(&name, &self.apply, &Patch::Apply(deployment))
            .await
            .map_err(|e| ClusterError::api(format!("apply deployment {namespace}/{name}"), e))?;
        if self.routes_enabled() {
            // Made with the release, so its endpoints exist before a route weighs it.
            self.apply_release_service(user, &env.name, release.revision).await?;
        }
        Ok(())
    }

    /// Applies a release's own Service, a backend the env's route can weigh.
    async fn apply_release_service(&self, user: &UserName, env: &str, revision: u32) -> Result<(), ClusterError> {
        let namespace = self.ensure_namespace(user).await?;
        let name = objects::deployment_name(env, revision);
        let api = Api::<Service>::namespaced(self.client.clone(), &namespace);
        if !self.caches.env(&namespace, env).release_services.iter().any(|s| s.name == name) {
            self.ensure_ours(&api, &name, "service").await?;
        }
        api.patch(&name, &self.apply, &Patch::Apply(objects::release_service(user.as_str(), env, revision)))
            .await
            .map_err(|e| ClusterError::api(format!("apply service {namespace}/{name}"), e))?;
        Ok(())
    }

    /// Points the env's Service at the releases `traffic` names.
    pub async fn apply_service(&self, user: &UserName, env: &str, traffic: Traffic, stable: Option<u32>, candidate: u32) -> Result<(), ClusterError> {
        let namespace = self.ensure_namespace(user).await?;
        let service = objects::service(user.as_str(), env, traffic, stable, candidate);
        let api = Api::<Service>::namespaced(self.client.clone(), &namespace);
        if self.caches.env(&namespace, env).service.is_none() {
            self.ensure_ours(&api, env, "service").await?;
        }
        api.patch(env, &self.apply, &Patch::Apply(service))
            .await
            .map_err(|e| ClusterError::api(format!("apply service {namespace}/{env}"), e))?;
        Ok(())
    }

    /// Sets a release's replica count through the scale subresource, leaving its pod
    /// template as it was applied.
    pub async fn scale_release(&self, user: &UserName, env: &str, revision: u32, replicas: u32) -> Result<(), ClusterError> {
        let (namespace, name) = (self.namespace(user), objects::deployment_name(env, revision));
        if self.caches.env(&namespace, env).deployment_of(revision).is_none() {
            self.ensure_ours(&Api::<Deployment>::namespaced(self.client.clone(), &namespace), &name, "deployment").await?;
        }
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        match Api::<Deployment>::namespaced(self.client.clone(), &namespace)
            .patch_scale(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            // Scaling a release that is gone to zero is what was wanted.
            Err(e) if is_not_found(&e) && replicas == 0 => Ok(()),
            Err(e) => Err(ClusterError::api(format!("scale deployment {namespace}/{name} to {replicas}"), e)),
        }
    }

    /// Deletes a release's Deployment (and, through it, its pods); gone already is fine.
    pub async fn delete_release(&self, user: &UserName, env: &str, revision: u32) -> Result<(), ClusterError> {
        let (namespace, name) = (self.namespace(user), objects::deployment_name(env, revision));
        if self.caches.env(&namespace, env).deployment_of(revision).is_none() {
            // Someone else's object of that name is not warship's to delete.
            if let Err(e) = self.ensure_ours(&Api::<Deployment>::namespaced(self.client.clone(), &namespace), &name, "deployment").await {
                tracing::warn!(%namespace, %name, error = %e, "not deleting a deployment warship did not create");
                return Ok(());
            }
        }
        self.delete::<Deployment>(&namespace, &name).await?;
        if self.caches.env(&namespace, env).release_services.iter().any(|s| s.name == name) {
            self.delete::<Service>(&namespace, &name).await?;
        }
        Ok(())
    }

    async fn delete<K>(&self, namespace: &str, name: &str) -> Result<(), ClusterError>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match Api::<K>::namespaced(self.client.clone(), namespace).delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(ClusterError::api(format!("delete {} {namespace}/{name}", K::kind(&())), e)),
        }
    }

    /// Deletes every object of the env and waits until the caches hold none of them,
    /// pods included.
    pub async fn delete_env(&self, user: &UserName, env: &str, timeout: Duration) -> Result<(), ClusterError> {
        let namespace = self.namespace(user);
        self.caches.wait_synced().await;
        let objects = self.caches.env(&namespace, env);
        if objects.service.is_some() {
            self.delete::<Service>(&namespace, env).await?;
        }
        for service in &objects.release_services {
            self.delete::<Service>(&namespace, &service.name).await?;
        }
        if self.gateway.is_some() && !self.no_gateway_api.load(std::sync::atomic::Ordering::Relaxed) {
            let api = self.route_api(&namespace);
            for name in [env.to_owned(), routes::path_route_name(env)] {
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(ClusterError::api(format!("delete httproute {namespace}/{name}"), e)),
                }
            }
        }
        for deployment in &objects.deployments {
            self.delete::<Deployment>(&namespace, &deployment.name).await?;
        }
        let mut changes = self.caches.changes();
        let gone = async {
            while !self.caches.env(&namespace, env).is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
            }
        };
        tokio::time::timeout(timeout, gone).await.map_err(|_| {
            let left = self.caches.env(&namespace, env);
            ClusterError::TimedOut(format!(
                "env {env}'s objects were not gone after {}s: {} deployments and {} pods remain in namespace {namespace}",
                timeout.as_secs(),
                left.deployments.len(),
                left.pods.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_words_skip_stack_frames_and_keep_the_reason() {
        let jvm = "Unrecognized VM option 'Nope'\nError: Could not create the Java Virtual Machine.\nError: A fatal exception has occurred. Program will exit.\n";
        assert_eq!(
            super::last_words(jvm).unwrap(),
            "Unrecognized VM option 'Nope' | Error: Could not create the Java Virtual Machine. | Error: A fatal exception has occurred. Program will exit."
        );
        let trace = "SEVERE: boom\njava.lang.IllegalStateException: no db\n\tat a.B.c(B.java:1)\n\t... 12 more\n";
        assert_eq!(super::last_words(trace).unwrap(), "SEVERE: boom | java.lang.IllegalStateException: no db");
        assert_eq!(super::last_words("\n \n"), None);
    }
}
