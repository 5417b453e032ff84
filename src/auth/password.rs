//! Password hashing. bcrypt is deliberately slow, so it runs on the blocking
//! pool, never on the async workers that serve other requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Password hashes computed or checked at once, per core. They are pure CPU:
/// more at a time than there are cores only makes each slower, and every
/// one holds a thread of the blocking pool, which SQLite's statements and
/// commits need too. Callers beyond this wait their turn without a thread.
pub const PASSWORD_WORK_PER_CORE: usize = 1;

/// The highest bcrypt cost checked (each step doubles the work; Django and
/// threatwatch use 12). A stored hash asking for more is treated as a
/// wrong password, unless this instance itself hashes at a higher cost.
pub const MAX_BCRYPT_COST: u32 = 14;
/// The most memory an argon2 hash may ask for, in KiB (256 MiB; Django's
/// default is 100 MiB): a verification allocates it all.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes an argon2 hash may ask for (Django's default is 2).
pub const MAX_ARGON2_TIME: u32 = 10;
/// The most lanes an argon2 hash may ask for (Django's default is 8).
pub const MAX_ARGON2_LANES: u32 = 64;
/// The most PBKDF2 iterations checked (Django 6.0 uses 1,000,000).
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// The longest stored hash looked at; Django's column holds 128 characters
/// and ours are 60.
pub const MAX_HASH_BYTES: usize = 512;

#[derive(Clone)]
pub struct Passwords {
    cost: u32,
    /// A hash of a random password at the same cost, checked when the user
    /// does not exist so that an unknown username takes as long to refuse as
    /// a wrong password (no account enumeration by timing).
    decoy: String,
    work: Arc<Work>,
}

/// The permits for hashing work, and how many ran at once at most.
struct Work {
    permits: Semaphore,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Work {
    fn new(permits: usize) -> Self {
        Self {
            permits: Semaphore::new(permits.max(1)),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }

    /// Runs `job` on the blocking pool once a permit is free.
    async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R> {
        let permit = self.permits.acquire().await.map_err(Error::internal)?;
        let work = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let now = work.running.fetch_add(1, Ordering::SeqCst) + 1;
            work.most.fetch_max(now, Ordering::SeqCst);
            let out = job();
            work.running.fetch_sub(1, Ordering::SeqCst);
            out
        })
        .await
        .map_err(Error::internal);
        drop(permit);
        result
    }
}

/// How many hashing jobs may run at once on this machine.
pub fn password_work_permits() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.saturating_mul(PASSWORD_WORK_PER_CORE).max(1)
}

impl Passwords {
    pub async fn new(cost: u32) -> Result<Self> {
        Self::with_permits(cost, password_work_permits()).await
    }

    /// With `permits` hashing jobs at once (tests choose it).
    pub async fn with_permits(cost: u32, permits: usize) -> Result<Self> {
        let work = Arc::new(Work::new(permits));
        let secret = crate::auth::token::random_secret(16);
        let decoy = work
            .run(move || bcrypt::hash(secret.as_bytes(), cost))
            .await?
            .map_err(Error::internal)?;
        Ok(Self { cost, decoy, work })
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let (password, cost) = (password.to_string(), self.cost);
        self.work
            .run(move || bcrypt::hash(password.as_bytes(), cost))
            .await?
            .map_err(Error::internal)
    }

    /// Checks `password` against `hash`, or against the decoy when there is
    /// no account, and says whether it matched a real account.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let real = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).to_string();
        let password = password.to_string();
        let bcrypt_cap = MAX_BCRYPT_COST.max(self.cost);
        let matched = self
            .work
            .run(move || within_caps(&hash, bcrypt_cap).is_ok() && check(&password, &hash))
            .await?;
        Ok(real && matched)
    }

    /// The most hashing jobs that have run at once (for tests).
    pub fn most_at_once(&self) -> usize {
        self.work.most.load(Ordering::SeqCst)
    }

    /// Whether a stored hash should be replaced by a bcrypt hash at this
    /// work factor on the next successful login (hashes brought over from
    /// Django, or bcrypt at a lower cost).
    pub fn needs_rehash(&self, hash: &str) -> bool {
        match hash.strip_prefix("$2").and_then(|rest| rest.get(2..4)) {
            Some(cost) => cost.parse::<u32>().map_or(true, |c| c < self.cost),
            None => true,
        }
    }
}

/// Whether a hash brought over from elsewhere may be kept: `Err` says which
/// cap it breaks. One that does would never be checked (see `verify`).
pub fn importable(hash: &str) -> Result<(), String> {
    within_caps(hash, MAX_BCRYPT_COST)
}

/// Refuses a stored hash whose own parameters ask for more work or memory
/// than any sane hash: it comes from the database (an import, or a row
/// edited by hand), and checking it would let one login stall the server.
fn within_caps(hash: &str, bcrypt_cap: u32) -> Result<(), String> {
    if hash.len() > MAX_HASH_BYTES {
        return Err(format!(
            "the hash is {} bytes long, over {MAX_HASH_BYTES}",
            hash.len()
        ));
    }
    if let Some(rest) = hash.strip_prefix("pbkdf2_sha256$") {
        let iterations = rest.split('$').next().and_then(|n| n.parse::<u64>().ok());
        return match iterations {
            Some(n) if n > u64::from(MAX_PBKDF2_ITERATIONS) => Err(format!(
                "PBKDF2 with {n} iterations is over {MAX_PBKDF2_ITERATIONS}"
            )),
            _ => Ok(()),
        };
    }
    if let Some(phc) = hash.strip_prefix("argon2") {
        let Ok(parsed) = argon2::PasswordHash::new(phc) else {
            return Ok(());
        };
        let param = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
        let (m, t, p) = (param("m"), param("t"), param("p"));
        if m > MAX_ARGON2_MEMORY_KIB {
            return Err(format!(
                "argon2 memory of {m} KiB is over {MAX_ARGON2_MEMORY_KIB} KiB"
            ));
        }
        if t > MAX_ARGON2_TIME {
            return Err(format!("argon2 time of {t} is over {MAX_ARGON2_TIME}"));
        }
        if p > MAX_ARGON2_LANES {
            return Err(format!(
                "argon2 parallelism of {p} is over {MAX_ARGON2_LANES}"
            ));
        }
        return Ok(());
    }
    let bcrypt = hash.strip_prefix("bcrypt_sha256$").unwrap_or(hash);
    match bcrypt_cost(bcrypt) {
        Some(cost) if cost > bcrypt_cap => Err(format!("bcrypt cost {cost} is over {bcrypt_cap}")),
        _ => Ok(()),
    }
}

/// The cost of a `$2a$`/`$2b$`/`$2x$`/`$2y$` hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash.strip_prefix("$2")?;
    let (_, rest) = rest.split_once('$')?;
    rest.get(..2)?.parse().ok()
}

/// Verifies bcrypt hashes (ours) and the password hashes of Django, so
/// that accounts brought over keep their passwords:
/// `pbkdf2_sha256$<iterations>$<salt>$<base64>` and
/// `bcrypt_sha256$<bcrypt of the hex SHA-256 of the password>` and
/// `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`. A malformed or
/// unknown hash (Django's unusable `!...` among them) counts as a mismatch,
/// never as a crash. Callers bound the hash's parameters first.
fn check(password: &str, hash: &str) -> bool {
    if let Some(rest) = hash.strip_prefix("pbkdf2_sha256$") {
        return django_pbkdf2(password, rest).unwrap_or(false);
    }
    if let Some(phc) = hash.strip_prefix("argon2") {
        return django_argon2(password, phc).unwrap_or(false);
    }
    if let Some(inner) = hash.strip_prefix("bcrypt_sha256$") {
        use sha2::{Digest, Sha256};
        let hex: String = Sha256::digest(password.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return bcrypt::verify(hex.as_bytes(), inner).unwrap_or(false);
    }
    bcrypt::verify(password.as_bytes(), hash).unwrap_or(false)
}

fn django_pbkdf2(password: &str, rest: &str) -> Option<bool> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let mut parts = rest.splitn(3, '$');
    let iterations: u32 = parts.next()?.parse().ok()?;
    let salt = parts.next()?;
    let expected = STANDARD.decode(parts.next()?).ok()?;
    if expected.is_empty()
        || expected.len() > 64
        || !(1..=MAX_PBKDF2_ITERATIONS).contains(&iterations)
    {
        return None;
    }
    let mut got = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut got);
    // Compared in constant time.
    Some(
        got.iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0,
    )
}

/// Django stores argon2-cffi's PHC string behind an `argon2` prefix; the
/// parameters come from the hash itself, so they are bounded first: a hash
/// asking for gigabytes of memory would be a way to stall the server.
fn django_argon2(password: &str, phc: &str) -> Option<bool> {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(phc).ok()?;
    let param = |name: &str| -> Option<u32> { parsed.params.get_decimal(name) };
    let (m, t, p) = (param("m")?, param("t")?, param("p")?);
    if m > MAX_ARGON2_MEMORY_KIB || t > MAX_ARGON2_TIME || p > MAX_ARGON2_LANES {
        return None;
    }
    Some(
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_refuses() {
        let p = Passwords::new(4).await.unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
        assert!(!p.verify("x", Some("not a hash")).await.unwrap());
        assert!(!p.needs_rehash(&h) || h.contains("$04$"));
    }

    /// More checks than permits at once: they queue for a permit instead of
    /// each taking a thread of the blocking pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn checks_run_at_most_permits_at_once() {
        let p = Passwords::with_permits(6, 2).await.unwrap();
        let h = p.hash("correct horse").await.unwrap();
        let checks: Vec<_> = (0..12)
            .map(|i| {
                let (p, h) = (p.clone(), h.clone());
                tokio::spawn(async move { p.verify(&format!("guess {i}"), Some(&h)).await })
            })
            .collect();
        for c in checks {
            assert!(!c.await.unwrap().unwrap());
        }
        assert_eq!(p.most_at_once(), 2);
        assert_eq!(
            Passwords::new(4)
                .await
                .unwrap()
                .work
                .permits
                .available_permits(),
            password_work_permits()
        );
    }

    #[test]
    fn hashes_beyond_the_caps_are_refused() {
        let bcrypt15 = format!("$2b$15${}", "a".repeat(53));
        assert!(importable(&bcrypt15)
            .unwrap_err()
            .contains("bcrypt cost 15"));
        assert!(importable(&format!("bcrypt_sha256${bcrypt15}")).is_err());
        assert!(importable(&format!("$2b$12${}", "a".repeat(53))).is_ok());
        // A server that itself hashes at 15 still checks its own hashes.
        assert!(within_caps(&bcrypt15, 15).is_ok());
        assert!(importable("pbkdf2_sha256$2000001$salt$AAAA")
            .unwrap_err()
            .contains("2000001"));
        assert!(importable("pbkdf2_sha256$1000000$salt$AAAA").is_ok());
        let argon = |m: u32, t: u32, p: u32| {
            format!("argon2$argon2id$v=19$m={m},t={t},p={p}$MW1Zdk1jUUxSN2FQMnJxMExBSFhhSg$C740Naw0dRGoWpnwTvWbbrvZ3Pkn8eS87rL+CR2o0v0")
        };
        assert!(importable(&argon(102_400, 2, 8)).is_ok());
        assert!(importable(&argon(262_145, 2, 8))
            .unwrap_err()
            .contains("memory"));
        assert!(importable(&argon(102_400, 11, 8))
            .unwrap_err()
            .contains("time"));
        assert!(importable(&"x".repeat(MAX_HASH_BYTES + 1)).is_err());
        assert!(importable("!unusable").is_ok());
    }

    /// The caps hold at verify time, whatever put the hash in the database.
    #[tokio::test]
    async fn over_cap_stored_hashes_never_match() {
        use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
        let p = Passwords::new(4).await.unwrap();
        let params = Params::new(64, MAX_ARGON2_TIME + 1, 1, Some(32)).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"right", b"0HtXsxBbtRzuDOfG")
            .unwrap();
        let stored = format!("argon2{phc}");
        assert!(!p.verify("right", Some(&stored)).await.unwrap());
        let sane = Params::new(64, MAX_ARGON2_TIME, 1, Some(32)).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, sane)
            .hash_password_with_salt(b"right", b"0HtXsxBbtRzuDOfG")
            .unwrap();
        assert!(p
            .verify("right", Some(&format!("argon2{phc}")))
            .await
            .unwrap());
    }

    #[test]
    fn django_hashes() {
        // Made like Django's PBKDF2PasswordHasher: base64 of PBKDF2-HMAC-SHA256.
        use base64::Engine;
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"s3cret-pass", b"NaClNaCl", 1000, &mut out);
        let stored = format!(
            "pbkdf2_sha256$1000$NaClNaCl${}",
            base64::engine::general_purpose::STANDARD.encode(out)
        );
        assert!(check("s3cret-pass", &stored));
        assert!(!check("other-pass", &stored));
        assert!(!check("s3cret-pass", "pbkdf2_sha256$1000$NaClNaCl$!!!"));
        assert!(!check("s3cret-pass", "pbkdf2_sha256$999999999999$x$AAAA"));
        use sha2::{Digest, Sha256};
        let hex: String = Sha256::digest(b"s3cret-pass")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let inner = bcrypt::hash(hex.as_bytes(), 4).unwrap();
        assert!(check("s3cret-pass", &format!("bcrypt_sha256${inner}")));
        assert!(!check("nope", &format!("bcrypt_sha256${inner}")));
    }

    #[test]
    fn django_argon2_hashes() {
        // Written by Django's Argon2PasswordHasher (argon2-cffi, Django's
        // default parameters), as a Django project published it in its docs.
        let stored = "argon2$argon2id$v=19$m=102400,t=2,p=8$MW1Zdk1jUUxSN2FQMnJxMExBSFhhSg$C740Naw0dRGoWpnwTvWbbrvZ3Pkn8eS87rL+CR2o0v0";
        assert!(check("912459512jaSBDas", stored));
        assert!(!check("912459512jaSBDaS", stored));
        // Parameters beyond any sane hash are refused, not computed.
        assert!(!check(
            "x",
            "argon2$argon2id$v=19$m=4194304,t=2,p=8$MW1Zdk1jUUxSN2FQMnJxMExBSFhhSg$C740Naw0dRGoWpnwTvWbbrvZ3Pkn8eS87rL+CR2o0v0"
        ));
        assert!(!check("x", "argon2$garbage"));
        assert!(!check("x", "!unusable-django-password"));
    }
}
