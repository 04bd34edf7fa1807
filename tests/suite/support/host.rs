//! A real `warship serve` process for end-to-end tests against a real cluster, and
//! what those tests read back from the API server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

use super::{fixture, free_port, KubeCluster, Registry};

const BIN: &str = env!("CARGO_BIN_EXE_warship");

pub struct Host {
    /// None for a client of an address this test did not start (a load balancer).
    child: Option<Child>,
    pub base: String,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
}

/// `warship serve` on `config`, its log appended to `log`.
fn serve(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn add_user(config: &Path, name: &str) -> String {
    let out = Command::new(BIN).args(["user", "add", name, "--config", config.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_owned()
}

impl Host {
    /// Writes the host's config, adds `users` (before serving: the embedded store is
    /// one process's) and serves; returns the users' tokens too. Every host started in
    /// `dir` shares `dir/data`, so local WAR blobs are on storage they share.
    pub fn start(dir: &Path, name: &str, extra: &str, users: &[&str]) -> (Host, Vec<String>) {
        Self::start_in(dir, name, &dir.join("data"), extra, users)
    }

    /// As [`Host::start`], with a data dir of its own.
    pub fn start_in(dir: &Path, name: &str, data_dir: &Path, extra: &str, users: &[&str]) -> (Host, Vec<String>) {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\ndata_dir = \"{}\"\n{extra}\n\
                 [[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"warship/tomcat:10.1-jdk17\"\n\
                 [[catalog]]\ntomcat = \"9.0\"\njdk = \"17\"\nbase_image = \"warship/tomcat:9.0-jdk17\"\n",
                data_dir.display()
            ),
        )
        .unwrap();
        let tokens = users.iter().map(|user| add_user(&config, user)).collect();
        let log = dir.join(format!("{name}.log"));
        let host = Host { child: Some(serve(&config, &log)), base: format!("http://127.0.0.1:{port}"), config, log };
        host.wait_ready();
        (host, tokens)
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while Command::new("curl").args(["-sf", &format!("{}/readyz", self.base)]).output().is_ok_and(|o| !o.status.success()) {
            assert!(started.elapsed() < Duration::from_secs(30), "warship did not become ready: {}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The API at `base`, served by something else (a load balancer in front of hosts).
    pub fn at(base: &str) -> Host {
        Host { child: None, base: base.to_owned(), config: Default::default(), log: Default::default() }
    }

    /// SIGTERM, as a rolling update stops a host: it finishes what is in flight and exits
    /// (within its shutdown grace; past 60 s it is killed, and the test says so).
    pub fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else { return };
        // Only a child not yet reaped: its pid cannot have been reused.
        if child.try_wait().is_ok_and(|exited| exited.is_none()) {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let started = Instant::now();
        while child.try_wait().is_ok_and(|exited| exited.is_none()) {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("a host did not stop within 60 s of SIGTERM: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the host gracefully (if it still runs) and serves again on the same port and config.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(serve(&self.config, &self.log));
        self.wait_ready();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a host this test started").id()
    }

    /// Everything the host (in each of its lives) logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let cut = (log.len().saturating_sub(3000)..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
        log[cut..].to_owned()
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET whose answer is text (logs), not JSON.
    pub async fn get_text(&self, path: &str, token: &str) -> (u16, String) {
        let response = reqwest::Client::new().get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn upload(&self, token: &str, app: &str, file: &str, path: &Path) {
        let response = reqwest::Client::new()
            .put(format!("{}/api/v1/wars/{app}/{file}", self.base))
            .bearer_auth(token)
            .body(std::fs::read(path).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());
    }

    /// Polls the deploy until it is final.
    pub async fn wait_deploy(&self, token: &str, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, record) = self.get(&format!("/api/v1/deploys/{id}"), token).await;
            assert_eq!(status, 200, "{record}");
            if ["succeeded", "failed", "aborted"].contains(&record["status"].as_str().unwrap()) {
                return record;
            }
            assert!(started.elapsed() < Duration::from_secs(180), "deploy {id} still {} after 180s: {record}", record["status"]);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls the deploy until its strategy's step is `action` (`await-promotion`, …);
    /// panics if it ends first.
    pub async fn wait_step(&self, token: &str, id: &str, action: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, record) = self.get(&format!("/api/v1/deploys/{id}"), token).await;
            assert_eq!(status, 200, "{record}");
            if record["status"] == "rolling-out" && record["step"]["action"] == action {
                return record;
            }
            assert!(
                !["succeeded", "failed", "aborted"].contains(&record["status"].as_str().unwrap()),
                "deploy {id} ended before {action}: {record}"
            );
            assert!(started.elapsed() < Duration::from_secs(180), "deploy {id} never reached {action}: {record}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The deploy's server-sent events until the stream ends: (event name, data).
    pub async fn events(&self, token: &str, id: &str) -> Vec<(String, Value)> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/deploys/{id}/events", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let mut text = String::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let mut events = Vec::new();
        for block in text.split("\n\n") {
            let name = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default();
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if !name.is_empty() {
                events.push((name.to_owned(), serde_json::from_str(&data).unwrap()));
            }
        }
        events
    }
}

impl Host {
    /// SIGKILL: the host gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn config_for(registry: &Registry, cluster: &KubeCluster, store: &str) -> String {
    config_with(registry, &cluster.kubeconfig, store)
}

/// A host's config on `registry`, reaching Kubernetes through `kubeconfig`.
pub fn config_with(registry: &Registry, kubeconfig: &Path, store: &str) -> String {
    format!(
        "{store}\n[registry]\npush = \"{addr}\"\npull = \"{addr}\"\ninsecure = true\n[kubernetes]\nkubeconfig = \"{}\"\n",
        kubeconfig.display(),
        addr = registry.addr
    )
}

/// Pods of a Deployment, by its selector, with whether each is Ready and its image.
pub async fn pods_of(client: &kube::Client, namespace: &str, env: &str, release: u32) -> Vec<(bool, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods.list(&ListParams::default().labels(&format!("env={env},warship.io/release={release}"))).await.unwrap();
    listed
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            (ready, p.spec.as_ref().unwrap().containers[0].image.clone().unwrap())
        })
        .collect()
}

/// The names of the namespace's Deployments.
pub async fn deployment_names(client: &kube::Client, namespace: &str) -> Vec<String> {
    deployments(client, namespace).await.into_iter().filter_map(|d| d.metadata.name).collect()
}

/// The Service's selector: with `warship.io/release` it sends traffic to one release,
/// without it to every release of the env.
pub async fn service_selector(client: &kube::Client, namespace: &str, env: &str) -> std::collections::BTreeMap<String, String> {
    let service = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), namespace).get(env).await.unwrap();
    service.spec.unwrap().selector.unwrap_or_default()
}

pub async fn deployments(client: &kube::Client, namespace: &str) -> Vec<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), namespace).list(&ListParams::default()).await.unwrap().items
}

pub fn statuses(events: &[(String, Value)]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (name, data) in events {
        if name == "record" {
            let status = data["status"].as_str().unwrap().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status);
            }
        }
    }
    seen
}

/// Every real part, a host with alice, her env `shop` of `replicas` with sample.war
/// uploaded, and release 1 of it serving (deployed by `strategy`).
pub struct Shop {
    pub registry: Registry,
    pub cluster: KubeCluster,
    pub kube: kube::Client,
    pub dir: tempfile::TempDir,
    pub host: Host,
    pub alice: String,
    pub first: Value,
    pub first_image: String,
}

impl Shop {
    pub async fn serving(replicas: u32, strategy: &str) -> Shop {
        let registry = Registry::start().await;
        registry.push_base_images();
        let cluster = KubeCluster::start();
        let kube = cluster.client().await;
        let dir = tempfile::tempdir().unwrap();
        let (host, tokens) = Host::start(dir.path(), "host", &config_for(&registry, &cluster, ""), &["alice"]);
        let alice = tokens[0].clone();
        let (status, env) = host.post("/api/v1/envs", &alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": replicas})).await;
        assert_eq!(status, 201, "{env}");
        host.upload(&alice, "sample", "sample.war", &fixture("sample.war")).await;
        let first = deploy(&host, &alice, json!({"war": "sample.war", "version": "1.0", "strategy": strategy})).await;
        let first = host.wait_deploy(&alice, &first).await;
        assert_eq!(first["status"], "succeeded", "{first}");
        let first_image = first["image"].as_str().unwrap().to_owned();
        Shop { registry, cluster, kube, dir, host, alice, first, first_image }
    }

    /// SIGKILLs the host and starts another on the same store.
    pub fn kill_and_restart(&mut self) {
        self.host.kill();
        self.host = Host::start(self.dir.path(), "host", &config_for(&self.registry, &self.cluster, ""), &[]).0;
    }
}

/// Every real part with the dev cluster's real node: a registry with the Tomcat bases
/// that the node pulls from, the cluster with its gateway, and a host (routing envs on
/// that gateway) with the user alice.
pub struct RealNode {
    pub registry: Registry,
    pub cluster: KubeCluster,
    pub dir: tempfile::TempDir,
    pub host: Host,
    pub alice: String,
}

impl RealNode {
    pub async fn start() -> RealNode {
        let registry = Registry::start().await;
        registry.push_base_images();
        let cluster = KubeCluster::start_with_real_node();
        cluster.trust_registry(&registry.addr);
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{}{}", config_for(&registry, &cluster, ""), cluster.gateway_config());
        let (host, tokens) = Host::start(dir.path(), "host", &config, &["alice"]);
        RealNode { registry, cluster, dir, host, alice: tokens[0].clone() }
    }
}

/// Starts a deploy on env `shop`; its id.
pub async fn deploy(host: &Host, token: &str, body: Value) -> String {
    deploy_to(host, token, "shop", body).await
}

/// Starts a deploy on `env`; its id.
pub async fn deploy_to(host: &Host, token: &str, env: &str, body: Value) -> String {
    let (status, started) = host.post(&format!("/api/v1/envs/{env}/deploys"), token, body).await;
    assert_eq!(status, 202, "{started}");
    started["id"].as_str().unwrap().to_owned()
}
