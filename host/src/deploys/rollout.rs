//! The rollout loop: the host's half of the strategy contract (`warship_rollout::Rollout`:
//! what the strategy is told, how its answer is checked and carried out) driven in real
//! time against a target, with the record saved as it goes, the plugin called in its
//! sandbox, and waits that end when pods or signals change. The host trusts no answer:
//! scale is bounded, `done` needs a ready candidate, the plugin's words and memory are
//! capped (all in the shared half), and actions that don't wait are rate-limited (here).

use std::time::{Duration, Instant};

use time::OffsetDateTime;
use warship_rollout::{Failure, Progress, Rollout, StepMark, Then};

use super::driver::Run;
use super::record::{failure, DeployEvent, DeployFailure, Scale, StrategyStep, WorkloadReplicas};
use super::target::{Change, Target};
use crate::cluster::ClusterError;
use crate::domain::{EnvSpec, ScaleTo};

/// How often the loop looks again when nothing changed.
const TICK: Duration = Duration::from_secs(1);
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
    let limits = warship_rollout::Limits { deadline_ms: limits.deadline.as_millis() as u64, max_replicas: limits.max_replicas };
    let mut rollout = Rollout::new(progress_of(run), env.replicas, limits, run.record.strategy.clone(), now_ms());
    let (changes, gone) = rollout.begin(target);
    if let Some(gone) = gone {
        tracing::warn!(id = %run.record.id, release = gone, "the serving release has no workload; rolling out as a first deploy");
    }
    put_progress(run, &rollout.progress);
    apply_all(run, target, changes).await?;
    let (stable, candidate) = (rollout.progress.stable, rollout.progress.candidate);

    let mut last_seen = None;
    let mut signals = run.signals.clone();
    let mut at_once = Bucket::new();
    loop {
        rollout.promote(signals.borrow_and_update().promote.as_ref().and_then(|p| p.step));
        let state = rollout.state(target, now_ms());
        let seen = DeployEvent::Replicas {
            stable: stable.zip(state.stable).map(|(revision, w)| WorkloadReplicas::of(revision, &w)),
            candidate: WorkloadReplicas::of(candidate, &state.candidate),
        };
        if last_seen.as_ref() != Some(&seen) {
            run.journal.append(&seen).await;
            last_seen = Some(seen);
        }
        let answer = match run.plugin.clone() {
            Some(plugin) => {
                let (settings, state) = (run.settings.clone(), state.clone());
                tokio::task::spawn_blocking(move || plugin.next_step_with(&settings, &state)).await.expect("plugin calls do not panic")
            }
            None => Err(crate::plugins::PluginError::gone(&run.record.strategy)),
        };
        let acts_at_once = answer.as_ref().is_ok_and(|step| step.action.acts_at_once());
        let plan = rollout.answer(target, answer.map_err(|e| e.to_string()), &state, now_ms());
        if plan.step_changed {
            put_progress(run, &rollout.progress);
            run.save().await?;
        }
        if let Then::Fail(failure) = &plan.then {
            let diagnosis = match failure.wants_diagnosis(&state) {
                true => Some(target.diagnose(candidate).await),
                false => None,
            };
            let restore = rollout.restore(target);
            apply_all(run, target, restore).await?;
            put_progress(run, &rollout.progress);
            let message = rollout.failure_message(failure, diagnosis.as_ref().map(|d| d.message.as_str()));
            let ended = DeployFailure { cause: diagnosis.map(|d| d.cause), ..self::failure(failure.code(), message) };
            return Ok(match failure {
                Failure::Aborted(_) => Ending::Aborted(ended),
                _ => Ending::Failed(ended),
            });
        }
        if acts_at_once {
            at_once.take().await;
        }
        apply_all(run, target, plan.changes.clone()).await?;
        rollout.commit(&plan);
        put_progress(run, &rollout.progress);
        if plan.save_after && plan.then != Then::Succeeded {
            run.save().await?;
        }
        match plan.then {
            Then::AskAgain | Then::Fail(_) => {}
            Then::Succeeded => return Ok(Ending::Succeeded),
            Then::WaitForPods => {
                let waiting = Instant::now();
                target.changed(TICK).await;
                run.record.waited_for_kubernetes_ms += waiting.elapsed().as_millis() as u64;
            }
            Then::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms).min(TICK)).await,
            // Promoted, yet the plugin still waits: ask again, but not in a spin.
            Then::AwaitPromotion if rollout.progress.promoted => tokio::time::sleep(TICK).await,
            Then::AwaitPromotion => {
                let _ = tokio::time::timeout(TICK, signals.changed()).await;
            }
        }
    }
}

/// Back to the release that served before: scaled to the env's replicas, with all
/// traffic, and the candidate gone.
pub async fn restore(run: &mut Run, target: &dyn Target, desired: u32) -> Result<(), DeployFailure> {
    let limits = warship_rollout::Limits { deadline_ms: 0, max_replicas: desired };
    let mut rollout = Rollout::new(progress_of(run), desired, limits, run.record.strategy.clone(), now_ms());
    let changes = rollout.restore(target);
    apply_all(run, target, changes).await?;
    put_progress(run, &rollout.progress);
    Ok(())
}

async fn apply_all(run: &mut Run, target: &dyn Target, changes: Vec<Change>) -> Result<(), DeployFailure> {
    for change in changes {
        run.apply(target, change).await?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    ms_of(OffsetDateTime::now_utc())
}

fn ms_of(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The rollout's progress as the record holds it.
fn progress_of(run: &Run) -> Progress {
    let r = &run.record;
    Progress {
        stable: r.stable,
        candidate: r.revision,
        scale: ScaleTo { stable: r.scale.stable, candidate: r.scale.candidate },
        traffic: r.traffic,
        weight: r.weight,
        split: r.split,
        step: r.step.as_ref().map(|s| StepMark {
            index: s.index,
            action: s.action.clone(),
            description: s.description.clone(),
            memory: s.memory.clone(),
            since_ms: ms_of(s.since),
        }),
        promoted: r.promoted,
    }
}

/// The record says what the progress says.
fn put_progress(run: &mut Run, p: &Progress) {
    let r = &mut run.record;
    r.stable = p.stable;
    r.scale = Scale { stable: p.scale.stable, candidate: p.scale.candidate };
    r.traffic = p.traffic;
    r.weight = p.weight;
    r.split = p.split;
    r.promoted = p.promoted;
    r.step = p.step.as_ref().map(|s| StrategyStep {
        index: s.index,
        action: s.action.clone(),
        description: s.description.clone(),
        memory: s.memory.clone(),
        // The record's time keeps its own precision when the step did not move.
        since: match &r.step {
            Some(old) if ms_of(old.since) == s.since_ms => old.since,
            _ => OffsetDateTime::from_unix_timestamp_nanos(s.since_ms as i128 * 1_000_000).unwrap_or_else(|_| OffsetDateTime::now_utc()),
        },
    });
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
