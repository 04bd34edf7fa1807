//! Several hosts, one platform: three `warship serve` processes sharing etcd and a
//! bucket on a real S3 server (SeaweedFS), behind a real load balancer (HAProxy checking
//! `/readyz`), deploying to the local control plane (kwok nodes).

use crate::support::balancer::Balancer;
use crate::support::host::{config_for, deploy, deploy_to, Host};
use crate::support::s3::S3Server;
use crate::support::{files_under, fixture, Etcd, KubeCluster, Registry};

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_warship");

/// `warship follow ID --output json` against `url`: the real CLI, which reconnects with
/// the last event id when its stream breaks. Its final record, or why it failed.
pub(crate) fn follower(url: &str, token: &str, id: &str) -> tokio::task::JoinHandle<Result<Value, String>> {
    let mut command = tokio::process::Command::new(BIN);
    command.args(["follow", id, "--output", "json", "--url", url]).env("WARSHIP_TOKEN", token).kill_on_drop(true);
    tokio::spawn(async move {
        let out = command.output().await.map_err(|e| e.to_string())?;
        let said = String::from_utf8_lossy(&out.stdout);
        match out.status.success() {
            true => serde_json::from_str(said.trim()).map_err(|e| format!("{e}: {said}")),
            false => Err(format!("{}: {said} {}", out.status, String::from_utf8_lossy(&out.stderr))),
        }
    })
}

/// API calls through the balancer, one after another on each of `clients` tasks, until
/// `stop`: how many were made, and every failure a client would not retry (anything
/// but a success, or a 503 that says to come back).
pub(crate) struct Load {
    made: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    latencies: Arc<std::sync::Mutex<Vec<Duration>>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Reads of the user's envs, WARs, and of `env` and its deploys.
    pub(crate) fn start(base: &str, token: &str, env: &str, clients: usize) -> Load {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (made, failures, latencies) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())), Arc::new(std::sync::Mutex::new(Vec::new())));
        let tasks = (0..clients)
            .map(|i| {
                let (base, token, stopped) = (base.to_owned(), token.to_owned(), stopped.clone());
                let paths = ["/api/v1/envs".to_owned(), "/api/v1/wars".to_owned(), format!("/api/v1/envs/{env}/deploys"), format!("/api/v1/envs/{env}")];
                let (made, failures, latencies) = (made.clone(), failures.clone(), latencies.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut n = i;
                    while !*stopped.borrow() {
                        let path = &paths[n % paths.len()];
                        n += 1;
                        let began = Instant::now();
                        let answer = client.get(format!("{base}{path}")).bearer_auth(&token).timeout(Duration::from_secs(10)).send().await;
                        latencies.lock().unwrap().push(began.elapsed());
                        made.fetch_add(1, Ordering::SeqCst);
                        match answer {
                            Ok(r) if r.status().is_success() => {}
                            Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {}
                            Ok(r) => failures.lock().unwrap().push(format!("GET {path}: {}", r.status())),
                            Err(e) => failures.lock().unwrap().push(format!("GET {path}: {e}")),
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load { made, failures, latencies, stop, tasks }
    }

    pub(crate) async fn finish(self) -> (usize, Vec<String>, Vec<Duration>) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            task.await.unwrap();
        }
        let mut latencies = self.latencies.lock().unwrap().clone();
        latencies.sort();
        (self.made.load(Ordering::SeqCst), self.failures.lock().unwrap().clone(), latencies)
    }
}

pub(crate) fn shared_config(etcd: &Etcd, s3: &S3Server, registry: &Registry, cluster: &KubeCluster) -> String {
    let storage = s3.storage("scale-out/");
    let store = format!(
        "backend = \"etcd\"\netcd_endpoints = [\"{}\"]\n[storage]\nbackend = \"s3\"\ns3_endpoint = \"{}\"\ns3_bucket = \"{}\"\n\
         s3_prefix = \"{}\"\ns3_access_key_id = \"{}\"\ns3_secret_access_key = \"{}\"\n",
        etcd.endpoint,
        s3.endpoint,
        s3.bucket,
        storage.s3_prefix,
        storage.s3_access_key_id.unwrap(),
        storage.s3_secret_access_key.unwrap()
    );
    config_for(registry, cluster, &store)
}

fn blobs_on_disk(data: &Path) -> usize {
    files_under(&data.join("wars/sha256")).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_share_wars_and_deploys_behind_a_balancer_and_a_rolling_restart_fails_no_request() {
    let _alone = crate::support::one_heavy_test_at_a_time();
    let (etcd, s3, registry) = (Etcd::start().await, S3Server::start().await, Registry::start().await);
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(&etcd, &s3, &registry, &cluster);
    let data = |name: &str| dir.path().join(format!("{name}-data"));
    let (mut a, tokens) = Host::start_in(dir.path(), "a", &data("a"), &config, &["alice"]);
    let (mut b, _) = Host::start_in(dir.path(), "b", &data("b"), &config, &[]);
    let (mut c, _) = Host::start_in(dir.path(), "c", &data("c"), &config, &[]);
    let alice = tokens[0].as_str();
    let balancer = Balancer::start(&[&a.base, &b.base, &c.base]);
    let lb = Host::at(&balancer.base);

    // A WAR uploaded through host A is built and deployed by host B, followed live on C.
    let (status, env) = lb.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 4})).await;
    assert_eq!(status, 201, "{env}");
    a.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    assert_eq!(blobs_on_disk(&data("a")), 0, "the WAR is in the bucket, not on A's disk");
    let first = deploy(&b, alice, json!({"war": "sample.war", "version": "1.0", "strategy": "rolling"})).await;
    let on_c = follower(&c.base, alice, &first);
    let done = lb.wait_deploy(alice, &first).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(on_c.await.unwrap().unwrap()["status"], "succeeded", "C's follower ends with the final record");

    // Host B killed in the middle of a canary: another host carries it on.
    let steps = json!([{"weight": 25}, {"await-promotion": true}, {"weight": 100}]);
    let canary = deploy(&b, alice, json!({"war": "sample.war", "version": "2.0", "strategy": "canary", "settings": {"steps": steps}})).await;
    let watching = follower(&balancer.base, alice, &canary);
    b.wait_step(alice, &canary, "await-promotion").await;
    b.kill();
    let resumed = Instant::now();
    let (status, promoted) = lb.post(&format!("/api/v1/deploys/{canary}/promote"), alice, json!({})).await;
    assert_eq!(status, 202, "{promoted}");
    let done = lb.wait_deploy(alice, &canary).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(watching.await.unwrap().unwrap()["status"], "succeeded");
    eprintln!("canary resumed by another host and finished {:?} after B was killed", resumed.elapsed());
    b.restart();

    // A rolling restart of every host under steady API calls and followers through the balancer.
    for i in 1..=3 {
        let (status, env) = lb.post("/api/v1/envs", alice, json!({"name": format!("shop{i}"), "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
        assert_eq!(status, 201, "{env}");
    }
    let load = Load::start(&balancer.base, alice, "shop", 4);
    let mut followers = Vec::new();
    let mut deploys = Vec::new();
    for i in 1..=3 {
        let id = deploy_to(&lb, alice, &format!("shop{i}"), json!({"war": "sample.war", "version": "1.0", "strategy": "rolling"})).await;
        followers.extend((0..2).map(|_| follower(&balancer.base, alice, &id)));
        deploys.push(id);
    }
    let restarting = Instant::now();
    for host in [&mut a, &mut b, &mut c] {
        host.restart();
    }
    let restart_took = restarting.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (made, failures, latencies) = load.finish().await;
    for id in &deploys {
        let done = lb.wait_deploy(alice, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    for (i, follower) in followers.into_iter().enumerate() {
        let record = follower.await.unwrap().unwrap_or_else(|e| panic!("follower {i}: {e}"));
        assert_eq!(record["status"], "succeeded", "follower {i} ends with the final record");
    }
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!("rolling restart of 3 hosts in {restart_took:?}: {made} API calls, {} failed, p99 {p99:?}", failures.len());
    assert!(made > 100, "the load ran through the restart ({made} calls)");
    assert_eq!(failures, Vec::<String>::new(), "no request failed that a client would not retry");
    assert!(a.log().contains("configuration read"), "{}", a.log_tail());
    assert!(!a.log().contains('\u{1b}'), "a log written to a file carries no colour codes");
}
