//! The domain: what warship is about (envs, releases, rollouts, image platforms, the
//! shape of a refusal), in plain types. This module imports nothing else of the crate;
//! every other module may import it, and adapters (`plugins/` for WIT, `cluster/` for
//! Kubernetes, `http/` for JSON) map these types at their own edge.

mod env;
mod platform;
mod violation;

pub use env::{health_path_problem, Env, EnvName, EnvPatch, EnvSpec, JdkVersion, Release, ReleaseSpec, ResourceAmounts, Resources, TomcatVersion, ENV_NAME_MAX};
pub use platform::Platform;
// Rollouts are the shared crate's: the plugins' simulator speaks the same types.
pub use warship_rollout::types::{Action, RolloutState, ScaleTo, Split, Step, Traffic, Workload};
pub use violation::{dns_label_problem, Violation, RESERVED_NAMES};
