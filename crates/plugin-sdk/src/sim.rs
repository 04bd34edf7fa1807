//! A simulated cluster for a strategy's unit tests (feature `sim`).
//!
//! It runs on the host's own half of the contract: `warship-rollout`'s simulator checks
//! and carries out each answer exactly as the host does against Kubernetes (the same
//! step bookkeeping, the same refusals), in simulated time where every workload starts
//! or stops one pod a second. This module maps the WIT types a plugin speaks to that
//! crate's and back, and keeps the answers as given.
//!
//! ```
//! # use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};
//! # fn next(_settings: &str, state: &RolloutState) -> Result<Step, String> {
//! #     let step = |action| Ok(Step { action, step_index: 0, description: String::new(), memory: String::new() });
//! #     match state.candidate.replicas {
//! #         0 => step(Action::Scale(ScaleTo { stable: 3, candidate: 3 })),
//! #         _ if state.candidate.ready < 3 => step(Action::WaitReady),
//! #         _ => step(Action::Done),
//! #     }
//! # }
//! use warship_plugin::sim::{Cluster, End};
//!
//! let mut cluster = Cluster::new(3, Some(3)); // three pods serving, three wanted
//! assert_eq!(cluster.run(|state| next("", state)), ["scale", "wait-ready", "done"]);
//! assert_eq!(cluster.end(), Some(&End::Done));
//! assert_eq!(cluster.min_serving(), 3); // never fewer than three pods serving
//! ```

use std::cell::RefCell;

use warship_rollout::sim::serving;
pub use warship_rollout::sim::Sim;
pub use warship_rollout::sim::{End, Fault, Pods};
use warship_rollout::types as host;

use crate::types::{Action, RolloutState, ScaleTo, Step, Traffic, Workload};

/// A rollout on a simulated cluster, and every answer the strategy gave.
pub struct Cluster {
    sim: Sim,
    end: Option<End>,
    /// Every answer so far, in order, as the strategy gave it.
    pub answers: Vec<Step>,
}

/// A steady workload: all its pods ready, nothing wrong.
pub fn healthy(replicas: u32) -> Workload {
    Workload { replicas, ready: replicas, restarts: 0, unready_ms: 0 }
}

impl Cluster {
    /// A rollout to `desired` replicas, replacing a stable release of `stable` ready pods
    /// (`None`: a first deploy). The traffic is where it was: on the stable release, or
    /// on a first deploy on the candidate (wit: `traffic`). A step that awaits promotion
    /// is promoted at once (see [`Cluster::promote_after`]).
    pub fn new(desired: u32, stable: Option<u32>) -> Self {
        Self::on(Sim::new(desired, stable))
    }

    /// The same, on a host that splits requests by exact weights (an env with a route).
    pub fn weighted(desired: u32, stable: Option<u32>) -> Self {
        Self::on(Sim::weighted(desired, stable))
    }

    fn on(sim: Sim) -> Self {
        Self { sim, end: None, answers: Vec::new() }
    }

    /// A new host taking over: what the host persisted and observes, no answers yet.
    pub fn resume(&self) -> Self {
        Self::on(self.sim.resume())
    }

    /// What the candidate's pods do from now on: crash, never get ready, get ready slowly.
    pub fn fault(&mut self, fault: Fault) -> &mut Self {
        self.sim.cluster.fault = Some(fault);
        self
    }

    /// When someone promotes a step that awaits it, in seconds; `None`: nobody does, and
    /// the run ends awaiting promotion.
    pub fn promote_after(&mut self, seconds: Option<u64>) -> &mut Self {
        self.sim.promote_after_ms = seconds.map(|s| s.saturating_mul(1000));
        self
    }

    /// A user aborts the rollout this many seconds after it began.
    pub fn abort_after(&mut self, seconds: u64) -> &mut Self {
        self.sim.abort_after_ms = Some(seconds.saturating_mul(1000));
        self
    }

    /// What the strategy was last told, or, after it acted, the state its action left.
    pub fn state(&self) -> RolloutState {
        to_wit(&self.sim.state)
    }

    /// The candidate's pods, for a test to break.
    pub fn candidate_pods(&mut self) -> &mut Pods {
        self.sim.candidate_pods()
    }

    /// The stable release's pods, for a test to change.
    pub fn stable_pods(&mut self) -> &mut Pods {
        self.sim.stable_pods().expect("a stable release")
    }

    /// Traffic already goes to `traffic` (as left by an earlier rollout).
    pub fn set_traffic(&mut self, traffic: Traffic) {
        self.sim.rollout.progress.traffic = from_wit_traffic(traffic);
        self.sim.observe();
    }

    /// Asks the strategy once and has the host carry its answer out. Panics when the
    /// host refuses the answer or it would change nothing.
    pub fn call(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Step {
        self.ask(next, false)
    }

    /// Asks once; the answer is persisted, then the host goes down before carrying it
    /// out. Carry on with [`Cluster::resume`].
    pub fn call_then_crash(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Step {
        self.ask(next, true)
    }

    fn ask(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>, crash: bool) -> Step {
        let answered = RefCell::new(None);
        let strategy = |state: &host::RolloutState| {
            let step = next(&to_wit(state)).unwrap_or_else(|e| panic!("next failed: {e}"));
            *answered.borrow_mut() = Some(step.clone());
            Ok(from_wit(step))
        };
        let end = match crash {
            true => Some(self.sim.run_until(&strategy, |_| true)),
            false => self.sim.call(&strategy),
        };
        match end {
            Some(End::Failed(why)) => panic!("the host refused the answer: {why}"),
            Some(End::NoOp(why)) => panic!("the host would ask again at once, for ever: {why}"),
            Some(End::Stuck(why)) => panic!("the rollout is stuck: {why}"),
            Some(End::Stopped) if !crash => unreachable!("nothing asked the host to stop"),
            Some(End::Stopped) => self.end = None,
            other => self.end = other,
        }
        let step = answered.into_inner().expect("the strategy was asked");
        self.answers.push(step.clone());
        step
    }

    /// Calls until the rollout ends (see [`Cluster::end`]); the kinds of all the
    /// actions answered so far, in order.
    pub fn run(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Vec<&'static str> {
        self.end = None;
        while self.end.is_none() {
            self.call(&next);
        }
        self.kinds()
    }

    /// How the rollout ended, once it has: done, aborted by the strategy, aborted by a
    /// user, or awaiting a promotion nobody gives.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// The kinds of the actions answered so far, in order (`scale`, `wait-ready`, …).
    pub fn kinds(&self) -> Vec<&'static str> {
        self.sim.kinds()
    }

    /// The (stable, candidate) counts of every `scale` answered so far.
    pub fn scales(&self) -> Vec<(u32, u32)> {
        self.sim.scales()
    }

    /// The weights of every `set-weight` answered so far.
    pub fn weights(&self) -> Vec<u8> {
        self.sim.weights()
    }

    /// The fewest pods serving requests at any moment so far: ready pods of the
    /// workloads the traffic goes to.
    pub fn min_serving(&self) -> u32 {
        self.sim.history.iter().map(serving).min().unwrap_or(0)
    }

    /// The simulator itself, for what this wrapper does not offer.
    pub fn sim(&mut self) -> &mut Sim {
        &mut self.sim
    }
}

fn to_wit(s: &host::RolloutState) -> RolloutState {
    let workload = |w: &host::Workload| Workload {
        replicas: w.replicas,
        ready: w.ready,
        restarts: w.restarts,
        unready_ms: w.unready_ms,
    };
    RolloutState {
        desired_replicas: s.desired_replicas,
        stable: s.stable.as_ref().map(workload),
        candidate: workload(&s.candidate),
        traffic: match s.traffic {
            host::Traffic::Stable => Traffic::Stable,
            host::Traffic::Candidate => Traffic::Candidate,
            host::Traffic::Both => Traffic::Both,
        },
        weight: s.weight,
        exact_weights: s.exact_weights,
        step_index: s.step_index,
        time_in_step_ms: s.time_in_step_ms,
        promoted: s.promoted,
        memory: s.memory.clone(),
    }
}

fn from_wit_traffic(t: Traffic) -> host::Traffic {
    match t {
        Traffic::Stable => host::Traffic::Stable,
        Traffic::Candidate => host::Traffic::Candidate,
        Traffic::Both => host::Traffic::Both,
    }
}

fn from_wit(step: Step) -> host::Step {
    let scale = |to: ScaleTo| host::ScaleTo { stable: to.stable, candidate: to.candidate };
    let action = match step.action {
        Action::Scale(to) => host::Action::Scale(scale(to)),
        Action::SwitchTraffic(t) => host::Action::SwitchTraffic(from_wit_traffic(t)),
        Action::SetWeight(w) => host::Action::SetWeight(w),
        Action::WaitReady => host::Action::WaitReady,
        Action::Pause(ms) => host::Action::Pause(ms),
        Action::AwaitPromotion => host::Action::AwaitPromotion,
        Action::Done => host::Action::Done,
        Action::Abort(reason) => host::Action::Abort(reason),
    };
    host::Step { action, step_index: step.step_index, description: step.description, memory: step.memory }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{converge, drive, Limits, Outcome};

    /// Start everything beside the stable release, wait, done.
    fn all_at_once(state: &RolloutState) -> Result<Step, String> {
        if let Some(abort) = Limits::default().abort_step(state) {
            return Ok(abort);
        }
        let stable = state.stable.map_or(0, |s| s.replicas);
        drive(state, |index, _| match index {
            0 => match converge(state, ScaleTo { stable, candidate: state.desired_replicas }) {
                Some(action) => Outcome::Act(action, "starting".into()),
                None => Outcome::Next,
            },
            _ => Outcome::Act(Action::Done, "done".into()),
        })
    }

    #[test]
    fn a_healthy_rollout_ends_done_with_the_stable_pods_serving_throughout() {
        let mut cluster = Cluster::new(3, Some(3));
        assert_eq!(cluster.run(all_at_once), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.end(), Some(&End::Done));
        assert_eq!(cluster.min_serving(), 3);
    }

    #[test]
    fn a_crash_loop_ends_aborted_by_the_strategy() {
        let mut cluster = Cluster::new(2, Some(2));
        cluster.fault(Fault::CrashLoop);
        cluster.run(all_at_once);
        let Some(End::Aborted(reason)) = cluster.end() else { panic!("{:?}", cluster.end()) };
        assert_eq!(reason, "candidate pods restarted 4 times, more than the 3 allowed");
        assert_eq!(cluster.min_serving(), 2);
    }

    #[test]
    fn a_host_that_goes_down_after_persisting_an_answer_is_resumed() {
        let mut cluster = Cluster::new(2, Some(2));
        cluster.call_then_crash(all_at_once);
        let mut resumed = cluster.resume();
        assert_eq!(resumed.run(all_at_once), ["scale", "wait-ready", "done"]);
        assert_eq!(resumed.end(), Some(&End::Done));
    }

    #[test]
    #[should_panic(expected = "would ask again at once")]
    fn an_answer_that_changes_nothing_fails_the_test() {
        Cluster::new(1, Some(1)).call(|s| Ok(Step { action: Action::WaitReady, ..all_at_once(s).unwrap() }));
    }
}
