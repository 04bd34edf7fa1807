//! Where an env's records live in the store: the env, its releases, the lock that
//! admits one deploy (or a deletion) at a time, and the index of deploys in progress.
//! Deploys write under these keys; the env side reads them for status and deletion.

use serde::{Deserialize, Serialize};

use crate::users::UserName;

pub fn env(user: &UserName, env: &str) -> String {
    format!("u/{user}/envs/{env}")
}

pub fn envs(user: &UserName) -> String {
    format!("u/{user}/envs/")
}

pub fn releases(user: &UserName, env: &str) -> String {
    format!("u/{user}/releases/{env}/")
}

/// Zero-padded, so releases list in revision order.
pub fn release(user: &UserName, env: &str, revision: u32) -> String {
    format!("{}{revision:010}", releases(user, env))
}

/// The per-env lock; its holder is the running deploy's id, or a deletion's
/// [`DELETING`]-prefixed id.
pub fn lock(user: &UserName, env: &str) -> String {
    format!("locks/deploy/{user}/{env}")
}

/// The env lock's holder while an env is deleted (deploys hold it by their id).
/// How long a request for the env's lock waits for a deploy that has ended to let go of
/// it: the deploy's final record is written (and it leaves the active index) a moment
/// before its lock is released.
pub const ENDING_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub const DELETING: &str = "deleting-";

/// Deploys not yet final, so any host can find one whose host died, and a status read
/// can name the deploy in progress without touching the lock.
pub const ACTIVE: &str = "deploys/active/";

pub fn active(user: &UserName, env: &str, id: &str) -> String {
    format!("{ACTIVE}{user}/{env}/{id}")
}

pub fn active_of_env(user: &UserName, env: &str) -> String {
    format!("{ACTIVE}{user}/{env}/")
}

/// An entry of the active index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveDeploy {
    pub user: UserName,
    pub env: String,
    pub id: String,
}
