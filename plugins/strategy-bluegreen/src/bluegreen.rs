//! Blue-green: start the whole new release beside the old one while the old one keeps
//! all the traffic, then switch the Service over at once, then stop the old pods. Until
//! the switch, aborting costs users nothing.
//!
//! Steps: 0 start the candidate, 1 await promotion (unless `auto-promote`), 2 switch
//! traffic, 3 stop the stable release, 4 done.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::parse_settings;
use warship_plugin::strategy::{
    candidate_ready, converge, drive, schema_with_limits, stable_replicas, InStep, Limits, Outcome,
    DEFAULT_MAX_RESTARTS, DEFAULT_MAX_UNREADY_SECONDS,
};
use warship_plugin::types::{Action, RolloutState, ScaleTo, Step, Traffic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    /// Switch as soon as the candidate is ready, without waiting for a person.
    auto_promote: bool,
    max_restarts: u32,
    max_unready_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auto_promote: false,
            max_restarts: DEFAULT_MAX_RESTARTS,
            max_unready_seconds: DEFAULT_MAX_UNREADY_SECONDS,
        }
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
    schema_with_limits(json!({
        "auto-promote": {
            "type": "boolean", "default": false,
            "description": "switch traffic as soon as the new release is ready, without waiting for a promotion"
        }
    }))
}

pub fn check_config(settings: &str) -> Result<(), String> {
    Settings::parse(settings).map(drop)
}

pub fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
    let settings = Settings::parse(settings)?;
    if let Some(abort) = settings.limits().abort_step(state) {
        return Ok(abort);
    }
    // A first deploy goes through the same steps: with no stable release, step 0 just
    // starts the candidate, nobody needs to promote, traffic already goes to the
    // candidate, and step 3 has nothing to stop.
    drive(state, |index, in_step| step(&settings, state, index, in_step))
}

fn step(settings: &Settings, state: &RolloutState, index: u32, in_step: InStep) -> Outcome {
    let desired = state.desired_replicas;
    let stable = stable_replicas(state);
    match index {
        0 => match converge(state, ScaleTo { stable, candidate: desired }) {
            Some(action @ Action::Scale(_)) => Outcome::Act(
                action,
                format!("blue-green: starting {desired} candidate pods beside {stable} stable pods"),
            ),
            Some(action) => {
                Outcome::Act(action, format!("blue-green: {}, traffic still on stable", candidate_ready(state)))
            }
            None => Outcome::Next,
        },
        1 if settings.auto_promote || state.stable.is_none() || in_step.promoted => Outcome::Next,
        1 => Outcome::Act(
            Action::AwaitPromotion,
            format!("blue-green: {desired} of {desired} candidate pods ready; promote to switch traffic to them"),
        ),
        2 if state.traffic == Traffic::Candidate => Outcome::Next,
        2 => Outcome::Act(
            Action::SwitchTraffic(Traffic::Candidate),
            format!("blue-green: switching traffic to the {desired} candidate pods"),
        ),
        3 => match converge(state, ScaleTo { stable: 0, candidate: desired }) {
            Some(action @ Action::Scale(_)) => {
                Outcome::Act(action, format!("blue-green: traffic on the candidate, stopping {stable} stable pods"))
            }
            Some(action) => {
                let still = state.stable.map_or(0, |s| s.ready);
                Outcome::Act(
                    action,
                    format!("blue-green: waiting for the stable release to stop, {still} pods still ready"),
                )
            }
            None => Outcome::Next,
        },
        _ => Outcome::Act(
            Action::Done,
            format!("blue-green done: traffic on the candidate, {desired} of {desired} pods ready"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::sim::Cluster;

    fn run(settings: &str, cluster: &mut Cluster) -> Vec<&'static str> {
        cluster.run(|state| next(settings, state))
    }

    #[test]
    fn waits_for_a_promotion_then_switches() {
        let mut cluster = Cluster::new(3, Some(2));
        let kinds = run("", &mut cluster);
        assert_eq!(kinds, ["scale", "wait-ready", "await-promotion", "switch-traffic", "scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(2, 3), (0, 3)]);
        assert_eq!(cluster.state().traffic, Traffic::Candidate);
        let indices: Vec<u32> = cluster.answers.iter().map(|s| s.step_index).collect();
        assert_eq!(indices, [0, 0, 1, 2, 3, 3, 4]);
    }

    #[test]
    fn auto_promote_skips_the_wait() {
        let mut cluster = Cluster::new(3, Some(3));
        let kinds = run(r#"{"auto-promote": true}"#, &mut cluster);
        assert_eq!(kinds, ["scale", "wait-ready", "switch-traffic", "scale", "wait-ready", "done"]);
    }

    #[test]
    fn traffic_already_on_the_candidate_is_not_switched_again() {
        let mut cluster = Cluster::new(2, Some(2));
        cluster.set_traffic(Traffic::Candidate);
        let kinds = run(r#"{"auto-promote": true}"#, &mut cluster);
        assert_eq!(kinds, ["scale", "wait-ready", "scale", "wait-ready", "done"]);
    }

    #[test]
    fn a_first_deploy_starts_then_finishes() {
        // The Service already points at the candidate on a first deploy (wit: `traffic`).
        let mut cluster = Cluster::new(2, None);
        assert_eq!(cluster.state().traffic, Traffic::Candidate);
        assert_eq!(run("", &mut cluster), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 2)]);
        assert_eq!(cluster.state().traffic, Traffic::Candidate);
        let indices: Vec<u32> = cluster.answers.iter().map(|s| s.step_index).collect();
        assert_eq!(indices, [0, 0, 4]);
    }

    #[test]
    fn a_restarting_candidate_aborts_before_the_switch() {
        let mut cluster = Cluster::new(2, Some(2));
        cluster.call(|s| next("", s));
        cluster.candidate_pods().restarts = 7;
        assert_eq!(run("", &mut cluster), ["scale", "abort"]);
        assert_eq!(cluster.state().traffic, Traffic::Stable);
    }

    #[test]
    fn bad_settings_are_refused() {
        for (settings, named) in [
            (r#"{"auto-promote": "yes"}"#, "invalid type"),
            (r#"{"auto_promote": true}"#, "auto_promote"),
            (r#"{"max-unready-seconds": 0}"#, "max-unready-seconds"),
        ] {
            let err = check_config(settings).unwrap_err();
            assert!(err.contains(named), "{settings}: {err}");
        }
    }
}
