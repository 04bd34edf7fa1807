//! The rollout strategies as the platform runs them: real WebAssembly components called
//! through the host's runtime, on `warship-rollout`'s simulated cluster, which carries
//! each answer out through the host's own half of the contract (the same bookkeeping,
//! refusals and restore as against Kubernetes) and lets pods start and stop one at a
//! time. The script says what people and pods do: promotions, a host restart, pods that
//! never get ready or keep crashing. Each scenario checks the exact actions answered and
//! where the replicas and traffic end up.
//!
//! User aborts are not here as strategy behaviour: the host executes them (it restores
//! the stable release), the strategy is never asked. What a strategy owes them is a
//! state at every step from which that restore is cheap; scenario 4 checks it.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use warship_host::config::{Config, PluginConfig, PluginKind, PluginRuntimeConfig};
use warship_host::domain::{Action, RolloutState, Step, Traffic};
use warship_host::plugins::{Contract, Plugin, Plugins, Runtime};
use warship_rollout::sim::{serving, End, Fault, Sim, STABLE, TICK_MS};

/// A rollout to `desired` replicas over a healthy stable release of `stable` pods
/// (`None`: a first deploy), where someone promotes 5 s after a step asks for it.
fn sim(desired: u32, stable: Option<u32>) -> Sim {
    let mut sim = Sim::new(desired, stable);
    sim.promote_after_ms = Some(5 * TICK_MS);
    sim
}

/// The same, on an env whose route splits requests by exact weights.
fn weighted(desired: u32, stable: Option<u32>) -> Sim {
    let mut sim = Sim::weighted(desired, stable);
    sim.promote_after_ms = Some(5 * TICK_MS);
    sim
}

/// The plugin as the simulated host asks it; a failing call fails the test.
fn asking(plugin: &Plugin) -> impl Fn(&RolloutState) -> Result<Step, String> + '_ {
    move |state| Ok(plugin.next_step(state).unwrap_or_else(|e| panic!("{}: {e}\nstate: {state:?}", plugin.name)))
}

/// A built-in strategy with its default settings, as the platform loads it.
fn builtin(name: &str) -> Arc<Plugin> {
    support::builtin_plugins().strategy(name).unwrap_or_else(|| panic!("no strategy {name}")).clone()
}

/// A built-in strategy (`canary` for `builtin:strategy-canary`) with other settings
/// (TOML, as platform.toml writes them).
fn builtin_with(name: &str, settings: &str) -> Plugin {
    let config = PluginConfig {
        name: format!("{name}-custom"),
        kind: PluginKind::Strategy,
        source: format!("builtin:strategy-{name}"),
        settings: settings.parse().unwrap(),
        overridable: Vec::new(),
        required: true,
        memory_mb: None,
        deadline_ms: None,
    };
    Plugin::load(&support::plugin_runtime(), &config, &PluginRuntimeConfig::default()).unwrap()
}

fn repeat(kind: &'static str, n: usize) -> Vec<&'static str> {
    vec![kind; n]
}

#[test]
fn recreate_stops_the_old_release_before_starting_the_new_one() {
    let mut sim = sim(3, Some(3));
    assert_eq!(sim.run(&asking(&builtin("recreate"))), End::Done);
    assert_eq!(sim.kinds(), ["scale", "wait-ready", "scale", "wait-ready", "done"]);
    assert_eq!(sim.scales(), [(0, 0), (0, 3)]);
    // Two releases never run side by side: no candidate pod while a stable one is left.
    for s in &sim.history {
        let stable = s.stable.unwrap();
        assert!(s.candidate.replicas == 0 || (stable.replicas, stable.ready) == (0, 0), "{s:?}");
    }
    assert_eq!(sim.counts(), ((0, 0), (3, 3)));
}

#[test]
fn a_recreate_whose_candidate_never_comes_up_is_aborted() {
    // The old release is gone before the candidate starts, so waiting on a broken
    // candidate would leave the env down for good; the abort has the host restore it.
    for (fault, settings, says, waits) in [
        // Past the default of 3 restarts, on the 4th tick of crashing.
        (Fault::CrashLoop, "", "restarted 4 times, more than the 3 allowed", 4),
        // Asked every tick, it gives up on the first observation past its limit.
        (Fault::NeverReady, "max-unready-seconds = 30", "unready for 31s, more than the 30s allowed", 31),
    ] {
        let mut sim = sim(3, Some(3));
        sim.cluster.fault = Some(fault);
        let End::Aborted(reason) = sim.run(&asking(&builtin_with("recreate", settings))) else {
            panic!("{fault:?}: not aborted: {:?}", sim.kinds());
        };
        assert!(reason.contains(says), "{fault:?}: {reason}");
        // Stop the old release (a pod a tick), start the candidate, wait, give up.
        let expected = [&["scale"][..], &repeat("wait-ready", 3), &["scale"], &repeat("wait-ready", waits), &["abort"]];
        assert_eq!(sim.kinds(), expected.concat(), "{fault:?}");
        assert_eq!(sim.scales(), [(0, 0), (0, 3)], "{fault:?}");
        assert_eq!(sim.steps.last().unwrap().step_index, 1, "{fault:?}");
        assert_eq!(sim.counts(), ((0, 0), (3, 0)), "{fault:?}");
        // Still one release at a time.
        for s in &sim.history {
            let stable = s.stable.unwrap();
            assert!(s.candidate.replicas == 0 || (stable.replicas, stable.ready) == (0, 0), "{s:?}");
        }
    }
}

#[test]
fn rolling_replaces_one_pod_at_a_time_without_losing_capacity() {
    let mut sim = sim(3, Some(3));
    assert_eq!(sim.run(&asking(&builtin("rolling"))), End::Done);
    let rounds = repeat("scale", 6).into_iter().flat_map(|s| [s, "wait-ready"]);
    let expected: Vec<_> = ["switch-traffic"].into_iter().chain(rounds).chain(["done"]).collect();
    assert_eq!(sim.kinds(), expected);
    assert!(matches!(sim.steps[0].action, Action::SwitchTraffic(Traffic::Both)));
    // The candidate grows by one, then the stable shrinks by one.
    assert_eq!(sim.scales(), [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]);
    let after_switch: Vec<_> = sim.history.iter().skip_while(|s| s.traffic == Traffic::Stable).collect();
    assert_eq!(after_switch.len(), sim.history.len() - 1, "the very first answer splits traffic");
    for s in after_switch {
        assert!(serving(s) >= 3, "fewer than 3 pods serve: {s:?}");
    }
    assert_eq!(sim.counts(), ((0, 0), (3, 3)));
    assert_eq!(sim.state.traffic, Traffic::Both);
}

#[test]
fn canary_walks_its_default_plan_and_waits_for_a_promotion() {
    let mut sim = sim(4, Some(4));
    assert_eq!(sim.run(&asking(&builtin("canary"))), End::Done);
    // Each weight: start candidate pods beside the stable ones, wait, then stop as many
    // stable pods as the weight asks, wait.
    let weight = ["scale", "wait-ready", "scale", "wait-ready"];
    let expected = [&["switch-traffic"][..], &weight, &["pause"], &weight, &["await-promotion"], &weight, &["done"]];
    // Split traffic, 10%, 60 s, 50%, a promotion, 100%.
    assert_eq!(sim.kinds(), expected.concat());
    assert_eq!(sim.scales(), [(4, 1), (3, 1), (3, 2), (2, 2), (2, 4), (0, 4)]);
    let indices: Vec<u32> = sim.steps.iter().map(|s| s.step_index).collect();
    assert_eq!(indices, [0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5]);
    assert!(matches!(sim.steps[0].action, Action::SwitchTraffic(Traffic::Both)));
    // Capacity never dips: from the split on, at least the 4 desired pods serve.
    let after_switch: Vec<_> = sim.history.iter().skip_while(|s| s.traffic == Traffic::Stable).collect();
    assert_eq!(after_switch.len(), sim.history.len() - 1, "the very first answer splits traffic");
    for s in after_switch {
        assert!(serving(s) >= 4, "fewer than 4 pods serve: {s:?}");
    }
    for step in &sim.steps {
        assert!(!step.description.trim().is_empty(), "{step:?}");
        if let Action::Pause(ms) = step.action {
            assert!(ms <= 60_000, "{step:?}");
        }
    }
    assert_eq!(sim.counts(), ((0, 0), (4, 4)));
}

#[test]
fn on_exact_weights_the_canary_sets_shares_of_requests_and_keeps_the_stable_whole() {
    let mut sim = weighted(4, Some(4));
    let canary = builtin("canary");
    assert_eq!(canary.contract, Contract::V0_2);
    assert_eq!(sim.run(&asking(&canary)), End::Done);
    let weight = ["scale", "wait-ready", "set-weight"];
    assert_eq!(sim.kinds(), [&weight[..], &["pause"], &weight, &["await-promotion"], &weight, &["done"]].concat());
    let weights: Vec<u8> = sim.steps.iter().filter_map(|s| match s.action { Action::SetWeight(w) => Some(w), _ => None }).collect();
    assert_eq!(weights, [10, 50, 100]);
    // The stable release serves whole until the candidate does: capacity never dips.
    for s in &sim.history {
        assert_eq!(s.stable.map(|w| w.replicas), Some(4), "{s:?}");
    }
    assert_eq!((sim.state.traffic, sim.state.weight), (Traffic::Both, Some(100)));
}

#[test]
fn a_canary_waiting_for_promotion_can_be_aborted_by_the_host() {
    // A user's abort is the host's business: it stops asking the strategy and restores
    // the stable release. So what matters is the state the strategy left at the point
    // where it waits for people: the stable release still serving beside the canary.
    let mut sim = sim(4, Some(4));
    sim.promote_after_ms = None;
    assert_eq!(sim.run(&asking(&builtin("canary"))), End::AwaitingPromotion);
    let stable = sim.state.stable.unwrap();
    assert!(stable.ready >= 1 && stable.replicas >= 1, "{:?}", sim.state);
    assert_eq!(sim.state.traffic, Traffic::Both);
    assert_eq!(sim.counts(), ((2, 2), (2, 2)));
}

#[test]
fn a_canary_that_never_gets_ready_is_aborted_in_time() {
    let mut sim = sim(4, Some(4));
    sim.cluster.fault = Some(Fault::NeverReady);
    let End::Aborted(reason) = sim.run(&asking(&builtin_with("canary", "max-unready-seconds = 30"))) else {
        panic!("not aborted: {:?}", sim.kinds());
    };
    assert!(reason.contains("unready"), "{reason}");
    // Asked every tick, it gives up on the first observation past its limit.
    let mut expected = vec!["switch-traffic", "scale"];
    expected.extend(repeat("wait-ready", 31));
    expected.push("abort");
    assert_eq!(sim.kinds(), expected);
    let unready = sim.state.candidate.unready_ms;
    assert!((30_000..=30_000 + 3 * TICK_MS).contains(&unready), "aborted after {unready} ms unready");
    assert_eq!(sim.state.candidate.ready, 0);
    // Nothing was taken from the stable release: it still serves whole.
    assert_eq!(sim.counts().0, (4, 4), "{:?}", sim.state);
    assert!(serving(&sim.state) >= 4, "the stable release still serves: {:?}", sim.state);
    // Then the host, as against Kubernetes, restored it: all traffic, the candidate gone.
    assert_eq!(sim.cluster.releases.keys().copied().collect::<Vec<_>>(), [STABLE]);
    assert_eq!((sim.cluster.traffic, sim.rollout.progress.scale.candidate), (Some(Traffic::Stable), 0));
}

#[test]
fn a_candidate_that_keeps_restarting_is_aborted() {
    for (name, start) in [
        ("canary", &["switch-traffic", "scale"][..]),
        ("rolling", &["switch-traffic", "scale"]),
        ("bluegreen", &["scale"]),
        // The old release stops first, a pod a tick, before the candidate starts.
        ("recreate", &["scale", "wait-ready", "wait-ready", "wait-ready", "wait-ready", "scale"]),
    ] {
        let mut sim = sim(4, Some(4));
        sim.cluster.fault = Some(Fault::CrashLoop);
        let End::Aborted(reason) = sim.run(&asking(&builtin(name))) else {
            panic!("{name} not aborted: {:?}", sim.kinds());
        };
        assert!(reason.contains("restarted"), "{name}: {reason}");
        // Past the default of 3 restarts, on the 4th.
        assert_eq!(sim.state.candidate.restarts, 4, "{name}");
        let expected = [start, &repeat("wait-ready", 4), &["abort"]].concat();
        assert_eq!(sim.kinds(), expected, "{name}");
    }
}

#[test]
fn blue_green_switches_only_after_a_promotion() {
    let mut sim = sim(2, Some(2));
    assert_eq!(sim.run(&asking(&builtin("bluegreen"))), End::Done);
    assert_eq!(
        sim.kinds(),
        ["scale", "wait-ready", "await-promotion", "switch-traffic", "scale", "wait-ready", "done"]
    );
    assert!(matches!(sim.steps[3].action, Action::SwitchTraffic(Traffic::Candidate)));
    assert_eq!(sim.scales(), [(2, 2), (0, 2)]);
    // Until the switch, all traffic stays on the whole stable release.
    for s in sim.history.iter().take_while(|s| s.traffic == Traffic::Stable) {
        assert_eq!(serving(s), 2, "{s:?}");
    }
    assert_eq!(sim.state.traffic, Traffic::Candidate);
    assert_eq!(sim.counts(), ((0, 0), (2, 2)));
}

#[test]
fn first_deploys_start_everything_and_finish() {
    for name in ["recreate", "rolling", "canary", "bluegreen"] {
        let mut sim = sim(3, None);
        assert_eq!(sim.run(&asking(&builtin(name))), End::Done, "{name}");
        assert_eq!(sim.kinds(), ["scale", "wait-ready", "done"], "{name}");
        assert_eq!(sim.state.candidate.replicas, 3, "{name}");
        assert_eq!(sim.state.candidate.ready, 3, "{name}");
        assert_eq!(sim.state.traffic, Traffic::Candidate, "{name}");
    }
}

#[test]
fn a_host_restart_mid_pause_resumes_at_the_same_step() {
    let canary = builtin("canary");
    let mut whole = sim(4, Some(4));
    assert_eq!(whole.run(&asking(&canary)), End::Done);

    // Up to the 60 s pause with plugins of their own, then the host goes down 20 s in.
    let plugins = Plugins::load(&support::plugin_runtime(), &Config::default()).unwrap();
    let mut before = sim(4, Some(4));
    let is_pause = |s: &Step| matches!(s.action, Action::Pause(_));
    assert_eq!(before.run_until(&asking(plugins.strategy("canary").unwrap()), is_pause), End::Stopped);
    before.advance(20_000);
    drop(plugins);

    // A new process: a new engine, plugins compiled afresh, and of the rollout only
    // what the host persisted and observes (step index, memory, workloads, the time
    // in the step, which kept running).
    let runtime = Runtime::new(None).unwrap();
    let plugins = Plugins::load(&runtime, &Config::default()).unwrap();
    let mut after = before.resume();
    assert_eq!(after.run(&asking(plugins.strategy("canary").unwrap())), End::Done);

    let first = &after.steps[0];
    assert!(matches!(first.action, Action::Pause(40_000)), "{first:?}");
    assert_eq!(first.step_index, before.steps.last().unwrap().step_index);
    // The rest is exactly what the uninterrupted run did from its pause on.
    let from_pause = whole.steps.iter().position(is_pause).unwrap();
    assert_eq!(after.kinds(), whole.kinds()[from_pause..]);
    let indices = |steps: &[Step]| steps.iter().map(|s| s.step_index).collect::<Vec<_>>();
    assert_eq!(indices(&after.steps), indices(&whole.steps[from_pause..]));
    assert_eq!(after.scales(), [(3, 2), (2, 2), (2, 4), (0, 4)], "no earlier scale repeated");
    assert_eq!(before.scales(), [(4, 1), (3, 1)]);
    assert_eq!(after.counts(), whole.counts());
}

#[test]
fn a_host_restart_between_a_weights_two_phases_resumes_there() {
    let canary = builtin("canary");
    let mut whole = sim(4, Some(4));
    assert_eq!(whole.run(&asking(&canary)), End::Done);

    // At 50% the candidate has grown to 2 pods beside the 3 stable ones; the answer
    // to shrink the stable release is persisted, then the host goes down before
    // performing it.
    let plugins = Plugins::load(&support::plugin_runtime(), &Config::default()).unwrap();
    let mut before = sim(4, Some(4));
    let shrink = |s: &Step| matches!(&s.action, Action::Scale(to) if (to.stable, to.candidate) == (2, 2));
    assert_eq!(before.run_until(&asking(plugins.strategy("canary").unwrap()), shrink), End::Stopped);
    assert_eq!(before.counts(), ((3, 3), (2, 2)));
    drop(plugins);

    let runtime = Runtime::new(None).unwrap();
    let plugins = Plugins::load(&runtime, &Config::default()).unwrap();
    let mut after = before.resume();
    assert_eq!(after.run(&asking(plugins.strategy("canary").unwrap())), End::Done);

    // The same answer again, in the same step, and from there what the whole run did
    // (actions, step indices, descriptions, memory).
    let at = whole.steps.iter().position(shrink).unwrap();
    assert_eq!(after.steps[0].step_index, 2);
    assert_eq!(format!("{:?}", after.steps), format!("{:?}", &whole.steps[at..]));
    assert_eq!(after.scales(), [(2, 2), (2, 4), (0, 4)]);
    for s in &after.history {
        assert!(serving(s) >= 4, "fewer than 4 pods serve: {s:?}");
    }
    assert_eq!(after.counts(), whole.counts());
}

#[test]
fn a_python_strategy_frozen_at_contract_0_1_0_rolls_out_in_equal_steps_through_the_adapter() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/frozen/strategy-linear-py-0.1.0.wasm");
    assert!(path.is_file(), "{} is missing: scripts/test builds it from tests/plugins/, before cargo test", path.display());
    let config = PluginConfig {
        name: "linear-py".into(),
        kind: PluginKind::Strategy,
        source: path.display().to_string(),
        settings: "steps = 2\npause-seconds = 5".parse().unwrap(),
        overridable: Vec::new(),
        required: true,
        memory_mb: Some(256),
        deadline_ms: Some(5000),
    };
    // The shared runtime's cache makes this fast after the first (~20 s) compile.
    let plugin = Plugin::load(&support::plugin_runtime(), &config, &PluginRuntimeConfig::default()).unwrap();
    // Built against contract 0.1.0 and called through the host's adapter: it never sees
    // the weight fields, even where the host could split by weight.
    assert_eq!(plugin.contract, Contract::V0_1);
    let mut sim = weighted(4, Some(4));
    assert_eq!(sim.run(&asking(&plugin)), End::Done);
    // Each step starts new pods, waits, stops old ones, waits.
    let step = ["scale", "wait-ready", "scale", "wait-ready"];
    assert_eq!(sim.kinds(), [&["switch-traffic"][..], &step, &["pause"], &step, &["done"]].concat());
    assert_eq!(sim.scales(), [(4, 2), (2, 2), (2, 4), (0, 4)]);
    // The step lasts 5 s in all: 2 s of new pods starting, 2 s of old ones stopping,
    // then the rest as a pause.
    assert!(sim.steps.iter().any(|s| matches!(s.action, Action::Pause(1_000))), "{:?}", sim.kinds());
    // Capacity never dips: from the split on, at least the 4 desired pods serve.
    let after_switch: Vec<_> = sim.history.iter().skip_while(|s| s.traffic == Traffic::Stable).collect();
    assert_eq!(after_switch.len(), sim.history.len() - 1, "the very first answer splits traffic");
    for s in after_switch {
        assert!(serving(s) >= 4, "fewer than 4 pods serve: {s:?}");
    }
    assert_eq!(sim.counts(), ((0, 0), (4, 4)));
    assert_eq!(sim.state.traffic, Traffic::Both);
}
