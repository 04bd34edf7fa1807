//! Every JSON body the API takes, found in its own OpenAPI document (so a new route
//! is fuzzed without being listed here), sent through the real router over a real
//! embedded store: objects with the schema's field names (and others) holding values
//! of every type, and bodies that are not objects or not JSON at all. Each answer is
//! a success or a problem+json with a stable code, never a 500.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{campaign, nasty_text};
use crate::support::TestApp;

#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    fields: Vec<String>,
}

/// The operations with a JSON request body, each with its schema's top-level fields,
/// and every field name any schema has.
fn operations(doc: &Value) -> (Vec<Operation>, Vec<String>) {
    let schemas = &doc["components"]["schemas"];
    let fields_of = |schema: &Value| -> Vec<String> {
        let schema = match schema["$ref"].as_str() {
            Some(reference) => &schemas[reference.trim_start_matches("#/components/schemas/")],
            None => schema,
        };
        schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            if schema.is_null() {
                continue;
            }
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            operations.push(Operation {
                method,
                path: path.clone(),
                fields: fields_of(schema),
            });
        }
    }
    let mut every: Vec<String> = schemas
        .as_object()
        .unwrap()
        .values()
        .flat_map(|s| {
            s["properties"]
                .as_object()
                .into_iter()
                .flat_map(|p| p.keys().cloned())
        })
        .collect();
    every.sort();
    every.dedup();
    (operations, every)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(
            &[
                "10.1", "17", "shop", "/", "canary", "1", "0", "rolling", "app.war", "1.0",
                "512Mi", "500m"
            ][..]
        )
        .prop_map(Value::from),
        nasty_text(&["shop", "10.1", "-Xmx512m", "/shop", "../", "Mi", "m"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Payload {
    /// Fields picked by index from the operation's own names (`true`) or any schema's.
    Fields(Vec<(bool, usize, Value)>),
    Other(Value),
    Raw(String),
}

#[test]
fn json_bodies() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::embedded_with(|c| {
        c.users.admins = vec!["fuzzer".into()]
    }));
    let token = runtime.block_on(app.user("fuzzer"));
    let doc = runtime
        .block_on(app.call(Method::GET, "/api/v1/openapi.json", None, None))
        .body;
    let (ops, every) = operations(&doc);
    assert!(
        ops.len() >= 7,
        "the OpenAPI names {} JSON bodies: {ops:?}",
        ops.len()
    );
    // One env exists, so env-addressed routes get past "no such env" some of the time.
    let created = runtime.block_on(app.call(
        Method::POST,
        "/api/v1/envs",
        Some(&token),
        Some(json!({"name": "shop", "tomcat": "10.1", "jdk": "17"})),
    ));
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    let payload = prop_oneof![
        6 => proptest::collection::vec((any::<bool>(), any::<usize>(), json_value()), 0..8).prop_map(Payload::Fields),
        1 => json_value().prop_map(Payload::Other),
        1 => nasty_text(&["{", "}", "\"", ":", ",", "[", "null"]).prop_map(Payload::Raw),
    ];
    let param =
        prop_oneof![3 => Just("shop".to_owned()), 1 => nasty_text(&["shop", "..", "%", "/"])];
    let input = (0..ops.len(), payload, param);
    campaign("json-bodies", input, |(which, payload, param)| {
        let op = &ops[*which];
        let body = match payload {
            Payload::Fields(fields) => {
                let mut object = Map::new();
                for (own, index, value) in fields {
                    let names = if *own && !op.fields.is_empty() {
                        &op.fields
                    } else {
                        &every
                    };
                    object.insert(names[index % names.len()].clone(), value.clone());
                }
                Value::Object(object).to_string()
            }
            Payload::Other(value) => value.to_string(),
            Payload::Raw(text) => text.clone(),
        };
        let encoded: String = url::form_urlencoded::byte_serialize(param.as_bytes()).collect();
        let path = op
            .path
            .replace("{name}", &encoded)
            .replace("{id}", &encoded);
        let request = Request::builder()
            .method(op.method.clone())
            .uri(&path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let reply = runtime.block_on(app.send(request));
        prop_assert!(
            reply.status != StatusCode::INTERNAL_SERVER_ERROR,
            "{} {path} {body}: {}",
            op.method,
            reply.text
        );
        if !reply.status.is_success() {
            let problem = reply
                .headers
                .get("content-type")
                .is_some_and(|v| v == "application/problem+json");
            prop_assert!(
                problem,
                "{} {path}: {} without problem+json: {}",
                op.method,
                reply.status,
                reply.text
            );
            let code = reply.body["code"].as_str().unwrap_or("");
            prop_assert!(
                !code.is_empty() && reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{}",
                reply.text
            );
        }
        Ok(())
    });
}
