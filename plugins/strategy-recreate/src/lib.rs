//! The `strategy` world's exports, over the pure logic in `recreate.rs`.

mod recreate;

wit_bindgen::generate!({
    world: "strategy",
    path: "../../wit",
    // One set of Rust types for the WIT records, shared with strategy-common's helpers.
    with: { "warship:plugin/types@0.1.0": strategy_common::types },
});

use exports::warship::plugin::{plugin, rollout};
use strategy_common::types::{PluginInfo, RolloutState, Step};

struct Component;

impl plugin::Guest for Component {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings_schema: recreate::settings_schema(),
        }
    }

    fn check_config(settings: String) -> Result<(), String> {
        recreate::check_config(&settings)
    }
}

impl rollout::Guest for Component {
    fn next(settings: String, state: RolloutState) -> Result<Step, String> {
        recreate::next(&settings, &state)
    }
}

// The export symbols' names (`warship:plugin/…#next`) only link as WebAssembly, so
// native test builds keep everything but the export itself.
#[cfg(target_arch = "wasm32")]
export!(Component);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        let info = <Component as plugin::Guest>::describe();
        assert_eq!((info.name.as_str(), info.version.as_str()), ("strategy-recreate", "0.1.0"));
        let schema: serde_json::Value = serde_json::from_str(&info.settings_schema).unwrap();
        for (key, property) in schema["properties"].as_object().unwrap() {
            let settings = serde_json::json!({ key: property["default"] }).to_string();
            assert_eq!(<Component as plugin::Guest>::check_config(settings.clone()), Ok(()), "{settings}");
        }
    }
}
