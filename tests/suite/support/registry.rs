//! Debian's docker-registry on loopback, and a proxy in front of it that fails on purpose.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{files_under, free_port};

/// Debian's docker-registry (distribution) on a free loopback port, with storage of its
/// own. `extra` is YAML appended to its config (auth, TLS).
pub struct Registry {
    child: Option<Child>,
    pub addr: String,
    pub root: PathBuf,
    config: PathBuf,
    scheme: &'static str,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        Self::start_with("", "http").await
    }

    /// `scheme` is `https` when `extra` configures TLS.
    pub async fn start_with(extra: &str, scheme: &'static str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n#extra\n{extra}",
                root.display()
            ),
        )
        .unwrap();
        let mut registry = Registry { child: None, addr, root, config, scheme, _dir: dir };
        registry.resume_serving().await;
        registry
    }

    /// Restarts it on the same address and storage with other settings.
    pub async fn reconfigure(&mut self, extra: &str, scheme: &'static str) {
        self.kill();
        let text = std::fs::read_to_string(&self.config).unwrap();
        let base = text.split_once("\n#extra\n").map_or(text.as_str(), |(b, _)| b).to_owned();
        std::fs::write(&self.config, format!("{base}\n#extra\n{extra}")).unwrap();
        self.scheme = scheme;
        self.resume_serving().await;
    }

    /// Starts the process (again) on the same address and storage.
    pub async fn resume_serving(&mut self) {
        let child = Command::new("docker-registry")
            .args(["serve", self.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is not installed: run scripts/test, which installs it");
        self.child = Some(child);
        let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        let started = Instant::now();
        while client.get(format!("{}://{}/v2/", self.scheme, self.addr)).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the registry did not answer in 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it at once, as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections stay open and nothing answers.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Puts the Tomcat base images (built from Maven Central's Tomcat and this machine's
    /// JDK by scripts/base-images, cached) into this registry as `warship/tomcat:<tag>`.
    pub fn push_base_images(&self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/base-images");
        let output = Command::new(script).args(["push", &self.addr]).output().unwrap();
        assert!(
            output.status.success(),
            "scripts/base-images push failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The tags of a repository, as anyone may list them (anonymous, plain HTTP).
    pub async fn tags(&self, repository: &str) -> Vec<String> {
        let answer: serde_json::Value = reqwest::get(format!("http://{}/v2/{repository}/tags/list", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["tags"]
            .as_array()
            .map(|t| t.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Blob files in its storage, to tell what was uploaded.
    pub fn blob_count(&self) -> usize {
        files_under(&self.root.join("docker/registry/v2/blobs")).len()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.freeze(false);
        self.kill();
    }
}

/// A proxy in front of a registry that answers 500 to the first `failures` requests,
/// then passes everything through untouched.
pub struct FaultProxy {
    pub addr: String,
    pub failed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, failures: usize) -> FaultProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (upstream, counter) = (upstream.to_owned(), failed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let (upstream, counter) = (upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    if counter.fetch_add(1, Ordering::SeqCst) < failures {
                        // Read the request head, answer 500 as a registry in trouble does, hang up.
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match client.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#;
                        let answer = format!(
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = client.write_all(answer.as_bytes()).await;
                        let _ = client.shutdown().await;
                        return;
                    }
                    counter.fetch_sub(1, Ordering::SeqCst);
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        FaultProxy { addr, failed, task }
    }

    /// How many requests got a 500.
    pub fn failures_injected(&self) -> usize {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
