//! One suite, both WAR storage backends: local disk, and a bucket on a real S3 server
//! (SeaweedFS on loopback). Each backend is reached as two hosts would reach it: two
//! `Wars` sharing one store and one place for the bytes.

use crate::support::{self, s3::S3Server};

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use sha2::{Digest, Sha256};

use warship_host::config::{Config, StorageConfig};
use warship_host::store::{DynStore, EmbeddedStore, Metered};
use warship_host::users::UserName;
use warship_host::wars::{WarError, Wars};

/// Where the bytes of one backend are, as a test looks at them.
enum Kept {
    Local(std::path::PathBuf),
    Bucket(Arc<S3Server>, String),
}

struct Backend {
    name: &'static str,
    store: DynStore,
    storage: StorageConfig,
    bytes: Kept,
    _dirs: Vec<tempfile::TempDir>,
}

impl Backend {
    /// A host of this backend: its own data dir (temp files), the shared store and bytes.
    async fn host(&mut self) -> Wars {
        let dir = tempfile::tempdir().unwrap();
        let mut config: Config = support::test_config(dir.path());
        config.storage = self.storage.clone();
        let wars_dir = match &self.bytes {
            Kept::Local(shared) => shared.clone(),
            Kept::Bucket(..) => dir.path().join("wars"),
        };
        config.store.data_dir = wars_dir.parent().unwrap().to_owned();
        let wars = warship_host::server::open_war_storage(&config, self.store.clone()).await.unwrap();
        self._dirs.push(dir);
        wars
    }

    /// The objects or files holding WAR bytes, and temp ones, as a sorted list of names.
    async fn contents(&self) -> (Vec<String>, Vec<String>) {
        match &self.bytes {
            Kept::Local(dir) => {
                let names = |sub: &str| {
                    let mut names: Vec<String> = support::files_under(&dir.join(sub))
                        .iter()
                        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    names
                };
                (names("sha256"), names("tmp"))
            }
            Kept::Bucket(server, prefix) => {
                let last = |keys: Vec<String>| keys.iter().map(|k| k.rsplit('/').next().unwrap().to_owned()).collect();
                (last(server.keys(&format!("{prefix}sha256")).await.unwrap()), last(server.keys(&format!("{prefix}tmp")).await.unwrap()))
            }
        }
    }

    /// Waits (a temp object is deleted by a task of its own) until no temp is left.
    async fn no_temps_within(&self, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (_, temps) = self.contents().await;
            if temps.is_empty() || tokio::time::Instant::now() > deadline {
                return temps;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn embedded(dir: &tempfile::TempDir) -> DynStore {
    Arc::new(Metered(EmbeddedStore::open(&dir.path().join("warship.redb")).unwrap()))
}

async fn local() -> Backend {
    let (store_dir, bytes_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = embedded(&store_dir);
    let shared = bytes_dir.path().join("wars");
    Backend { name: "local", store, storage: StorageConfig::default(), bytes: Kept::Local(shared), _dirs: vec![store_dir, bytes_dir] }
}

async fn bucket(server: Arc<S3Server>, prefix: &str) -> Backend {
    let store_dir = tempfile::tempdir().unwrap();
    let store = embedded(&store_dir);
    let storage = server.storage(prefix);
    Backend { name: "s3", store, storage, bytes: Kept::Bucket(server, prefix.into()), _dirs: vec![store_dir] }
}

fn body(bytes: &[u8], chunk: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(chunks)
}

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

async fn keep(wars: &Wars, who: &str, app: &str, bytes: &[u8]) -> Result<String, WarError> {
    let received = wars.receive(&user(who), body(bytes, 256 << 10)).await?;
    let (record, _) = wars.keep(&user(who), app, "app.war", received).await?;
    Ok(record.sha256)
}

/// The blob's bytes as a build reads them.
fn read_back(wars: &Wars, sha256: &str) -> std::io::Result<Vec<u8>> {
    let source = wars.source(sha256);
    let mut bytes = Vec::new();
    source.open()?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

async fn read_back_async(wars: &Arc<Wars>, sha256: &str) -> std::io::Result<Vec<u8>> {
    let (wars, sha256) = (wars.clone(), sha256.to_owned());
    tokio::task::spawn_blocking(move || read_back(&wars, &sha256)).await.unwrap()
}

async fn suite(mut backend: Backend) {
    let a = Arc::new(backend.host().await);
    let b = Arc::new(backend.host().await);
    let war = std::fs::read(support::fixture("jolokia-war-1.7.2.war")).unwrap();
    let sha = hex::encode(Sha256::digest(&war));
    let name = backend.name;

    // Kept through host A, read back whole through host B (a build streams it).
    assert_eq!(keep(&a, "alice", "shop", &war).await.unwrap(), sha, "{name}");
    assert_eq!(read_back_async(&b, &sha).await.unwrap(), war, "{name}: B reads A's upload");
    assert_eq!(backend.contents().await.0, vec![sha.clone()], "{name}: stored under its address");

    // The same bytes through host B for another user: stored once, counted twice.
    keep(&b, "bob", "shop", &war).await.unwrap();
    assert_eq!(backend.contents().await.0, vec![sha.clone()], "{name}: once");
    a.delete(&user("alice"), "shop", "app.war").await.unwrap();
    assert_eq!(read_back_async(&a, &sha).await.unwrap(), war, "{name}: bob's reference keeps the bytes");
    b.delete(&user("bob"), "shop", "app.war").await.unwrap();
    assert!(backend.contents().await.0.is_empty(), "{name}: the last reference removes the bytes");
    assert!(read_back_async(&a, &sha).await.is_err(), "{name}");

    broken_uploads_leave_nothing(&backend, &a, &war).await;
    hosts_racing_keep_and_delete_never_lose_kept_bytes(&backend, &a, &b, &war).await;
}

async fn broken_uploads_leave_nothing(backend: &Backend, wars: &Wars, war: &[u8]) {
    let name = backend.name;
    // Cut off after 11 MiB: two 5 MiB parts were sent, the upload is aborted.
    let sent = [war, &vec![0u8; 11 << 20]].concat();
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = sent.chunks(256 << 10).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    chunks.push(Err(std::io::Error::other("connection reset")));
    let cut = wars.receive(&user("alice"), stream::iter(chunks)).await;
    assert!(matches!(cut, Err(WarError::Interrupted(_))), "{name}: {:?}", cut.err());
    // Complete, but not a WAR: refused by inspection after it reached storage's temp.
    let not_a_war = vec![7u8; 6 << 20];
    let received = wars.receive(&user("alice"), body(&not_a_war, 1 << 20)).await.unwrap();
    let refused = wars.keep(&user("alice"), "shop", "app.war", received).await;
    assert!(matches!(refused, Err(WarError::Rejected(_))), "{name}: {:?}", refused.err());
    // Received, then dropped by a client that went away before it was kept.
    drop(wars.receive(&user("alice"), body(war, 1 << 20)).await.unwrap());
    assert_eq!(backend.no_temps_within(Duration::from_secs(10)).await, Vec::<String>::new(), "{name}: no temp left");
    assert!(backend.contents().await.0.is_empty(), "{name}: nothing under an address");
    assert!(wars.list(&user("alice")).await.unwrap().is_empty(), "{name}");
}

/// Host A keeps a WAR while host B deletes the last other reference to the same bytes,
/// over and over: whatever the interleaving, a record that exists has its bytes.
async fn hosts_racing_keep_and_delete_never_lose_kept_bytes(backend: &Backend, a: &Arc<Wars>, b: &Arc<Wars>, war: &[u8]) {
    let name = backend.name;
    let sha = hex::encode(Sha256::digest(war));
    let bob = user("bob");
    for round in 0..12 {
        keep(b, "bob", "shop", war).await.unwrap();
        let (keeping, deleting) = tokio::join!(keep(a, "alice", "shop", war), b.delete(&bob, "shop", "app.war"));
        keeping.unwrap();
        deleting.unwrap();
        assert_eq!(read_back_async(b, &sha).await.unwrap().len(), war.len(), "{name} round {round}: alice's record has its bytes");
        a.delete(&user("alice"), "shop", "app.war").await.unwrap();
        assert!(backend.contents().await.0.is_empty(), "{name} round {round}: no reference, no bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_disk_conforms() {
    suite(local().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_bucket_conforms() {
    let server = Arc::new(S3Server::start().await);
    suite(bucket(server.clone(), "suite/").await).await;
}

/// A bucket that refuses the keys fails start-up (and check-config) naming the settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_keys_fail_start_naming_the_settings() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::test_config(dir.path());
    config.storage = server.storage("x/");
    config.storage.s3_secret_access_key = Some("not-the-secret".into());
    let error = warship_host::server::open_war_storage(&config, embedded(&dir)).await.err().expect("refused");
    let said = format!("{error:#}");
    assert!(said.contains("403") && said.contains("check storage.s3_access_key_id and storage.s3_secret_access_key"), "{said}");
    config.storage = server.storage("x/");
    config.storage.s3_bucket = "no-such-bucket".into();
    let said = format!("{:#}", warship_host::server::open_war_storage(&config, embedded(&dir)).await.err().expect("refused"));
    assert!(said.contains("404") && said.contains("check storage.s3_bucket"), "{said}");
    config.storage = server.storage("x/");
    config.storage.s3_endpoint = Some(format!("http://127.0.0.1:{}", support::free_port()));
    let said = format!("{:#}", warship_host::server::open_war_storage(&config, embedded(&dir)).await.err().expect("refused"));
    assert!(said.contains("check storage.s3_endpoint"), "{said}");
}

/// The bucket gone under a running host (its S3 server stopped): an upload is answered
/// 503 `storage.unavailable` with when to retry, not a 500, and nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_while_the_s3_server_is_down_is_answered_503_and_keeps_nothing() {
    let mut server = S3Server::start().await;
    let storage = server.storage("down/");
    let app = support::TestApp::embedded_with(|c| c.storage = storage).await;
    let token = app.user("alice").await;
    server.kill();
    let request = axum::http::Request::put("/api/v1/wars/shop/sample.war")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/java-archive")
        .body(axum::body::Body::from(std::fs::read(support::fixture("sample.war")).unwrap()))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, axum::http::StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
    assert_eq!(reply.problem_code(), "storage.unavailable", "{}", reply.text);
    assert!(reply.text.contains("storage.s3_*"), "it says what an admin checks: {}", reply.text);
    assert_eq!(reply.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("10"));
    let listed = app.call(axum::http::Method::GET, "/api/v1/wars", Some(&token), None).await;
    assert_eq!(listed.text.trim(), "[]");
}
