//! `warship`'s client commands: every flow of the REST API from a terminal, with
//! progress a person can watch and output a script can parse (`--output json` prints
//! the API's own JSON).

pub mod admin;
pub mod client;
pub mod follow;
mod push;
pub mod show;
mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use client::{segment, CliError, Client, Login};
use follow::View;
use watch::WatchArgs;

/// Exit codes, for `warship --help`.
pub const EXIT_CODES: &str = "\
Exit codes (client commands):
  0  success
  1  a deploy (or rollback) that failed or was aborted
  2  bad usage: arguments, or a local file that cannot be read
  3  the server refused the request (its problem: title, detail, fields, code)
  4  the server cannot be reached
  5  not logged in, or the token was refused
  130  stopped following with Ctrl-C (the deploy goes on)

The server and token come from `warship login`, stored in
$XDG_CONFIG_HOME/warship/login.toml (or ~/.config/warship/login.toml, mode 0600);
WARSHIP_URL and WARSHIP_TOKEN override them.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct Global {
    /// `text` for people, `json` for scripts (the API's own JSON).
    #[arg(long, short = 'o', global = true, value_enum, default_value = "text")]
    pub output: Output,
    /// The warship server, over the login's.
    #[arg(long, global = true, env = "WARSHIP_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// The API token, over the login's; `-` reads it from standard input, so it need
    /// not appear in the command line (nor in the shell's history or `ps`).
    #[arg(long, global = true, env = "WARSHIP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Check a server and token (`--token`, `--token -` from stdin, or WARSHIP_TOKEN),
    /// and remember them for the other commands.
    Login {
        /// e.g. http://127.0.0.1:8080
        url: String,
    },
    /// Environments: where WARs run (Tomcat, JDK, replicas).
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// The Tomcat × JDK pairs this platform offers.
    Catalog,
    /// WAR files: upload, list, inspect, delete.
    War {
        #[command(subcommand)]
        command: WarCommand,
    },
    /// Deploy a WAR to an env as a version: a local file (uploaded first, unless the
    /// server already holds the same bytes) or one already on the server.
    Deploy {
        env: String,
        /// A path to a WAR on this machine (`./app.war`), or a stored WAR's name:
        /// `app/file.war`, or `file.war` when one app has it.
        war: String,
        /// For a local file: the app it is stored under (the file's name without `.war` by default).
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        version: String,
        /// A strategy plugin (`recreate`, `rolling`, `canary`, `bluegreen`); the platform's default otherwise.
        #[arg(long)]
        strategy: Option<String>,
        /// A strategy setting over the admin's, as key=value (value as JSON when it parses).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Show its progress until it ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// An env's deploys, newest first.
    Deploys { env: String },
    /// Follow a deploy's progress until it ends: by env (its newest deploy), deploy id,
    /// or an unambiguous start of an id.
    Follow { id: String },
    /// Let a rollout that waits for promotion go on: by env (its running deploy), deploy
    /// id, or an unambiguous start of an id.
    Promote {
        id: String,
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Stop a deploy (by env, deploy id or id start): the release that served before
    /// serves alone again.
    Abort {
        id: String,
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Bring back an earlier release by its image digest, without building.
    Rollback {
        env: String,
        /// The release to bring back; the one before the current by default.
        #[arg(long)]
        revision: Option<u32>,
        #[arg(long)]
        strategy: Option<String>,
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// The env ▸ service ▸ workloads ▸ pods tree.
    Status {
        env: String,
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// A pod's log.
    Logs {
        env: String,
        /// The pod; one of the serving release's by default.
        #[arg(long)]
        pod: Option<String>,
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last lines.
        #[arg(long)]
        tail: Option<i64>,
    },
    /// The plugins the platform loaded.
    Plugins,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create an env.
    Create {
        name: String,
        #[arg(long)]
        tomcat: String,
        #[arg(long)]
        jdk: String,
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        #[arg(long = "jvm-opts", allow_hyphen_values = true)]
        jvm_opts: Option<String>,
        /// An environment variable of the app, as K=V.
        #[arg(long = "set-env", value_name = "K=V")]
        set_env: Vec<String>,
        /// Where the WAR is served (default `/`).
        #[arg(long = "context-path")]
        context_path: Option<String>,
        /// Where the readiness probe asks, below the context path (default: the context path itself).
        #[arg(long = "health-path")]
        health_path: Option<String>,
    },
    List {
        #[command(flatten)]
        watch: WatchArgs,
    },
    Show { name: String },
    /// Change some fields (the rest stay).
    Update {
        name: String,
        #[arg(long)]
        tomcat: Option<String>,
        #[arg(long)]
        jdk: Option<String>,
        #[arg(long)]
        replicas: Option<u32>,
        #[arg(long = "jvm-opts", allow_hyphen_values = true)]
        jvm_opts: Option<String>,
        /// Add or change an environment variable, as K=V.
        #[arg(long = "set-env", value_name = "K=V")]
        set_env: Vec<String>,
        /// Remove an environment variable.
        #[arg(long = "unset-env", value_name = "K")]
        unset_env: Vec<String>,
        #[arg(long = "context-path")]
        context_path: Option<String>,
        #[arg(long = "health-path")]
        health_path: Option<String>,
    },
    /// Delete an env and everything it runs.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum WarCommand {
    /// Upload a WAR (streamed, with progress), then show what warship found in it.
    Push {
        file: PathBuf,
        /// The app it belongs to; the file's name without `.war` by default.
        #[arg(long)]
        app: Option<String>,
    },
    List,
    /// `app/file.war`
    Show { war: String },
    Delete { war: String },
}

/// Runs a client command; the exit code.
pub async fn run(global: Global, command: ClientCommand) -> u8 {
    match execute(&global, command).await {
        Ok(()) => client::exit::OK,
        Err(e) => {
            eprintln!("{}", e.explain());
            e.exit_code()
        }
    }
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON prints"));
}

fn key_value(text: &str, flag: &str) -> Result<(String, String), CliError> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| CliError::Usage(format!("{flag} {text:?} is not KEY=VALUE")))
}

/// `app/file.war` → its API path.
fn war_path(war: &str) -> Result<String, CliError> {
    let (app, file) = war.split_once('/').ok_or_else(|| CliError::Usage(format!("{war:?} is not app/file.war")))?;
    Ok(format!("/api/v1/wars/{}/{}", segment(app), segment(file)))
}

async fn execute(global: &Global, command: ClientCommand) -> Result<(), CliError> {
    let json_out = global.output == Output::Json;
    let view = if json_out {
        View::Silent
    } else if std::io::stderr().is_terminal() {
        View::Bars
    } else {
        View::Lines
    };
    if let ClientCommand::Login { url } = &command {
        let token = match global.token.as_deref() {
            Some("-") => read_token_from_stdin()?,
            Some(token) => token.to_owned(),
            None => return Err(CliError::Usage("give the token: warship login URL --token - (and the token on stdin), or set WARSHIP_TOKEN".into())),
        };
        let client = Client::new(url, &token);
        let envs = client.get("/api/v1/envs").await?;
        let path = Login { url: client.url.clone(), token }.save()?;
        if json_out {
            print_json(&json!({"url": client.url, "login": path}));
        } else {
            println!("logged in to {} ({} envs); saved to {}", client.url, envs.as_array().map_or(0, Vec::len), path.display());
        }
        return Ok(());
    }
    let client = configured_client(global)?;
    let print = |value: &Value, text: &dyn Fn(&Value) -> String| {
        if json_out {
            print_json(value);
        } else {
            println!("{}", text(value));
        }
    };
    match command {
        ClientCommand::Login { .. } => unreachable!("handled above"),
        ClientCommand::Env { command } => env_command(&client, command, json_out, &print).await?,
        ClientCommand::Catalog => print(&client.get("/api/v1/catalog").await?, &show::catalog),
        ClientCommand::War { command } => war_command(&client, command, json_out, &print).await?,
        ClientCommand::Deploy { env, war, app, version, strategy, settings, follow } => {
            let war = if push::is_local(&war) {
                push::ensure_uploaded(&client, std::path::Path::new(&war), app, json_out).await?
            } else if app.is_some() {
                return Err(CliError::Usage(format!("--app names the app of a local file, and {war} is not a file here")));
            } else {
                war
            };
            let mut overrides = Map::new();
            for setting in &settings {
                let (k, v) = key_value(setting, "--set")?;
                overrides.insert(k, serde_json::from_str(&v).unwrap_or(Value::String(v)));
            }
            let mut body = json!({"war": war, "version": version});
            if let Some(strategy) = strategy {
                body["strategy"] = json!(strategy);
            }
            if !overrides.is_empty() {
                body["settings"] = Value::Object(overrides);
            }
            let record = client.post(&format!("/api/v1/envs/{}/deploys", segment(&env)), &body).await?;
            started(&client, record, follow, view, json_out).await?;
        }
        ClientCommand::Deploys { env } => print(&client.get_all(&format!("/api/v1/envs/{}/deploys", segment(&env))).await?, &show::deploys),
        ClientCommand::Follow { id } => {
            let id = match addressed(&client, &id).await? {
                Addressed::Deploy(id) => id,
                Addressed::Env(env) => newest_deploy(&client, &env).await?,
            };
            let record = follow::follow(&client, &id, view).await?;
            ended(&client, &record, json_out).await?;
        }
        ClientCommand::Promote { id, follow } => {
            let record = client.post(&format!("{}/promote", addressed(&client, &id).await?.path()), &json!({})).await?;
            if !json_out {
                println!("promoted deploy {}", show::text(&record["id"]));
            }
            after_signal(&client, record, follow, view, json_out).await?;
        }
        ClientCommand::Abort { id, follow } => {
            let record = client.post(&format!("{}/abort", addressed(&client, &id).await?.path()), &json!({})).await?;
            if !json_out {
                println!("abort asked for deploy {}; the previous release will serve alone again", show::text(&record["id"]));
            }
            after_signal(&client, record, follow, view, json_out).await?;
        }
        ClientCommand::Rollback { env, revision, strategy, follow } => {
            let mut body = json!({});
            if let Some(revision) = revision {
                body["revision"] = json!(revision);
            }
            if let Some(strategy) = strategy {
                body["strategy"] = json!(strategy);
            }
            let record = client.post(&format!("/api/v1/envs/{}/rollback", segment(&env)), &body).await?;
            started(&client, record, follow, view, json_out).await?;
        }
        ClientCommand::Status { env, watch } => {
            let path = format!("/api/v1/envs/{}", segment(&env));
            if watch.watch {
                watch::watch(&watch, json_out, || client.get(&path), &show::status).await?;
            } else {
                print(&client.get(&path).await?, &show::status);
            }
        }
        ClientCommand::Logs { env, pod, follow, tail } => logs(&client, &env, pod, follow, tail).await?,
        ClientCommand::Plugins => print(&client.get("/api/v1/plugins").await?["loaded"], &show::plugins),
    }
    Ok(())
}

/// After a deploy or rollback was accepted: follow it, or say how to.
async fn started(client: &Client, record: Value, follow: bool, view: View, json_out: bool) -> Result<(), CliError> {
    let id = show::text(&record["id"]);
    if !follow {
        if json_out {
            print_json(&record);
        } else {
            println!("deploy {id} started: revision {} of {}. Follow it with: warship follow {id}", show::text(&record["revision"]), show::text(&record["env"]));
        }
        return Ok(());
    }
    if view != View::Silent {
        let what = match record["rollback_of"].as_u64() {
            Some(back) => format!("rollback to release {back}"),
            None => format!("deploy of {} as {}", show::text(&record["war"]), show::text(&record["version"])),
        };
        println!("deploy {id}: {what} to {} (Ctrl-C stops watching, not the deploy)", show::text(&record["env"]));
    }
    let record = follow::follow(client, &id, view).await?;
    ended(client, &record, json_out).await
}

async fn after_signal(client: &Client, record: Value, follow: bool, view: View, json_out: bool) -> Result<(), CliError> {
    if !follow {
        if json_out {
            print_json(&record);
        }
        return Ok(());
    }
    let record = follow::follow(client, &show::text(&record["id"]), view).await?;
    ended(client, &record, json_out).await
}

/// The result of a deploy that ended: exit 0 only when it succeeded; the last line of a
/// success is where the app answers, when the env has a URL.
async fn ended(client: &Client, record: &Value, json_out: bool) -> Result<(), CliError> {
    if json_out {
        print_json(record);
    }
    let id = show::text(&record["id"]);
    match record["status"].as_str() {
        Some("succeeded") => {
            if !json_out {
                println!(
                    "succeeded: release {} of {} serves {} ({})",
                    show::text(&record["revision"]),
                    show::text(&record["env"]),
                    show::text(&record["version"]),
                    show::text(&record["digest"])
                );
                // The deploy succeeded either way: a status that cannot be read only costs the line.
                if let Ok(status) = client.get(&format!("/api/v1/envs/{}", segment(&show::text(&record["env"])))).await {
                    if let Some(url) = status["url"].as_str() {
                        println!("open {url}");
                    }
                }
            }
            Ok(())
        }
        Some(status @ ("failed" | "aborted")) => {
            let error = &record["error"];
            let cause = error["cause"].as_str().map(|c| format!(" [{c}]")).unwrap_or_default();
            Err(CliError::DeployEnded(format!("deploy {id} {status} ({}{cause}): {}", show::text(&error["code"]), show::text(&error["message"]))))
        }
        other => Err(CliError::DeployEnded(format!("deploy {id} is {}; follow it again with: warship follow {id}", other.unwrap_or("unknown")))),
    }
}

async fn env_command(client: &Client, command: EnvCommand, json_out: bool, print: &dyn Fn(&Value, &dyn Fn(&Value) -> String)) -> Result<(), CliError> {
    let env_vars = |pairs: &[String]| -> Result<Map<String, Value>, CliError> {
        pairs.iter().map(|p| key_value(p, "--set-env").map(|(k, v)| (k, Value::String(v)))).collect()
    };
    match command {
        EnvCommand::Create { name, tomcat, jdk, replicas, jvm_opts, set_env, context_path, health_path } => {
            let mut body = json!({"name": name, "tomcat": tomcat, "jdk": jdk, "replicas": replicas, "env": env_vars(&set_env)?});
            for (key, value) in [("jvm_options", jvm_opts), ("context_path", context_path), ("health_path", health_path)] {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            print(&client.post("/api/v1/envs", &body).await?, &|e| format!("created env {}", show::text(&e["name"])));
        }
        EnvCommand::List { watch } if watch.watch => watch::watch(&watch, json_out, || client.get_all("/api/v1/envs"), &show::envs).await?,
        EnvCommand::List { .. } => print(&client.get_all("/api/v1/envs").await?, &show::envs),
        EnvCommand::Show { name } => print(&client.get(&format!("/api/v1/envs/{}", segment(&name))).await?, &show::status),
        EnvCommand::Update { name, tomcat, jdk, replicas, jvm_opts, set_env, unset_env, context_path, health_path } => {
            let path = format!("/api/v1/envs/{}", segment(&name));
            let mut patch = Map::new();
            let fields = [
                ("tomcat", tomcat.map(Value::from)),
                ("jdk", jdk.map(Value::from)),
                ("replicas", replicas.map(Value::from)),
                ("jvm_options", jvm_opts.map(Value::from)),
                ("context_path", context_path.map(Value::from)),
                ("health_path", health_path.map(Value::from)),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    patch.insert(key.into(), value);
                }
            }
            if !set_env.is_empty() || !unset_env.is_empty() {
                // The API replaces the whole map: start from what the env has.
                let current = client.get(&path).await?;
                let mut vars = current["env"].as_object().cloned().unwrap_or_default();
                vars.extend(env_vars(&set_env)?);
                for key in &unset_env {
                    vars.remove(key);
                }
                patch.insert("env".into(), Value::Object(vars));
            }
            if patch.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --replicas, --jvm-opts, --set-env, --unset-env, --tomcat, --jdk, --context-path or --health-path".into(),
                ));
            }
            let updated = client.json(reqwest::Method::PATCH, &path, Some(&Value::Object(patch))).await?;
            print(&updated, &|e| format!("updated env {}; the next deploy rolls it out", show::text(&e["name"])));
        }
        EnvCommand::Delete { name } => {
            client.json(reqwest::Method::DELETE, &format!("/api/v1/envs/{}", segment(&name)), None).await?;
            print(&json!({"deleted": name}), &|_| format!("deleted env {name} and everything it ran"));
        }
    }
    Ok(())
}

async fn war_command(client: &Client, command: WarCommand, json_out: bool, print: &dyn Fn(&Value, &dyn Fn(&Value) -> String)) -> Result<(), CliError> {
    match command {
        WarCommand::Push { file, app } => {
            let record = push::push_war(client, &file, app, json_out).await?;
            print(&record, &|w| format!("uploaded {}", show::war(w)));
        }
        WarCommand::List => print(&client.get_all("/api/v1/wars").await?, &show::wars),
        WarCommand::Show { war } => print(&client.get(&war_path(&war)?).await?, &show::war),
        WarCommand::Delete { war } => {
            client.json(reqwest::Method::DELETE, &war_path(&war)?, None).await?;
            print(&json!({"deleted": war}), &|_| format!("deleted {war}"));
        }
    }
    Ok(())
}

async fn logs(client: &Client, env: &str, pod: Option<String>, follow: bool, tail: Option<i64>) -> Result<(), CliError> {
    use std::io::Write;
    let mut query = vec![format!("follow={follow}")];
    if let Some(pod) = pod {
        query.push(format!("pod={}", segment(&pod)));
    }
    if let Some(tail) = tail {
        query.push(format!("tail={tail}"));
    }
    let response = client.send(client.request(reqwest::Method::GET, &format!("/api/v1/envs/{}/logs?{}", segment(env), query.join("&")))).await?;
    if let Some(pod) = response.headers().get("x-warship-pod").and_then(|v| v.to_str().ok()) {
        eprintln!("log of pod {pod}:");
    }
    let mut body = response.bytes_stream();
    let mut stdout = std::io::stdout();
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(chunk) = chunk else { return Ok(()) };
        let chunk = chunk.map_err(|e| CliError::Unreachable { url: client.url.clone(), message: e.to_string() })?;
        let _ = stdout.write_all(&chunk);
        let _ = stdout.flush();
    }
}

/// The client of the login, or of `--url` and `--token` (`-`: from stdin) over it.
fn configured_client(global: &Global) -> Result<Client, CliError> {
    let token = match global.token.as_deref() {
        Some("-") => Some(read_token_from_stdin()?),
        other => other.map(str::to_owned),
    };
    Client::configured(global.url.clone(), token)
}

/// The first line of standard input, trimmed: a token piped in (`pass warship | warship login URL --token -`).
fn read_token_from_stdin() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| CliError::Usage(format!("could not read the token from stdin: {e}")))?;
    let token = line.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage("--token - reads the token from stdin, which gave none".into()));
    }
    Ok(token)
}

/// What a person named on the command line: one of their envs, or else a deploy by id
/// or the start of one (the server resolves it).
enum Addressed {
    Env(String),
    Deploy(String),
}

impl Addressed {
    /// The API path whose `/promote` and `/abort` act on it.
    fn path(&self) -> String {
        match self {
            Addressed::Env(env) => format!("/api/v1/envs/{}", segment(env)),
            Addressed::Deploy(id) => format!("/api/v1/deploys/{}", segment(id)),
        }
    }
}

async fn addressed(client: &Client, what: &str) -> Result<Addressed, CliError> {
    match client.get(&format!("/api/v1/envs/{}", segment(what))).await {
        Ok(_) => Ok(Addressed::Env(what.to_owned())),
        Err(CliError::Problem { status: 404, .. }) => Ok(Addressed::Deploy(what.to_owned())),
        Err(e) => Err(e),
    }
}

/// An env's newest deploy, the one `follow ENV` means.
async fn newest_deploy(client: &Client, env: &str) -> Result<String, CliError> {
    let deploys = client.get(&format!("/api/v1/envs/{}/deploys?limit=1", segment(env))).await?;
    let newest = deploys["items"].get(0).or_else(|| deploys.get(0)).and_then(|d| d["id"].as_str());
    newest.map(str::to_owned).ok_or_else(|| CliError::Usage(format!("env {env} has no deploys yet; start one with `warship deploy {env} WAR`")))
}
