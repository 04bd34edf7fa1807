//! WAR → image. A [`Builder`] turns a rendered Dockerfile and its build context into
//! an image pushed to the registry, and returns its digest. Two builders: [`OciBuilder`]
//! (the default, no daemon: base manifest and config plus one new layer) and
//! [`DockerBuilder`] (a Docker Engine API, for Dockerfiles that RUN things). Progress
//! goes to a [`Progress`] callback, so the API can stream it and tests can read it.

mod docker;
pub mod dockerfile;
pub mod layer;
mod oci;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;

pub use docker::DockerBuilder;
pub use dockerfile::DockerfileError;
pub use oci::OciBuilder;

use crate::registry::{ImageRef, ReferenceError, RegistryError};

/// Something worth telling a person watching a build.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuildEvent {
    /// A step began: `base`, `layer`, `config`, `manifest`, or the engine's `build`/`push`.
    Step { step: String, detail: String },
    /// Bytes of a blob sent so far.
    Bytes { what: String, done: u64, total: u64 },
    /// A transient registry failure; the operation runs again after `delay_ms`.
    Retry { what: String, attempt: u32, delay_ms: u64, error: String },
    /// A line the Docker Engine printed.
    Output { line: String },
}

pub type Progress = Arc<dyn Fn(BuildEvent) + Send + Sync>;

/// Build bytes as watchers are told them: a few times a second per blob, and its end.
#[derive(Default)]
pub struct ProgressThrottle {
    last: std::collections::HashMap<String, std::time::Instant>,
}

impl ProgressThrottle {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

    pub fn lets_through(&mut self, event: &BuildEvent) -> bool {
        let BuildEvent::Bytes { what, done, total } = event else { return true };
        let now = std::time::Instant::now();
        let due = self.last.get(what).is_none_or(|at| now - *at >= Self::EVERY);
        if due || done >= total {
            self.last.insert(what.clone(), now);
            return true;
        }
        false
    }
}


/// Bytes a build reads from somewhere other than a local file (a WAR in object
/// storage), opened afresh by each read of the layer.
pub trait OpenBlob: Send + Sync {
    /// A blocking reader, opened on the build's own thread.
    fn open(&self) -> std::io::Result<Box<dyn std::io::Read + Send>>;
    /// Where the bytes are, for messages.
    fn describe(&self) -> String;
}

/// Where a file of the build context is read from.
#[derive(Clone)]
pub enum Source {
    File(PathBuf),
    Blob(std::sync::Arc<dyn OpenBlob>),
}

impl Source {
    pub fn open(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        match self {
            Source::File(path) => Ok(Box::new(std::fs::File::open(path)?)),
            Source::Blob(blob) => blob.open(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Blob(blob) => blob.describe(),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.describe() == other.describe()
    }
}

impl Eq for Source {}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Self {
        Source::File(path)
    }
}

impl From<&str> for Source {
    fn from(path: &str) -> Self {
        Source::File(path.into())
    }
}

/// A file the Dockerfile may COPY, by its name in the build context.
#[derive(Debug, Clone)]
pub struct ContextFile {
    pub source: Source,
    pub size: u64,
    /// Known sha256 (hex) of the file; a builder that reads other bytes fails.
    pub sha256: Option<String>,
}

impl ContextFile {
    pub fn from_path(path: PathBuf) -> std::io::Result<Self> {
        let size = std::fs::metadata(&path)?.len();
        Ok(Self { source: Source::File(path), size, sha256: None })
    }
}

#[derive(Debug, Clone)]
pub struct BuildJob {
    pub dockerfile: String,
    pub context: BTreeMap<String, ContextFile>,
    /// Where the image goes: a repository and tag in the push registry.
    pub target: ImageRef,
    pub build_args: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BuiltImage {
    /// Digest of the pushed manifest.
    pub digest: String,
    /// `registry/repository:tag` as pushed.
    pub tagged: String,
    /// The base image and the digest it resolved to, when the builder knows them.
    pub base: Option<String>,
    /// Bytes of config and layers, as the registry stores them.
    pub size: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("base image {reference}: {message}")]
    Base { reference: String, message: String },
    #[error("build context: {0}")]
    Context(String),
    #[error("docker engine at {host}: {message}")]
    Engine { host: String, message: String },
    #[error("the build was interrupted: {0}")]
    Interrupted(String),
}

impl BuildError {
    /// A stable code for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::Dockerfile(_) => "build.dockerfile",
            BuildError::Reference(_) => "build.reference",
            BuildError::Registry(e) => e.code(),
            BuildError::Base { .. } => "build.base",
            BuildError::Context(_) => "build.context",
            BuildError::Engine { .. } => "build.engine",
            BuildError::Interrupted(_) => "build.interrupted",
        }
    }
}

#[async_trait]
pub trait Builder: Send + Sync {
    fn name(&self) -> &'static str;
    async fn build(&self, job: &BuildJob, progress: Progress) -> Result<BuiltImage, BuildError>;
}

/// Tells a build's watchers about registry retries.
pub(crate) fn notify_retries(progress: &Progress) -> crate::registry::Notify {
    let progress = progress.clone();
    Arc::new(move |crate::registry::Notice::Retrying { what, attempt, delay, error }| {
        progress(BuildEvent::Retry { what, attempt, delay_ms: delay.as_millis() as u64, error })
    })
}

/// Emits `Bytes` events as a stream is read: every few MiB, and at the end.
pub(crate) fn count_bytes<S>(stream: S, what: String, total: u64, progress: Progress) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>,
{
    use futures_util::StreamExt;
    const EVERY: u64 = 8 << 20;
    let mut done = 0u64;
    let mut told = 0u64;
    stream.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            done += chunk.len() as u64;
            if done - told >= EVERY || done == total {
                told = done;
                progress(BuildEvent::Bytes { what: what.clone(), done, total });
            }
        }
    })
}
