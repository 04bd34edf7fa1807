//! An env as a user describes it, and the release a deploy leaves serving.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::violation::{dns_label_problem, Violation};

/// Longest env name: leaves room for suffixes like `-canary-` in Kubernetes names.
pub const ENV_NAME_MAX: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(name: &str) -> Result<Self, Violation> {
        match dns_label_problem(name, ENV_NAME_MAX) {
            None => Ok(Self(name.to_owned())),
            Some(problem) => Err(Violation::new("name", "env.name.invalid", format!("env name {name:?} {problem}"))),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnvName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceAmounts {
    /// Kubernetes CPU quantity: `500m`, `1`, `1.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Kubernetes memory quantity: `512Mi`, `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceAmounts,
    #[serde(default)]
    pub limits: ResourceAmounts,
}

/// A Tomcat version as the catalog names it (`10.1`). Which ones exist is the
/// catalog's and the validator's to say; the type keeps it apart from a JDK version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct TomcatVersion(String);

/// A JDK version as the catalog names it (`17`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct JdkVersion(String);

macro_rules! version_text {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }
        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    )*};
}
version_text!(TomcatVersion, JdkVersion);

/// What a user asks for when creating an env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    pub name: String,
    pub tomcat: TomcatVersion,
    pub jdk: JdkVersion,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Passed to the JVM as `JAVA_OPTS`.
    #[serde(default)]
    pub jvm_options: String,
    /// Environment variables for the container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    /// Where the WAR is served: `/` (ROOT) or `/shop`.
    #[serde(default = "root_path")]
    pub context_path: String,
    /// Where the readiness probe asks, below the context path (`/health`); the context
    /// path itself when absent. For apps whose root does not answer 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// How long a rollout may take to get every pod ready before it fails; the
    /// platform's `deploys.rollout_deadline_secs` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_deadline_secs: Option<u64>,
}

impl EnvSpec {
    /// Where the readiness probe asks: the context path (with a trailing slash, so Tomcat
    /// answers the app itself rather than a redirect), then the health path if any.
    pub fn probe_path(&self) -> String {
        let context = self.context_path.trim_end_matches('/');
        match self.health_path.as_deref() {
            Some(health) => format!("{context}/{}", health.trim_start_matches('/')),
            None => format!("{context}/"),
        }
    }
}

/// Why a health path cannot be probed, if it cannot.
pub fn health_path_problem(path: &str) -> Option<Violation> {
    const MAX: usize = 200;
    let problem = if !path.starts_with('/') {
        "must start with '/' (it is below the context path: \"/health\")"
    } else if path.len() > MAX {
        "must be at most 200 characters"
    } else if path.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%')) {
        "must be a plain path: no spaces, '?', '#' or '%'"
    } else {
        return None;
    };
    Some(Violation::new("health_path", "env.health_path.invalid", format!("health_path {path:?} {problem}")))
}

fn one() -> u32 {
    1
}
fn root_path() -> String {
    "/".into()
}

/// A partial update; absent fields stay as they are. The name and `used` cannot change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvPatch {
    pub tomcat: Option<TomcatVersion>,
    pub jdk: Option<JdkVersion>,
    pub replicas: Option<u32>,
    pub jvm_options: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub resources: Option<Resources>,
    pub context_path: Option<String>,
    pub health_path: Option<String>,
    pub rollout_deadline_secs: Option<u64>,
}

/// A release: what a successful deploy left serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    pub revision: u32,
    /// What the pods run: `<pull registry>/<user>/<env>@sha256:…`.
    pub image: String,
    pub digest: String,
    pub war: String,
    pub war_sha256: String,
    pub version: String,
    pub strategy: String,
    /// The deploy that made it.
    pub deploy: String,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// What one release runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSpec {
    pub revision: u32,
    /// Pinned by digest: `<pull registry>/<user>/<env>@sha256:…`.
    pub image: String,
    pub version: String,
    pub war_sha256: String,
    /// The deploy that makes it.
    pub deploy_id: String,
}

/// An env as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Env {
    #[serde(flatten)]
    pub spec: EnvSpec,
    /// Successful deploys so far.
    pub used: u64,
    /// The release serving now, once a deploy succeeded.
    #[serde(default)]
    pub current: Option<Release>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Store revision of this record; changes on every write.
    #[serde(default)]
    pub revision: u64,
}

impl EnvPatch {
    pub fn apply(self, spec: &mut EnvSpec) {
        let EnvPatch { tomcat, jdk, replicas, jvm_options, env, resources, context_path, health_path, rollout_deadline_secs } = self;
        if let Some(v) = tomcat { spec.tomcat = v }
        if let Some(v) = jdk { spec.jdk = v }
        if let Some(v) = replicas { spec.replicas = v }
        if let Some(v) = jvm_options { spec.jvm_options = v }
        if let Some(v) = env { spec.env = v }
        if let Some(v) = resources { spec.resources = v }
        if let Some(v) = context_path { spec.context_path = v }
        if let Some(v) = health_path { spec.health_path = Some(v) }
        if let Some(v) = rollout_deadline_secs { spec.rollout_deadline_secs = Some(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_spec_gets_defaults() {
        let s: EnvSpec = serde_json::from_str(r#"{"name":"shop","tomcat":"10.1","jdk":"17"}"#).unwrap();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.context_path, "/");
    }

    #[test]
    fn patch_keeps_what_it_does_not_name() {
        let mut s: EnvSpec = serde_json::from_str(r#"{"name":"shop","tomcat":"10.1","jdk":"17","jvm_options":"-Xmx1g"}"#).unwrap();
        let patch: EnvPatch = serde_json::from_str(r#"{"replicas":3}"#).unwrap();
        patch.apply(&mut s);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.jvm_options, "-Xmx1g");
        assert!(serde_json::from_str::<EnvPatch>(r#"{"name":"x"}"#).is_err());
        assert!(serde_json::from_str::<EnvPatch>(r#"{"used":3}"#).is_err());
    }

    #[test]
    fn the_probe_asks_the_context_path_or_the_health_path_below_it() {
        let mut s: EnvSpec = serde_json::from_str(r#"{"name":"shop","tomcat":"10.1","jdk":"17"}"#).unwrap();
        assert_eq!(s.probe_path(), "/");
        s.context_path = "/shop".into();
        assert_eq!(s.probe_path(), "/shop/");
        s.context_path = "/shop/".into();
        assert_eq!(s.probe_path(), "/shop/");
        s.health_path = Some("/helloworld".into());
        assert_eq!(s.probe_path(), "/shop/helloworld");
        s.context_path = "/".into();
        assert_eq!(s.probe_path(), "/helloworld");
        assert!(health_path_problem("/health/ready").is_none());
        for bad in ["health", "/a b", "/x?y=1", "/%2e", &format!("/{}", "a".repeat(200))] {
            let v = health_path_problem(bad).unwrap_or_else(|| panic!("{bad} passes"));
            assert_eq!((v.field.as_str(), v.code.as_str()), ("health_path", "env.health_path.invalid"));
        }
    }

    #[test]
    fn env_names_are_dns_labels() {
        assert!(EnvName::parse("shop-1").is_ok());
        for bad in ["", "Shop", "1shop", "shop-", "a/b", ".."] {
            assert!(EnvName::parse(bad).is_err(), "{bad}");
        }
    }
}
