//! Grey releases and the day after, end to end against every real part (the `warship`
//! binary, Debian's docker-registry with the real Tomcat bases, and a real Kubernetes
//! control plane with kwok nodes): canary with pause and promotion, rollback by digest,
//! canaries aborted by hand and by their own limits, blue-green, each failure cause the
//! kwok nodes can fake (scripts/kwok-fault-stages.yaml) diagnosed in plain words, logs,
//! and a host killed mid-build and mid-canary. What warship did is checked in the API
//! server itself.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::big_war;
use support::host::{deploy, deployment_names, pods_of, service_selector, Host, Shop};

const NAMESPACE: &str = "warship-alice";
const RELEASE: &str = "warship.io/release";

async fn patch_env(host: &Host, token: &str, patch: Value) {
    let (status, patched) = host.call(reqwest::Method::PATCH, "/api/v1/envs/shop", token, Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
}

/// The actions the deploy's strategy went through, from its recorded milestones.
fn actions(record: &Value) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for milestone in record["history"].as_array().unwrap() {
        if let Some(action) = milestone["action"].as_str() {
            if seen.last().map(String::as_str) != Some(action) {
                seen.push(action.to_owned());
            }
        }
    }
    seen
}

/// Release `revision` alone serves: its Deployment is the env's only one, its pods
/// are Ready on `image`, and the Service selects it.
async fn serves_alone(kube: &kube::Client, revision: u32, image: &str, replicas: usize) {
    assert_eq!(deployment_names(kube, NAMESPACE).await, [format!("shop-r{revision}")]);
    assert_eq!(pods_of(kube, NAMESPACE, "shop", revision).await, vec![(true, image.to_owned()); replicas]);
    assert_eq!(service_selector(kube, NAMESPACE, "shop").await.get(RELEASE), Some(&revision.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_is_paused_promoted_and_rolled_back_others_are_aborted_by_hand_and_by_limits_and_blue_green_switches() {
    // Release 1, by recreate.
    let shop = Shop::serving(4, "recreate").await;
    let (host, kube, alice, first, first_image) = (&shop.host, &shop.kube, shop.alice.as_str(), &shop.first, &shop.first_image);

    // Release 2, as a canary: a quarter of the pods, a pause, then it waits for a person.
    let steps = json!([{"weight": 25}, {"pause-seconds": 2}, {"await-promotion": true}, {"weight": 100}]);
    let canary = deploy(&host, alice, json!({"war": "sample.war", "version": "2.0", "strategy": "canary", "settings": {"steps": steps}})).await;
    let (status, early) = host.post(&format!("/api/v1/deploys/{canary}/promote"), alice, json!({})).await;
    assert_eq!((status, early["code"].as_str()), (409, Some("deploy.not_awaiting_promotion")), "{early}");
    let waiting = host.wait_step(alice, &canary, "await-promotion").await;
    assert_eq!(waiting["step"]["description"], "canary at 25%: waiting for someone to promote it");
    assert_eq!(waiting["traffic"], "both");
    let second_image = waiting["image"].as_str().unwrap().to_owned();
    // Both releases serve through the one Service, split by their pods: 3 stable, 1 canary.
    let selector = service_selector(&kube, NAMESPACE, "shop").await;
    assert!(!selector.contains_key(RELEASE) && selector["env"] == "shop", "{selector:?}");
    assert_eq!(pods_of(&kube, NAMESPACE, "shop", 1).await, vec![(true, first_image.clone()); 3]);
    assert_eq!(pods_of(&kube, NAMESPACE, "shop", 2).await, vec![(true, second_image.clone()); 1]);
    let (_, status) = host.get("/api/v1/envs/shop", alice).await;
    assert_eq!(status["deploying"], canary.as_str());
    assert!(status["service"]["workloads"].as_array().unwrap().iter().all(|w| w["serving"] == true), "{status}");
    // It stays there until promoted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, still) = host.get(&format!("/api/v1/deploys/{canary}"), alice).await;
    assert_eq!((still["status"].as_str(), still["step"]["action"].as_str()), (Some("rolling-out"), Some("await-promotion")));
    let (status, promoted) = host.post(&format!("/api/v1/deploys/{canary}/promote"), alice, json!({})).await;
    assert_eq!(status, 202, "{promoted}");
    let done = host.wait_deploy(alice, &canary).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let went = actions(&done);
    for action in ["switch-traffic", "scale", "wait-ready", "pause", "await-promotion", "done"] {
        assert!(went.contains(&action.to_owned()), "{action} missing from {went:?}");
    }
    serves_alone(&kube, 2, &second_image, 4).await;
    let (status, late) = host.post(&format!("/api/v1/deploys/{canary}/promote"), alice, json!({})).await;
    assert_eq!((status, late["code"].as_str()), (409, Some("deploy.finished")), "{late}");

    // Rollback, by default to the release before: release 1's digest, nothing built.
    let (status, rollback) = host.post("/api/v1/envs/shop/rollback", alice, json!({})).await;
    assert_eq!(status, 202, "{rollback}");
    assert_eq!((rollback["rollback_of"].as_u64(), rollback["revision"].as_u64()), (Some(1), Some(3)));
    let rolled = host.wait_deploy(alice, rollback["id"].as_str().unwrap()).await;
    assert_eq!(rolled["status"], "succeeded", "{rolled}");
    assert_eq!(rolled["image"], first_image.as_str());
    assert_eq!(rolled["image_build"], Value::Null, "a rollback builds nothing");
    let statuses: Vec<&str> = rolled["history"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
    assert!(!statuses.contains(&"building"), "{statuses:?}");
    serves_alone(&kube, 3, &first_image, 4).await;
    let (_, env) = host.get("/api/v1/envs/shop", alice).await;
    assert_eq!((env["current"]["revision"].as_u64(), env["current"]["digest"].as_str()), (Some(3), first["digest"].as_str()));
    let (status, refused) = host.post("/api/v1/envs/shop/rollback", alice, json!({"revision": 9})).await;
    assert_eq!((status, refused["errors"][0]["code"].as_str()), (422, Some("rollback.revision.unknown")), "{refused}");

    // The original API's grey deploy runs the platform's canary (a 60 s pause first):
    // aborted by hand, release 3 serves alone again.
    let (status, details) =
        host.post("/deploy", alice, json!({"EnvName": "shop", "WarName": "sample.war", "AppVersion": "4.0", "IsGreyUpdating": "1"})).await;
    assert_eq!(status, 202, "{details}");
    let grey = details["context"].as_array().unwrap().iter().find(|c| c["name"] == "deployId").unwrap()["value"].as_str().unwrap().to_owned();
    let paused = host.wait_step(alice, &grey, "pause").await;
    assert_eq!(paused["strategy"], "canary");
    assert_eq!(pods_of(&kube, NAMESPACE, "shop", 4).await.len(), 1, "the canary's 10% is one pod");
    let (status, _) = host.post(&format!("/api/v1/deploys/{grey}/abort"), alice, json!({})).await;
    assert_eq!(status, 202);
    let aborted = host.wait_deploy(alice, &grey).await;
    assert_eq!((aborted["status"].as_str(), aborted["error"]["code"].as_str()), (Some("aborted"), Some("deploy.aborted")), "{aborted}");
    assert!(aborted["error"]["message"].as_str().unwrap().contains("release 3 serves alone again"), "{aborted}");
    serves_alone(&kube, 3, &first_image, 4).await;

    // A canary whose pods crash: it gives up by its own limit on restarts.
    patch_env(&host, alice, json!({"env": {"WARSHIP_FAKE_FAULT": "crash-loop"}})).await;
    let crashing = deploy(&host, alice, json!({"war": "sample.war", "version": "5.0", "strategy": "canary", "settings": {"max-restarts": 2}})).await;
    let crashed = host.wait_deploy(alice, &crashing).await;
    assert_eq!((crashed["status"].as_str(), crashed["error"]["code"].as_str()), (Some("aborted"), Some("rollout.aborted")), "{crashed}");
    assert_eq!(crashed["error"]["cause"], "crash-loop");
    let message = crashed["error"]["message"].as_str().unwrap();
    assert!(message.contains("more than the 2 allowed") && message.contains("keeps crashing"), "{message}");
    serves_alone(&kube, 3, &first_image, 4).await;
    patch_env(&host, alice, json!({"env": {}})).await;

    // Blue-green: the new release comes up beside the old one, unseen until promoted,
    // then the Service switches to it and the old one goes.
    let blue_green = deploy(&host, alice, json!({"war": "sample.war", "version": "6.0", "strategy": "bluegreen"})).await;
    let preview = host.wait_step(alice, &blue_green, "await-promotion").await;
    let green_image = preview["image"].as_str().unwrap().to_owned();
    assert_eq!(pods_of(&kube, NAMESPACE, "shop", 4).await, vec![(true, green_image.clone()); 4], "the new release is up");
    assert_eq!(service_selector(&kube, NAMESPACE, "shop").await.get(RELEASE), Some(&"3".to_owned()), "and not yet serving");
    let (status, _) = host.post(&format!("/api/v1/deploys/{blue_green}/promote"), alice, json!({})).await;
    assert_eq!(status, 202);
    let switched = host.wait_deploy(alice, &blue_green).await;
    assert_eq!(switched["status"], "succeeded", "{switched}");
    serves_alone(&kube, 4, &green_image, 4).await;

    // The history, newest first, has every deploy with its end.
    let (_, history) = host.get("/api/v1/envs/shop/deploys", alice).await;
    let ends: Vec<(&str, &str)> =
        history.as_array().unwrap().iter().map(|d| (d["version"].as_str().unwrap(), d["status"].as_str().unwrap())).collect();
    assert_eq!(
        ends,
        [("6.0", "succeeded"), ("5.0", "aborted"), ("4.0", "aborted"), ("1.0", "succeeded"), ("2.0", "succeeded"), ("1.0", "succeeded")]
    );
    // Replayed after the end: the record with how it got there.
    let events = host.events(alice, &canary).await;
    assert!(events.iter().any(|(name, e)| name == "record" && e["step"]["action"] == "await-promotion"), "the wait is replayed");
    assert_eq!(events.last().unwrap().1["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_diagnosed_in_plain_words_while_the_previous_release_serves_and_logs_reach_the_api_server() {
    let shop = Shop::serving(2, "rolling").await;
    let (host, kube, alice, first_image) = (&shop.host, &shop.kube, shop.alice.as_str(), &shop.first_image);
    patch_env(&host, alice, json!({"rollout_deadline_secs": 10})).await;

    // Each fault the kwok nodes fake as a kubelet would, and the words warship finds for it.
    let faults = [
        ("image-pull", "image-pull", vec!["cannot pull the image", "connection refused", "is up and that nodes reach it"]),
        ("crash-loop", "crash-loop", vec!["keeps crashing", "last exit code 1", "/api/v1/envs/shop/logs?pod=shop-r2-"]),
        ("readiness", "readiness", vec!["readiness probe on / fails", "HTTP probe failed with statuscode: 503"]),
        ("evicted", "node-out-of-disk", vec!["ran out of disk and evicted pod shop-r2-", "low on resource: ephemeral-storage"]),
    ];
    for (version, (fault, cause, words)) in faults.iter().enumerate() {
        patch_env(&host, alice, json!({"env": {"WARSHIP_FAKE_FAULT": fault}})).await;
        let id = deploy(&host, alice, json!({"war": "sample.war", "version": format!("2.{version}"), "strategy": "rolling"})).await;
        let failed = host.wait_deploy(alice, &id).await;
        assert_eq!((failed["status"].as_str(), failed["error"]["code"].as_str()), (Some("failed"), Some("rollout.deadline")), "{fault}: {failed}");
        assert_eq!(failed["error"]["cause"], *cause, "{fault}: {failed}");
        let message = failed["error"]["message"].as_str().unwrap();
        for word in words {
            assert!(message.contains(word), "{fault}: {word:?} not in {message}");
        }
        serves_alone(&kube, 1, &first_image, 2).await;
    }
    patch_env(&host, alice, json!({"env": {}})).await;

    // Not enough cpu on any node.
    patch_env(&host, alice, json!({"resources": {"requests": {"cpu": "64"}}})).await;
    let id = deploy(&host, alice, json!({"war": "sample.war", "version": "3.0"})).await;
    let failed = host.wait_deploy(alice, &id).await;
    assert_eq!(failed["error"]["cause"], "unschedulable", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("not enough cpu: no node can run the pods"), "{failed}");
    serves_alone(&kube, 1, &first_image, 2).await;
    patch_env(&host, alice, json!({"resources": {"requests": {"cpu": "100m"}}})).await;

    let (_, status) = host.get("/api/v1/envs/shop", alice).await;
    assert_eq!((status["used"].as_u64(), status["deploying"].clone()), (Some(1), Value::Null), "nothing counted, the lock free");

    // Logs: the request reaches the API server, which asks the pod's kubelet; kwok's
    // nodes have none to give, and the error says so.
    let pod = status["service"]["workloads"][0]["pods"][0]["name"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/envs/shop/logs?pod={pod}&tail=10", host.base))
        .bearer_auth(alice)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let code = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!((code, body["code"].as_str()), (502, Some("logs.unavailable")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&format!("the log of pod {pod}")), "{body}");
    let (code, missing) = host.get("/api/v1/envs/shop/logs?pod=nope", alice).await;
    assert_eq!((code, missing["code"].as_str()), (404, Some("logs.pod_not_found")), "{missing}");
    assert!(missing["detail"].as_str().unwrap().contains(&pod), "the pods are listed: {missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_build_is_built_again_by_the_next_and_one_killed_mid_canary_resumes_it() {
    let mut shop = Shop::serving(2, "rolling").await;
    let alice = shop.alice.clone();
    let first_image = shop.first_image.clone();

    // Killed while building an image of a big WAR: the next host builds it again from
    // the stored WAR (same WAR, same base: the same image) and rolls it out.
    let big = shop.dir.path().join("big.war");
    big_war(&big, 200);
    shop.host.upload(&alice, "big", "big.war", &big).await;
    let building = deploy(&shop.host, &alice, json!({"war": "big.war", "version": "2.0"})).await;
    let started = Instant::now();
    loop {
        let (_, record) = shop.host.get(&format!("/api/v1/deploys/{building}"), &alice).await;
        if ["building", "pushing"].contains(&record["status"].as_str().unwrap()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never building: {record}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serves_alone(&shop.kube, 1, &first_image, 2).await;
    shop.kill_and_restart();
    let rebuilt = shop.host.wait_deploy(&alice, &building).await;
    assert_eq!(rebuilt["status"], "succeeded", "{rebuilt}");
    serves_alone(&shop.kube, 2, rebuilt["image"].as_str().unwrap(), 2).await;
    let (_, status) = shop.host.get("/api/v1/envs/shop", &alice).await;
    assert_eq!(status["deploying"], Value::Null, "the lock is free");

    // Killed while a canary waits for promotion: the next host picks it up where it
    // was, still waiting; promoted there, it finishes.
    let steps = json!([{"weight": 50}, {"await-promotion": true}]);
    let canary = deploy(&shop.host, &alice, json!({"war": "sample.war", "version": "3.0", "strategy": "canary", "settings": {"steps": steps}})).await;
    let waiting = shop.host.wait_step(&alice, &canary, "await-promotion").await;
    shop.kill_and_restart();
    // Promoted while no host runs it: the promotion is stored, and the new host, once
    // the dead one's lease lapses, resumes the rollout at its step and sees it.
    let started = Instant::now();
    let resumed = loop {
        let (status, resumed) = shop.host.post(&format!("/api/v1/deploys/{canary}/promote"), &alice, json!({})).await;
        if status == 202 {
            break resumed;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{status}: {resumed}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(resumed["step"]["index"], waiting["step"]["index"]);
    let done = shop.host.wait_deploy(&alice, &canary).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    serves_alone(&shop.kube, 3, done["image"].as_str().unwrap(), 2).await;
    let (_, status) = shop.host.get("/api/v1/envs/shop", &alice).await;
    assert_eq!((status["deploying"].clone(), status["current"]["version"].as_str()), (Value::Null, Some("3.0")));
}
