//! The measured half of `bench/console` (ignored in the test run; the script runs it): the
//! web console of a real `warship serve` with BENCH_ENVS envs (100), each deployed once on
//! the local control plane's kwok nodes. Prints two markdown tables of medians:
//!
//! - per page: time to first byte (from sending the GET to having the response head, over
//!   one kept-alive connection, with the session cookie) and the page's weight before
//!   images, as Chromium loads it with its cache off (the HTML, styles and scripts; the
//!   live event streams left out);
//! - the delay from a deploy event to its appearance: from the milestone's timestamp
//!   (taken by the deploy engine as it records the step, just before the record is
//!   written to the store) to its arrival at an SSE client of the API
//!   (`/api/v1/deploys/{id}/events`) and to its line appearing in the timeline of the
//!   deploy's page open in Chromium (a MutationObserver, `Date.now()`; one machine, one
//!   clock).
//!
//! Goals (issue 18): every page under 100 KiB before images; first byte under 20 ms with
//! 100 envs; event to page p50 under 200 ms.

use crate::support::browser::{Browser, WAIT};
use crate::support::host::{config_for, deploy_to, Host};
use crate::support::{fixture, KubeCluster, Registry};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn at(sorted: &[f64], fraction: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * fraction) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs
}

fn millis_since_epoch(rfc3339: &str) -> f64 {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
    (at.unix_timestamp_nanos() as f64) / 1e6
}

fn now_millis() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// The canary the live part runs: four weights with a second's pause between them, so
/// each deploy records a score of milestones one after another.
fn steps() -> Value {
    json!([{"weight": 25}, {"pause-seconds": 1}, {"weight": 50}, {"pause-seconds": 1}, {"weight": 75}, {"pause-seconds": 1}, {"weight": 100}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/console runs it"]
async fn console_bench() {
    let envs = setting("BENCH_ENVS", 100);
    let requests = setting("BENCH_REQUESTS", 50);
    let live_deploys = setting("BENCH_LIVE_DEPLOYS", 5);
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}[envs]\nmax_envs_per_user = {}\n", config_for(&registry, &cluster, ""), envs + 10);
    let (host, tokens) = Host::start(dir.path(), "host", &config, &["alice"]);
    let alice = tokens[0].as_str();

    // 100 envs, each with a release (the envs page shows each one's release and readiness).
    host.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    let names: Vec<String> = (0..envs).map(|i| format!("e{i:03}")).collect();
    for name in &names {
        let (status, env) =
            host.post("/api/v1/envs", alice, json!({"name": name, "tomcat": "10.1", "jdk": "17", "replicas": 2})).await;
        assert_eq!(status, 201, "{env}");
    }
    let deployed = Instant::now();
    let mut first_deploy = String::new();
    for chunk in names.chunks(10) {
        let ids = futures_util::future::join_all(chunk.iter().map(|name| {
            let host = &host;
            async move {
                deploy_to(host, alice, name, json!({"war": "sample.war", "version": "1.0", "strategy": "rolling"}))
                    .await
            }
        }))
        .await;
        for id in &ids {
            let record = host.wait_deploy(alice, id).await;
            assert_eq!(record["status"], "succeeded", "{record}");
        }
        if first_deploy.is_empty() {
            first_deploy = ids[0].clone();
        }
    }
    eprintln!("console_bench: {envs} envs deployed in {:.1}s", deployed.elapsed().as_secs_f64());

    // A browser signed in as alice (the login page weighed first, as a signed-out
    // visitor gets it); its session cookie for the plain HTTP client.
    let b = Browser::start("console_bench", &host.base).await;
    b.disable_cache(true).await;
    b.goto("/ui/login").await;
    b.wait_js("document.readyState === 'complete'", WAIT).await;
    let login_weight = weigh(&b).await;
    b.fill("#login-token", alice).await;
    b.click_button("Sign in").await;
    b.wait_path("/ui/envs", WAIT).await;
    let cookie = b.cookie_header().await;

    let pages: Vec<(&str, String, bool)> = vec![
        ("login", "/ui/login".into(), false),
        ("envs (100 envs)", "/ui/envs".into(), true),
        ("an env", "/ui/envs/e000".into(), true),
        ("edit env", "/ui/envs/e000/edit".into(), true),
        ("delete env", "/ui/envs/e000/delete".into(), true),
        ("deploy form", "/ui/envs/e000/deploy".into(), true),
        ("a deploy", format!("/ui/deploys/{first_deploy}"), true),
        ("logs (kwok pods: no log)", "/ui/envs/e000/logs".into(), true),
        ("WARs", "/ui/wars".into(), true),
        ("a WAR", "/ui/wars/sample/sample.war".into(), true),
        ("plugins", "/ui/plugins".into(), true),
        ("not found", "/ui/envs/nobody".into(), true),
    ];

    // Time to first byte: over one kept-alive connection, the pages taken in turn (so a
    // busy moment of the machine falls on all of them alike), after 5 warm-up rounds.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut first_byte = vec![Vec::new(); pages.len()];
    let mut whole = vec![Vec::new(); pages.len()];
    let mut statuses = vec![0; pages.len()];
    for round in 0..requests + 5 {
        for (i, (_, path, signed_in)) in pages.iter().enumerate() {
            let mut request = client.get(format!("{}{path}", host.base));
            if *signed_in {
                request = request.header("Cookie", &cookie);
            }
            let sent = Instant::now();
            let response = request.send().await.unwrap();
            let head = sent.elapsed();
            statuses[i] = response.status().as_u16();
            response.bytes().await.unwrap();
            if round >= 5 {
                first_byte[i].push(head.as_secs_f64() * 1000.0);
                whole[i].push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let rows: Vec<_> = pages
        .iter()
        .enumerate()
        .map(|(i, (label, path, _))| {
            (*label, path.clone(), statuses[i], sorted(first_byte[i].clone()), sorted(whole[i].clone()))
        })
        .collect();

    // Weight before images, as the browser loads each page with its cache off.
    b.disable_cache(true).await;
    let mut weights = BTreeMap::from([("login", login_weight)]);
    for (label, path, _) in pages.iter().filter(|(_, _, signed_in)| *signed_in) {
        b.goto(path).await;
        b.wait_js("document.readyState === 'complete'", WAIT).await;
        let weight = weigh(&b).await;
        weights.insert(*label, weight);
    }
    b.disable_cache(false).await;

    println!();
    println!(
        "machine: {} CPUs, load average {} at the start of the timed requests; warship's test profile (dependencies optimised, warship's own code not); {envs} envs of 2 replicas, each deployed once on kwok nodes; {requests} requests a page after 5 warm-up rounds",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load_before.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("| page | path | status | first byte p50 ms | p90 ms | whole HTML p50 ms | HTML KiB | styles + scripts KiB | weight KiB (before images) |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let (mut worst_ttfb, mut worst_weight) = (0f64, 0f64);
    for (label, path, status, first_byte, whole) in &rows {
        let w = &weights[*label];
        let (html, assets) = (w["html"].as_f64().unwrap_or(0.0) / 1024.0, w["assets"].as_f64().unwrap_or(0.0) / 1024.0);
        worst_ttfb = worst_ttfb.max(at(first_byte, 0.5));
        worst_weight = worst_weight.max(html + assets);
        println!(
            "| {label} | `{}` | {status} | {:.2} | {:.2} | {:.2} | {html:.1} | {assets:.1} | {:.1} |",
            if path.starts_with("/ui/deploys/") { "/ui/deploys/{id}" } else { path },
            at(first_byte, 0.5),
            at(first_byte, 0.9),
            at(whole, 0.5),
            html + assets
        );
    }
    let assets = weights.values().next().map(|w| w["names"].clone()).unwrap_or_default();
    println!();
    println!("styles and scripts each page loads: {assets}");

    // Event to page: each deploy's page opened as soon as it is requested; every milestone
    // that arrives after that is timed at the API's SSE client and in the page.
    let mut to_sse = Vec::new();
    let mut to_page = Vec::new();
    for i in 0..live_deploys {
        let id = deploy_to(&host, alice, "e001", json!({"war": "sample.war", "version": format!("live-{i}"), "strategy": "canary", "settings": {"steps": steps()}})).await;
        let reader = tokio::spawn(sse_arrivals(host.base.clone(), alice.to_owned(), id.clone()));
        b.goto(&format!("/ui/deploys/{id}")).await;
        b.eval(
            r##"window.__arrived = {}; window.__installed = Date.now();
            const key = (li) => (li.querySelector("time") || {}).getAttribute?.("datetime") + " " + li.getAttribute("data-status") + " " + li.textContent.split(" · ").slice(1).join(" · ");
            document.querySelectorAll("#timeline li").forEach((li) => { window.__arrived[key(li)] = null; });
            new MutationObserver(() => {
                const now = Date.now();
                document.querySelectorAll("#timeline li").forEach((li) => {
                    const k = key(li);
                    if (!(k in window.__arrived)) window.__arrived[k] = now;
                });
            }).observe(document.getElementById("timeline"), {childList: true, subtree: true});
            return null"##,
        )
        .await;
        b.wait_element("#deploy[data-deploy-status=\"succeeded\"]", Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let arrived = b.eval("return [window.__installed, window.__arrived]").await;
        let installed = arrived[0].as_f64().unwrap();
        for (key, when) in arrived[1].as_object().unwrap() {
            let stamp = millis_since_epoch(key.split(' ').next().unwrap());
            // Only what happened once the page watched: a replayed event is not live.
            if let Some(when) = when.as_f64().filter(|_| stamp > installed) {
                to_page.push(when - stamp);
            }
        }
        to_sse.extend(reader.await.unwrap());
    }
    b.close().await;
    let (to_sse, to_page) = (sorted(to_sse), sorted(to_page));
    println!();
    println!(
        "| event to … ({live_deploys} canary deploys of 4 weighted steps) | milestones | p50 ms | p90 ms | max ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (label, xs) in [
        ("an SSE client of the API (`/api/v1/deploys/{id}/events`)", &to_sse),
        ("the deploy's page in Chromium (its timeline)", &to_page),
    ] {
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} |",
            xs.len(),
            at(xs, 0.5),
            at(xs, 0.9),
            xs.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!();
    let yes = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goals: every page under 100 KiB before images: {} (largest {worst_weight:.1} KiB); first byte under 20 ms: {} (slowest p50 {worst_ttfb:.2} ms); event to page p50 under 200 ms: {} ({:.1} ms)",
        yes(worst_weight < 100.0),
        yes(worst_ttfb < 20.0),
        yes(at(&to_page, 0.5) < 200.0),
        at(&to_page, 0.5)
    );
}

/// The page's weight before images as the browser loaded it: the HTML's and the styles'
/// and scripts' bodies as sent (the live event streams left out).
async fn weigh(b: &Browser) -> Value {
    b.eval(
        r#"const nav = performance.getEntriesByType("navigation")[0];
                const image = /\.(png|jpe?g|gif|svg|webp|avif|ico)(\?|$)/i;
                const assets = performance.getEntriesByType("resource")
                    .filter((r) => r.initiatorType !== "img" && !image.test(r.name) && !/\/events(\?|$)/.test(r.name));
                return {html: nav.encodedBodySize, assets: assets.reduce((n, r) => n + r.encodedBodySize, 0),
                        names: assets.map((r) => r.name.replace(location.origin, "") + " " + r.encodedBodySize),
                        images: performance.getEntriesByType("resource").filter((r) => r.initiatorType === "img" || image.test(r.name)).length}"#,
    )
    .await
}

/// Reads the deploy's API event stream to its end; for each milestone first seen in a
/// `record` event, the delay from its timestamp to that event's arrival.
async fn sse_arrivals(base: String, token: String, id: String) -> Vec<f64> {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/deploys/{id}/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut seen = std::collections::HashSet::new();
    let mut delays = Vec::new();
    let mut pending = String::new();
    let connected = now_millis();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let arrived = now_millis();
        pending.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let name = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default();
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if name != "record" {
                continue;
            }
            let record: Value = serde_json::from_str(&data).unwrap();
            for milestone in record["history"].as_array().into_iter().flatten() {
                let key = milestone.to_string();
                let stamp = millis_since_epoch(milestone["at"].as_str().unwrap());
                // Only what happened once connected: what the stream replays was not live.
                if seen.insert(key) && stamp > connected {
                    delays.push(arrived - stamp);
                }
            }
        }
    }
    delays
}
