//! Canary: move the release over in weighted steps, with pauses to watch it and points
//! where a person must promote it.
//!
//! Where the host splits requests by exact weights (`exact-weights`: the env has a route
//! on a Gateway), a weight is a share of requests: the candidate grows to its share of
//! pods beside the whole stable release, and once they are ready `set-weight` sends it
//! that share of requests. The stable release keeps all its pods until the candidate
//! serves alone. Elsewhere the Service sends traffic to both workloads by their ready
//! pods, so a weight is a share of pods, as below.
//!
//! A rollout starts with the Service on the stable release, so when there is one the
//! first answer (at step index 0) switches traffic to both workloads; the steps below
//! follow once it goes to both. A first deploy has nothing to split and skips this.
//!
//! Step index i is the i-th entry of the plan: the configured steps, plus a final
//! weight-100 step when they stop short of it. Past the plan the rollout is done.
//!
//! A weight step moves pods in two phases, so that capacity never dips: first the
//! candidate grows to its share beside the stable release as it is, and once those
//! pods are ready the stable release goes down to its share. Until then a failing
//! candidate leaves the whole stable release serving. Both phases share the step's
//! index; which one a call is in follows from the observed counts alone (has the
//! candidate its share yet, is everything ready), so the answer stays a function of
//! the settings and the state, and a host restart mid-step resumes where it was.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::parse_settings;
use warship_plugin::strategy::{
    candidate_ready, converge, drive, first_deploy, schema_with_limits, split_traffic, stable_replicas, InStep, Limits,
    Outcome, DEFAULT_MAX_RESTARTS, DEFAULT_MAX_UNREADY_SECONDS,
};
use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};

/// One entry of `steps`, written as a one-key object: `{"weight": 10}`,
/// `{"pause-seconds": 60}` or `{"await-promotion": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StepKeys")]
enum CanaryStep {
    /// Percent of the desired replicas to run as candidate pods.
    Weight(u32),
    PauseSeconds(u64),
    /// Only `true` is meaningful; it is a value because JSON objects need one.
    AwaitPromotion(bool),
}

/// A step as written. Read as a struct rather than as serde's one-key enum form so that
/// a step with two keys gets a message saying so, not "expected value at column 23".
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StepKeys {
    weight: Option<u32>,
    pause_seconds: Option<u64>,
    await_promotion: Option<bool>,
}

impl TryFrom<StepKeys> for CanaryStep {
    type Error = &'static str;

    fn try_from(keys: StepKeys) -> Result<Self, Self::Error> {
        match (keys.weight, keys.pause_seconds, keys.await_promotion) {
            (Some(w), None, None) => Ok(Weight(w)),
            (None, Some(s), None) => Ok(PauseSeconds(s)),
            (None, None, Some(p)) => Ok(AwaitPromotion(p)),
            _ => Err("each step needs exactly one of weight, pause-seconds or await-promotion"),
        }
    }
}

use CanaryStep::{AwaitPromotion, PauseSeconds, Weight};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    steps: Vec<CanaryStep>,
    max_restarts: u32,
    max_unready_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            steps: vec![Weight(10), PauseSeconds(60), Weight(50), AwaitPromotion(true), Weight(100)],
            max_restarts: DEFAULT_MAX_RESTARTS,
            max_unready_seconds: DEFAULT_MAX_UNREADY_SECONDS,
        }
    }
}

impl Settings {
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        if settings.steps.is_empty() {
            return Err("steps must list at least one step".into());
        }
        let mut last_weight = 0;
        for (i, step) in settings.steps.iter().enumerate() {
            match *step {
                Weight(w) if !(1..=100).contains(&w) => {
                    return Err(format!("steps[{i}]: weight must be between 1 and 100 (got {w})"));
                }
                Weight(w) if w < last_weight => {
                    return Err(format!(
                        "steps[{i}]: weight {w} is below the {last_weight} before it; a canary only grows"
                    ));
                }
                Weight(w) => last_weight = w,
                AwaitPromotion(false) => {
                    return Err(format!("steps[{i}]: await-promotion must be true; remove the step to skip it"));
                }
                PauseSeconds(_) | AwaitPromotion(true) => {}
            }
        }
        settings.limits().check()?;
        Ok(settings)
    }

    fn limits(&self) -> Limits {
        Limits { max_restarts: self.max_restarts, max_unready_seconds: self.max_unready_seconds }
    }

    /// The steps as run: a canary always ends with the candidate serving alone.
    fn plan(&self) -> Vec<CanaryStep> {
        let mut plan = self.steps.clone();
        if !plan.contains(&Weight(100)) {
            plan.push(Weight(100));
        }
        plan
    }
}

pub fn settings_schema() -> String {
    let defaults =
        json!([{"weight": 10}, {"pause-seconds": 60}, {"weight": 50}, {"await-promotion": true}, {"weight": 100}]);
    schema_with_limits(json!({
        "steps": {
            "type": "array", "minItems": 1, "default": defaults,
            "description": "run in order; weights never decrease; a final weight 100 is added when missing",
            "items": {
                "oneOf": [
                    {"type": "object", "additionalProperties": false, "required": ["weight"],
                     "properties": {"weight": {"type": "integer", "minimum": 1, "maximum": 100,
                                               "description": "percent of requests for the candidate (of pods where the host cannot split requests by weight)"}}},
                    {"type": "object", "additionalProperties": false, "required": ["pause-seconds"],
                     "properties": {"pause-seconds": {"type": "integer", "minimum": 0}}},
                    {"type": "object", "additionalProperties": false, "required": ["await-promotion"],
                     "properties": {"await-promotion": {"const": true}}}
                ]
            }
        }
    }))
}

pub fn check_config(settings: &str) -> Result<(), String> {
    Settings::parse(settings).map(drop)
}

pub fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
    let settings = Settings::parse(settings)?;
    if let Some(abort) = settings.limits().abort_step(state) {
        return Ok(abort);
    }
    if state.stable.is_none() {
        return drive(state, |index, _| first_deploy(state, index));
    }
    let plan = settings.plan();
    if state.exact_weights {
        return drive(state, |index, in_step| step(&plan, state, index, in_step, Split::Requests));
    }
    if let Some(switch) = split_traffic(state, "canary") {
        return Ok(switch);
    }
    drive(state, |index, in_step| step(&plan, state, index, in_step, Split::Pods))
}

/// What a weight is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Of requests, set exactly by `set-weight`.
    Requests,
    /// Of pods behind one Service.
    Pods,
}

/// Pod counts for a weight: at least one candidate pod, and while the canary is partial
/// at least one stable pod, so both sides really serve.
fn weight_target(desired: u32, weight: u32) -> ScaleTo {
    // ceil(desired × weight / 100) never exceeds desired, so it fits a u32.
    let share = u32::try_from((u64::from(desired) * u64::from(weight)).div_ceil(100)).unwrap_or(desired);
    let candidate = share.max(1).min(desired);
    let stable = if weight < 100 { (desired - candidate).max(1) } else { 0 };
    ScaleTo { stable, candidate }
}

fn step(plan: &[CanaryStep], state: &RolloutState, index: u32, in_step: InStep, split: Split) -> Outcome {
    let desired = state.desired_replicas;
    let Some(&current) = plan.get(index as usize) else {
        return Outcome::Act(
            Action::Done,
            format!("canary done: the candidate serves alone, {desired} of {desired} pods ready"),
        );
    };
    // The weight reached so far, for the words.
    let at = plan[..=index as usize].iter().rev().find_map(|s| match s {
        Weight(w) => Some(*w),
        _ => None,
    });
    let at = at.map_or_else(|| "canary before its first weight".to_owned(), |w| format!("canary at {w}%"));
    match current {
        Weight(weight) if split == Split::Requests => weight_of_requests(state, weight, &at),
        Weight(weight) => {
            let target = weight_target(desired, weight);
            // First phase: the candidate's share, beside the stable release as it is.
            let grown = ScaleTo { stable: stable_replicas(state), candidate: target.candidate };
            match converge(state, grown) {
                Some(action @ Action::Scale(_)) => {
                    return Outcome::Act(
                        action,
                        format!(
                            "{at}: starting {} beside {}",
                            pods(target.candidate, "candidate"),
                            pods(grown.stable, "stable")
                        ),
                    );
                }
                Some(action) => return Outcome::Act(action, waiting(state, &at)),
                None => {}
            }
            // Second phase, everything ready: the stable release goes to its share. Its
            // stopping pods are waited for by the first phase's `converge`, as the
            // counts then match it.
            match converge(state, target) {
                Some(action) => Outcome::Act(
                    action,
                    format!(
                        "{at}: {} ready, scaling to {}",
                        pods(target.candidate, "candidate"),
                        pods(target.stable, "stable")
                    ),
                ),
                None => Outcome::Next,
            }
        }
        PauseSeconds(seconds) => {
            let total_ms = seconds.saturating_mul(1000);
            if in_step.time_ms >= total_ms {
                return Outcome::Next;
            }
            let left_ms = total_ms - in_step.time_ms;
            Outcome::Act(
                Action::Pause(left_ms),
                format!("{at}: pausing for {seconds}s, {}s left", left_ms.div_ceil(1000)),
            )
        }
        AwaitPromotion(_) if in_step.promoted => Outcome::Next,
        AwaitPromotion(_) => Outcome::Act(Action::AwaitPromotion, format!("{at}: waiting for someone to promote it")),
    }
}

/// A weight step on exact weights: the candidate's share of pods beside the whole stable
/// release, then its share of requests.
fn weight_of_requests(state: &RolloutState, weight: u32, at: &str) -> Outcome {
    let candidate = weight_target(state.desired_replicas, weight).candidate;
    let grown = ScaleTo { stable: stable_replicas(state), candidate };
    match converge(state, grown) {
        Some(action @ Action::Scale(_)) => {
            return Outcome::Act(
                action,
                format!("{at}: starting {} beside {}", pods(candidate, "candidate"), pods(grown.stable, "stable")),
            );
        }
        Some(action) => return Outcome::Act(action, waiting(state, at)),
        None => {}
    }
    // Settings allow 1 to 100, so the weight fits a u8.
    let percent = weight.min(100) as u8;
    if state.weight == Some(percent) {
        return Outcome::Next;
    }
    Outcome::Act(
        Action::SetWeight(percent),
        format!(
            "{at}: sending {percent}% of requests to {} and {}% to {}",
            pods(candidate, "candidate"),
            100 - percent,
            pods(grown.stable, "stable")
        ),
    )
}

/// "1 candidate pod", "3 stable pods".
fn pods(n: u32, kind: &str) -> String {
    format!("{n} {kind} pod{}", if n == 1 { "" } else { "s" })
}

/// What a weight step waits for: candidate pods starting, stable pods stopping.
fn waiting(state: &RolloutState, at: &str) -> String {
    let stopping = state.stable.map_or(0, |s| s.ready.saturating_sub(s.replicas));
    if stopping > 0 {
        format!("{at}: {}, {} stopping", candidate_ready(state), pods(stopping, "stable"))
    } else {
        format!("{at}: {}", candidate_ready(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::sim::Cluster;
    use warship_plugin::types::Traffic;

    fn run(settings: &str, cluster: &mut Cluster) -> Vec<&'static str> {
        cluster.run(|state| next(settings, state))
    }

    #[test]
    fn the_default_plan_end_to_end() {
        let mut cluster = Cluster::new(4, Some(4));
        let kinds = run("", &mut cluster);
        let split = ["switch-traffic"];
        // Each weight: grow the candidate, wait, shrink the stable, wait.
        let weight = ["scale", "wait-ready", "scale", "wait-ready"];
        let pause = ["pause"];
        let promotion = ["await-promotion"];
        assert_eq!(kinds, [&split[..], &weight, &pause, &weight, &promotion, &weight, &["done"]].concat());
        assert_eq!(cluster.scales(), [(4, 1), (3, 1), (3, 2), (2, 2), (2, 4), (0, 4)]);
        let indices: Vec<u32> = cluster.answers.iter().map(|s| s.step_index).collect();
        assert_eq!(indices, [0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5]);
        assert_eq!(cluster.answers[0].action, Action::SwitchTraffic(Traffic::Both));
        // The pause starts when its step does, whatever time the weight step took.
        assert_eq!(cluster.answers[5].action, Action::Pause(60_000));
        let descriptions: Vec<&str> = cluster.answers[1..5].iter().map(|s| s.description.as_str()).collect();
        assert_eq!(
            descriptions,
            [
                "canary at 10%: starting 1 candidate pod beside 4 stable pods",
                "canary at 10%: 0 of 1 candidate pods ready",
                "canary at 10%: 1 candidate pod ready, scaling to 3 stable pods",
                "canary at 10%: 1 of 1 candidate pods ready, 1 stable pod stopping",
            ]
        );
        assert_eq!(cluster.state().traffic, Traffic::Both);
        assert_eq!(cluster.state().candidate, warship_plugin::sim::healthy(4));
    }

    #[test]
    fn each_weight_step_grows_the_candidate_before_shrinking_the_stable() {
        use warship_plugin::types::Workload;
        let at = |stable: (u32, u32), candidate: (u32, u32)| {
            let mut state = Cluster::new(4, Some(4)).state();
            state.traffic = Traffic::Both;
            state.stable = Some(Workload { replicas: stable.0, ready: stable.1, restarts: 0, unready_ms: 0 });
            state.candidate = Workload { replicas: candidate.0, ready: candidate.1, restarts: 0, unready_ms: 0 };
            let step = next("", &state).unwrap();
            (step.action, step.step_index)
        };
        let scale = |stable, candidate| Action::Scale(ScaleTo { stable, candidate });
        assert_eq!(at((4, 4), (0, 0)), (scale(4, 1), 0));
        assert_eq!(at((4, 4), (1, 0)), (Action::WaitReady, 0));
        assert_eq!(at((4, 4), (1, 1)), (scale(3, 1), 0));
        assert_eq!(at((3, 4), (1, 1)), (Action::WaitReady, 0));
        assert_eq!(at((3, 3), (1, 1)), (Action::Pause(60_000), 1));
        // A candidate pod lost after the stable shrank: wait for it, shrink nothing more.
        assert_eq!(at((3, 3), (1, 0)), (Action::WaitReady, 0));
    }

    #[test]
    fn a_host_restart_anywhere_resumes_with_the_same_answers() {
        let mut whole = Cluster::new(4, Some(4));
        run("", &mut whole);
        for stop in 0..whole.answers.len() {
            let mut before = Cluster::new(4, Some(4));
            for _ in 0..stop {
                before.call(|s| next("", s));
            }
            // The answer is persisted (its step index and memory), then the host goes
            // down before performing it.
            before.call_then_crash(|s| next("", s));
            let mut after = before.resume();
            run("", &mut after);
            assert_eq!(after.answers, whole.answers[stop..], "stopped before answer {stop}");
        }
    }

    #[test]
    fn a_missing_final_weight_is_added() {
        let mut cluster = Cluster::new(5, Some(5));
        let kinds = run(r#"{"steps": [{"weight": 20}]}"#, &mut cluster);
        let weight = ["scale", "wait-ready", "scale", "wait-ready"];
        assert_eq!(kinds, [&["switch-traffic"][..], &weight, &weight, &["done"]].concat());
        assert_eq!(cluster.scales(), [(5, 1), (4, 1), (4, 5), (0, 5)]);
    }

    #[test]
    fn steps_after_full_weight_still_run() {
        let mut cluster = Cluster::new(2, Some(2));
        let kinds = run(r#"{"steps": [{"weight": 100}, {"pause-seconds": 5}]}"#, &mut cluster);
        assert_eq!(kinds, ["switch-traffic", "scale", "wait-ready", "scale", "wait-ready", "pause", "done"]);
        assert_eq!(cluster.scales(), [(2, 2), (0, 2)]);
    }

    #[test]
    fn weights_keep_a_pod_on_each_side() {
        assert_eq!(weight_target(10, 10), ScaleTo { stable: 9, candidate: 1 });
        assert_eq!(weight_target(10, 1), ScaleTo { stable: 9, candidate: 1 });
        assert_eq!(weight_target(3, 50), ScaleTo { stable: 1, candidate: 2 });
        assert_eq!(weight_target(1, 50), ScaleTo { stable: 1, candidate: 1 });
        assert_eq!(weight_target(2, 99), ScaleTo { stable: 1, candidate: 2 });
        assert_eq!(weight_target(2, 100), ScaleTo { stable: 0, candidate: 2 });
        assert_eq!(weight_target(u32::MAX, 100), ScaleTo { stable: 0, candidate: u32::MAX });
    }

    #[test]
    fn a_pause_counts_the_time_already_spent() {
        let mut state = Cluster::new(4, Some(4)).state();
        state.stable = Some(warship_plugin::sim::healthy(3));
        state.candidate = warship_plugin::sim::healthy(1);
        // Past step 0 the traffic already goes to both.
        state.traffic = Traffic::Both;
        state.step_index = 1;
        state.time_in_step_ms = 45_000;
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::Pause(15_000), 1));
        assert_eq!(step.description, "canary at 10%: pausing for 60s, 15s left");
        state.time_in_step_ms = 60_000;
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::Scale(ScaleTo { stable: 3, candidate: 2 }), 2));
    }

    #[test]
    fn a_restarting_candidate_aborts() {
        let mut cluster = Cluster::new(4, Some(4));
        cluster.call(|s| next("", s)); // switch traffic to both
        cluster.call(|s| next("", s)); // start the 10% candidate pod
        cluster.call(|s| next("", s)); // wait-ready
        cluster.candidate_pods().restarts = 4;
        let kinds = run("", &mut cluster);
        assert_eq!(kinds, ["switch-traffic", "scale", "wait-ready", "abort"]);
        let last = cluster.answers.last().unwrap();
        assert_eq!(last.action, Action::Abort("candidate pods restarted 4 times, more than the 3 allowed".into()));
        assert_eq!(last.step_index, 0);
        // The stable release is still whole: nothing was taken from it yet.
        assert_eq!(cluster.state().stable, Some(warship_plugin::sim::healthy(4)));
        // Its own limit, when set.
        assert_eq!(cluster.state().candidate.restarts, 4);
        assert_eq!(
            next(r#"{"max-restarts": 4}"#, &cluster.state()).unwrap().action,
            Action::Scale(ScaleTo { stable: 3, candidate: 1 })
        );
    }

    #[test]
    fn a_candidate_failing_at_full_weight_aborts_with_the_stable_still_serving() {
        let mut cluster = Cluster::new(4, Some(4));
        while cluster.answers.last().is_none_or(|s| s.action != Action::AwaitPromotion) {
            cluster.call(|s| next("", s));
        }
        let step = cluster.call(|s| next("", s));
        assert_eq!((step.action, step.step_index), (Action::Scale(ScaleTo { stable: 2, candidate: 4 }), 4));
        cluster.candidate_pods().restarts = 4;
        let step = cluster.call(|s| next("", s));
        assert!(matches!(step.action, Action::Abort(_)), "{step:?}");
        assert_eq!(cluster.state().stable, Some(warship_plugin::sim::healthy(2)));
    }

    #[test]
    fn a_rollout_over_a_stable_release_first_splits_traffic() {
        let mut state = Cluster::new(4, Some(4)).state();
        assert_eq!(state.traffic, Traffic::Stable);
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::SwitchTraffic(Traffic::Both), 0));
        // Once the Service goes to both, step 0 scales to its weight.
        state.traffic = Traffic::Both;
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::Scale(ScaleTo { stable: 4, candidate: 1 }), 0));
        assert_eq!(step.description, "canary at 10%: starting 1 candidate pod beside 4 stable pods");
    }

    #[test]
    fn on_exact_weights_the_candidate_gets_a_share_of_requests_and_the_stable_keeps_its_pods() {
        let mut cluster = Cluster::weighted(4, Some(4));
        let kinds = run("", &mut cluster);
        let weight = ["scale", "wait-ready", "set-weight"];
        assert_eq!(kinds, [&weight[..], &["pause"], &weight, &["await-promotion"], &weight, &["done"]].concat());
        assert_eq!(cluster.scales(), [(4, 1), (4, 2), (4, 4)]);
        assert_eq!(cluster.weights(), [10, 50, 100]);
        assert_eq!(
            cluster.answers[2].description,
            "canary at 10%: sending 10% of requests to 1 candidate pod and 90% to 4 stable pods"
        );
        assert_eq!((cluster.state().traffic, cluster.state().weight), (Traffic::Both, Some(100)));
        assert_eq!(cluster.state().stable, Some(warship_plugin::sim::healthy(4)));
    }

    #[test]
    fn on_exact_weights_a_host_restart_anywhere_resumes_with_the_same_answers() {
        let mut whole = Cluster::weighted(3, Some(3));
        let settings = r#"{"steps": [{"weight": 25}, {"await-promotion": true}]}"#;
        run(settings, &mut whole);
        assert_eq!(whole.weights(), [25, 100]);
        for stop in 0..whole.answers.len() {
            let mut before = Cluster::weighted(3, Some(3));
            for _ in 0..stop {
                before.call(|s| next(settings, s));
            }
            let mut after = before.resume();
            run(settings, &mut after);
            assert_eq!(after.answers, whole.answers[stop..], "stopped before answer {stop}");
        }
    }

    #[test]
    fn on_exact_weights_a_failing_candidate_aborts_before_it_gets_requests() {
        let mut cluster = Cluster::weighted(2, Some(2));
        cluster.call(|s| next("", s)); // start the 10% candidate pod
        cluster.candidate_pods().restarts = 4;
        let kinds = run("", &mut cluster);
        assert_eq!(kinds, ["scale", "abort"]);
        assert_eq!(cluster.weights(), Vec::<u8>::new());
    }

    #[test]
    fn a_first_deploy_starts_everything_at_once() {
        let mut cluster = Cluster::new(3, None);
        assert_eq!(run("", &mut cluster), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 3)]);
    }

    #[test]
    fn bad_steps_are_refused() {
        for (settings, says) in [
            (r#"{"steps": []}"#, "at least one step"),
            (r#"{"steps": [{"weight": 0}]}"#, "steps[0]: weight must be between 1 and 100 (got 0)"),
            (r#"{"steps": [{"weight": 101}]}"#, "between 1 and 100"),
            (r#"{"steps": [{"weight": 50}, {"weight": 20}]}"#, "steps[1]: weight 20 is below the 50"),
            (r#"{"steps": [{"await-promotion": false}]}"#, "must be true"),
            (r#"{"steps": [{"wait": 5}]}"#, "unknown field `wait`"),
            (r#"{"steps": [{"weight": 5, "pause-seconds": 5}]}"#, "exactly one of"),
            (r#"{"steps": [{}]}"#, "exactly one of"),
            (r#"{"step": []}"#, "step"),
        ] {
            let err = check_config(settings).unwrap_err();
            assert!(err.contains(says), "{settings}: {err}");
        }
        assert_eq!(check_config(r#"{"steps": [{"pause-seconds": 0}, {"await-promotion": true}]}"#), Ok(()));
    }
}
