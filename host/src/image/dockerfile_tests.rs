//! The Dockerfile subset: parsing, ARG expansion, and what is refused.

use super::*;

fn actions(text: &str, base_env: &[&str]) -> Result<(Dockerfile, Vec<Action>), DockerfileError> {
    let dockerfile = parse(text, &BTreeMap::new())?;
    let env: Vec<String> = base_env.iter().map(|s| s.to_string()).collect();
    let args = BTreeMap::new();
    let mut interpreter = Interpreter::new(&dockerfile, &env, "/usr/local/tomcat", &args);
    let actions = dockerfile.steps.iter().map(|s| interpreter.action(s)).collect::<Result<Vec<_>, _>>()?;
    Ok((dockerfile, actions))
}

#[test]
fn the_template_plugins_dockerfile() {
    let text = "# Rendered by template-tomcat 0.1.0 for alice/shop 1.0\n\
         FROM warship/tomcat:10.1-jdk17\n\
         LABEL org.opencontainers.image.title=\"shop\" org.opencontainers.image.version=\"1.0\" dev.warship.user=\"alice\"\n\
         ENV JAVA_OPTS=\"-Xmx512m -Dgreeting=\\\"hi \\$USER\\\"\"\n\
         COPY shop-1.0.war /usr/local/tomcat/webapps/ROOT.war\n\
         EXPOSE 8080\n\
         USER tomcat\n";
    let (dockerfile, actions) = actions(text, &["USER=nobody"]).unwrap();
    assert_eq!(dockerfile.base, "warship/tomcat:10.1-jdk17");
    assert_eq!(dockerfile.steps[0].line, 3);
    assert_eq!(
        actions,
        vec![
            Action::Label(vec![
                ("org.opencontainers.image.title".into(), "shop".into()),
                ("org.opencontainers.image.version".into(), "1.0".into()),
                ("dev.warship.user".into(), "alice".into()),
            ]),
            Action::Env(vec![("JAVA_OPTS".into(), "-Xmx512m -Dgreeting=\"hi $USER\"".into())]),
            Action::Copy(Copy {
                sources: vec!["shop-1.0.war".into()],
                targets: vec!["/usr/local/tomcat/webapps/ROOT.war".into()],
                uid: 0,
                gid: 0,
                mode: None
            }),
            Action::Expose(vec!["8080/tcp".into()]),
            Action::User("tomcat".into()),
        ]
    );
}

#[test]
fn args_variables_and_continuations() {
    let text = "ARG BASE=warship/tomcat\nARG TAG=10.1-jdk17\nFROM ${BASE}:$TAG AS app\nARG APP=shop\n\
                ENV HOME_DIR=/srv \\\n    GREETING='hello $APP'\nWORKDIR $HOME_DIR/${APP}\nCOPY --chown=1000:1000 --chmod=640 a.war b.war ./\n\
                ENV LEGACY the rest of the line\nCMD [\"catalina.sh\", \"run\"]\nENTRYPOINT exec java -jar x\n\
                LABEL v=${UNSET:-fallback} w=${APP:+set}\n";
    let (dockerfile, actions) = actions(text, &[]).unwrap();
    assert_eq!(dockerfile.base, "warship/tomcat:10.1-jdk17");
    assert_eq!(actions[1], Action::Env(vec![("HOME_DIR".into(), "/srv".into()), ("GREETING".into(), "hello $APP".into())]));
    assert_eq!(actions[2], Action::Workdir("/srv/shop".into()));
    assert_eq!(
        actions[3],
        Action::Copy(Copy {
            sources: vec!["a.war".into(), "b.war".into()],
            targets: vec!["/srv/shop/a.war".into(), "/srv/shop/b.war".into()],
            uid: 1000,
            gid: 1000,
            mode: Some(0o640)
        })
    );
    assert_eq!(actions[4], Action::Env(vec![("LEGACY".into(), "the rest of the line".into())]));
    assert_eq!(actions[5], Action::Cmd(vec!["catalina.sh".into(), "run".into()]));
    assert_eq!(actions[6], Action::Entrypoint(vec!["/bin/sh".into(), "-c".into(), "exec java -jar x".into()]));
    assert_eq!(actions[7], Action::Label(vec![("v".into(), "fallback".into()), ("w".into(), "set".into())]));
}

#[test]
fn copy_into_the_working_directory_and_blank_lines_in_continuations() {
    let (_, actions) = actions("FROM a\nWORKDIR /srv\nCOPY app.war .\nCOPY b.war ./sub/..\nLABEL a=1 \\\n\n  b=2\n", &[]).unwrap();
    let targets = |i: usize| match &actions[i] {
        Action::Copy(c) => c.targets.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(targets(1), ["/srv/app.war"]);
    assert_eq!(targets(2), ["/srv/b.war"]);
    assert_eq!(actions[3], Action::Label(vec![("a".into(), "1".into()), ("b".into(), "2".into())]));
}

#[test]
fn what_needs_a_container_names_its_line_and_the_docker_builder() {
    for (text, line, says) in [
        ("FROM a\nCOPY x.war /x.war\nRUN apt-get install -y curl\n", 3, "RUN is not supported"),
        ("FROM a AS build\nFROM b\n", 2, "multi-stage"),
        ("FROM a\nCOPY --from=build /x /x\n", 2, "--from"),
        ("FROM a\n\n# comment\nADD app.tar.gz /srv/\n", 4, "archive"),
        ("FROM a\nHEALTHCHECK CMD curl localhost\n", 2, "HEALTHCHECK"),
    ] {
        let err = actions(text, &[]).unwrap_err();
        assert_eq!(err.line, line, "{text}");
        assert!(err.message.contains(says), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("Dockerfile line {line}:")), "{shown}");
        assert!(shown.contains("build.builder = \"docker\""), "{shown}");
    }
}

#[test]
fn bad_lines_say_what_is_wrong() {
    for (text, says) in [
        ("", "no FROM"),
        ("ENV A=1\nFROM a\n", "before FROM"),
        ("FROM a\nEXPOSE http\n", "not a port"),
        ("FROM a\nCOPY --chown=tomcat x /x\n", "numeric"),
        ("FROM a\nCOPY onlyone\n", "source and a destination"),
        ("FROM a\nENV A=\"unclosed\n", "not closed"),
        ("FROM a\nADD https://example.com/x.war /x.war\n", "URL"),
        ("FROM a\nCOPY *.war /w/\n", "wildcards"),
        ("FROM a\nFROBNICATE\n", "unknown instruction"),
    ] {
        let err = actions(text, &[]).unwrap_err();
        assert!(err.message.contains(says), "{text:?}: {err}");
    }
}

#[test]
fn paths_resolve_without_escaping_root() {
    assert_eq!(resolve("/usr/local", "tomcat/webapps"), "/usr/local/tomcat/webapps");
    assert_eq!(resolve("/a/b", "../../../etc"), "/etc");
    assert_eq!(resolve("/a", "/b/./c/"), "/b/c");
}
