//! The web console under `/ui`: server-rendered pages (maud) over the same services the
//! API handlers call, a session cookie in place of the bearer token, and one small
//! script (`assets/console.js`) for upload progress, live updates over SSE, local
//! times and confirmations. Every page works without the script: forms post, a reload
//! shows the new state.
//!
//! # DOM contract
//!
//! What the browser tests rely on; keep it stable. Every form carries the hidden field
//! `csrf`; every control has a `<label for>`; a field's error is in `#{control-id}-error`
//! (present, empty when there is none) and the form's summary in `#form-errors`
//! (`hidden` when empty). Timestamps are `<time datetime data-local>`. Buttons are
//! `<button type="submit">` with the label quoted here.
//!
//! | page | URL | contract |
//! |---|---|---|
//! | login | `GET /ui/login[?next=&expired=1]`, `POST /ui/login` | `form#login-form`: `token` (`#login-token`), hidden `next`; button "Sign in"; error in `#login-token-error`; signed in, the browser goes to `next` (a `/ui/` page) or `/ui/envs` |
//! | every signed-in page | | `#current-user` (the user's name); `form#logout-form` (`POST /ui/logout`), button "Sign out"; nav links "Envs", "WARs", "Plugins" |
//! | envs | `GET /ui/envs`, `POST /ui/envs` (create) | `table#envs`, one `tr[data-env="{name}"]` per env with `td[data-col="release"]`, `[data-col="version"]`, `[data-col="digest"]`, `[data-col="ready"]`, `[data-col="deploy"]`, and a link to `/ui/envs/{name}`; `p#no-envs` when none. `form#env-form` (create): `name` `#env-name`, `runtime` `#env-runtime` (a `<select>`, values `{tomcat}/{jdk}`), `replicas` `#env-replicas`, `jvm_options` `#env-jvm-options`, `context_path` `#env-context-path`, `health_path` `#env-health-path`, `rollout_deadline_secs` `#env-rollout-deadline`, `env` `#env-vars` (textarea, `KEY=value` lines), `requests_cpu` `#env-requests-cpu`, `requests_memory` `#env-requests-memory`, `limits_cpu` `#env-limits-cpu`, `limits_memory` `#env-limits-memory`; button "Create env" |
//! | edit env | `GET`, `POST /ui/envs/{name}/edit` | `form#env-form` as above without `name`; button "Save changes" |
//! | delete env | `GET`, `POST /ui/envs/{name}/delete` | `form#delete-form`, button "Delete env {name}" |
//! | an env | `GET /ui/envs/{name}` | `#env[data-env]`; `#env-summary` (live) with `#serving` (the release serving, `[data-revision]`), `a#app-url` when the platform gives a URL and `a#deploying` to a running deploy; `#status-tree[data-live]` (live: ▸ `li.workload[data-workload="{name}"]` with `[data-ready]`, `[data-desired]`, `[data-serving]` ▸ `li.pod[data-pod="{name}"]` with `[data-ready]`, `[data-restarts]`, `[data-waiting]`; without a cluster a `p` saying so); `table#releases` `tr[data-revision]` each with a `form.rollback-form` (button "Roll back to this", `aria-label` "Roll back to release {n}", `data-confirm`; none on the serving one), `p#no-releases` when none; `table#deploys` `tr[data-deploy="{id}"]`; links "Deploy", "Edit", "Delete", "Logs" (`#deploy-link`, `#edit-link`, `#delete-link`, `#logs-link`) |
//! | deploy | `GET`, `POST /ui/envs/{name}/deploy` | `form#deploy-form`: `war` `#deploy-war` (`<select>`, values `app/file`), `version` `#deploy-version`, `strategy` `#deploy-strategy` (`<select>`); one `fieldset.strategy-settings[data-strategy="{name}"]` per strategy (`#settings-{name}`), each setting `settings.{strategy}.{key}` `#setting-{strategy}-{key}` (empty: the admin's value, shown as its placeholder and in `[data-default]`; `disabled` when the admin fixed it; the script hides and disables every fieldset but the chosen strategy's); `p#no-wars` when the user has no WAR; button "Deploy" |
//! | a deploy | `GET /ui/deploys/{id}` | `#deploy[data-deploy-status]` (live), `#deploy-summary` (`dd#deploy-status[data-status]`, `dd#deploy-step`: the step in the plugin's words), `ol#timeline` (`li[data-status]`), `#push-progress` (`p#push-step`, `progress#push-bar`, `#push-bytes`), `#replicas` (`meter#replicas-stable`, `meter#replicas-candidate`), `#deploy-actions` with `form#promote-form` (button "Promote") and `form#abort-form` (button "Abort", `data-confirm`) only when they apply; `#failure` holds, once it failed, `.problem[data-code][data-cause]` with `a#failure-logs` (the pod's logs). All of these but the `h1` are refilled live |
//! | logs | `GET /ui/envs/{name}/logs?pod=&tail=&follow=` | `form#logs-form` (`GET`): `pod` `#logs-pod`, `tail` `#logs-tail`, `follow` `#logs-follow` (checkbox); button "Show"; `code#logs-shown-pod`; `p#logs-problem[data-code]` when Kubernetes cannot give a log (e.g. `kubernetes.not_configured`); `pre#log` (`[data-live]` while following: lines are appended); `a#logs-raw` (the plain-text follow) |
//! | WARs | `GET /ui/wars`, `POST /ui/wars?csrf=` (multipart), `PUT /ui/wars/{app}/{file}` (the script's, `X-CSRF-Token`) | `table#wars` `tr[data-war="{app}/{file}"]`, `p#no-wars` when none; `form#upload-form`: `app` `#upload-app`, `file` `#upload-file` (the name to keep; the chosen file's by default), `war` `#upload-war` (file input); button "Upload"; `#upload-progress` (`<progress>`), `#upload-status` (bytes, rate); after a scripted upload the browser goes to the WAR's page |
//! | a WAR | `GET /ui/wars/{app}/{file}`; delete `GET`, `POST …/delete` | `dl#war-facts` with `dd[data-fact="size|sha256|servlet-api|servlet-api-source|web-xml|entries|uploaded"]`; `a#delete-link`; `form#delete-form`, button "Delete WAR {file}" |
//! | plugins | `GET /ui/plugins` | `table#plugins` `tr[data-plugin="{name}"]` with `td[data-col="kind|version|contract|sha256|limits"]`; `table#skipped-plugins` when some failed to load |
//! | not found | any unknown `/ui/…`, others' envs, deploys, WARs | status 404, `#not-found` |
//!
//! Live updates are `EventSource`s on the `data-live` URL of an element: events named
//! `fragments` carry `{"html": {"id": "inner HTML"}, "attrs": {"id": {"attr": "value"}}}`,
//! `line` carries log text, `end` says the stream is over, `signed-out` that the session
//! ended (signed out elsewhere, expired, token revoked; checked every 5 s): the script
//! then closes the stream, shows `p#signed-out` and, 1.5 s later, goes to
//! `/ui/login?expired=1&next={this page}`. Buttons with `data-confirm` ask
//! `window.confirm` first when the script runs (a WebDriver test accepts the alert).
//! `#status-tree` is read again every 2 s on the server and pushed only when it changed.
//!
//! Routes: see [`router`].

mod assets;
mod deploys;
mod envs;
mod layout;
mod logs;
mod plugins;
mod schema_form;
pub mod session;
mod status;
mod wars;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::{ApiError, AppState};
pub use session::Session;

/// Every console route. Pages answer within the request deadline; event streams,
/// uploads, logs and env deletion take as long as they need.
/// All that `serve` answers: the API and, beside it under `/ui`, the console. The
/// console depends on the HTTP edge, never the other way round.
pub fn app(state: AppState) -> axum::Router {
    crate::http::app_with(state.clone(), router(&state))
}

pub fn router(state: &AppState) -> Router<AppState> {
    let timeout = std::time::Duration::from_secs(state.config.server.request_timeout_secs);
    let pages = Router::new()
        .route("/ui/envs", get(envs::list).post(envs::create))
        .route("/ui/envs/{name}", get(envs::show))
        .route("/ui/envs/{name}/edit", get(envs::edit_form).post(envs::edit))
        .route("/ui/envs/{name}/delete", get(envs::delete_form))
        .route("/ui/envs/{name}/rollback", post(deploys::rollback))
        .route("/ui/envs/{name}/deploy", get(deploys::form).post(deploys::start))
        .route("/ui/envs/{name}/logs", get(logs::page))
        .route("/ui/deploys/{id}", get(deploys::show))
        .route("/ui/deploys/{id}/promote", post(deploys::promote))
        .route("/ui/deploys/{id}/abort", post(deploys::abort))
        .route("/ui/wars", get(wars::list))
        .route("/ui/wars/{app}/{file}", get(wars::show))
        .route("/ui/wars/{app}/{file}/delete", get(wars::delete_form).post(wars::delete))
        .route("/ui/plugins", get(plugins::list))
        .route("/ui/logout", post(session::logout))
        .layer(axum::middleware::from_fn_with_state(timeout, crate::http::deadline));
    let long = Router::new()
        .route("/ui/envs/{name}/delete", post(envs::delete))
        .route("/ui/envs/{name}/status/events", get(status::events))
        .route("/ui/envs/{name}/logs/events", get(logs::events))
        .route("/ui/envs/{name}/logs/raw", get(logs::raw))
        .route("/ui/deploys/{id}/events", get(deploys::events))
        .route("/ui/wars", post(wars::upload_form))
        .route("/ui/wars/{app}/{file}", axum::routing::put(wars::upload))
        .layer(axum::extract::DefaultBodyLimit::disable());
    let signed_in =
        pages.merge(long).route_layer(axum::middleware::from_fn_with_state(state.clone(), session::authenticate));
    let open = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/envs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/envs") }))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/assets/{name}", get(assets::asset))
        .route("/ui/{*rest}", axum::routing::any(|| async { layout::not_found(None) }));
    signed_in.merge(open).layer(axum::middleware::from_fn(layout::headers))
}

/// A problem met while answering a console request, shown as a console page.
#[derive(Debug)]
pub struct ConsoleError(pub Box<ApiError>);

impl ConsoleError {
    pub fn of(problem: ApiError) -> Self {
        ConsoleError(Box::new(problem))
    }
}

impl<E: Into<ApiError>> From<E> for ConsoleError {
    fn from(e: E) -> Self {
        ConsoleError::of(e.into())
    }
}

impl IntoResponse for ConsoleError {
    /// The page without the header's session part; [`session::authenticate`] draws it
    /// again with the session, from the problem left in the response's extensions.
    fn into_response(self) -> Response {
        let mut response = layout::problem_page(&self.0, None);
        response.extensions_mut().insert(Shown::of(&self.0));
        response
    }
}

/// A problem shown as a page, kept for drawing it again with the session.
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<crate::domain::Violation>,
}

impl Shown {
    fn of(problem: &ApiError) -> Self {
        Self {
            status: problem.status,
            code: problem.code,
            title: problem.title,
            detail: problem.detail.clone(),
            errors: problem.errors.clone(),
        }
    }

    fn page(self, session: &Session) -> Response {
        let problem = ApiError::new(self.status, self.code, self.title, self.detail).with_errors(self.errors);
        layout::problem_page(&problem, Some(session))
    }
}

/// What a console handler answers.
pub type Answer = Result<Response, ConsoleError>;

/// After a form that changed something: the page that shows the change (303, so a
/// reload does not send the form again).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A name in a URL that cannot be an env is no one's env: the not-found page.
fn env_name(name: &str) -> Result<crate::domain::EnvName, ConsoleError> {
    crate::domain::EnvName::parse(name)
        .map_err(|_| ConsoleError::of(ApiError::not_found("env.not_found", "no such env")))
}

/// Percent-encodes one path segment (app and file names are plain already; this keeps
/// a link sound whatever they hold).
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}
