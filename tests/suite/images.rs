//! WAR → image against real parts: Debian's docker-registry on loopback, real Tomcat
//! bases (Maven Central's Tomcat on this machine's JDK) pushed into it, real WARs, and
//! podman running what was built.

use crate::support;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;
use warship_host::config::Config;
use warship_host::registry::RegistryClient;

fn use_registry(config: &mut Config, registry: &Registry) {
    config.registry.push = registry.addr.clone();
    config.registry.pull = registry.addr.clone();
    config.registry.insecure = true;
}

/// A user with an env on `tomcat`/`jdk` and a WAR uploaded as `shop/<file>`.
async fn user_with_env_and_war(app: &TestApp, user: &str, tomcat: &str, war: &str) -> (String, Value) {
    let token = app.user(user).await;
    let env = json!({ "name": "shop", "tomcat": tomcat, "jdk": "17", "replicas": 1, "jvm_options": "-Xmx256m -Dwarship.test=yes" });
    let created = app.call(Method::POST, "/api/v1/envs", Some(&token), Some(env)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uploaded = app.upload(&token, "shop", war, std::fs::read(fixture(war)).unwrap()).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    (token, uploaded.body)
}

async fn build(app: &TestApp, token: &str, war: &str, version: &str) -> support::Reply {
    let request = json!({ "war": war, "env": "shop", "version": version });
    app.call(Method::POST, "/api/v1/images?wait=true", Some(token), Some(request)).await
}

struct Pulled {
    manifest: Value,
    config: Value,
    /// The last layer, the one warship added.
    layer: Vec<u8>,
}

async fn pull_back(config: &Config, repository: &str, reference: &str) -> Pulled {
    let client = RegistryClient::from_config(&config.registry).unwrap();
    let session = client.session(&config.registry.push, vec![format!("repository:{repository}:pull")], Arc::new(|_| {}));
    let manifest = session.manifest(repository, reference).await.unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(&session.blob(repository, config_digest, 1 << 20).await.unwrap()).unwrap();
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_owned();
    let layer = session.blob(repository, &last, 64 << 20).await.unwrap().to_vec();
    Pulled { manifest, config, layer }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_war_becomes_an_image_on_the_tomcat_the_env_asked_for_and_serves() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let app = TestApp::embedded_with(|c| use_registry(c, &registry)).await;
    let (token, war) = user_with_env_and_war(&app, "alice", "10.1", "sample.war").await;

    let built = build(&app, &token, "shop/sample.war", "1.0").await;
    assert_eq!(built.status, StatusCode::CREATED, "{}", built.text);
    let digest = built.body["digest"].as_str().unwrap().to_owned();
    assert_eq!(built.body["status"], "built");
    assert_eq!(built.body["tagged"], format!("{}/alice/shop:1.0", registry.addr));
    assert_eq!(built.body["image"], format!("{}/alice/shop@{digest}", registry.addr));
    assert_eq!(built.body["builder"], "oci");
    assert!(built.body["base"].as_str().unwrap().contains("warship/tomcat@sha256:"), "{}", built.text);

    // Its events replay from the start: steps, bytes pushed, and the final record.
    let events = app.call(Method::GET, &format!("/api/v1/images/{}/events", built.body["id"].as_str().unwrap()), Some(&token), None).await;
    let names: Vec<&str> = events.text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"step"), "{}", events.text);
    assert!(names.contains(&"bytes"), "{}", events.text);
    assert_eq!(names.last(), Some(&"built"), "{}", events.text);
    assert!(events.text.contains(&digest), "the final event carries the record");

    // What the registry holds: the base's layers, then one plain tar with the WAR.
    let pulled = pull_back(&app.state.config, "alice/shop", "1.0").await;
    let base = pull_back(&app.state.config, "warship/tomcat", "10.1-jdk17").await;
    let layers = pulled.manifest["layers"].as_array().unwrap();
    let base_layers = base.manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers.len() + 1);
    for (ours, theirs) in layers.iter().zip(base_layers) {
        assert_eq!(ours["digest"], theirs["digest"], "base layers are reused as they are");
    }
    assert_eq!(layers.last().unwrap()["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    let diff_ids = pulled.config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.last().unwrap(), &layers.last().unwrap()["digest"], "an uncompressed layer is its own diff id");
    let labels = &pulled.config["config"]["Labels"];
    assert_eq!(labels["dev.warship.war.sha256"], war["sha256"]);
    assert_eq!(labels["org.opencontainers.image.version"], "1.0");
    let env: Vec<&str> = pulled.config["config"]["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(env.contains(&"JAVA_OPTS=-Xmx256m -Dwarship.test=yes"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("CATALINA_HOME=")), "the base's ENV is kept: {env:?}");
    assert_eq!(pulled.config["config"]["Cmd"], base.config["config"]["Cmd"]);
    assert!(pulled.config["history"].as_array().unwrap().last().unwrap()["created_by"].as_str().unwrap().starts_with("COPY sample.war"));

    let mut archive = tar::Archive::new(&pulled.layer[..]);
    let mut entries = archive.entries().unwrap();
    let mut entry = entries.next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str().unwrap(), "usr/local/tomcat/webapps/ROOT.war");
    assert_eq!((entry.header().uid().unwrap(), entry.header().gid().unwrap(), entry.header().mtime().unwrap()), (0, 0, 1));
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), war["sha256"].as_str().unwrap(), "the layer holds the uploaded bytes");
    drop(entry);
    assert!(entries.next().is_none(), "one file, no directory entries that would change the base's owners");

    // The same WAR on the same base gives the same digest; the record is a new one.
    let again = build(&app, &token, "sample.war", "1.0").await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["digest"], json!(digest));
    assert_ne!(again.body["id"], built.body["id"]);
    let listed = app.call(Method::GET, "/api/v1/images", Some(&token), None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2);

    // And the image serves the WAR's servlet, on Tomcat 10.1.
    let container = run_container(built.body["image"].as_str().unwrap());
    let page = container.get_when_up("/hello", Duration::from_secs(120)).await;
    assert!(page.contains("Hello"), "{page}");
    let info = container.get_when_up("/", Duration::from_secs(5)).await;
    assert!(info.contains("Sample"), "{info}");
    let logs = container.logs();
    assert!(logs.contains("Apache Tomcat/10.1"), "not the Tomcat the env asked for:\n{logs}");
    assert!(logs.contains("-Dwarship.test=yes"), "JAVA_OPTS did not reach the JVM:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javax_war_runs_on_tomcat_9_and_is_refused_on_10() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let app = TestApp::embedded_with(|c| {
        use_registry(c, &registry);
        c.catalog.push(warship_host::config::CatalogEntry {
            tomcat: "9.0".into(),
            jdk: "17".into(),
            base_image: "warship/tomcat:9.0-jdk17".into(),
            user: None,
        });
    })
    .await;
    let (token, _) = user_with_env_and_war(&app, "bob", "10.1", "gatekeeper-0.8.1.war").await;
    let refused = build(&app, &token, "gatekeeper-0.8.1.war", "0.8.1").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert_eq!(refused.problem_code(), "image.invalid");
    assert!(refused.text.contains("javax"), "{}", refused.text);
    assert!(registry.tags("bob/shop").await.is_empty(), "nothing was pushed");

    let patched = app.call(Method::PATCH, "/api/v1/envs/shop", Some(&token), Some(json!({ "tomcat": "9.0" }))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let built = build(&app, &token, "gatekeeper-0.8.1.war", "0.8.1").await;
    assert_eq!(built.status, StatusCode::CREATED, "{}", built.text);
    let container = run_container(built.body["image"].as_str().unwrap());
    let logs = container.log_when("Deployment of web application archive", Duration::from_secs(120)).await;
    assert!(logs.contains("Apache Tomcat/9.0"), "{logs}");
    assert!(logs.contains("ROOT.war"), "{logs}");
}

#[tokio::test]
async fn bad_requests_name_the_field_and_other_users_see_nothing() {
    let app = TestApp::embedded().await;
    let token = app.user("carol").await;
    let env = json!({ "name": "shop", "tomcat": "10.1", "jdk": "17" });
    assert_eq!(app.call(Method::POST, "/api/v1/envs", Some(&token), Some(env)).await.status, StatusCode::CREATED);
    app.upload(&token, "shop", "sample.war", std::fs::read(fixture("sample.war")).unwrap()).await;

    let bad_version = build(&app, &token, "shop/sample.war", "1.0 final").await;
    assert_eq!(bad_version.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_version.problem_code(), "image.invalid");
    assert_eq!(bad_version.error_fields(), ["version"]);

    let no_war = build(&app, &token, "nope.war", "1").await;
    assert_eq!(no_war.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_war.error_fields(), ["war"]);

    let missing_field = app.call(Method::POST, "/api/v1/images", Some(&token), Some(json!({ "war": "sample.war", "env": "shop" }))).await;
    assert_eq!(missing_field.status, StatusCode::BAD_REQUEST);
    assert!(missing_field.text.contains("version"), "{}", missing_field.text);

    let stranger = app.user("dave").await;
    let theirs = build(&app, &stranger, "shop/sample.war", "1").await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.problem_code(), "env.not_found");
    let unknown = app.call(Method::GET, "/api/v1/images/0123456789abcdef", Some(&token), None).await;
    assert_eq!(unknown.problem_code(), "image.not_found");
}

/// A stored WAR cut short (a machine crash without fsync): the build says the stored
/// file is damaged and how to repair it; uploading the same bytes again repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_blob_fails_the_build_clearly_and_a_reupload_of_the_same_bytes_repairs_it() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let app = TestApp::embedded_with(|c| use_registry(c, &registry)).await;
    let (token, war) = user_with_env_and_war(&app, "alice", "10.1", "sample.war").await;
    let sha = war["sha256"].as_str().unwrap();
    let blob = app.state.config.store.data_dir.join("wars").join("sha256").join(&sha[..2]).join(sha);
    let whole = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &whole[..whole.len() / 2]).unwrap();

    let failed = build(&app, &token, "shop/sample.war", "1.0").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);
    let detail = failed.body["detail"].as_str().unwrap();
    assert!(detail.contains("is shorter than") && detail.contains("upload the WAR again"), "{}", failed.text);

    let again = app.upload(&token, "shop", "sample.war", std::fs::read(fixture("sample.war")).unwrap()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(std::fs::read(&blob).unwrap(), whole, "the blob holds the uploaded bytes again");
    let built = build(&app, &token, "shop/sample.war", "1.0").await;
    assert_eq!(built.status, StatusCode::CREATED, "{}", built.text);
}
