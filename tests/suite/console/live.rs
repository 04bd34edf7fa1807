//! The live pages: the env's status tree and a deploy's events over SSE with the session
//! cookie, ending once signed out or once the deploy ended.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{reqwest_method, serve, Browser};
use crate::support::TestApp;

#[tokio::test]
async fn the_env_page_streams_its_status_tree_over_sse_with_the_cookie() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let created = app
        .call(
            reqwest_method("POST"),
            "/api/v1/envs",
            Some(&token),
            Some(json!({"name": "shop", "tomcat": "10.1", "jdk": "17"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201);
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&token).await;
    let page = browser.get("/ui/envs/shop").await;
    assert!(page.text.contains(r#"data-live="/ui/envs/shop/status/events""#), "{}", page.text);

    let mut events = browser
        .client
        .get(format!("{base}/ui/envs/shop/status/events"))
        .header("cookie", browser.cookie_header())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await.unwrap().unwrap().unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(first.starts_with("event: fragments\ndata: {"), "{first}");
    assert!(first.contains("status-tree") && first.contains("No Kubernetes cluster is configured"), "{first}");

    // Signing out in another tab ends the open stream with `signed-out`.
    let csrf = browser.get("/ui/envs").await.csrf();
    assert_eq!(browser.post("/ui/logout", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    let rest = tokio::time::timeout(Duration::from_secs(15), events.text())
        .await
        .expect("the stream ends once signed out")
        .unwrap();
    assert!(rest.trim_end().ends_with("event: signed-out\ndata: signed out"), "{rest}");

    let signed_out = reqwest::Client::new()
        .get(format!("{base}/ui/envs/shop/status/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::UNAUTHORIZED, "an event source gets a status, not a login page");
}

#[tokio::test]
async fn a_deploys_page_follows_its_events_and_shows_only_the_buttons_that_apply() {
    use warship_host::deploys::record::{failure, note_milestone};
    use warship_host::deploys::{DeployEvent, DeployRecord, DeployStatus, StrategyStep, WorkloadReplicas};
    use warship_host::journal::{self, Journal};

    let app = TestApp::embedded().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    // In-process apps have no cluster to run a deploy: its record and events are written
    // where a running deploy writes them (deploys' and the journal's keys).
    let id = "0123456789abcdef0123456789abcdef";
    let mut record =
        DeployRecord::queued(id.into(), "shop".into(), 2, Some(1), ("canary".into(), json!({})), "alice".into());
    record.war = "shop/shop-2.0.war".into();
    record.version = "2.0".into();
    record.status = DeployStatus::RollingOut;
    let since = time::OffsetDateTime::now_utc();
    let step = |index, action: &str, description: &str| StrategyStep {
        index,
        action: action.into(),
        description: description.into(),
        memory: String::new(),
        since,
    };
    record.step = Some(step(2, "await-promotion", "canary at 10%: waiting for someone to promote it"));
    note_milestone(&mut record);
    let store = app.state.store.clone();
    let key = format!("u/alice/deploys/{id}");
    warship_host::store::put_json(&*store, &key, &record, warship_host::store::Precondition::Any).await.unwrap();
    let events: Journal<DeployEvent> =
        Journal::open(&store, journal::prefix("alice", "deploy", id), None).await.unwrap();
    events.append(&DeployEvent::Record(Box::new(record.clone()))).await.unwrap();
    let replicas = |revision, replicas, ready| WorkloadReplicas { revision, replicas, ready, restarts: 0 };
    events
        .append(&DeployEvent::Replicas { stable: Some(replicas(1, 2, 2)), candidate: replicas(2, 1, 1) })
        .await
        .unwrap();

    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&alice).await;
    let page = browser.get(&format!("/ui/deploys/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    for part in [
        r#"data-deploy-status="rolling-out""#,
        r#"data-live="/ui/deploys/0123456789abcdef0123456789abcdef/events""#,
        r#"<form id="promote-form""#,
        r#"<form id="abort-form""#,
        "canary at 10%: waiting for someone to promote it",
        r#"id="timeline""#,
        r#"id="replicas-candidate""#,
    ] {
        assert!(page.text.contains(part), "{part} in {}", page.text);
    }
    let promoted = browser.post(&format!("/ui/deploys/{id}/promote"), &[("csrf", &page.csrf())]).await;
    assert_eq!((promoted.status, promoted.location()), (StatusCode::SEE_OTHER, format!("/ui/deploys/{id}").as_str()));

    let mut other = Browser::new(&base);
    other.login(&bob).await;
    for path in [format!("/ui/deploys/{id}"), format!("/ui/deploys/{id}/events")] {
        assert_eq!(other.get(&path).await.status, StatusCode::NOT_FOUND, "{path} is alice's");
    }

    record.status = DeployStatus::Failed;
    record.step = None;
    let mut why = failure("rollout.failed", "the app keeps crashing: pod shop-r2-5d8f-x2x9z's container restarted 3 times; read the whole log with GET /api/v1/envs/shop/logs?pod=shop-r2-5d8f-x2x9z");
    why.cause = Some(warship_host::cluster::diagnosis::Cause::CrashLoop);
    record.error = Some(why);
    record.finished_at = Some(time::OffsetDateTime::now_utc());
    note_milestone(&mut record);
    warship_host::store::put_json(&*store, &key, &record, warship_host::store::Precondition::Any).await.unwrap();
    let last = events.append(&DeployEvent::Record(Box::new(record.clone()))).await.unwrap();

    let stream = browser
        .client
        .get(format!("{base}/ui/deploys/{id}/events"))
        .header("cookie", browser.cookie_header())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), stream.text())
        .await
        .expect("the stream ends with the deploy")
        .unwrap();
    assert!(text.contains("id: 1\n") && text.contains(&format!("id: {last}\n")), "{text}");
    assert!(text.contains(r#""data-deploy-status":"failed""#) && text.contains("replicas-candidate"), "{text}");
    assert!(text.trim_end().ends_with("event: end\ndata: over"), "{text}");
    let again = browser
        .client
        .get(format!("{base}/ui/deploys/{id}/events"))
        .header("cookie", browser.cookie_header())
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(10), again.text()).await.unwrap().unwrap();
    assert_eq!(rest.trim_end(), "event: end\ndata: over", "a reconnect after the end hears only the end");

    let ended = browser.get(&format!("/ui/deploys/{id}")).await;
    assert!(!ended.text.contains("promote-form") && !ended.text.contains("abort-form"), "no button once it ended");
    assert!(ended.text.contains(r#"data-code="rollout.failed" data-cause="crash-loop""#), "{}", ended.text);
    assert!(
        ended.text.contains(r#"<a id="failure-logs" href="/ui/envs/shop/logs?pod=shop-r2-5d8f-x2x9z">"#),
        "{}",
        ended.text
    );
    assert!(ended.text.contains("The app keeps crashing."), "{}", ended.text);
}
