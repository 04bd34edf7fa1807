//! The rollout contract's host side, shared by the host and the strategies' tests.
//!
//! - [`types`]: what a strategy is told and answers, and the changes the host makes.
//! - [`host`]: the host's half of the contract without I/O (what a strategy is told,
//!   how its answer is checked and carried out, the step bookkeeping).
//! - [`sim`]: a simulated cluster in simulated time that runs a strategy through that
//!   same half, for the strategies' unit tests and the host's simulator suite.

pub mod host;
pub mod sim;
pub mod types;

pub use host::{Failure, Limits, Plan, Progress, Rollout, StepMark, Then, View, DESCRIPTION_MAX, MEMORY_MAX};
pub use types::{Action, Change, Observed, RolloutState, ScaleTo, Split, Step, Traffic, Workload};
