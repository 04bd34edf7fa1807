//! What goes wrong talking to a registry, and the registry's own words for it.

use std::time::Duration;

use reqwest::Response;

/// What went wrong talking to a registry, in the terms an admin acts on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {registry} is unreachable: {cause}")]
    Unreachable { registry: String, cause: String },
    #[error("registry {registry} refused the credentials: {diagnostic}")]
    CredentialsRefused { registry: String, diagnostic: String },
    #[error("push to {registry} timed out after {} s", after.as_secs())]
    TimedOut { registry: String, after: Duration },
    #[error("registry {registry} is out of space: {diagnostic}")]
    OutOfSpace { registry: String, diagnostic: String },
    #[error("registry {registry} rejected the manifest of {reference}: {diagnostic}")]
    ManifestRejected { registry: String, reference: String, diagnostic: String },
    #[error("{what} not found in registry {registry}")]
    NotFound { registry: String, what: String },
    #[error("registry {registry} answered {status} to {what}: {diagnostic}")]
    Status { registry: String, what: String, status: u16, diagnostic: String },
    #[error("registry {registry} answered something unusable to {what}: {message}")]
    Protocol { registry: String, what: String, message: String },
    #[error("reading {what}: {message}")]
    Local { what: String, message: String },
}

impl RegistryError {
    /// Worth another try: the network or the registry may recover.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// A stable code for API answers and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Unreachable { .. } => "registry.unreachable",
            RegistryError::CredentialsRefused { .. } => "registry.credentials_refused",
            RegistryError::TimedOut { .. } => "registry.timed_out",
            RegistryError::OutOfSpace { .. } => "registry.out_of_space",
            RegistryError::ManifestRejected { .. } => "registry.manifest_rejected",
            RegistryError::NotFound { .. } => "registry.not_found",
            RegistryError::Status { .. } => "registry.error",
            RegistryError::Protocol { .. } => "registry.protocol",
            RegistryError::Local { .. } => "registry.local_io",
        }
    }
}

/// The registry's own words about a failure: the `errors` array of the distribution
/// spec when there is one, else the start of the body.
pub(super) async fn diagnostic(response: Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
        detail: Option<serde_json::Value>,
    }
    if let Ok(parsed) = serde_json::from_str::<Errors>(&body) {
        let said: Vec<String> = parsed
            .errors
            .into_iter()
            .map(|e| {
                let mut line = format!("{}: {}", e.code.unwrap_or_default(), e.message.unwrap_or_default());
                if let Some(detail) = e.detail.filter(|d| !d.is_null()) {
                    line += &format!(" ({detail})");
                }
                line
            })
            .collect();
        if !said.is_empty() {
            return said.join("; ");
        }
    }
    let trimmed: String = body.trim().chars().take(300).collect();
    if trimmed.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {trimmed}")
    }
}

/// Registries rarely say "out of space" in a status; their diagnostic says ENOSPC
/// (distribution reports the storage driver's error, errno 28, in `detail`).
pub(super) fn mentions_no_space(diagnostic: &str) -> bool {
    let lower = diagnostic.to_ascii_lowercase();
    lower.contains("no space left")
        || lower.contains("enospc")
        || lower.contains("\"err\":28")
        || lower.contains("insufficient storage")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_is_recognised_in_distribution_diagnostics() {
        assert!(mentions_no_space(
            r#"UNKNOWN: unknown error ({"DriverName":"filesystem","Enclosed":{"Op":"write","Path":"/x","Err":28}})"#
        ));
        assert!(mentions_no_space("write /data/x: no space left on device"));
        assert!(!mentions_no_space("BLOB_UNKNOWN: blob unknown to registry"));
    }

    #[test]
    fn transient_errors_are_the_network_and_5xx() {
        let status = |status| RegistryError::Status {
            registry: "r".into(),
            what: "w".into(),
            status,
            diagnostic: String::new(),
        };
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(RegistryError::Unreachable { registry: "r".into(), cause: "refused".into() }.is_transient());
        assert!(!RegistryError::OutOfSpace { registry: "r".into(), diagnostic: String::new() }.is_transient());
        assert!(!RegistryError::CredentialsRefused { registry: "r".into(), diagnostic: String::new() }.is_transient());
    }
}
