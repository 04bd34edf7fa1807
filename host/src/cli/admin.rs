//! `warship user list|rotate|revoke`: an admin's commands, over the API of a running
//! server (the embedded store is the server's alone, so they cannot open it).

use serde_json::{json, Value};

use super::client::{exit, segment};
use super::{configured_client, print_json, Global, Output};

/// What an admin does to users.
pub enum UserAction {
    List,
    Rotate(String),
    Revoke(String),
}

pub async fn users(global: &Global, action: UserAction) -> u8 {
    match run(global, action).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{}", e.explain());
            e.exit_code()
        }
    }
}

async fn run(global: &Global, action: UserAction) -> Result<(), super::CliError> {
    let client = configured_client(global)?;
    let json_out = global.output == Output::Json;
    match action {
        UserAction::List => {
            let users = client.get("/api/v1/admin/users").await?;
            if json_out {
                print_json(&users);
            } else {
                println!("{:<24} {:<8} {:<26} ROTATED / REVOKED", "USER", "TOKEN", "CREATED");
                for user in users.as_array().into_iter().flatten() {
                    let text = |key: &str| user[key].as_str().unwrap_or("-").to_owned();
                    let state = if user["active"] == Value::Bool(true) { "active" } else { "revoked" };
                    let when = user["revoked_at"].as_str().or(user["rotated_at"].as_str()).unwrap_or("-");
                    println!("{:<24} {:<8} {:<26} {when}", text("name"), state, text("created_at"));
                }
            }
        }
        UserAction::Rotate(name) => {
            let issued = client.post(&format!("/api/v1/admin/users/{}/rotate", segment(&name)), &json!({})).await?;
            if json_out {
                print_json(&issued);
            } else {
                eprintln!("rotated the token of {name}; the old one no longer works, the new one follows and will not be shown again:");
                println!("{}", issued["token"].as_str().unwrap_or_default());
            }
        }
        UserAction::Revoke(name) => {
            client.json(reqwest::Method::POST, &format!("/api/v1/admin/users/{}/revoke", segment(&name)), None).await?;
            if json_out {
                print_json(&json!({"name": name, "revoked": true}));
            } else {
                println!("revoked the token of {name}: its requests answer 401 from now on, on every host (`warship user rotate {name}` gives a new one)");
            }
        }
    }
    Ok(())
}
