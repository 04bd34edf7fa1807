//! Deploys: the form (WAR, version, strategy and its settings from the plugin's
//! schema), a deploy's page with its live timeline, Promote and Abort, and rollback.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Form;
use futures_util::{Stream, StreamExt};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, FieldErrors, Nav};
use super::schema_form::{self, Setting};
use super::{env_name, see_other, Answer, ConsoleError, Session};
use crate::deploys::{DeployEvent, DeployRecord, DeployRequest, DeployStatus, RollbackRequest, WorkloadReplicas};
use crate::http::{ApiError, AppState};
use crate::image::BuildEvent;

/// The status in words, with the strategy's own words while it rolls out.
pub fn status_text(record: &DeployRecord) -> String {
    match (&record.step, record.status) {
        (Some(step), DeployStatus::RollingOut) => format!("rolling out: {}", step.description),
        (_, status) => status_name(status).replace('-', " "),
    }
}

fn status_name(status: DeployStatus) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Every strategy with its settings form.
struct Strategies {
    default: String,
    all: Vec<(String, Vec<Setting>)>,
}

fn strategies(state: &AppState) -> Strategies {
    let names = state.plugins.names().get("strategy").cloned().unwrap_or_default();
    let all = names
        .into_iter()
        .filter_map(|name| {
            let plugin = state.plugins.strategy(&name)?;
            let schema: serde_json::Value = serde_json::from_str(&plugin.settings_schema).unwrap_or_default();
            let admin = match plugin.settings_with(&serde_json::Map::new()) {
                Ok(Ok(text)) => serde_json::from_str(&text).unwrap_or_default(),
                _ => serde_json::Map::new(),
            };
            let every_key: serde_json::Map<String, serde_json::Value> = schema
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|p| p.keys().map(|k| (k.clone(), json!(null))).collect())
                .unwrap_or_default();
            let fixed = plugin.fixed_keys(&every_key);
            let settings = schema_form::settings(&schema, &admin, &fixed);
            Some((name, settings))
        })
        .collect();
    Strategies { default: state.config.deploys.default_strategy.clone(), all }
}

fn deploy_page(
    state: &AppState,
    session: &Session,
    env: &str,
    wars: &[crate::wars::WarRecord],
    sent: &[(String, String)],
    errors: &FieldErrors,
) -> Markup {
    let value_of = |name: &str| sent.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let strategies = strategies(state);
    let chosen = value_of("strategy").filter(|s| !s.is_empty()).unwrap_or(&strategies.default).to_owned();
    let war = value_of("war").unwrap_or_default();
    let body = html! {
        h1 { "Deploy to env " (env) }
        @if wars.is_empty() { p.notice #no-wars { "You have no WARs yet: " a href="/ui/wars" { "upload one" } " first." } }
        form #deploy-form method="post" action=(format!("/ui/envs/{env}/deploy")) novalidate {
            (layout::csrf(session))
            (errors.summary("form-errors"))
            div.field {
                label for="deploy-war" { "WAR" }
                select #deploy-war name="war" aria-invalid=[errors.invalid("war")] aria-describedby="deploy-war-error" {
                    @for w in wars {
                        @let value = format!("{}/{}", w.app, w.file);
                        option value=(value) selected[value == war] { (value) " (" (layout::bytes(w.size)) ", " (super::wars::servlet_api(w)) ")" }
                    }
                }
                (errors.beside("war", "deploy-war"))
            }
            div.field {
                label for="deploy-version" { "Version" }
                input #deploy-version name="version" type="text" required value=(value_of("version").unwrap_or_default())
                    aria-invalid=[errors.invalid("version")] aria-describedby="deploy-version-hint deploy-version-error";
                p.hint #deploy-version-hint { "The image tag, e.g. 1.0.3." }
                (errors.beside("version", "deploy-version"))
            }
            div.field {
                label for="deploy-strategy" { "Strategy" }
                select #deploy-strategy name="strategy" aria-invalid=[errors.invalid("strategy")] aria-describedby="deploy-strategy-hint deploy-strategy-error" {
                    @for (name, _) in &strategies.all { option value=(name) selected[*name == chosen] { (name) @if *name == strategies.default { " (default)" } } }
                }
                p.hint #deploy-strategy-hint { "Only the chosen strategy's settings below are sent." }
                (errors.beside("strategy", "deploy-strategy"))
            }
            @for (name, settings) in &strategies.all {
                fieldset.strategy-settings #(format!("settings-{name}")) data-strategy=(name) {
                    legend { "Settings of " (name) }
                    (schema_form::render(name, settings, value_of, errors))
                }
            }
            button type="submit" { "Deploy" }
        }
        p { a href=(format!("/ui/envs/{env}")) { "Back to env " (env) } }
    };
    layout::page(&format!("Deploy to {env}"), Some(session), Nav::Envs, body)
}

pub async fn form(State(state): State<AppState>, session: Session, Path(name): Path<String>) -> Answer {
    let name = env_name(&name)?;
    state.envs.get(&session.user, &name).await?;
    let wars = state.wars.list(&session.user).await?;
    Ok(layout::respond(
        StatusCode::OK,
        deploy_page(&state, &session, name.as_str(), &wars, &[], &FieldErrors::default()),
    ))
}

async fn start_failed(
    state: &AppState,
    session: &Session,
    env: &str,
    sent: &[(String, String)],
    errors: FieldErrors,
    status: StatusCode,
) -> Answer {
    let wars = state.wars.list(&session.user).await?;
    Ok(layout::respond(status, deploy_page(state, session, env, &wars, sent, &errors)))
}

pub async fn start(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Form(sent): Form<Vec<(String, String)>>,
) -> Answer {
    let name = env_name(&name)?;
    state.envs.get(&session.user, &name).await?;
    let value_of = |field: &str| sent.iter().find(|(n, _)| n == field).map(|(_, v)| v.as_str());
    let strategy = value_of("strategy").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let chosen = strategy.clone().unwrap_or_else(|| state.config.deploys.default_strategy.clone());
    let settings = strategies(&state).all.into_iter().find(|(n, _)| *n == chosen).map(|(_, s)| s).unwrap_or_default();
    let overrides = match schema_form::parse(&chosen, &settings, value_of) {
        Ok(overrides) => overrides,
        Err(errors) => {
            return start_failed(&state, &session, name.as_str(), &sent, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    };
    let request = DeployRequest {
        war: value_of("war").unwrap_or_default().trim().to_owned(),
        version: value_of("version").unwrap_or_default().trim().to_owned(),
        strategy,
        settings: (!overrides.is_empty()).then_some(overrides),
    };
    match state.deploys.start(&session.user, &name, request).await {
        Ok(record) => Ok(see_other(&format!("/ui/deploys/{}", record.id))),
        Err(e) => {
            let problem = ApiError::from(e);
            if problem.status == StatusCode::NOT_FOUND && problem.code == "env.not_found" {
                return Err(ConsoleError::of(problem));
            }
            let control_of = |field: &str| match field {
                "war" | "version" | "strategy" => Some(field.to_owned()),
                other => schema_form::control_of_problem(&chosen, other),
            };
            let mut errors = FieldErrors::from_problem(&problem, control_of);
            if let Some(running) = problem.extra.get("deploy").and_then(|v| v.as_str()) {
                errors.general = vec![format!(
                    "Deploy {running} is running on this env; wait for it to end (or abort it) and deploy again."
                )];
            }
            start_failed(&state, &session, name.as_str(), &sent, errors, problem.status).await
        }
    }
}

fn summary(record: &DeployRecord) -> Markup {
    html! {
        dl.facts {
            dt { "Status" }
            dd #deploy-status data-status=(status_name(record.status)) { span class=(format!("badge {}", badge(record.status))) { (status_name(record.status)) } }
            dt { "Step" }
            dd #deploy-step {
                @match &record.step {
                    Some(step) => { (step.index) ". " (step.action) ": " (step.description) " (since " (layout::time(step.since)) ")" }
                    None => span.muted { "no strategy step yet" }
                }
            }
            dt { "WAR, version" } dd { (record.war) ", " (record.version) @if let Some(r) = record.rollback_of { " (rollback to release " (r) ")" } }
            dt { "Strategy" } dd { (record.strategy) }
            dt { "Image" } dd { @match &record.digest { Some(d) => (layout::short_digest(d)), None => span.muted { "not built yet" } } }
            dt { "Traffic" } dd { (format!("{:?}", record.traffic).to_lowercase()) @if let Some(w) = record.weight { " (candidate " (w) "%)" } }
            dt { "Started" } dd { (layout::time(record.created_at)) " by " (record.by) }
            dt { "Ended" } dd { @match record.finished_at { Some(at) => (layout::time(at)), None => span.muted { "running" } } }
        }
    }
}

fn badge(status: DeployStatus) -> &'static str {
    match status {
        DeployStatus::Succeeded => "ok",
        DeployStatus::Failed | DeployStatus::Aborted => "bad",
        _ => "warn",
    }
}

fn awaits_promotion(record: &DeployRecord) -> bool {
    record.status == DeployStatus::RollingOut
        && !record.promoted
        && record.step.as_ref().is_some_and(|s| s.action == "await-promotion")
}

fn actions(session: &Session, record: &DeployRecord) -> Markup {
    html! {
        @if awaits_promotion(record) {
            form #promote-form method="post" action=(format!("/ui/deploys/{}/promote", record.id)) {
                (layout::csrf(session)) button type="submit" { "Promote" }
            }
        }
        @if !record.status.is_final() {
            form #abort-form method="post" action=(format!("/ui/deploys/{}/abort", record.id)) {
                (layout::csrf(session)) button.danger type="submit" data-confirm="Abort this deploy? The release serving before it serves alone again." { "Abort" }
            }
        }
    }
}

fn cause_words(cause: crate::cluster::diagnosis::Cause) -> &'static str {
    use crate::cluster::diagnosis::Cause::*;
    match cause {
        ImagePull => "The nodes could not pull the image.",
        CrashLoop => "The app keeps crashing.",
        OomKilled => "The app was killed for using more memory than its limit.",
        Readiness => "The app runs but does not answer its readiness probe.",
        Unschedulable => "No node has room for the pods.",
        Refused => "Kubernetes refused to create the pods.",
        NodeOutOfDisk => "The nodes ran out of disk.",
        Evicted => "The pods were evicted.",
        NotReady => "The pods did not become ready in time.",
    }
}

/// The pod a failure's words name: the one whose log the failure points to, else the
/// first of the candidate release's pods named.
fn failing_pod(record: &DeployRecord, message: &str) -> Option<String> {
    let pod_chars = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>();
    if let Some((_, rest)) = message.split_once("logs?pod=") {
        return Some(pod_chars(rest)).filter(|p| !p.is_empty());
    }
    let prefix = format!("{}-r{}-", record.env, record.revision);
    message.find(&prefix).map(|at| pod_chars(&message[at..])).filter(|p| p.len() > prefix.len())
}

fn failure(record: &DeployRecord) -> Markup {
    html! {
        @if let Some(error) = &record.error {
            @let cause = error.cause.map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default());
            div.problem role="alert" data-code=(error.code) data-cause=[cause] {
                @if let Some(cause) = error.cause { p { strong { (cause_words(cause)) } } }
                p { (error.message) }
                @let logs = match failing_pod(record, &error.message) {
                    Some(pod) => format!("/ui/envs/{}/logs?pod={pod}", record.env),
                    None => format!("/ui/envs/{}/logs", record.env),
                };
                p { a #failure-logs href=(logs) { "Read the pod's logs" } " · code " code { (error.code) } }
            }
        }
    }
}

fn timeline(record: &DeployRecord) -> Markup {
    html! {
        @for m in &record.history {
            li data-status=(status_name(m.status)) {
                (layout::time(m.at)) " "
                strong { (status_name(m.status)) }
                @if let (Some(step), Some(action)) = (m.step, &m.action) { " · step " (step) " " (action) }
                @if !m.description.is_empty() { ": " (m.description) }
            }
        }
    }
}

#[derive(Default)]
struct Push {
    step: Option<String>,
    bytes: Option<(String, u64, u64)>,
}

fn push(record_status: Option<DeployStatus>, push: &Push) -> Markup {
    let (what, done, total) = push.bytes.clone().unwrap_or_default();
    html! {
        p #push-step {
            @match (&push.step, record_status) {
                (Some(step), _) => (step),
                (None, Some(DeployStatus::Queued | DeployStatus::Validating)) => "not started",
                (None, _) => "see the timeline",
            }
        }
        @if push.bytes.is_some() {
            label for="push-bar" { "Bytes pushed" @if !what.is_empty() { " (" (what) ")" } }
            " "
            progress #push-bar max=(total.max(1)) value=(done) {}
            " " span #push-bytes { (layout::bytes(done)) " of " (layout::bytes(total)) }
        } @else {
            // Counts come only while a push runs; a page opened before or after shows none.
            p #push-bytes { "Bytes pushed: none counted while this page was open" }
        }
    }
}

fn replicas(stable: Option<WorkloadReplicas>, candidate: Option<WorkloadReplicas>) -> Markup {
    let row = |id: &str, label: &str, w: Option<WorkloadReplicas>| {
        let w = w.unwrap_or(WorkloadReplicas { revision: 0, replicas: 0, ready: 0, restarts: 0 });
        html! {
            div.row {
                label for=(id) { (label) @if w.revision > 0 { " (release " (w.revision) ")" } }
                " " meter id=(id) min="0" max=(w.replicas.max(1)) value=(w.ready) {}
                " " (w.ready) " of " (w.replicas) " ready · " (w.restarts) " restarts"
            }
        }
    };
    html! { (row("replicas-stable", "Stable", stable)) (row("replicas-candidate", "Candidate", candidate)) }
}

fn fragments(session: &Session, record: &DeployRecord) -> serde_json::Value {
    json!({
        "html": {
            "deploy-summary": layout::fragment_text(summary(record)),
            "deploy-actions": layout::fragment_text(actions(session, record)),
            "failure": layout::fragment_text(failure(record)),
            "timeline": layout::fragment_text(timeline(record)),
        },
        "attrs": {"deploy": {"data-deploy-status": status_name(record.status)}},
    })
}

pub async fn show(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Answer {
    let record = state.deploys.get(&session.user, &id).await?;
    // Replicas as the watch caches see them now; the event stream takes over from here.
    let observed = match crate::domain::EnvName::parse(&record.env) {
        Ok(env) => state.env_ops.status(&session.user, &env).await.ok().and_then(|s| s.service),
        Err(_) => None,
    };
    let of = |revision: Option<u32>| {
        let revision = revision?;
        let w = observed.as_ref()?.workloads.iter().find(|w| w.release == Some(revision))?;
        let restarts = w.pods.iter().map(|p| p.restarts).sum();
        Some(WorkloadReplicas { revision, replicas: w.desired, ready: w.ready, restarts })
    };
    let body = html! {
        div #deploy data-deploy-status=(status_name(record.status)) data-live=(format!("/ui/deploys/{id}/events")) {
            h1 { "Deploy of release " (record.revision) " to env " a href=(format!("/ui/envs/{}", record.env)) { (record.env) } }
            div #deploy-summary { (summary(&record)) }
            div #deploy-actions.actions { (actions(&session, &record)) }
            div #failure { (failure(&record)) }
            section aria-labelledby="replicas-title" {
                h2 #replicas-title { "Replicas" }
                div #replicas { (replicas(of(record.stable), of(Some(record.revision)))) }
            }
            section aria-labelledby="push-title" {
                h2 #push-title { "Image build and push" }
                div #push-progress { (push(Some(record.status), &Push::default())) }
            }
            section aria-labelledby="timeline-title" {
                h2 #timeline-title { "Timeline" }
                ol #timeline { (timeline(&record)) }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page(&format!("Deploy {}", record.revision), Some(&session), Nav::Envs, body),
    ))
}

/// The deploy's events as page fragments, each with its sequence number as the SSE id
/// (a reconnecting browser goes on after it), then `end`.
pub async fn events(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let after = crate::http::last_event_id(&headers);
    let record = state.deploys.get(&session.user, &id).await?;
    let events = state.deploys.events(&session.user, &id, after).await?;
    // A browser that saw a finished deploy's last event would wait on the journal for
    // ever: it hears only the end.
    let already_over = after > 0 && record.status.is_final() && {
        let prefix = crate::journal::prefix(session.user.as_str(), "deploy", &id);
        let written = state.store.list(&prefix).await.map_err(ApiError::from)?;
        let last = written.iter().filter_map(|v| v.key.strip_prefix(&prefix)?.parse::<u64>().ok()).max().unwrap_or(0);
        after >= last
    };
    let (user, watcher, checked) = (session.user.clone(), state.clone(), session.clone());
    let (mut status, mut progress) = (Some(record.status), Push::default());
    let events = if already_over { futures_util::stream::empty().boxed() } else { events.boxed() };
    let live = events.take_while(|item| futures_util::future::ready(item.is_ok())).filter_map(move |item| {
        let event = item.ok().and_then(|(seq, event)| {
            let data = match event {
                DeployEvent::Record(record) => {
                    status = Some(record.status);
                    fragments(&session, &record)
                }
                DeployEvent::Build(build) => {
                    match build {
                        BuildEvent::Bytes { what, done, total } => progress.bytes = Some((what, done, total)),
                        BuildEvent::Step { step, detail } => progress.step = Some(format!("{step}: {detail}")),
                        BuildEvent::Retry { what, attempt, error, .. } => {
                            progress.step = Some(format!("retrying {what} (attempt {attempt}): {error}"))
                        }
                        BuildEvent::Output { .. } => return None,
                    }
                    json!({"html": {"push-progress": layout::fragment_text(push(status, &progress))}})
                }
                DeployEvent::Replicas { stable, candidate } => {
                    json!({"html": {"replicas": layout::fragment_text(replicas(stable, Some(candidate)))}})
                }
            };
            Some(Event::default().id(seq.to_string()).event("fragments").data(data.to_string()))
        });
        futures_util::future::ready(event.map(Ok))
    });
    // The end of a deploy that is over; a stream cut short (the store failed) ends
    // without it, so the browser reconnects and goes on after the last id it saw.
    let end = futures_util::stream::once(async move {
        let over = state.deploys.get(&user, &id).await.is_ok_and(|r| r.status.is_final());
        over.then(|| Ok(Event::default().event("end").data("over")))
    })
    .filter_map(futures_util::future::ready);
    Ok(Sse::new(super::session::while_signed_in(watcher, checked, live.chain(end))).keep_alive(KeepAlive::default()))
}

pub async fn promote(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Answer {
    state.deploys.promote(&session.user, &id).await?;
    Ok(see_other(&format!("/ui/deploys/{id}")))
}

pub async fn abort(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Answer {
    state.deploys.abort(&session.user, &id).await?;
    Ok(see_other(&format!("/ui/deploys/{id}")))
}

#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    revision: Option<u32>,
}

pub async fn rollback(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Answer {
    let name = env_name(&name)?;
    let record = state
        .deploys
        .rollback(&session.user, &name, RollbackRequest { revision: form.revision, strategy: None })
        .await?;
    Ok(see_other(&format!("/ui/deploys/{}", record.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_links_to_the_pod_it_names() {
        let mut record =
            DeployRecord::queued("d1".into(), "shop".into(), 2, Some(1), ("canary".into(), json!({})), "alice".into());
        let named = "the app keeps crashing: pod shop-r2-7d9f-abcde's container restarted 1 times; read the whole log with GET /api/v1/envs/shop/logs?pod=shop-r2-7d9f-abcde";
        assert_eq!(failing_pod(&record, named).as_deref(), Some("shop-r2-7d9f-abcde"));
        assert_eq!(failing_pod(&record, "pod shop-r2-xyz was killed").as_deref(), Some("shop-r2-xyz"));
        assert_eq!(failing_pod(&record, "the registry is down"), None);
        record.status = DeployStatus::RollingOut;
        assert_eq!(status_text(&record), "rolling out");
    }
}
