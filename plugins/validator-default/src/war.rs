//! What makes a WAR unfit for an env, caught before an image is built rather than when
//! Tomcat fails to start it.

use crate::settings::Settings;
use crate::violation;
use warship_plugin::types::{EnvSpec, ServletApi, Violation, WarFacts};

const MIB: f64 = (1u64 << 20) as f64;

pub fn violations(settings: &Settings, env: &EnvSpec, war: &WarFacts) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(v) = servlet_api_problem(env, war) {
        out.push(v);
    }
    if war.size > settings.max_war_bytes {
        out.push(violation("war", "war.too_large", too_large_message(war, settings.max_war_bytes)));
    }
    out
}

/// "10.1" → 10. `None` when the version does not start with a number; then nothing is
/// known about its servlet namespace and no rule applies.
fn tomcat_major(tomcat: &str) -> Option<u32> {
    let digits = tomcat.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// Tomcat 10 implements Jakarta EE 9, which renamed `javax.servlet` to
/// `jakarta.servlet`; a WAR built for the other namespace loads no servlet at all.
fn servlet_api_problem(env: &EnvSpec, war: &WarFacts) -> Option<Violation> {
    let major = tomcat_major(&env.tomcat)?;
    let (file, tomcat) = (&war.file, &env.tomcat);
    let uses = match war.servlet_api {
        ServletApi::Javax => "uses the javax.servlet API",
        // What Tomcat loads needs both: no Tomcat line implements both namespaces.
        ServletApi::Mixed => {
            return Some(violation(
                "war",
                "war.servlet_api.mixed",
                format!(
                    "{file} needs both the javax.servlet and the jakarta.servlet API (the WAR's servlet_api_evidence \
                     names what Tomcat would load), but Tomcat {tomcat}, like every Tomcat, implements only one: \
                     Tomcat 9 javax.*, Tomcat 10 and newer jakarta.*, so this WAR would not start cleanly anywhere. \
                     Build all of it against one API, for example by migrating the javax.* parts with Apache's \
                     Tomcat migration tool for Jakarta EE."
                ),
            ));
        }
        ServletApi::Jakarta if major <= 9 => {
            return Some(violation(
                "war",
                "war.servlet_api.jakarta_on_javax_tomcat",
                format!(
                    "{file} uses the jakarta.servlet API, but Tomcat {tomcat} implements javax.servlet: only \
                     Tomcat 10 and newer follow Jakarta EE 9, which renamed javax.* to jakarta.*, so this WAR \
                     would fail to start. Deploy it to an env with Tomcat 10.1 or newer, or build it against \
                     the javax.servlet API (Java EE 8)."
                ),
            ));
        }
        ServletApi::Jakarta | ServletApi::Unknown => return None,
    };
    (major >= 10).then(|| {
        violation(
            "war",
            "war.servlet_api.javax_on_jakarta_tomcat",
            format!(
                "{file} {uses}, but Tomcat {tomcat} implements jakarta.servlet: Tomcat 10 and newer follow \
                 Jakarta EE 9, which renamed javax.* to jakarta.*, so this WAR would fail to start. Deploy it \
                 to an env with Tomcat 9, or migrate its code to jakarta.* (for example with Apache's Tomcat \
                 migration tool for Jakarta EE)."
            ),
        )
    })
}

fn too_large_message(war: &WarFacts, max: u64) -> String {
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / MIB);
    let (size, limit) = (mib(war.size), mib(max));
    // Sizes a few bytes apart round alike; then only the bytes tell them apart.
    let (size, limit) = if size == limit {
        (format!("{size} ({} bytes)", war.size), format!("{limit} ({max} bytes)"))
    } else {
        (size, limit)
    };
    format!(
        "{} is {size}, more than the {limit} allowed; ask an admin to raise the validator plugin's \
         max-war-bytes setting, or make the WAR smaller",
        war.file
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{env, war};

    fn check(tomcat: &str, api: ServletApi) -> Vec<String> {
        let mut e = env();
        e.tomcat = tomcat.into();
        let mut w = war();
        w.servlet_api = api;
        violations(&Settings::default(), &e, &w).into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn servlet_namespace_must_match_the_tomcat() {
        let javax_on_jakarta = ["war.servlet_api.javax_on_jakarta_tomcat"];
        let jakarta_on_javax = ["war.servlet_api.jakarta_on_javax_tomcat"];
        assert_eq!(check("10.1", ServletApi::Javax), javax_on_jakarta);
        assert_eq!(check("11.0", ServletApi::Mixed), ["war.servlet_api.mixed"]);
        assert_eq!(check("9.0", ServletApi::Mixed), ["war.servlet_api.mixed"]);
        assert_eq!(check("10", ServletApi::Javax), javax_on_jakarta);
        assert_eq!(check("9.0", ServletApi::Jakarta), jakarta_on_javax);
        assert_eq!(check("8.5", ServletApi::Jakarta), jakarta_on_javax);
        for ok in [
            ("9.0", ServletApi::Javax),
            ("10.1", ServletApi::Jakarta),
            ("10.1", ServletApi::Unknown),
            ("9.0", ServletApi::Unknown),
            ("latest", ServletApi::Javax),
        ] {
            assert_eq!(check(ok.0, ok.1), Vec::<String>::new(), "{ok:?}");
        }
    }

    #[test]
    fn messages_say_why_and_what_to_do() {
        let mut e = env();
        let mut w = war();
        w.servlet_api = ServletApi::Javax;
        let v = servlet_api_problem(&e, &w).unwrap();
        assert_eq!(v.field, "war");
        for part in
            ["shop-1.0.war uses the javax.servlet API", "Tomcat 10.1", "jakarta.*", "Tomcat 9", "migration tool"]
        {
            assert!(v.message.contains(part), "{part}: {}", v.message);
        }
        e.tomcat = "9.0".into();
        w.servlet_api = ServletApi::Jakarta;
        let v = servlet_api_problem(&e, &w).unwrap();
        assert!(v.message.contains("Tomcat 10.1 or newer"), "{}", v.message);
    }

    #[test]
    fn too_large_names_both_sizes_and_the_setting() {
        let settings = Settings { max_war_bytes: 100 << 20, ..Settings::default() };
        let mut w = war();
        w.size = 150 << 20;
        let v = violations(&settings, &env(), &w);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].field.as_str(), v[0].code.as_str()), ("war", "war.too_large"));
        assert_eq!(
            v[0].message,
            "shop-1.0.war is 150.0 MiB, more than the 100.0 MiB allowed; ask an admin to raise the validator \
             plugin's max-war-bytes setting, or make the WAR smaller"
        );
        w.size = (100 << 20) + 1;
        let v = violations(&settings, &env(), &w);
        assert!(v[0].message.contains("100.0 MiB (104857601 bytes), more than the 100.0 MiB (104857600 bytes)"));
        w.size = 100 << 20;
        assert_eq!(violations(&settings, &env(), &w), vec![]);
    }

    #[test]
    fn tomcat_majors() {
        assert_eq!(tomcat_major("10.1"), Some(10));
        assert_eq!(tomcat_major("9"), Some(9));
        assert_eq!(tomcat_major("11.0.2"), Some(11));
        assert_eq!(tomcat_major("v10"), None);
        assert_eq!(tomcat_major(""), None);
    }
}
