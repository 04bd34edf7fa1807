//! Signing in and out: the session cookie and its expiry, CSRF on every form (and the
//! field errors a form with bad values shows), and the API's bearer tokens beside it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{serve, Browser};
use crate::support::TestApp;

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

/// `[console] session_hours` sets how long a session lasts: its cookie and its record.
#[tokio::test]
async fn the_session_lifetime_is_the_admins_to_set() {
    let app = TestApp::embedded_with(|c| c.console.session_hours = 2).await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    let signed_in = browser.login(&token).await;
    let cookie = signed_in.set_cookies().into_iter().find(|c| c.starts_with("warship_session=")).unwrap();
    assert!(cookie.contains("Max-Age=7200"), "{cookie}");
    let sessions = app.state.store.list("console/sessions/").await.unwrap();
    let record: serde_json::Value = serde_json::from_slice(&sessions[0].value).unwrap();
    let expires = time::OffsetDateTime::parse(record["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(119) && left <= time::Duration::hours(2), "{left}");
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

    let lifetime = app.state.config.console.session_lifetime();
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

/// A valid console form, creating the env `shop`.
const SHOP: &[(&str, &str)] = &[("name", "shop"), ("runtime", "10.1/17"), ("replicas", "2"), ("context_path", "/")];

/// The CSRF token a case sends with its form.
#[derive(Clone, Copy)]
enum Token {
    /// No `csrf` field at all.
    Missing,
    /// One of the right length that this session was never given.
    Wrong,
    /// The page's own, posted from a page on another origin (as if stolen).
    Elsewhere,
    /// The page's own, posted from the console.
    Page,
}

/// What the API shows once a case was posted: that nothing changed, or what did.
enum Then {
    Unchecked,
    /// `GET path` answers this status.
    Answers(&'static str, u16),
    /// `GET path` answers a body holding this (every key of an object, anything else equal).
    Shows(&'static str, serde_json::Value),
}

/// One form the CSRF test posts. The cases run in order, each seeing what those before
/// it made.
struct Case {
    what: &'static str,
    method: Method,
    path: &'static str,
    token: Token,
    form: &'static [(&'static str, &'static str)],
    status: StatusCode,
    /// Where the answer redirects to, when that is checked.
    location: Option<&'static str>,
    /// Text the answer holds.
    text: &'static [&'static str],
    /// Field errors: a control's id, and words of the message beside it.
    beside: &'static [(&'static str, &'static str)],
    then: Then,
}

/// A form posted with `token`, answered with `status`; what more a case expects, it sets.
fn post(
    what: &'static str,
    path: &'static str,
    token: Token,
    form: &'static [(&'static str, &'static str)],
    status: StatusCode,
) -> Case {
    Case {
        what,
        method: Method::POST,
        path,
        token,
        form,
        status,
        location: None,
        text: &[],
        beside: &[],
        then: Then::Unchecked,
    }
}

/// Whether `got` holds `want`: every key of an object, anything else equal.
fn holds(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    match want {
        serde_json::Value::Object(keys) => keys.iter().all(|(key, value)| holds(&got[key], value)),
        _ => got == want,
    }
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_elsewhere_are_refused_and_field_errors_land_beside_fields() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let base = serve(&app).await;
    let mut browser = Browser::new(&base);
    browser.login(&token).await;
    let csrf = browser.get("/ui/envs").await.csrf();
    let (refused, invalid, redirected) =
        (StatusCode::FORBIDDEN, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::SEE_OTHER);
    let bad = &[("name", "Shop!"), ("runtime", "10.1/17"), ("replicas", "0"), ("env", "JAVA_OPTS=x")];
    let edit = &[("runtime", "10.1/21"), ("replicas", "3"), ("context_path", "/shop")];
    let wrong_type =
        &[("war", "x/x.war"), ("version", "1.0"), ("strategy", "rolling"), ("settings.rolling.max-surge", "lots")];
    let refused_by_schema =
        &[("war", "x/x.war"), ("version", "1.0"), ("strategy", "rolling"), ("settings.rolling.max-surge", "0")];
    let cases = [
        Case { text: &["console.csrf"], ..post("no CSRF token", "/ui/envs", Token::Missing, SHOP, refused) },
        post("a token never given", "/ui/envs", Token::Wrong, SHOP, refused),
        Case {
            then: Then::Shows("/api/v1/envs", json!([])),
            ..post(
                "from a page elsewhere with a stolen token; nothing was created",
                "/ui/envs",
                Token::Elsewhere,
                SHOP,
                refused,
            )
        },
        Case {
            text: &[r#"value="Shop!""#],
            beside: &[
                ("env-name", "env name"),
                ("env-replicas", "replicas must be between"),
                ("env-vars", "JAVA_OPTS"),
            ],
            ..post("bad name, replicas and variable; what was typed is kept", "/ui/envs", Token::Page, bad, invalid)
        },
        Case { location: Some("/ui/envs/shop"), ..post("a good form", "/ui/envs", Token::Page, SHOP, redirected) },
        Case {
            text: &[r#"id="env-name-error">you already have an env named"#],
            ..post("the same name again", "/ui/envs", Token::Page, SHOP, StatusCode::CONFLICT)
        },
        Case {
            then: Then::Shows("/api/v1/envs/shop", json!({"jdk": "21", "replicas": 3, "context_path": "/shop"})),
            ..post("an edit", "/ui/envs/shop/edit", Token::Page, edit, redirected)
        },
        Case {
            text: &[r#"id="setting-rolling-max-surge-error">max-surge must be a whole number"#],
            ..post("a deploy setting of the wrong type", "/ui/envs/shop/deploy", Token::Page, wrong_type, invalid)
        },
        Case {
            text: &[r#"id="setting-rolling-max-surge-error">strategy rolling refused these settings"#],
            ..post(
                "a deploy setting the strategy refuses",
                "/ui/envs/shop/deploy",
                Token::Page,
                refused_by_schema,
                invalid,
            )
        },
        Case {
            location: Some("/ui/envs"),
            then: Then::Answers("/api/v1/envs/shop", 404),
            ..post("a delete", "/ui/envs/shop/delete", Token::Page, &[], redirected)
        },
    ];

    let never_given = "0".repeat(64);
    for case in cases {
        let name = format!("{} {} ({})", case.method, case.path, case.what);
        let mut form = case.form.to_vec();
        match case.token {
            Token::Missing => {}
            Token::Wrong => form.push(("csrf", &never_given)),
            Token::Elsewhere | Token::Page => form.push(("csrf", &csrf)),
        }
        let mut request = browser.client.request(case.method.clone(), format!("{base}{}", case.path)).form(&form);
        if let Token::Elsewhere = case.token {
            request = request.header("origin", "https://evil.example");
        }
        let page = browser.send(request).await;
        assert_eq!(page.status, case.status, "{name}: {}", page.text);
        if let Some(location) = case.location {
            assert_eq!(page.location(), location, "{name}");
        }
        for text in case.text {
            assert!(page.text.contains(text), "{name}: no {text} in {}", page.text);
        }
        for (id, words) in case.beside {
            let (_, rest) = page
                .text
                .split_once(&format!(r#"id="{id}-error">"#))
                .unwrap_or_else(|| panic!("{name}: no {id}-error in {}", page.text));
            let message = rest.split("</p>").next().unwrap();
            assert!(message.contains(words), "{name}: {id}-error says {message}");
        }
        match case.then {
            Then::Unchecked => {}
            Then::Answers(path, status) => {
                let api = app.call(Method::GET, path, Some(&token), None).await;
                assert_eq!(api.status.as_u16(), status, "{name}: GET {path}: {}", api.text);
            }
            Then::Shows(path, want) => {
                let api = app.call(Method::GET, path, Some(&token), None).await;
                assert!(holds(&api.body, &want), "{name}: GET {path} shows {} instead of {want}", api.body);
            }
        }
    }
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
