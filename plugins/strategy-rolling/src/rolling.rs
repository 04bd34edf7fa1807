//! Rolling: replace the old release a few pods at a time, never dropping below the
//! desired capacity. Each round adds up to `max-surge` candidate pods, waits for them,
//! then retires as many stable pods, and waits again.
//!
//! A rollout starts with the Service on the stable release; since both releases serve
//! side by side here, the first answer over a stable release (at step index 0) switches
//! traffic to both workloads, and the rounds follow. A first deploy skips this.
//!
//! Step index `2r` is round r's "add candidate pods", `2r + 1` its "retire stable pods".
//! The counts follow from the index alone, so the same observation always gets the
//! same answer.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::parse_settings;
use warship_plugin::strategy::{
    converge, drive, first_deploy, schema_with_limits, split_traffic, stable_replicas, Limits, Outcome,
    DEFAULT_MAX_RESTARTS, DEFAULT_MAX_UNREADY_SECONDS,
};
use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    /// Candidate pods added per round, beyond the desired count.
    max_surge: u32,
    max_restarts: u32,
    max_unready_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_surge: 1, max_restarts: DEFAULT_MAX_RESTARTS, max_unready_seconds: DEFAULT_MAX_UNREADY_SECONDS }
    }
}

impl Settings {
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        if settings.max_surge == 0 {
            return Err("max-surge must be at least 1: with 0 no candidate pod would ever start".into());
        }
        settings.limits().check()?;
        Ok(settings)
    }

    fn limits(&self) -> Limits {
        Limits { max_restarts: self.max_restarts, max_unready_seconds: self.max_unready_seconds }
    }
}

pub fn settings_schema() -> String {
    schema_with_limits(json!({
        "max-surge": {
            "type": "integer", "minimum": 1, "default": 1,
            "description": "candidate pods started per round before as many stable pods stop"
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
    if state.stable.is_none() {
        return drive(state, |index, _| first_deploy(state, index));
    }
    if let Some(switch) = split_traffic(state, "rolling") {
        return Ok(switch);
    }
    drive(state, |index, _| step(&settings, state, index))
}

fn step(settings: &Settings, state: &RolloutState, index: u32) -> Outcome {
    let desired = state.desired_replicas;
    // A rollout to 0 replicas still needs one round to retire the stable pods.
    let rounds = desired.div_ceil(settings.max_surge).max(1);
    let round = index / 2;
    if round >= rounds {
        return Outcome::Act(Action::Done, format!("rolling update done: {desired} of {desired} candidate pods ready"));
    }
    let candidate = desired.min((round + 1).saturating_mul(settings.max_surge));
    let stable = stable_replicas(state);
    let adding = index.is_multiple_of(2);
    // Stable pods only ever go down: a release smaller than `desired` is not grown.
    let target = ScaleTo { stable: if adding { stable } else { stable.min(desired - candidate) }, candidate };
    let Some(action) = converge(state, target) else {
        return Outcome::Next;
    };
    let round = format!("rolling round {} of {rounds}", round + 1);
    let description = match (&action, adding) {
        (Action::Scale(_), true) => format!("{round}: starting candidate pods, {candidate} of {desired}"),
        (Action::Scale(to), false) => format!("{round}: stopping stable pods, {} left", to.stable),
        _ => {
            let (stable_ready, stable) = state.stable.map_or((0, 0), |s| (s.ready, s.replicas));
            format!(
                "{round}: {} of {} candidate and {stable_ready} of {stable} stable pods ready",
                state.candidate.ready, state.candidate.replicas
            )
        }
    };
    Outcome::Act(action, description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::sim::Cluster;
    use warship_plugin::types::Traffic;

    fn run(settings: &str, cluster: &mut Cluster) -> Vec<&'static str> {
        cluster.run(|state| next(settings, state))
    }

    #[test]
    fn one_pod_at_a_time_by_default() {
        let mut cluster = Cluster::new(3, Some(3));
        let kinds = run("", &mut cluster);
        let rounds = [["scale", "wait-ready"]; 6].concat();
        assert_eq!(kinds, ["switch-traffic"].into_iter().chain(rounds).chain(["done"]).collect::<Vec<_>>());
        assert_eq!(cluster.answers[0].action, Action::SwitchTraffic(Traffic::Both));
        assert_eq!(cluster.answers[0].step_index, 0);
        assert_eq!(cluster.state().traffic, Traffic::Both);
        assert_eq!(cluster.scales(), [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]);
        assert_eq!(
            cluster.answers[2].description,
            "rolling round 1 of 3: 0 of 1 candidate and 3 of 3 stable pods ready"
        );
    }

    #[test]
    fn a_larger_surge_takes_fewer_rounds() {
        let mut cluster = Cluster::new(3, Some(3));
        run(r#"{"max-surge": 2}"#, &mut cluster);
        assert_eq!(cluster.scales(), [(3, 2), (1, 2), (1, 3), (0, 3)]);

        let mut cluster = Cluster::new(3, Some(3));
        run(r#"{"max-surge": 10}"#, &mut cluster);
        assert_eq!(cluster.scales(), [(3, 3), (0, 3)]);
    }

    #[test]
    fn the_stable_release_only_shrinks() {
        // Growing from 1 to 3 replicas: the single stable pod stays until the last round.
        let mut cluster = Cluster::new(3, Some(1));
        run("", &mut cluster);
        assert_eq!(cluster.scales(), [(1, 1), (1, 2), (1, 3), (0, 3)]);

        let mut cluster = Cluster::new(2, Some(4));
        run("", &mut cluster);
        assert_eq!(cluster.scales(), [(4, 1), (1, 1), (1, 2), (0, 2)]);
    }

    #[test]
    fn a_first_deploy_starts_everything_at_once() {
        let mut cluster = Cluster::new(4, None);
        assert_eq!(run("", &mut cluster), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 4)]);
    }

    #[test]
    fn a_candidate_stuck_unready_aborts() {
        let mut cluster = Cluster::new(3, Some(3));
        cluster.call(|s| next("", s)); // switch traffic to both
        cluster.call(|s| next("", s)); // start the first candidate pod
        cluster.candidate_pods().unready_ms = 301_000;
        let step = cluster.call(|s| next("", s));
        assert_eq!(
            step.action,
            Action::Abort("a candidate pod has been unready for 301s, more than the 300s allowed".into())
        );
        assert_eq!(step.step_index, 0);
    }

    #[test]
    fn bad_settings_are_refused() {
        for (settings, named) in [
            (r#"{"max-surge": 0}"#, "max-surge"),
            (r#"{"max-unready-seconds": 0}"#, "max-unready-seconds"),
            (r#"{"maxSurge": 2}"#, "maxSurge"),
            (r#"{"max-surge": -1}"#, "-1"),
        ] {
            let err = check_config(settings).unwrap_err();
            assert!(err.contains(named), "{settings}: {err}");
            assert_eq!(next(settings, &Cluster::new(1, None).state()), Err(err));
        }
        assert_eq!(check_config("{}"), Ok(()));
    }
}
