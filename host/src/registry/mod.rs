//! The OCI distribution API, as far as warship needs it: manifests and blobs read,
//! blobs mounted, streamed up and checked, manifests pushed. This module alone talks
//! to registries. Auth (anonymous, basic, bearer token from the registry's token
//! service), TLS with an admin's CA or plain HTTP, retries with backoff and jitter, and
//! one deadline per push all live in [`Session`], so callers only say what they want.

mod auth;
mod error;
mod reference;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

pub use auth::Challenge;
pub use error::RegistryError;
use error::{diagnostic, mentions_no_space};
pub use reference::{tag_problem, ImageRef, ReferenceError};

use crate::config::RegistryConfig;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                               application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const CONTENT_DIGEST: reqwest::header::HeaderName = reqwest::header::HeaderName::from_static("docker-content-digest");

/// Something a session tells whoever watches a push.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A transient failure; the same operation runs again after `delay`.
    Retrying { what: String, attempt: u32, delay: Duration, error: String },
}

pub type Notify = Arc<dyn Fn(Notice) + Send + Sync>;

/// How hard to try. Retries back off exponentially from `first_backoff`, with full
/// jitter, capped at `max_backoff`; `deadline` bounds the whole session.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub deadline: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &RegistryConfig) -> Self {
        Self {
            attempts: config.max_attempts.max(1),
            first_backoff: Duration::from_millis(config.first_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms),
            deadline: Duration::from_secs(config.push_timeout_secs),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.first_backoff.saturating_mul(1 << attempt.min(16)).min(self.max_backoff);
        ceiling.mul_f64(rand::random::<f64>()).max(Duration::from_millis(10))
    }
}

/// Credentials for one registry host.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:<redacted>)", self.username)
    }
}

/// One HTTP client for every registry warship talks to, and what it knows of them.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// The push registry as this host reaches it, e.g. `127.0.0.1:5000`.
    push: String,
    insecure: Vec<String>,
    credentials: Option<(String, Credentials)>,
    policy: RetryPolicy,
}

impl RegistryClient {
    pub fn from_config(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let local = |message: String| RegistryError::Local { what: "registry settings".into(), message };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("warship/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &config.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| local(format!("cannot read registry.ca_cert {}: {e}", ca.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| local(format!("registry.ca_cert {}: {e}", ca.display())))? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| local(e.to_string()))?;
        let password = match (&config.password, &config.password_file) {
            (_, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| local(format!("cannot read registry.password_file {}: {e}", path.display())))?
                    .trim_end()
                    .to_owned(),
            ),
            (password, None) => password.clone(),
        };
        let credentials = config
            .username
            .clone()
            .map(|username| (config.push.clone(), Credentials { username, password: password.unwrap_or_default() }));
        let mut insecure = config.insecure_registries.clone();
        if config.insecure {
            insecure.extend([config.push.clone(), config.pull.clone()]);
        }
        Ok(Self { http, push: config.push.clone(), insecure, credentials, policy: RetryPolicy::from_config(config) })
    }

    pub fn push_registry(&self) -> &str {
        &self.push
    }

    /// The push registry's credentials, if any are configured.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref().map(|(_, c)| c)
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Reads `reference` as a full reference: without a registry host it names a
    /// repository in the push registry.
    pub fn resolve(&self, reference: &str) -> Result<ImageRef, ReferenceError> {
        ImageRef::parse(reference, &self.push)
    }

    /// A session with one registry for the given repository scopes, e.g.
    /// `repository:alice/shop:pull,push`, bounded by the policy's deadline.
    pub fn session(&self, registry: &str, scopes: Vec<String>, notify: Notify) -> Session {
        let scheme = if self.insecure.iter().any(|r| r == registry) { "http" } else { "https" };
        let credentials = self.credentials.as_ref().filter(|(host, _)| host == registry).map(|(_, c)| c.clone());
        Session {
            http: self.http.clone(),
            registry: registry.to_owned(),
            base: format!("{scheme}://{registry}"),
            credentials,
            scopes,
            auth: Arc::new(tokio::sync::Mutex::new(auth::AuthState::Anonymous)),
            policy: self.policy,
            started: Instant::now(),
            notify,
        }
    }
}

/// A manifest as fetched: its bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

/// Talks to one registry for one job, with its auth state and deadline.
#[derive(Clone)]
pub struct Session {
    http: reqwest::Client,
    registry: String,
    base: String,
    credentials: Option<Credentials>,
    scopes: Vec<String>,
    auth: Arc<tokio::sync::Mutex<auth::AuthState>>,
    policy: RetryPolicy,
    started: Instant,
    notify: Notify,
}

/// A request that can be made again (for retries and auth challenges).
type MakeRequest<'a> = &'a (dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync);

impl Session {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    fn deadline(&self) -> Instant {
        self.started + self.policy.deadline
    }

    fn timed_out(&self) -> RegistryError {
        RegistryError::TimedOut { registry: self.registry.clone(), after: self.policy.deadline }
    }

    /// Runs `op` until it succeeds, fails for good, runs out of attempts, or the
    /// session's deadline passes. Transient failures are told to `notify`.
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let deadline = tokio::time::Instant::from_std(self.deadline());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match tokio::time::timeout_at(deadline, op()).await {
                Ok(result) => result,
                Err(_) => return Err(self.timed_out()),
            };
            match result {
                Err(e) if e.is_transient() && attempt < self.policy.attempts => {
                    let delay = self.policy.backoff(attempt - 1);
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(self.timed_out());
                    }
                    tracing::warn!(registry = %self.registry, what, attempt, ?delay, error = %e, "registry operation failed; retrying");
                    (self.notify)(Notice::Retrying { what: what.to_owned(), attempt, delay, error: e.to_string() });
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Sends once, answering an auth challenge (401) once. Connection failures come
    /// back as `Unreachable`; other statuses are the caller's to read.
    async fn send(&self, what: &str, make: MakeRequest<'_>) -> Result<Response, RegistryError> {
        let mut challenged = false;
        loop {
            let header = self.auth.lock().await.header();
            let mut request = make(&self.http);
            if let Some(value) = header {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| self.unreachable(e))?;
            if response.status() != StatusCode::UNAUTHORIZED || challenged {
                if response.status() == StatusCode::UNAUTHORIZED {
                    let diagnostic = diagnostic(response).await;
                    return Err(RegistryError::CredentialsRefused { registry: self.registry.clone(), diagnostic });
                }
                return Ok(response);
            }
            challenged = true;
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(auth::Challenge::parse)
                .transpose()
                .map_err(|message| self.protocol(what, message))?;
            let Some(challenge) = challenge else {
                let diagnostic = diagnostic(response).await;
                return Err(RegistryError::CredentialsRefused { registry: self.registry.clone(), diagnostic });
            };
            let state = auth::authenticate(&self.http, &self.registry, &challenge, self.credentials.as_ref(), &self.scopes).await?;
            *self.auth.lock().await = state;
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> RegistryError {
        // The chain says more than the top error ("error sending request").
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            cause = format!("{cause}: {inner}");
            source = inner.source();
        }
        RegistryError::Unreachable { registry: self.registry.clone(), cause }
    }

    fn protocol(&self, what: &str, message: impl Into<String>) -> RegistryError {
        RegistryError::Protocol { registry: self.registry.clone(), what: what.to_owned(), message: message.into() }
    }

    /// The error for a status nobody expected; out-of-space is told apart.
    async fn unexpected(&self, what: &str, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let diagnostic = diagnostic(response).await;
        if status == 507 || mentions_no_space(&diagnostic) {
            return RegistryError::OutOfSpace { registry: self.registry.clone(), diagnostic };
        }
        match status {
            401 | 403 => RegistryError::CredentialsRefused { registry: self.registry.clone(), diagnostic },
            404 => RegistryError::NotFound { registry: self.registry.clone(), what: what.to_owned() },
            _ => RegistryError::Status { registry: self.registry.clone(), what: what.to_owned(), status, diagnostic },
        }
    }

    /// Fetches a manifest or index by tag or digest, checking a digest reference.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let what = format!("manifest {repository}:{reference}");
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        self.retrying(&what, || async {
            let response = self.send(&what, &|c| c.get(&url).header(ACCEPT, MANIFEST_ACCEPT)).await?;
            if !response.status().is_success() {
                return Err(self.unexpected(&what, response).await);
            }
            let media_type = header_str(response.headers(), CONTENT_TYPE).unwrap_or_default();
            let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
            let digest = sha256_digest(&bytes);
            if reference.starts_with("sha256:") && reference != digest {
                return Err(self.protocol(&what, format!("its content has digest {digest}")));
            }
            // Registries may omit or generalise the content type; the body says too.
            let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(media_type);
            Ok(FetchedManifest { bytes, media_type, digest })
        })
        .await
    }

    /// A small blob (a config), read whole and checked against its digest.
    pub async fn blob(&self, repository: &str, digest: &str, max_bytes: usize) -> Result<Bytes, RegistryError> {
        let what = format!("blob {digest} of {repository}");
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        self.retrying(&what, || async {
            let response = self.send(&what, &|c| c.get(&url)).await?;
            if !response.status().is_success() {
                return Err(self.unexpected(&what, response).await);
            }
            if response.content_length().is_some_and(|len| len > max_bytes as u64) {
                return Err(self.protocol(&what, format!("it is larger than the {max_bytes} bytes expected")));
            }
            let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
            if sha256_digest(&bytes) != digest {
                return Err(self.protocol(&what, "its content does not match its digest"));
            }
            Ok(bytes)
        })
        .await
    }

    /// A blob as a stream, for copying between registries without holding it.
    pub async fn blob_stream(&self, repository: &str, digest: &str) -> Result<impl Stream<Item = reqwest::Result<Bytes>>, RegistryError> {
        let what = format!("blob {digest} of {repository}");
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        let response = self.send(&what, &|c| c.get(&url)).await?;
        if !response.status().is_success() {
            return Err(self.unexpected(&what, response).await);
        }
        Ok(response.bytes_stream())
    }

    /// Whether the repository has the blob (one try: callers retry whole steps).
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let what = format!("blob {digest} of {repository}");
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        let response = self.send(&what, &|c| c.head(&url)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.unexpected(&what, response).await),
        }
    }

    /// Asks the registry to link a blob it holds for `from` into `repository`. `false`
    /// when it would not (another registry's blob, or no access): the caller uploads.
    pub async fn mount_blob(&self, repository: &str, digest: &str, from: &str) -> Result<bool, RegistryError> {
        let what = format!("mount of {digest} from {from} into {repository}");
        let url = self.url(&format!("{repository}/blobs/uploads/?mount={digest}&from={from}"));
        let response = self.send(&what, &|c| c.post(&url).header(reqwest::header::CONTENT_LENGTH, 0)).await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // An upload session was opened instead; close it so it does not linger.
                if let Some(location) = header_str(response.headers(), LOCATION) {
                    let location = self.absolute(&location);
                    let _ = self.send(&what, &|c| c.delete(&location)).await;
                }
                Ok(false)
            }
            _ => Err(self.unexpected(&what, response).await),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Uploads one blob: POST opens a session, PATCH streams `body`, PUT closes it
    /// with the digest `digest_after` gives once the body has been read (so the
    /// digest can be computed on the way). One try; callers retry whole steps.
    pub async fn upload_blob<S, D>(&self, repository: &str, what: &str, body: S, length: Option<u64>, digest_after: D) -> Result<String, RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        D: FnOnce() -> Result<String, RegistryError>,
    {
        let start = self.url(&format!("{repository}/blobs/uploads/"));
        let response = self.send(what, &|c| c.post(&start).header(reqwest::header::CONTENT_LENGTH, 0)).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(what, response).await);
        }
        let location = header_str(response.headers(), LOCATION).ok_or_else(|| self.protocol(what, "no Location for the upload"))?;
        let location = self.absolute(&location);

        // The body is a one-shot stream, so this request is not replayed on a challenge:
        // the POST above already settled auth for this session.
        let header = self.auth.lock().await.header();
        let mut patch = self
            .http
            .request(Method::PATCH, &location)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(length) = length {
            patch = patch.header(reqwest::header::CONTENT_LENGTH, length);
        }
        if let Some(value) = header {
            patch = patch.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = patch.send().await.map_err(|e| self.unreachable(e))?;
        if response.status() != StatusCode::ACCEPTED && response.status() != StatusCode::NO_CONTENT {
            return Err(self.unexpected(what, response).await);
        }
        let location = header_str(response.headers(), LOCATION).map(|l| self.absolute(&l)).unwrap_or(location);
        let digest = digest_after()?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let finish = format!("{location}{separator}digest={digest}");
        let response = self.send(what, &|c| c.put(&finish).header(reqwest::header::CONTENT_LENGTH, 0)).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.unexpected(what, response).await);
        }
        Ok(digest)
    }

    /// Uploads a small blob held in memory, unless the repository has it already.
    pub async fn put_small_blob(&self, repository: &str, bytes: Bytes) -> Result<String, RegistryError> {
        let digest = sha256_digest(&bytes);
        let what = format!("blob {digest} to {repository}");
        self.retrying(&what, || {
            let bytes = bytes.clone();
            let digest = digest.clone();
            let what = what.clone();
            async move {
                if self.has_blob(repository, &digest).await? {
                    return Ok(digest);
                }
                // Small enough for the monolithic form: POST, then one PUT with the body.
                let start = self.url(&format!("{repository}/blobs/uploads/"));
                let response = self.send(&what, &|c| c.post(&start).header(reqwest::header::CONTENT_LENGTH, 0)).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(self.unexpected(&what, response).await);
                }
                let location = header_str(response.headers(), LOCATION).ok_or_else(|| self.protocol(&what, "no Location for the upload"))?;
                let location = self.absolute(&location);
                let separator = if location.contains('?') { '&' } else { '?' };
                let finish = format!("{location}{separator}digest={digest}");
                let response = self
                    .send(&what, &|c| c.put(&finish).header(CONTENT_TYPE, "application/octet-stream").body(bytes.clone()))
                    .await?;
                if response.status() != StatusCode::CREATED {
                    return Err(self.unexpected(&what, response).await);
                }
                Ok(digest)
            }
        })
        .await
    }

    /// Pushes a manifest under `reference` (a tag) and returns its digest.
    pub async fn put_manifest(&self, repository: &str, reference: &str, media_type: &str, bytes: Bytes) -> Result<String, RegistryError> {
        let what = format!("manifest {repository}:{reference}");
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let digest = sha256_digest(&bytes);
        self.retrying(&what, || async {
            let body = bytes.clone();
            let response = self.send(&what, &|c| c.put(&url).header(CONTENT_TYPE, media_type).body(body.clone())).await?;
            let status = response.status();
            if status.is_success() {
                if let Some(said) = header_str(response.headers(), CONTENT_DIGEST) {
                    if said != digest {
                        return Err(self.protocol(&what, format!("it stored digest {said}, not {digest}")));
                    }
                }
                return Ok(digest.clone());
            }
            if status.is_client_error() && status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
                let diagnostic = diagnostic(response).await;
                return Err(RegistryError::ManifestRejected {
                    registry: self.registry.clone(),
                    reference: format!("{repository}:{reference}"),
                    diagnostic,
                });
            }
            Err(self.unexpected(&what, response).await)
        })
        .await
    }
}

fn header_str(headers: &HeaderMap<HeaderValue>, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            deadline: Duration::from_secs(60),
        };
        let longest = |attempt| (0..300).map(|_| policy.backoff(attempt)).max().unwrap();
        let (first, third, late) = (longest(0), longest(2), longest(12));
        assert!(first <= Duration::from_millis(100), "{first:?}");
        assert!(third > Duration::from_millis(200) && third <= Duration::from_millis(400), "grows: {third:?}");
        assert!(late <= Duration::from_secs(2) && late > Duration::from_secs(1), "capped: {late:?}");
        let shortest = (0..300).map(|_| policy.backoff(12)).min().unwrap();
        assert!(shortest < Duration::from_millis(1500), "jittered, not fixed: {shortest:?}");
    }
}
