//! What holds a user's namespace in, applied with the namespace: a ResourceQuota (the
//! most the user's pods take together), a LimitRange (the requests and limits of a
//! container that sets none, and the most it may set) and a NetworkPolicy (only the
//! gateway, and the user's own envs, may connect to the app's port). Each is named
//! [`NAME`] and labelled like every other object warship manages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::objects::{CONTAINER_PORT, MANAGED_BY, MANAGER};
use crate::config::{thousandths, IngressFrom, KubernetesConfig, LimitsConfig, QuotaConfig};

/// The name of each of the three in every user's namespace.
pub const NAME: &str = "warship";
/// The label the API server gives every namespace, its own name.
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// The three objects, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Tenancy {
    pub quota: ResourceQuota,
    pub limit_range: LimitRange,
    pub network_policy: NetworkPolicy,
    /// What the LimitRange gives a container without limits.
    limits: LimitsConfig,
}

impl Tenancy {
    pub fn new(config: &KubernetesConfig) -> Self {
        let gateway_namespace = config.gateway.as_ref().map(|g| g.namespace.as_str());
        Self {
            quota: resource_quota(&config.quota),
            limit_range: limit_range(&config.limits),
            network_policy: network_policy(&config.ingress_from, gateway_namespace),
            limits: config.limits.clone(),
        }
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }
}

fn metadata() -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.to_owned()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.to_owned(),
            MANAGER.to_owned(),
        )])),
        ..Default::default()
    }
}

/// The set quantities among `(resource, value)`; `None` when none is.
fn amounts<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a String)>,
) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> = pairs
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(resource, value)| (resource.to_owned(), Quantity(value.clone())))
        .collect();
    (!map.is_empty()).then_some(map)
}

pub fn resource_quota(quota: &QuotaConfig) -> ResourceQuota {
    let pods = quota.pods.to_string();
    ResourceQuota {
        metadata: metadata(),
        spec: Some(ResourceQuotaSpec {
            hard: amounts([
                ("pods", &pods),
                ("requests.cpu", &quota.requests_cpu),
                ("requests.memory", &quota.requests_memory),
                ("limits.cpu", &quota.limits_cpu),
                ("limits.memory", &quota.limits_memory),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn limit_range(limits: &LimitsConfig) -> LimitRange {
    LimitRange {
        metadata: metadata(),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default_request: amounts([
                    ("cpu", &limits.default_request_cpu),
                    ("memory", &limits.default_request_memory),
                ]),
                default: amounts([
                    ("cpu", &limits.default_limit_cpu),
                    ("memory", &limits.default_limit_memory),
                ]),
                max: amounts([("cpu", &limits.max_cpu), ("memory", &limits.max_memory)]),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

/// Ingress to warship's pods on the app's port from `from`'s peers only; egress is not
/// restricted. With no peer at all, no ingress rule: nothing but the node gets in (a rule
/// without peers would let everyone in).
pub fn network_policy(from: &IngressFrom, gateway_namespace: Option<&str>) -> NetworkPolicy {
    let mut peers = Vec::new();
    if from.same_namespace {
        peers.push(NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..Default::default()
        });
    }
    let namespaces = from.namespaces_or(gateway_namespace);
    if namespaces.iter().any(|n| n == "*") {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            ..Default::default()
        });
    } else if !namespaces.is_empty() {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NAMESPACE_NAME.into(),
                    operator: "In".into(),
                    values: Some(namespaces),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    peers.extend(from.cidrs.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        ..Default::default()
    }));
    let ingress = if peers.is_empty() {
        Vec::new()
    } else {
        vec![NetworkPolicyIngressRule {
            from: Some(peers),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(CONTAINER_PORT)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }]
    };
    NetworkPolicy {
        metadata: metadata(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    MANAGED_BY.to_owned(),
                    MANAGER.to_owned(),
                )])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    }
}

/// The limit of a resource (`cpu`, `memory`) for a container that sets a request but no
/// limit: `None` (the LimitRange's default) unless that default is below the request, when
/// Kubernetes would refuse the pod (a request above its limit); then the request itself.
pub fn limit_for_request(
    resource: &str,
    request: Option<&str>,
    defaults: &LimitsConfig,
) -> Option<String> {
    let default = match resource {
        "cpu" => &defaults.default_limit_cpu,
        _ => &defaults.default_limit_memory,
    };
    let request = request?;
    thousandths(request)
        .zip(thousandths(default))
        .is_some_and(|(request, default)| request > default)
        .then(|| request.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(extra: &str) -> KubernetesConfig {
        Config::from_toml(extra, std::path::Path::new("t.toml"), [])
            .unwrap()
            .kubernetes
    }

    fn quantities(map: &Option<BTreeMap<String, Quantity>>) -> Vec<(String, String)> {
        map.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_quota_holds_the_configured_hard_limits_and_leaves_out_empty_ones() {
        let tenancy = Tenancy::new(&config(
            "[kubernetes.quota]\npods = 20\nrequests_cpu = \"4\"\nlimits_memory = \"\"\n",
        ));
        assert_eq!(tenancy.quota.metadata.name.as_deref(), Some(NAME));
        assert_eq!(
            tenancy.quota.metadata.labels.as_ref().unwrap()[MANAGED_BY],
            MANAGER,
            "warship's own, as ensure_ours checks"
        );
        assert_eq!(
            quantities(&tenancy.quota.spec.unwrap().hard),
            pairs(&[
                ("pods", "20"),
                ("requests.cpu", "4"),
                ("requests.memory", "200Gi")
            ])
        );
    }

    #[test]
    fn the_limit_range_fills_what_the_quota_needs_and_caps_a_container() {
        let tenancy = Tenancy::new(&config(""));
        let spec = tenancy.limit_range.spec.unwrap();
        let item = &spec.limits[0];
        assert_eq!(item.type_, "Container");
        assert_eq!(
            quantities(&item.default_request),
            pairs(&[("cpu", "100m"), ("memory", "256Mi")])
        );
        assert_eq!(
            quantities(&item.default),
            pairs(&[("memory", "1Gi")]),
            "no cpu limit unless configured"
        );
        assert_eq!(quantities(&item.max), pairs(&[("memory", "16Gi")]));
    }

    #[test]
    fn the_network_policy_admits_the_gateway_and_the_users_own_envs_on_the_apps_port_only() {
        let with_gateway = config(
            "[kubernetes.gateway]\nname = \"gw\"\nnamespace = \"edge\"\nbase_url = \"http://apps.example\"\n",
        );
        let policy = Tenancy::new(&with_gateway).network_policy;
        assert_eq!(policy.metadata.name.as_deref(), Some(NAME));
        let spec = policy.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels.unwrap()[MANAGED_BY],
            MANAGER
        );
        assert_eq!(spec.policy_types.unwrap(), ["Ingress"], "egress stays open");
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 1);
        let ports = rules[0].ports.clone().unwrap();
        assert_eq!(
            (ports[0].port.clone(), ports[0].protocol.as_deref()),
            (Some(IntOrString::Int(CONTAINER_PORT)), Some("TCP"))
        );
        let from = rules[0].from.clone().unwrap();
        assert_eq!(
            from[0].pod_selector,
            Some(LabelSelector::default()),
            "the namespace's own pods"
        );
        let namespaces = from[1].namespace_selector.clone().unwrap();
        let wanted = &namespaces.match_expressions.unwrap()[0];
        assert_eq!(
            (
                wanted.key.as_str(),
                wanted.operator.as_str(),
                wanted.values.clone()
            ),
            (NAMESPACE_NAME, "In", Some(vec!["edge".to_owned()])),
            "the gateway's namespace by default"
        );
        assert_eq!(from.len(), 2);

        let configured = config(
            "[kubernetes.ingress_from]\nnamespaces = [\"*\"]\ncidrs = [\"10.1.0.0/16\"]\nsame_namespace = false\n",
        );
        let from = Tenancy::new(&configured)
            .network_policy
            .spec
            .unwrap()
            .ingress
            .unwrap()[0]
            .from
            .clone()
            .unwrap();
        assert_eq!(from.len(), 2, "{from:?}");
        assert_eq!(from[0].namespace_selector, Some(LabelSelector::default()));
        assert_eq!(from[1].ip_block.as_ref().unwrap().cidr, "10.1.0.0/16");

        let nobody = config("[kubernetes.ingress_from]\nsame_namespace = false\n");
        assert_eq!(
            Tenancy::new(&nobody).network_policy.spec.unwrap().ingress,
            Some(Vec::new()),
            "no peer: no rule, rather than one that admits everyone"
        );
    }

    #[test]
    fn a_request_above_the_default_limit_becomes_the_limit() {
        let defaults = LimitsConfig::default();
        let limit = |resource, request| limit_for_request(resource, request, &defaults);
        assert_eq!(limit("memory", Some("2Gi")).as_deref(), Some("2Gi"));
        assert_eq!(limit("memory", Some("1.5Gi")).as_deref(), Some("1.5Gi"));
        assert_eq!(limit("memory", Some("512Mi")), None, "the default fits");
        assert_eq!(limit("memory", Some("1Gi")), None);
        assert_eq!(limit("memory", None), None);
        assert_eq!(limit("cpu", Some("64")), None, "no default cpu limit");
    }
}
