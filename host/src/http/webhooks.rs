//! Webhooks: admins' endpoints (every env, or those they filter on) and, when
//! platform.toml lets users, endpoints on one's own envs; each with its delivery log.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa::IntoParams;

use super::answers::Common;
use super::envs::env_name;
use super::extract::{AdminUser, ApiJson, ApiPath};
use super::{ApiError, AppState, CurrentUser};
use crate::webhooks::{Delivery, EndpointView, NewEndpoint};

/// `{id}` of a webhook.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI document only; handlers take ApiPath
pub struct WebhookPath {
    /// The webhook's id (32 hex digits).
    #[param(example = "4f7c2a9e0b1d4c3e8a6f5b2d1c0e9f8a")]
    id: String,
}

/// `{name}` of an env.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct WebhookEnvPath {
    /// The env's name (a DNS label).
    #[param(example = "shop")]
    name: String,
}

/// `{name}/…/{id}`: an env and one of its webhooks.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EnvWebhookPath {
    /// The env's name (a DNS label).
    #[param(example = "shop")]
    name: String,
    /// The webhook's id (32 hex digits).
    #[param(example = "4f7c2a9e0b1d4c3e8a6f5b2d1c0e9f8a")]
    id: String,
}

fn created(location: String, view: EndpointView) -> impl IntoResponse {
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(view))
}

/// Adds an admin webhook: every env's deploys (or those of `env` / `user`), any URL.
/// Answers its signing secret this once.
#[utoipa::path(post, path = "/api/v1/admin/webhooks", tag = "webhooks", operation_id = "addAdminWebhook", request_body = NewEndpoint,
    responses(
        (status = 201, body = EndpointView, description = "added, with its `secret` (shown this once)"),
        (status = 400, body = super::Problem, content_type = "application/problem+json", description = "the body cannot be read (`request.*`)"),
        (status = 403, body = super::Problem, content_type = "application/problem+json", description = "not an admin (`auth.not_admin`)"),
        (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`webhook.too_many`"),
        (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`webhook.invalid`: `errors` names each field (`webhook.url.invalid`, `webhook.url.unresolvable`, `webhook.events.unknown`, `webhook.events.empty`, `webhook.secret.invalid`, `env.name.invalid`, `webhook.user.invalid`)"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn add_admin(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(new): ApiJson<NewEndpoint>,
) -> Result<impl IntoResponse, ApiError> {
    let view = state.webhooks.add_admin(&admin, new).await?;
    Ok(created(format!("/api/v1/admin/webhooks/{}", view.id), view))
}

/// Every admin webhook (without secrets).
#[utoipa::path(get, path = "/api/v1/admin/webhooks", tag = "webhooks", operation_id = "listAdminWebhooks",
    responses(
        (status = 200, body = Vec<EndpointView>, description = "the admin webhooks"),
        (status = 403, body = super::Problem, content_type = "application/problem+json", description = "not an admin (`auth.not_admin`)"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn list_admin(State(state): State<AppState>, _admin: AdminUser) -> Result<Json<Vec<EndpointView>>, ApiError> {
    Ok(Json(state.webhooks.list_admin().await?))
}

/// One admin webhook.
#[utoipa::path(get, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks", operation_id = "getAdminWebhook", params(WebhookPath),
    responses(
        (status = 200, body = EndpointView, description = "the webhook"),
        (status = 403, body = super::Problem, content_type = "application/problem+json", description = "not an admin (`auth.not_admin`)"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`webhook.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn get_admin(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(state.webhooks.get_admin(&id).await?))
}

/// Removes an admin webhook and its delivery log; a delivery under way stops.
#[utoipa::path(delete, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks", operation_id = "removeAdminWebhook", params(WebhookPath),
    responses(
        (status = 204, description = "removed"),
        (status = 403, body = super::Problem, content_type = "application/problem+json", description = "not an admin (`auth.not_admin`)"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`webhook.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn remove_admin(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.remove_admin(&id).await?;
    tracing::info!(%admin, %id, "admin webhook removed");
    Ok(StatusCode::NO_CONTENT)
}

/// An admin webhook's delivery log, newest first: each delivery's event, deploy,
/// outcome (`pending`, `delivered`, `failed`) and attempts.
#[utoipa::path(get, path = "/api/v1/admin/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "listAdminWebhookDeliveries", params(WebhookPath),
    responses(
        (status = 200, body = Vec<Delivery>, description = "the log, newest first (`webhooks.deliveries_kept` at most)"),
        (status = 403, body = super::Problem, content_type = "application/problem+json", description = "not an admin (`auth.not_admin`)"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`webhook.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn deliveries_admin(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    Ok(Json(state.webhooks.deliveries_admin(&id).await?))
}

/// Adds a webhook to one of your envs, when platform.toml lets users
/// (`[webhooks] users_may_add`). Answers its signing secret this once.
#[utoipa::path(post, path = "/api/v1/envs/{name}/webhooks", tag = "webhooks", operation_id = "addEnvWebhook", params(WebhookEnvPath),
    request_body = NewEndpoint,
    responses(
        (status = 201, body = EndpointView, description = "added, with its `secret` (shown this once)"),
        (status = 400, body = super::Problem, content_type = "application/problem+json", description = "the body cannot be read (`request.*`)"),
        (status = 403, body = super::Problem, content_type = "application/problem+json", description = "`webhook.users_not_allowed`: only admins add webhooks on this platform"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`env.not_found`"),
        (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`webhook.too_many`"),
        (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`webhook.invalid`: `errors` names each field (`webhook.url.invalid`, `webhook.url.private`, `webhook.url.unresolvable`, `webhook.events.unknown`, `webhook.events.empty`, `webhook.secret.invalid`, `webhook.filter.admin_only`)"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn add_env(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
    ApiJson(new): ApiJson<NewEndpoint>,
) -> Result<impl IntoResponse, ApiError> {
    let env = env_name(&env)?;
    let view = state.webhooks.add_to_env(&user, &env, new).await?;
    Ok(created(format!("/api/v1/envs/{env}/webhooks/{}", view.id), view))
}

/// Your env's webhooks (without secrets).
#[utoipa::path(get, path = "/api/v1/envs/{name}/webhooks", tag = "webhooks", operation_id = "listEnvWebhooks", params(WebhookEnvPath),
    responses(
        (status = 200, body = Vec<EndpointView>, description = "the env's webhooks"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`env.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn list_env(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(env): ApiPath<String>,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    Ok(Json(state.webhooks.list_env(&user, &env_name(&env)?).await?))
}

/// One of your env's webhooks.
#[utoipa::path(get, path = "/api/v1/envs/{name}/webhooks/{id}", tag = "webhooks", operation_id = "getEnvWebhook", params(EnvWebhookPath),
    responses(
        (status = 200, body = EndpointView, description = "the webhook"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`env.not_found`, `webhook.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn get_env(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((env, id)): ApiPath<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(state.webhooks.get_env(&user, &env_name(&env)?, &id).await?))
}

/// Removes one of your env's webhooks and its delivery log.
#[utoipa::path(delete, path = "/api/v1/envs/{name}/webhooks/{id}", tag = "webhooks", operation_id = "removeEnvWebhook", params(EnvWebhookPath),
    responses(
        (status = 204, description = "removed"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`env.not_found`, `webhook.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn remove_env(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((env, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.remove_env(&user, &env_name(&env)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One of your env's webhooks' delivery log, newest first.
#[utoipa::path(get, path = "/api/v1/envs/{name}/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "listEnvWebhookDeliveries", params(EnvWebhookPath),
    responses(
        (status = 200, body = Vec<Delivery>, description = "the log, newest first (`webhooks.deliveries_kept` at most)"),
        (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`env.not_found`, `webhook.not_found`"),
        Common,
    ),
    security(("bearer" = [])))]
pub async fn deliveries_env(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((env, id)): ApiPath<(String, String)>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    Ok(Json(state.webhooks.deliveries_env(&user, &env_name(&env)?, &id).await?))
}
