//! The built-in plugins through the host, as the platform calls them: the default
//! validator on real WARs, the Tomcat template, what `GET /api/v1/plugins` shows,
//! and what a bad plugin configuration does to startup.

use crate::support;

use std::process::Command;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{builtin_plugins, fixture, TestApp};
use warship_host::domain::EnvSpec;
use warship_host::plugins::types;

fn spec(tomcat: &str, jdk: &str) -> EnvSpec {
    serde_json::from_value(json!({"name": "shop", "tomcat": tomcat, "jdk": jdk, "replicas": 2})).unwrap()
}

#[tokio::test]
async fn the_default_validator_refuses_a_javax_war_on_tomcat_10_and_says_what_to_do() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let upload = app.upload(&token, "gk", "gatekeeper.war", std::fs::read(fixture("gatekeeper-0.8.1.war")).unwrap()).await;
    assert_eq!(upload.body["servlet_api"], "javax");
    let alice = warship_host::users::UserName::parse("alice").unwrap();
    let war = app.state.wars.get(&alice, "gk", "gatekeeper.war").await.unwrap();

    let on_10 = app.state.plugins.validate_deploy(&app.state.config, &spec("10.1", "17"), &war).await.unwrap();
    assert_eq!(on_10.len(), 1, "{on_10:?}");
    assert_eq!(on_10[0].code, "war.servlet_api.javax_on_jakarta_tomcat");
    assert_eq!(on_10[0].field, "war");
    let message = &on_10[0].message;
    assert!(message.contains("jakarta") && message.contains("Tomcat 9"), "says why and what to do: {message}");

    let on_9 = app.state.plugins.validate_deploy(&app.state.config, &spec("9.0", "11"), &war).await.unwrap();
    assert_eq!(on_9, vec![], "a javax WAR is fine on Tomcat 9");

    let sample = app.upload(&token, "sample", "sample.war", std::fs::read(fixture("sample.war")).unwrap()).await;
    assert_eq!(sample.body["servlet_api"], "jakarta");
    let war = app.state.wars.get(&alice, "sample", "sample.war").await.unwrap();
    let on_9 = app.state.plugins.validate_deploy(&app.state.config, &spec("9.0", "11"), &war).await.unwrap();
    assert_eq!(on_9.iter().map(|v| v.code.as_str()).collect::<Vec<_>>(), ["war.servlet_api.jakarta_on_javax_tomcat"]);
}

#[test]
fn the_tomcat_template_renders_a_run_free_dockerfile() {
    let plugins = builtin_plugins();
    let none = || types::ResourceAmounts { cpu: None, memory: None };
    let context = types::BuildContext {
        env: types::EnvSpec {
            name: "shop".into(),
            tomcat: "10.1".into(),
            jdk: "17".into(),
            replicas: 2,
            node_num: None,
            jvm_options: "-Xmx512m -Dgreeting=\"hi\"".into(),
            env: vec![],
            resources: types::Resources { requests: none(), limits: none() },
            context_path: "/shop/v2".into(),
        },
        war: types::WarFacts {
            app: "shop".into(),
            file: "shop-1.0.war".into(),
            size: 4704,
            sha256: "ab".repeat(32),
            servlet_api: types::ServletApi::Jakarta,
            has_web_xml: true,
            entries: 10,
        },
        base_image: "127.0.0.1:5000/warship/tomcat:10.1-jdk17".into(),
        base_user: Some("1000:1000".into()),
        war_file: "shop-1.0.war".into(),
        app_version: "1.0".into(),
        user: "alice".into(),
    };
    let dockerfile = plugins.template().expect("a template is loaded").render_dockerfile(&context).unwrap();
    let lines: Vec<&str> = dockerfile.lines().collect();
    assert_eq!(lines[1], "FROM 127.0.0.1:5000/warship/tomcat:10.1-jdk17");
    assert!(lines.contains(&"COPY shop-1.0.war /usr/local/tomcat/webapps/shop#v2.war"), "{dockerfile}");
    assert!(lines.contains(&r#"ENV JAVA_OPTS="-Xmx512m -Dgreeting=\"hi\"""#), "{dockerfile}");
    assert!(lines.contains(&"EXPOSE 8080"), "{dockerfile}");
    assert_eq!(lines.last(), Some(&"USER 1000:1000"));
    let label = lines.iter().find(|l| l.starts_with("LABEL")).unwrap();
    assert!(label.contains(&format!("dev.warship.war.sha256=\"{}\"", "ab".repeat(32))), "{label}");
    assert!(!dockerfile.contains("RUN"), "{dockerfile}");
}

#[tokio::test]
async fn the_plugins_endpoint_shows_what_is_loaded() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    assert_eq!(app.call(Method::GET, "/api/v1/plugins", None, None).await.status, StatusCode::UNAUTHORIZED);
    let reply = app.call(Method::GET, "/api/v1/plugins", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let loaded = reply.body["loaded"].as_array().unwrap();
    let names: Vec<(&str, &str)> = loaded.iter().map(|p| (p["name"].as_str().unwrap(), p["kind"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [("validator-default", "validator"), ("template-tomcat", "template"), ("recreate", "strategy"), ("rolling", "strategy"), ("canary", "strategy"), ("bluegreen", "strategy")]
    );
    for plugin in loaded {
        assert_eq!(plugin["version"], "0.1.0");
        assert_eq!(plugin["contract"], "0.2.0", "the built-ins speak the newest contract: {plugin}");
        assert_eq!(plugin["sha256"].as_str().unwrap().len(), 64);
        assert_eq!((plugin["memory_mb"].as_u64(), plugin["deadline_ms"].as_u64()), (Some(64), Some(1000)));
        assert!(plugin["source"].as_str().unwrap().starts_with("builtin:"));
    }
    assert!(loaded[4]["settings_schema"]["properties"]["steps"].is_object(), "{}", loaded[4]);
    assert_eq!(reply.body["skipped"], json!([]));
}

fn check_config(toml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.toml");
    std::fs::write(&path, format!("[store]\ndata_dir = \"{}\"\n{toml}", dir.path().join("data").display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warship")).args(["check-config", "--config", path.to_str().unwrap()]).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_required_plugin_that_cannot_load_stops_startup_naming_it_and_the_key() {
    let (ok, said) = check_config("[[plugins]]\nname = \"canary\"\nkind = \"strategy\"\nsource = \"builtin:strategy-canary\"\nsettings = { stepz = [] }\n");
    assert!(!ok);
    assert!(said.contains("plugin canary") && said.contains("stepz"), "{said}");

    let (ok, said) = check_config("[[plugins]]\nname = \"mine\"\nkind = \"strategy\"\nsource = \"builtin:strategy-linear\"\n");
    assert!(!ok);
    assert!(said.contains("no built-in plugin is called \"strategy-linear\"") && said.contains("strategy-canary"), "{said}");

    let (ok, said) = check_config("[[plugins]]\nname = \"mine\"\nkind = \"strategy\"\nsource = \"/nonexistent/mine.wasm\"\n");
    assert!(!ok);
    assert!(said.contains("plugin mine: cannot read /nonexistent/mine.wasm"), "{said}");

    let (ok, said) = check_config("[[plugins]]\nname = \"v\"\nkind = \"validator\"\nsource = \"builtin:strategy-canary\"\n");
    assert!(!ok);
    assert!(said.contains("plugin v: not a validator component"), "{said}");
}

#[tokio::test]
async fn an_optional_plugin_that_cannot_load_is_skipped_and_shown() {
    let app = TestApp::embedded_with(|c| {
        let mut plugins = warship_host::plugins::default_plugin_configs();
        plugins.push(warship_host::config::PluginConfig {
            name: "experimental".into(),
            kind: warship_host::config::PluginKind::Strategy,
            source: "/nonexistent/experimental.wasm".into(),
            settings: Default::default(),
            overridable: Vec::new(),
            required: false,
            memory_mb: None,
            deadline_ms: None,
        });
        c.plugins = Some(plugins);
    })
    .await;
    let token = app.user("alice").await;
    let reply = app.call(Method::GET, "/api/v1/plugins", Some(&token), None).await;
    assert_eq!(reply.body["loaded"].as_array().unwrap().len(), 6);
    assert_eq!(reply.body["skipped"][0]["name"], "experimental");
    assert!(reply.body["skipped"][0]["reason"].as_str().unwrap().contains("cannot read"), "{}", reply.text);
}

#[tokio::test]
async fn validator_settings_from_platform_toml_apply() {
    let app = TestApp::embedded_with(|c| {
        let mut plugins = warship_host::plugins::default_plugin_configs();
        plugins[0].settings = toml::from_str("max-replicas = 3").unwrap();
        c.plugins = Some(plugins);
    })
    .await;
    let token = app.user("alice").await;
    let body = json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 4});
    let reply = app.call(Method::POST, "/api/v1/envs", Some(&token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_fields(), ["replicas"]);
    assert!(reply.body["errors"][0]["message"].as_str().unwrap().contains("between 1 and 3"), "{}", reply.text);
}

#[test]
fn check_config_warns_when_the_default_strategy_or_a_template_is_not_loaded() {
    // Naming [[plugins]] replaces the built-in list: a team adding its own strategy alone
    // would lose rolling (the default) and the template without a word otherwise.
    let (ok, said) = check_config("[[plugins]]\nname = \"canary\"\nkind = \"strategy\"\nsource = \"builtin:strategy-canary\"\n");
    assert!(ok, "{said}");
    assert!(said.contains("warning: deploys.default_strategy = \"rolling\" names no loaded strategy (loaded: canary)"), "{said}");
    assert!(said.contains("warning: no template plugin is loaded"), "{said}");
    let (ok, said) = check_config("");
    assert!(ok && !said.contains("warning"), "the built-ins leave no gap: {said}");
}
