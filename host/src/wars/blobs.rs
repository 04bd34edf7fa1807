//! WAR bytes on local disk, content-addressed by sha256: `<dir>/sha256/ab/abcdef…`.
//! Uploads land in `<dir>/tmp` first and are renamed into place only once complete
//! and inspected, so a broken upload never leaves a partial blob.

use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("sha256"))?;
        // Temp files of a crashed host are garbage: nothing references them.
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(Self { root: root.to_owned() })
    }

    /// A file deleted on drop unless committed.
    pub fn temp_file(&self) -> io::Result<NamedTempFile> {
        tempfile::Builder::new().prefix("upload-").tempfile_in(self.root.join("tmp"))
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(&sha256[..2]).join(sha256)
    }

    /// Moves a complete upload to its content address in one rename. When
    /// `durable` (the file's bytes are already synced), the folder is synced too so
    /// the new name survives a machine crash.
    pub fn commit(&self, file: NamedTempFile, sha256: &str, durable: bool) -> io::Result<PathBuf> {
        let path = self.path(sha256);
        let folder = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(folder)?;
        file.persist(&path).map_err(|e| e.error)?;
        if durable {
            std::fs::File::open(folder)?.sync_all()?;
        }
        Ok(path)
    }

    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(sha256)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Whether the blob is there whole: a file of `size` bytes. (A machine crash with
    /// `uploads.fsync = false` can leave one truncated; a new upload then replaces it.)
    pub fn holds(&self, sha256: &str, size: u64) -> bool {
        std::fs::metadata(self.path(sha256)).is_ok_and(|m| m.is_file() && m.len() == size)
    }
}
