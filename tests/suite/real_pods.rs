//! Apps that really run: the dev cluster's real node (containerd, kubelet, kube-proxy)
//! pulls the image warship built, Tomcat starts, and the env answers at its URL through
//! the local Gateway (Traefik, Gateway API). One real node per machine: these tests take
//! turns (KubeCluster::start_with_real_node).

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::host::{config_for, deploy, Host, RealNode};
use support::{failing_war, fixture, KubeCluster, Registry};

/// GETs `url` through the cluster's gateway until it answers `want` or `within` passes.
async fn get_until(cluster: &KubeCluster, url: &str, want: u16, within: Duration) -> (u16, String) {
    let client = cluster.gateway_client(url);
    let started = Instant::now();
    let mut last = (0, String::new());
    while started.elapsed() < within {
        match client.get(url).send().await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                last = (status, answer.text().await.unwrap_or_default());
                if status == want {
                    return last;
                }
            }
            Err(e) => last = (0, e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_war_answers_at_its_url_and_its_tomcat_log_is_the_envs_log() {
    let RealNode { cluster, host, alice, .. } = &RealNode::start().await;
    let port = cluster.gateway_port();

    let (status, env) = host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{env}");
    let (_, before) = host.get("/api/v1/envs/shop", alice).await;
    assert!(before["url"].is_null(), "no URL before anything runs: {before}");
    host.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    let id = deploy(&host, alice, json!({"war": "sample.war", "version": "1.0", "strategy": "rolling"})).await;
    let done = host.wait_deploy(alice, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}\nkubelet: {}", tail(&cluster.log("kubelet")));

    let (_, status) = host.get("/api/v1/envs/shop", alice).await;
    let url = status["url"].as_str().unwrap_or_else(|| panic!("a deployed env has a URL: {status}"));
    assert_eq!(url, format!("http://shop.alice.localhost:{port}/"));
    let pods: Vec<&Value> = status["service"]["workloads"][0]["pods"].as_array().unwrap().iter().collect();
    assert_eq!(pods.len(), 1, "{status}");
    let node = pods[0]["node"].as_str().unwrap_or_default();
    assert!(!node.is_empty() && !node.starts_with("fake-"), "the app runs on the real node, not a fake one: {status}");

    let (code, page) = get_until(cluster, url, 200, Duration::from_secs(30)).await;
    assert_eq!(code, 200, "{url} answered {code}: {page}\ntraefik: {}", tail(&cluster.log("traefik")));
    assert!(page.contains("Sample \"Hello, World\" Application"), "the app's own page: {page}");
    let path_url = status["path_url"].as_str().unwrap();
    assert_eq!(path_url, format!("http://localhost:{port}/alice/shop/"));
    let (code, page) = get_until(cluster, path_url, 200, Duration::from_secs(30)).await;
    assert_eq!(code, 200, "{path_url}: {page}");
    assert!(page.contains("Hello, World"), "{page}");
    // The servlet too: a class from the WAR, run by a real JVM.
    let (code, page) = get_until(cluster, &format!("{url}hello"), 200, Duration::from_secs(10)).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Hello, World"), "{page}");

    // The env's log is Tomcat's own, through the API server and the kubelet.
    let (code, log) = host.get_text("/api/v1/envs/shop/logs", alice).await;
    assert_eq!(code, 200, "{log}");
    assert!(log.contains("org.apache.catalina"), "Tomcat's log: {log}");
    // Followed, it streams: the lines so far come at once and the stream stays open.
    let mut follow = reqwest::Client::new()
        .get(format!("{}/api/v1/envs/shop/logs?follow=true&tail=5", host.base))
        .bearer_auth(alice)
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), follow.chunk()).await.expect("the followed log answers at once").unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("org.apache"), "{first:?}");
    // More lines may come (Tomcat goes on logging); what must not come is the stream's end.
    let until = Instant::now() + Duration::from_secs(1);
    while let Ok(next) = tokio::time::timeout(until.saturating_duration_since(Instant::now()), follow.chunk()).await {
        assert!(next.unwrap().is_some(), "a followed log stays open for new lines");
    }
    drop(follow);

    // Deleting the env takes its route away: the URL stops answering with the app.
    let (code, deleted) = host.call(reqwest::Method::DELETE, "/api/v1/envs/shop", alice, None).await;
    assert!(code == 204 || code == 200, "{code} {deleted}");
    let (code, _) = get_until(cluster, url, 404, Duration::from_secs(30)).await;
    assert_eq!(code, 404, "a deleted env's hostname has no route");
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Failures on the real node, each diagnosed from what the pods, the kubelet and the
/// scheduler say: a JVM that cannot start, one killed for memory, an app whose context
/// fails in Tomcat, and pods no node can take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_are_diagnosed_from_real_pods() {
    let RealNode { registry, cluster, dir, host, alice } = &RealNode::start().await;
    host.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    host.upload(alice, "sample", "failing.war", &failing_war(dir.path())).await;
    // One env at a time: each failing JVM is a real process on this machine.
    let limits = json!({"max-restarts": 0, "max-unready-seconds": 25});
    let cases = [
        (json!({"name": "badopt", "tomcat": "10.1", "jdk": "17", "replicas": 1, "jvm_options": "-XX:+NoSuchWarshipOption"}), "sample.war", "crash-loop"),
        (json!({"name": "tiny", "tomcat": "10.1", "jdk": "17", "replicas": 1, "jvm_options": "-Xmx256m", "resources": {"limits": {"memory": "40Mi"}}}), "sample.war", "oom-killed"),
        (json!({"name": "broken", "tomcat": "10.1", "jdk": "17", "replicas": 1}), "failing.war", "readiness"),
        (json!({"name": "huge", "tomcat": "10.1", "jdk": "17", "replicas": 1, "resources": {"requests": {"cpu": "64"}}}), "sample.war", "unschedulable"),
    ];
    for (env, war, cause) in cases {
        let name = env["name"].as_str().unwrap().to_owned();
        let (status, created) = host.post("/api/v1/envs", alice, env).await;
        assert_eq!(status, 201, "{created}");
        let id = support::host::deploy_to(&host, alice, &name, json!({"war": war, "version": "1.0", "strategy": "rolling", "settings": limits})).await;
        let failed = host.wait_deploy(alice, &id).await;
        assert!(failed["status"] == "failed" || failed["status"] == "aborted", "{failed}");
        assert_eq!(failed["error"]["cause"], cause, "{name}: {failed}");
        let message = failed["error"]["message"].as_str().unwrap();
        match cause {
            "crash-loop" => {
                assert!(message.contains("last exit code 1"), "the JVM's exit code: {message}");
                assert!(message.contains("Unrecognized VM option 'NoSuchWarshipOption'"), "the JVM's own reason: {message}");
            }
            "oom-killed" => {
                assert!(message.contains("OOMKilled") && message.contains("-Xmx256m") && message.contains("40Mi"), "the heap/limit arithmetic: {message}");
                assert!(message.contains("raise resources.limits.memory to at least 384Mi"), "what to change: {message}");
            }
            "readiness" => assert!(message.contains("statuscode: 404"), "the probe's answer, from the kubelet: {message}"),
            _ => assert!(message.contains("Insufficient cpu"), "the scheduler's verdict: {message}"),
        }
        // Right after the deploy ended: the env's deletion waits out the deploy's last moment
        // with the env's lock rather than answering 409.
        let (code, deleted) = host.call(reqwest::Method::DELETE, &format!("/api/v1/envs/{name}"), alice, None).await;
        assert!(code == 204 || code == 200, "{code} {deleted}");
    }

    // Nodes told to pull from a registry that lacks the digest (`registry.pull` names
    // another, empty registry than the one pushed to): image-pull, naming that registry.
    let empty = Registry::start().await;
    cluster.trust_registry(&empty.addr);
    let config = config_for(&registry, &cluster, "").replace(&format!("pull = \"{}\"", registry.addr), &format!("pull = \"{}\"", empty.addr));
    let other = tempfile::tempdir().unwrap();
    let (elsewhere, tokens) = Host::start(other.path(), "elsewhere", &config, &["bob"]);
    let bob = &tokens[0];
    let (status, created) = elsewhere.post("/api/v1/envs", bob, json!({"name": "lost", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{created}");
    elsewhere.upload(bob, "sample", "sample.war", &fixture("sample.war")).await;
    let id = support::host::deploy_to(&elsewhere, bob, "lost", json!({"war": "sample.war", "version": "1.0", "settings": limits})).await;
    let failed = elsewhere.wait_deploy(bob, &id).await;
    assert_eq!(failed["error"]["cause"], "image-pull", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("registry {} is up", empty.addr)), "names the registry the nodes pull from: {message}");
}
