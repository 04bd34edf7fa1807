use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::{ApiError, ApiJson, ApiPath, AppState, CurrentUser};
use crate::deploys::EnvStatus;
use crate::envs::{Env, EnvName, EnvPatch, EnvSpec};

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

/// List your envs.
#[utoipa::path(get, path = "/api/v1/envs", tag = "envs",
    responses((status = 200, body = Vec<Env>)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Json<Vec<Env>>, ApiError> {
    Ok(Json(state.envs.list(&user).await?))
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
    Ok(Json(state.deploys.status(&user, &env_name(&name)?).await?))
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
    state.deploys.delete_env(&user, &env_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
