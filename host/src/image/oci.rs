//! The daemonless builder, as go-containerregistry's `mutate.Append` and Jib do it:
//! fetch only the base image's manifest and config, add one reproducible layer with
//! the copied files, write a new config and manifest, and push the layer, config and
//! manifest. Base layers never travel through this host when the registry can mount
//! them (or already has them).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::dockerfile::{self, Action, Interpreter};
use super::layer::{Layer, LayerFile};
use super::{count_bytes, notify_retries, BuildError, BuildEvent, BuildJob, Builder, BuiltImage, Progress};
use crate::domain::Platform;
use crate::registry::{self, ImageRef, RegistryClient, RegistryError, Session};

/// Every date an image carries, so the same inputs give the same digest.
pub const FIXED_CREATED: &str = "1970-01-01T00:00:01Z";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MAX_CONFIG_BYTES: usize = 16 << 20;
const MAX_REMEMBERED_LAYERS: usize = 4096;

/// Whether a manifest list's `platform` entry is `platform`.
fn platform_matches(wanted: &Platform, platform: &Value) -> bool {
    let field = |name: &str| platform.get(name).and_then(Value::as_str);
    field("os") == Some(&wanted.os)
        && field("architecture") == Some(&wanted.architecture)
        && (wanted.variant.is_none() || field("variant") == wanted.variant.as_deref())
}

pub struct OciBuilder {
    client: RegistryClient,
    platform: Platform,
    /// Layers pushed before, by what they hold: the same WAR at the same path is
    /// mounted from where it went last time instead of being uploaded again.
    pushed_layers: Mutex<HashMap<String, PushedLayer>>,
}

#[derive(Clone)]
struct PushedLayer {
    digest: String,
    registry: String,
    repository: String,
}

impl OciBuilder {
    pub fn new(client: RegistryClient, platform: Platform) -> Self {
        Self { client, platform, pushed_layers: Mutex::new(HashMap::new()) }
    }
}

fn step(progress: &Progress, step: &str, detail: impl Into<String>) {
    progress(BuildEvent::Step { step: step.into(), detail: detail.into() });
}

#[async_trait]
impl Builder for OciBuilder {
    fn name(&self) -> &'static str {
        "oci"
    }

    async fn build(&self, job: &BuildJob, progress: Progress) -> Result<BuiltImage, BuildError> {
        let parsed = dockerfile::parse(&job.dockerfile, &job.build_args)?;
        let base = self.client.resolve(&parsed.base)?;
        let platform = match &parsed.platform {
            Some(text) => Platform::parse(text).ok_or_else(|| BuildError::Base {
                reference: parsed.base.clone(),
                message: format!("FROM --platform={text} is not os/architecture"),
            })?,
            None => self.platform.clone(),
        };
        let target = &job.target;
        let notify = notify_retries(&progress);
        let push_scope = format!("repository:{}:pull,push", target.repository);
        let base_scope = format!("repository:{}:pull", base.repository);
        let same_registry = base.registry == target.registry;
        let target_session = self.client.session(
            &target.registry,
            if same_registry { vec![push_scope, base_scope.clone()] } else { vec![push_scope] },
            notify.clone(),
        );
        let base_session = if same_registry { target_session.clone() } else { self.client.session(&base.registry, vec![base_scope], notify) };

        step(&progress, "base", format!("resolving {base} for {platform}"));
        let (base_manifest, base_digest) = resolve_manifest(&base_session, &base, &platform).await?;
        let base_layers: Vec<Value> = base_manifest.get("layers").and_then(Value::as_array).cloned().unwrap_or_default();
        let config_digest = base_manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| BuildError::Base { reference: base.to_string(), message: "its manifest names no config".into() })?;
        let config_bytes = base_session.blob(&base.repository, config_digest, MAX_CONFIG_BYTES).await?;
        let mut config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| BuildError::Base { reference: base.to_string(), message: format!("its config is not JSON: {e}") })?;
        step(&progress, "base", format!("{base} is {base_digest} ({} layers)", base_layers.len()));

        let (files, history) = apply(&parsed, &mut config, job)?;
        let layer = (!files.is_empty()).then(|| Layer::new(files));

        let ensure_base = async {
            let mut size = 0;
            for descriptor in &base_layers {
                size += descriptor.get("size").and_then(Value::as_u64).unwrap_or(0);
                ensure_base_layer(&target_session, target, &base_session, &base, descriptor, same_registry, &progress).await?;
            }
            Ok::<u64, BuildError>(size)
        };
        let push_layer = async {
            match &layer {
                Some(layer) => self.push_layer(&target_session, target, layer, &progress).await.map(Some),
                None => Ok(None),
            }
        };
        let (base_size, pushed) = tokio::try_join!(ensure_base, push_layer)?;

        let mut layers: Vec<Value> = base_layers.iter().map(oci_layer).collect();
        let mut size = base_size;
        if let (Some(layer), Some(digest)) = (&layer, &pushed) {
            push_array(&mut config, "/rootfs/diff_ids", json!(digest));
            layers.push(json!({ "mediaType": OCI_LAYER_TAR, "digest": digest, "size": layer.size() }));
            size += layer.size();
        }
        for entry in history {
            push_array(&mut config, "/history", entry);
        }
        config["created"] = json!(FIXED_CREATED);

        step(&progress, "config", "pushing the image config");
        let config_bytes = Bytes::from(serde_json::to_vec(&config).expect("JSON values serialize"));
        let config_size = config_bytes.len() as u64;
        let config_digest = target_session.put_small_blob(&target.repository, config_bytes).await?;
        size += config_size;

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": registry::OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size },
            "layers": layers,
            "annotations": {
                "org.opencontainers.image.base.name": base.to_string(),
                "org.opencontainers.image.base.digest": base_digest,
            },
        });
        let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
        step(&progress, "manifest", format!("pushing {}", target.tagged()));
        let manifest_bytes = Bytes::from(serde_json::to_vec(&manifest).expect("JSON values serialize"));
        let digest = target_session.put_manifest(&target.repository, &tag, registry::OCI_MANIFEST, manifest_bytes).await?;
        Ok(BuiltImage { digest, tagged: target.tagged(), base: Some(base.pinned(&base_digest)), size })
    }
}

impl OciBuilder {
    /// Pushes the new layer unless the repository has it, or mounts it from where it
    /// went before. A retry starts over: the registry dropped the half-sent upload.
    async fn push_layer(&self, session: &Session, target: &ImageRef, layer: &Layer, progress: &Progress) -> Result<String, BuildError> {
        let key = layer_key(layer);
        let total = layer.size();
        let result = session
            .retrying("layer", || async {
                let known = key.as_ref().and_then(|k| self.pushed_layers.lock().expect("cache lock").get(k).cloned());
                if let Some(known) = known {
                    if session.has_blob(&target.repository, &known.digest).await? {
                        step(progress, "layer", format!("{} is there already", known.digest));
                        return Ok(known.digest);
                    }
                    if known.registry == target.registry && session.mount_blob(&target.repository, &known.digest, &known.repository).await? {
                        step(progress, "layer", format!("{} mounted from {}", known.digest, known.repository));
                        return Ok(known.digest);
                    }
                }
                step(progress, "layer", format!("uploading {} file(s), {total} bytes", layer.files().len()));
                let (stream, outcome) = layer.stream();
                let stream = count_bytes(stream, "layer".into(), total, progress.clone());
                let read_outcome = || match outcome.lock().expect("outcome lock").clone() {
                    Some(Ok(digest)) => Ok(digest),
                    Some(Err(message)) => Err(RegistryError::Local { what: "the build context".into(), message }),
                    None => Err(RegistryError::Local { what: "the build context".into(), message: "the layer stream ended early".into() }),
                };
                match session.upload_blob(&target.repository, "layer", stream, Some(total), read_outcome).await {
                    // A file that could not be read explains a broken upload better
                    // than the connection error it caused.
                    Err(e) => match outcome.lock().expect("outcome lock").clone() {
                        Some(Err(message)) => Err(RegistryError::Local { what: "the build context".into(), message }),
                        _ => Err(e),
                    },
                    ok => ok,
                }
            })
            .await?;
        if let Some(key) = key {
            let mut pushed = self.pushed_layers.lock().expect("cache lock");
            // Only a hint for mounting: forgetting it all costs one upload.
            if pushed.len() >= MAX_REMEMBERED_LAYERS {
                pushed.clear();
            }
            pushed.insert(
                key,
                PushedLayer { digest: result.clone(), registry: target.registry.clone(), repository: target.repository.clone() },
            );
        }
        Ok(result)
    }
}

/// What a layer holds, when every file's sha256 is known: its paths, modes and owners,
/// and their contents' hashes.
fn layer_key(layer: &Layer) -> Option<String> {
    let mut key = String::new();
    for f in layer.files() {
        key += &format!("{}\0{}\0{}\0{}\0{}\0{}\n", f.path, f.mode, f.uid, f.gid, f.size, f.sha256.as_ref()?);
    }
    Some(registry::sha256_digest(key.as_bytes()))
}

/// The manifest for `platform`, following an index if the base is multi-platform.
async fn resolve_manifest(session: &Session, base: &ImageRef, platform: &Platform) -> Result<(Value, String), BuildError> {
    let base_error = |message: String| BuildError::Base { reference: base.to_string(), message };
    let mut fetched = session.manifest(&base.repository, base.reference()).await.map_err(|e| match e {
        RegistryError::NotFound { .. } => base_error(format!(
            "not found in registry {}; check the catalog's base_image, and that the base was pushed there",
            base.registry
        )),
        other => other.into(),
    })?;
    if fetched.media_type == registry::OCI_INDEX || fetched.media_type == registry::DOCKER_LIST {
        let index: Value = serde_json::from_slice(&fetched.bytes).map_err(|e| base_error(format!("its index is not JSON: {e}")))?;
        let entries = index.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
        let chosen = entries.iter().find(|m| m.get("platform").is_some_and(|p| platform_matches(&platform, p))).ok_or_else(|| {
            let offered: Vec<String> = entries
                .iter()
                .filter_map(|m| m.get("platform"))
                .map(|p| format!("{}/{}", p["os"].as_str().unwrap_or("?"), p["architecture"].as_str().unwrap_or("?")))
                .collect();
            base_error(format!("has no {platform} image (it offers {}); set build.platform to one of those", offered.join(", ")))
        })?;
        let digest = chosen.get("digest").and_then(Value::as_str).ok_or_else(|| base_error("an index entry without digest".into()))?;
        fetched = session.manifest(&base.repository, digest).await?;
    }
    if fetched.media_type != registry::OCI_MANIFEST && fetched.media_type != registry::DOCKER_MANIFEST {
        return Err(base_error(format!("its manifest has media type {:?}, which warship does not build on", fetched.media_type)));
    }
    let manifest: Value = serde_json::from_slice(&fetched.bytes).map_err(|e| base_error(format!("its manifest is not JSON: {e}")))?;
    Ok((manifest, fetched.digest))
}

/// Makes sure the target repository has a base layer: there already, mounted from the
/// base's repository, or (from another registry only) copied through this host.
async fn ensure_base_layer(
    target_session: &Session,
    target: &ImageRef,
    base_session: &Session,
    base: &ImageRef,
    descriptor: &Value,
    same_registry: bool,
    progress: &Progress,
) -> Result<(), BuildError> {
    let Some(digest) = descriptor.get("digest").and_then(Value::as_str) else {
        return Err(BuildError::Base { reference: base.to_string(), message: "a layer without digest".into() });
    };
    if descriptor.get("urls").is_some() {
        return Ok(()); // a foreign layer: pulled from its own URLs, never pushed
    }
    let size = descriptor.get("size").and_then(Value::as_u64).unwrap_or(0);
    let outcome = target_session
        .retrying(&format!("base layer {digest}"), || async {
            if target_session.has_blob(&target.repository, digest).await? {
                return Ok("there already");
            }
            if same_registry && target_session.mount_blob(&target.repository, digest, &base.repository).await? {
                return Ok("mounted");
            }
            let stream = base_session.blob_stream(&base.repository, digest).await?;
            let stream = futures_util::StreamExt::map(stream, |chunk| chunk.map_err(std::io::Error::other));
            let stream = count_bytes(stream, format!("base layer {digest}"), size, progress.clone());
            let digest = digest.to_owned();
            let length = (size > 0).then_some(size);
            target_session.upload_blob(&target.repository, "base layer", stream, length, || Ok(digest)).await?;
            Ok("copied")
        })
        .await?;
    step(progress, "base", format!("layer {digest} {outcome}"));
    Ok(())
}

/// An OCI descriptor for a base layer: Docker media types become their OCI twins (the
/// bytes are the same), so the new manifest is all OCI.
fn oci_layer(descriptor: &Value) -> Value {
    let mut out = descriptor.clone();
    let media_type = descriptor.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    let oci = match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        other => other,
    };
    out["mediaType"] = json!(oci);
    out
}

fn push_array(value: &mut Value, pointer: &str, item: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a key");
    let holder = if parent.is_empty() { Some(&mut *value) } else { value.pointer_mut(parent) };
    let holder = match holder {
        Some(h) => h,
        None => {
            value[parent.trim_start_matches('/')] = json!({});
            value.pointer_mut(parent).expect("just made")
        }
    };
    match holder.get_mut(key).and_then(Value::as_array_mut) {
        Some(array) => array.push(item),
        None => holder[key] = json!([item]),
    }
}

/// Applies every instruction after FROM to the base config; returns the files the new
/// layer holds and the history entries to add.
fn apply(parsed: &dockerfile::Dockerfile, config: &mut Value, job: &BuildJob) -> Result<(Vec<LayerFile>, Vec<Value>), BuildError> {
    if !config.is_object() {
        return Err(BuildError::Context("the base image's config is not a JSON object".into()));
    }
    if !config.get("config").is_some_and(Value::is_object) {
        config["config"] = json!({});
    }
    let base_env: Vec<String> = config
        .pointer("/config/Env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let base_workdir = config.pointer("/config/WorkingDir").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut interpreter = Interpreter::new(parsed, &base_env, &base_workdir, &job.build_args);
    let image = config["config"].as_object_mut().expect("made an object above");
    let mut files = Vec::new();
    let mut history = Vec::new();
    let mut copies = Vec::new();
    let mut cmd_set = false;
    for instruction in &parsed.steps {
        let action = interpreter.action(instruction)?;
        match action {
            Action::Arg => {}
            Action::Env(pairs) => {
                let env = array_of(image, "Env");
                for (key, value) in pairs {
                    let entry = json!(format!("{key}={value}"));
                    let prefix = format!("{key}=");
                    match env.iter_mut().find(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix))) {
                        Some(existing) => *existing = entry,
                        None => env.push(entry),
                    }
                }
            }
            Action::Label(pairs) => {
                let labels = object_of(image, "Labels");
                for (key, value) in pairs {
                    labels.insert(key, json!(value));
                }
            }
            Action::Expose(ports) => {
                let exposed = object_of(image, "ExposedPorts");
                for port in ports {
                    exposed.insert(port, json!({}));
                }
            }
            Action::Volume(paths) => {
                let volumes = object_of(image, "Volumes");
                for path in paths {
                    volumes.insert(path, json!({}));
                }
            }
            Action::User(user) => {
                image.insert("User".into(), json!(user));
            }
            Action::Workdir(dir) => {
                image.insert("WorkingDir".into(), json!(dir));
            }
            Action::StopSignal(signal) => {
                image.insert("StopSignal".into(), json!(signal));
            }
            Action::Cmd(command) => {
                cmd_set = true;
                image.insert("Cmd".into(), json!(command));
            }
            Action::Entrypoint(command) => {
                image.insert("Entrypoint".into(), json!(command));
                // As Docker does: a new entrypoint drops the base's CMD, not this file's.
                if !cmd_set {
                    image.insert("Cmd".into(), Value::Null);
                }
            }
            Action::Copy(copy) => {
                for (source, target) in copy.sources.iter().zip(&copy.targets) {
                    let file = job.context.get(source.trim_start_matches("./")).ok_or_else(|| {
                        let names: Vec<&str> = job.context.keys().map(String::as_str).collect();
                        BuildError::Dockerfile(dockerfile::DockerfileError {
                            line: instruction.line,
                            message: format!("{source:?} is not in the build context, which holds: {}", names.join(", ")),
                        })
                    })?;
                    files.push(LayerFile {
                        path: target.clone(),
                        source: file.source.clone(),
                        size: file.size,
                        mode: copy.mode.unwrap_or(0o644),
                        uid: copy.uid,
                        gid: copy.gid,
                        sha256: file.sha256.clone(),
                    });
                }
                copies.push(instruction.text());
                continue;
            }
        }
        history.push(json!({ "created": FIXED_CREATED, "created_by": instruction.text(), "empty_layer": true }));
    }
    if !copies.is_empty() {
        history.push(json!({
            "created": FIXED_CREATED,
            "created_by": copies.join(" && "),
            "comment": "warship: one layer for every COPY",
        }));
    }
    Ok((files, history))
}

fn array_of<'a>(object: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = object.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("made an array")
}

fn object_of<'a>(object: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = object.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("made an object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::image::ContextFile;

    fn job(dockerfile: &str) -> BuildJob {
        let mut context = BTreeMap::new();
        context.insert("app.war".into(), ContextFile { source: "/data/app.war".into(), size: 10, sha256: Some("ab".repeat(32)) });
        BuildJob {
            dockerfile: dockerfile.into(),
            context,
            target: ImageRef::parse("alice/shop:1.0", "r:5000").unwrap(),
            build_args: BTreeMap::new(),
        }
    }

    fn base_config() -> Value {
        json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Env": ["PATH=/usr/bin", "JAVA_OPTS=-Xmx1g"], "Cmd": ["catalina.sh", "run"], "WorkingDir": "/usr/local/tomcat",
                        "Labels": { "base": "yes" }, "User": "tomcat" },
            "rootfs": { "type": "layers", "diff_ids": ["sha256:aa"] },
            "history": [{ "created_by": "base" }]
        })
    }

    #[test]
    fn instructions_edit_the_base_config() {
        let dockerfile = "FROM base\nENV JAVA_OPTS=\"-Xmx512m\" EXTRA=$PATH:/x\nLABEL app=shop\nEXPOSE 8080\n\
                          COPY app.war webapps/ROOT.war\nUSER 1000\nENTRYPOINT [\"/entry\"]\n";
        let job = job(dockerfile);
        let parsed = dockerfile::parse(dockerfile, &BTreeMap::new()).unwrap();
        let mut config = base_config();
        let (files, history) = apply(&parsed, &mut config, &job).unwrap();
        let c = &config["config"];
        assert_eq!(c["Env"], json!(["PATH=/usr/bin", "JAVA_OPTS=-Xmx512m", "EXTRA=/usr/bin:/x"]));
        assert_eq!(c["Labels"], json!({ "base": "yes", "app": "shop" }));
        assert_eq!(c["ExposedPorts"], json!({ "8080/tcp": {} }));
        assert_eq!(c["User"], json!("1000"));
        assert_eq!(c["Entrypoint"], json!(["/entry"]));
        assert_eq!(c["Cmd"], Value::Null, "a new ENTRYPOINT drops the base's CMD");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "/usr/local/tomcat/webapps/ROOT.war", "relative to the base's WORKDIR");
        assert_eq!(files[0].sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(history.len(), 6);
        assert!(history[..5].iter().all(|h| h["empty_layer"] == json!(true)));
        assert_eq!(history[5]["created_by"], json!("COPY app.war webapps/ROOT.war"));
    }

    #[test]
    fn copying_what_the_context_lacks_names_the_line() {
        let dockerfile = "FROM base\n\nCOPY other.war /x.war\n";
        let parsed = dockerfile::parse(dockerfile, &BTreeMap::new()).unwrap();
        let err = apply(&parsed, &mut base_config(), &job(dockerfile)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3") && text.contains("app.war"), "{text}");
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert!(platform_matches(&p, &json!({ "os": "linux", "architecture": "amd64" })));
        assert!(!platform_matches(&p, &json!({ "os": "linux", "architecture": "arm64", "variant": "v8" })));
        let v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(platform_matches(&v8, &json!({ "os": "linux", "architecture": "arm64", "variant": "v8" })));
        assert!(Platform::parse("linux").is_none());
        assert_eq!(v8.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn docker_layer_types_become_oci() {
        let d = json!({ "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "sha256:x", "size": 3 });
        assert_eq!(oci_layer(&d)["mediaType"], json!("application/vnd.oci.image.layer.v1.tar+gzip"));
        assert_eq!(oci_layer(&d)["size"], json!(3));
    }

    #[test]
    fn history_and_diff_ids_append() {
        let mut v = base_config();
        push_array(&mut v, "/rootfs/diff_ids", json!("sha256:bb"));
        assert_eq!(v["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
        let mut empty = json!({});
        push_array(&mut empty, "/history", json!(1));
        assert_eq!(empty["history"], json!([1]));
        push_array(&mut empty, "/rootfs/diff_ids", json!("d"));
        assert_eq!(empty["rootfs"]["diff_ids"], json!(["d"]));
    }
}
