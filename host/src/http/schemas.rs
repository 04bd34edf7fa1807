//! Reshapes a few derived schemas so client generators read them as the API means them:
//! each event of a stream as a named schema with its discriminator (a generator cannot
//! build a union nested in a union), and an object flattened from a closed one
//! (`deny_unknown_fields`) as one object, since an `allOf` with a closed member would
//! refuse the very fields the other member adds.

use serde_json::{json, Value};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa::Modify;

pub struct Reshape;

impl Modify for Reshape {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        let mut schemas: serde_json::Map<String, Value> = components
            .schemas
            .iter()
            .map(|(name, schema)| (name.clone(), serde_json::to_value(schema).expect("schemas serialize")))
            .collect();
        name_build_events(&mut schemas);
        name_deploy_events(&mut schemas);
        image_events(&mut schemas);
        // Env first: EnvStatus flattens it in turn.
        for name in ["Env", "EnvStatus"] {
            flatten(&mut schemas, name);
        }
        components.schemas = schemas
            .into_iter()
            .map(|(name, schema)| {
                let schema: RefOr<Schema> =
                    serde_json::from_value(schema).unwrap_or_else(|e| panic!("schema {name} reads back: {e}"));
                (name, schema)
            })
            .collect();
    }
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `step` → `BuildStep`.
fn build_name(kind: &str) -> String {
    let mut chars = kind.chars();
    format!("Build{}{}", chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default(), chars.as_str())
}

/// BuildEvent's variants as `BuildStep`, `BuildBytes`, … told apart by `type`.
fn name_build_events(schemas: &mut serde_json::Map<String, Value>) {
    let Some(variants) = schemas.get("BuildEvent").and_then(|s| s["oneOf"].as_array()).cloned() else { return };
    let mut mapping = serde_json::Map::new();
    let mut refs = Vec::new();
    for variant in variants {
        let Some(kind) = variant["properties"]["type"]["enum"][0].as_str().map(str::to_owned) else { continue };
        let name = build_name(&kind);
        mapping.insert(kind, json!(format!("#/components/schemas/{name}")));
        refs.push(reference(&name));
        schemas.insert(name, variant);
    }
    schemas.insert(
        "BuildEvent".into(),
        json!({"oneOf": refs, "discriminator": {"propertyName": "type", "mapping": mapping},
            "description": "Something worth telling a person watching a build, told apart by `type`."}),
    );
}

/// DeployEvent's variants as `DeployRecordEvent`, `DeployBuildEvent`, `DeployReplicasEvent`,
/// told apart by `event` (also the stream's `event:` name).
fn name_deploy_events(schemas: &mut serde_json::Map<String, Value>) {
    let Some(variants) = schemas.get("DeployEvent").and_then(|s| s["oneOf"].as_array()).cloned() else { return };
    let mut mapping = serde_json::Map::new();
    let mut refs = Vec::new();
    for variant in variants {
        let tag = match &variant["allOf"] {
            Value::Array(parts) => parts.iter().find_map(|p| p["properties"]["event"]["enum"][0].as_str()),
            _ => variant["properties"]["event"]["enum"][0].as_str(),
        };
        let Some(kind) = tag.map(str::to_owned) else { continue };
        let mut chars = kind.chars();
        let name = format!(
            "Deploy{}{}Event",
            chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default(),
            chars.as_str()
        );
        mapping.insert(kind, json!(format!("#/components/schemas/{name}")));
        refs.push(reference(&name));
        schemas.insert(name, variant);
    }
    schemas.insert(
        "DeployEvent".into(),
        json!({"oneOf": refs, "discriminator": {"propertyName": "event", "mapping": mapping},
            "description": "What watchers of a deploy see, told apart by `event` (the stream's `event:` name too)."}),
    );
}

/// An image build's stream: any build event, then the final record. Flat, so no union
/// nests in another.
fn image_events(schemas: &mut serde_json::Map<String, Value>) {
    let Some(build) = schemas.get("BuildEvent").and_then(|s| s["oneOf"].as_array()).cloned() else { return };
    let mut members = build;
    members.push(reference("ImageRecord"));
    schemas.insert(
        "ImageEvent".into(),
        json!({"oneOf": members, "description": "What watchers of a build see: build events (with `type`), then the final \
            `ImageRecord` (`event: built` or `event: failed`)."}),
    );
}

/// `name`'s `allOf` of objects as one object with all their fields.
fn flatten(schemas: &mut serde_json::Map<String, Value>, name: &str) {
    let Some(parts) = schemas.get(name).and_then(|s| s["allOf"].as_array()).cloned() else { return };
    let mut properties = serde_json::Map::new();
    let mut required: Vec<Value> = Vec::new();
    for part in parts {
        let part = match part["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
            Some(target) => schemas.get(target).cloned().unwrap_or_default(),
            None => part,
        };
        properties.extend(part["properties"].as_object().cloned().unwrap_or_default());
        required.extend(part["required"].as_array().cloned().unwrap_or_default());
    }
    let schema = schemas.get_mut(name).expect("found above");
    let object = schema.as_object_mut().expect("a schema is an object");
    object.remove("allOf");
    object.insert("type".into(), json!("object"));
    object.insert("properties".into(), Value::Object(properties));
    object.insert("required".into(), Value::Array(required));
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    #[test]
    fn every_event_the_streams_send_has_a_named_schema() {
        let doc = serde_json::to_value(super::super::ops::ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for name in [
            "BuildStep",
            "BuildBytes",
            "BuildRetry",
            "BuildOutput",
            "DeployRecordEvent",
            "DeployBuildEvent",
            "DeployReplicasEvent",
        ] {
            assert!(schemas[name].is_object(), "{name} is missing");
        }
        assert_eq!(schemas["DeployEvent"]["discriminator"]["propertyName"], "event");
        assert_eq!(schemas["ImageEvent"]["oneOf"].as_array().unwrap().len(), 5);
        assert!(schemas["Env"]["allOf"].is_null() && schemas["Env"]["properties"]["tomcat"].is_object());
    }
}
