//! Cross-origin calls from browsers, as `[server.cors]` allows them: the origin is
//! echoed back only when allowed, and credentials only to the console's origin.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// None when no other origin is allowed: then nothing is added and browsers keep
/// their same-origin rule.
pub fn layer(config: &CorsConfig) -> Option<CorsLayer> {
    if !config.enabled() {
        return None;
    }
    let allowed = Arc::new(config.clone());
    let credentialed = allowed.clone();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin.to_str().is_ok_and(|o| allowed.allows(o))
            }))
            .allow_credentials(AllowCredentials::predicate(move |origin: &HeaderValue, _| {
                origin.to_str().is_ok_and(|o| credentialed.may_send_credentials(o))
            }))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-request-id"),
            ])
            // What a script reads back: where a created thing is, the next page, when to
            // retry, and the id to quote in a report.
            .expose_headers([
                header::LOCATION,
                header::LINK,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(config.max_age_secs)),
    )
}
