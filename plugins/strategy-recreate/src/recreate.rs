//! Recreate: the original, non-grey deploy. Stop every pod of the old release, then
//! start the new one. There is downtime in between, which is the point: two releases
//! never run side by side (a schema migration, a singleton job).
//!
//! Steps: 0 stop the stable release, 1 start the candidate, 2 done.

use serde::Deserialize;
use strategy_common::types::{Action, RolloutState, ScaleTo, Step};
use strategy_common::{converge, drive, parse_settings, Outcome};

/// It takes no settings, so its schema is "" (the WIT's convention for that).
pub const SETTINGS_SCHEMA: &str = "";

/// No keys at all; only "" and "{}" are accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

pub fn check_config(settings: &str) -> Result<(), String> {
    parse_settings::<Settings>(settings).map(drop)
}

pub fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
    check_config(settings)?;
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
    use strategy_common::sim::Cluster;

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
        cluster.state.stable.as_mut().unwrap().ready = 2;
        assert_eq!(run(&mut cluster), ["wait-ready", "scale", "wait-ready", "done"]);
    }

    #[test]
    fn restarts_do_not_abort_it() {
        let mut cluster = Cluster::new(1, None);
        cluster.state.candidate.restarts = 50;
        assert_eq!(run(&mut cluster), ["scale", "wait-ready", "done"]);
    }

    #[test]
    fn takes_no_settings() {
        assert_eq!(check_config(""), Ok(()));
        assert_eq!(check_config("{}"), Ok(()));
        let err = check_config(r#"{"max-surge": 2}"#).unwrap_err();
        assert!(err.contains("max-surge"), "{err}");
        let state = Cluster::new(1, None).state;
        assert!(next(r#"{"x": 1}"#, &state).is_err());
    }
}
