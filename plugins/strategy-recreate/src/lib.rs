//! The `strategy` world's exports, over the pure logic in `recreate.rs`.

mod recreate;

use warship_plugin::types::{RolloutState, Step};
use warship_plugin::{Info, Plugin, Strategy};

pub struct Recreate;

impl Plugin for Recreate {
    fn info() -> Info {
        Info::with_schema(recreate::settings_schema())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        recreate::check_config(settings)
    }
}

impl Strategy for Recreate {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
        recreate::next(settings, state)
    }
}

warship_plugin::export!(strategy: Recreate);

#[cfg(test)]
mod tests {
    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<super::Recreate>();
    }
}
