//! Argon2id hashing and verification, off the async workers.
//!
//! Every hash runs on a fixed set of `ARGON2_MAX_CONCURRENT` threads of its
//! own, behind a semaphore of the same size: a login flood queues instead of
//! exhausting memory (each hash holds `ARGON2_MEMORY_KIB` of RAM) or starving
//! the async workers that serve everything else. Dedicated threads rather
//! than tokio's blocking pool: the allocator keeps a freed hash's memory in
//! the arena of the thread that used it, so hashes spread over the blocking
//! pool's many threads kept hundreds of MiB resident after a flood; on a
//! fixed set of threads the resident memory stays at about threads x memory.

use crate::config::Argon2Settings;
use argon2::{
    password_hash::{
        rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString,
    },
    Algorithm, Argon2, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use tokio::sync::Semaphore;

/// Hashing failed for a reason that is not the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing queue is closed")]
    Closed,
    #[error("could not start the hashing threads: {0}")]
    Threads(#[from] std::io::Error),
}

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The stored hash uses other parameters than the configured ones.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with the configured Argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: Params,
    permits: Arc<Semaphore>,
    threads: HashThreads,
    /// A real hash of a random password with the configured parameters: verified
    /// against when the email is unknown, so both cases take the same time.
    dummy_hash: Arc<str>,
    /// Argon2 computations started (hashes and verifications).
    operations: Arc<AtomicU64>,
}

impl PasswordHasher {
    /// Builds a hasher; computes the dummy hash once (a few tens of milliseconds).
    pub fn new(settings: &Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let dummy_password = SaltString::generate(&mut OsRng);
        let dummy_hash = argon2
            .hash_password(dummy_password.as_str().as_bytes(), &salt)
            .map_err(|e| HashError::Argon2(e.to_string()))?
            .to_string();
        Ok(PasswordHasher {
            argon2,
            params,
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            threads: HashThreads::start(settings.max_concurrent.max(1))?,
            dummy_hash: dummy_hash.into(),
            operations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        self.run_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Argon2(e.to_string()))
        })
        .await
    }

    /// Checks `password` against `stored` (or against the dummy hash when there
    /// is no user, which never matches but costs the same).
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let argon2 = self.argon2.clone();
        let params = self.params.clone();
        let has_user = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.run_blocking(move || {
            let parsed = match PasswordHash::new(&stored) {
                Ok(parsed) => parsed,
                // A corrupt stored hash cannot match; say so rather than fail the request.
                Err(_) => {
                    return Ok(Verification {
                        matches: false,
                        needs_rehash: false,
                    })
                }
            };
            let matches = argon2
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(Verification {
                matches: matches && has_user,
                needs_rehash: matches && has_user && !uses_params(&parsed, &params),
            })
        })
        .await
    }

    /// How many Argon2 computations (hashes and verifications) this hasher
    /// has started: shows whether a request did any password work.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let queued = std::time::Instant::now();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        crate::metrics::argon2_queue_wait(queued.elapsed());
        self.operations.fetch_add(1, Ordering::Relaxed);
        let (done, result) = tokio::sync::oneshot::channel();
        self.threads.run(Box::new(move || {
            let _ = done.send(work());
            drop(permit);
        }))?;
        result.await.map_err(|_| HashError::Closed)?
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: they take jobs from one queue and exit when every
/// hasher sharing them is gone.
#[derive(Clone)]
struct HashThreads {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashThreads {
    fn start(count: usize) -> std::io::Result<HashThreads> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..count {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job loses its answer (the caller sees
                        // `Closed`), never the thread.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                })?;
        }
        Ok(HashThreads { jobs })
    }

    fn run(&self, job: Job) -> Result<(), HashError> {
        self.jobs.send(job).map_err(|_| HashError::Closed)
    }
}

/// Whether a stored hash was made with exactly these Argon2id parameters.
fn uses_params(hash: &PasswordHash<'_>, params: &Params) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into())
    {
        return false;
    }
    match Params::try_from(hash) {
        Ok(stored) => {
            stored.m_cost() == params.m_cost()
                && stored.t_cost() == params.t_cost()
                && stored.p_cost() == params.p_cost()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory_kib: u32) -> Argon2Settings {
        Argon2Settings {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_phc_strings_that_verify() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let a = hasher
            .hash(secret("correct horse battery staple"))
            .await
            .expect("hash");
        let b = hasher
            .hash(secret("correct horse battery staple"))
            .await
            .expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        let ok = hasher
            .verify(secret("correct horse battery staple"), Some(a.clone()))
            .await
            .expect("verify");
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(secret("Correct horse battery staple"), Some(a))
            .await
            .expect("verify");
        assert!(!wrong.matches);
    }

    #[tokio::test]
    async fn a_missing_user_never_matches() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let result = hasher
            .verify(secret("anything at all here"), None)
            .await
            .expect("verify");
        assert!(!result.matches);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_are_flagged_for_rehash() {
        let old = PasswordHasher::new(&settings(1024)).expect("hasher");
        let new = PasswordHasher::new(&settings(2048)).expect("hasher");
        let stored = old
            .hash(secret("correct horse battery staple"))
            .await
            .expect("hash");
        let result = new
            .verify(secret("correct horse battery staple"), Some(stored))
            .await
            .expect("verify");
        assert_eq!(
            result,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_does_not_match_and_does_not_fail() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let result = hasher
            .verify(secret("whatever"), Some("not-a-phc-string".into()))
            .await
            .expect("verify");
        assert!(!result.matches);
    }
}
