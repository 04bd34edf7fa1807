//! `GET /api/v1/docs`: the API reference, rendered here from the OpenAPI document
//! itself (no bundle from elsewhere, nothing fetched from another origin): operations
//! grouped by tag with their parameters, bodies, answers and examples, the schemas, and
//! a "try it" form per operation (docs.js) that calls the route with your token and
//! shows the answer.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;
use utoipa::OpenApi;

const SCRIPT: &str = include_str!("docs.js");
const STYLE: &str = include_str!("docs.css");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The reference page: every operation of this document, and a form to try each.
#[utoipa::path(get, path = "/api/v1/docs", tag = "operations", operation_id = "getApiReference",
    responses((status = 200, content_type = "text/html", body = String, description = "the reference page")), security(()))]
pub async fn page() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let doc = serde_json::to_value(super::ops::ApiDoc::openapi()).expect("the document serializes");
        render(&doc).into_string()
    });
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page.as_str()).into_response();
    let headers = response.headers_mut();
    // Only this host's own script and style; the form's calls go to this host alone.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], STYLE)
}

/// An operation as the page lists it.
struct Operation<'a> {
    method: &'static str,
    path: &'a str,
    op: &'a Value,
}

impl Operation<'_> {
    fn id(&self) -> &str {
        self.op["operationId"].as_str().unwrap_or_default()
    }
}

/// The document's operations by tag, in the order its `tags` list them.
fn by_tag(doc: &Value) -> Vec<(String, String, Vec<Operation<'_>>)> {
    let mut tags: Vec<(String, String, Vec<Operation>)> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (text(&t["name"]).to_owned(), text(&t["description"]).to_owned(), Vec::new()))
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let op = &item[method];
            if !op.is_object() {
                continue;
            }
            let tag = op["tags"][0].as_str().unwrap_or("other");
            let index = match tags.iter().position(|(name, _, _)| name == tag) {
                Some(index) => index,
                None => {
                    tags.push((tag.to_owned(), String::new(), Vec::new()));
                    tags.len() - 1
                }
            };
            tags[index].2.push(Operation { method, path, op });
        }
    }
    tags.retain(|(_, _, ops)| !ops.is_empty());
    tags
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn render(doc: &Value) -> Markup {
    let tags = by_tag(doc);
    let title = text(&doc["info"]["title"]);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " API reference" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/api/v1/docs/docs.css";
                script src="/api/v1/docs/docs.js" defer {}
            }
            body {
                nav aria-label="Operations" {
                    h1 { (title) " API" }
                    p { "OpenAPI " (text(&doc["openapi"])) ": " a href="/api/v1/openapi.json" { "openapi.json" } }
                    label for="token" { "Bearer token" }
                    input #token type="password" autocomplete="off" placeholder="wsp_…";
                    @for (tag, _, ops) in &tags {
                        h2 { (tag) }
                        ul {
                            @for op in ops {
                                li { a href={ "#" (op.id()) } { span class={ "method " (op.method) } { (op.method) } " " (op.id()) } }
                            }
                        }
                    }
                    h2 { a href="#schemas" { "Schemas" } }
                }
                main {
                    header {
                        h1 { (title) " API reference" }
                        p { (text(&doc["info"]["description"])) }
                    }
                    @for (tag, description, ops) in &tags {
                        section.tag aria-labelledby={ "tag-" (tag) } {
                            h2 id={ "tag-" (tag) } { (tag) }
                            @if !description.is_empty() { p { (description) } }
                            @for op in ops { (operation(doc, op)) }
                        }
                    }
                    section #schemas {
                        h2 { "Schemas" }
                        @for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
                            (schema_section(name, schema))
                        }
                    }
                }
            }
        }
    }
}

fn operation(doc: &Value, op: &Operation) -> Markup {
    let o = op.op;
    let params: Vec<&Value> = o["parameters"].as_array().into_iter().flatten().collect();
    let body = &o["requestBody"];
    let body_type = body["content"].as_object().and_then(|c| c.keys().next().cloned()).unwrap_or_default();
    let body_example = body["content"][&body_type]["schema"]
        .get("$ref")
        .and_then(|r| example_of(doc, text(r)))
        .map(|e| serde_json::to_string_pretty(e).unwrap_or_default())
        .unwrap_or_default();
    let secured = o["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    html! {
        article.operation id=(op.id()) {
            h3 {
                span class={ "method " (op.method) } { (op.method.to_uppercase()) }
                " " code.path { (op.path) }
                " " span.summary { (text(&o["summary"])) }
            }
            p.meta {
                "operationId " code { (op.id()) }
                @if secured { " · bearer token" } @else { " · no token" }
            }
            @if let Some(description) = o["description"].as_str() { p { (description) } }
            @if !params.is_empty() {
                h4 { "Parameters" }
                table {
                    thead { tr { th scope="col" { "name" } th scope="col" { "in" } th scope="col" { "type" } th scope="col" { "description" } } }
                    tbody {
                        @for p in &params {
                            tr {
                                td { code { (text(&p["name"])) } @if p["required"] == true { " *" } }
                                td { (text(&p["in"])) }
                                td { (type_of(&p["schema"])) }
                                td { (text(&p["description"])) }
                            }
                        }
                    }
                }
            }
            @if body.is_object() {
                h4 { "Request body" @if body["required"] != true { " (optional)" } }
                @if let Some(description) = body["description"].as_str() { p { (description) } }
                ul {
                    @for (media, content) in body["content"].as_object().into_iter().flatten() {
                        li { code { (media) } ": " (type_of(&content["schema"])) }
                    }
                }
                @if !body_example.is_empty() { details { summary { "Example" } pre { (body_example) } } }
            }
            h4 { "Answers" }
            table {
                thead { tr { th scope="col" { "status" } th scope="col" { "body" } th scope="col" { "description" } } }
                tbody {
                    @for (status, answer) in o["responses"].as_object().into_iter().flatten() {
                        tr {
                            td { code { (status) } }
                            td {
                                @for (media, content) in answer["content"].as_object().into_iter().flatten() {
                                    code { (media) } " " (type_of(&content["schema"])) br;
                                }
                            }
                            td { (text(&answer["description"])) }
                        }
                    }
                }
            }
            (try_form(op, &params, &body_type, &body_example))
        }
    }
}

/// The form docs.js sends: each parameter by where it goes, the body as typed.
fn try_form(op: &Operation, params: &[&Value], body_type: &str, body_example: &str) -> Markup {
    let id = op.id();
    html! {
        details.try {
            summary { "Try it" }
            form.try data-method=(op.method.to_uppercase()) data-path=(op.path) data-body-type=(body_type) {
                @for p in params {
                    @let name = text(&p["name"]);
                    @let field = format!("{id}-{}-{name}", text(&p["in"]));
                    label for=(field) { (name) " (" (text(&p["in"])) ")" }
                    input id=(field) data-in=(text(&p["in"])) data-name=(name)
                        value=(p["example"].as_str().map(str::to_owned).or_else(|| p["example"].as_u64().map(|n| n.to_string())).unwrap_or_default())
                        required[p["required"] == true];
                }
                @if !body_type.is_empty() {
                    @let field = format!("{id}-body");
                    label for=(field) { "Body (" (body_type) ")" }
                    @if body_type.starts_with("application/") && body_type.ends_with("json") {
                        textarea id=(field) data-body rows="8" { (body_example) }
                    } @else {
                        input id=(field) type="file" data-body-file;
                    }
                }
                button type="submit" { "Send" }
                " "
                button type="button" data-stop hidden { "Stop" }
                output aria-live="polite" {}
            }
        }
    }
}

fn schema_section(name: &str, schema: &Value) -> Markup {
    let example = schema["examples"][0].clone();
    html! {
        article.schema id={ "schema-" (name) } {
            h3 { (name) }
            @if let Some(description) = schema["description"].as_str() { p { (description) } }
            (schema_body(schema))
            @if !example.is_null() {
                details { summary { "Example" } pre { (serde_json::to_string_pretty(&example).unwrap_or_default()) } }
            }
        }
    }
}

/// An object's fields as a table; a union's members; anything else by its type.
fn schema_body(schema: &Value) -> Markup {
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    html! {
        @if let Some(properties) = schema["properties"].as_object() {
            table {
                thead { tr { th scope="col" { "field" } th scope="col" { "type" } th scope="col" { "description" } } }
                tbody {
                    @for (field, property) in properties {
                        tr {
                            td { code { (field) } @if required.contains(&field.as_str()) { " *" } }
                            td { (type_of(property)) }
                            td { (text(&property["description"])) }
                        }
                    }
                }
            }
        }
        @for key in ["oneOf", "anyOf", "allOf"] {
            @if let Some(members) = schema[key].as_array() {
                p { (key) ":" }
                ul { @for member in members { li { (type_of(member)) @if member["properties"].is_object() { (schema_body(member)) } } } }
            }
        }
        @if schema["properties"].is_null() && schema["oneOf"].is_null() && schema["anyOf"].is_null() && schema["allOf"].is_null() {
            p { (type_of(schema)) }
        }
    }
}

/// A schema in a few words, with links to the named schemas it uses.
fn type_of(schema: &Value) -> Markup {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return html! { a href={ "#schema-" (name) } { (name) } };
    }
    for (key, joiner) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
        if let Some(members) = schema[key].as_array() {
            return html! { @for (i, m) in members.iter().enumerate() { @if i > 0 { (joiner) } (type_of(m)) } };
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let words: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        return html! { (words.join(" | ")) };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    html! {
        @for (i, t) in types.iter().enumerate() {
            @if i > 0 { " | " }
            @if *t == "array" { "array of " (type_of(&schema["items"])) }
            @else if *t == "object" && schema["additionalProperties"].is_object() { "map of " (type_of(&schema["additionalProperties"])) }
            @else { (t) }
        }
        @if let Some(format) = schema["format"].as_str() { " (" (format) ")" }
        @if types.is_empty() { "any" }
    }
}

/// The example laid on a named schema (`#/components/schemas/Name`).
fn example_of<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    doc["components"]["schemas"][name]["examples"].get(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_operation_and_links_only_here() {
        let doc = serde_json::to_value(super::super::ops::ApiDoc::openapi()).unwrap();
        let page = render(&doc).into_string();
        for (_, _, ops) in by_tag(&doc) {
            for op in ops {
                assert!(page.contains(&format!("id=\"{}\"", op.id())), "{} has no section", op.id());
            }
        }
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "the page loads nothing from elsewhere");
    }
}
