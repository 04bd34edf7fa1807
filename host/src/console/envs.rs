//! Envs: the list with its create form, one env's page with its live status tree and
//! releases, the edit form, and deletion with confirmation.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, FieldErrors, Nav};
use super::{env_name, see_other, Answer, ConsoleError, Session};
use crate::config::CatalogEntry;
use crate::domain::{Env, EnvPatch, EnvSpec, ResourceAmounts, Resources};
use crate::http::{ApiError, AppState};

/// The env form as the browser sends it: every field text, parsed here so each
/// mistake lands beside its field.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct EnvForm {
    name: String,
    /// `{tomcat}/{jdk}`: one of the catalog's pairs.
    runtime: String,
    replicas: String,
    jvm_options: String,
    context_path: String,
    health_path: String,
    rollout_deadline_secs: String,
    /// `KEY=value` lines.
    env: String,
    requests_cpu: String,
    requests_memory: String,
    limits_cpu: String,
    limits_memory: String,
}

impl EnvForm {
    fn blank() -> Self {
        Self { replicas: "1".into(), context_path: "/".into(), ..Self::default() }
    }

    fn of(spec: &EnvSpec) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            name: spec.name.clone(),
            runtime: format!("{}/{}", spec.tomcat, spec.jdk),
            replicas: spec.replicas.to_string(),
            jvm_options: spec.jvm_options.clone(),
            context_path: spec.context_path.clone(),
            health_path: text(&spec.health_path),
            rollout_deadline_secs: spec.rollout_deadline_secs.map(|s| s.to_string()).unwrap_or_default(),
            env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"),
            requests_cpu: text(&spec.resources.requests.cpu),
            requests_memory: text(&spec.resources.requests.memory),
            limits_cpu: text(&spec.resources.limits.cpu),
            limits_memory: text(&spec.resources.limits.memory),
        }
    }

    /// The spec the form describes, or every field that does not even parse.
    fn spec(&self) -> Result<EnvSpec, FieldErrors> {
        let mut errors = FieldErrors::default();
        let (tomcat, jdk) = self.runtime.split_once('/').unwrap_or_default();
        if tomcat.is_empty() || jdk.is_empty() {
            errors.add("runtime", "choose a Tomcat and JDK from the catalog");
        }
        let replicas = self.replicas.trim().parse::<u32>().unwrap_or_else(|_| {
            errors.add("replicas", format!("replicas must be a whole number (got {:?})", self.replicas.trim()));
            0
        });
        let deadline = match self.rollout_deadline_secs.trim() {
            "" => None,
            text => text.parse::<u64>().map(Some).unwrap_or_else(|_| {
                errors.add(
                    "rollout_deadline_secs",
                    format!("the rollout deadline must be a whole number of seconds (got {text:?})"),
                );
                None
            }),
        };
        let mut env = BTreeMap::new();
        for line in self.env.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once('=') {
                Some((key, value)) => drop(env.insert(key.trim().to_owned(), value.to_owned())),
                None => errors.add("env", format!("{line:?} is not KEY=value")),
            }
        }
        let amount = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EnvSpec {
            name: self.name.trim().to_owned(),
            tomcat: tomcat.into(),
            jdk: jdk.into(),
            replicas,
            jvm_options: self.jvm_options.trim().to_owned(),
            env,
            resources: Resources {
                requests: ResourceAmounts { cpu: amount(&self.requests_cpu), memory: amount(&self.requests_memory) },
                limits: ResourceAmounts { cpu: amount(&self.limits_cpu), memory: amount(&self.limits_memory) },
            },
            context_path: Some(self.context_path.trim().to_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            health_path: amount(&self.health_path),
            rollout_deadline_secs: deadline,
        })
    }
}

/// The form control a problem's field belongs to.
pub fn control_of(field: &str) -> Option<String> {
    let control = match field {
        "tomcat" | "jdk" => "runtime",
        "env" => "env",
        f if f.starts_with("env.") => "env",
        "resources.requests.cpu" => "requests_cpu",
        "resources.requests.memory" => "requests_memory",
        "resources.limits.cpu" => "limits_cpu",
        "resources.limits.memory" => "limits_memory",
        "name" | "replicas" | "jvm_options" | "context_path" | "health_path" | "rollout_deadline_secs" => field,
        _ => return None,
    };
    Some(control.to_owned())
}

/// A problem that belongs beside the form's fields, rather than on a page of its own.
fn form_problem(problem: &ApiError) -> bool {
    matches!(problem.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT | StatusCode::BAD_REQUEST)
}

fn env_form(
    session: &Session,
    catalog: &[CatalogEntry],
    form: &EnvForm,
    errors: &FieldErrors,
    editing: Option<&str>,
) -> Markup {
    let action = match editing {
        Some(name) => format!("/ui/envs/{name}/edit"),
        None => "/ui/envs".to_owned(),
    };
    let text = |control: &str, id: &str, label: &str, value: &str, hint: &str, kind: &str| {
        html! {
            div.field {
                label for=(id) { (label) }
                input id=(id) name=(control) type=(kind) value=(value) aria-invalid=[errors.invalid(control)]
                    aria-describedby=(format!("{id}-hint {id}-error"));
                p.hint id=(format!("{id}-hint")) { (hint) }
                (errors.beside(control, id))
            }
        }
    };
    html! {
        form #env-form method="post" action=(action) novalidate {
            (layout::csrf(session))
            (errors.summary("form-errors"))
            @if editing.is_none() {
                (text("name", "env-name", "Name", &form.name, "Lower-case letters, digits and '-', starting with a letter; it names the app's Service.", "text"))
            }
            div.field {
                label for="env-runtime" { "Tomcat and JDK" }
                select #env-runtime name="runtime" aria-invalid=[errors.invalid("runtime")] aria-describedby="env-runtime-error" {
                    @if form.runtime.is_empty() { option value="" selected { "Choose…" } }
                    @for entry in catalog {
                        @let value = format!("{}/{}", entry.tomcat, entry.jdk);
                        option value=(value) selected[value == form.runtime] { "Tomcat " (entry.tomcat) " · JDK " (entry.jdk) }
                    }
                }
                (errors.beside("runtime", "env-runtime"))
            }
            (text("replicas", "env-replicas", "Replicas", &form.replicas, "Pods serving the app.", "number"))
            (text("jvm_options", "env-jvm-options", "JVM options", &form.jvm_options, "Passed as JAVA_OPTS, e.g. -Xmx512m.", "text"))
            (text("context_path", "env-context-path", "Context path", &form.context_path, "Where the WAR is served: / or /shop.", "text"))
            (text("health_path", "env-health-path", "Health path", &form.health_path, "Optional: what the readiness probe asks below the context path, e.g. /health. Once set, it can be changed but not cleared.", "text"))
            (text("rollout_deadline_secs", "env-rollout-deadline", "Rollout deadline (seconds)", &form.rollout_deadline_secs, "Optional: how long a rollout may take; the platform's default when empty.", "number"))
            div.field {
                label for="env-vars" { "Environment variables" }
                textarea #env-vars name="env" rows="4" aria-invalid=[errors.invalid("env")] aria-describedby="env-vars-hint env-vars-error" { (form.env) }
                p.hint #env-vars-hint { "One KEY=value per line." }
                (errors.beside("env", "env-vars"))
            }
            fieldset.resources {
                legend { "Resources (optional)" }
                (text("requests_cpu", "env-requests-cpu", "CPU request", &form.requests_cpu, "e.g. 500m", "text"))
                (text("requests_memory", "env-requests-memory", "Memory request", &form.requests_memory, "e.g. 512Mi", "text"))
                (text("limits_cpu", "env-limits-cpu", "CPU limit", &form.limits_cpu, "e.g. 1", "text"))
                (text("limits_memory", "env-limits-memory", "Memory limit", &form.limits_memory, "e.g. 1Gi", "text"))
            }
            button type="submit" { @if editing.is_some() { "Save changes" } @else { "Create env" } }
        }
    }
}

/// One row of the envs table: what serves, how ready, what a running deploy does.
struct Row {
    env: Env,
    ready: Option<(u32, u32)>,
    deploying: Option<crate::deploys::DeployRecord>,
}

async fn rows(state: &AppState, session: &Session) -> Result<Vec<Row>, ConsoleError> {
    let envs = state.envs.list(&session.user).await?;
    let rows = futures_util::future::join_all(envs.into_iter().map(|env| async move {
        let status = match crate::domain::EnvName::parse(&env.spec.name) {
            Ok(name) => state.env_ops.status(&session.user, &name).await.ok(),
            Err(_) => None,
        };
        let ready = status.as_ref().and_then(|s| s.service.as_ref()).map(|service| {
            let serving = service.workloads.iter().filter(|w| w.serving);
            serving.fold((0, 0), |(ready, desired), w| (ready + w.ready, desired + w.desired))
        });
        let deploying = match status.as_ref().and_then(|s| s.deploying.clone()) {
            Some(id) => state.deploys.get(&session.user, &id).await.ok(),
            None => None,
        };
        Row { env, ready, deploying }
    }))
    .await;
    Ok(rows)
}

fn list_page(
    session: &Session,
    rows: &[Row],
    catalog: &[CatalogEntry],
    form: &EnvForm,
    errors: &FieldErrors,
) -> Markup {
    let body = html! {
        h1 { "Envs" }
        @if rows.is_empty() {
            p #no-envs { "You have no envs yet. Create one below." }
        } @else {
            div.scroll {
                table #envs {
                    caption.visually-hidden { "Your envs" }
                    thead { tr { th scope="col" { "Env" } th scope="col" { "Release" } th scope="col" { "Version" } th scope="col" { "Digest" } th scope="col" { "Ready" } th scope="col" { "Deploy running" } } }
                    tbody {
                        @for row in rows {
                            @let env = &row.env;
                            tr data-env=(env.spec.name) {
                                th scope="row" { a href=(format!("/ui/envs/{}", env.spec.name)) { (env.spec.name) } }
                                td data-col="release" { @match &env.current { Some(r) => { "r" (r.revision) }, None => span.muted { "none yet" } } }
                                td data-col="version" { @if let Some(r) = &env.current { (r.version) } }
                                td data-col="digest" { @if let Some(r) = &env.current { (layout::short_digest(&r.digest)) } }
                                td data-col="ready" {
                                    @match row.ready {
                                        Some((ready, desired)) => { (ready) " of " (desired) }
                                        None => span.muted { (env.spec.replicas) " asked" }
                                    }
                                }
                                td data-col="deploy" {
                                    @if let Some(d) = &row.deploying {
                                        a href=(format!("/ui/deploys/{}", d.id)) { (super::deploys::status_text(d)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section #new-env aria-labelledby="new-env-title" {
            h2 #new-env-title { "Create an env" }
            (env_form(session, catalog, form, errors, None))
        }
    };
    layout::page("Envs", Some(session), Nav::Envs, body)
}

pub async fn list(State(state): State<AppState>, session: Session) -> Answer {
    let rows = rows(&state, &session).await?;
    let page = list_page(&session, &rows, &state.config.catalog, &EnvForm::blank(), &FieldErrors::default());
    Ok(layout::respond(StatusCode::OK, page))
}

async fn create_failed(
    state: &AppState,
    session: &Session,
    form: &EnvForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Answer {
    let rows = rows(state, session).await?;
    Ok(layout::respond(status, list_page(session, &rows, &state.config.catalog, form, &errors)))
}

pub async fn create(State(state): State<AppState>, session: Session, Form(form): Form<EnvForm>) -> Answer {
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(errors) => return create_failed(&state, &session, &form, errors, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    match state.envs.create(&session.user, spec, Default::default()).await {
        Ok(env) => Ok(see_other(&format!("/ui/envs/{}", env.spec.name))),
        Err(e) => {
            let problem = ApiError::from(e);
            if !form_problem(&problem) {
                return Err(ConsoleError::of(problem));
            }
            let mut errors = FieldErrors::from_problem(&problem, control_of);
            if problem.code == "env.exists" {
                errors.general.clear();
                errors.add("name", problem.detail.clone());
            }
            create_failed(&state, &session, &form, errors, problem.status).await
        }
    }
}

pub async fn show(State(state): State<AppState>, session: Session, Path(name): Path<String>) -> Answer {
    let name = env_name(&name)?;
    let status = state.env_ops.status(&session.user, &name).await?;
    let (releases, deploys) =
        tokio::join!(state.envs.releases(&session.user, &name), state.deploys.list(&session.user, name.as_str()));
    let (releases, deploys) = (releases?, deploys?);
    let serving = status.env.current.as_ref().map(|r| r.revision);
    let base = format!("/ui/envs/{name}");
    let spec = &status.env.spec;
    let body = html! {
        div #env data-env=(name) {
            h1 { "Env " (name) }
            p.actions {
                a.button #deploy-link href=(format!("{base}/deploy")) { "Deploy" } " "
                a #logs-link href=(format!("{base}/logs")) { "Logs" } " "
                a #edit-link href=(format!("{base}/edit")) { "Edit" } " "
                a #delete-link href=(format!("{base}/delete")) { "Delete" }
            }
            p.muted { "Tomcat " (spec.tomcat) " · JDK " (spec.jdk) " · " (spec.replicas) " replicas · context path " code { (spec.context_path) } }
            section aria-labelledby="live-title" {
                h2 #live-title { "What runs" }
                div #env-summary { (super::status::summary(&status)) }
                div #status-tree data-live=(format!("{base}/status/events")) { (super::status::status_tree(&status)) }
            }
            section aria-labelledby="releases-title" {
                h2 #releases-title { "Releases" }
                @if releases.is_empty() { p.muted #no-releases { "No release yet." } } @else {
                    div.scroll { table #releases {
                        thead { tr { th scope="col" { "Release" } th scope="col" { "Version" } th scope="col" { "WAR" } th scope="col" { "Digest" } th scope="col" { "Deployed" } th scope="col" { span.visually-hidden { "Action" } } } }
                        tbody { @for r in releases.iter().rev() {
                            tr data-revision=(r.revision) {
                                th scope="row" { "r" (r.revision) @if Some(r.revision) == serving { " " span.badge.ok { "serving" } } }
                                td { (r.version) } td { (r.war) } td { (layout::short_digest(&r.digest)) }
                                td { (layout::time(r.at)) " by " (r.by) " (" (r.strategy) ")" }
                                td { @if Some(r.revision) != serving {
                                    form.rollback-form method="post" action=(format!("{base}/rollback")) {
                                        (layout::csrf(&session))
                                        input type="hidden" name="revision" value=(r.revision);
                                        button type="submit" data-confirm=(format!("Roll env {name} back to release {}?", r.revision)) aria-label=(format!("Roll back to release {}", r.revision)) { "Roll back to this" }
                                    }
                                } }
                            }
                        } }
                    } }
                }
            }
            section aria-labelledby="deploys-title" {
                h2 #deploys-title { "Deploys" }
                @if deploys.is_empty() { p.muted { "No deploy yet." } } @else {
                    div.scroll { table #deploys {
                        thead { tr { th scope="col" { "Deploy" } th scope="col" { "Status" } th scope="col" { "Version" } th scope="col" { "Strategy" } th scope="col" { "Started" } } }
                        tbody { @for d in deploys.iter().take(20) {
                            tr data-deploy=(d.id) {
                                th scope="row" { a href=(format!("/ui/deploys/{}", d.id)) { "r" (d.revision) " · " (d.id.get(..8).unwrap_or(&d.id)) } }
                                td { (super::deploys::status_text(d)) } td { (d.version) } td { (d.strategy) } td { (layout::time(d.created_at)) }
                            }
                        } }
                    } }
                }
            }
        }
    };
    Ok(layout::respond(StatusCode::OK, layout::page(&format!("Env {name}"), Some(&session), Nav::Envs, body)))
}

pub async fn edit_form(State(state): State<AppState>, session: Session, Path(name): Path<String>) -> Answer {
    let name = env_name(&name)?;
    let env = state.envs.get(&session.user, &name).await?;
    Ok(edit_page(&state, &session, name.as_str(), &EnvForm::of(&env.spec), &FieldErrors::default(), StatusCode::OK))
}

fn edit_page(
    state: &AppState,
    session: &Session,
    name: &str,
    form: &EnvForm,
    errors: &FieldErrors,
    status: StatusCode,
) -> axum::response::Response {
    let body = html! {
        h1 { "Edit env " (name) }
        (env_form(session, &state.config.catalog, form, errors, Some(name)))
        p { a href=(format!("/ui/envs/{name}")) { "Back to env " (name) } }
    };
    layout::respond(status, layout::page(&format!("Edit {name}"), Some(session), Nav::Envs, body))
}

pub async fn edit(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Form(mut form): Form<EnvForm>,
) -> Answer {
    let name = env_name(&name)?;
    form.name = name.to_string();
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(errors) => {
            return Ok(edit_page(&state, &session, name.as_str(), &form, &errors, StatusCode::UNPROCESSABLE_ENTITY))
        }
    };
    let patch = EnvPatch {
        tomcat: Some(spec.tomcat),
        jdk: Some(spec.jdk),
        replicas: Some(spec.replicas),
        jvm_options: Some(spec.jvm_options),
        env: Some(spec.env),
        resources: Some(spec.resources),
        context_path: Some(spec.context_path),
        health_path: spec.health_path,
        rollout_deadline_secs: spec.rollout_deadline_secs,
    };
    match state.envs.update(&session.user, &name, patch).await {
        Ok(_) => Ok(see_other(&format!("/ui/envs/{name}"))),
        Err(e) => {
            let problem = ApiError::from(e);
            if !form_problem(&problem) {
                return Err(ConsoleError::of(problem));
            }
            let errors = FieldErrors::from_problem(&problem, control_of);
            Ok(edit_page(&state, &session, name.as_str(), &form, &errors, problem.status))
        }
    }
}

pub async fn delete_form(State(state): State<AppState>, session: Session, Path(name): Path<String>) -> Answer {
    let name = env_name(&name)?;
    state.envs.get(&session.user, &name).await?;
    let body = html! {
        h1 { "Delete env " (name) "?" }
        p { "Its pods, Service and Deployments are removed from Kubernetes, then its releases and record. This cannot be undone." }
        form #delete-form method="post" action=(format!("/ui/envs/{name}/delete")) {
            (layout::csrf(&session))
            button.danger type="submit" { "Delete env " (name) }
            " " a href=(format!("/ui/envs/{name}")) { "Cancel" }
        }
    };
    Ok(layout::respond(StatusCode::OK, layout::page(&format!("Delete {name}"), Some(&session), Nav::Envs, body)))
}

pub async fn delete(State(state): State<AppState>, session: Session, Path(name): Path<String>) -> Answer {
    let name = env_name(&name)?;
    state.env_ops.delete(&session.user, &name).await?;
    Ok(see_other("/ui/envs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_parses_into_a_spec_and_bad_numbers_land_on_their_fields() {
        let form = EnvForm {
            name: "shop".into(),
            runtime: "10.1/17".into(),
            replicas: "2".into(),
            env: "A=1\n\nB = x=y\n".into(),
            limits_memory: "1Gi".into(),
            ..EnvForm::blank()
        };
        let spec = form.spec().unwrap();
        assert_eq!((spec.tomcat.as_str(), spec.jdk.as_str(), spec.replicas), ("10.1", "17", 2));
        assert_eq!(spec.env.get("B").map(String::as_str), Some(" x=y"));
        assert_eq!(spec.resources.limits.memory.as_deref(), Some("1Gi"));
        assert_eq!(spec.resources.requests.cpu, None);
        assert_eq!(EnvForm::of(&spec).spec().unwrap(), spec, "a spec survives the edit form");

        let bad = EnvForm {
            replicas: "two".into(),
            env: "NOEQUALS".into(),
            rollout_deadline_secs: "soon".into(),
            ..EnvForm::blank()
        };
        let errors = bad.spec().unwrap_err();
        for control in ["runtime", "replicas", "env", "rollout_deadline_secs"] {
            assert!(errors.has(control), "{control}: {errors:?}");
        }
    }

    #[test]
    fn api_fields_map_to_form_controls() {
        assert_eq!(control_of("jdk").as_deref(), Some("runtime"));
        assert_eq!(control_of("env.JAVA_OPTS").as_deref(), Some("env"));
        assert_eq!(control_of("resources.limits.memory").as_deref(), Some("limits_memory"));
        assert_eq!(control_of("replicas").as_deref(), Some("replicas"));
        assert_eq!(control_of("war"), None);
    }
}
