//! The page every console page is drawn in, and the small pieces pages share: field
//! errors beside their fields, local-time timestamps, digests, the error pages.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::OffsetDateTime;

use super::session::{Session, CSRF_FIELD};
use crate::domain::Violation;
use crate::http::ApiError;

/// Which part of the console a page belongs to, for the navigation's `aria-current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Envs,
    Wars,
    Plugins,
}

/// A whole page: skip link, header with navigation and sign-out, then `body` in `<main>`.
pub fn page(title: &str, session: Option<&Session>, nav: Nav, body: Markup) -> Markup {
    let current = |item: Nav| (nav == item).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · warship" }
                // No icon to fetch: browsers otherwise ask /favicon.ico of the API.
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/envs" { "warship" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/ui/envs" aria-current=[current(Nav::Envs)] { "Envs" } }
                                li { a href="/ui/wars" aria-current=[current(Nav::Wars)] { "WARs" } }
                                li { a href="/ui/plugins" aria-current=[current(Nav::Plugins)] { "Plugins" } }
                            }
                        }
                        form.logout #logout-form method="post" action="/ui/logout" {
                            (csrf(session))
                            span.who { "Signed in as " strong #current-user { (session.user) } }
                            " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The hidden field every console form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

/// A timestamp: UTC in the page, turned into the viewer's local time by the script.
pub fn time(at: OffsetDateTime) -> Markup {
    let at = at.to_offset(time::UtcOffset::UTC);
    let machine = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    html! { time datetime=(machine) data-local { (text) } }
}

/// `sha256:0123456789ab` from a digest or a bare hash, whole in the title.
pub fn short_digest(digest: &str) -> Markup {
    let (algo, hash) = digest.split_once(':').unwrap_or(("sha256", digest));
    let short: String = hash.chars().take(12).collect();
    html! { code title=(digest) { (algo) ":" (short) } }
}

/// Bytes as people read them.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The errors of one form, matched to its controls: `control_of` names the control a
/// problem's field belongs to (`tomcat` → `runtime`), `None` for the form as a whole.
#[derive(Debug, Default)]
pub struct FieldErrors {
    pub by_control: std::collections::BTreeMap<String, Vec<String>>,
    /// Problems of no one field (and the problem's own words).
    pub general: Vec<String>,
}

impl FieldErrors {
    pub fn from_problem(problem: &ApiError, control_of: impl Fn(&str) -> Option<String>) -> Self {
        let mut errors = Self::default();
        for Violation { field, message, .. } in &problem.errors {
            match control_of(field) {
                Some(control) => errors.by_control.entry(control).or_default().push(message.clone()),
                None => errors.general.push(message.clone()),
            }
        }
        if problem.errors.is_empty() {
            errors.general.push(problem.detail.clone());
        }
        errors
    }

    pub fn add(&mut self, control: &str, message: impl Into<String>) {
        self.by_control.entry(control.to_owned()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.by_control.is_empty() && self.general.is_empty()
    }

    pub fn has(&self, control: &str) -> bool {
        self.by_control.contains_key(control)
    }

    /// The `<p class="error" id="{id}-error">` beside a control (always there, so an
    /// error arriving does not move the page).
    pub fn beside(&self, control: &str, id: &str) -> Markup {
        html! {
            p.error id=(format!("{id}-error")) {
                @for message in self.by_control.get(control).into_iter().flatten() { (message) br; }
            }
        }
    }

    /// `aria-invalid` for a control.
    pub fn invalid(&self, control: &str) -> Option<&'static str> {
        self.has(control).then_some("true")
    }

    /// The summary at the top of a form: what the API said, and problems of no field.
    pub fn summary(&self, id: &str) -> Markup {
        html! {
            div.form-errors id=(id) role="alert" hidden[self.is_empty()] {
                @if !self.is_empty() {
                    p { strong { "Not saved: " } "fix the fields marked below." }
                    @if !self.general.is_empty() { ul { @for message in &self.general { li { (message) } } } }
                }
            }
        }
    }
}

/// A console page as a response, with the headers every console page has.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// The headers of every console response: no script or style from elsewhere, no
/// framing, no caching of pages that show a user's data.
pub async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let asset = req.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !asset {
        headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// The console's not-found page: the same for what does not exist and for what is
/// someone else's.
pub fn not_found(session: Option<&Session>) -> Response {
    let body = html! {
        h1 { "Not found" }
        p #not-found { "There is nothing here for you: no such page, env, deploy or WAR among yours." }
        p { a href="/ui/envs" { "Back to your envs" } }
    };
    respond(StatusCode::NOT_FOUND, page("Not found", session, Nav::None, body))
}

/// A problem the API would answer, as a page: its words and code.
pub fn problem_page(problem: &ApiError, session: Option<&Session>) -> Response {
    if problem.status == StatusCode::NOT_FOUND {
        return not_found(session);
    }
    let body = html! {
        h1 { (problem.title) }
        div.problem #problem role="alert" data-code=(problem.code) {
            p { (problem.detail) }
            @if !problem.errors.is_empty() {
                ul { @for v in &problem.errors { li { code { (v.field) } ": " (v.message) } } }
            }
            p.hint { "Code " code { (problem.code) } }
        }
        p { a href="/ui/envs" { "Back to your envs" } }
    };
    respond(problem.status, page(problem.title, session, Nav::None, body))
}

/// Raw HTML already escaped by maud, for fragments pushed over SSE.
pub fn fragment_text(markup: Markup) -> String {
    let PreEscaped(text) = markup;
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_a_machine_readable_datetime() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let text = time(at).into_string();
        assert!(text.contains(r#"datetime="2023-11-14T22:13:20Z""#), "{text}");
        assert!(text.contains("data-local") && text.contains("2023-11-14 22:13:20 UTC"), "{text}");
    }

    #[test]
    fn sizes_and_digests_read_short() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4704), "4.6 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert!(short_digest("sha256:0123456789abcdef").into_string().contains(">sha256:0123456789ab<"));
    }

    #[test]
    fn problems_land_beside_their_fields_and_the_rest_in_the_summary() {
        let problem = ApiError::invalid(
            "fix",
            vec![
                Violation::new("tomcat", "env.tomcat", "not in the catalog"),
                Violation::new("other", "x", "something else"),
            ],
        );
        let errors = FieldErrors::from_problem(&problem, |field| (field == "tomcat").then(|| "runtime".to_owned()));
        assert!(errors.beside("runtime", "env-runtime").into_string().contains("not in the catalog"));
        assert_eq!(errors.general, ["something else"]);
        assert_eq!(errors.invalid("runtime"), Some("true"));
        assert!(errors.beside("replicas", "env-replicas").into_string().contains(r#"id="env-replicas-error""#));
    }
}
