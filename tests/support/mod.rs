//! Test harness: real parts on free loopback ports, stopped on drop; the router the
//! binary serves, driven in-process; real WARs that nobody here wrote.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use warship_host::config::Config;
use warship_host::envs::Envs;
use warship_host::http::{self, AppState, Services};
use warship_host::plugins::{Plugins, Runtime};
use warship_host::server::metrics_handle;
use warship_host::store::{DynStore, EmbeddedStore, EtcdStore, Metered};
use warship_host::users::Users;
use warship_host::wars::Wars;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real etcd server (Debian's etcd-server) on loopback, in its own temp dir.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let child = Command::new("etcd")
            .args(["--data-dir", dir.path().join("etcd").to_str().unwrap()])
            .args(["--name", "warship-test"])
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("warship-test=http://127.0.0.1:{peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is not installed: run scripts/test, which installs Debian's etcd-server");
        let etcd = Etcd { child, endpoint, _dir: dir };
        let started = Instant::now();
        loop {
            if let Ok(store) = etcd.connect("/probe/").await {
                use warship_host::store::Store;
                if store.ping().await.is_ok() {
                    return etcd;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "etcd did not become ready in 20s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn connect(&self, prefix: &str) -> Result<EtcdStore, warship_host::store::StoreError> {
        EtcdStore::connect(&[self.endpoint.clone()], prefix, Duration::from_secs(5)).await
    }

    /// Stops etcd now, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
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
        let state = Arc::new(Services {
            users: Users::new(store.clone(), &config.users.static_users).unwrap(),
            envs: Envs::new(store.clone(), config.clone(), plugins.clone()),
            plugins,
            wars: Wars::new(store.clone(), config.store.data_dir.join("wars"), config.uploads.clone()).unwrap(),
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
        let response = http::app(self.state.clone()).oneshot(request).await.unwrap();
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

/// Real WARs from Debian packages, fetched by scripts/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("WARSHIP_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/warship/fixtures")
    });
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run scripts/fixtures (scripts/test does)", path.display());
    path
}

/// A zip built in memory, for inputs no real WAR has.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}
