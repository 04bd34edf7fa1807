use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::Stream;

use super::envs::env_name;
use super::{ApiError, ApiJson, ApiPath, AppState, CurrentUser};
use crate::deploys::{DeployEvent, DeployRecord, DeployRequest};

/// Deploy one of your WARs to one of your envs: validate, build, push, roll out by
/// the strategy. Answers 202 at once with the record; 409 with the running deploy's id
/// while another deploy runs on the env.
#[utoipa::path(post, path = "/api/v1/envs/{name}/deploys", tag = "deploys", request_body = DeployRequest,
    responses((status = 202, body = DeployRecord), (status = 404, body = super::Problem), (status = 409, body = super::Problem),
        (status = 422, body = super::Problem), (status = 503, body = super::Problem, description = "no cluster is configured")),
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

/// An env's deploys, newest first: the history.
#[utoipa::path(get, path = "/api/v1/envs/{name}/deploys", tag = "deploys",
    responses((status = 200, body = Vec<DeployRecord>), (status = 404, body = super::Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
) -> Result<Json<Vec<DeployRecord>>, ApiError> {
    let env = env_name(&env)?;
    state.envs.get(&user, &env).await?;
    Ok(Json(state.deploys.list(&user, env.as_str()).await?))
}

/// One deploy: its status, the strategy's step, and the cause if it failed.
#[utoipa::path(get, path = "/api/v1/deploys/{id}", tag = "deploys",
    responses((status = 200, body = DeployRecord), (status = 404, body = super::Problem)), security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(id): ApiPath<String>) -> Result<Json<DeployRecord>, ApiError> {
    Ok(Json(state.deploys.get(&user, &id).await?))
}

/// The deploy's progress as server-sent events, from its start: `record` after each
/// step, `build` progress, `replicas` observed; the stream ends with the deploy.
#[utoipa::path(get, path = "/api/v1/deploys/{id}/events", tag = "deploys",
    responses((status = 200, content_type = "text/event-stream", description = "events"), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let log = state.deploys.events(&user, &id).await?;
    Ok(super::event_stream(log, |event| match event {
        DeployEvent::Record(_) => "record",
        DeployEvent::Build(_) => "build",
        DeployEvent::Replicas { .. } => "replicas",
    }))
}
