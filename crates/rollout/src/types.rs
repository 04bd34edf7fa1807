//! A rollout as the host and a strategy see it: what is observed, what the strategy
//! answers, and the changes the host makes to where releases run. The host's `plugins/`
//! maps these to and from the WIT records at its edge (so does the SDK's `sim` on the
//! guest side); the rollout loop and its targets speak only these.

/// Which release the env's traffic goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Traffic {
    Stable,
    Candidate,
    Both,
}

/// How traffic going to both releases is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Split {
    /// By exact weights, on the env's route (`HTTPRoute` backend weights).
    Weights,
    /// By ready pods behind the env's one Service.
    PodRatio,
}

/// One release's workload as observed: replicas asked for, pods ready, restarts, and
/// how long the longest-unready pod has been unready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workload {
    pub replicas: u32,
    pub ready: u32,
    pub restarts: u32,
    pub unready_ms: u64,
}

impl Workload {
    pub fn all_ready(&self) -> bool {
        self.ready == self.replicas
    }
}

/// What a strategy is told at each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutState {
    pub desired_replicas: u32,
    pub stable: Option<Workload>,
    pub candidate: Workload,
    pub traffic: Traffic,
    /// The candidate's share of requests in percent, as last set; none unless split by weight.
    pub weight: Option<u8>,
    /// The target splits requests by exact weights (the env has a route).
    pub exact_weights: bool,
    pub step_index: u32,
    pub time_in_step_ms: u64,
    pub promoted: bool,
    pub memory: String,
}

impl RolloutState {
    /// Every workload has as many ready pods as replicas.
    pub fn all_ready(&self) -> bool {
        self.candidate.all_ready() && self.stable.as_ref().is_none_or(Workload::all_ready)
    }
}

/// Replicas of each workload: what a strategy asks for, and what the host asked of the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScaleTo {
    pub stable: u32,
    pub candidate: u32,
}

/// The next thing a strategy asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Scale(ScaleTo),
    SwitchTraffic(Traffic),
    /// The candidate's share of requests in percent (contract 0.2.0).
    SetWeight(u8),
    WaitReady,
    /// Ask again after this many milliseconds at most.
    Pause(u64),
    AwaitPromotion,
    Done,
    Abort(String),
}

impl Action {
    /// The action's name, as the WIT spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Scale(_) => "scale",
            Action::SwitchTraffic(_) => "switch-traffic",
            Action::SetWeight(_) => "set-weight",
            Action::WaitReady => "wait-ready",
            Action::Pause(_) => "pause",
            Action::AwaitPromotion => "await-promotion",
            Action::Done => "done",
            Action::Abort(_) => "abort",
        }
    }

    /// Actions the host carries out at once and then asks again: a strategy answering
    /// only these would make the host spin, so they are rate-limited.
    pub fn acts_at_once(&self) -> bool {
        matches!(self, Action::Scale(_) | Action::SwitchTraffic(_) | Action::SetWeight(_))
    }
}

/// A strategy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub step_index: u32,
    pub description: String,
    pub memory: String,
}

/// A release's workload, as the target observes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The release has a workload at all.
    pub exists: bool,
    /// Replicas the workload asks for.
    pub desired: u32,
    /// Its pods that are ready, not terminating ones' readiness included.
    pub ready: u32,
    pub restarts: u32,
    /// How long its longest-unready live pod has been unready.
    pub unready_ms: u64,
}

/// One change the host makes to where the env's releases run.
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
