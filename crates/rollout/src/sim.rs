//! A simulated cluster that runs a strategy through the host's own half of the contract
//! ([`Rollout`]), in simulated time: the strategies' unit tests and the host's simulator
//! suite both run here, so what a strategy is told and how its answers are carried out
//! is exactly what the host does with Kubernetes.
//!
//! Pods take time: each simulated second every workload starts or stops one pod
//! towards its replicas, unless the script keeps the candidate's unready. The sim is
//! stricter than the host in one way: an answer that would change nothing ends the
//! run ([`End::NoOp`]), because the host would ask again at once, for ever.

use std::collections::BTreeMap;

use crate::host::{Failure, Limits, Progress, Rollout, Then, View};
use crate::types::{Action, Change, Observed, RolloutState, Step, Traffic};

/// One simulated second.
pub const TICK_MS: u64 = 1_000;
/// A rollout needing more calls than this is stuck, whatever it says.
const MAX_CALLS: usize = 500;
/// The serving release's revision, and the candidate's.
pub const STABLE: u32 = 1;
pub const CANDIDATE: u32 = 2;

/// A strategy: anything that answers a state with a step.
pub trait Strategy {
    fn next(&self, state: &RolloutState) -> Result<Step, String>;
}

impl<F: Fn(&RolloutState) -> Result<Step, String>> Strategy for F {
    fn next(&self, state: &RolloutState) -> Result<Step, String> {
        self(state)
    }
}

/// What the script does to the candidate's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Healthy,
    /// Its pods never become ready (a readiness probe that always fails).
    NeverReady,
    /// Its pods crash: never ready, and one more restart every tick.
    CrashLoop,
    /// Its pods get ready, but only after being unready this many milliseconds.
    SlowReady { ready_after_ms: u64 },
}

impl Fault {
    /// Pods that will never get ready: the host asks every tick while they stay so.
    fn breaks_pods(self) -> bool {
        matches!(self, Fault::NeverReady | Fault::CrashLoop)
    }
}

/// One release's pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pods {
    pub replicas: u32,
    pub ready: u32,
    pub restarts: u32,
    pub unready_ms: u64,
}

/// The env's releases and its traffic, as a target holds them.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub releases: BTreeMap<u32, Pods>,
    pub traffic: Option<Traffic>,
    pub weight: Option<u8>,
    pub exact_weights: bool,
    pub fault: Option<Fault>,
}

impl View for Cluster {
    fn releases(&self) -> Vec<u32> {
        self.releases.keys().copied().collect()
    }

    fn observe(&self, revision: u32) -> Observed {
        self.releases.get(&revision).map_or_else(Observed::default, |p| Observed {
            exists: true,
            desired: p.replicas,
            ready: p.ready,
            restarts: p.restarts,
            unready_ms: p.unready_ms,
        })
    }

    fn exact_weights(&self) -> bool {
        self.exact_weights
    }
}

impl Cluster {
    fn apply(&mut self, change: &Change) {
        match *change {
            Change::Candidate { replicas } => self.releases.entry(CANDIDATE).or_default().replicas = replicas,
            Change::Scale { revision, replicas } => {
                if let Some(pods) = self.releases.get_mut(&revision) {
                    pods.replicas = replicas;
                }
            }
            Change::Route { traffic, weight, .. } => {
                self.traffic = Some(traffic);
                self.weight = weight;
            }
            Change::Remove { revision } => {
                self.releases.remove(&revision);
            }
        }
    }

    /// Time passes: each workload moves one pod towards its replicas (one starts or one
    /// stops), except a faulty candidate's, which stay unready.
    fn tick(&mut self, ms: u64) {
        let fault = self.fault.unwrap_or(Fault::Healthy);
        for (revision, w) in &mut self.releases {
            let stuck = *revision == CANDIDATE
                && match fault {
                    Fault::Healthy => false,
                    Fault::NeverReady | Fault::CrashLoop => true,
                    Fault::SlowReady { ready_after_ms } => w.unready_ms < ready_after_ms,
                };
            if w.ready > w.replicas {
                w.ready -= 1;
            } else if w.ready < w.replicas && !stuck {
                w.ready += 1;
            }
            // Pods still to start have been unready since the workload last settled.
            w.unready_ms = if w.ready < w.replicas { w.unready_ms + ms } else { 0 };
            if stuck && fault == Fault::CrashLoop && w.replicas > 0 {
                w.restarts += 1;
            }
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Done,
    /// The strategy gave up, for this reason (the host then restored the stable release).
    Aborted(String),
    /// The host refused an answer or gave up waiting, in these words.
    Failed(String),
    /// The strategy awaits a promotion that the script does not give.
    AwaitingPromotion,
    /// `run_until`'s condition held for the last answer: persisted, not performed.
    Stopped,
    /// A user aborted the rollout (the host restored the stable release).
    AbortedByUser,
    /// No end after this many calls, the last answers' kinds given.
    Stuck(String),
    /// An answer that would change nothing, so the host would ask again at once, for ever.
    NoOp(String),
}

/// A rollout on the simulated cluster: the host's half, the pods, and the script.
#[derive(Debug, Clone)]
pub struct Sim {
    pub cluster: Cluster,
    pub rollout: Rollout,
    /// The simulated clock, in milliseconds.
    pub now_ms: i64,
    /// When the scripted user promotes a step that awaits it (after this long), if ever.
    pub promote_after_ms: Option<u64>,
    /// When the scripted user aborts the rollout (this long after it began), if ever.
    pub abort_after_ms: Option<u64>,
    /// What the strategy was last told, or, after it acted, the state its action left.
    pub state: RolloutState,
    /// Every answer, in order.
    pub steps: Vec<Step>,
    /// Every state the env went through: after each change and each tick.
    pub history: Vec<RolloutState>,
}

impl Sim {
    /// A rollout to `desired` replicas over a healthy stable release of `stable` pods
    /// (`None`: a first deploy).
    pub fn new(desired: u32, stable: Option<u32>) -> Sim {
        let mut cluster = Cluster::default();
        if let Some(n) = stable {
            cluster.releases.insert(STABLE, Pods { replicas: n, ready: n, ..Pods::default() });
        }
        let progress = Progress::new(stable.map(|_| STABLE), CANDIDATE);
        let limits = Limits { deadline_ms: u64::MAX, max_replicas: 1_000 };
        let rollout = Rollout::new(progress, desired, limits, "simulated", 0);
        let mut sim = Sim {
            state: rollout.state(&cluster, 0),
            cluster,
            rollout,
            now_ms: 0,
            promote_after_ms: Some(0),
            abort_after_ms: None,
            steps: Vec::new(),
            history: Vec::new(),
        };
        sim.begin();
        sim
    }

    /// The same, where the env's route splits requests by exact weights.
    pub fn weighted(desired: u32, stable: Option<u32>) -> Sim {
        let mut sim = Sim::new(desired, stable);
        sim.cluster.exact_weights = true;
        sim.observe();
        sim
    }

    /// A new host taking the rollout over: the same cluster and clock, and of the
    /// rollout only what the host persisted (its progress).
    pub fn resume(&self) -> Sim {
        let rollout = Rollout::new(self.rollout.progress.clone(), self.rollout.desired(), self.limits(), "simulated", self.now_ms);
        let mut sim = Sim { rollout, steps: Vec::new(), history: Vec::new(), ..self.clone() };
        sim.begin();
        sim
    }

    fn limits(&self) -> Limits {
        Limits { deadline_ms: u64::MAX, max_replicas: 1_000 }
    }

    fn begin(&mut self) {
        let (changes, _) = self.rollout.begin(&self.cluster);
        self.perform(&changes);
        self.observe();
        self.history.push(self.state.clone());
    }

    /// The state the strategy would be told now.
    pub fn observe(&mut self) -> &RolloutState {
        self.state = self.rollout.state(&self.cluster, self.now_ms);
        &self.state
    }

    /// Asks and performs until the rollout ends.
    pub fn run(&mut self, strategy: &dyn Strategy) -> End {
        self.run_until(strategy, |_| false)
    }

    /// Asks and performs until the rollout ends, or until `stop` holds for an answer,
    /// which is then persisted but not performed (the host went down meanwhile).
    pub fn run_until(&mut self, strategy: &dyn Strategy, stop: impl Fn(&Step) -> bool) -> End {
        loop {
            if let Some(end) = self.step(strategy, &stop) {
                return end;
            }
        }
    }

    /// Asks once and performs the answer; the end of the run, if it is one.
    pub fn call(&mut self, strategy: &dyn Strategy) -> Option<End> {
        self.step(strategy, &|_| false)
    }

    fn step(&mut self, strategy: &dyn Strategy, stop: &dyn Fn(&Step) -> bool) -> Option<End> {
        if self.steps.len() >= MAX_CALLS {
            let kinds = self.kinds();
            return Some(End::Stuck(format!("no end after {MAX_CALLS} calls, the last ones: {:?}", &kinds[kinds.len() - 10..])));
        }
        if self.abort_after_ms.is_some_and(|after| self.now_ms >= after as i64) {
            // The host carries a user's abort out itself; the strategy is not asked.
            let restore = self.rollout.restore(&self.cluster);
            self.perform(&restore);
            self.observe();
            return Some(End::AbortedByUser);
        }
        let state = self.observe().clone();
        let answer = strategy.next(&state);
        if let Ok(step) = &answer {
            self.steps.push(step.clone());
            if let Some(why) = noop(step, &state) {
                return Some(End::NoOp(why));
            }
        }
        let stopping = answer.as_ref().is_ok_and(stop);
        let plan = self.rollout.answer(&self.cluster, answer, &state, self.now_ms);
        if stopping {
            // The step is persisted; its changes were never made.
            return Some(End::Stopped);
        }
        match plan.then {
            Then::Succeeded => {
                self.perform(&plan.changes);
                self.rollout.commit(&plan);
                return Some(End::Done);
            }
            Then::Fail(failure) => {
                let restore = self.rollout.restore(&self.cluster);
                self.perform(&restore);
                return Some(match failure {
                    Failure::Aborted(reason) => End::Aborted(reason),
                    other => End::Failed(self.rollout.failure_message(&other, None)),
                });
            }
            _ => {}
        }
        self.perform(&plan.changes);
        self.rollout.commit(&plan);
        if !plan.changes.is_empty() {
            self.observe();
            self.history.push(self.state.clone());
        }
        match plan.then {
            Then::WaitForPods => {
                // A healthy rollout is asked again once all is ready. With a faulty
                // candidate the host asks every tick, as its observation changes, so the
                // strategy can give up on its limits while waiting.
                loop {
                    self.tick(TICK_MS);
                    if self.state.all_ready() || self.cluster.fault.is_some_and(Fault::breaks_pods) || self.abort_due() {
                        break;
                    }
                }
            }
            Then::Pause(ms) => self.advance(ms),
            Then::AwaitPromotion => match self.promote_after_ms {
                None => return Some(End::AwaitingPromotion),
                Some(after) => {
                    // Someone looks at it for a while, then promotes.
                    self.advance(after);
                    if self.abort_due() {
                        return None;
                    }
                    self.rollout.promote(Some(state_step(&self.rollout)));
                    self.observe();
                }
            },
            _ => {}
        }
        None
    }

    fn abort_due(&self) -> bool {
        self.abort_after_ms.is_some_and(|after| self.now_ms >= after as i64)
    }

    fn perform(&mut self, changes: &[Change]) {
        for change in changes {
            self.cluster.apply(change);
        }
    }

    /// Lets `ms` pass, a tick at a time, so pods keep moving meanwhile.
    pub fn advance(&mut self, ms: u64) {
        let mut left = ms;
        // A user's abort does not wait for the pause to end.
        while left > 0 && !self.abort_due() {
            let dt = left.min(TICK_MS);
            self.tick(dt);
            left -= dt;
        }
    }

    fn tick(&mut self, ms: u64) {
        self.now_ms += ms as i64;
        self.cluster.tick(ms);
        self.observe();
        self.history.push(self.state.clone());
    }

    /// The kinds of the answers, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.action.name()).collect()
    }

    /// The (stable, candidate) counts of every `scale` answered.
    pub fn scales(&self) -> Vec<(u32, u32)> {
        let scale = |s: &Step| match &s.action {
            Action::Scale(to) => Some((to.stable, to.candidate)),
            _ => None,
        };
        self.steps.iter().filter_map(scale).collect()
    }

    /// The weights of every `set-weight` answered.
    pub fn weights(&self) -> Vec<u8> {
        let weight = |s: &Step| match s.action {
            Action::SetWeight(w) => Some(w),
            _ => None,
        };
        self.steps.iter().filter_map(weight).collect()
    }

    /// (replicas, ready) of the stable workload and of the candidate, as last told or left.
    pub fn counts(&self) -> ((u32, u32), (u32, u32)) {
        let pair = |w: &crate::types::Workload| (w.replicas, w.ready);
        (self.state.stable.as_ref().map_or((0, 0), pair), pair(&self.state.candidate))
    }

    /// The candidate's pods, for a script to break.
    pub fn candidate_pods(&mut self) -> &mut Pods {
        self.cluster.releases.entry(CANDIDATE).or_default()
    }

    /// The stable release's pods, for a script to change.
    pub fn stable_pods(&mut self) -> Option<&mut Pods> {
        self.cluster.releases.get_mut(&STABLE)
    }
}

fn state_step(rollout: &Rollout) -> u32 {
    rollout.progress.step.as_ref().map_or(0, |s| s.index)
}

/// Why an answer would change nothing, if it would not.
fn noop(step: &Step, s: &RolloutState) -> Option<String> {
    let what = match &step.action {
        Action::Scale(to) => {
            let unchanged = s.candidate.replicas == to.candidate && s.stable.as_ref().is_none_or(|w| w.replicas == to.stable);
            unchanged.then_some("scaling to the current counts")
        }
        Action::SwitchTraffic(to) => (s.traffic == *to).then_some("switching traffic to where it goes"),
        Action::SetWeight(w) => (s.weight == Some(*w)).then_some("setting the weight it has"),
        Action::WaitReady => s.all_ready().then_some("wait-ready with every pod ready"),
        Action::Pause(ms) => (*ms == 0).then_some("a pause of 0 ms"),
        Action::AwaitPromotion => s.promoted.then_some("awaiting a promotion already given"),
        Action::Done | Action::Abort(_) => None,
    }?;
    Some(format!("{what} does nothing: {step:?}\nstate: {s:?}"))
}

/// Pods the Service reaches: the ready ones of the workloads traffic goes to, without
/// those beyond the replica count, which are stopping (a terminating pod leaves the
/// Service at once).
pub fn serving(s: &RolloutState) -> u32 {
    let up = |w: &crate::types::Workload| w.ready.min(w.replicas);
    let stable = s.stable.as_ref().map_or(0, up);
    match s.traffic {
        Traffic::Stable => stable,
        Traffic::Candidate => up(&s.candidate),
        Traffic::Both => stable + up(&s.candidate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ScaleTo;

    fn answer(action: Action, step_index: u32) -> Result<Step, String> {
        Ok(Step { action, step_index, description: "d".into(), memory: String::new() })
    }

    #[test]
    fn done_before_the_candidate_is_ready_is_a_wait_as_on_the_host() {
        let mut sim = Sim::new(2, Some(2));
        let hasty = |s: &RolloutState| match s.candidate.replicas {
            0 => answer(Action::Scale(ScaleTo { stable: 0, candidate: 2 }), 0),
            _ => answer(Action::Done, 1),
        };
        assert_eq!(sim.run(&hasty), End::Done);
        // The first `done` found no pod ready: the host waited for them, then took the second.
        assert_eq!(sim.kinds(), ["scale", "done", "done"]);
        assert_eq!(sim.cluster.releases.keys().copied().collect::<Vec<_>>(), [CANDIDATE]);
        assert_eq!(sim.cluster.observe(CANDIDATE).ready, 2);
        assert_eq!(sim.cluster.traffic, Some(Traffic::Candidate));
    }

    #[test]
    fn an_answer_the_host_refuses_fails_the_rollout_and_restores_the_stable_release() {
        let mut sim = Sim::new(2, Some(2));
        let greedy = |_: &RolloutState| answer(Action::Scale(ScaleTo { stable: 2, candidate: 5_000 }), 0);
        let End::Failed(why) = sim.run(&greedy) else { panic!("not refused: {:?}", sim.kinds()) };
        assert!(why.contains("maximum of 1000") && why.contains("restored"), "{why}");
        assert_eq!(sim.cluster.releases.keys().copied().collect::<Vec<_>>(), [STABLE]);
        assert_eq!(sim.cluster.observe(STABLE).desired, 2);
    }

    /// Scale to everything, wait, done: the least a strategy does.
    fn straight(s: &RolloutState) -> Result<Step, String> {
        match (s.candidate.replicas, s.all_ready()) {
            (0, _) => answer(Action::Scale(ScaleTo { stable: 0, candidate: s.desired_replicas }), 0),
            (_, false) => answer(Action::WaitReady, 1),
            (_, true) => answer(Action::Done, 2),
        }
    }

    #[test]
    fn an_answer_that_changes_nothing_ends_the_run_with_its_words() {
        let mut sim = Sim::new(2, Some(2));
        let idle = |_: &RolloutState| answer(Action::SwitchTraffic(Traffic::Stable), 0);
        let End::NoOp(why) = sim.run(&idle) else { panic!("not refused: {:?}", sim.kinds()) };
        assert!(why.starts_with("switching traffic to where it goes does nothing"), "{why}");
    }

    #[test]
    fn a_rollout_that_never_ends_is_stuck_after_the_call_limit() {
        let mut sim = Sim::new(2, Some(2));
        let dawdle = |_: &RolloutState| answer(Action::Pause(1_000), 0);
        let End::Stuck(why) = sim.run(&dawdle) else { panic!("ended: {:?}", sim.kinds()) };
        assert!(why.contains("no end after 500 calls") && why.contains("pause"), "{why}");
    }

    #[test]
    fn slow_pods_get_ready_once_unready_long_enough() {
        let mut sim = Sim::new(2, Some(2));
        sim.cluster.fault = Some(Fault::SlowReady { ready_after_ms: 10 * TICK_MS });
        assert_eq!(sim.run(&straight), End::Done);
        // 10 s unready, then a pod a second: the first ready pod is seen at 11 s.
        assert!(sim.now_ms >= 11_000, "{}", sim.now_ms);
        assert_eq!(sim.cluster.observe(CANDIDATE).ready, 2);
    }

    #[test]
    fn a_user_abort_restores_the_stable_release_without_asking_the_strategy() {
        let mut sim = Sim::new(2, Some(2));
        sim.cluster.fault = Some(Fault::NeverReady);
        sim.abort_after_ms = Some(5 * TICK_MS);
        assert_eq!(sim.run(&straight), End::AbortedByUser);
        assert_eq!(sim.cluster.releases.keys().copied().collect::<Vec<_>>(), [STABLE]);
        assert_eq!((sim.cluster.observe(STABLE).desired, sim.state.traffic), (2, Traffic::Stable));
    }

    #[test]
    fn a_crash_between_persisting_an_answer_and_carrying_it_out_resumes_at_that_answer() {
        let mut sim = Sim::new(2, Some(2));
        let scale = |_: &RolloutState| answer(Action::Scale(ScaleTo { stable: 2, candidate: 1 }), 3);
        assert_eq!(sim.run_until(&scale, |_| true), End::Stopped);
        // The step is persisted; the scale was never made, and the progress does not claim it.
        let resumed = sim.resume();
        assert_eq!((resumed.state.step_index, resumed.state.candidate.replicas), (3, 0));
        assert!(!resumed.cluster.releases.contains_key(&CANDIDATE));
    }
}
