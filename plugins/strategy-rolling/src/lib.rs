//! The `strategy` world's exports, over the pure logic in `rolling.rs`.

mod rolling;

use warship_plugin::types::{RolloutState, Step};
use warship_plugin::{Info, Plugin, Strategy};

pub struct Rolling;

impl Plugin for Rolling {
    fn info() -> Info {
        Info::with_schema(rolling::settings_schema())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        rolling::check_config(settings)
    }
}

impl Strategy for Rolling {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
        rolling::next(settings, state)
    }
}

warship_plugin::export!(strategy: Rolling);

#[cfg(test)]
mod tests {
    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<super::Rolling>();
    }
}
