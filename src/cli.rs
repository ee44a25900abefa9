//! Command-line interface: `serve` (the default), `migrate`, `create-admin`,
//! `reseal` and `config check`.

use crate::{
    config::{Config, LogFormat},
    db::Pool,
    services::{ServiceError, Services},
    startup::{shutdown_signal, Application},
    telemetry::{Output, DEFAULT_FILTER},
};
use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::{
    io::{BufRead, Write},
    process::ExitCode,
};
use tracing_subscriber::EnvFilter;

/// leptos-auth: user management and authentication (pages and JSON API).
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the pages and the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Create an admin account, or promote an existing account to admin.
    CreateAdmin {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Seal every stored TOTP secret again with DATA_ENCRYPTION_KEY (after a
    /// key rotation; the retired key must be in DATA_ENCRYPTION_OLD_KEYS).
    Reseal,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting as NAME=value (secrets as ***); exit non-zero,
    /// naming the variable, when a setting is invalid.
    Check,
}

/// Parses the command line and runs the command.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    // The server's logs are its output; other commands print their result
    // on stdout and log to stderr.
    let output = match command {
        Command::Serve => Output::Stdout,
        _ => Output::Stderr,
    };
    crate::telemetry::init(LogFormat::from_env(), output);
    let result = match command {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::CreateAdmin {
            email,
            password_stdin,
        } => create_admin(&email, password_stdin).await,
        Command::Reseal => reseal().await,
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tracing::info!(database = %config.database.url, "starting leptos-auth");
    Application::build(config)
        .await?
        .run_until(shutdown_signal())
        .await
}

/// Validates the configuration the way startup does (without touching the
/// database) and prints it, secrets masked.
fn config_check() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    EnvFilter::try_new(&rust_log)
        .map_err(|e| anyhow::anyhow!("invalid configuration: RUST_LOG: {e}"))?;
    let site_root = crate::state::leptos_options(&config)
        .context("invalid configuration: LEPTOS_* settings")?
        .site_root;
    let mut out = std::io::stdout().lock();
    for (name, value) in config.settings() {
        writeln!(out, "{name}={value}")?;
    }
    writeln!(out, "LEPTOS_SITE_ROOT={site_root}")?;
    writeln!(out, "RUST_LOG={rust_log}")?;
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = Pool::connect(&config.database).await?;
    pool.migrate().await?;
    pool.close().await;
    println!("migrations applied to {}", config.database.url);
    Ok(())
}

async fn create_admin(email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = Pool::connect(&config.database).await?;
    pool.migrate().await?;
    let services = Services::new(&config, pool.repositories())?;
    let result = async {
        if let Some(user) = services
            .users
            .promote_to_admin(email)
            .await
            .map_err(describe)?
        {
            println!("{} is now an admin (password unchanged)", user.email);
            return Ok(());
        }
        let password = if password_stdin {
            read_password_line()?
        } else {
            prompt_password()?
        };
        let user = services
            .users
            .create_admin(email, password)
            .await
            .map_err(describe)?;
        println!("created admin {} (id {})", user.email, user.id);
        Ok(())
    }
    .await;
    services.audit_log.flush().await;
    // Queued messages stay in the outbox for the server if not sent now.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), services.outbox.flush()).await;
    services.outbox.stop();
    pool.close().await;
    result
}

async fn reseal() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = Pool::connect(&config.database).await?;
    pool.migrate().await?;
    let services = Services::new(&config, pool.repositories())?;
    let result = services.second_factors.reseal_all().await.map_err(describe);
    services.outbox.stop();
    pool.close().await;
    let report = result?;
    println!(
        "resealed {} TOTP secrets with the current key ({} were already, {} open with no configured key)",
        report.resealed, report.current, report.unreadable
    );
    anyhow::ensure!(
        report.unreadable == 0,
        "{} secrets open with no configured key: add the key they were sealed with to DATA_ENCRYPTION_OLD_KEYS",
        report.unreadable
    );
    Ok(())
}

fn describe(err: ServiceError) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

/// First line of stdin, without its line ending; the password is otherwise used exactly as typed.
fn read_password_line() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(SecretString::from(password.to_owned()))
}

fn prompt_password() -> anyhow::Result<SecretString> {
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let second = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
    anyhow::ensure!(first == second, "the passwords do not match");
    Ok(SecretString::from(first))
}
