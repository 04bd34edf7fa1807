//! Where releases run, as the rollout loop sees it: observe a release's pods, apply a
//! change. Kubernetes implements it (`kube.rs`); so does an in-memory cluster
//! (`memory.rs`) that runs strategies against scripted pods, for tests and for plugin
//! authors without a cluster.

pub mod kube;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::cluster::diagnosis::Diagnosis;
use crate::cluster::ClusterError;
use crate::domain::{EnvSpec, ReleaseSpec};
use crate::users::UserName;

pub use warship_rollout::{Change, Observed, View};

/// One env's releases, where they run: observed (`View`, the shared contract's side)
/// and changed.
#[async_trait]
pub trait Target: View + Send + Sync {
    /// Waits until observations are current (a watch cache synced), at most `within`.
    async fn sync(&self, within: Duration) -> Result<(), ClusterError>;
    async fn apply(&self, change: Change) -> Result<(), ClusterError>;
    /// Returns when an observation may have changed, or after `at_most`.
    async fn changed(&self, at_most: Duration);
    /// Why a release's pods are not ready, in words and as a cause.
    async fn diagnose(&self, revision: u32) -> Diagnosis;
}

/// Makes the target of one env's deploy.
pub trait Targets: Send + Sync {
    fn target(&self, user: &UserName, env: &EnvSpec, release: ReleaseSpec) -> Arc<dyn Target>;
}
