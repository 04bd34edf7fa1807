//! The default validator: the env rules the host applied itself before plugins
//! (`validate()` in `host/src/envs.rs` as of commit f84caae), plus what makes a WAR
//! unfit for an env at deploy time.

mod env;
mod settings;
mod war;

use settings::Settings;
use warship_plugin::types::{EnvSpec, Platform, Violation, WarFacts};
use warship_plugin::{Info, Plugin, Validator};

fn violation(field: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation { field: field.into(), code: code.into(), message: message.into() }
}

/// Settings the host let through `check-config` always parse; should they not, every
/// env is refused (with the reason) rather than judged by rules nobody configured.
fn with_settings(settings: &str, rules: impl FnOnce(&Settings) -> Vec<Violation>) -> Vec<Violation> {
    match Settings::parse(settings) {
        Ok(settings) => rules(&settings),
        Err(e) => vec![violation("settings", "plugin.settings.invalid", format!("the validator plugin's {e}"))],
    }
}

pub fn validate_env(settings: &str, platform: &Platform, env: &EnvSpec) -> Vec<Violation> {
    with_settings(settings, |s| env::violations(s, platform, env))
}

/// The env's own violations first, then the WAR's.
pub fn validate_deploy(settings: &str, platform: &Platform, env: &EnvSpec, war: &WarFacts) -> Vec<Violation> {
    with_settings(settings, |s| {
        let mut out = env::violations(s, platform, env);
        out.extend(war::violations(s, env, war));
        out
    })
}

pub struct DefaultRules;

impl Plugin for DefaultRules {
    fn info() -> Info {
        Info::with_schema(settings::schema())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        Settings::parse(settings).map(drop)
    }
}

impl Validator for DefaultRules {
    fn validate_env(settings: &str, platform: &Platform, env: &EnvSpec) -> Vec<Violation> {
        validate_env(settings, platform, env)
    }

    fn validate_deploy(settings: &str, platform: &Platform, env: &EnvSpec, war: &WarFacts) -> Vec<Violation> {
        validate_deploy(settings, platform, env, war)
    }
}

warship_plugin::export!(validator: DefaultRules);

#[cfg(test)]
pub(crate) mod fixtures {
    use warship_plugin::types::*;

    pub fn platform() -> Platform {
        let entry = |tomcat: &str, jdk: &str| CatalogEntry {
            tomcat: tomcat.into(),
            jdk: jdk.into(),
            base_image: format!("b:{tomcat}-{jdk}"),
            user: None,
        };
        Platform { catalog: vec![entry("9.0", "11"), entry("10.1", "21"), entry("10.1", "17")] }
    }

    /// What `{"name":"shop","tomcat":"10.1","jdk":"17"}` meant to the host.
    pub fn env() -> EnvSpec {
        let none = ResourceAmounts { cpu: None, memory: None };
        EnvSpec {
            name: "shop".into(),
            tomcat: "10.1".into(),
            jdk: "17".into(),
            replicas: 1,
            node_num: None,
            jvm_options: String::new(),
            env: Vec::new(),
            resources: Resources { requests: none.clone(), limits: none },
            context_path: "/".into(),
        }
    }

    pub fn war() -> WarFacts {
        WarFacts {
            app: "shop".into(),
            file: "shop-1.0.war".into(),
            size: 4704,
            sha256: "ab".repeat(32),
            servlet_api: ServletApi::Jakarta,
            has_web_xml: true,
            entries: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::types::ServletApi;

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<DefaultRules>();
    }

    #[test]
    fn deploy_reports_env_problems_before_war_problems() {
        let mut env = fixtures::env();
        env.replicas = 0;
        let mut war = fixtures::war();
        war.servlet_api = ServletApi::Javax;
        war.size = 2 << 30;
        let codes: Vec<_> =
            validate_deploy("", &fixtures::platform(), &env, &war).into_iter().map(|v| v.code).collect();
        assert_eq!(codes, ["env.replicas.out_of_range", "war.servlet_api.javax_on_jakarta_tomcat", "war.too_large"]);
        assert_eq!(validate_deploy("", &fixtures::platform(), &fixtures::env(), &fixtures::war()), vec![]);
    }

    #[test]
    fn settings_are_read_on_every_call() {
        let mut env = fixtures::env();
        env.replicas = 30;
        assert_eq!(validate_env("{}", &fixtures::platform(), &env).len(), 1);
        assert_eq!(validate_env(r#"{"max-replicas": 30}"#, &fixtures::platform(), &env), vec![]);
    }

    #[test]
    fn unreadable_settings_refuse_everything_and_say_why() {
        let v = validate_env(r#"{"max_replicas": 3}"#, &fixtures::platform(), &fixtures::env());
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].field.as_str(), v[0].code.as_str()), ("settings", "plugin.settings.invalid"));
        assert!(v[0].message.contains("max_replicas"), "{}", v[0].message);
    }
}
