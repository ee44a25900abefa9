//! The `leptos-auth` binary: parse the command line, run the command.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    leptos_auth::cli::run().await
}
