//! `[storage]`: where WAR bytes live. Local disk under `store.data_dir` by default; an
//! S3-compatible bucket when several hosts share the platform (each must be able to
//! build any WAR, and resume any deploy).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    Local,
    S3,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// The S3 API's URL, e.g. `https://s3.eu-west-1.amazonaws.com` or a SeaweedFS or
    /// Ceph gateway; `http://` is allowed (a gateway on loopback or in the cluster).
    pub s3_endpoint: Option<String>,
    pub s3_bucket: String,
    pub s3_region: String,
    /// Every object warship writes starts with this, so one bucket can be shared.
    pub s3_prefix: String,
    pub s3_access_key_id: Option<String>,
    /// Better given as `WARSHIP__STORAGE__S3_SECRET_ACCESS_KEY` or in a file.
    pub s3_secret_access_key: Option<String>,
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Bucket in the URL's host (`bucket.s3…`) rather than its path: AWS wants it, most
    /// self-hosted servers do not.
    pub s3_virtual_hosted: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Local,
            s3_endpoint: None,
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_prefix: "warship/".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_secret_access_key_file: None,
            s3_virtual_hosted: false,
        }
    }
}

impl StorageConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.s3_secret_access_key.is_some() && self.s3_secret_access_key_file.is_some() {
            return Err("set storage.s3_secret_access_key or storage.s3_secret_access_key_file, not both".into());
        }
        if self.backend == StorageBackend::Local {
            return Ok(());
        }
        if self.s3_bucket.is_empty() {
            return Err("storage.backend = \"s3\" needs storage.s3_bucket: the bucket WARs are kept in".into());
        }
        match &self.s3_endpoint {
            Some(endpoint) => match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => return Err(format!("storage.s3_endpoint {endpoint:?} must be an http(s) URL, e.g. \"https://s3.example.com\"")),
            },
            None if !self.s3_virtual_hosted => {
                return Err("storage.backend = \"s3\" needs storage.s3_endpoint (or s3_virtual_hosted = true for AWS itself)".into())
            }
            None => {}
        }
        let has_secret = self.s3_secret_access_key.is_some() || self.s3_secret_access_key_file.is_some();
        if self.s3_access_key_id.is_some() != has_secret {
            return Err("storage.s3_access_key_id and its secret (storage.s3_secret_access_key or _file) go together".into());
        }
        if !self.s3_prefix.is_empty() && !self.s3_prefix.ends_with('/') {
            return Err(format!("storage.s3_prefix {:?} must end in '/' (or be empty)", self.s3_prefix));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> StorageConfig {
        StorageConfig {
            backend: StorageBackend::S3,
            s3_endpoint: Some("http://127.0.0.1:8333".into()),
            s3_bucket: "wars".into(),
            s3_access_key_id: Some("id".into()),
            s3_secret_access_key: Some("secret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_s3_backend_names_what_it_lacks() {
        assert_eq!(s3().check(), Ok(()));
        assert_eq!(StorageConfig::default().check(), Ok(()), "local needs nothing");
        let cases: [(fn(&mut StorageConfig), &str); 5] = [
            (|c| c.s3_bucket.clear(), "storage.s3_bucket"),
            (|c| c.s3_endpoint = Some("s3.example.com".into()), "storage.s3_endpoint"),
            (|c| c.s3_endpoint = None, "storage.s3_endpoint"),
            (|c| c.s3_secret_access_key = None, "storage.s3_access_key_id"),
            (|c| c.s3_prefix = "wars".into(), "storage.s3_prefix"),
        ];
        for (spoil, named) in cases {
            let mut config = s3();
            spoil(&mut config);
            let said = config.check().unwrap_err();
            assert!(said.contains(named), "{said}");
        }
    }
}
