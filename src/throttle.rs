//! Throttling against brute force and floods (governor's GCRA limiters).
//!
//! - Requests: per client IP when anonymous, per user, per API key.
//! - Password checks: per client IP, counted per `login` field executed, so
//!   aliases and batches do not multiply the guesses a request buys.
//! - Failed logins per username: after a few, each further attempt on that
//!   account waits a little longer, up to a short cap, so a botnet spread over
//!   many IPs cannot grind one account, yet a real user is never locked out
//!   for more than a minute after the attack stops.
//!
//! Memory stays bounded: idle keys are dropped every few seconds, and when a
//! flood of distinct addresses fills a table anyway, new anonymous keys are
//! refused until it drains (fail closed) rather than growing without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GQuota, RateLimiter};

use crate::config::Quota;
use crate::error::{Error, Result};

/// Keys a limiter may hold before new anonymous keys are refused.
const MAX_KEYS: usize = 100_000;
/// Failed logins per username before attempts start to wait.
const FREE_FAILURES: u32 = 5;
/// The longest a username waits between attempts while being guessed at.
const MAX_LOGIN_DELAY: Duration = Duration::from_secs(60);

/// Who a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Anonymous(IpKey),
    User(i64),
    ApiKey(i64),
}

/// A client address as a throttling key: IPv6 clients are keyed by their
/// /64, since one host can hold billions of addresses inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpKey(u128);

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                None => Self((u128::from(v6) >> 64) << 64 | 1 << 32),
            },
        }
    }
}

struct Limiter<K: std::hash::Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    fn new(q: Quota) -> Self {
        let count = NonZeroU32::new(q.count).unwrap_or(NonZeroU32::MIN);
        let period = q.per / q.count.max(1);
        let quota = GQuota::with_period(period)
            .unwrap_or_else(|| GQuota::per_second(count))
            .allow_burst(count);
        Self {
            inner: RateLimiter::keyed(quota),
        }
    }

    /// Takes `n` cells for `key`, or says how long to wait.
    fn take(&self, key: &K, n: u32, bounded: bool) -> Result<()> {
        if bounded && self.inner.len() >= MAX_KEYS {
            self.inner.retain_recent();
            if self.inner.len() >= MAX_KEYS {
                return Err(Error::RateLimited {
                    retry_after_secs: 10,
                });
            }
        }
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match self.inner.check_key_n(key, n) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(not_until)) => Err(retry(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            // More operations than the whole quota: refuse for a full period.
            Err(_) => Err(Error::RateLimited {
                retry_after_secs: 60,
            }),
        }
    }

    fn housekeeping(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

fn retry(wait: Duration) -> Error {
    Error::RateLimited {
        retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}

/// A username as the failure table keys it: a digest of its lowercase
/// form, so that an entry costs the same whatever name was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UsernameKey([u8; 32]);

impl UsernameKey {
    pub fn of(username: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let mut buf = [0u8; 4];
        for c in username.chars().flat_map(char::to_lowercase) {
            digest.update(c.encode_utf8(&mut buf).as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&digest.finalize());
        Self(key)
    }
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    /// Attempts let through whose password check has not finished.
    pending: u32,
    next_allowed: Instant,
    last: Instant,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Self {
            count: 0,
            pending: 0,
            next_allowed: now,
            last: now,
        }
    }
}

/// The wait after `failures` failed logins on one username: none for the
/// first few, then doubling up to the cap.
fn backoff(failures: u32) -> Option<Duration> {
    let past_free = failures.checked_sub(FREE_FAILURES + 1)?;
    Some(Duration::from_secs(1 << past_free.min(6)).min(MAX_LOGIN_DELAY))
}

/// One password check let through by `Throttle::login_attempt`. Until it
/// is settled it counts as a failure already, so that parallel guesses at
/// one username cannot all slip through the same window; dropped without
/// an outcome (the check itself failed) it gives its place back.
#[must_use = "settle the attempt with failed() or succeeded()"]
pub struct LoginAttempt<'a> {
    throttle: &'a Throttle,
    key: UsernameKey,
    open: bool,
}

impl LoginAttempt<'_> {
    /// The password was wrong (or the user unknown): past a few failures,
    /// each one doubles the wait for the next attempt, up to a minute.
    pub fn failed(mut self) {
        self.open = false;
        let now = Instant::now();
        let mut failures = self.throttle.failures();
        make_room(&mut failures, now);
        let f = failures
            .entry(self.key)
            .or_insert_with(|| Failures::new(now));
        f.pending = f.pending.saturating_sub(1);
        f.count = f.count.saturating_add(1);
        f.last = now;
        if let Some(wait) = backoff(f.count) {
            f.next_allowed = f.next_allowed.max(now + wait);
        }
    }

    pub fn succeeded(mut self) {
        self.open = false;
        self.throttle.failures().remove(&self.key);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Some(f) = self.throttle.failures().get_mut(&self.key) {
                f.pending = f.pending.saturating_sub(1);
            }
        }
    }
}

/// Keeps the failure table under `MAX_KEYS` before an entry is added.
fn make_room(failures: &mut HashMap<UsernameKey, Failures>, now: Instant) {
    if failures.len() < MAX_KEYS {
        return;
    }
    failures.retain(|_, f| f.pending > 0 || now.duration_since(f.last) < MAX_LOGIN_DELAY * 10);
    if failures.len() >= MAX_KEYS {
        // A flood of invented names: forget the oldest half at once.
        let mut ages: Vec<Instant> = failures.values().map(|f| f.last).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        failures.retain(|_, f| f.last > cut);
    }
}

pub struct Throttle {
    anon: Option<Limiter<IpKey>>,
    user: Option<Limiter<i64>>,
    sensor: Option<Limiter<i64>>,
    /// Password checks per client IP, on the anonymous quota.
    login: Option<Limiter<IpKey>>,
    failures: Mutex<HashMap<UsernameKey, Failures>>,
}

impl Throttle {
    pub fn new(anon: Option<Quota>, user: Option<Quota>, sensor: Option<Quota>) -> Self {
        Self {
            anon: anon.map(Limiter::new),
            user: user.map(Limiter::new),
            sensor: sensor.map(Limiter::new),
            login: anon.map(Limiter::new),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `operations` operations against its subject.
    pub fn request(&self, who: Subject, operations: u32) -> Result<()> {
        match who {
            Subject::Anonymous(ip) => self
                .anon
                .as_ref()
                .map_or(Ok(()), |l| l.take(&ip, operations, true)),
            Subject::User(id) => self
                .user
                .as_ref()
                .map_or(Ok(()), |l| l.take(&id, operations, false)),
            Subject::ApiKey(id) => self
                .sensor
                .as_ref()
                .map_or(Ok(()), |l| l.take(&id, operations, false)),
        }
    }

    /// Counts one password check from `ip` against the per-address quota.
    pub fn password_check_from(&self, ip: Option<IpAddr>) -> Result<()> {
        match (&self.login, ip) {
            (Some(limiter), Some(ip)) => limiter.take(&IpKey::from(ip), 1, true),
            _ => Ok(()),
        }
    }

    /// Counts one password check from `ip`, and refuses it while `username`
    /// is being guessed at. The attempt is reserved before the check runs:
    /// past the free failures only one check at a time gets through.
    pub fn login_attempt(&self, ip: Option<IpAddr>, username: &str) -> Result<LoginAttempt<'_>> {
        self.password_check_from(ip)?;
        let key = UsernameKey::of(username);
        let now = Instant::now();
        let mut failures = self.failures();
        make_room(&mut failures, now);
        let f = failures.entry(key).or_insert_with(|| Failures::new(now));
        if f.next_allowed > now {
            return Err(retry(f.next_allowed - now));
        }
        f.pending = f.pending.saturating_add(1);
        f.last = now;
        if let Some(wait) = backoff(f.count.saturating_add(f.pending)) {
            f.next_allowed = now + wait;
        }
        Ok(LoginAttempt {
            throttle: self,
            key,
            open: true,
        })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<UsernameKey, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Usernames with failures (or checks under way) on record.
    pub fn tracked_usernames(&self) -> usize {
        self.failures().len()
    }

    /// Drops idle keys; run every few seconds.
    pub fn housekeeping(&self) {
        for l in [&self.anon, &self.login].into_iter().flatten() {
            l.housekeeping();
        }
        for l in [&self.user, &self.sensor].into_iter().flatten() {
            l.housekeeping();
        }
        let now = Instant::now();
        self.failures()
            .retain(|_, f| f.pending > 0 || now.duration_since(f.last) < MAX_LOGIN_DELAY * 10);
    }

    /// How many keys the limiters hold (for metrics and tests).
    pub fn tracked_keys(&self) -> usize {
        let a = [&self.anon, &self.login]
            .into_iter()
            .flatten()
            .map(|l| l.inner.len())
            .sum::<usize>();
        let b = [&self.user, &self.sensor]
            .into_iter()
            .flatten()
            .map(|l| l.inner.len())
            .sum::<usize>();
        a + b + self.failures.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(count: u32) -> Option<Quota> {
        Some(Quota {
            count,
            per: Duration::from_secs(60),
        })
    }

    #[test]
    fn quota_then_refusal_with_retry_after() {
        let t = Throttle::new(q(5), q(100), None);
        let who = Subject::Anonymous(IpAddr::from([10, 0, 0, 1]).into());
        for _ in 0..5 {
            t.request(who, 1).unwrap();
        }
        match t.request(who, 1) {
            Err(Error::RateLimited { retry_after_secs }) => {
                assert!((1..=12).contains(&retry_after_secs))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another address has its own quota; sensors here are unlimited.
        t.request(Subject::Anonymous(IpAddr::from([10, 0, 0, 2]).into()), 1)
            .unwrap();
        for _ in 0..1000 {
            t.request(Subject::ApiKey(1), 1).unwrap();
        }
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(IpKey::from(a), IpKey::from(b));
        assert_ne!(IpKey::from(a), IpKey::from(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            IpKey::from(mapped),
            IpKey::from(IpAddr::from([10, 0, 0, 1]))
        );
    }

    fn fail(t: &Throttle, name: &str) {
        t.login_attempt(None, name).unwrap().failed();
    }

    #[test]
    fn failed_logins_slow_one_username_down() {
        let t = Throttle::new(None, None, None);
        for _ in 0..FREE_FAILURES {
            fail(&t, "Admin");
        }
        fail(&t, "admin");
        assert!(matches!(
            t.login_attempt(None, "ADMIN"),
            Err(Error::RateLimited { .. })
        ));
        fail(&t, "someone-else");
        t.failures()
            .get_mut(&UsernameKey::of("admin"))
            .unwrap()
            .next_allowed = Instant::now();
        t.login_attempt(None, "admin").unwrap().succeeded();
        fail(&t, "admin");
        t.login_attempt(None, "admin").unwrap().failed();
    }

    /// Checks still running count as failures: after the free ones, a burst
    /// of parallel guesses gets one through, not the whole burst.
    #[test]
    fn parallel_guesses_share_one_window() {
        let t = Throttle::new(None, None, None);
        for _ in 0..FREE_FAILURES {
            fail(&t, "admin");
        }
        let first = t.login_attempt(None, "admin").unwrap();
        for _ in 0..16 {
            assert!(matches!(
                t.login_attempt(None, "admin"),
                Err(Error::RateLimited { .. })
            ));
        }
        first.failed();
        assert!(t.login_attempt(None, "admin").is_err());
    }

    /// The free failures are reserved too: a burst on a fresh name gets
    /// the free ones and one more, as if they had come one by one.
    #[test]
    fn a_burst_on_a_fresh_name_gets_only_the_free_failures() {
        let t = Throttle::new(None, None, None);
        let held: Vec<_> = (0..=FREE_FAILURES)
            .map(|_| t.login_attempt(None, "admin").unwrap())
            .collect();
        assert!(t.login_attempt(None, "admin").is_err());
        drop(held);
    }

    #[test]
    fn the_key_is_the_same_size_whatever_the_name() {
        let t = Throttle::new(None, None, None);
        let huge = "A".repeat(16 << 20);
        fail(&t, &huge);
        assert_eq!(
            UsernameKey::of(&huge),
            UsernameKey::of(&huge.to_lowercase())
        );
        assert_ne!(UsernameKey::of(&huge), UsernameKey::of("a"));
        assert_eq!(t.tracked_usernames(), 1);
        assert_eq!(std::mem::size_of::<UsernameKey>(), 32);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_names() {
        let t = Throttle::new(None, None, None);
        for i in 0..(MAX_KEYS + 10) {
            fail(&t, &format!("user{i}"));
        }
        assert!(t.tracked_keys() <= MAX_KEYS);
    }
}
