//! Where a deploy's own records live in the store. Env-wide keys (the env lock, its
//! releases, the index of deploys in progress) are the env side's: `envs::keys`.

use crate::users::UserName;

pub fn record(user: &UserName, id: &str) -> String {
    format!("u/{user}/deploys/{id}")
}

pub fn records(user: &UserName) -> String {
    format!("u/{user}/deploys/")
}

/// Promote and abort requests, one key each, beside the deploy.
pub fn signals(user: &UserName, id: &str) -> String {
    format!("u/{user}/deploy-signals/{id}/")
}
