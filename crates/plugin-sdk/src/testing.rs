//! Checks every plugin's unit tests should make.

use serde_json::Value;

use crate::Plugin;

/// What admins rely on: `describe`'s settings schema is a JSON Schema of an object
/// (or "", no settings), every property has a default, and `check-config` accepts each
/// default on its own, as well as "" and "{}". Panics saying what is wrong.
///
/// ```
/// # struct MyPlugin;
/// # impl warship_plugin::Plugin for MyPlugin {
/// #     fn check_config(_: &str) -> Result<(), String> { Ok(()) }
/// # }
/// // In the plugin's tests: #[test] fn describes_itself_with_a_schema_whose_defaults_it_accepts()
/// warship_plugin::testing::assert_schema_defaults_accepted::<MyPlugin>();
/// ```
pub fn assert_schema_defaults_accepted<T: Plugin>() {
    for empty in ["", "{}"] {
        assert_eq!(T::check_config(empty), Ok(()), "check-config refuses {empty:?}, which means the defaults");
    }
    let text = T::info().settings_schema;
    if text.is_empty() {
        return;
    }
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the settings schema is not JSON: {e}"));
    assert_eq!(schema["type"], "object", "the settings schema describes an object: {schema}");
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    for (key, property) in properties {
        let default = property.get("default").unwrap_or_else(|| panic!("settings property {key:?} has no default"));
        let settings = serde_json::json!({ key: default }).to_string();
        assert_eq!(T::check_config(&settings), Ok(()), "check-config refuses the schema's default: {settings}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Info;

    struct Good;

    impl Plugin for Good {
        fn info() -> Info {
            Info::with_schema(r#"{"type":"object","properties":{"n":{"type":"integer","default":2}}}"#)
        }

        fn check_config(settings: &str) -> Result<(), String> {
            crate::parse_settings::<serde_json::Value>(settings).map(drop)
        }
    }

    struct RefusesItsDefault;

    impl Plugin for RefusesItsDefault {
        fn info() -> Info {
            Good::info()
        }

        fn check_config(settings: &str) -> Result<(), String> {
            match settings.contains("\"n\"") {
                true => Err("n must be odd".into()),
                false => Ok(()),
            }
        }
    }

    struct NoSettings;

    impl Plugin for NoSettings {
        fn check_config(_: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn passes_a_plugin_that_accepts_its_defaults() {
        assert_schema_defaults_accepted::<Good>();
        assert_schema_defaults_accepted::<NoSettings>();
    }

    #[test]
    #[should_panic(expected = "refuses the schema's default")]
    fn fails_one_that_refuses_them() {
        assert_schema_defaults_accepted::<RefusesItsDefault>();
    }
}
