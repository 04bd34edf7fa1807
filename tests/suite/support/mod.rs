//! Test harness: real parts on free loopback ports, stopped on drop; the router the
//! binary serves, driven in-process; real WARs that nobody here wrote.
#![allow(dead_code)]

pub mod host;
pub mod incluster;
pub mod balancer;
pub mod browser;
pub mod cli;
pub mod proxy;
pub mod s3;
mod cluster;
mod containers;
mod etcd;
mod registry;
mod tls;
mod wars;

pub use cluster::{one_heavy_test_at_a_time, KubeCluster};
pub use containers::{podman, remove_images, run_container, PodmanService};
pub use etcd::Etcd;
pub use registry::{FaultProxy, Registry};
pub use tls::{client_certificate, tls_chain};
pub use wars::{big_war, failing_war, fixture, repackaged_war, versioned_war, zip_of};

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use warship_host::config::Config;
use warship_host::envs::{EnvOps, Envs};
use warship_host::images::Images;
use warship_host::deploys::Deploys;
use warship_host::http::{AppState, Services};
use warship_host::plugins::{Plugins, Runtime};
use warship_host::server::metrics_handle;
use warship_host::store::{DynStore, EmbeddedStore, Metered};
use warship_host::users::Users;
use warship_host::wars::Wars;

/// A memory figure of `/proc/<pid>/status` (`"self"` for this process) in KiB:
/// `VmRSS` (now) or `VmHWM` (the peak so far); 0 when the process is gone.
pub fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let value = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'));
    value.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One plugin runtime per test binary, its precompiled cache kept across runs.
pub fn plugin_runtime() -> Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new(Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))).unwrap())
        .clone()
}

/// Every built-in plugin with its default settings, loaded once per test binary.
pub fn builtin_plugins() -> Arc<Plugins> {
    static PLUGINS: std::sync::OnceLock<Arc<Plugins>> = std::sync::OnceLock::new();
    PLUGINS
        .get_or_init(|| Arc::new(Plugins::load(&plugin_runtime(), &Config::default()).unwrap()))
        .clone()
}

/// A config with a small catalog and a data dir of its own.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let text = format!(
        r#"
        [store]
        data_dir = "{}"
        [[catalog]]
        tomcat = "9.0"
        jdk = "11"
        base_image = "warship/tomcat:9.0-jdk11"
        [[catalog]]
        tomcat = "10.1"
        jdk = "17"
        base_image = "warship/tomcat:10.1-jdk17"
        [[catalog]]
        tomcat = "10.1"
        jdk = "21"
        base_image = "warship/tomcat:10.1-jdk21"
        "#,
        data_dir.display()
    );
    Config::from_toml(&text, std::path::Path::new("test.toml"), std::iter::empty()).unwrap()
}

/// The real router over a real store, driven with `oneshot`.
pub struct TestApp {
    pub state: AppState,
    pub dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl TestApp {
    pub async fn embedded() -> TestApp {
        Self::embedded_with(|_| {}).await
    }

    pub async fn embedded_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let store: DynStore = Arc::new(Metered(EmbeddedStore::open(&dir.path().join("warship.redb")).unwrap()));
        Self::with_store(config, store, dir)
    }

    pub fn with_store(config: Config, store: DynStore, dir: tempfile::TempDir) -> TestApp {
        let config = Arc::new(config);
        let plugins = match &config.plugins {
            None => builtin_plugins(),
            Some(_) => Arc::new(Plugins::load(&plugin_runtime(), &config).unwrap()),
        };
        let envs = Envs::new(store.clone(), config.clone(), plugins.clone());
        let mut wars = Wars::new(store.clone(), config.store.data_dir.join("wars"), config.uploads.clone()).unwrap();
        if config.storage.backend == warship_host::config::StorageBackend::S3 {
            wars = wars.in_objects(warship_host::wars::ObjectBlobs::connect(&config.storage).unwrap());
        }
        let wars = Arc::new(wars);
        let (builder, client) = warship_host::server::image_builder(&config).unwrap();
        let images = Arc::new(Images::new(store.clone(), config.clone(), plugins.clone(), envs.clone(), wars.clone(), builder, client));
        // In-process apps have no cluster; deploys against a real one run `warship serve`.
        let deploys = Deploys::new(store.clone(), config.clone(), plugins.clone(), envs.clone(), images.clone(), None);
        let env_ops = EnvOps::new(store.clone(), config.clone(), envs.clone(), None);
        let webhooks = warship_host::webhooks::Webhooks::new(store.clone(), config.clone(), envs.clone());
        deploys.tell_changes_to(webhooks.clone());
        let state = Arc::new(Services {
            users: Users::new(store.clone(), &config.users.static_users).unwrap(),
            envs,
            env_ops,
            plugins,
            wars,
            images,
            deploys,
            webhooks,
            metrics: metrics_handle(),
            config,
            store,
        });
        TestApp { state, dir }
    }

    pub async fn user(&self, name: &str) -> String {
        self.state.users.add(name).await.unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = warship_host::console::app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, json: Option<serde_json::Value>) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match json {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub async fn upload(&self, token: &str, app: &str, file: &str, bytes: Vec<u8>) -> Reply {
        let request = Request::put(format!("/api/v1/wars/{app}/{file}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/octet-stream")
            .body(Body::from(bytes))
            .unwrap();
        self.send(request).await
    }

    /// Files under the WAR storage: blobs and leftover temp files.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        files_under(&self.state.config.store.data_dir.join("wars"))
    }
}

/// Every file below `dir`, sorted; none when it does not exist.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

impl Reply {
    /// Asserts the problem+json shape every error must have, and returns its code.
    pub fn problem_code(&self) -> &str {
        assert_eq!(
            self.headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "not a problem response: {} {}",
            self.status,
            self.text
        );
        assert_eq!(self.body["status"], self.status.as_u16(), "{}", self.text);
        assert!(self.body["title"].as_str().is_some_and(|t| !t.is_empty()), "{}", self.text);
        assert!(self.body["detail"].as_str().is_some_and(|t| !t.is_empty()), "{}", self.text);
        assert!(self.body["errors"].is_array(), "{}", self.text);
        self.body["code"].as_str().expect("problem has a code")
    }

    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
    }
}
