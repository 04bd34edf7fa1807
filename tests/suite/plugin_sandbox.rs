//! The sandbox's limits, proven with tiny hand-written WAT fixtures (no toolchain):
//! a plugin that traps, loops forever, allocates past its cap, or answers nonsense
//! fails that one call with an error naming it and what happened, and every other
//! call carries on.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use warship_host::config::{PluginConfig, PluginKind, PluginRuntimeConfig};
use warship_host::plugins::{types, LoadError, Plugin, PluginFailure, Runtime};

/// A validator's core module: a bump allocator, a fixed `describe`, an ok
/// `check-config`, an empty `validate-deploy`, and `validate-env` doing `body`.
fn validator_wat(body: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    ;; align the bump pointer, hand it out, move it on
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                            (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $at) (local.get 3)))
    (local.get $at))
  (data (i32.const 16) "fixture")
  (data (i32.const 32) "0.1.0")
  ;; plugin-info {{ name, version, settings-schema }}: three (pointer, length) pairs
  (data (i32.const 64) "\10\00\00\00\07\00\00\00\20\00\00\00\05\00\00\00\00\00\00\00\00\00\00\00")
  ;; result<_, string>::ok, and an empty list<violation>
  (data (i32.const 96) "\00\00\00\00\00\00\00\00\00\00\00\00")
  (data (i32.const 128) "\00\00\00\00\00\00\00\00")
  ;; a list of one violation whose strings point far outside memory
  (data (i32.const 160) "\b0\00\00\00\01\00\00\00")
  (data (i32.const 176) "\00\ff\ff\00\32\00\00\00\00\ff\ff\00\32\00\00\00\00\ff\ff\00\32\00\00\00")
  (func (export "warship:plugin/plugin@0.1.0#describe") (result i32) (i32.const 64))
  (func (export "warship:plugin/plugin@0.1.0#check-config") (param i32 i32) (result i32) (i32.const 96))
  (func (export "warship:plugin/validate@0.1.0#validate-deploy") (param i32) (result i32) (i32.const 128))
  (func (export "warship:plugin/validate@0.1.0#validate-env") (param i32) (result i32)
    {body}))"#
    )
}

const WELL_BEHAVED: &str = "(i32.const 128)";
const TRAPS: &str = "unreachable";
const LOOPS_FOREVER: &str = "(loop $forever (br $forever)) (i32.const 128)";
const GROWS_WITHOUT_END: &str = "(loop $more (drop (memory.grow (i32.const 16))) (br $more)) (i32.const 128)";
const ANSWERS_NONSENSE: &str = "(i32.const 160)";

/// Wraps a core module into a component of the `validator` world of contract 0.1.0
/// (the host loads it through its adapter), the way wit-bindgen guests are built, but
/// from text.
fn component(core_wat: &str) -> Vec<u8> {
    component_of(core_wat, "0.1.0")
}

/// The same, with the contract's text and the module's export names carrying another
/// version, as a plugin built against a contract this host never released would.
fn component_of(core_wat: &str, version: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let wit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.1.0/plugin.wit")).unwrap();
    let package = resolve.push_str("plugin.wit", &wit.replace("@0.1.0", &format!("@{version}"))).unwrap();
    let core_wat = core_wat.replace("@0.1.0#", &format!("@{version}#"));
    let core_wat = core_wat.as_str();
    let world = resolve.select_world(&[package], Some("validator")).unwrap();
    let mut module = wat::parse_str(core_wat).unwrap();
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    wit_component::ComponentEncoder::default().module(&module).unwrap().validate(true).encode().unwrap()
}

fn load(runtime: &Runtime, dir: &Path, name: &str, body: &str, memory_mb: u64, deadline_ms: u64) -> Plugin {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, component(&validator_wat(body))).unwrap();
    let config = PluginConfig { memory_mb: Some(memory_mb), deadline_ms: Some(deadline_ms), ..config_of(name, PluginKind::Validator, &path) };
    Plugin::load(runtime, &config, &PluginRuntimeConfig::default()).unwrap()
}

/// A required plugin of `kind` from the component at `path`, default limits and settings.
fn config_of(name: &str, kind: PluginKind, path: &Path) -> PluginConfig {
    PluginConfig {
        name: name.into(),
        kind,
        source: path.display().to_string(),
        settings: Default::default(),
        overridable: Vec::new(),
        required: true,
        memory_mb: None,
        deadline_ms: None,
    }
}

fn platform() -> types::Platform {
    types::Platform { catalog: vec![] }
}

fn env() -> types::EnvSpec {
    let none = || types::ResourceAmounts { cpu: None, memory: None };
    types::EnvSpec {
        name: "shop".into(),
        tomcat: "10.1".into(),
        jdk: "17".into(),
        replicas: 1,
        node_num: None,
        jvm_options: String::new(),
        env: vec![("A".into(), "b".into())],
        resources: types::Resources { requests: none(), limits: none() },
        context_path: "/".into(),
    }
}

#[test]
fn each_misbehaviour_fails_only_its_own_call() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Some(dir.path().join("cache"))).unwrap();
    let good = load(&runtime, dir.path(), "good", WELL_BEHAVED, 16, 1000);
    let trapper = load(&runtime, dir.path(), "trapper", TRAPS, 16, 1000);
    let looper = load(&runtime, dir.path(), "looper", LOOPS_FOREVER, 16, 200);
    let hog = load(&runtime, dir.path(), "hog", GROWS_WITHOUT_END, 4, 5000);
    let liar = load(&runtime, dir.path(), "liar", ANSWERS_NONSENSE, 16, 1000);

    assert_eq!(good.validate_env(&platform(), &env()).unwrap(), vec![]);

    let err = trapper.validate_env(&platform(), &env()).unwrap_err();
    assert_eq!(err.plugin, "trapper");
    assert!(matches!(err.failure, PluginFailure::Trapped(ref m) if m.contains("unreachable")), "{err}");

    let started = Instant::now();
    let err = looper.validate_env(&platform(), &env()).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.failure, PluginFailure::DeadlineExceeded { deadline: Duration::from_millis(200) }, "{err}");
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500), "stopped after {took:?}");
    assert_eq!(err.to_string(), "plugin looper ran past its deadline of 200 ms");

    let err = hog.validate_env(&platform(), &env()).unwrap_err();
    assert!(matches!(err.failure, PluginFailure::MemoryExceeded { cap, .. } if cap == 4 << 20), "{err}");
    assert!(err.to_string().starts_with("plugin hog tried to grow its memory"), "{err}");

    let err = liar.validate_env(&platform(), &env()).unwrap_err();
    assert!(matches!(err.failure, PluginFailure::InvalidAnswer(_)), "{err}");
    assert!(err.to_string().starts_with("plugin liar answered something that does not fit"), "{err}");

    // Each failed call cost only itself: the same plugins answer their other calls,
    // and the well-behaved one is untouched.
    for plugin in [&trapper, &looper, &hog, &liar, &good] {
        let war = types::WarFacts {
            app: "a".into(),
            file: "a.war".into(),
            size: 1,
            sha256: "0".repeat(64),
            servlet_api: types::ServletApi::Jakarta,
            has_web_xml: true,
            entries: 1,
        };
        assert_eq!(plugin.validate_deploy(&platform(), &env(), &war).unwrap(), vec![], "{}", plugin.name);
    }
    assert_eq!(good.validate_env(&platform(), &env()).unwrap(), vec![]);
}

#[test]
fn calls_beyond_the_pools_slots_wait_for_one_rather_than_fail() {
    let dir = tempfile::tempdir().unwrap();
    // A pool of 2 instances (the platform's has 64): 3 calls at once, each holding its
    // instance to its deadline, so the third must wait for one to end.
    let runtime = Runtime::with_instances(None, 2).unwrap();
    let looper = std::sync::Arc::new(load(&runtime, dir.path(), "looper", LOOPS_FOREVER, 16, 300));
    let calls = 3;
    let start = std::sync::Arc::new(std::sync::Barrier::new(calls));
    let threads: Vec<_> = (0..calls)
        .map(|_| {
            let (looper, start) = (looper.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                looper.validate_env(&platform(), &env()).unwrap_err().failure
            })
        })
        .collect();
    let failures: Vec<PluginFailure> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let deadline = PluginFailure::DeadlineExceeded { deadline: Duration::from_millis(300) };
    let others: Vec<&PluginFailure> = failures.iter().filter(|f| **f != deadline).collect();
    assert!(others.is_empty(), "every call ran to its own deadline; {} did not: {:?}", others.len(), &others[..others.len().min(3)]);
}

#[test]
fn precompiled_components_are_cached_by_content_and_wasmtime_version() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = load(&Runtime::new(Some(cache.clone())).unwrap(), dir.path(), "good", WELL_BEHAVED, 16, 1000);
    assert_eq!(first.loaded, warship_host::plugins::Loaded::Compiled);
    let cached = support::files_under(&cache);
    assert_eq!(cached.len(), 1, "{cached:?}");
    let path = cached[0].display().to_string();
    assert!(path.contains(&format!("wasmtime-{}", warship_host::plugins::runtime::wasmtime_version())), "{path}");
    assert!(path.ends_with(&format!("{}.cwasm", first.sha256)), "{path}");

    let again = load(&Runtime::new(Some(cache.clone())).unwrap(), dir.path(), "good", WELL_BEHAVED, 16, 1000);
    assert_eq!(again.loaded, warship_host::plugins::Loaded::FromCache);
    assert_eq!(again.validate_env(&platform(), &env()).unwrap(), vec![]);

    // A corrupt cache entry is recompiled, not trusted.
    std::fs::write(&cached[0], b"garbage").unwrap();
    let recompiled = load(&Runtime::new(Some(cache)).unwrap(), dir.path(), "good", WELL_BEHAVED, 16, 1000);
    assert_eq!(recompiled.loaded, warship_host::plugins::Loaded::Compiled);
}

#[test]
fn a_plugin_built_against_an_unknown_contract_version_is_refused_naming_the_accepted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(None).unwrap();
    let path = dir.path().join("future.wasm");
    std::fs::write(&path, component_of(&validator_wat(WELL_BEHAVED), "0.9.0")).unwrap();
    let config = config_of("future", PluginKind::Validator, &path);
    let err = Plugin::load(&runtime, &config, &PluginRuntimeConfig::default()).err().unwrap();
    assert!(matches!(err, LoadError::Contract { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "plugin future: it was built against warship:plugin@0.9.0, which this host does not load; \
         it loads warship:plugin 0.2.0, 0.1.0 (rebuild it against wit/0.2.0/plugin.wit)"
    );
    // The same component at a released version loads, through the 0.1.0 adapter.
    std::fs::write(&path, component(&validator_wat(WELL_BEHAVED))).unwrap();
    let plugin = Plugin::load(&runtime, &config, &PluginRuntimeConfig::default()).unwrap();
    assert_eq!(plugin.contract, warship_host::plugins::Contract::V0_1);
    assert_eq!(plugin.validate_env(&platform(), &env()).unwrap(), vec![]);
}

#[test]
fn a_component_of_the_wrong_kind_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(None).unwrap();
    let path = dir.path().join("v.wasm");
    std::fs::write(&path, component(&validator_wat(WELL_BEHAVED))).unwrap();
    let config = config_of("not-a-strategy", PluginKind::Strategy, &path);
    let err = Plugin::load(&runtime, &config, &PluginRuntimeConfig::default()).err().unwrap();
    assert!(matches!(err, LoadError::Component { .. }), "{err}");
    assert!(err.to_string().starts_with("plugin not-a-strategy: not a strategy component"), "{err}");

    std::fs::write(&path, b"\0asm garbage").unwrap();
    let err = Plugin::load(&runtime, &PluginConfig { kind: PluginKind::Validator, ..config }, &PluginRuntimeConfig::default()).err().unwrap();
    assert!(err.to_string().contains("not a validator component"), "{err}");
}

/// WASI's clock and poll, as far as a sleeper imports them.
const WASI_SLEEP_WIT: [(&str, &str); 2] = [
    ("io.wit", "package wasi:io@0.2.0;\ninterface poll { resource pollable { block: func(); } }\n"),
    (
        "clocks.wit",
        "package wasi:clocks@0.2.0;\ninterface monotonic-clock {\n  use wasi:io/poll@0.2.0.{pollable};\n  subscribe-duration: func(when: u64) -> pollable;\n}\n",
    ),
];

/// A validator whose `validate-env` waits on a WASI timer of `seconds` (as Rust's
/// `std::thread::sleep` does), then answers.
fn sleeper(seconds: u64) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    for (name, text) in WASI_SLEEP_WIT {
        resolve.push_str(name, text).unwrap();
    }
    let wit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.1.0/plugin.wit")).unwrap();
    resolve.push_str("plugin.wit", &wit).unwrap();
    let world = "package test:sleeper;\nworld sleeper {\n  include warship:plugin/validator@0.1.0;\n  import wasi:clocks/monotonic-clock@0.2.0;\n}\n";
    let package = resolve.push_str("sleeper.wit", world).unwrap();
    let world = resolve.select_world(&[package], Some("sleeper")).unwrap();
    let imports = r#"(module
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration" (func $subscribe (param i64) (result i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func $block (param i32)))"#;
    let body = format!("(call $block (call $subscribe (i64.const {}))) (i32.const 128)", seconds * 1_000_000_000);
    let core = validator_wat(&body).replacen("(module", imports, 1);
    let mut module = wat::parse_str(&core).unwrap();
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    wit_component::ComponentEncoder::default().module(&module).unwrap().validate(true).encode().unwrap()
}

#[test]
fn a_plugin_waiting_on_a_timer_ends_at_its_deadline_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    // A pool of 2: sleepers that held their instances for a minute would starve the third call.
    let runtime = Runtime::with_instances(None, 2).unwrap();
    let path = dir.path().join("sleeper.wasm");
    std::fs::write(&path, sleeper(60)).unwrap();
    let deadline = Duration::from_millis(300);
    let config = PluginConfig { deadline_ms: Some(300), ..config_of("sleeper", PluginKind::Validator, &path) };
    let sleeper = std::sync::Arc::new(Plugin::load(&runtime, &config, &PluginRuntimeConfig::default()).unwrap());

    let mut overshoots = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let err = sleeper.validate_env(&platform(), &env()).unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.failure, PluginFailure::DeadlineExceeded { deadline }, "{err}");
        overshoots.push(took.saturating_sub(deadline));
    }
    // Three at once on two slots: each ends at its deadline, so the third gets a slot.
    let started = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let sleeper = sleeper.clone();
            std::thread::spawn(move || sleeper.validate_env(&platform(), &env()).unwrap_err().failure)
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), PluginFailure::DeadlineExceeded { deadline });
    }
    let three = started.elapsed();
    overshoots.sort();
    eprintln!("sleeper (60 s timer, 300 ms deadline): overshoot median {:?}, worst {:?}; 3 calls on 2 slots took {three:?}", overshoots[2], overshoots[4]);
    assert!(overshoots[2] < Duration::from_millis(100), "the median call ended {:?} past its deadline", overshoots[2]);
    assert!(overshoots[4] < Duration::from_millis(500), "a call ended {:?} past its deadline", overshoots[4]);
    assert!(three < Duration::from_secs(3), "3 sleepers on 2 slots took {three:?}");
}
