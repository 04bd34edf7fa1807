//! The `template` world's exports, over the pure logic in `dockerfile.rs`.

mod dockerfile;

wit_bindgen::generate!({
    world: "template",
    path: "../../wit/0.2.0",
});

use exports::warship::plugin::{plugin, render};
use warship::plugin::types::{BuildContext, PluginInfo};

struct Component;

impl plugin::Guest for Component {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings_schema: dockerfile::settings_schema(),
        }
    }

    fn check_config(settings: String) -> Result<(), String> {
        dockerfile::check_config(&settings)
    }
}

impl render::Guest for Component {
    fn render_dockerfile(settings: String, context: BuildContext) -> Result<String, String> {
        dockerfile::render(&settings, &context)
    }
}

// The export symbols' names (`warship:plugin/…#render-dockerfile`) only link as
// WebAssembly, so native test builds keep everything but the export itself.
#[cfg(target_arch = "wasm32")]
export!(Component);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        let info = <Component as plugin::Guest>::describe();
        assert_eq!((info.name.as_str(), info.version.as_str()), ("template-tomcat", "0.1.0"));
        let schema: serde_json::Value = serde_json::from_str(&info.settings_schema).unwrap();
        for (key, property) in schema["properties"].as_object().unwrap() {
            let settings = serde_json::json!({ key: property["default"] }).to_string();
            assert_eq!(<Component as plugin::Guest>::check_config(settings.clone()), Ok(()), "{settings}");
        }
    }
}
