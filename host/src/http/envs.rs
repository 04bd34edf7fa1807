use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::answers::{BadGateway, BadRequest, Common, Conflict, EnvPath, GatewayTimeout, NotFound, TooLarge, Unprocessable};
use super::page::{Page, PageQuery};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, CurrentUser};
use crate::envs::EnvStatus;
use crate::domain::{Env, EnvName, EnvPatch, EnvSpec};

pub(super) fn env_name(name: &str) -> Result<EnvName, ApiError> {
    // A name that can never exist is simply not found: no hint about others' envs.
    EnvName::parse(name).map_err(|_| crate::envs::EnvError::NotFound(name.to_owned()).into())
}

/// Create an env.
#[utoipa::path(post, path = "/api/v1/envs", tag = "envs", operation_id = "createEnv", request_body = EnvSpec,
    responses((status = 201, body = Env, description = "created (`Location` names it)"), BadRequest, Conflict, TooLarge, Unprocessable, Common),
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
#[utoipa::path(get, path = "/api/v1/envs", tag = "envs", operation_id = "listEnvs", params(PageQuery),
    responses((status = 200, body = Vec<Env>, description = "a page of your envs"), BadRequest, Common), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(page): ApiQuery<PageQuery>,
    uri: axum::http::Uri,
) -> Result<Page<Env>, ApiError> {
    page.page(state.envs.list(&user).await?, |e| e.spec.name.clone(), uri)
}

/// One env and what runs of it: the release serving, the deploy running, and the
/// tree service ▸ workloads ▸ pods from the watch caches.
#[utoipa::path(get, path = "/api/v1/envs/{name}", tag = "envs", operation_id = "getEnv", params(EnvPath),
    responses((status = 200, body = EnvStatus, description = "the env and what runs of it"), NotFound, Common), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<EnvStatus>, ApiError> {
    Ok(Json(state.env_ops.status(&user, &env_name(&name)?).await?))
}

/// Change some of an env's fields; the whole result is validated again.
#[utoipa::path(patch, path = "/api/v1/envs/{name}", tag = "envs", operation_id = "updateEnv", params(EnvPath), request_body = EnvPatch,
    responses((status = 200, body = Env, description = "the env as changed"), BadRequest, NotFound, Conflict, TooLarge, Unprocessable, Common),
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
#[utoipa::path(delete, path = "/api/v1/envs/{name}", tag = "envs", operation_id = "deleteEnv", params(EnvPath),
    responses((status = 204, description = "deleted, its pods gone"), NotFound, Conflict, BadGateway, GatewayTimeout, Common),
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
#[into_params(parameter_in = Query)]
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
#[utoipa::path(get, path = "/api/v1/envs/{name}/logs", tag = "envs", operation_id = "getEnvLogs", params(EnvPath, LogsQuery),
    responses((status = 200, body = String, content_type = "text/plain", description = "the log, streamed (with `follow`, until the pod stops); `X-Warship-Pod` names the pod",
            headers(("X-Warship-Pod" = String, description = "the pod whose log this is"))),
        BadRequest, NotFound, BadGateway, Common),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (pod, stream) = state.env_ops.logs(&user, &env_name(&env)?, query.pod.as_deref(), query.follow, query.tail).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::HeaderName::from_static("x-warship-pod"), pod.as_str())],
        Body::from_stream(stream),
    )
        .into_response())
}
