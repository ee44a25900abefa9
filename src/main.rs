//! The `leptos-auth` binary: parse the command line, run the command.

/// mimalloc instead of glibc's malloc: rendering a page allocates and frees
/// many small objects, which glibc's malloc handles slowly (BENCHMARKS.md,
/// analysis: "mimalloc"). Only this binary uses it; the
/// library and its tests keep the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    leptos_auth::cli::run().await
}
