//! The Dockerfile for a WAR on a Tomcat base image. Only instructions the host's
//! daemonless builder executes without running anything (FROM, LABEL, ENV, COPY,
//! EXPOSE, USER): the image is the base plus one layer holding the WAR.
//!
//! Every value comes from users or admins, so none may break out of its place: line
//! breaks and NUL are refused everywhere, quoted values are escaped, and unquoted
//! values must be single plain words.

use serde::Deserialize;
use serde_json::json;
use warship_plugin::dockerfile::{context_file_name, one_line, quote, word};
use warship_plugin::parse_settings;
use warship_plugin::types::BuildContext;

const DEFAULT_WEBAPPS_DIR: &str = "/usr/local/tomcat/webapps";
const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Settings {
    /// Where the base image's Tomcat deploys WARs from.
    webapps_dir: String,
    /// The port Tomcat's HTTP connector listens on in the base image.
    port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self { webapps_dir: DEFAULT_WEBAPPS_DIR.into(), port: DEFAULT_PORT }
    }
}

impl Settings {
    /// "" and "{}" mean the defaults. serde's message names an unknown key.
    fn parse(text: &str) -> Result<Self, String> {
        let settings: Self = parse_settings(text)?;
        if settings.port == 0 {
            return Err("invalid settings: port must be between 1 and 65535".into());
        }
        word("webapps-dir", &settings.webapps_dir).map_err(|e| format!("invalid settings: {e}"))?;
        if !settings.webapps_dir.starts_with('/') {
            return Err(format!("invalid settings: webapps-dir {:?} must be an absolute path", settings.webapps_dir));
        }
        Ok(settings)
    }
}

pub fn settings_schema() -> String {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "webapps-dir": {
                "type": "string", "pattern": "^/[^\\s\"$\\\\]*$", "default": DEFAULT_WEBAPPS_DIR,
                "description": "the directory the base image's Tomcat deploys WARs from"
            },
            "port": {
                "type": "integer", "minimum": 1, "maximum": 65535, "default": DEFAULT_PORT,
                "description": "the port Tomcat listens on, as EXPOSEd by the image"
            }
        }
    })
    .to_string()
}

pub fn check_config(settings: &str) -> Result<(), String> {
    Settings::parse(settings).map(drop)
}

pub fn render(settings: &str, ctx: &BuildContext) -> Result<String, String> {
    let settings = Settings::parse(settings)?;
    let (env, war) = (&ctx.env, &ctx.war);
    let base_user = ctx.base_user.as_deref().filter(|u| !u.is_empty());

    let mut values = vec![
        ("user", ctx.user.as_str()),
        ("env name", env.name.as_str()),
        ("app version", ctx.app_version.as_str()),
        ("base image", ctx.base_image.as_str()),
        ("WAR app name", war.app.as_str()),
        ("WAR sha256", war.sha256.as_str()),
        ("jvm options", env.jvm_options.as_str()),
        ("WAR file", ctx.war_file.as_str()),
        ("context path", env.context_path.as_str()),
    ];
    values.extend(base_user.map(|u| ("base user", u)));
    for (what, value) in values {
        one_line(what, value)?;
    }
    word("base image", &ctx.base_image)?;
    word("WAR file", &ctx.war_file)?;
    if ctx.war_file.contains('/') || matches!(ctx.war_file.as_str(), "." | "..") {
        return Err(format!("WAR file {:?} must be a file name in the build context, without '/'", ctx.war_file));
    }
    // COPY reads a leading '[' as its JSON form (a leading '-', a flag, `word` refuses).
    if !ctx.war_file.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(format!(
            "WAR file {:?} must be a plain file name (letters, digits, '.', '_', '-'): COPY would misread it as a JSON list",
            ctx.war_file
        ));
    }
    if let Some(user) = base_user {
        word("base user", user)?;
    }
    let context = context_file_name(&env.context_path)?;

    let q = quote;
    let mut out = format!(
        "# Rendered by {} {} for {}/{} {}\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        ctx.user,
        env.name,
        ctx.app_version
    );
    out += &format!("FROM {}\n", ctx.base_image);
    out += &format!(
        "LABEL org.opencontainers.image.title={} org.opencontainers.image.version={} dev.warship.war.sha256={} \
         dev.warship.env={} dev.warship.user={}\n",
        q(&war.app),
        q(&ctx.app_version),
        q(&war.sha256),
        q(&env.name),
        q(&ctx.user)
    );
    if !env.jvm_options.is_empty() {
        out += &format!("ENV JAVA_OPTS={}\n", q(&env.jvm_options));
    }
    out += &format!("COPY {} {}/{context}.war\n", ctx.war_file, settings.webapps_dir.trim_end_matches('/'));
    out += &format!("EXPOSE {}\n", settings.port);
    // The catalog names the user by number (the host checks it), so the kubelet can
    // verify the pod's runAsNonRoot; without one the base image's own user stays.
    if let Some(user) = base_user {
        out += &format!("USER {user}\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warship_plugin::types::{EnvSpec, ResourceAmounts, Resources, ServletApi, WarFacts};

    fn context() -> BuildContext {
        let none = ResourceAmounts { cpu: None, memory: None };
        BuildContext {
            env: EnvSpec {
                name: "shop".into(),
                tomcat: "10.1".into(),
                jdk: "17".into(),
                replicas: 2,
                node_num: None,
                jvm_options: "-Xmx512m -Dgreeting=\"hi $USER\"".into(),
                env: Vec::new(),
                resources: Resources { requests: none.clone(), limits: none },
                context_path: "/".into(),
            },
            war: WarFacts {
                app: "shop".into(),
                file: "shop-1.0.war".into(),
                size: 4704,
                sha256: "0f".repeat(32),
                servlet_api: ServletApi::Jakarta,
                has_web_xml: true,
                entries: 10,
            },
            base_image: "warship/tomcat:10.1-jdk17".into(),
            base_user: Some("1000:1000".into()),
            war_file: "shop-1.0.war".into(),
            app_version: "1.0".into(),
            user: "alice".into(),
        }
    }

    #[test]
    fn root_context() {
        let sha = "0f".repeat(32);
        let want = format!(
            "# Rendered by template-tomcat 0.1.0 for alice/shop 1.0\n\
             FROM warship/tomcat:10.1-jdk17\n\
             LABEL org.opencontainers.image.title=\"shop\" org.opencontainers.image.version=\"1.0\" \
             dev.warship.war.sha256=\"{sha}\" dev.warship.env=\"shop\" dev.warship.user=\"alice\"\n\
             ENV JAVA_OPTS=\"-Xmx512m -Dgreeting=\\\"hi \\$USER\\\"\"\n\
             COPY shop-1.0.war /usr/local/tomcat/webapps/ROOT.war\n\
             EXPOSE 8080\n\
             USER 1000:1000\n"
        );
        assert_eq!(render("", &context()).unwrap(), want);
    }

    #[test]
    fn nested_context_without_jvm_options_or_user() {
        let mut ctx = context();
        ctx.env.context_path = "/shop/v2".into();
        ctx.env.jvm_options.clear();
        ctx.base_user = None;
        ctx.app_version = "2.0-rc1".into();
        let sha = "0f".repeat(32);
        let want = format!(
            "# Rendered by template-tomcat 0.1.0 for alice/shop 2.0-rc1\n\
             FROM warship/tomcat:10.1-jdk17\n\
             LABEL org.opencontainers.image.title=\"shop\" org.opencontainers.image.version=\"2.0-rc1\" \
             dev.warship.war.sha256=\"{sha}\" dev.warship.env=\"shop\" dev.warship.user=\"alice\"\n\
             COPY shop-1.0.war /opt/tomcat/webapps/shop#v2.war\n\
             EXPOSE 9090\n"
        );
        let settings = r#"{"webapps-dir": "/opt/tomcat/webapps/", "port": 9090}"#;
        assert_eq!(render(settings, &ctx).unwrap(), want);
        ctx.base_user = Some(String::new());
        assert_eq!(render(settings, &ctx).unwrap(), want);
    }

    #[test]
    fn no_instruction_runs_anything() {
        let text = render("", &context()).unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let instruction = line.split(' ').next().unwrap();
            assert!(["FROM", "LABEL", "ENV", "COPY", "EXPOSE", "USER"].contains(&instruction), "{line}");
        }
    }

    #[test]
    fn values_that_would_escape_their_line_are_refused() {
        type Spoil = fn(&mut BuildContext);
        let cases: [(&str, Spoil); 13] = [
            ("line break", |c| c.env.jvm_options = "-Xmx1g\nRUN rm -rf /".into()),
            ("line break", |c| c.user = "alice\r".into()),
            ("line break", |c| c.war.app = "a\0b".into()),
            ("line break", |c| c.app_version = "1.0\nUSER root".into()),
            ("without '/'", |c| c.war_file = "../etc/passwd".into()),
            ("one word", |c| c.war_file = "my app.war".into()),
            ("not starting with '-'", |c| c.war_file = "--.war".into()),
            ("JSON list", |c| c.war_file = "[".into()),
            ("one word", |c| c.base_image = "img AS x".into()),
            ("one word", |c| c.base_image = "'".into()),
            ("one word", |c| c.base_image = "--platform=linux/arm64".into()),
            ("one word", |c| c.base_user = Some("$USER".into())),
            ("context path", |c| c.env.context_path = "/a/../b".into()),
        ];
        for (says, spoil) in cases {
            let mut ctx = context();
            spoil(&mut ctx);
            let err = render("", &ctx).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn settings() {
        assert_eq!(check_config(""), Ok(()));
        assert_eq!(check_config("{}"), Ok(()));
        for (text, says) in [
            (r#"{"port": 0}"#, "port"),
            (r#"{"port": 70000}"#, "invalid value"),
            (r#"{"webapps-dir": "webapps"}"#, "absolute"),
            (r#"{"webapps-dir": "/my webapps"}"#, "one word"),
            (r#"{"webapps_dir": "/x"}"#, "webapps_dir"),
        ] {
            let err = check_config(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert_eq!(render(text, &context()), Err(err));
        }
    }
}
