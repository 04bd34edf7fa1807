//! Host bindings for the three worlds of `wit/plugin.wit`. The shared `types`
//! interface is generated once (with the validator) and reused by the others, so a
//! `RolloutState` is one Rust type whichever world it crosses.

pub mod validator {
    wasmtime::component::bindgen!({
        world: "validator",
        path: "../wit",
    });
}

pub mod template {
    wasmtime::component::bindgen!({
        world: "template",
        path: "../wit",
        with: { "warship:plugin/types": super::validator::warship::plugin::types },
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "strategy",
        path: "../wit",
        with: { "warship:plugin/types": super::validator::warship::plugin::types },
    });
}

pub use validator::warship::plugin::types;
