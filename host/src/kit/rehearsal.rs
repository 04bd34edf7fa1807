//! One scenario rehearsed: a strategy plugin, called through the host's runtime under
//! its limits, steps a rollout on `warship-rollout`'s simulated cluster, which carries
//! each answer out through the same [`warship_rollout::Rollout`] the deploy engine uses
//! against Kubernetes. What it answered is kept as the step table, and the run is
//! judged against what the scenario expects.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;

use warship_rollout::sim::{serving, End, Fault, Sim};

use super::scenario::{Ending, PodScript, Scenario};
use crate::domain::{Action, RolloutState, Step, Traffic, Workload};
use crate::plugins::Plugin;

/// One call: what the strategy was told and what it answered.
#[derive(Debug, Clone)]
pub struct Row {
    pub call: usize,
    pub step: u32,
    pub action: String,
    pub stable: Option<(u32, u32)>,
    pub candidate: (u32, u32),
    pub traffic: &'static str,
    /// Pods serving requests in the state told.
    pub serving: u32,
    pub says: String,
    /// A new host took over before this call.
    pub after_restart: bool,
}

pub struct Rehearsal {
    pub rows: Vec<Row>,
    pub end: End,
    /// The fewest pods serving requests at any moment, and the first call told so.
    pub min_serving: Option<(u32, Option<usize>)>,
    /// Simulated time the rollout took.
    pub seconds: u64,
}

/// Runs `scenario` with the strategy under `settings` (JSON text it accepted).
pub fn rehearse(plugin: &Plugin, settings: &str, scenario: &Scenario) -> Rehearsal {
    let (desired, stable) = (scenario.desired(), scenario.stable());
    let mut sim = if scenario.exact_weights { Sim::weighted(desired, stable) } else { Sim::new(desired, stable) };
    sim.promote_after_ms = scenario.promote_after_seconds.map(|s| s * 1000);
    sim.abort_after_ms = scenario.abort_after_seconds.map(|s| s * 1000);
    sim.cluster.fault = Some(match scenario.pods {
        PodScript::Healthy => Fault::Healthy,
        PodScript::SlowReady => Fault::SlowReady { ready_after_ms: scenario.ready_after_ms() },
        PodScript::NeverReady => Fault::NeverReady,
        PodScript::CrashLoop => Fault::CrashLoop,
    });
    let rows = RefCell::new(Vec::new());
    let restarted = Cell::new(false);
    let ask = |state: &RolloutState| {
        let answer = plugin.next_step_with(settings, state).map_err(|e| e.to_string());
        let mut rows = rows.borrow_mut();
        let call = rows.len() + 1;
        rows.push(row(call, state, &answer, restarted.replace(false)));
        answer
    };
    let mut history = Vec::new();
    let end = match scenario.restart_host_after_calls {
        Some(after) => {
            let calls = Cell::new(0);
            let end = sim.run_until(&ask, |_| {
                calls.set(calls.get() + 1);
                calls.get() == after
            });
            if end == End::Stopped {
                // The answer was persisted, never carried out; another host resumes.
                history.append(&mut sim.history);
                sim = sim.resume();
                restarted.set(true);
                sim.run(&ask)
            } else {
                end
            }
        }
        None => sim.run(&ask),
    };
    history.append(&mut sim.history);
    let rows = rows.into_inner();
    let min_serving = lowest_serving(&history, &rows);
    Rehearsal { rows, end, min_serving, seconds: (sim.now_ms / 1000) as u64 }
}

/// The fewest pods serving at once, at every moment the simulation went through (not
/// only when the strategy was asked), and the first call that was told so.
fn lowest_serving(history: &[RolloutState], rows: &[Row]) -> Option<(u32, Option<usize>)> {
    let lowest = history.iter().map(serving).min()?;
    Some((lowest, rows.iter().find(|r| r.serving == lowest).map(|r| r.call)))
}

fn row(call: usize, state: &RolloutState, answer: &Result<Step, String>, after_restart: bool) -> Row {
    let pods = |w: &Workload| (w.ready, w.replicas);
    let (step, action, says) = match answer {
        Ok(step) => (step.step_index, action_text(&step.action), step.description.clone()),
        Err(e) => (state.step_index, "(error)".into(), e.clone()),
    };
    Row {
        call,
        step,
        action,
        stable: state.stable.as_ref().map(pods),
        candidate: pods(&state.candidate),
        traffic: traffic_text(state.traffic),
        serving: serving(state),
        says,
        after_restart,
    }
}

fn traffic_text(traffic: Traffic) -> &'static str {
    match traffic {
        Traffic::Stable => "stable",
        Traffic::Candidate => "candidate",
        Traffic::Both => "both",
    }
}

fn action_text(action: &Action) -> String {
    match action {
        Action::Scale(to) => format!("scale {}/{}", to.stable, to.candidate),
        Action::SwitchTraffic(to) => format!("switch-traffic {}", traffic_text(*to)),
        Action::SetWeight(weight) => format!("set-weight {weight}%"),
        Action::Pause(ms) => format!("pause {}s", ms / 1000),
        other => other.name().to_owned(),
    }
}

impl Rehearsal {
    /// How the run ended, as a scenario's `expect.end` spells it, and the reason given.
    pub fn ending(&self) -> (Option<Ending>, String) {
        match &self.end {
            End::Done => (Some(Ending::Done), String::new()),
            End::Aborted(reason) => (Some(Ending::Aborted), reason.clone()),
            End::Failed(reason) => (Some(Ending::Failed), reason.clone()),
            End::AwaitingPromotion => (Some(Ending::AwaitingPromotion), String::new()),
            End::AbortedByUser => (Some(Ending::AbortedByUser), "aborted by a user".into()),
            End::Stuck(why) => (None, format!("the rollout never ends: {why}")),
            End::NoOp(why) => (None, format!("an answer changes nothing, so the host would ask again at once, for ever: {why}")),
            End::Stopped => (None, "stopped without an end".into()),
        }
    }

    /// What the run did that the scenario does not allow; empty when it passed.
    pub fn problems(&self, scenario: &Scenario) -> Vec<String> {
        let mut problems = Vec::new();
        let (ending, reason) = self.ending();
        let expected = scenario.expect.end;
        match ending {
            None => problems.push(reason.clone()),
            Some(got) if got != expected => {
                let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
                problems.push(format!("expected the rollout to end {}, it ended {}{why}", expected.as_str(), got.as_str()));
            }
            Some(_) => {}
        }
        if let Some(wanted) = &scenario.expect.reason {
            if ending.is_some() && !reason.contains(wanted.as_str()) {
                problems.push(format!("expected a reason containing {wanted:?}, got {reason:?}"));
            }
        }
        if let (Some(promised), Some((lowest, call))) = (scenario.expect.min_serving, self.min_serving) {
            if lowest < promised {
                let when = call.map_or_else(|| " between calls".to_owned(), |call| format!(" (call {call} was told so)"));
                problems.push(format!("capacity dropped to {lowest} serving pods{when}, below the {promised} promised (min-serving)"));
            }
        }
        problems
    }

    /// The step table, a row per call; runs of calls alike (same step and action) as one
    /// row with their count and the last words.
    pub fn table(&self) -> String {
        let mut out = String::from("  (stable and candidate: ready/replicas, and traffic, as the plugin was told before it answered)\n");
        out.push_str(&format!("  {:>5}  {:>4}  {:<22}  {:>7}  {:>9}  {:<9}  {}\n", "call", "step", "action", "stable", "candidate", "traffic", "the plugin says"));
        let mut i = 0;
        while i < self.rows.len() {
            let first = &self.rows[i];
            let mut j = i + 1;
            while j < self.rows.len() && !self.rows[j].after_restart && (self.rows[j].step, &self.rows[j].action) == (first.step, &first.action) {
                j += 1;
            }
            let last = &self.rows[j - 1];
            if first.after_restart {
                out.push_str("  ── the host restarts; a new host resumes from what was persisted ──\n");
            }
            let calls = if j - i > 1 { format!("{}-{}", first.call, last.call) } else { first.call.to_string() };
            let pair = |(ready, replicas): (u32, u32)| format!("{ready}/{replicas}");
            let stable = last.stable.map_or_else(|| "-".into(), pair);
            let _ = writeln!(out, "  {calls:>5}  {:>4}  {:<22}  {stable:>7}  {:>9}  {:<9}  {}", last.step, last.action, pair(last.candidate), last.traffic, last.says);
            i = j;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(call: usize, step: u32, action: &str, says: &str) -> Row {
        Row { call, step, action: action.into(), stable: Some((3, 3)), candidate: (0, 1), traffic: "both", serving: 3, says: says.into(), after_restart: false }
    }

    fn rehearsal(end: End, rows: Vec<Row>, min_serving: Option<(u32, Option<usize>)>) -> Rehearsal {
        Rehearsal { rows, end, min_serving, seconds: 0 }
    }

    #[test]
    fn runs_of_alike_calls_are_one_row_with_the_last_words() {
        let rows = vec![row_of(1, 0, "scale 3/1", "start one"), row_of(2, 1, "wait-ready", "0 of 1"), row_of(3, 1, "wait-ready", "still 0 of 1"), row_of(4, 1, "abort", "giving up")];
        let table = rehearsal(End::Done, rows, None).table();
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[3].contains("2-3") && lines[3].contains("still 0 of 1"), "{table}");
    }

    #[test]
    fn a_restart_shows_between_the_calls() {
        let mut rows = vec![row_of(1, 0, "wait-ready", "a"), row_of(2, 0, "wait-ready", "b")];
        rows[1].after_restart = true;
        let table = rehearsal(End::Done, rows, None).table();
        assert!(table.contains("the host restarts"), "{table}");
        assert_eq!(table.lines().count(), 5, "{table}");
    }

    #[test]
    fn the_verdict_names_each_broken_promise() {
        let scenario = Scenario { expect: super::super::scenario::Expect { end: Ending::Aborted, reason: Some("restarted".into()), min_serving: Some(3) }, ..Scenario::default() };
        assert_eq!(rehearsal(End::Aborted("pods restarted 3 times".into()), vec![], Some((3, Some(1)))).problems(&scenario), Vec::<String>::new());
        let problems = rehearsal(End::Done, vec![], Some((2, Some(5)))).problems(&scenario);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("expected the rollout to end aborted, it ended done"), "{problems:?}");
        assert!(problems[2].contains("dropped to 2 serving pods (call 5 was told so)"), "{problems:?}");
        let stuck = rehearsal(End::Stuck("no end after 500 calls".into()), vec![], None).problems(&Scenario::default());
        assert!(stuck[0].starts_with("the rollout never ends"), "{stuck:?}");
        let noop = rehearsal(End::NoOp("wait-ready with every pod ready does nothing".into()), vec![], None).problems(&Scenario::default());
        assert!(noop[0].contains("changes nothing"), "{noop:?}");
    }
}
