//! The one place domain errors become HTTP: RFC 9457 problem+json with a stable
//! `code`, a `detail` that says what to do, and per-field `errors`. A 500 logs the
//! cause and tells the client only the request id to quote.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cluster::ClusterError;
use crate::deploys::DeployError;
use crate::envs::{EnvError, EnvOpsError};
use crate::images::ImageError;
use crate::store::StoreError;
use crate::users::UserError;
use crate::domain::Violation;
use crate::wars::WarError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<Violation>,
    /// Extra members, e.g. the id of a deploy already running.
    pub extra: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The body every error response has.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` is the stable identifier.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `env.invalid`.
    pub code: &'static str,
    pub errors: Vec<Violation>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, title, detail: detail.into(), errors: Vec::new(), extra: Default::default(), headers: Vec::new() }
    }

    pub fn with_errors(mut self, errors: Vec<Violation>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn with_header_value(mut self, name: header::HeaderName, value: String) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub fn invalid(detail: impl Into<String>, errors: Vec<Violation>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed", detail).with_errors(errors)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// Logs `cause` in full; the client learns nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side; quote the x-request-id header when reporting it",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::to_value(Problem {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
            errors: self.errors,
        })
        .expect("problems serialize");
        body.as_object_mut().expect("problem is an object").extend(self.extra);
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(message) => {
                tracing::error!(%message, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store.unavailable",
                    "Store unavailable",
                    "warship cannot reach its store right now; retry in a moment",
                )
            }
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the resource changed while we were writing it; read it again and retry",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<EnvError> for ApiError {
    fn from(e: EnvError) -> Self {
        match e {
            EnvError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "env.invalid",
                "Invalid environment",
                "fix the fields listed in `errors` and send the request again",
            )
            .with_errors(errors),
            EnvError::NotFound(name) => ApiError::not_found(
                "env.not_found",
                format!("you have no env named {name:?}; GET /api/v1/envs lists yours"),
            ),
            EnvError::Exists(name) => ApiError::new(
                StatusCode::CONFLICT,
                "env.exists",
                "Env already exists",
                format!("you already have an env named {name:?}; PATCH it to change it, or pick another name"),
            ),
            EnvError::Conflict(name) => ApiError::new(
                StatusCode::CONFLICT,
                "env.changed",
                "Env changed meanwhile",
                format!("env {name:?} was changed by another request; read it again and retry"),
            ),
            EnvError::TooMany(n) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "env.quota",
                "Too many envs",
                format!("you have {n} envs, the most allowed; delete one first"),
            ),
            EnvError::ReleaseTaken { env, revision } => ApiError::new(
                StatusCode::CONFLICT,
                "env.release_taken",
                "Release recorded already",
                format!("release {revision} of env {env} was recorded by another deploy; deploy again"),
            ),
            EnvError::Plugin(e) => e.into(),
            EnvError::Store(e) => e.into(),
        }
    }
}

impl From<WarError> for ApiError {
    fn from(e: WarError) -> Self {
        match e {
            WarError::InvalidName(errors) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "war.invalid_name",
                "Invalid WAR name",
                "fix the names listed in `errors`",
            )
            .with_errors(errors),
            WarError::TooLarge { max } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "war.too_large",
                "WAR too large",
                format!("the upload is larger than the {max} bytes ({} MiB) allowed; nothing was kept", max >> 20),
            ),
            WarError::Empty => ApiError::bad_request("war.empty", "the request body is empty; send the WAR file's bytes"),
            WarError::Interrupted(message) => ApiError::bad_request(
                "war.interrupted",
                format!("the upload stopped before it ended ({message}); nothing was kept, send it again"),
            ),
            WarError::Busy(busy) => {
                let detail = match busy {
                    crate::wars::Busy::User { max } => format!("you have {max} uploads running, the most one user may run at once; send this one when one of them has ended"),
                    crate::wars::Busy::Host { max } => format!("this host runs {max} uploads at once, the most it takes; send this one again in a few seconds"),
                };
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "upload.too_many", "Too many uploads", format!("{detail}; nothing was kept"))
                    .with_header(header::RETRY_AFTER, "5")
            }
            WarError::Idle { secs } => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload.idle",
                "Upload idle",
                format!("no bytes of the upload arrived for {secs} s; nothing was kept, send it again"),
            ),
            WarError::Rejected(inspect) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                inspect.code(),
                "Not an acceptable WAR",
                format!("{inspect}; nothing was kept"),
            ),
            WarError::NotFound { app, file } => ApiError::not_found(
                "war.not_found",
                format!("you have no WAR {app}/{file}; GET /api/v1/wars lists yours"),
            ),
            // The bucket, not this host, failed: the upload can be sent again later.
            WarError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<crate::wars::ObjectsError>()) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage.unavailable",
                "WAR storage unavailable",
                format!("the object storage WARs are kept in failed ({e}); nothing was kept: send it again in a moment, and if it keeps failing an admin checks the S3 server and the storage.s3_* settings"),
            )
            .with_header(header::RETRY_AFTER, "10"),
            WarError::Io(e) => ApiError::internal(e),
            WarError::Store(e) => e.into(),
        }
    }
}

impl From<crate::plugins::PluginError> for ApiError {
    fn from(e: crate::plugins::PluginError) -> Self {
        tracing::error!(plugin = %e.plugin, failure = %e.failure, "plugin call failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin.failed",
            "A plugin failed",
            format!("{e}; nothing was changed. Retry, and tell the platform admins if it keeps failing"),
        )
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Store(e) => e.into(),
            UserError::InvalidName(message) => ApiError::bad_request("user.invalid_name", message),
            UserError::Exists(name) => ApiError::new(StatusCode::CONFLICT, "user.exists", "Conflict", format!("user {name} already exists; rotate its token instead")),
            UserError::NotFound(name) => ApiError::not_found("user.not_found", format!("there is no user {name}; GET /api/v1/admin/users lists them")),
        }
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "image.invalid",
                "Cannot build this image",
                "fix what `errors` lists and send the request again; nothing was built",
            )
            .with_errors(errors),
            ImageError::NotFound(id) => ApiError::not_found(
                "image.not_found",
                format!("you have no image build {id:?}; GET /api/v1/images lists yours"),
            ),
            ImageError::Failed(failure) => {
                let mut problem = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "image.build_failed",
                    "The build failed",
                    format!("{}; nothing was recorded as built", failure.message),
                );
                problem.extra.insert("cause".into(), serde_json::json!(failure.code));
                problem
            }
            ImageError::Env(e) => e.into(),
            ImageError::War(e) => e.into(),
            ImageError::Plugin(e) => e.into(),
            ImageError::Store(e) => e.into(),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "deploy.invalid",
                "Cannot deploy this",
                "fix what `errors` lists and send the request again; nothing was deployed",
            )
            .with_errors(errors),
            DeployError::NotFound(id) => ApiError::not_found(
                "deploy.not_found",
                format!("you have no deploy {id:?}; GET /api/v1/envs/{{env}}/deploys lists an env's deploys"),
            ),
            DeployError::Ambiguous { prefix, ids } => {
                let mut problem = ApiError::new(
                    StatusCode::CONFLICT,
                    "deploy.ambiguous",
                    "Ambiguous deploy id",
                    format!("{prefix:?} starts {} deploys' ids; give more of the id", ids.len()),
                );
                problem.extra.insert("deploys".into(), serde_json::json!(ids));
                problem
            }
            DeployError::NoneRunning(env) => ApiError::not_found(
                "deploy.none_running",
                format!("no deploy is running on env {env}; GET /api/v1/envs/{env}/deploys lists its deploys"),
            ),
            DeployError::Running { env, running } => {
                let mut problem = ApiError::new(
                    StatusCode::CONFLICT,
                    "deploy.in_progress",
                    "Deploy in progress",
                    format!("deploy {running} is running on env {env}; follow it at GET /api/v1/deploys/{running}/events and try again once it ends"),
                );
                problem.extra.insert("deploy".into(), serde_json::json!(running));
                problem
            }
            DeployError::Finished { id, status } => ApiError::new(
                StatusCode::CONFLICT,
                "deploy.finished",
                "Deploy already ended",
                format!("deploy {id} already ended ({}); start a new deploy or a rollback instead", serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
            ),
            DeployError::NotAwaitingPromotion { id, now } => ApiError::new(
                StatusCode::CONFLICT,
                "deploy.not_awaiting_promotion",
                "Not waiting for promotion",
                format!("deploy {id} is not waiting for promotion ({now}); promote it when its step says it awaits promotion"),
            ),
            DeployError::NoCluster => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "kubernetes.not_configured",
                "No Kubernetes cluster",
                "this warship host has no cluster to deploy to: set kubernetes.kubeconfig (or in_cluster) in platform.toml",
            ),
            DeployError::Env(e) => e.into(),
            DeployError::War(e) => e.into(),
            DeployError::Plugin(e) => e.into(),
            DeployError::Store(e) => e.into(),
        }
    }
}

impl From<EnvOpsError> for ApiError {
    fn from(e: EnvOpsError) -> Self {
        match e {
            EnvOpsError::Running { env, running } => DeployError::Running { env, running }.into(),
            EnvOpsError::NoSuchPod { env, pod, pods } => ApiError::not_found(
                "logs.pod_not_found",
                format!("env {env} has no pod {pod:?}; its pods are: {}", if pods.is_empty() { "none".to_owned() } else { pods.join(", ") }),
            ),
            EnvOpsError::NoPods(env) => ApiError::not_found("logs.no_pods", format!("env {env} runs no pods; deploy it first")),
            EnvOpsError::Logs { pod, source } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "logs.unavailable",
                "Log unavailable",
                format!("Kubernetes could not give the log of pod {pod}: {source}; the pod's node may be unreachable from the API server"),
            ),
            EnvOpsError::NoCluster => DeployError::NoCluster.into(),
            EnvOpsError::Env(e) => e.into(),
            EnvOpsError::Store(e) => e.into(),
            EnvOpsError::Cluster(e) => e.into(),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        tracing::error!(error = %e, "Kubernetes call failed");
        let status = match e {
            ClusterError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.code(), "Kubernetes failed", format!("{e}; nothing else was changed, retry in a moment"))
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(e: crate::webhooks::WebhookError) -> Self {
        use crate::webhooks::WebhookError;
        match e {
            WebhookError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "webhook.invalid",
                "Cannot add this webhook",
                "fix what `errors` lists and send the request again; nothing was added",
            )
            .with_errors(errors),
            WebhookError::UsersMayNotAdd => ApiError::new(
                StatusCode::FORBIDDEN,
                "webhook.users_not_allowed",
                "Users may not add webhooks",
                "this platform lets only admins add webhooks; ask an admin to set `[webhooks] users_may_add = true` in platform.toml, or to add one for your env at POST /api/v1/admin/webhooks",
            ),
            WebhookError::NotFound(id) => ApiError::not_found(
                "webhook.not_found",
                format!("there is no webhook {id:?} here; list them with GET on the same path without the id"),
            ),
            WebhookError::TooMany { scope, max } => ApiError::new(
                StatusCode::CONFLICT,
                "webhook.too_many",
                "Too many webhooks",
                format!("{scope} has {max} webhooks, the most allowed; remove one first"),
            ),
            WebhookError::Env(e) => e.into(),
            WebhookError::Store(e) => e.into(),
        }
    }
}
