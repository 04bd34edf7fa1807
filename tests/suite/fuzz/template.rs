//! The built-in template plugin (the real component, in its sandbox) rendering
//! Dockerfiles from hostile values: random Unicode in JVM options, versions, app,
//! user, env and file names, context paths and base images. It either refuses, or
//! the Dockerfile the host's builder parses holds exactly the expected instructions,
//! each value byte for byte (no value can add an instruction or change another).

use std::collections::BTreeMap;

use proptest::prelude::*;
use warship_host::image::dockerfile::{parse, Action, Interpreter};
use warship_host::plugins::{types, PluginFailure};

use super::{campaign, nasty_text};
use crate::support;

const WORDS: &[&str] = &[
    "-Xmx512m",
    "-Dgreeting=\"hi $USER\"",
    "ENV",
    "RUN",
    "ROOT",
    "shop",
    "1.0",
    "/shop/v2",
    "..",
    "#",
    "tomcat",
    "1000:1000",
];

#[derive(Debug, Clone)]
struct Values {
    jvm_options: String,
    app_version: String,
    app: String,
    user: String,
    env_name: String,
    context_path: String,
    war_file: String,
    base_image: String,
    base_user: Option<String>,
}

fn values() -> impl Strategy<Value = Values> {
    let text = || nasty_text(WORDS);
    let plain = |valid: &'static str| prop_oneof![3 => valid.prop_map(String::from), 1 => nasty_text(WORDS)];
    (
        text(),
        plain("[0-9][0-9a-z.-]{0,8}"),
        plain("[a-z][a-z0-9-]{0,8}"),
        plain("[a-z][a-z0-9]{0,8}"),
        plain("[a-z][a-z0-9-]{0,8}"),
        prop_oneof![
            "(/[a-z0-9]{1,5}){0,3}".prop_map(|p| if p.is_empty() { "/".to_owned() } else { p }),
            text()
        ],
        plain("[a-z0-9-]{1,8}\\.war"),
        plain("127\\.0\\.0\\.1:5000/warship/tomcat:10\\.1-jdk17"),
        proptest::option::of(plain("(tomcat|1000:1000)")),
    )
        .prop_map(
            |(
                jvm_options,
                app_version,
                app,
                user,
                env_name,
                context_path,
                war_file,
                base_image,
                base_user,
            )| Values {
                jvm_options,
                app_version,
                app,
                user,
                env_name,
                context_path,
                war_file,
                base_image,
                base_user,
            },
        )
}

fn context(v: &Values) -> types::BuildContext {
    let none = || types::ResourceAmounts {
        cpu: None,
        memory: None,
    };
    types::BuildContext {
        env: types::EnvSpec {
            name: v.env_name.clone(),
            tomcat: "10.1".into(),
            jdk: "17".into(),
            replicas: 1,
            node_num: None,
            jvm_options: v.jvm_options.clone(),
            env: vec![],
            resources: types::Resources {
                requests: none(),
                limits: none(),
            },
            context_path: v.context_path.clone(),
        },
        war: types::WarFacts {
            app: v.app.clone(),
            file: v.war_file.clone(),
            size: 1,
            sha256: "ab".repeat(32),
            servlet_api: types::ServletApi::Jakarta,
            has_web_xml: true,
            entries: 1,
        },
        base_image: v.base_image.clone(),
        base_user: v.base_user.clone(),
        war_file: v.war_file.clone(),
        app_version: v.app_version.clone(),
        user: v.user.clone(),
    }
}

#[test]
fn template_rendering() {
    let plugins = support::builtin_plugins();
    let template = plugins.template().expect("the built-in template").clone();
    let no_args = BTreeMap::new();
    let sha256 = "ab".repeat(32);
    campaign("template", values(), |v| {
        let text = match template.render_dockerfile(&context(v)) {
            Ok(text) => text,
            Err(e) => {
                // A refusal in words is fine; a trap or a deadline is the template's bug.
                prop_assert!(matches!(e.failure, PluginFailure::Refused(_)), "{e}");
                return Ok(());
            }
        };
        let dockerfile =
            parse(&text, &no_args).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&dockerfile.base, &v.base_image);
        let user = v.base_user.as_deref().filter(|u| !u.is_empty());
        let mut expected = vec!["LABEL"];
        if !v.jvm_options.is_empty() {
            expected.push("ENV");
        }
        expected.extend(["COPY", "EXPOSE"]);
        if user.is_some() {
            expected.push("USER");
        }
        let keywords: Vec<&str> = dockerfile
            .steps
            .iter()
            .map(|s| s.keyword.as_str())
            .collect();
        prop_assert_eq!(&keywords, &expected, "{}", text);

        let mut interpreter = Interpreter::new(&dockerfile, &[], "/", &no_args);
        for step in &dockerfile.steps {
            let action = interpreter
                .action(step)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            match action {
                Action::Label(pairs) => {
                    let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
                    prop_assert_eq!(
                        values,
                        vec![
                            v.app.as_str(),
                            &v.app_version,
                            &sha256,
                            &v.env_name,
                            &v.user
                        ]
                    );
                }
                Action::Env(pairs) => {
                    prop_assert_eq!(pairs, vec![("JAVA_OPTS".to_owned(), v.jvm_options.clone())])
                }
                Action::Copy(copy) => {
                    prop_assert_eq!(&copy.sources, &vec![v.war_file.clone()]);
                    let [target] = copy.targets.as_slice() else {
                        return Err(TestCaseError::fail(format!("{:?}", copy.targets)));
                    };
                    let file = target
                        .strip_prefix("/usr/local/tomcat/webapps/")
                        .unwrap_or("");
                    prop_assert!(
                        file.ends_with(".war") && !file.contains('/') && file.len() > 4,
                        "copied to {}",
                        target
                    );
                }
                Action::Expose(ports) => prop_assert_eq!(ports, vec!["8080/tcp".to_owned()]),
                Action::User(who) => prop_assert_eq!(Some(who.as_str()), user),
                other => return Err(TestCaseError::fail(format!("unexpected {other:?}\n{text}"))),
            }
        }
        Ok(())
    });
}
