//! The console's one stylesheet and one script, embedded in the binary and served
//! under `/ui/assets/` with an ETag and a day of caching (the version in the page's
//! links changes with each release).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const CSS: &str = include_str!("assets/console.css");
pub const JS: &str = include_str!("assets/console.js");
pub const CSS_PATH: &str = concat!("/ui/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
pub const JS_PATH: &str = concat!("/ui/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

fn etag(text: &'static str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| format!("\"{}\"", &crate::users::token_sha256(text)[..32]))
}

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    static CSS_TAG: OnceLock<String> = OnceLock::new();
    static JS_TAG: OnceLock<String> = OnceLock::new();
    let (body, content_type, tag) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8", etag(CSS, &CSS_TAG)),
        "console.js" => (JS, "text/javascript; charset=utf-8", etag(JS, &JS_TAG)),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        (header::ETAG, HeaderValue::from_static(tag)),
    ];
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
