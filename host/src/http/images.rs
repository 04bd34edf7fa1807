use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;

use super::page::{newest_first, Page, PageQuery};
use super::answers::{BadGateway, BadRequest, Common, ImageEvents, ImagePath, LastEventId, NotFound, TooLarge, Unprocessable};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, CurrentUser};
use crate::images::{ImageEvent, ImageRecord, ImageRequest};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Hold the answer until the image is built (201) or the build failed (problem).
    #[serde(default)]
    wait: bool,
}

/// Build an image of one of your WARs for one of your envs and push it as
/// `<registry>/<user>/<env>:<version>`. Answers 202 at once with the record (follow
/// `/events` for progress), or with `?wait=true` 201 once built.
#[utoipa::path(post, path = "/api/v1/images", tag = "images", operation_id = "createImage", params(WaitQuery), request_body = ImageRequest,
    responses((status = 202, body = ImageRecord, description = "building (`Location` names it)"), (status = 201, body = ImageRecord, description = "built (with ?wait=true)"),
        BadRequest, NotFound, TooLarge, Unprocessable, BadGateway, Common),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(request): ApiJson<ImageRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (status, record) = if query.wait {
        (StatusCode::CREATED, state.images.build_and_wait(&user, request).await?)
    } else {
        (StatusCode::ACCEPTED, state.images.build(&user, request).await?)
    };
    Ok((status, [(header::LOCATION, format!("/api/v1/images/{}", record.id))], Json(record)))
}

/// Your images, newest first, a page at a time (`Link` to the next).
#[utoipa::path(get, path = "/api/v1/images", tag = "images", operation_id = "listImages", params(PageQuery),
    responses((status = 200, body = Vec<ImageRecord>, description = "a page of your builds"), BadRequest, Common), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(page): ApiQuery<PageQuery>,
    uri: axum::http::Uri,
) -> Result<Page<ImageRecord>, ApiError> {
    page.page(state.images.list(&user).await?, |i| newest_first(i.created_at, &i.id), uri)
}

/// One image build: its status, and its digest once built.
#[utoipa::path(get, path = "/api/v1/images/{id}", tag = "images", operation_id = "getImage", params(ImagePath),
    responses((status = 200, body = ImageRecord, description = "the build"), NotFound, Common), security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, CurrentUser(user): CurrentUser, ApiPath(id): ApiPath<String>) -> Result<Json<ImageRecord>, ApiError> {
    Ok(Json(state.images.get(&user, &id).await?))
}

/// The build's progress as server-sent events, from its start: `step`, `bytes`,
/// `retry` and `output` events, then `built` or `failed` with the record, then the end.
#[utoipa::path(get, path = "/api/v1/images/{id}/events", tag = "images", operation_id = "streamImageEvents",
    params(ImagePath, LastEventId),
    responses(ImageEvents, NotFound, Common),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let events = state.images.events(&user, &id, super::last_event_id(&headers)).await?;
    Ok(super::event_stream(events, |event| match event {
        ImageEvent::Progress(progress) => match progress {
            crate::image::BuildEvent::Step { .. } => "step",
            crate::image::BuildEvent::Bytes { .. } => "bytes",
            crate::image::BuildEvent::Retry { .. } => "retry",
            crate::image::BuildEvent::Output { .. } => "output",
        },
        ImageEvent::Finished(record) => match record.status {
            crate::images::ImageStatus::Built => "built",
            _ => "failed",
        },
    }))
}
