//! Why a deploy request was refused.

use super::record::DeployStatus;
use crate::domain::Violation;
use crate::envs::EnvError;
use crate::images::ImageError;
use crate::plugins::PluginError;
use crate::store::StoreError;
use crate::wars::WarError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the deploy request is invalid")]
    Invalid(Vec<Violation>),
    #[error("deploy {0} not found")]
    NotFound(String),
    #[error("{prefix:?} is the start of several deploys' ids")]
    Ambiguous { prefix: String, ids: Vec<String> },
    #[error("no deploy is running on env {0}")]
    NoneRunning(String),
    #[error("deploy {running} is running on env {env}")]
    Running { env: String, running: String },
    #[error("deploy {id} already ended: {status:?}")]
    Finished { id: String, status: DeployStatus },
    #[error("deploy {id} is not waiting for promotion: {now}")]
    NotAwaitingPromotion { id: String, now: String },
    #[error("no Kubernetes cluster is configured")]
    NoCluster,
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    War(WarError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ImageError> for DeployError {
    /// A WAR that is not there is the request's fault (422); storage or store failing
    /// under it is not, and keeps its own answer (503 for the store).
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Invalid(v) => DeployError::Invalid(v),
            ImageError::Env(e) => DeployError::Env(e),
            ImageError::War(e @ WarError::NotFound { .. }) => {
                DeployError::Invalid(vec![Violation::new("war", "deploy.war.not_found", format!("{e}; GET /api/v1/wars lists yours"))])
            }
            ImageError::War(WarError::InvalidName(v)) => DeployError::Invalid(v),
            ImageError::War(WarError::Store(e)) => DeployError::Store(e),
            ImageError::War(e) => DeployError::War(e),
            ImageError::Plugin(e) => DeployError::Plugin(e),
            ImageError::Store(e) => DeployError::Store(e),
            ImageError::NotFound(id) => DeployError::NotFound(id),
            ImageError::Failed(f) => DeployError::Invalid(vec![Violation::new("war", &f.code, f.message)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_outage_under_a_war_lookup_is_not_the_requests_fault() {
        let outage = DeployError::from(ImageError::War(WarError::Store(StoreError::Unavailable("etcd: connection refused".into()))));
        assert!(matches!(outage, DeployError::Store(StoreError::Unavailable(_))), "{outage:?}");
        let missing = DeployError::from(ImageError::War(WarError::NotFound { app: "shop".into(), file: "shop.war".into() }));
        let DeployError::Invalid(violations) = missing else { panic!("a missing WAR is the request's fault") };
        assert_eq!(violations[0].code, "deploy.war.not_found");
        let disk = DeployError::from(ImageError::War(WarError::Io(std::io::Error::other("disk gone"))));
        assert!(matches!(disk, DeployError::War(WarError::Io(_))), "{disk:?}");
    }
}
