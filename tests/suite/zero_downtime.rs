//! Rollouts under load on the real node: requests go through the env's URL (the local
//! Gateway) without pause while each strategy replaces the release. Rolling, canary and
//! blue-green lose none; recreate is allowed its gap, which is measured.

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::host::{deploy, RealNode};
use support::{versioned_war, KubeCluster};

/// Clients asking `/version` through the gateway until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    /// (ms since start, the answer or the failure) of every request.
    seen: Arc<Mutex<Vec<(u128, Result<String, String>)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &KubeCluster, url: &str, clients: usize) -> Load {
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let started = Instant::now();
        let tasks = (0..clients)
            .map(|_| {
                let client = cluster.gateway_client(url);
                let (stop, seen, url) = (stop.clone(), seen.clone(), format!("{url}version"));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let answer = match client.get(&url).send().await {
                            Ok(r) if r.status().is_success() => Ok(r.text().await.unwrap_or_default()),
                            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                            Err(e) => Err(e.to_string()),
                        };
                        seen.lock().unwrap().push((started.elapsed().as_millis(), answer));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load { stop, seen, tasks }
    }

    async fn stop(self) -> Vec<(u128, Result<String, String>)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let mut seen = self.seen.lock().unwrap().clone();
        seen.sort_by_key(|(at, _)| *at);
        seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_canary_and_blue_green_lose_no_request_under_load_and_recreates_gap_is_measured() {
    let RealNode { cluster, dir, host, alice, .. } = &RealNode::start().await;
    let (status, env) = host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2})).await;
    assert_eq!(status, 201, "{env}");
    for version in ["1", "2", "3", "4", "5"] {
        host.upload(alice, "app", &format!("app-{version}.war"), &versioned_war(dir.path(), version)).await;
    }
    let first = deploy(&host, alice, json!({"war": "app-1.war", "version": "1", "strategy": "rolling"})).await;
    assert_eq!(host.wait_deploy(alice, &first).await["status"], "succeeded");
    let (_, status) = host.get("/api/v1/envs/shop", alice).await;
    let url = status["url"].as_str().unwrap().to_owned();
    let warm = Load::start(cluster, &url, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !warm.seen.lock().unwrap().iter().any(|(_, a)| a.as_deref() == Ok("version 1")) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(warm.stop().await.iter().any(|(_, a)| a.as_deref() == Ok("version 1")), "release 1 answers at {url}");

    let runs: [(&str, &str, Value); 4] = [
        ("rolling", "2", json!({})),
        ("canary", "3", json!({"steps": [{"weight": 50}, {"pause-seconds": 2}, {"weight": 100}]})),
        ("bluegreen", "4", json!({})),
        ("recreate", "5", json!({})),
    ];
    let mut table = vec![format!("{:<10} {:>9} {:>7} {:>12}", "strategy", "requests", "failed", "longest gap")];
    for (strategy, version, settings) in runs {
        let load = Load::start(cluster, &url, 4);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let id = deploy(&host, alice, json!({"war": format!("app-{version}.war"), "version": version, "strategy": strategy, "settings": settings})).await;
        if strategy == "bluegreen" {
            host.wait_step(alice, &id, "await-promotion").await;
            let (code, promoted) = host.post(&format!("/api/v1/deploys/{id}/promote"), alice, json!({})).await;
            assert_eq!(code, 202, "{promoted}");
        }
        let done = host.wait_deploy(alice, &id).await;
        assert_eq!(done["status"], "succeeded", "{strategy}: {done}");
        // The old pods drain and stop after the deploy ends: keep asking through that.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let seen = load.stop().await;
        let failures: Vec<&(u128, Result<String, String>)> = seen.iter().filter(|(_, a)| a.is_err()).collect();
        let gap = match (failures.first(), failures.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0,
        };
        table.push(format!("{strategy:<10} {:>9} {:>7} {:>10}ms", seen.len(), failures.len(), gap));
        let last = seen.iter().rev().take(20).filter_map(|(_, a)| a.as_ref().ok()).collect::<Vec<_>>();
        assert!(!last.is_empty() && last.iter().all(|a| *a == &format!("version {version}")), "{strategy}: the new release answers alone at the end: {last:?}");
        if strategy != "recreate" {
            assert!(failures.is_empty(), "{strategy} lost {} of {} requests: {:?}", failures.len(), seen.len(), &failures[..failures.len().min(5)]);
        } else {
            assert!(seen.len() > failures.len(), "recreate answers before and after its gap");
        }
    }
    println!("rollouts under load through the env's URL (4 clients, real node):\n{}", table.join("\n"));
}
