//! The HTTP edge: one function builds the router the binary serves and the tests
//! drive. Handlers parse, authorize, and call one domain function.

mod answers;
mod cors;
mod deploys;
mod docs;
mod envs;
mod error;
mod examples;
mod extract;
mod images;
mod legacy;
mod page;
mod ops;
mod schemas;
mod users;
mod wars;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, Problem};
pub use extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};

use crate::config::Config;
use crate::deploys::Deploys;
use crate::envs::{EnvOps, Envs};
use crate::images::Images;
use crate::plugins::Plugins;
use crate::store::DynStore;
use crate::users::Users;
use crate::wars::Wars;
use crate::webhooks::Webhooks;

/// Everything a handler may need, wired once by the server.
pub struct Services {
    pub config: Arc<Config>,
    pub store: DynStore,
    pub users: Users,
    pub envs: Envs,
    pub env_ops: Arc<EnvOps>,
    pub wars: Arc<Wars>,
    pub images: Arc<Images>,
    pub deploys: Arc<Deploys>,
    pub plugins: Arc<Plugins>,
    pub webhooks: Arc<Webhooks>,
    pub metrics: PrometheusHandle,
}

pub type AppState = Arc<Services>;

/// The API alone.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The API with `pages` beside it (the console: `console::app`), under the same
/// layers: request ids, tracing, metrics, the fallback.
pub fn app_with(state: AppState, pages: Router<AppState>) -> Router {
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    let cors = cors::layer(&state.config.server.cors);

    // WAR uploads are bounded by size, not by time: a 1 GiB WAR over a slow link
    // legitimately takes minutes.
    let uploads = Router::new()
        .route("/api/v1/wars/{app}/{file}", put(wars::upload))
        .route("/upload", post(legacy::upload))
        .layer(axum::extract::DefaultBodyLimit::disable());

    // Builds are bounded by the registry's push deadline, and event streams last as
    // long as what they follow.
    let long = Router::new()
        .route("/api/v1/images", post(images::create))
        .route("/api/v1/images/{id}/events", get(images::events))
        .route("/api/v1/deploys/{id}/events", get(deploys::events))
        .route("/api/v1/envs/{name}/logs", get(envs::logs))
        // Deleting an env waits for its pods to be gone.
        .route("/api/v1/envs/{name}", axum::routing::delete(envs::delete));

    let api = Router::new()
        .route("/api/v1/catalog", get(ops::catalog))
        .route("/api/v1/plugins", get(ops::plugins))
        .route("/api/v1/envs", post(envs::create).get(envs::list))
        .route("/api/v1/envs/{name}", get(envs::get).patch(envs::update))
        .route("/api/v1/envs/{name}/deploys", post(deploys::create).get(deploys::list))
        .route("/api/v1/deploys/{id}", get(deploys::get))
        .route("/api/v1/deploys/{id}/promote", post(deploys::promote))
        .route("/api/v1/deploys/{id}/abort", post(deploys::abort))
        .route("/api/v1/envs/{name}/rollback", post(deploys::rollback))
        .route("/api/v1/envs/{name}/promote", post(deploys::promote_env))
        .route("/api/v1/envs/{name}/abort", post(deploys::abort_env))
        .route("/api/v1/wars", get(wars::list))
        .route("/api/v1/images", get(images::list))
        .route("/api/v1/images/{id}", get(images::get))
        .route("/api/v1/wars/{app}/{file}", get(wars::get).delete(wars::delete))
        .route("/createenv", post(legacy::createenv))
        .route("/getuploadwars", get(legacy::getuploadwars))
        .route("/deploy", post(legacy::deploy))
        .route("/api/v1/admin/users", get(users::list).post(users::add))
        .route("/api/v1/admin/webhooks", get(webhooks::list_admin).post(webhooks::add_admin))
        .route("/api/v1/admin/webhooks/{id}", get(webhooks::get_admin).delete(webhooks::remove_admin))
        .route("/api/v1/admin/webhooks/{id}/deliveries", get(webhooks::deliveries_admin))
        .route("/api/v1/envs/{name}/webhooks", get(webhooks::list_env).post(webhooks::add_env))
        .route("/api/v1/envs/{name}/webhooks/{id}", get(webhooks::get_env).delete(webhooks::remove_env))
        .route("/api/v1/envs/{name}/webhooks/{id}/deliveries", get(webhooks::deliveries_env))
        .route("/api/v1/admin/users/{name}/rotate", post(users::rotate))
        .route("/api/v1/admin/users/{name}/revoke", post(users::revoke))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/api/v1/docs", get(docs::page))
        .route("/api/v1/docs/docs.js", get(docs::script))
        .route("/api/v1/docs/docs.css", get(docs::style))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(middleware::from_fn_with_state(timeout, deadline));

    api.merge(uploads)
        .merge(long)
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, user = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Outermost: a preflight is answered before anything asks who is calling.
        .layer(tower::util::option_layer(cors))
        .with_state(state)
}

/// A job's events as server-sent events, each with its sequence number as `id` and
/// named by `name`. A store failure ends the stream; the client reconnects with
/// `Last-Event-ID` and goes on where it was.
fn event_stream<T: serde::Serialize + Send + 'static>(
    events: impl futures_util::Stream<Item = Result<(u64, T), crate::store::StoreError>> + Send + 'static,
    name: fn(&T) -> &'static str,
) -> axum::response::sse::Sse<impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>> {
    use futures_util::StreamExt;
    let events = events
        .take_while(|item| {
            if let Err(e) = item {
                tracing::warn!(error = %e, "an event stream ends: the store failed under it");
            }
            futures_util::future::ready(item.is_ok())
        })
        .filter_map(move |item| {
            futures_util::future::ready(item.ok().map(|(seq, event)| {
                Ok(axum::response::sse::Event::default().id(seq.to_string()).event(name(&event)).json_data(&event).expect("events serialize"))
            }))
        });
    axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default())
}

/// Where a reconnecting client left off: the `Last-Event-ID` it sends (0: from the start).
pub(crate) fn last_event_id(headers: &axum::http::HeaderMap) -> u64 {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

pub(crate) async fn deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request.timeout",
            "Request timed out",
            format!("the request took longer than {}s; retry, and report it if it keeps happening", timeout.as_secs()),
        )
        .into_response(),
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("route.not_found", "no such endpoint; GET /api/v1/openapi.json lists them all")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        "Method not allowed",
        "this endpoint does not take that method; GET /api/v1/openapi.json lists what it takes",
    )
}
