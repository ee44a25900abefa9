//! Micro-benchmarks (`cargo bench --features ssr`, run by `make bench`):
//! access-token signing and verification, refresh-token hashing, the password
//! policy check, one Argon2id hash with the default parameters (alone, and
//! one per core at once, as a login burst runs them), and the per-request authentication check (one query) on SQLite and PostgreSQL.

use criterion::{criterion_group, criterion_main, Criterion};
use leptos_auth::{
    config::{Argon2Settings, Config},
    crypto::{hash_opaque_token, PasswordHasher, TokenService},
    domain::PasswordPolicy,
    services::ClientInfo,
    state::AppState,
};
use secrecy::SecretString;
use std::{collections::HashMap, hint::black_box, time::Duration};

#[path = "../tests/it/common/pg.rs"]
#[allow(dead_code)]
mod pg;

const PASSWORD: &str = "correct horse battery staple";

fn tokens(c: &mut Criterion) {
    let secret = SecretString::from("benchmark-secret-benchmark-secret-0123456789".to_owned());
    let service = TokenService::new(
        &secret,
        "leptos-auth",
        "leptos-auth",
        Duration::from_secs(900),
    );
    let now = chrono::Utc::now();
    c.bench_function("access_token_sign", |b| {
        b.iter(|| {
            service
                .issue_access(black_box(42), black_box(7), now)
                .expect("sign")
        })
    });
    let token = service.issue_access(42, 7, now).expect("sign");
    c.bench_function("access_token_verify", |b| {
        b.iter(|| service.verify_access(black_box(&token)).expect("verify"))
    });
    let refresh = service.new_refresh_token();
    let _ = refresh.hash;
    c.bench_function("refresh_token_hash", |b| {
        b.iter(|| hash_opaque_token(black_box("3q2-7wHDeR0C3Zp8yBtUoYQ9dPzW1vVd0bq8uHgk1Fc")))
    });
}

fn policy(c: &mut Criterion) {
    let policy = PasswordPolicy::new(12);
    c.bench_function("password_policy_check", |b| {
        b.iter(|| policy.check(black_box(PASSWORD), Some("ada")).is_ok())
    });
}

fn argon2(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let hasher = PasswordHasher::new(&Argon2Settings::default()).expect("hasher");
    let mut group = c.benchmark_group("argon2");
    group.sample_size(20);
    group.bench_function("argon2id_hash_default", |b| {
        b.iter(|| {
            runtime
                .block_on(hasher.hash(SecretString::from(PASSWORD.to_owned())))
                .expect("hash")
        })
    });
    // One hash per core at once (the server's hashing threads under load):
    // the time of the whole batch. Cores share caches and memory bandwidth,
    // so this is the throughput a machine can really reach, next to the
    // bound `cores / one hash` that assumes they do not.
    let cores = Argon2Settings::default().max_concurrent;
    group.bench_function("argon2id_hash_default_one_per_core", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let hashes =
                    (0..cores).map(|_| hasher.hash(SecretString::from(PASSWORD.to_owned())));
                for hash in futures::future::join_all(hashes).await {
                    hash.expect("hash");
                }
            })
        })
    });
    group.finish();
}

/// The per-request check: verify the JWT, then read session and user in one
/// query (`*_database`, cache off) or find them in the instance's
/// authentication cache (`*_cached`, the default).
fn auth_check(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, cache_seconds) in [
        ("sqlite_database", "0"),
        ("sqlite_cached", "30"),
        ("postgres_database", "0"),
        ("postgres_cached", "30"),
    ] {
        let url = if name.starts_with("sqlite") {
            format!(
                "sqlite://{}",
                dir.path().join(format!("{name}.db")).display()
            )
        } else {
            runtime.block_on(pg::fresh_database())
        };
        let mut vars = HashMap::new();
        vars.insert("DATABASE_URL", url);
        vars.insert("DATA_DIR", dir.path().display().to_string());
        vars.insert(
            "JWT_SECRET",
            "benchmark-secret-benchmark-secret-0123456789".to_owned(),
        );
        vars.insert("ARGON2_MEMORY_KIB", "1024".to_owned());
        vars.insert("ARGON2_ITERATIONS", "1".to_owned());
        vars.insert("AUTH_CACHE_SECONDS", cache_seconds.to_owned());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
        let services = runtime.block_on(async {
            let (state, _pool) = AppState::initialize(config).await.expect("app");
            state.services.clone()
        });
        let token = runtime.block_on(async {
            services
                .users
                .create_admin("bench@example.com", SecretString::from(PASSWORD.to_owned()))
                .await
                .expect("user");
            let signed_in = services
                .auth
                .login(
                    "bench@example.com",
                    SecretString::from(PASSWORD.to_owned()),
                    None,
                    &ClientInfo::default(),
                )
                .await
                .expect("login");
            match signed_in {
                leptos_auth::services::SignIn::Complete(pair) => pair.access_token,
                leptos_auth::services::SignIn::SecondFactorRequired(_) => {
                    unreachable!("the benchmark account has no second factor")
                }
            }
        });
        c.bench_function(&format!("auth_check_{name}"), |b| {
            b.iter(|| {
                runtime
                    .block_on(
                        services
                            .auth
                            .authenticate(black_box(&token), ClientInfo::default()),
                    )
                    .expect("authenticated")
            })
        });
    }
}

criterion_group!(benches, tokens, policy, argon2, auth_check);
criterion_main!(benches);
