//! What strategies are built from: the abort limits, the settings schema that carries
//! them, and the "scale, then wait until ready" step.
//!
//! The contract (see `wit/plugin.wit`): the host observes the rollout, calls `next`,
//! persists the answer's step index and memory, performs the action, and asks again.
//! So every answer must be something to do *now*: a step whose work is already done is
//! left within the same call, which is what [`drive`] does. Answer the same for the
//! same observation, and a host that restarts mid-rollout resumes where it was.

use serde_json::{json, Map, Value};

use crate::types::{Action, RolloutState, ScaleTo, Step, Traffic, Workload};

pub const DEFAULT_MAX_RESTARTS: u32 = 3;
pub const DEFAULT_MAX_UNREADY_SECONDS: u64 = 300;

/// When a rollout gives up on its own. A strategy's settings carry these two keys
/// (`max-restarts`, `max-unready-seconds`) beside its own: serde cannot combine
/// `flatten` with `deny_unknown_fields`, so each settings struct repeats them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_restarts: u32,
    pub max_unready_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_restarts: DEFAULT_MAX_RESTARTS, max_unready_seconds: DEFAULT_MAX_UNREADY_SECONDS }
    }
}

impl Limits {
    /// A zero allowance would abort every rollout, since new pods start unready.
    pub fn check(&self) -> Result<(), String> {
        if self.max_unready_seconds == 0 {
            return Err("max-unready-seconds must be at least 1: new pods are always unready for a while".into());
        }
        Ok(())
    }

    /// Why the rollout must stop now, if it must. Only a candidate that has pods can
    /// misbehave; before it is scaled up there is nothing to judge.
    pub fn abort_reason(&self, candidate: &Workload) -> Option<String> {
        if candidate.replicas == 0 {
            return None;
        }
        if candidate.restarts > self.max_restarts {
            return Some(format!(
                "candidate pods restarted {} times, more than the {} allowed",
                candidate.restarts, self.max_restarts
            ));
        }
        if candidate.unready_ms > self.max_unready_seconds.saturating_mul(1000) {
            return Some(format!(
                "a candidate pod has been unready for {}s, more than the {}s allowed",
                candidate.unready_ms / 1000,
                self.max_unready_seconds
            ));
        }
        None
    }

    /// The abort answer, or `None` to carry on. Asked first on every call: the host
    /// asks while it waits too, so a crashing candidate is caught mid-wait.
    pub fn abort_step(&self, state: &RolloutState) -> Option<Step> {
        let reason = self.abort_reason(&state.candidate)?;
        Some(Step {
            description: format!("giving up: {reason}"),
            action: Action::Abort(reason),
            step_index: state.step_index,
            memory: String::new(),
        })
    }
}

/// JSON Schema text of a settings object: the strategy's own properties (a JSON object
/// of property schemas) plus the two limits, no other keys allowed.
pub fn schema_with_limits(own: Value) -> String {
    let mut properties = match own {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    // A strategy's own description of a limit (another default, say) wins.
    properties.entry("max-restarts").or_insert_with(|| {
        json!({
            "type": "integer", "minimum": 0, "default": DEFAULT_MAX_RESTARTS,
            "description": "abort when the candidate's pods restarted more often than this, in sum"
        })
    });
    properties.entry("max-unready-seconds").or_insert_with(|| {
        json!({
            "type": "integer", "minimum": 1, "default": DEFAULT_MAX_UNREADY_SECONDS,
            "description": "abort when a candidate pod stays unready longer than this"
        })
    });
    json!({ "type": "object", "additionalProperties": false, "properties": properties }).to_string()
}

/// A rollout starts with the Service on the stable release; strategies that split
/// traffic by pod count first point it at both workloads. `None` once it does (and on
/// a first deploy). `who` begins the description.
pub fn split_traffic(state: &RolloutState, who: &str) -> Option<Step> {
    (state.stable.is_some() && state.traffic != Traffic::Both).then(|| Step {
        action: Action::SwitchTraffic(Traffic::Both),
        step_index: state.step_index,
        description: format!("{who}: sending traffic to stable and candidate pods alike, split by their numbers"),
        memory: state.memory.clone(),
    })
}

/// The part of the observation that belongs to one step. When an answer moves on to a
/// later step within the same call, that step has just begun: no time spent in it and
/// no promotion yet (the host's values belong to the step it last heard of).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InStep {
    pub time_ms: u64,
    pub promoted: bool,
}

/// What evaluating one step gives: something to do now (and its description), or
/// "this step is complete".
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Act(Action, String),
    Next,
}

/// Steps far beyond any real plan: a strategy that keeps saying `Next` has a bug, and
/// an error beats spinning until the host's deadline.
const MAX_STEPS_PER_CALL: u32 = 10_000;

/// Evaluates steps from the one the host reports, moving on while they are complete,
/// and answers with the first action to perform. `eval(index, in_step)` must answer
/// `Done` (or another action) past its last step.
///
/// The step answered carries no `memory`: a strategy that keeps state between calls sets
/// `step.memory` on the answer (`drive(..).map(|step| Step { memory, ..step })`), or the
/// host hands back "" next time.
pub fn drive(state: &RolloutState, mut eval: impl FnMut(u32, InStep) -> Outcome) -> Result<Step, String> {
    let mut index = state.step_index;
    let mut in_step = InStep { time_ms: state.time_in_step_ms, promoted: state.promoted };
    for _ in 0..MAX_STEPS_PER_CALL {
        match eval(index, in_step) {
            Outcome::Act(action, description) => {
                return Ok(Step { action, step_index: index, description, memory: String::new() });
            }
            Outcome::Next => {
                index = index.checked_add(1).ok_or("the step index overflowed")?;
                in_step = InStep { time_ms: 0, promoted: false };
            }
        }
    }
    Err(format!("the strategy moved through {MAX_STEPS_PER_CALL} steps without acting; this is a bug in the plugin"))
}

/// The stable workload's replica count, 0 when there is none.
pub fn stable_replicas(state: &RolloutState) -> u32 {
    state.stable.map_or(0, |s| s.replicas)
}

/// Whether `wait-ready` would return at once: every workload's ready pods match its
/// replicas (a workload scaled to 0 counts once its last pod is gone).
pub fn all_ready(state: &RolloutState) -> bool {
    let settled = |w: &Workload| w.ready == w.replicas;
    settled(&state.candidate) && state.stable.as_ref().is_none_or(settled)
}

/// The building block of every step: bring both workloads to `target`, then wait until
/// they are ready. `None` once both hold, i.e. the step is complete.
pub fn converge(state: &RolloutState, target: ScaleTo) -> Option<Action> {
    if stable_replicas(state) != target.stable || state.candidate.replicas != target.candidate {
        return Some(Action::Scale(target));
    }
    (!all_ready(state)).then_some(Action::WaitReady)
}

/// A first deploy has nothing to protect: bring the candidate to the desired replicas
/// (step 0) and finish (step 1).
pub fn first_deploy(state: &RolloutState, index: u32) -> Outcome {
    let desired = state.desired_replicas;
    match index {
        0 => match converge(state, ScaleTo { stable: 0, candidate: desired }) {
            Some(action) => {
                Outcome::Act(action, format!("first deploy: {} of {desired} pods ready", state.candidate.ready))
            }
            None => Outcome::Next,
        },
        _ => Outcome::Act(Action::Done, format!("first deploy done: {desired} of {desired} pods ready")),
    }
}

/// "1 of 3 candidate pods ready", the phrase many descriptions end with.
pub fn candidate_ready(state: &RolloutState) -> String {
    format!("{} of {} candidate pods ready", state.candidate.ready, state.candidate.replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(replicas: u32, ready: u32) -> Workload {
        Workload { replicas, ready, restarts: 0, unready_ms: 0 }
    }

    fn state(stable: Option<Workload>, candidate: Workload) -> RolloutState {
        RolloutState {
            desired_replicas: 3,
            stable,
            candidate,
            traffic: Traffic::Stable,
            weight: None,
            exact_weights: false,
            step_index: 0,
            time_in_step_ms: 0,
            promoted: false,
            memory: String::new(),
        }
    }

    #[test]
    fn limits_judge_only_a_candidate_with_pods() {
        let limits = Limits::default();
        let mut c = Workload { replicas: 0, ready: 0, restarts: 9, unready_ms: 999_000 };
        assert_eq!(limits.abort_reason(&c), None);
        c.replicas = 1;
        assert_eq!(limits.abort_reason(&c).unwrap(), "candidate pods restarted 9 times, more than the 3 allowed");
        c.restarts = 3;
        assert_eq!(
            limits.abort_reason(&c).unwrap(),
            "a candidate pod has been unready for 999s, more than the 300s allowed"
        );
        c.unready_ms = 300_000;
        assert_eq!(limits.abort_reason(&c), None);
        let huge = Limits { max_restarts: 3, max_unready_seconds: u64::MAX };
        assert_eq!(huge.abort_reason(&Workload { unready_ms: u64::MAX, ..c }), None);
        assert!(Limits { max_unready_seconds: 0, ..limits }.check().is_err());
    }

    #[test]
    fn the_abort_step_stays_at_the_current_index() {
        let mut s = state(Some(workload(3, 3)), Workload { restarts: 4, ..workload(1, 0) });
        s.step_index = 7;
        let step = Limits::default().abort_step(&s).unwrap();
        assert_eq!(step.step_index, 7);
        assert_eq!(step.action, Action::Abort("candidate pods restarted 4 times, more than the 3 allowed".into()));
        assert!(step.description.starts_with("giving up: "), "{}", step.description);
    }

    #[test]
    fn converge_scales_then_waits_then_completes() {
        let target = ScaleTo { stable: 0, candidate: 3 };
        assert_eq!(converge(&state(Some(workload(3, 3)), workload(0, 0)), target), Some(Action::Scale(target)));
        assert_eq!(converge(&state(Some(workload(0, 1)), workload(3, 3)), target), Some(Action::WaitReady));
        assert_eq!(converge(&state(Some(workload(0, 0)), workload(3, 2)), target), Some(Action::WaitReady));
        assert_eq!(converge(&state(Some(workload(0, 0)), workload(3, 3)), target), None);
        assert_eq!(converge(&state(None, workload(3, 3)), target), None);
    }

    #[test]
    fn traffic_is_split_once_and_only_over_a_stable_release() {
        let mut s = state(Some(workload(3, 3)), workload(0, 0));
        assert_eq!(split_traffic(&s, "x").unwrap().action, Action::SwitchTraffic(Traffic::Both));
        s.traffic = Traffic::Both;
        assert_eq!(split_traffic(&s, "x"), None);
        assert_eq!(split_traffic(&state(None, workload(0, 0)), "x"), None);
    }

    #[test]
    fn a_first_deploy_scales_waits_and_finishes() {
        let s = state(None, workload(0, 0));
        assert_eq!(
            first_deploy(&s, 0),
            Outcome::Act(Action::Scale(ScaleTo { stable: 0, candidate: 3 }), "first deploy: 0 of 3 pods ready".into())
        );
        assert_eq!(first_deploy(&state(None, workload(3, 3)), 0), Outcome::Next);
        assert!(matches!(first_deploy(&s, 1), Outcome::Act(Action::Done, _)));
    }

    #[test]
    fn drive_starts_later_steps_afresh() {
        let mut s = state(None, workload(0, 0));
        s.step_index = 4;
        s.time_in_step_ms = 5_000;
        s.promoted = true;
        let mut seen = Vec::new();
        let step = drive(&s, |index, in_step| {
            seen.push((index, in_step));
            if index < 6 {
                Outcome::Next
            } else {
                Outcome::Act(Action::Done, "done".into())
            }
        })
        .unwrap();
        assert_eq!(step.step_index, 6);
        assert_eq!(step.action, Action::Done);
        let fresh = InStep { time_ms: 0, promoted: false };
        assert_eq!(seen, [(4, InStep { time_ms: 5_000, promoted: true }), (5, fresh), (6, fresh)]);
    }

    #[test]
    fn drive_refuses_to_spin() {
        assert!(drive(&state(None, workload(0, 0)), |_, _| Outcome::Next).is_err());
    }

    #[test]
    fn schema_lists_own_keys_and_limits() {
        let schema: Value = serde_json::from_str(&schema_with_limits(json!({"x": {"type": "integer"}}))).unwrap();
        let keys: Vec<_> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["max-restarts", "max-unready-seconds", "x"]);
        let own = json!({"max-restarts": {"type": "integer", "minimum": 0, "default": 2}});
        let schema: Value = serde_json::from_str(&schema_with_limits(own)).unwrap();
        assert_eq!(schema["properties"]["max-restarts"]["default"], 2, "the strategy's own default stays");
        assert_eq!(schema["additionalProperties"], false);
    }
}
