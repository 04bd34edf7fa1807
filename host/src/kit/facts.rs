//! What `warship plugin test` hands a validator or a template: an env spec and WAR facts
//! from small TOML files a team keeps beside its plugin, as the host would build them.
//!
//! ```toml
//! # env.toml
//! name = "shop"
//! tomcat = "10.1"
//! jdk = "17"
//! replicas = 3
//! jvm-options = "-Xmx512m"
//! context-path = "/shop"
//! env = { SPRING_PROFILES_ACTIVE = "prod" }
//! resources = { requests = { cpu = "500m", memory = "512Mi" }, limits = { memory = "1Gi" } }
//! [[catalog]]              # what the platform offers (platform.toml's [[catalog]])
//! tomcat = "10.1"
//! jdk = "17"
//! base-image = "warship/tomcat:10.1-jdk17"
//! user = "1000:1000"
//!
//! # war.toml
//! app = "shop"
//! file = "shop.war"
//! size = 1048576
//! servlet-api = "jakarta"  # javax | jakarta | mixed | unknown
//! has-web-xml = true
//! entries = 120
//! version = "1.4.2"        # the deploy's version, for templates
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::KitError;
use crate::plugins::types;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvFile {
    name: String,
    tomcat: String,
    jdk: String,
    #[serde(default = "three")]
    replicas: u32,
    node_num: Option<String>,
    #[serde(default)]
    jvm_options: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    resources: Resources,
    #[serde(default = "root")]
    context_path: String,
    #[serde(default)]
    catalog: Vec<Catalog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    #[serde(default)]
    requests: Amounts,
    #[serde(default)]
    limits: Amounts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Amounts {
    cpu: Option<String>,
    memory: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Catalog {
    tomcat: String,
    jdk: String,
    base_image: String,
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WarFile {
    app: String,
    file: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    servlet_api: ServletApi,
    #[serde(default = "yes")]
    has_web_xml: bool,
    #[serde(default)]
    entries: u32,
    #[serde(default = "first_version")]
    version: String,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ServletApi {
    Javax,
    Jakarta,
    Mixed,
    #[default]
    Unknown,
}

fn three() -> u32 {
    3
}
fn root() -> String {
    "/".into()
}
fn yes() -> bool {
    true
}
fn first_version() -> String {
    "1.0".into()
}

pub fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, KitError> {
    let text = std::fs::read_to_string(path).map_err(|e| KitError::io(path, e))?;
    toml::from_str(&text).map_err(|e| KitError::Usage(format!("{}: {e}", path.display())))
}

impl EnvFile {
    pub fn spec(&self) -> types::EnvSpec {
        let amounts = |a: &Amounts| types::ResourceAmounts { cpu: a.cpu.clone(), memory: a.memory.clone() };
        types::EnvSpec {
            name: self.name.clone(),
            tomcat: self.tomcat.clone(),
            jdk: self.jdk.clone(),
            replicas: self.replicas,
            node_num: self.node_num.clone(),
            jvm_options: self.jvm_options.clone(),
            env: self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            resources: types::Resources { requests: amounts(&self.resources.requests), limits: amounts(&self.resources.limits) },
            context_path: self.context_path.clone(),
        }
    }

    pub fn platform(&self) -> types::Platform {
        types::Platform {
            catalog: self
                .catalog
                .iter()
                .map(|c| types::CatalogEntry { tomcat: c.tomcat.clone(), jdk: c.jdk.clone(), base_image: c.base_image.clone(), user: c.user.clone() })
                .collect(),
        }
    }

    /// What a template is given, with the base image of the env's catalog entry.
    pub fn build_context(&self, war: &WarFile) -> Result<types::BuildContext, KitError> {
        let base = self.catalog.iter().find(|c| c.tomcat == self.tomcat && c.jdk == self.jdk).ok_or_else(|| {
            KitError::Usage(format!(
                "the env file's [[catalog]] has no entry for tomcat {} with jdk {}: a template needs its base image",
                self.tomcat, self.jdk
            ))
        })?;
        Ok(types::BuildContext {
            env: self.spec(),
            war: war.facts(),
            base_image: base.base_image.clone(),
            base_user: base.user.clone(),
            war_file: war.file.clone(),
            app_version: war.version.clone(),
            user: "kit".into(),
        })
    }
}

impl WarFile {
    pub fn facts(&self) -> types::WarFacts {
        types::WarFacts {
            app: self.app.clone(),
            file: self.file.clone(),
            size: self.size,
            sha256: self.sha256.clone().unwrap_or_else(|| "0".repeat(64)),
            servlet_api: match self.servlet_api {
                ServletApi::Javax => types::ServletApi::Javax,
                ServletApi::Jakarta => types::ServletApi::Jakarta,
                ServletApi::Mixed => types::ServletApi::Mixed,
                ServletApi::Unknown => types::ServletApi::Unknown,
            },
            has_web_xml: self.has_web_xml,
            entries: self.entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_files_read_and_a_template_gets_its_base_image() {
        let doc = include_str!("facts.rs");
        let block: String = doc.lines().take_while(|l| l.starts_with("//!")).map(|l| l.trim_start_matches("//!").trim_start()).collect::<Vec<_>>().join("\n");
        let env_text = block.split("# env.toml").nth(1).unwrap().split("# war.toml").next().unwrap();
        let war_text = block.split("# war.toml").nth(1).unwrap().split("```").next().unwrap();
        let env: EnvFile = toml::from_str(env_text).unwrap();
        let war: WarFile = toml::from_str(war_text).unwrap();
        assert_eq!((env.spec().replicas, env.spec().context_path.as_str()), (3, "/shop"));
        let context = env.build_context(&war).unwrap();
        assert_eq!((context.base_image.as_str(), context.app_version.as_str()), ("warship/tomcat:10.1-jdk17", "1.4.2"));
        assert!(matches!(war.facts().servlet_api, types::ServletApi::Jakarta));
    }

    #[test]
    fn a_template_without_a_catalog_entry_is_told_what_to_add() {
        let env: EnvFile = toml::from_str("name = \"a\"\ntomcat = \"9\"\njdk = \"11\"").unwrap();
        let war: WarFile = toml::from_str("app = \"a\"\nfile = \"a.war\"").unwrap();
        let Err(KitError::Usage(message)) = env.build_context(&war) else { panic!("accepted") };
        assert!(message.contains("[[catalog]]") && message.contains("tomcat 9 with jdk 11"), "{message}");
    }
}
