//! An env's live part: what serves and where, and the tree env ▸ service ▸ workloads ▸
//! pods, drawn in the env's page and pushed to it over SSE when it changes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use maud::{html, Markup};

use super::layout;
use super::{env_name, ConsoleError, Session};
use crate::envs::EnvStatus;
use crate::http::AppState;

/// How often the live status tree is read again. The tree comes from the watch caches
/// (memory) and two store reads, so reading it on the server and pushing the fragment
/// only when it changed costs little, sends nothing while nothing moves, and keeps one
/// renderer (this file) for the page and its updates.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// The live part of an env's page: what serves, where, and the tree.
pub fn summary(status: &EnvStatus) -> Markup {
    html! {
        dl.facts {
            dt { "Serving" }
            dd #serving data-revision=[status.env.current.as_ref().map(|r| r.revision)] {
                @match &status.env.current {
                    Some(r) => { "release " (r.revision) ", version " (r.version) " (" (layout::short_digest(&r.digest)) "), deployed " (layout::time(r.at)) " by " (r.by) }
                    None => span.muted { "nothing yet: deploy a WAR" }
                }
            }
            dt { "App URL" }
            dd {
                @match (&status.url, &status.path_url) {
                    (Some(url), path) => {
                        a #app-url href=(url) { (url) }
                        @if let Some(path) = path { " (or " a #app-path-url href=(path) { (path) } ")" }
                    }
                    _ => span.muted { "none: the platform gives a URL once a release serves behind its Gateway" }
                }
            }
            dt { "Deploy running" }
            dd {
                @match &status.deploying {
                    Some(id) => a #deploying href=(format!("/ui/deploys/{id}")) { "deploy " (id) }
                    None => span.muted { "none" }
                }
            }
        }
    }
}

/// env ▸ service ▸ workloads ▸ pods.
pub fn status_tree(status: &EnvStatus) -> Markup {
    html! {
        @match &status.service {
            None => p.muted { "No Kubernetes cluster is configured on this host: nothing runs." }
            Some(service) => {
                ul.tree {
                    li.service {
                        span { "Service " code { (service.name) } " in namespace " code { (service.namespace) } }
                        @if service.workloads.is_empty() { p.muted { "No workloads run." } }
                        ul {
                            @for w in &service.workloads {
                                li.workload data-workload=(w.name) data-ready=(w.ready) data-desired=(w.desired) data-serving=(w.serving) {
                                    div.row {
                                        strong { (w.name) }
                                        @if let Some(release) = w.release { " release " (release) }
                                        " · version " (w.version) " · " (layout::short_digest(&w.digest))
                                        @if w.serving { " " span.badge.ok { "serving" } }
                                    }
                                    div.row {
                                        label.visually-hidden for=(format!("ready-{}", w.name)) { "Pods ready of " (w.name) }
                                        meter id=(format!("ready-{}", w.name)) min="0" max=(w.desired.max(1)) value=(w.ready) {}
                                        " " (w.ready) " of " (w.desired) " ready"
                                    }
                                    ul.pods {
                                        @for pod in &w.pods {
                                            li.pod data-pod=(pod.name) data-ready=(pod.ready) data-restarts=(pod.restarts) data-waiting=(pod.waiting.clone().unwrap_or_default()) {
                                                code { (pod.name) } " "
                                                @if pod.ready { span.badge.ok { "ready" } } @else { span.badge.warn { "not ready" } }
                                                " " (pod.phase) " · " (pod.restarts) " restarts"
                                                @if let Some(reason) = &pod.waiting { " · " span.badge.bad title=[pod.waiting_message.as_ref()] { (reason) } }
                                                @if pod.terminating { " · stopping" }
                                                @if let Some(node) = &pod.node { " · node " (node) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The env's summary and tree, pushed when they change; `end` once the env is gone.
pub async fn events(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let name = env_name(&name)?;
    state.env_ops.status(&session.user, &name).await?;
    let stream = futures_util::stream::unfold(
        (state.clone(), session.clone(), name, String::new(), true),
        |(state, session, name, last, first)| async move {
            if last == "end" {
                return None;
            }
            let mut last = last;
            loop {
                if !(first && last.is_empty()) {
                    tokio::time::sleep(STATUS_EVERY).await;
                }
                match state.env_ops.status(&session.user, &name).await {
                    Ok(status) => {
                        let html = serde_json::json!({
                        "html": {"env-summary": layout::fragment_text(summary(&status)), "status-tree": layout::fragment_text(status_tree(&status))}
                    })
                    .to_string();
                        if html != last {
                            let event = Event::default().event("fragments").data(html.clone());
                            return Some((Ok(event), (state, session, name, html, false)));
                        }
                        last = html;
                    }
                    Err(crate::envs::EnvOpsError::Env(crate::envs::EnvError::NotFound(_))) => {
                        return Some((
                            Ok(Event::default().event("end").data("gone")),
                            (state, session, name, "end".into(), false),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the live status of an env could not be read; trying again");
                        if last.is_empty() {
                            last = " ".into();
                        }
                    }
                }
            }
        },
    );
    Ok(Sse::new(super::session::while_signed_in(state, session, stream)).keep_alive(KeepAlive::default()))
}
