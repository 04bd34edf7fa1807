//! The web console in a real browser (issue 18): Debian's Chromium, headless, driven through
//! chromedriver by WebDriver, against a real `warship serve` with Debian's docker-registry
//! and the local cluster's real node (Tomcat really runs, so logs are Tomcat's own).
//! Every page the flow visits is saved at 1280 and 390 px under
//! `target/screenshots/<test>/` (not committed).

use crate::support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::browser::{Browser, WAIT};
use support::host::{config_for, Host};
use support::{fixture, KubeCluster, Registry};

/// How long a deploy on the real node may take (image pull, Tomcat's start, drains).
const DEPLOY: Duration = Duration::from_secs(180);

/// The sign-in page alone: it answers, says what went wrong with a bad token, and a good
/// one lands on the page asked for. Needs no cluster: the quick check that the console
/// and the browser harness work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_refuses_a_bad_token_and_a_good_one_lands_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (host, tokens) = Host::start(dir.path(), "host", "", &["alice"]);
    let browser = Browser::start("login", &host.base).await;

    browser.goto("/ui/envs").await;
    let at = browser.wait_path("/ui/login", WAIT).await;
    assert!(at.contains("next="), "the login page keeps where the user was going: {at}");
    browser.find("form#login-form").await;
    browser.shoot("login").await;
    browser.fill("#login-token", "not-a-token").await;
    browser.click_button("Sign in").await;
    browser.wait_element("#login-token-error:not(:empty)", WAIT).await;
    let said = browser.text_of("#login-token-error").await;
    assert_eq!(
        browser.find("#login-token").await.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true"),
        "{said}"
    );
    browser.shoot("login-refused").await;

    browser.fill("#login-token", &tokens[0]).await;
    browser.click_button("Sign in").await;
    browser.wait_path("/ui/envs", WAIT).await;
    browser.wait_text_in("#current-user", "alice", WAIT).await;
    browser.find("p#no-envs").await;

    // Signed out, every page sends the browser back to the login form.
    browser.click_button("Sign out").await;
    browser.wait_path("/ui/login", WAIT).await;
    assert_eq!(browser.fetch("/ui/envs").await.0, 303, "no session, no page");
    browser.goto("/ui/wars").await;
    let at = browser.wait_path("/ui/login", WAIT).await;
    assert!(at.contains("next="), "{at}");
    browser.close().await;
}

/// Everything a user does in the console, in one browser, on a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_creates_uploads_canaries_promotes_rolls_back_reads_logs_and_signs_out_in_a_real_browser() {
    let started = Instant::now();
    // Every real part; the real node holds the machine's one-heavy-test lock.
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start_with_real_node();
    cluster.trust_registry(&registry.addr);
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}{}", config_for(&registry, &cluster, ""), cluster.gateway_config());
    let (host, tokens) = Host::start(dir.path(), "host", &config, &["alice", "bob"]);
    let (alice, bob) = (tokens[0].as_str(), tokens[1].as_str());
    // Bob's env, which alice must not see.
    let (status, env) =
        host.post("/api/v1/envs", bob, json!({"name": "secret", "tomcat": "10.1", "jdk": "17", "replicas": 1})).await;
    assert_eq!(status, 201, "{env}");
    let b = Browser::start("flow", &host.base).await;
    b.track_event_sources().await;
    let fail = |what: &str| format!("{what}\nhost log:\n{}", host.log_tail());

    // Sign in.
    b.goto("/ui/login").await;
    b.fill("#login-token", alice).await;
    b.click_button("Sign in").await;
    b.wait_path("/ui/envs", WAIT).await;
    b.shoot("envs-empty").await;

    // An env with a bad field: the error is shown by that field, and what was typed stays.
    b.fill("#env-name", "Shop").await;
    b.select("#env-runtime", "10.1/17").await;
    b.fill("#env-replicas", "2").await;
    b.click_button("Create env").await;
    b.wait_element("#env-name-error:not(:empty)", WAIT).await;
    let error = b.text_of("#env-name-error").await;
    assert_eq!(b.find("#env-name").await.attr("aria-invalid").await.unwrap().as_deref(), Some("true"), "{error}");
    assert_eq!(
        b.find("#env-replicas").await.prop("value").await.unwrap().as_deref(),
        Some("2"),
        "the form keeps what was typed"
    );
    assert_eq!(b.text_of("#env-replicas-error").await, "", "only the bad field has an error");
    b.shoot("envs-field-error").await;
    // Fixed, it is created and its page shown.
    b.fill("#env-name", "shop").await;
    b.click_button("Create env").await;
    b.wait_path("/ui/envs/shop", WAIT).await;
    b.find("#env[data-env=\"shop\"]").await;
    b.find("#no-releases").await;

    // Real WARs, uploaded with their progress shown: a 5 MiB one slowed to 1 MiB/s so the
    // bar can be seen part way, then the one deployed below.
    b.goto("/ui/wars").await;
    b.shoot("wars-empty").await;
    let big = fixture("helloworld-webapp-2.34.war");
    let size = std::fs::metadata(&big).unwrap().len();
    b.throttle_upload(Some(1 << 20)).await;
    b.eval(
        r#"const bar = document.getElementById("upload-progress"), status = document.getElementById("upload-status");
        sessionStorage.setItem("progress", "[]");
        const note = () => { const seen = JSON.parse(sessionStorage.getItem("progress"));
            seen.push([Number(bar.value), Number(bar.max), status.textContent]); sessionStorage.setItem("progress", JSON.stringify(seen)); };
        new MutationObserver(note).observe(bar, {attributes: true});
        new MutationObserver(note).observe(status, {childList: true, characterData: true, subtree: true});
        return null"#,
    )
    .await;
    b.fill("#upload-app", "hello").await;
    b.choose_file("#upload-war", &big).await;
    b.click_button("Upload").await;
    let bar = "document.getElementById('upload-progress')";
    b.wait_js(&format!("{bar}.value > {bar}.max * 0.3 && {bar}.value < {bar}.max"), Duration::from_secs(20)).await;
    b.shoot("wars-uploading").await;
    b.wait_path("/ui/wars/hello/helloworld-webapp-2.34.war", Duration::from_secs(60)).await;
    b.throttle_upload(None).await;
    let seen = b.eval(r#"return JSON.parse(sessionStorage.getItem("progress") || "[]")"#).await;
    let seen = seen.as_array().unwrap();
    let values: Vec<u64> = seen.iter().map(|s| s[0].as_f64().unwrap() as u64).collect();
    assert!(
        values.iter().filter(|&&v| v > 0 && v < size).count() >= 2,
        "the bar moved part way ({size} bytes): {seen:?}"
    );
    assert!(values.contains(&size), "the bar reached the whole WAR: {seen:?}");
    assert!(seen.iter().any(|s| s[2].as_str().unwrap().contains("/s")), "bytes and rate were shown: {seen:?}");
    b.goto("/ui/wars").await;
    b.fill("#upload-app", "sample").await;
    b.choose_file("#upload-war", &fixture("sample.war")).await;
    b.click_button("Upload").await;
    b.wait_path("/ui/wars/sample/sample.war", Duration::from_secs(30)).await;
    b.wait_text_in("dd[data-fact=\"servlet-api\"]", "", WAIT).await;
    let api = b.text_of("dd[data-fact=\"servlet-api\"]").await;
    assert!(api.to_lowercase().contains("jakarta"), "sample.war's classes use jakarta.servlet: {api}");
    b.shoot("war").await;
    b.goto("/ui/wars").await;
    b.find("tr[data-war=\"sample/sample.war\"]").await;
    b.shoot("wars").await;

    // Release 1, rolling, from the deploy form.
    b.goto("/ui/envs/shop").await;
    b.click("#deploy-link").await;
    b.wait_path("/ui/envs/shop/deploy", WAIT).await;
    b.select("#deploy-war", "sample/sample.war").await;
    b.fill("#deploy-version", "1.0").await;
    b.select("#deploy-strategy", "rolling").await;
    b.shoot("deploy-form").await;
    b.click_button("Deploy").await;
    let first = b.wait_path("/ui/deploys/", WAIT).await;
    b.wait_element("#deploy[data-deploy-status=\"succeeded\"]", DEPLOY).await;
    b.shoot("deploy-succeeded").await;

    // Release 2 as a canary that waits for promotion; its timeline moves without a reload.
    b.goto("/ui/envs/shop/deploy").await;
    b.select("#deploy-war", "sample/sample.war").await;
    b.fill("#deploy-version", "2.0").await;
    b.select("#deploy-strategy", "canary").await;
    b.fill("#setting-canary-steps", r#"[{"weight": 50}, {"await-promotion": true}]"#).await;
    b.shoot("deploy-form-canary").await;
    b.click_button("Deploy").await;
    let canary = b.wait_path("/ui/deploys/", WAIT).await;
    assert_ne!(canary, first);
    b.eval("window.__notReloaded = true; return null").await;
    let at_load = b.eval("return document.querySelectorAll('#timeline li').length").await.as_u64().unwrap();
    b.wait_element("form#promote-form", DEPLOY).await;
    b.wait_text_in("#deploy-summary", "promot", WAIT).await;
    let now = b.eval("return document.querySelectorAll('#timeline li').length").await.as_u64().unwrap();
    assert!(now > at_load, "the timeline grew from {at_load} entries to {now}, live");
    assert_eq!(b.eval("return window.__notReloaded === true").await, json!(true), "the page was not reloaded");
    assert!(
        b.event_sources().await.iter().any(|(url, _)| url.contains("/events")),
        "the deploy page follows its events"
    );
    b.wait_element("#timeline li[data-status=\"rolling-out\"]", WAIT).await;
    b.shoot("deploy-awaiting-promotion").await;
    b.click_button("Promote").await;
    b.wait_element("#deploy[data-deploy-status=\"succeeded\"]", DEPLOY).await;
    assert!(
        b.client().find(fantoccini::Locator::Css("form#promote-form")).await.is_err(),
        "no Promote once it is over"
    );
    b.shoot("canary-promoted").await;

    // The env's status tree settles on release 2 alone, all pods ready, without a reload.
    b.goto("/ui/envs/shop").await;
    b.eval("window.__notReloaded = true; return null").await;
    let settled = "#status-tree li.workload[data-serving=\"true\"][data-ready=\"2\"][data-desired=\"2\"]";
    b.wait_element(settled, DEPLOY).await;
    wait_count(&b, "#status-tree li.workload", 1, DEPLOY).await;
    wait_count(&b, "#status-tree li.pod[data-ready=\"true\"]", 2, DEPLOY).await;
    b.wait_element("#serving[data-revision=\"2\"]", WAIT).await;
    assert_eq!(b.eval("return window.__notReloaded === true").await, json!(true), "the tree settled live");
    b.find("a#app-url").await;
    b.shoot("env-settled").await;

    // Roll back to release 1: a new release 3 on release 1's image.
    let question =
        b.click_css_confirming("#releases tr[data-revision=\"1\"] .rollback-form button[type=\"submit\"]").await;
    assert!(question.contains("release 1"), "the confirmation names the release: {question}");
    b.wait_path("/ui/deploys/", WAIT).await;
    b.wait_element("#deploy[data-deploy-status=\"succeeded\"]", DEPLOY).await;
    b.shoot("rollback-succeeded").await;
    b.goto("/ui/envs/shop").await;
    b.wait_element("#serving[data-revision=\"3\"]", WAIT).await;
    wait_count(&b, "#status-tree li.workload", 1, DEPLOY).await;
    let (_, env) = host.get("/api/v1/envs/shop", alice).await;
    let (_, first_record) =
        host.get(&format!("/api/v1/deploys/{}", first.trim_start_matches("/ui/deploys/")), alice).await;
    assert_eq!(env["current"]["digest"], first_record["digest"], "{}", fail("release 3 is release 1's image"));

    // Logs: Tomcat's own, through the API server and the kubelet.
    b.click("#logs-link").await;
    b.wait_path("/ui/envs/shop/logs", WAIT).await;
    b.wait_text_in("pre#log", "org.apache.catalina", Duration::from_secs(30)).await;
    b.shoot("logs").await;
    b.find("#logs-follow").await.click().await.unwrap();
    b.click_button("Show").await;
    b.wait_element("pre#log[data-live]", WAIT).await;
    wait_open(&b, "/logs/events").await;

    // The other pages, for their screenshots.
    for (path, page, marker) in [
        ("/ui/envs", "envs", "tr[data-env=\"shop\"]"),
        ("/ui/envs/shop/edit", "edit-env", "form#env-form"),
        ("/ui/envs/shop/delete", "delete-env", "form#delete-form"),
        ("/ui/plugins", "plugins", "table#plugins"),
    ] {
        b.goto(path).await;
        b.find(marker).await;
        b.shoot(page).await;
    }

    // Another user's env is not found, as a page and as a status.
    b.goto("/ui/envs/secret").await;
    b.find("#not-found").await;
    assert!(!b.text().await.contains("secret's"), "nothing of bob's env shows");
    b.shoot("not-found").await;
    assert_eq!(b.fetch("/ui/envs/secret").await.0, 404);
    assert_eq!(b.fetch("/ui/envs/shop").await.0, 200, "while alice's own env answers");

    // Signed out, every page sends the browser to the login form, to come back after.
    // (That other open tabs are told and go there is `signing_out_closes_…` below.)
    b.goto("/ui/envs").await;
    b.click_button("Sign out").await;
    b.wait_path("/ui/login", WAIT).await;
    b.shoot("signed-out").await;
    for path in ["/ui/envs", "/ui/envs/shop", "/ui/envs/shop/logs", "/ui/wars", &canary] {
        b.goto(path).await;
        let at = b.wait_path("/ui/login", WAIT).await;
        assert!(at.contains("next="), "{path} sends to the login form, to come back: {at}");
        assert_eq!(b.fetch(path).await.0, 303, "{path} answers a redirect without the session");
    }
    // Known (issue 18): pages wider than a phone are reported, not failed, until fixed.
    for note in b.too_wide() {
        println!("console_browser flow: too wide: {note}");
    }
    b.close().await;
    println!("console_browser flow: {:.0}s, screenshots in target/screenshots/flow", started.elapsed().as_secs_f64());
}

/// Signing out in one tab while others are open on live pages (an env's status tree, a
/// deploy waiting for promotion): their event streams close and those pages go to the
/// login form by themselves. On kwok nodes: no real node needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_closes_the_live_streams_of_other_tabs_and_sends_them_to_login() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (host, tokens) = Host::start(dir.path(), "host", &config_for(&registry, &cluster, ""), &["alice"]);
    let alice = tokens[0].as_str();
    let (status, env) =
        host.post("/api/v1/envs", alice, json!({"name": "shop", "tomcat": "10.1", "jdk": "17", "replicas": 2})).await;
    assert_eq!(status, 201, "{env}");
    host.upload(alice, "sample", "sample.war", &fixture("sample.war")).await;
    // Release 1, then a canary of release 2 waiting for promotion (a first deploy has
    // nothing to canary against).
    let first =
        support::host::deploy(&host, alice, json!({"war": "sample.war", "version": "1.0", "strategy": "rolling"}))
            .await;
    assert_eq!(host.wait_deploy(alice, &first).await["status"], "succeeded");
    let steps = json!([{"weight": 50}, {"await-promotion": true}]);
    let canary = support::host::deploy(
        &host,
        alice,
        json!({"war": "sample.war", "version": "2.0", "strategy": "canary", "settings": {"steps": steps}}),
    )
    .await;
    host.wait_step(alice, &canary, "await-promotion").await;

    let b = Browser::start("sign-out", &host.base).await;
    b.track_event_sources().await;
    b.goto("/ui/login").await;
    b.fill("#login-token", alice).await;
    b.click_button("Sign in").await;
    b.wait_path("/ui/envs", WAIT).await;
    b.goto("/ui/envs/shop").await;
    let env_tab = b.tab().await;
    wait_open(&b, "/status/events").await;
    let deploy_tab = b.new_tab().await;
    b.track_event_sources().await;
    b.goto(&format!("/ui/deploys/{canary}")).await;
    b.find("form#promote-form").await;
    wait_open(&b, "/events").await;
    b.new_tab().await;
    b.goto("/ui/envs").await;
    b.click_button("Sign out").await;
    b.wait_path("/ui/login", WAIT).await;
    // Each open page is told on its stream (`signed-out`, within the server's 5 s check)
    // and goes to the login form by itself, to come back to where it was.
    for (tab, page, stream) in [
        (&env_tab, "/ui/envs/shop".to_owned(), "/status/events"),
        (&deploy_tab, format!("/ui/deploys/{canary}"), "/events"),
    ] {
        b.switch_to(tab).await;
        if stream == "/status/events" {
            // The first page still shows, saying why, with its stream closed.
            b.wait_element("p#signed-out", Duration::from_secs(10)).await;
            let sources = b.event_sources().await;
            assert!(sources.iter().all(|(_, state)| *state == 2), "the stream is closed: {sources:?}");
        }
        let at = b.wait_path("/ui/login", Duration::from_secs(15)).await;
        let told = b.stream_events(stream).await;
        assert!(told.iter().any(|e| e == "signed-out"), "{page}'s stream said it was signed out: {told:?}");
        assert!(at.contains("expired=1"), "{at}");
        let next = url::form_urlencoded::parse(at.split_once('?').unwrap().1.as_bytes()).find(|(k, _)| k == "next");
        assert!(next.is_some_and(|(_, v)| v.starts_with(&page)), "back to {page} after signing in: {at}");
    }
    b.close().await;
}

/// Waits until exactly `count` elements match `css`.
async fn wait_count(b: &Browser, css: &str, count: usize, within: Duration) {
    let started = Instant::now();
    loop {
        let found = b.client().find_all(fantoccini::Locator::Css(css)).await.unwrap().len();
        if found == count {
            return;
        }
        if started.elapsed() > within {
            panic!("{found} elements match {css}, not {count}, after {within:?}, {}", b.describe().await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page's event stream whose URL contains `part` is open.
async fn wait_open(b: &Browser, part: &str) {
    let started = Instant::now();
    while !b.event_sources().await.iter().any(|(url, state)| url.contains(part) && *state == 1) {
        if started.elapsed() > WAIT {
            panic!(
                "no open stream {part} within {WAIT:?} (streams: {:?}), {}",
                b.event_sources().await,
                b.describe().await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
