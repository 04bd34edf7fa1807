//! What a config must hold beyond its shape: pairs set together, names and images a
//! user could abuse, numbers that must be above 0. Checked once at load, each answer
//! naming the key and what to write instead.

use std::collections::BTreeSet;

use super::{tenancy, Config, StoreBackend};

impl Config {
    /// Checks that serde cannot express: pairs, paths, combinations.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key must be set together".into());
        }
        if self.store.backend == StoreBackend::Etcd && self.store.etcd_endpoints.is_empty() {
            return Err("store.etcd_endpoints is empty but store.backend = \"etcd\"".into());
        }
        self.store.check_etcd_access()?;
        self.server.cors.check()?;
        self.storage.check()?;
        self.webhooks.check()?;
        self.console.check()?;
        if self.registry.password.is_some() && self.registry.password_file.is_some() {
            return Err("set registry.password or registry.password_file, not both".into());
        }
        if self.registry.push_timeout_secs == 0 {
            return Err("registry.push_timeout_secs must be above 0".into());
        }
        if crate::domain::Platform::parse(&self.build.platform).is_none() {
            return Err(format!(
                "build.platform {:?} must read os/architecture[/variant], e.g. linux/amd64",
                self.build.platform
            ));
        }
        if self.kubernetes.kubeconfig.is_some() && self.kubernetes.in_cluster {
            return Err("set kubernetes.kubeconfig or kubernetes.in_cluster, not both".into());
        }
        if self.kubernetes.namespace_prefix.is_empty() {
            return Err("kubernetes.namespace_prefix must not be empty: users' namespaces would be named like anyone else's (e.g. a user `kube-system`); keep \"warship-\"".into());
        }
        for entry in &self.catalog {
            if let Some(owner) = self.platform_repository_owner(&entry.base_image) {
                if !crate::domain::RESERVED_NAMES.contains(&owner) {
                    return Err(format!(
                        "catalog base image {:?} lives in the push registry under {owner:?}, where a user {owner:?} could push images over it; keep base images under \"warship/\"",
                        entry.base_image
                    ));
                }
            }
        }
        if crate::domain::dns_label_problem(&format!("{}a", self.kubernetes.namespace_prefix), 33).is_some() {
            return Err(format!(
                "kubernetes.namespace_prefix {:?} must be lower-case letters, digits and '-', start with a letter, at most 32 characters",
                self.kubernetes.namespace_prefix
            ));
        }
        if let Some(gateway) = &self.kubernetes.gateway {
            if !matches!(gateway.base_url.scheme(), "http" | "https")
                || !matches!(gateway.base_url.host(), Some(url::Host::Domain(_)))
            {
                return Err(format!(
                    "kubernetes.gateway.base_url {:?} must be an http(s) URL with a DNS name (envs answer at <env>.<user>.<that name>), e.g. \"http://localhost:8000\"",
                    gateway.base_url.as_str()
                ));
            }
        }
        tenancy::check(&self.kubernetes.quota, &self.kubernetes.limits, &self.kubernetes.ingress_from)?;
        for entry in &self.catalog {
            if let Some(user) = entry.user.as_deref().filter(|u| !numeric_non_root(u)) {
                return Err(format!(
                    "catalog base image {:?}: user {user:?} must be a numeric uid or uid:gid other than 0 (e.g. \"1000:1000\"): apps run with runAsNonRoot, which the kubelet can only verify for a numeric user",
                    entry.base_image
                ));
            }
        }
        if self.server.header_read_timeout_secs == 0 {
            return Err("server.header_read_timeout_secs must be above 0".into());
        }
        if self.deploys.max_replicas == 0 {
            return Err("deploys.max_replicas must be above 0".into());
        }
        if self.deploys.keep_per_env == 0 {
            return Err("deploys.keep_per_env must be above 0: the running deploy's record is one of them".into());
        }
        if self.deploys.rollout_deadline_secs == 0 {
            return Err("deploys.rollout_deadline_secs must be above 0".into());
        }
        if self.uploads.max_bytes == 0 {
            return Err("uploads.max_bytes must be above 0".into());
        }
        let mut names = BTreeSet::new();
        for plugin in self.plugins.iter().flatten() {
            if !names.insert(&plugin.name) {
                return Err(format!("plugins: the name {:?} is used twice", plugin.name));
            }
        }
        let mut seen = BTreeSet::new();
        for entry in &self.catalog {
            if !seen.insert((&entry.tomcat, &entry.jdk)) {
                return Err(format!("catalog lists tomcat {} with jdk {} twice", entry.tomcat, entry.jdk));
            }
        }
        for user in &self.users.static_users {
            if user.token_sha256.len() != 64 || hex::decode(&user.token_sha256).is_err() {
                return Err(format!("users.static entry {:?}: token_sha256 must be 64 hex digits", user.name));
            }
        }
        Ok(())
    }
}

/// `1000` or `1000:1000`: a user the kubelet can tell is not root without the image's
/// `/etc/passwd`.
fn numeric_non_root(user: &str) -> bool {
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    uid.parse::<u32>().is_ok_and(|uid| uid != 0) && gid.parse::<u32>().is_ok()
}
