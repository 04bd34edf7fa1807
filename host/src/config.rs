//! `platform.toml`: one file, every key defaulted, any key overridable from the
//! environment as `WARSHIP__<SECTION>__<KEY>` (for secrets and ports).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "WARSHIP__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Override { var: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub storage: StorageConfig,
    pub uploads: UploadConfig,
    pub envs: EnvLimits,
    pub users: UsersConfig,
    pub catalog: Vec<CatalogEntry>,
    pub registry: RegistryConfig,
    pub build: BuildConfig,
    pub kubernetes: KubernetesConfig,
    pub deploys: DeployConfig,
    pub plugin_runtime: PluginRuntimeConfig,
    pub webhooks: WebhooksConfig,
    pub console: ConsoleConfig,
    /// The plugins to load; when absent, every built-in plugin with its defaults.
    pub plugins: Option<Vec<PluginConfig>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Deadline for every request except WAR uploads, which are bounded by size instead.
    pub request_timeout_secs: u64,
    /// How long a client may take to send a request's head; slower connections are closed.
    pub header_read_timeout_secs: u64,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// `json` for machines, `text` for people.
    pub log_format: LogFormat,
    pub cors: CorsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            shutdown_grace_secs: 20,
            log_format: LogFormat::Text,
            cors: CorsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Embedded,
    Etcd,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Holds the embedded database and the WAR blobs.
    pub data_dir: PathBuf,
    /// A list, or one comma-separated string (handy in `WARSHIP__STORE__ETCD_ENDPOINTS`).
    #[serde(deserialize_with = "list_or_commas")]
    pub etcd_endpoints: Vec<String>,
    /// Every key warship writes to etcd starts with this, so one cluster can be shared.
    pub etcd_prefix: String,
    pub etcd_connect_timeout_secs: u64,
    /// TLS to etcd (`https://` endpoints): the CA that signed etcd's certificate (PEM).
    pub etcd_ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for an etcd run with `--client-cert-auth`.
    pub etcd_cert_file: Option<PathBuf>,
    pub etcd_key_file: Option<PathBuf>,
    /// etcd's own users (`auth enable`): a user and its password, or a file holding it.
    pub etcd_username: Option<String>,
    /// Better given as `WARSHIP__STORE__ETCD_PASSWORD` or `etcd_password_file`.
    pub etcd_password: Option<String>,
    pub etcd_password_file: Option<PathBuf>,
}

impl StoreConfig {
    /// The etcd TLS and user settings make sense together.
    fn check_etcd_access(&self) -> Result<(), String> {
        if self.etcd_cert_file.is_some() != self.etcd_key_file.is_some() {
            return Err("store.etcd_cert_file and store.etcd_key_file go together: set both (a client certificate and its key) or neither".into());
        }
        if self.etcd_password.is_some() && self.etcd_password_file.is_some() {
            return Err("set store.etcd_password or store.etcd_password_file, not both".into());
        }
        let has_password = self.etcd_password.is_some() || self.etcd_password_file.is_some();
        if self.etcd_username.is_some() != has_password {
            return Err("store.etcd_username and its password (store.etcd_password or store.etcd_password_file) go together".into());
        }
        let tls = self.etcd_ca_file.is_some() || self.etcd_cert_file.is_some();
        let https = self
            .etcd_endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        if tls && https != self.etcd_endpoints.len() {
            return Err("store.etcd_endpoints must all be https:// when store.etcd_ca_file or store.etcd_cert_file is set".into());
        }
        if https > 0 && self.etcd_ca_file.is_none() {
            return Err("https:// etcd endpoints need store.etcd_ca_file: the CA that signed etcd's certificate".into());
        }
        Ok(())
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Embedded,
            data_dir: PathBuf::from("data"),
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            etcd_prefix: "/warship/".into(),
            etcd_connect_timeout_secs: 5,
            etcd_ca_file: None,
            etcd_cert_file: None,
            etcd_key_file: None,
            etcd_username: None,
            etcd_password: None,
            etcd_password_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest WAR accepted, in bytes.
    pub max_bytes: u64,
    /// Zip-bomb guards: entries, total uncompressed size, and the compression
    /// ratio allowed for entries larger than `ratio_min_entry_bytes`.
    pub max_entries: usize,
    pub max_uncompressed_bytes: u64,
    pub max_compression_ratio: u64,
    pub ratio_min_entry_bytes: u64,
    /// Bytes of classes read to tell javax from jakarta; the rest is skipped.
    pub scan_class_bytes: u64,
    /// Flush each WAR to disk before answering. Off, an upload is atomic and survives
    /// a crash of warship, but not of the machine in the seconds after it; on, it
    /// survives both and costs about a third of upload throughput on common disks.
    pub fsync: bool,
    /// Uploads running at once on this host, and per user; past either, 429.
    pub max_concurrent: usize,
    pub max_concurrent_per_user: usize,
    /// An upload that sends nothing for this long is dropped (408), its bytes with it.
    pub idle_timeout_secs: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            max_entries: 65_536,
            max_uncompressed_bytes: 8 << 30,
            max_compression_ratio: 100,
            ratio_min_entry_bytes: 1 << 20,
            scan_class_bytes: 256 << 20,
            fsync: false,
            max_concurrent: 64,
            max_concurrent_per_user: 4,
            idle_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvLimits {
    pub max_envs_per_user: usize,
}

impl Default for EnvLimits {
    fn default() -> Self {
        Self { max_envs_per_user: 100 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginRuntimeConfig {
    /// Precompiled plugins; defaults to `<store.data_dir>/plugin-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Memory cap per call, unless a plugin sets its own.
    pub memory_mb: u64,
    /// Wall-clock deadline per call, unless a plugin sets its own.
    pub deadline_ms: u64,
}

impl Default for PluginRuntimeConfig {
    fn default() -> Self {
        Self { cache_dir: None, memory_mb: 64, deadline_ms: 1000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Validator,
    Template,
    Strategy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// How envs, deploys and the API refer to the plugin (strategies by this name).
    pub name: String,
    pub kind: PluginKind,
    /// `builtin:<name>` for a plugin shipped in the binary, or a path to a component.
    pub source: String,
    /// Handed to the plugin as JSON; checked by its `check-config` at load. The keys set
    /// here are the admin's policy: a deploy's own `settings` cannot change them unless
    /// they are listed in `overridable` (keys left unset here a deploy may set).
    #[serde(default)]
    pub settings: toml::Table,
    #[serde(default)]
    pub overridable: Vec<String>,
    /// A required plugin that cannot load stops startup; an optional one is skipped.
    #[serde(default = "yes")]
    pub required: bool,
    pub memory_mb: Option<u64>,
    pub deadline_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// Users declared by the admin, beside those added with `warship user add`.
    /// Only the sha256 of a token is ever written down.
    #[serde(rename = "static")]
    pub static_users: Vec<StaticUser>,
    /// Users who may list, add, rotate and revoke users through the API.
    pub admins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticUser {
    pub name: String,
    pub token_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Tomcat version as users name it, e.g. `10.1`.
    pub tomcat: String,
    /// JDK major version, e.g. `17`.
    pub jdk: String,
    /// Base image for this pair, e.g. `registry.local/warship/tomcat:10.1-jdk17`.
    pub base_image: String,
    /// A non-root user the base image has, which the app then runs as (the template's
    /// `USER`): numeric, `uid` or `uid:gid`, so the kubelet can verify `runAsNonRoot`.
    /// Unset: the base image's own user, which must then be numeric too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Where warship pushes images (as this host reaches the registry).
    pub push: String,
    /// How the cluster's nodes name the same registry in image references.
    pub pull: String,
    /// Plain HTTP to this registry. Off unless the config says so: TLS is the default, and
    /// only a local development registry (platform.toml's) should be reached without it.
    pub insecure: bool,
    /// Other registries (of base images) reached over plain HTTP, as `host:port`.
    pub insecure_registries: Vec<String>,
    /// PEM bundle of the CA that signed the registry's certificate, if not a public one.
    pub ca_cert: Option<PathBuf>,
    /// For basic auth, or for the registry's token service; none means anonymous.
    pub username: Option<String>,
    /// Better given as `WARSHIP__REGISTRY__PASSWORD` or `password_file` than written here.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Deadline for one whole push (every blob and the manifest).
    pub push_timeout_secs: u64,
    /// Tries per registry operation on connection errors and 5xx answers.
    pub max_attempts: u32,
    /// Retries wait a random time up to `first_backoff_ms` × 2^attempt, capped.
    pub first_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            push: "127.0.0.1:5000".into(),
            pull: "127.0.0.1:5000".into(),
            insecure: false,
            insecure_registries: Vec::new(),
            ca_cert: None,
            username: None,
            password: None,
            password_file: None,
            push_timeout_secs: 600,
            max_attempts: 6,
            first_backoff_ms: 250,
            max_backoff_ms: 8000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    /// Daemonless: base manifest and config plus one new layer, no container runs.
    Oci,
    /// A Docker Engine API (dockerd, or podman's compatible service).
    Docker,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    pub builder: BuilderKind,
    /// The platform images are built for, picked from multi-platform bases.
    pub platform: String,
    /// The Docker Engine for `builder = "docker"`: `unix:///path.sock` or `http://host:port`.
    pub docker_host: String,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self { builder: BuilderKind::Oci, platform: "linux/amd64".into(), docker_host: "unix:///var/run/docker.sock".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path to a kubeconfig. Without one (and without `in_cluster`), the host serves
    /// everything but deploys, which answer that no cluster is configured.
    pub kubeconfig: Option<PathBuf>,
    /// Use the service account of the pod warship runs in.
    pub in_cluster: bool,
    /// Each user's objects live in the namespace `<prefix><user>`.
    pub namespace_prefix: String,
    /// The field manager of warship's server-side applies.
    pub field_manager: String,
    /// Where envs get their URL; without it, envs are reached only inside the cluster.
    pub gateway: Option<GatewayConfig>,
    /// Each user's namespace gets a ResourceQuota, a LimitRange and a NetworkPolicy.
    pub quota: QuotaConfig,
    pub limits: LimitsConfig,
    pub ingress_from: IngressFrom,
}

/// `[kubernetes.gateway]`: the Gateway API Gateway every env's HTTPRoute attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub name: String,
    pub namespace: String,
    /// Where users reach that Gateway, e.g. `http://apps.example.com` or
    /// `http://localhost:8000`; env hostnames go under its host (`<env>.<user>.<host>`), so
    /// it must be a DNS name, not an IP address.
    pub base_url: url::Url,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            in_cluster: false,
            namespace_prefix: "warship-".into(),
            field_manager: "warship".into(),
            gateway: None,
            quota: QuotaConfig::default(),
            limits: LimitsConfig::default(),
            ingress_from: IngressFrom::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// The strategy of a deploy that names none.
    pub default_strategy: String,
    /// The strategy the original API's `IsGreyUpdating: "1"` runs.
    pub grey_strategy: String,
    /// The strategy the original API's `IsGreyUpdating: "0"` runs: replace everything.
    pub replace_strategy: String,
    /// How long a rollout may take to get ready, unless the env sets its own.
    pub rollout_deadline_secs: u64,
    /// How long deleting an env waits for its Kubernetes objects to be gone.
    pub delete_timeout_secs: u64,
    /// The most pods a strategy may ask of one release; asking more fails the deploy
    /// as the plugin's error.
    pub max_replicas: u32,
    /// Ended deploys (and image builds) kept per env; older ones are pruned with their events.
    pub keep_per_env: usize,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            default_strategy: "rolling".into(),
            grey_strategy: "canary".into(),
            replace_strategy: "recreate".into(),
            rollout_deadline_secs: 300,
            delete_timeout_secs: 60,
            max_replicas: 100,
            keep_per_env: 50,
        }
    }
}

impl Config {
    /// Reads `path`, applies `WARSHIP__*` overrides from `vars`, and checks the result.
    pub fn load(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config = Self::from_toml(&text, path, vars)?;
        config.resolve_plugin_sources(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// A plugin's `source` path is relative to the config file that names it, not to
    /// wherever `serve` was started.
    fn resolve_plugin_sources(&mut self, config_dir: &Path) {
        for plugin in self.plugins.iter_mut().flatten() {
            if !plugin.source.starts_with("builtin:") && Path::new(&plugin.source).is_relative() {
                plugin.source = config_dir.join(&plugin.source).to_string_lossy().into_owned();
            }
        }
    }

    pub fn from_toml(
        text: &str,
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.into(),
                message: e.to_string(),
            })?;
        let config = overrides::apply(doc, vars).map_err(|e| match e {
            overrides::Failed::Override(e) => e,
            overrides::Failed::Invalid(message) => ConfigError::Invalid {
                path: path.into(),
                message,
            },
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(config)
    }

    /// For an image in the push registry at `<owner>/<name>…`: the owner, a segment
    /// user images (`<user>/<env>`) could also have.
    fn platform_repository_owner<'a>(&self, image: &'a str) -> Option<&'a str> {
        let mut parts: Vec<&str> = image.split('/').collect();
        // A first part with a dot, a colon or `localhost` is a registry host.
        let host = parts.first().filter(|p| p.contains('.') || p.contains(':') || **p == "localhost").copied();
        if let Some(host) = host {
            if host != self.registry.push {
                return None;
            }
            parts.remove(0);
        }
        (parts.len() >= 2).then(|| parts[0])
    }

    pub fn catalog_entry(&self, tomcat: &str, jdk: &str) -> Option<&CatalogEntry> {
        self.catalog.iter().find(|c| c.tomcat == tomcat && c.jdk == jdk)
    }
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        OneOrMany::Many(v) => v,
    })
}

#[path = "config_checks.rs"]
mod checks;

#[path = "config_overrides.rs"]
mod overrides;

#[path = "config_location.rs"]
pub mod location;

#[path = "config_console.rs"]
mod console;
pub use console::ConsoleConfig;

#[path = "config_cors.rs"]
mod cors;
pub use cors::CorsConfig;

#[path = "config_storage.rs"]
mod storage;
pub use storage::{StorageBackend, StorageConfig};

#[path = "config_webhooks.rs"]
mod webhooks;
pub use webhooks::WebhooksConfig;

#[path = "config_tenancy.rs"]
mod tenancy;
pub use tenancy::{thousandths, IngressFrom, LimitsConfig, QuotaConfig};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
