//! warship's Helm chart (charts/warship) with a real helm (scripts/helm-binary): linted and
//! rendered with its defaults and each ci/*.yaml, the platform.toml it renders loaded by the
//! host's own checks; then installed into the local control plane, whose API server must accept
//! every object, and its in-cluster mode run as a pod runs it (the service account's token and
//! CA as mounted files): the admin from the chart's Secret adds a user who deploys an app with
//! only the ClusterRole's permissions, and a verb taken out of the role fails a deploy by name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::Scope;
use serde_json::{json, Value};
use sha2::Digest;

use warship_host::config::{Config, StorageBackend, StoreBackend};

use crate::support::incluster::{account_files, InClusterHost};
use crate::support::{fixture, Etcd, KubeCluster, Registry};

const RELEASE: &str = "warship";
const NAMESPACE: &str = "warship-system";
/// The account the chart's pods run as: the release's full name.
const ACCOUNT: &str = "system:serviceaccount:warship-system:warship";
/// What every install renders, whatever the values.
const ALWAYS: [&str; 7] =
    ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Secret", "Service", "ServiceAccount"];

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/warship")
}

/// helm, built once by scripts/helm-binary (cached; scripts/test builds it beforehand).
fn helm_binary() -> &'static Path {
    static HELM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HELM.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/helm-binary");
        let out = Command::new(script).output().unwrap();
        assert!(out.status.success(), "scripts/helm-binary failed: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("helm")
    })
}

/// `helm ARGS`, its config, cache and data kept under `home`: stdout, or stderr when it fails.
fn helm(home: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm_binary())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8(out.stdout).unwrap()),
        false => Err(format!(
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )),
    }
}

/// The documents of a YAML stream as JSON, read by python3-yaml (scripts/test installs it).
fn yaml_documents(text: &str) -> Vec<Value> {
    use std::io::Write;
    let mut python = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    python.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "python3-yaml could not read:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kinds(documents: &[Value]) -> BTreeSet<String> {
    documents.iter().map(|d| d["kind"].as_str().unwrap().to_owned()).collect()
}

fn expected_kinds(extra: &[&str]) -> BTreeSet<String> {
    ALWAYS.iter().chain(extra).map(|k| k.to_string()).collect()
}

fn document<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn the_chart_lints_and_renders_with_each_example_values_file_into_a_config_the_host_accepts() {
    let home = tempfile::tempdir().unwrap();
    let chart = chart();
    let chart = chart.to_str().unwrap();
    // (values file, kinds beyond ALWAYS, store, WAR storage)
    let cases = [
        (None, &["PodDisruptionBudget"][..], StoreBackend::Etcd, StorageBackend::Local),
        (
            Some("ci/embedded-values.yaml"),
            &["PersistentVolumeClaim"][..],
            StoreBackend::Embedded,
            StorageBackend::Local,
        ),
        (
            Some("ci/etcd-s3-values.yaml"),
            &["HTTPRoute", "PodDisruptionBudget"][..],
            StoreBackend::Etcd,
            StorageBackend::S3,
        ),
    ];
    // A values file added to ci/ must be added here too.
    let in_ci: BTreeSet<String> = std::fs::read_dir(Path::new(chart).join("ci"))
        .unwrap()
        .map(|e| format!("ci/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(in_ci, cases.iter().filter_map(|c| c.0.map(String::from)).collect());

    for (values, extra, store, storage) in cases {
        let values_path = values.map(|v| Path::new(chart).join(v).to_string_lossy().into_owned());
        let with_values: Vec<&str> = values_path.iter().flat_map(|v| ["-f", v.as_str()]).collect();
        let said = helm(home.path(), &[&["lint", "--strict", chart][..], &with_values].concat())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(said.contains("0 chart(s) failed"), "{said}");
        let rendered =
            helm(home.path(), &[&["template", RELEASE, chart, "--namespace", NAMESPACE][..], &with_values].concat())
                .unwrap_or_else(|e| panic!("{e}"));
        let documents = yaml_documents(&rendered);
        assert_eq!(kinds(&documents), expected_kinds(extra), "with {values:?}");

        let text = document(&documents, "ConfigMap")["data"]["platform.toml"].as_str().unwrap();
        let config = Config::from_toml(text, Path::new("platform.toml"), std::iter::empty())
            .unwrap_or_else(|e| panic!("the host refuses the platform.toml rendered with {values:?}: {e}\n{text}"));
        assert!(config.kubernetes.in_cluster && config.kubernetes.kubeconfig.is_none(), "{values:?}");
        assert_eq!((config.store.backend, config.storage.backend), (store, storage), "{values:?}");
        // The Secret's admin token is the one platform.toml declares by its sha256, as an admin.
        let token = base64::engine::general_purpose::STANDARD
            .decode(document(&documents, "Secret")["data"]["admin-token"].as_str().unwrap())
            .unwrap();
        let admin = &config.users.static_users[0];
        assert_eq!(admin.token_sha256, hex::encode(sha2::Sha256::digest(&token)), "{values:?}");
        assert!(config.users.admins.contains(&admin.name), "{values:?}");
    }

    // Values that cannot work are refused before anything reaches a cluster.
    let refused = helm(home.path(), &["template", RELEASE, chart, "--set", "store.backend=embedded"]).unwrap_err();
    assert!(refused.contains("replicaCount > 1 needs store.backend = \"etcd\""), "{refused}");
}

/// warship's own image from the binary under test (scripts/warship-image), pushed to
/// `registry`: `REGISTRY/warship/warship:TAG@sha256:…`.
fn warship_image(registry: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/warship-image");
    let out = Command::new(script)
        .args(["--binary", env!("CARGO_BIN_EXE_warship"), "--registry", registry])
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/warship-image failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap().to_owned()
}

/// The live object a rendered document names, found through the API server's discovery.
async fn live_object(client: &kube::Client, rendered: &Value) -> Option<DynamicObject> {
    let (group, version) = match rendered["apiVersion"].as_str().unwrap().split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", rendered["apiVersion"].as_str().unwrap()),
    };
    let gvk = GroupVersionKind::gvk(group, version, rendered["kind"].as_str().unwrap());
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), NAMESPACE, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(rendered["metadata"]["name"].as_str().unwrap()).await.unwrap()
}

/// The API server's `host:port`, as KUBERNETES_SERVICE_HOST/_PORT give it to pods.
fn api_server(kubeconfig: &Path) -> (String, u16) {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let server = config.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    let url = url::Url::parse(&server).unwrap();
    (url.host_str().unwrap().to_owned(), url.port().unwrap())
}

/// Whether the chart's account may `verb` `resource` of `group` in `namespace`, as RBAC
/// answers now.
async fn account_may(client: &kube::Client, verb: &str, group: &str, resource: &str, namespace: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(ACCOUNT.into()),
            groups: Some(vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{NAMESPACE}")]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone()).create(&PostParams::default(), &review).await.unwrap();
    answer.status.unwrap().allowed
}

#[tokio::test]
async fn the_installed_chart_runs_an_in_cluster_host_that_deploys_with_only_its_cluster_role() {
    let _alone = crate::support::one_heavy_test_at_a_time();
    let began = Instant::now();
    let (registry, etcd) = (Registry::start().await, Etcd::start().await);
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let kube = cluster.client().await;
    let dir = tempfile::tempdir().unwrap();
    let image = warship_image(&registry.addr);
    assert_eq!(warship_image(&registry.addr), image, "built again from the same binary: the same digest");
    let (reference, digest) = image.split_once('@').unwrap();
    let (repository, tag) = reference.rsplit_once(':').unwrap();
    eprintln!("registry, etcd, cluster and {image} ready after {:?}", began.elapsed());

    // Installed as an operator would, on this etcd and registry: two hosts, so the
    // PodDisruptionBudget is among the objects the API server must accept.
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!(
            "replicaCount: 2\nimage: {{repository: {repository}, tag: \"{tag}\", digest: \"{digest}\"}}\n\
             store: {{backend: etcd, etcd: {{endpoints: [\"{}\"]}}}}\n\
             registry: {{push: \"{addr}\", pull: \"{addr}\", insecure: true}}\n",
            etcd.endpoint,
            addr = registry.addr
        ),
    )
    .unwrap();
    let (chart, kubeconfig, values) = (chart(), cluster.kubeconfig.clone(), values.to_string_lossy().into_owned());
    let on_cluster = ["--kubeconfig", kubeconfig.to_str().unwrap(), "--namespace", NAMESPACE];
    let notes = helm(
        dir.path(),
        &[&["install", RELEASE, chart.to_str().unwrap(), "--create-namespace", "-f", &values][..], &on_cluster]
            .concat(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(notes.contains("Log in as admin"), "{notes}");
    let manifest =
        helm(dir.path(), &[&["get", "manifest", RELEASE][..], &on_cluster].concat()).unwrap_or_else(|e| panic!("{e}"));
    let documents = yaml_documents(&manifest);
    assert_eq!(kinds(&documents), expected_kinds(&["PodDisruptionBudget"]));
    for rendered in &documents {
        let live = live_object(&kube, rendered).await;
        assert!(
            live.is_some(),
            "the API server does not hold the {} {}",
            rendered["kind"],
            rendered["metadata"]["name"]
        );
    }
    // kwok's nodes run the pods (as far as the scheduler and kubelet states go): the pod
    // template is one the API server and the scheduler take, and it names the image by digest.
    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), NAMESPACE);
    let started = Instant::now();
    loop {
        let deployment = deployments.get(RELEASE).await.unwrap();
        let pod = deployment.spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some(image.as_str()));
        assert_eq!(pod.service_account_name.as_deref(), Some(RELEASE));
        if deployment.status.and_then(|s| s.available_replicas) == Some(2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the chart's Deployment has no 2 available pods after 60s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("installed, every object accepted, after {:?}", began.elapsed());

    // A host as the chart's pod runs it: the installed platform.toml, the account's files.
    let platform = Api::<ConfigMap>::namespaced(kube.clone(), NAMESPACE).get(RELEASE).await.unwrap();
    let platform = platform.data.unwrap().remove("platform.toml").unwrap();
    let account = account_files(&kube, NAMESPACE, RELEASE, dir.path()).await;
    let (api_host, api_port) = api_server(&kubeconfig);
    let host = InClusterHost::start(dir.path(), &platform, &account, (&api_host, api_port), &[]);
    let secret = Api::<Secret>::namespaced(kube.clone(), NAMESPACE).get(RELEASE).await.unwrap();
    let admin = String::from_utf8(secret.data.unwrap().remove("admin-token").unwrap().0).unwrap();

    let (status, alice) = host.post("/api/v1/admin/users", &admin, json!({"name": "alice"})).await;
    assert_eq!(status, 201, "{alice}");
    let alice = alice["token"].as_str().unwrap().to_owned();
    let (status, env) =
        host.post("/api/v1/envs", &alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{env}");
    host.upload(&alice, "sample", "sample.war", &fixture("sample.war")).await;
    let first =
        host.deploy(&alice, "shop", json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    assert_eq!(first["status"], "succeeded", "{first}\n{}", host.log());
    let names: Vec<String> = Api::<Deployment>::namespaced(kube.clone(), "warship-alice")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // Every other verb of the role in use: a rolling release (scale, then delete the old
    // Deployment), the status tree (the watches), a pod's log, an env deleted with its objects.
    let second =
        host.deploy(&alice, "shop", json!({"war": "sample.war", "version": "2.0", "strategy": "rolling"})).await;
    assert_eq!(second["status"], "succeeded", "{second}\n{}", host.log());
    let (status, shop) = host.call(reqwest::Method::GET, "/api/v1/envs/shop", &alice, None).await;
    assert_eq!(status, 200, "{shop}");
    // kwok's pods have no kubelet to give a log: the API server gets past RBAC and then
    // cannot reach one, which the host answers 502 (a missing pods/log would say forbidden).
    let (status, log) = host.call(reqwest::Method::GET, "/api/v1/envs/shop/logs?tail=5", &alice, None).await;
    assert_eq!((status, log["code"].as_str()), (502, Some("logs.unavailable")), "{log}");
    assert!(!log["detail"].as_str().unwrap().contains("forbidden"), "{log}");
    let (status, cart) =
        host.post("/api/v1/envs", &alice, json!({"name": "cart", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{cart}");
    let cart =
        host.deploy(&alice, "cart", json!({"war": "sample.war", "version": "1.0", "strategy": "recreate"})).await;
    assert_eq!(cart["status"], "succeeded", "{cart}\n{}", host.log());
    let (status, deleted) = host.call(reqwest::Method::DELETE, "/api/v1/envs/cart", &alice, None).await;
    assert_eq!(status, 204, "{deleted}");
    let log = host.log();
    assert!(!log.contains("forbidden"), "the host met a permission the ClusterRole lacks:\n{log}");
    // Every write to alice's Deployments and Services was the chart's account's.
    let writes: Vec<_> =
        cluster.audited_writes().into_iter().filter(|w| w.3.contains("/namespaces/warship-alice/")).collect();
    assert!(!writes.is_empty(), "the audit log holds no write to warship-alice");
    let writers: BTreeSet<&str> = writes.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(writers, BTreeSet::from([ACCOUNT]), "{writes:?}");
    let verbs: BTreeSet<&str> = writes.iter().map(|w| w.1.as_str()).collect();
    assert!(verbs.is_superset(&BTreeSet::from(["patch", "delete"])), "{writes:?}");
    eprintln!("alice's deploys and env removal, in-cluster, done after {:?}", began.elapsed());

    // The role without `create` on Deployments: the next release's Deployment is refused,
    // and the deploy fails saying so instead of a 403 hidden in a log.
    let roles: Api<ClusterRole> = Api::all(kube.clone());
    let mut role = roles.get(RELEASE).await.unwrap();
    for rule in role.rules.iter_mut().flatten() {
        let on_deployments = rule.api_groups.as_ref().is_some_and(|g| g.iter().any(|g| g == "apps"))
            && rule.resources.as_ref().is_some_and(|r| r.iter().any(|r| r == "deployments"));
        if on_deployments {
            rule.verbs.retain(|v| v != "create");
        }
    }
    roles.replace(RELEASE, &PostParams::default(), &role).await.unwrap();
    let started = Instant::now();
    while account_may(&kube, "create", "apps", "deployments", "warship-alice").await {
        assert!(started.elapsed() < Duration::from_secs(20), "RBAC still grants create on deployments");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let refused =
        host.deploy(&alice, "shop", json!({"war": "sample.war", "version": "3.0", "strategy": "rolling"})).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["error"]["code"], "kubernetes.refused", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(ACCOUNT) && message.contains("cannot create resource \"deployments\""), "{message}");
    assert!(started.elapsed() < Duration::from_secs(60), "the refusal took {:?} to fail the deploy", started.elapsed());
    eprintln!("the deploy without create on deployments failed in {:?}: {message}", started.elapsed());
    eprintln!("done after {:?}", began.elapsed());
}
