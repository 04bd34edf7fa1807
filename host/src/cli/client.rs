//! The CLI's side of the REST API: where the server is and who we are (the login file,
//! or `WARSHIP_URL` / `WARSHIP_TOKEN`), requests, and every way one can fail, each
//! with its own exit code and words.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Exit codes, as `warship --help` documents them.
pub mod exit {
    pub const OK: u8 = 0;
    /// A deploy that failed or was aborted.
    pub const DEPLOY_FAILED: u8 = 1;
    /// Bad usage: arguments, or a local file that cannot be read.
    pub const USAGE: u8 = 2;
    /// The server refused the request (problem+json).
    pub const REFUSED: u8 = 3;
    /// The server cannot be reached.
    pub const UNREACHABLE: u8 = 4;
    /// Not logged in, or the token was refused.
    pub const AUTH: u8 = 5;
    /// Stopped following with Ctrl-C (the deploy goes on).
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    DeployEnded(String),
    #[error("{}: {}", body.title, body.detail)]
    Problem { status: u16, body: Problem },
    #[error("cannot reach the warship server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Interrupted(String),
}

/// A problem+json answer, as the server sends it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
    /// With `deploy.in_progress`: the running deploy.
    #[serde(default)]
    pub deploy: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::DeployEnded(_) => exit::DEPLOY_FAILED,
            CliError::Problem { .. } => exit::REFUSED,
            CliError::Unreachable { .. } => exit::UNREACHABLE,
            CliError::Auth(_) => exit::AUTH,
            CliError::Interrupted(_) => exit::INTERRUPTED,
        }
    }

    /// What a person reads on stderr.
    pub fn explain(&self) -> String {
        match self {
            CliError::Problem { status, body } => {
                let mut text = format!("error: {} ({status}, {})\n  {}", body.title, body.code, body.detail);
                for e in &body.errors {
                    text.push_str(&format!("\n  - {}: {} ({})", e.field, e.message, e.code));
                }
                if let (Some(running), "deploy.in_progress") = (&body.deploy, body.code.as_str()) {
                    text.push_str(&format!("\n  watch it with: warship follow {running}"));
                }
                text
            }
            CliError::Unreachable { .. } => format!("error: {self}\n  is the server up? check the URL given to `warship login` or WARSHIP_URL"),
            other => format!("error: {other}"),
        }
    }
}

/// What `warship login` keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Login {
    pub url: String,
    pub token: String,
}

impl Login {
    /// `$XDG_CONFIG_HOME/warship/login.toml`, or `~/.config/warship/login.toml`.
    pub fn path() -> Result<PathBuf, CliError> {
        let base = match (std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")) {
            (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg),
            (_, Some(home)) => PathBuf::from(home).join(".config"),
            _ => return Err(CliError::Usage("neither XDG_CONFIG_HOME nor HOME is set: cannot find the login file".into())),
        };
        Ok(base.join("warship").join("login.toml"))
    }

    pub fn load() -> Result<Option<Login>, CliError> {
        let path = Self::path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map(Some).map_err(|e| CliError::Usage(format!("{} is not a login file: {e}; run warship login again", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::Usage(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Written readable by its owner only: it holds a token.
    pub fn save(&self) -> Result<PathBuf, CliError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path()?;
        let failed = |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", path.display()));
        std::fs::create_dir_all(path.parent().expect("the path has a parent")).map_err(failed)?;
        let text = toml::to_string(self).expect("a login serializes");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).map_err(failed)?;
        // An existing file keeps its mode on open; make sure of it.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)?;
        Ok(path)
    }
}

pub struct Client {
    http: reqwest::Client,
    pub url: String,
    token: String,
}

impl Client {
    pub fn new(url: &str, token: &str) -> Client {
        let http = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build().expect("an HTTP client builds");
        Client { http, url: url.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    /// The server and token: `WARSHIP_URL` / `WARSHIP_TOKEN` (or the flags) over the login file.
    pub fn configured(url: Option<String>, token: Option<String>) -> Result<Client, CliError> {
        let login = Login::load()?;
        let url = url.or_else(|| login.as_ref().map(|l| l.url.clone()));
        let token = token.or_else(|| login.as_ref().map(|l| l.token.clone()));
        match (url, token) {
            (Some(url), Some(token)) => Ok(Client::new(&url, &token)),
            _ => Err(CliError::Auth("not logged in: run `warship login URL --token TOKEN`, or set WARSHIP_URL and WARSHIP_TOKEN".into())),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// Sends, and turns every failure into its CliError.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CliError> {
        let response = request.send().await.map_err(|e| CliError::Unreachable { url: self.url.clone(), message: root_cause(&e) })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body: Problem = serde_json::from_str(&text).unwrap_or_else(|_| Problem {
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            detail: text.trim().chars().take(500).collect(),
            code: format!("http.{}", status.as_u16()),
            ..Problem::default()
        });
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CliError::Auth(format!(
                "the server at {} refused the token ({}: {}); log in again with `warship login {} --token TOKEN`",
                self.url, body.code, body.detail, self.url
            )));
        }
        Err(CliError::Problem { status: status.as_u16(), body })
    }

    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let text = response.text().await.map_err(|e| CliError::Unreachable { url: self.url.clone(), message: root_cause(&e) })?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CliError::Unreachable { url: self.url.clone(), message: format!("the answer is not JSON: {e}") })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.json(reqwest::Method::GET, path, None).await
    }

    /// A list route, every page: follows `X-Next-Cursor` until the last page.
    pub async fn get_all(&self, path: &str) -> Result<Value, CliError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = self.request(reqwest::Method::GET, path);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let response = self.send(request).await?;
            let next = response.headers().get("x-next-cursor").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let page: Vec<Value> =
                response.json().await.map_err(|e| CliError::Unreachable { url: self.url.clone(), message: format!("the answer is not a JSON list: {e}") })?;
            all.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(Value::Array(all)),
            }
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json(reqwest::Method::POST, path, Some(body)).await
    }
}

/// The innermost cause: "connection refused" rather than "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// `/`-safe path segment.
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_exit_code_and_a_409_says_how_to_watch() {
        let busy = CliError::Problem {
            status: 409,
            body: Problem {
                title: "Deploy in progress".into(),
                detail: "deploy abc is running on env shop".into(),
                code: "deploy.in_progress".into(),
                errors: vec![],
                deploy: Some("abc".into()),
            },
        };
        assert_eq!(busy.exit_code(), exit::REFUSED);
        assert_eq!(
            busy.explain(),
            "error: Deploy in progress (409, deploy.in_progress)\n  deploy abc is running on env shop\n  watch it with: warship follow abc"
        );
        assert_eq!(CliError::Unreachable { url: "u".into(), message: "m".into() }.exit_code(), exit::UNREACHABLE);
        assert_eq!(CliError::Auth("a".into()).exit_code(), exit::AUTH);
        assert_eq!(CliError::DeployEnded("d".into()).exit_code(), exit::DEPLOY_FAILED);
        assert_eq!(CliError::Usage("u".into()).exit_code(), exit::USAGE);
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("my app.war"), "my%20app.war");
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
