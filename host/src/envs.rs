//! Environments: where a user's WAR runs (Tomcat × JDK, replicas, JVM options,
//! resources). Records live under the user's prefix; every change re-validates the
//! whole spec so callers see every bad field at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::config::Config;
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;
use crate::validation::{dns_label_problem, Violation};

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

/// What a user asks for when creating an env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    pub name: String,
    pub tomcat: String,
    pub jdk: String,
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
    pub tomcat: Option<String>,
    pub jdk: Option<String>,
    pub replicas: Option<u32>,
    pub jvm_options: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub resources: Option<Resources>,
    pub context_path: Option<String>,
}

/// An env as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Env {
    #[serde(flatten)]
    pub spec: EnvSpec,
    /// Successful deploys so far.
    pub used: u64,
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

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("the env is invalid")]
    Invalid(Vec<Violation>),
    #[error("env {0} not found")]
    NotFound(String),
    #[error("env {0} already exists")]
    Exists(String),
    #[error("env {0} was changed by someone else meanwhile")]
    Conflict(String),
    #[error("you already have {0} envs, the most allowed")]
    TooMany(usize),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EnvError {
    fn from(e: StoreError) -> Self {
        EnvError::Store(e)
    }
}

impl EnvPatch {
    fn apply(self, spec: &mut EnvSpec) {
        let EnvPatch { tomcat, jdk, replicas, jvm_options, env, resources, context_path } = self;
        if let Some(v) = tomcat { spec.tomcat = v }
        if let Some(v) = jdk { spec.jdk = v }
        if let Some(v) = replicas { spec.replicas = v }
        if let Some(v) = jvm_options { spec.jvm_options = v }
        if let Some(v) = env { spec.env = v }
        if let Some(v) = resources { spec.resources = v }
        if let Some(v) = context_path { spec.context_path = v }
    }
}

/// Every rule at once; empty means valid.
pub fn validate(spec: &EnvSpec, config: &Config) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Err(v) = EnvName::parse(&spec.name) {
        out.push(v);
    }
    check_catalog(spec, config, &mut out);
    let max = config.envs.max_replicas;
    if spec.replicas == 0 || spec.replicas > max {
        out.push(Violation::new(
            "replicas",
            "env.replicas.out_of_range",
            format!("replicas must be between 1 and {max} (got {})", spec.replicas),
        ));
    }
    if spec.jvm_options.len() > 4096 || spec.jvm_options.contains(['\n', '\r', '\0']) {
        out.push(Violation::new(
            "jvm_options",
            "env.jvm_options.invalid",
            "jvm_options must be one line of at most 4096 characters",
        ));
    }
    check_env_vars(&spec.env, &mut out);
    check_resources(&spec.resources, &mut out);
    if let Some(problem) = context_path_problem(&spec.context_path) {
        out.push(Violation::new("context_path", "env.context_path.invalid", problem));
    }
    out
}

fn check_catalog(spec: &EnvSpec, config: &Config, out: &mut Vec<Violation>) {
    let tomcats: std::collections::BTreeSet<&str> = config.catalog.iter().map(|c| c.tomcat.as_str()).collect();
    if !tomcats.contains(spec.tomcat.as_str()) {
        out.push(Violation::new(
            "tomcat",
            "env.tomcat.unknown",
            format!("tomcat {:?} is not in the catalog; choose one of: {}", spec.tomcat, join(tomcats)),
        ));
        return;
    }
    if config.catalog_entry(&spec.tomcat, &spec.jdk).is_none() {
        let jdks = config.catalog.iter().filter(|c| c.tomcat == spec.tomcat).map(|c| c.jdk.as_str());
        out.push(Violation::new(
            "jdk",
            "env.jdk.unknown",
            format!("jdk {:?} is not offered with tomcat {}; choose one of: {}", spec.jdk, spec.tomcat, join(jdks)),
        ));
    }
}

fn join<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// JAVA_OPTS and CATALINA_OPTS are built from `jvm_options`; setting them twice would
/// make one silently win.
const RESERVED_ENV: [&str; 2] = ["JAVA_OPTS", "CATALINA_OPTS"];

fn check_env_vars(vars: &BTreeMap<String, String>, out: &mut Vec<Violation>) {
    if vars.len() > 100 {
        out.push(Violation::new("env", "env.env.too_many", "at most 100 environment variables"));
    }
    for (key, value) in vars {
        let field = format!("env.{key}");
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            out.push(Violation::new(
                field,
                "env.env.bad_name",
                format!("{key:?} is not a valid variable name: use letters, digits and '_', not starting with a digit"),
            ));
        } else if RESERVED_ENV.contains(&key.as_str()) {
            out.push(Violation::new(field, "env.env.reserved", format!("{key} is set from jvm_options; put JVM flags there")));
        } else if value.len() > 32 * 1024 {
            out.push(Violation::new(field, "env.env.too_long", "values are limited to 32 KiB"));
        }
    }
}

fn check_resources(resources: &Resources, out: &mut Vec<Violation>) {
    let mut amount = |kind: &str, which: &str, value: &Option<String>, parse: fn(&str) -> Option<u128>| {
        let v = value.as_deref()?;
        let parsed = parse(v);
        if parsed.is_none() {
            let example = if which == "cpu" { "500m, 1 or 1.5" } else { "512Mi or 2Gi" };
            out.push(Violation::new(
                format!("resources.{kind}.{which}"),
                format!("env.resources.{which}.invalid"),
                format!("{v:?} is not a {which} quantity; write it like {example}"),
            ));
        }
        parsed
    };
    let cpu_req = amount("requests", "cpu", &resources.requests.cpu, parse_millicpu);
    let cpu_lim = amount("limits", "cpu", &resources.limits.cpu, parse_millicpu);
    let mem_req = amount("requests", "memory", &resources.requests.memory, parse_memory);
    let mem_lim = amount("limits", "memory", &resources.limits.memory, parse_memory);
    for (which, req, lim) in [("cpu", cpu_req, cpu_lim), ("memory", mem_req, mem_lim)] {
        if let (Some(req), Some(lim)) = (req, lim) {
            if req > lim {
                out.push(Violation::new(
                    format!("resources.requests.{which}"),
                    format!("env.resources.{which}.request_above_limit"),
                    format!("the {which} request is above its limit; lower the request or raise the limit"),
                ));
            }
        }
    }
}

/// `500m` → 500, `2` → 2000, `0.5` → 500.
fn parse_millicpu(v: &str) -> Option<u128> {
    if let Some(m) = v.strip_suffix('m') {
        return m.parse::<u128>().ok().filter(|n| *n > 0);
    }
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty() || frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac_milli = format!("{frac:0<3}").parse::<u128>().ok()?;
    let milli = whole.parse::<u128>().ok()? * 1000 + frac_milli;
    (milli > 0).then_some(milli)
}

/// `512Mi` → bytes; plain numbers are bytes.
fn parse_memory(v: &str) -> Option<u128> {
    const UNITS: [(&str, u128); 8] = [
        ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
        ("K", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
    ];
    let (digits, factor) = UNITS
        .iter()
        .find_map(|(suffix, factor)| v.strip_suffix(suffix).map(|d| (d, *factor)))
        .unwrap_or((v, 1));
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u128>().ok().map(|n| n * factor).filter(|n| *n > 0)
}

fn context_path_problem(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some(format!("context_path {path:?} must start with '/' (use \"/\" to serve at the root)"));
    };
    let bad_segment = rest.split('/').any(|seg| {
        seg.is_empty() || seg == "." || seg == ".." || !seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    if bad_segment || path.len() > 200 {
        return Some(format!(
            "context_path {path:?} must be '/' or '/'-separated segments of letters, digits, '.', '_' and '-'"
        ));
    }
    None
}

fn key(user: &UserName, env: &str) -> String {
    format!("u/{user}/envs/{env}")
}

fn prefix(user: &UserName) -> String {
    format!("u/{user}/envs/")
}

/// The env operations, each scoped to one user.
#[derive(Clone)]
pub struct Envs {
    store: DynStore,
    config: std::sync::Arc<Config>,
}

impl Envs {
    pub fn new(store: DynStore, config: std::sync::Arc<Config>) -> Self {
        Self { store, config }
    }

    pub async fn create(&self, user: &UserName, spec: EnvSpec) -> Result<Env, EnvError> {
        let violations = validate(&spec, &self.config);
        if !violations.is_empty() {
            return Err(EnvError::Invalid(violations));
        }
        let existing = self.store.list(&prefix(user)).await?.len();
        if existing >= self.config.envs.max_envs_per_user {
            return Err(EnvError::TooMany(existing));
        }
        let now = OffsetDateTime::now_utc();
        let mut env = Env { spec, used: 0, created_at: now, updated_at: now, revision: 0 };
        let name = env.spec.name.clone();
        env.revision = store::put_json(&*self.store, &key(user, &name), &env, Precondition::Absent)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EnvError::Exists(name.clone()),
                other => other.into(),
            })?;
        Ok(env)
    }

    pub async fn list(&self, user: &UserName) -> Result<Vec<Env>, EnvError> {
        let records: Vec<(Env, u64)> = store::list_json(&*self.store, &prefix(user)).await?;
        Ok(records.into_iter().map(|(env, rev)| Env { revision: rev, ..env }).collect())
    }

    pub async fn get(&self, user: &UserName, name: &EnvName) -> Result<Env, EnvError> {
        let found: Option<(Env, u64)> = store::get_json(&*self.store, &key(user, name.as_str())).await?;
        found
            .map(|(env, rev)| Env { revision: rev, ..env })
            .ok_or_else(|| EnvError::NotFound(name.to_string()))
    }

    /// Applies `patch` to the current record with compare-and-swap, so two concurrent
    /// updates cannot silently overwrite each other.
    pub async fn update(&self, user: &UserName, name: &EnvName, patch: EnvPatch) -> Result<Env, EnvError> {
        let mut env = self.get(user, name).await?;
        patch.apply(&mut env.spec);
        let violations = validate(&env.spec, &self.config);
        if !violations.is_empty() {
            return Err(EnvError::Invalid(violations));
        }
        env.updated_at = OffsetDateTime::now_utc();
        env.revision = store::put_json(&*self.store, &key(user, name.as_str()), &env, Precondition::Revision(env.revision))
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EnvError::Conflict(name.to_string()),
                other => other.into(),
            })?;
        Ok(env)
    }

    pub async fn delete(&self, user: &UserName, name: &EnvName) -> Result<(), EnvError> {
        if self.store.delete(&key(user, name.as_str()), Precondition::Any).await? {
            Ok(())
        } else {
            Err(EnvError::NotFound(name.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CatalogEntry;

    fn config() -> Config {
        let mut c = Config::default();
        for (tomcat, jdk) in [("9.0", "11"), ("10.1", "17"), ("10.1", "21")] {
            c.catalog.push(CatalogEntry { tomcat: tomcat.into(), jdk: jdk.into(), base_image: format!("b:{tomcat}-{jdk}") });
        }
        c
    }

    fn spec() -> EnvSpec {
        serde_json::from_str(r#"{"name":"shop","tomcat":"10.1","jdk":"17"}"#).unwrap()
    }

    #[test]
    fn a_minimal_spec_is_valid_with_defaults() {
        let s = spec();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.context_path, "/");
        assert_eq!(validate(&s, &config()), vec![]);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let mut s = spec();
        s.name = "Bad_Name".into();
        s.jdk = "8".into();
        s.replicas = 0;
        s.context_path = "shop".into();
        s.env.insert("1X".into(), "v".into());
        s.env.insert("JAVA_OPTS".into(), "v".into());
        s.resources.requests.cpu = Some("2".into());
        s.resources.limits.cpu = Some("500m".into());
        s.resources.limits.memory = Some("lots".into());
        let fields: Vec<_> = validate(&s, &config()).into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            ["name", "jdk", "replicas", "env.1X", "env.JAVA_OPTS", "resources.limits.memory", "resources.requests.cpu", "context_path"]
        );
    }

    #[test]
    fn unknown_tomcat_lists_the_catalog() {
        let mut s = spec();
        s.tomcat = "7".into();
        let v = validate(&s, &config());
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("10.1, 9.0"), "{}", v[0].message);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_millicpu("500m"), Some(500));
        assert_eq!(parse_millicpu("1.5"), Some(1500));
        assert_eq!(parse_millicpu("2"), Some(2000));
        assert_eq!(parse_millicpu("0"), None);
        assert_eq!(parse_millicpu("1.2345"), None);
        assert_eq!(parse_millicpu("abc"), None);
        assert_eq!(parse_memory("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("Mi"), None);
        assert_eq!(parse_memory("-1Mi"), None);
    }

    #[test]
    fn context_paths() {
        assert_eq!(context_path_problem("/"), None);
        assert_eq!(context_path_problem("/shop"), None);
        assert_eq!(context_path_problem("/shop/v2"), None);
        assert!(context_path_problem("shop").is_some());
        assert!(context_path_problem("/../x").is_some());
        assert!(context_path_problem("/a//b").is_some());
        assert!(context_path_problem("/a b").is_some());
    }

    #[test]
    fn patch_keeps_what_it_does_not_name() {
        let mut s = spec();
        s.jvm_options = "-Xmx1g".into();
        let patch: EnvPatch = serde_json::from_str(r#"{"replicas":3}"#).unwrap();
        patch.apply(&mut s);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.jvm_options, "-Xmx1g");
        assert!(serde_json::from_str::<EnvPatch>(r#"{"name":"x"}"#).is_err());
        assert!(serde_json::from_str::<EnvPatch>(r#"{"used":3}"#).is_err());
    }
}
