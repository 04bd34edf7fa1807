//! The served OpenAPI document as the tools people point at it read it: OpenAPI Generator
//! (scripts/openapi-tools installs it, with TypeScript and Redocly CLI) generates a
//! typescript-fetch client from it, tsc builds that client, and the client calls a
//! running host; Redocly's recommended rules find no error in it. Then what generators
//! need of it, checked in Rust, and the reference page at /api/v1/docs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::support::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The app served on a loopback port, as `warship serve` serves it.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = warship_host::console::app(app.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// The folder scripts/openapi-tools installs into (cached; scripts/test installs it beforehand).
fn tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/openapi-tools");
        let out = std::process::Command::new(script).output().unwrap();
        assert!(out.status.success(), "scripts/openapi-tools failed: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Runs a tool to its end (killed if it outlives `limit`), without blocking the host
/// the tool may be calling; its stdout.
async fn run(what: &str, command: &mut tokio::process::Command, limit: Duration) -> String {
    command.kill_on_drop(true).env("REDOCLY_TELEMETRY", "off").env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true");
    command.env("NO_UPDATE_NOTIFIER", "1").env("npm_config_update_notifier", "false");
    let out = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn document(app: &TestApp) -> Value {
    let reply = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

/// `(method, path, operation)` for every operation.
fn operations(doc: &Value) -> Vec<(&'static str, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item[method].is_object() {
                out.push((method, path.as_str(), &item[method]));
            }
        }
    }
    out
}

/// What the generated client does against the host; it prints one JSON line of results.
const SMOKE: &str = r#"
import { Configuration, EnvsApi, DeploysApi, OperationsApi, OriginalApi, WarsApi, ResponseError } from "./index";

declare const process: { argv: string[]; exit(code: number): never };

async function main() {
  const [base, token] = process.argv.slice(2);
  const config = new Configuration({ basePath: base, accessToken: async () => token });
  const envs = new EnvsApi(config);
  const results: Record<string, unknown> = {};
  const call = async (name: string, f: () => Promise<unknown>) => {
    try {
      results[name] = { ok: await f() };
    } catch (e) {
      if (e instanceof ResponseError) {
        results[name] = { status: e.response.status, type: e.response.headers.get("content-type"), problem: await e.response.json() };
      } else {
        results[name] = { error: String(e) };
      }
    }
  };
  await call("getHealth", () => new OperationsApi(config).getHealth());
  await call("listCatalog", () => envs.listCatalog());
  await call("createEnv", async () => (await envs.createEnv({ envSpec: { name: "shop", tomcat: "10.1", jdk: "17", replicas: 2 } })).name);
  await call("listEnvs", async () => (await envs.listEnvs({ limit: 10 })).map((e) => e.name));
  await call("getEnv", async () => (await envs.getEnv({ name: "shop" })).replicas);
  await call("updateEnv", async () => (await envs.updateEnv({ name: "shop", envPatch: { replicas: 3 } })).replicas);
  await call("getEnvMissing", () => envs.getEnv({ name: "nope" }));
  await call("legacyCreateEnv", async () => (await new OriginalApi(config).legacyCreateEnv({
    legacyEnv: { name: "legacy", tomcatV: "10.1", jdkV: "17", nodeNum: "1" } })).status);
  await call("listDeploys", async () => (await new DeploysApi(config).listDeploys({ name: "shop" })).length);
  await call("listWars", async () => (await new WarsApi(config).listWars({})).length);
  console.log(JSON.stringify(results));
}

main().catch((e) => { console.error(e); process.exit(1); });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_typescript_client_builds_and_calls_a_running_host() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let doc = document(&app).await;
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("openapi.json");
    std::fs::write(&spec, doc.to_string()).unwrap();
    let client = work.path().join("client");

    let generate = run(
        "openapi-generator-cli generate",
        tokio::process::Command::new("java")
            .args([
                "-jar",
                tools().join("openapi-generator-cli.jar").to_str().unwrap(),
                "generate",
                "-g",
                "typescript-fetch",
            ])
            .args([
                "-i",
                spec.to_str().unwrap(),
                "-o",
                client.to_str().unwrap(),
                "--additional-properties=supportsES6=true,npmName=warship-client",
            ]),
        Duration::from_secs(120),
    )
    .await;
    assert!(!generate.contains("ERROR"), "the generator reported errors:\n{generate}");
    let mut generated = BTreeSet::new();
    for entry in std::fs::read_dir(client.join("src/apis")).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in source.lines() {
            if let Some(name) =
                line.trim().strip_prefix("async ").and_then(|l| l.split_once("Raw(")).map(|(name, _)| name.to_owned())
            {
                generated.insert(name);
            }
        }
    }
    let ids: BTreeSet<String> =
        operations(&doc).iter().map(|(_, _, op)| op["operationId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(generated, ids, "one generated method per operation, named by its operationId");

    std::fs::write(client.join("src/smoke.ts"), SMOKE).unwrap();
    run(
        "tsc",
        tokio::process::Command::new(tools().join("node_modules/.bin/tsc")).current_dir(&client).args([
            "-p",
            "tsconfig.json",
            "--lib",
            "es2020,dom",
        ]),
        Duration::from_secs(120),
    )
    .await;
    let out = run(
        "the generated client",
        tokio::process::Command::new("node").arg(client.join("dist/smoke.js")).args([&base, &token]),
        Duration::from_secs(60),
    )
    .await;
    let results: Value =
        serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {out}"));

    assert_eq!(results["getHealth"]["ok"]["status"], "ok");
    let catalog = results["listCatalog"]["ok"].as_array().unwrap_or_else(|| panic!("{results}"));
    assert!(catalog.iter().any(|pair| pair["tomcat"] == "10.1" && pair["baseImage"].is_string()), "{results}");
    assert_eq!(results["createEnv"]["ok"], "shop", "{results}");
    assert_eq!(results["listEnvs"]["ok"], serde_json::json!(["shop"]));
    assert_eq!(results["getEnv"]["ok"], 2);
    assert_eq!(results["updateEnv"]["ok"], 3);
    let missing = &results["getEnvMissing"];
    assert_eq!(
        (missing["status"].as_u64(), missing["type"].as_str()),
        (Some(404), Some("application/problem+json")),
        "{results}"
    );
    assert_eq!(missing["problem"]["code"], "env.not_found");
    assert_eq!(results["legacyCreateEnv"]["ok"], "created", "{results}");
    assert_eq!(results["listDeploys"]["ok"], 0);
    assert_eq!(results["listWars"]["ok"], 0);
    let called = results.as_object().unwrap();
    let answered = called.values().filter(|r| r.get("ok").is_some() || r.get("problem").is_some()).count();
    println!(
        "openapi-generator typescript-fetch: {} operations generated, client built with tsc, {answered} of {} calls answered as expected",
        generated.len(),
        called.len()
    );
}

#[tokio::test]
async fn the_document_passes_redocly_lint_with_no_error() {
    let app = TestApp::embedded().await;
    let doc = document(&app).await;
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("openapi.json");
    std::fs::write(&spec, doc.to_string()).unwrap();
    // No config file: Redocly's built-in `recommended` rules, unchanged.
    let mut lint = tokio::process::Command::new(tools().join("node_modules/.bin/redocly"));
    lint.current_dir(work.path()).args(["lint", "openapi.json", "--format=json"]);
    lint.kill_on_drop(true).env("REDOCLY_TELEMETRY", "off").env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true");
    // Exits non-zero when it finds errors; the report says which.
    let out = tokio::time::timeout(Duration::from_secs(60), lint.output())
        .await
        .expect("redocly lint took over 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout[stdout.find('{').unwrap_or(0)..])
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let problems: Vec<String> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{} {}: {} at {}", p["severity"], p["ruleId"], p["message"], p["location"][0]["pointer"]))
        .collect();
    let (errors, warnings) =
        (report["totals"]["errors"].as_u64().unwrap(), report["totals"]["warnings"].as_u64().unwrap());
    println!("redocly lint (recommended): {errors} errors, {warnings} warnings\n{}", problems.join("\n"));
    assert_eq!(errors, 0, "{}", problems.join("\n"));
}

#[tokio::test]
async fn the_document_declares_every_operation_parameter_and_answer() {
    let app = TestApp::embedded().await;
    let doc = document(&app).await;
    let mut seen = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(seen.insert(id.to_owned()), "operationId {id} repeats");
        assert!(
            id.chars().next().unwrap().is_ascii_lowercase() && id.chars().all(|c| c.is_ascii_alphanumeric()),
            "{id} is not camelCase"
        );

        let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
        let declared = |name: &str, place: &str| params.iter().any(|p| p["name"] == name && p["in"] == place);
        for segment in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            assert!(declared(segment, "path"), "{method} {path} does not declare its path parameter {segment}");
        }
        let answers = op["responses"].as_object().unwrap();
        let bearer = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if bearer {
            for status in ["401", "429", "503"] {
                assert!(answers.contains_key(status), "{method} {path} behind a token does not list {status}");
            }
        }
        for (status, answer) in answers {
            if status.starts_with(['4', '5']) {
                let problem = &answer["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(problem, "#/components/schemas/Problem", "{method} {path} {status} is not a problem");
            }
        }
        if path.ends_with("/events") {
            let stream = &answers["200"]["content"]["text/event-stream"];
            assert!(stream["schema"]["$ref"].is_string(), "{path} does not say what its events carry");
            assert!(declared("Last-Event-ID", "header"), "{path} does not declare Last-Event-ID");
        }
    }
    for (path, params) in [
        ("/api/v1/envs", &["limit", "cursor"][..]),
        ("/api/v1/images", &["limit", "cursor"][..]),
        ("/api/v1/envs/{name}/logs", &["pod", "follow", "tail"][..]),
    ] {
        let declared: Vec<&str> = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for param in params {
            assert!(declared.contains(param), "GET {path} does not declare ?{param}");
        }
    }
    let wait = &doc["paths"]["/api/v1/images"]["post"]["parameters"];
    assert!(wait.as_array().unwrap().iter().any(|p| p["name"] == "wait" && p["in"] == "query"));
    for schema in ["EnvSpec", "DeployRequest", "DeployRecord", "WarRecord", "Problem"] {
        assert!(doc["components"]["schemas"][schema]["examples"][0].is_object(), "{schema} has no example");
    }
}

#[tokio::test]
async fn the_reference_page_names_every_operation_and_loads_nothing_from_elsewhere() {
    let app = TestApp::embedded().await;
    let doc = document(&app).await;
    let page = app.call(Method::GET, "/api/v1/docs", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap();
        assert!(page.text.contains(&format!("id=\"{id}\"")), "the page has no section for {id} ({method} {path})");
    }
    // Every address the page loads or links is this host's own.
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.text.match_indices(attribute) {
            let value = &page.text[at + attribute.len()..];
            let value = &value[..value.find('"').unwrap()];
            assert!(
                value.starts_with('/') || value.starts_with('#') || value.starts_with("data:"),
                "the page refers to {value}"
            );
        }
    }
    for (asset, kind) in [("/api/v1/docs/docs.js", "text/javascript"), ("/api/v1/docs/docs.css", "text/css")] {
        assert!(page.text.contains(asset), "the page does not load {asset}");
        let served = app.call(Method::GET, asset, None, None).await;
        assert_eq!(served.status, StatusCode::OK, "{asset}");
        assert!(served.headers["content-type"].to_str().unwrap().starts_with(kind), "{asset}");
    }
}
