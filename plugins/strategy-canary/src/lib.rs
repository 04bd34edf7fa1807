//! The `strategy` world's exports, over the pure logic in `canary.rs`.

mod canary;

use warship_plugin::types::{RolloutState, Step};
use warship_plugin::{Info, Plugin, Strategy};

pub struct Canary;

impl Plugin for Canary {
    fn info() -> Info {
        Info::with_schema(canary::settings_schema())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        canary::check_config(settings)
    }
}

impl Strategy for Canary {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
        canary::next(settings, state)
    }
}

warship_plugin::export!(strategy: Canary);

#[cfg(test)]
mod tests {
    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<super::Canary>();
    }
}
