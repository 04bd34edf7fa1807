//! Write warship plugins in Rust: validators, Dockerfile templates and rollout
//! strategies, as WebAssembly components speaking `warship:plugin@0.2.0` (`wit/plugin.wit`).
//!
//! # How to write a plugin
//!
//! A plugin is a library crate built for `wasm32-wasip2` (`crate-type = ["cdylib", "rlib"]`)
//! that depends on this one. It implements [`Plugin`] (what every plugin answers: its
//! settings schema and `check-config`) and the trait of its kind ([`Strategy`],
//! [`Validator`] or [`Template`]) for a type of its own, and exports that type once with
//! [`export!`]. It never names a WIT file: the bindings are generated here.
//!
//! Every call gets the plugin's settings, the JSON text an admin wrote in platform.toml
//! ("" when none), and must be a pure function of its arguments: a plugin has no files,
//! no network, no clock and no memory between calls. A strategy in particular is a step
//! function: the host observes the rollout, asks [`Strategy::next`], persists the answer,
//! carries it out and asks again, so every answer is something to do *now*.
//!
//! A minimal strategy: scale the candidate up beside the stable release, wait until it
//! is ready, done (the host then points the traffic at it and removes the old pods).
//!
//! ```
//! use warship_plugin::strategy::{converge, drive, Limits, Outcome};
//! use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};
//! use warship_plugin::{Info, Plugin, Strategy};
//!
//! pub struct AllAtOnce;
//!
//! impl Plugin for AllAtOnce {
//!     fn info() -> Info {
//!         Info::with_schema(warship_plugin::strategy::schema_with_limits(serde_json::json!({})))
//!     }
//!
//!     fn check_config(settings: &str) -> Result<(), String> {
//!         warship_plugin::parse_settings::<serde_json::Value>(settings).map(drop)
//!     }
//! }
//!
//! impl Strategy for AllAtOnce {
//!     fn next(_settings: &str, state: &RolloutState) -> Result<Step, String> {
//!         if let Some(abort) = Limits::default().abort_step(state) {
//!             return Ok(abort); // the candidate keeps crashing: the host restores the old release
//!         }
//!         let stable = state.stable.map_or(0, |s| s.replicas);
//!         drive(state, |index, _| match index {
//!             0 => match converge(state, ScaleTo { stable, candidate: state.desired_replicas }) {
//!                 Some(action) => Outcome::Act(action, "starting the new release".into()),
//!                 None => Outcome::Next,
//!             },
//!             _ => Outcome::Act(Action::Done, "the new release is ready".into()),
//!         })
//!     }
//! }
//!
//! warship_plugin::export!(strategy: AllAtOnce);
//! # fn main() {}
//! ```
//!
//! Test it natively with `cargo test`: the export itself only exists on wasm32, and with
//! the `sim` feature [`sim::Cluster`] runs a strategy through the host's own rollout
//! bookkeeping on a simulated cluster. [`testing`] has the check every plugin owes.
//! `cargo build --release --target wasm32-wasip2` writes the component.

use serde::de::DeserializeOwned;

// The export macros wit-bindgen generates name their bindings by this crate's name, as
// a plugin crate sees it; inside this crate that name is itself.
extern crate self as warship_plugin;

pub mod dockerfile;
pub mod strategy;
pub mod testing;

#[cfg(feature = "sim")]
pub mod sim;

mod types_only {
    wit_bindgen::generate!({
        inline: "package warship:plugin-sdk; world types { import warship:plugin/types@0.2.0; }",
        path: "wit",
        with: { "warship:plugin/types@0.2.0": generate },
        generate_unused_types: true,
        additional_derives: [PartialEq],
    });
}

/// The WIT records and variants of `warship:plugin/types@0.2.0`, one set of Rust types
/// shared by every world's bindings and by the helpers here.
pub use types_only::warship::plugin::types;

/// The raw wit-bindgen output; plugins use [`export!`] and the traits instead.
///
/// Each WIT world is generated in parts, one module per exported interface, because
/// every world exports `plugin` and wit-bindgen's public export macros are named by
/// interface, so generating the three worlds whole would define `plugin`'s twice. A
/// plugin exports the `plugin` part and its kind's part; the component's world is their
/// union, which is exactly its WIT world.
pub mod bindings {
    /// Generates one part: `$world` of the package below, with the shared types.
    macro_rules! part {
        ($module:ident, $world:tt, $bindings:tt) => {
            pub mod $module {
                wit_bindgen::generate!({
                    inline: "package warship:plugin-sdk;
                        world plugin { export warship:plugin/plugin@0.2.0; }
                        world strategy { export warship:plugin/rollout@0.2.0; }
                        world validator { export warship:plugin/validate@0.2.0; }
                        world template { export warship:plugin/render@0.2.0; }",
                    world: $world,
                    path: "wit",
                    with: { "warship:plugin/types@0.2.0": crate::types },
                    // The export glue is expanded in the plugin crate, by `export!`.
                    pub_export_macro: true,
                    default_bindings_module: $bindings,
                });
            }
        };
    }

    part!(plugin, "plugin", "warship_plugin::bindings::plugin");
    part!(strategy, "strategy", "warship_plugin::bindings::strategy");
    part!(validator, "validator", "warship_plugin::bindings::validator");
    part!(template, "template", "warship_plugin::bindings::template");
}

use types::{BuildContext, EnvSpec, Platform, PluginInfo, RolloutState, Step, Violation, WarFacts};

/// What a plugin says about itself (`describe`) beside its name and version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// JSON Schema of the settings object, as JSON text; "" when the plugin takes none.
    /// The host checks admins' settings against it, and shows it.
    pub settings_schema: String,
    /// The plugin's name; `None`: the plugin crate's `CARGO_PKG_NAME`.
    pub name: Option<String>,
    /// Its version; `None`: the plugin crate's `CARGO_PKG_VERSION`.
    pub version: Option<String>,
}

impl Info {
    pub fn with_schema(settings_schema: impl Into<String>) -> Info {
        Info { settings_schema: settings_schema.into(), ..Info::default() }
    }
}

/// What every plugin answers (WIT interface `plugin`).
pub trait Plugin {
    /// Answered by `describe`; the default takes no settings.
    fn info() -> Info {
        Info::default()
    }

    /// Called once at load with the admin's settings; an error names the bad key, and
    /// stops the host's startup with it.
    fn check_config(settings: &str) -> Result<(), String>;
}

/// A rollout strategy (WIT world `strategy`): the next step of a rollout, from its
/// observed state alone. See [`strategy`] for the building blocks.
pub trait Strategy: Plugin {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String>;
}

/// A validator (WIT world `validator`): every reason to refuse an env or a deploy, at once.
pub trait Validator: Plugin {
    fn validate_env(settings: &str, platform: &Platform, env: &EnvSpec) -> Vec<Violation>;

    /// Every reason not to deploy this WAR to this env; by default, the env's violations.
    fn validate_deploy(settings: &str, platform: &Platform, env: &EnvSpec, _war: &WarFacts) -> Vec<Violation> {
        Self::validate_env(settings, platform, env)
    }
}

/// A Dockerfile template (WIT world `template`): the Dockerfile text for one build.
pub trait Template: Plugin {
    fn render_dockerfile(settings: &str, context: &BuildContext) -> Result<String, String>;
}

/// What `describe` answers for `T`, named `crate_name` and `crate_version` unless its
/// [`Info`] says otherwise. [`export!`] passes the plugin crate's package name and version.
pub fn plugin_info<T: Plugin>(crate_name: &str, crate_version: &str) -> PluginInfo {
    let info = T::info();
    PluginInfo {
        name: info.name.unwrap_or_else(|| crate_name.into()),
        version: info.version.unwrap_or_else(|| crate_version.into()),
        settings_schema: info.settings_schema,
    }
}

/// Reads a plugin's settings: "" (nothing configured) and "{}" both mean the defaults.
/// The error names the offending key, as serde's messages do ("unknown field `x`,
/// expected one of …"), so use `#[serde(deny_unknown_fields, rename_all = "kebab-case",
/// default)]` on the settings struct.
pub fn parse_settings<T: DeserializeOwned + Default>(settings: &str) -> Result<T, String> {
    if settings.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))
}

/// Exports a plugin: `export!(strategy: MyStrategy)`, `export!(validator: MyValidator)`
/// or `export!(template: MyTemplate)`, once per plugin crate, where the type implements
/// [`Plugin`] and the kind's trait. `describe` names the plugin after the invoking
/// crate's package unless its [`Info`] says otherwise.
///
/// The export symbols (`warship:plugin/rollout@0.2.0#next`, …) only link as WebAssembly,
/// so on other targets this checks the traits and exports nothing, and `cargo test` of
/// a plugin runs natively.
#[macro_export]
macro_rules! export {
    (strategy: $ty:ty) => {
        const _: () = {
            #[allow(dead_code)]
            struct Exports;
            $crate::__export_plugin!(Exports, $ty);
            impl $crate::bindings::strategy::exports::warship::plugin::rollout::Guest for Exports {
                fn next(
                    settings: ::std::string::String,
                    state: $crate::types::RolloutState,
                ) -> ::std::result::Result<$crate::types::Step, ::std::string::String> {
                    <$ty as $crate::Strategy>::next(&settings, &state)
                }
            }
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::strategy::export!(Exports with_types_in $crate::bindings::strategy);
        };
    };
    (validator: $ty:ty) => {
        const _: () = {
            #[allow(dead_code)]
            struct Exports;
            $crate::__export_plugin!(Exports, $ty);
            impl $crate::bindings::validator::exports::warship::plugin::validate::Guest for Exports {
                fn validate_env(
                    settings: ::std::string::String,
                    platform: $crate::types::Platform,
                    env: $crate::types::EnvSpec,
                ) -> ::std::vec::Vec<$crate::types::Violation> {
                    <$ty as $crate::Validator>::validate_env(&settings, &platform, &env)
                }

                fn validate_deploy(
                    settings: ::std::string::String,
                    platform: $crate::types::Platform,
                    env: $crate::types::EnvSpec,
                    war: $crate::types::WarFacts,
                ) -> ::std::vec::Vec<$crate::types::Violation> {
                    <$ty as $crate::Validator>::validate_deploy(&settings, &platform, &env, &war)
                }
            }
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::validator::export!(Exports with_types_in $crate::bindings::validator);
        };
    };
    (template: $ty:ty) => {
        const _: () = {
            #[allow(dead_code)]
            struct Exports;
            $crate::__export_plugin!(Exports, $ty);
            impl $crate::bindings::template::exports::warship::plugin::render::Guest for Exports {
                fn render_dockerfile(
                    settings: ::std::string::String,
                    context: $crate::types::BuildContext,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    <$ty as $crate::Template>::render_dockerfile(&settings, &context)
                }
            }
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::template::export!(Exports with_types_in $crate::bindings::template);
        };
    };
}

/// The `plugin` interface's half of [`export!`], which every kind exports.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($exports:ident, $ty:ty) => {
        impl $crate::bindings::plugin::exports::warship::plugin::plugin::Guest for $exports {
            fn describe() -> $crate::types::PluginInfo {
                // Expanded in the plugin crate, so these are its package's.
                $crate::plugin_info::<$ty>(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            }

            fn check_config(settings: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                <$ty as $crate::Plugin>::check_config(&settings)
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::plugin::export!($exports with_types_in $crate::bindings::plugin);
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
    struct Demo {
        max_things: u32,
    }

    #[test]
    fn empty_settings_mean_defaults_and_unknown_keys_are_named() {
        assert_eq!(parse_settings::<Demo>(""), Ok(Demo::default()));
        assert_eq!(parse_settings::<Demo>(" {} "), Ok(Demo::default()));
        assert_eq!(parse_settings::<Demo>(r#"{"max-things": 2}"#), Ok(Demo { max_things: 2 }));
        let err = parse_settings::<Demo>(r#"{"max_things": 2}"#).unwrap_err();
        assert!(err.starts_with("invalid settings: ") && err.contains("max_things"), "{err}");
    }

    struct Named;

    impl Plugin for Named {
        fn info() -> Info {
            Info { version: Some("2.0.0".into()), ..Info::with_schema("{}") }
        }

        fn check_config(_: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn describe_takes_the_crate_name_and_version_unless_told_otherwise() {
        let info = plugin_info::<Named>("named", "0.1.0");
        assert_eq!(
            (info.name.as_str(), info.version.as_str(), info.settings_schema.as_str()),
            ("named", "2.0.0", "{}")
        );
    }

    // The macro expands here as in a plugin crate (natively: everything but the export).
    impl Strategy for Named {
        fn next(_: &str, _: &RolloutState) -> Result<Step, String> {
            Err("not here".into())
        }
    }
    export!(strategy: Named);
}
