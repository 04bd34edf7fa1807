//! {{name}}: a warship validator.
//!
//! One rule to start from: an env may not ask for more than `max-replicas` pods. The
//! host asks `validate_env` whenever an env is created or changed, and
//! `validate_deploy` before each deploy (here: the env's rules again; the WAR's facts,
//! `WarFacts`, are there for rules of your own). Every violation is returned at once, each
//! naming its field, a stable code and a message the user can act on; none means valid.
//!
//! The contract is the `validator` world of `vendor/plugin-sdk/wit/plugin.wit`. The
//! plugin has no clock, files, network or memory between calls: everything it knows is
//! in its arguments.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::types::{EnvSpec, Platform, Violation};
use warship_plugin::{parse_settings, Info, Plugin, Validator};

const DEFAULT_MAX_REPLICAS: u32 = 4;

/// The settings an admin may give in platform.toml; "" or "{}" means these defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    max_replicas: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_replicas: DEFAULT_MAX_REPLICAS }
    }
}

impl Settings {
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        if settings.max_replicas == 0 {
            return Err("invalid settings: max-replicas must be at least 1".into());
        }
        Ok(settings)
    }
}

pub struct Rules;

impl Plugin for Rules {
    fn info() -> Info {
        Info::with_schema(
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "max-replicas": {
                        "type": "integer", "minimum": 1, "default": DEFAULT_MAX_REPLICAS,
                        "description": "the most replicas an env may ask for"
                    }
                }
            })
            .to_string(),
        )
    }

    fn check_config(settings: &str) -> Result<(), String> {
        Settings::parse(settings).map(drop)
    }
}

impl Validator for Rules {
    fn validate_env(settings: &str, _platform: &Platform, env: &EnvSpec) -> Vec<Violation> {
        let settings = match Settings::parse(settings) {
            Ok(settings) => settings,
            // The host checked the settings at load, so this is not expected; refuse
            // rather than judge by rules nobody configured.
            Err(e) => return vec![violation("settings", "plugin.settings.invalid", e)],
        };
        let mut out = Vec::new();
        if env.replicas > settings.max_replicas {
            out.push(violation(
                "replicas",
                "env.replicas.too_many",
                format!("{} replicas is more than the {} allowed here", env.replicas, settings.max_replicas),
            ));
        }
        out
    }
}

fn violation(field: &str, code: &str, message: impl Into<String>) -> Violation {
    Violation { field: field.into(), code: code.into(), message: message.into() }
}

warship_plugin::export!(validator: Rules);

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::types::{ResourceAmounts, Resources};

    fn env(replicas: u32) -> EnvSpec {
        let none = ResourceAmounts { cpu: None, memory: None };
        EnvSpec {
            name: "shop".into(),
            tomcat: "10.1".into(),
            jdk: "17".into(),
            replicas,
            node_num: None,
            jvm_options: String::new(),
            env: Vec::new(),
            resources: Resources { requests: none.clone(), limits: none },
            context_path: "/".into(),
        }
    }

    fn codes(settings: &str, env: &EnvSpec) -> Vec<String> {
        Rules::validate_env(settings, &Platform { catalog: Vec::new() }, env).into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<Rules>();
    }

    #[test]
    fn too_many_replicas_are_refused() {
        assert_eq!(codes("", &env(4)), Vec::<String>::new());
        assert_eq!(codes("", &env(5)), ["env.replicas.too_many"]);
        assert_eq!(codes(r#"{"max-replicas": 5}"#, &env(5)), Vec::<String>::new());
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (settings, named) in
            [(r#"{"max-replicas": 0}"#, "max-replicas"), (r#"{"max_replicas": 3}"#, "max_replicas")]
        {
            let err = Rules::check_config(settings).unwrap_err();
            assert!(err.contains(named), "{settings}: {err}");
        }
        assert_eq!(codes(r#"{"max_replicas": 3}"#, &env(1)), ["plugin.settings.invalid"]);
    }
}
