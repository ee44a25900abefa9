//! Command-line interface.

use crate::{
    config::Config,
    db::Pool,
    services::{ServiceError, Services},
    startup::{shutdown_signal, Application},
};
use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::{io::BufRead, process::ExitCode};

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
}

/// Parses the command line and runs the command.
pub async fn run() -> ExitCode {
    crate::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::CreateAdmin {
            email,
            password_stdin,
        } => create_admin(&email, password_stdin).await,
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
    tracing::info!(database = %config.database_url, "starting leptos-auth");
    Application::build(config)
        .await?
        .run_until(shutdown_signal())
        .await
}

async fn migrate() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = Pool::connect(&config).await?;
    pool.migrate().await?;
    pool.close().await;
    println!("migrations applied to {}", config.database_url);
    Ok(())
}

async fn create_admin(email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = Pool::connect(&config).await?;
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
    pool.close().await;
    result
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
