//! two-at-a-time: a team's rollout strategy, written with warship's Rust plugin kit.
//!
//! It replaces the old release two pods at a time: start two new pods beside all the
//! old ones, wait until both are ready, then stop two old ones, and again, so as many
//! pods serve as the env asks for throughout. It gives up (the host then restores the
//! old release) on the third restart of the new pods, or when one stays unready too long.
//!
//! Traffic: a rollout starts with the Service on the old release, so the first answer
//! over one sends traffic to both releases, split by their ready pods; new pods serve
//! as soon as they are ready. A first deploy has nothing to protect and starts every
//! pod at once.
//!
//! Steps: index `2r` is round r's "start new pods", `2r + 1` its "stop old pods". The
//! counts follow from the index and the observation alone, so the same observation
//! always gets the same answer and a host that restarts mid-rollout carries on.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::strategy::{
    converge, drive, first_deploy, schema_with_limits, split_traffic, stable_replicas, Limits, Outcome,
    DEFAULT_MAX_UNREADY_SECONDS,
};
use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};
use warship_plugin::{parse_settings, Info, Plugin, Strategy};

const DEFAULT_STEP_PODS: u32 = 2;
const DEFAULT_MAX_RESTARTS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    /// New pods started per round, and old pods stopped once they are ready.
    step_pods: u32,
    max_restarts: u32,
    max_unready_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            step_pods: DEFAULT_STEP_PODS,
            max_restarts: DEFAULT_MAX_RESTARTS,
            max_unready_seconds: DEFAULT_MAX_UNREADY_SECONDS,
        }
    }
}

impl Settings {
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        if settings.step_pods == 0 {
            return Err("invalid settings: step-pods must be at least 1, or no new pod would ever start".into());
        }
        settings.limits().check()?;
        Ok(settings)
    }

    fn limits(&self) -> Limits {
        Limits { max_restarts: self.max_restarts, max_unready_seconds: self.max_unready_seconds }
    }
}

pub struct TwoAtATime;

impl Plugin for TwoAtATime {
    fn info() -> Info {
        // The SDK adds max-restarts and max-unready-seconds with its defaults; ours differ.
        let mut schema: serde_json::Value = serde_json::from_str(&schema_with_limits(json!({
            "step-pods": {
                "type": "integer", "minimum": 1, "default": DEFAULT_STEP_PODS,
                "description": "new pods started per round; as many old pods stop once they are ready"
            }
        })))
        .expect("the SDK's schema is JSON");
        schema["properties"]["max-restarts"]["default"] = json!(DEFAULT_MAX_RESTARTS);
        Info::with_schema(schema.to_string())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        Settings::parse(settings).map(drop)
    }
}

impl Strategy for TwoAtATime {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
        let settings = Settings::parse(settings)?;
        if let Some(abort) = settings.limits().abort_step(state) {
            return Ok(abort);
        }
        if state.stable.is_none() {
            return drive(state, |index, _| first_deploy(state, index));
        }
        if let Some(switch) = split_traffic(state, "two-at-a-time") {
            return Ok(switch);
        }
        drive(state, |index, _| round(settings.step_pods, state, index))
    }
}

warship_plugin::export!(strategy: TwoAtATime);

/// Step `index` of the rounds over a stable release.
fn round(step_pods: u32, state: &RolloutState, index: u32) -> Outcome {
    let desired = state.desired_replicas;
    // A rollout to 0 replicas still needs one round to stop the old pods.
    let rounds = desired.div_ceil(step_pods).max(1);
    let round = index / 2;
    if round >= rounds {
        return Outcome::Act(Action::Done, format!("two-at-a-time done: {desired} of {desired} new pods ready"));
    }
    let candidate = desired.min((round + 1).saturating_mul(step_pods));
    let stable = stable_replicas(state);
    let starting = index % 2 == 0;
    // Old pods only ever go down, and only as far as the ready new ones make up for.
    let target = ScaleTo { stable: if starting { stable } else { stable.min(desired - candidate) }, candidate };
    let Some(action) = converge(state, target) else {
        return Outcome::Next;
    };
    let round = format!("two-at-a-time round {} of {rounds}", round + 1);
    let description = match (&action, starting) {
        (Action::Scale(_), true) => format!("{round}: starting new pods, {candidate} of {desired}"),
        (Action::Scale(to), false) => format!("{round}: stopping old pods, {} left", to.stable),
        _ => {
            let (old_ready, old) = state.stable.map_or((0, 0), |s| (s.ready, s.replicas));
            format!(
                "{round}: {} of {} new and {old_ready} of {old} old pods ready",
                state.candidate.ready, state.candidate.replicas
            )
        }
    };
    Outcome::Act(action, description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::sim::{Cluster, End, Fault};

    fn next(settings: &str) -> impl Fn(&RolloutState) -> Result<Step, String> + '_ {
        move |state| TwoAtATime::next(settings, state)
    }

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<TwoAtATime>();
        let schema: serde_json::Value = serde_json::from_str(&TwoAtATime::info().settings_schema).unwrap();
        assert_eq!(schema["properties"]["max-restarts"]["default"], 2);
        assert_eq!(schema["properties"]["step-pods"]["default"], 2);
    }

    #[test]
    fn healthy_pods_are_replaced_two_at_a_time() {
        let mut cluster = Cluster::new(4, Some(4));
        let kinds = cluster.run(next(""));
        let rounds = [["scale", "wait-ready"]; 4].concat();
        assert_eq!(kinds, ["switch-traffic"].into_iter().chain(rounds).chain(["done"]).collect::<Vec<_>>());
        assert_eq!(cluster.end(), Some(&End::Done));
        assert_eq!(cluster.scales(), [(4, 2), (2, 2), (2, 4), (0, 4)]);
        assert_eq!(cluster.min_serving(), 4);
    }

    #[test]
    fn an_odd_count_ends_with_a_smaller_round() {
        let mut cluster = Cluster::new(5, Some(5));
        cluster.run(next(""));
        assert_eq!(cluster.scales(), [(5, 2), (3, 2), (3, 4), (1, 4), (1, 5), (0, 5)]);
        let mut cluster = Cluster::new(3, Some(3));
        cluster.run(next(r#"{"step-pods": 3}"#));
        assert_eq!(cluster.scales(), [(3, 3), (0, 3)]);
    }

    #[test]
    fn a_crash_loop_aborts_on_the_third_restart_with_the_old_pods_serving() {
        let mut cluster = Cluster::new(4, Some(4));
        cluster.fault(Fault::CrashLoop);
        cluster.run(next(""));
        let reason = "candidate pods restarted 3 times, more than the 2 allowed";
        assert_eq!(cluster.end(), Some(&End::Aborted(reason.into())));
        assert_eq!(cluster.answers.last().unwrap().description, format!("giving up: {reason}"));
        assert_eq!(cluster.min_serving(), 4);
    }

    #[test]
    fn capacity_never_drops_below_what_served_before() {
        for step_pods in 1..=3 {
            for desired in 1..=6 {
                for stable in 1..=7 {
                    let mut cluster = Cluster::new(desired, Some(stable));
                    cluster.run(next(&format!(r#"{{"step-pods": {step_pods}}}"#)));
                    let case = format!("{stable} -> {desired} pods, {step_pods} at a time");
                    assert_eq!(cluster.end(), Some(&End::Done), "{case}");
                    assert_eq!(cluster.min_serving(), desired.min(stable), "{case}");
                }
            }
        }
    }

    #[test]
    fn slow_pods_are_waited_for() {
        let mut cluster = Cluster::new(4, Some(4));
        cluster.fault(Fault::SlowReady { ready_after_ms: 20_000 });
        cluster.run(next(""));
        assert_eq!(cluster.end(), Some(&End::Done));
        assert_eq!(cluster.min_serving(), 4);
    }

    #[test]
    fn a_host_restart_carries_on_from_the_persisted_step() {
        let mut cluster = Cluster::new(4, Some(4));
        cluster.call(next("")); // traffic to both releases
        cluster.call(next("")); // start two new pods
        cluster.call_then_crash(next("")); // wait for them: persisted, then the host is gone
        let mut resumed = cluster.resume();
        resumed.run(next(""));
        assert_eq!(resumed.end(), Some(&End::Done));
        assert_eq!(resumed.scales(), [(2, 2), (2, 4), (0, 4)]);
        assert_eq!(resumed.min_serving(), 4);
    }

    #[test]
    fn a_first_deploy_starts_every_pod_at_once() {
        let mut cluster = Cluster::new(4, None);
        assert_eq!(cluster.run(next("")), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 4)]);
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (settings, named) in [
            (r#"{"step-pods": 0}"#, "step-pods"),
            (r#"{"step_pods": 2}"#, "step_pods"),
            (r#"{"max-unready-seconds": 0}"#, "max-unready-seconds"),
        ] {
            let err = TwoAtATime::check_config(settings).unwrap_err();
            assert!(err.contains(named), "{settings}: {err}");
            assert_eq!(TwoAtATime::next(settings, &Cluster::new(1, None).state()), Err(err));
        }
    }
}
