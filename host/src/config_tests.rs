//! The configuration: defaults, overrides, and what a check refuses.

use super::*;

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(
        text,
        Path::new("platform.toml"),
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_file_is_all_defaults() {
    let config = load("", &[]).unwrap();
    assert_eq!(config.store.backend, StoreBackend::Embedded);
    assert_eq!(config.server.listen.port(), 8080);
    assert!(config.catalog.is_empty());
}

#[test]
fn unknown_key_is_named() {
    let err = load("[server]\nlisten = \"127.0.0.1:1\"\nlsiten = 3\n", &[]).unwrap_err();
    assert!(err.to_string().contains("lsiten"), "{err}");
    let err = load("[nosuch]\n", &[]).unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");
}

#[test]
fn environment_overrides_any_key() {
    let config = load(
        "[store]\nbackend = \"embedded\"\n",
        &[
            ("WARSHIP__SERVER__LISTEN", "127.0.0.1:9999"),
            ("WARSHIP__STORE__BACKEND", "etcd"),
            ("WARSHIP__STORE__DATA_DIR", "/tmp/x"),
            ("WARSHIP__UPLOADS__MAX_BYTES", "5"),
            ("WARSHIP__REGISTRY__PUSH", "10.0.0.1:5000"),
            ("WARSHIP__REGISTRY__PULL", "reg.internal:5000"),
            ("WARSHIP__STORE__ETCD_ENDPOINTS", "[\"http://a:1\", \"http://b:2\"]"),
            ("UNRELATED", "1"),
        ],
    )
    .unwrap();
    assert_eq!(config.server.listen.port(), 9999);
    assert_eq!(config.store.backend, StoreBackend::Etcd);
    assert_eq!(config.store.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.uploads.max_bytes, 5);
    assert_eq!(config.registry.push, "10.0.0.1:5000");
    assert_eq!(config.registry.pull, "reg.internal:5000");
    assert_eq!(config.store.etcd_endpoints, ["http://a:1", "http://b:2"]);
    let config = load("", &[("WARSHIP__STORE__ETCD_ENDPOINTS", "http://a:1, http://b:2")]).unwrap();
    assert_eq!(config.store.etcd_endpoints, ["http://a:1", "http://b:2"]);
}

#[test]
fn unknown_key_from_environment_is_named() {
    let err = load("", &[("WARSHIP__UPLOADS__MAX_BYTE", "5")]).unwrap_err();
    assert!(err.to_string().contains("max_byte"), "{err}");
}

#[test]
fn tls_needs_both_halves() {
    let err = load("[server]\ntls_cert = \"a.pem\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("tls_key"), "{err}");
}

#[test]
fn etcd_tls_and_user_settings_go_together() {
    let store = |keys: &str| load(&format!("[store]\nbackend = \"etcd\"\n{keys}"), &[]);
    let refused = |keys: &str, names: &str| {
        let err = store(keys).unwrap_err().to_string();
        assert!(err.contains(names), "{keys}: {err}");
    };
    refused("etcd_cert_file = \"c.pem\"\n", "store.etcd_key_file");
    refused("etcd_username = \"root\"\n", "store.etcd_password");
    refused("etcd_password = \"pw\"\n", "store.etcd_username");
    refused(
        "etcd_username = \"r\"\netcd_password = \"p\"\netcd_password_file = \"f\"\n",
        "not both",
    );
    refused("etcd_ca_file = \"ca.pem\"\n", "https://");
    refused(
        "etcd_endpoints = [\"https://a:2379\"]\n",
        "store.etcd_ca_file",
    );
    let tls = "etcd_endpoints = [\"https://a:2379\"]\netcd_ca_file = \"ca.pem\"\netcd_cert_file = \"c.pem\"\netcd_key_file = \"k.pem\"\n";
    store(&format!(
        "{tls}etcd_username = \"root\"\netcd_password_file = \"pw\"\n"
    ))
    .unwrap();
}

#[test]
fn platform_names_stay_the_platforms() {
    let with = |extra: &str| Config::from_toml(extra, Path::new("p.toml"), []);
    let empty = with("[kubernetes]\nnamespace_prefix = \"\"\n").unwrap_err().to_string();
    assert!(empty.contains("namespace_prefix must not be empty"), "{empty}");
    let base = |image: &str| format!("[registry]\npush = \"127.0.0.1:5000\"\n[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"{image}\"\n");
    let shared = with(&base("alice/tomcat:10")).unwrap_err().to_string();
    assert!(shared.contains("where a user \"alice\" could push"), "{shared}");
    assert!(with(&base("127.0.0.1:5000/bob/tomcat:10")).is_err(), "the push registry named by its address");
    assert!(with(&base("warship/tomcat:10.1-jdk17")).is_ok());
    assert!(with(&base("127.0.0.1:5000/warship/tomcat:10")).is_ok());
    assert!(with(&base("registry.example/alice/tomcat:10")).is_ok(), "another registry is not users' space");
}

#[test]
fn duplicate_catalog_pair_is_refused() {
    let entry = "[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"b\"\n";
    let err = load(&format!("{entry}{entry}"), &[]).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn shipped_platform_toml_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform.toml");
    let config = Config::load(&path, std::iter::empty()).unwrap();
    assert_eq!(config.store.backend, StoreBackend::Embedded);
    assert!(!config.catalog.is_empty());
    // The README's walkthrough sets a canary's steps per deploy: the shipped policy allows it.
    let canary = config.plugins.as_ref().unwrap().iter().find(|p| p.name == "canary").unwrap();
    assert!(canary.settings.contains_key("steps") && canary.overridable.contains(&"steps".to_owned()), "{canary:?}");
}

#[test]
fn registries_are_reached_over_tls_unless_the_config_says_otherwise() {
    let config = Config::from_toml("", std::path::Path::new("t.toml"), std::iter::empty()).unwrap();
    assert!(!config.registry.insecure, "plain HTTP is opted into, not the default");
    let local = Config::from_toml("[registry]\ninsecure = true\n", std::path::Path::new("t.toml"), std::iter::empty()).unwrap();
    assert!(local.registry.insecure);
}

#[test]
fn namespaces_are_held_in_by_default_and_malformed_quantities_are_named() {
    let config = load("", &[]).unwrap().kubernetes;
    assert_eq!(config.quota.pods, 500);
    assert_eq!(config.limits.default_limit_memory, "1Gi");
    assert!(config.ingress_from.same_namespace);
    let set = load(
        "[kubernetes.quota]\npods = 10\nrequests_cpu = \"2.5\"\n[kubernetes.limits]\nmax_memory = \"\"\n",
        &[("WARSHIP__KUBERNETES__INGRESS_FROM__CIDRS", "[\"10.0.0.0/8\"]")],
    )
    .unwrap()
    .kubernetes;
    assert_eq!(
        (set.quota.pods, set.quota.requests_cpu.as_str()),
        (10, "2.5")
    );
    assert_eq!(set.ingress_from.cidrs, ["10.0.0.0/8"]);
    for (text, says) in [
        (
            "[kubernetes.quota]\nrequests_memory = \"lots\"\n",
            "kubernetes.quota.requests_memory \"lots\" is not a Kubernetes quantity; write it like \"512Mi\" or \"2Gi\"",
        ),
        (
            "[kubernetes.limits]\ndefault_request_cpu = \"1,5\"\n",
            "kubernetes.limits.default_request_cpu \"1,5\" is not a Kubernetes quantity",
        ),
        (
            "[kubernetes.limits]\ndefault_request_memory = \"2Gi\"\n",
            "kubernetes.limits.default_request_memory is above kubernetes.limits.default_limit_memory",
        ),
        (
            "[kubernetes.limits]\ndefault_limit_memory = \"32Gi\"\n",
            "kubernetes.limits.default_limit_memory is above kubernetes.limits.max_memory",
        ),
        (
            "[kubernetes.quota]\nlimits_cpu = \"8\"\n",
            "kubernetes.limits.default_limit_cpu must be set: with a quota on limits of cpu",
        ),
        (
            "[kubernetes.limits]\ndefault_request_memory = \"\"\n",
            "kubernetes.limits.default_request_memory must be set: with a quota on requests of memory",
        ),
        (
            "[kubernetes.limits]\nmax_cpu = \"4\"\n",
            "kubernetes.limits.default_limit_cpu must be set: with a maximum of cpu",
        ),
        ("[kubernetes.quota]\npods = 0\n", "kubernetes.quota.pods must be above 0"),
        (
            "[kubernetes.ingress_from]\ncidrs = [\"10.0.0.0/33\"]\n",
            "kubernetes.ingress_from.cidrs: \"10.0.0.0/33\" is not an address block",
        ),
        (
            "[kubernetes.ingress_from]\nnamespaces = [\"Traefik\"]\n",
            "kubernetes.ingress_from.namespaces: \"Traefik\" is not a namespace name",
        ),
        ("[kubernetes.quota]\nrequest_cpu = \"1\"\n", "request_cpu"),
    ] {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains(says), "{text}: {err}");
    }
    assert!(load(
        "[kubernetes.quota]\nlimits_cpu = \"8\"\n[kubernetes.limits]\ndefault_limit_cpu = \"1\"\nmax_cpu = \"2\"\n",
        &[]
    )
    .is_ok());
}

#[test]
fn quantities_compare_across_units() {
    assert_eq!(thousandths("500m"), Some(500));
    assert_eq!(thousandths("2"), Some(2000));
    assert_eq!(thousandths("1.5"), Some(1500));
    assert_eq!(thousandths("1Gi"), thousandths("1024Mi"));
    assert!(thousandths("1G") < thousandths("1Gi"));
    assert_eq!(thousandths("0.5Gi"), thousandths("512Mi"));
    for bad in ["", "Gi", "-1", "1.5.5", "1e3", "1 Gi", "1gi", ".5"] {
        assert_eq!(thousandths(bad), None, "{bad:?}");
    }
    assert_eq!(
        thousandths(&"9".repeat(60)),
        None,
        "overflow is refused, not wrapped"
    );
}

#[test]
fn a_catalog_user_is_numeric_and_not_root() {
    let entry = |user: &str| {
        format!("[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"warship/tomcat:10.1-jdk17\"\nuser = \"{user}\"\n")
    };
    for user in ["1000", "1000:1000"] {
        assert!(load(&entry(user), &[]).is_ok(), "{user}");
    }
    for user in ["tomcat", "0", "0:1000", "1000:tomcat", ""] {
        let err = load(&entry(user), &[]).unwrap_err().to_string();
        assert!(
            err.contains("must be a numeric uid or uid:gid other than 0"),
            "{user}: {err}"
        );
    }
}

#[test]
fn environment_overrides_keep_strings_strings() {
    let config = load(
        "",
        &[
            ("WARSHIP__REGISTRY__PASSWORD", "123456"),
            ("WARSHIP__UPLOADS__MAX_BYTES", "5"),
        ],
    )
    .unwrap();
    assert_eq!(config.registry.password.as_deref(), Some("123456"));
    assert_eq!(config.uploads.max_bytes, 5);
}

#[test]
fn plugin_sources_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.toml");
    let plugins = "[[plugins]]\nname = \"mine\"\nkind = \"strategy\"\nsource = \"plugins/mine.wasm\"\n\
                   [[plugins]]\nname = \"abs\"\nkind = \"strategy\"\nsource = \"/opt/abs.wasm\"\n\
                   [[plugins]]\nname = \"rolling\"\nkind = \"strategy\"\nsource = \"builtin:rolling\"\n";
    std::fs::write(&path, plugins).unwrap();
    let config = Config::load(&path, Vec::new()).unwrap();
    let sources: Vec<String> = config.plugins.unwrap().into_iter().map(|p| p.source).collect();
    assert_eq!(sources, [dir.path().join("plugins/mine.wasm").to_string_lossy().into_owned(), "/opt/abs.wasm".into(), "builtin:rolling".into()]);
}

