//! Recreate: the original, non-grey deploy. Stop every pod of the old release, then
//! start the new one. There is downtime in between, which is the point: two releases
//! never run side by side (a schema migration, a singleton job).
//!
//! Steps: 0 stop the stable release, 1 start the candidate, 2 done.
//!
//! Like every strategy it gives up on a candidate that keeps crashing or never gets
//! ready (`max-restarts`, `max-unready-seconds`): the old release is gone by then, and
//! the host's abort restores it, where waiting would leave the env down for good.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::parse_settings;
use warship_plugin::strategy::{
    converge, drive, schema_with_limits, Limits, Outcome, DEFAULT_MAX_RESTARTS, DEFAULT_MAX_UNREADY_SECONDS,
};
use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};

/// Only the shared limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    max_restarts: u32,
    max_unready_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_restarts: DEFAULT_MAX_RESTARTS, max_unready_seconds: DEFAULT_MAX_UNREADY_SECONDS }
    }
}

impl Settings {
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        settings.limits().check()?;
        Ok(settings)
    }

    fn limits(&self) -> Limits {
        Limits { max_restarts: self.max_restarts, max_unready_seconds: self.max_unready_seconds }
    }
}

pub fn settings_schema() -> String {
    schema_with_limits(json!({}))
}

pub fn check_config(settings: &str) -> Result<(), String> {
    Settings::parse(settings).map(drop)
}

pub fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
    let settings = Settings::parse(settings)?;
    if let Some(abort) = settings.limits().abort_step(state) {
        return Ok(abort);
    }
    drive(state, |index, _| step(state, index))
}

fn step(state: &RolloutState, index: u32) -> Outcome {
    let desired = state.desired_replicas;
    match index {
        0 => {
            // Nothing to stop on a first deploy, or once the old pods are gone.
            let Some(stable) = state.stable.filter(|s| s.replicas > 0 || s.ready > 0) else {
                return Outcome::Next;
            };
            match converge(state, ScaleTo { stable: 0, candidate: 0 }) {
                Some(action @ Action::Scale(_)) => {
                    Outcome::Act(action, format!("recreate: stopping the {} pods of the old release", stable.replicas))
                }
                Some(action) => Outcome::Act(
                    action,
                    format!("recreate: waiting for the old release to stop, {} pods still ready", stable.ready),
                ),
                None => Outcome::Next,
            }
        }
        1 => match converge(state, ScaleTo { stable: 0, candidate: desired }) {
            Some(action @ Action::Scale(_)) => Outcome::Act(action, format!("recreate: starting {desired} new pods")),
            Some(action) => {
                Outcome::Act(action, format!("recreate: {} of {desired} new pods ready", state.candidate.ready))
            }
            None => Outcome::Next,
        },
        _ => Outcome::Act(Action::Done, format!("recreate done: {desired} of {desired} new pods ready")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::sim::Cluster;
    use warship_plugin::types::Workload;

    fn run(cluster: &mut Cluster) -> Vec<&'static str> {
        cluster.run(|state| next("", state))
    }

    #[test]
    fn stops_the_old_release_before_starting_the_new_one() {
        let mut cluster = Cluster::new(3, Some(2));
        assert_eq!(run(&mut cluster), ["scale", "wait-ready", "scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 0), (0, 3)]);
        assert_eq!(cluster.answers.last().unwrap().step_index, 2);
    }

    #[test]
    fn a_first_deploy_only_starts() {
        let mut cluster = Cluster::new(2, None);
        assert_eq!(run(&mut cluster), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 2)]);
    }

    #[test]
    fn an_already_stopped_stable_is_skipped() {
        let mut cluster = Cluster::new(1, Some(0));
        assert_eq!(run(&mut cluster), ["scale", "wait-ready", "done"]);
    }

    #[test]
    fn waits_for_terminating_pods_even_when_scaled_to_zero() {
        let mut cluster = Cluster::new(1, Some(0));
        cluster.stable_pods().ready = 2;
        assert_eq!(run(&mut cluster), ["wait-ready", "scale", "wait-ready", "done"]);
    }

    #[test]
    fn a_crash_looping_candidate_aborts_once_the_old_release_is_gone() {
        let mut cluster = Cluster::new(3, Some(3));
        cluster.call(|s| next("", s)); // stop the old release
        cluster.call(|s| next("", s)); // wait for it to stop
        assert_eq!(cluster.call(|s| next("", s)).action, Action::Scale(ScaleTo { stable: 0, candidate: 3 }));
        cluster.candidate_pods().restarts = 3;
        assert_eq!(cluster.call(|s| next("", s)).action, Action::WaitReady);
        cluster.candidate_pods().restarts = 4;
        let step = cluster.call(|s| next("", s));
        assert_eq!(step.action, Action::Abort("candidate pods restarted 4 times, more than the 3 allowed".into()));
        assert_eq!(step.step_index, 1);
        assert_eq!(cluster.kinds(), ["scale", "wait-ready", "scale", "wait-ready", "abort"]);
        // Its own limit, when set.
        assert_eq!(next(r#"{"max-restarts": 4}"#, &cluster.state()).unwrap().action, Action::Done);
    }

    #[test]
    fn a_candidate_that_never_gets_ready_aborts() {
        let mut state = Cluster::new(2, None).state();
        state.step_index = 1;
        state.candidate = Workload { replicas: 2, ready: 0, restarts: 0, unready_ms: 300_000 };
        assert_eq!(next("", &state).unwrap().action, Action::WaitReady);
        state.candidate.unready_ms = 300_001;
        let step = next("", &state).unwrap();
        assert_eq!(
            step.action,
            Action::Abort("a candidate pod has been unready for 300s, more than the 300s allowed".into())
        );
        assert_eq!(next(r#"{"max-unready-seconds": 600}"#, &state).unwrap().action, Action::WaitReady);
    }

    #[test]
    fn a_stopped_candidate_is_not_judged() {
        // Restarts left over from earlier pods mean nothing while the candidate has none.
        let mut cluster = Cluster::new(2, Some(2));
        cluster.candidate_pods().restarts = 50;
        cluster.call(|s| next("", s));
        assert_eq!(cluster.scales(), [(0, 0)]);
    }

    #[test]
    fn takes_only_the_limits() {
        assert_eq!(check_config(""), Ok(()));
        assert_eq!(check_config("{}"), Ok(()));
        assert_eq!(check_config(r#"{"max-restarts": 0, "max-unready-seconds": 60}"#), Ok(()));
        for (settings, named) in [
            (r#"{"max-surge": 2}"#, "max-surge"),
            (r#"{"max-unready-seconds": 0}"#, "max-unready-seconds"),
            (r#"{"max_restarts": 1}"#, "max_restarts"),
        ] {
            let err = check_config(settings).unwrap_err();
            assert!(err.contains(named), "{settings}: {err}");
            assert_eq!(next(settings, &Cluster::new(1, None).state()), Err(err));
        }
    }

    #[test]
    fn its_schema_lists_the_limits() {
        let schema: serde_json::Value = serde_json::from_str(&settings_schema()).unwrap();
        let keys: Vec<_> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["max-restarts", "max-unready-seconds"]);
        assert_eq!(schema["properties"]["max-restarts"]["default"], 3);
        assert_eq!(schema["properties"]["max-unready-seconds"]["default"], 300);
    }
}
