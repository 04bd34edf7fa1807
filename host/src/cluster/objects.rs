//! The Kubernetes objects of an env, as warship applies them: one Service per env and
//! one Deployment per release. Pure functions of the env and the release, so applying
//! the same release twice changes nothing, and a scale is the same object with another
//! replica count.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler, Namespace, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec,
    SleepAction,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::tenancy;
use crate::config::LimitsConfig;
use crate::domain::{EnvSpec, ReleaseSpec, ResourceAmounts, Traffic};

/// Every object warship manages carries this label = `warship`; the watch caches
/// select on it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "warship";
/// The original system's labels: the env's name, and the workload's own name.
pub const ENV: &str = "env";
pub const NAME: &str = "name";
/// The release a Deployment (and its pods) runs.
pub const RELEASE: &str = "warship.io/release";
pub const USER: &str = "warship.io/user";
/// Annotations with what labels cannot hold.
pub const IMAGE: &str = "warship.io/image";
pub const WAR_SHA256: &str = "warship.io/war-sha256";
pub const VERSION: &str = "warship.io/version";
pub const DEPLOY: &str = "warship.io/deploy";

/// The port Tomcat listens on in the images the template plugin describes.
pub const CONTAINER_PORT: i32 = 8080;
/// The one container of a release's pods.
pub const CONTAINER: &str = "app";
/// A stopping pod keeps serving this long before Tomcat is told to stop, so the gateway
/// and kube-proxy have taken it out of their endpoints first: no request meets a closed port.
pub const DRAIN_SECONDS: i64 = 5;
/// Then Tomcat gets this long to finish its requests and stop, before it is killed.
pub const STOP_SECONDS: i64 = 25;

pub fn deployment_name(env: &str, revision: u32) -> String {
    format!("{env}-r{revision}")
}

pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(MANAGED_BY.to_owned(), MANAGER.to_owned())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A label value from free text: at most 63 characters of `[A-Za-z0-9_.-]`, starting
/// and ending with an alphanumeric (the full text goes into an annotation).
fn label_value(text: &str) -> String {
    let kept: String = text.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).take(63).collect();
    kept.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

fn release_labels(user: &str, env: &str, release: &ReleaseSpec) -> BTreeMap<String, String> {
    let name = deployment_name(env, release.revision);
    BTreeMap::from([
        (ENV.to_owned(), env.to_owned()),
        (NAME.to_owned(), name.clone()),
        (RELEASE.to_owned(), release.revision.to_string()),
        (USER.to_owned(), user.to_owned()),
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        ("app.kubernetes.io/name".to_owned(), env.to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name),
        ("app.kubernetes.io/version".to_owned(), label_value(&release.version)),
        ("app.kubernetes.io/component".to_owned(), "web".to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "warship".to_owned()),
    ])
}

fn quantities(amounts: &ResourceAmounts) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> = [("cpu", &amounts.cpu), ("memory", &amounts.memory)]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name.to_owned(), Quantity(v.clone()))))
        .collect();
    (!map.is_empty()).then_some(map)
}

/// The env's requests and limits; what it leaves out the namespace's LimitRange fills in,
/// except a limit below the env's own request, which Kubernetes would refuse: that limit
/// is the request.
fn resources(env: &EnvSpec, defaults: &LimitsConfig) -> ResourceRequirements {
    let (requests, limits) = (&env.resources.requests, &env.resources.limits);
    let limit = |resource, request: &Option<String>, limit: &Option<String>| {
        limit
            .clone()
            .or_else(|| tenancy::limit_for_request(resource, request.as_deref(), defaults))
    };
    let limits = ResourceAmounts {
        cpu: limit("cpu", &requests.cpu, &limits.cpu),
        memory: limit("memory", &requests.memory, &limits.memory),
    };
    ResourceRequirements {
        requests: quantities(requests),
        limits: quantities(&limits),
        ..Default::default()
    }
}

/// The release's Deployment with `replicas` pods, in a namespace whose LimitRange gives
/// containers `defaults`.
pub fn deployment(
    user: &str,
    env: &EnvSpec,
    release: &ReleaseSpec,
    replicas: u32,
    defaults: &LimitsConfig,
) -> Deployment {
    let labels = release_labels(user, &env.name, release);
    let selector = BTreeMap::from([(ENV.to_owned(), env.name.clone()), (RELEASE.to_owned(), release.revision.to_string())]);
    let annotations = BTreeMap::from([
        (IMAGE.to_owned(), release.image.clone()),
        (WAR_SHA256.to_owned(), release.war_sha256.clone()),
        (VERSION.to_owned(), release.version.clone()),
        (DEPLOY.to_owned(), release.deploy_id.clone()),
    ]);
    let mut vars = vec![EnvVar { name: "JAVA_OPTS".into(), value: Some(env.jvm_options.clone()), ..Default::default() }];
    vars.extend(
        env.env.iter().filter(|(k, _)| k.as_str() != "JAVA_OPTS").map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() }),
    );
    let container = Container {
        name: CONTAINER.into(),
        image: Some(release.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: CONTAINER_PORT, ..Default::default() }]),
        env: Some(vars),
        resources: Some(resources(env, defaults)),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(env.probe_path()),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            // Asked every second from the start: a Tomcat that is up joins the endpoints
            // within a second, and one that stops answering leaves them after three.
            initial_delay_seconds: Some(2),
            period_seconds: Some(1),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler { sleep: Some(SleepAction { seconds: DRAIN_SECONDS }), ..Default::default() }),
            ..Default::default()
        }),
        // Tomcat on 8080 needs no privilege: none is given. The kubelet refuses to start
        // an image whose user is root, or is a name it cannot tell is not (so the base
        // images name theirs by number).
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(deployment_name(&env.name, release.revision)),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas as i32),
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            // Changes within a release (none today but a scale) roll without losing capacity.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(2),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), annotations: Some(annotations), ..Default::default() }),
                // The app has no business with the Kubernetes API.
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(DRAIN_SECONDS + STOP_SECONDS),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The env's Service, sending traffic to the releases `traffic` names.
pub fn service(user: &str, env: &str, traffic: Traffic, stable: Option<u32>, candidate: u32) -> Service {
    let release = match (traffic, stable) {
        (Traffic::Stable, Some(stable)) => Some(stable),
        (Traffic::Both, Some(_)) => None,
        _ => Some(candidate),
    };
    service_named(env.to_owned(), user, env, release)
}

/// One release's own Service (named like its Deployment): the env's route weighs one
/// release against another by their Services.
pub fn release_service(user: &str, env: &str, revision: u32) -> Service {
    let mut service = service_named(deployment_name(env, revision), user, env, Some(revision));
    if let Some(labels) = service.metadata.labels.as_mut() {
        labels.insert(RELEASE.to_owned(), revision.to_string());
    }
    service
}

/// A Service of `env` on port 80 to the pods' `http` port: of one release, or of all.
fn service_named(name: String, user: &str, env: &str, release: Option<u32>) -> Service {
    let mut selector = BTreeMap::from([(ENV.to_owned(), env.to_owned()), (MANAGED_BY.to_owned(), MANAGER.to_owned())]);
    if let Some(release) = release {
        selector.insert(RELEASE.to_owned(), release.to_string());
    }
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (ENV.to_owned(), env.to_owned()),
                (NAME.to_owned(), env.to_owned()),
                (USER.to_owned(), user.to_owned()),
                (MANAGED_BY.to_owned(), MANAGER.to_owned()),
                ("app.kubernetes.io/name".to_owned(), env.to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> EnvSpec {
        serde_json::from_value(serde_json::json!({
            "name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 3,
            "jvm_options": "-Xmx512m", "env": {"MODE": "prod", "JAVA_OPTS": "ignored"},
            "resources": {"limits": {"memory": "1Gi"}}, "context_path": "/shop"
        }))
        .unwrap()
    }

    fn release() -> ReleaseSpec {
        ReleaseSpec {
            revision: 4,
            image: "registry:5000/alice/shop@sha256:abc".into(),
            version: "1.0+build/7".into(),
            war_sha256: "f00".into(),
            deploy_id: "d1".into(),
        }
    }

    #[test]
    fn a_deployment_runs_the_release_by_digest_with_the_envs_settings() {
        let d = deployment("alice", &env(), &release(), 2, &LimitsConfig::default());
        assert_eq!(d.metadata.name.as_deref(), Some("shop-r4"));
        let labels = d.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[ENV], "shop");
        assert_eq!(labels[NAME], "shop-r4");
        assert_eq!(labels["app.kubernetes.io/version"], "1.0_build_7");
        let spec = d.spec;
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector.match_labels.unwrap().len(), 2, "the selector is immutable: env and release only");
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false), "no API token in the app's pods");
        assert_eq!(pod.termination_grace_period_seconds, Some(DRAIN_SECONDS + STOP_SECONDS));
        let drain = pod.containers[0].lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap().sleep.as_ref().unwrap();
        assert_eq!(drain.seconds, DRAIN_SECONDS, "endpoints drain before Tomcat stops");
        let c = &pod.containers[0];
        let security = c.security_context.as_ref().unwrap();
        assert_eq!(
            security.run_as_non_root,
            Some(true),
            "the kubelet refuses a root (or unverifiable) image user"
        );
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert_eq!(c.image.as_deref(), Some("registry:5000/alice/shop@sha256:abc"));
        let vars: Vec<(String, String)> = c.env.clone().unwrap().into_iter().map(|v| (v.name, v.value.unwrap())).collect();
        assert_eq!(vars, [("JAVA_OPTS".into(), "-Xmx512m".into()), ("MODE".into(), "prod".into())]);
        assert_eq!(c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/shop/"));
        let resources = c.resources.clone().unwrap();
        assert_eq!(resources.limits.unwrap()["memory"], Quantity("1Gi".into()));
        assert!(
            resources.requests.is_none(),
            "left to the namespace's LimitRange"
        );
    }

    #[test]
    fn a_request_above_the_namespaces_default_limit_is_its_own_limit() {
        let mut env = env();
        env.resources.limits = ResourceAmounts::default();
        env.resources.requests.memory = Some("3Gi".into());
        env.resources.requests.cpu = Some("2".into());
        let d = deployment("alice", &env, &release(), 1, &LimitsConfig::default());
        let resources = d.spec.template.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap();
        assert_eq!(
            resources.limits.unwrap(),
            BTreeMap::from([("memory".to_owned(), Quantity("3Gi".into()))]),
            "not the default 1Gi, which Kubernetes would refuse under a 3Gi request; no cpu limit is configured"
        );
    }

    #[test]
    fn the_service_follows_the_traffic() {
        let selector = |traffic, stable| service("alice", "shop", traffic, stable, 5).spec.unwrap().selector.unwrap();
        assert_eq!(selector(Traffic::Stable, Some(4))[RELEASE], "4");
        assert_eq!(selector(Traffic::Candidate, Some(4))[RELEASE], "5");
        assert!(!selector(Traffic::Both, Some(4)).contains_key(RELEASE));
        assert_eq!(selector(Traffic::Stable, None)[RELEASE], "5", "a first deploy has only the candidate");
    }

    #[test]
    fn a_release_service_selects_that_release_only_and_belongs_to_the_env() {
        let service = release_service("alice", "shop", 7);
        assert_eq!(service.metadata.name.as_deref(), Some("shop-r7"));
        let labels = service.metadata.labels.unwrap();
        assert_eq!((labels[ENV].as_str(), labels[RELEASE].as_str()), ("shop", "7"));
        let selector = service.spec.unwrap().selector.unwrap();
        assert_eq!((selector[ENV].as_str(), selector[RELEASE].as_str()), ("shop", "7"));
    }
}
