//! The web console under `/ui`, over a real socket with reqwest, as a browser without
//! script sees it: login and its cookie, CSRF on every form, logout and expiry, pages
//! that render with nothing fetched from elsewhere, others' things answering 404, the
//! upload routes storing a real WAR, and the API's bearer tokens working unchanged.
//!
//! One file per concern, sharing the helpers here: `sessions` (login, logout, expiry,
//! CSRF, bearer tokens), `pages` (every page renders, others' things are not found,
//! labels), `uploads`, and `live` (the event streams of the env and deploy pages).

mod live;
mod pages;
mod sessions;
mod uploads;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::support::TestApp;

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

fn reqwest_method(name: &str) -> axum::http::Method {
    name.parse().unwrap()
}
