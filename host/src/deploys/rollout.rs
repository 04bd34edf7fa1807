//! The rollout loop: observe the env's releases on the target, ask the strategy plugin
//! for the next action, check the answer, apply it, persist the plugin's opaque memory,
//! until done, aborted, or past the env's deadline. The host trusts no answer: scale
//! is bounded, `done` needs a ready candidate, actions that don't wait are
//! rate-limited, and the plugin's words and memory are capped.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::driver::Run;
use super::record::{failure, DeployEvent, DeployFailure, Scale, StrategyStep, WorkloadReplicas};
use super::target::{Change, Target};
use crate::cluster::ClusterError;
use crate::domain::{Action, EnvSpec, RolloutState, Split, Step, Traffic, Workload};

/// How often the loop looks again when nothing changed.
const TICK: Duration = Duration::from_secs(1);
/// Largest `memory` a strategy may keep between calls.
pub const MEMORY_MAX: usize = 64 << 10;
/// Largest `description` of a step.
pub const DESCRIPTION_MAX: usize = 1 << 10;
/// Actions that don't wait (scale, switch traffic), in a burst and then per second.
const AT_ONCE_BURST: u32 = 10;
const AT_ONCE_PER_SEC: u32 = 5;

/// How a rollout (or the whole deploy) ended.
#[derive(Debug)]
pub enum Ending {
    Succeeded,
    Failed(DeployFailure),
    Aborted(DeployFailure),
}

/// What the loop needs beyond the run.
pub struct Limits {
    pub deadline: Duration,
    pub max_replicas: u32,
}

impl From<ClusterError> for DeployFailure {
    fn from(e: ClusterError) -> Self {
        failure(e.code(), e.to_string())
    }
}

/// Drives the strategy to its end. `Err` is a failure of the target or the store under
/// it: the caller puts the previous release back.
pub async fn roll(run: &mut Run, target: &dyn Target, env: &EnvSpec, limits: &Limits) -> Result<Ending, DeployFailure> {
    target.sync(Duration::from_secs(60)).await?;
    if run.record.step.is_none() {
        // The release recorded as serving may have been deleted behind warship's back.
        if let Some(gone) = run.record.stable.filter(|s| !target.observe(*s).exists) {
            tracing::warn!(id = %run.record.id, release = gone, "the serving release has no workload; rolling out as a first deploy");
            run.record.stable = None;
            run.record.traffic = Traffic::Candidate;
        }
    }
    let (stable, candidate) = (run.record.stable, run.record.revision);

    // Leftovers of deploys whose host died (or whose cleanup failed) go first.
    for stray in target.releases() {
        if Some(stray) != stable && stray != candidate {
            run.apply(target, Change::Remove { revision: stray }).await?;
        }
    }
    if run.record.step.is_none() {
        if let Some(stable) = stable {
            let running = target.observe(stable);
            run.record.scale.stable = if running.exists { running.desired } else { env.replicas };
        }
    }
    route(run, target, run.record.traffic, run.record.weight).await?;

    let mut last_seen = None;
    let watching_since = OffsetDateTime::now_utc();
    let mut signals = run.signals.clone();
    let mut at_once = Bucket::new();
    loop {
        // A promotion counts for the step it was given in.
        let promoted_at = signals.borrow_and_update().promote.as_ref().and_then(|p| p.step);
        if promoted_at.is_some() && promoted_at == run.record.step.as_ref().map(|s| s.index) {
            run.record.promoted = true;
        }
        let state = observe(run, target, env.replicas);
        let seen = DeployEvent::Replicas {
            stable: stable.zip(state.stable).map(|(revision, w)| WorkloadReplicas::of(revision, &w)),
            candidate: WorkloadReplicas::of(candidate, &state.candidate),
        };
        if last_seen.as_ref() != Some(&seen) {
            run.journal.append(&seen).await;
            last_seen = Some(seen);
        }
        let step = match run.plugin.clone() {
            Some(plugin) => {
                let (settings, state) = (run.settings.clone(), state.clone());
                tokio::task::spawn_blocking(move || plugin.next_step_with(&settings, &state)).await.expect("plugin calls do not panic")
            }
            None => Err(crate::plugins::PluginError::gone(&run.record.strategy)),
        };
        let step = match step.map_err(|e| e.to_string()).and_then(|step| checked(step, &state, limits, &run.record.strategy)) {
            Ok(step) => step,
            Err(e) => {
                restore(run, target, env.replicas).await?;
                return Ok(Ending::Failed(failure("plugin.failed", format!("{e}; the previous release was restored"))));
            }
        };
        let now = OffsetDateTime::now_utc();
        let previous = run.record.step.clone();
        let since = match &previous {
            Some(p) if p.index == step.step_index => p.since,
            _ => now,
        };
        let next = StrategyStep {
            index: step.step_index,
            action: step.action.name().into(),
            description: step.description.clone(),
            memory: step.memory.clone(),
            since,
        };
        if previous.as_ref().is_some_and(|p| p.index != next.index) {
            run.record.promoted = false;
        }
        if previous.as_ref() != Some(&next) {
            run.record.step = Some(next);
            run.save().await?;
        }
        if step.action.acts_at_once() {
            at_once.take().await;
        }
        // Time in the step, as the deadline counts it: a host that resumes a rollout
        // gives it a full deadline, rather than charging it for the time no host ran it.
        let in_step = (now - since.max(watching_since)).unsigned_abs();
        match step.action {
            Action::Scale(to) => {
                run.apply(target, Change::Candidate { replicas: to.candidate }).await?;
                if let Some(stable) = stable.filter(|_| to.stable != run.record.scale.stable) {
                    run.apply(target, Change::Scale { revision: stable, replicas: to.stable }).await?;
                }
                run.record.scale = Scale { stable: if stable.is_some() { to.stable } else { 0 }, candidate: to.candidate };
                run.save().await?;
            }
            Action::SwitchTraffic(traffic) => {
                route(run, target, traffic, None).await?;
                run.save().await?;
            }
            Action::SetWeight(percent) => {
                route(run, target, Traffic::Both, Some(percent)).await?;
                run.save().await?;
            }
            Action::WaitReady => {
                if let Some(ending) = wait_until_ready(run, target, &state, in_step, limits.deadline).await? {
                    return Ok(ending);
                }
            }
            Action::Pause(ms) => {
                tokio::time::sleep(Duration::from_millis(ms).min(TICK)).await;
            }
            Action::AwaitPromotion => {
                if run.record.promoted {
                    // Promoted, yet the plugin still waits: ask again, but not in a spin.
                    tokio::time::sleep(TICK).await;
                } else {
                    let _ = tokio::time::timeout(TICK, signals.changed()).await;
                }
            }
            Action::Done if !state.candidate.all_ready() => {
                // Accepted only once the candidate serves: until then it is a wait.
                tracing::info!(id = %run.record.id, "the strategy answered done before the candidate was ready; waiting for it");
                if let Some(ending) = wait_until_ready(run, target, &state, in_step, limits.deadline).await? {
                    return Ok(ending);
                }
            }
            Action::Done => {
                route(run, target, Traffic::Candidate, None).await?;
                if let Some(stable) = stable {
                    run.apply(target, Change::Remove { revision: stable }).await?;
                    run.record.scale.stable = 0;
                }
                return Ok(Ending::Succeeded);
            }
            Action::Abort(reason) => {
                // What the pods say, when some are unready: the limit hit is rarely the whole story.
                let diagnosis = match state.candidate.ready < state.candidate.replicas || state.candidate.restarts > 0 {
                    true => Some(target.diagnose(candidate).await),
                    false => None,
                };
                restore(run, target, env.replicas).await?;
                let said = diagnosis.as_ref().map_or_else(String::new, |d| format!(" ({})", d.message));
                let message = format!("the {} strategy gave up: {reason}{said}; the previous release was restored", run.record.strategy);
                return Ok(Ending::Aborted(DeployFailure { cause: diagnosis.map(|d| d.cause), ..failure("rollout.aborted", message) }));
            }
        }
    }
}

/// Waits a tick for pods to get ready; past the deadline, diagnoses, restores and ends.
async fn wait_until_ready(
    run: &mut Run,
    target: &dyn Target,
    state: &RolloutState,
    in_step: Duration,
    deadline: Duration,
) -> Result<Option<Ending>, DeployFailure> {
    if in_step > deadline {
        let diagnosis = target.diagnose(run.record.revision).await;
        let message = format!(
            "the rollout was not ready within the env's deadline of {}s: {} of {} new pods ready; {}; the previous release was restored",
            deadline.as_secs(),
            state.candidate.ready,
            state.candidate.replicas,
            diagnosis.message,
        );
        restore(run, target, state.desired_replicas).await?;
        return Ok(Some(Ending::Failed(DeployFailure { cause: Some(diagnosis.cause), ..failure("rollout.deadline", message) })));
    }
    if !state.all_ready() {
        let waiting = Instant::now();
        target.changed(TICK).await;
        run.record.waited_for_kubernetes_ms += waiting.elapsed().as_millis() as u64;
    }
    Ok(None)
}

/// The strategy's answer, or why the host refuses it (naming the plugin).
fn checked(step: Step, state: &RolloutState, limits: &Limits, plugin: &str) -> Result<Step, String> {
    let refuse = |what: String| Err(format!("strategy {plugin} answered {what}"));
    if step.memory.len() > MEMORY_MAX {
        return refuse(format!("a memory of {} bytes, above the {MEMORY_MAX} allowed", step.memory.len()));
    }
    if step.description.len() > DESCRIPTION_MAX {
        return refuse(format!("a description of {} bytes, above the {DESCRIPTION_MAX} allowed", step.description.len()));
    }
    match &step.action {
        Action::Scale(to) if to.candidate.max(to.stable) > limits.max_replicas => refuse(format!(
            "scale to {} stable and {} candidate pods, above the platform's maximum of {} (deploys.max_replicas)",
            to.stable, to.candidate, limits.max_replicas
        )),
        Action::SetWeight(percent) if *percent > 100 => refuse(format!("set-weight {percent}, above 100 percent")),
        Action::Done if state.candidate.replicas == 0 && state.desired_replicas > 0 => {
            refuse("done while the candidate has no pods: the env would serve nothing".into())
        }
        _ => Ok(step),
    }
}

/// The state the strategy sees: replicas as asked, readiness and restarts from pods.
fn observe(run: &Run, target: &dyn Target, desired: u32) -> RolloutState {
    let workload = |revision: u32, replicas: u32| {
        let seen = target.observe(revision);
        Workload { replicas, ready: seen.ready, restarts: seen.restarts, unready_ms: seen.unready_ms }
    };
    let step = run.record.step.as_ref();
    RolloutState {
        desired_replicas: desired,
        stable: run.record.stable.map(|s| workload(s, run.record.scale.stable)),
        candidate: workload(run.record.revision, run.record.scale.candidate),
        traffic: run.record.traffic,
        weight: run.record.weight,
        exact_weights: target.exact_weights(),
        step_index: step.map_or(0, |s| s.index),
        time_in_step_ms: step.map_or(0, |s| (OffsetDateTime::now_utc() - s.since).whole_milliseconds().max(0) as u64),
        promoted: run.record.promoted,
        memory: step.map_or_else(String::new, |s| s.memory.clone()),
    }
}

/// Sends the env's traffic where `traffic` says (with `weight`, the candidate's share
/// of requests when it goes to both) and records where it goes and how it is split.
async fn route(run: &mut Run, target: &dyn Target, traffic: Traffic, weight: Option<u8>) -> Result<(), DeployFailure> {
    let (stable, candidate) = (run.record.stable, run.record.revision);
    let both = traffic == Traffic::Both && stable.is_some();
    let weight = weight.filter(|_| both);
    run.apply(target, Change::Route { traffic, weight, stable, candidate }).await?;
    run.record.traffic = traffic;
    run.record.weight = weight;
    run.record.split = both.then(|| match weight.is_some() && target.exact_weights() {
        true => Split::Weights,
        false => Split::PodRatio,
    });
    Ok(())
}

/// Back to the release that served before: scaled to the env's replicas, with all
/// traffic, and the candidate gone.
pub async fn restore(run: &mut Run, target: &dyn Target, desired: u32) -> Result<(), DeployFailure> {
    if let Some(stable) = run.record.stable {
        run.apply(target, Change::Scale { revision: stable, replicas: desired }).await?;
        route(run, target, Traffic::Stable, None).await?;
        run.record.scale.stable = desired;
    }
    run.apply(target, Change::Remove { revision: run.record.revision }).await?;
    run.record.scale.candidate = 0;
    Ok(())
}

/// A token bucket for actions that don't wait.
struct Bucket {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn new() -> Self {
        Self { tokens: AT_ONCE_BURST as f64, at: tokio::time::Instant::now() }
    }

    async fn take(&mut self) {
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * AT_ONCE_PER_SEC as f64).min(AT_ONCE_BURST as f64);
        self.at = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / AT_ONCE_PER_SEC as f64);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.at = tokio::time::Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScaleTo;

    fn state(candidate: Workload) -> RolloutState {
        RolloutState {
            desired_replicas: 2,
            stable: None,
            candidate,
            traffic: Traffic::Candidate,
            weight: None,
            exact_weights: false,
            step_index: 0,
            time_in_step_ms: 0,
            promoted: false,
            memory: String::new(),
        }
    }

    fn answer(action: Action) -> Step {
        Step { action, step_index: 0, description: "d".into(), memory: String::new() }
    }

    #[test]
    fn answers_past_the_limits_are_refused_naming_the_plugin() {
        let limits = Limits { deadline: Duration::from_secs(1), max_replicas: 10 };
        let s = state(Workload::default());
        let too_many = checked(answer(Action::Scale(ScaleTo { stable: 0, candidate: 11 })), &s, &limits, "greedy");
        assert!(too_many.as_ref().is_err_and(|e| e.contains("strategy greedy") && e.contains("maximum of 10")), "{too_many:?}");
        assert!(checked(answer(Action::Scale(ScaleTo { stable: 0, candidate: 10 })), &s, &limits, "fine").is_ok());
        let big = Step { memory: "m".repeat(MEMORY_MAX + 1), ..answer(Action::WaitReady) };
        assert!(checked(big, &s, &limits, "hoarder").is_err_and(|e| e.contains("hoarder") && e.contains("memory")));
        let wordy = Step { description: "w".repeat(DESCRIPTION_MAX + 1), ..answer(Action::WaitReady) };
        assert!(checked(wordy, &s, &limits, "chatty").is_err_and(|e| e.contains("description")));
        let overweight = checked(answer(Action::SetWeight(101)), &s, &limits, "heavy");
        assert!(overweight.is_err_and(|e| e.contains("above 100 percent")));
        assert!(checked(answer(Action::SetWeight(100)), &s, &limits, "heavy").is_ok());
        let empty_done = checked(answer(Action::Done), &s, &limits, "hasty");
        assert!(empty_done.is_err_and(|e| e.contains("serve nothing")));
    }

    #[tokio::test(start_paused = true)]
    async fn actions_that_do_not_wait_are_held_to_a_rate() {
        let mut bucket = Bucket::new();
        let started = tokio::time::Instant::now();
        for _ in 0..(AT_ONCE_BURST + 2 * AT_ONCE_PER_SEC) {
            bucket.take().await;
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1900), "a burst, then {AT_ONCE_PER_SEC} a second: {took:?}");
    }
}
