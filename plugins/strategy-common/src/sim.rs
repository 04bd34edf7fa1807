//! A tiny cluster for the strategies' tests. It plays the host: performs each answer,
//! keeps the step bookkeeping the contract promises, and fails the test on an answer
//! that would do nothing (the contract asks for an action to perform now).
//!
//! Pods take time: after a `scale` the ready counts are still the old ones, and during
//! a `wait-ready` each workload starts or stops one pod per tick until it has caught up
//! with its replicas, when the answer returns, as the host's would.

use crate::types::{Action, RolloutState, Step, Traffic, Workload};

/// One simulated second: each workload starts or stops one pod per tick.
const TICK_MS: u64 = 1_000;
/// A rollout that needs more calls than this is stuck.
const MAX_CALLS: usize = 500;

pub struct Cluster {
    pub state: RolloutState,
    /// Every answer so far, in order.
    pub answers: Vec<Step>,
}

/// A steady workload: all its pods ready, nothing wrong.
pub fn healthy(replicas: u32) -> Workload {
    Workload { replicas, ready: replicas, restarts: 0, unready_ms: 0 }
}

impl Cluster {
    /// A rollout to `desired` replicas, replacing a stable release of `stable` ready pods
    /// (`None`: a first deploy). The Service is where it was: on the stable release, or
    /// on a first deploy on the candidate (wit: `traffic`).
    pub fn new(desired: u32, stable: Option<u32>) -> Self {
        let state = RolloutState {
            desired_replicas: desired,
            stable: stable.map(healthy),
            candidate: healthy(0),
            traffic: if stable.is_some() { Traffic::Stable } else { Traffic::Candidate },
            weight: None,
            exact_weights: false,
            step_index: 0,
            time_in_step_ms: 0,
            promoted: false,
            memory: String::new(),
        };
        Self { state, answers: Vec::new() }
    }

    /// The same, on a host that splits requests by exact weights (an env with a route).
    pub fn weighted(desired: u32, stable: Option<u32>) -> Self {
        let mut cluster = Self::new(desired, stable);
        cluster.state.exact_weights = true;
        cluster
    }

    /// The weights of every `set-weight` answered so far.
    pub fn weights(&self) -> Vec<u8> {
        self.answers
            .iter()
            .filter_map(|s| match s.action {
                Action::SetWeight(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    /// Asks the strategy once and performs its answer.
    pub fn call(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Step {
        let step = next(&self.state).unwrap_or_else(|e| panic!("next failed: {e}"));
        self.apply(&step);
        self.answers.push(step.clone());
        step
    }

    /// Calls until the rollout is done or aborted; the kinds of the actions, in order.
    pub fn run(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Vec<&'static str> {
        for _ in 0..MAX_CALLS {
            if matches!(self.call(&next).action, Action::Done | Action::Abort(_)) {
                return self.kinds();
            }
        }
        panic!("no end after {MAX_CALLS} calls: {:?}", self.kinds());
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.answers.iter().map(|s| kind(&s.action)).collect()
    }

    /// The (stable, candidate) counts of every `scale` answered so far.
    pub fn scales(&self) -> Vec<(u32, u32)> {
        self.answers
            .iter()
            .filter_map(|s| match s.action {
                Action::Scale(to) => Some((to.stable, to.candidate)),
                _ => None,
            })
            .collect()
    }

    fn apply(&mut self, step: &Step) {
        let s = &mut self.state;
        if step.step_index != s.step_index {
            s.time_in_step_ms = 0;
            s.promoted = false;
        }
        s.step_index = step.step_index;
        s.memory = step.memory.clone();
        match &step.action {
            Action::Scale(to) => {
                let unchanged =
                    s.candidate.replicas == to.candidate && s.stable.is_none_or(|w| w.replicas == to.stable);
                assert!(!unchanged, "scale to the current counts does nothing: {step:?}");
                if let Some(stable) = &mut s.stable {
                    stable.replicas = to.stable;
                }
                s.candidate.replicas = to.candidate;
            }
            Action::WaitReady => {
                assert!(!crate::all_ready(s), "wait-ready with every pod ready does nothing: {step:?}");
                while !crate::all_ready(s) {
                    tick(s);
                }
            }
            Action::SwitchTraffic(to) => {
                assert!(s.traffic != *to, "switching traffic to where it goes does nothing: {step:?}");
                s.traffic = *to;
                s.weight = None;
            }
            Action::SetWeight(w) => {
                assert!(*w <= 100, "a weight above 100%: {step:?}");
                assert!(s.weight != Some(*w), "setting the weight it has does nothing: {step:?}");
                s.traffic = Traffic::Both;
                s.weight = Some(*w);
            }
            Action::Pause(ms) => {
                assert!(*ms > 0, "a pause of 0 ms does nothing: {step:?}");
                s.time_in_step_ms += ms;
            }
            Action::AwaitPromotion => {
                assert!(!s.promoted, "awaiting a promotion already given: {step:?}");
                s.promoted = true;
            }
            Action::Done | Action::Abort(_) => {}
        }
    }
}

/// A second passes: each workload starts or stops one pod towards its replicas.
fn tick(s: &mut RolloutState) {
    s.time_in_step_ms += TICK_MS;
    for w in s.stable.iter_mut().chain([&mut s.candidate]) {
        if w.ready > w.replicas {
            w.ready -= 1;
        } else if w.ready < w.replicas {
            w.ready += 1;
        }
        w.unready_ms = if w.ready < w.replicas { w.unready_ms + TICK_MS } else { 0 };
    }
}

pub fn kind(action: &Action) -> &'static str {
    match action {
        Action::Scale(_) => "scale",
        Action::SwitchTraffic(_) => "switch-traffic",
        Action::SetWeight(_) => "set-weight",
        Action::WaitReady => "wait-ready",
        Action::Pause(_) => "pause",
        Action::AwaitPromotion => "await-promotion",
        Action::Done => "done",
        Action::Abort(_) => "abort",
    }
}
