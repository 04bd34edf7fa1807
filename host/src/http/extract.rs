//! Extractors that answer in our problem shape: the caller's identity, JSON bodies
//! and path parameters.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::users::{Bearer, UserName};
use crate::domain::Violation;

/// The user named by the request's bearer token. Every API route takes one.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub UserName);

fn unauthorized(code: &'static str, detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, "Unauthorized", detail)
        .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"warship\"")
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "auth.missing_token",
                "send your API token as `Authorization: Bearer <token>`; an admin creates one with `warship user add`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("auth.malformed", "the Authorization header must read `Bearer <token>`"))?;
        let from = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        match state.users.bearer(token, from).await? {
            Bearer::User(user) => {
                tracing::Span::current().record("user", user.as_str());
                Ok(CurrentUser(user))
            }
            Bearer::Unknown => Err(unauthorized("auth.invalid_token", "this token is not known; check it, or ask an admin for a new one")),
            Bearer::Throttled { retry_after_secs } => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "auth.too_many_failures",
                "Too many unknown tokens",
                format!("too many unknown tokens came from your address lately; check your token and try again in {retry_after_secs} s"),
            )
            .with_header_value(header::RETRY_AFTER, retry_after_secs.to_string())),
        }
    }
}

/// A user the config names in `[users] admins`.
#[derive(Debug, Clone)]
pub struct AdminUser(pub UserName);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !state.config.users.admins.iter().any(|admin| admin == user.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "auth.not_admin",
                "Forbidden",
                format!("{user} is not an admin; admins are named in platform.toml's [users] admins"),
            ));
        }
        Ok(AdminUser(user))
    }
}

/// A JSON body, checked for content type, syntax and unknown fields, with the
/// offending field named in `errors`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::bad_request(
                "request.content_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_problem)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A body that could not be read (too large: 413; cut off: 400), as a problem.
pub fn body_problem(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    ApiError::new(rejection.status(), "request.body", "Unreadable body", rejection.body_text())
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                "request.malformed_json",
                format!("the body is not valid JSON: {inner}"),
            );
        }
        let message = inner.to_string();
        let mut field = e.path().to_string();
        // serde names an unknown field only in its message; put it in the path.
        if let Some(name) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
            field = if field == "." { name.to_owned() } else if field.ends_with(name) { field } else { format!("{field}.{name}") };
        }
        let code = if message.starts_with("unknown field") { "request.unknown_field" } else { "request.invalid_field" };
        ApiError::bad_request(code, format!("the body does not fit this request: {message}"))
            .with_errors(vec![Violation::new(field, code, message)])
    })
}

/// Query parameters, with a problem answer when they do not parse (`?tail=x`).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("request.query", e.body_text()))
    }
}

/// Path parameters, with a problem answer when they do not parse.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request("request.path", e.body_text()))
    }
}
