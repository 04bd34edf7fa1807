//! Users, for admins (`[users] admins` in platform.toml): list, add, rotate a token,
//! revoke one. Works with either store while the server runs, which the CLI relies on:
//! the embedded store is one process's alone.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answers::{BadRequest, Common, Conflict, Forbidden, NotFound, TooLarge, UserPath};
use super::extract::{AdminUser, ApiJson, ApiPath};
use super::{ApiError, AppState};
use crate::users::UserView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
}

/// A user's new token, shown this once: only its sha256 is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub name: String,
    pub token: String,
}

/// Every user added through `warship user add` or this API.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", operation_id = "listUsers",
    responses((status = 200, body = Vec<UserView>, description = "every user"), Forbidden, Common), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _admin: AdminUser) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(state.users.list().await?))
}

/// Adds a user and answers its token.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", operation_id = "addUser", request_body = NewUser,
    responses((status = 201, body = IssuedToken, description = "added, with its token (shown this once)"), BadRequest, Forbidden, Conflict, TooLarge, Common),
    security(("bearer" = [])))]
pub async fn add(State(state): State<AppState>, AdminUser(admin): AdminUser, ApiJson(new): ApiJson<NewUser>) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let token = state.users.add(&new.name).await?;
    tracing::info!(%admin, user = %new.name, "user added");
    Ok((StatusCode::CREATED, Json(IssuedToken { name: new.name, token })))
}

/// Gives the user a new token; the old one ends at once, on every host.
#[utoipa::path(post, path = "/api/v1/admin/users/{name}/rotate", tag = "admin", operation_id = "rotateUserToken", params(UserPath),
    responses((status = 200, body = IssuedToken, description = "the new token (shown this once)"), Forbidden, NotFound, Common),
    security(("bearer" = [])))]
pub async fn rotate(State(state): State<AppState>, AdminUser(admin): AdminUser, ApiPath(name): ApiPath<String>) -> Result<Json<IssuedToken>, ApiError> {
    let token = state.users.rotate(&name).await?;
    tracing::info!(%admin, user = %name, "token rotated");
    Ok(Json(IssuedToken { name, token }))
}

/// Ends the user's token at once, on every host (until an admin rotates it).
#[utoipa::path(post, path = "/api/v1/admin/users/{name}/revoke", tag = "admin", operation_id = "revokeUserToken", params(UserPath),
    responses((status = 204, description = "revoked"), Forbidden, NotFound, Common), security(("bearer" = [])))]
pub async fn revoke(State(state): State<AppState>, AdminUser(admin): AdminUser, ApiPath(name): ApiPath<String>) -> Result<StatusCode, ApiError> {
    state.users.revoke(&name).await?;
    tracing::info!(%admin, user = %name, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
