//! WAR bytes in an S3-compatible bucket, content-addressed like the local blobs:
//! `<prefix>sha256/ab/abcdef…`. An upload streams to `<prefix>tmp/<uuid>` by multipart
//! upload while it arrives (and is hashed); once complete and inspected it is copied
//! under its address by the server (one atomic CopyObject) and the temp object removed,
//! so nothing is visible under an address until it is whole and sound.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, MultipartUpload, ObjectStore, PutPayload};
use tokio::task::JoinSet;

use crate::config::StorageConfig;
use crate::image::OpenBlob;

/// Parts of 5 MiB, S3's smallest but for the last: an upload holds at most
/// `PARTS_IN_FLIGHT + 1` of them in memory, whatever its size.
const PART_BYTES: usize = 5 << 20;
const PARTS_IN_FLIGHT: usize = 2;
/// Temp objects older than this at startup belong to uploads that cannot still be running.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("{0}")]
    Settings(String),
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
}

impl From<ObjectsError> for std::io::Error {
    fn from(e: ObjectsError) -> Self {
        // Kept whole, so the edge can tell the bucket's failure from this host's.
        std::io::Error::other(e)
    }
}

#[derive(Clone)]
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl ObjectBlobs {
    pub fn connect(config: &StorageConfig) -> Result<Self, ObjectsError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.s3_bucket)
            .with_region(&config.s3_region)
            .with_virtual_hosted_style_request(config.s3_virtual_hosted)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    // A part is 5 MiB: a minute is slow enough for any link that can hold a WAR.
                    .with_timeout(Duration::from_secs(60)),
            );
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &config.s3_access_key_id {
            let secret = match (&config.s3_secret_access_key, &config.s3_secret_access_key_file) {
                (Some(secret), _) => secret.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| ObjectsError::Settings(format!("storage.s3_secret_access_key_file {}: {e}", file.display())))?
                    .trim()
                    .to_owned(),
                (None, None) => return Err(ObjectsError::Settings("storage.s3_access_key_id has no secret".into())),
            };
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|e| ObjectsError::Settings(format!("storage.s3_*: {e}")))?;
        Ok(Self { store: Arc::new(store), prefix: config.s3_prefix.clone() })
    }

    fn address(&self, sha256: &str) -> ObjectPath {
        ObjectPath::from(format!("{}sha256/{}/{sha256}", self.prefix, &sha256[..2]))
    }

    /// Checks the bucket answers (and the keys are taken), and clears temp objects of
    /// uploads that died with their host long ago. Other hosts' uploads in flight are
    /// younger than a day and left alone.
    pub async fn open(&self) -> Result<(), ObjectsError> {
        let temps = ObjectPath::from(format!("{}tmp", self.prefix));
        let stale: Vec<ObjectPath> = self
            .store
            .list(Some(&temps))
            .try_filter(|meta| {
                let age = time::OffsetDateTime::now_utc().unix_timestamp() - meta.last_modified.timestamp();
                futures_util::future::ready(age > STALE_TEMP.as_secs() as i64)
            })
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for path in stale {
            self.store.delete(&path).await?;
        }
        Ok(())
    }

    /// Starts an upload's temp object.
    pub async fn begin(&self) -> Result<Incoming, ObjectsError> {
        let path = ObjectPath::from(format!("{}tmp/{}", self.prefix, uuid::Uuid::new_v4()));
        let upload = self.store.put_multipart(&path).await?;
        Ok(Incoming { blobs: self.clone(), path, upload: Some(upload), part: Vec::new(), part_bytes: 0, sending: JoinSet::new() })
    }

    /// Whether the blob is there whole.
    pub async fn holds(&self, sha256: &str, size: u64) -> Result<bool, ObjectsError> {
        match self.store.head(&self.address(sha256)).await {
            Ok(meta) => Ok(meta.size == size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts a finished temp object under its address (the server copies; nothing
    /// passes through this host) and removes the temp object.
    pub async fn commit(&self, temp: Uploaded, sha256: &str) -> Result<(), ObjectsError> {
        self.store.copy(&temp.path, &self.address(sha256)).await?;
        temp.discard().await;
        Ok(())
    }

    pub async fn remove(&self, sha256: &str) -> Result<(), ObjectsError> {
        match self.store.delete(&self.address(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob as a build reads it: streamed, never held whole.
    pub fn source(&self, sha256: &str) -> Arc<dyn OpenBlob> {
        Arc::new(ObjectSource { store: self.store.clone(), path: self.address(sha256) })
    }
}

/// An upload streaming into its temp object, a part at a time. It holds the upload
/// itself (not object_store's `WriteMultipart`, which neither aborts on drop nor when a
/// part fails), so whatever ends it unfinished aborts it and no part is kept.
pub struct Incoming {
    blobs: ObjectBlobs,
    path: ObjectPath,
    upload: Option<Box<dyn MultipartUpload>>,
    /// The part being filled, and its size.
    part: Vec<Bytes>,
    part_bytes: usize,
    sending: JoinSet<object_store::Result<()>>,
}

impl Incoming {
    /// Queues `chunk`; a full part is sent once fewer than `PARTS_IN_FLIGHT` are.
    pub async fn write(&mut self, chunk: &Bytes) -> Result<(), ObjectsError> {
        self.part.push(chunk.clone());
        self.part_bytes += chunk.len();
        if self.part_bytes >= PART_BYTES {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), ObjectsError> {
        while self.sending.len() >= PARTS_IN_FLIGHT {
            self.sending.join_next().await.expect("a part is in flight").map_err(|e| ObjectsError::Settings(e.to_string()))??;
        }
        let payload: PutPayload = std::mem::take(&mut self.part).into_iter().collect();
        self.part_bytes = 0;
        let upload = self.upload.as_mut().expect("parts are sent only before the end");
        self.sending.spawn(upload.put_part(payload));
        Ok(())
    }

    /// Sends the last part, waits for every part, and completes the object. On any
    /// failure the upload is aborted (by drop).
    pub async fn finish(mut self) -> Result<Uploaded, ObjectsError> {
        if self.part_bytes > 0 {
            self.send_part().await?;
        }
        while let Some(sent) = self.sending.join_next().await {
            sent.map_err(|e| ObjectsError::Settings(e.to_string()))??;
        }
        self.upload.as_mut().expect("completed once").complete().await?;
        self.upload = None;
        Ok(Uploaded { blobs: self.blobs.clone(), path: self.path.clone(), kept: false, runtime: tokio::runtime::Handle::current() })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.sending.abort_all();
        if let Some(mut upload) = self.upload.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(error = %e, "aborting an unfinished WAR upload in object storage");
                    }
                });
            }
        }
    }
}

/// A complete temp object, not yet under its address. Dropped uncommitted, it is deleted.
pub struct Uploaded {
    blobs: ObjectBlobs,
    path: ObjectPath,
    kept: bool,
    /// The runtime it was uploaded on: it may be dropped on the uploads' own threads,
    /// whose runtime has no timers for the client's retries.
    runtime: tokio::runtime::Handle,
}

impl Uploaded {
    pub async fn discard(mut self) {
        self.kept = true;
        if let Err(e) = self.blobs.store.delete(&self.path).await {
            tracing::warn!(error = %e, path = %self.path, "removing an upload's temp object");
        }
    }
}

impl Drop for Uploaded {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (store, path) = (self.blobs.store.clone(), self.path.clone());
        self.runtime.spawn(async move { store.delete(&path).await });
    }
}

struct ObjectSource {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

impl OpenBlob for ObjectSource {
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let got = runtime.block_on(self.store.get(&self.path)).map_err(ObjectsError::from)?;
        Ok(Box::new(StreamReader { runtime, stream: got.into_stream(), pending: Bytes::new() }))
    }

    fn describe(&self) -> String {
        format!("object {}", self.path)
    }
}

/// A blocking `Read` over an object's byte stream, for the build's tar thread.
struct StreamReader {
    runtime: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    pending: Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(bytes)) => self.pending = bytes,
                Some(Err(e)) => return Err(ObjectsError::from(e).into()),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}
