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
use crate::domain::{EnvSpec, ReleaseSpec, Traffic};
use crate::users::UserName;

/// A release's workload, as observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The release has a workload (a Deployment) at all.
    pub exists: bool,
    /// Replicas the workload asks for.
    pub desired: u32,
    /// Its pods that are ready, not terminating ones' readiness included.
    pub ready: u32,
    pub restarts: u32,
    /// How long its longest-unready live pod has been unready.
    pub unready_ms: u64,
}

/// One change the loop asks of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The candidate's workload with this many replicas, created when absent.
    Candidate { replicas: u32 },
    /// An existing release's replica count (gone and asked for zero is fine).
    Scale { revision: u32, replicas: u32 },
    /// Where the env's traffic goes; with `weight`, the candidate's share of requests
    /// when traffic goes to both (exact where the target can split by weight).
    Route { traffic: Traffic, weight: Option<u8>, stable: Option<u32>, candidate: u32 },
    /// A release's workload and pods removed (gone already is fine).
    Remove { revision: u32 },
}

/// One env's releases, where they run.
#[async_trait]
pub trait Target: Send + Sync {
    /// Waits until observations are current (a watch cache synced), at most `within`.
    async fn sync(&self, within: Duration) -> Result<(), ClusterError>;
    /// Revisions of the releases with a workload now.
    fn releases(&self) -> Vec<u32>;
    fn observe(&self, revision: u32) -> Observed;
    async fn apply(&self, change: Change) -> Result<(), ClusterError>;
    /// Requests can be split between releases by exact weights (the env has a route).
    fn exact_weights(&self) -> bool;
    /// Returns when an observation may have changed, or after `at_most`.
    async fn changed(&self, at_most: Duration);
    /// Why a release's pods are not ready, in words and as a cause.
    async fn diagnose(&self, revision: u32) -> Diagnosis;
}

/// Makes the target of one env's deploy.
pub trait Targets: Send + Sync {
    fn target(&self, user: &UserName, env: &EnvSpec, release: ReleaseSpec) -> Arc<dyn Target>;
}
