//! The one layer warship adds to a base image: the files a Dockerfile copies, as a
//! reproducible, uncompressed tar. Entries are sorted by path, owned by uid/gid 0
//! unless `--chown` said otherwise, and dated to a fixed instant, so the same files
//! always give the same digest. WARs are zip files already: gzip would spend seconds
//! on a 200 MB WAR to save a percent, so the layer is a plain tar and its digest is
//! also its diff id.
//!
//! The tar is produced by a blocking thread that reads the files, hashes the stream
//! (and each file against the sha256 it should have) and hands chunks to the upload,
//! so reading, hashing and sending overlap and memory stays a few chunks whatever the
//! size of the WAR.

use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use ring::digest::{Context, SHA256};

use super::Source;

/// Every entry's modification time: one second after the epoch, as Jib does, because
/// some tools treat a zero mtime as "unset".
pub const FIXED_MTIME: u64 = 1;
const CHUNK: usize = 1 << 20;
const BLOCK: u64 = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    /// Path inside the image, absolute (`/usr/local/tomcat/webapps/ROOT.war`).
    pub path: String,
    pub source: Source,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// The file's known sha256 (hex); reading other bytes fails the layer.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Layer {
    files: Vec<LayerFile>,
}

/// What streaming the layer found: its digest, or why it could not be read.
pub type LayerOutcome = Arc<Mutex<Option<Result<String, String>>>>;

impl Layer {
    /// A later file at the same path replaces an earlier one, as a later COPY would.
    pub fn new(files: Vec<LayerFile>) -> Self {
        let mut by_path = std::collections::BTreeMap::new();
        for file in files {
            by_path.insert(file.path.clone(), file);
        }
        Self { files: by_path.into_values().collect() }
    }

    pub fn files(&self) -> &[LayerFile] {
        &self.files
    }

    /// The tar's length, known before reading a byte: headers, contents padded to
    /// 512-byte blocks, and the two zero blocks that end a tar.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| BLOCK + f.size.div_ceil(BLOCK) * BLOCK).sum::<u64>() + 2 * BLOCK
    }

    /// A fresh stream of the tar (every retry reads the files again). When it ends,
    /// `outcome` holds the digest (`sha256:…`) or what went wrong.
    pub fn stream(&self) -> (impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, LayerOutcome) {
        let outcome: LayerOutcome = Arc::new(Mutex::new(None));
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let files = self.files.clone();
        let written = outcome.clone();
        tokio::task::spawn_blocking(move || match write_tar(&files, &sender) {
            Ok(digest) => *written.lock().expect("outcome lock") = Some(Ok(digest)),
            // The upload went away: its own error says why; there is no outcome.
            Err(TarError::HungUp) => {}
            Err(TarError::Failed(message)) => {
                *written.lock().expect("outcome lock") = Some(Err(message.clone()));
                let _ = sender.blocking_send(Err(std::io::Error::other(message)));
            }
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        (stream, outcome)
    }
}

fn header(file: &LayerFile) -> Result<[u8; 512], String> {
    let mut header = tar::Header::new_ustar();
    let name = file.path.trim_start_matches('/');
    header.set_path(name).map_err(|e| format!("{} cannot be a tar entry: {e}", file.path))?;
    header.set_size(file.size);
    header.set_mode(file.mode);
    header.set_uid(file.uid);
    header.set_gid(file.gid);
    header.set_mtime(FIXED_MTIME);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(*header.as_bytes())
}

enum TarError {
    /// The receiving side stopped reading (the upload failed or was dropped).
    HungUp,
    /// A file could not be read, or did not hold the bytes it should.
    Failed(String),
}

impl From<String> for TarError {
    fn from(message: String) -> Self {
        TarError::Failed(message)
    }
}

/// Writes the tar into `sender`, returning its digest.
fn write_tar(files: &[LayerFile], sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Result<String, TarError> {
    let mut digest = Context::new(&SHA256);
    let send = |bytes: Bytes, digest: &mut Context| -> Result<(), TarError> {
        digest.update(&bytes);
        sender.blocking_send(Ok(bytes)).map_err(|_| TarError::HungUp)
    };
    for file in files {
        send(Bytes::copy_from_slice(&header(file)?), &mut digest)?;
        let mut source = file.source.open().map_err(|e| format!("cannot open {}: {e}", file.source.describe()))?;
        // The file's own hash runs on another thread, so checking it costs no time here.
        let verifier = file.sha256.as_ref().map(|_| Verifier::spawn());
        let mut left = file.size;
        while left > 0 {
            let mut chunk = vec![0u8; CHUNK.min(left as usize)];
            source.read_exact(&mut chunk).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => format!(
                    "{} is shorter than the {} bytes that were uploaded: the stored file is damaged; upload the WAR again (the same bytes repair it)",
                    file.source.describe(),
                    file.size
                ),
                _ => format!("reading {}: {e}", file.source.describe()),
            })?;
            left -= chunk.len() as u64;
            let chunk = Bytes::from(chunk);
            if let Some(v) = &verifier {
                v.feed(chunk.clone());
            }
            send(chunk, &mut digest)?;
        }
        if let (Some(want), Some(v)) = (&file.sha256, verifier) {
            let got = v.finish();
            if &got != want {
                return Err(TarError::Failed(format!(
                    "{} does not hold the bytes that were uploaded (sha256 {got}, expected {want}): the stored file is damaged; upload the WAR again (the same bytes repair it)",
                    file.source.describe()
                )));
            }
        }
        let padding = (BLOCK - file.size % BLOCK) % BLOCK;
        if padding > 0 {
            send(Bytes::from(vec![0u8; padding as usize]), &mut digest)?;
        }
    }
    send(Bytes::from(vec![0u8; 2 * BLOCK as usize]), &mut digest)?;
    Ok(format!("sha256:{}", hex::encode(digest.finish())))
}

/// Hashes chunks handed to it on a thread of its own.
struct Verifier {
    chunks: std::sync::mpsc::SyncSender<Bytes>,
    hashing: std::thread::JoinHandle<String>,
}

impl Verifier {
    fn spawn() -> Self {
        let (chunks, queued) = std::sync::mpsc::sync_channel::<Bytes>(2);
        let hashing = std::thread::spawn(move || {
            let mut digest = Context::new(&SHA256);
            for chunk in queued {
                digest.update(&chunk);
            }
            hex::encode(digest.finish())
        });
        Self { chunks, hashing }
    }

    fn feed(&self, chunk: Bytes) {
        let _ = self.chunks.send(chunk);
    }

    fn finish(self) -> String {
        drop(self.chunks);
        self.hashing.join().expect("hashing does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};

    fn file(dir: &std::path::Path, name: &str, content: &[u8], path: &str) -> LayerFile {
        let source = dir.join(name);
        std::fs::write(&source, content).unwrap();
        LayerFile {
            path: path.into(),
            source: source.into(),
            size: content.len() as u64,
            mode: 0o644,
            uid: 0,
            gid: 0,
            sha256: Some(hex::encode(Sha256::digest(content))),
        }
    }

    async fn collect(layer: &Layer) -> (Vec<u8>, Result<String, String>) {
        let (stream, outcome) = layer.stream();
        let chunks: Vec<_> = stream.collect().await;
        let mut bytes = Vec::new();
        for chunk in chunks {
            match chunk {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(_) => break,
            }
        }
        let outcome = outcome.lock().unwrap().clone().expect("stream ended");
        (bytes, outcome)
    }

    #[tokio::test]
    async fn a_tar_that_tar_reads_back_with_fixed_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let war = vec![7u8; 1000];
        let layer = Layer::new(vec![
            file(dir.path(), "b.war", &war, "/usr/local/tomcat/webapps/ROOT.war"),
            file(dir.path(), "a.txt", b"hello", "/etc/app/a.txt"),
        ]);
        let (bytes, outcome) = collect(&layer).await;
        assert_eq!(bytes.len() as u64, layer.size());
        assert_eq!(outcome.unwrap(), format!("sha256:{}", hex::encode(Sha256::digest(&bytes))));
        let mut archive = tar::Archive::new(&bytes[..]);
        let entries: Vec<(String, u64, u64, u32, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mtime().unwrap(), h.uid().unwrap(), h.mode().unwrap(), data)
            })
            .collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "etc/app/a.txt", "sorted by path");
        assert_eq!(entries[1].0, "usr/local/tomcat/webapps/ROOT.war");
        assert_eq!(entries[1].4, war);
        assert!(entries.iter().all(|e| e.1 == FIXED_MTIME && e.2 == 0 && e.3 == 0o644));
    }

    #[tokio::test]
    async fn same_files_same_digest_whatever_the_order_or_the_file_times() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(dir.path(), "a", b"one", "/x/a");
        let b = file(dir.path(), "b", b"two", "/x/b");
        let (_, first) = collect(&Layer::new(vec![a.clone(), b.clone()])).await;
        std::fs::File::options().write(true).open(dir.path().join("a")).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
        let (_, second) = collect(&Layer::new(vec![b, a])).await;
        assert_eq!(first.unwrap(), second.unwrap());
    }

    #[tokio::test]
    async fn bytes_that_are_not_the_uploaded_ones_fail_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = file(dir.path(), "w.war", b"original", "/w.war");
        std::fs::write(dir.path().join("w.war"), b"tampered").unwrap();
        let (_, outcome) = collect(&Layer::new(vec![f.clone()])).await;
        assert!(outcome.unwrap_err().contains("does not hold the bytes"));
        f.size = 100;
        let (_, outcome) = collect(&Layer::new(vec![f])).await;
        assert!(outcome.unwrap_err().contains("is shorter than the 100 bytes that were uploaded"));
    }

    #[test]
    fn long_paths_use_the_ustar_prefix() {
        let long = format!("/{}/ROOT.war", "d".repeat(120));
        let f = LayerFile { path: long.clone(), source: "x".into(), size: 0, mode: 0o644, uid: 0, gid: 0, sha256: None };
        let h = header(&f).unwrap();
        let parsed = tar::Header::from_byte_slice(&h);
        assert_eq!(format!("/{}", parsed.path().unwrap().display()), long);
        let too_long = LayerFile { path: format!("/{}", "d".repeat(300)), ..f };
        assert!(header(&too_long).is_err());
    }
}
