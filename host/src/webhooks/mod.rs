//! Webhooks: endpoints that hear of deploys (started, awaiting promotion, succeeded,
//! failed with its cause, aborted, rolled back) as signed JSON or Slack messages.
//! Endpoints live in the store, so every host sharing it calls them: an admin's hear
//! of every env (or those they filter on), a user's of one of their envs when the
//! platform lets users add them. Each delivery is a record in the store, retried with
//! backoff under a lease, so a host that stops mid-retry leaves it to another
//! (`delivery`). Nothing here can hold up or fail a deploy: the deploy only tells
//! [`Webhooks`] its change, and everything else runs on tasks of its own.

pub mod address;
mod delivery;
pub mod events;
pub mod signing;

use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use delivery::{backoff, Attempt, Delivery, Outcome};
pub use events::{EventKind, Format, Payload};

use crate::config::Config;
use crate::deploys::{DeployListener, DeployRecord, Phase};
use crate::domain::{EnvName, Violation};
use crate::envs::{EnvError, Envs};
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;

/// Endpoints an env may have, and admin endpoints in all.
pub const MAX_PER_ENV: usize = 10;
pub const MAX_ADMIN: usize = 100;
/// The shortest secret a caller may choose.
pub const SECRET_MIN: usize = 16;
pub const SECRET_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the endpoint cannot be added: {0:?}")]
    Invalid(Vec<Violation>),
    #[error("users may not add webhooks on this platform")]
    UsersMayNotAdd,
    #[error("there is no webhook {0}")]
    NotFound(String),
    #[error("{scope} has {max} webhooks, the most allowed")]
    TooMany { scope: String, max: usize },
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whose an endpoint is, which decides where it may point and what it hears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Owner {
    Admin,
    Env { user: UserName, env: String },
}

/// An endpoint as stored; its secret never leaves the store but in the answer that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Endpoint {
    id: String,
    url: String,
    events: Vec<EventKind>,
    format: Format,
    owner: Owner,
    /// Admin endpoints: only deploys of envs of this name, and of this user.
    env: Option<String>,
    user: Option<String>,
    secret: String,
    created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl Endpoint {
    fn hears(&self, kind: EventKind, user: &UserName, env: &str) -> bool {
        self.events.contains(&kind)
            && self.env.as_deref().is_none_or(|wanted| wanted == env)
            && self.user.as_deref().is_none_or(|wanted| wanted == user.as_str())
    }

    fn view(&self) -> EndpointView {
        let (scope, user, env) = match &self.owner {
            Owner::Admin => ("admin", self.user.clone(), self.env.clone()),
            Owner::Env { user, env } => ("env", Some(user.to_string()), Some(env.clone())),
        };
        EndpointView {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            format: self.format,
            scope,
            user,
            env,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            secret: None,
        }
    }
}

/// What a client sends to add an endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where deliveries are POSTed: http(s). A user's must resolve to a public address
    /// unless `webhooks.allow_private_addresses`.
    pub url: String,
    /// The events it hears (`deploy.started`, `deploy.awaiting_promotion`, `deploy.succeeded`,
    /// `deploy.failed`, `deploy.aborted`, `deploy.rolled_back`); all of them when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// `json` (warship's payload, the default) or `slack` (an incoming webhook's message).
    #[serde(default)]
    pub format: Format,
    /// The signing secret, 16 to 256 characters; one is made when absent. Answered this once.
    #[serde(default)]
    pub secret: Option<String>,
    /// Admin endpoints only: hear only deploys of envs of this name.
    #[serde(default)]
    pub env: Option<String>,
    /// Admin endpoints only: hear only this user's deploys.
    #[serde(default)]
    pub user: Option<String>,
}

/// An endpoint as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub events: Vec<EventKind>,
    pub format: Format,
    /// `admin` (an admin's, hearing every env or those it filters on) or `env` (a user's, for one env).
    pub scope: &'static str,
    /// The env's owner (`env` scope), or the user an admin endpoint filters on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The env (`env` scope), or the env name an admin endpoint filters on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The signing secret: only in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Where webhooks live in the store.
mod keys {
    use crate::users::UserName;

    pub const ADMIN: &str = "webhooks/admin/";

    pub fn admin(id: &str) -> String {
        format!("{ADMIN}{id}")
    }

    pub fn of_env(user: &UserName, env: &str) -> String {
        format!("u/{user}/webhooks/{env}/")
    }

    pub fn env(user: &UserName, env: &str, id: &str) -> String {
        format!("{}{id}", of_env(user, env))
    }

    /// An endpoint's delivery log, oldest first in key order.
    pub fn deliveries(endpoint: &str) -> String {
        format!("webhooks/deliveries/{endpoint}/")
    }

    pub fn delivery(endpoint: &str, at: time::OffsetDateTime, id: &str) -> String {
        let nanos = at.unix_timestamp_nanos().clamp(0, i128::from(u64::MAX)) as u64;
        format!("{}{nanos:020}-{id}", deliveries(endpoint))
    }

    /// Deliveries not yet ended, so any host finds one whose host stopped.
    pub const PENDING: &str = "webhooks/pending/";

    pub fn pending(id: &str) -> String {
        format!("{PENDING}{id}")
    }

    pub fn lock(id: &str) -> String {
        format!("locks/webhook/{id}")
    }
}

pub struct Webhooks {
    store: DynStore,
    config: Arc<Config>,
    envs: Envs,
    /// Admin endpoints' client; user endpoints get one pinned to the address checked.
    client: reqwest::Client,
    /// This host, as the holder of delivery leases.
    holder: String,
    me: Weak<Webhooks>,
    /// Deploy changes to announce, one after another, so an endpoint's deliveries of
    /// one deploy start in the order its changes happened.
    announcements: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Announcement>>,
}

/// A deploy's change to announce: its events and its record as stored.
type Announcement = (UserName, Vec<EventKind>, DeployRecord);

/// Ids are 32 hex digits; anything else names no endpoint (and no key).
fn plausible_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Webhooks {
    pub fn new(store: DynStore, config: Arc<Config>, envs: Envs) -> Arc<Self> {
        let holder = format!("webhooks-{}", uuid::Uuid::new_v4().simple());
        Arc::new_cyclic(|me| Self {
            store,
            config,
            envs,
            client: delivery::client(None),
            holder,
            me: me.clone(),
            announcements: Default::default(),
        })
    }

    /// Adds an admin endpoint (any URL, every env or those the filters name).
    pub async fn add_admin(&self, admin: &UserName, new: NewEndpoint) -> Result<EndpointView, WebhookError> {
        let mut problems = Vec::new();
        if let Some(env) = &new.env {
            if let Err(mut v) = EnvName::parse(env) {
                v.field = "env".into();
                problems.push(v);
            }
        }
        if let Some(user) = &new.user {
            if let Err(e) = UserName::parse(user) {
                problems.push(Violation::new("user", "webhook.user.invalid", e.to_string()));
            }
        }
        let (env, user) = (new.env.clone(), new.user.clone());
        let endpoint = self.checked(admin, new, Owner::Admin, problems, true).await?;
        let endpoint = Endpoint { env, user, ..endpoint };
        if store::list_json::<Endpoint>(&*self.store, keys::ADMIN).await?.len() >= MAX_ADMIN {
            return Err(WebhookError::TooMany { scope: "the platform".into(), max: MAX_ADMIN });
        }
        self.create(&keys::admin(&endpoint.id), endpoint).await
    }

    /// Adds an endpoint to one of `user`'s envs, when the platform lets users.
    pub async fn add_to_env(
        &self,
        user: &UserName,
        env: &EnvName,
        new: NewEndpoint,
    ) -> Result<EndpointView, WebhookError> {
        if !self.config.webhooks.users_may_add {
            return Err(WebhookError::UsersMayNotAdd);
        }
        self.envs.get(user, env).await?;
        let mut problems = Vec::new();
        for (field, given) in [("env", &new.env), ("user", &new.user)] {
            if given.is_some() {
                problems.push(Violation::new(
                    field,
                    "webhook.filter.admin_only",
                    format!("`{field}` filters admin endpoints; an env's endpoint hears its env only, so leave it out"),
                ));
            }
        }
        let owner = Owner::Env { user: user.clone(), env: env.to_string() };
        let private_ok = self.config.webhooks.allow_private_addresses;
        let endpoint = self.checked(user, new, owner, problems, private_ok).await?;
        if self.store.list(&keys::of_env(user, env.as_str())).await?.len() >= MAX_PER_ENV {
            return Err(WebhookError::TooMany { scope: format!("env {env}"), max: MAX_PER_ENV });
        }
        self.create(&keys::env(user, env.as_str(), &endpoint.id), endpoint).await
    }

    /// The endpoint `new` asks for, or every problem with it at once.
    async fn checked(
        &self,
        by: &UserName,
        new: NewEndpoint,
        owner: Owner,
        mut problems: Vec<Violation>,
        private_ok: bool,
    ) -> Result<Endpoint, WebhookError> {
        match address::parse_url(&new.url) {
            Ok(url) => {
                if let Err(problem) = address::resolve(&url, private_ok).await {
                    let advice = match problem {
                        address::AddressProblem::Internal { .. } => {
                            "; point it at a public address, or ask an admin (webhooks.allow_private_addresses)"
                        }
                        _ => "",
                    };
                    problems.push(Violation::new("url", problem.code(), format!("{problem}{advice}")));
                }
            }
            Err(problem) => problems.push(Violation::new("url", problem.code(), problem.to_string())),
        }
        let events = match &new.events {
            None => EventKind::ALL.to_vec(),
            Some(names) if names.is_empty() => {
                problems.push(Violation::new(
                    "events",
                    "webhook.events.empty",
                    format!("name at least one event, or leave `events` out for all: {}", EventKind::names()),
                ));
                Vec::new()
            }
            Some(names) => {
                let mut events = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    match EventKind::parse(name) {
                        Some(kind) if !events.contains(&kind) => events.push(kind),
                        Some(_) => {}
                        None => problems.push(Violation::new(
                            format!("events[{i}]"),
                            "webhook.events.unknown",
                            format!("there is no event {name:?}; the events are: {}", EventKind::names()),
                        )),
                    }
                }
                events
            }
        };
        if let Some(secret) = &new.secret {
            if !(SECRET_MIN..=SECRET_MAX).contains(&secret.chars().count()) || secret.chars().any(char::is_control) {
                problems.push(Violation::new(
                    "secret",
                    "webhook.secret.invalid",
                    format!("a secret is {SECRET_MIN} to {SECRET_MAX} printable characters; leave it out and one is made for you"),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(WebhookError::Invalid(problems));
        }
        Ok(Endpoint {
            id: uuid::Uuid::new_v4().simple().to_string(),
            url: new.url,
            events,
            format: new.format,
            owner,
            env: None,
            user: None,
            secret: new.secret.unwrap_or_else(signing::new_secret),
            created_by: by.to_string(),
            created_at: OffsetDateTime::now_utc(),
        })
    }

    async fn create(&self, key: &str, endpoint: Endpoint) -> Result<EndpointView, WebhookError> {
        store::put_json(&*self.store, key, &endpoint, Precondition::Absent).await?;
        tracing::info!(id = %endpoint.id, owner = ?endpoint.owner, by = %endpoint.created_by, "webhook added");
        // The secret is shown this once.
        Ok(EndpointView { secret: Some(endpoint.secret.clone()), ..endpoint.view() })
    }

    pub async fn list_admin(&self) -> Result<Vec<EndpointView>, WebhookError> {
        Ok(store::list_json::<Endpoint>(&*self.store, keys::ADMIN).await?.into_iter().map(|(e, _)| e.view()).collect())
    }

    pub async fn list_env(&self, user: &UserName, env: &EnvName) -> Result<Vec<EndpointView>, WebhookError> {
        self.envs.get(user, env).await?;
        Ok(store::list_json::<Endpoint>(&*self.store, &keys::of_env(user, env.as_str()))
            .await?
            .into_iter()
            .map(|(e, _)| e.view())
            .collect())
    }

    async fn endpoint(&self, key: &str, id: &str) -> Result<Endpoint, WebhookError> {
        if !plausible_id(id) {
            return Err(WebhookError::NotFound(id.to_owned()));
        }
        store::get_json::<Endpoint>(&*self.store, key)
            .await?
            .map(|(e, _)| e)
            .ok_or_else(|| WebhookError::NotFound(id.to_owned()))
    }

    fn env_key(user: &UserName, env: &EnvName, id: &str) -> String {
        keys::env(user, env.as_str(), id)
    }

    pub async fn get_admin(&self, id: &str) -> Result<EndpointView, WebhookError> {
        Ok(self.endpoint(&keys::admin(id), id).await?.view())
    }

    pub async fn get_env(&self, user: &UserName, env: &EnvName, id: &str) -> Result<EndpointView, WebhookError> {
        self.envs.get(user, env).await?;
        Ok(self.endpoint(&Self::env_key(user, env, id), id).await?.view())
    }

    pub async fn remove_admin(&self, id: &str) -> Result<(), WebhookError> {
        self.remove(&keys::admin(id), id).await
    }

    pub async fn remove_env(&self, user: &UserName, env: &EnvName, id: &str) -> Result<(), WebhookError> {
        self.envs.get(user, env).await?;
        self.remove(&Self::env_key(user, env, id), id).await
    }

    /// The endpoint and its log go; a delivery under way sees it gone and stops.
    async fn remove(&self, key: &str, id: &str) -> Result<(), WebhookError> {
        self.endpoint(key, id).await?;
        self.store.delete(key, Precondition::Any).await?;
        for entry in self.store.list(&keys::deliveries(id)).await? {
            self.store.delete(&entry.key, Precondition::Any).await?;
        }
        tracing::info!(%id, "webhook removed");
        Ok(())
    }

    pub async fn deliveries_admin(&self, id: &str) -> Result<Vec<Delivery>, WebhookError> {
        self.endpoint(&keys::admin(id), id).await?;
        self.deliveries(id).await
    }

    pub async fn deliveries_env(
        &self,
        user: &UserName,
        env: &EnvName,
        id: &str,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.envs.get(user, env).await?;
        self.endpoint(&Self::env_key(user, env, id), id).await?;
        self.deliveries(id).await
    }

    /// The endpoint's log, newest first.
    async fn deliveries(&self, endpoint: &str) -> Result<Vec<Delivery>, WebhookError> {
        let mut all: Vec<Delivery> =
            store::list_json(&*self.store, &keys::deliveries(endpoint)).await?.into_iter().map(|(d, _)| d).collect();
        all.reverse();
        all.truncate(self.config.webhooks.deliveries_kept);
        Ok(all)
    }

    /// The endpoints that hear `kind` of `user`'s deploy on `env`, with their keys.
    async fn hearing(
        &self,
        kind: EventKind,
        user: &UserName,
        env: &str,
    ) -> Result<Vec<(String, Endpoint)>, StoreError> {
        let mut prefixes = vec![keys::ADMIN.to_owned()];
        if self.config.webhooks.users_may_add {
            prefixes.push(keys::of_env(user, env));
        }
        let mut hearing = Vec::new();
        for prefix in prefixes {
            for entry in self.store.list(&prefix).await? {
                match serde_json::from_slice::<Endpoint>(&entry.value) {
                    Ok(endpoint) if endpoint.hears(kind, user, env) => hearing.push((entry.key, endpoint)),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(key = %entry.key, error = %e, "an unreadable webhook endpoint is skipped"),
                }
            }
        }
        Ok(hearing)
    }

    /// The announcer: started on the first change told (deploys run on the runtime, so
    /// one is there), it ends with this host's webhooks.
    fn announcer(&self) -> &tokio::sync::mpsc::UnboundedSender<Announcement> {
        self.announcements.get_or_init(|| {
            let (tell, mut told) = tokio::sync::mpsc::unbounded_channel::<Announcement>();
            let me = self.me.clone();
            tokio::spawn(async move {
                while let Some((user, events, record)) = told.recv().await {
                    let Some(this) = me.upgrade() else { return };
                    this.announce(user, events, record).await;
                }
            });
            tell
        })
    }

    /// Starts a delivery to every endpoint hearing each event.
    async fn announce(&self, user: UserName, events: Vec<EventKind>, record: DeployRecord) {
        for kind in events {
            let hearing = match self.hearing(kind, &user, &record.env).await {
                Ok(hearing) => hearing,
                Err(e) => {
                    tracing::warn!(deploy = %record.id, event = kind.name(), error = %e, "could not read the webhooks; this event is not delivered");
                    continue;
                }
            };
            for (key, endpoint) in hearing {
                if let Err(e) = self.start(&key, &endpoint, kind, &user, &record).await {
                    tracing::warn!(deploy = %record.id, endpoint = %endpoint.id, event = kind.name(), error = %e, "could not start a webhook delivery");
                }
            }
        }
    }
}

impl DeployListener for Webhooks {
    fn changed(&self, user: &UserName, before: Phase, after: &DeployRecord) {
        let events = events::events_for(before, after);
        if events.is_empty() {
            return;
        }
        tracing::debug!(deploy = %after.id, events = ?events, "deploy events for webhooks");
        let _ = self.announcer().send((user.clone(), events, after.clone()));
    }
}

#[async_trait::async_trait]
impl crate::jobs::Recover for Webhooks {
    fn kind(&self) -> &'static str {
        "webhook deliveries"
    }

    async fn recover_once(self: Arc<Self>) -> Result<(), StoreError> {
        self.resume_lapsed().await
    }
}

#[cfg(test)]
mod tests;
