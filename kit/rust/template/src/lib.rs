//! {{name}}: a warship Dockerfile template.
//!
//! It drops the WAR into the Tomcat base image the env's (tomcat, jdk) pair names in the
//! admin's catalog. The host's builder executes no RUN: only instructions that run
//! nothing (FROM, LABEL, ENV, COPY, EXPOSE, USER), so the image is the base plus one
//! layer holding the WAR. Every value comes from users or admins, so none may break out
//! of its place: `warship_plugin::dockerfile` refuses line breaks, quotes values and
//! checks the unquoted ones are single words.
//!
//! The contract is the `template` world of `vendor/plugin-sdk/wit/plugin.wit`. The
//! plugin has no clock, files, network or memory between calls: everything it knows is
//! in its arguments.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::dockerfile::{context_file_name, one_line, quote, word};
use warship_plugin::types::BuildContext;
use warship_plugin::{parse_settings, Info, Plugin, Template};

const DEFAULT_WEBAPPS_DIR: &str = "/usr/local/tomcat/webapps";

/// The settings an admin may give in platform.toml; "" or "{}" means these defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    /// Where the base image's Tomcat deploys WARs from.
    webapps_dir: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self { webapps_dir: DEFAULT_WEBAPPS_DIR.into() }
    }
}

impl Settings {
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        word("webapps-dir", &settings.webapps_dir).map_err(|e| format!("invalid settings: {e}"))?;
        if !settings.webapps_dir.starts_with('/') {
            return Err(format!("invalid settings: webapps-dir {:?} must be an absolute path", settings.webapps_dir));
        }
        Ok(settings)
    }
}

pub struct Dockerfile;

impl Plugin for Dockerfile {
    fn info() -> Info {
        Info::with_schema(
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "webapps-dir": {
                        "type": "string", "pattern": "^/[^\\s\"'$\\\\]*$", "default": DEFAULT_WEBAPPS_DIR,
                        "description": "the directory the base image's Tomcat deploys WARs from"
                    }
                }
            })
            .to_string(),
        )
    }

    fn check_config(settings: &str) -> Result<(), String> {
        Settings::parse(settings).map(drop)
    }
}

impl Template for Dockerfile {
    fn render_dockerfile(settings: &str, ctx: &BuildContext) -> Result<String, String> {
        let settings = Settings::parse(settings)?;
        let (env, war) = (&ctx.env, &ctx.war);
        for (what, value) in [
            ("app version", ctx.app_version.as_str()),
            ("WAR app name", war.app.as_str()),
            ("jvm options", env.jvm_options.as_str()),
        ] {
            one_line(what, value)?;
        }
        word("base image", &ctx.base_image)?;
        // A plain file name: COPY would misread '[' as a JSON list, and '/' leaves the context.
        if !ctx.war_file.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || ctx.war_file.starts_with('.')
        {
            return Err(format!(
                "WAR file {:?} must be a plain file name (letters, digits, '.', '_', '-')",
                ctx.war_file
            ));
        }
        word("WAR file", &ctx.war_file)?;
        let base_user = ctx.base_user.as_deref().filter(|u| !u.is_empty());
        if let Some(user) = base_user {
            word("base user", user)?;
        }
        let context = context_file_name(&env.context_path)?;

        let mut out = format!("FROM {}\n", ctx.base_image);
        out += &format!(
            "LABEL org.opencontainers.image.title={} org.opencontainers.image.version={}\n",
            quote(&war.app),
            quote(&ctx.app_version)
        );
        if !env.jvm_options.is_empty() {
            out += &format!("ENV JAVA_OPTS={}\n", quote(&env.jvm_options));
        }
        out += &format!("COPY {} {}/{context}.war\n", ctx.war_file, settings.webapps_dir.trim_end_matches('/'));
        // Without a catalog user the base image's own user stays.
        if let Some(user) = base_user {
            out += &format!("USER {user}\n");
        }
        Ok(out)
    }
}

warship_plugin::export!(template: Dockerfile);

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::types::{EnvSpec, ResourceAmounts, Resources, ServletApi, WarFacts};

    fn context() -> BuildContext {
        let none = ResourceAmounts { cpu: None, memory: None };
        let env = EnvSpec {
            name: "shop".into(),
            tomcat: "10.1".into(),
            jdk: "17".into(),
            replicas: 2,
            node_num: None,
            jvm_options: "-Xmx512m".into(),
            env: Vec::new(),
            resources: Resources { requests: none.clone(), limits: none },
            context_path: "/shop".into(),
        };
        let war = WarFacts {
            app: "shop".into(),
            file: "shop-1.0.war".into(),
            size: 4704,
            sha256: "0f".repeat(32),
            servlet_api: ServletApi::Jakarta,
            has_web_xml: true,
            entries: 10,
        };
        BuildContext {
            env,
            war,
            base_image: "warship/tomcat:10.1-jdk17".into(),
            base_user: Some("1000:1000".into()),
            war_file: "shop-1.0.war".into(),
            app_version: "1.0".into(),
            user: "alice".into(),
        }
    }

    #[test]
    fn describes_itself_with_a_schema_whose_defaults_it_accepts() {
        warship_plugin::testing::assert_schema_defaults_accepted::<Dockerfile>();
    }

    #[test]
    fn the_war_goes_into_the_base_image() {
        assert_eq!(
            Dockerfile::render_dockerfile("", &context()).unwrap(),
            "FROM warship/tomcat:10.1-jdk17\n\
             LABEL org.opencontainers.image.title=\"shop\" org.opencontainers.image.version=\"1.0\"\n\
             ENV JAVA_OPTS=\"-Xmx512m\"\n\
             COPY shop-1.0.war /usr/local/tomcat/webapps/shop.war\n\
             USER 1000:1000\n"
        );
    }

    #[test]
    fn values_that_would_escape_their_line_are_refused() {
        type Spoil = fn(&mut BuildContext);
        let cases: [(&str, Spoil); 5] = [
            ("line break", |c| c.env.jvm_options = "-Xmx1g\nRUN rm -rf /".into()),
            ("line break", |c| c.app_version = "1.0\nUSER root".into()),
            ("plain file name", |c| c.war_file = "../etc/passwd".into()),
            ("one word", |c| c.base_image = "img AS x".into()),
            ("context path", |c| c.env.context_path = "/a/../b".into()),
        ];
        for (says, spoil) in cases {
            let mut ctx = context();
            spoil(&mut ctx);
            let err = Dockerfile::render_dockerfile("", &ctx).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (settings, says) in
            [(r#"{"webapps-dir": "webapps"}"#, "absolute"), (r#"{"webapps_dir": "/x"}"#, "webapps_dir")]
        {
            let err = Dockerfile::check_config(settings).unwrap_err();
            assert!(err.contains(says), "{settings}: {err}");
        }
    }
}
