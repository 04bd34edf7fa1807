//! Webhooks end to end: a real `warship serve` on kwok's fake nodes running real
//! deploys, and real HTTP receivers this test starts on loopback: one that answers,
//! one that fails twice before it accepts, one that takes the connection and never
//! answers, one that fails until told otherwise while its host is killed between
//! attempts. Signatures are checked here with an HMAC written from SHA-256 alone, not
//! with the host's code. The API's refusals run in-process.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use support::host::{config_for, deploy, Host};
use support::{fixture, KubeCluster, Registry, TestApp};

/// What a receiver got: the path, the headers, the body.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A receiver on a free loopback port whose first `failures` requests answer 500.
struct Receiver {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let failures = Arc::new(AtomicUsize::new(failures));
        let (seen, failing) = (received.clone(), failures.clone());
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let (seen, failing) = (seen.clone(), failing.clone());
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push(Received { path: uri.path().to_owned(), headers, body });
                if seen.len() <= failing.load(Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, received, failures }
    }

    /// From now on every request is answered 200.
    fn accept_from_now(&self) {
        self.failures.store(0, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The events received for `deploy` on `path`, in the order they happened (each
    /// delivery is its own request, so two may arrive the other way round).
    fn events_of(&self, path: &str, deploy: &str) -> Vec<String> {
        let mut events: Vec<(time::OffsetDateTime, String)> = self
            .got()
            .iter()
            .filter(|r| r.path == path && r.json()["deploy"] == deploy)
            .map(|r| (rfc3339(&r.json()["occurred_at"]), r.headers["warship-event"].to_str().unwrap().to_owned()))
            .collect();
        events.sort();
        events.into_iter().map(|(_, event)| event).collect()
    }
}

/// Takes every connection and holds it, answering nothing.
async fn silent_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    base
}

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    hex::encode(Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize())
}

/// The receiver's check: `t=<secs>,v1=<hex>` over `<t>.<body>`, at most 5 minutes old.
fn signed_by(secret: &str, received: &Received) -> bool {
    let header = received.headers["warship-signature"].to_str().unwrap();
    let (t, v1) = header.split_once(',').unwrap();
    let (t, v1) = (t.strip_prefix("t=").unwrap(), v1.strip_prefix("v1=").unwrap());
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - t.parse::<i64>().unwrap();
    (0..300).contains(&age) && hmac_sha256(secret.as_bytes(), format!("{t}.{}", received.body).as_bytes()) == v1
}

/// Polls a delivery log until its newest delivery has ended.
async fn ended(host: &Host, token: &str, log: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, deliveries) = host.get(log, token).await;
        assert_eq!(status, 200, "{deliveries}");
        if deliveries[0]["outcome"].as_str().is_some_and(|o| o != "pending") {
            return deliveries[0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no delivery ended at {log}: {deliveries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `receiver` got `n` requests on `path` for `deploy`.
async fn events_when(receiver: &Receiver, path: &str, deploy: &str, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let events = receiver.events_of(path, deploy);
        if events.len() >= n {
            return events;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{path} got only {events:?} for {deploy}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rfc3339(at: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(at.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

fn ms_between(a: &Value, b: &Value) -> i128 {
    (rfc3339(&b["at"]) - rfc3339(&a["at"])).whole_milliseconds()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_are_told_to_signed_endpoints_retried_with_backoff_and_a_silent_one_is_given_up_without_holding_the_deploy(
) {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let settings = "[users]\nadmins = [\"root\"]\n[webhooks]\nusers_may_add = true\nallow_private_addresses = true\n\
                    max_attempts = 3\nbackoff_initial_ms = 300\ntimeout_secs = 1\n";
    let config = format!("{}{settings}", config_for(&registry, &cluster, ""));
    let (host, tokens) = Host::start(dir.path(), "host", &config, &["alice", "root"]);
    let (alice, root) = (tokens[0].as_str(), tokens[1].as_str());
    let (status, env) =
        host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2})).await;
    assert_eq!(status, 201, "{env}");
    host.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;

    // An admin's endpoint hearing everything, with its secret made for it and shown once.
    let receiver = Receiver::start(0).await;
    let (status, admin_hook) =
        host.post("/api/v1/admin/webhooks", root, json!({"url": format!("{}/admin", receiver.base)})).await;
    assert_eq!(status, 201, "{admin_hook}");
    let secret = admin_hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = host.get("/api/v1/admin/webhooks", root).await;
    assert_eq!((listed[0]["id"].clone(), listed[0].get("secret")), (admin_hook["id"].clone(), None), "{listed}");
    // Alice's own endpoint on her env, as a Slack message, with a secret of her choosing.
    let (status, slack_hook) = host
        .post(
            "/api/v1/envs/shop/webhooks",
            alice,
            json!({"url": format!("{}/slack", receiver.base), "format": "slack", "secret": "alice-secret-0123456789"}),
        )
        .await;
    assert_eq!(status, 201, "{slack_hook}");

    // Release 1: started, then succeeded.
    let first = deploy(&host, alice, json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    assert_eq!(host.wait_deploy(alice, &first).await["status"], "succeeded");
    assert_eq!(events_when(&receiver, "/admin", &first, 2).await, ["deploy.started", "deploy.succeeded"]);

    // Two more admin endpoints hearing only successes: one that fails twice before it
    // accepts, one that never answers.
    let flaky = Receiver::start(2).await;
    let (status, flaky_hook) = host
        .post(
            "/api/v1/admin/webhooks",
            root,
            json!({"url": format!("{}/flaky", flaky.base), "events": ["deploy.succeeded"]}),
        )
        .await;
    assert_eq!(status, 201, "{flaky_hook}");
    let silent = silent_receiver().await;
    let (status, silent_hook) = host
        .post(
            "/api/v1/admin/webhooks",
            root,
            json!({"url": format!("{silent}/silent"), "events": ["deploy.succeeded"]}),
        )
        .await;
    assert_eq!(status, 201, "{silent_hook}");

    // A canary that waits for a person: started, awaiting promotion, then (promoted) succeeded.
    let steps = json!([{"weight": 50}, {"await-promotion": true}, {"weight": 100}]);
    let canary = deploy(
        &host,
        alice,
        json!({"war": "sample.war", "version": "2.0", "strategy": "canary", "settings": {"steps": steps}}),
    )
    .await;
    host.wait_step(alice, &canary, "await-promotion").await;
    assert_eq!(events_when(&receiver, "/admin", &canary, 2).await, ["deploy.started", "deploy.awaiting_promotion"]);
    let (status, _) = host.post(&format!("/api/v1/deploys/{canary}/promote"), alice, json!({})).await;
    assert_eq!(status, 202);
    let done = host.wait_deploy(alice, &canary).await;
    let deploy_ended = Instant::now();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        events_when(&receiver, "/admin", &canary, 3).await,
        ["deploy.started", "deploy.awaiting_promotion", "deploy.succeeded"]
    );
    for received in receiver.got().iter().filter(|r| r.path == "/admin") {
        assert!(signed_by(&secret, received), "{:?} is not signed with the endpoint's secret", received.headers);
        assert!(!signed_by("whsec_another", received));
        assert_eq!(received.headers["content-type"], "application/json");
        assert_eq!(received.json()["id"], received.headers["warship-delivery"].to_str().unwrap());
    }
    let waiting = receiver
        .got()
        .into_iter()
        .find(|r| r.path == "/admin" && r.headers["warship-event"] == "deploy.awaiting_promotion")
        .unwrap()
        .json();
    assert_eq!(
        (waiting["env"].as_str(), waiting["user"].as_str(), waiting["version"].as_str()),
        (Some("shop"), Some("alice"), Some("2.0"))
    );
    assert_eq!(
        (waiting["strategy"].as_str(), waiting["status"].as_str(), waiting["step"]["action"].as_str()),
        (Some("canary"), Some("rolling-out"), Some("await-promotion"))
    );
    assert_eq!(waiting["link"], format!("/api/v1/deploys/{canary}"));

    // The flaky endpoint: 500, 500, then 200, 300 ms and 600 ms apart, in its log.
    let flaky_log = format!("/api/v1/admin/webhooks/{}/deliveries", flaky_hook["id"].as_str().unwrap());
    let delivered = ended(&host, root, &flaky_log).await;
    let attempts = delivered["attempts"].as_array().unwrap();
    let statuses: Vec<u64> = attempts.iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!(
        (delivered["outcome"].as_str(), statuses.clone()),
        (Some("delivered"), vec![500, 500, 200]),
        "{delivered}"
    );
    let gaps = [ms_between(&attempts[0], &attempts[1]), ms_between(&attempts[1], &attempts[2])];
    assert!(gaps[0] >= 300 && gaps[1] >= 600, "backoff of 300 then 600 ms: {gaps:?}");
    assert_eq!(
        (delivered["event"].as_str(), delivered["deploy"].as_str()),
        (Some("deploy.succeeded"), Some(canary.as_str()))
    );
    let flaky_got = flaky.got();
    assert_eq!(flaky_got.len(), 3);
    assert!(flaky_got
        .windows(2)
        .all(|w| w[0].body == w[1].body && w[0].headers["warship-delivery"] == w[1].headers["warship-delivery"]));
    eprintln!("flaky endpoint: attempts {statuses:?}, gaps {gaps:?} ms");

    // The silent endpoint: every attempt times out, the delivery is given up; the
    // deploy had ended long before.
    let silent_log = format!("/api/v1/admin/webhooks/{}/deliveries", silent_hook["id"].as_str().unwrap());
    let given_up = ended(&host, root, &silent_log).await;
    let gave_up_after = deploy_ended.elapsed();
    let attempts = given_up["attempts"].as_array().unwrap();
    assert_eq!((given_up["outcome"].as_str(), attempts.len()), (Some("failed"), 3), "{given_up}");
    for attempt in attempts {
        assert!(attempt["error"].as_str().unwrap().contains("no answer within 1 s"), "{attempt}");
        assert!(attempt["duration_ms"].as_u64().unwrap() >= 1000, "{attempt}");
    }
    // The deploy's end was stored before the first attempt, seconds before the last ended.
    let last = &attempts[2];
    let gave_up_at = rfc3339(&last["at"]) + time::Duration::milliseconds(last["duration_ms"].as_i64().unwrap());
    let finished = rfc3339(&done["finished_at"]);
    assert!(rfc3339(&attempts[0]["at"]) >= finished, "the deploy ended before its webhooks were called");
    assert!(
        gave_up_at - finished >= time::Duration::seconds(3),
        "gave up at {gave_up_at}, the deploy ended at {finished}"
    );
    eprintln!("silent endpoint: 3 attempts timed out, given up {gave_up_after:?} after the deploy ended");

    // A rollback: rolled back (not succeeded).
    let (status, rollback) = host.post("/api/v1/envs/shop/rollback", alice, json!({})).await;
    assert_eq!(status, 202, "{rollback}");
    let rollback = rollback["id"].as_str().unwrap().to_owned();
    assert_eq!(host.wait_deploy(alice, &rollback).await["status"], "succeeded");
    assert_eq!(events_when(&receiver, "/admin", &rollback, 2).await, ["deploy.started", "deploy.rolled_back"]);
    let rolled = receiver
        .got()
        .into_iter()
        .rev()
        .find(|r| r.path == "/admin" && r.json()["deploy"] == rollback.as_str())
        .unwrap()
        .json();
    assert_eq!((rolled["rollback_of"].as_u64(), rolled["version"].as_str()), (Some(1), Some("1.0")));

    // A deploy whose pods crash: failed, with the code, the words and the cause.
    let (status, _) = host
        .call(
            reqwest::Method::PATCH,
            "/api/v1/envs/shop",
            alice,
            Some(json!({"rollout_deadline_secs": 5, "env": {"WARSHIP_FAKE_FAULT": "crash-loop"}})),
        )
        .await;
    assert_eq!(status, 200);
    let crashing = deploy(&host, alice, json!({"war": "sample.war", "version": "3.0", "strategy": "rolling"})).await;
    assert_eq!(host.wait_deploy(alice, &crashing).await["status"], "failed");
    assert_eq!(events_when(&receiver, "/admin", &crashing, 2).await, ["deploy.started", "deploy.failed"]);
    let failed = receiver
        .got()
        .into_iter()
        .rev()
        .find(|r| r.path == "/admin" && r.json()["deploy"] == crashing.as_str())
        .unwrap()
        .json();
    assert_eq!(
        (failed["failure"]["code"].as_str(), failed["failure"]["cause"].as_str()),
        (Some("rollout.deadline"), Some("crash-loop")),
        "{failed}"
    );
    assert!(failed["failure"]["message"].as_str().unwrap().contains("keeps crashing"), "{failed}");

    // Aborted by hand during a pause.
    let (status, _) = host.call(reqwest::Method::PATCH, "/api/v1/envs/shop", alice, Some(json!({"env": {}}))).await;
    assert_eq!(status, 200);
    let steps = json!([{"weight": 50}, {"pause-seconds": 600}, {"weight": 100}]);
    let paused = deploy(
        &host,
        alice,
        json!({"war": "sample.war", "version": "4.0", "strategy": "canary", "settings": {"steps": steps}}),
    )
    .await;
    host.wait_step(alice, &paused, "pause").await;
    let (status, _) = host.post(&format!("/api/v1/deploys/{paused}/abort"), alice, json!({})).await;
    assert_eq!(status, 202);
    assert_eq!(host.wait_deploy(alice, &paused).await["status"], "aborted");
    assert_eq!(events_when(&receiver, "/admin", &paused, 2).await, ["deploy.started", "deploy.aborted"]);
    let aborted = receiver
        .got()
        .into_iter()
        .rev()
        .find(|r| r.path == "/admin" && r.json()["deploy"] == paused.as_str())
        .unwrap()
        .json();
    assert_eq!(aborted["failure"]["code"], "deploy.aborted", "{aborted}");

    // Alice's Slack endpoint heard her env's deploys as Slack messages, signed with her secret.
    let started = Instant::now();
    let slack: Vec<Received> = loop {
        let got = receiver.got();
        let slack: Vec<Received> = got.iter().filter(|r| r.path == "/slack").cloned().collect();
        if slack.len() == got.iter().filter(|r| r.path == "/admin").count() {
            break slack;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "both hear every event of shop: {} Slack messages",
            slack.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let crashed = slack.iter().find(|r| r.headers["warship-event"] == "deploy.failed").unwrap();
    assert!(signed_by("alice-secret-0123456789", crashed));
    let message = crashed.json();
    let text = message["text"].as_str().unwrap();
    assert!(text.starts_with("shop (alice): deploy of 3.0 failed: ") && text.ends_with("[rollout.deadline]"), "{text}");
    assert_eq!(
        (message["blocks"][0]["type"].as_str(), message["blocks"][0]["text"]["type"].as_str()),
        (Some("section"), Some("mrkdwn"))
    );
    assert!(
        message["blocks"][0]["text"]["text"].as_str().unwrap().starts_with(":x: shop (alice): deploy of 3.0 failed"),
        "{message}"
    );
    assert_eq!(message["blocks"][1]["type"], "context");
    let slack_log = format!("/api/v1/envs/shop/webhooks/{}/deliveries", slack_hook["id"].as_str().unwrap());
    let log = ended(&host, alice, &slack_log).await;
    assert_eq!(log["outcome"], "delivered", "{log}");
    let (_, log) = host.get(&slack_log, alice).await;
    assert_eq!(log.as_array().unwrap().len(), slack.len(), "{log}");
    assert_eq!(log[0]["event"], "deploy.aborted", "newest first: {log}");
    // Another user's view of them: none.
    let (status, _) = host.get(&slack_log, root).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_between_retries_survives_its_host_being_killed_and_is_finished_by_the_next_one() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    // A backoff long enough to kill the host between the first attempt and the second.
    let settings = "[users]\nadmins = [\"root\"]\n[webhooks]\nallow_private_addresses = true\n\
                    max_attempts = 5\nbackoff_initial_ms = 3000\ntimeout_secs = 2\n";
    let config = format!("{}{settings}", config_for(&registry, &cluster, ""));
    let (mut host, tokens) = Host::start(dir.path(), "host", &config, &["alice", "root"]);
    let (alice, root) = (tokens[0].as_str(), tokens[1].as_str());
    let (status, env) =
        host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{env}");
    host.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    let receiver = Receiver::start(usize::MAX).await;
    let (status, hook) = host
        .post(
            "/api/v1/admin/webhooks",
            root,
            json!({"url": format!("{}/admin", receiver.base), "events": ["deploy.succeeded"]}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let log = format!("/api/v1/admin/webhooks/{}/deliveries", hook["id"].as_str().unwrap());

    let release = deploy(&host, alice, json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    assert_eq!(host.wait_deploy(alice, &release).await["status"], "succeeded");
    events_when(&receiver, "/admin", &release, 1).await;
    // The receiver has answered 500; the kill comes once the host has also recorded that
    // attempt (a host killed in the middle of an attempt cannot record it).
    let started = Instant::now();
    let before = loop {
        let (_, deliveries) = host.get(&log, root).await;
        if deliveries[0]["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            break deliveries[0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the first attempt is not in the log: {deliveries}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((before["outcome"].as_str(), before["attempts"][0]["status"].as_u64()), (Some("pending"), Some(500)));

    let killed_at = Instant::now();
    host.kill();
    receiver.accept_from_now();
    // The same config, port and data dir: the embedded store opens now that the first is dead.
    host.restart();
    let restarted_in = killed_at.elapsed();
    events_when(&receiver, "/admin", &release, 2).await;
    let kill_to_delivered = killed_at.elapsed();

    let got = receiver.got();
    assert_eq!(got.len(), 2, "one request before the kill, one after");
    assert_eq!(got[0].headers["warship-delivery"], got[1].headers["warship-delivery"]);
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[1].json()["id"], got[1].headers["warship-delivery"].to_str().unwrap());
    assert!(got.iter().all(|r| signed_by(&secret, r)), "every attempt is signed with the endpoint's secret");
    let delivered = ended(&host, root, &log).await;
    let attempts = delivered["attempts"].as_array().unwrap();
    let statuses: Vec<u64> = attempts.iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!((delivered["outcome"].as_str(), statuses), (Some("delivered"), vec![500, 200]), "{delivered}");
    assert_eq!(
        (delivered["id"].clone(), delivered["body"].as_str()),
        (before["id"].clone(), Some(got[0].body.as_str()))
    );
    let gap = ms_between(&attempts[0], &attempts[1]);
    assert!(gap >= 3000, "the backoff is kept across the kill: {gap} ms");
    assert!(host.log().contains("taking over a webhook delivery whose host stopped"), "{}", host.log_tail());
    eprintln!(
        "killed between attempts: the next host was ready {restarted_in:?} after the kill and delivered \
         {kill_to_delivered:?} after it (attempts 500, 200; {gap} ms apart)"
    );
}

#[tokio::test]
async fn endpoints_are_refused_with_a_problem_naming_the_field_and_what_to_do() {
    let create_env = json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 1});
    let hook = |url: &str| json!({"url": url});

    // By default users may not add webhooks.
    let app = TestApp::embedded_with(|c| c.users.admins = vec!["root".into()]).await;
    let (alice, root) = (app.user("alice").await, app.user("root").await);
    assert_eq!(
        app.call(Method::POST, "/api/v1/envs", Some(&alice), Some(create_env.clone())).await.status,
        StatusCode::CREATED
    );
    let refused = app
        .call(Method::POST, "/api/v1/envs/shop/webhooks", Some(&alice), Some(hook("https://hooks.example.com/x")))
        .await;
    assert_eq!(
        (refused.status, refused.problem_code()),
        (StatusCode::FORBIDDEN, "webhook.users_not_allowed"),
        "{}",
        refused.text
    );
    assert!(refused.body["detail"].as_str().unwrap().contains("users_may_add"), "{}", refused.text);
    let not_admin =
        app.call(Method::POST, "/api/v1/admin/webhooks", Some(&alice), Some(hook("https://hooks.example.com/x"))).await;
    assert_eq!((not_admin.status, not_admin.problem_code()), (StatusCode::FORBIDDEN, "auth.not_admin"));
    let made =
        app.call(Method::POST, "/api/v1/admin/webhooks", Some(&root), Some(hook("http://127.0.0.1:9/admin"))).await;
    assert_eq!(made.status, StatusCode::CREATED, "admins may point anywhere: {}", made.text);
    let missing = app
        .call(Method::GET, "/api/v1/admin/webhooks/0123456789abcdef0123456789abcdef/deliveries", Some(&root), None)
        .await;
    assert_eq!((missing.status, missing.problem_code()), (StatusCode::NOT_FOUND, "webhook.not_found"));

    // Allowed, but not at the platform's own addresses.
    let app = TestApp::embedded_with(|c| c.webhooks.users_may_add = true).await;
    let alice = app.user("alice").await;
    assert_eq!(
        app.call(Method::POST, "/api/v1/envs", Some(&alice), Some(create_env)).await.status,
        StatusCode::CREATED
    );
    for url in ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://169.254.169.254/latest", "http://[::1]/x"]
    {
        let refused = app.call(Method::POST, "/api/v1/envs/shop/webhooks", Some(&alice), Some(hook(url))).await;
        assert_eq!(
            (refused.status, refused.problem_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "webhook.invalid"),
            "{url}: {}",
            refused.text
        );
        assert_eq!(refused.body["errors"][0]["field"], "url");
        assert_eq!(refused.body["errors"][0]["code"], "webhook.url.private", "{url}: {}", refused.text);
        assert!(refused.body["errors"][0]["message"].as_str().unwrap().contains("allow_private_addresses"));
    }
    let refused = app
        .call(
            Method::POST,
            "/api/v1/envs/shop/webhooks",
            Some(&alice),
            Some(json!({"url": "gopher://x", "events": ["deploy.started", "deploy.exploded"], "env": "other"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert_eq!(refused.error_fields(), ["env", "url", "events[1]"], "{}", refused.text);
    let unknown = app
        .call(Method::POST, "/api/v1/envs/nope/webhooks", Some(&alice), Some(hook("https://hooks.example.com/x")))
        .await;
    assert_eq!((unknown.status, unknown.problem_code()), (StatusCode::NOT_FOUND, "env.not_found"));
    let bad_format = app
        .call(
            Method::POST,
            "/api/v1/envs/shop/webhooks",
            Some(&alice),
            Some(json!({"url": "https://hooks.example.com/x", "format": "xml"})),
        )
        .await;
    assert_eq!(
        (bad_format.status, bad_format.error_fields()),
        (StatusCode::BAD_REQUEST, vec!["format".to_owned()]),
        "{}",
        bad_format.text
    );
}
