//! The Tomcat check on real apps: real WARs from Maven Central (Jolokia's agent, javax
//! 1.7.2 and jakarta 2.0.0, whose code is all in WEB-INF/lib) and a Jakarta app bundling
//! commons-logging 1.2 (whose optional `ServletContextCleaner` references javax.servlet)
//! are judged by what Tomcat will load, say what decided it, and are refused only where
//! they cannot start. On the real node, that Jakarta app runs on Tomcat 10.1 (where
//! the old rule, which counted every library reference, called it mixed and refused it),
//! and Jersey's javax hello-world WAR from Maven Central runs on Tomcat 9.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::host::{deploy, deploy_to, Host, RealNode};
use support::{fixture, repackaged_war, versioned_war, TestApp};
use warship_host::domain::EnvSpec;

/// An env on `tomcat` with the JDK the tests' catalog pairs it with.
fn spec(tomcat: &str) -> EnvSpec {
    let jdk = if tomcat == "9.0" { "11" } else { "17" };
    serde_json::from_value(json!({"name": "shop", "tomcat": tomcat, "jdk": jdk, "replicas": 1})).unwrap()
}

/// A Jakarta app (compiled here, its classes in WEB-INF/lib/app.jar) with Maven Central's
/// commons-logging 1.2 beside it.
fn jakarta_app_with_commons_logging(dir: &std::path::Path) -> std::path::PathBuf {
    let app = versioned_war(dir, "7");
    repackaged_war(dir, &app, "app-with-commons-logging", &[fixture("commons-logging-1.2.jar")])
}

#[tokio::test]
async fn real_wars_are_judged_by_what_tomcat_loads_and_say_what_decided_it() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let alice = warship_host::users::UserName::parse("alice").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, std::path::PathBuf, &str, &str, [&[&str]; 2]); 3] = [
        (
            "jolokia-war-1.7.2.war",
            fixture("jolokia-war-1.7.2.war"),
            "javax",
            "javax.servlet by what Tomcat loads: org.jolokia.http.AgentServlet (servlet in web.xml, WEB-INF/lib/jolokia-core-1.7.2.jar)",
            [&[], &["war.servlet_api.javax_on_jakarta_tomcat"]],
        ),
        (
            "jolokia-agent-war-2.0.0.war",
            fixture("jolokia-agent-war-2.0.0.war"),
            "jakarta",
            "jakarta.servlet by what Tomcat loads: org.jolokia.server.core.http.AgentServlet (servlet in web.xml, WEB-INF/lib/jolokia-server-core-2.0.0.jar)",
            [&["war.servlet_api.jakarta_on_javax_tomcat"], &[]],
        ),
        (
            "app-with-commons-logging.war",
            jakarta_app_with_commons_logging(dir.path()),
            "jakarta",
            "jakarta.servlet by what Tomcat loads: Version (annotated @WebServlet, WEB-INF/lib/app.jar); javax.servlet appears only in \
             libraries, where nothing Tomcat loads uses it (weak evidence, not counted): WEB-INF/lib/commons-logging-1.2.jar",
            [&["war.servlet_api.jakarta_on_javax_tomcat"], &[]],
        ),
    ];
    for (file, path, api, evidence, [on_9, on_10]) in cases {
        let upload = app.upload(&token, "real", file, std::fs::read(&path).unwrap()).await;
        assert_eq!(upload.status, 201, "{file}: {}", upload.body);
        assert_eq!((upload.body["servlet_api"].as_str(), upload.body["servlet_api_source"].as_str()), (Some(api), Some("entry-points")), "{file}: {}", upload.body);
        assert_eq!(upload.body["servlet_api_evidence"], evidence, "{file}");
        let war = app.state.wars.get(&alice, "real", file).await.unwrap();
        for (tomcat, refused) in [("9.0", on_9), ("10.1", on_10)] {
            let said = app.state.plugins.validate_deploy(&app.state.config, &spec(tomcat), &war).await.unwrap();
            let codes: Vec<&str> = said.iter().map(|v| v.code.as_str()).collect();
            assert_eq!(codes, refused, "{file} on Tomcat {tomcat}: {said:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_real_node_apps_run_where_tomcat_can_load_them_and_are_refused_where_it_cannot() {
    let RealNode { cluster, dir, host, alice, .. } = &RealNode::start().await;
    let (status, created) = host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{created}");
    host.upload(alice, "app", "app.war", &jakarta_app_with_commons_logging(dir.path())).await;
    host.upload(alice, "jolokia", "jolokia-war-1.7.2.war", &fixture("jolokia-war-1.7.2.war")).await;

    // Tomcat 10.1 cannot load Jolokia 1.7's javax.servlet agent: refused before any image is built.
    let (status, refused) = host.post("/api/v1/envs/shop/deploys", alice, json!({"war": "jolokia-war-1.7.2.war", "version": "1.7.2"})).await;
    assert_eq!(status, 422, "{refused}");
    let codes: Vec<&str> = refused["errors"].as_array().map(|e| e.iter().filter_map(|v| v["code"].as_str()).collect()).unwrap_or_default();
    assert_eq!(codes, ["war.servlet_api.javax_on_jakarta_tomcat"], "{refused}");

    // Tomcat 10.1 runs it, commons-logging and all: the servlet answers at the env's URL.
    let id = deploy(host, alice, json!({"war": "app.war", "version": "7", "strategy": "rolling"})).await;
    let done = host.wait_deploy(alice, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(answer(cluster, host, alice, "shop", "version").await, "version 7");

    // Tomcat 9 runs Jersey's javax hello-world from Maven Central. It answers only at
    // /helloworld, so that is where its env's readiness probe asks.
    let (status, created) = host
        .post("/api/v1/envs", alice, json!({"name": "old", "tomcat": "9.0", "jdk": "17", "replicas": 1, "health_path": "/helloworld"}))
        .await;
    assert_eq!(status, 201, "{created}");
    host.upload(alice, "jersey", "helloworld-webapp-2.34.war", &fixture("helloworld-webapp-2.34.war")).await;
    let (_, war) = host.get("/api/v1/wars/jersey/helloworld-webapp-2.34.war", alice).await;
    assert_eq!((war["servlet_api"].as_str(), war["servlet_api_source"].as_str()), (Some("javax"), Some("entry-points")), "{war}");
    let evidence = war["servlet_api_evidence"].as_str().unwrap_or_default();
    assert!(evidence.contains("org.glassfish.jersey.servlet.ServletContainer (servlet in web.xml, WEB-INF/lib/jersey-container-servlet-core-2.34.jar)"), "{evidence}");
    let id = deploy_to(host, alice, "old", json!({"war": "helloworld-webapp-2.34.war", "version": "2.34", "strategy": "rolling"})).await;
    let done = host.wait_deploy(alice, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(answer(cluster, host, alice, "old", "helloworld").await, "Hello World!");
}

/// What `env`'s URL answers at `path`, once it answers 2xx (at most 30 s).
async fn answer(cluster: &support::KubeCluster, host: &Host, token: &str, env: &str, path: &str) -> String {
    let (_, status) = host.get(&format!("/api/v1/envs/{env}"), token).await;
    let url = format!("{}{path}", status["url"].as_str().unwrap_or_else(|| panic!("{env} has a URL: {status}")));
    let client = cluster.gateway_client(&url);
    let mut last = Value::Null;
    for _ in 0..60 {
        match client.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => return answer.text().await.unwrap(),
            Ok(answer) => last = json!(answer.status().as_u16()),
            Err(e) => last = json!(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{url} never answered the app: {last}");
}
