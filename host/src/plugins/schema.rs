//! A plugin's settings, checked against the JSON Schema its `describe` publishes, so
//! plugins need not hand-write parsers for what a schema says and users learn which
//! field is wrong before the plugin is asked.

use serde_json::Value;

/// One thing wrong with settings: the field (`max-restarts`, `steps.0`; "" for the
/// object itself) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field.as_str() {
            "" => write!(f, "{}", self.message),
            field => write!(f, "{field}: {}", self.message),
        }
    }
}

/// A compiled settings schema; a plugin that publishes none accepts what its
/// `check-config` accepts.
pub struct SettingsSchema {
    validator: Option<jsonschema::Validator>,
    /// The top-level keys the schema lists, to name when an unknown one is given.
    known: Vec<String>,
}

impl std::fmt::Debug for SettingsSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.validator.is_some() { "SettingsSchema(..)" } else { "SettingsSchema(none)" })
    }
}

impl SettingsSchema {
    /// From `describe`'s `settings-schema` text ("" for none).
    pub fn compile(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self { validator: None, known: Vec::new() });
        }
        let schema: Value = serde_json::from_str(text).map_err(|e| format!("its settings schema is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| format!("its settings schema is not a valid JSON Schema: {e}"))?;
        let known = schema.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default();
        Ok(Self { validator: Some(validator), known })
    }

    /// Every problem with `settings`, in the schema's order. A key the schema does not
    /// know is a problem of that key (`step-pod: not a setting of this plugin`), not of
    /// the object around it.
    pub fn problems(&self, settings: &Value) -> Vec<SettingsProblem> {
        let Some(validator) = &self.validator else { return Vec::new() };
        let mut problems = Vec::new();
        for error in validator.iter_errors(settings) {
            let at = field_of(&error.instance_path().to_string());
            match error.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let known = match at.as_str() {
                        "" if !self.known.is_empty() => format!(" (known: {})", self.known.join(", ")),
                        _ => String::new(),
                    };
                    for key in unexpected {
                        let field = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
                        problems.push(SettingsProblem { field, message: format!("not a setting of this plugin{known}") });
                    }
                }
                _ => problems.push(SettingsProblem { field: at, message: error.to_string() }),
            }
        }
        problems
    }
}

/// `/limits/max-restarts` → `limits.max-restarts`: fields as platform.toml and the API
/// spell them.
fn field_of(pointer: &str) -> String {
    pointer.split('/').skip(1).map(|part| part.replace("~1", "/").replace("~0", "~")).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "additionalProperties": false,
        "properties": {
            "steps": {"type": "integer", "minimum": 1, "maximum": 100},
            "limits": {"type": "object", "properties": {"max-restarts": {"type": "integer", "minimum": 0}}}
        }
    }"#;

    #[test]
    fn every_problem_names_its_field() {
        let schema = SettingsSchema::compile(SCHEMA).unwrap();
        assert_eq!(schema.problems(&json!({"steps": 4, "limits": {"max-restarts": 2}})), []);
        let problems = schema.problems(&json!({"steps": 0, "limits": {"max-restarts": "two"}}));
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["limits.max-restarts", "steps"]);
        assert!(problems[1].message.contains("less than the minimum of 1"), "{}", problems[1]);
        assert!(problems[0].to_string().starts_with("limits.max-restarts: "), "{}", problems[0]);
    }

    #[test]
    fn unknown_keys_are_named_with_the_known_ones() {
        let schema = SettingsSchema::compile(SCHEMA).unwrap();
        let problems = schema.problems(&json!({"step": 4}));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].to_string(), "step: not a setting of this plugin (known: limits, steps)");
    }

    #[test]
    fn no_schema_accepts_anything_and_a_broken_one_is_refused() {
        assert_eq!(SettingsSchema::compile("").unwrap().problems(&json!({"x": 1})), []);
        assert!(SettingsSchema::compile("{not json").unwrap_err().contains("not JSON"));
        assert!(SettingsSchema::compile(r#"{"type": 12}"#).unwrap_err().contains("not a valid JSON Schema"));
    }

    #[test]
    fn pointer_escapes_become_plain_names() {
        assert_eq!(field_of(""), "");
        assert_eq!(field_of("/a~1b/c~0d/0"), "a/b.c~d.0");
    }
}
