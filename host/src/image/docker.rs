//! The Docker Engine builder (bollard): sends the build context (the Dockerfile and the
//! files it copies) to an engine's `/build`, streams what the engine prints as
//! progress, pushes through the engine, and reads the pushed digest back from the
//! registry. For Dockerfiles the oci builder cannot execute (RUN, multi-stage).

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::Value;

use super::layer::{Layer, LayerFile};
use super::{count_bytes, notify_retries, BuildError, BuildEvent, BuildJob, Builder, BuiltImage, Progress};
use crate::registry::RegistryClient;

pub struct DockerBuilder {
    host: String,
    engine: Docker,
    client: RegistryClient,
    credentials: Option<DockerCredentials>,
    platform: String,
}

impl DockerBuilder {
    /// `host` is `unix:///path/docker.sock` or `http://host:port`. Connecting is lazy:
    /// an engine that is down fails the first build, not startup.
    pub fn connect(host: &str, client: RegistryClient, credentials: Option<(String, String)>, platform: &str) -> Result<Self, BuildError> {
        let engine_error = |message: String| BuildError::Engine { host: host.to_owned(), message };
        let engine = if host.starts_with("unix://") {
            Docker::connect_with_unix(host, 3600, bollard::API_DEFAULT_VERSION)
        } else if host.starts_with("http://") || host.starts_with("tcp://") {
            Docker::connect_with_http(host, 3600, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(engine_error("build.docker_host must start with unix:// or http://".into()));
        }
        .map_err(|e| engine_error(e.to_string()))?;
        let credentials = credentials.map(|(username, password)| DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(client.push_registry().to_owned()),
            ..Default::default()
        });
        Ok(Self { host: host.to_owned(), engine, client, credentials, platform: platform.to_owned() })
    }

    fn fail(&self, message: impl Into<String>) -> BuildError {
        BuildError::Engine { host: self.host.clone(), message: message.into() }
    }
}

#[async_trait]
impl Builder for DockerBuilder {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn build(&self, job: &BuildJob, progress: Progress) -> Result<BuiltImage, BuildError> {
        // The engine retries on its own; the push deadline still bounds the whole of it.
        let deadline = self.client.policy().deadline;
        tokio::time::timeout(deadline, self.build_and_push(job, progress)).await.unwrap_or_else(|_| {
            Err(BuildError::Registry(crate::registry::RegistryError::TimedOut { registry: job.target.registry.clone(), after: deadline }))
        })
    }
}

impl DockerBuilder {
    async fn build_and_push(&self, job: &BuildJob, progress: Progress) -> Result<BuiltImage, BuildError> {
        let target = &job.target;
        let tagged = target.tagged();
        let tag = target.tag.clone().unwrap_or_else(|| "latest".into());

        // The context is a tar like any layer: the Dockerfile and the files by name.
        let dir = tempfile::tempdir().map_err(|e| BuildError::Context(e.to_string()))?;
        let dockerfile = dir.path().join("Dockerfile");
        std::fs::write(&dockerfile, &job.dockerfile).map_err(|e| BuildError::Context(e.to_string()))?;
        let mut files = vec![LayerFile {
            path: "Dockerfile".into(),
            source: dockerfile.into(),
            size: job.dockerfile.len() as u64,
            mode: 0o644,
            uid: 0,
            gid: 0,
            sha256: None,
        }];
        for (name, file) in &job.context {
            files.push(LayerFile { path: name.clone(), source: file.source.clone(), size: file.size, mode: 0o644, uid: 0, gid: 0, sha256: file.sha256.clone() });
        }
        let context = Layer::new(files);
        let (stream, outcome) = context.stream();
        let stream = count_bytes(stream, "build context".into(), context.size(), progress.clone());

        progress(BuildEvent::Step { step: "build".into(), detail: format!("building {tagged} with the engine at {}", self.host) });
        let mut options = BuildImageOptionsBuilder::new().dockerfile("Dockerfile").t(&tagged).rm(true).forcerm(true);
        if !self.platform.is_empty() {
            options = options.platform(&self.platform);
        }
        if !job.build_args.is_empty() {
            options = options.buildargs(&job.build_args.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>());
        }
        let credentials = self.credentials.clone().map(|c| HashMap::from([(self.client.push_registry().to_owned(), c)]));
        let mut output = self.engine.build_image(options.build(), credentials, Some(bollard::body_try_stream(stream)));
        while let Some(item) = output.next().await {
            let info = item.map_err(|e| match outcome.lock().expect("outcome lock").clone() {
                Some(Err(message)) => BuildError::Context(message),
                _ => self.fail(e.to_string()),
            })?;
            if let Some(error) = info.error_detail.and_then(|d| d.message).or(info.error) {
                return Err(self.fail(format!("the build failed: {error}")));
            }
            for line in info.stream.iter().chain(info.status.iter()).flat_map(|s| s.lines()) {
                let line = line.trim_end();
                if !line.is_empty() {
                    progress(BuildEvent::Output { line: line.to_owned() });
                }
            }
        }

        progress(BuildEvent::Step { step: "push".into(), detail: format!("pushing {tagged} through the engine") });
        let repository = format!("{}/{}", target.registry, target.repository);
        let mut pushing = self.engine.push_image(&repository, Some(PushImageOptionsBuilder::new().tag(&tag).build()), self.credentials.clone());
        while let Some(item) = pushing.next().await {
            let info = item.map_err(|e| self.fail(format!("the push failed: {e}")))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message).or(info.error) {
                return Err(self.fail(format!("the push failed: {error}")));
            }
            if let Some(status) = info.status {
                progress(BuildEvent::Output { line: status });
            }
        }

        // The engine's own digest report varies between engines; the registry's does not.
        let session = self.client.session(&target.registry, vec![format!("repository:{}:pull", target.repository)], notify_retries(&progress));
        let manifest = session.manifest(&target.repository, &tag).await?;
        let parsed: Value = serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
        let size = parsed["config"]["size"].as_u64().unwrap_or(0)
            + parsed["layers"].as_array().map(|l| l.iter().filter_map(|d| d["size"].as_u64()).sum()).unwrap_or(0);
        Ok(BuiltImage { digest: manifest.digest, tagged, base: None, size })
    }
}
