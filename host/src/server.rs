//! Startup in one place: wire the store, users, envs and WAR storage from the
//! config, then serve until SIGTERM or Ctrl-C, letting requests in flight finish.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::cluster::Cluster;
use crate::config::{BuilderKind, Config, StoreBackend};
use crate::deploys::target::kube::KubeTargets;
use crate::deploys::{Deploys, Targets};
use crate::envs::{EnvOps, Envs};
use crate::jobs;
use crate::http::{AppState, Services};
use crate::domain::Platform;
use crate::image::{Builder, DockerBuilder, OciBuilder};
use crate::images::Images;
use crate::registry::RegistryClient;
use crate::plugins::{Plugins, Runtime};
use crate::store::{DynStore, EmbeddedStore, EtcdAccess, EtcdStore, Metered, Store};
use crate::users::Users;
use crate::wars::{ObjectBlobs, Wars};
use crate::webhooks::Webhooks;

/// Opens the configured store. Also used by `warship user add`.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    Ok(match config.store.backend {
        StoreBackend::Embedded => {
            let path = config.store.data_dir.join("warship.redb");
            Arc::new(Metered(EmbeddedStore::open(&path)?))
        }
        StoreBackend::Etcd => {
            let timeout = Duration::from_secs(config.store.etcd_connect_timeout_secs);
            let access = etcd_access(&config.store)?;
            let at = config.store.etcd_endpoints.join(",");
            let store = EtcdStore::connect_with(
                &config.store.etcd_endpoints,
                &config.store.etcd_prefix,
                timeout,
                &access,
            )
            .await
            .map_err(|e| etcd_refused(&e.to_string(), &access))
            .with_context(|| format!("connecting to etcd at {at}"))?;
            // The channel connects lazily: fail here, naming the setting, not at first use.
            store
                .ping()
                .await
                .map_err(|e| etcd_refused(&e.to_string(), &access))
                .with_context(|| format!("connecting to etcd at {at}"))?;
            Arc::new(Metered(store))
        }
    })
}

/// WAR storage as `[storage]` says: local disk under `store.data_dir`, or a bucket,
/// checked here (it answers, the keys are taken) so a wrong setting fails at start.
pub async fn open_war_storage(config: &Config, store: DynStore) -> anyhow::Result<Wars> {
    let wars = Wars::new(store, config.store.data_dir.join("wars"), config.uploads.clone())
        .with_context(|| format!("preparing WAR storage under {}", config.store.data_dir.display()))?;
    Ok(match open_objects(&config.storage).await? {
        Some(objects) => wars.in_objects(objects),
        None => wars,
    })
}

/// The bucket of `storage.backend = "s3"`, reached and checked; `None` for local disk.
pub async fn open_objects(storage: &crate::config::StorageConfig) -> anyhow::Result<Option<ObjectBlobs>> {
    if storage.backend == crate::config::StorageBackend::Local {
        return Ok(None);
    }
    let objects = ObjectBlobs::connect(storage)?;
    if let Err(e) = objects.open().await {
        let said = e.to_string();
        // The status the server answered says which setting to look at.
        let check = if said.contains("403 Forbidden") {
            "the keys refused: check storage.s3_access_key_id and storage.s3_secret_access_key (or _file)"
        } else if said.contains("404 Not Found") {
            "no such bucket there: check storage.s3_bucket (and storage.s3_prefix)"
        } else {
            "check storage.s3_endpoint, storage.s3_region and storage.s3_virtual_hosted"
        };
        let at = storage.s3_endpoint.as_deref().unwrap_or("AWS");
        return Err(anyhow::anyhow!("WAR storage: bucket {:?} at {at}: {check}: {said}", storage.s3_bucket));
    }
    Ok(Some(objects))
}

/// The etcd TLS material and user of the config, read from their files.
fn etcd_access(store: &crate::config::StoreConfig) -> anyhow::Result<EtcdAccess> {
    let read = |setting: &str, path: &std::path::Path| {
        std::fs::read(path).with_context(|| {
            format!(
                "store.{setting} = {:?} cannot be read",
                path.display().to_string()
            )
        })
    };
    let ca = store
        .etcd_ca_file
        .as_deref()
        .map(|p| read("etcd_ca_file", p))
        .transpose()?;
    let identity = match (&store.etcd_cert_file, &store.etcd_key_file) {
        (Some(cert), Some(key)) => {
            Some((read("etcd_cert_file", cert)?, read("etcd_key_file", key)?))
        }
        _ => None,
    };
    let password = match (&store.etcd_password, &store.etcd_password_file) {
        (Some(password), _) => Some(password.clone()),
        (None, Some(file)) => Some(
            String::from_utf8_lossy(&read("etcd_password_file", file)?)
                .trim_end()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let user = store.etcd_username.clone().zip(password);
    Ok(EtcdAccess { ca, identity, user })
}

/// etcd's refusal in words that name the settings to check.
fn etcd_refused(error: &str, access: &EtcdAccess) -> anyhow::Error {
    let hint = if error.contains("authentication failed")
        || error.contains("user name is empty")
        || error.contains("invalid auth token")
    {
        " (check store.etcd_username and store.etcd_password or store.etcd_password_file)"
    } else if error.contains("user name not found")
        || error.contains("authentication is not enabled")
    {
        " (check store.etcd_username)"
    } else if access.ca.is_some() || access.identity.is_some() {
        " (check store.etcd_ca_file, store.etcd_cert_file and store.etcd_key_file: etcd's certificate must be signed by that CA, and the client certificate by one etcd trusts)"
    } else {
        ""
    };
    // gRPC statuses carry their metadata in the text; the message is what says why.
    let said = error
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once("\", details"))
        .map_or(error, |(message, _)| message);
    anyhow::anyhow!("etcd: {said}{hint}")
}

/// Starts the plugin runtime and loads every configured plugin, checking its
/// settings. Compiling is CPU-bound, so it runs on the blocking pool.
pub async fn load_plugins(config: &Config) -> anyhow::Result<Plugins> {
    let cache = config.plugin_runtime.cache_dir.clone().unwrap_or_else(|| config.store.data_dir.join("plugin-cache"));
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let runtime = Runtime::new(Some(cache))?;
        Ok(Plugins::load(&runtime, &config)?)
    })
    .await?
}

/// The configured image builder, talking to the configured registry. Also used by
/// `warship build`.
pub fn image_builder(config: &Config) -> anyhow::Result<(Arc<dyn Builder>, RegistryClient)> {
    let client = RegistryClient::from_config(&config.registry)?;
    let platform = Platform::parse(&config.build.platform).context("build.platform")?;
    let builder: Arc<dyn Builder> = match config.build.builder {
        BuilderKind::Oci => Arc::new(OciBuilder::new(client.clone(), platform)),
        BuilderKind::Docker => {
            let credentials = client.credentials().map(|c| (c.username.clone(), c.password.clone()));
            Arc::new(
                DockerBuilder::connect(&config.build.docker_host, client.clone(), credentials, &config.build.platform)
                    .with_context(|| format!("connecting to the Docker Engine at {} (build.docker_host)", config.build.docker_host))?,
            )
        }
    };
    Ok((builder, client))
}

/// The process-wide Prometheus recorder (metrics macros need one global recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("seconds".into()),
                    &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0],
                )
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

pub struct Server {
    config: Arc<Config>,
    state: AppState,
}

impl Server {
    pub async fn from_config(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let store = open_store(&config).await?;
        let plugins = Arc::new(load_plugins(&config).await?);
        for gap in plugins.gaps(&config) {
            tracing::warn!(%gap, "the loaded plugins leave a gap");
        }
        let users = Users::new(store.clone(), &config.users.static_users)?;
        let envs = Envs::new(store.clone(), config.clone(), plugins.clone());
        let wars = Arc::new(open_war_storage(&config, store.clone()).await?);
        let (builder, client) = image_builder(&config)?;
        let images = Arc::new(Images::new(store.clone(), config.clone(), plugins.clone(), envs.clone(), wars.clone(), builder, client));
        let cluster = Cluster::connect(&config.kubernetes).await.context("connecting to Kubernetes (the [kubernetes] section)")?;
        if cluster.is_none() {
            tracing::warn!("no Kubernetes cluster is configured (kubernetes.kubeconfig): deploys will be refused");
        }
        let targets = cluster.clone().map(|cluster| Arc::new(KubeTargets(cluster)) as Arc<dyn Targets>);
        let deploys = Deploys::new(store.clone(), config.clone(), plugins.clone(), envs.clone(), images.clone(), targets);
        let webhooks = Webhooks::new(store.clone(), config.clone(), envs.clone());
        deploys.tell_changes_to(webhooks.clone());
        jobs::recover_every(vec![deploys.clone(), images.clone(), webhooks.clone()], jobs::RECOVER_EVERY);
        let env_ops = EnvOps::new(store.clone(), config.clone(), envs.clone(), cluster);
        let state = Arc::new(Services {
            config: config.clone(),
            store,
            users,
            envs,
            env_ops,
            wars,
            images,
            deploys,
            plugins,
            webhooks,
            metrics: metrics_handle(),
        });
        Ok(Self { config, state })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves on the configured address until SIGTERM/Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.config.server.listen)
            .await
            .with_context(|| format!("binding {}", self.config.server.listen))?;
        self.run_on(listener, shutdown_signal()).await
    }

    /// Serves on `listener` until `shutdown` completes, then gives requests in
    /// flight `shutdown_grace_secs` to finish.
    pub async fn run_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        // Every host follows every host's revocations and rotations.
        let following = self.state.users.follow();
        // Peer addresses: unknown tokens are throttled per client.
        let app = crate::console::app(self.state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        // Graceful shutdown waits for requests in flight, `grace` at most.
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(grace));
        });
        let listener = listener.into_std()?;
        let header_timeout = Duration::from_secs(self.config.server.header_read_timeout_secs);
        match (&self.config.server.tls_cert, &self.config.server.tls_key) {
            (Some(cert), Some(key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))?;
                let mut server = axum_server::from_tcp_rustls(listener, tls);
                http1_only_with_header_timeout(server.http_builder(), header_timeout);
                tracing::info!(%addr, "warship serving HTTPS");
                server.handle(handle).serve(app).await?;
            }
            _ => {
                let mut server = axum_server::from_tcp(listener);
                http1_only_with_header_timeout(server.http_builder(), header_timeout);
                tracing::info!(%addr, "warship serving HTTP");
                server.handle(handle).serve(app).await?;
            }
        }
        following.abort();
        tracing::info!("warship stopped");
        Ok(())
    }
}

/// HTTP/1.1 only (no protocol sniffing a client could stall), and a connection that
/// has not sent a whole request head within `timeout` is closed: a client sending its
/// headers a byte at a time cannot hold a connection for long.
fn http1_only_with_header_timeout(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>, timeout: Duration) {
    let taken = std::mem::replace(builder, hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new()));
    *builder = taken.http1_only();
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeout);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
