//! Examples of the main bodies, laid on their schemas in the OpenAPI document so the
//! reference page and generated clients show a real request and answer. Each one is
//! read back into its Rust type by the tests below, so an example cannot drift from
//! what the API takes and gives.

use serde_json::{json, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Modify;

pub fn env_spec() -> Value {
    json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2, "jvm_options": "-Xmx512m",
        "env": {"MODE": "prod"}, "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "context_path": "/", "health_path": "/health"})
}

pub fn env() -> Value {
    let mut env = env_spec();
    env.as_object_mut().expect("object").extend(
        json!({"used": 1, "current": release(), "created_at": "2026-11-02T09:14:05Z", "updated_at": "2026-11-02T09:20:41Z",
            "revision": 7})
        .as_object()
        .expect("object")
        .clone(),
    );
    env
}

fn release() -> Value {
    json!({"revision": 1, "image": format!("registry.local:5000/alice/shop@sha256:{}", "4f".repeat(32)),
        "digest": format!("sha256:{}", "4f".repeat(32)), "war": "shop/shop-1.0.war", "war_sha256": "9c".repeat(32),
        "version": "1.0", "strategy": "rolling", "deploy": "0193a4f25c3e7a1b9d2e3f4a5b6c7d8e", "by": "alice",
        "at": "2026-11-02T09:20:41Z"})
}

pub fn deploy_request() -> Value {
    json!({"war": "shop/shop-1.1.war", "version": "1.1", "strategy": "canary", "settings": {"steps": [10, 50]}})
}

pub fn deploy_record() -> Value {
    json!({"id": "0193a4f25c3e7a1b9d2e3f4a5b6c7d8f", "env": "shop", "war": "shop/shop-1.1.war", "war_sha256": "7a".repeat(32),
        "version": "1.1", "strategy": "canary", "settings": {"steps": [10, 50]}, "by": "alice", "status": "rolling-out",
        "revision": 2, "stable": 1, "image": format!("registry.local:5000/alice/shop@sha256:{}", "e1".repeat(32)),
        "digest": format!("sha256:{}", "e1".repeat(32)), "traffic": "both", "weight": 10, "split": "weights",
        "scale": {"stable": 2, "candidate": 1},
        "step": {"index": 1, "action": "await-promotion", "description": "10% of requests on release 2; promote to go on",
            "memory": "{}", "since": "2026-11-03T10:02:11Z"},
        "promoted": false, "waited_for_kubernetes_ms": 8410,
        "history": [
            {"at": "2026-11-03T10:01:02Z", "status": "queued"},
            {"at": "2026-11-03T10:01:03Z", "status": "building"},
            {"at": "2026-11-03T10:01:40Z", "status": "rolling-out", "step": 1, "action": "await-promotion",
                "description": "10% of requests on release 2; promote to go on"}],
        "created_at": "2026-11-03T10:01:02Z", "updated_at": "2026-11-03T10:02:11Z"})
}

pub fn war() -> Value {
    json!({"app": "shop", "file": "shop-1.1.war", "size": 5_242_880, "sha256": "7a".repeat(32), "entries": 214,
        "uncompressed_bytes": 11_534_336, "has_web_xml": true, "servlet_api": "jakarta", "servlet_api_source": "entry-points",
        "servlet_api_evidence": "WEB-INF/web.xml declares jakarta.servlet servlets", "uploaded_at": "2026-11-03T09:58:30Z"})
}

pub fn problem() -> Value {
    json!({"type": "about:blank", "title": "Invalid environment", "status": 422,
        "detail": "fix the fields listed in `errors` and send the request again", "code": "env.invalid",
        "errors": [{"field": "jdk", "code": "env.jdk.unsupported", "message": "Tomcat 10.1 runs on JDK 11, 17 or 21, not 8"}]})
}

/// Lays the examples on their component schemas.
pub struct Examples;

impl Modify for Examples {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        let examples = [
            ("EnvSpec", env_spec()),
            ("Env", env()),
            ("DeployRequest", deploy_request()),
            ("DeployRecord", deploy_record()),
            ("WarRecord", war()),
            ("Problem", problem()),
        ];
        for (name, example) in examples {
            match components.schemas.get_mut(name) {
                Some(RefOr::T(Schema::Object(object))) => object.examples = vec![example],
                Some(RefOr::T(Schema::AllOf(all_of))) => all_of.examples = vec![example],
                _ => tracing::warn!(schema = name, "no schema to lay an example on"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(example: Value) {
        let parsed: T = serde_json::from_value(example.clone()).unwrap_or_else(|e| panic!("{e}: {example}"));
        assert_eq!(serde_json::to_value(parsed).unwrap(), example, "the example is what the API would answer");
    }

    #[test]
    fn every_example_is_what_the_api_takes_or_gives() {
        round_trips::<crate::domain::EnvSpec>(env_spec());
        round_trips::<crate::domain::Env>(env());
        round_trips::<crate::deploys::DeployRecord>(deploy_record());
        round_trips::<crate::wars::WarRecord>(war());
        let request: crate::deploys::DeployRequest = serde_json::from_value(deploy_request()).unwrap();
        assert_eq!(request.version, "1.1");
        let problem = problem();
        let errors: Vec<crate::domain::Violation> = serde_json::from_value(problem["errors"].clone()).unwrap();
        assert_eq!(errors[0].field, "jdk");
    }

    #[test]
    fn the_document_carries_them() {
        use utoipa::OpenApi as _;
        let doc = serde_json::to_value(super::super::ops::ApiDoc::openapi()).unwrap();
        for name in ["EnvSpec", "Env", "DeployRequest", "DeployRecord", "WarRecord", "Problem"] {
            assert!(doc["components"]["schemas"][name]["examples"][0].is_object(), "{name} has no example");
        }
    }
}
