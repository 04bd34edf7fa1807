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
    let imports = r#"(import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration" (func $subscribe (param i64) (result i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func $block (param i32)))"#;
    let body = format!(
        "(call $block (call $subscribe (i64.const {}))) (i32.const 128)",
        seconds * 1_000_000_000
    );
    validator_importing_wasi(
        &WASI_SLEEP_WIT,
        "import wasi:clocks/monotonic-clock@0.2.0;",
        imports,
        &body,
    )
}

/// A validator component whose world also has `world_imports` (from the WIT `packages`)
/// and whose core module imports `core_imports`, with `validate-env` doing `body`.
fn validator_importing_wasi(
    packages: &[(&str, &str)],
    world_imports: &str,
    core_imports: &str,
    body: &str,
) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    for (name, text) in packages {
        resolve.push_str(name, text).unwrap();
    }
    let wit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.1.0/plugin.wit")).unwrap();
    resolve.push_str("plugin.wit", &wit).unwrap();
    let world = format!("package test:fixture;\nworld fixture {{\n  include warship:plugin/validator@0.1.0;\n  {world_imports}\n}}\n");
    let package = resolve.push_str("fixture.wit", &world).unwrap();
    let world = resolve.select_world(&[package], Some("fixture")).unwrap();
    let core = validator_wat(body).replacen("(module", &format!("(module\n  {core_imports}"), 1);
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

#[test]
fn sixty_five_calls_on_the_platforms_sixty_four_slots_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    // The platform's pool: 64 sleepers of 16 memories each (the most a component may
    // have) hold every slot to their deadline; the 65th waits for one instead of failing.
    let runtime = Runtime::new(None).unwrap();
    assert_eq!(runtime.instances(), 65 - 1);
    let path = dir.path().join("sleeper.wasm");
    std::fs::write(&path, sixteen_memories(sleeper(60), 1)).unwrap();
    let config = PluginConfig {
        deadline_ms: Some(400),
        ..config_of("sleeper", PluginKind::Validator, &path)
    };
    let sleeper = std::sync::Arc::new(
        Plugin::load(&runtime, &config, &PluginRuntimeConfig::default()).unwrap(),
    );
    let start = std::sync::Arc::new(std::sync::Barrier::new(65));
    let started = Instant::now();
    let threads: Vec<_> = (0..65)
        .map(|_| {
            let (sleeper, start) = (sleeper.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                sleeper
                    .validate_env(&platform(), &env())
                    .unwrap_err()
                    .failure
            })
        })
        .collect();
    let failures: Vec<PluginFailure> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    let deadline = PluginFailure::DeadlineExceeded {
        deadline: Duration::from_millis(400),
    };
    let others: Vec<&PluginFailure> = failures.iter().filter(|f| **f != deadline).collect();
    eprintln!(
        "65 sleepers of 16 memories on 64 slots: all {} ended at their deadline in {took:?}",
        failures.len() - others.len()
    );
    assert!(
        others.is_empty(),
        "every call ran to its own deadline; {} did not: {:?}",
        others.len(),
        &others[..others.len().min(3)]
    );
    // The 65th could only start once a slot freed: two deadlines, not one.
    assert!(
        took >= Duration::from_millis(800),
        "65 calls on 64 slots ended in {took:?}: one did not wait"
    );
}

/// The validator `component` made to also instantiate 15 core modules of one
/// memory of `pages` 64 KiB pages each: 16 memories in one component, as a guest
/// linked from several modules has. (Component sections may come in any order, so
/// the module and its instances are appended to what wit-component made.)
fn sixteen_memories(mut bytes: Vec<u8>, pages: u32) -> Vec<u8> {
    use wasm_encoder::{ComponentSectionId, InstanceSection, ModuleArg, RawSection, Section};
    let mut depth = 0;
    let mut modules = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. } => {
                modules += u32::from(depth == 0);
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            _ => {}
        }
    }
    let grower = wat::parse_str(format!("(module (memory {pages}))")).unwrap();
    RawSection {
        id: ComponentSectionId::CoreModule as u8,
        data: &grower,
    }
    .append_to(&mut bytes);
    let mut growers = InstanceSection::new();
    for _ in 0..15 {
        growers.instantiate(modules, Vec::<(&str, ModuleArg)>::new());
    }
    wasm_encoder::ComponentSection::append_to_component(&growers, &mut bytes);
    bytes
}

#[test]
fn sixteen_memories_share_one_cap() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(None).unwrap();
    let load = |name: &str, wasm: Vec<u8>| {
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, wasm).unwrap();
        let config = PluginConfig {
            memory_mb: Some(8),
            ..config_of(name, PluginKind::Validator, &path)
        };
        Plugin::load(&runtime, &config, &PluginRuntimeConfig::default())
    };
    // 16 memories of 1 MiB each: every one far under the 8 MiB cap, together twice it.
    // Loading calls `describe`, so the component is refused there, naming the cap.
    match load(
        "greedy",
        sixteen_memories(component(&validator_wat(WELL_BEHAVED)), 16),
    ) {
        Err(LoadError::Call(err)) => match err.failure {
            PluginFailure::MemoryExceeded { cap, wanted } => {
                eprintln!("16 memories of 1 MiB each under an 8 MiB cap: refused at {wanted} bytes in all");
                assert_eq!(cap, 8 << 20);
                assert!(wanted > cap, "{wanted}");
            }
            other => panic!("expected the memory cap, got {other:?}"),
        },
        Err(other) => panic!("expected the memory cap, got {other}"),
        Ok(_) => panic!("16 memories of 1 MiB each loaded under an 8 MiB cap"),
    }
    // The same 16 memories of 256 KiB each (4 MiB together) answer.
    let modest = load(
        "modest",
        sixteen_memories(component(&validator_wat(WELL_BEHAVED)), 4),
    )
    .unwrap();
    assert_eq!(modest.validate_env(&platform(), &env()).unwrap(), vec![]);
}

/// WASI sockets, as far as a guest opening TCP and UDP sockets imports them.
const WASI_SOCKETS_WIT: [(&str, &str); 1] = [(
    "sockets.wit",
    "package wasi:sockets@0.2.0;
interface network {
  enum error-code { unknown, access-denied, not-supported, invalid-argument, out-of-memory, timeout,
    concurrency-conflict, not-in-progress, would-block, invalid-state, new-socket-limit,
    address-not-bindable, address-in-use, remote-unreachable, connection-refused, connection-reset,
    connection-aborted, datagram-too-large, name-unresolvable, temporary-resolver-failure,
    permanent-resolver-failure }
  enum ip-address-family { ipv4, ipv6 }
}
interface tcp { resource tcp-socket; }
interface udp { resource udp-socket; }
interface tcp-create-socket {
  use network.{error-code, ip-address-family};
  use tcp.{tcp-socket};
  create-tcp-socket: func(address-family: ip-address-family) -> result<tcp-socket, error-code>;
}
interface udp-create-socket {
  use network.{error-code, ip-address-family};
  use udp.{udp-socket};
  create-udp-socket: func(address-family: ip-address-family) -> result<udp-socket, error-code>;
}
",
)];

/// A validator whose `validate-env` asks for `attempts` TCP and as many UDP sockets,
/// alternating IPv4 and IPv6, and traps unless every one is refused as access-denied.
fn socket_flood(attempts: u32) -> Vec<u8> {
    let imports = r#"(import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket" (func $tcp (param i32 i32)))
  (import "wasi:sockets/udp-create-socket@0.2.0" "create-udp-socket" (func $udp (param i32 i32)))"#;
    // result<handle, error-code> lands at 2048: the case byte (1 = err), the code at +4 (1 = access-denied).
    let refused = "(if (i32.ne (i32.load8_u (i32.const 2048)) (i32.const 1)) (then unreachable))
    (if (i32.ne (i32.load8_u (i32.const 2052)) (i32.const 1)) (then unreachable))";
    let body = format!(
        "(local $i i32)
  (loop $again
    (call $tcp (i32.and (local.get $i) (i32.const 1)) (i32.const 2048)) {refused}
    (call $udp (i32.and (local.get $i) (i32.const 1)) (i32.const 2048)) {refused}
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $again (i32.lt_u (local.get $i) (i32.const {attempts}))))
  (i32.const 128)"
    );
    let world = "import wasi:sockets/tcp-create-socket@0.2.0;\n  import wasi:sockets/udp-create-socket@0.2.0;";
    validator_importing_wasi(&WASI_SOCKETS_WIT, world, imports, &body)
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_hundred_thousand_socket_attempts_open_no_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(None).unwrap();
    let path = dir.path().join("flood.wasm");
    std::fs::write(&path, socket_flood(50_000)).unwrap();
    let config = PluginConfig {
        deadline_ms: Some(20_000),
        ..config_of("flood", PluginKind::Validator, &path)
    };
    let flood = Plugin::load(&runtime, &config, &PluginRuntimeConfig::default()).unwrap();

    // A first call maps what every call of this plugin shares; then count.
    flood.validate_env(&platform(), &env()).unwrap();
    let before = open_descriptors();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(open_descriptors());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let started = Instant::now();
    // The guest itself traps at the first socket it is given, or refused for another reason.
    let answer = flood.validate_env(&platform(), &env());
    let took = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let after = open_descriptors();
    eprintln!("100,000 socket attempts (TCP and UDP) in {took:?}: descriptors {before} before, peak {peak}, {after} after");
    assert_eq!(
        answer.unwrap(),
        vec![],
        "every socket was refused as access-denied"
    );
    // Other tests of this binary open files meanwhile; a socket leak would be thousands.
    assert!(
        peak < before + 64,
        "descriptors rose from {before} to {peak} during the flood"
    );
}
