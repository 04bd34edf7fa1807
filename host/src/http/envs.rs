use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::page::{Page, PageQuery};
use super::{ApiError, ApiJson, ApiPath, AppState, CurrentUser};
use crate::envs::EnvStatus;
use crate::domain::{Env, EnvName, EnvPatch, EnvSpec};

pub(super) fn env_name(name: &str) -> Result<EnvName, ApiError> {
    // A name that can never exist is simply not found: no hint about others' envs.
    EnvName::parse(name).map_err(|_| crate::envs::EnvError::NotFound(name.to_owned()).into())
}

/// Create an env.
#[utoipa::path(post, path = "/api/v1/envs", tag = "envs", request_body = EnvSpec,
    responses((status = 201, body = Env), (status = 422, body = super::Problem), (status = 409, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(spec): ApiJson<EnvSpec>,
) -> Result<impl IntoResponse, ApiError> {
    let env = state.envs.create(&user, spec, Default::default()).await?;
    let location = format!("/api/v1/envs/{}", env.spec.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(env)))
}

/// List your envs by name, a page at a time (`Link` to the next).
#[utoipa::path(get, path = "/api/v1/envs", tag = "envs", params(PageQuery),
    responses((status = 200, body = Vec<Env>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(page): Query<PageQuery>,
    uri: axum::http::Uri,
) -> Result<Page<Env>, ApiError> {
    page.page(state.envs.list(&user).await?, |e| e.spec.name.clone(), uri)
}

/// One env and what runs of it: the release serving, the deploy running, and the
/// tree service ▸ workloads ▸ pods from the watch caches.
#[utoipa::path(get, path = "/api/v1/envs/{name}", tag = "envs",
    responses((status = 200, body = EnvStatus), (status = 404, body = super::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<EnvStatus>, ApiError> {
    Ok(Json(state.env_ops.status(&user, &env_name(&name)?).await?))
}

/// Change some of an env's fields; the whole result is validated again.
#[utoipa::path(patch, path = "/api/v1/envs/{name}", tag = "envs", request_body = EnvPatch,
    responses((status = 200, body = Env), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<EnvPatch>,
) -> Result<Json<Env>, ApiError> {
    Ok(Json(state.envs.update(&user, &env_name(&name)?, patch).await?))
}

/// Delete an env: its Service, Deployments and pods go first, and the answer comes
/// once they are gone. Refused (409) while a deploy runs on it.
#[utoipa::path(delete, path = "/api/v1/envs/{name}", tag = "envs",
    responses((status = 204), (status = 404, body = super::Problem), (status = 409, body = super::Problem), (status = 504, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.env_ops.delete(&user, &env_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogsQuery {
    /// The pod; by default one of the serving release's, ready ones first.
    pod: Option<String>,
    /// Keep streaming new lines until the pod stops or the client leaves.
    #[serde(default)]
    follow: bool,
    /// Only the last lines.
    tail: Option<i64>,
}

/// A pod's log, streamed as plain text from the API server (which asks the pod's
/// kubelet). 404 when the env has no such pod; 502 when Kubernetes cannot give it.
#[utoipa::path(get, path = "/api/v1/envs/{name}/logs", tag = "envs", params(LogsQuery),
    responses((status = 200, content_type = "text/plain", description = "the log"), (status = 404, body = super::Problem),
        (status = 502, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
    Query(query): Query<LogsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (pod, stream) = state.env_ops.logs(&user, &env_name(&env)?, query.pod.as_deref(), query.follow, query.tail).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::HeaderName::from_static("x-warship-pod"), pod.as_str())],
        Body::from_stream(stream),
    )
        .into_response())
}
