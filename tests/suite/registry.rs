//! The registry client and the oci builder against a real docker-registry when things
//! go wrong: credentials (basic over TLS with a custom CA, bearer tokens from a token
//! service), a registry answering 500 for a while, one killed or frozen mid-push,
//! one out of space; and a multi-platform base.

use crate::support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;
use warship_host::config::RegistryConfig;
use warship_host::domain::Platform;
use warship_host::image::{BuildError, BuildEvent, BuildJob, Builder, ContextFile, OciBuilder, Progress};
use warship_host::registry::{RegistryClient, RegistryError};

const DOCKERFILE: &str = "FROM warship/tomcat:10.1-jdk17\nLABEL test=yes\nCOPY app.war /usr/local/tomcat/webapps/ROOT.war\n";

fn registry_config(addr: &str) -> RegistryConfig {
    RegistryConfig {
        push: addr.into(),
        pull: addr.into(),
        max_attempts: 4,
        first_backoff_ms: 20,
        max_backoff_ms: 200,
        insecure: true,
        ..RegistryConfig::default()
    }
}

fn job(war: &std::path::Path, target: &str, client: &RegistryClient) -> BuildJob {
    BuildJob {
        dockerfile: DOCKERFILE.into(),
        context: BTreeMap::from([("app.war".to_owned(), ContextFile::from_path(war.to_owned()).unwrap())]),
        target: client.resolve(target).unwrap(),
        build_args: BTreeMap::new(),
    }
}

/// Progress recorded for assertions.
fn recorder() -> (Progress, Arc<Mutex<Vec<BuildEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (Arc::new(move |e| sink.lock().unwrap().push(e)), events)
}

fn builder(config: &RegistryConfig) -> (OciBuilder, RegistryClient) {
    let client = RegistryClient::from_config(config).unwrap();
    (OciBuilder::new(client.clone(), Platform::parse("linux/amd64").unwrap()), client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_answering_500_for_a_while_is_retried_visibly() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let proxy = FaultProxy::start(&registry.addr, 3).await;
    let (builder, client) = builder(&registry_config(&proxy.addr));
    let (progress, events) = recorder();
    let built = builder.build(&job(&fixture("sample.war"), "team/app:1", &client), progress).await.unwrap();
    assert_eq!(proxy.failures_injected(), 3);
    let retries: Vec<BuildEvent> = events.lock().unwrap().iter().filter(|e| matches!(e, BuildEvent::Retry { .. })).cloned().collect();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(matches!(&retries[0], BuildEvent::Retry { attempt: 1, error, .. } if error.contains("500")), "{retries:?}");
    assert_eq!(registry.tags("team/app").await, ["1"]);
    assert!(built.digest.starts_with("sha256:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_killed_mid_push_is_unreachable_and_nothing_is_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let war = dir.path().join("big.war");
    big_war(&war, 96);
    let registry = Arc::new(Mutex::new(Registry::start().await));
    let addr = registry.lock().unwrap().addr.clone();
    registry.lock().unwrap().push_base_images();
    let (builder, client) = builder(&registry_config(&addr));
    let (recorded, events) = recorder();
    let killer = registry.clone();
    let progress: Progress = Arc::new(move |e| {
        if matches!(e, BuildEvent::Bytes { .. }) {
            killer.lock().unwrap().kill();
        }
        recorded(e)
    });
    let err = builder.build(&job(&war, "team/app:1", &client), progress).await.unwrap_err();
    assert!(matches!(err, BuildError::Registry(RegistryError::Unreachable { .. })), "{err}");
    assert!(err.to_string().contains(&format!("registry {addr} is unreachable")), "{err}");
    // Blobs are pushed side by side: each request that met the dead registry announces
    // every attempt but its last.
    let mut attempts: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for event in events.lock().unwrap().iter() {
        if let BuildEvent::Retry { what, attempt, .. } = event {
            attempts.entry(what.clone()).or_default().push(*attempt);
        }
    }
    assert!(!attempts.is_empty(), "the failures are announced");
    for (what, seen) in &attempts {
        assert_eq!(seen, &[1, 2, 3], "every attempt but the last is announced, for {what}");
    }

    let mut registry = Arc::try_unwrap(registry).ok().unwrap().into_inner().unwrap();
    registry.resume_serving().await;
    assert!(registry.tags("team/app").await.is_empty(), "a half-pushed image has no tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_registry_times_the_push_out() {
    let dir = tempfile::tempdir().unwrap();
    let war = dir.path().join("big.war");
    big_war(&war, 64);
    let registry = Arc::new(Registry::start().await);
    registry.push_base_images();
    let config = RegistryConfig { push_timeout_secs: 3, ..registry_config(&registry.addr) };
    let (builder, client) = builder(&config);
    let freezer = registry.clone();
    let progress: Progress = Arc::new(move |e| {
        if matches!(e, BuildEvent::Bytes { .. }) {
            freezer.freeze(true);
        }
    });
    let started = std::time::Instant::now();
    let err = builder.build(&job(&war, "team/app:1", &client), progress).await.unwrap_err();
    registry.freeze(false);
    assert!(matches!(err, BuildError::Registry(RegistryError::TimedOut { .. })), "{err}");
    assert!(err.to_string().contains("timed out after 3 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "the deadline holds: {:?}", started.elapsed());
    assert!(registry.tags("team/app").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_with_a_custom_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_chain(dir.path());
    let htpasswd = dir.path().join("htpasswd");
    let made = std::process::Command::new("htpasswd").args(["-Bbc", htpasswd.to_str().unwrap(), "alice", "s3cret"]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut registry = Registry::start().await;
    registry.push_base_images();
    let secured = format!(
        "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: warship-test\n    path: {}\n",
        cert.display(),
        key.display(),
        htpasswd.display()
    );
    registry.reconfigure(&secured, "https").await;
    let tls = |username: Option<&str>, password: &str| RegistryConfig {
        insecure: false,
        ca_cert: Some(ca.clone()),
        username: username.map(String::from),
        password: Some(password.into()),
        ..registry_config(&registry.addr)
    };

    let (builder, client) = builder(&tls(Some("alice"), "wrong"));
    let err = builder.build(&job(&fixture("sample.war"), "team/app:1", &client), Arc::new(|_| {})).await.unwrap_err();
    assert!(matches!(err, BuildError::Registry(RegistryError::CredentialsRefused { .. })), "{err}");

    let (anonymous, client) = self::builder(&tls(None, ""));
    let err = anonymous.build(&job(&fixture("sample.war"), "team/app:1", &client), Arc::new(|_| {})).await.unwrap_err();
    assert!(err.to_string().contains("registry.username"), "says what to configure: {err}");

    let (no_ca, client) = self::builder(&RegistryConfig { ca_cert: None, ..tls(Some("alice"), "s3cret") });
    let err = no_ca.build(&job(&fixture("sample.war"), "team/app:1", &client), Arc::new(|_| {})).await.unwrap_err();
    assert!(matches!(err, BuildError::Registry(RegistryError::Unreachable { ref cause, .. }) if cause.contains("certificate")), "{err}");

    let (builder, client) = self::builder(&tls(Some("alice"), "s3cret"));
    let built = builder.build(&job(&fixture("sample.war"), "team/app:1", &client), Arc::new(|_| {})).await.unwrap();
    let session = client.session(&registry.addr, vec!["repository:team/app:pull".into()], Arc::new(|_| {}));
    assert_eq!(session.manifest("team/app", "1").await.unwrap().digest, built.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_base_resolves_to_the_configured_platform() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let config = registry_config(&registry.addr);
    let client = RegistryClient::from_config(&config).unwrap();
    let session = client.session(&registry.addr, vec!["repository:warship/tomcat:pull,push".into()], Arc::new(|_| {}));
    // An index whose arm64 entry is the same image with another architecture in its config.
    let amd64 = session.manifest("warship/tomcat", "10.1-jdk17").await.unwrap();
    let manifest: Value = serde_json::from_slice(&amd64.bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let mut arm_config: Value = serde_json::from_slice(&session.blob("warship/tomcat", config_digest, 1 << 20).await.unwrap()).unwrap();
    arm_config["architecture"] = json!("arm64");
    arm_config["variant"] = json!("v8");
    let arm_config = bytes::Bytes::from(serde_json::to_vec(&arm_config).unwrap());
    let arm_config_size = arm_config.len();
    let arm_config_digest = session.put_small_blob("warship/tomcat", arm_config).await.unwrap();
    let mut arm = manifest.clone();
    arm["config"]["digest"] = json!(arm_config_digest);
    arm["config"]["size"] = json!(arm_config_size);
    let arm = bytes::Bytes::from(serde_json::to_vec(&arm).unwrap());
    let arm_size = arm.len();
    let arm_digest = session.put_manifest("warship/tomcat", "arm64-only", "application/vnd.oci.image.manifest.v1+json", arm).await.unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_digest, "size": arm_size,
              "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64.digest, "size": amd64.bytes.len(),
              "platform": { "os": "linux", "architecture": "amd64" } },
        ]
    });
    session
        .put_manifest("warship/tomcat", "multi", "application/vnd.oci.image.index.v1+json", bytes::Bytes::from(serde_json::to_vec(&index).unwrap()))
        .await
        .unwrap();

    let mut job = job(&fixture("sample.war"), "team/app:1", &client);
    job.dockerfile = job.dockerfile.replace("10.1-jdk17", "multi");
    for (platform, base_digest) in [("linux/amd64", amd64.digest.clone()), ("linux/arm64/v8", arm_digest.clone())] {
        let builder = OciBuilder::new(client.clone(), Platform::parse(platform).unwrap());
        let built = builder.build(&job, Arc::new(|_| {})).await.unwrap();
        assert!(built.base.as_deref().unwrap().ends_with(&base_digest), "{platform}: {:?}", built.base);
    }
    let builder = OciBuilder::new(client.clone(), Platform::parse("linux/s390x").unwrap());
    let err = builder.build(&job, Arc::new(|_| {})).await.unwrap_err();
    assert!(err.to_string().contains("has no linux/s390x image (it offers linux/arm64, linux/amd64)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_layers_are_mounted_never_uploaded_and_a_known_layer_is_not_sent_again() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let (builder, client) = builder(&registry_config(&registry.addr));
    let blobs_before = registry.blob_count();
    let (progress, events) = recorder();
    // As for uploaded WARs, whose sha256 warship knows: then it remembers the layer.
    let with_sha = |target: &str| {
        use sha2::Digest;
        let mut job = job(&fixture("sample.war"), target, &client);
        let sha = hex::encode(sha2::Sha256::digest(std::fs::read(fixture("sample.war")).unwrap()));
        job.context.get_mut("app.war").unwrap().sha256 = Some(sha);
        job
    };
    builder.build(&with_sha("team/app:1"), progress).await.unwrap();
    // The WAR layer, the config and the manifest are the only new blobs in storage.
    assert_eq!(registry.blob_count(), blobs_before + 3);
    let said: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Step { step, detail } if step == "base" && detail.starts_with("layer") => Some(detail.clone()),
            _ => None,
        })
        .collect();
    assert!(!said.is_empty() && said.iter().all(|d| d.ends_with("mounted")), "{said:?}");
    assert!(!events.lock().unwrap().iter().any(|e| matches!(e, BuildEvent::Bytes { what, .. } if what.starts_with("base"))));

    // The same WAR for another repository: its layer is mounted from the first one.
    let (progress, events) = recorder();
    builder.build(&with_sha("team/other:1"), progress).await.unwrap();
    let events = events.lock().unwrap().clone();
    assert!(!events.iter().any(|e| matches!(e, BuildEvent::Bytes { .. })), "nothing was uploaded again: {events:?}");
    assert!(events.iter().any(|e| matches!(e, BuildEvent::Step { detail, .. } if detail.ends_with("mounted from team/app"))), "{events:?}");
    assert_eq!(registry.blob_count(), blobs_before + 3, "the same image under another name: not one new blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_fails_is_recorded_as_failed_with_its_cause_and_its_events_replay() {
    let mut registry = Registry::start().await;
    registry.push_base_images();
    let app = TestApp::embedded_with(|c| {
        c.registry = registry_config(&registry.addr);
    })
    .await;
    let token = app.user("erin").await;
    let env = json!({ "name": "shop", "tomcat": "10.1", "jdk": "17" });
    assert_eq!(app.call(Method::POST, "/api/v1/envs", Some(&token), Some(env)).await.status, StatusCode::CREATED);
    app.upload(&token, "shop", "sample.war", std::fs::read(fixture("sample.war")).unwrap()).await;
    registry.kill();

    let request = json!({ "war": "sample.war", "env": "shop", "version": "2" });
    let started = app.call(Method::POST, "/api/v1/images", Some(&token), Some(request)).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    assert_eq!(started.body["status"], "building");
    let id = started.body["id"].as_str().unwrap().to_owned();

    // The event stream replays from the start and ends with the failure.
    let events = app.call(Method::GET, &format!("/api/v1/images/{id}/events"), Some(&token), None).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.headers["content-type"], "text/event-stream");
    let names: Vec<&str> = events.text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"step"), "{}", events.text);
    assert_eq!(names.iter().filter(|n| **n == "retry").count(), 3, "{}", events.text);
    assert_eq!(names.last(), Some(&"failed"), "{}", events.text);

    let record = app.call(Method::GET, &format!("/api/v1/images/{id}"), Some(&token), None).await;
    assert_eq!(record.body["status"], "failed");
    assert_eq!(record.body["error"]["code"], "registry.unreachable");
    assert!(record.body.get("digest").is_none(), "nothing recorded as built: {}", record.text);

    let waited = app.call(Method::POST, "/api/v1/images?wait=true", Some(&token), Some(json!({ "war": "sample.war", "env": "shop", "version": "3" }))).await;
    assert_eq!(waited.status, StatusCode::BAD_GATEWAY);
    assert_eq!(waited.problem_code(), "image.build_failed");
    assert_eq!(waited.body["cause"], "registry.unreachable");
}

/// A registry token service, as Docker Hub or Harbor run one: basic credentials in,
/// an ES256-signed JWT out, granting what was asked for.
struct TokenService {
    realm: String,
    scopes_asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenService {
    /// Writes its signing certificate to `dir/token.pem` for the registry to trust.
    async fn start(dir: &std::path::Path, service: &str, issuer: &str) -> TokenService {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let (key, pem, p8, der) = (dir.join("token.key"), dir.join("token.pem"), dir.join("token.p8"), dir.join("token.der"));
        let p = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
        for args in [
            vec!["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=warship test tokens", "-keyout", &p(&key), "-out", &p(&pem)],
            vec!["pkcs8", "-topk8", "-nocrypt", "-in", &p(&key), "-outform", "DER", "-out", &p(&p8)],
            vec!["x509", "-in", &p(&pem), "-outform", "DER", "-out", &p(&der)],
        ] {
            let made = std::process::Command::new("openssl").args(&args).output().unwrap();
            assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
        }
        let rng = ring::rand::SystemRandom::new();
        let signer = Arc::new(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &std::fs::read(&p8).unwrap(), &rng).unwrap());
        let cert = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(&der).unwrap())
        };
        let scopes_asked = Arc::new(Mutex::new(Vec::new()));
        let (service, issuer, asked) = (service.to_owned(), issuer.to_owned(), scopes_asked.clone());
        let handler = move |query: axum::extract::RawQuery, headers: axum::http::HeaderMap| {
            let (signer, cert, service, issuer, asked) = (signer.clone(), cert.clone(), service.clone(), issuer.clone(), asked.clone());
            async move {
                let expected = format!("Basic {}", {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
                });
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
                    return (StatusCode::UNAUTHORIZED, "bad credentials".to_owned());
                }
                let query = query.0.unwrap_or_default();
                let scopes: Vec<String> =
                    url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "scope").map(|(_, v)| v.into_owned()).collect();
                asked.lock().unwrap().extend(scopes.iter().cloned());
                let access: Vec<Value> = scopes
                    .iter()
                    .filter_map(|s| {
                        let mut parts = s.splitn(3, ':');
                        let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                        Some(json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
                    })
                    .collect();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let header = json!({ "alg": "ES256", "typ": "JWT", "x5c": [cert] });
                let claims = json!({ "iss": issuer, "sub": "alice", "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now,
                                     "jti": uuid::Uuid::new_v4().to_string(), "access": access });
                let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
                let signature = signer.sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes()).unwrap();
                let token = format!("{signing_input}.{}", b64url(signature.as_ref()));
                (StatusCode::OK, json!({ "token": token, "expires_in": 300 }).to_string())
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/token", axum::routing::get(handler));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TokenService { realm, scopes_asked, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_from_the_registrys_token_service() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenService::start(dir.path(), "warship-test-registry", "warship-test-issuer").await;
    let mut registry = Registry::start().await;
    registry.push_base_images();
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: warship-test-registry\n    issuer: warship-test-issuer\n    rootcertbundle: {}\n",
        tokens.realm,
        dir.path().join("token.pem").display()
    );
    registry.reconfigure(&auth, "http").await;
    let with = |password: &str| RegistryConfig { username: Some("alice".into()), password: Some(password.into()), ..registry_config(&registry.addr) };

    let (refused, client) = builder(&with("wrong"));
    let err = refused.build(&job(&fixture("sample.war"), "team/app:1", &client), Arc::new(|_| {})).await.unwrap_err();
    assert!(matches!(err, BuildError::Registry(RegistryError::CredentialsRefused { .. })), "{err}");
    assert!(err.to_string().contains("token service"), "{err}");

    let (builder, client) = builder(&with("s3cret"));
    let built = builder.build(&job(&fixture("sample.war"), "team/app:1", &client), Arc::new(|_| {})).await.unwrap();
    let asked = tokens.scopes_asked.lock().unwrap().clone();
    assert!(asked.contains(&"repository:team/app:pull,push".to_owned()), "{asked:?}");
    assert!(asked.contains(&"repository:warship/tomcat:pull".to_owned()), "one token covers the base too: {asked:?}");
    let anonymous = reqwest::get(format!("http://{}/v2/team/app/manifests/1", registry.addr)).await.unwrap();
    assert_eq!(anonymous.status(), 401, "the registry really wants a token");
    let session = client.session(&registry.addr, vec!["repository:team/app:pull".into()], Arc::new(|_| {}));
    assert_eq!(session.manifest("team/app", "1").await.unwrap().digest, built.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_out_of_space_says_so() {
    // The base in one registry, the target in another whose storage is a small tmpfs:
    // base layers must then be copied through the host, and the copy fills the disk.
    let bases = Registry::start().await;
    bases.push_base_images();
    let full = Registry::start().await;
    std::fs::create_dir_all(&full.root).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&full.root).output().unwrap();
    assert!(mounted.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&mounted.stderr));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).output();
        }
    }
    let _unmount = Unmount(full.root.clone());
    let config = RegistryConfig { insecure_registries: vec![bases.addr.clone()], ..registry_config(&full.addr) };
    let (builder, client) = builder(&config);
    let mut job = job(&fixture("sample.war"), "team/app:1", &client);
    job.dockerfile = job.dockerfile.replace("FROM warship/", &format!("FROM {}/warship/", bases.addr));
    let (progress, events) = recorder();
    let err = builder.build(&job, progress).await.unwrap_err();
    assert!(matches!(err, BuildError::Registry(RegistryError::OutOfSpace { .. })), "{err}");
    assert!(err.to_string().starts_with(&format!("registry {} is out of space", full.addr)), "{err}");
    assert!(!events.lock().unwrap().iter().any(|e| matches!(e, BuildEvent::Retry { .. })), "a full disk is not retried");
    assert!(events.lock().unwrap().iter().any(|e| matches!(e, BuildEvent::Bytes { what, .. } if what.starts_with("base layer"))));
}

#[tokio::test]
async fn a_manifest_naming_missing_blobs_is_rejected() {
    let registry = Registry::start().await;
    let client = RegistryClient::from_config(&registry_config(&registry.addr)).unwrap();
    let session = client.session(&registry.addr, vec!["repository:team/app:pull,push".into()], Arc::new(|_| {}));
    let missing = format!("sha256:{}", "0".repeat(64));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing, "size": 2 },
        "layers": [],
    });
    let err = session
        .put_manifest("team/app", "1", "application/vnd.oci.image.manifest.v1+json", bytes::Bytes::from(manifest.to_string()))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::ManifestRejected { .. }), "{err}");
    assert!(err.to_string().contains("BLOB_UNKNOWN"), "the registry's own diagnostic: {err}");
}
