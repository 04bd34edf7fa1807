//! The admin's settings for this plugin, from platform.toml.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::parse_settings;

const DEFAULT_MAX_REPLICAS: u32 = 20;
const DEFAULT_MAX_WAR_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Settings {
    pub max_replicas: u32,
    pub max_war_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_replicas: DEFAULT_MAX_REPLICAS, max_war_bytes: DEFAULT_MAX_WAR_BYTES }
    }
}

impl Settings {
    /// "" and "{}" mean the defaults. serde's message names an unknown key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        // Zero would refuse every env or every WAR: surely a mistake, so say so at load.
        if settings.max_replicas == 0 {
            return Err("invalid settings: max-replicas must be at least 1".into());
        }
        if settings.max_war_bytes == 0 {
            return Err("invalid settings: max-war-bytes must be at least 1".into());
        }
        Ok(settings)
    }
}

pub fn schema() -> String {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "max-replicas": {
                "type": "integer", "minimum": 1, "default": DEFAULT_MAX_REPLICAS,
                "description": "the most replicas an env may ask for"
            },
            "max-war-bytes": {
                "type": "integer", "minimum": 1, "default": DEFAULT_MAX_WAR_BYTES,
                "description": "the largest WAR, in bytes, that may be deployed"
            }
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Settings::parse(""), Ok(Settings::default()));
        assert_eq!(Settings::parse(" {} "), Ok(Settings { max_replicas: 20, max_war_bytes: 1_073_741_824 }));
        assert_eq!(
            Settings::parse(r#"{"max-replicas": 5, "max-war-bytes": 10}"#),
            Ok(Settings { max_replicas: 5, max_war_bytes: 10 })
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (text, named) in [
            (r#"{"max-replicas": 0}"#, "max-replicas"),
            (r#"{"max-war-bytes": 0}"#, "max-war-bytes"),
            (r#"{"max-wars": 1}"#, "max-wars"),
            (r#"{"max-replicas": "3"}"#, "invalid type"),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert!(err.contains(named), "{text}: {err}");
        }
    }
}
