//! Users and tokens as an admin runs them: `warship user list|rotate|revoke` over the
//! API of running servers (two hosts on one etcd), a revoked token refused at once by
//! the host that did not revoke it, and unknown tokens throttled per address.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::flow::{add_user, write_config, Host};
use crate::support::{free_port, Etcd};

const BIN: &str = env!("CARGO_BIN_EXE_warship");

/// `warship ARGS` as the admin, against `url`; stdout, or the failure's stderr.
fn admin(url: &str, token: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(BIN).args(args).env("WARSHIP_URL", url).env("WARSHIP_TOKEN", token).env("HOME", "/nonexistent").output().unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

async fn status_of(http: &reqwest::Client, url: String, token: &str) -> u16 {
    http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn an_admin_revokes_and_rotates_tokens_and_every_host_refuses_the_old_one_at_once() {
    let etcd = Etcd::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port_a, port_b) = (free_port(), free_port());
    let admins = "[users]\nadmins = [\"admin\"]\n";
    let (config_a, config_b) = (write_config(dir_a.path(), port_a, admins), write_config(dir_b.path(), port_b, admins));
    let envs = [("WARSHIP__STORE__BACKEND", "etcd"), ("WARSHIP__STORE__ETCD_ENDPOINTS", etcd.endpoint.as_str())];
    let admin_token = add_user(&config_a, "admin", &envs);
    let alice = add_user(&config_a, "alice", &envs);
    let host_a = Host::start(&config_a, port_a, &envs);
    let host_b = Host::start(&config_b, port_b, &envs);
    let http = reqwest::Client::new();
    let envs_on_b = format!("{}/api/v1/envs", host_b.base);
    // Host B has seen (and remembers) alice's token.
    assert_eq!(status_of(&http, envs_on_b.clone(), &alice).await, 200);

    // Not an admin: 403 naming where admins are named.
    let refused = http.get(format!("{}/api/v1/admin/users", host_a.base)).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "auth.not_admin");

    // Revoked on host A: host B refuses the token at once.
    let said = admin(&host_a.base, &admin_token, &["user", "revoke", "alice"]).unwrap();
    assert!(said.contains("revoked the token of alice"), "{said}");
    let revoked = Instant::now();
    while status_of(&http, envs_on_b.clone(), &alice).await != 401 {
        assert!(revoked.elapsed() < Duration::from_secs(5), "host B still takes the revoked token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = revoked.elapsed();
    eprintln!("a token revoked on host A was refused by host B {took:?} later");
    assert!(took < Duration::from_secs(1), "host B took the revoked token for {took:?}");

    let listed: Value = serde_json::from_str(&admin(&host_b.base, &admin_token, &["user", "list", "-o", "json"]).unwrap()).unwrap();
    let alice_listed = listed.as_array().unwrap().iter().find(|u| u["name"] == "alice").unwrap();
    assert_eq!(alice_listed["active"], false);
    assert!(alice_listed["revoked_at"].is_string(), "{alice_listed}");
    let table = admin(&host_b.base, &admin_token, &["user", "list"]).unwrap();
    assert!(table.lines().any(|l| l.starts_with("alice") && l.contains("revoked")), "{table}");

    // Rotated: a new token that works everywhere; the old one stays refused.
    let rotated = admin(&host_b.base, &admin_token, &["user", "rotate", "alice"]).unwrap();
    let fresh = rotated.trim();
    assert!(fresh.starts_with("wsp_"), "the token alone on stdout: {rotated:?}");
    assert_eq!(status_of(&http, format!("{}/api/v1/envs", host_a.base), fresh).await, 200);
    assert_eq!(status_of(&http, envs_on_b.clone(), fresh).await, 200);
    assert_eq!(status_of(&http, envs_on_b.clone(), &alice).await, 401);
    // An unknown user is a clear 404, in the CLI's words.
    let missing = admin(&host_a.base, &admin_token, &["user", "revoke", "nobody"]).unwrap_err();
    assert!(missing.contains("there is no user nobody"), "{missing}");
}

#[tokio::test]
async fn unknown_tokens_are_throttled_per_address_and_known_ones_still_pass() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let token = add_user(&config, "alice", &[]);
    let host = Host::start(&config, port, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/envs", host.base);
    assert_eq!(status_of(&http, url.clone(), &token).await, 200);

    let (mut unauthorized, mut throttled) = (0, 0);
    for i in 0..40 {
        let answer = http.get(&url).bearer_auth(format!("wsp_guess_{i}")).send().await.unwrap();
        match answer.status().as_u16() {
            401 => unauthorized += 1,
            429 => {
                assert!(answer.headers().contains_key("retry-after"));
                let problem: Value = answer.json().await.unwrap();
                assert_eq!(problem["code"], "auth.too_many_failures");
                throttled += 1;
            }
            other => panic!("guess {i} answered {other}"),
        }
    }
    eprintln!("40 unknown tokens from one address: {unauthorized} answered 401, then {throttled} throttled with 429");
    assert!((20..=22).contains(&unauthorized) && throttled == 40 - unauthorized, "{unauthorized} 401, {throttled} 429");
    // The address's own known token still passes.
    assert_eq!(status_of(&http, url, &token).await, 200);
}
