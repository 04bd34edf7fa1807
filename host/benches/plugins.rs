//! Plugin figures: load time of each plugin from scratch and from the precompiled
//! cache, and warm per-call latency (fresh store, instantiate, call) of validate,
//! render and strategy-next, p50 and p99. The team-written Python strategy runs
//! beside the built-in Rust one in the same run. Prints a markdown table.
//! Run by `bench/plugins`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use warship_host::config::{PluginConfig, PluginKind, PluginRuntimeConfig};
use warship_host::domain;
use warship_host::plugins::{default_plugin_configs, types, Plugin, Runtime};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Median load time: `from_scratch` with an empty cache each time, else from the cache.
fn load_time(config: &PluginConfig, runs: usize, from_scratch: bool) -> Duration {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Some(cache.path().to_owned())).unwrap();
    if !from_scratch {
        Plugin::load(&runtime, config, &PluginRuntimeConfig::default()).unwrap();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let runtime = if from_scratch { Runtime::new(None).unwrap() } else { runtime.clone() };
            let started = Instant::now();
            Plugin::load(&runtime, config, &PluginRuntimeConfig::default()).unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn call_times(runs: usize, mut call: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..runs / 10 {
        call();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn env() -> types::EnvSpec {
    let none = || types::ResourceAmounts { cpu: None, memory: None };
    types::EnvSpec {
        name: "shop".into(),
        tomcat: "10.1".into(),
        jdk: "17".into(),
        replicas: 3,
        node_num: None,
        jvm_options: "-Xmx512m".into(),
        env: vec![("MODE".into(), "prod".into())],
        resources: types::Resources {
            requests: types::ResourceAmounts { cpu: Some("250m".into()), memory: Some("512Mi".into()) },
            limits: none(),
        },
        context_path: "/".into(),
    }
}

fn platform() -> types::Platform {
    let entry = |tomcat: &str, jdk: &str| types::CatalogEntry {
        tomcat: tomcat.into(),
        jdk: jdk.into(),
        base_image: format!("warship/tomcat:{tomcat}-jdk{jdk}"),
        user: Some("tomcat".into()),
    };
    types::Platform { catalog: vec![entry("9.0", "11"), entry("10.1", "17"), entry("10.1", "21")] }
}

fn war() -> types::WarFacts {
    types::WarFacts {
        app: "shop".into(),
        file: "shop-1.0.war".into(),
        size: 4704,
        sha256: "ab".repeat(32),
        servlet_api: types::ServletApi::Jakarta,
        has_web_xml: true,
        entries: 10,
    }
}

/// Mid-canary: the 10% step scaled, waiting for its pod.
fn rollout() -> domain::RolloutState {
    let workload = |replicas, ready| domain::Workload { replicas, ready, restarts: 0, unready_ms: 0 };
    domain::RolloutState {
        desired_replicas: 4,
        stable: Some(workload(3, 3)),
        candidate: workload(1, 0),
        traffic: domain::Traffic::Both,
        step_index: 0,
        time_in_step_ms: 2000,
        promoted: false,
        memory: String::new(),
    }
}

fn main() {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/frozen/strategy-linear-py-0.1.0.wasm");
    let mut configs = default_plugin_configs();
    if python.is_file() {
        configs.push(PluginConfig {
            name: "linear-py (Python, contract 0.1.0)".into(),
            kind: PluginKind::Strategy,
            source: python.display().to_string(),
            settings: Default::default(),
            required: true,
            memory_mb: Some(256),
            deadline_ms: Some(5000),
        });
    } else {
        eprintln!("note: {} is missing (scripts/test builds it); the Python row is left out", python.display());
    }

    println!("| plugin | size KiB | load from scratch ms | load from cache ms | call | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|---|---:|---:|");
    let runtime = Runtime::new(None).unwrap();
    for config in &configs {
        let is_python = config.source.ends_with(".wasm");
        let scratch = load_time(config, if is_python { 1 } else { 5 }, true);
        let cached = load_time(config, 9, false);
        let plugin = Plugin::load(&runtime, config, &PluginRuntimeConfig::default()).unwrap();
        let size = if is_python { std::fs::metadata(&config.source).unwrap().len() } else { 0 };
        let runs = if is_python { 300 } else { 3000 };
        let (call, (p50, p99)) = match config.kind {
            PluginKind::Validator => ("validate-env", call_times(runs, || assert!(plugin.validate_env(&platform(), &env()).unwrap().is_empty()))),
            PluginKind::Template => {
                let context = types::BuildContext {
                    env: env(),
                    war: war(),
                    base_image: "warship/tomcat:10.1-jdk17".into(),
                    base_user: Some("tomcat".into()),
                    war_file: "shop-1.0.war".into(),
                    app_version: "1.0".into(),
                    user: "alice".into(),
                };
                ("render-dockerfile", call_times(runs, || assert!(plugin.render_dockerfile(&context).is_ok())))
            }
            PluginKind::Strategy => ("next", call_times(runs, || assert!(plugin.next_step(&rollout()).is_ok()))),
        };
        let size = if size > 0 { format!("{}", size / 1024) } else { "built-in".into() };
        println!("| {} | {size} | {} | {} | {call} | {} | {} |", config.name, millis(scratch), millis(cached), micros(p50), micros(p99));
    }
    println!();
    println!("Goals: warm p50 under 100 µs per call; load from cache under 20 ms.");
}
