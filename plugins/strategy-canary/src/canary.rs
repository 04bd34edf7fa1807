//! Canary: move the release over in weighted steps, with pauses to watch it and points
//! where a person must promote it. The Service sends traffic to both workloads by their
//! ready pods, so a weight is a share of pods.
//!
//! A rollout starts with the Service on the stable release, so when there is one the
//! first answer (at step index 0) switches traffic to both workloads; the steps below
//! follow once it goes to both. A first deploy has nothing to split and skips this.
//!
//! Step index i is the i-th entry of the plan: the configured steps, plus a final
//! weight-100 step when they stop short of it. Past the plan the rollout is done.

use serde::Deserialize;
use serde_json::json;
use strategy_common::types::{Action, RolloutState, ScaleTo, Step};
use strategy_common::{
    split_traffic,
    candidate_ready, converge, drive, first_deploy, parse_settings, schema_with_limits, InStep, Limits, Outcome,
    DEFAULT_MAX_RESTARTS, DEFAULT_MAX_UNREADY_SECONDS,
};

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
                                               "description": "percent of the pods to run as candidate"}}},
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
    if let Some(switch) = split_traffic(state, "canary") {
        return Ok(switch);
    }
    let plan = settings.plan();
    drive(state, |index, in_step| step(&plan, state, index, in_step))
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

fn step(plan: &[CanaryStep], state: &RolloutState, index: u32, in_step: InStep) -> Outcome {
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
        Weight(weight) => {
            let target = weight_target(desired, weight);
            match converge(state, target) {
                Some(action @ Action::Scale(_)) => Outcome::Act(
                    action,
                    format!("{at}: scaling to {} candidate and {} stable pods", target.candidate, target.stable),
                ),
                Some(action) => Outcome::Act(action, format!("{at}: {}", candidate_ready(state))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_common::sim::Cluster;
    use strategy_common::types::Traffic;

    fn run(settings: &str, cluster: &mut Cluster) -> Vec<&'static str> {
        cluster.run(|state| next(settings, state))
    }

    #[test]
    fn the_default_plan_end_to_end() {
        let mut cluster = Cluster::new(4, Some(4));
        let kinds = run("", &mut cluster);
        let split = ["switch-traffic"];
        let ten = ["scale", "wait-ready"];
        let pause = ["pause"];
        let fifty = ["scale", "wait-ready"];
        let promotion = ["await-promotion"];
        let hundred = ["scale", "wait-ready", "done"];
        assert_eq!(kinds, [&split[..], &ten, &pause, &fifty, &promotion, &hundred].concat());
        assert_eq!(cluster.scales(), [(3, 1), (2, 2), (0, 4)]);
        assert_eq!(cluster.answers[0].action, Action::SwitchTraffic(Traffic::Both));
        assert_eq!(cluster.answers[0].step_index, 0);
        // The pause starts when its step does, whatever time the weight step took.
        assert_eq!(cluster.answers[3].action, Action::Pause(60_000));
        assert_eq!(cluster.answers[3].step_index, 1);
        assert_eq!(cluster.answers[2].description, "canary at 10%: 0 of 1 candidate pods ready");
        assert_eq!(cluster.answers[6].step_index, 3);
        assert_eq!(cluster.answers.last().unwrap().step_index, 5);
        assert_eq!(cluster.state.traffic, Traffic::Both);
    }

    #[test]
    fn a_missing_final_weight_is_added() {
        let mut cluster = Cluster::new(5, Some(5));
        let kinds = run(r#"{"steps": [{"weight": 20}]}"#, &mut cluster);
        assert_eq!(kinds, ["switch-traffic", "scale", "wait-ready", "scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(4, 1), (0, 5)]);
    }

    #[test]
    fn steps_after_full_weight_still_run() {
        let mut cluster = Cluster::new(2, Some(2));
        let kinds = run(r#"{"steps": [{"weight": 100}, {"pause-seconds": 5}]}"#, &mut cluster);
        assert_eq!(kinds, ["switch-traffic", "scale", "wait-ready", "pause", "done"]);
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
        let mut state = Cluster::new(4, Some(4)).state;
        state.stable = Some(strategy_common::sim::healthy(3));
        state.candidate = strategy_common::sim::healthy(1);
        // Past step 0 the traffic already goes to both.
        state.traffic = Traffic::Both;
        state.step_index = 1;
        state.time_in_step_ms = 45_000;
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::Pause(15_000), 1));
        assert_eq!(step.description, "canary at 10%: pausing for 60s, 15s left");
        state.time_in_step_ms = 60_000;
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::Scale(ScaleTo { stable: 2, candidate: 2 }), 2));
    }

    #[test]
    fn a_restarting_candidate_aborts() {
        let mut cluster = Cluster::new(4, Some(4));
        cluster.call(|s| next("", s)); // switch traffic to both
        cluster.call(|s| next("", s)); // scale to 10%
        cluster.call(|s| next("", s)); // wait-ready
        cluster.state.candidate.restarts = 4;
        let kinds = run("", &mut cluster);
        assert_eq!(kinds, ["switch-traffic", "scale", "wait-ready", "abort"]);
        let last = cluster.answers.last().unwrap();
        assert_eq!(last.action, Action::Abort("candidate pods restarted 4 times, more than the 3 allowed".into()));
        assert_eq!(last.step_index, 0);
        // Its own limit, when set.
        cluster.state.candidate.restarts = 4;
        assert_eq!(next(r#"{"max-restarts": 4}"#, &cluster.state).unwrap().action, Action::Pause(60_000));
    }

    #[test]
    fn a_rollout_over_a_stable_release_first_splits_traffic() {
        let mut state = Cluster::new(4, Some(4)).state;
        assert_eq!(state.traffic, Traffic::Stable);
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::SwitchTraffic(Traffic::Both), 0));
        // Once the Service goes to both, step 0 scales to its weight.
        state.traffic = Traffic::Both;
        let step = next("", &state).unwrap();
        assert_eq!((step.action, step.step_index), (Action::Scale(ScaleTo { stable: 3, candidate: 1 }), 0));
        assert_eq!(step.description, "canary at 10%: scaling to 1 candidate and 3 stable pods");
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
