use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use warship_host::config::Config;
use warship_host::server::{self, Server};
use warship_host::telemetry;
use warship_host::users::Users;

/// warship: upload a WAR, pick Tomcat and JDK, and roll it out to Kubernetes.
#[derive(Parser)]
#[command(name = "warship", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: the REST API and everything behind it.
    Serve {
        #[arg(long, default_value = "platform.toml", env = "WARSHIP_CONFIG")]
        config: PathBuf,
    },
    /// Check a platform.toml (with WARSHIP__* overrides applied) and exit.
    CheckConfig {
        #[arg(long, default_value = "platform.toml", env = "WARSHIP_CONFIG")]
        config: PathBuf,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print its API token (shown once; only its hash is kept).
    Add {
        name: String,
        #[arg(long, default_value = "platform.toml", env = "WARSHIP_CONFIG")]
        config: PathBuf,
    },
}

fn load(path: &PathBuf) -> anyhow::Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
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
            let config = load(&config)?;
            telemetry::init(config.server.log_format);
            Server::from_config(config).await?.run().await
        }
        Command::CheckConfig { config: path } => {
            let config = load(&path)?;
            let plugins = server::load_plugins(&config).await?;
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
        Command::User { command: UserCommand::Add { name, config } } => {
            let config = load(&config)?;
            let store = server::open_store(&config).await?;
            let users = Users::new(store, &config.users.static_users)?;
            let token = users.add(&name).await?;
            eprintln!("created user {name}; its API token follows and will not be shown again:");
            println!("{token}");
            Ok(())
        }
    }
}
