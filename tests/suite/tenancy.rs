//! What holds a user's namespace in, end to end against a real control plane (kwok
//! nodes): the ResourceQuota, LimitRange and NetworkPolicy warship applies from
//! platform.toml, the pods that get the LimitRange's defaults and run as non-root, and a
//! deploy the quota refuses, diagnosed as such.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{LimitRange, Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams, ObjectMeta};
use serde_json::json;
use support::host::{config_for, deployments, pods_of, Host};
use support::{fixture, KubeCluster, Registry};

fn amounts(map: Option<BTreeMap<String, Quantity>>) -> Vec<(String, String)> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Labelled as warship's, and written by its server-side apply.
fn applied_by_warship(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"] == "warship"
        && meta.managed_fields.iter().flatten().any(|m| {
            m.manager.as_deref() == Some("warship") && m.operation.as_deref() == Some("Apply")
        })
}

/// A user's namespace is held in by what platform.toml says: a ResourceQuota and a
/// LimitRange whose defaults the pods get, and a NetworkPolicy admitting only the
/// configured sources on the app's port; the app's container must not run as root; and
/// a deploy past the quota fails saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_namespace_gets_the_configured_quota_limits_and_network_policy_and_pods_run_as_non_root(
) {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let kube = cluster.client().await;
    let dir = tempfile::tempdir().unwrap();
    let tenancy = "[kubernetes.quota]\npods = 40\nrequests_cpu = \"8\"\nrequests_memory = \"16Gi\"\nlimits_memory = \"32Gi\"\n\
                   [kubernetes.limits]\ndefault_request_cpu = \"50m\"\ndefault_request_memory = \"128Mi\"\ndefault_limit_memory = \"512Mi\"\nmax_memory = \"4Gi\"\n\
                   [kubernetes.ingress_from]\nnamespaces = [\"edge\"]\ncidrs = [\"192.0.2.0/24\"]\n";
    let (host, tokens) = Host::start(
        dir.path(),
        "host",
        &format!("{}{tenancy}", config_for(&registry, &cluster, "")),
        &["alice"],
    );
    let alice = &tokens[0];
    let (status, env) = host
        .post(
            "/api/v1/envs",
            alice,
            json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    host.upload(alice, "sample", "sample.war", &fixture("sample.war"))
        .await;
    let id = support::host::deploy(
        &host,
        alice,
        json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"}),
    )
    .await;
    let done = host.wait_deploy(alice, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let namespace = "warship-alice";
    let quota = Api::<ResourceQuota>::namespaced(kube.clone(), namespace)
        .get("warship")
        .await
        .unwrap();
    assert!(applied_by_warship(&quota.metadata), "{:?}", quota.metadata);
    assert_eq!(
        amounts(quota.spec.unwrap().hard),
        pairs(&[
            ("limits.memory", "32Gi"),
            ("pods", "40"),
            ("requests.cpu", "8"),
            ("requests.memory", "16Gi")
        ])
    );

    let limit_range = Api::<LimitRange>::namespaced(kube.clone(), namespace)
        .get("warship")
        .await
        .unwrap();
    assert!(applied_by_warship(&limit_range.metadata));
    let item = limit_range.spec.unwrap().limits.remove(0);
    assert_eq!(item.type_, "Container");
    assert_eq!(
        amounts(item.default_request),
        pairs(&[("cpu", "50m"), ("memory", "128Mi")])
    );
    assert_eq!(amounts(item.default), pairs(&[("memory", "512Mi")]));
    assert_eq!(amounts(item.max), pairs(&[("memory", "4Gi")]));

    let policy = Api::<NetworkPolicy>::namespaced(kube.clone(), namespace)
        .get("warship")
        .await
        .unwrap();
    assert!(applied_by_warship(&policy.metadata));
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(spec["policyTypes"], json!(["Ingress"]), "{spec}");
    assert_eq!(
        spec["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/managed-by": "warship"}})
    );
    assert_eq!(
        spec["ingress"],
        json!([{
            "from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["edge"]}
                ]}},
                {"ipBlock": {"cidr": "192.0.2.0/24"}}
            ],
            "ports": [{"port": 8080, "protocol": "TCP"}]
        }]),
        "{spec}"
    );

    // The pods: non-root, with the LimitRange's defaults, counted by the quota.
    let deployment = &deployments(&kube, namespace).await[0];
    let container = &deployment.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        container.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let pods = Api::<Pod>::namespaced(kube.clone(), namespace)
        .list(&ListParams::default().labels("env=shop"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        let resources = pod.spec.as_ref().unwrap().containers[0]
            .resources
            .clone()
            .unwrap();
        assert_eq!(
            (amounts(resources.requests), amounts(resources.limits)),
            (
                pairs(&[("cpu", "50m"), ("memory", "128Mi")]),
                pairs(&[("memory", "512Mi")])
            ),
            "filled in by the LimitRange"
        );
    }
    let started = Instant::now();
    loop {
        let quota = Api::<ResourceQuota>::namespaced(kube.clone(), namespace)
            .get("warship")
            .await
            .unwrap();
        let used = amounts(quota.status.and_then(|s| s.used));
        if used.contains(&("pods".to_owned(), "2".to_owned())) {
            assert!(
                used.contains(&("requests.memory".to_owned(), "256Mi".to_owned())),
                "{used:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the quota never counted the pods: {used:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // More than the quota leaves: Kubernetes refuses the pods, and the deploy says so.
    let (status, patched) = host
        .call(
            reqwest::Method::PATCH,
            "/api/v1/envs/shop",
            alice,
            Some(json!({"resources": {"requests": {"cpu": "9"}}, "rollout_deadline_secs": 8})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let id = support::host::deploy(
        &host,
        alice,
        json!({"war": "sample.war", "version": "2.0", "strategy": "rolling"}),
    )
    .await;
    let failed = host.wait_deploy(alice, &id).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"]["cause"].as_str()),
        (Some("failed"), Some("refused")),
        "{failed}"
    );
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Kubernetes refused to create the pods (")
            && message.contains("exceeded quota: warship")
            && message.contains("raise [kubernetes.quota]"),
        "{message}"
    );
    println!("refused: {message}");
    let image = done["image"].as_str().unwrap().to_owned();
    assert_eq!(
        pods_of(&kube, namespace, "shop", 1).await,
        vec![(true, image); 2],
        "the first release serves on"
    );
}
