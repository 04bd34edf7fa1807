//! The real `warship` binary over real sockets: commands, a full walkthrough,
//! dropped connections, graceful shutdown, TLS, and two hosts sharing one etcd.

use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{fixture, free_port, Etcd};

const BIN: &str = env!("CARGO_BIN_EXE_warship");

pub(crate) fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("platform.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 10\n{extra}\n[store]\ndata_dir = \"{}\"\n\n[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"warship/tomcat:10.1-jdk17\"\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn warship(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(BIN).args(args).envs(envs.iter().copied()).output().unwrap()
}

pub(crate) fn add_user(config: &Path, name: &str, envs: &[(&str, &str)]) -> String {
    let out = warship(&["user", "add", name, "--config", config.to_str().unwrap()], envs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("wsp_") && token.len() > 40, "token alone on the last line: {stdout:?}");
    token
}

pub(crate) struct Host {
    pub child: Child,
    pub base: String,
}

impl Host {
    pub(crate) fn start(config: &Path, port: u16, envs: &[(&str, &str)]) -> Host {
        let child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let host = Host { child, base: format!("http://127.0.0.1:{port}") };
        host.wait_ready();
        host
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(out) = Command::new("curl").args(["-sf", &format!("{}/readyz", self.base)]).output() {
                if out.status.success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("warship did not become ready");
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "warship ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_unknown_keys() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform.toml");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let out = warship(&["check-config", "--config", shipped.to_str().unwrap()], &[("WARSHIP__STORE__DATA_DIR", &data)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ok") && said.contains("strategy: recreate, rolling, canary, bluegreen"), "{said}");

    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[uploads]\nmax_bytez = 3\n").unwrap();
    let out = warship(&["check-config", "--config", path.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_bytez"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = warship(&["check-config", "--config", shipped.to_str().unwrap()], &[("WARSHIP__STORE__BACKEND", "sqlite"), ("WARSHIP__STORE__DATA_DIR", &data)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite"));
}

#[tokio::test]
async fn walkthrough_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let token = add_user(&config, "alice", &[]);
    let mut host = Host::start(&config, port, &[]);
    let (base, http) = (host.base.clone(), client());

    let created = http
        .post(format!("{base}/api/v1/envs"))
        .bearer_auth(&token)
        .json(&json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Streamed from the file, as a client would.
    let war = fixture("sample.war");
    let file = tokio::fs::File::open(&war).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let (status, uploaded) = json_of(
        http.put(format!("{base}/api/v1/wars/shop/sample.war")).bearer_auth(&token).body(body).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["servlet_api"], "jakarta");

    let (_, wars) = json_of(http.get(format!("{base}/api/v1/wars")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(wars.as_array().unwrap().len(), 1);

    let (_, legacy) = json_of(http.get(format!("{base}/getuploadwars")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(legacy["children"][0]["children"][0]["name"], "sample.war");

    assert_eq!(host.terminate().code(), Some(0));
    // Everything is still there after a restart.
    let host = Host::start(&config, port, &[]);
    let http = client();
    let (_, envs) = json_of(http.get(format!("{}/api/v1/envs", host.base)).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(envs[0]["name"], "shop");
}

#[tokio::test]
async fn a_dropped_connection_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let token = add_user(&config, "alice", &[]);
    let host = Host::start(&config, port, &[]);

    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        socket,
        "PUT /api/v1/wars/shop/shop.war HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    socket.write_all(&vec![b'P'; 3_000_000]).unwrap();
    let tmp = dir.path().join("data/wars/tmp");
    let started = Instant::now();
    while std::fs::read_dir(&tmp).unwrap().count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(socket);

    let started = Instant::now();
    while std::fs::read_dir(&tmp).unwrap().count() > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "temp file outlived the connection");
        std::thread::sleep(Duration::from_millis(20));
    }
    let blobs = support::files_under(&dir.path().join("data/wars/sha256"));
    assert!(blobs.is_empty(), "{blobs:?}");
    let (_, wars) = json_of(client().get(format!("{}/api/v1/wars", host.base)).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(wars, json!([]));
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let token = add_user(&config, "alice", &[]);
    let mut host = Host::start(&config, port, &[]);

    // Send the WAR slowly, in pieces, and ask the host to stop halfway.
    let war = std::fs::read(fixture("gatekeeper-0.8.1.war")).unwrap();
    let pieces: Vec<bytes::Bytes> = war.chunks(war.len() / 8 + 1).map(bytes::Bytes::copy_from_slice).collect();
    let slow = futures_util::stream::unfold(pieces.into_iter(), |mut rest| async move {
        let piece = rest.next()?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        Some((Ok::<_, std::io::Error>(piece), rest))
    });
    let upload = client()
        .put(format!("{}/api/v1/wars/gk/gatekeeper.war", host.base))
        .bearer_auth(&token)
        .header("content-length", war.len())
        .body(reqwest::Body::wrap_stream(slow))
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || host.terminate()).await.unwrap();
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 201, "the upload in flight completed");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn serves_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = free_port();
    let tls = format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display());
    let config = write_config(dir.path(), port, &tls);
    let host = Host { child: Command::new(BIN).args(["serve", "--config", config.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap(), base: String::new() };
    let url = format!("https://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    let body = loop {
        let out = Command::new("curl").args(["-sf", "--cacert", cert.to_str().unwrap(), &url]).output().unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no HTTPS answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("ok"));
    let plain = Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/healthz")]).output().unwrap();
    assert!(!plain.status.success(), "plain HTTP is not served when TLS is configured");
    drop(host);
}

#[tokio::test]
async fn two_hosts_share_one_etcd() {
    let etcd = Etcd::start().await;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = write_config(dir_a.path(), port_a, "");
    let config_b = write_config(dir_b.path(), port_b, "");
    let envs = [("WARSHIP__STORE__BACKEND", "etcd"), ("WARSHIP__STORE__ETCD_ENDPOINTS", etcd.endpoint.as_str())];
    let envs: Vec<(&str, &str)> = envs.to_vec();

    // A user added while both hosts run is known to both: the store is shared.
    let host_a = Host::start(&config_a, port_a, &envs);
    let host_b = Host::start(&config_b, port_b, &envs);
    let token = add_user(&config_a, "alice", &envs);
    let http = client();
    let created = http
        .post(format!("{}/api/v1/envs", host_a.base))
        .bearer_auth(&token)
        .json(&json!({"name": "shared", "tomcat": "10.1", "jdk": "17"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let (status, env) = json_of(http.get(format!("{}/api/v1/envs/shared", host_b.base)).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(env["tomcat"], "10.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_host_was_killed_reads_as_interrupted_and_nothing_as_built() {
    let registry = support::Registry::start().await;
    registry.push_base_images();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let envs = [("WARSHIP__REGISTRY__PUSH", registry.addr.as_str()), ("WARSHIP__REGISTRY__PULL", registry.addr.as_str()), ("WARSHIP__REGISTRY__INSECURE", "true")];
    let token = add_user(&config, "alice", &envs);
    let mut host = Host::start(&config, port, &envs);
    let (base, http) = (host.base.clone(), client());
    let created = http.post(format!("{base}/api/v1/envs")).bearer_auth(&token).json(&json!({"name": "shop", "tomcat": "10.1", "jdk": "17"})).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let war = std::fs::read(fixture("sample.war")).unwrap();
    let uploaded = http.put(format!("{base}/api/v1/wars/shop/sample.war")).bearer_auth(&token).body(war).send().await.unwrap();
    assert_eq!(uploaded.status(), 201);

    // The registry hangs, the build waits on it, and the host dies mid-build.
    registry.freeze(true);
    let (status, started) = json_of(http.post(format!("{base}/api/v1/images")).bearer_auth(&token).json(&json!({"war": "sample.war", "env": "shop", "version": "1"})).send().await.unwrap()).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    registry.freeze(false);

    let host = Host::start(&config, port, &envs);
    let began = Instant::now();
    let record = loop {
        let (_, record) = json_of(http.get(format!("{}/api/v1/images/{id}", host.base)).bearer_auth(&token).send().await.unwrap()).await;
        if record["status"] != "building" {
            break record;
        }
        assert!(began.elapsed() < Duration::from_secs(40), "still building long after its host died: {record}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["code"], "build.interrupted", "{record}");
    assert!(record.get("digest").is_none(), "{record}");

    let (status, built) = json_of(
        http.post(format!("{}/api/v1/images?wait=true", host.base)).bearer_auth(&token).json(&json!({"war": "sample.war", "env": "shop", "version": "1"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "the next build goes through: {built}");
    assert_eq!(built["status"], "built");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warship_build_pushes_a_dockerfile_from_a_folder_and_prints_the_digest() {
    let registry = support::Registry::start().await;
    registry.push_base_images();
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::copy(fixture("sample.war"), context.join("app.war")).unwrap();
    std::fs::write(context.join("Dockerfile"), "ARG TAG=10.1-jdk17\nFROM warship/tomcat:${TAG}\nCOPY app.war webapps/ROOT.war\n").unwrap();
    let config = write_config(dir.path(), free_port(), "");
    let envs = [("WARSHIP__REGISTRY__PUSH", registry.addr.as_str()), ("WARSHIP__REGISTRY__INSECURE", "true")];
    let out = warship(&["build", "--config", config.to_str().unwrap(), "--context", context.to_str().unwrap(), "--tag", "team/app:1"], &envs);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let digest = stdout.trim();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "the digest alone on stdout: {stdout:?}");
    assert!(stderr.contains("layer: uploading 1 file(s)") && stderr.contains("manifest: pushing"), "progress on stderr: {stderr}");
    assert_eq!(registry.tags("team/app").await, ["1"]);

    let out = warship(&["build", "--config", config.to_str().unwrap(), "--context", context.to_str().unwrap(), "--tag", "team/app:1", "--build-arg", "TAG=9.9-jdk1"], &envs);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found in registry"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// 1,000 connections sending a request head a byte at a time are dropped once the
/// header-read timeout passes, while normal requests keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_their_headers_a_byte_at_a_time_are_dropped_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SLOW: usize = 1000;
    // Room for the slow connections on both sides, in this process and the server it starts.
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur = limit.rlim_max.min(8192);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert!(limit.rlim_cur >= 2 * SLOW as u64 + 200, "the descriptor limit {} is too low for this test", limit.rlim_cur);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "header_read_timeout_secs = 3");
    let host = Host::start(&config, port, &[]);
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let connected = connected.clone();
        slow.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            connected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let head = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
            let opened = Instant::now();
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return opened.elapsed();
                }
                // A closed connection reads as the end (or an error) at once.
                let mut buffer = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buffer)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return opened.elapsed(),
                    Ok(Ok(_)) => panic!("a slow request head was answered"),
                    Err(_) => {}
                }
                assert!(opened.elapsed() < Duration::from_secs(30), "a slow connection was never dropped");
            }
            unreachable!()
        }));
    }
    // Once all of them are open, ordinary requests are answered promptly. They are asked
    // from a thread of their own so that this process's busy runtime does not slow the
    // asking; what is measured is the host.
    while connected.load(std::sync::atomic::Ordering::SeqCst) < SLOW {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readyz = format!("{}/readyz", host.base);
    let slowest = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let started = Instant::now();
            let mut slowest = Duration::ZERO;
            while started.elapsed() < Duration::from_secs(4) {
                let asked = Instant::now();
                let response = client().get(&readyz).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                slowest = slowest.max(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            slowest
        })
    })
    .join()
    .unwrap();
    assert!(slowest < Duration::from_secs(1), "readyz took {slowest:?} beside the slow connections");
    let mut held = Vec::new();
    for connection in slow {
        held.push(connection.await.unwrap());
    }
    held.sort();
    let longest = *held.last().unwrap();
    eprintln!("slow headers: {SLOW} connections dropped after {:?} (median) to {longest:?}; readyz at most {slowest:?}", held[SLOW / 2]);
    assert!(longest < Duration::from_secs(10), "the slowest was dropped only after {longest:?}");
}

/// The original `/upload` with a `name` part that never ends (chunked, no length): the
/// host answers 413 as soon as the part passes its cap, keeps nothing, and its memory
/// does not grow with what the client sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_text_field_in_the_original_upload_is_refused_without_growing_the_host() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let token = add_user(&config, "alice", &[]);
    let host = Host::start(&config, port, &[]);
    let rss = |pid: u32| crate::support::proc_status_kib(&pid.to_string(), "VmRSS") * 1024;
    let before = rss(host.child.id());

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = |data: &[u8]| [format!("{:x}\r\n", data.len()).into_bytes(), data.to_vec(), b"\r\n".to_vec()].concat();
    stream.write_all(&chunk(b"--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n")).await.unwrap();
    let block = chunk(&vec![b'a'; 64 << 10]);
    let (mut read, mut write) = stream.into_split();
    let sending = tokio::spawn(async move {
        let mut sent = 0u64;
        // Up to 4 GiB, or until the host stops reading.
        while sent < 4 << 30 {
            if write.write_all(&block).await.is_err() {
                break;
            }
            sent += 64 << 10;
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("field_too_large") {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let during = rss(host.child.id());
    drop(read);
    let sent = tokio::time::timeout(Duration::from_secs(60), sending).await.expect("the host stopped reading").unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request.field_too_large") && answer.contains("`name`") && answer.contains("4096 bytes"), "{answer}");
    let grew = during.saturating_sub(before);
    eprintln!("endless field: refused after the client sent {} MiB; host RSS grew {} KiB", sent >> 20, grew >> 10);
    assert!(grew < 64 << 20, "the host grew {} MiB", grew >> 20);
    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| d.flatten().map(|e| if e.path().is_dir() { files(&e.path()) } else { 1 }).sum())
    }
    assert_eq!(files(&dir.path().join("data/wars")), 0, "nothing kept");
}

/// A token need not be on the command line: `--token -` reads it from stdin.
#[tokio::test]
async fn the_cli_logs_in_with_a_token_read_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let token = add_user(&config, "alice", &[]);
    let _host = Host::start(&config, port, &[]);
    let home = dir.path().join("home");
    let cli = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("WARSHIP_URL")
            .env_remove("WARSHIP_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let url = format!("http://127.0.0.1:{port}");
    let empty = cli(&["login", &url, "--token", "-"], "\n");
    assert_eq!(empty.status.code(), Some(2), "{}", String::from_utf8_lossy(&empty.stderr));
    let login = cli(&["login", &url, "--token", "-"], &format!("{token}\n"));
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let saved = std::fs::read_to_string(home.join("config/warship/login.toml")).unwrap();
    assert!(saved.contains(&token), "the login keeps the token read from stdin");
    let listed = cli(&["--output", "json", "env", "list"], "");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "[]");
}
