//! `[webhooks]`: who may add endpoints that hear of deploys, where those may point,
//! and how hard warship tries to deliver to them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Users may add endpoints to their own envs (admins always may, for every env).
    /// Off, user endpoints are neither added nor called.
    pub users_may_add: bool,
    /// User endpoints may point at loopback, private and link-local addresses: off by
    /// default, so an endpoint cannot be used to probe the platform's own network.
    pub allow_private_addresses: bool,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub backoff_initial_ms: u64,
    /// How long one attempt may take, connecting included.
    pub timeout_secs: u64,
    /// Deliveries kept per endpoint in its log, newest first.
    pub deliveries_kept: usize,
    /// Where people reach the API (e.g. `https://warship.example.com`), so a payload's
    /// `link` is a whole URL; a path alone when unset.
    pub base_url: Option<String>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            users_may_add: false,
            allow_private_addresses: false,
            max_attempts: 5,
            backoff_initial_ms: 1000,
            timeout_secs: 5,
            deliveries_kept: 100,
            base_url: None,
        }
    }
}

impl WebhooksConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(1..=20).contains(&self.max_attempts) {
            return Err(format!("webhooks.max_attempts is {}; it must be 1 to 20", self.max_attempts));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 60 {
            return Err(format!("webhooks.timeout_secs is {}; it must be 1 to 60", self.timeout_secs));
        }
        if self.backoff_initial_ms > 3_600_000 {
            return Err("webhooks.backoff_initial_ms must be an hour (3600000) or less".into());
        }
        if !(1..=10_000).contains(&self.deliveries_kept) {
            return Err(format!("webhooks.deliveries_kept is {}; it must be 1 to 10000", self.deliveries_kept));
        }
        if let Some(base) = &self.base_url {
            match url::Url::parse(base) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "webhooks.base_url {base:?} must be an http(s) URL, e.g. \"https://warship.example.com\""
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_nonsense_is_named() {
        assert_eq!(WebhooksConfig::default().check(), Ok(()));
        let zero = WebhooksConfig { max_attempts: 0, ..Default::default() };
        assert!(zero.check().unwrap_err().contains("webhooks.max_attempts"));
        let base = WebhooksConfig { base_url: Some("warship".into()), ..Default::default() };
        assert!(base.check().unwrap_err().contains("webhooks.base_url"));
    }
}
