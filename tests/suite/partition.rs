//! A host cut off from the store mid-canary: it stops acting before its lease can pass
//! to another host, the other host carries the deploy on, and the record tells one
//! story. Two real hosts share a real etcd; one reaches it through a proxy that cuts
//! the traffic; the API server's audit log says which host wrote what, and when.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::support;
use support::host::{config_with, deploy, Host};
use support::proxy::Proxy;
use support::{fixture, Etcd, KubeCluster, Registry};

/// warship's lease TTL (`jobs::LEASE_TTL`).
const TTL: Duration = Duration::from_secs(15);
const CUT_FOR: Duration = Duration::from_secs(30);

async fn until(host: &Host, token: &str, id: &str, what: &str, within: Duration, test: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, record) = host.get(&format!("/api/v1/deploys/{id}"), token).await;
        if status == 200 && test(&record) {
            return record;
        }
        assert!(started.elapsed() < within, "deploy {id}: {what} did not happen within {within:?}: {record}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cut_off_from_etcd_mid_canary_stops_writing_to_kubernetes_and_another_host_finishes_the_deploy() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let etcd = Etcd::start().await;
    let proxy = Proxy::start(etcd.endpoint.trim_start_matches("http://")).await;
    let dir = tempfile::tempdir().unwrap();
    let store = |endpoint: &str| format!("backend = \"etcd\"\netcd_endpoints = [\"{endpoint}\"]");
    let (a, tokens) = Host::start(dir.path(), "a", &config_with(&registry, &cluster.kubeconfig_of("host-a"), &store(&etcd.endpoint)), &["alice"]);
    let through_proxy = format!("http://{}", proxy.addr);
    let (b, _) = Host::start(dir.path(), "b", &config_with(&registry, &cluster.kubeconfig_of("host-b"), &store(&through_proxy)), &[]);
    let alice = tokens[0].as_str();

    let (status, env) = a.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 4})).await;
    assert_eq!(status, 201, "{env}");
    a.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    let first = deploy(&a, alice, json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    assert_eq!(a.wait_deploy(alice, &first).await["status"], "succeeded");

    // A canary on host B; cut B off from etcd while it pauses, before it would scale on.
    let steps = json!([{"weight": 25}, {"pause-seconds": 20}, {"weight": 50}, {"await-promotion": true}]);
    let canary = deploy(&b, alice, json!({"war": "sample.war", "version": "2.0", "strategy": "canary", "settings": {"steps": steps}})).await;
    until(&a, alice, &canary, "the pause step", Duration::from_secs(120), |r| r["step"]["action"] == "pause").await;
    proxy.cut();
    let cut_at = OffsetDateTime::now_utc();

    // Host A takes it over once B's lease lapses, goes on where it was, and waits for promotion.
    let waiting = until(&a, alice, &canary, "host A taking over to the promotion step", TTL + Duration::from_secs(60), |r| {
        r["step"]["action"] == "await-promotion"
    })
    .await;
    assert_eq!(waiting["status"], "rolling-out", "{waiting}");
    let (status, promoted) = a.post(&format!("/api/v1/deploys/{canary}/promote"), alice, json!({})).await;
    assert_eq!(status, 202, "{promoted}");
    let done = a.wait_deploy(alice, &canary).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // B comes back; it must not act on the deploy it lost.
    let cut_elapsed = (OffsetDateTime::now_utc() - cut_at).unsigned_abs();
    tokio::time::sleep(CUT_FOR.saturating_sub(cut_elapsed)).await;
    proxy.mend();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let writes = cluster.audited_writes();
    let after_ttl: Vec<_> = writes.iter().filter(|(who, _, at, _)| who == "host-b" && *at > cut_at + TTL).collect();
    let by_a_after_cut = writes.iter().filter(|(who, _, at, _)| who == "host-a" && *at > cut_at).count();
    let by_b_after_cut = writes.iter().filter(|(who, _, at, _)| who == "host-b" && *at > cut_at).count();
    eprintln!(
        "partition: host B made {by_b_after_cut} Kubernetes writes after the cut, {} after its TTL; host A made {by_a_after_cut} after taking over",
        after_ttl.len()
    );
    assert!(after_ttl.is_empty(), "the cut-off host wrote to Kubernetes after its lease's TTL: {after_ttl:#?}");
    assert!(writes.iter().any(|(who, _, _, _)| who == "host-b"), "host B ran the canary's first steps: {writes:#?}");
    assert!(by_a_after_cut > 0, "host A carried the canary on");

    // One story: statuses only move forward, steps only grow, one end.
    let (_, record) = b.get(&format!("/api/v1/deploys/{canary}"), alice).await;
    assert_eq!(record["status"], "succeeded", "host B reads the end too: {record}");
    let order = ["queued", "validating", "building", "pushing", "rolling-out", "succeeded"];
    let history = record["history"].as_array().unwrap();
    let ranks: Vec<usize> = history.iter().map(|m| order.iter().position(|s| *s == m["status"]).unwrap()).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "statuses go forward: {history:#?}");
    let steps: Vec<u64> = history.iter().filter_map(|m| m["step"].as_u64()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "steps go forward: {steps:?}");
    assert_eq!(history.iter().filter(|m| m["status"] == "succeeded").count(), 1);
    assert_eq!(record["revision"], 2);
}
