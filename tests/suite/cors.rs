//! `[server.cors]` against a real `warship serve`: preflights as a browser sends them,
//! and a real Chromium calling the API from a page of another origin (it makes the
//! preflight itself), allowed from a listed origin and blocked from any other.

use crate::support;

use serde_json::{json, Value};
use support::browser::Browser;
use support::free_port;
use support::host::Host;

/// A page server on its own loopback port: another origin than the host's. It serves
/// one empty page; the test's scripts run in it.
struct PageOrigin {
    origin: String,
    server: tokio::task::JoinHandle<()>,
}

impl PageOrigin {
    async fn start() -> PageOrigin {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let page = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                axum::response::Html("<!doctype html><title>front end</title><p>another origin</p>")
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, page).await.unwrap() });
        PageOrigin { origin: format!("http://127.0.0.1:{port}"), server }
    }
}

impl Drop for PageOrigin {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn preflight(base: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/envs"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_allow_listed_origins_and_credentials_only_for_the_consoles() {
    let dir = tempfile::tempdir().unwrap();
    let (front, console) = ("https://app.example.com", "https://console.example.com");
    let cors =
        format!("[server.cors]\nallowed_origins = [\"{front}\"]\nconsole_origin = \"{console}\"\nmax_age_secs = 300\n");
    let (host, tokens) = Host::start(dir.path(), "host", &cors, &["alice"]);

    let allowed = preflight(&host.base, front).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(front));
    assert_eq!(
        header(&allowed, "access-control-allow-credentials"),
        None,
        "a front end elsewhere sends a bearer token, never cookies"
    );
    assert_eq!(header(&allowed, "access-control-max-age"), Some("300"));
    let methods = header(&allowed, "access-control-allow-methods").unwrap().to_ascii_uppercase();
    assert!(methods.contains("POST") && methods.contains("DELETE"), "{methods}");
    let headers = header(&allowed, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");

    let from_console = preflight(&host.base, console).await;
    assert_eq!(header(&from_console, "access-control-allow-origin"), Some(console));
    assert_eq!(header(&from_console, "access-control-allow-credentials"), Some("true"));

    let stranger = preflight(&host.base, "https://evil.example").await;
    assert_eq!(header(&stranger, "access-control-allow-origin"), None, "an unlisted origin is not echoed");
    assert_eq!(header(&stranger, "access-control-allow-credentials"), None);

    // The call itself: the origin echoed, and what a script needs to read exposed.
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/envs", host.base))
        .header("Origin", front)
        .bearer_auth(&tokens[0])
        .json(&json!({"name": "shop", "tomcat": "10.1", "jdk": "17"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(header(&created, "access-control-allow-origin"), Some(front));
    let exposed = header(&created, "access-control-expose-headers").unwrap().to_ascii_lowercase();
    assert!(exposed.contains("location") && exposed.contains("x-request-id"), "{exposed}");
    assert!(
        header(&created, "vary").unwrap_or_default().to_ascii_lowercase().contains("origin"),
        "caches keep answers per origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_settings_no_origin_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _) = Host::start(dir.path(), "host", "", &[]);
    let answer = preflight(&host.base, "https://app.example.com").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    assert!(answer.status().is_client_error(), "no route takes OPTIONS: {}", answer.status());
}

/// The browser decides: a page from a listed origin creates an env with its bearer token
/// (Chromium sends the preflight, then the POST); the same script from a page of an
/// unlisted origin is blocked by the browser, and the host created nothing for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_of_a_listed_origin_calls_the_api_and_one_of_another_is_blocked() {
    let (listed, unlisted) = (PageOrigin::start().await, PageOrigin::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cors = format!("[server.cors]\nallowed_origins = [\"{}\"]\n", listed.origin);
    let (host, tokens) = Host::start(dir.path(), "host", &cors, &["alice"]);
    let browser = Browser::start("cors", &listed.origin).await;

    let create = |name: &str| {
        format!(
            "return fetch('{}/api/v1/envs', {{method: 'POST', headers: {{'Authorization': 'Bearer {}', 'Content-Type': 'application/json'}}, \
             body: JSON.stringify({{name: '{name}', tomcat: '10.1', jdk: '17'}})}})\
             .then(r => r.json().then(body => ({{status: r.status, name: body.name, location: r.headers.get('Location')}})))\
             .catch(e => ({{blocked: String(e)}}))",
            host.base, tokens[0]
        )
    };
    browser.goto("/").await;
    let answer = browser.eval(&create("from-front")).await;
    assert_eq!(answer["status"], json!(201), "{answer}");
    assert_eq!(answer["name"], json!("from-front"), "{answer}");
    assert_eq!(answer["location"], json!("/api/v1/envs/from-front"), "the exposed Location is readable: {answer}");

    browser.client().goto(&format!("{}/", unlisted.origin)).await.unwrap();
    let answer = browser.eval(&create("from-elsewhere")).await;
    assert!(answer["blocked"].as_str().is_some_and(|e| e.contains("Failed to fetch")), "{answer}");
    browser.close().await;

    let envs: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/envs", host.base))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = envs.as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["from-front"], "the preflight stopped the other page's POST before it reached a handler");
}
