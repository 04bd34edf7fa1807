//! `[server.cors]`: which other origins' pages may call the API from a browser. A front
//! end elsewhere calls it with a bearer token, which needs no credentials; cookies go
//! only to the console's own origin, when the console is served under a name of its
//! own (behind a gateway, say).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API, or `["*"]` for any.
    /// Empty: no cross-origin call is allowed (the default).
    pub allowed_origins: Vec<String>,
    /// The one origin whose requests may carry credentials (the console's session
    /// cookie); it is allowed as an origin too.
    pub console_origin: Option<String>,
    /// How long a browser may cache a preflight's answer.
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), console_origin: None, max_age_secs: 600 }
    }
}

impl CorsConfig {
    pub const ANY: &'static str = "*";

    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty() || self.console_origin.is_some()
    }

    pub fn allows_any(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == Self::ANY)
    }

    /// Whether a request from `origin` may be answered cross-origin.
    pub fn allows(&self, origin: &str) -> bool {
        self.allows_any()
            || self.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
            || self.may_send_credentials(origin)
    }

    /// Only the console's origin gets `Access-Control-Allow-Credentials`.
    pub fn may_send_credentials(&self, origin: &str) -> bool {
        self.console_origin.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(origin))
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.allows_any() && self.allowed_origins.len() > 1 {
            return Err(format!(
                "server.cors.allowed_origins: \"*\" allows every origin; list it alone or list origins, not both (got {:?})",
                self.allowed_origins
            ));
        }
        for origin in self.allowed_origins.iter().filter(|o| *o != Self::ANY) {
            origin_problem(origin).map_or(Ok(()), |p| Err(format!("server.cors.allowed_origins: {p}")))?;
        }
        if let Some(origin) = &self.console_origin {
            if origin == Self::ANY {
                return Err("server.cors.console_origin: credentials go to one named origin, never \"*\"; give the console's origin, e.g. \"https://warship.example.com\"".into());
            }
            origin_problem(origin).map_or(Ok(()), |p| Err(format!("server.cors.console_origin: {p}")))?;
        }
        Ok(())
    }
}

/// What is wrong with an origin as a browser sends it: `scheme://host[:port]`, no path.
fn origin_problem(origin: &str) -> Option<String> {
    let example = "e.g. \"https://app.example.com\" or \"http://localhost:3000\"";
    let Ok(url) = url::Url::parse(origin) else {
        return Some(format!("{origin:?} is not an origin; write scheme://host[:port], {example}"));
    };
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && !origin.ends_with('/')
        && url.query().is_none()
        && url.username().is_empty();
    (!bare).then(|| {
        format!("{origin:?} is not an origin: a browser sends scheme://host[:port] with no path or slash, {example}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(allowed: &[&str], console: Option<&str>) -> CorsConfig {
        CorsConfig {
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            console_origin: console.map(Into::into),
            max_age_secs: 600,
        }
    }

    #[test]
    fn only_bare_origins_are_accepted() {
        assert_eq!(
            cors(&["https://app.example.com", "http://localhost:3000"], Some("https://console.example.com")).check(),
            Ok(())
        );
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/ui",
            "app.example.com",
            "ftp://x.example",
            "https://u@x.example",
        ] {
            let problem = cors(&[bad], None).check().unwrap_err();
            assert!(problem.contains("server.cors.allowed_origins") && problem.contains(bad), "{problem}");
        }
        assert!(cors(&["*", "https://a.example"], None).check().unwrap_err().contains("alone"));
        assert!(cors(&[], Some("*")).check().unwrap_err().contains("never \"*\""));
    }

    #[test]
    fn credentials_go_to_the_console_origin_alone() {
        let config = cors(&["https://app.example.com"], Some("https://console.example.com"));
        assert!(config.allows("https://app.example.com") && !config.may_send_credentials("https://app.example.com"));
        assert!(
            config.allows("https://console.example.com") && config.may_send_credentials("https://console.example.com")
        );
        assert!(!config.allows("https://evil.example"));
        let any = cors(&["*"], None);
        assert!(any.allows("https://evil.example") && !any.may_send_credentials("https://evil.example"));
        assert!(!CorsConfig::default().enabled());
    }
}
