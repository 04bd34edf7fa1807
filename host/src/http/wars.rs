use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::page::{Page, PageQuery};
use super::answers::{BadRequest, Common, NotFound, TooLarge, Unprocessable, UploadIdle, WarPath};
use super::{ApiError, ApiPath, ApiQuery, AppState, CurrentUser};
use crate::wars::{check_names, WarError, WarRecord};

/// Refuses, before reading a byte, a body whose declared length is over the cap.
pub(super) fn check_declared_length(headers: &HeaderMap, max: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max => Err(WarError::TooLarge { max }.into()),
        _ => Ok(()),
    }
}

/// Upload a WAR as the raw request body. Replaces an earlier upload of the same name.
#[utoipa::path(put, path = "/api/v1/wars/{app}/{file}", tag = "wars", operation_id = "uploadWar", params(WarPath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the WAR file's bytes"),
    responses((status = 201, body = WarRecord, description = "stored"), (status = 200, body = WarRecord, description = "replaced"),
        BadRequest, UploadIdle, TooLarge, Unprocessable, Common),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((app, file)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    check_names(&app, &file)?;
    check_declared_length(&headers, state.wars.max_bytes())?;
    let received = state.wars.receive(&user, body.into_data_stream()).await?;
    let (record, replaced) = state.wars.keep(&user, &app, &file, received).await?;
    tracing::info!(app, file, sha256 = %record.sha256, size = record.size, "WAR stored");
    let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, [(header::LOCATION, format!("/api/v1/wars/{app}/{file}"))], Json(record)))
}

/// List your WARs with their facts, by app and file, a page at a time (`Link` to the next).
#[utoipa::path(get, path = "/api/v1/wars", tag = "wars", operation_id = "listWars", params(PageQuery),
    responses((status = 200, body = Vec<WarRecord>, description = "a page of your WARs"), BadRequest, Common), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(page): ApiQuery<PageQuery>,
    uri: axum::http::Uri,
) -> Result<Page<WarRecord>, ApiError> {
    page.page(state.wars.list(&user).await?, |w| format!("{}/{}", w.app, w.file), uri)
}

/// One WAR's facts.
#[utoipa::path(get, path = "/api/v1/wars/{app}/{file}", tag = "wars", operation_id = "getWar", params(WarPath),
    responses((status = 200, body = WarRecord, description = "the WAR's facts"), NotFound, Common), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((app, file)): ApiPath<(String, String)>,
) -> Result<Json<WarRecord>, ApiError> {
    Ok(Json(state.wars.get(&user, &app, &file).await?))
}

/// Delete a WAR; its bytes go when no one else uploaded the same ones.
#[utoipa::path(delete, path = "/api/v1/wars/{app}/{file}", tag = "wars", operation_id = "deleteWar", params(WarPath),
    responses((status = 204, description = "deleted"), NotFound, Common), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((app, file)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.wars.delete(&user, &app, &file).await?;
    Ok(StatusCode::NO_CONTENT)
}
