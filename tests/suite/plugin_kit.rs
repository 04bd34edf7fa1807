//! The plugin kit as a team meets it: `warship plugin new` in a clean folder outside
//! this repository, the project's own unit tests, `plugin build`, `plugin test` against
//! its scenario and the built-in set, `plugin check`, and the component loaded by a real
//! `warship serve` from a platform.toml naming it by a relative path. Then the two
//! examples, copied out of the repository, built and run against their scenario files,
//! and the failures `plugin test` must name.
//!
//! Rust builds share one cargo target dir under ~/.cache/warship, so only the first run
//! on a machine compiles the SDK's dependencies; componentize-py (scripts/test installs
//! it) takes about 15 s per Python component.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::host::Host;

const BIN: &str = env!("CARGO_BIN_EXE_warship");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared cargo target dir for the kit's Rust builds.
fn kit_target() -> PathBuf {
    let cache = std::env::var_os("WARSHIP_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/warship"));
    cache.join("kit-target")
}

/// componentize-py, as scripts/test installs it (scripts/componentize-py prints its path).
fn path_with_componentize_py() -> String {
    let out = Command::new(repo().join("scripts/componentize-py")).output().unwrap();
    assert!(out.status.success(), "scripts/componentize-py: {}", String::from_utf8_lossy(&out.stderr));
    let tool = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    format!("{}:{}", tool.parent().unwrap().display(), std::env::var("PATH").unwrap())
}

/// Runs `program args` in `dir` as a team would, with the kit's caches.
fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_componentize_py())
        .env("CARGO_TARGET_DIR", kit_target())
        // The suite's own cargo settings are not a team's.
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn succeeds(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = run(dir, program, args);
    assert!(out.status.success(), "{program} {args:?} in {} failed:\n{}", dir.display(), said(&out));
    said(&out)
}

/// Time a team spends, without the builds: kept apart to report the kit's figure.
struct Clock {
    started: Instant,
    building: Duration,
}

impl Clock {
    fn build<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let began = Instant::now();
        let out = f();
        self.building += began.elapsed();
        out
    }
}

/// From nothing to a strategy loaded by `serve`, in `lang`.
fn from_nothing(lang: &str, unit_tests: &[&str]) {
    // Compilers take both cores: real pods' timing elsewhere must not starve meanwhile.
    let _alone = crate::support::one_heavy_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut clock = Clock { started: Instant::now(), building: Duration::ZERO };
    let new = succeeds(dir.path(), BIN, &["plugin", "new", "strategy", "two-at-a-time", "--lang", lang]);
    assert!(new.contains("warship plugin build") && new.contains("warship plugin test dist/two-at-a-time.wasm"), "{new}");
    let project = dir.path().join("two-at-a-time");
    assert!(project.join("warship-plugin.toml").is_file() && project.join("README.md").is_file());

    // Its own unit tests pass as written.
    clock.build(|| succeeds(&project, unit_tests[0], &unit_tests[1..]));
    let built = clock.build(|| succeeds(&project, BIN, &["plugin", "build"]));
    assert!(built.contains("built ") && project.join("dist/two-at-a-time.wasm").is_file(), "{built}");

    // Its scenario file, then the built-in set: a fresh plugin handles every situation.
    let tested = succeeds(&project, BIN, &["plugin", "test", "dist/two-at-a-time.wasm", "--scenario", "scenarios/healthy.toml"]);
    assert!(tested.contains("scenario healthy:") && tested.contains("1 scenarios passed"), "{tested}");
    assert!(tested.contains("call  step  action"), "no step table: {tested}");
    let limits = if lang == "python" { ["--memory-mb", "256", "--deadline-ms", "5000"] } else { ["--memory-mb", "64", "--deadline-ms", "1000"] };
    let all = succeeds(&project, BIN, &[&["plugin", "test", "dist/two-at-a-time.wasm"][..], &limits].concat());
    assert!(all.contains("7 scenarios passed"), "{all}");
    for name in ["healthy", "slow-ready", "never-ready", "crash-loop", "promotion", "abort", "host-restart"] {
        assert!(all.contains(&format!("scenario {name}:")), "{name} not run: {all}");
    }
    assert!(all.contains("the host restarts; a new host resumes"), "{all}");

    let checked = succeeds(&project, BIN, &["plugin", "check", "dist/two-at-a-time.wasm", "--settings", r#"{"max-restarts": 2}"#]);
    assert!(checked.contains("world      strategy (warship:plugin 0.2.0)") && checked.contains("max-restarts"), "{checked}");
    let refused = run(&project, BIN, &["plugin", "check", "dist/two-at-a-time.wasm", "--settings", r#"{"max-restarts": -1}"#]);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(said(&refused).contains("max-restarts"), "the schema names the field: {}", said(&refused));

    // serve loads it from platform.toml, by a path relative to that file.
    let memory = if lang == "python" { "memory_mb = 256\ndeadline_ms = 5000\n" } else { "" };
    let extra = format!("[[plugins]]\nname = \"two-at-a-time\"\nkind = \"strategy\"\nsource = \"two-at-a-time/dist/two-at-a-time.wasm\"\n{memory}[plugins.settings]\nmax-restarts = 2\n");
    let (host, tokens) = Host::start(dir.path(), "platform", &format!("[[plugins]]\nname = \"recreate\"\nkind = \"strategy\"\nsource = \"builtin:strategy-recreate\"\n{extra}"), &["alice"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, plugins) = runtime.block_on(host.get("/api/v1/plugins", &tokens[0]));
    assert_eq!(status, 200, "{plugins}");
    let loaded = plugins["loaded"].as_array().unwrap();
    let ours = loaded.iter().find(|p| p["name"] == "two-at-a-time").unwrap_or_else(|| panic!("not loaded: {plugins}"));
    assert_eq!((ours["kind"].as_str(), ours["contract"].as_str()), (Some("strategy"), Some("0.2.0")), "{ours}");
    let minutes = (clock.started.elapsed() - clock.building).as_secs_f64() / 60.0;
    println!("{lang}: from `plugin new` to a passing `plugin test` and a plugin loaded by serve: {minutes:.1} min without builds, {:.0} s of builds", clock.building.as_secs_f64());
}

#[test]
fn a_team_writes_tests_and_loads_a_rust_strategy_from_a_clean_folder() {
    from_nothing("rust", &["cargo", "test", "-q"]);
}

#[test]
fn a_team_writes_tests_and_loads_a_python_strategy_from_a_clean_folder() {
    from_nothing("python", &["python3", "-m", "unittest", "-q"]);
}

/// Copies a repository example out, leaving what the kit writes (vendor/, wit/, the SDK
/// package) and build outputs behind, as a team's clone of its own repository would.
fn copy_out(example: &str, to: &Path) -> PathBuf {
    let from = repo().join("examples").join(example);
    let dest = to.join(example);
    let skip = ["target", "dist", "vendor", "wit", "warship_plugin", "__pycache__", "Cargo.lock"];
    fn copy(from: &Path, to: &Path, skip: &[&str]) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let name = entry.file_name();
            if skip.contains(&name.to_str().unwrap()) {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &to.join(&name), skip);
            } else {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
    }
    copy(&from, &dest, &skip);
    dest
}

fn scenario_args(project: &Path, file: &str) -> Vec<String> {
    let mut args = vec!["plugin".to_owned(), "test".to_owned(), format!("dist/{file}.wasm")];
    let mut scenarios: Vec<_> = std::fs::read_dir(project.join("scenarios")).unwrap().flatten().map(|e| e.path()).collect();
    scenarios.sort();
    for s in scenarios {
        args.push("--scenario".into());
        args.push(s.strip_prefix(project).unwrap().display().to_string());
    }
    args
}

#[test]
fn the_examples_build_outside_the_repository_and_pass_their_tests_and_scenarios() {
    let _alone = crate::support::one_heavy_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    for (example, name, unit_tests, limits) in [
        ("strategy-rust", "two-at-a-time", &["cargo", "test", "-q"][..], &[][..]),
        ("strategy-python", "strategy-linear-py", &["python3", "-m", "unittest", "-q"][..], &["--memory-mb", "256", "--deadline-ms", "5000"][..]),
    ] {
        let project = copy_out(example, dir.path());
        let built = succeeds(&project, BIN, &["plugin", "build"]);
        assert!(built.contains("wrote "), "build vendors the kit's part of the project: {built}");
        succeeds(&project, unit_tests[0], &unit_tests[1..]);
        let mut args = scenario_args(&project, name);
        args.extend(limits.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let tested = succeeds(&project, BIN, &args);
        assert!(tested.contains("3 scenarios passed"), "{example}: {tested}");
        assert!(tested.contains("scenario crash-loop:") && tested.contains("ok: aborted"), "{example}: {tested}");
    }
}

/// The built-in strategies' components, as build.rs leaves them.
fn builtin_wasm(name: &str) -> PathBuf {
    repo().join("target/plugins/wasm32-wasip2/release").join(format!("{name}.wasm"))
}

#[test]
fn plugin_test_names_a_rollout_without_end_a_broken_capacity_promise_and_a_broken_limit() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    // Rolling with a patience longer than the host's: never-ready pods keep it waiting.
    std::fs::write(scenarios.join("patient.toml"), "pods = \"never-ready\"\nsettings = { max-unready-seconds = 100000 }\n[expect]\nend = \"aborted\"\n").unwrap();
    // Recreate stops every old pod first: it cannot keep three serving.
    std::fs::write(scenarios.join("capacity.toml"), "desired = 3\n[expect]\nmin-serving = 3\n").unwrap();
    let rolling = builtin_wasm("strategy_rolling");
    let out = run(dir.path(), BIN, &["plugin", "test", rolling.to_str().unwrap(), "--scenario", "scenarios/patient.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("FAILED: the rollout never ends: no end after 500 calls"), "{}", said(&out));
    let recreate = builtin_wasm("strategy_recreate");
    let out = run(dir.path(), BIN, &["plugin", "test", recreate.to_str().unwrap(), "--scenario", "scenarios/capacity.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("FAILED: capacity dropped to 0 serving pods") && said(&out).contains("below the 3 promised"), "{}", said(&out));
    assert!(said(&out).contains("1 of 1 scenarios failed: capacity"), "{}", said(&out));

    // A call past its memory cap fails naming the limit, as it would in serve.
    let out = run(dir.path(), BIN, &["plugin", "check", recreate.to_str().unwrap(), "--memory-mb", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("past its cap"), "{}", said(&out));

    // Mistakes in the files are usage errors naming the key.
    std::fs::write(scenarios.join("typo.toml"), "pod = \"healthy\"\n").unwrap();
    let out = run(dir.path(), BIN, &["plugin", "test", recreate.to_str().unwrap(), "--scenario", "scenarios/typo.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("unknown field `pod`"), "{}", said(&out));
}

#[test]
fn validators_and_templates_are_tested_with_an_env_and_war_facts() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.toml");
    let war = dir.path().join("war.toml");
    std::fs::write(&env, "name = \"shop\"\ntomcat = \"10.1\"\njdk = \"17\"\nreplicas = 2\n[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase-image = \"warship/tomcat:10.1-jdk17\"\n").unwrap();
    std::fs::write(&war, "app = \"shop\"\nfile = \"shop.war\"\nservlet-api = \"javax\"\nversion = \"1.2\"\n").unwrap();
    let (env, war) = (env.to_str().unwrap(), war.to_str().unwrap());
    let template = builtin_wasm("template_tomcat");
    let dockerfile = succeeds(dir.path(), BIN, &["plugin", "test", template.to_str().unwrap(), "--env", env, "--war", war]);
    assert!(dockerfile.contains("FROM warship/tomcat:10.1-jdk17") && dockerfile.contains("shop.war"), "{dockerfile}");
    let validator = builtin_wasm("validator_default");
    assert!(succeeds(dir.path(), BIN, &["plugin", "test", validator.to_str().unwrap(), "--env", env]).contains("no violations"));
    // A javax WAR on Tomcat 10.1 is refused at deploy, the violation printed.
    let out = run(dir.path(), BIN, &["plugin", "test", validator.to_str().unwrap(), "--env", env, "--war", war]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("javax"), "{}", said(&out));
}

#[test]
fn validator_and_template_projects_start_from_new_too_and_a_missing_tool_is_named() {
    let _alone = crate::support::one_heavy_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // A Python validator: its env and WAR files pass its one rule.
    succeeds(dir.path(), BIN, &["plugin", "new", "validator", "few-pods", "--lang", "python"]);
    let validator = dir.path().join("few-pods");
    succeeds(&validator, "python3", &["-m", "unittest", "-q"]);
    // Without componentize-py on PATH the build says how to install it, and writes nothing.
    let bare = Command::new(BIN).args(["plugin", "build"]).current_dir(&validator).env("PATH", "/usr/bin:/bin").output().unwrap();
    assert_eq!(bare.status.code(), Some(2), "{}", said(&bare));
    assert!(said(&bare).contains("python3 -m pip install componentize-py==0.25.1"), "{}", said(&bare));
    assert!(!validator.join("dist/few-pods.wasm").exists());
    succeeds(&validator, BIN, &["plugin", "build"]);
    let limits = ["--memory-mb", "256", "--deadline-ms", "5000"];
    let passed = succeeds(&validator, BIN, &[&["plugin", "test", "dist/few-pods.wasm", "--env", "env.toml", "--war", "war.toml"][..], &limits].concat());
    assert!(passed.contains("no violations"), "{passed}");
    std::fs::write(validator.join("big.toml"), std::fs::read_to_string(validator.join("env.toml")).unwrap().replace("replicas = 3", "replicas = 50")).unwrap();
    let refused = run(&validator, BIN, &[&["plugin", "test", "dist/few-pods.wasm", "--env", "big.toml"][..], &limits].concat());
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(said(&refused).contains("replicas  env.replicas.too_many"), "{}", said(&refused));

    // A Rust template renders the Dockerfile for its env and WAR files.
    succeeds(dir.path(), BIN, &["plugin", "new", "template", "plain-tomcat", "--lang", "rust"]);
    let template = dir.path().join("plain-tomcat");
    succeeds(&template, "cargo", &["test", "-q"]);
    succeeds(&template, BIN, &["plugin", "build"]);
    let dockerfile = succeeds(&template, BIN, &["plugin", "test", "dist/plain-tomcat.wasm", "--env", "env.toml", "--war", "war.toml"]);
    assert!(dockerfile.contains("FROM warship/tomcat:10.1-jdk17") && dockerfile.contains("shop.war"), "{dockerfile}");
}
