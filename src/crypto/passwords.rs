//! Argon2id hashing and verification, off the async workers.
//!
//! Every hash runs on a fixed set of `ARGON2_MAX_CONCURRENT` threads of its
//! own, behind a semaphore of the same size: a login flood queues instead of
//! exhausting memory or starving the async workers that serve everything
//! else.
//!
//! Each computation needs `ARGON2_MEMORY_KIB` of working memory (19 MiB by
//! default). It comes from a [`MemoryPool`]: at most one buffer per hashing
//! thread, allocated on first use and kept for the next computation instead
//! of being freed. Freeing it is what made the resident memory grow: glibc
//! serves a 19 MiB allocation with its own `mmap` at first, but freeing that
//! raises its mmap threshold above 19 MiB, so every later buffer came from a
//! malloc arena, where freed buffers stayed resident and fragmented the
//! arenas (about 250 MiB after a few seconds of logins with two hashing
//! threads, 800 MiB with `MALLOC_ARENA_MAX=2`). A fixed threshold
//! (`MALLOC_MMAP_THRESHOLD_`) kept the memory down but mapped and
//! page-faulted a fresh 19 MiB per hash (login throughput fell by 40%).
//! Reused buffers do neither: nothing of that size is freed (except the
//! one-off buffer of an old hash that needs more memory than configured), so
//! the threshold stays put, and their pages stay mapped from one hash to
//! the next.

use crate::config::Argon2Settings;
use argon2::{
    password_hash::{
        rand_core::{OsRng, RngCore as _},
        Output, ParamsString, PasswordHash, Salt, SaltString,
    },
    Algorithm, Argon2, Block, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Arc, Mutex, PoisonError,
};
use tokio::sync::Semaphore;

/// The algorithm and version of every hash this server makes.
const ALGORITHM: Algorithm = Algorithm::Argon2id;
const VERSION: Version = Version::V0x13;

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
    /// Working memory, reused by one computation after another.
    memory: Arc<MemoryPool>,
    /// A PHC string with the configured parameters, a random salt and a random
    /// output: verified against when the email is unknown, so both cases do
    /// the same work (no password has that output).
    dummy_hash: Arc<str>,
    /// Argon2 computations started (hashes and verifications).
    operations: Arc<AtomicU64>,
}

impl PasswordHasher {
    /// Builds a hasher. No Argon2 work and no working memory until the first
    /// hash or verification.
    pub fn new(settings: &Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        let argon2 = Argon2::new(ALGORITHM, VERSION, params.clone());
        let max_concurrent = settings.max_concurrent.max(1);
        let dummy_hash = dummy_phc(&params)?;
        Ok(PasswordHasher {
            memory: Arc::new(MemoryPool::new(params.block_count())),
            argon2,
            params,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            threads: HashThreads::start(max_concurrent)?,
            dummy_hash: dummy_hash.into(),
            operations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        let memory = self.memory.clone();
        self.run_blocking(move || hash_phc(&argon2, password.expose_secret().as_bytes(), &memory))
            .await
    }

    /// Checks `password` against `stored` (or against the dummy hash when there
    /// is no user, which never matches but costs the same).
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let params = self.params.clone();
        let memory = self.memory.clone();
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
            let matches = verify_phc(&parsed, password.expose_secret().as_bytes(), &memory);
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

/// Hashes `password` with a fresh salt into a PHC string, exactly as
/// `argon2`'s `PasswordHasher::hash_password` does, in pooled memory.
fn hash_phc(
    argon2: &Argon2<'_>,
    password: &[u8],
    memory: &MemoryPool,
) -> Result<String, HashError> {
    let failed = |e: argon2::password_hash::Error| HashError::Argon2(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(failed)?;
    let output_len = argon2
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(compute(argon2, password, salt_bytes, out, memory)?)
    })
    .map_err(failed)?;
    let hash = PasswordHash {
        algorithm: ALGORITHM.ident(),
        version: Some(VERSION.into()),
        params: ParamsString::try_from(argon2.params()).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// What a stored hash with the configured parameters looks like, with a
/// random output instead of a computed one: verifying a password against it
/// costs exactly what verifying against a real one does, and it needs no
/// Argon2 work (nor 19 MiB kept resident) at startup.
fn dummy_phc(params: &Params) -> Result<String, HashError> {
    let failed = |e: argon2::password_hash::Error| HashError::Argon2(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    OsRng.fill_bytes(&mut output);
    let hash = PasswordHash {
        algorithm: ALGORITHM.ident(),
        version: Some(VERSION.into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(failed)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches a parsed PHC string, with whatever Argon2
/// algorithm, version and parameters it names (as `argon2`'s
/// `PasswordVerifier::verify_password` does), in pooled memory. The outputs
/// are compared in constant time (`Output`'s equality).
fn verify_phc(hash: &PasswordHash<'_>, password: &[u8], memory: &MemoryPool) -> bool {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    match Output::init_with(expected.len(), |out| {
        Ok(compute(&argon2, password, salt, out, memory)?)
    }) {
        Ok(computed) => computed == expected,
        Err(_) => false,
    }
}

/// One Argon2 computation into `out`, in memory taken from the pool for its
/// duration.
fn compute(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &MemoryPool,
) -> argon2::Result<()> {
    let mut blocks = memory.take(argon2.params().block_count());
    argon2.hash_password_into_with_memory(password, salt, out, blocks.as_mut_slice())
}

/// Argon2 working memory for the configured parameters, kept between
/// computations. A buffer is taken for one computation and put back after it,
/// so it is never used by two at once; one is allocated only when none is
/// free, so there are never more buffers than computations that ran at the
/// same time (at most the hashing threads). The content left in a buffer
/// does not matter: the first pass over memory writes every block before
/// anything reads it. (It is not wiped, as freed memory was not before.)
struct MemoryPool {
    /// Blocks per buffer: what the configured parameters need.
    blocks: usize,
    free: Mutex<Vec<Box<[Block]>>>,
    /// Buffers of the pool allocated so far.
    allocated: AtomicUsize,
}

impl MemoryPool {
    fn new(blocks: usize) -> MemoryPool {
        MemoryPool {
            blocks,
            free: Mutex::new(Vec::new()),
            allocated: AtomicUsize::new(0),
        }
    }

    /// At least `blocks` blocks: a pooled buffer when that is enough (hashes
    /// with the configured parameters, or old ones with less memory), else a
    /// buffer of its own, freed after the computation (old hashes with more
    /// memory, until they are rehashed at their next sign-in).
    fn take(&self, blocks: usize) -> PooledBlocks<'_> {
        if blocks > self.blocks {
            return PooledBlocks {
                blocks: vec![Block::new(); blocks].into_boxed_slice(),
                pool: None,
            };
        }
        let free = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let blocks = free.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::Relaxed);
            vec![Block::new(); self.blocks].into_boxed_slice()
        });
        PooledBlocks {
            blocks,
            pool: Some(self),
        }
    }

    #[cfg(test)]
    fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }
}

/// Memory taken from a [`MemoryPool`]; goes back to it when dropped.
struct PooledBlocks<'a> {
    blocks: Box<[Block]>,
    /// `None` for a one-off buffer larger than the pool's.
    pool: Option<&'a MemoryPool>,
}

impl PooledBlocks<'_> {
    fn as_mut_slice(&mut self) -> &mut [Block] {
        &mut self.blocks
    }
}

impl Drop for PooledBlocks<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool {
            let blocks = std::mem::take(&mut self.blocks);
            pool.free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(blocks);
        }
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
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

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

    /// The `argon2` crate on its own, as it hashed before the memory pool.
    fn plain(algorithm: Algorithm, version: Version, m: u32, t: u32, p: u32) -> Argon2<'static> {
        Argon2::new(
            algorithm,
            version,
            Params::new(m, t, p, None).expect("params"),
        )
    }

    fn plain_hash(argon2: &Argon2<'_>, password: &str) -> String {
        argon2
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string()
    }

    const PASSWORD: &str = "correct horse battery staple";

    #[tokio::test]
    async fn our_hashes_verify_with_the_argon2_crate() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let ours = hasher.hash(secret(PASSWORD)).await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC string");
        // The crate reads algorithm, version and parameters from the string.
        let crate_default = Argon2::default();
        assert!(crate_default
            .verify_password(PASSWORD.as_bytes(), &parsed)
            .is_ok());
        assert!(crate_default
            .verify_password(b"correct horse battery stapler", &parsed)
            .is_err());
        // The same string as the crate makes for that password and salt.
        let again = plain(ALGORITHM, VERSION, 1024, 1, 1)
            .hash_password(PASSWORD.as_bytes(), parsed.salt.expect("salt"))
            .expect("hash")
            .to_string();
        assert_eq!(ours, again);
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_verify() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let theirs = plain_hash(&plain(ALGORITHM, VERSION, 1024, 1, 1), PASSWORD);
        let ok = hasher
            .verify(secret(PASSWORD), Some(theirs.clone()))
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
            .verify(secret("correct horse battery stable"), Some(theirs))
            .await
            .expect("verify");
        assert_eq!(
            wrong,
            Verification {
                matches: false,
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn old_parameters_verify_and_are_flagged_for_rehash() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let olds = [
            // Less memory than the pool's buffers, then more (a buffer of its own).
            plain(ALGORITHM, VERSION, 512, 1, 1),
            plain(ALGORITHM, VERSION, 4096, 1, 1),
            // Other passes and lanes, and the default parameters of the crate.
            plain(ALGORITHM, VERSION, 1024, 3, 1),
            plain(ALGORITHM, VERSION, 1024, 1, 2),
            Argon2::default(),
            // Other algorithms and the older version.
            plain(Algorithm::Argon2i, VERSION, 1024, 1, 1),
            plain(Algorithm::Argon2d, VERSION, 1024, 1, 1),
            plain(ALGORITHM, Version::V0x10, 1024, 1, 1),
        ];
        for old in olds {
            let stored = plain_hash(&old, PASSWORD);
            let right = hasher
                .verify(secret(PASSWORD), Some(stored.clone()))
                .await
                .expect("verify");
            assert_eq!(
                right,
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{stored}"
            );
            let wrong = hasher
                .verify(secret("not the password at all"), Some(stored.clone()))
                .await
                .expect("verify");
            assert!(!wrong.matches, "{stored}");
            assert!(!wrong.needs_rehash, "{stored}");
        }
        // The larger hash did not grow the pool's buffers or add to them.
        assert!(hasher.memory.allocated() <= 2);
        assert!(hasher
            .memory
            .free
            .lock()
            .expect("pool")
            .iter()
            .all(|buffer| buffer.len() == hasher.params.block_count()));
    }

    #[tokio::test]
    async fn hashing_beyond_the_cap_reuses_at_most_cap_buffers() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let passwords: Vec<String> = (0..24).map(|i| format!("{PASSWORD} {i}")).collect();
        let hashes = futures::future::join_all(
            passwords
                .iter()
                .map(|password| hasher.hash(secret(password))),
        )
        .await;
        // Two hashing threads: never more than two buffers, each used by one
        // computation at a time (a shared one would corrupt the outputs).
        assert!(
            hasher.memory.allocated() <= 2,
            "{}",
            hasher.memory.allocated()
        );
        let crate_default = Argon2::default();
        for (password, hash) in passwords.iter().zip(&hashes) {
            let hash = hash.as_ref().expect("hash");
            let parsed = PasswordHash::new(hash).expect("PHC string");
            assert!(crate_default
                .verify_password(password.as_bytes(), &parsed)
                .is_ok());
        }
        let checks =
            futures::future::join_all(passwords.iter().zip(&hashes).map(|(password, hash)| {
                let stored = hash.as_ref().expect("hash").clone();
                hasher.verify(secret(password), Some(stored))
            }))
            .await;
        assert!(checks
            .into_iter()
            .all(|check| check.expect("verify").matches));
        assert!(hasher.memory.allocated() <= 2);
    }

    #[test]
    fn a_reused_buffer_gives_the_same_output_as_fresh_memory() {
        let pool = MemoryPool::new(plain(ALGORITHM, VERSION, 1024, 1, 1).params().block_count());
        let salt = b"sixteen byte slt";
        let mut expected = [0u8; 32];
        let argon2 = plain(ALGORITHM, VERSION, 1024, 2, 1);
        argon2
            .hash_password_into(PASSWORD.as_bytes(), salt, &mut expected)
            .expect("hash");
        // Leave the pool's one buffer full of another computation's blocks.
        let mut other = [0u8; 32];
        compute(
            &plain(ALGORITHM, VERSION, 1024, 3, 1),
            b"another password",
            b"another salt here",
            &mut other,
            &pool,
        )
        .expect("hash");
        let mut out = [0u8; 32];
        compute(&argon2, PASSWORD.as_bytes(), salt, &mut out, &pool).expect("hash");
        assert_eq!(out, expected);
        assert_eq!(pool.allocated(), 1);
    }

    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_stored_hash_costs() {
        let hasher = PasswordHasher::new(&settings(1024)).expect("hasher");
        let dummy = PasswordHash::new(&hasher.dummy_hash).expect("PHC string");
        assert!(uses_params(&dummy, &hasher.params));
        // Same algorithm, version, parameters, salt and output lengths as a
        // real hash: the same computation.
        let real = hasher.hash(secret(PASSWORD)).await.expect("hash");
        let real = PasswordHash::new(&real).expect("PHC string");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.salt.map(|s| s.len()), real.salt.map(|s| s.len()));
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        let before = hasher.operations();
        let result = hasher.verify(secret(PASSWORD), None).await.expect("verify");
        assert!(!result.matches && !result.needs_rehash);
        assert_eq!(hasher.operations(), before + 1);
    }
}
