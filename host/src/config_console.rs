//! `[console]`: the web console's sessions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How long a console session lasts after sign-in, however it is used: then the
    /// token is asked again.
    pub session_hours: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        // A working day, and then some.
        Self { session_hours: 12 }
    }
}

impl ConsoleConfig {
    /// A month at most: a session outliving that is a token by another name.
    const MOST_HOURS: u64 = 720;

    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_hours * 3600)
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if !(1..=Self::MOST_HOURS).contains(&self.session_hours) {
            return Err(format!(
                "console.session_hours must be 1 to {} (got {}): the hours a console session lasts after sign-in",
                Self::MOST_HOURS,
                self.session_hours
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_last_between_an_hour_and_a_month() {
        assert_eq!(ConsoleConfig::default().session_lifetime(), Duration::from_secs(12 * 3600));
        assert_eq!(ConsoleConfig { session_hours: 1 }.check(), Ok(()));
        assert!(ConsoleConfig { session_hours: 0 }.check().unwrap_err().contains("console.session_hours"));
        assert!(ConsoleConfig { session_hours: 721 }.check().is_err());
    }
}
