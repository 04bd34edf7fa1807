//! `[kubernetes.quota]`, `[kubernetes.limits]` and `[kubernetes.ingress_from]`: what
//! every user's namespace is held to (a ResourceQuota, a LimitRange, a NetworkPolicy),
//! and the checks that refuse, at load, what the API server would refuse at the first
//! deploy.

use serde::{Deserialize, Serialize};

/// The namespace's ResourceQuota: the most one user's pods may take together. A
/// quantity left empty (`""`) is not capped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    pub pods: u32,
    pub requests_cpu: String,
    pub requests_memory: String,
    pub limits_cpu: String,
    pub limits_memory: String,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            // 100 envs of 2 pods and their surge, or a few releases at deploys.max_replicas.
            pods: 500,
            // Above 64: an env may ask for more cpu than any node has and be told it is
            // unschedulable, rather than refused by the quota.
            requests_cpu: "100".into(),
            requests_memory: "200Gi".into(),
            // No cpu limits by default: they throttle a JVM that a request alone would not.
            limits_cpu: String::new(),
            limits_memory: "500Gi".into(),
        }
    }
}

/// The namespace's LimitRange, per container: what a container that sets no requests
/// or limits gets, and the most it may set. Empty (`""`) leaves that one out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub default_request_cpu: String,
    pub default_request_memory: String,
    pub default_limit_cpu: String,
    pub default_limit_memory: String,
    pub max_cpu: String,
    pub max_memory: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default_request_cpu: "100m".into(),
            // An idle Tomcat with a small app takes about 90 MiB.
            default_request_memory: "256Mi".into(),
            default_limit_cpu: String::new(),
            default_limit_memory: "1Gi".into(),
            // A cpu maximum would make every container need a cpu limit.
            max_cpu: String::new(),
            max_memory: "16Gi".into(),
        }
    }
}

/// The namespace's NetworkPolicy: who may open connections to the app's port in users'
/// pods. The node a pod runs on (its kubelet's probes, a gateway running as a host
/// process there) is always let in by the network plugins that enforce policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressFrom {
    /// Pods of these namespaces (`"*"`: of every namespace). Unset: the namespace of
    /// `[kubernetes.gateway]`, where Gateway API implementations that run a proxy per
    /// Gateway run it; name the gateway's own namespace when its pods live elsewhere.
    pub namespaces: Option<Vec<String>>,
    /// Addresses outside the cluster's pods, e.g. the nodes of a gateway that runs on
    /// the host network of other nodes: `10.0.0.0/16`, `192.0.2.7/32`.
    pub cidrs: Vec<String>,
    /// A user's envs may reach each other (their Services inside the namespace).
    pub same_namespace: bool,
}

impl Default for IngressFrom {
    fn default() -> Self {
        Self {
            namespaces: None,
            cidrs: Vec::new(),
            same_namespace: true,
        }
    }
}

impl IngressFrom {
    /// The namespaces let in, the gateway's when none are configured.
    pub fn namespaces_or(&self, gateway_namespace: Option<&str>) -> Vec<String> {
        match &self.namespaces {
            Some(listed) => listed.clone(),
            None => gateway_namespace.map(str::to_owned).into_iter().collect(),
        }
    }
}

/// A Kubernetes quantity in thousandths (`500m` → 500, `2` → 2000, `1Gi` → 1024³·1000),
/// for comparing two of them; `None` when it is not one. Exponents (`1e3`) are not read.
pub fn thousandths(quantity: &str) -> Option<u128> {
    const SUFFIXES: [(&str, u128, u128); 13] = [
        ("Ki", 1 << 10, 1),
        ("Mi", 1 << 20, 1),
        ("Gi", 1 << 30, 1),
        ("Ti", 1 << 40, 1),
        ("Pi", 1 << 50, 1),
        ("Ei", 1 << 60, 1),
        ("m", 1, 1000),
        ("k", 1_000, 1),
        ("M", 1_000_000, 1),
        ("G", 1_000_000_000, 1),
        ("T", 1_000_000_000_000, 1),
        ("P", 1_000_000_000_000_000, 1),
        ("E", 1_000_000_000_000_000_000, 1),
    ];
    let (number, multiplier, divisor) = SUFFIXES
        .iter()
        .find_map(|(suffix, m, d)| quantity.strip_suffix(suffix).map(|n| (n, *m, *d)))
        .unwrap_or((quantity, 1, 1));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    // value·1000 = (whole·10^f + fraction)·multiplier·1000 / (10^f·divisor), rounded up.
    let scale = 10u128.pow(fraction.len() as u32);
    let numerator = whole
        .parse::<u128>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        })?
        .checked_mul(multiplier)?
        .checked_mul(1000)?;
    Some(numerator.div_ceil(scale * divisor))
}

/// The checks of the three sections, as one message naming the key.
pub fn check(quota: &QuotaConfig, limits: &LimitsConfig, from: &IngressFrom) -> Result<(), String> {
    let quantity = |key: &str, value: &str, example: &str| -> Result<Option<u128>, String> {
        if value.is_empty() {
            return Ok(None);
        }
        thousandths(value).map(Some).ok_or_else(|| {
            format!("kubernetes.{key} {value:?} is not a Kubernetes quantity; write it like {example}, or \"\" for none")
        })
    };
    let (cpu, memory) = ("\"500m\" or \"2\"", "\"512Mi\" or \"2Gi\"");
    let resources = [
        (
            "cpu",
            cpu,
            [&quota.requests_cpu, &quota.limits_cpu],
            [
                &limits.default_request_cpu,
                &limits.default_limit_cpu,
                &limits.max_cpu,
            ],
        ),
        (
            "memory",
            memory,
            [&quota.requests_memory, &quota.limits_memory],
            [
                &limits.default_request_memory,
                &limits.default_limit_memory,
                &limits.max_memory,
            ],
        ),
    ];
    for (resource, example, [quota_requests, quota_limits], [request, limit, max]) in resources {
        let quota_requests = quantity(
            &format!("quota.requests_{resource}"),
            quota_requests,
            example,
        )?;
        let quota_limits = quantity(&format!("quota.limits_{resource}"), quota_limits, example)?;
        let request = quantity(
            &format!("limits.default_request_{resource}"),
            request,
            example,
        )?;
        let limit = quantity(&format!("limits.default_limit_{resource}"), limit, example)?;
        let max = quantity(&format!("limits.max_{resource}"), max, example)?;
        for ((a, a_key), (b, b_key)) in [
            ((request, "default_request"), (limit, "default_limit")),
            ((request, "default_request"), (max, "max")),
            ((limit, "default_limit"), (max, "max")),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                if a > b {
                    return Err(format!(
                        "kubernetes.limits.{a_key}_{resource} is above kubernetes.limits.{b_key}_{resource}; Kubernetes refuses such a LimitRange"
                    ));
                }
            }
        }
        // Each of these makes Kubernetes refuse a container that lacks the value, and envs
        // need not set requests or limits: the LimitRange must fill them in.
        for (needs, needed, what, default_key) in [
            (max.is_some(), limit, "a maximum", "default_limit"),
            (
                quota_limits.is_some(),
                limit,
                "a quota on limits",
                "default_limit",
            ),
            (
                quota_requests.is_some(),
                request,
                "a quota on requests",
                "default_request",
            ),
        ] {
            if needs && needed.is_none() {
                return Err(format!(
                    "kubernetes.limits.{default_key}_{resource} must be set: with {what} of {resource}, Kubernetes refuses a pod that does not say its own, and envs need not"
                ));
            }
        }
    }
    if quota.pods == 0 {
        return Err("kubernetes.quota.pods must be above 0".into());
    }
    for namespace in from.namespaces.iter().flatten() {
        if namespace != "*" && crate::domain::dns_label_problem(namespace, 63).is_some() {
            return Err(format!(
                "kubernetes.ingress_from.namespaces: {namespace:?} is not a namespace name (lower-case letters, digits and '-', starting with a letter), nor \"*\" for every namespace"
            ));
        }
    }
    for cidr in &from.cidrs {
        if !is_cidr(cidr) {
            return Err(format!(
                "kubernetes.ingress_from.cidrs: {cidr:?} is not an address block; write it like \"10.0.0.0/16\" or \"2001:db8::/64\""
            ));
        }
    }
    Ok(())
}

/// `10.0.0.0/16`, `2001:db8::/64`: an address and a prefix length that fits it.
fn is_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}
