//! The env rules, ported from `validate()` in `host/src/envs.rs` (commit f84caae):
//! same rules, same order, same fields, codes and messages, so users see what they
//! always saw. Field names keep the host's JSON spelling (`jvm_options`,
//! `context_path`).
//!
//! Two additions, for inputs the host's own types could not hold: `NodeNum` as the
//! original API sent it (a string), and an env var set twice (the host kept vars in a
//! map; the WIT passes a list).

use std::collections::BTreeSet;

use crate::settings::Settings;
use crate::violation;
use warship_plugin::types::{EnvSpec, Platform, ResourceAmounts, Resources, Violation};

/// Longest env name: leaves room for suffixes like `-canary-` in Kubernetes names.
const ENV_NAME_MAX: usize = 40;

/// JAVA_OPTS and CATALINA_OPTS are built from `jvm_options`; setting them twice would
/// make one silently win.
const RESERVED_ENV: [&str; 2] = ["JAVA_OPTS", "CATALINA_OPTS"];

/// Every rule at once; empty means valid.
pub fn violations(settings: &Settings, platform: &Platform, spec: &EnvSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(problem) = dns_label_problem(&spec.name, ENV_NAME_MAX) {
        out.push(violation("name", "env.name.invalid", format!("env name {:?} {problem}", spec.name)));
    }
    check_catalog(spec, platform, &mut out);
    check_replicas(spec, settings.max_replicas, &mut out);
    if spec.jvm_options.len() > 4096 || spec.jvm_options.contains(['\n', '\r', '\0']) {
        out.push(violation(
            "jvm_options",
            "env.jvm_options.invalid",
            "jvm_options must be one line of at most 4096 characters",
        ));
    }
    check_env_vars(&spec.env, &mut out);
    check_resources(&spec.resources, &mut out);
    if let Some(problem) = context_path_problem(&spec.context_path) {
        out.push(violation("context_path", "env.context_path.invalid", problem));
    }
    out
}

/// DNS-1123 label that also starts with a letter (Service names need that), capped at
/// `max` so suffixes like `-canary` still fit Kubernetes' 63.
fn dns_label_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > max {
        return Some(format!("must be at most {max} characters (it is {})", value.len()));
    }
    let bytes = value.as_bytes();
    if !bytes[0].is_ascii_lowercase() {
        return Some("must start with a lowercase letter".into());
    }
    if !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Some("must end with a letter or digit".into());
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(format!("may hold only lowercase letters, digits and '-' (found {bad:?})"));
    }
    None
}

fn check_catalog(spec: &EnvSpec, platform: &Platform, out: &mut Vec<Violation>) {
    let tomcats: BTreeSet<&str> = platform.catalog.iter().map(|c| c.tomcat.as_str()).collect();
    if !tomcats.contains(spec.tomcat.as_str()) {
        out.push(violation(
            "tomcat",
            "env.tomcat.unknown",
            format!("tomcat {:?} is not in the catalog; choose one of: {}", spec.tomcat, join(tomcats)),
        ));
        return;
    }
    if !platform.catalog.iter().any(|c| c.tomcat == spec.tomcat && c.jdk == spec.jdk) {
        let jdks = platform.catalog.iter().filter(|c| c.tomcat == spec.tomcat).map(|c| c.jdk.as_str());
        out.push(violation(
            "jdk",
            "env.jdk.unknown",
            format!("jdk {:?} is not offered with tomcat {}; choose one of: {}", spec.jdk, spec.tomcat, join(jdks)),
        ));
    }
}

fn join<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// `replicas` carries the parsed `NodeNum` when the original API sent one; a `NodeNum`
/// that is no number at all is the problem to report then, not the range.
fn check_replicas(spec: &EnvSpec, max: u32, out: &mut Vec<Violation>) {
    if let Some(text) = &spec.node_num {
        if text.trim().parse::<u32>().is_err() {
            out.push(violation(
                "replicas",
                "env.replicas.not_a_number",
                format!("NodeNum must be a whole number like \"2\" (got {text:?})"),
            ));
            return;
        }
    }
    if spec.replicas == 0 || spec.replicas > max {
        out.push(violation(
            "replicas",
            "env.replicas.out_of_range",
            format!("replicas must be between 1 and {max} (got {})", spec.replicas),
        ));
    }
}

fn check_env_vars(vars: &[(String, String)], out: &mut Vec<Violation>) {
    if vars.len() > 100 {
        out.push(violation("env", "env.env.too_many", "at most 100 environment variables"));
    }
    // The host walked a sorted map; sorting keeps its order of violations.
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for group in sorted.chunk_by(|a, b| a.0 == b.0) {
        let key = &group[0].0;
        let field = format!("env.{key}");
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            out.push(violation(
                field,
                "env.env.bad_name",
                format!("{key:?} is not a valid variable name: use letters, digits and '_', not starting with a digit"),
            ));
            continue;
        }
        if RESERVED_ENV.contains(&key.as_str()) {
            out.push(violation(
                field,
                "env.env.reserved",
                format!("{key} is set from jvm_options; put JVM flags there"),
            ));
            continue;
        }
        if group.iter().any(|(_, value)| value.len() > 32 * 1024) {
            out.push(violation(field.clone(), "env.env.too_long", "values are limited to 32 KiB"));
        }
        if group.len() > 1 {
            out.push(violation(
                field,
                "env.env.duplicate",
                format!("{key} is set {} times; only one value would take effect, so set it once", group.len()),
            ));
        }
    }
}

fn check_resources(resources: &Resources, out: &mut Vec<Violation>) {
    let mut amount = |kind: &str, which: &str, value: &Option<String>, parse: fn(&str) -> Option<u128>| {
        let v = value.as_deref()?;
        let parsed = parse(v);
        if parsed.is_none() {
            let example = if which == "cpu" { "500m, 1 or 1.5" } else { "512Mi or 2Gi" };
            out.push(violation(
                format!("resources.{kind}.{which}"),
                format!("env.resources.{which}.invalid"),
                format!("{v:?} is not a {which} quantity; write it like {example}"),
            ));
        }
        parsed
    };
    let Resources { requests, limits } = resources;
    let ResourceAmounts { cpu: req_cpu, memory: req_mem } = requests;
    let ResourceAmounts { cpu: lim_cpu, memory: lim_mem } = limits;
    let cpu_req = amount("requests", "cpu", req_cpu, parse_millicpu);
    let cpu_lim = amount("limits", "cpu", lim_cpu, parse_millicpu);
    let mem_req = amount("requests", "memory", req_mem, parse_memory);
    let mem_lim = amount("limits", "memory", lim_mem, parse_memory);
    for (which, req, lim) in [("cpu", cpu_req, cpu_lim), ("memory", mem_req, mem_lim)] {
        if let (Some(req), Some(lim)) = (req, lim) {
            if req > lim {
                out.push(violation(
                    format!("resources.requests.{which}"),
                    format!("env.resources.{which}.request_above_limit"),
                    format!("the {which} request is above its limit; lower the request or raise the limit"),
                ));
            }
        }
    }
}

/// `500m` → 500, `2` → 2000, `0.5` → 500.
fn parse_millicpu(v: &str) -> Option<u128> {
    if let Some(m) = v.strip_suffix('m') {
        return m.parse::<u128>().ok().filter(|n| *n > 0);
    }
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty() || frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac_milli = format!("{frac:0<3}").parse::<u128>().ok()?;
    // Checked: the host's unchecked `* 1000` could overflow on a 39-digit number.
    let milli = whole.parse::<u128>().ok()?.checked_mul(1000)?.checked_add(frac_milli)?;
    (milli > 0).then_some(milli)
}

/// `512Mi` → bytes; plain numbers are bytes.
fn parse_memory(v: &str) -> Option<u128> {
    const UNITS: [(&str, u128); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (digits, factor) =
        UNITS.iter().find_map(|(suffix, factor)| v.strip_suffix(suffix).map(|d| (d, *factor))).unwrap_or((v, 1));
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Checked, unlike the host's `n * factor`, which could overflow on `<39 digits>Ti`.
    digits.parse::<u128>().ok().and_then(|n| n.checked_mul(factor)).filter(|n| *n > 0)
}

fn context_path_problem(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some(format!("context_path {path:?} must start with '/' (use \"/\" to serve at the root)"));
    };
    let bad_segment = rest.split('/').any(|seg| {
        seg.is_empty()
            || seg == "."
            || seg == ".."
            || !seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    if bad_segment || path.len() > 200 {
        return Some(format!(
            "context_path {path:?} must be '/' or '/'-separated segments of letters, digits, '.', '_' and '-'"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{env, platform};

    fn check(spec: &EnvSpec) -> Vec<Violation> {
        violations(&Settings::default(), &platform(), spec)
    }

    fn set(spec: &mut EnvSpec, key: &str, value: &str) {
        spec.env.push((key.into(), value.into()));
    }

    #[test]
    fn a_minimal_spec_is_valid() {
        assert_eq!(check(&env()), vec![]);
    }

    #[test]
    fn every_bad_field_is_reported_at_once_in_the_hosts_order() {
        let mut s = env();
        s.name = "Bad_Name".into();
        s.jdk = "8".into();
        s.replicas = 0;
        s.context_path = "shop".into();
        // Unsorted on purpose: the order of violations follows the names.
        set(&mut s, "JAVA_OPTS", "v");
        set(&mut s, "1X", "v");
        s.resources.requests.cpu = Some("2".into());
        s.resources.limits.cpu = Some("500m".into());
        s.resources.limits.memory = Some("lots".into());
        let fields: Vec<_> = check(&s).into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "jdk",
                "replicas",
                "env.1X",
                "env.JAVA_OPTS",
                "resources.limits.memory",
                "resources.requests.cpu",
                "context_path"
            ]
        );
    }

    #[test]
    fn codes_and_messages_match_the_host() {
        let mut s = env();
        s.name = "1shop".into();
        s.replicas = 21;
        s.jvm_options = "-Xmx1g\n-Xms1g".into();
        set(&mut s, "CATALINA_OPTS", "x");
        set(&mut s, "BIG", &"x".repeat(32 * 1024 + 1));
        s.resources.requests.memory = Some("2Gi".into());
        s.resources.limits.memory = Some("1Gi".into());
        s.resources.requests.cpu = Some("1.2345".into());
        let got: Vec<_> = check(&s).into_iter().map(|v| (v.field, v.code, v.message)).collect();
        let want = [
            ("name", "env.name.invalid", "env name \"1shop\" must start with a lowercase letter"),
            ("replicas", "env.replicas.out_of_range", "replicas must be between 1 and 20 (got 21)"),
            ("jvm_options", "env.jvm_options.invalid", "jvm_options must be one line of at most 4096 characters"),
            ("env.BIG", "env.env.too_long", "values are limited to 32 KiB"),
            ("env.CATALINA_OPTS", "env.env.reserved", "CATALINA_OPTS is set from jvm_options; put JVM flags there"),
            (
                "resources.requests.cpu",
                "env.resources.cpu.invalid",
                "\"1.2345\" is not a cpu quantity; write it like 500m, 1 or 1.5",
            ),
            (
                "resources.requests.memory",
                "env.resources.memory.request_above_limit",
                "the memory request is above its limit; lower the request or raise the limit",
            ),
        ];
        let want: Vec<_> = want.iter().map(|(f, c, m)| (f.to_string(), c.to_string(), m.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_tomcat_lists_the_catalog_sorted() {
        let mut s = env();
        s.tomcat = "7".into();
        let v = check(&s);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].message, "tomcat \"7\" is not in the catalog; choose one of: 10.1, 9.0");
    }

    #[test]
    fn unknown_jdk_lists_that_tomcats_jdks() {
        let mut s = env();
        s.jdk = "8".into();
        let v = check(&s);
        assert_eq!(v[0].message, "jdk \"8\" is not offered with tomcat 10.1; choose one of: 21, 17");
    }

    #[test]
    fn node_num_must_be_a_number() {
        let mut s = env();
        s.node_num = Some("two".into());
        s.replicas = 0;
        let v = check(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].field.as_str(), v[0].code.as_str()), ("replicas", "env.replicas.not_a_number"));
        assert_eq!(v[0].message, "NodeNum must be a whole number like \"2\" (got \"two\")");
        for bad in ["", "-1", "1.5", "99999999999"] {
            s.node_num = Some(bad.into());
            assert_eq!(check(&s)[0].code, "env.replicas.not_a_number", "{bad:?}");
        }

        s.node_num = Some(" 3 ".into());
        s.replicas = 3;
        assert_eq!(check(&s), vec![]);
        s.node_num = Some("30".into());
        s.replicas = 30;
        assert_eq!(check(&s)[0].code, "env.replicas.out_of_range");
    }

    #[test]
    fn env_vars() {
        let mut s = env();
        for i in 0..101 {
            set(&mut s, &format!("V{i}"), "x");
        }
        assert_eq!(check(&s)[0].code, "env.env.too_many");

        let mut s = env();
        set(&mut s, "_OK_1", "x");
        set(&mut s, "A", "1");
        set(&mut s, "A", "2");
        set(&mut s, "", "x");
        set(&mut s, "A-B", "x");
        let got: Vec<_> = check(&s).into_iter().map(|v| (v.field, v.code)).collect();
        let want = [("env.", "env.env.bad_name"), ("env.A", "env.env.duplicate"), ("env.A-B", "env.env.bad_name")];
        assert_eq!(got, want.map(|(f, c)| (f.to_string(), c.to_string())));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_millicpu("500m"), Some(500));
        assert_eq!(parse_millicpu("1.5"), Some(1500));
        assert_eq!(parse_millicpu("2"), Some(2000));
        assert_eq!(parse_millicpu("0"), None);
        assert_eq!(parse_millicpu("1.2345"), None);
        assert_eq!(parse_millicpu("abc"), None);
        assert_eq!(parse_millicpu(&u128::MAX.to_string()), None);
        assert_eq!(parse_memory("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("Mi"), None);
        assert_eq!(parse_memory("-1Mi"), None);
        assert_eq!(parse_memory(&format!("{}Ti", u128::MAX)), None);
    }

    #[test]
    fn context_paths() {
        assert_eq!(context_path_problem("/"), None);
        assert_eq!(context_path_problem("/shop"), None);
        assert_eq!(context_path_problem("/shop/v2"), None);
        assert!(context_path_problem("shop").is_some());
        assert!(context_path_problem("/../x").is_some());
        assert!(context_path_problem("/a//b").is_some());
        assert!(context_path_problem("/a b").is_some());
        assert!(context_path_problem(&format!("/{}", "a".repeat(200))).is_some());
    }

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label_problem("shop-1", 40), None);
        assert!(dns_label_problem("", 40).is_some());
        assert!(dns_label_problem("1shop", 40).is_some());
        assert!(dns_label_problem("shop-", 40).is_some());
        assert!(dns_label_problem("Shop", 40).is_some());
        assert!(dns_label_problem("sh.op", 40).is_some());
        assert!(dns_label_problem("../x", 40).is_some());
        assert!(dns_label_problem(&"a".repeat(41), 40).is_some());
        assert_eq!(dns_label_problem(&"a".repeat(40), 40), None);
    }
}
