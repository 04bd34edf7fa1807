//! A real S3 server on loopback: SeaweedFS (`weed mini`, built by scripts/s3-binaries),
//! every port its own free one, data in a temp dir, killed on drop.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

use warship_host::config::{StorageBackend, StorageConfig};

use super::free_port;

pub const ACCESS_KEY: &str = "warship-tests";
pub const SECRET_KEY: &str = "warship-tests-secret";

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    dir: tempfile::TempDir,
}

fn weed() -> std::path::PathBuf {
    static WEED: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    WEED.get_or_init(build_weed).clone()
}

fn build_weed() -> std::path::PathBuf {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/s3-binaries"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/s3-binaries runs");
    assert!(out.status.success(), "scripts/s3-binaries failed");
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("weed")
}

impl S3Server {
    /// Starts SeaweedFS with one bucket and one identity allowed everything in it.
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let identities = serde_json::json!({ "identities": [{
            "name": "warship",
            "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities.to_string()).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let s3 = free_port();
        let bucket = "warship".to_owned();
        let port = |name: &str| format!("-{name}={}", free_port());
        let child = Command::new(weed())
            .arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([port("master.port"), port("master.port.grpc"), port("volume.port"), port("volume.port.grpc")])
            .args([port("filer.port"), port("filer.port.grpc"), port("s3.port.grpc"), port("admin.port"), port("admin.port.grpc")])
            .arg(format!("-s3.port={s3}"))
            // Only the S3 gateway is wanted: no admin UI, WebDAV, Iceberg or Lance.
            .args(["-admin.port.legacy=0", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            // Small volumes: the default 128 MiB each is preallocated lazily, but fewer go further.
            .args(["-master.volumeSizeLimitMB=64"])
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-bucket={bucket}"))
            .stdout(Stdio::from(std::fs::File::create(dir.path().join("weed.log")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("weed.err")).unwrap()))
            .spawn()
            .expect("starting weed");
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{s3}"), bucket, dir };
        let started = Instant::now();
        // Ready when the bucket answers a listing with the test's keys.
        loop {
            if server.keys("").await.is_ok() {
                return server;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "SeaweedFS did not serve the bucket in 60 s: {}", server.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `[storage]` for this server, objects under `prefix`.
    pub fn storage(&self, prefix: &str) -> StorageConfig {
        StorageConfig {
            backend: StorageBackend::S3,
            s3_endpoint: Some(self.endpoint.clone()),
            s3_bucket: self.bucket.clone(),
            s3_prefix: prefix.into(),
            s3_access_key_id: Some(ACCESS_KEY.into()),
            s3_secret_access_key: Some(SECRET_KEY.into()),
            ..Default::default()
        }
    }

    fn client(&self) -> Arc<dyn ObjectStore> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .unwrap();
        Arc::new(store)
    }

    /// Every object key under `prefix`, sorted, as the server lists them.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, object_store::Error> {
        let prefix = object_store::path::Path::from(prefix);
        let mut keys: Vec<String> = self.client().list(Some(&prefix)).map_ok(|m| m.location.to_string()).try_collect().await?;
        keys.sort();
        Ok(keys)
    }

    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let (out, err) = (read("weed.log"), read("weed.err"));
        format!("{}\n{}", &out[out.len().saturating_sub(2000)..], &err[err.len().saturating_sub(4000)..])
    }

    /// Stops the server now, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
