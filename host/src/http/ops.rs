use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{ApiError, AppState, CurrentUser};
use crate::config::CatalogEntry;

#[derive(OpenApi)]
#[openapi(
    info(title = "warship", description = "Self-service deployment of Java web apps on Kubernetes."),
    paths(
        catalog, plugins, super::envs::create, super::envs::list, super::envs::get, super::envs::update, super::envs::delete,
        super::wars::upload, super::wars::list, super::wars::get, super::wars::delete,
        super::images::create, super::images::list, super::images::get, super::images::events,
        super::deploys::create, super::deploys::list, super::deploys::get, super::deploys::events,
        super::deploys::promote, super::deploys::promote_env, super::deploys::abort, super::deploys::abort_env, super::deploys::rollback, super::envs::logs,
        super::legacy::createenv, super::legacy::getuploadwars, super::legacy::upload, super::legacy::deploy,
        super::users::list, super::users::add, super::users::rotate, super::users::revoke,
        healthz, readyz,
    ),
    components(schemas(super::Problem, crate::domain::Violation)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Plugins loaded, with their versions, content hashes and limits; optional
/// plugins that failed to load are listed with the reason.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins",
    responses((status = 200, body = PluginList)), security(("bearer" = [])))]
pub async fn plugins(State(state): State<AppState>, _user: CurrentUser) -> Json<PluginList> {
    Json(PluginList {
        loaded: state.plugins.views(),
        skipped: state.plugins.skipped().iter().map(|(name, reason)| SkippedPlugin { name: name.clone(), reason: reason.clone() }).collect(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    loaded: Vec<crate::plugins::PluginView>,
    skipped: Vec<SkippedPlugin>,
}

#[derive(Serialize, ToSchema)]
pub struct SkippedPlugin {
    name: String,
    reason: String,
}

/// The Tomcat × JDK pairs envs can use.
#[utoipa::path(get, path = "/api/v1/catalog", tag = "envs",
    responses((status = 200, body = Vec<CatalogEntry>)), security(("bearer" = [])))]
pub async fn catalog(State(state): State<AppState>, _user: CurrentUser) -> Json<Vec<CatalogEntry>> {
    Json(state.config.catalog.clone())
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = super::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready", "the store does not answer; see the host's logs")
    })?;
    Ok(Json(Health { status: "ready" }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
