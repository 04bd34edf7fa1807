//! The original API server's four operations, kept for existing front ends: same
//! paths, same JSON field names, answers in the nested `details` shape.

use std::collections::BTreeMap;

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answers::{BadRequest, Common, Conflict, NotFound, TooLarge, Unprocessable, UploadIdle};
use super::{ApiError, ApiJson, AppState, CurrentUser};
use crate::deploys::{DeployError, DeployRequest};
use crate::envs::EnvStatus;
use crate::domain::EnvSpec;
use crate::envs::{EnvError, Origin};
use crate::domain::Violation;
use crate::wars::WarRecord;

/// The original response shape: a named node with facts in `context` and nested
/// nodes in `children`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Details {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[schema(no_recursion)]
    pub context: Vec<Details>,
    #[schema(no_recursion)]
    pub children: Vec<Details>,
}

impl Details {
    fn node(name: impl Into<String>) -> Self {
        Self { name: name.into(), status: None, value: None, context: Vec::new(), children: Vec::new() }
    }
    fn fact(name: &str, value: impl ToString) -> Self {
        Self { value: Some(value.to_string()), ..Self::node(name) }
    }
}

/// The original `createenv` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct LegacyEnv {
    pub TomcatV: String,
    pub JdkV: String,
    /// Replicas, as a string.
    pub NodeNum: String,
    pub Name: String,
    /// Counted by warship; accepted only as 0.
    #[serde(default)]
    pub Used: u64,
}

/// Our field names back to the ones the caller sent.
fn legacy_field(field: &str) -> String {
    match field {
        "name" => "Name",
        "tomcat" => "TomcatV",
        "jdk" => "JdkV",
        "replicas" => "NodeNum",
        other => other,
    }
    .to_owned()
}

/// Create an env (original API).
#[utoipa::path(post, path = "/createenv", tag = "original", operation_id = "legacyCreateEnv", request_body = LegacyEnv,
    responses((status = 201, body = Details, description = "created, in the `details` shape"), BadRequest, Conflict, TooLarge, Unprocessable, Common),
    security(("bearer" = [])))]
pub async fn createenv(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<LegacyEnv>,
) -> Result<(StatusCode, Json<Details>), ApiError> {
    // The validators parse NodeNum themselves, so they can say what is wrong with it.
    let replicas = body.NodeNum.trim().parse::<u32>().unwrap_or(0);
    let spec = EnvSpec {
        name: body.Name,
        tomcat: body.TomcatV.into(),
        jdk: body.JdkV.into(),
        replicas,
        jvm_options: String::new(),
        env: BTreeMap::new(),
        resources: Default::default(),
        context_path: "/".into(),
        health_path: None,
        rollout_deadline_secs: None,
    };
    let origin = Origin { node_num: Some(body.NodeNum) };
    let result = if body.Used != 0 {
        // Report Used together with everything else wrong.
        let mut violations = vec![Violation::new("Used", "env.used.read_only", "Used is counted by warship; send 0 or leave it out")];
        violations.extend(state.envs.validate(&spec, origin).await?);
        Err(EnvError::Invalid(violations))
    } else {
        state.envs.create(&user, spec, origin).await
    };
    let env = result.map_err(|e| match e {
        EnvError::Invalid(violations) => EnvError::Invalid(
            violations.into_iter().map(|v| Violation { field: legacy_field(&v.field), ..v }).collect(),
        ),
        other => other,
    })?;
    let mut details = Details::node(&env.spec.name);
    details.status = Some("created".into());
    details.context = vec![
        Details::fact("TomcatV", &env.spec.tomcat),
        Details::fact("JdkV", &env.spec.jdk),
        Details::fact("NodeNum", env.spec.replicas),
        Details::fact("Used", env.used),
    ];
    Ok((StatusCode::CREATED, Json(details)))
}

fn war_details(war: &WarRecord) -> Details {
    let mut node = Details::node(&war.file);
    node.value = Some(war.sha256.clone());
    node.context = vec![
        Details::fact("appName", &war.app),
        Details::fact("size", war.size),
        Details::fact("sha256", &war.sha256),
        Details::fact("servletApi", serde_json::to_value(war.servlet_api).expect("enum").as_str().unwrap_or_default()),
        Details::fact("hasWebXml", war.has_web_xml),
        Details::fact("uploadTime", war.uploaded_at.unix_timestamp()),
    ];
    node
}

/// List uploaded WARs, grouped by app (original API).
#[utoipa::path(get, path = "/getuploadwars", tag = "original", operation_id = "legacyListWars",
    responses((status = 200, body = Details, description = "your WARs by app, in the `details` shape"), Common), security(("bearer" = [])))]
pub async fn getuploadwars(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Json<Details>, ApiError> {
    let mut root = Details::node(user.as_str());
    for war in state.wars.list(&user).await? {
        if root.children.last().is_none_or(|app| app.name != war.app) {
            root.children.push(Details::node(&war.app));
        }
        root.children.last_mut().expect("pushed above").children.push(war_details(&war));
    }
    Ok(Json(root))
}

/// The original upload form, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)] // read by the OpenAPI document only; the handler reads the parts as they come
pub struct LegacyUpload {
    /// The WAR file (or as `uploadfile`).
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    /// The app (or as `appName`); the file's name without `.war` when absent.
    name: Option<String>,
    /// Makes the file `<name>-<version>.war`.
    version: Option<String>,
}

/// The most a text part of the upload form may hold.
pub const TEXT_FIELD_MAX: usize = 4 << 10;

/// A text part, read a chunk at a time and refused (413, nothing kept) as soon as it
/// passes [`TEXT_FIELD_MAX`], whatever length the request claimed.
async fn capped_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut text = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request("request.multipart", format!("the multipart body could not be read: {}", e.body_text())))?
    {
        if text.len() + chunk.len() > TEXT_FIELD_MAX {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.field_too_large",
                "Form field too large",
                format!("the form field `{name}` is longer than the {TEXT_FIELD_MAX} bytes allowed; send a shorter value"),
            ));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| ApiError::bad_request("request.multipart", format!("the form field `{name}` is not UTF-8 text")))
}

/// Upload a WAR as multipart form data (original API): the file in `file` (or
/// `uploadfile`), the app in `name` (or `appName`), optionally `version`.
#[utoipa::path(post, path = "/upload", tag = "original", operation_id = "legacyUploadWar",
    request_body(content_type = "multipart/form-data", content = LegacyUpload),
    responses((status = 201, body = Details, description = "stored, in the `details` shape"), BadRequest, UploadIdle, TooLarge, Unprocessable, Common),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Details>), ApiError> {
    super::wars::check_declared_length(&headers, state.wars.max_bytes())?;
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request("request.multipart", format!("the multipart body could not be read: {}", e.body_text()))
    };
    let (mut received, mut file_name, mut app, mut version) = (None, None, None, None);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "file" | "uploadfile" if received.is_some() => {
                return Err(ApiError::bad_request("request.duplicate_field", "the form has two `file` parts; send one WAR per upload"))
            }
            "file" | "uploadfile" => {
                file_name = field.file_name().map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned());
                received = Some(state.wars.receive(&user, field).await?);
            }
            "name" | "appName" | "app" => app = Some(capped_text(field).await?),
            "version" => version = Some(capped_text(field).await?),
            other => {
                return Err(ApiError::bad_request(
                    "request.unknown_field",
                    format!("unexpected form field {other:?}; send `file`, `name` and optionally `version`"),
                ))
            }
        }
    }
    let Some(received) = received else {
        return Err(ApiError::bad_request("war.missing_file", "the form has no `file` part; attach the WAR as `file`"));
    };
    let Some(app) = app.or_else(|| file_name.clone()) else {
        return Err(ApiError::bad_request("war.missing_name", "the form has no `name` part; send the app name as `name`"));
    };
    let app = app.trim_end_matches(".war").to_owned();
    let file = match (version.filter(|v| !v.is_empty()), file_name) {
        (Some(v), _) => format!("{app}-{v}.war"),
        (None, Some(f)) => f,
        (None, None) => format!("{app}.war"),
    };
    let (record, _) = state.wars.keep(&user, &app, &file, received).await?;
    let mut details = war_details(&record);
    details.status = Some("uploaded".into());
    Ok((StatusCode::CREATED, Json(details)))
}

/// The original `deploy` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct LegacyDeploy {
    pub EnvName: String,
    /// The WAR's file name (or `app/file`).
    pub WarName: String,
    pub AppVersion: String,
    /// "0": replace everything (recreate); "1": a grey release by the platform's grey strategy.
    #[serde(default = "not_grey")]
    pub IsGreyUpdating: String,
}

fn not_grey() -> String {
    "0".into()
}

/// The status tree in the original shape: env ▸ service ▸ workloads ▸ pods.
pub fn status_details(status: &EnvStatus) -> Details {
    let mut root = Details::node(&status.env.spec.name);
    root.context = vec![
        Details::fact("TomcatV", &status.env.spec.tomcat),
        Details::fact("JdkV", &status.env.spec.jdk),
        Details::fact("NodeNum", status.env.spec.replicas),
        Details::fact("Used", status.env.used),
    ];
    if let Some(current) = &status.env.current {
        root.context.push(Details::fact("release", current.revision));
        root.context.push(Details::fact("AppVersion", &current.version));
        root.context.push(Details::fact("digest", &current.digest));
    }
    if let Some(deploying) = &status.deploying {
        root.context.push(Details::fact("deploying", deploying));
    }
    if let Some(service) = &status.service {
        let mut node = Details::node(&service.name);
        node.status = Some("service".into());
        node.context = vec![Details::fact("namespace", &service.namespace)];
        for workload in &service.workloads {
            let mut w = Details::node(&workload.name);
            w.status = Some(format!("{}/{} ready", workload.ready, workload.desired));
            w.value = Some(workload.digest.clone());
            w.context = vec![
                Details::fact("release", workload.release.map(|r| r.to_string()).unwrap_or_default()),
                Details::fact("AppVersion", &workload.version),
                Details::fact("image", &workload.image),
                Details::fact("desired", workload.desired),
                Details::fact("ready", workload.ready),
                Details::fact("serving", workload.serving),
            ];
            for pod in &workload.pods {
                let mut p = Details::node(&pod.name);
                p.status = Some(pod.phase.clone());
                p.context = vec![
                    Details::fact("ready", pod.ready),
                    Details::fact("restarts", pod.restarts),
                    Details::fact("node", pod.node.clone().unwrap_or_default()),
                ];
                w.children.push(p);
            }
            node.children.push(w);
        }
        root.children.push(node);
    }
    root
}

/// Deploy (original API): starts a deploy and answers at once, in the `details`
/// shape: the env's tree with the new deploy's id as `deployId`. "deploy in progress"
/// (409, with the running deploy's id) while another runs on the env.
#[utoipa::path(post, path = "/deploy", tag = "original", operation_id = "legacyDeploy", request_body = LegacyDeploy,
    responses((status = 202, body = Details, description = "accepted, in the `details` shape with `deployId`"),
        BadRequest, NotFound, Conflict, TooLarge, Unprocessable, Common),
    security(("bearer" = [])))]
pub async fn deploy(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<LegacyDeploy>,
) -> Result<(StatusCode, Json<Details>), ApiError> {
    let strategy = match body.IsGreyUpdating.trim() {
        "0" => state.config.deploys.replace_strategy.clone(),
        "1" => state.config.deploys.grey_strategy.clone(),
        other => {
            return Err(ApiError::invalid(
                "IsGreyUpdating must be \"0\" (replace everything) or \"1\" (grey release)",
                vec![Violation::new("IsGreyUpdating", "deploy.grey.invalid", format!("{other:?} is neither \"0\" nor \"1\""))],
            ))
        }
    };
    let env = super::envs::env_name(&body.EnvName)?;
    let request = DeployRequest { war: body.WarName, version: body.AppVersion, strategy: Some(strategy), settings: None };
    let record = state.deploys.start(&user, &env, request).await.map_err(|e| match e {
        DeployError::Invalid(violations) => DeployError::Invalid(
            violations
                .into_iter()
                .map(|v| Violation { field: match v.field.as_str() { "war" => "WarName", "version" => "AppVersion", "env" => "EnvName", other => other }.to_owned(), ..v })
                .collect(),
        ),
        other => other,
    })?;
    let mut details = status_details(&state.env_ops.status(&user, &env).await?);
    details.status = Some(serde_json::to_value(record.status).expect("enum").as_str().unwrap_or_default().to_owned());
    details.value = Some(record.id.clone());
    details.context.extend([
        Details::fact("deployId", &record.id),
        Details::fact("strategy", &record.strategy),
        Details::fact("revision", record.revision),
        Details::fact("WarName", &record.war),
    ]);
    Ok((StatusCode::ACCEPTED, Json(details)))
}
