//! The console's upload routes: a WAR stored by the page's script (PUT with the CSRF
//! header) and by a plain multipart form, refused without the token.

use reqwest::StatusCode;

use super::{reqwest_method, serve, Browser};
use crate::support::{self, TestApp};

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
