//! Uploads cannot exhaust the host: 600 clients each sending a WAR a byte a second, as
//! 20 users, against the real binary. Past the caps (64 at once on the host, 4 per
//! user) they are answered 429 at once with `Retry-After`; the admitted ones hold their
//! places without slowing anything else; and once they stop sending they are dropped
//! after the idle timeout, with nothing left on disk.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::flow::{add_user, write_config, Host};
use crate::support::{files_under, free_port};

const SLOW: usize = 600;
const USERS: usize = 20;
const HOST_CAP: usize = 64;
/// How long the admitted uploads trickle before they stop sending.
const TRICKLE: Duration = Duration::from_secs(8);
const IDLE_SECS: u64 = 4;

/// What one slow client saw: the status answered, whether `Retry-After` came with
/// it, and when the answer came (from the head sent, and from its last byte sent).
struct Seen {
    status: u16,
    retry_after: bool,
    after_head: Duration,
    after_last_byte: Duration,
}

/// Reads until the end of a response head; empty when the connection ended first.
async fn read_head(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(within, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            Ok(_) => return Some(String::new()),
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).to_lowercase())
}

async fn slow_upload(port: u16, token: String, index: usize) -> Seen {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // As curl does for a large body: the host answers at once if it will not take it,
    // or says to go on (100) once it reads.
    let head = format!(
        "PUT /api/v1/wars/app/slow-{index}.war HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let sent_head = Instant::now();
    let mut last_byte = sent_head;
    let mut answer = read_head(&mut stream, Duration::from_secs(30)).await.expect("an answer to the head");
    if answer.starts_with("http/1.1 100") {
        // Admitted: a byte a second while trickling, then nothing until the answer.
        answer = loop {
            if sent_head.elapsed() < TRICKLE && stream.write_all(b"1\r\nx\r\n").await.is_ok() {
                last_byte = Instant::now();
            }
            if let Some(head) = read_head(&mut stream, Duration::from_secs(1)).await {
                break head;
            }
            assert!(sent_head.elapsed() < Duration::from_secs(40), "upload {index} was never answered");
        };
    }
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Seen { status, retry_after: answer.contains("\r\nretry-after: 5\r\n"), after_head: sent_head.elapsed(), after_last_byte: last_byte.elapsed() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_slow_uploads_are_capped_and_slow_nothing_else() {
    // What is measured is the host's own latency beside 600 uploads: not beside a
    // compiling plugin kit or real pods starting on the same two cores.
    let _alone = crate::support::one_heavy_test_at_a_time();
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur = limit.rlim_max.min(8192);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert!(limit.rlim_cur >= 2 * SLOW as u64 + 200, "the descriptor limit {} is too low for this test", limit.rlim_cur);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let uploads = format!("[uploads]\nmax_concurrent = {HOST_CAP}\nmax_concurrent_per_user = 4\nidle_timeout_secs = {IDLE_SECS}\n");
    let config = write_config(dir.path(), port, &uploads);
    let tokens: Vec<String> = (0..USERS).map(|i| add_user(&config, &format!("user{i}"), &[])).collect();
    let host = Host::start(&config, port, &[]);
    // The first env created compiles the validator plugin's instance; that is not what is measured.
    let warm = serde_json::json!({"name": "warm", "tomcat": "10.1", "jdk": "17"});
    let created = reqwest::Client::new().post(format!("{}/api/v1/envs", host.base)).bearer_auth(&tokens[0]).json(&warm).send().await.unwrap();
    assert_eq!(created.status(), 201);

    let clients: Vec<_> = (0..SLOW).map(|i| tokio::spawn(slow_upload(port, tokens[i % USERS].clone(), i))).collect();
    // While they trickle, ordinary requests are asked from a thread of their own (this
    // process's runtime is busy with the 600): the host's health, a read of the store
    // behind authentication, and a write (an env created).
    let (base, token) = (host.base.clone(), tokens[0].clone());
    let slowest = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            std::thread::sleep(Duration::from_secs(1));
            let http = reqwest::Client::new();
            let mut slowest = [Duration::ZERO; 3];
            let started = Instant::now();
            let mut round = 0;
            while started.elapsed() < TRICKLE - Duration::from_secs(2) {
                round += 1;
                let asked = Instant::now();
                assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
                slowest[0] = slowest[0].max(asked.elapsed());
                let asked = Instant::now();
                assert_eq!(http.get(format!("{base}/api/v1/wars")).bearer_auth(&token).send().await.unwrap().status(), 200);
                slowest[1] = slowest[1].max(asked.elapsed());
                let asked = Instant::now();
                let env = serde_json::json!({"name": format!("e{round}"), "tomcat": "10.1", "jdk": "17"});
                let created = http.post(format!("{base}/api/v1/envs")).bearer_auth(&token).json(&env).send().await.unwrap();
                assert_eq!(created.status(), 201);
                slowest[2] = slowest[2].max(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            slowest
        })
    })
    .join()
    .unwrap();

    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.unwrap());
    }
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.status == 429).collect();
    let idle: Vec<&Seen> = seen.iter().filter(|s| s.status == 408).collect();
    let slowest_refusal = refused.iter().map(|s| s.after_head).max().unwrap();
    let idle_after = idle.iter().map(|s| s.after_last_byte).max().unwrap();
    eprintln!(
        "slow uploads: {} refused 429 (slowest answer {slowest_refusal:?}), {} admitted and dropped idle ({IDLE_SECS} s timeout) at most {idle_after:?} after their last byte; \
         readyz at most {:?}, authenticated GET {:?}, env create {:?}",
        refused.len(),
        idle.len(),
        slowest[0],
        slowest[1],
        slowest[2],
    );
    let mut statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
    statuses.sort();
    statuses.dedup();
    assert_eq!((refused.len(), idle.len()), (SLOW - HOST_CAP, HOST_CAP), "every upload is refused or admitted, the host's cap binding (statuses {statuses:?})");
    assert!(refused.iter().all(|s| s.retry_after), "every 429 says when to try again");
    assert!(slowest_refusal < Duration::from_secs(2), "refusals are answered at once: {slowest_refusal:?}");
    let idle_window = Duration::from_secs(IDLE_SECS)..Duration::from_secs(IDLE_SECS + 3);
    assert!(idle.iter().all(|s| idle_window.contains(&s.after_last_byte)), "dropped after the idle timeout");
    for (what, took) in ["readyz", "an authenticated GET", "an env created"].iter().zip(slowest) {
        assert!(took < Duration::from_secs(1), "{what} took {took:?} beside the slow uploads");
    }
    // Nothing of the dropped uploads is left: no temp file, no blob, no record.
    assert_eq!(files_under(&dir.path().join("data/wars/tmp")), Vec::<std::path::PathBuf>::new());
    assert_eq!(files_under(&dir.path().join("data/wars/sha256")), Vec::<std::path::PathBuf>::new());
    let listed: serde_json::Value = reqwest::Client::new().get(format!("{}/api/v1/wars", host.base)).bearer_auth(&tokens[0]).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

/// In process, with the caps raised so 600 uploads are all admitted (more than tokio's
/// 512 blocking threads): each holds a writer thread while it trickles a byte a second,
/// on the uploads' own pool. Meanwhile a deploy's lock renewal and the fenced record
/// write that follows it (the embedded store blocks on tokio's pool) and `/readyz`
/// stay under a second, and the lock is never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploys_lock_and_record_writes_stay_fast_while_600_uploads_trickle() {
    let _alone = crate::support::one_heavy_test_at_a_time();
    use axum::body::Body;
    use axum::http::{Method, Request};
    use warship_host::store::{put_json_held, Precondition};

    let app = std::sync::Arc::new(
        crate::support::TestApp::embedded_with(|c| {
            c.uploads.max_concurrent = SLOW;
            c.uploads.max_concurrent_per_user = SLOW;
        })
        .await,
    );
    let token = app.user("slow").await;
    let uploads: Vec<_> = (0..SLOW)
        .map(|i| {
            let body = futures_util::stream::unfold(0, |sent| async move {
                if sent == 8 {
                    return None;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")),
                    sent + 1,
                ))
            });
            let request = Request::put(format!("/api/v1/wars/shop/slow-{i}.war"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/octet-stream")
                .body(Body::from_stream(body))
                .unwrap();
            let app = app.clone();
            tokio::spawn(async move { app.send(request).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let store = app.state.store.clone();
    let lease = store
        .try_lock("locks/envs/slow/shop", "host-a", Duration::from_secs(15))
        .await
        .unwrap();
    let (mut renewals, mut writes, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for step in 0..24u32 {
        let at = Instant::now();
        store
            .renew_lock(&lease)
            .await
            .expect("the deploy keeps its lock");
        renewals.push(at.elapsed());
        let at = Instant::now();
        put_json_held(
            &*store,
            "deploys/slow/record",
            &step,
            Precondition::Any,
            &lease,
        )
        .await
        .unwrap();
        writes.push(at.elapsed());
        let at = Instant::now();
        let reply = app.call(Method::GET, "/readyz", None, None).await;
        assert!(reply.status.is_success(), "{}", reply.text);
        ready.push(at.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut statuses = std::collections::BTreeMap::new();
    for upload in uploads {
        *statuses.entry(upload.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    let worst = |d: &Vec<Duration>| *d.iter().max().unwrap();
    eprintln!(
        "600 uploads in process, answered {statuses:?}: lock renewal worst {:?}, fenced record write worst {:?}, /readyz worst {:?}",
        worst(&renewals),
        worst(&writes),
        worst(&ready)
    );
    // Every upload was admitted and trickled to its end (8 bytes are no WAR).
    assert_eq!(statuses.get(&422), Some(&SLOW), "{statuses:?}");
    for (what, times) in [
        ("lock renewal", &renewals),
        ("fenced record write", &writes),
        ("/readyz", &ready),
    ] {
        assert!(
            worst(times) < Duration::from_secs(1),
            "a {what} took {:?} beside 600 slow uploads",
            worst(times)
        );
    }
}
