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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use warship_host::store::{DynStore, EmbeddedStore, EtcdAccess, EtcdStore, Metered};
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

/// A real etcd server (Debian's etcd-server) on loopback, in its own temp dir.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    /// What a client needs to reach it (TLS material when it serves TLS).
    pub access: EtcdAccess,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub async fn start() -> Etcd {
        Self::start_with(None).await
    }

    /// With `tls` (the CA, etcd's certificate and key): serves `https://` only and
    /// asks every client for a certificate that CA signed.
    pub async fn start_with(tls: Option<(&Path, &Path, &Path)>) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let mut command = Command::new("etcd");
        command
            .args(["--data-dir", dir.path().join("etcd").to_str().unwrap()])
            .args(["--name", "warship-test"])
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("warship-test=http://127.0.0.1:{peer}"),
            ]);
        let mut access = EtcdAccess::default();
        if let Some((ca, cert, key)) = tls {
            let path = |p: &Path| p.to_str().unwrap().to_owned();
            command
                .args(["--cert-file", &path(cert), "--key-file", &path(key)])
                .args(["--client-cert-auth", "--trusted-ca-file", &path(ca)]);
            // The test's own client: the same CA, and a certificate it signed.
            let (client_cert, client_key) =
                client_certificate(ca.parent().unwrap(), "etcd-test-client");
            access.ca = Some(std::fs::read(ca).unwrap());
            access.identity = Some((
                std::fs::read(client_cert).unwrap(),
                std::fs::read(client_key).unwrap(),
            ));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is not installed: run scripts/test, which installs Debian's etcd-server");
        let etcd = Etcd {
            child,
            endpoint,
            access,
            _dir: dir,
        };
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

    pub async fn connect(
        &self,
        prefix: &str,
    ) -> Result<EtcdStore, warship_host::store::StoreError> {
        EtcdStore::connect_with(
            &[self.endpoint.clone()],
            prefix,
            Duration::from_secs(5),
            &self.access,
        )
        .await
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

/// Real WARs from Debian packages, fetched by scripts/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("WARSHIP_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/warship/fixtures")
    });
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run scripts/fixtures (scripts/test does)", path.display());
    path
}

/// A Jakarta EE WAR compiled here with `javac` against Tomcat 10's Servlet API: `/version`
/// (a servlet) answers `version <version>`, `/` a static page. Written to `dir`.
pub fn versioned_war(dir: &Path, version: &str) -> PathBuf {
    let servlet = format!(
        "import jakarta.servlet.annotation.WebServlet;\nimport jakarta.servlet.http.*;\n\
         @WebServlet(\"/version\")\npublic class Version extends HttpServlet {{\n\
         protected void doGet(HttpServletRequest q, HttpServletResponse r) throws java.io.IOException {{\n\
         r.setContentType(\"text/plain\"); r.getWriter().print(\"version {version}\"); }}\n}}\n"
    );
    compiled_war(dir, &format!("app-{version}"), &[("Version", &servlet)], &format!("<html><body>app {version}</body></html>"))
}

/// A WAR as many real builds make it: the app's classes in a jar of their own under
/// `WEB-INF/lib` (none in `WEB-INF/classes`), beside `libraries` (real jars, e.g. from
/// Maven Central). `war` is one built here (`versioned_war`); written to `dir/<name>.war`.
pub fn repackaged_war(dir: &Path, war: &Path, name: &str, libraries: &[PathBuf]) -> PathBuf {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(war).unwrap()).unwrap();
    let (mut app, mut rest) = (Vec::new(), Vec::new());
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        match entry.name().strip_prefix("WEB-INF/classes/") {
            Some(class) => app.push((class.to_owned(), bytes)),
            None => rest.push((entry.name().to_owned(), bytes)),
        }
    }
    let app_jar = zip_of(&app.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect::<Vec<_>>());
    rest.push(("WEB-INF/lib/app.jar".into(), app_jar));
    for library in libraries {
        rest.push((format!("WEB-INF/lib/{}", library.file_name().unwrap().to_string_lossy()), std::fs::read(library).unwrap()));
    }
    let path = dir.join(format!("{name}.war"));
    std::fs::write(&path, zip_of(&rest.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect::<Vec<_>>())).unwrap();
    path
}

/// A WAR whose context cannot start: its listener throws, so Tomcat answers 404 at `/`.
pub fn failing_war(dir: &Path) -> PathBuf {
    let listener = "import jakarta.servlet.*;\nimport jakarta.servlet.annotation.WebListener;\n\
         @WebListener\npublic class Boom implements ServletContextListener {\n\
         public void contextInitialized(ServletContextEvent e) { throw new IllegalStateException(\"no database configured\"); }\n}\n";
    compiled_war(dir, "failing", &[("Boom", listener)], "<html><body>never served</body></html>")
}

/// `classes` (name, Java source) compiled with `javac --release 17` into `WEB-INF/classes`,
/// beside an `index.html`, as `dir/<name>.war`.
fn compiled_war(dir: &Path, name: &str, classes: &[(&str, &str)], index: &str) -> PathBuf {
    let work = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(work.join("classes")).unwrap();
    let sources: Vec<PathBuf> = classes
        .iter()
        .map(|(class, source)| {
            let path = work.join(format!("{class}.java"));
            std::fs::write(&path, source).unwrap();
            path
        })
        .collect();
    let javac = Command::new("javac")
        .args(["--release", "17", "-cp"])
        .arg(fixture("servlet-api.jar"))
        .arg("-d")
        .arg(work.join("classes"))
        .args(&sources)
        .output()
        .expect("javac (Java 17) is installed");
    assert!(javac.status.success(), "javac: {}", String::from_utf8_lossy(&javac.stderr));
    let compiled: Vec<(String, Vec<u8>)> = classes
        .iter()
        .map(|(class, _)| (format!("WEB-INF/classes/{class}.class"), std::fs::read(work.join(format!("classes/{class}.class"))).unwrap()))
        .collect();
    let mut entries: Vec<(&str, &[u8])> = compiled.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice())).collect();
    entries.push(("index.html", index.as_bytes()));
    let war = dir.join(format!("{name}.war"));
    std::fs::write(&war, zip_of(&entries)).unwrap();
    war
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

/// Debian's docker-registry (distribution) on a free loopback port, with storage of its
/// own. `extra` is YAML appended to its config (auth, TLS).
pub struct Registry {
    child: Option<Child>,
    pub addr: String,
    pub root: PathBuf,
    config: PathBuf,
    scheme: &'static str,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        Self::start_with("", "http").await
    }

    /// `scheme` is `https` when `extra` configures TLS.
    pub async fn start_with(extra: &str, scheme: &'static str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n#extra\n{extra}",
                root.display()
            ),
        )
        .unwrap();
        let mut registry = Registry { child: None, addr, root, config, scheme, _dir: dir };
        registry.resume_serving().await;
        registry
    }

    /// Restarts it on the same address and storage with other settings.
    pub async fn reconfigure(&mut self, extra: &str, scheme: &'static str) {
        self.kill();
        let text = std::fs::read_to_string(&self.config).unwrap();
        let base = text.split_once("\n#extra\n").map_or(text.as_str(), |(b, _)| b).to_owned();
        std::fs::write(&self.config, format!("{base}\n#extra\n{extra}")).unwrap();
        self.scheme = scheme;
        self.resume_serving().await;
    }

    /// Starts the process (again) on the same address and storage.
    pub async fn resume_serving(&mut self) {
        let child = Command::new("docker-registry")
            .args(["serve", self.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is not installed: run scripts/test, which installs it");
        self.child = Some(child);
        let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        let started = Instant::now();
        while client.get(format!("{}://{}/v2/", self.scheme, self.addr)).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the registry did not answer in 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it at once, as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections stay open and nothing answers.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Puts the Tomcat base images (built from Maven Central's Tomcat and this machine's
    /// JDK by scripts/base-images, cached) into this registry as `warship/tomcat:<tag>`.
    pub fn push_base_images(&self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/base-images");
        let output = Command::new(script).args(["push", &self.addr]).output().unwrap();
        assert!(output.status.success(), "scripts/base-images push failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The tags of a repository, as anyone may list them (anonymous, plain HTTP).
    pub async fn tags(&self, repository: &str) -> Vec<String> {
        let answer: serde_json::Value = reqwest::get(format!("http://{}/v2/{repository}/tags/list", self.addr)).await.unwrap().json().await.unwrap();
        answer["tags"].as_array().map(|t| t.iter().map(|v| v.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
    }

    /// Blob files in its storage, to tell what was uploaded.
    pub fn blob_count(&self) -> usize {
        files_under(&self.root.join("docker/registry/v2/blobs")).len()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.freeze(false);
        self.kill();
    }
}

/// podman with the settings that work on these machines (../shared/notes/containers-here.md),
/// its storage kept under the cache folder so tests never touch the machine's own.
pub fn podman() -> Command {
    let cache = std::env::var_os("WARSHIP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/warship"));
    let mut command = Command::new("podman");
    command
        .args(["--runtime", "runc", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
        .arg("--root")
        .arg(cache.join("podman/root"))
        .arg("--runroot")
        .arg(cache.join("podman/run"));
    command
}

/// A container started by [`run_container`], removed on drop.
pub struct Container {
    pub name: String,
    pub port: u16,
    image: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "1", &self.name]).output();
        // vfs keeps a full copy of every image: drop it, or test runs fill the disk.
        remove_images(&[&self.image]);
    }
}

/// Removes images from the test store by their ids (a name pulled by digest alone is not
/// enough for `podman rmi`).
pub fn remove_images(references: &[&str]) {
    for reference in references {
        let id = podman().args(["image", "inspect", "--format", "{{.Id}}", reference]).output();
        if let Ok(id) = id {
            let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
            if !id.is_empty() {
                let _ = podman().args(["rmi", "-f", &id]).output();
            }
        }
    }
}

/// Pulls `image` (by digest) from an insecure registry and runs it detached, its port
/// 8080 published on a free loopback port.
pub fn run_container(image: &str) -> Container {
    let pulled = podman().args(["pull", "-q", "--tls-verify=false", image]).output().unwrap();
    assert!(pulled.status.success(), "podman pull {image}: {}", String::from_utf8_lossy(&pulled.stderr));
    let container = Container { name: format!("warship-test-{}", uuid::Uuid::new_v4().simple()), port: free_port(), image: image.to_owned() };
    let run = podman()
        .args(["run", "-d", "--name", &container.name, "-p", &format!("127.0.0.1:{}:8080", container.port)])
        .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image])
        .output()
        .unwrap();
    assert!(run.status.success(), "podman run {image}: {}", String::from_utf8_lossy(&run.stderr));
    container
}

impl Container {
    /// Everything the container printed so far.
    pub fn logs(&self) -> String {
        let logs = podman().args(["logs", &self.name]).output().unwrap();
        String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr)
    }

    /// Waits until the container's log says `needle`, and returns the log.
    pub async fn log_when(&self, needle: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(started.elapsed() < within, "the container never logged {needle:?} within {within:?}:\n{logs}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// GETs `path` until it answers 200 (Tomcat deploys the WAR after it starts).
    pub async fn get_when_up(&self, path: &str, within: Duration) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(&url).await {
                if response.status().is_success() {
                    return response.text().await.unwrap();
                }
            }
            if started.elapsed() > within {
                panic!("{url} did not answer 200 within {within:?}; container log:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A CA and a server certificate it signed for 127.0.0.1, made with openssl:
/// (ca.pem, server.pem, server.key).
pub fn tls_chain(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, cert) = (dir.join("ca.key"), dir.join("ca.pem"), dir.join("server.key"), dir.join("server.csr"), dir.join("server.pem"));
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let steps: [Vec<String>; 3] = [
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=warship test CA", "-keyout", &p(&ca_key), "-out", &p(&ca)].map(String::from).to_vec(),
        ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", &p(&key), "-out", &p(&csr)].map(String::from).to_vec(),
        ["x509", "-req", "-in", &p(&csr), "-CA", &p(&ca), "-CAkey", &p(&ca_key), "-CAcreateserial", "-days", "1", "-extfile", &p(&ext), "-out", &p(&cert)].map(String::from).to_vec(),
    ];
    for args in steps {
        let made = Command::new("openssl").args(&args).output().unwrap();
        assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
    }
    (ca, cert, key)
}

/// A client certificate for `name`, signed by the CA `tls_chain` made in `dir`:
/// (name.pem, name.key).
pub fn client_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.cnf")),
    );
    std::fs::write(
        &ext,
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let steps: [Vec<String>; 2] = [
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ]
        .map(String::from)
        .to_vec(),
        [
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in steps {
        let made = Command::new("openssl").args(&args).output().unwrap();
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    (cert, key)
}

/// A proxy in front of a registry that answers 500 to the first `failures` requests,
/// then passes everything through untouched.
pub struct FaultProxy {
    pub addr: String,
    pub failed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, failures: usize) -> FaultProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (upstream, counter) = (upstream.to_owned(), failed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let (upstream, counter) = (upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    if counter.fetch_add(1, Ordering::SeqCst) < failures {
                        // Read the request head, answer 500 as a registry in trouble does, hang up.
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match client.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#;
                        let answer = format!(
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = client.write_all(answer.as_bytes()).await;
                        let _ = client.shutdown().await;
                        return;
                    }
                    counter.fetch_sub(1, Ordering::SeqCst);
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        FaultProxy { addr, failed, task }
    }

    /// How many requests got a 500.
    pub fn failures_injected(&self) -> usize {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A WAR of about `mib` MiB: a web.xml and incompressible filler, stored as is.
pub fn big_war(path: &std::path::Path, mib: usize) {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    w.start_file("WEB-INF/web.xml", stored).unwrap();
    w.write_all(br#"<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0"/>"#).unwrap();
    w.start_file("WEB-INF/lib/filler.bin", stored).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut chunk);
        w.write_all(&chunk).unwrap();
    }
    w.finish().unwrap();
}

/// podman's Docker-compatible API service on a socket of its own, for the docker
/// builder. `insecure` registries are plain HTTP to it.
pub struct PodmanService {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    pub async fn start(insecure: &[&str]) -> PodmanService {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("registries.conf");
        let mut text = String::from("unqualified-search-registries = []\n");
        for registry in insecure {
            text += &format!("[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n");
        }
        std::fs::write(&conf, text).unwrap();
        let socket = dir.path().join("podman.sock");
        let host = format!("unix://{}", socket.display());
        let child = podman()
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .args(["system", "service", "--time=0", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman is not installed: run scripts/test, which installs it");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "podman's API socket did not appear in 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PodmanService { child, host, _dir: dir }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Kubernetes control plane on loopback (scripts/dev-cluster in a temp dir):
/// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with three
/// fake nodes, and with [`KubeCluster::start_with_real_node`] a real node where pods run.
/// Stopped, every process of it, when dropped.
pub struct KubeCluster {
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    /// A real node changes host-wide state: one at a time in this process (the script
    /// also waits for one in another process).
    _real_node: Option<std::sync::MutexGuard<'static, ()>>,
}

static REAL_NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// For a test that loads the machine as much as a real node does (several hosts and
/// their servers): it runs alone among those, so real pods' timing is not starved by it.
pub fn one_heavy_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    REAL_NODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KubeCluster {
    /// kwok's fake nodes only: fast, and touches nothing host-wide.
    pub fn start() -> KubeCluster {
        Self::start_with(false)
    }

    /// Besides the fake nodes (tainted so no app pod lands there), one real node.
    pub fn start_with_real_node() -> KubeCluster {
        Self::start_with(true)
    }

    fn start_with(real_node: bool) -> KubeCluster {
        let guard = real_node.then(one_heavy_test_at_a_time);
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-cluster");
        let output = Command::new(&script)
            .args(["up", dir.path().to_str().unwrap()])
            .env("DEV_CLUSTER_REAL_NODES", if real_node { "1" } else { "0" })
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/dev-cluster up failed (scripts/test builds the binaries first): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8(output.stdout).unwrap().lines().last().unwrap().trim());
        KubeCluster { kubeconfig, dir, _real_node: guard }
    }

    /// Lets the real node's containerd pull from a plain-HTTP registry.
    pub fn trust_registry(&self, addr: &str) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-cluster");
        let status = Command::new(script).args(["trust-registry", addr, self.dir.path().to_str().unwrap()]).status().unwrap();
        assert!(status.success(), "dev-cluster trust-registry {addr}");
    }

    /// The port of the local Gateway (Traefik) that a real-node cluster runs.
    pub fn gateway_port(&self) -> u16 {
        let env = std::fs::read_to_string(self.dir.path().join("gateway.env")).expect("a cluster with a real node has a gateway");
        env.lines().find_map(|l| l.strip_prefix("GATEWAY_PORT=")).unwrap().trim().parse().unwrap()
    }

    /// A client that sends every request for `url`'s host to that gateway on loopback,
    /// as curl and browsers resolve `*.localhost`.
    pub fn gateway_client(&self, url: &str) -> reqwest::Client {
        let host = url::Url::parse(url).unwrap().host_str().unwrap().to_owned();
        reqwest::Client::builder()
            .resolve(&host, std::net::SocketAddr::from(([127, 0, 0, 1], self.gateway_port())))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// platform.toml's `[kubernetes.gateway]` for that gateway, envs under `localhost`.
    pub fn gateway_config(&self) -> String {
        format!(
            "[kubernetes.gateway]\nname = \"warship\"\nnamespace = \"warship-gateway\"\nbase_url = \"http://localhost:{}\"\n",
            self.gateway_port()
        )
    }

    /// A client of its API server, for checking what warship did.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// A kubeconfig of another admin (`host-a`, `host-b`): its writes are told apart
    /// in the audit log.
    pub fn kubeconfig_of(&self, who: &str) -> PathBuf {
        self.dir.path().join(format!("kubeconfig-{who}"))
    }

    /// Every write to Deployments and Services so far: (user, verb, when, what).
    pub fn audited_writes(&self) -> Vec<(String, String, time::OffsetDateTime, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .map(|e| {
                let at = time::OffsetDateTime::parse(e["requestReceivedTimestamp"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
                (e["user"]["username"].as_str().unwrap_or_default().to_owned(), e["verb"].as_str().unwrap_or_default().to_owned(), at, e["requestURI"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// The named component's log, for failure messages.
    pub fn log(&self, component: &str) -> String {
        let top = self.dir.path().join(format!("{component}.log"));
        let node = self.dir.path().join("node").join(format!("{component}.log"));
        std::fs::read_to_string(top).or_else(|_| std::fs::read_to_string(node)).unwrap_or_default()
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-cluster");
        let _ = Command::new(script).args(["down", self.dir.path().to_str().unwrap()]).output();
    }
}
