use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use warship_host::cli::admin::UserAction;
use warship_host::cli::{self, ClientCommand, Global};
use warship_host::config::Config;
use warship_host::server::{self, Server};
use warship_host::telemetry;
use warship_host::users::Users;

/// warship: upload a WAR, pick Tomcat and JDK, and roll it out to Kubernetes.
///
/// `warship serve` runs the platform; the other commands talk to one over its REST API.
#[derive(Parser)]
#[command(name = "warship", version, after_help = cli::EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: the REST API and everything behind it.
    Serve {
        /// The platform.toml to read; without it: $WARSHIP_CONFIG, ./platform.toml, /etc/warship/platform.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a platform.toml (with WARSHIP__* overrides applied) and exit.
    CheckConfig {
        /// The platform.toml to read; without it: $WARSHIP_CONFIG, ./platform.toml, /etc/warship/platform.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Build an image from a Dockerfile and the files beside it, and push it to the
    /// configured registry, without a server: what `POST /api/v1/images` does after
    /// rendering the Dockerfile. Progress goes to stderr, the digest to stdout.
    Build {
        /// Folder whose files the Dockerfile may COPY.
        #[arg(long)]
        context: PathBuf,
        /// Defaults to CONTEXT/Dockerfile.
        #[arg(long)]
        dockerfile: Option<PathBuf>,
        /// Repository and tag in the push registry, e.g. `team/shop:1.0`.
        #[arg(long)]
        tag: String,
        /// ARG values, as NAME=value.
        #[arg(long = "build-arg")]
        build_args: Vec<String>,
        /// The platform.toml to read; without it: $WARSHIP_CONFIG, ./platform.toml, /etc/warship/platform.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage users: `add` on the server's store (`--config`), the others as an admin
    /// over the API of the running server (`[users] admins` in its platform.toml).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Write, build, check and test plugins, without a cluster.
    Plugin {
        #[command(subcommand)]
        command: warship_host::kit::PluginCommand,
    },
    /// Print shell completions: `warship completions bash > /etc/bash_completion.d/warship`.
    Completions { shell: clap_complete::Shell },
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print its API token (shown once; only its hash is kept).
    Add {
        name: String,
        /// The platform.toml to read; without it: $WARSHIP_CONFIG, ./platform.toml, /etc/warship/platform.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the users, with whether their token works.
    List,
    /// Give a user a new token (printed once); the old one ends at once, on every host.
    Rotate { name: String },
    /// End a user's token at once, on every host.
    Revoke { name: String },
}

/// The config file `--config` names, or the first of the places searched.
fn locate(flag: &Option<PathBuf>) -> anyhow::Result<(PathBuf, &'static str)> {
    let found = warship_host::config::location::find(flag.as_deref(), std::env::var_os("WARSHIP_CONFIG"), |p| p.is_file());
    found.map_err(anyhow::Error::msg)
}

fn load(flag: &Option<PathBuf>) -> anyhow::Result<Config> {
    let (path, _) = locate(flag)?;
    Ok(Config::load(&path, std::env::vars())?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(command) => return ExitCode::from(cli::run(cli.global, command).await),
        Command::User { command: UserCommand::List } => return ExitCode::from(cli::admin::users(&cli.global, UserAction::List).await),
        Command::User { command: UserCommand::Rotate { name } } => {
            return ExitCode::from(cli::admin::users(&cli.global, UserAction::Rotate(name)).await)
        }
        Command::User { command: UserCommand::Revoke { name } } => {
            return ExitCode::from(cli::admin::users(&cli.global, UserAction::Revoke(name)).await)
        }
        Command::Plugin { command } => return ExitCode::from(warship_host::kit::run(command)),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "warship", &mut script);
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let (path, found_by) = locate(&config)?;
            let config = Config::load(&path, std::env::vars())?;
            telemetry::init(config.server.log_format);
            tracing::info!(config = %path.display(), found_by, "configuration read");
            Server::from_config(config).await?.run().await
        }
        Command::CheckConfig { config: flag } => {
            let (path, _) = locate(&flag)?;
            let config = Config::load(&path, std::env::vars())?;
            if config.store.backend == warship_host::config::StoreBackend::Etcd {
                // Reaches etcd as serve would: its address, TLS and user are checked too.
                server::open_store(&config).await?;
            }
            // The bucket too, with its keys.
            server::open_objects(&config.storage).await?;
            let plugins = server::load_plugins(&config).await?;
            for gap in plugins.gaps(&config) {
                eprintln!("warning: {gap}");
            }
            let names: Vec<String> = plugins.names().into_iter().map(|(kind, names)| format!("{kind}: {}", names.join(", "))).collect();
            println!(
                "{}: ok (store {:?} in {}, listening on {}, {} catalog entries; plugins {})",
                path.display(),
                config.store.backend,
                config.store.data_dir.display(),
                config.server.listen,
                config.catalog.len(),
                names.join("; ")
            );
            Ok(())
        }
        Command::Build { context, dockerfile, tag, build_args, config } => {
            let config = load(&config)?;
            build_image(&config, context, dockerfile, &tag, &build_args).await
        }
        Command::User { command: UserCommand::Add { name, config } } => {
            let config = load(&config)?;
            let store = server::open_store(&config).await?;
            let users = Users::new(store, &config.users.static_users)?;
            let token = users.add(&name).await?;
            eprintln!("created user {name}; its API token follows and will not be shown again:");
            println!("{token}");
            Ok(())
        }
        Command::Completions { .. } | Command::Plugin { .. } | Command::Client(_) | Command::User { .. } => unreachable!("handled in main"),
    }
}

async fn build_image(config: &Config, context: PathBuf, dockerfile: Option<PathBuf>, tag: &str, build_args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    use warship_host::image::{BuildEvent, BuildJob, ContextFile, Progress};

    let dockerfile_path = dockerfile.unwrap_or_else(|| context.join("Dockerfile"));
    let dockerfile = std::fs::read_to_string(&dockerfile_path).with_context(|| format!("reading {}", dockerfile_path.display()))?;
    let mut files = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&context).with_context(|| format!("reading {}", context.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.insert(entry.file_name().to_string_lossy().into_owned(), ContextFile::from_path(entry.path())?);
        }
    }
    let build_args = build_args
        .iter()
        .map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).with_context(|| format!("--build-arg {a:?} is not NAME=value")))
        .collect::<anyhow::Result<_>>()?;
    let (builder, client) = server::image_builder(config)?;
    let target = client.resolve(tag)?;
    let started = std::time::Instant::now();
    let progress: Progress = std::sync::Arc::new(move |event| {
        let at = started.elapsed().as_secs_f64();
        match event {
            BuildEvent::Step { step, detail } => eprintln!("[{at:6.2}s] {step}: {detail}"),
            BuildEvent::Bytes { what, done, total } => eprintln!("[{at:6.2}s] {what}: {} / {} MiB", done >> 20, total >> 20),
            BuildEvent::Retry { what, attempt, delay_ms, error } => eprintln!("[{at:6.2}s] retry {attempt} of {what} in {delay_ms} ms: {error}"),
            BuildEvent::Output { line } => eprintln!("[{at:6.2}s] | {line}"),
        }
    });
    let job = BuildJob { dockerfile, context: files, target, build_args };
    let built = builder.build(&job, progress).await?;
    eprintln!("built {} in {:.2}s with the {} builder ({} bytes)", built.tagged, started.elapsed().as_secs_f64(), builder.name(), built.size);
    println!("{}", built.digest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
