//! The strategies' tests run on the host's own half of the contract: `warship-rollout`'s
//! simulated cluster checks and carries out each answer exactly as the host does against
//! Kubernetes (the same step bookkeeping, the same refusals), in simulated time where
//! every workload starts or stops one pod a second. This module only maps the WIT types
//! the plugins speak to the shared crate's and back, and keeps the answers as given.

use std::cell::RefCell;

use warship_rollout::sim::{End, Pods, Sim};
use warship_rollout::types as host;

use crate::types::{Action, RolloutState, ScaleTo, Step, Traffic, Workload};

pub struct Cluster {
    sim: Sim,
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
    /// on a first deploy on the candidate (wit: `traffic`).
    pub fn new(desired: u32, stable: Option<u32>) -> Self {
        Self { sim: Sim::new(desired, stable), answers: Vec::new() }
    }

    /// The same, on a host that splits requests by exact weights (an env with a route).
    pub fn weighted(desired: u32, stable: Option<u32>) -> Self {
        Self { sim: Sim::weighted(desired, stable), answers: Vec::new() }
    }

    /// A new host taking over: what the host persisted and observes, no answers yet.
    pub fn resume(&self) -> Self {
        Self { sim: self.sim.resume(), answers: Vec::new() }
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

    /// Asks the strategy once and has the host carry its answer out.
    pub fn call(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Step {
        self.ask(next, false)
    }

    /// Asks once; the answer is persisted, then the host goes down before carrying it out.
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
        match crash {
            true => assert_eq!(self.sim.run_until(&strategy, |_| true), End::Stopped),
            false => {
                if let Some(End::Failed(why)) = self.sim.call(&strategy) {
                    panic!("the host refused the answer: {why}");
                }
            }
        }
        let step = answered.into_inner().expect("the strategy was asked");
        self.answers.push(step.clone());
        step
    }

    /// Calls until the rollout is done or aborted; the kinds of the actions, in order.
    pub fn run(&mut self, next: impl Fn(&RolloutState) -> Result<Step, String>) -> Vec<&'static str> {
        while !matches!(self.call(&next).action, Action::Done | Action::Abort(_)) {}
        self.kinds()
    }

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
}

fn to_wit(s: &host::RolloutState) -> RolloutState {
    let workload = |w: &host::Workload| Workload { replicas: w.replicas, ready: w.ready, restarts: w.restarts, unready_ms: w.unready_ms };
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
