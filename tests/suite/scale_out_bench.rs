//! The measured half of `bench/scale-out` (ignored in the test run; the script runs it):
//! three hosts behind HAProxy, BENCH_ENVS envs deployed at once through it, then a
//! rolling restart of every host while BENCH_FOLLOWERS followers watch deploys and
//! steady API calls go through the balancer. Prints one markdown table.

use crate::scale_out::{follower, shared_config, Load};
use crate::support::balancer::Balancer;
use crate::support::host::{deploy_to, Host};
use crate::support::s3::S3Server;
use crate::support::{fixture, Etcd, KubeCluster, Registry};

use std::time::{Duration, Instant};

use serde_json::json;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The host's peak resident memory so far (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    crate::support::proc_status_kib(&pid.to_string(), "VmHWM") as f64 / 1024.0
}

fn at(sorted: &[Duration], fraction: f64) -> Duration {
    sorted.get(((sorted.len() as f64 * fraction) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: bench/scale-out runs it"]
async fn scale_out_bench() {
    let (envs, watchers) = (setting("BENCH_ENVS", 100), setting("BENCH_FOLLOWERS", 20));
    let (etcd, s3, registry) = (Etcd::start().await, S3Server::start().await, Registry::start().await);
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}[envs]\nmax_envs_per_user = {}\n", shared_config(&etcd, &s3, &registry, &cluster), envs + 10);
    let data = |name: &str| dir.path().join(format!("{name}-data"));
    let (a, tokens) = Host::start_in(dir.path(), "a", &data("a"), &config, &["bench"]);
    let (b, _) = Host::start_in(dir.path(), "b", &data("b"), &config, &[]);
    let (c, _) = Host::start_in(dir.path(), "c", &data("c"), &config, &[]);
    let mut hosts = [a, b, c];
    let token = tokens[0].as_str();
    let balancer = Balancer::start(&[&hosts[0].base, &hosts[1].base, &hosts[2].base]);
    let lb = Host::at(&balancer.base);
    lb.upload(token, "sample", "sample.war", &fixture("sample.war")).await;
    for i in 0..envs {
        let (status, env) = lb.post("/api/v1/envs", token, json!({"name": format!("e{i}"), "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
        assert_eq!(status, 201, "{env}");
    }

    // Every env deployed at once through the balancer.
    let started = Instant::now();
    let ids: Vec<String> = futures_util::future::join_all((0..envs).map(|i| {
        let lb = &lb;
        async move { deploy_to(lb, token, &format!("e{i}"), json!({"war": "sample.war", "version": "1.0", "strategy": "rolling"})).await }
    }))
    .await;
    let mut succeeded = 0;
    for id in &ids {
        succeeded += usize::from(lb.wait_deploy(token, id).await["status"] == "succeeded");
    }
    let all_deployed = started.elapsed();

    // A second round: followers watch it while every host restarts in turn under load.
    let load = Load::start(&balancer.base, token, "e0", 4);
    let second: Vec<String> = futures_util::future::join_all((0..envs).map(|i| {
        let lb = &lb;
        async move { deploy_to(lb, token, &format!("e{i}"), json!({"war": "sample.war", "version": "2.0", "strategy": "rolling"})).await }
    }))
    .await;
    let followers: Vec<_> = (0..watchers).map(|i| follower(&balancer.base, token, &second[i % second.len()])).collect();
    let mut peaks = [0f64; 3];
    let restarting = Instant::now();
    for (i, host) in hosts.iter_mut().enumerate() {
        peaks[i] = peaks[i].max(peak_rss_mib(host.pid()));
        host.restart();
    }
    let restart_took = restarting.elapsed();
    let mut second_ok = 0;
    let mut causes = std::collections::BTreeMap::<String, usize>::new();
    for id in &second {
        let done = lb.wait_deploy(token, id).await;
        if done["status"] == "succeeded" {
            second_ok += 1;
        } else {
            *causes.entry(format!("{} {}", done["status"], done["error"])).or_default() += 1;
        }
    }
    let (made, failures, latencies) = load.finish().await;
    let mut followed = 0;
    for f in followers {
        followed += usize::from(f.await.unwrap().is_ok_and(|r| r["status"] == "succeeded"));
    }
    for (i, host) in hosts.iter().enumerate() {
        peaks[i] = peaks[i].max(peak_rss_mib(host.pid()));
    }

    println!("\n| measure | value | goal |\n|---|---|---|");
    println!("| envs deployed at once through the balancer | {succeeded}/{envs} succeeded in {:.1} s | {envs}/{envs} |", all_deployed.as_secs_f64());
    println!("| second deploy of every env, during the rolling restart | {second_ok}/{envs} succeeded | {envs}/{envs} |");
    println!("| rolling restart of 3 hosts (SIGTERM, start, ready, in turn) | {:.1} s | |", restart_took.as_secs_f64());
    println!("| followers ending with the final record | {followed}/{watchers} | {watchers}/{watchers} |");
    println!("| API calls through the balancer during the restart | {made}, {} failed | 0 failed |", failures.len());
    println!("| API latency during the restart, p50 / p99 | {:.1} ms / {:.1} ms | p99 < 1000 ms |", at(&latencies, 0.5).as_secs_f64() * 1e3, at(&latencies, 0.99).as_secs_f64() * 1e3);
    println!("| peak RSS of hosts a / b / c (VmHWM, largest of each host's lives) | {:.0} / {:.0} / {:.0} MiB | |", peaks[0], peaks[1], peaks[2]);
    for failure in failures.iter().take(10) {
        println!("failed: {failure}");
    }
    for (cause, n) in causes {
        println!("failed: {n} deploys: {cause}");
    }
}
