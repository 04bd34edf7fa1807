use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::answers::Common;
use super::examples::Examples;
use super::schemas::Reshape;
use super::{ApiError, AppState, CurrentUser};
use crate::config::CatalogEntry;

#[derive(OpenApi)]
#[openapi(
    info(title = "warship", description = "Self-service deployment of Java web apps on Kubernetes. Every route but the \
        operations ones takes `Authorization: Bearer <token>`; every error is an RFC 9457 problem \
        (`application/problem+json`) with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")),
    servers((url = "/", description = "the host serving this document")),
    tags(
        (name = "envs", description = "Environments: where WARs run (Tomcat, JDK, replicas), their status and pods' logs."),
        (name = "wars", description = "WAR files: upload, list, inspect, delete."),
        (name = "images", description = "Image builds of a WAR for an env, pushed to the registry."),
        (name = "deploys", description = "Deploys: build, push and roll out by a strategy; promote, abort, roll back."),
        (name = "plugins", description = "The plugins the platform loaded."),
        (name = "admin", description = "Users and their tokens, for admins (`[users] admins`)."),
        (name = "webhooks", description = "Endpoints that hear of deploys (signed JSON or Slack messages), with each one's delivery log: admins' for every env, users' for their own envs when `[webhooks] users_may_add`."),
        (name = "original", description = "The original API's four operations, kept for existing front ends (the nested `details` shape)."),
        (name = "operations", description = "Liveness, readiness and this document, without a token."),
    ),
    paths(
        catalog, plugins, super::envs::create, super::envs::list, super::envs::get, super::envs::update, super::envs::delete,
        super::wars::upload, super::wars::list, super::wars::get, super::wars::delete,
        super::images::create, super::images::list, super::images::get, super::images::events,
        super::deploys::create, super::deploys::list, super::deploys::get, super::deploys::events,
        super::deploys::promote, super::deploys::promote_env, super::deploys::abort, super::deploys::abort_env, super::deploys::rollback, super::envs::logs,
        super::legacy::createenv, super::legacy::getuploadwars, super::legacy::upload, super::legacy::deploy,
        super::users::list, super::users::add, super::users::rotate, super::users::revoke,
        super::webhooks::add_admin, super::webhooks::list_admin, super::webhooks::get_admin, super::webhooks::remove_admin, super::webhooks::deliveries_admin,
        super::webhooks::add_env, super::webhooks::list_env, super::webhooks::get_env, super::webhooks::remove_env, super::webhooks::deliveries_env,
        healthz, readyz, openapi, super::docs::page,
    ),
    components(schemas(super::Problem, crate::domain::Violation, crate::deploys::DeployEvent)),
    modifiers(&BearerAuth, &Reshape, &Examples),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// This document: OpenAPI 3.1, every operation with a unique `operationId`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "getOpenApi",
    responses((status = 200, content_type = "application/json", body = Object, description = "the OpenAPI document")), security(()))]
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Plugins loaded, with their versions, content hashes and limits; optional
/// plugins that failed to load are listed with the reason.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", operation_id = "listPlugins",
    responses((status = 200, body = PluginList, description = "loaded and skipped plugins"), Common), security(("bearer" = [])))]
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
#[utoipa::path(get, path = "/api/v1/catalog", tag = "envs", operation_id = "listCatalog",
    responses((status = 200, body = Vec<CatalogEntry>, description = "the pairs"), Common), security(("bearer" = [])))]
pub async fn catalog(State(state): State<AppState>, _user: CurrentUser) -> Json<Vec<CatalogEntry>> {
    Json(state.config.catalog.clone())
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "getHealth",
    responses((status = 200, body = Health, description = "up")), security(()))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "getReadiness",
    responses((status = 200, body = Health, description = "ready"),
        (status = 503, body = super::Problem, content_type = "application/problem+json", description = "the store does not answer (`not_ready`)")),
    security(()))]
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
