//! The router the binary serves, driven in-process over a real embedded store:
//! auth, envs, the original API, error shapes, operations endpoints.

use crate::support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use support::TestApp;

fn shop() -> serde_json::Value {
    json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2})
}

#[tokio::test]
async fn every_api_route_needs_a_known_token() {
    let app = TestApp::embedded().await;
    let routes = [
        (Method::GET, "/api/v1/envs"),
        (Method::POST, "/api/v1/envs"),
        (Method::GET, "/api/v1/envs/shop"),
        (Method::PATCH, "/api/v1/envs/shop"),
        (Method::DELETE, "/api/v1/envs/shop"),
        (Method::GET, "/api/v1/catalog"),
        (Method::GET, "/api/v1/wars"),
        (Method::PUT, "/api/v1/wars/shop/shop.war"),
        (Method::GET, "/api/v1/wars/shop/shop.war"),
        (Method::DELETE, "/api/v1/wars/shop/shop.war"),
        (Method::POST, "/createenv"),
        (Method::GET, "/getuploadwars"),
        (Method::POST, "/upload"),
        (Method::POST, "/deploy"),
    ];
    for (method, path) in routes {
        let missing = app.call(method.clone(), path, None, None).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(missing.problem_code(), "auth.missing_token");
        assert!(missing.headers.contains_key("www-authenticate"));
        let wrong = app.call(method.clone(), path, Some("wsp_not-a-real-token"), None).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(wrong.problem_code(), "auth.invalid_token");
    }
    let malformed = app
        .send(Request::get("/api/v1/envs").header("authorization", "Basic dXNlcjpwdw==").body(Body::empty()).unwrap())
        .await;
    assert_eq!(malformed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(malformed.problem_code(), "auth.malformed");
}

#[tokio::test]
async fn env_lifecycle() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let t = Some(token.as_str());

    let created = app.call(Method::POST, "/api/v1/envs", t, Some(shop())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["location"], "/api/v1/envs/shop");
    assert_eq!(created.body["used"], 0);
    assert_eq!(created.body["replicas"], 2);
    assert_eq!(created.body["context_path"], "/");

    let again = app.call(Method::POST, "/api/v1/envs", t, Some(shop())).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem_code(), "env.exists");

    let listed = app.call(Method::GET, "/api/v1/envs", t, None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);

    let patched = app
        .call(Method::PATCH, "/api/v1/envs/shop", t, Some(json!({"replicas": 3, "jvm_options": "-Xmx512m", "env": {"MODE": "prod"}})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["replicas"], 3);
    assert_eq!(patched.body["tomcat"], "10.1", "fields not named stay");
    assert!(patched.body["revision"].as_u64() > created.body["revision"].as_u64());

    let bad_patch = app.call(Method::PATCH, "/api/v1/envs/shop", t, Some(json!({"jdk": "8"}))).await;
    assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_patch.error_fields(), ["jdk"]);
    let got = app.call(Method::GET, "/api/v1/envs/shop", t, None).await;
    assert_eq!(got.body["jdk"], "17", "a refused patch changes nothing");

    let renamed = app.call(Method::PATCH, "/api/v1/envs/shop", t, Some(json!({"name": "other"}))).await;
    assert_eq!(renamed.status, StatusCode::BAD_REQUEST);
    assert_eq!(renamed.problem_code(), "request.unknown_field");
    assert_eq!(renamed.error_fields(), ["name"]);

    let deleted = app.call(Method::DELETE, "/api/v1/envs/shop", t, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.call(Method::GET, "/api/v1/envs/shop", t, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.problem_code(), "env.not_found");
    let gone = app.call(Method::DELETE, "/api/v1/envs/shop", t, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn validation_lists_every_bad_field_at_once() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let body = json!({
        "name": "Shop_1", "tomcat": "7", "jdk": "6", "replicas": 0,
        "env": {"9LIVES": "x"},
        "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi", "cpu": "fast"}},
        "context_path": "no-slash", "health_path": "/ready?deep=1"
    });
    let reply = app.call(Method::POST, "/api/v1/envs", Some(&token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_code(), "env.invalid");
    assert_eq!(
        reply.error_fields(),
        ["name", "tomcat", "replicas", "env.9LIVES", "resources.limits.cpu", "resources.requests.memory", "context_path", "health_path"]
    );
    for error in reply.body["errors"].as_array().unwrap() {
        assert!(error["code"].as_str().unwrap().starts_with("env."), "{error}");
        assert!(error["message"].as_str().unwrap().len() > 10, "{error}");
    }
    let listed = app.call(Method::GET, "/api/v1/envs", Some(&token), None).await;
    assert_eq!(listed.body, json!([]), "nothing stored");
}

#[tokio::test]
async fn malformed_requests_answer_in_problem_shape() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let auth = format!("Bearer {token}");

    let syntax = app
        .send(Request::post("/api/v1/envs").header("authorization", &auth).header("content-type", "application/json").body(Body::from("{\"name\": ")).unwrap())
        .await;
    assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
    assert_eq!(syntax.problem_code(), "request.malformed_json");

    let wrong_type = app
        .send(Request::post("/api/v1/envs").header("authorization", &auth).header("content-type", "text/plain").body(Body::from(shop().to_string())).unwrap())
        .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.problem_code(), "request.content_type");

    let mut extra = shop();
    extra["colour"] = json!("blue");
    let unknown = app.call(Method::POST, "/api/v1/envs", Some(&token), Some(extra)).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.problem_code(), "request.unknown_field");
    assert_eq!(unknown.error_fields(), ["colour"]);

    let nested = app
        .call(Method::POST, "/api/v1/envs", Some(&token), Some(json!({"name": "a", "tomcat": "10.1", "jdk": "17", "resources": {"limits": {"gpu": "1"}}})))
        .await;
    assert_eq!(nested.problem_code(), "request.unknown_field");
    assert_eq!(nested.error_fields(), ["resources.limits.gpu"]);

    let wrong_field_type = app
        .call(Method::POST, "/api/v1/envs", Some(&token), Some(json!({"name": "a", "tomcat": "10.1", "jdk": "17", "replicas": "two"})))
        .await;
    assert_eq!(wrong_field_type.problem_code(), "request.invalid_field");
    assert_eq!(wrong_field_type.error_fields(), ["replicas"]);

    let nowhere = app.call(Method::GET, "/api/v1/nowhere", Some(&token), None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.problem_code(), "route.not_found");

    let wrong_method = app.call(Method::PUT, "/api/v1/envs", Some(&token), None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.problem_code(), "route.method_not_allowed");

    // A body past the 2 MiB limit is a problem too, on a JSON route and on rollback's
    // optional body alike.
    let huge = format!("{{\"revision\": 1, \"pad\": \"{}\"}}", "x".repeat(3 << 20));
    for path in ["/api/v1/envs", "/api/v1/envs/shop/rollback"] {
        let request = Request::post(path).header("authorization", &auth).header("content-type", "application/json").body(Body::from(huge.clone())).unwrap();
        let too_large = app.send(request).await;
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {}", too_large.text);
        assert_eq!(too_large.problem_code(), "request.body", "{path}");
    }
}

#[tokio::test]
async fn users_see_only_their_own_envs() {
    let app = TestApp::embedded().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    assert_eq!(app.call(Method::POST, "/api/v1/envs", Some(&alice), Some(shop())).await.status, StatusCode::CREATED);

    for method in [Method::GET, Method::DELETE] {
        let reply = app.call(method, "/api/v1/envs/shop", Some(&bob), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "another user's env is simply not there");
        assert_eq!(reply.problem_code(), "env.not_found");
    }
    let patch = app.call(Method::PATCH, "/api/v1/envs/shop", Some(&bob), Some(json!({"replicas": 1}))).await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, "/api/v1/envs", Some(&bob), None).await.body, json!([]));

    // Bob may use the same name: names are per user.
    assert_eq!(app.call(Method::POST, "/api/v1/envs", Some(&bob), Some(shop())).await.status, StatusCode::CREATED);
    let alices = app.call(Method::GET, "/api/v1/envs/shop", Some(&alice), None).await;
    assert_eq!(alices.body["replicas"], 2);
}

#[tokio::test]
async fn catalog_lists_the_configured_pairs() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let reply = app.call(Method::GET, "/api/v1/catalog", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let pairs: Vec<(String, String)> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["tomcat"].as_str().unwrap().into(), c["jdk"].as_str().unwrap().into()))
        .collect();
    assert_eq!(pairs, [("9.0".into(), "11".into()), ("10.1".into(), "17".into()), ("10.1".into(), "21".into())]);
}

#[tokio::test]
async fn original_createenv_keeps_its_fields_and_answers_with_details() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let body = json!({"TomcatV": "10.1", "JdkV": "17", "NodeNum": "3", "Name": "legacy", "Used": 0});
    let reply = app.call(Method::POST, "/createenv", Some(&token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["name"], "legacy");
    assert_eq!(reply.body["status"], "created");
    assert_eq!(reply.body["children"], json!([]));
    let facts: Vec<(String, String)> = reply.body["context"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().into(), d["value"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        facts,
        [("TomcatV".into(), "10.1".into()), ("JdkV".into(), "17".into()), ("NodeNum".into(), "3".into()), ("Used".into(), "0".into())]
    );
    // The same env through the new API.
    let env = app.call(Method::GET, "/api/v1/envs/legacy", Some(&token), None).await;
    assert_eq!((env.body["replicas"].as_u64(), env.body["used"].as_u64()), (Some(3), Some(0)));

    let bad = json!({"TomcatV": "7", "JdkV": "17", "NodeNum": "two", "Name": "Bad Name", "Used": 4});
    let reply = app.call(Method::POST, "/createenv", Some(&token), Some(bad)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_fields(), ["Used", "Name", "TomcatV", "NodeNum"], "errors name the original fields");
    let node_num = &reply.body["errors"][3];
    assert_eq!(node_num["code"], "env.replicas.not_a_number");
}

#[tokio::test]
async fn deploys_without_a_cluster_say_how_to_configure_one() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let body = json!({"EnvName": "shop", "WarName": "shop.war", "AppVersion": "1", "IsGreyUpdating": "0"});
    // A bad request gets its 4xx first, cluster or not: there is no env shop yet.
    let reply = app.call(Method::POST, "/deploy", Some(&token), Some(body.clone())).await;
    assert_eq!((reply.status, reply.problem_code()), (StatusCode::NOT_FOUND, "env.not_found"), "{}", reply.text);
    let reply = app.call(Method::POST, "/api/v1/envs/shop/deploys", Some(&token), Some(json!({"war": "shop.war", "version": "1"}))).await;
    assert_eq!(reply.problem_code(), "env.not_found");
    // A request that would deploy says how to configure a cluster.
    app.call(Method::POST, "/api/v1/envs", Some(&token), Some(json!({"name": "shop", "tomcat": "10.1", "jdk": "17"}))).await;
    let war = std::fs::read(support::fixture("sample.war")).unwrap();
    assert_eq!(app.upload(&token, "shop", "shop.war", war).await.status, StatusCode::CREATED);
    let reply = app.call(Method::POST, "/deploy", Some(&token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.problem_code(), "kubernetes.not_configured");
    assert!(reply.body["detail"].as_str().unwrap().contains("kubernetes.kubeconfig"), "{}", reply.text);
    let reply = app.call(Method::POST, "/api/v1/envs/shop/deploys", Some(&token), Some(json!({"war": "shop.war", "version": "1"}))).await;
    assert_eq!(reply.problem_code(), "kubernetes.not_configured");

    let grey = json!({"EnvName": "shop", "WarName": "shop.war", "AppVersion": "1", "IsGreyUpdating": "yes"});
    let reply = app.call(Method::POST, "/deploy", Some(&token), Some(grey)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_fields(), ["IsGreyUpdating"]);
    let unknown = app.call(Method::POST, "/api/v1/envs/shop/deploys", Some(&token), Some(json!({"war": "a.war", "version": "1", "replicas": 2}))).await;
    assert_eq!(unknown.problem_code(), "request.unknown_field");
    assert_eq!(unknown.error_fields(), ["replicas"]);

    // The env's status without a cluster: the record, no service tree.
    let status = app.call(Method::GET, "/api/v1/envs/shop", Some(&token), None).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!((status.body["service"].clone(), status.body["current"].clone()), (Value::Null, Value::Null));
    assert_eq!(app.call(Method::GET, "/api/v1/envs/shop/deploys", Some(&token), None).await.body, json!([]));
    assert_eq!(app.call(Method::GET, "/api/v1/deploys/nope", Some(&token), None).await.problem_code(), "deploy.not_found");
    for action in ["promote", "abort"] {
        let reply = app.call(Method::POST, &format!("/api/v1/deploys/nope/{action}"), Some(&token), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{action}");
        assert_eq!(reply.problem_code(), "deploy.not_found", "{action}");
    }
    // A rollback is checked before the cluster too: this env has no release to go back to.
    let rollback = app.call(Method::POST, "/api/v1/envs/shop/rollback", Some(&token), None).await;
    assert_eq!((rollback.status, rollback.problem_code()), (StatusCode::UNPROCESSABLE_ENTITY, "deploy.invalid"));
    assert_eq!(rollback.body["errors"][0]["code"], "rollback.no_release");
    let logs = app.call(Method::GET, "/api/v1/envs/shop/logs", Some(&token), None).await;
    assert_eq!(logs.problem_code(), "kubernetes.not_configured");
    let malformed = app.call(Method::POST, "/api/v1/envs/shop/rollback", Some(&token), Some(json!({"revision": "two"}))).await;
    assert_eq!(malformed.problem_code(), "request.invalid_field");
    assert_eq!(malformed.error_fields(), ["revision"]);
}

#[tokio::test]
async fn operations_endpoints() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.body["status"], "ok");
    assert_eq!(app.call(Method::GET, "/readyz", None, None).await.body["status"], "ready");

    let doc = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/envs", "/api/v1/envs/{name}", "/api/v1/wars/{app}/{file}", "/createenv", "/upload", "/getuploadwars", "/deploy", "/api/v1/envs/{name}/deploys", "/api/v1/deploys/{id}", "/api/v1/deploys/{id}/events", "/api/v1/deploys/{id}/promote", "/api/v1/deploys/{id}/abort", "/api/v1/envs/{name}/rollback", "/api/v1/envs/{name}/logs"] {
        assert!(doc.body["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc.body["components"]["schemas"]["EnvSpec"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
    // Every schema a document refers to is in it (typed values such as TomcatVersion too).
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("$ref", Value::String(r)) => out.push(r.clone()),
                _ => refs(v, out),
            }),
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc.body, &mut found);
    for r in &found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc.body["components"]["schemas"][name].is_object(), "openapi refers to {r}, which it lacks");
    }
    assert_eq!(doc.body["components"]["schemas"]["EnvSpec"]["properties"]["tomcat"]["$ref"], "#/components/schemas/TomcatVersion");

    app.call(Method::GET, "/api/v1/envs", Some(&token), None).await;
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.text.lines().any(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/api/v1/envs\"") && l.contains("status=\"200\"")),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("warship_store_seconds_bucket"), "store latency is exported");

    let request_id = app.call(Method::GET, "/healthz", None, None).await.headers["x-request-id"].clone();
    assert_eq!(request_id.len(), 36, "a uuid request id is returned");
}
