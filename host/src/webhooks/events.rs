//! Which deploy changes are webhook events, and the bodies sent for them: warship's
//! JSON, or a Slack incoming webhook's `{text, blocks}`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::deploys::{DeployFailure, DeployRecord, DeployStatus, Phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventKind {
    /// The deploy left the queue: validating (or rolling out, for a rollback).
    #[serde(rename = "deploy.started")]
    Started,
    /// The strategy waits for a person to promote the rollout.
    #[serde(rename = "deploy.awaiting_promotion")]
    AwaitingPromotion,
    #[serde(rename = "deploy.succeeded")]
    Succeeded,
    /// With the record's failure: its code, words and, for pods that never got ready, the cause.
    #[serde(rename = "deploy.failed")]
    Failed,
    #[serde(rename = "deploy.aborted")]
    Aborted,
    /// A rollback ended well: an earlier release serves again. Sent instead of `deploy.succeeded`.
    #[serde(rename = "deploy.rolled_back")]
    RolledBack,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Started,
        EventKind::AwaitingPromotion,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Aborted,
        EventKind::RolledBack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Started => "deploy.started",
            EventKind::AwaitingPromotion => "deploy.awaiting_promotion",
            EventKind::Succeeded => "deploy.succeeded",
            EventKind::Failed => "deploy.failed",
            EventKind::Aborted => "deploy.aborted",
            EventKind::RolledBack => "deploy.rolled_back",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    pub fn names() -> String {
        Self::ALL.map(EventKind::name).join(", ")
    }
}

/// The events a change from `before` to `after` makes, in the order they happened.
pub fn events_for(before: Phase, after: &DeployRecord) -> Vec<EventKind> {
    let now = Phase::of(after);
    let mut events = Vec::new();
    if before.status.is_final() {
        return events;
    }
    if before.status == DeployStatus::Queued && now.status != DeployStatus::Queued && !now.status.is_final() {
        events.push(EventKind::Started);
    }
    if now.awaiting_promotion.is_some() && now.awaiting_promotion != before.awaiting_promotion {
        events.push(EventKind::AwaitingPromotion);
    }
    match now.status {
        DeployStatus::Succeeded if after.rollback_of.is_some() => events.push(EventKind::RolledBack),
        DeployStatus::Succeeded => events.push(EventKind::Succeeded),
        DeployStatus::Failed => events.push(EventKind::Failed),
        DeployStatus::Aborted => events.push(EventKind::Aborted),
        _ => {}
    }
    events
}

/// The strategy's step, as a payload tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepNote {
    pub index: u32,
    pub action: String,
    pub description: String,
}

/// The JSON body of a `json` endpoint's delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payload {
    /// The delivery's id, also in the `Warship-Delivery` header: the same on every retry.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub user: String,
    pub env: String,
    pub deploy: String,
    pub version: String,
    pub strategy: String,
    pub status: DeployStatus,
    pub revision: u32,
    /// The release a rollback brings back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepNote>,
    /// Why a deploy failed or was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<DeployFailure>,
    /// The deploy in the API: a path, or a whole URL with `webhooks.base_url`.
    pub link: String,
}

impl Payload {
    pub fn of(delivery: &str, kind: EventKind, user: &str, record: &DeployRecord, base_url: Option<&str>) -> Self {
        Self {
            id: delivery.to_owned(),
            kind,
            occurred_at: record.updated_at,
            user: user.to_owned(),
            env: record.env.clone(),
            deploy: record.id.clone(),
            version: record.version.clone(),
            strategy: record.strategy.clone(),
            status: record.status,
            revision: record.revision,
            rollback_of: record.rollback_of,
            step: record.step.as_ref().filter(|_| record.status == DeployStatus::RollingOut).map(|s| StepNote {
                index: s.index,
                action: s.action.clone(),
                description: s.description.clone(),
            }),
            failure: record
                .error
                .clone()
                .filter(|_| matches!(record.status, DeployStatus::Failed | DeployStatus::Aborted)),
            link: format!("{}/api/v1/deploys/{}", base_url.unwrap_or("").trim_end_matches('/'), record.id),
        }
    }

    /// One line a person reads in a chat: env, version, what happened, why.
    pub fn summary(&self) -> String {
        let (env, version) = (format!("{} ({})", self.env, self.user), &self.version);
        let why = |f: &Option<DeployFailure>| match f {
            Some(f) => format!(": {} [{}]", f.message, f.code),
            None => String::new(),
        };
        match self.kind {
            EventKind::Started => {
                format!("{env}: deploy of {version} started (release {}, {})", self.revision, self.strategy)
            }
            EventKind::AwaitingPromotion => {
                let step =
                    self.step.as_ref().map(|s| format!(" at step {}: {}", s.index, s.description)).unwrap_or_default();
                format!("{env}: {version} waits for promotion{step}")
            }
            EventKind::Succeeded => format!("{env}: {version} is live (release {}, {})", self.revision, self.strategy),
            EventKind::Failed => format!("{env}: deploy of {version} failed{}", why(&self.failure)),
            EventKind::Aborted => format!("{env}: deploy of {version} aborted{}", why(&self.failure)),
            EventKind::RolledBack => {
                let back =
                    self.rollback_of.map(|r| format!("release {r}")).unwrap_or_else(|| "an earlier release".into());
                format!("{env}: rolled back to {version} ({back}, now release {})", self.revision)
            }
        }
    }
}

/// How an endpoint wants its bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// [`Payload`] as JSON.
    #[default]
    Json,
    /// A Slack incoming webhook's message: `{text, blocks}`.
    Slack,
}

/// The bytes sent (and signed) for `payload` in `format`.
pub fn body(payload: &Payload, format: Format) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(payload).expect("payloads serialize"),
        Format::Slack => serde_json::to_vec(&slack(payload)).expect("payloads serialize"),
    }
}

/// A Slack message: the summary as `text` (notifications, clients without blocks),
/// the same in a section block, and the deploy's id and link in a context block.
fn slack(payload: &Payload) -> serde_json::Value {
    let mark = match payload.kind {
        EventKind::Started => ":rocket:",
        EventKind::AwaitingPromotion => ":raised_hand:",
        EventKind::Succeeded => ":white_check_mark:",
        EventKind::Failed => ":x:",
        EventKind::Aborted => ":octagonal_sign:",
        EventKind::RolledBack => ":rewind:",
    };
    let summary = payload.summary();
    let link = match payload.link.starts_with("http") {
        true => format!("<{}|deploy {}>", payload.link, &payload.deploy[..payload.deploy.len().min(8)]),
        false => format!("deploy `{}`", payload.deploy),
    };
    serde_json::json!({
        "text": summary,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{mark} {}", slack_escape(&summary))}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("{} · {link} · {}", payload.kind.name(), slack_escape(&payload.strategy))}
            ]}
        ]
    })
}

/// Slack reads `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploys::StrategyStep;

    fn record(status: DeployStatus) -> DeployRecord {
        let mut r = DeployRecord::queued(
            "0123456789abcdef".into(),
            "shop".into(),
            2,
            Some(1),
            ("canary".into(), serde_json::json!({})),
            "alice".into(),
        );
        r.version = "2.0".into();
        r.status = status;
        r
    }

    fn awaiting(index: u32) -> DeployRecord {
        let mut r = record(DeployStatus::RollingOut);
        r.step = Some(StrategyStep {
            index,
            action: "await-promotion".into(),
            description: "canary at 25%: waiting for someone to promote it".into(),
            memory: String::new(),
            since: OffsetDateTime::now_utc(),
        });
        r
    }

    #[test]
    fn each_change_makes_its_event_once() {
        let queued = Phase::of(&record(DeployStatus::Queued));
        assert_eq!(events_for(queued, &record(DeployStatus::Validating)), [EventKind::Started]);
        let validating = Phase::of(&record(DeployStatus::Validating));
        assert_eq!(events_for(validating, &record(DeployStatus::Building)), []);
        let rolling = Phase::of(&record(DeployStatus::RollingOut));
        assert_eq!(events_for(rolling, &awaiting(2)), [EventKind::AwaitingPromotion]);
        assert_eq!(events_for(Phase::of(&awaiting(2)), &awaiting(2)), [], "the same wait is told once");
        assert_eq!(
            events_for(Phase::of(&awaiting(2)), &awaiting(4)),
            [EventKind::AwaitingPromotion],
            "a later wait is another"
        );
        let mut promoted = awaiting(2);
        promoted.promoted = true;
        assert_eq!(events_for(Phase::of(&awaiting(2)), &promoted), []);
        assert_eq!(events_for(rolling, &record(DeployStatus::Succeeded)), [EventKind::Succeeded]);
        assert_eq!(events_for(rolling, &record(DeployStatus::Failed)), [EventKind::Failed]);
        assert_eq!(
            events_for(queued, &record(DeployStatus::Aborted)),
            [EventKind::Aborted],
            "aborted in the queue: never started"
        );
        let mut rollback = record(DeployStatus::Succeeded);
        rollback.rollback_of = Some(1);
        assert_eq!(events_for(rolling, &rollback), [EventKind::RolledBack]);
        let ended = Phase::of(&record(DeployStatus::Failed));
        assert_eq!(events_for(ended, &record(DeployStatus::Failed)), []);
        // A rollback goes from the queue straight to rolling out.
        assert_eq!(events_for(queued, &awaiting(0)), [EventKind::Started, EventKind::AwaitingPromotion]);
    }

    #[test]
    fn the_json_body_carries_the_deploy_and_its_failure() {
        let mut failed = record(DeployStatus::Failed);
        failed.error = Some(crate::deploys::record::failure("rollout.deadline", "the app runs but is not ready"));
        let payload = Payload::of("d-1", EventKind::Failed, "alice", &failed, Some("https://warship.example.com/"));
        let body: serde_json::Value = serde_json::from_slice(&body(&payload, Format::Json)).unwrap();
        assert_eq!(body["id"], "d-1");
        assert_eq!(body["type"], "deploy.failed");
        assert_eq!(
            (body["env"].as_str(), body["user"].as_str(), body["version"].as_str()),
            (Some("shop"), Some("alice"), Some("2.0"))
        );
        assert_eq!(
            (body["deploy"].as_str(), body["strategy"].as_str(), body["status"].as_str()),
            (Some("0123456789abcdef"), Some("canary"), Some("failed"))
        );
        assert_eq!(body["failure"]["code"], "rollout.deadline");
        assert_eq!(body["link"], "https://warship.example.com/api/v1/deploys/0123456789abcdef");
        assert!(body["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert!(body.get("step").is_none());
        let back: Payload = serde_json::from_value(body).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn the_slack_body_is_a_message_with_a_readable_summary() {
        let payload = Payload::of("d-2", EventKind::AwaitingPromotion, "alice", &awaiting(2), None);
        let body: serde_json::Value = serde_json::from_slice(&body(&payload, Format::Slack)).unwrap();
        assert_eq!(
            body["text"],
            "shop (alice): 2.0 waits for promotion at step 2: canary at 25%: waiting for someone to promote it"
        );
        assert_eq!(body["blocks"][0]["type"], "section");
        assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");
        assert!(body["blocks"][0]["text"]["text"].as_str().unwrap().starts_with(":raised_hand: shop (alice)"));
        assert_eq!(body["blocks"][1]["type"], "context");
        assert!(body["blocks"][1]["elements"][0]["text"].as_str().unwrap().contains("deploy `0123456789abcdef`"));
        let mut failed = record(DeployStatus::Failed);
        failed.error = Some(crate::deploys::record::failure("crash-loop", "it said <oops> & died"));
        let failed = Payload::of("d-3", EventKind::Failed, "alice", &failed, None);
        let body: serde_json::Value = serde_json::from_slice(&super::body(&failed, Format::Slack)).unwrap();
        assert_eq!(body["text"], "shop (alice): deploy of 2.0 failed: it said <oops> & died [crash-loop]");
        assert!(body["blocks"][0]["text"]["text"].as_str().unwrap().contains("it said &lt;oops&gt; &amp; died"));
    }

    #[test]
    fn event_names_parse_back() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.name()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        assert_eq!(EventKind::parse("deploy.exploded"), None);
    }
}
