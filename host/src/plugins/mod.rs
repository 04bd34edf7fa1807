//! Plugins: validators, the Dockerfile template and rollout strategies, as
//! WebAssembly components behind `wit/<version>/plugin.wit` (0.2.0, and 0.1.0 through
//! an adapter). This module alone talks to wasmtime. A plugin that traps, loops, exhausts its memory or answers nonsense
//! fails that one call with a [`PluginError`] naming it; the host carries on.

mod adapter;
mod bindings;
mod builtin;
mod convert;
pub mod runtime;
mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

pub use bindings::{types, Contract};
use bindings::v0_2::{strategy, template, validator};
use bindings::v0_1;
pub use runtime::{Limits, Loaded, Runtime};
pub use schema::{SettingsProblem, SettingsSchema};

use crate::config::{Config, PluginConfig, PluginKind};
use crate::domain::{RolloutState, Step, Violation};

/// What went wrong inside one plugin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("ran past its deadline of {} ms", deadline.as_millis())]
    DeadlineExceeded { deadline: Duration },
    #[error("tried to grow its memory to {wanted} bytes, past its cap of {cap} bytes")]
    MemoryExceeded { cap: usize, wanted: usize },
    #[error("trapped: {0}")]
    Trapped(String),
    #[error("answered something that does not fit the plugin contract: {0}")]
    InvalidAnswer(String),
    /// The plugin itself reported an error (its `result` was `err`).
    #[error("{0}")]
    Refused(String),
    #[error("could not start: {0}")]
    Instantiate(String),
    #[error("is not loaded on this host")]
    NotLoaded,
    #[error("found all {slots} plugin instance slots busy for {}s; try again", waited.as_secs())]
    Busy { slots: u32, waited: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} {failure}")]
pub struct PluginError {
    pub plugin: String,
    pub failure: PluginFailure,
}

impl PluginError {
    /// A plugin a record names that this host no longer loads.
    pub fn gone(plugin: &str) -> Self {
        Self { plugin: plugin.to_owned(), failure: PluginFailure::NotLoaded }
    }
}

/// Why a plugin could not be loaded at startup.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {name}: cannot read {source_path}: {error}")]
    Read { name: String, source_path: String, error: std::io::Error },
    #[error("plugin {name}: no built-in plugin is called {builtin:?}; built-ins are: {known}")]
    UnknownBuiltin { name: String, builtin: String, known: String },
    #[error("plugin {name}: {found}, which this host does not load; it loads warship:plugin {accepted} (rebuild it against wit/{newest}/plugin.wit)")]
    Contract { name: String, found: String, accepted: String, newest: &'static str },
    #[error("plugin {name}: not a {kind} component: {error}")]
    Component { name: String, kind: &'static str, error: String },
    #[error("plugin {name}: its settings were refused: {message} (fix [[plugins]] name = {name:?} settings in platform.toml)")]
    Settings { name: String, message: String },
    #[error("plugin {name}: {message}; its describe must publish a JSON Schema (or \"\" for none)")]
    Schema { name: String, message: String },
    #[error("plugin {name}: memory_mb = {memory_mb} is above the most a plugin may have, {max_mb}")]
    TooMuchMemory { name: String, memory_mb: u64, max_mb: u64 },
    #[error("plugin {0}")]
    Call(#[from] PluginError),
}

enum Pre {
    Validator(validator::ValidatorPre<runtime::CallState>),
    Template(template::TemplatePre<runtime::CallState>),
    Strategy(strategy::StrategyPre<runtime::CallState>),
    ValidatorV0_1(v0_1::validator::ValidatorPre<runtime::CallState>),
    TemplateV0_1(v0_1::template::TemplatePre<runtime::CallState>),
    StrategyV0_1(v0_1::strategy::StrategyPre<runtime::CallState>),
}

impl Pre {
    fn kind(&self) -> PluginKind {
        match self {
            Pre::Validator(_) | Pre::ValidatorV0_1(_) => PluginKind::Validator,
            Pre::Template(_) | Pre::TemplateV0_1(_) => PluginKind::Template,
            Pre::Strategy(_) | Pre::StrategyV0_1(_) => PluginKind::Strategy,
        }
    }
}

/// A loaded plugin, ready to be called.
pub struct Plugin {
    pub name: String,
    pub kind: PluginKind,
    pub source: String,
    pub sha256: String,
    pub version: String,
    /// The contract version it was built against.
    pub contract: Contract,
    pub settings_schema: String,
    schema: SettingsSchema,
    /// Settings as JSON text, passed to every call.
    settings: String,
    /// Keys of `settings` a deploy may still override (the rest are the admin's to set).
    overridable: Vec<String>,
    pub limits: Limits,
    pub loaded: Loaded,
    pub load_time: Duration,
    pre: Pre,
    runtime: Runtime,
    /// Lines of the plugin's output the log takes, across its calls.
    log_lines: std::sync::Mutex<runtime::LineBudget>,
}

/// What `GET /api/v1/plugins` shows of each plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginView {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    /// The version of `warship:plugin` it was built against.
    pub contract: Contract,
    pub source: String,
    pub sha256: String,
    pub memory_mb: u64,
    pub deadline_ms: u64,
    /// `cache` when loaded precompiled, `compiled` otherwise.
    pub loaded_from: &'static str,
    pub load_ms: f64,
    /// JSON Schema of the plugin's settings, as the plugin describes it.
    #[schema(value_type = Object)]
    pub settings_schema: serde_json::Value,
}

impl Plugin {
    /// Loads, checks and pre-instantiates one plugin.
    pub fn load(runtime: &Runtime, config: &PluginConfig, defaults: &crate::config::PluginRuntimeConfig) -> Result<Self, LoadError> {
        let started = Instant::now();
        let name = config.name.clone();
        let memory_mb = config.memory_mb.unwrap_or(defaults.memory_mb);
        let max_mb = (runtime::MAX_MEMORY_BYTES >> 20) as u64;
        if memory_mb > max_mb {
            return Err(LoadError::TooMuchMemory { name, memory_mb, max_mb });
        }
        let bytes = match config.source.strip_prefix("builtin:") {
            Some(builtin) => builtin::bytes(builtin)
                .ok_or_else(|| LoadError::UnknownBuiltin {
                    name: name.clone(),
                    builtin: builtin.into(),
                    known: builtin::names().join(", "),
                })?
                .to_vec(),
            None => std::fs::read(&config.source).map_err(|error| LoadError::Read {
                name: name.clone(),
                source_path: config.source.clone(),
                error,
            })?,
        };
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
        let kind_name = kind_name(config.kind);
        let component_error = |error: &dyn std::fmt::Display| LoadError::Component { name: name.clone(), kind: kind_name, error: format!("{error:#}") };
        let (component, loaded) = runtime.component(&bytes, &sha256).map_err(|e| component_error(&e))?;
        let contract = bindings::contract_of(&component, runtime.engine()).map_err(|found| LoadError::Contract {
            name: name.clone(),
            found,
            accepted: Contract::accepted(),
            newest: Contract::ACCEPTED[0].version(),
        })?;
        let instance_pre = runtime.linker().instantiate_pre(&component).map_err(|e| component_error(&e))?;
        let pre = match (config.kind, contract) {
            (PluginKind::Validator, Contract::V0_2) => validator::ValidatorPre::new(instance_pre).map(Pre::Validator),
            (PluginKind::Template, Contract::V0_2) => template::TemplatePre::new(instance_pre).map(Pre::Template),
            (PluginKind::Strategy, Contract::V0_2) => strategy::StrategyPre::new(instance_pre).map(Pre::Strategy),
            (PluginKind::Validator, Contract::V0_1) => v0_1::validator::ValidatorPre::new(instance_pre).map(Pre::ValidatorV0_1),
            (PluginKind::Template, Contract::V0_1) => v0_1::template::TemplatePre::new(instance_pre).map(Pre::TemplateV0_1),
            (PluginKind::Strategy, Contract::V0_1) => v0_1::strategy::StrategyPre::new(instance_pre).map(Pre::StrategyV0_1),
        }
        .map_err(|e| component_error(&e))?;
        let settings = serde_json::to_string(&config.settings).expect("TOML tables convert to JSON");
        let limits = Limits {
            memory_bytes: (memory_mb << 20) as usize,
            deadline: Duration::from_millis(config.deadline_ms.unwrap_or(defaults.deadline_ms)),
        };
        let mut plugin = Plugin {
            name: name.clone(),
            kind: config.kind,
            source: config.source.clone(),
            sha256,
            version: String::new(),
            contract,
            settings_schema: String::new(),
            schema: SettingsSchema::compile("").expect("no schema compiles"),
            settings,
            overridable: config.overridable.clone(),
            limits,
            loaded,
            load_time: Duration::ZERO,
            pre,
            runtime: runtime.clone(),
            log_lines: std::sync::Mutex::new(runtime::LineBudget::new(std::time::Instant::now())),
        };
        let info = plugin.describe()?;
        plugin.version = info.version;
        plugin.schema = SettingsSchema::compile(&info.settings_schema).map_err(|message| LoadError::Schema { name: name.clone(), message })?;
        plugin.settings_schema = info.settings_schema;
        let problems = plugin.schema.problems(&serde_json::to_value(&config.settings).expect("TOML tables convert to JSON"));
        if !problems.is_empty() {
            let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Err(LoadError::Settings { name, message });
        }
        plugin
            .check_config()?
            .map_err(|message| LoadError::Settings { name: name.clone(), message })?;
        plugin.load_time = started.elapsed();
        Ok(plugin)
    }

    pub fn view(&self) -> PluginView {
        PluginView {
            name: self.name.clone(),
            kind: self.kind,
            version: self.version.clone(),
            contract: self.contract,
            source: self.source.clone(),
            sha256: self.sha256.clone(),
            memory_mb: (self.limits.memory_bytes >> 20) as u64,
            deadline_ms: self.limits.deadline.as_millis() as u64,
            loaded_from: match self.loaded {
                Loaded::FromCache => "cache",
                Loaded::Compiled => "compiled",
            },
            load_ms: self.load_time.as_secs_f64() * 1000.0,
            settings_schema: serde_json::from_str(&self.settings_schema).unwrap_or(serde_json::Value::Null),
        }
    }

    /// One call in a fresh store; `f` gets the instantiated bindings.
    fn call<R>(&self, f: impl FnOnce(&mut wasmtime::Store<runtime::CallState>, &Instance) -> wasmtime::Result<R>) -> Result<R, PluginError> {
        let fail = |failure| PluginError { plugin: self.name.clone(), failure };
        // Declared before the store, so it is given back after the store (and its instance) is gone.
        let _slot = self.runtime.slot().ok_or_else(|| fail(PluginFailure::Busy { slots: self.runtime.instances(), waited: runtime::SLOT_WAIT }))?;
        let (mut store, output) = self.runtime.store(self.limits);
        let instance = match &self.pre {
            Pre::Validator(pre) => pre.instantiate(&mut store).map(Instance::Validator),
            Pre::Template(pre) => pre.instantiate(&mut store).map(Instance::Template),
            Pre::Strategy(pre) => pre.instantiate(&mut store).map(Instance::Strategy),
            Pre::ValidatorV0_1(pre) => pre.instantiate(&mut store).map(Instance::ValidatorV0_1),
            Pre::TemplateV0_1(pre) => pre.instantiate(&mut store).map(Instance::TemplateV0_1),
            Pre::StrategyV0_1(pre) => pre.instantiate(&mut store).map(Instance::StrategyV0_1),
        };
        let result = match instance {
            Ok(instance) => match f(&mut store, &instance) {
                Ok(_) if runtime::past_deadline(&store) => Err(PluginFailure::DeadlineExceeded { deadline: self.limits.deadline }),
                answer => answer.map_err(|e| runtime::classify(&store, e, self.limits)),
            },
            Err(e) => Err(match runtime::classify(&store, e, self.limits) {
                PluginFailure::InvalidAnswer(message) => PluginFailure::Instantiate(message),
                other => other,
            }),
        };
        output.log(&self.name, &mut self.log_lines.lock().expect("log budget lock"));
        result.map_err(fail)
    }

    fn describe(&self) -> Result<types::PluginInfo, PluginError> {
        self.call(|store, instance| match instance {
            Instance::Validator(b) => b.warship_plugin_plugin().call_describe(store),
            Instance::Template(b) => b.warship_plugin_plugin().call_describe(store),
            Instance::Strategy(b) => b.warship_plugin_plugin().call_describe(store),
            Instance::ValidatorV0_1(b) => b.warship_plugin_plugin().call_describe(store),
            Instance::TemplateV0_1(b) => b.warship_plugin_plugin().call_describe(store),
            Instance::StrategyV0_1(b) => b.warship_plugin_plugin().call_describe(store).map(adapter::plugin_info),
        })
    }

    fn check_config(&self) -> Result<Result<(), String>, PluginError> {
        self.check_settings(&self.settings)
    }

    fn check_settings(&self, settings: &str) -> Result<Result<(), String>, PluginError> {
        self.call(|store, instance| match instance {
            Instance::Validator(b) => b.warship_plugin_plugin().call_check_config(store, settings),
            Instance::Template(b) => b.warship_plugin_plugin().call_check_config(store, settings),
            Instance::Strategy(b) => b.warship_plugin_plugin().call_check_config(store, settings),
            Instance::ValidatorV0_1(b) => b.warship_plugin_plugin().call_check_config(store, settings),
            Instance::TemplateV0_1(b) => b.warship_plugin_plugin().call_check_config(store, settings),
            Instance::StrategyV0_1(b) => b.warship_plugin_plugin().call_check_config(store, settings),
        })
    }

    fn wrong_kind(&self, wanted: PluginKind) -> PluginError {
        PluginError {
            plugin: self.name.clone(),
            failure: PluginFailure::Instantiate(format!("is a {}, not a {}", kind_name(self.kind), kind_name(wanted))),
        }
    }

    pub fn validate_env(&self, platform: &types::Platform, env: &types::EnvSpec) -> Result<Vec<Violation>, PluginError> {
        if self.pre.kind() != PluginKind::Validator {
            return Err(self.wrong_kind(PluginKind::Validator));
        }
        let settings = self.settings.as_str();
        let found = self.call(|store, instance| match instance {
            Instance::Validator(b) => b.warship_plugin_validate().call_validate_env(store, settings, platform, env),
            Instance::ValidatorV0_1(b) => b.warship_plugin_validate().call_validate_env(store, settings, platform, env),
            _ => unreachable!("kind checked above"),
        })?;
        Ok(found.into_iter().map(convert::violation).collect())
    }

    pub fn validate_deploy(&self, platform: &types::Platform, env: &types::EnvSpec, war: &types::WarFacts) -> Result<Vec<Violation>, PluginError> {
        if self.pre.kind() != PluginKind::Validator {
            return Err(self.wrong_kind(PluginKind::Validator));
        }
        let settings = self.settings.as_str();
        let found = self.call(|store, instance| match instance {
            Instance::Validator(b) => b.warship_plugin_validate().call_validate_deploy(store, settings, platform, env, war),
            Instance::ValidatorV0_1(b) => b.warship_plugin_validate().call_validate_deploy(store, settings, platform, env, war),
            _ => unreachable!("kind checked above"),
        })?;
        Ok(found.into_iter().map(convert::violation).collect())
    }

    pub fn render_dockerfile(&self, context: &types::BuildContext) -> Result<String, PluginError> {
        if self.pre.kind() != PluginKind::Template {
            return Err(self.wrong_kind(PluginKind::Template));
        }
        let settings = self.settings.as_str();
        self.call(|store, instance| match instance {
            Instance::Template(b) => b.warship_plugin_render().call_render_dockerfile(store, settings, context),
            Instance::TemplateV0_1(b) => b.warship_plugin_render().call_render_dockerfile(store, settings, context),
            _ => unreachable!("kind checked above"),
        })?
        .map_err(|message| PluginError { plugin: self.name.clone(), failure: PluginFailure::Refused(message) })
    }

    pub fn next_step(&self, state: &RolloutState) -> Result<Step, PluginError> {
        self.next_step_with(&self.settings, state)
    }

    /// The keys of a deploy's own settings that the admin fixed in platform.toml.
    pub fn fixed_keys<'a>(&self, overrides: &'a serde_json::Map<String, serde_json::Value>) -> Vec<&'a str> {
        let admin: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&self.settings).expect("settings are a JSON object");
        overrides.keys().filter(|k| admin.contains_key(*k) && !self.overridable.contains(k)).map(String::as_str).collect()
    }

    /// The admin's settings with a deploy's own keys laid over them (one level deep),
    /// as JSON text the plugin accepted; `Err` carries what its schema or its
    /// `check-config` found wrong.
    pub fn settings_with(&self, overrides: &serde_json::Map<String, serde_json::Value>) -> Result<Result<String, Vec<SettingsProblem>>, PluginError> {
        if overrides.is_empty() {
            return Ok(Ok(self.settings.clone()));
        }
        let mut merged: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.settings).expect("settings are a JSON object");
        merged.extend(overrides.clone());
        let merged = serde_json::Value::Object(merged);
        let problems = self.schema.problems(&merged);
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let merged = merged.to_string();
        let refused = |message| vec![SettingsProblem { field: String::new(), message }];
        Ok(self.check_settings(&merged)?.map(|()| merged).map_err(refused))
    }

    /// The next step under `settings` (from [`Plugin::settings_with`]).
    pub fn next_step_with(&self, settings: &str, state: &RolloutState) -> Result<Step, PluginError> {
        if self.pre.kind() != PluginKind::Strategy {
            return Err(self.wrong_kind(PluginKind::Strategy));
        }
        let state = convert::rollout_state(state);
        self.call(|store, instance| match instance {
            Instance::Strategy(b) => b.warship_plugin_rollout().call_next(store, settings, &state),
            Instance::StrategyV0_1(b) => b
                .warship_plugin_rollout()
                .call_next(store, settings, &adapter::rollout_state(&state))
                .map(|answer| answer.map(adapter::step)),
            _ => unreachable!("kind checked above"),
        })?
        .map(convert::step)
        .map_err(|message| PluginError { plugin: self.name.clone(), failure: PluginFailure::Refused(message) })
    }
}

/// What kind of plugin a component file is, before loading it as one.
pub fn kind_of(runtime: &Runtime, bytes: &[u8]) -> Result<PluginKind, String> {
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
    let (component, _) = runtime.component(bytes, &sha256).map_err(|e| format!("not a WebAssembly component: {e:#}"))?;
    bindings::kind_of(&component, runtime.engine())
        .ok_or_else(|| "it exports none of warship:plugin's rollout, validate or render interfaces".to_owned())
}

enum Instance {
    Validator(validator::Validator),
    Template(template::Template),
    Strategy(strategy::Strategy),
    ValidatorV0_1(v0_1::validator::Validator),
    TemplateV0_1(v0_1::template::Template),
    StrategyV0_1(v0_1::strategy::Strategy),
}

pub fn kind_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Validator => "validator",
        PluginKind::Template => "template",
        PluginKind::Strategy => "strategy",
    }
}

/// Every loaded plugin, by role.
pub struct Plugins {
    all: Vec<Arc<Plugin>>,
    /// Optional plugins that failed to load, and why.
    skipped: Vec<(String, String)>,
}

/// The plugins loaded when platform.toml names none: every built-in, defaults.
pub fn default_plugin_configs() -> Vec<PluginConfig> {
    let entry = |name: &str, kind, builtin: &str| PluginConfig {
        name: name.into(),
        kind,
        source: format!("builtin:{builtin}"),
        settings: Default::default(),
        overridable: Vec::new(),
        required: true,
        memory_mb: None,
        deadline_ms: None,
    };
    vec![
        entry("validator-default", PluginKind::Validator, "validator-default"),
        entry("template-tomcat", PluginKind::Template, "template-tomcat"),
        entry("recreate", PluginKind::Strategy, "strategy-recreate"),
        entry("rolling", PluginKind::Strategy, "strategy-rolling"),
        entry("canary", PluginKind::Strategy, "strategy-canary"),
        entry("bluegreen", PluginKind::Strategy, "strategy-bluegreen"),
    ]
}

impl Plugins {
    /// Loads what the config names. A required plugin that fails stops startup.
    pub fn load(runtime: &Runtime, config: &Config) -> Result<Self, LoadError> {
        let configs = config.plugins.clone().unwrap_or_else(default_plugin_configs);
        let mut all = Vec::new();
        let mut skipped = Vec::new();
        for plugin in &configs {
            match Plugin::load(runtime, plugin, &config.plugin_runtime) {
                Ok(loaded) => {
                    tracing::info!(plugin = %loaded.name, kind = kind_name(loaded.kind), version = %loaded.version,
                        load_ms = loaded.load_time.as_secs_f64() * 1000.0, from = ?loaded.loaded, "plugin loaded");
                    all.push(Arc::new(loaded));
                }
                Err(e) if !plugin.required => {
                    tracing::warn!(plugin = %plugin.name, error = %e, "optional plugin skipped");
                    skipped.push((plugin.name.clone(), e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self { all, skipped })
    }

    pub fn views(&self) -> Vec<PluginView> {
        self.all.iter().map(|p| p.view()).collect()
    }

    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.all.iter().find(|p| p.name == name)
    }

    fn of_kind(&self, kind: PluginKind) -> impl Iterator<Item = &Arc<Plugin>> {
        self.all.iter().filter(move |p| p.kind == kind)
    }

    pub fn strategy(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.of_kind(PluginKind::Strategy).find(|p| p.name == name)
    }

    pub fn template(&self) -> Option<&Arc<Plugin>> {
        self.of_kind(PluginKind::Template).next()
    }

    /// Every validator's violations of `env`, together. Runs on the blocking pool.
    pub async fn validate_env(self: &Arc<Self>, config: &Config, env: &crate::domain::EnvSpec, node_num: Option<String>) -> Result<Vec<Violation>, PluginError> {
        let platform = convert::platform(config);
        let env = convert::env_spec(env, node_num);
        let plugins = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for validator in plugins.of_kind(PluginKind::Validator) {
                all.extend(validator.validate_env(&platform, &env)?);
            }
            Ok(all)
        })
        .await
        .expect("validator calls do not panic")
    }

    /// Every validator's reasons not to deploy `war` to `env`, together.
    pub async fn validate_deploy(
        self: &Arc<Self>,
        config: &Config,
        env: &crate::domain::EnvSpec,
        war: &crate::wars::WarRecord,
    ) -> Result<Vec<Violation>, PluginError> {
        let (platform, env, war) = (convert::platform(config), convert::env_spec(env, None), convert::war_facts(war));
        let plugins = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for validator in plugins.of_kind(PluginKind::Validator) {
                all.extend(validator.validate_deploy(&platform, &env, &war)?);
            }
            Ok(all)
        })
        .await
        .expect("validator calls do not panic")
    }

    /// The Dockerfile for `war` on `env`'s base image, from the template plugin.
    pub async fn render_dockerfile(
        self: &Arc<Self>,
        env: &crate::domain::EnvSpec,
        war: &crate::wars::WarRecord,
        base: &crate::config::CatalogEntry,
        version: &str,
        user: &str,
    ) -> Result<String, PluginError> {
        let context = types::BuildContext {
            env: convert::env_spec(env, None),
            war: convert::war_facts(war),
            base_image: base.base_image.clone(),
            base_user: base.user.clone(),
            war_file: war.file.clone(),
            app_version: version.to_owned(),
            user: user.to_owned(),
        };
        let plugins = self.clone();
        tokio::task::spawn_blocking(move || {
            let template = plugins.template().ok_or_else(|| PluginError {
                plugin: "template".into(),
                failure: PluginFailure::Instantiate("no template plugin is configured; add one to [[plugins]]".into()),
            })?;
            template.render_dockerfile(&context)
        })
        .await
        .expect("template calls do not panic")
    }

    /// What the loaded set lacks that the platform will need: the default strategy and
    /// a template. Not refused (a platform may only ever roll back, or be set up in
    /// steps), but said at startup and by `check-config`.
    pub fn gaps(&self, config: &Config) -> Vec<String> {
        let mut gaps = Vec::new();
        let default = &config.deploys.default_strategy;
        if self.strategy(default).is_none() {
            let loaded = self.names().get("strategy").map(|n| n.join(", ")).unwrap_or_else(|| "none".into());
            gaps.push(format!(
                "deploys.default_strategy = {default:?} names no loaded strategy (loaded: {loaded}): a deploy naming no strategy will be refused; \
                 add it to [[plugins]] (source = \"builtin:strategy-{default}\" for a built-in) or set default_strategy to a loaded one"
            ));
        }
        if self.template().is_none() {
            gaps.push("no template plugin is loaded: no image can be built; add name = \"template-tomcat\", kind = \"template\", source = \"builtin:template-tomcat\" to [[plugins]]".into());
        }
        gaps
    }

    /// Names of loaded plugins by kind, for messages.
    pub fn names(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for p in &self.all {
            out.entry(kind_name(p.kind)).or_default().push(p.name.clone());
        }
        out
    }
}
