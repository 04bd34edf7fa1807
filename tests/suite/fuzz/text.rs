//! The text parsers: Dockerfiles, image references, registry auth challenges and
//! platform.toml (with its `WARSHIP__*` overrides).

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use warship_host::config::Config;
use warship_host::image::dockerfile::{parse, Interpreter};
use warship_host::registry::{tag_problem, Challenge, ImageRef};

use super::{campaign, nasty_text};

const KEYWORDS: &[&str] = &[
    "FROM",
    "ARG",
    "ENV",
    "LABEL",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "VOLUME",
    "STOPSIGNAL",
    "CMD",
    "ENTRYPOINT",
    "COPY",
    "ADD",
    "RUN",
    "from",
    "env",
    "copy",
    "HEALTHCHECK",
    "ONBUILD",
    "#",
    "# syntax=docker/dockerfile:1",
    "",
];
const DOCKERFILE_WORDS: &[&str] = &[
    "--platform=linux/amd64",
    "--chown=1000:1000",
    "--chmod=644",
    "--from=build",
    "$HOME",
    "${A:-x}",
    "${A:+y}",
    "${A",
    "A=b",
    "A=\"b c\"",
    "[\"a\", \"b\"]",
    "[",
    "\"",
    "8080/tcp",
    "/usr/local/tomcat",
    "warship/tomcat:10.1-jdk17",
    "app.war",
    "../../etc/passwd",
    "*",
    "\\",
    "AS",
    "scratch",
];

#[test]
fn dockerfiles() {
    let line = (
        proptest::sample::select(KEYWORDS),
        nasty_text(DOCKERFILE_WORDS),
        any::<bool>(),
    )
        .prop_map(|(keyword, args, continued)| {
            format!("{keyword} {args}{}", if continued { " \\" } else { "" })
        });
    let text = (any::<bool>(), proptest::collection::vec(line, 0..16)).prop_map(|(from, lines)| {
        format!(
            "{}{}",
            if from {
                "FROM warship/tomcat:10.1-jdk17\n"
            } else {
                ""
            },
            lines.join("\n")
        )
    });
    let build_args: BTreeMap<String, String> = [("A".to_owned(), "from-build".to_owned())].into();
    campaign("dockerfile", text, |text| {
        let lines = text.lines().count().max(1);
        match parse(text, &build_args) {
            Err(e) => prop_assert!(
                e.line <= lines + 1,
                "error at line {} of {lines}: {e}",
                e.line
            ),
            Ok(dockerfile) => {
                prop_assert!(dockerfile.steps.len() <= lines);
                let mut interpreter =
                    Interpreter::new(&dockerfile, &["HOME=/root".to_owned()], "/", &build_args);
                for step in &dockerfile.steps {
                    prop_assert!(
                        (1..=lines).contains(&step.line),
                        "step at line {} of {lines}",
                        step.line
                    );
                    if let Err(e) = interpreter.action(step) {
                        prop_assert_eq!(e.line, step.line);
                        prop_assert!(!e.message.is_empty());
                    }
                }
            }
        }
        Ok(())
    });
}

/// Whether `repository` is one a registry accepts (the distribution spec's grammar).
fn registry_accepts(repository: &str) -> bool {
    !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

#[test]
fn image_references() {
    let words: &'static [&'static str] = &[
        "localhost",
        "localhost:5000",
        "registry.example.com",
        "[::1]:5000",
        "warship",
        "tomcat",
        "/",
        ":",
        "@",
        "sha256:",
        ":10.1-jdk17",
        "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "Upper",
        "a__b",
        "a..b",
        "-x",
    ];
    campaign("image-reference", nasty_text(words), |text| {
        if let Ok(image) = ImageRef::parse(text, "registry.local:5000") {
            prop_assert!(
                registry_accepts(&image.repository),
                "accepted repository {:?}",
                image.repository
            );
            if let Some(tag) = &image.tag {
                prop_assert_eq!(tag_problem(tag), None, "accepted tag {:?}", tag);
            }
            // What is accepted reads back the same, whatever the default registry.
            let again = ImageRef::parse(&image.to_string(), "elsewhere.example:1")
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, image);
        }
        Ok(())
    });
}

#[test]
fn registry_auth_challenges() {
    let value = "[a-zA-Z0-9:/._ ,=-]{0,16}";
    let params = proptest::collection::btree_map("[a-z]{1,8}", value, 0..5);
    // Well-formed challenges, each with a damaged twin: the first reads back exactly.
    let challenge = (
        "(Bearer|Basic|bearer)",
        params,
        nasty_text(&["realm=", "\"", ",", "=", " "]),
        any::<u16>(),
    );
    campaign(
        "auth-challenge",
        challenge,
        |(scheme, params, noise, at)| {
            let quoted = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
            let header = format!(
                "{scheme} {}",
                params
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", quoted(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let parsed = Challenge::parse(&header).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&parsed.scheme, &scheme.to_ascii_lowercase());
            prop_assert_eq!(&parsed.params, params);
            let cut = header
                .char_indices()
                .nth(*at as usize % (header.chars().count() + 1))
                .map_or(header.len(), |(i, _)| i);
            let damaged = format!("{}{noise}{}", &header[..cut], &header[cut..]);
            let _ = Challenge::parse(&damaged);
            Ok(())
        },
    );
}

/// Values of every TOML shape, including ones no key wants.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        nasty_text(&["127.0.0.1:0", "etcd", "embedded", "oci", "docker"])
            .prop_map(|s| format!("{s:?}")),
        Just("[]".to_owned()),
        Just("[1, \"a\"]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        Just("1e400".to_owned()),
        Just("\"\"\"\nmulti\n\"\"\"".to_owned()),
        Just("nan".to_owned()),
        Just("0x10".to_owned()),
    ]
}

#[test]
fn config_files() {
    let shipped = include_str!("../../../platform.toml");
    let lines: Vec<&str> = shipped.lines().collect();
    let keyed: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(" = "))
        .collect();
    let edit = (0..keyed.len(), toml_value(), 0u8..4);
    let overrides = proptest::collection::vec(
        (
            proptest::sample::select(
                &[
                    "SERVER__LISTEN",
                    "UPLOADS__MAX_BYTES",
                    "STORE__BACKEND",
                    "DEPLOYS__MAX_REPLICAS",
                    "X",
                    "__",
                    "PLUGINS__0__NAME",
                ][..],
            ),
            toml_value(),
        ),
        0..3,
    );
    campaign(
        "config",
        (proptest::collection::vec(edit, 0..6), overrides),
        |(edits, overrides)| {
            let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            for (which, value, how) in edits {
                let line = keyed[*which];
                let key = lines[line].split(" = ").next().unwrap_or("");
                text[line] = match how {
                    0 => format!("{key} = {value}"),
                    1 => String::new(),
                    2 => format!("{key} = {value}\n{key} = {value}"),
                    _ => format!("[{key}]"),
                };
            }
            let vars = overrides
                .iter()
                .map(|(k, v)| (format!("WARSHIP__{k}"), v.clone()));
            if let Err(e) = Config::from_toml(&text.join("\n"), Path::new("fuzz.toml"), vars) {
                let said = e.to_string();
                prop_assert!(said.len() > 10, "an unhelpful error: {said:?}");
            }
            Ok(())
        },
    );
}
