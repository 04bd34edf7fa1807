use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

use super::*;
use crate::deploys::DeployStatus;
use crate::plugins::{Plugins, Runtime};

fn config(dir: &std::path::Path, webhooks: &str) -> Config {
    let text = format!("plugins = []\n[store]\ndata_dir = \"{}\"\n[webhooks]\n{webhooks}\n", dir.display());
    Config::from_toml(&text, std::path::Path::new("platform.toml"), []).unwrap()
}

fn service(webhooks: &str) -> (Arc<Webhooks>, DynStore, tempfile::TempDir) {
    let (store, dir) = store::scratch();
    let config = Arc::new(config(dir.path(), webhooks));
    let plugins = Arc::new(Plugins::load(&Runtime::new(None).unwrap(), &config).unwrap());
    let envs = Envs::new(store.clone(), config.clone(), plugins);
    (Webhooks::new(store.clone(), config, envs), store, dir)
}

fn new_endpoint(url: &str) -> NewEndpoint {
    NewEndpoint {
        url: url.into(),
        events: None,
        format: Format::Json,
        secret: Some("a-secret-of-16-chars".into()),
        env: None,
        user: None,
    }
}

fn alice() -> UserName {
    UserName::parse("alice").unwrap()
}

/// A receiver on loopback answering the statuses given, then 200; what it received.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receiver(failures: usize) -> Receiver {
    let received: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (seen, calls) = (seen.clone(), calls.clone());
            async move {
                seen.lock().unwrap().push((headers, body));
                match calls.fetch_add(1, Ordering::SeqCst) < failures {
                    true => StatusCode::INTERNAL_SERVER_ERROR,
                    false => StatusCode::NO_CONTENT,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, received }
}

async fn ended(webhooks: &Webhooks, endpoint: &str) -> Delivery {
    for _ in 0..200 {
        let log = webhooks.deliveries_admin(endpoint).await.unwrap();
        if let Some(done) = log.first().filter(|d| d.outcome != Outcome::Pending) {
            return done.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the delivery did not end: {:?}", webhooks.deliveries_admin(endpoint).await.unwrap());
}

#[tokio::test]
async fn endpoints_are_checked_whole_and_their_secret_is_shown_once() {
    let (webhooks, _store, _dir) = service("");
    let refused = NewEndpoint {
        url: "ftp://x".into(),
        events: Some(vec!["deploy.started".into(), "deploy.exploded".into()]),
        secret: Some("short".into()),
        ..new_endpoint("")
    };
    let Err(WebhookError::Invalid(problems)) = webhooks.add_admin(&alice(), refused).await else { panic!("accepted") };
    let fields: Vec<(&str, &str)> = problems.iter().map(|v| (v.field.as_str(), v.code.as_str())).collect();
    assert_eq!(
        fields,
        [("url", "webhook.url.invalid"), ("events[1]", "webhook.events.unknown"), ("secret", "webhook.secret.invalid")]
    );

    // An admin's endpoint may point anywhere, loopback included.
    let made = webhooks
        .add_admin(&alice(), NewEndpoint { secret: None, ..new_endpoint("http://127.0.0.1:9/hook") })
        .await
        .unwrap();
    assert!(made.secret.as_deref().is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(made.events, EventKind::ALL);
    let listed = webhooks.list_admin().await.unwrap();
    assert_eq!((listed.len(), listed[0].secret.as_deref()), (1, None), "the secret is not shown again");
    assert_eq!(webhooks.get_admin(&made.id).await.unwrap().url, "http://127.0.0.1:9/hook");
    webhooks.remove_admin(&made.id).await.unwrap();
    assert!(matches!(webhooks.get_admin(&made.id).await, Err(WebhookError::NotFound(_))));
    assert!(matches!(webhooks.get_admin("../users").await, Err(WebhookError::NotFound(_))));
}

#[tokio::test]
async fn users_add_endpoints_only_when_allowed_and_not_at_internal_addresses() {
    let (webhooks, _store, _dir) = service("");
    let shop = EnvName::parse("shop").unwrap();
    let refused = webhooks.add_to_env(&alice(), &shop, new_endpoint("https://hooks.example.com/")).await;
    assert!(matches!(refused, Err(WebhookError::UsersMayNotAdd)), "{refused:?}");

    let (webhooks, _store, _dir) = service("users_may_add = true");
    // No such env: not found, before the URL is looked at.
    let missing = webhooks.add_to_env(&alice(), &shop, new_endpoint("http://127.0.0.1:9/")).await;
    assert!(matches!(missing, Err(WebhookError::Env(EnvError::NotFound(_)))), "{missing:?}");
    // The URL check alone (the env check needs an env): loopback is refused for users.
    let problems =
        match webhooks.checked(&alice(), new_endpoint("http://127.0.0.1:9/"), Owner::Admin, Vec::new(), false).await {
            Err(WebhookError::Invalid(problems)) => problems,
            other => panic!("{other:?}"),
        };
    assert_eq!(problems[0].code, "webhook.url.private");
    assert!(problems[0].message.contains("webhooks.allow_private_addresses"), "{}", problems[0].message);
}

#[tokio::test]
async fn a_delivery_is_signed_retried_with_backoff_and_lands() {
    let (webhooks, _store, _dir) = service("max_attempts = 4\nbackoff_initial_ms = 100\ntimeout_secs = 2");
    let receiver = receiver(2).await;
    let endpoint = webhooks.add_admin(&alice(), new_endpoint(&receiver.url)).await.unwrap();
    let mut record = DeployRecord::queued(
        "d".repeat(32),
        "shop".into(),
        1,
        None,
        ("rolling".into(), serde_json::json!({})),
        "alice".into(),
    );
    let queued = Phase::of(&record);
    record.status = DeployStatus::Validating;
    webhooks.changed(&alice(), queued, &record);

    let delivery = ended(&webhooks, &endpoint.id).await;
    assert_eq!(delivery.outcome, Outcome::Delivered);
    let statuses: Vec<Option<u16>> = delivery.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(204)]);
    let gaps: Vec<i128> = delivery.attempts.windows(2).map(|w| (w[1].at - w[0].at).whole_milliseconds()).collect();
    assert!(gaps[0] >= 100 && gaps[1] >= 200, "waits of 100 then 200 ms: {gaps:?}");

    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    for (headers, body) in &received {
        assert_eq!(body, &delivery.body, "the same bytes every time");
        assert_eq!(headers["warship-event"], "deploy.started");
        assert_eq!(headers["warship-delivery"], delivery.id.as_str());
        let signature = headers["warship-signature"].to_str().unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(signing::verify("a-secret-of-16-chars", signature, body.as_bytes(), now, 60), "{signature}");
    }
    let payload: Payload = serde_json::from_str(&received[0].1).unwrap();
    assert_eq!(
        (payload.id.as_str(), payload.kind, payload.env.as_str()),
        (delivery.id.as_str(), EventKind::Started, "shop")
    );
}

#[tokio::test]
async fn a_pending_delivery_whose_host_stopped_is_taken_over_and_goes_on_from_its_last_attempt() {
    let (webhooks, store, _dir) = service("backoff_initial_ms = 50");
    let receiver = receiver(0).await;
    let endpoint = webhooks.add_admin(&alice(), new_endpoint(&receiver.url)).await.unwrap();
    // What a host that stopped after one failed attempt leaves: the record, its index
    // entry, and no lease (it lapsed).
    let now = OffsetDateTime::now_utc();
    let id = "e".repeat(32);
    let first = Attempt { at: now, status: Some(503), error: Some("the endpoint answered 503".into()), duration_ms: 3 };
    let delivery = Delivery {
        id: id.clone(),
        endpoint: endpoint.id.clone(),
        event: EventKind::Failed,
        user: "alice".into(),
        env: "shop".into(),
        deploy: "d".repeat(32),
        outcome: Outcome::Pending,
        attempts: vec![first],
        created_at: now,
        next_attempt_at: Some(now),
        given_up: None,
        body: "{}".into(),
    };
    let delivery_key = keys::delivery(&endpoint.id, now, &id);
    store::put_json(&*store, &delivery_key, &delivery, Precondition::Absent).await.unwrap();
    let pending = serde_json::json!({"endpoint": keys::admin(&endpoint.id), "delivery": delivery_key});
    store::put_json(&*store, &keys::pending(&id), &pending, Precondition::Absent).await.unwrap();

    crate::jobs::Recover::recover_once(webhooks.clone()).await.unwrap();
    let resumed = ended(&webhooks, &endpoint.id).await;
    assert_eq!(resumed.outcome, Outcome::Delivered);
    assert_eq!(resumed.attempts.iter().map(|a| a.status).collect::<Vec<_>>(), [Some(503), Some(204)]);
    for _ in 0..50 {
        if store.get(&keys::pending(&id)).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("an ended delivery stays in the pending index");
}

#[tokio::test]
async fn the_log_keeps_the_newest_deliveries() {
    let (webhooks, _store, _dir) = service("deliveries_kept = 2");
    let receiver = receiver(0).await;
    let endpoint = webhooks.add_admin(&alice(), new_endpoint(&receiver.url)).await.unwrap();
    let mut deploys = Vec::new();
    for n in 0..3 {
        let id = format!("{n}").repeat(32);
        let mut record = DeployRecord::queued(
            id.clone(),
            "shop".into(),
            1,
            None,
            ("rolling".into(), serde_json::json!({})),
            "alice".into(),
        );
        let queued = Phase::of(&record);
        record.status = DeployStatus::Validating;
        webhooks.changed(&alice(), queued, &record);
        // Each ended before the next begins, so the oldest can go.
        while ended(&webhooks, &endpoint.id).await.deploy != id {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        deploys.push(id);
    }
    let log: Vec<String> =
        webhooks.deliveries_admin(&endpoint.id).await.unwrap().into_iter().map(|d| d.deploy).collect();
    assert_eq!(log, [deploys[2].clone(), deploys[1].clone()], "newest first, the oldest gone");
}
