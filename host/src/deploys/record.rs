//! A deploy's durable record, what clients send to start one, and what watchers of
//! one see.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::cluster::diagnosis::Cause;
use crate::domain::{Split, Traffic, Workload};
use crate::image::BuildEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStatus {
    Queued,
    Validating,
    Building,
    Pushing,
    RollingOut,
    Succeeded,
    Failed,
    Aborted,
}

impl DeployStatus {
    pub fn is_final(self) -> bool {
        matches!(self, DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Aborted)
    }
}

/// What a deploy's listener was last told of it: enough to see what changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    pub status: DeployStatus,
    /// The strategy's step that waits for a person to promote it, while one waits.
    pub awaiting_promotion: Option<u32>,
}

impl Phase {
    pub fn of(record: &DeployRecord) -> Self {
        let awaiting_promotion = match (&record.step, record.status) {
            (Some(step), DeployStatus::RollingOut) if step.action == "await-promotion" && !record.promoted => Some(step.index),
            _ => None,
        };
        Self { status: record.status, awaiting_promotion }
    }
}

/// Where the strategy is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StrategyStep {
    pub index: u32,
    /// The action it answered last: `scale`, `wait-ready`, `await-promotion`, …
    pub action: String,
    /// What it is doing, in its own words.
    pub description: String,
    /// The plugin's opaque state, handed back on the next call.
    pub memory: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
}

/// Replicas warship asked of each workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Scale {
    pub stable: u32,
    pub candidate: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployFailure {
    /// Stable code: `deploy.invalid`, `registry.unreachable`, `rollout.deadline`, `rollout.aborted`,
    /// `deploy.aborted`, `deploy.interrupted`, …
    pub code: String,
    pub message: String,
    /// What kept the new pods from being ready, when a rollout failed on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// One point in a deploy's life: a status reached, or a strategy step begun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Milestone {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub status: DeployStatus,
    /// The strategy's step index and action, while rolling out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The step's own words, or the failure's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// How many milestones a record keeps; a rollout with more keeps its first and latest.
const MILESTONES_KEPT: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployRecord {
    pub id: String,
    pub env: String,
    /// `app/file` of the WAR.
    pub war: String,
    pub war_sha256: String,
    pub version: String,
    pub strategy: String,
    /// The strategy's settings for this deploy: the admin's, with the request's over them.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Who asked for it.
    pub by: String,
    pub status: DeployStatus,
    /// The release this deploy creates.
    pub revision: u32,
    /// The release serving when it started; none on a first deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_build: Option<String>,
    /// Times another host began the build again after the one building it stopped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub builds_resumed: u32,
    /// What the pods run, pinned by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub traffic: Traffic,
    /// The candidate's share of requests in percent, while traffic is split by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// How traffic going to both releases is split: by exact `weights` on the env's
    /// route, or by `pod-ratio` behind its Service; absent while one release has it all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    pub scale: Scale,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StrategyStep>,
    /// Someone promoted the rollout during its current step.
    #[serde(default)]
    pub promoted: bool,
    /// The release this deploy brings back, for a rollback (no image is built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u32>,
    /// Time the rollout spent waiting for Kubernetes to make pods ready (or stop them);
    /// the rest of the deploy's time is warship's own (build, push, API calls).
    #[serde(default)]
    pub waited_for_kubernetes_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DeployFailure>,
    /// What happened so far, oldest first, so a client connecting late (or to another
    /// host) can see how the deploy got where it is.
    #[serde(default)]
    pub history: Vec<Milestone>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

impl DeployRecord {
    /// A deploy just accepted: revision `revision` of `env`, replacing release `stable`.
    pub fn queued(id: String, env: String, revision: u32, stable: Option<u32>, (strategy, settings): (String, serde_json::Value), by: String) -> Self {
        let now = OffsetDateTime::now_utc();
        let mut record = DeployRecord {
            id,
            env,
            war: String::new(),
            war_sha256: String::new(),
            version: String::new(),
            strategy,
            settings,
            by,
            status: DeployStatus::Queued,
            revision,
            stable,
            image_build: None,
            builds_resumed: 0,
            image: None,
            digest: None,
            traffic: if stable.is_some() { Traffic::Stable } else { Traffic::Candidate },
            weight: None,
            split: None,
            scale: Scale::default(),
            step: None,
            promoted: false,
            rollback_of: None,
            waited_for_kubernetes_ms: 0,
            error: None,
            history: Vec::new(),
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        note_milestone(&mut record);
        record
    }
}

/// What a client asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// `app/file.war`, or just `file.war` when one app has it.
    pub war: String,
    /// The image tag, e.g. `1.0.3`.
    pub version: String,
    /// A strategy plugin's name; the platform's default when absent.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Settings laid over the admin's settings of the strategy, e.g. `{"max-surge": 2}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Asks a rollback: back to a recorded release, by its digest, without building.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The release to bring back; by default the one before the release serving now.
    #[serde(default)]
    pub revision: Option<u32>,
    /// A strategy plugin's name; the platform's default when absent.
    #[serde(default)]
    pub strategy: Option<String>,
}

/// What watchers of a deploy see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeployEvent {
    /// The record after each persisted step.
    Record(Box<DeployRecord>),
    /// Build and push progress.
    Build(BuildEvent),
    /// Replicas ready of each workload, as observed.
    Replicas { stable: Option<WorkloadReplicas>, candidate: WorkloadReplicas },
}

/// A workload as events show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkloadReplicas {
    pub revision: u32,
    pub replicas: u32,
    pub ready: u32,
    pub restarts: u32,
}

impl DeployEvent {
    /// The event that ends a deploy's stream: its final record.
    pub fn is_end(&self) -> bool {
        matches!(self, DeployEvent::Record(record) if record.status.is_final())
    }
}

impl WorkloadReplicas {
    pub fn of(revision: u32, w: &Workload) -> Self {
        Self { revision, replicas: w.replicas, ready: w.ready, restarts: w.restarts }
    }
}

/// A failure with its stable code and words.
pub fn failure(code: &str, message: impl Into<String>) -> DeployFailure {
    DeployFailure { code: code.into(), message: message.into(), cause: None }
}

/// Adds a milestone when the status or the strategy's step changed since the last one.
pub fn note_milestone(record: &mut DeployRecord) {
    let (step, action, words) = match (&record.step, record.status) {
        (Some(s), DeployStatus::RollingOut) => (Some(s.index), Some(s.action.clone()), s.description.clone()),
        _ => (None, None, String::new()),
    };
    if record.history.last().is_some_and(|m| m.status == record.status && m.step == step && m.action == action) {
        return;
    }
    let description = match &record.error {
        Some(error) if record.status.is_final() => error.message.clone(),
        _ => words,
    };
    if record.history.len() >= MILESTONES_KEPT {
        // Keep the first (queued) and the latest ones.
        record.history.remove(1);
    }
    record.history.push(Milestone { at: record.updated_at, status: record.status, step, action, description });
}

pub fn status_words(status: DeployStatus) -> &'static str {
    match status {
        DeployStatus::Queued => "queued",
        DeployStatus::Validating => "validating",
        DeployStatus::Building => "building the image",
        DeployStatus::Pushing => "pushing the image",
        DeployStatus::RollingOut => "rolling out",
        DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Aborted => "finishing",
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DeployRecord {
        let mut r = DeployRecord::queued("d1".into(), "shop".into(), 2, Some(1), ("canary".into(), serde_json::json!({})), "alice".into());
        r.history.clear();
        r
    }

    fn step(index: u32, action: &str, description: &str) -> Option<StrategyStep> {
        let since = OffsetDateTime::now_utc();
        Some(StrategyStep { index, action: action.into(), description: description.into(), memory: String::new(), since })
    }

    #[test]
    fn milestones_mark_each_status_and_step_once_and_the_end_with_its_cause() {
        let mut r = record();
        note_milestone(&mut r);
        note_milestone(&mut r);
        r.status = DeployStatus::RollingOut;
        r.step = step(0, "wait-ready", "canary at 10%: 0 of 1 candidate pods ready");
        note_milestone(&mut r);
        // The same step in other words (a pod became ready) is not a new milestone.
        r.step = step(0, "wait-ready", "canary at 10%: 1 of 1 candidate pods ready");
        note_milestone(&mut r);
        r.step = step(1, "await-promotion", "canary at 10%: waiting for someone to promote it");
        note_milestone(&mut r);
        r.status = DeployStatus::Aborted;
        r.error = Some(failure("deploy.aborted", "aborted by alice during the rollout; release 1 serves alone again"));
        note_milestone(&mut r);
        let seen: Vec<(DeployStatus, Option<u32>, Option<&str>, &str)> =
            r.history.iter().map(|m| (m.status, m.step, m.action.as_deref(), m.description.as_str())).collect();
        assert_eq!(
            seen,
            [
                (DeployStatus::Queued, None, None, ""),
                (DeployStatus::RollingOut, Some(0), Some("wait-ready"), "canary at 10%: 0 of 1 candidate pods ready"),
                (DeployStatus::RollingOut, Some(1), Some("await-promotion"), "canary at 10%: waiting for someone to promote it"),
                (DeployStatus::Aborted, None, None, "aborted by alice during the rollout; release 1 serves alone again"),
            ]
        );
    }

    #[test]
    fn a_long_rollout_keeps_its_first_and_latest_milestones() {
        let mut r = record();
        note_milestone(&mut r);
        r.status = DeployStatus::RollingOut;
        for index in 0..(MILESTONES_KEPT as u32 * 2) {
            r.step = step(index, "scale", "");
            note_milestone(&mut r);
        }
        assert_eq!(r.history.len(), MILESTONES_KEPT);
        assert_eq!(r.history[0].status, DeployStatus::Queued);
        assert_eq!(r.history.last().unwrap().step, Some(MILESTONES_KEPT as u32 * 2 - 1));
    }
}
