//! etcd as production runs it: TLS both ways (etcd's certificate checked against a CA,
//! warship's client certificate checked by etcd) and etcd's own users. The store's
//! conformance suite passes over it; `check-config` and `serve` reach etcd as they
//! would in production and fail with the setting to check when a certificate or
//! password is wrong.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use warship_host::store::{EtcdAccess, EtcdStore};

use crate::support::{self, client_certificate, tls_chain};

const BIN: &str = env!("CARGO_BIN_EXE_warship");
const PASSWORD: &str = "s3cret-pw";

/// `warship check-config` (or `serve`, given as `command`) on a config whose store is
/// that etcd, with the store settings in `settings` (as `WARSHIP__STORE__*`).
fn run(command: &str, dir: &Path, endpoint: &str, settings: &[(&str, String)]) -> (bool, String) {
    let config = dir.join("platform.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n[store]\nbackend = \"etcd\"\ndata_dir = \"{}\"\netcd_endpoints = [\"{endpoint}\"]\netcd_connect_timeout_secs = 3\n",
            support::free_port(),
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("timeout");
    child.args(["20", BIN, command, "--config", config.to_str().unwrap()]);
    for (key, value) in settings {
        child.env(
            format!("WARSHIP__STORE__{}", key.to_ascii_uppercase()),
            value,
        );
    }
    let out = child.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_etcd_store_works_over_tls_with_a_user_and_names_the_setting_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_chain(dir.path());
    let etcd = support::Etcd::start_with(Some((&ca, &cert, &key))).await;

    // Turn on etcd's users: root with a password (over TLS, as the test's own client).
    let mut admin = etcd_client::Client::connect(
        [etcd.endpoint.as_str()],
        Some(
            etcd_client::ConnectOptions::new().with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(
                        etcd.access.ca.clone().unwrap(),
                    ))
                    .identity(etcd_client::Identity::from_pem(
                        etcd.access.identity.clone().unwrap().0,
                        etcd.access.identity.clone().unwrap().1,
                    )),
            ),
        ),
    )
    .await
    .unwrap();
    admin.user_add("root", PASSWORD, None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    // warship's own client certificate, from the same CA.
    let (client_cert, client_key) = client_certificate(dir.path(), "warship");
    let path = |p: &Path| p.display().to_string();
    let good = vec![
        ("etcd_ca_file", path(&ca)),
        ("etcd_cert_file", path(&client_cert)),
        ("etcd_key_file", path(&client_key)),
        ("etcd_username", "root".to_owned()),
        ("etcd_password", PASSWORD.to_owned()),
    ];
    let (ok, said) = run("check-config", dir.path(), &etcd.endpoint, &good);
    assert!(ok, "{said}");

    // The whole store contract over TLS and auth.
    let access = EtcdAccess {
        ca: Some(std::fs::read(&ca).unwrap()),
        identity: Some((
            std::fs::read(&client_cert).unwrap(),
            std::fs::read(&client_key).unwrap(),
        )),
        user: Some(("root".into(), PASSWORD.into())),
    };
    let store = EtcdStore::connect_with(
        &[etcd.endpoint.clone()],
        "/tls/",
        Duration::from_secs(5),
        &access,
    )
    .await
    .unwrap();
    crate::store_conformance::suite(Arc::new(store)).await;

    // Each wrong setting, named.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = tls_chain(other.path());
    let (stranger_cert, stranger_key) = client_certificate(other.path(), "stranger");
    let with = |key: &str, value: String| {
        good.iter()
            .map(|(k, v)| (*k, if *k == key { value.clone() } else { v.clone() }))
            .collect::<Vec<_>>()
    };
    let cases = [
        (
            "a wrong password",
            with("etcd_password", "wrong".into()),
            "store.etcd_password",
        ),
        (
            "an unknown user",
            with("etcd_username", "nobody".into()),
            "store.etcd_username",
        ),
        (
            "a CA that did not sign etcd's certificate",
            with("etcd_ca_file", path(&other_ca)),
            "store.etcd_ca_file",
        ),
        (
            "a client certificate etcd does not trust",
            with("etcd_cert_file", path(&stranger_cert))
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        if k == "etcd_key_file" {
                            path(&stranger_key)
                        } else {
                            v
                        },
                    )
                })
                .collect(),
            "store.etcd_cert_file",
        ),
        (
            "a missing CA file",
            with("etcd_ca_file", path(&dir.path().join("nope.pem"))),
            "store.etcd_ca_file",
        ),
    ];
    for (what, settings, names) in cases {
        let (ok, said) = run("check-config", dir.path(), &etcd.endpoint, &settings);
        eprintln!("check-config with {what}: {}", said.trim());
        assert!(!ok, "{what}: check-config passed: {said}");
        assert!(
            said.contains(names),
            "{what}: the message does not name {names}: {said}"
        );
    }
    // serve refuses to start the same way.
    let (ok, said) = run(
        "serve",
        dir.path(),
        &etcd.endpoint,
        &with("etcd_password", "wrong".into()),
    );
    assert!(
        !ok && said.contains("store.etcd_password"),
        "serve with a wrong password: {said}"
    );
}
