//! Throttling against brute force and floods (governor's GCRA limiters).
//!
//! - Requests: per client IP when anonymous, per user, per API key.
//! - Token refreshes: per session, with the user quota, not per address: a
//!   team behind one NAT refreshes freely, while one stolen refresh token
//!   cannot be hammered. A refresh whose token is not one we signed costs
//!   its address's anonymous quota, so guessing stays throttled.
//! - Password checks: per client IP, counted per `login` field executed, so
//!   aliases and batches do not multiply the guesses a request buys.
//! - Failed logins per username: after a few, each further attempt on that
//!   account waits a little longer, up to a short cap, so a botnet spread over
//!   many IPs cannot grind one account, yet a real user is never locked out
//!   for more than a minute after the attack stops.
//!
//! governor makes every rate decision. Users and API keys live in its default
//! keyed store: they are ids the server issued, so their number is bounded.
//! Addresses live in a store of our own, because a flood of them needs what
//! governor's cannot do (see whether a key is tracked, key a newcomer by its
//! network, forget chosen keys). Memory stays bounded without refusing
//! everybody under a flood: idle keys are dropped every few seconds; past a
//! first mark new addresses share the quota of their network (IPv4 /24, IPv6
//! /48) instead of getting their own; and a table that fills anyway forgets
//! its keys nearest to a full quota again, which forgives the least.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock, Reference};
use governor::nanos::Nanos;
use governor::state::keyed::{DefaultKeyedStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{Quota as GQuota, RateLimiter};

use crate::config::Quota;
use crate::error::{Error, Result};

/// Keys a limiter of addresses holds at most (each about 40 bytes, so a
/// few MiB): a flood of distinct addresses must not grow memory without end.
const MAX_KEYS: usize = 100_000;
/// Keys a limiter of addresses holds before a new address is counted with
/// its whole network: past it a flood from one network shares one quota,
/// while addresses already tracked keep their own.
const FOLD_KEYS: usize = MAX_KEYS / 2;
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

/// Marks a key that stands for a whole network, so that it never equals
/// the key of one address.
const NETWORK: u128 = 1 << 127;
/// Marks an IPv6 key, so that it never equals an IPv4 one.
const V6: u128 = 1 << 32;

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                None => Self((u128::from(v6) >> 64) << 64 | V6),
            },
        }
    }
}

impl IpKey {
    /// The key of the network a new address shares a quota with when the
    /// table is under pressure: the /24 of an IPv4 address, the /48 of an
    /// IPv6 one (what one site is usually given). A network has none.
    fn wider(&self) -> Option<Self> {
        if self.0 & NETWORK != 0 {
            return None;
        }
        if self.0 & V6 != 0 {
            return Some(Self((self.0 >> 80) << 80 | V6 | NETWORK));
        }
        Some(Self(self.0 & !0xff | NETWORK))
    }
}

/// What a limiter counts by, and where governor keeps its keys.
trait Key: std::hash::Hash + Eq + Copy {
    type Store: ShrinkableKeyedStateStore<Self>;
    /// What the limiter keeps of its store once governor owns it.
    type Handle;

    /// A store for a limiter of `quota` that will run on `clock`, built
    /// just before the limiter reads the clock for its own start.
    fn store(quota: GQuota, clock: &DefaultClock) -> (Self::Store, Self::Handle);
}

impl Key for IpKey {
    type Store = Addresses;
    /// The same table: cells taken for a request that turns out not to
    /// count here (a token refresh) are given back through it.
    type Handle = Addresses;

    fn store(quota: GQuota, clock: &DefaultClock) -> (Addresses, Addresses) {
        let store = Addresses(std::sync::Arc::new(AddressTable {
            keys: Mutex::new(HashMap::new()),
            clock: clock.clone(),
            start: clock.now(),
            cell: Nanos::from(quota.replenish_interval().max(Duration::from_nanos(1))),
        }));
        (store.clone(), store)
    }
}

impl Key for i64 {
    type Store = DefaultKeyedStateStore<i64>;
    type Handle = ();

    fn store(_: GQuota, _: &DefaultClock) -> (Self::Store, ()) {
        (Self::Store::default(), ())
    }
}

/// A keyed governor limiter.
struct Limiter<K: Key> {
    inner: RateLimiter<K, K::Store, DefaultClock>,
    /// How long a key that spent its whole quota waits for all of it.
    refill: Duration,
    handle: K::Handle,
}

impl<K: Key> Limiter<K> {
    fn new(q: Quota) -> Self {
        let count = NonZeroU32::new(q.count).unwrap_or(NonZeroU32::MIN);
        let period = q.per / q.count.max(1);
        let quota = GQuota::with_period(period)
            .unwrap_or_else(|| GQuota::per_second(count))
            .allow_burst(count);
        let clock = DefaultClock::default();
        let (store, handle) = K::store(quota, &clock);
        Self {
            inner: RateLimiter::new(quota, store, clock),
            refill: quota.burst_size_replenished_in(),
            handle,
        }
    }

    /// Takes `n` cells for `key`, or says how long to wait.
    fn take(&self, key: &K, n: u32) -> Result<()> {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match self.inner.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(retry(not_until.wait_time_from(self.inner.clock().now()))),
            // More operations than the whole quota: refuse for a full period.
            Err(_) => Err(retry(self.refill)),
        }
    }

    fn housekeeping(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

/// governor's store for a limiter of addresses. Per key it holds what
/// governor's own stores hold, the theoretical arrival time of the next
/// cell in nanoseconds since the limiter's start (a key whose time has
/// passed has its whole quota back); it also chooses, under the same lock
/// as the rate decision, the key a request is counted under and what a full
/// table forgets, so a request takes one lock and allocates nothing.
#[derive(Clone)]
struct Addresses(std::sync::Arc<AddressTable>);

impl std::ops::Deref for Addresses {
    type Target = AddressTable;

    fn deref(&self) -> &AddressTable {
        &self.0
    }
}

struct AddressTable {
    keys: Mutex<HashMap<IpKey, Nanos>>,
    clock: DefaultClock,
    /// Read just before the limiter reads its own start, so "now" here is
    /// at most a few instructions later than the limiter's.
    start: <DefaultClock as Clock>::Instant,
    /// The time one cell takes to come back.
    cell: Nanos,
}

impl Limiter<IpKey> {
    /// Returns `n` cells taken for `key`, as if they had not been.
    fn give_back(&self, key: &IpKey, n: u32) {
        self.handle.give_back(*key, n);
    }
}

impl Addresses {
    /// Moves `key`'s arrival time back by `n` cells: what taking them
    /// moved it forward by. The key may have been counted under its
    /// network; one forgotten since has nothing to give back.
    fn give_back(&self, key: IpKey, n: u32) {
        let mut keys = self.keys();
        let key = match key.wider() {
            Some(wider) if !keys.contains_key(&key) => wider,
            _ => key,
        };
        if let Some(tat) = keys.get_mut(&key) {
            *tat = tat.saturating_sub(self.cell * u64::from(n));
        }
    }

    fn keys(&self) -> MutexGuard<'_, HashMap<IpKey, Nanos>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key a request of `key` is counted under, making room for it when
    /// needed: its own while the table has room or it already has an entry,
    /// its network's past `FOLD_KEYS`.
    fn admit(&self, keys: &mut HashMap<IpKey, Nanos>, key: IpKey) -> IpKey {
        if keys.len() < FOLD_KEYS || keys.contains_key(&key) {
            return key;
        }
        let key = key.wider().unwrap_or(key);
        if keys.len() >= MAX_KEYS && !keys.contains_key(&key) {
            self.make_room(keys);
        }
        key
    }

    /// Drops the keys that have their quota back; if that frees too little,
    /// forgets the half nearest to having it back (the smallest arrival
    /// times: the least spent, so the least forgiven). Halving makes the
    /// work of a sweep rare.
    fn make_room(&self, keys: &mut HashMap<IpKey, Nanos>) {
        // One cell earlier than now, as governor's `retain_recent` drops:
        // that also covers the instants between our start and the limiter's.
        let now = self.clock.now().duration_since(self.start);
        let drop_below = now.saturating_sub(self.cell);
        keys.retain(|_, tat| *tat > drop_below);
        if keys.len() <= MAX_KEYS / 2 {
            return;
        }
        let mut tats: Vec<Nanos> = keys.values().copied().collect();
        let middle = tats.len() / 2;
        let (_, cut, _) = tats.select_nth_unstable(middle);
        let cut = *cut;
        keys.retain(|_, tat| *tat > cut);
    }
}

impl StateStore for Addresses {
    type Key = IpKey;

    fn measure_and_replace<T, F, E>(&self, key: &IpKey, f: F) -> std::result::Result<T, E>
    where
        F: Fn(Option<Nanos>) -> std::result::Result<(T, Nanos), E>,
    {
        let mut keys = self.keys();
        let key = self.admit(&mut keys, *key);
        // A refused newcomer leaves no entry behind.
        match keys.entry(key) {
            Entry::Occupied(mut entry) => {
                let (decision, tat) = f(Some(*entry.get()))?;
                entry.insert(tat);
                Ok(decision)
            }
            Entry::Vacant(entry) => {
                let (decision, tat) = f(None)?;
                entry.insert(tat);
                Ok(decision)
            }
        }
    }
}

impl ShrinkableKeyedStateStore<IpKey> for Addresses {
    fn retain_recent(&self, drop_below: Nanos) {
        self.keys().retain(|_, tat| *tat > drop_below);
    }

    fn shrink_to_fit(&self) {
        self.keys().shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys().len()
    }

    fn is_empty(&self) -> bool {
        self.keys().is_empty()
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
        make_room_for_failure(&mut failures, now);
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
fn make_room_for_failure(failures: &mut HashMap<UsernameKey, Failures>, now: Instant) {
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
    /// Token refreshes per session (a digest of its id), on the user quota.
    refresh: Option<Limiter<i64>>,
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
            refresh: user.map(Limiter::new),
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
                .map_or(Ok(()), |l| l.take(&ip, operations)),
            Subject::User(id) => self
                .user
                .as_ref()
                .map_or(Ok(()), |l| l.take(&id, operations)),
            Subject::ApiKey(id) => self
                .sensor
                .as_ref()
                .map_or(Ok(()), |l| l.take(&id, operations)),
        }
    }

    /// Gives back what `operations` took from an anonymous caller's quota
    /// at admission, once they turn out to be token refreshes (counted per
    /// session instead). Other subjects are not counted by address.
    pub fn not_anonymous_after_all(&self, who: Subject, operations: u32) {
        if let (Subject::Anonymous(ip), Some(limiter)) = (who, &self.anon) {
            if operations > 0 {
                limiter.give_back(&ip, operations);
            }
        }
    }

    /// Counts one refresh of the session `sid` (from a token we signed).
    pub fn refresh_of(&self, sid: &str) -> Result<()> {
        let Some(limiter) = &self.refresh else {
            return Ok(());
        };
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(sid.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        limiter.take(&i64::from_le_bytes(first), 1)
    }

    /// Counts a refresh whose token we did not sign against the anonymous
    /// quota of `ip`: guessing at tokens costs what any anonymous request
    /// costs.
    pub fn forged_refresh_from(&self, ip: Option<IpAddr>) -> Result<()> {
        match (&self.anon, ip) {
            (Some(limiter), Some(ip)) => limiter.take(&IpKey::from(ip), 1),
            _ => Ok(()),
        }
    }

    /// Counts one password check from `ip` against the per-address quota.
    pub fn password_check_from(&self, ip: Option<IpAddr>) -> Result<()> {
        match (&self.login, ip) {
            (Some(limiter), Some(ip)) => limiter.take(&IpKey::from(ip), 1),
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
        make_room_for_failure(&mut failures, now);
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
        for l in [&self.user, &self.sensor, &self.refresh]
            .into_iter()
            .flatten()
        {
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
            .map(|l| l.len())
            .sum::<usize>();
        let b = [&self.user, &self.sensor, &self.refresh]
            .into_iter()
            .flatten()
            .map(|l| l.len())
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
    fn refreshes_count_per_session_not_per_address() {
        let t = Throttle::new(q(2), q(3), None);
        let ip = IpAddr::from([10, 0, 0, 9]);
        let who = Subject::Anonymous(ip.into());
        // Admitted, then given back once known to be a refresh: ten times
        // the quota passes, and the quota is whole afterwards.
        for _ in 0..20 {
            t.request(who, 1).unwrap();
            t.not_anonymous_after_all(who, 1);
        }
        t.request(who, 2).unwrap();
        assert!(t.request(who, 1).is_err());
        // Each session has the user quota of its own.
        for _ in 0..3 {
            t.refresh_of("session-a").unwrap();
        }
        assert!(matches!(
            t.refresh_of("session-a"),
            Err(Error::RateLimited { .. })
        ));
        t.refresh_of("session-b").unwrap();
        // Tokens we did not sign cost the address.
        let t = Throttle::new(q(2), q(3), None);
        t.forged_refresh_from(Some(ip)).unwrap();
        t.forged_refresh_from(Some(ip)).unwrap();
        assert!(t.forged_refresh_from(Some(ip)).is_err());
        assert!(t.request(who, 1).is_err());
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

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    fn anon(ip: IpAddr) -> Subject {
        Subject::Anonymous(ip.into())
    }

    /// The scale: a flood of 200,000 addresses, spread one per /24
    /// so that folding into networks alone cannot absorb it.
    const FLOOD: u32 = 200_000;

    #[test]
    fn a_flood_of_distinct_addresses_does_not_refuse_a_new_person() {
        let t = Throttle::new(q(5), None, None);
        let before: IpAddr = "203.0.113.5".parse().unwrap();
        t.request(anon(before), 1).unwrap();
        for i in 0..FLOOD {
            let _ = t.request(anon(v4(0x0b00_0000 + (i << 8) + 1)), 5);
        }
        assert!(t.tracked_keys() <= MAX_KEYS, "{}", t.tracked_keys());
        t.request(anon("192.0.2.7".parse().unwrap()), 1)
            .expect("a person at a new address is served");
        let v6: IpAddr = "2001:db8:ffff::1".parse().unwrap();
        t.request(anon(v6), 1).expect("and one over IPv6");
    }

    #[test]
    fn a_flood_of_ipv6_networks_stays_bounded_and_serves() {
        let t = Throttle::new(q(5), None, None);
        for i in 0..u128::from(FLOOD) {
            let ip = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i << 80 | 1);
            let _ = t.request(anon(IpAddr::V6(ip)), 5);
        }
        assert!(t.tracked_keys() <= MAX_KEYS, "{}", t.tracked_keys());
        t.request(anon("2001:db9::1".parse().unwrap()), 1).unwrap();
    }

    #[test]
    fn under_pressure_a_network_shares_one_quota_and_known_addresses_keep_theirs() {
        let t = Throttle::new(q(5), None, None);
        let known: IpAddr = "203.0.113.5".parse().unwrap();
        t.request(anon(known), 1).unwrap();
        for i in 0..FOLD_KEYS as u32 {
            t.request(anon(v4(0x0a00_0000 + i)), 1).unwrap();
        }
        // Five new addresses of one /24 spend its quota; the sixth waits.
        for host in 1..=5u8 {
            t.request(anon(IpAddr::from([198, 51, 100, host])), 1)
                .unwrap();
        }
        assert!(matches!(
            t.request(anon(IpAddr::from([198, 51, 100, 6])), 1),
            Err(Error::RateLimited { .. })
        ));
        // Another network, and an address tracked before, are unaffected.
        t.request(anon(IpAddr::from([198, 51, 101, 1])), 1).unwrap();
        t.request(anon(known), 4).unwrap();
    }

    #[test]
    fn a_full_table_forgets_the_least_spent_keys_first() {
        let t = Throttle::new(q(5), None, None);
        let heavy: IpAddr = "203.0.113.5".parse().unwrap();
        t.request(anon(heavy), 5).unwrap();
        for i in 0..FLOOD {
            let _ = t.request(anon(v4(0x0b00_0000 + (i << 8) + 1)), 1);
        }
        // The address that spent its whole quota is still remembered.
        assert!(matches!(
            t.request(anon(heavy), 1),
            Err(Error::RateLimited { .. })
        ));
    }

    /// Housekeeping in the store of addresses forgets only what has its
    /// whole quota back: a rested address goes, a spent one stays refused.
    #[test]
    fn housekeeping_forgets_rested_addresses_and_keeps_spent_ones() {
        let fast = Throttle::new(
            Some(Quota {
                count: 1000,
                per: Duration::from_secs(1),
            }),
            None,
            None,
        );
        fast.request(anon(v4(1)), 1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fast.housekeeping();
        assert_eq!(fast.tracked_keys(), 0);

        let t = Throttle::new(q(5), None, None);
        t.request(anon(v4(1)), 5).unwrap();
        t.housekeeping();
        assert_eq!(t.tracked_keys(), 1);
        assert!(matches!(
            t.request(anon(v4(1)), 1),
            Err(Error::RateLimited { .. })
        ));
    }

    #[test]
    fn more_operations_than_the_quota_wait_a_whole_period() {
        let t = Throttle::new(q(5), None, None);
        let who = anon(IpAddr::from([10, 0, 0, 1]));
        match t.request(who, 6) {
            Err(Error::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
            other => panic!("expected a refusal, got {other:?}"),
        }
        t.request(who, 5).unwrap();
    }

    #[test]
    fn networks_never_collide_with_addresses() {
        let v4 = IpKey::from(IpAddr::from([10, 1, 2, 3]));
        assert_eq!(
            v4.wider(),
            IpKey::from(IpAddr::from([10, 1, 2, 200])).wider()
        );
        assert_ne!(v4.wider(), IpKey::from(IpAddr::from([10, 1, 3, 3])).wider());
        assert_ne!(v4.wider(), Some(IpKey::from(IpAddr::from([10, 1, 2, 0]))));
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same48: IpAddr = "2001:db8:1:ffff::1".parse().unwrap();
        assert_eq!(IpKey::from(v6).wider(), IpKey::from(same48).wider());
        assert_ne!(IpKey::from(v6).wider(), v4.wider());
        assert_eq!(v4.wider().and_then(|k| k.wider()), None);
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
