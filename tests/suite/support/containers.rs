//! podman as these machines run it: containers started from pushed images, and its
//! Docker-compatible API service for the docker builder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// podman with the settings that work on these machines (../shared/notes/containers-here.md),
/// its storage kept under the cache folder so tests never touch the machine's own.
pub fn podman() -> Command {
    let cache = std::env::var_os("WARSHIP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/warship"));
    let mut command = Command::new("podman");
    command
        .args([
            "--runtime",
            "runc",
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .arg("--root")
        .arg(cache.join("podman/root"))
        .arg("--runroot")
        .arg(cache.join("podman/run"));
    command
}

/// A container started by [`run_container`], removed on drop.
pub struct Container {
    pub name: String,
    pub port: u16,
    image: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "1", &self.name]).output();
        // vfs keeps a full copy of every image: drop it, or test runs fill the disk.
        remove_images(&[&self.image]);
    }
}

/// Removes images from the test store by their ids (a name pulled by digest alone is not
/// enough for `podman rmi`).
pub fn remove_images(references: &[&str]) {
    for reference in references {
        let id = podman().args(["image", "inspect", "--format", "{{.Id}}", reference]).output();
        if let Ok(id) = id {
            let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
            if !id.is_empty() {
                let _ = podman().args(["rmi", "-f", &id]).output();
            }
        }
    }
}

/// Pulls `image` (by digest) from an insecure registry and runs it detached, its port
/// 8080 published on a free loopback port.
pub fn run_container(image: &str) -> Container {
    let pulled = podman().args(["pull", "-q", "--tls-verify=false", image]).output().unwrap();
    assert!(pulled.status.success(), "podman pull {image}: {}", String::from_utf8_lossy(&pulled.stderr));
    let container = Container {
        name: format!("warship-test-{}", uuid::Uuid::new_v4().simple()),
        port: free_port(),
        image: image.to_owned(),
    };
    let run = podman()
        .args(["run", "-d", "--name", &container.name, "-p", &format!("127.0.0.1:{}:8080", container.port)])
        .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image])
        .output()
        .unwrap();
    assert!(run.status.success(), "podman run {image}: {}", String::from_utf8_lossy(&run.stderr));
    container
}

impl Container {
    /// Everything the container printed so far.
    pub fn logs(&self) -> String {
        let logs = podman().args(["logs", &self.name]).output().unwrap();
        String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr)
    }

    /// Waits until the container's log says `needle`, and returns the log.
    pub async fn log_when(&self, needle: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(started.elapsed() < within, "the container never logged {needle:?} within {within:?}:\n{logs}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// GETs `path` until it answers 200 (Tomcat deploys the WAR after it starts).
    pub async fn get_when_up(&self, path: &str, within: Duration) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(&url).await {
                if response.status().is_success() {
                    return response.text().await.unwrap();
                }
            }
            if started.elapsed() > within {
                panic!("{url} did not answer 200 within {within:?}; container log:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// podman's Docker-compatible API service on a socket of its own, for the docker
/// builder. `insecure` registries are plain HTTP to it.
pub struct PodmanService {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    pub async fn start(insecure: &[&str]) -> PodmanService {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("registries.conf");
        let mut text = String::from("unqualified-search-registries = []\n");
        for registry in insecure {
            text += &format!("[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n");
        }
        std::fs::write(&conf, text).unwrap();
        let socket = dir.path().join("podman.sock");
        let host = format!("unix://{}", socket.display());
        let child = podman()
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .args(["system", "service", "--time=0", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman is not installed: run scripts/test, which installs it");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "podman's API socket did not appear in 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PodmanService { child, host, _dir: dir }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
