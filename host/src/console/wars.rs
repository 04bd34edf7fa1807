//! WARs: the list with the upload form, one WAR's facts, deletion. The script uploads
//! with `PUT /ui/wars/{app}/{file}` (the raw body, as the API's upload, so it can show
//! bytes and rate); without it the form posts multipart to `POST /ui/wars?csrf=…`.
//! Both stream into the same receive-and-keep path as `PUT /api/v1/wars/{app}/{file}`.

use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};

use super::layout::{self, FieldErrors, Nav};
use super::{see_other, segment, Answer, ConsoleError, Session};
use crate::http::{ApiError, AppState};
use crate::wars::{check_names, WarError, WarRecord};

fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `javax`, `jakarta`, … as the API spells it.
pub fn servlet_api(war: &WarRecord) -> String {
    word(&war.servlet_api)
}

fn href(war: &WarRecord) -> String {
    format!("/ui/wars/{}/{}", segment(&war.app), segment(&war.file))
}

fn upload_section(session: &Session, app: &str, file: &str, errors: &FieldErrors, max: u64) -> Markup {
    let action = format!("/ui/wars?{}={}", super::session::CSRF_FIELD, session.csrf);
    html! {
        form #upload-form method="post" action=(action) enctype="multipart/form-data" data-max-bytes=(max) {
            (layout::csrf(session))
            (errors.summary("form-errors"))
            div.field {
                label for="upload-app" { "App" }
                input #upload-app name="app" type="text" required value=(app) aria-invalid=[errors.invalid("app")] aria-describedby="upload-app-hint upload-app-error";
                p.hint #upload-app-hint { "Lower-case letters, digits and '-': it groups the versions of one app." }
                (errors.beside("app", "upload-app"))
            }
            div.field {
                label for="upload-file" { "File name" }
                input #upload-file name="file" type="text" value=(file) aria-invalid=[errors.invalid("file")] aria-describedby="upload-file-hint upload-file-error";
                p.hint #upload-file-hint { "Optional: the name to keep it under, ending in .war; the chosen file's name when empty." }
                (errors.beside("file", "upload-file"))
            }
            div.field {
                label for="upload-war" { "WAR file" }
                input #upload-war name="war" type="file" accept=".war" required aria-invalid=[errors.invalid("war")] aria-describedby="upload-war-hint upload-war-error";
                p.hint #upload-war-hint { "At most " (layout::bytes(max)) "." }
                (errors.beside("war", "upload-war"))
            }
            div.upload-progress {
                label for="upload-progress" { "Upload progress" }
                " " progress #upload-progress max="1" value="0" {}
                " " span #upload-status role="status" { "" }
            }
            button type="submit" { "Upload" }
        }
    }
}

fn list_page(session: &Session, wars: &[WarRecord], app: &str, file: &str, errors: &FieldErrors, max: u64) -> Markup {
    let body = html! {
        h1 { "WARs" }
        @if wars.is_empty() { p #no-wars { "You have no WARs yet. Upload one below." } } @else {
            div.scroll { table #wars {
                caption.visually-hidden { "Your WARs" }
                thead { tr { th scope="col" { "WAR" } th scope="col" { "Size" } th scope="col" { "Servlet API" } th scope="col" { "sha256" } th scope="col" { "Uploaded" } } }
                tbody { @for w in wars {
                    tr data-war=(format!("{}/{}", w.app, w.file)) {
                        th scope="row" { a href=(href(w)) { (w.app) "/" (w.file) } }
                        td { (layout::bytes(w.size)) } td { (servlet_api(w)) } td { (layout::short_digest(&w.sha256)) } td { (layout::time(w.uploaded_at)) }
                    }
                } }
            } }
        }
        section aria-labelledby="upload-title" {
            h2 #upload-title { "Upload a WAR" }
            (upload_section(session, app, file, errors, max))
        }
    };
    layout::page("WARs", Some(session), Nav::Wars, body)
}

pub async fn list(State(state): State<AppState>, session: Session) -> Answer {
    let wars = state.wars.list(&session.user).await?;
    Ok(layout::respond(
        StatusCode::OK,
        list_page(&session, &wars, "", "", &FieldErrors::default(), state.wars.max_bytes()),
    ))
}

/// Refuses, before reading a byte, a body whose declared length is over the cap.
fn check_declared_length(headers: &HeaderMap, max: u64) -> Result<(), WarError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max => Err(WarError::TooLarge { max }),
        _ => Ok(()),
    }
}

/// The script's upload: the raw body, the CSRF token in its header; answers the
/// record (with the page to go to) or the API's problem, as JSON for the script.
pub async fn upload(
    State(state): State<AppState>,
    session: Session,
    Path((app, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_names(&app, &file)?;
    check_declared_length(&headers, state.wars.max_bytes())?;
    let received = state.wars.receive(&session.user, body.into_data_stream()).await?;
    let (record, replaced) = state.wars.keep(&session.user, &app, &file, received).await?;
    tracing::info!(app, file, sha256 = %record.sha256, size = record.size, "WAR stored from the console");
    let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
    let location = href(&record);
    let mut answer = serde_json::to_value(&record).map_err(ApiError::internal)?;
    answer["location"] = serde_json::json!(location);
    Ok((status, [(header::LOCATION, location)], Json(answer)).into_response())
}

/// A text part, at most 4 KiB.
async fn small_text(mut field: Field<'_>) -> Result<String, ApiError> {
    let mut text = Vec::new();
    while let Some(chunk) =
        field.chunk().await.map_err(|e| ApiError::bad_request("request.multipart", e.body_text()))?
    {
        text.extend_from_slice(&chunk);
        if text.len() > 4096 {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.field_too_large",
                "Field too large",
                "a text field of the form is over 4 KiB",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&text).trim().to_owned())
}

/// The upload without script: a multipart form (`app`, `file`, then `war`), streamed.
pub async fn upload_form(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    mut form: Multipart,
) -> Answer {
    let max = state.wars.max_bytes();
    let (mut app, mut file, mut chosen, mut received) = (String::new(), String::new(), None, None);
    let result: Result<(), ApiError> = async {
        check_declared_length(&headers, max.saturating_add(64 << 10))?;
        while let Some(field) =
            form.next_field().await.map_err(|e| ApiError::bad_request("request.multipart", e.body_text()))?
        {
            match field.name().unwrap_or_default() {
                "app" => app = small_text(field).await?,
                "file" => file = small_text(field).await?,
                "war" if received.is_none() => {
                    chosen = field
                        .file_name()
                        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned())
                        .filter(|n| !n.is_empty());
                    received = Some(state.wars.receive(&session.user, field).await?);
                }
                _ => drop(small_text(field).await?),
            }
        }
        Ok(())
    }
    .await;
    let mut errors = FieldErrors::default();
    if file.is_empty() {
        file = chosen.unwrap_or_default();
    }
    let kept = match (result, received) {
        (Err(problem), _) => Err(problem),
        (Ok(()), None) => {
            errors.add("war", "choose a WAR file to upload");
            Err(ApiError::bad_request("war.missing_file", "the form has no WAR file"))
        }
        (Ok(()), Some(received)) => state.wars.keep(&session.user, &app, &file, received).await.map_err(ApiError::from),
    };
    match kept {
        Ok((record, _)) => Ok(see_other(&href(&record))),
        Err(problem) if problem.status.is_server_error() => Err(ConsoleError::of(problem)),
        Err(problem) => {
            if errors.is_empty() {
                errors = FieldErrors::from_problem(&problem, |field| {
                    matches!(field, "app" | "file").then(|| field.to_owned())
                });
                if problem.errors.is_empty() {
                    errors.general.clear();
                    errors.add("war", problem.detail.clone());
                }
            }
            let wars = state.wars.list(&session.user).await?;
            Ok(layout::respond(problem.status, list_page(&session, &wars, &app, &file, &errors, max)))
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path((app, file)): Path<(String, String)>,
) -> Answer {
    let war = state.wars.get(&session.user, &app, &file).await?;
    let body = html! {
        h1 { "WAR " (war.app) "/" (war.file) }
        dl.facts #war-facts {
            dt { "Size" } dd data-fact="size" { (layout::bytes(war.size)) " (" (war.size) " bytes)" }
            dt { "sha256" } dd data-fact="sha256" { code.wrap { (war.sha256) } }
            dt { "Servlet API" } dd data-fact="servlet-api" { (servlet_api(&war)) }
            dt { "Read from" } dd data-fact="servlet-api-source" {
                (word(&war.servlet_api_source))
                @if !war.servlet_api_evidence.is_empty() { br; span.muted { (war.servlet_api_evidence) } }
            }
            dt { "web.xml" } dd data-fact="web-xml" { @if war.has_web_xml { "present" } @else { "none" } }
            dt { "Entries" } dd data-fact="entries" { (war.entries) " (" (layout::bytes(war.uncompressed_bytes)) " uncompressed)" }
            dt { "Uploaded" } dd data-fact="uploaded" { (layout::time(war.uploaded_at)) }
        }
        p.actions { a #delete-link href=(format!("{}/delete", href(&war))) { "Delete" } " " a href="/ui/wars" { "Back to WARs" } }
    };
    Ok(layout::respond(StatusCode::OK, layout::page(&format!("WAR {}", war.file), Some(&session), Nav::Wars, body)))
}

pub async fn delete_form(
    State(state): State<AppState>,
    session: Session,
    Path((app, file)): Path<(String, String)>,
) -> Answer {
    let war = state.wars.get(&session.user, &app, &file).await?;
    let body = html! {
        h1 { "Delete WAR " (war.app) "/" (war.file) "?" }
        p { "Releases already built from it keep running; it can no longer be deployed." }
        form #delete-form method="post" action=(format!("{}/delete", href(&war))) {
            (layout::csrf(&session))
            button.danger type="submit" { "Delete WAR " (war.file) }
            " " a href=(href(&war)) { "Cancel" }
        }
    };
    Ok(layout::respond(StatusCode::OK, layout::page("Delete WAR", Some(&session), Nav::Wars, body)))
}

pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path((app, file)): Path<(String, String)>,
) -> Answer {
    state.wars.delete(&session.user, &app, &file).await?;
    Ok(see_other("/ui/wars"))
}
