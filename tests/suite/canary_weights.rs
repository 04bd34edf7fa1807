//! Exact canary weights on the real node: the built-in canary (contract 0.2.0) asks for
//! 25 % of requests, warship writes it as the env's HTTPRoute backend weights, and the
//! local Gateway (Traefik) splits requests so. Counted from real answers at the env's
//! URL: the candidate's share of 400 requests, then all new after a promotion, all old
//! after an abort, and the first release again after a rollback.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::host::{deploy, Host, RealNode};
use support::{versioned_war, KubeCluster};

/// Asks `/version` at the env's URL `n` times; how many answered each version.
async fn versions(cluster: &KubeCluster, url: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let client = cluster.gateway_client(url);
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let answer = match client.get(format!("{url}version")).send().await {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => format!("error: {e}"),
        };
        *seen.entry(answer).or_insert(0) += 1;
    }
    seen
}

/// Asks until every one of 20 answers in a row is `want` (routes take a moment to
/// reach the gateway), at most 30 s; the last answers seen.
async fn settles_on(cluster: &KubeCluster, url: &str, want: &str) -> std::collections::BTreeMap<String, usize> {
    let started = Instant::now();
    loop {
        let seen = versions(cluster, url, 20).await;
        if seen.get(want) == Some(&20) || started.elapsed() > Duration::from_secs(30) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The cluster's HTTPRoutes and the gateway's last words, for a failure message.
async fn routes(cluster: &KubeCluster) -> String {
    let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(cluster.client().await, &kube::api::ApiResource::from_gvk(&gvk));
    let routes = api.list(&Default::default()).await.map(|l| l.items.iter().map(|r| serde_json::to_string(&r.data).unwrap()).collect::<Vec<_>>().join("\n"));
    let traefik = cluster.log("traefik");
    let last: Vec<&str> = traefik.lines().rev().take(15).collect();
    format!("routes: {routes:?}\ntraefik: {}", last.join("\n"))
}

/// A canary of `version` at 25 %, waiting for promotion; the deploy's id.
async fn canary_at_25(host: &Host, alice: &str, version: &str) -> (String, Value) {
    let settings = json!({"steps": [{"weight": 25}, {"await-promotion": true}]});
    let id = deploy(host, alice, json!({"war": format!("app-{version}.war"), "version": version, "strategy": "canary", "settings": settings})).await;
    let waiting = host.wait_step(alice, &id, "await-promotion").await;
    (id, waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_at_25_percent_gets_a_quarter_of_requests_then_all_or_none_and_a_rollback_answers_the_old_version() {
    let RealNode { cluster, dir, host, alice, .. } = &RealNode::start().await;
    let (status, env) = host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2})).await;
    assert_eq!(status, 201, "{env}");
    for version in ["1", "2", "3"] {
        host.upload(alice, "app", &format!("app-{version}.war"), &versioned_war(dir.path(), version)).await;
    }
    let first = deploy(host, alice, json!({"war": "app-1.war", "version": "1", "strategy": "rolling"})).await;
    assert_eq!(host.wait_deploy(alice, &first).await["status"], "succeeded");
    let (_, status) = host.get("/api/v1/envs/shop", alice).await;
    let url = status["url"].as_str().unwrap().to_owned();
    assert_eq!(settles_on(cluster, &url, "version 1").await.get("version 1"), Some(&20), "release 1 answers at {url}");

    // 25 % of requests, whatever the pods: 2 stable pods, 1 candidate pod (by pods it would be a third).
    let (id, waiting) = canary_at_25(host, alice, "2").await;
    assert_eq!((waiting["traffic"].as_str(), waiting["weight"].as_u64(), waiting["split"].as_str()), (Some("both"), Some(25), Some("weights")), "{waiting}");
    assert_eq!((waiting["scale"]["stable"].as_u64(), waiting["scale"]["candidate"].as_u64()), (Some(2), Some(1)), "{waiting}");
    let seen = versions(cluster, &url, 400).await;
    let candidate = *seen.get("version 2").unwrap_or(&0);
    let share = candidate as f64 * 100.0 / 400.0;
    println!("canary at 25% through {url}: {seen:?} -> candidate {share:.1}%");
    assert_eq!(seen.values().sum::<usize>(), candidate + seen.get("version 1").copied().unwrap_or(0), "every request answered: {seen:?}");
    assert!((20.0..=30.0).contains(&share), "the candidate's share is within 5 points of 25%: {share:.1}% ({seen:?})\n{}", routes(cluster).await);

    // Promoted: the candidate serves alone.
    let (code, promoted) = host.post(&format!("/api/v1/deploys/{id}/promote"), alice, json!({})).await;
    assert_eq!(code, 202, "{promoted}");
    let done = host.wait_deploy(alice, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done.get("split").is_none() && done.get("weight").is_none(), "one release has it all: {done}");
    let seen = settles_on(cluster, &url, "version 2").await;
    assert_eq!(seen.get("version 2"), Some(&20), "100% new after the promotion: {seen:?}");

    // Another canary, aborted: the stable release serves alone again.
    let (id, _) = canary_at_25(host, alice, "3").await;
    let split = versions(cluster, &url, 100).await;
    assert!(split.contains_key("version 3") && split.contains_key("version 2"), "both answer while the canary runs: {split:?}");
    let (code, aborted) = host.post(&format!("/api/v1/deploys/{id}/abort"), alice, json!({})).await;
    assert_eq!(code, 202, "{aborted}");
    assert_eq!(host.wait_deploy(alice, &id).await["status"], "aborted");
    let seen = settles_on(cluster, &url, "version 2").await;
    assert_eq!(seen.get("version 2"), Some(&20), "100% old after the abort: {seen:?}");

    // A rollback to release 1, through the same URL.
    let (code, rollback) = host.post("/api/v1/envs/shop/rollback", alice, json!({"revision": 1, "strategy": "rolling"})).await;
    assert_eq!(code, 202, "{rollback}");
    let done = host.wait_deploy(alice, rollback["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let seen = settles_on(cluster, &url, "version 1").await;
    assert_eq!(seen.get("version 1"), Some(&20), "the rolled-back release answers: {seen:?}");
}
