//! WAR uploads: streamed to a temp file with sha256 computed on the way, capped,
//! inspected, then committed to content-addressed storage (local disk, or an S3 bucket
//! that several hosts share) with an index record per user. The same bytes uploaded
//! twice (by anyone) are stored once.

mod blobs;
pub mod inspect;
mod objects;
mod pool;
mod refs;
mod servlet_api;
mod slots;

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use blobs::LocalBlobs;
pub use objects::{ObjectBlobs, ObjectsError};
pub use inspect::{EvidenceSource, InspectError, ServletApi};
pub use slots::Busy;

use crate::config::UploadConfig;
use crate::image::Source;
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;
use crate::domain::{dns_label_problem, Violation};

/// What warship knows about an uploaded WAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WarRecord {
    pub app: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub entries: usize,
    pub uncompressed_bytes: u64,
    pub has_web_xml: bool,
    pub servlet_api: ServletApi,
    pub servlet_api_source: EvidenceSource,
    /// What decided the servlet API, in words (what Tomcat loads, and what was set aside).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub servlet_api_evidence: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum WarError {
    #[error("invalid WAR name")]
    InvalidName(Vec<Violation>),
    #[error("the upload is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
    #[error("the upload is empty")]
    Empty,
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("too many uploads at once")]
    Busy(Busy),
    #[error("no bytes arrived for {secs} s")]
    Idle { secs: u64 },
    #[error(transparent)]
    Rejected(#[from] InspectError),
    #[error("WAR {app}/{file} not found")]
    NotFound { app: String, file: String },
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes chunks as they come. When the upload must be durable, starts the kernel's
/// writeback every few MiB so the final `sync_data` has less left to flush.
fn write_chunks(mut file: std::fs::File, mut queued: tokio::sync::mpsc::Receiver<Bytes>, durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    const WRITEBACK_EVERY: u64 = 8 << 20;
    let (mut written, mut flushed) = (0u64, 0u64);
    while let Some(chunk) = queued.blocking_recv() {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
        if durable && written - flushed >= WRITEBACK_EVERY {
            start_writeback(&file, flushed, written - flushed);
            flushed = written;
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // Only a hint: a failure here shows up in the final sync_data.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// A complete upload sitting in a temp file (and, with object storage, in a temp
/// object), not yet inspected or committed.
pub struct Received {
    file: NamedTempFile,
    uploaded: Option<objects::Uploaded>,
    pub size: u64,
    pub sha256: String,
}

/// App names are DNS labels (they end up in image names); file names are plain
/// `*.war` names, never paths.
pub fn check_names(app: &str, file: &str) -> Result<(), WarError> {
    let mut violations = Vec::new();
    if let Some(problem) = dns_label_problem(app, 40) {
        violations.push(Violation::new("app", "war.app.invalid", format!("app name {app:?} {problem}")));
    }
    let file_ok = file.len() <= 128
        && file.ends_with(".war")
        && file.len() > 4
        // A leading '-' would read as a flag in the Dockerfile's COPY.
        && !file.starts_with(['.', '-'])
        && !file.contains("..")
        && file.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !file_ok {
        violations.push(Violation::new(
            "file",
            "war.file.invalid",
            format!("file name {file:?} must end in .war and hold only letters, digits, '.', '_' and '-', not start with '.' or '-' (no '/' or '..')"),
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(WarError::InvalidName(violations))
    }
}

pub struct Wars {
    store: DynStore,
    /// The blobs on local disk, and the temp files every upload is inspected from.
    blobs: std::sync::Arc<LocalBlobs>,
    /// When set, blobs live in this bucket instead (`[storage] backend = "s3"`).
    objects: Option<ObjectBlobs>,
    limits: UploadConfig,
    /// Inspections at once: one per core. Each is CPU-bound and holds up to a few
    /// tens of MiB; more at once would only queue on the cores and add up in memory.
    inspections: tokio::sync::Semaphore,
    uploads: slots::Slots,
    /// The threads uploads write, inspect and commit on, apart from everyone else's.
    pool: pool::UploadPool,
}

fn index_key(user: &UserName, app: &str, file: &str) -> String {
    format!("u/{user}/wars/{app}/{file}")
}

impl Wars {
    pub fn new(store: DynStore, dir: PathBuf, limits: UploadConfig) -> std::io::Result<Self> {
        let inspections = tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let uploads = slots::Slots::new(limits.max_concurrent, limits.max_concurrent_per_user);
        // A writer per admitted upload, the inspections, and a few syncs and commits.
        let pool =
            pool::UploadPool::new(limits.max_concurrent + inspections.available_permits() + 4)?;
        Ok(Self {
            pool,
            store,
            blobs: std::sync::Arc::new(LocalBlobs::open(&dir)?),
            objects: None,
            limits,
            inspections,
            uploads,
        })
    }

    pub fn max_bytes(&self) -> u64 {
        self.limits.max_bytes
    }

    /// Keeps blobs in `objects` rather than on local disk.
    pub fn in_objects(mut self, objects: ObjectBlobs) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Where a build reads a blob from.
    pub fn source(&self, sha256: &str) -> Source {
        match &self.objects {
            Some(objects) => Source::Blob(objects.source(sha256)),
            None => Source::File(self.blobs.path(sha256)),
        }
    }

    /// Streams `user`'s upload `body` to a temp file, hashing as it goes while a
    /// blocking thread writes, so hashing and disk writes overlap. Refused at once past
    /// the host's or the user's cap of uploads at once; dropped when the client sends
    /// nothing for the idle timeout. Dropping the returned future (a client that hung
    /// up) deletes the temp file.
    pub async fn receive<S, E>(&self, user: &UserName, body: S) -> Result<Received, WarError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let _slot = self.uploads.take(user).map_err(WarError::Busy)?;
        let idle = std::time::Duration::from_secs(self.limits.idle_timeout_secs);
        let temp = self.blobs.temp_file()?;
        let mut remote = match &self.objects {
            Some(objects) => Some(objects.begin().await.map_err(std::io::Error::from)?),
            None => None,
        };
        // Bounded: at most this many chunks wait for the disk, which bounds memory.
        let (chunks, queued) = tokio::sync::mpsc::channel::<Bytes>(32);
        let file = temp.as_file().try_clone()?;
        let durable = self.limits.fsync;
        let writer = self.pool.run(move || write_chunks(file, queued, durable));

        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size: u64 = 0;
        let started = std::time::Instant::now();
        let streamed = async {
            let mut body = std::pin::pin!(body);
            loop {
                let Ok(next) = tokio::time::timeout(idle, body.next()).await else {
                    return Err(WarError::Idle { secs: idle.as_secs() });
                };
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(|e| WarError::Interrupted(e.to_string()))?;
                size += chunk.len() as u64;
                if size > self.limits.max_bytes {
                    return Err(WarError::TooLarge { max: self.limits.max_bytes });
                }
                metrics::counter!("warship_upload_bytes_total").increment(chunk.len() as u64);
                hasher.update(&chunk);
                if let Some(remote) = remote.as_mut() {
                    remote.write(&chunk).await.map_err(std::io::Error::from)?;
                }
                if chunks.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(())
        }
        .await;
        drop(chunks);
        let written = writer.await.map_err(std::io::Error::other)?;
        streamed?;
        written?;
        if size == 0 {
            return Err(WarError::Empty);
        }
        let uploaded = match remote {
            Some(remote) => Some(remote.finish().await.map_err(std::io::Error::from)?),
            None => None,
        };
        let streamed_in = started.elapsed();
        if durable {
            let file = temp.as_file().try_clone()?;
            self.pool
                .run(move || file.sync_data())
                .await
                .map_err(std::io::Error::other)??;
        }
        tracing::debug!(size, ?streamed_in, synced_in = ?(started.elapsed() - streamed_in), "upload received");
        Ok(Received { file: temp, uploaded, size, sha256: hex::encode(hasher.finish()) })
    }

    /// Inspects a received upload and, if it is a sound WAR, records it for `user`.
    /// Returns the record and whether it replaced an earlier upload of that name.
    pub async fn keep(&self, user: &UserName, app: &str, file: &str, received: Received) -> Result<(WarRecord, bool), WarError> {
        check_names(app, file)?;
        let limits = self.limits.clone();
        let _inspecting = self.inspections.acquire().await.expect("the inspection semaphore is never closed");
        let started = std::time::Instant::now();
        let (inspection, received) = self
            .pool
            .run(move || {
                let reader = std::io::BufReader::new(received.file.reopen()?);
                Ok::<_, WarError>((inspect::inspect(reader, &limits)?, received))
            })
            .await
            .map_err(|e| WarError::Io(std::io::Error::other(e)))??;

        let record = WarRecord {
            app: app.into(),
            file: file.into(),
            size: received.size,
            sha256: received.sha256.clone(),
            entries: inspection.entries,
            uncompressed_bytes: inspection.uncompressed_bytes,
            has_web_xml: inspection.has_web_xml,
            servlet_api: inspection.servlet_api,
            servlet_api_source: inspection.servlet_api_source,
            servlet_api_evidence: inspection.servlet_api_evidence,
            uploaded_at: OffsetDateTime::now_utc(),
        };

        tracing::debug!(inspected_in = ?started.elapsed(), "upload inspected");
        refs::add(&self.store, &record.sha256).await?;
        if let Err(e) = self.commit(received).await {
            self.drop_ref(&record.sha256).await?;
            return Err(e.into());
        }

        let key = index_key(user, app, file);
        let previous: Option<(WarRecord, u64)> = store::get_json(&*self.store, &key).await?;
        let when = previous.as_ref().map_or(Precondition::Absent, |(_, rev)| Precondition::Revision(*rev));
        if let Err(e) = store::put_json(&*self.store, &key, &record, when).await {
            self.drop_ref(&record.sha256).await?;
            return Err(e.into());
        }
        if let Some((old, _)) = &previous {
            self.drop_ref(&old.sha256).await?;
        }
        Ok((record, previous.is_some()))
    }

    pub async fn list(&self, user: &UserName) -> Result<Vec<WarRecord>, WarError> {
        let records: Vec<(WarRecord, u64)> = store::list_json(&*self.store, &format!("u/{user}/wars/")).await?;
        Ok(records.into_iter().map(|(r, _)| r).collect())
    }

    pub async fn get(&self, user: &UserName, app: &str, file: &str) -> Result<WarRecord, WarError> {
        let found: Option<(WarRecord, u64)> = store::get_json(&*self.store, &index_key(user, app, file)).await?;
        found
            .map(|(r, _)| r)
            .ok_or_else(|| WarError::NotFound { app: app.into(), file: file.into() })
    }

    pub async fn delete(&self, user: &UserName, app: &str, file: &str) -> Result<(), WarError> {
        let key = index_key(user, app, file);
        let found: Option<(WarRecord, u64)> = store::get_json(&*self.store, &key).await?;
        let Some((record, rev)) = found else {
            return Err(WarError::NotFound { app: app.into(), file: file.into() });
        };
        self.store.delete(&key, Precondition::Revision(rev)).await?;
        self.drop_ref(&record.sha256).await
    }

    /// Puts a received upload under its address, unless it is there whole already (a
    /// damaged local blob is replaced by these bytes). Called holding a reference, so
    /// no host removes the address meanwhile.
    async fn commit(&self, received: Received) -> std::io::Result<()> {
        let Received { file, uploaded, size, sha256 } = received;
        if let (Some(objects), Some(uploaded)) = (&self.objects, uploaded) {
            if objects.holds(&sha256, size).await? {
                uploaded.discard().await;
                return Ok(());
            }
            return Ok(objects.commit(uploaded, &sha256).await?);
        }
        if self.blobs.holds(&sha256, size) {
            return Ok(());
        }
        let (blobs, durable) = (self.blobs.clone(), self.limits.fsync);
        self.pool.run(move || blobs.commit(file, &sha256, durable).map(drop)).await.map_err(std::io::Error::other)?
    }

    /// Drops one reference; the last one removes the bytes.
    async fn drop_ref(&self, sha256: &str) -> Result<(), WarError> {
        let (objects, blobs, sha) = (self.objects.clone(), self.blobs.clone(), sha256.to_owned());
        let remove = move || async move {
            match objects {
                Some(objects) => objects.remove(&sha).await.map_err(std::io::Error::from),
                None => blobs.remove(&sha),
            }
        };
        Ok(refs::drop_one(&self.store, sha256, remove).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::check_names;

    #[test]
    fn file_names_are_plain_war_names_a_dockerfile_cannot_misread() {
        for good in ["shop.war", "shop-1.0.war", "a_b.war", "ROOT.war"] {
            assert!(check_names("shop", good).is_ok(), "{good}");
        }
        // Found by the template campaign: "--.war" became `COPY --.war …`, a flag.
        for bad in [
            ".war",
            "--.war",
            "-x.war",
            ".hidden.war",
            "a/b.war",
            "a..b.war",
            "shop.jar",
            "sh op.war",
            "é.war",
        ] {
            assert!(check_names("shop", bad).is_err(), "{bad}");
        }
    }
}
