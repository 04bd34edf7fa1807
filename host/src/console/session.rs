//! Console sessions: the API token is given once, at `/ui/login`, and exchanged for a
//! random session id in an HttpOnly cookie. The store keeps only the id's sha256 (with
//! the user, the CSRF token and the expiry), so every host sharing the store knows the
//! session and a leaked store dump opens none. Every non-GET request carries the
//! session's CSRF token (a hidden `csrf` field, the `X-CSRF-Token` header, or `?csrf=`
//! for multipart uploads) and, when the browser sends one, an `Origin` of this host.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::layout;
use crate::http::{ApiError, AppState};
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::{token_sha256, Bearer, UserName, Users};

/// The session cookie.
pub const COOKIE: &str = "warship_session";
/// The login form's own anti-forgery cookie (double submit), before any session exists.
pub const LOGIN_COOKIE: &str = "warship_login";
/// The form field and the header that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The most a url-encoded form may weigh (the env form's variables are the largest).
const FORM_MAX: usize = 1 << 20;

const PREFIX: &str = "console/sessions/";

/// A signed-in browser, as handlers see it.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserName,
    pub csrf: String,
    pub expires_at: OffsetDateTime,
    /// Where the store keeps it (the id's hash), to look again while a stream is open.
    key: String,
}

#[derive(Serialize, Deserialize)]
struct SessionRecord {
    user: UserName,
    /// The sha256 of the token the session was opened with: revoking or rotating it
    /// ends the session too.
    token_sha256: String,
    csrf: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// What a session cookie names.
#[derive(Debug)]
pub enum Lookup {
    Valid(Session),
    /// It existed and ended (its time is up, or its token was revoked).
    Expired,
    Unknown,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn key(id: &str) -> String {
    format!("{PREFIX}{}", token_sha256(id))
}

/// Opens a session for `user`, who signed in with `token`; returns its id (for the cookie).
pub async fn open(
    store: &DynStore,
    user: UserName,
    token: &str,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<(String, Session), StoreError> {
    let id = random_hex();
    let record = SessionRecord {
        user,
        token_sha256: token_sha256(token),
        csrf: random_hex(),
        created_at: now,
        expires_at: now + lifetime,
    };
    let key = key(&id);
    store::put_json(&**store, &key, &record, Precondition::Absent).await?;
    Ok((id, Session { user: record.user, csrf: record.csrf, expires_at: record.expires_at, key }))
}

/// The session `id` names at `now`. One that ended is deleted as it is found.
pub async fn load(
    store: &DynStore,
    users: &Users,
    id: &str,
    now: OffsetDateTime,
) -> Result<Lookup, StoreError> {
    load_key(store, users, key(id), now).await
}

async fn load_key(
    store: &DynStore,
    users: &Users,
    key: String,
    now: OffsetDateTime,
) -> Result<Lookup, StoreError> {
    let Some((record, _)) = store::get_json::<SessionRecord>(&**store, &key).await? else {
        return Ok(Lookup::Unknown);
    };
    if record.expires_at <= now || !users.digest_is_live(&record.token_sha256).await? {
        store.delete(&key, Precondition::Any).await?;
        return Ok(Lookup::Expired);
    }
    Ok(Lookup::Valid(Session { user: record.user, csrf: record.csrf, expires_at: record.expires_at, key }))
}

/// How often an open event stream looks whether its session still holds.
const STREAM_CHECK: Duration = Duration::from_secs(5);

/// `events` while the session holds: once it ended (signed out in another tab, expired,
/// its token revoked) the stream says `signed-out` and stops, and the page goes to the
/// login form rather than showing data to a browser no longer signed in.
pub fn while_signed_in<S>(
    state: AppState,
    session: Session,
    events: S,
) -> impl futures_util::Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static,
{
    use futures_util::StreamExt;
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ended.clone();
    let watch = async move {
        loop {
            tokio::time::sleep(STREAM_CHECK).await;
            let now = OffsetDateTime::now_utc();
            match load_key(&state.store, &state.users, session.key.clone(), now).await {
                Ok(Lookup::Valid(_)) | Err(_) => continue,
                Ok(_) => break,
            }
        }
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let told = futures_util::stream::once(async move {
        let out = ended.load(std::sync::atomic::Ordering::SeqCst);
        out.then(|| Ok(axum::response::sse::Event::default().event("signed-out").data("signed out")))
    })
    .filter_map(futures_util::future::ready);
    events.take_until(Box::pin(watch)).chain(told)
}

/// Ends the session `id` names (nothing when there is none).
pub async fn close(store: &DynStore, id: &str) -> Result<(), StoreError> {
    store.delete(&key(id), Precondition::Any).await.map(drop)
}

/// Deletes sessions whose time is up; run at each login, so the store does not keep
/// the sessions of browsers that never came back.
async fn sweep(store: &DynStore, now: OffsetDateTime) -> Result<(), StoreError> {
    for entry in store.list(PREFIX).await? {
        let ended = serde_json::from_slice::<SessionRecord>(&entry.value).map(|r| r.expires_at <= now).unwrap_or(true);
        if ended {
            store.delete(&entry.key, Precondition::Revision(entry.revision)).await.ok();
        }
    }
    Ok(())
}

/// The `Set-Cookie` value of a session cookie: HttpOnly, SameSite=Strict, only under
/// `/ui`, Secure when this host serves TLS.
pub fn cookie(id: &str, secure: bool, max_age: Duration) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", max_age.as_secs())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    cookie("", secure, Duration::ZERO)
}

fn login_cookie(nonce: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{LOGIN_COOKIE}={nonce}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}")
}

fn serves_tls(state: &AppState) -> bool {
    state.config.server.tls_cert.is_some() && state.config.server.tls_key.is_some()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Equal, in a time that does not tell how much of a guess was right.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && !a.is_empty() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Origin` header (when sent) names this host. Browsers send one with every
/// POST; a page elsewhere cannot fake it.
pub fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The request comes from the console's script (or an event source), which wants a
/// problem it can read rather than a page or a redirect.
fn from_script(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    headers.contains_key(CSRF_HEADER) || accept.contains("text/event-stream") || accept.starts_with("application/json")
}

/// The route layer over every console page but login and the assets: finds the
/// session (or sends the browser to the login page), checks CSRF on every non-GET
/// request, and hands the session to the handler.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let found = match cookie_value(req.headers(), COOKIE) {
        Some(id) => load(&state.store, &state.users, id, OffsetDateTime::now_utc()).await,
        None => Ok(Lookup::Unknown),
    };
    let session = match found {
        Ok(Lookup::Valid(session)) => session,
        Ok(lookup) => return signed_out(&state, &req, matches!(lookup, Lookup::Expired)),
        Err(e) => return super::ConsoleError::from(e).into_response(),
    };
    let mut req = if req.method() == Method::GET || req.method() == Method::HEAD {
        req
    } else {
        match checked(req, &session.csrf).await {
            Ok(req) => req,
            Err(refused) => return refused,
        }
    };
    tracing::Span::current().record("user", session.user.as_str());
    req.extensions_mut().insert(session.clone());
    let mut response = next.run(req).await;
    match response.extensions_mut().remove::<super::Shown>() {
        Some(shown) => {
            let mut page = shown.page(&session);
            if let Some(retry) = response.headers().get(header::RETRY_AFTER) {
                page.headers_mut().insert(header::RETRY_AFTER, retry.clone());
            }
            page
        }
        None => response,
    }
}

/// No session: a page is sent to the login form (and back here after), a script is told.
fn signed_out(state: &AppState, req: &Request, expired: bool) -> Response {
    let clear = [(header::SET_COOKIE, clear_cookie(serves_tls(state)))];
    if from_script(req.headers()) {
        let problem = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "console.signed_out",
            "Signed out",
            "your console session ended; sign in again at /ui/login",
        );
        return (clear, problem).into_response();
    }
    let mut to = String::from("/ui/login");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if req.method() == Method::GET {
        query.append_pair("next", &req.uri().to_string());
    }
    if expired {
        query.append_pair("expired", "1");
    }
    let query = query.finish();
    if !query.is_empty() {
        to = format!("{to}?{query}");
    }
    (clear, Redirect::to(&to)).into_response()
}

/// The request, once its CSRF token and origin are right; its url-encoded body is read
/// (bounded) to find the field and handed on unchanged.
async fn checked(req: Request, csrf: &str) -> Result<Request, Response> {
    let refuse = |headers: &HeaderMap| -> Response {
        let problem = ApiError::new(
            StatusCode::FORBIDDEN,
            "console.csrf",
            "Form refused",
            "this form did not come from your console session (it may be from an older session); reload the page and send it again",
        );
        match from_script(headers) {
            true => problem.into_response(),
            false => super::ConsoleError::of(problem).into_response(),
        }
    };
    if !origin_allowed(req.headers()) {
        return Err(refuse(req.headers()));
    }
    let in_query = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned())
    });
    let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned).or(in_query);
    if let Some(sent) = sent {
        return if same_token(&sent, csrf) { Ok(req) } else { Err(refuse(req.headers())) };
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(refuse(req.headers()));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_MAX).await.map_err(|_| {
        super::ConsoleError::of(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            "Form too large",
            "this form is larger than 1 MiB",
        ))
        .into_response()
    })?;
    let sent = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned());
    if !sent.is_some_and(|sent| same_token(&sent, csrf)) {
        return Err(refuse(&parts.headers));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a console route lacks the session layer").into_response())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    signed_out: Option<String>,
}

/// Only a console page of this host: never another site, nor `//elsewhere`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains(['\\', '\r', '\n']) => next,
        _ => "/ui/envs",
    }
}

/// The login form, with a fresh anti-forgery nonce in its cookie and hidden field.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if let Some(id) = cookie_value(&headers, COOKIE) {
        if let Ok(Lookup::Valid(_)) =
            load(&state.store, &state.users, id, OffsetDateTime::now_utc()).await
        {
            return Redirect::to(safe_next(query.next.as_deref())).into_response();
        }
    }
    let notice = if query.expired.is_some() {
        Some("Your session ended. Sign in again to go on.")
    } else if query.signed_out.is_some() {
        Some("You are signed out.")
    } else {
        None
    };
    login_page(&state, StatusCode::OK, query.next.as_deref(), notice, None)
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: Option<&str>,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let nonce = random_hex();
    let body = html! {
        h1 { "Sign in to warship" }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        form #login-form method="post" action="/ui/login" {
            input type="hidden" name=(CSRF_FIELD) value=(nonce);
            input type="hidden" name="next" value=(safe_next(next));
            div.field {
                label for="login-token" { "API token" }
                input #login-token type="password" name="token" required autocomplete="current-password"
                    aria-describedby="login-token-hint login-token-error" aria-invalid=[error.map(|_| "true")];
                p.hint #login-token-hint { "The token an admin gave you (" code { "wsp_…" } "). It is sent once; the browser keeps only a session cookie." }
                p.error #login-token-error { @if let Some(error) = error { (error) } }
            }
            button type="submit" { "Sign in" }
        }
    };
    let markup = layout::page("Sign in", None, layout::Nav::None, body);
    (status, [(header::SET_COOKIE, login_cookie(&nonce, serves_tls(state)))], markup).into_response()
}

/// The client's address, when the server knows it (for the throttling of unknown tokens).
pub struct ClientAddr(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())))
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Exchanges an API token for a session, with the API's throttling of unknown tokens.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = form.next.as_deref();
    let nonce_ok = cookie_value(&headers, LOGIN_COOKIE).is_some_and(|nonce| same_token(nonce, &form.csrf));
    if !nonce_ok || !origin_allowed(&headers) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            None,
            Some("This sign-in form expired or came from elsewhere; send it again from this page."),
        );
    }
    let token = form.token.trim();
    if token.is_empty() {
        return login_page(&state, StatusCode::UNPROCESSABLE_ENTITY, next, None, Some("Enter your API token."));
    }
    let user = match state.users.bearer(token, from).await {
        Ok(Bearer::User(user)) => user,
        Ok(Bearer::Unknown) => {
            return login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                next,
                None,
                Some("This token is not known; check it, or ask an admin for a new one."),
            )
        }
        Ok(Bearer::Throttled { retry_after_secs }) => {
            let message =
                format!("Too many unknown tokens came from your address lately; try again in {retry_after_secs} s.");
            let mut page = login_page(&state, StatusCode::TOO_MANY_REQUESTS, next, None, Some(&message));
            page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return page;
        }
        Err(e) => return super::ConsoleError::from(e).into_response(),
    };
    let now = OffsetDateTime::now_utc();
    if let Err(e) = sweep(&state.store, now).await {
        tracing::warn!(error = %e, "could not sweep ended console sessions");
    }
    let lifetime = state.config.console.session_lifetime();
    let (id, session) = match open(&state.store, user, token, now, lifetime).await {
        Ok(opened) => opened,
        Err(e) => return super::ConsoleError::from(e).into_response(),
    };
    tracing::info!(user = %session.user, "console session opened");
    let tls = serves_tls(&state);
    let mut response = Redirect::to(safe_next(next)).into_response();
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, HeaderValue::from_str(&cookie(&id, tls, lifetime)).expect("cookies are ASCII"));
    cookies.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&login_cookie("", tls).replace("Max-Age=3600", "Max-Age=0")).expect("cookies are ASCII"),
    );
    response
}

/// Ends the session (its CSRF token was checked by [`authenticate`]).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers, COOKIE) {
        if let Err(e) = close(&state.store, id).await {
            return super::ConsoleError::from(e).into_response();
        }
    }
    ([(header::SET_COOKIE, clear_cookie(serves_tls(&state)))], Redirect::to("/ui/login?signed_out=1")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_strict_under_ui_and_secure_with_tls() {
        let plain = cookie("abc", false, crate::config::ConsoleConfig::default().session_lifetime());
        assert_eq!(plain, "warship_session=abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=43200");
        assert!(cookie("abc", true, crate::config::ConsoleConfig::default().session_lifetime()).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0") && clear_cookie(false).starts_with("warship_session=;"));
    }

    #[test]
    fn cookies_are_found_among_others_and_empty_ones_are_none() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; warship_session=xyz ; b=2"));
        assert_eq!(cookie_value(&headers, COOKIE), Some("xyz"));
        assert_eq!(cookie_value(&headers, "b"), Some("2"));
        headers.insert(header::COOKIE, HeaderValue::from_static("warship_session="));
        assert_eq!(cookie_value(&headers, COOKIE), None);
    }

    #[test]
    fn tokens_compare_whole_and_empty_never_matches() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd") && !same_token("abc", "ab") && !same_token("", ""));
    }

    #[test]
    fn only_this_hosts_origin_passes_and_next_stays_in_the_console() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("warship.example:8080"));
        assert!(origin_allowed(&headers), "no Origin: a form from an older browser");
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://warship.example:8080"));
        assert!(origin_allowed(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&headers));
        assert_eq!(safe_next(Some("/ui/envs/shop")), "/ui/envs/shop");
        for bad in ["//evil.example/ui/", "https://evil.example", "/api/v1/envs", "/ui/\r\nx"] {
            assert_eq!(safe_next(Some(bad)), "/ui/envs", "{bad}");
        }
    }

    #[tokio::test]
    async fn a_session_ends_at_its_time_when_closed_and_when_its_token_is_revoked() {
        let (store, _dir) = crate::store::scratch();
        let users = crate::users::Users::new(store.clone(), &[]).unwrap();
        let token = users.add("alice").await.unwrap();
        let alice = UserName::parse("alice").unwrap();
        let now = OffsetDateTime::now_utc();

        let (id, opened) = open(&store, alice.clone(), &token, now, Duration::from_secs(60)).await.unwrap();
        assert_eq!(opened.csrf.len(), 64);
        assert!(store.get(&format!("{PREFIX}{id}")).await.unwrap().is_none(), "the store keeps only the id's hash");
        assert!(matches!(load(&store, &users, &id, now).await.unwrap(), Lookup::Valid(s) if s.user == alice));
        assert!(matches!(load(&store, &users, &id, now + Duration::from_secs(61)).await.unwrap(), Lookup::Expired));
        assert!(matches!(load(&store, &users, &id, now).await.unwrap(), Lookup::Unknown), "an ended session is deleted");

        let (id, _) = open(&store, alice.clone(), &token, now, crate::config::ConsoleConfig::default().session_lifetime()).await.unwrap();
        close(&store, &id).await.unwrap();
        assert!(matches!(load(&store, &users, &id, now).await.unwrap(), Lookup::Unknown));

        let (id, _) = open(&store, alice.clone(), &token, now, crate::config::ConsoleConfig::default().session_lifetime()).await.unwrap();
        users.revoke("alice").await.unwrap();
        assert!(matches!(load(&store, &users, &id, now).await.unwrap(), Lookup::Expired));

        let (old, _) = open(&store, alice, "wsp_whatever", now - crate::config::ConsoleConfig::default().session_lifetime() * 2, crate::config::ConsoleConfig::default().session_lifetime()).await.unwrap();
        sweep(&store, now).await.unwrap();
        assert!(store.get(&key(&old)).await.unwrap().is_none(), "the sweep removes ended sessions");
    }
}
