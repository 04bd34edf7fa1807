//! A strategy's settings form, generated from the JSON Schema its `describe` publishes:
//! one control per top-level property (numbers, yes/no, a choice for an `enum`, JSON
//! for arrays and objects), the admin's value (or the schema's default) shown as what
//! an empty field means, and keys the admin fixed shown but not editable. What the
//! browser sends back is typed by the same schema; the plugin's schema check and
//! `check-config` then judge it, as for an API deploy.

use maud::{html, Markup};
use serde_json::{Map, Value};

use super::layout::FieldErrors;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Integer,
    Number,
    Boolean,
    Choice(Vec<String>),
    Text,
    /// Arrays and objects: edited as JSON text.
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub kind: Kind,
    pub description: Option<String>,
    /// What an empty field means: the admin's value, else the schema's default.
    pub default: Option<Value>,
    /// The admin set it and a deploy may not change it.
    pub fixed: bool,
}

/// The form control's `name` and `id` of a setting.
pub fn control(strategy: &str, key: &str) -> String {
    format!("settings.{strategy}.{key}")
}

pub fn control_id(strategy: &str, key: &str) -> String {
    let safe: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("setting-{strategy}-{safe}")
}

/// The settings a schema describes, in its order; `admin` is the admin's settings and
/// `fixed` the keys a deploy cannot override.
pub fn settings(schema: &Value, admin: &Map<String, Value>, fixed: &[&str]) -> Vec<Setting> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .map(|(key, property)| {
            let kind =
                match (property.get("enum").and_then(Value::as_array), property.get("type").and_then(Value::as_str)) {
                    (Some(choices), _) => Kind::Choice(choices.iter().map(text_of).collect()),
                    (None, Some("integer")) => Kind::Integer,
                    (None, Some("number")) => Kind::Number,
                    (None, Some("boolean")) => Kind::Boolean,
                    (None, Some("string")) => Kind::Text,
                    _ => Kind::Json,
                };
            Setting {
                key: key.clone(),
                kind,
                description: property.get("description").and_then(Value::as_str).map(str::to_owned),
                default: admin.get(key).or_else(|| property.get("default")).cloned(),
                fixed: fixed.contains(&key.as_str()),
            }
        })
        .collect()
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The overrides the filled fields ask for (empty fields ask none), typed by the schema;
/// or, per control, why a value is not of its type.
pub fn parse<'a>(
    strategy: &str,
    settings: &[Setting],
    value_of: impl Fn(&str) -> Option<&'a str>,
) -> Result<Map<String, Value>, FieldErrors> {
    let mut overrides = Map::new();
    let mut errors = FieldErrors::default();
    for setting in settings.iter().filter(|s| !s.fixed) {
        let name = control(strategy, &setting.key);
        let Some(text) = value_of(&name).map(str::trim).filter(|t| !t.is_empty()) else { continue };
        let key = &setting.key;
        let value = match &setting.kind {
            Kind::Integer => {
                text.parse::<i64>().map(Value::from).map_err(|_| format!("{key} must be a whole number (got {text:?})"))
            }
            Kind::Number => text
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .ok_or_else(|| format!("{key} must be a number (got {text:?})")),
            Kind::Boolean => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("{key} must be yes or no")),
            },
            Kind::Choice(choices) => match choices.iter().any(|c| c == text) {
                // An enum of numbers or booleans takes its JSON value, one of strings the text.
                true => Ok(serde_json::from_str::<Value>(text)
                    .ok()
                    .filter(|v| !v.is_string())
                    .unwrap_or_else(|| Value::String(text.to_owned()))),
                false => Err(format!("{key} must be one of: {}", choices.join(", "))),
            },
            Kind::Text => Ok(Value::String(text.to_owned())),
            Kind::Json => serde_json::from_str::<Value>(text).map_err(|e| format!("{key} must be JSON: {e}")),
        };
        match value {
            Ok(value) => drop(overrides.insert(key.clone(), value)),
            Err(message) => errors.add(&name, message),
        }
    }
    if errors.is_empty() {
        Ok(overrides)
    } else {
        Err(errors)
    }
}

/// The control a deploy problem's field belongs to: `settings.max-surge` (or deeper,
/// `settings.steps.0`) → that strategy's control of the top-level key.
pub fn control_of_problem(strategy: &str, field: &str) -> Option<String> {
    let rest = field.strip_prefix("settings.")?;
    let key = rest.split('.').next().filter(|k| !k.is_empty())?;
    Some(control(strategy, key))
}

/// One strategy's settings as a fieldset; `values` are what the browser sent last.
pub fn render<'a>(
    strategy: &str,
    settings: &[Setting],
    value_of: impl Fn(&str) -> Option<&'a str>,
    errors: &FieldErrors,
) -> Markup {
    html! {
        @if settings.is_empty() { p.muted { "Strategy " (strategy) " has no settings." } }
        @for setting in settings {
            @let name = control(strategy, &setting.key);
            @let id = control_id(strategy, &setting.key);
            @let value = value_of(&name).unwrap_or_default();
            @let default = setting.default.as_ref().map(|d| match &setting.kind { Kind::Json => serde_json::to_string_pretty(d).unwrap_or_default(), _ => text_of(d) });
            @let hint = format!("{id}-hint");
            div.field data-setting=(setting.key) {
                label for=(id) { (setting.key) }
                @match &setting.kind {
                    Kind::Boolean => {
                        select id=(id) name=(name) disabled[setting.fixed] data-default=[default.as_deref()] aria-describedby=(format!("{hint} {id}-error")) aria-invalid=[errors.invalid(&name)] {
                            option value="" selected[value.is_empty()] { "Default (" (yes_no(default.as_deref())) ")" }
                            option value="true" selected[value == "true"] { "Yes" }
                            option value="false" selected[value == "false"] { "No" }
                        }
                    }
                    Kind::Choice(choices) => {
                        select id=(id) name=(name) disabled[setting.fixed] data-default=[default.as_deref()] aria-describedby=(format!("{hint} {id}-error")) aria-invalid=[errors.invalid(&name)] {
                            option value="" selected[value.is_empty()] { "Default (" (default.as_deref().unwrap_or("none")) ")" }
                            @for choice in choices { option value=(choice) selected[value == choice] { (choice) } }
                        }
                    }
                    Kind::Json => {
                        textarea id=(id) name=(name) rows="4" disabled[setting.fixed] placeholder=[default.as_deref()] data-default=[default.as_deref()]
                            aria-describedby=(format!("{hint} {id}-error")) aria-invalid=[errors.invalid(&name)] { (value) }
                    }
                    kind => {
                        input id=(id) name=(name) type=(if matches!(kind, Kind::Integer | Kind::Number) { "number" } else { "text" })
                            step=[matches!(kind, Kind::Number).then_some("any")] value=(value) placeholder=[default.as_deref()] data-default=[default.as_deref()]
                            disabled[setting.fixed] aria-describedby=(format!("{hint} {id}-error")) aria-invalid=[errors.invalid(&name)];
                    }
                }
                p.hint id=(hint) {
                    @if let Some(description) = &setting.description { (description) ". " }
                    @if setting.fixed { "Set by the platform admin to " code { (default.as_deref().unwrap_or("")) } "; a deploy cannot change it." }
                    @else if let Some(default) = &default { "Empty: " code { (default) } "." }
                }
                (errors.beside(&name, &id))
            }
        }
    }
}

fn yes_no(value: Option<&str>) -> &'static str {
    match value {
        Some("true") => "yes",
        Some("false") => "no",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canary_schema() -> Value {
        json!({"type": "object", "properties": {
            "steps": {"type": "array", "default": [{"weight": 10}]},
            "max-restarts": {"type": "integer", "minimum": 0, "default": 3, "description": "abort after this many restarts"},
            "auto-promote": {"type": "boolean", "default": false},
            "mode": {"enum": ["fast", "slow"]},
            "ratio": {"type": "number"},
            "note": {"type": "string"}
        }})
    }

    #[test]
    fn each_property_gets_a_control_of_its_type_with_the_admins_value_as_default() {
        let admin = json!({"max-restarts": 5, "mode": "slow"});
        let found = settings(&canary_schema(), admin.as_object().unwrap(), &["mode"]);
        let by_key = |k: &str| found.iter().find(|s| s.key == k).unwrap().clone();
        assert_eq!(by_key("steps").kind, Kind::Json);
        assert_eq!(by_key("max-restarts").default, Some(json!(5)), "the admin's value, not the schema's");
        assert_eq!(by_key("auto-promote").default, Some(json!(false)));
        assert_eq!(by_key("mode").kind, Kind::Choice(vec!["fast".into(), "slow".into()]));
        assert!(by_key("mode").fixed && !by_key("steps").fixed);

        let html = render("canary", &found, |_| None, &FieldErrors::default()).into_string();
        assert!(
            html.contains(r#"name="settings.canary.max-restarts""#)
                && html.contains(r#"id="setting-canary-max-restarts""#),
            "{html}"
        );
        assert!(html.contains(r#"placeholder="5""#) && html.contains("abort after this many restarts"), "{html}");
        assert!(html.contains(r#"<label for="setting-canary-steps">"#), "every control has its label");
        assert!(html.contains("disabled") && html.contains("Set by the platform admin"), "{html}");
    }

    #[test]
    fn filled_fields_become_typed_overrides_and_wrong_ones_errors_beside_them() {
        let found = settings(&canary_schema(), &Map::new(), &[]);
        let sent = [
            ("settings.canary.max-restarts", "7"),
            ("settings.canary.auto-promote", "true"),
            ("settings.canary.steps", r#"[{"weight": 50}]"#),
            ("settings.canary.ratio", ""),
            ("settings.canary.note", "hi"),
        ];
        let value_of = |name: &str| sent.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let overrides = parse("canary", &found, value_of).unwrap();
        assert_eq!(
            Value::Object(overrides),
            json!({"max-restarts": 7, "auto-promote": true, "steps": [{"weight": 50}], "note": "hi"})
        );

        let bad = [
            ("settings.canary.max-restarts", "many"),
            ("settings.canary.steps", "[oops"),
            ("settings.canary.mode", "medium"),
        ];
        let errors = parse("canary", &found, |name| bad.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)).unwrap_err();
        for control in ["settings.canary.max-restarts", "settings.canary.steps", "settings.canary.mode"] {
            assert!(errors.has(control), "{control}: {errors:?}");
        }
    }

    #[test]
    fn fixed_settings_are_never_sent_and_api_fields_find_their_control() {
        let found = settings(&canary_schema(), json!({"note": "x"}).as_object().unwrap(), &["note"]);
        assert!(parse("canary", &found, |n| (n == "settings.canary.note").then_some("y")).unwrap().is_empty());
        assert_eq!(control_of_problem("canary", "settings.steps.0").as_deref(), Some("settings.canary.steps"));
        assert_eq!(control_of_problem("canary", "settings"), None);
        assert_eq!(control_of_problem("canary", "war"), None);
    }
}
