//! `warship plugin`: the plugin author's kit. A team goes from nothing to a tested,
//! loaded plugin without a cluster: `new` writes a standalone project, `build` makes
//! the component, `check` loads it exactly as `serve` does, and `test` runs it through
//! the host's runtime (and, for a strategy, the deploy engine's own rollout loop on a
//! simulated cluster) against scripted scenarios.

pub mod facts;
pub mod project;
pub mod rehearsal;
pub mod scenario;
pub mod toolchain;

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::config::{PluginConfig, PluginKind, PluginRuntimeConfig};
use crate::plugins::{self, Plugin, Runtime};
use project::Manifest;
use scenario::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// Bad arguments or files: exit 2.
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// The plugin did not build, load or pass: exit 1.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Load(#[from] plugins::LoadError),
}

impl KitError {
    fn io(path: &Path, error: std::io::Error) -> Self {
        KitError::Io { path: path.to_owned(), error }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            KitError::Usage(_) | KitError::Io { .. } => 2,
            KitError::Failed(_) | KitError::Load(_) => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Strategy,
    Validator,
    Template,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Strategy => "strategy",
            Kind::Validator => "validator",
            Kind::Template => "template",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
        }
    }
}

/// How a component is loaded: the settings and limits platform.toml would give it.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The plugin's settings as JSON (platform.toml's `settings` table), e.g. '{"max-restarts": 2}'.
    #[arg(long)]
    pub settings: Option<String>,
    /// Memory cap per call (platform.toml's `memory_mb`; the platform's default otherwise).
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Deadline per call (platform.toml's `deadline_ms`; the platform's default otherwise).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin project: a plugin that already works, its tests, the WIT and
    /// the SDK, and a README of the next commands.
    New {
        kind: Kind,
        /// Lower-case letters, digits and dashes: `two-at-a-time`.
        name: String,
        #[arg(long, value_enum)]
        lang: Lang,
        /// Where to write it; ./NAME otherwise.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the project in this folder into dist/NAME.wasm (cargo for Rust,
    /// componentize-py for Python).
    Build {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Load a component exactly as `serve` would (world, contract version, describe,
    /// settings against its schema and check-config, limits) and say what was found.
    Check {
        file: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Run a component through the host's runtime: a strategy against scripted
    /// scenarios (files, or the built-in set), a validator or template against an env
    /// spec and WAR facts.
    #[command(after_long_help = scenario::HELP)]
    Test {
        file: PathBuf,
        /// Scenario files (their format: below, with --help); the built-in set otherwise.
        #[arg(long = "scenario")]
        scenarios: Vec<PathBuf>,
        /// Replicas every scenario's env asks for, over the files'.
        #[arg(long)]
        desired: Option<u32>,
        /// Pods of every scenario's serving release (0: a first deploy), over the files'.
        #[arg(long)]
        stable: Option<u32>,
        /// Fail any scenario where fewer pods than this serve requests at some moment.
        #[arg(long)]
        min_serving: Option<u32>,
        /// Validators and templates: the env spec (TOML).
        #[arg(long)]
        env: Option<PathBuf>,
        /// Validators (deploy rules) and templates: the WAR's facts (TOML).
        #[arg(long)]
        war: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
}

/// Runs a `warship plugin` command; the process's exit code.
pub fn run(command: PluginCommand) -> u8 {
    let result = match command {
        PluginCommand::New { kind, name, lang, dir } => new(kind, name, lang, dir),
        PluginCommand::Build { dir } => toolchain::build(&dir).map(drop),
        PluginCommand::Check { file, load } => check(&file, &load),
        PluginCommand::Test { file, scenarios, desired, stable, min_serving, env, war, load } => {
            test(&file, &load, Overrides { scenarios, desired, stable, min_serving }, env, war)
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn new(kind: Kind, name: String, lang: Lang, dir: Option<PathBuf>) -> Result<(), KitError> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let manifest = Manifest { name: name.clone(), kind, lang };
    let written = project::create(&dir, &manifest)?;
    println!("wrote a {} {} plugin into {} ({} files)", lang.as_str(), kind.as_str(), dir.display(), written.len());
    let unit_tests = match lang {
        Lang::Rust => "cargo test",
        Lang::Python => "python3 -m unittest",
    };
    let scenarios = if kind == Kind::Strategy { " --scenario scenarios/healthy.toml" } else { " --env env.toml --war war.toml" };
    // What platform.toml should give a Python component (see the README it wrote).
    let limits = if lang == Lang::Python { " --memory-mb 256 --deadline-ms 5000" } else { "" };
    println!("next:\n  cd {}\n  {unit_tests}\n  warship plugin build\n  warship plugin test dist/{name}.wasm{scenarios}{limits}", dir.display());
    println!("then add it to platform.toml's [[plugins]] (see README.md) and run `warship check-config`");
    Ok(())
}

/// Where precompiled components are kept between runs of the kit.
fn runtime() -> Result<Runtime, KitError> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("warship").join("plugin-cache"));
    Runtime::new(cache).map_err(|e| KitError::Failed(format!("cannot start the plugin runtime: {e:#}")))
}

/// Loads `file` as `serve` would load a `[[plugins]]` entry naming it.
fn load(runtime: &Runtime, file: &Path, args: &LoadArgs) -> Result<Plugin, KitError> {
    let bytes = std::fs::read(file).map_err(|e| KitError::io(file, e))?;
    let kind = plugins::kind_of(runtime, &bytes).map_err(|e| KitError::Failed(format!("{}: {e}", file.display())))?;
    let settings = match &args.settings {
        None => toml::Table::new(),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| KitError::Usage(format!("--settings must be a JSON object (platform.toml's settings table): {e}")))?,
    };
    let name = file.file_stem().map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    let config = PluginConfig {
        name,
        kind,
        source: file.display().to_string(),
        settings,
        overridable: Vec::new(),
        required: true,
        memory_mb: args.memory_mb,
        deadline_ms: args.deadline_ms,
    };
    eprintln!("loading {} (compiled once and cached; a Python component takes about 20 s the first time)", file.display());
    Plugin::load(runtime, &config, &PluginRuntimeConfig::default()).map_err(|e| match e {
        // Here the settings come from --settings, not from a platform.toml.
        plugins::LoadError::Settings { message, .. } => KitError::Failed(format!("the settings were refused: {message} (fix --settings)")),
        other => KitError::Load(other),
    })
}

fn check(file: &Path, args: &LoadArgs) -> Result<(), KitError> {
    let runtime = runtime()?;
    let plugin = load(&runtime, file, args)?;
    let view = plugin.view();
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!("plugin     {} {}", plugin.name, plugin.version);
    println!("world      {} (warship:plugin {})", plugins::kind_name(plugin.kind), plugin.contract.version());
    println!("file       {} ({:.1} MiB, sha256 {})", file.display(), size as f64 / 1048576.0, &plugin.sha256[..16]);
    let keys = view.settings_schema.get("properties").and_then(|p| p.as_object()).map(|p| p.keys().cloned().collect::<Vec<_>>());
    match keys {
        Some(keys) => println!("schema     {} settings: {}", keys.len(), keys.join(", ")),
        None if plugin.settings_schema.trim().is_empty() => println!("schema     none published (settings are checked by check-config alone)"),
        None => println!("schema     published, without properties"),
    }
    println!("settings   {} accepted (schema and check-config)", args.settings.as_deref().unwrap_or("{}"));
    println!("limits     {} MiB of memory and {} ms per call", view.memory_mb, view.deadline_ms);
    println!("loaded in  {:.0} ms ({})", view.load_ms, view.loaded_from);
    Ok(())
}

/// What the command line lays over every scenario.
struct Overrides {
    scenarios: Vec<PathBuf>,
    desired: Option<u32>,
    stable: Option<u32>,
    min_serving: Option<u32>,
}

fn test(file: &Path, args: &LoadArgs, overrides: Overrides, env: Option<PathBuf>, war: Option<PathBuf>) -> Result<(), KitError> {
    let runtime = runtime()?;
    let plugin = load(&runtime, file, args)?;
    match plugin.kind {
        PluginKind::Strategy => test_strategy(&plugin, overrides),
        PluginKind::Validator => test_validator(&plugin, env, war),
        PluginKind::Template => test_template(&plugin, env, war),
    }
}

fn test_strategy(plugin: &Plugin, overrides: Overrides) -> Result<(), KitError> {
    let mut scenarios = match overrides.scenarios.is_empty() {
        true => scenario::builtin(),
        false => overrides.scenarios.iter().map(|path| Scenario::read(path)).collect::<Result<_, _>>()?,
    };
    for s in &mut scenarios {
        s.desired = overrides.desired.or(s.desired);
        s.stable = overrides.stable.or(s.stable);
        s.expect.min_serving = overrides.min_serving.or(s.expect.min_serving);
    }
    let mut failed = Vec::new();
    for s in &scenarios {
        println!("scenario {}: {}", s.name, s.summary());
        if let Some(description) = &s.description {
            println!("  {description}");
        }
        let settings = match plugin.settings_with(&s.settings).map_err(|e| KitError::Failed(e.to_string()))? {
            Ok(settings) => settings,
            Err(problems) => {
                let problems: Vec<_> = problems.iter().map(ToString::to_string).collect();
                return Err(KitError::Usage(format!("scenario {}: its settings were refused: {}", s.name, problems.join("; "))));
            }
        };
        let run = rehearsal::rehearse(plugin, &settings, s);
        print!("{}", run.table());
        let problems = run.problems(s);
        let (ending, reason) = run.ending();
        let serving = run.min_serving.map_or_else(String::new, |(n, _)| format!(", at least {n} pods serving"));
        if problems.is_empty() {
            let ending = ending.map_or("?", |e| e.as_str());
            let reason = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
            println!("  ok: {ending}{reason} after {} calls, {} s simulated{serving}\n", run.rows.len(), run.seconds);
        } else {
            for problem in &problems {
                println!("  FAILED: {problem}");
            }
            println!();
            failed.push(s.name.clone());
        }
    }
    match failed.len() {
        0 => {
            println!("{} scenarios passed", scenarios.len());
            Ok(())
        }
        n => Err(KitError::Failed(format!("{n} of {} scenarios failed: {}", scenarios.len(), failed.join(", ")))),
    }
}

fn needed(file: Option<PathBuf>, flag: &str, kind: &str) -> Result<PathBuf, KitError> {
    file.ok_or_else(|| KitError::Usage(format!("testing a {kind} needs {flag} FILE (see `warship plugin test --help`)")))
}

fn test_validator(plugin: &Plugin, env: Option<PathBuf>, war: Option<PathBuf>) -> Result<(), KitError> {
    let env: facts::EnvFile = facts::read(&needed(env, "--env", "validator")?)?;
    let platform = env.platform();
    let call = |e: plugins::PluginError| KitError::Failed(e.to_string());
    let violations = match war {
        None => plugin.validate_env(&platform, &env.spec()).map_err(call)?,
        Some(war) => {
            let war: facts::WarFile = facts::read(&war)?;
            plugin.validate_deploy(&platform, &env.spec(), &war.facts()).map_err(call)?
        }
    };
    for v in &violations {
        println!("{}  {}  {}", v.field, v.code, v.message);
    }
    match violations.len() {
        0 => {
            println!("no violations");
            Ok(())
        }
        n => Err(KitError::Failed(format!("{n} violations"))),
    }
}

fn test_template(plugin: &Plugin, env: Option<PathBuf>, war: Option<PathBuf>) -> Result<(), KitError> {
    let env: facts::EnvFile = facts::read(&needed(env, "--env", "template")?)?;
    let war: facts::WarFile = facts::read(&needed(war, "--war", "template")?)?;
    let dockerfile = plugin.render_dockerfile(&env.build_context(&war)?).map_err(|e| KitError::Failed(e.to_string()))?;
    print!("{dockerfile}");
    if !dockerfile.ends_with('\n') {
        println!();
    }
    Ok(())
}
