//! The `strategy` world's exports, over the pure logic in `bluegreen.rs`.

mod bluegreen;

use warship_plugin::types::{RolloutState, Step};
use warship_plugin::{Info, Plugin, Strategy};

pub struct BlueGreen;

impl Plugin for BlueGreen {
    fn info() -> Info {
        Info::with_schema(bluegreen::settings_schema())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        bluegreen::check_config(settings)
    }
}

impl Strategy for BlueGreen {
    fn next(settings: &str, state: &RolloutState) -> Result<Step, String> {
        bluegreen::next(settings, state)
    }
}

warship_plugin::export!(strategy: BlueGreen);

#[cfg(test)]
mod tests {
    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<super::BlueGreen>();
    }
}
