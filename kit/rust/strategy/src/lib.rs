//! {{name}}: a warship rollout strategy.
//!
//! It starts the whole new release beside the old one, waits until every new pod is
//! ready, and says done: the host then sends all traffic to the new release and removes
//! the old one. Users keep being served by the old release meanwhile. It gives up (the
//! host then restores the old release) when the new pods restart too often or one stays
//! unready too long.
//!
//! The contract is the `strategy` world of `vendor/plugin-sdk/wit/plugin.wit`. The host
//! calls `next` over and over with the settings and what it observes now
//! (`RolloutState`); each answer is ONE action to carry out now (`Step`), plus the step
//! it belongs to. The plugin has no clock, files, network or memory between calls:
//! everything it knows is in its arguments. `drive` runs the numbered steps below from
//! the one the host reports, moving past those already complete.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::strategy::{
    converge, drive, schema_with_limits, stable_replicas, Limits, Outcome, DEFAULT_MAX_RESTARTS,
    DEFAULT_MAX_UNREADY_SECONDS,
};
use warship_plugin::types::{Action, RolloutState, ScaleTo, Step};
use warship_plugin::{parse_settings, Info, Plugin, Strategy};

/// The settings an admin may give in platform.toml; "" or "{}" means these defaults.
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

pub struct Rollout;

impl Plugin for Rollout {
    fn info() -> Info {
        // Add your own keys here (and to `Settings`): {"my-key": {"type": …, "default": …}}.
        Info::with_schema(schema_with_limits(json!({})))
    }

    fn check_config(settings: &str) -> Result<(), String> {
        Settings::parse(settings).map(drop)
    }
}

impl Strategy for Rollout {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
        let settings = Settings::parse(settings)?;
        if let Some(abort) = settings.limits().abort_step(state) {
            return Ok(abort);
        }
        let (stable, desired) = (stable_replicas(state), state.desired_replicas);
        drive(state, |index, _| match index {
            // Step 0: every new pod beside the old ones, and all of them ready.
            0 => match converge(state, ScaleTo { stable, candidate: desired }) {
                Some(action @ Action::Scale(_)) => {
                    Outcome::Act(action, format!("starting {desired} new pods beside {stable} old ones"))
                }
                Some(action) => Outcome::Act(action, format!("{} of {desired} new pods ready", state.candidate.ready)),
                None => Outcome::Next,
            },
            // Step 1: done; the host moves the traffic over and removes the old pods.
            _ => Outcome::Act(Action::Done, format!("{desired} of {desired} new pods ready")),
        })
    }
}

warship_plugin::export!(strategy: Rollout);

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::sim::{Cluster, End, Fault};

    fn next(settings: &str) -> impl Fn(&RolloutState) -> Result<Step, String> + '_ {
        move |state| Rollout::next(settings, state)
    }

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<Rollout>();
    }

    #[test]
    fn the_old_release_serves_until_every_new_pod_is_ready() {
        let mut cluster = Cluster::new(3, Some(3));
        assert_eq!(cluster.run(next("")), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.end(), Some(&End::Done));
        assert_eq!(cluster.scales(), [(3, 3)]);
        assert_eq!(cluster.min_serving(), 3);
    }

    #[test]
    fn a_first_deploy_starts_the_new_pods() {
        let mut cluster = Cluster::new(2, None);
        assert_eq!(cluster.run(next("")), ["scale", "wait-ready", "done"]);
        assert_eq!(cluster.scales(), [(0, 2)]);
    }

    #[test]
    fn crashing_new_pods_abort_and_the_old_release_keeps_serving() {
        let mut cluster = Cluster::new(3, Some(3));
        cluster.fault(Fault::CrashLoop);
        cluster.run(next(r#"{"max-restarts": 1}"#));
        assert_eq!(
            cluster.end(),
            Some(&End::Aborted("candidate pods restarted 2 times, more than the 1 allowed".into()))
        );
        assert_eq!(cluster.min_serving(), 3);
    }

    #[test]
    fn a_host_restart_resumes_where_it_was() {
        let mut cluster = Cluster::new(2, Some(2));
        cluster.call_then_crash(next("")); // the scale is persisted, never carried out
        let mut resumed = cluster.resume();
        assert_eq!(resumed.run(next("")), ["scale", "wait-ready", "done"]);
        assert_eq!(resumed.end(), Some(&End::Done));
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (settings, named) in
            [(r#"{"max-restart": 1}"#, "max-restart"), (r#"{"max-unready-seconds": 0}"#, "max-unready-seconds")]
        {
            let err = Rollout::check_config(settings).unwrap_err();
            assert!(err.contains(named), "{settings}: {err}");
        }
    }
}
