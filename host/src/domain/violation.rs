//! One shape for "this field is wrong, and why", shared by every check so an API
//! caller always gets the full list at once; and the name rule every name obeys.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Violation {
    /// The request field at fault, as the caller spelled it (`resources.limits.cpu`).
    pub field: String,
    /// Stable machine-readable code, e.g. `env.replicas.out_of_range`.
    pub code: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), code: code.into(), message: message.into() }
    }
}

/// Names no user may have: user images live at `<registry>/<user>/<env>`, the same
/// space as the platform's own images (`warship/tomcat:…`).
pub const RESERVED_NAMES: [&str; 1] = ["warship"];

/// DNS-1123 label that also starts with a letter (Service names need that),
/// capped at `max` so suffixes like `-canary` still fit Kubernetes' 63.
pub fn dns_label_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > max {
        return Some(format!("must be at most {max} characters (it is {})", value.len()));
    }
    let bytes = value.as_bytes();
    if !bytes[0].is_ascii_lowercase() {
        return Some("must start with a lowercase letter".into());
    }
    if !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Some("must end with a letter or digit".into());
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(format!("may hold only lowercase letters, digits and '-' (found {bad:?})"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label_problem("shop-1", 40), None);
        assert!(dns_label_problem("", 40).is_some());
        assert!(dns_label_problem("1shop", 40).is_some());
        assert!(dns_label_problem("shop-", 40).is_some());
        assert!(dns_label_problem("Shop", 40).is_some());
        assert!(dns_label_problem("sh.op", 40).is_some());
        assert!(dns_label_problem("../x", 40).is_some());
        assert!(dns_label_problem(&"a".repeat(41), 40).is_some());
    }
}
