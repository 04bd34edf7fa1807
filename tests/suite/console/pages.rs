//! Every page renders whole with nothing fetched from elsewhere and every control named;
//! another user's env, WAR or deploy answers the not-found page.

use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use serde_json::json;

use super::{reqwest_method, serve, Browser};
use crate::support::{self, TestApp};

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
            if ["type=\"hidden\"", "type=\"submit\"", "type=\"button\"", "aria-label="].iter().any(|t| tag.contains(t))
            {
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
