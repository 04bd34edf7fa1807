//! Host bindings for every released contract (`wit/<version>/plugin.wit`), three worlds
//! each. The shared `types` interface of 0.2.0 is generated once (with its validator) and
//! reused by every world whose records have the same shapes: component types are
//! structural, so 0.1.0's validators and templates take the same Rust records. Only
//! 0.1.0's strategy world has types of its own (its rollout state and actions differ).

/// A released version of the plugin contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum Contract {
    #[serde(rename = "0.1.0")]
    V0_1,
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl Contract {
    /// Newest first.
    pub const ACCEPTED: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    pub fn parse(version: &str) -> Option<Self> {
        Self::ACCEPTED.into_iter().find(|c| c.version() == version)
    }

    /// "0.2.0, 0.1.0", for messages.
    pub fn accepted() -> String {
        Self::ACCEPTED.map(Contract::version).join(", ")
    }
}

pub mod v0_2 {
    pub mod validator {
        wasmtime::component::bindgen!({
            world: "validator",
            path: "../wit/0.2.0",
        });
    }

    pub mod template {
        wasmtime::component::bindgen!({
            world: "template",
            path: "../wit/0.2.0",
            with: { "warship:plugin/types": super::validator::warship::plugin::types },
        });
    }

    pub mod strategy {
        wasmtime::component::bindgen!({
            world: "strategy",
            path: "../wit/0.2.0",
            with: { "warship:plugin/types": super::validator::warship::plugin::types },
        });
    }

    pub use validator::warship::plugin::types;
}

pub mod v0_1 {
    pub mod validator {
        wasmtime::component::bindgen!({
            world: "validator",
            path: "../wit/0.1.0",
            with: { "warship:plugin/types": crate::plugins::bindings::v0_2::types },
        });
    }

    pub mod template {
        wasmtime::component::bindgen!({
            world: "template",
            path: "../wit/0.1.0",
            with: { "warship:plugin/types": crate::plugins::bindings::v0_2::types },
        });
    }

    pub mod strategy {
        wasmtime::component::bindgen!({
            world: "strategy",
            path: "../wit/0.1.0",
        });
    }

    pub use strategy::warship::plugin::types;
}

pub use v0_2::types;

/// The contract a component was built against, from the interfaces it exports
/// (`warship:plugin/rollout@0.2.0`); `Err` says what was found instead.
pub fn contract_of(component: &wasmtime::component::Component, engine: &wasmtime::Engine) -> Result<Contract, String> {
    let mut versions: Vec<String> = component
        .component_type()
        .exports(engine)
        .filter_map(|(name, _)| name.strip_prefix("warship:plugin/"))
        .map(|interface| interface.split_once('@').map_or("(none)", |(_, version)| version).to_owned())
        .collect();
    versions.sort();
    versions.dedup();
    match versions.as_slice() {
        [] => Err("it exports no warship:plugin interface".into()),
        [version] => Contract::parse(version).ok_or_else(|| format!("it was built against warship:plugin@{version}")),
        several => Err(format!("it exports interfaces of several contract versions ({})", several.join(", "))),
    }
}

/// The kind a component is, from the interface only its world exports (`rollout`,
/// `validate` or `render`).
pub fn kind_of(component: &wasmtime::component::Component, engine: &wasmtime::Engine) -> Option<crate::config::PluginKind> {
    use crate::config::PluginKind;
    component.component_type().exports(engine).find_map(|(name, _)| {
        let interface = name.strip_prefix("warship:plugin/")?;
        match interface.split('@').next()? {
            "rollout" => Some(PluginKind::Strategy),
            "validate" => Some(PluginKind::Validator),
            "render" => Some(PluginKind::Template),
            _ => None,
        }
    })
}
