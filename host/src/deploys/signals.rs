//! A user's requests to a running deploy (promote, abort), stored beside it so that
//! whichever host runs the deploy sees them, and one that takes it over after a crash.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};

use super::keys;
use crate::store::{self, DynStore, Precondition, StoreError};
use crate::users::UserName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// For a promotion: the strategy step it promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
}

/// What a running deploy has been asked, as its driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub promote: Option<Signal>,
    pub abort: Option<Signal>,
}

pub const PROMOTE: &str = "promote";
pub const ABORT: &str = "abort";
/// How often a running deploy looks for signals sent through another host.
const POLL: Duration = Duration::from_secs(1);

pub async fn send(store: &DynStore, user: &UserName, id: &str, kind: &str, step: Option<u32>) -> Result<(), StoreError> {
    let signal = Signal { by: user.to_string(), at: OffsetDateTime::now_utc(), step };
    store::put_json(&**store, &format!("{}{kind}", keys::signals(user, id)), &signal, Precondition::Any).await.map(drop)
}

/// Drops an ended deploy's signals.
pub async fn clear(store: &DynStore, user: &UserName, id: &str) {
    for kind in [PROMOTE, ABORT] {
        let _ = store.delete(&format!("{}{kind}", keys::signals(user, id)), Precondition::Any).await;
    }
}

/// Keeps `signals` up to date with what is stored for the deploy: at once when this
/// host receives one (`poke`), and every second for those sent through another host.
pub async fn watch(store: DynStore, user: UserName, id: String, signals: watch::Sender<Signals>, poke: Arc<Notify>) -> std::convert::Infallible {
    let prefix = keys::signals(&user, &id);
    loop {
        match store.list(&prefix).await {
            Ok(entries) => {
                let read = |kind: &str| {
                    let key = format!("{prefix}{kind}");
                    entries.iter().find(|e| e.key == key).and_then(|e| serde_json::from_slice::<Signal>(&e.value).ok())
                };
                let now = Signals { promote: read(PROMOTE), abort: read(ABORT) };
                signals.send_if_modified(|seen| std::mem::replace(seen, now.clone()) != now);
            }
            Err(e) => tracing::warn!(%id, error = %e, "could not read the deploy's signals"),
        }
        let _ = tokio::time::timeout(POLL, poke.notified()).await;
    }
}

/// Resolves once an abort is asked (never, if the signals stop).
pub async fn abort_asked(mut signals: watch::Receiver<Signals>) -> Signal {
    loop {
        if let Some(abort) = signals.borrow_and_update().abort.clone() {
            return abort;
        }
        if signals.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
