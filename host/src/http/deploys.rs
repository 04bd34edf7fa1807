use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::Stream;

use super::envs::env_name;
use super::extract::parse_json;
use super::page::{newest_first, Page, PageQuery};
use super::answers::{BadRequest, Common, Conflict, DeployEvents, DeployPath, EnvPath, LastEventId, NotFound, TooLarge, Unprocessable};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, CurrentUser};
use crate::deploys::{DeployEvent, DeployRecord, DeployRequest, RollbackRequest};

/// Deploy one of your WARs to one of your envs: validate, build, push, roll out by
/// the strategy. Answers 202 at once with the record; 409 with the running deploy's id
/// while another deploy runs on the env.
#[utoipa::path(post, path = "/api/v1/envs/{name}/deploys", tag = "deploys", operation_id = "createDeploy", params(EnvPath),
    request_body = DeployRequest,
    responses((status = 202, body = DeployRecord, description = "accepted: the deploy runs (`Location` names it)"),
        BadRequest, NotFound, Conflict, TooLarge, Unprocessable, Common),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
    ApiJson(request): ApiJson<DeployRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let record = state.deploys.start(&user, &env_name(&env)?, request).await?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/api/v1/deploys/{}", record.id))], Json(record)))
}

/// An env's deploys, newest first: the history, a page at a time (`Link` to the next).
#[utoipa::path(get, path = "/api/v1/envs/{name}/deploys", tag = "deploys", operation_id = "listDeploys", params(EnvPath, PageQuery),
    responses((status = 200, body = Vec<DeployRecord>, description = "a page of the env's deploys"), BadRequest, NotFound, Common),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
    uri: axum::http::Uri,
) -> Result<Page<DeployRecord>, ApiError> {
    let env = env_name(&env)?;
    state.envs.get(&user, &env).await?;
    page.page(state.deploys.list(&user, env.as_str()).await?, |d| newest_first(d.created_at, &d.id), uri)
}

/// One deploy: its status, the strategy's step, and the cause if it failed.
#[utoipa::path(get, path = "/api/v1/deploys/{id}", tag = "deploys", operation_id = "getDeploy", params(DeployPath),
    responses((status = 200, body = DeployRecord, description = "the deploy"), NotFound, Conflict, Common), security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(id): ApiPath<String>) -> Result<Json<DeployRecord>, ApiError> {
    let id = state.deploys.resolve(&user, &id).await?;
    Ok(Json(state.deploys.get(&user, &id).await?))
}

/// The deploy's progress as server-sent events, from its start (or after the
/// `Last-Event-ID` a reconnecting client sends): `record` after each step, `build`
/// progress, `replicas` observed; each with its sequence number as `id`. The stream
/// ends with the deploy's final record. Any host serves any deploy's events.
#[utoipa::path(get, path = "/api/v1/deploys/{id}/events", tag = "deploys", operation_id = "streamDeployEvents",
    params(DeployPath, LastEventId),
    responses(DeployEvents, NotFound, Conflict, Common),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = state.deploys.resolve(&user, &id).await?;
    let events = state.deploys.events(&user, &id, super::last_event_id(&headers)).await?;
    Ok(super::event_stream(events, |event| match event {
        DeployEvent::Record(_) => "record",
        DeployEvent::Build(_) => "build",
        DeployEvent::Replicas { .. } => "replicas",
    }))
}

/// Let a rollout that waits for promotion (a canary at its await-promotion step) go
/// on. 202 with the record; 409 unless it waits for one.
#[utoipa::path(post, path = "/api/v1/deploys/{id}/promote", tag = "deploys", operation_id = "promoteDeploy", params(DeployPath),
    responses((status = 202, body = DeployRecord, description = "promoted: the rollout goes on"), NotFound, Conflict, Common),
    security(("bearer" = [])))]
pub async fn promote(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(id): ApiPath<String>) -> Result<impl IntoResponse, ApiError> {
    let id = state.deploys.resolve(&user, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(state.deploys.promote(&user, &id).await?)))
}

/// Promote the deploy running on an env, for scripts that know the env and not the
/// deploy. 404 `deploy.none_running` when none runs.
#[utoipa::path(post, path = "/api/v1/envs/{name}/promote", tag = "deploys", operation_id = "promoteEnvDeploy", params(EnvPath),
    responses((status = 202, body = DeployRecord, description = "promoted: the rollout goes on"), NotFound, Conflict, Common),
    security(("bearer" = [])))]
pub async fn promote_env(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(name): ApiPath<String>) -> Result<impl IntoResponse, ApiError> {
    let id = state.deploys.running(&user, &env_name(&name)?).await?;
    Ok((StatusCode::ACCEPTED, Json(state.deploys.promote(&user, &id).await?)))
}

/// Stop a deploy. During its rollout the release that served before serves alone again
/// and the new one is removed; before it nothing reaches the cluster. 202 with the
/// record; the deploy ends `aborted` moments later (follow `/events`).
#[utoipa::path(post, path = "/api/v1/deploys/{id}/abort", tag = "deploys", operation_id = "abortDeploy", params(DeployPath),
    responses((status = 202, body = DeployRecord, description = "aborting: it ends `aborted` moments later"), NotFound, Conflict, Common),
    security(("bearer" = [])))]
pub async fn abort(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(id): ApiPath<String>) -> Result<impl IntoResponse, ApiError> {
    let id = state.deploys.resolve(&user, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(state.deploys.abort(&user, &id).await?)))
}

/// Abort the deploy running on an env. 404 `deploy.none_running` when none runs.
#[utoipa::path(post, path = "/api/v1/envs/{name}/abort", tag = "deploys", operation_id = "abortEnvDeploy", params(EnvPath),
    responses((status = 202, body = DeployRecord, description = "aborting: it ends `aborted` moments later"), NotFound, Conflict, Common),
    security(("bearer" = [])))]
pub async fn abort_env(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(name): ApiPath<String>) -> Result<impl IntoResponse, ApiError> {
    let id = state.deploys.running(&user, &env_name(&name)?).await?;
    Ok((StatusCode::ACCEPTED, Json(state.deploys.abort(&user, &id).await?)))
}

/// Bring back a recorded release by its digest, without rebuilding: by default the
/// one before the release serving now. The body is optional. Answers 202 with the
/// deploy that does it.
#[utoipa::path(post, path = "/api/v1/envs/{name}/rollback", tag = "deploys", operation_id = "rollbackEnv", params(EnvPath),
    request_body(content = Option<RollbackRequest>, description = "optional: an empty body rolls back to the release before the current one"),
    responses((status = 202, body = DeployRecord, description = "accepted: the rollback's deploy runs (`Location` names it)"),
        BadRequest, NotFound, Conflict, TooLarge, Unprocessable, Common),
    security(("bearer" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.map_err(super::extract::body_problem)?;
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) { RollbackRequest::default() } else { parse_json(&body)? };
    let record = state.deploys.rollback(&user, &env_name(&env)?, request).await?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/api/v1/deploys/{}", record.id))], Json(record)))
}
