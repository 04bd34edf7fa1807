//! Deploys end to end against every real part: the `warship` binary, Debian's etcd
//! shared by two hosts, Debian's docker-registry with the real Tomcat bases, and a real
//! Kubernetes control plane (kube-apiserver, controller-manager, scheduler, kwok nodes)
//! from scripts/dev-cluster. What warship did is checked in the API server itself.

use crate::support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde_json::{json, Value};
use support::host::{config_for, deployments, pods_of, statuses, Host, Shop};
use support::{fixture, Etcd, KubeCluster, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_war_becomes_ready_pods_then_rolls_to_a_new_version_one_deploy_per_env_across_hosts() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let kube = cluster.client().await;
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shared = format!("backend = \"etcd\"\netcd_endpoints = [\"{}\"]", etcd.endpoint);
    // Both hosts share etcd: the [store] section's keys follow data_dir in the file.
    let (a, tokens) = Host::start(dir.path(), "a", &config_for(&registry, &cluster, &shared), &["alice", "bob"]);
    let (b, _) = Host::start(dir.path(), "b", &config_for(&registry, &cluster, &shared), &[]);
    let (alice, bob) = (&tokens[0], &tokens[1]);

    let (status, env) = a.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2, "jvm_options": "-Xmx256m"})).await;
    assert_eq!(status, 201, "{env}");
    a.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;

    // First deploy: recreate.
    let (status, started) = a.post("/api/v1/envs/shop/deploys", alice, json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["status"], "queued");
    assert_eq!(started["revision"], 1);

    // While it runs: a second deploy on the same env is refused, on either host, with the running id.
    for host in [&a, &b] {
        let (status, refused) = host.post("/api/v1/envs/shop/deploys", alice, json!({"war": "sample.war", "version": "1.1"})).await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["code"], "deploy.in_progress");
        assert_eq!(refused["deploy"], id.as_str(), "the 409 names the running deploy");
    }
    // Another user's env does not exist for bob.
    let (status, hidden) = b.post("/api/v1/envs/shop/deploys", bob, json!({"war": "sample.war", "version": "1.0"})).await;
    assert_eq!((status, hidden["code"].as_str()), (404, Some("env.not_found")), "{hidden}");

    let events = a.events(alice, &id).await;
    let done = a.wait_deploy(alice, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        statuses(&events),
        ["queued", "validating", "building", "pushing", "rolling-out", "succeeded"],
        "every step is persisted and streamed"
    );
    assert!(events.iter().any(|(name, _)| name == "build"), "build progress is streamed");
    assert!(events.iter().any(|(name, e)| name == "replicas" && e["candidate"]["ready"] == 2), "replicas are streamed");
    let first_image = done["image"].as_str().unwrap().to_owned();
    assert!(first_image.starts_with(&format!("{}/alice/shop@sha256:", registry.addr)), "{first_image}");

    // What Kubernetes has: the release's Deployment by digest, its pods Ready, the Service on it.
    let namespace = "warship-alice";
    let listed = deployments(&kube, namespace).await;
    assert_eq!(listed.len(), 1);
    let deployment = &listed[0];
    assert_eq!(deployment.metadata.name.as_deref(), Some("shop-r1"));
    let labels = deployment.metadata.labels.as_ref().unwrap();
    assert_eq!((labels["env"].as_str(), labels["name"].as_str()), ("shop", "shop-r1"));
    assert_eq!(labels["app.kubernetes.io/managed-by"], "warship");
    let managers = deployment.metadata.managed_fields.as_ref().unwrap();
    assert!(
        managers.iter().any(|m| m.manager.as_deref() == Some("warship") && m.operation.as_deref() == Some("Apply")),
        "written by server-side apply as field manager warship: {managers:?}"
    );
    let container = &deployment.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some(first_image.as_str()));
    assert_eq!(container.env.as_ref().unwrap()[0].value.as_deref(), Some("-Xmx256m"));
    assert_eq!(pods_of(&kube, namespace, "shop", 1).await, vec![(true, first_image.clone()); 2]);
    let service = Api::<Service>::namespaced(kube.clone(), namespace).get("shop").await.unwrap();
    assert_eq!(service.spec.unwrap().selector.unwrap()["warship.io/release"], "1");

    // The status tree, from the watch caches.
    let (_, status) = a.get("/api/v1/envs/shop", alice).await;
    assert_eq!(status["used"], 1);
    assert_eq!(status["current"]["revision"], 1);
    assert_eq!(status["current"]["digest"], done["digest"]);
    let workloads = status["service"]["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 1, "{status}");
    assert_eq!((workloads[0]["desired"].as_u64(), workloads[0]["ready"].as_u64()), (Some(2), Some(2)));
    assert_eq!(workloads[0]["digest"], done["digest"]);
    let pods = workloads[0]["pods"].as_array().unwrap();
    assert!(pods.iter().all(|p| p["ready"] == true && p["phase"] == "Running" && p["node"].as_str().unwrap().starts_with("fake-")), "{pods:?}");

    // A new version, rolling: Ready on the new digest, the old release gone.
    let (status, second) = b.post("/api/v1/envs/shop/deploys", alice, json!({"war": "sample/sample.war", "version": "2.0", "strategy": "rolling"})).await;
    assert_eq!(status, 202, "{second}");
    let second = b.wait_deploy(alice, second["id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["stable"], 1);
    let second_image = second["image"].as_str().unwrap();
    assert_ne!(second_image, first_image, "a new version is a new image");
    assert_eq!(pods_of(&kube, namespace, "shop", 2).await, vec![(true, second_image.to_owned()); 2]);
    let names: Vec<_> = deployments(&kube, namespace).await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert_eq!(names, ["shop-r2"]);
    let (_, status) = a.get("/api/v1/envs/shop", alice).await;
    assert_eq!((status["used"].as_u64(), status["current"]["revision"].as_u64()), (Some(2), Some(2)));
    assert_eq!(status["deploying"], Value::Null);

    // The original API: deploy with the original field names, answered in the details shape.
    let (status, details) = a
        .post("/deploy", alice, json!({"EnvName": "shop", "WarName": "sample.war", "AppVersion": "3.0", "IsGreyUpdating": "0"}))
        .await;
    assert_eq!(status, 202, "{details}");
    assert_eq!(details["name"], "shop");
    let deploy_id = details["context"].as_array().unwrap().iter().find(|c| c["name"] == "deployId").unwrap()["value"].as_str().unwrap().to_owned();
    let third = a.wait_deploy(alice, &deploy_id).await;
    assert_eq!((third["status"].as_str(), third["strategy"].as_str()), (Some("succeeded"), Some("recreate")), "{third}");
    let (_, history) = a.get("/api/v1/envs/shop/deploys", alice).await;
    let versions: Vec<_> = history.as_array().unwrap().iter().map(|d| d["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["3.0", "2.0", "1.0"]);

    // Deleting the env removes its objects, and answers once they are gone.
    let (status, _) = a.call(reqwest::Method::DELETE, "/api/v1/envs/shop", alice, None).await;
    assert_eq!(status, 204);
    assert!(deployments(&kube, namespace).await.is_empty());
    assert!(Api::<Pod>::namespaced(kube.clone(), namespace).list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(Api::<Service>::namespaced(kube.clone(), namespace).get_opt("shop").await.unwrap().is_none());
    assert_eq!(a.get("/api/v1/envs/shop", alice).await.0, 404);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_past_its_deadline_fails_with_the_cause_the_previous_release_serves_and_a_killed_host_resumes() {
    let mut shop = Shop::serving(2, "rolling").await;
    let (kube, alice, first) = (shop.kube.clone(), shop.alice.clone(), shop.first.clone());
    let alice = &alice;

    // No node has 64 CPUs: the new pods cannot be scheduled.
    let (status, patched) = shop
        .host
        .call(
            reqwest::Method::PATCH,
            "/api/v1/envs/shop",
            alice,
            Some(json!({"resources": {"requests": {"cpu": "64"}}, "rollout_deadline_secs": 8})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let (_, second) = shop.host.post("/api/v1/envs/shop/deploys", alice, json!({"war": "sample.war", "version": "2.0", "strategy": "rolling"})).await;
    let started = Instant::now();
    let second = shop.host.wait_deploy(alice, second["id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "failed", "{second}");
    assert_eq!(second["error"]["code"], "rollout.deadline");
    let message = second["error"]["message"].as_str().unwrap();
    assert!(message.contains("within the env's deadline of 8s") && message.contains("Insufficient cpu"), "{message}");
    assert_eq!(second["error"]["cause"], "unschedulable");
    assert!(started.elapsed() < Duration::from_secs(60), "the deadline ends the rollout");

    // The first release still serves alone, at full strength.
    let namespace = "warship-alice";
    let first_image = first["image"].as_str().unwrap().to_owned();
    assert_eq!(pods_of(&kube, namespace, "shop", 1).await, vec![(true, first_image); 2]);
    let names: Vec<_> = deployments(&kube, namespace).await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert_eq!(names, ["shop-r1"], "the failed candidate is removed");
    let service = Api::<Service>::namespaced(kube.clone(), namespace).get("shop").await.unwrap();
    assert_eq!(service.spec.unwrap().selector.unwrap()["warship.io/release"], "1");
    let (_, status) = shop.host.get("/api/v1/envs/shop", alice).await;
    assert_eq!((status["used"].as_u64(), status["current"]["revision"].as_u64()), (Some(1), Some(1)));
    assert_eq!(status["deploying"], Value::Null, "the lock is free again");

    // A host killed mid-rollout: the next host carries the rollout on from its record.
    let (status, _) = shop.host.call(reqwest::Method::PATCH, "/api/v1/envs/shop", alice, Some(json!({"resources": {"requests": {"cpu": "100m"}}, "rollout_deadline_secs": 120}))).await;
    assert_eq!(status, 200);
    let (_, third) = shop.host.post("/api/v1/envs/shop/deploys", alice, json!({"war": "sample.war", "version": "3.0", "strategy": "rolling"})).await;
    let third_id = third["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let (_, record) = shop.host.get(&format!("/api/v1/deploys/{third_id}"), alice).await;
        if record["status"] == "rolling-out" && record["step"]["index"].as_u64() >= Some(1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never rolling out: {record}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shop.kill_and_restart();
    let resumed = shop.host.wait_deploy(alice, &third_id).await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_eq!(pods_of(&kube, namespace, "shop", 2).await.len(), 2, "release 2 (the failed one's revision, reused) serves");
    let names: Vec<_> = deployments(&kube, namespace).await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert_eq!(names, ["shop-r2"]);
    let (_, status) = shop.host.get("/api/v1/envs/shop", alice).await;
    assert_eq!((status["used"].as_u64(), status["current"]["version"].as_str()), (Some(2), Some("3.0")));
    assert_eq!(status["deploying"], Value::Null);
}

/// An object of the env's name that warship did not create is not taken over: the
/// deploy fails saying so, and the object stays as its owner left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_warship_did_not_create_is_not_taken_over() {
    let shop = Shop::serving(1, "recreate").await;
    let (host, kube, alice) = (&shop.host, &shop.kube, shop.alice.as_str());
    let services: Api<Service> = Api::namespaced(kube.clone(), "warship-alice");
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "other", "labels": {"team": "payments"}},
        "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    services.create(&Default::default(), &foreign).await.unwrap();
    let (status, env) = host.post("/api/v1/envs", alice, json!({"name": "other", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{env}");
    let id = support::host::deploy_to(host, alice, "other", json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    let failed = host.wait_deploy(alice, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("service other exists and was not created by warship"), "{failed}");
    let still = services.get("other").await.unwrap();
    assert_eq!(still.metadata.labels.unwrap(), [("team".to_owned(), "payments".to_owned())].into(), "its labels are its owner's");
    assert_eq!(still.spec.unwrap().selector.unwrap(), [("app".to_owned(), "payments".to_owned())].into(), "its selector too");
}
