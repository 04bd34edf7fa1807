//! The `template` world's exports, over the pure logic in `dockerfile.rs`.

mod dockerfile;

use warship_plugin::types::BuildContext;
use warship_plugin::{Info, Plugin, Template};

pub struct Tomcat;

impl Plugin for Tomcat {
    fn info() -> Info {
        Info::with_schema(dockerfile::settings_schema())
    }

    fn check_config(settings: &str) -> Result<(), String> {
        dockerfile::check_config(settings)
    }
}

impl Template for Tomcat {
    fn render_dockerfile(settings: &str, context: &BuildContext) -> Result<String, String> {
        dockerfile::render(settings, context)
    }
}

warship_plugin::export!(template: Tomcat);

#[cfg(test)]
mod tests {
    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<super::Tomcat>();
    }
}
