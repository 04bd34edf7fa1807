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
            (
                "WARSHIP__STORE__ETCD_ENDPOINTS",
                "[\"http://a:1\", \"http://b:2\"]",
            ),
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
    let config = load(
        "",
        &[("WARSHIP__STORE__ETCD_ENDPOINTS", "http://a:1, http://b:2")],
    )
    .unwrap();
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
fn platform_names_stay_the_platforms() {
    let with = |extra: &str| Config::from_toml(extra, Path::new("p.toml"), []);
    let empty = with("[kubernetes]\nnamespace_prefix = \"\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        empty.contains("namespace_prefix must not be empty"),
        "{empty}"
    );
    let base = |image: &str| {
        format!("[registry]\npush = \"127.0.0.1:5000\"\n[[catalog]]\ntomcat = \"10.1\"\njdk = \"17\"\nbase_image = \"{image}\"\n")
    };
    let shared = with(&base("alice/tomcat:10")).unwrap_err().to_string();
    assert!(
        shared.contains("where a user \"alice\" could push"),
        "{shared}"
    );
    assert!(
        with(&base("127.0.0.1:5000/bob/tomcat:10")).is_err(),
        "the push registry named by its address"
    );
    assert!(with(&base("warship/tomcat:10.1-jdk17")).is_ok());
    assert!(with(&base("127.0.0.1:5000/warship/tomcat:10")).is_ok());
    assert!(
        with(&base("registry.example/alice/tomcat:10")).is_ok(),
        "another registry is not users' space"
    );
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
    let canary = config
        .plugins
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name == "canary")
        .unwrap();
    assert!(
        canary.settings.contains_key("steps") && canary.overridable.contains(&"steps".to_owned()),
        "{canary:?}"
    );
}

#[test]
fn registries_are_reached_over_tls_unless_the_config_says_otherwise() {
    let config = Config::from_toml("", std::path::Path::new("t.toml"), std::iter::empty()).unwrap();
    assert!(
        !config.registry.insecure,
        "plain HTTP is opted into, not the default"
    );
    let local = Config::from_toml(
        "[registry]\ninsecure = true\n",
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .unwrap();
    assert!(local.registry.insecure);
}
