//! The web console under `/ui`, over a real socket with reqwest, as a browser without
//! script sees it: login and its cookie, CSRF on every form, logout and expiry, pages
//! that render with nothing fetched from elsewhere, others' things answering 404, the
//! upload routes storing a real WAR, and the API's bearer tokens working unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{self, TestApp};

/// The app served on a loopback port, as `warship serve` serves it.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = warship_host::console::app(app.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// A browser without script: keeps cookies, follows no redirect by itself.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").map(|v| v.to_str().unwrap()).unwrap_or_default()
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let (_, rest) =
            self.text.split_once(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field in {}", self.text));
        rest.split('"').next().unwrap().to_owned()
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: base.to_owned(), client, cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request.header("cookie", self.cookie_header()).send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        for cookie in headers.get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page { status, headers, text: response.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Signs in with `token` through the login form, as a person would.
    async fn login(&mut self, token: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let nonce = form.csrf();
        self.post("/ui/login", &[("csrf", &nonce), ("token", token), ("next", "/ui/envs")]).await
    }
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);

    let away = browser.get("/ui/envs").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location(), "/ui/login?next=%2Fui%2Fenvs");

    let wrong = browser.login("wsp_not-a-real-token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("This token is not known"), "{}", wrong.text);
    assert!(!browser.cookies.contains_key("warship_session"));

    let forged = browser.post("/ui/login", &[("csrf", "guessed"), ("token", &token)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "a login form not from this page is refused");

    let signed_in = browser.login(&token).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.text);
    assert_eq!(signed_in.location(), "/ui/envs");
    let cookie =
        signed_in.set_cookies().into_iter().find(|c| c.starts_with("warship_session=")).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "no Secure without TLS: {cookie}");
    let id = browser.cookies["warship_session"].clone();
    assert!(!id.contains(&token) && id.len() >= 64);

    let envs = browser.get("/ui/envs").await;
    assert_eq!(envs.status, StatusCode::OK);
    assert!(envs.text.contains(r#"<strong id="current-user">alice</strong>"#), "{}", envs.text);

    let refused = browser.post("/ui/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "logout needs the CSRF token too");
    let out = browser.post("/ui/logout", &[("csrf", &envs.csrf())]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, "/ui/login?signed_out=1"));
    assert!(!browser.cookies.contains_key("warship_session"), "the cookie is cleared");

    // The old cookie, kept by someone, opens nothing any more.
    browser.cookies.insert("warship_session".into(), id);
    let after = browser.get("/ui/envs").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().starts_with("/ui/login"));
}

#[tokio::test]
async fn an_expired_session_sends_the_browser_to_login_and_tls_makes_the_cookie_secure() {
    let app = TestApp::embedded_with(|config| {
        // Only read to decide the cookie's Secure attribute; nothing here serves TLS.
        config.server.tls_cert = Some("cert.pem".into());
        config.server.tls_key = Some("key.pem".into());
    })
    .await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    let signed_in = browser.login(&token).await;
    let cookie = signed_in.set_cookies().into_iter().find(|c| c.starts_with("warship_session=")).unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    let lifetime = warship_host::console::session::LIFETIME;
    let alice = warship_host::users::UserName::parse("alice").unwrap();
    let long_ago = time::OffsetDateTime::now_utc() - lifetime * 2;
    let (old, _) =
        warship_host::console::session::open(&app.state.store, alice, &token, long_ago, lifetime).await.unwrap();
    browser.cookies.insert("warship_session".into(), old);
    let page = browser.get("/ui/wars").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/ui/login?next=%2Fui%2Fwars&expired=1");
    let login = browser.get(page.location()).await;
    assert!(login.text.contains("Your session ended"), "{}", login.text);
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_elsewhere_are_refused_and_field_errors_land_beside_fields() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&token).await;
    let csrf = browser.get("/ui/envs").await.csrf();
    let shop = [("name", "shop"), ("runtime", "10.1/17"), ("replicas", "2"), ("context_path", "/")];

    let bare = browser.post("/ui/envs", &shop).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert!(bare.text.contains("console.csrf"), "{}", bare.text);
    let wrong = browser.post("/ui/envs", &[&shop[..], &[("csrf", "0".repeat(64).as_str())]].concat()).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let request = browser
        .client
        .post(format!("{base}/ui/envs"))
        .header("origin", "https://evil.example")
        .form(&[&shop[..], &[("csrf", csrf.as_str())]].concat());
    let elsewhere = browser.send(request).await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN, "a page elsewhere cannot post even with a stolen token");
    let none = app.call(reqwest_method("GET"), "/api/v1/envs", Some(&token), None).await;
    assert_eq!(none.body, json!([]), "nothing was created");

    let bad = browser
        .post(
            "/ui/envs",
            &[("csrf", &csrf), ("name", "Shop!"), ("runtime", "10.1/17"), ("replicas", "0"), ("env", "JAVA_OPTS=x")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let beside = |id: &str| {
        let (_, rest) = bad.text.split_once(&format!(r#"id="{id}-error">"#)).unwrap_or_else(|| panic!("no {id}-error"));
        rest.split("</p>").next().unwrap().to_owned()
    };
    assert!(beside("env-name").contains("env name"), "{}", beside("env-name"));
    assert!(beside("env-replicas").contains("replicas must be between"), "{}", beside("env-replicas"));
    assert!(beside("env-vars").contains("JAVA_OPTS"), "{}", beside("env-vars"));
    assert!(bad.text.contains(r#"value="Shop!""#), "what was typed is kept");

    let created = browser.post("/ui/envs", &[&shop[..], &[("csrf", csrf.as_str())]].concat()).await;
    assert_eq!((created.status, created.location()), (StatusCode::SEE_OTHER, "/ui/envs/shop"));
    let again = browser.post("/ui/envs", &[&shop[..], &[("csrf", csrf.as_str())]].concat()).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text.contains(r#"id="env-name-error">you already have an env named"#), "{}", again.text);

    let edited = browser
        .post(
            "/ui/envs/shop/edit",
            &[("csrf", &csrf), ("runtime", "10.1/21"), ("replicas", "3"), ("context_path", "/shop")],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.text);
    let env = app.call(reqwest_method("GET"), "/api/v1/envs/shop", Some(&token), None).await;
    assert_eq!(
        (env.body["jdk"].as_str(), env.body["replicas"].as_u64(), env.body["context_path"].as_str()),
        (Some("21"), Some(3), Some("/shop"))
    );

    // The deploy form: a setting of the wrong type, then one the strategy's schema refuses.
    let typed = browser
        .post(
            "/ui/envs/shop/deploy",
            &[
                ("csrf", &csrf),
                ("war", "x/x.war"),
                ("version", "1.0"),
                ("strategy", "rolling"),
                ("settings.rolling.max-surge", "lots"),
            ],
        )
        .await;
    assert_eq!(typed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        typed.text.contains(r#"id="setting-rolling-max-surge-error">max-surge must be a whole number"#),
        "{}",
        typed.text
    );
    let refused = browser
        .post(
            "/ui/envs/shop/deploy",
            &[
                ("csrf", &csrf),
                ("war", "x/x.war"),
                ("version", "1.0"),
                ("strategy", "rolling"),
                ("settings.rolling.max-surge", "0"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.text.contains(r#"id="setting-rolling-max-surge-error">strategy rolling refused these settings"#),
        "{}",
        refused.text
    );

    let deleted = browser.post("/ui/envs/shop/delete", &[("csrf", &csrf)]).await;
    assert_eq!((deleted.status, deleted.location()), (StatusCode::SEE_OTHER, "/ui/envs"));
    let gone = app.call(reqwest_method("GET"), "/api/v1/envs/shop", Some(&token), None).await;
    assert_eq!(gone.status.as_u16(), 404);
}

fn reqwest_method(name: &str) -> axum::http::Method {
    name.parse().unwrap()
}

#[tokio::test]
async fn bearer_tokens_work_unchanged_and_the_cookie_opens_no_api_route() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&token).await;
    let client = reqwest::Client::new();

    let api = client.get(format!("{base}/api/v1/envs")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    let created = client
        .post(format!("{base}/api/v1/envs"))
        .bearer_auth(&token)
        .json(&json!({"name": "shop", "tomcat": "10.1", "jdk": "17"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let with_cookie =
        client.get(format!("{base}/api/v1/envs")).header("cookie", browser.cookie_header()).send().await.unwrap();
    assert_eq!(with_cookie.status(), StatusCode::UNAUTHORIZED, "the session is the console's only");
    let page = browser.get("/ui/envs").await;
    assert!(page.text.contains(r#"<tr data-env="shop">"#), "what the API made, the console shows: {}", page.text);
}

#[tokio::test]
async fn another_users_env_and_war_answer_the_not_found_page() {
    let app = TestApp::embedded().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let created = app
        .call(
            reqwest_method("POST"),
            "/api/v1/envs",
            Some(&bob),
            Some(json!({"name": "shop", "tomcat": "10.1", "jdk": "17"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201);
    let war = std::fs::read(support::fixture("sample.war")).unwrap();
    assert_eq!(app.upload(&bob, "sample", "sample.war", war).await.status.as_u16(), 201);
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&alice).await;
    for path in [
        "/ui/envs/shop",
        "/ui/envs/shop/edit",
        "/ui/envs/shop/delete",
        "/ui/envs/shop/deploy",
        "/ui/envs/shop/logs",
        "/ui/envs/shop/status/events",
        "/ui/wars/sample/sample.war",
        "/ui/wars/sample/sample.war/delete",
        "/ui/deploys/0123456789abcdef0123456789abcdef",
        "/ui/envs/NOT_A_NAME",
        "/ui/nothing/here",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.text);
        assert!(page.text.contains(r#"id="not-found""#), "{path}: {}", page.text);
        assert!(!page.text.contains("bob"), "{path} tells nothing of bob");
    }
    let csrf = browser.get("/ui/envs").await.csrf();
    let delete = browser.post("/ui/envs/shop/delete", &[("csrf", &csrf)]).await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    let still = app.call(reqwest_method("GET"), "/api/v1/envs/shop", Some(&bob), None).await;
    assert_eq!(still.status.as_u16(), 200, "bob's env is untouched");
}

/// Form controls a screen reader could not name: neither a `<label for>` naming their
/// id nor an `aria-label` (hidden fields and buttons name themselves or need nothing).
fn unlabelled_controls(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["<input", "<select", "<textarea"] {
        for (at, _) in html.match_indices(kind) {
            let tag = &html[at..at + html[at..].find('>').unwrap_or(html.len() - at)];
            if ["type=\"hidden\"", "type=\"submit\"", "type=\"button\"", "aria-label="].iter().any(|t| tag.contains(t)) {
                continue;
            }
            let id = tag.split("id=\"").nth(1).and_then(|rest| rest.split('"').next());
            if !id.is_some_and(|id| html.contains(&format!("for=\"{id}\""))) {
                found.push(tag.to_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn every_page_renders_with_nothing_from_elsewhere_and_assets_are_cached() {
    // The label check itself tells a named control from one nobody named.
    assert_eq!(unlabelled_controls(r#"<label for="a">A</label><input id="a" name="a">"#), Vec::<String>::new());
    assert_eq!(unlabelled_controls(r#"<input id="b" name="b"><select name="c">"#).len(), 2);
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
    let war = std::fs::read(support::fixture("sample.war")).unwrap();
    assert_eq!(app.upload(&token, "sample", "sample.war", war).await.status.as_u16(), 201);
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    let login = browser.get("/ui/login").await;
    assert_eq!(login.status, StatusCode::OK);
    browser.login(&token).await;
    for path in [
        "/ui/envs",
        "/ui/envs/shop",
        "/ui/envs/shop/edit",
        "/ui/envs/shop/delete",
        "/ui/envs/shop/deploy",
        "/ui/envs/shop/logs",
        "/ui/wars",
        "/ui/wars/sample/sample.war",
        "/ui/wars/sample/sample.war/delete",
        "/ui/plugins",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        assert!(page.text.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(
            !page.text.contains("http://") && !page.text.contains("https://") && !page.text.contains("//cdn"),
            "{path} fetches nothing from elsewhere"
        );
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(page.headers["cache-control"], "no-store");
        assert!(page.text.contains(r#"<html lang="en">"#) && page.text.contains("<main"), "{path}");
        // Every page but the plain ones has controls, each of them named.
        let controls = ["<input", "<select", "<textarea"].iter().map(|k| page.text.matches(k).count()).sum::<usize>();
        assert!(controls > 0 || path == "/ui/plugins" || path.ends_with(".war"), "{path}: no form control at all");
        let unlabelled = unlabelled_controls(&page.text);
        assert!(unlabelled.is_empty(), "{path}: controls without a label: {unlabelled:?}");
    }
    let deploy = browser.get("/ui/envs/shop/deploy").await;
    for strategy in ["recreate", "rolling", "canary", "bluegreen"] {
        assert!(deploy.text.contains(&format!(r#"data-strategy="{strategy}""#)), "a settings fieldset for {strategy}");
    }
    assert!(
        deploy.text.contains(r#"id="setting-canary-steps""#)
            && deploy.text.contains(r#"<option value="sample/sample.war""#),
        "{}",
        deploy.text
    );
    let war = browser.get("/ui/wars/sample/sample.war").await;
    assert!(war.text.contains(r#"<dd data-fact="servlet-api">jakarta</dd>"#), "{}", war.text);
    let logs = browser.get("/ui/envs/shop/logs").await;
    assert!(logs.text.contains(r#"data-code="kubernetes.not_configured""#), "{}", logs.text);

    let script = browser.get("/ui/assets/console.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(script.headers["cache-control"].to_str().unwrap().contains("max-age"));
    let tag = script.headers["etag"].clone();
    let again = browser
        .client
        .get(format!("{base}/ui/assets/console.css"))
        .header("if-none-match", HeaderValue::from_static("\"x\""))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let cached =
        browser.client.get(format!("{base}/ui/assets/console.js")).header("if-none-match", tag).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn the_upload_routes_store_a_real_war_by_script_and_by_plain_form() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&token).await;
    let page = browser.get("/ui/wars").await;
    let csrf = page.csrf();
    let war = std::fs::read(support::fixture("sample.war")).unwrap();

    let bare = browser.client.put(format!("{base}/ui/wars/sample/sample.war")).body(war.clone());
    assert_eq!(browser.send(bare).await.status, StatusCode::FORBIDDEN);
    let wrong = browser
        .client
        .put(format!("{base}/ui/wars/sample/sample.war"))
        .header("x-csrf-token", "0".repeat(64))
        .body(war.clone());
    let refused = browser.send(wrong).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.headers["content-type"], "application/problem+json", "the script gets a problem it can read");
    assert!(refused.text.contains("console.csrf"), "{}", refused.text);

    let by_script =
        browser.client.put(format!("{base}/ui/wars/sample/sample.war")).header("x-csrf-token", &csrf).body(war.clone());
    let stored = browser.send(by_script).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
    let answer: serde_json::Value = serde_json::from_str(&stored.text).unwrap();
    assert_eq!(answer["location"], "/ui/wars/sample/sample.war");
    let api = app.call(reqwest_method("GET"), "/api/v1/wars/sample/sample.war", Some(&token), None).await;
    assert_eq!(api.body["sha256"], answer["sha256"]);
    assert_eq!(api.body["size"].as_u64(), Some(war.len() as u64));

    let bad_name =
        browser.client.put(format!("{base}/ui/wars/Sample/sample.txt")).header("x-csrf-token", &csrf).body(war.clone());
    let named = browser.send(bad_name).await;
    assert_eq!(named.status, StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = serde_json::from_str(&named.text).unwrap();
    assert_eq!(problem["code"], "war.invalid_name");

    let hello = std::fs::read(support::fixture("helloworld-webapp-2.34.war")).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("app", "hello")
        .text("file", "")
        .part("war", reqwest::multipart::Part::bytes(hello.clone()).file_name("helloworld-webapp-2.34.war"));
    let plain = browser.client.post(format!("{base}/ui/wars?csrf={csrf}")).multipart(form);
    let kept = browser.send(plain).await;
    assert_eq!(
        (kept.status, kept.location()),
        (StatusCode::SEE_OTHER, "/ui/wars/hello/helloworld-webapp-2.34.war"),
        "{}",
        kept.text
    );
    let listed = browser.get("/ui/wars").await;
    assert!(listed.text.contains(r#"<tr data-war="hello/helloworld-webapp-2.34.war">"#), "{}", listed.text);

    let not_a_war = reqwest::multipart::Form::new()
        .text("app", "junk")
        .part("war", reqwest::multipart::Part::bytes(b"not a zip".to_vec()).file_name("junk.war"));
    let junk = browser.send(browser.client.post(format!("{base}/ui/wars?csrf={csrf}")).multipart(not_a_war)).await;
    assert_eq!(junk.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(junk.text.contains(r#"id="upload-war-error">"#) && junk.text.contains("nothing was kept"), "{}", junk.text);

    let csrf = browser.get("/ui/wars/hello/helloworld-webapp-2.34.war").await.csrf();
    let deleted = browser.post("/ui/wars/hello/helloworld-webapp-2.34.war/delete", &[("csrf", &csrf)]).await;
    assert_eq!((deleted.status, deleted.location()), (StatusCode::SEE_OTHER, "/ui/wars"));
}

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
