//! Integration tests: the real axum router on real SQLite and real PostgreSQL.
//! Every test body runs once per backend (see `both_backends!`).

#[macro_use]
mod common;

mod architecture;
mod audit;
mod auth;
mod auth_cache;
mod cli;
mod cluster;
mod delivery;
mod email;
mod http;
mod input;
mod observability;
mod pages;
mod passkeys;
mod repositories;
mod sessions;
mod throttle;
mod two_factor;
mod users;
