//! An env's address from outside the cluster: one Gateway API `HTTPRoute` per env on the
//! Gateway the admin names, answering at `<env>.<user>.<gateway host>` and, for setups
//! without wildcard DNS, under the path `/<user>/<env>` of the gateway's own address.

use serde_json::{json, Value};

use super::objects::{deployment_name, ENV, MANAGED_BY, MANAGER, USER};
use crate::config::GatewayConfig;

pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";
pub const KIND: &str = "HTTPRoute";
/// How long a change of weights waits for the gateway to accept it.
pub const ACCEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The route generation every parent Gateway accepted (`Accepted` condition), if any.
pub fn accepted_generation(route: &Value) -> Option<i64> {
    let parents = route["status"]["parents"].as_array().filter(|p| !p.is_empty())?;
    parents
        .iter()
        .map(|parent| {
            parent["conditions"].as_array()?.iter().find(|c| c["type"] == "Accepted" && c["status"] == "True")?["observedGeneration"].as_i64()
        })
        .collect::<Option<Vec<i64>>>()?
        .into_iter()
        .min()
}

/// Where an env's route sends requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    /// The env's Service, wherever it points.
    Env,
    /// Two releases' own Services, `weight` percent of requests to the candidate.
    Weighted { stable: u32, candidate: u32, weight: u8 },
}

impl Backends {
    fn refs(self, env: &str) -> Value {
        match self {
            Backends::Env => json!([{"name": env, "port": 80}]),
            Backends::Weighted { stable, candidate, weight } => json!([
                {"name": deployment_name(env, stable), "port": 80, "weight": 100 - u32::from(weight.min(100))},
                {"name": deployment_name(env, candidate), "port": 80, "weight": u32::from(weight.min(100))},
            ]),
        }
    }
}

/// Where one env answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvAddress {
    /// `<env>.<user>.<gateway host>`: what the route matches.
    pub hostname: String,
    /// `/<user>/<env>`: the path form's prefix.
    pub path_prefix: String,
    /// The app's page by hostname.
    pub url: String,
    /// The app's page under the gateway's own address.
    pub path_url: String,
}

impl GatewayConfig {
    pub fn address(&self, user: &str, env: &str, context_path: &str) -> EnvAddress {
        let host = self.base_url.host_str().unwrap_or("localhost");
        let hostname = format!("{env}.{user}.{host}");
        let path_prefix = format!("/{user}/{env}");
        let context = context_path.trim_end_matches('/');
        let mut by_host = self.base_url.clone();
        // A hostname made of DNS labels under a valid host is always a valid host.
        let _ = by_host.set_host(Some(&hostname));
        by_host.set_path(&format!("{context}/"));
        let mut by_path = self.base_url.clone();
        by_path.set_path(&format!("{path_prefix}{context}/"));
        EnvAddress { hostname, path_prefix, url: by_host.to_string(), path_url: by_path.to_string() }
    }

    /// The env's route: every request for its hostname to its backends.
    pub fn route(&self, user: &str, env: &str, context_path: &str, backends: Backends) -> Value {
        let address = self.address(user, env, context_path);
        let backend = backends.refs(env);
        json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": env,
                "labels": {ENV: env, USER: user, MANAGED_BY: MANAGER, "app.kubernetes.io/name": env},
            },
            "spec": {
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": self.name, "namespace": self.namespace}],
                "hostnames": [address.hostname],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backend},
                ],
            },
        })
    }

    /// The path form needs no hostname of its own: a second route, for any host (the
    /// gateway may be reached by IP, which a route's hostnames cannot name).
    pub fn path_route(&self, user: &str, env: &str, context_path: &str, backends: Backends) -> Value {
        let address = self.address(user, env, context_path);
        let mut route = self.route(user, env, context_path, backends);
        route["metadata"]["name"] = json!(path_route_name(env));
        route["spec"].as_object_mut().expect("spec is an object").remove("hostnames");
        route["spec"]["rules"] = json!([{
            "matches": [{"path": {"type": "PathPrefix", "value": address.path_prefix}}],
            "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
            "backendRefs": backends.refs(env),
        }]);
        route
    }
}

pub fn path_route_name(env: &str) -> String {
    format!("{env}-by-path")
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn gateway(base: &str) -> GatewayConfig {
        GatewayConfig { name: "warship".into(), namespace: "warship-gateway".into(), base_url: Url::parse(base).unwrap() }
    }

    #[test]
    fn an_env_answers_under_its_own_hostname_and_under_a_path() {
        let a = gateway("http://localhost:8000").address("alice", "shop", "/");
        assert_eq!(a.hostname, "shop.alice.localhost");
        assert_eq!(a.url, "http://shop.alice.localhost:8000/");
        assert_eq!(a.path_url, "http://localhost:8000/alice/shop/");
        let b = gateway("https://apps.example.com").address("bob", "api", "/api");
        assert_eq!(b.url, "https://api.bob.apps.example.com/api/");
        assert_eq!(b.path_url, "https://apps.example.com/bob/api/api/");
    }

    #[test]
    fn the_route_sends_the_hostname_to_the_envs_service_on_the_named_gateway() {
        let route = gateway("http://localhost:8000").route("alice", "shop", "/", Backends::Env);
        assert_eq!(route["kind"], "HTTPRoute");
        assert_eq!(route["metadata"]["name"], "shop");
        assert_eq!(route["metadata"]["labels"][MANAGED_BY], MANAGER);
        assert_eq!(route["spec"]["parentRefs"][0]["name"], "warship");
        assert_eq!(route["spec"]["parentRefs"][0]["namespace"], "warship-gateway");
        assert_eq!(route["spec"]["hostnames"][0], "shop.alice.localhost");
        assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["name"], "shop");
        assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["port"], 80);
    }

    #[test]
    fn weighted_routes_send_the_candidate_its_share_of_requests_by_the_releases_services() {
        let backends = Backends::Weighted { stable: 4, candidate: 5, weight: 25 };
        for route in [
            gateway("http://localhost:8000").route("alice", "shop", "/", backends),
            gateway("http://localhost:8000").path_route("alice", "shop", "/", backends),
        ] {
            let refs = &route["spec"]["rules"][0]["backendRefs"];
            assert_eq!((refs[0]["name"].as_str(), refs[0]["weight"].as_u64()), (Some("shop-r4"), Some(75)));
            assert_eq!((refs[1]["name"].as_str(), refs[1]["weight"].as_u64()), (Some("shop-r5"), Some(25)));
        }
    }

    #[test]
    fn a_route_counts_as_accepted_at_the_generation_every_parent_accepted() {
        let parent = |generation: i64, status: &str| json!({"conditions": [
            {"type": "ResolvedRefs", "status": "True", "observedGeneration": generation + 10},
            {"type": "Accepted", "status": status, "observedGeneration": generation},
        ]});
        assert_eq!(accepted_generation(&json!({"status": {"parents": [parent(3, "True")]}})), Some(3));
        assert_eq!(accepted_generation(&json!({"status": {"parents": [parent(3, "True"), parent(2, "True")]}})), Some(2));
        assert_eq!(accepted_generation(&json!({"status": {"parents": [parent(3, "False")]}})), None);
        assert_eq!(accepted_generation(&json!({"status": {"parents": []}})), None);
        assert_eq!(accepted_generation(&json!({})), None);
    }

    #[test]
    fn the_path_route_strips_its_prefix() {
        let route = gateway("http://localhost:8000").path_route("alice", "shop", "/", Backends::Env);
        assert_eq!(route["metadata"]["name"], "shop-by-path");
        assert!(route["spec"].get("hostnames").is_none(), "any host: the gateway may be reached by IP");
        let rule = &route["spec"]["rules"][0];
        assert_eq!(rule["matches"][0]["path"]["value"], "/alice/shop");
        assert_eq!(rule["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"], "/");
    }
}
