//! What the OpenAPI document says of answers and parameters shared by many routes: the
//! problem answers each status stands for (with the `code`s it carries), the path
//! parameters, and the server-sent event streams. Handlers name these in their
//! `#[utoipa::path]` instead of repeating tuples, so a generated client sees every
//! answer a route can give under one shape.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoParams, IntoResponses};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
}

fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String))
        .description(Some(description))
        .build()
}

fn answers(list: impl IntoIterator<Item = (&'static str, ResponseBuilder)>) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter().map(|(status, response)| (status.to_owned(), RefOr::T(response.build()))).collect()
}

/// One problem answer per type: `(status, description)`.
macro_rules! problem_answers {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $description:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                answers([($status, problem($description))])
            }
        }
    )*};
}

problem_answers! {
    /// A body or query that cannot be read.
    BadRequest => "400", "The request cannot be read: not JSON (`request.content_type`, `request.malformed_json`), a field \
        unknown or of the wrong type (`request.unknown_field`, `request.invalid_field`, named in `errors`), a query \
        parameter that does not parse or is out of range (`request.query`, `request.invalid`), or a WAR or user name that cannot be (`war.invalid_name`, `war.empty`, \
        `war.interrupted`, `user.invalid_name`).";
    /// Admin routes.
    Forbidden => "403", "You are not an admin (`auth.not_admin`): admins are named in platform.toml's `[users] admins`.";
    /// Anything looked up by name or id: another user's answers the same.
    NotFound => "404", "You have no such thing (`env.not_found`, `war.not_found`, `image.not_found`, `deploy.not_found`, \
        `deploy.none_running`, `logs.pod_not_found`, `logs.no_pods`, `user.not_found`); another user's answers the same.";
    /// A write that clashes with the state.
    Conflict => "409", "It clashes with what is there now: `env.exists`, `env.changed`, `env.release_taken`, `user.exists`, \
        `conflict` (written meanwhile: read again and retry), `deploy.in_progress` (the running deploy's id in `deploy`), \
        `deploy.ambiguous` (the matching ids in `deploys`), `deploy.finished`, `deploy.not_awaiting_promotion`.";
    /// A body over a cap.
    TooLarge => "413", "The body is over a cap: `war.too_large` (the upload cap, before a byte is read when \
        `Content-Length` says so), `request.field_too_large` (a form's text field), `request.body` (a JSON body over 2 MiB).";
    /// Validation.
    Unprocessable => "422", "Readable but not acceptable: the fields in `errors` say what to fix (`env.invalid`, \
        `env.quota`, `deploy.invalid`, `image.invalid`, `validation_failed`, or a WAR refused on inspection, e.g. \
        `war.not_zip`, `war.no_web_inf`, `war.too_many_entries`).";
    /// Registry or cluster failures.
    BadGateway => "502", "Something warship depends on failed: `image.build_failed` (the build's `cause`), \
        `logs.unavailable`, or a Kubernetes call (`kubernetes.*`).";
    /// A cluster call that took too long.
    GatewayTimeout => "504", "Kubernetes did not finish in time (`kubernetes.timed_out`); nothing else was changed.";
    /// An upload that stalled.
    UploadIdle => "408", "No bytes of the upload arrived for `uploads.idle_timeout_secs` (`upload.idle`); nothing was kept.";
}

/// What every route behind a bearer token can answer besides its own: refused tokens
/// (401, and 429 once an address sent too many unknown ones), the store or the request
/// deadline failing (503), and a fault of ours (500).
pub struct Common;

impl IntoResponses for Common {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers([
            (
                "401",
                problem("No usable bearer token: `auth.missing_token`, `auth.malformed`, `auth.invalid_token` (unknown, rotated or revoked).")
                    .header("WWW-Authenticate", header("`Bearer realm=\"warship\"`")),
            ),
            (
                "429",
                problem("Too many at once: `auth.too_many_failures` (too many unknown tokens from your address), \
                    `upload.too_many` (uploads running for you or on this host). Retry after `Retry-After` seconds.")
                    .header("Retry-After", header("Seconds to wait before trying again.")),
            ),
            ("500", problem("A fault of ours (`internal`, `plugin.failed`); quote the `x-request-id` header when reporting it.")),
            (
                "503",
                problem("Not now: `store.unavailable`, `request.timeout` (past `server.request_timeout_secs`), \
                    `kubernetes.not_configured` (this host has no cluster). Retry in a moment."),
            ),
        ])
    }
}

/// `{name}` of an env.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI document only; handlers take ApiPath<String>
pub struct EnvPath {
    /// The env's name (a DNS label).
    #[param(example = "shop")]
    name: String,
}

/// `{id}` of a deploy.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct DeployPath {
    /// The deploy's id, or an unambiguous start of it (4 characters or more).
    #[param(example = "0193a4f2")]
    id: String,
}

/// `{id}` of an image build.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ImagePath {
    /// The build's id.
    #[param(example = "0193a4f2-5c3e-7a1b-9d2e-3f4a5b6c7d8e")]
    id: String,
}

/// `{app}/{file}` of a WAR.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct WarPath {
    /// The app the WAR belongs to.
    #[param(example = "shop")]
    app: String,
    /// The WAR's file name.
    #[param(example = "shop-1.0.war")]
    file: String,
}

/// `{name}` of a user.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct UserPath {
    /// The user's name.
    #[param(example = "alice")]
    name: String,
}

/// Where a reconnecting event-stream client left off.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct LastEventId {
    /// The `id` of the last event received; the stream goes on after it (from the start without it).
    #[param(rename = "Last-Event-ID", example = 12)]
    last_event_id: Option<u64>,
}

fn event_stream(description: &str, data: &str) -> BTreeMap<String, RefOr<Response>> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(data))).build();
    answers([("200", ResponseBuilder::new().description(description).content("text/event-stream", content))])
}

/// `GET /api/v1/deploys/{id}/events`.
pub struct DeployEvents;

impl IntoResponses for DeployEvents {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        event_stream(
            "Server-sent events, each with its sequence number as `id`, its kind as `event:` and a JSON `data:` \
             (a `DeployEvent`, whose `event` member names its kind too): `record` (the deploy's record after each \
             persisted step; the last one, with a final `status`, ends the stream), `build` (image build and push \
             progress: a `BuildEvent`), `replicas` (ready replicas of the stable and candidate workloads, as observed).",
            "DeployEvent",
        )
    }
}

/// `GET /api/v1/images/{id}/events`.
pub struct ImageEvents;

impl IntoResponses for ImageEvents {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        event_stream(
            "Server-sent events, each with its sequence number as `id`, its kind as `event:` and a JSON `data:` \
             (an `ImageEvent`): `step` (a step began), `bytes` (bytes of a blob pushed so far), `retry` (a transient \
             registry failure, tried again), `output` (a line the Docker Engine printed) — each a `BuildEvent` with \
             that `type` — then `built` or `failed` with the final `ImageRecord`, which ends the stream.",
            "ImageEvent",
        )
    }
}
