//! The host's half of the strategy contract, without I/O: what a strategy is told at
//! each call, how its answer is checked, which changes carry it out, and how the step
//! bookkeeping moves. The host's rollout loop drives it against Kubernetes (waiting in
//! real time, saving records, calling the plugin in its sandbox); [`crate::sim`] drives
//! it against a simulated cluster in simulated time. Both get the same answers checked
//! the same way, so the contract's host side exists once.

use crate::types::{Action, Change, Observed, RolloutState, ScaleTo, Split, Step, Traffic, Workload};

/// Largest `memory` a strategy may keep between calls.
pub const MEMORY_MAX: usize = 64 << 10;
/// Largest `description` of a step.
pub const DESCRIPTION_MAX: usize = 1 << 10;

/// The releases of one env, as the rollout sees them.
pub trait View {
    /// Revisions of the releases with a workload now.
    fn releases(&self) -> Vec<u32>;
    fn observe(&self, revision: u32) -> Observed;
    /// Requests can be split between releases by exact weights (the env has a route).
    fn exact_weights(&self) -> bool;
}

/// Where the strategy is: its last answer's step, words and memory, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMark {
    pub index: u32,
    /// The action it answered last: `scale`, `wait-ready`, …
    pub action: String,
    pub description: String,
    pub memory: String,
    /// When the step began, in milliseconds of the driver's clock.
    pub since_ms: i64,
}

/// What a rollout has done so far: all the host persists of it between calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The release serving when it started; none on a first deploy.
    pub stable: Option<u32>,
    /// The release it rolls out.
    pub candidate: u32,
    /// Replicas asked of each workload.
    pub scale: ScaleTo,
    pub traffic: Traffic,
    /// The candidate's share of requests in percent, while split by weight.
    pub weight: Option<u8>,
    pub split: Option<Split>,
    pub step: Option<StepMark>,
    /// The current step was promoted.
    pub promoted: bool,
}

impl Progress {
    /// A rollout of `candidate` that has not begun, over `stable` (serving, or none).
    pub fn new(stable: Option<u32>, candidate: u32) -> Self {
        Progress {
            stable,
            candidate,
            scale: ScaleTo::default(),
            // A first deploy's env has no traffic to keep: it goes where the pods will be.
            traffic: if stable.is_some() { Traffic::Stable } else { Traffic::Candidate },
            weight: None,
            split: None,
            step: None,
            promoted: false,
        }
    }
}

/// What the host holds a rollout to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a step may wait for pods to get ready.
    pub deadline_ms: u64,
    /// The most replicas a strategy may ask of either workload.
    pub max_replicas: u32,
}

/// How a rollout fails; the host then puts the previous release back ([`Rollout::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin failed, or answered what the host refuses (its words name the plugin).
    Refused(String),
    /// The candidate was not ready within the deadline.
    Deadline { ready: u32, replicas: u32 },
    /// The strategy gave up, for this reason.
    Aborted(String),
}

impl Failure {
    /// The stable code of the deploy's failure.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Refused(_) => "plugin.failed",
            Failure::Deadline { .. } => "rollout.deadline",
            Failure::Aborted(_) => "rollout.aborted",
        }
    }

    /// Whether the candidate's pods have something to say about it.
    pub fn wants_diagnosis(&self, state: &RolloutState) -> bool {
        match self {
            Failure::Refused(_) => false,
            Failure::Deadline { .. } => true,
            // What the pods say, when some are unready: the limit hit is rarely the whole story.
            Failure::Aborted(_) => state.candidate.ready < state.candidate.replicas || state.candidate.restarts > 0,
        }
    }
}

/// What the driver does after carrying out an answer's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Ask again; the answer acted at once, so the driver holds such answers to a rate.
    AskAgain,
    /// Ask again once an observation changed (pods are not all ready yet).
    WaitForPods,
    /// Ask again after at most this many milliseconds.
    Pause(u64),
    /// Ask again once promoted (or, when the step is promoted already, a moment later).
    AwaitPromotion,
    /// The rollout succeeded.
    Succeeded,
    /// The rollout failed: restore, then end.
    Fail(Failure),
}

/// The host's answer to the strategy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The step's mark changed: persist it before acting, so a host that takes over
    /// resumes at this answer.
    pub step_changed: bool,
    /// Changes to make, in order.
    pub changes: Vec<Change>,
    /// The changes move what the progress says: persist it after them.
    pub save_after: bool,
    /// The progress once the changes are made ([`Rollout::commit`]); until then the
    /// rollout's own progress says what was true before them, as a host that went down
    /// in between would find it.
    pub progress: Progress,
    pub then: Then,
}

/// One env's rollout, as the host carries it.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub progress: Progress,
    /// The env's replicas.
    desired: u32,
    limits: Limits,
    /// The strategy's name, for refusals.
    plugin: String,
    /// When this host began watching the rollout: a host that resumes a rollout gives
    /// a step its full deadline rather than charge it for the time no host ran it.
    watching_since_ms: i64,
}

impl Rollout {
    pub fn new(progress: Progress, desired: u32, limits: Limits, plugin: impl Into<String>, now_ms: i64) -> Self {
        Rollout { progress, desired, limits, plugin: plugin.into(), watching_since_ms: now_ms }
    }

    pub fn desired(&self) -> u32 {
        self.desired
    }

    /// Before the first call, on a watch of the env that is current: the changes that
    /// bring the env to what the progress says. Returns the serving release found gone,
    /// if it was (the rollout then goes on as a first deploy).
    pub fn begin(&mut self, view: &dyn View) -> (Vec<Change>, Option<u32>) {
        let p = &mut self.progress;
        let mut gone = None;
        if p.step.is_none() {
            // The release recorded as serving may have been deleted behind the host's back.
            if let Some(stable) = p.stable.filter(|s| !view.observe(*s).exists) {
                gone = Some(stable);
                p.stable = None;
                p.traffic = Traffic::Candidate;
            }
        }
        // Leftovers of rollouts whose host died (or whose cleanup failed) go first.
        let mut changes: Vec<Change> = view
            .releases()
            .into_iter()
            .filter(|r| Some(*r) != p.stable && *r != p.candidate)
            .map(|revision| Change::Remove { revision })
            .collect();
        if p.step.is_none() {
            if let Some(stable) = p.stable {
                let running = view.observe(stable);
                p.scale.stable = if running.exists { running.desired } else { self.desired };
            }
        }
        let (traffic, weight) = (p.traffic, p.weight);
        changes.push(route(p, view, traffic, weight));
        (changes, gone)
    }

    /// A promotion given in step `at`: it counts for that step only.
    pub fn promote(&mut self, at: Option<u32>) {
        if at.is_some() && at == self.progress.step.as_ref().map(|s| s.index) {
            self.progress.promoted = true;
        }
    }

    /// What the strategy is told: replicas as asked, readiness and restarts as observed.
    pub fn state(&self, view: &dyn View, now_ms: i64) -> RolloutState {
        let p = &self.progress;
        let workload = |revision: u32, replicas: u32| {
            let seen = view.observe(revision);
            Workload { replicas, ready: seen.ready, restarts: seen.restarts, unready_ms: seen.unready_ms }
        };
        let step = p.step.as_ref();
        RolloutState {
            desired_replicas: self.desired,
            stable: p.stable.map(|s| workload(s, p.scale.stable)),
            candidate: workload(p.candidate, p.scale.candidate),
            traffic: p.traffic,
            weight: p.weight,
            exact_weights: view.exact_weights(),
            step_index: step.map_or(0, |s| s.index),
            time_in_step_ms: step.map_or(0, |s| (now_ms - s.since_ms).max(0) as u64),
            promoted: p.promoted,
            memory: step.map_or_else(String::new, |s| s.memory.clone()),
        }
    }

    /// Takes the strategy's answer (or its failure) to `state`: the step bookkeeping
    /// moves, and the plan says what to change and what then.
    pub fn answer(&mut self, view: &dyn View, answer: Result<Step, String>, state: &RolloutState, now_ms: i64) -> Plan {
        let step = match answer.and_then(|step| self.checked(step, state)) {
            Ok(step) => step,
            Err(e) => {
                let progress = self.progress.clone();
                return Plan { step_changed: false, changes: Vec::new(), save_after: false, progress, then: Then::Fail(Failure::Refused(e)) };
            }
        };
        let previous = self.progress.step.take();
        let since = match &previous {
            Some(p) if p.index == step.step_index => p.since_ms,
            _ => now_ms,
        };
        let mark = StepMark {
            index: step.step_index,
            action: step.action.name().into(),
            description: step.description,
            memory: step.memory,
            since_ms: since,
        };
        if previous.as_ref().is_some_and(|p| p.index != mark.index) {
            self.progress.promoted = false;
        }
        let step_changed = previous.as_ref() != Some(&mark);
        self.progress.step = Some(mark);
        // Time in the step, as the deadline counts it.
        let in_step_ms = (now_ms - since.max(self.watching_since_ms)).max(0) as u64;
        let mut after = self.progress.clone();
        let (changes, then) = match step.action {
            Action::Scale(to) => {
                let mut changes = vec![Change::Candidate { replicas: to.candidate }];
                if let Some(stable) = after.stable.filter(|_| to.stable != after.scale.stable) {
                    changes.push(Change::Scale { revision: stable, replicas: to.stable });
                }
                after.scale = ScaleTo { stable: if after.stable.is_some() { to.stable } else { 0 }, candidate: to.candidate };
                (changes, Then::AskAgain)
            }
            Action::SwitchTraffic(traffic) => (vec![route(&mut after, view, traffic, None)], Then::AskAgain),
            Action::SetWeight(percent) => (vec![route(&mut after, view, Traffic::Both, Some(percent))], Then::AskAgain),
            Action::WaitReady => (Vec::new(), self.wait_until_ready(state, in_step_ms)),
            Action::Pause(ms) => (Vec::new(), Then::Pause(ms)),
            Action::AwaitPromotion => (Vec::new(), Then::AwaitPromotion),
            // Accepted only once the candidate serves: until then it is a wait.
            Action::Done if !state.candidate.all_ready() => (Vec::new(), self.wait_until_ready(state, in_step_ms)),
            Action::Done => {
                let mut changes = vec![route(&mut after, view, Traffic::Candidate, None)];
                if let Some(stable) = after.stable {
                    changes.push(Change::Remove { revision: stable });
                    after.scale.stable = 0;
                }
                (changes, Then::Succeeded)
            }
            Action::Abort(reason) => (Vec::new(), Then::Fail(Failure::Aborted(reason))),
        };
        Plan { step_changed, save_after: after != self.progress, changes, progress: after, then }
    }

    /// The plan's changes were made: the progress says so from now on.
    pub fn commit(&mut self, plan: &Plan) {
        self.progress = plan.progress.clone();
    }

    /// Back to the release that served before: scaled to the env's replicas, with all
    /// traffic, and the candidate gone.
    pub fn restore(&mut self, view: &dyn View) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(stable) = self.progress.stable {
            changes.push(Change::Scale { revision: stable, replicas: self.desired });
            changes.push(route(&mut self.progress, view, Traffic::Stable, None));
            self.progress.scale.stable = self.desired;
        }
        changes.push(Change::Remove { revision: self.progress.candidate });
        self.progress.scale.candidate = 0;
        changes
    }

    /// The words of a failure, with what the pods said of it (`diagnosis`), if asked.
    pub fn failure_message(&self, failure: &Failure, diagnosis: Option<&str>) -> String {
        let restored = "the previous release was restored";
        match failure {
            Failure::Refused(e) => format!("{e}; {restored}"),
            Failure::Deadline { ready, replicas } => format!(
                "the rollout was not ready within the env's deadline of {}s: {ready} of {replicas} new pods ready; {}; {restored}",
                self.limits.deadline_ms / 1000,
                diagnosis.unwrap_or("no pod said why"),
            ),
            Failure::Aborted(reason) => {
                let said = diagnosis.map_or_else(String::new, |d| format!(" ({d})"));
                format!("the {} strategy gave up: {reason}{said}; {restored}", self.plugin)
            }
        }
    }

    fn wait_until_ready(&self, state: &RolloutState, in_step_ms: u64) -> Then {
        if in_step_ms > self.limits.deadline_ms {
            return Then::Fail(Failure::Deadline { ready: state.candidate.ready, replicas: state.candidate.replicas });
        }
        match state.all_ready() {
            true => Then::AskAgain,
            false => Then::WaitForPods,
        }
    }

    /// The strategy's answer, or why the host refuses it (naming the plugin).
    fn checked(&self, step: Step, state: &RolloutState) -> Result<Step, String> {
        let refuse = |what: String| Err(format!("strategy {} answered {what}", self.plugin));
        if step.memory.len() > MEMORY_MAX {
            return refuse(format!("a memory of {} bytes, above the {MEMORY_MAX} allowed", step.memory.len()));
        }
        if step.description.len() > DESCRIPTION_MAX {
            return refuse(format!("a description of {} bytes, above the {DESCRIPTION_MAX} allowed", step.description.len()));
        }
        let max = self.limits.max_replicas;
        match &step.action {
            Action::Scale(to) if to.candidate.max(to.stable) > max => refuse(format!(
                "scale to {} stable and {} candidate pods, above the platform's maximum of {max} (deploys.max_replicas)",
                to.stable, to.candidate
            )),
            Action::SetWeight(percent) if *percent > 100 => refuse(format!("set-weight {percent}, above 100 percent")),
            Action::Done if state.candidate.replicas == 0 && state.desired_replicas > 0 => {
                refuse("done while the candidate has no pods: the env would serve nothing".into())
            }
            _ => Ok(step),
        }
    }
}

/// The change that sends the env's traffic where `traffic` says (with `weight`, the
/// candidate's share when it goes to both); the progress records where and how split.
fn route(p: &mut Progress, view: &dyn View, traffic: Traffic, weight: Option<u8>) -> Change {
    let both = traffic == Traffic::Both && p.stable.is_some();
    let weight = weight.filter(|_| both);
    p.traffic = traffic;
    p.weight = weight;
    p.split = both.then(|| match weight.is_some() && view.exact_weights() {
        true => Split::Weights,
        false => Split::PodRatio,
    });
    Change::Route { traffic, weight, stable: p.stable, candidate: p.candidate }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ScaleTo;

    /// A view with no releases and no route.
    struct Empty;

    impl View for Empty {
        fn releases(&self) -> Vec<u32> {
            Vec::new()
        }
        fn observe(&self, _: u32) -> Observed {
            Observed::default()
        }
        fn exact_weights(&self) -> bool {
            false
        }
    }

    fn rollout(max_replicas: u32) -> Rollout {
        Rollout::new(Progress::new(None, 1), 2, Limits { deadline_ms: 1_000, max_replicas }, "greedy", 0)
    }

    fn answer(action: Action) -> Step {
        Step { action, step_index: 0, description: "d".into(), memory: String::new() }
    }

    fn refusal(rollout: &mut Rollout, step: Step) -> Option<String> {
        let state = rollout.state(&Empty, 0);
        match rollout.answer(&Empty, Ok(step), &state, 0).then {
            Then::Fail(Failure::Refused(e)) => Some(e),
            _ => None,
        }
    }

    #[test]
    fn answers_past_the_limits_are_refused_naming_the_plugin() {
        let mut r = rollout(10);
        let too_many = refusal(&mut r, answer(Action::Scale(ScaleTo { stable: 0, candidate: 11 })));
        assert!(too_many.as_ref().is_some_and(|e| e.contains("strategy greedy") && e.contains("maximum of 10")), "{too_many:?}");
        assert_eq!(refusal(&mut rollout(10), answer(Action::Scale(ScaleTo { stable: 0, candidate: 10 }))), None);
        let big = Step { memory: "m".repeat(MEMORY_MAX + 1), ..answer(Action::WaitReady) };
        assert!(refusal(&mut rollout(10), big).is_some_and(|e| e.contains("memory")));
        let wordy = Step { description: "w".repeat(DESCRIPTION_MAX + 1), ..answer(Action::WaitReady) };
        assert!(refusal(&mut rollout(10), wordy).is_some_and(|e| e.contains("description")));
        assert!(refusal(&mut rollout(10), answer(Action::SetWeight(101))).is_some_and(|e| e.contains("above 100 percent")));
        assert_eq!(refusal(&mut rollout(10), answer(Action::SetWeight(100))), None);
        assert!(refusal(&mut rollout(10), answer(Action::Done)).is_some_and(|e| e.contains("serve nothing")));
    }

    #[test]
    fn a_new_step_starts_its_clock_and_drops_the_promotion() {
        let mut r = rollout(10);
        let state = r.state(&Empty, 0);
        let first = r.answer(&Empty, Ok(answer(Action::AwaitPromotion)), &state, 100);
        assert!(first.step_changed);
        r.promote(Some(0));
        assert!(r.progress.promoted);
        // The same answer again changes nothing to persist, and keeps the promotion.
        let again = r.answer(&Empty, Ok(answer(Action::AwaitPromotion)), &r.state(&Empty, 500), 500);
        assert!(!again.step_changed);
        assert_eq!(r.state(&Empty, 600).time_in_step_ms, 500);
        let next = Step { step_index: 1, ..answer(Action::Pause(10)) };
        assert!(r.answer(&Empty, Ok(next), &r.state(&Empty, 700), 700).step_changed);
        assert!(!r.progress.promoted);
        assert_eq!(r.state(&Empty, 700).time_in_step_ms, 0);
        // A promotion given in another step does not count.
        r.promote(Some(0));
        assert!(!r.progress.promoted);
    }

    #[test]
    fn waiting_past_the_deadline_fails_and_restore_brings_the_stable_back() {
        let mut r = Rollout::new(Progress::new(Some(1), 2), 3, Limits { deadline_ms: 1_000, max_replicas: 10 }, "slow", 0);
        let scaled = r.answer(&Empty, Ok(answer(Action::Scale(ScaleTo { stable: 3, candidate: 1 }))), &r.state(&Empty, 0), 0);
        assert_eq!(scaled.changes, [Change::Candidate { replicas: 1 }, Change::Scale { revision: 1, replicas: 3 }]);
        assert!(scaled.save_after);
        // Until its changes are made, the progress says what was true before them.
        assert_eq!(r.progress.scale, ScaleTo::default());
        r.commit(&scaled);
        // Nothing observed is ready: a wait, until the deadline.
        let wait = r.answer(&Empty, Ok(answer(Action::WaitReady)), &r.state(&Empty, 900), 900);
        assert_eq!(wait.then, Then::WaitForPods);
        let late = r.answer(&Empty, Ok(answer(Action::WaitReady)), &r.state(&Empty, 1_001), 1_001);
        assert_eq!(late.then, Then::Fail(Failure::Deadline { ready: 0, replicas: 1 }));
        let restore = r.restore(&Empty);
        let route = Change::Route { traffic: Traffic::Stable, weight: None, stable: Some(1), candidate: 2 };
        assert_eq!(restore, [Change::Scale { revision: 1, replicas: 3 }, route, Change::Remove { revision: 2 }]);
        assert_eq!(r.progress.scale, ScaleTo { stable: 3, candidate: 0 });
    }
}
