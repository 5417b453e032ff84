//! Settings, read once at start from the environment (and `.env`).
//!
//! Every setting is parsed here so that a bad value stops the start with a
//! message naming the variable, instead of failing later on first use.

use std::net::SocketAddr;
use std::time::Duration;

/// Every variable a setting is read from. `var` reads only these, so a new
/// setting cannot be left out of the list that unknown names are checked
/// against (the tests read every setting and compare).
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "THREATWATCH_BIND",
    "THREATWATCH_METRICS_BIND",
    "THREATWATCH_JWT_SECRET",
    "THREATWATCH_ADMIN_PASSWORD",
    "THREATWATCH_ACCESS_TTL",
    "THREATWATCH_REFRESH_TTL",
    "THREATWATCH_RATE_ANON",
    "THREATWATCH_RATE_USER",
    "THREATWATCH_RATE_SENSOR",
    "THREATWATCH_TRUSTED_PROXIES",
    "THREATWATCH_CORS_ORIGINS",
    "THREATWATCH_INTROSPECTION",
    "THREATWATCH_REST_COMPAT",
    "THREATWATCH_LOG_FORMAT",
    "THREATWATCH_BCRYPT_COST",
    "THREATWATCH_DB_POOL_SIZE",
    "THREATWATCH_GROUP_COMMIT",
    "THREATWATCH_SQLITE_SYNCHRONOUS",
    "THREATWATCH_SECRET_KEY",
    "THREATWATCH_WEBHOOK_ALLOW_NETS",
    "THREATWATCH_WEBHOOK_KEEP",
    "THREATWATCH_RETENTION",
];

/// `THREATWATCH_` names that are not settings of the service but are known
/// not to be typos: the test suite's own.
const NOT_SETTINGS: &[&str] = &["THREATWATCH_TEST_PG"];

/// Where the data lives; chosen by the scheme of `DATABASE_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Path of the SQLite file (created if missing).
    Sqlite(String),
    /// A `postgres://` URL, passed through to the driver.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("DATABASE_URL: sqlite:// needs a file path".into());
            }
            // The search index's file is named after the database's
            // (`<path>-words`), which a URI's query string would swallow.
            if path.starts_with("file:") {
                return Err(format!(
                    "DATABASE_URL: give sqlite:// a file path, not a file: URI, got {raw:?}"
                ));
            }
            return Ok(Self::Sqlite(path.to_string()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        Err(format!(
            "DATABASE_URL: expected sqlite://PATH or postgres://USER@HOST/DB, got {:?}",
            redact_url(raw)
        ))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// Hides a password in a URL so that it can be logged or shown in an error.
/// The userinfo ends at the *last* `@`: a password may hold `@` itself, and
/// cutting at the first would print the rest of it as the host.
pub fn redact_url(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => raw.to_string(),
        },
        None => raw.to_string(),
    }
}

/// A request quota such as `100/min`; `None` when switched `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub per: Duration,
}

impl Quota {
    pub fn parse(var: &str, raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let err = || format!("{var}: expected N/sec, N/min, N/hour or off, got {raw:?}");
        let (count, unit) = raw.split_once('/').ok_or_else(err)?;
        let count: u32 = count.trim().parse().map_err(|_| err())?;
        if count == 0 {
            return Err(format!(
                "{var}: a quota must allow at least 1 request (or be off)"
            ));
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(err()),
        };
        Ok(Some(Self { count, per }))
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    /// An address of its own for `/metrics`, which then leaves `bind`: the
    /// numbers say how busy the service is and who is being refused, not
    /// something to publish where the API is.
    pub metrics_bind: Option<SocketAddr>,
    pub jwt_secret: Option<String>,
    pub admin_password: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub rate_anon: Option<Quota>,
    pub rate_user: Option<Quota>,
    pub rate_sensor: Option<Quota>,
    /// Proxies whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub cors_origins: Vec<String>,
    pub introspection: bool,
    pub rest_compat: bool,
    pub log_json: bool,
    /// bcrypt work factor. 12 by default; tests lower it to keep runs short.
    pub bcrypt_cost: u32,
    /// Connections kept open for readers; SQLite also keeps one for writing.
    pub db_pool_size: u32,
    /// Whether concurrent ingests share one transaction (see `ingest`). Off
    /// only to measure what it buys.
    pub group_commit: bool,
    /// SQLite's `synchronous`: FULL (default) survives a power cut; NORMAL
    /// in WAL mode may lose the last commits on one, never corrupts.
    pub sqlite_synchronous: SqliteSync,
    /// What the start should warn about without stopping (variables that
    /// look like settings but are none); logged once logging is set up.
    pub warnings: Vec<String>,
    /// `THREATWATCH_SECRET_KEY`: seals webhook secrets at rest (see
    /// `notify::seal`).
    pub secret_key: Option<SecretKey>,
    /// `THREATWATCH_WEBHOOK_ALLOW_NETS`: ranges webhooks may reach although
    /// private, loopback or link-local (see `notify::address`).
    pub webhook_allow_nets: Vec<ipnet::IpNet>,
    /// `THREATWATCH_WEBHOOK_KEEP`: how long DELIVERED deliveries are kept
    /// (30 days by default); FAILED ones stay until redelivered or deleted.
    pub webhook_keep: Duration,
    /// `THREATWATCH_RETENTION` (off by default): how long resolved alerts,
    /// and events that belong to no alert, are kept.
    pub retention: Option<Duration>,
    /// How often a retention pass runs: a tenth of the window, at most
    /// five minutes and at least a second (not a variable of its own;
    /// tests shorten it).
    pub retention_every: Duration,
}

/// 32 key bytes; its `Debug` shows nothing, as `Settings` is printable.
#[derive(Clone)]
pub struct SecretKey(pub [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn parse(var: &str, raw: &str) -> Result<Self, String> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .ok_or_else(|| {
                format!("{var}: expected the base64 of 32 random bytes (openssl rand -base64 32)")
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
}

impl SqliteSync {
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

#[cfg(test)]
thread_local! {
    /// The variables one thread's `Settings::from_env` read.
    static READ: std::cell::RefCell<std::collections::BTreeSet<&'static str>> =
        Default::default();
}

/// Reads a variable; an empty value counts as unset, as in most `.env` files.
fn var(name: &'static str) -> Option<String> {
    debug_assert!(
        VARIABLES.contains(&name),
        "{name} is read as a setting but missing from config::VARIABLES"
    );
    #[cfg(test)]
    READ.with(|r| r.borrow_mut().insert(name));
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Warnings for `THREATWATCH_` variables that are no setting, each with the
/// known name closest to it. A warning and not a refusal: Kubernetes sets
/// `THREATWATCH_PORT` and the like for a Service named threatwatch.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("THREATWATCH_"))
        .filter(|n| !VARIABLES.contains(&n.as_str()) && !NOT_SETTINGS.contains(&n.as_str()))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| {
            let closest = VARIABLES
                .iter()
                .min_by_key(|known| edit_distance(&name, known))
                .copied()
                .unwrap_or("THREATWATCH_BIND");
            let kubernetes = if name.starts_with("THREATWATCH_PORT")
                || name.starts_with("THREATWATCH_SERVICE_")
            {
                " (Kubernetes sets such variables for a Service named threatwatch)"
            } else {
                ""
            };
            format!(
                "{name} is not a threatwatch setting and is ignored; did you mean {closest}?{kubernetes}"
            )
        })
        .collect()
}

/// Levenshtein distance over characters: the number of single-character
/// insertions, deletions and substitutions from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Browser origins: `scheme://host[:port]`, exactly as a browser sends
/// `Origin`. One without a scheme or with a path never equals what a
/// browser sends, so it would allow nothing while looking as if it did.
pub fn parse_origins(var: &str, raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| check_origin(o).map_err(|rule| format!("{var}: {o:?} {rule}")))
        .collect()
}

fn check_origin(origin: &str) -> Result<String, String> {
    const SHAPE: &str = "an origin is scheme://host[:port], e.g. https://soc.example.com";
    if origin == "*" {
        return Err(format!(
            "is not allowed: list each origin that may call the API ({SHAPE})"
        ));
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!(
            "has no scheme; {SHAPE} (did you mean https://{origin}?)"
        ));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(format!("has scheme {scheme:?}; expected http or https"));
    }
    if let Some((host, _)) = rest.split_once(['/', '?', '#']) {
        return Err(format!(
            "has a path; {SHAPE}, without a path or trailing slash (use {scheme}://{host})"
        ));
    }
    if rest.is_empty() || rest.contains(['@', ' ']) {
        return Err(format!("has no valid host; {SHAPE}"));
    }
    if axum::http::HeaderValue::from_str(origin).is_err() {
        return Err(format!("is not valid in an HTTP header; {SHAPE}"));
    }
    Ok(origin.to_string())
}

fn duration(name: &'static str, default: &str) -> Result<Duration, String> {
    let raw = var(name).unwrap_or_else(|| default.to_string());
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{name}: {e} (expected e.g. 30s, 5m, 1h, 1d), got {raw:?}"))?;
    if d.is_zero() {
        return Err(format!("{name}: must be longer than zero"));
    }
    Ok(d)
}

/// `THREATWATCH_RETENTION`: off (unset, or `off`), or a duration.
fn retention() -> Result<Option<Duration>, String> {
    const NAME: &str = "THREATWATCH_RETENTION";
    match var(NAME) {
        None => Ok(None),
        Some(v) if v.trim().eq_ignore_ascii_case("off") => Ok(None),
        Some(_) => duration(NAME, "").map(Some),
    }
}

/// See `Settings::retention_every`.
pub fn retention_every(retention: Option<Duration>) -> Duration {
    retention
        .map(|w| w / 10)
        .unwrap_or(Duration::MAX)
        .clamp(Duration::from_secs(1), Duration::from_secs(300))
}

fn switch(name: &'static str, default: bool) -> Result<bool, String> {
    match var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "on" | "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "off" | "false" | "0" | "no") => Ok(false),
        Some(v) => Err(format!("{name}: expected on or off, got {v:?}")),
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, String> {
    let Some(raw) = var(name) else {
        return Ok(default);
    };
    let n: T = raw
        .trim()
        .parse()
        .map_err(|_| format!("{name}: expected a whole number, got {raw:?}"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{name}: must be between {} and {}, got {n}",
            range.start(),
            range.end()
        ));
    }
    Ok(n)
}

impl Settings {
    /// Reads `.env` (when present) and then the environment.
    pub fn from_env() -> Result<Self, String> {
        // A missing .env is normal; a malformed one is worth stopping for.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(format!(".env: {e}"));
            }
        }
        let database_url = DatabaseUrl::parse(
            &var("DATABASE_URL").unwrap_or_else(|| "sqlite://threatwatch.db".into()),
        )?;
        let bind_raw = var("THREATWATCH_BIND").unwrap_or_else(|| "127.0.0.1:8000".into());
        let bind: SocketAddr = bind_raw.trim().parse().map_err(|_| {
            format!("THREATWATCH_BIND: expected HOST:PORT such as 127.0.0.1:8000, got {bind_raw:?}")
        })?;
        let jwt_secret = var("THREATWATCH_JWT_SECRET");
        if let Some(s) = &jwt_secret {
            if s.len() < 32 {
                return Err("THREATWATCH_JWT_SECRET: must be at least 32 characters".into());
            }
        }
        let quota = |name: &'static str, default: &str| {
            Quota::parse(name, &var(name).unwrap_or_else(|| default.to_string()))
        };
        let metrics_bind = var("THREATWATCH_METRICS_BIND")
            .map(|raw| {
                raw.trim().parse().map_err(|_| {
                    format!(
                        "THREATWATCH_METRICS_BIND: expected HOST:PORT such as 127.0.0.1:9464, got {raw:?}"
                    )
                })
            })
            .transpose()?;
        if metrics_bind.is_some_and(|m: SocketAddr| m == bind && m.port() != 0) {
            return Err(format!(
                "THREATWATCH_METRICS_BIND: must differ from THREATWATCH_BIND ({bind}); leave it unset to serve /metrics there"
            ));
        }
        let cors_origins = var("THREATWATCH_CORS_ORIGINS")
            .map(|v| parse_origins("THREATWATCH_CORS_ORIGINS", &v))
            .transpose()?
            .unwrap_or_default();
        let trusted_proxies = var("THREATWATCH_TRUSTED_PROXIES")
            .map(|v| parse_networks("THREATWATCH_TRUSTED_PROXIES", &v))
            .transpose()?
            .unwrap_or_default();
        let retention = retention()?;
        Ok(Self {
            secret_key: var("THREATWATCH_SECRET_KEY")
                .map(|v| SecretKey::parse("THREATWATCH_SECRET_KEY", &v))
                .transpose()?,
            webhook_allow_nets: var("THREATWATCH_WEBHOOK_ALLOW_NETS")
                .map(|v| parse_networks("THREATWATCH_WEBHOOK_ALLOW_NETS", &v))
                .transpose()?
                .unwrap_or_default(),
            webhook_keep: duration("THREATWATCH_WEBHOOK_KEEP", "30d")?,
            retention,
            retention_every: retention_every(retention),
            database_url,
            trusted_proxies,
            bind,
            metrics_bind,
            jwt_secret,
            admin_password: var("THREATWATCH_ADMIN_PASSWORD"),
            access_ttl: duration("THREATWATCH_ACCESS_TTL", "5m")?,
            refresh_ttl: duration("THREATWATCH_REFRESH_TTL", "1d")?,
            rate_anon: quota("THREATWATCH_RATE_ANON", "5/min")?,
            rate_user: quota("THREATWATCH_RATE_USER", "100/min")?,
            rate_sensor: quota("THREATWATCH_RATE_SENSOR", "6000/min")?,
            cors_origins,
            introspection: switch("THREATWATCH_INTROSPECTION", true)?,
            rest_compat: switch("THREATWATCH_REST_COMPAT", true)?,
            log_json: match var("THREATWATCH_LOG_FORMAT").as_deref().map(str::trim) {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    return Err(format!(
                        "THREATWATCH_LOG_FORMAT: expected text or json, got {other:?}"
                    ))
                }
            },
            // Past the cap one login costs seconds of CPU: a password
            // guesser's amplifier, and hashes the service would refuse to run.
            bcrypt_cost: number(
                "THREATWATCH_BCRYPT_COST",
                12,
                4..=crate::auth::password::MAX_BCRYPT_COST,
            )?,
            db_pool_size: number("THREATWATCH_DB_POOL_SIZE", 8, 1..=256)?,
            group_commit: switch("THREATWATCH_GROUP_COMMIT", true)?,
            sqlite_synchronous: match var("THREATWATCH_SQLITE_SYNCHRONOUS")
                .map(|v| v.trim().to_ascii_uppercase())
                .as_deref()
            {
                None | Some("FULL") => SqliteSync::Full,
                Some("NORMAL") => SqliteSync::Normal,
                Some(other) => {
                    return Err(format!(
                        "THREATWATCH_SQLITE_SYNCHRONOUS: expected full or normal, got {other:?}"
                    ))
                }
            },
            warnings: unknown_variables(
                std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()),
            ),
        })
    }
}

/// Comma-separated addresses or CIDRs; a bare address is its own /32 or /128.
pub fn parse_networks(var: &str, raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{var}: {s:?} is not an address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_no_part_of_the_password() {
        let shown = redact_url("postgres://tw:p@ss@w0rd@db.example:5432/tw");
        assert_eq!(shown, "postgres://tw:***@db.example:5432/tw");
        for piece in ["p@ss", "ss@w0rd", "w0rd"] {
            assert!(!shown.contains(piece), "{shown}");
        }
        assert_eq!(
            redact_url("postgres://tw:secret@db/tw"),
            "postgres://tw:***@db/tw"
        );
        assert_eq!(redact_url("postgres://tw@db/tw"), "postgres://tw@db/tw");
        assert_eq!(redact_url("sqlite://tw.db"), "sqlite://tw.db");
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://tw.db").unwrap(),
            DatabaseUrl::Sqlite("tw.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/tw.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/tw.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        let err = DatabaseUrl::parse("sqlite://file:tw.db?mode=rwc").unwrap_err();
        assert!(err.contains("not a file: URI"), "{err}");
        let err = DatabaseUrl::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(
            err.contains("DATABASE_URL") && !err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn networks() {
        let n = parse_networks("X", "10.0.0.0/8, 127.0.0.1,::1").unwrap();
        assert_eq!(n.len(), 3);
        assert!(n[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(parse_networks("X", "10.0.0.0/33")
            .unwrap_err()
            .starts_with("X:"));
    }

    #[test]
    fn secret_keys_are_32_bytes_and_never_echoed() {
        let key = SecretKey::parse("K", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
        for bad in ["c2hvcnQ=", "not base64!", ""] {
            let err = SecretKey::parse("K", bad).unwrap_err();
            assert!(err.starts_with("K:") && !err.contains("c2hvcnQ"), "{err}");
        }
    }

    #[test]
    fn quotas() {
        assert_eq!(
            Quota::parse("X", "5/min").unwrap(),
            Some(Quota {
                count: 5,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(Quota::parse("X", "off").unwrap(), None);
        assert!(Quota::parse("X", "0/min").is_err());
        assert!(Quota::parse("X", "5/fortnight")
            .unwrap_err()
            .starts_with("X:"));
    }

    #[test]
    fn every_setting_read_is_in_the_list() {
        // Reading the settings runs `var` for each one; `var` refuses a name
        // missing from VARIABLES, and every listed name must be read.
        let _ = Settings::from_env();
        let read = READ.with(|r| r.borrow().clone());
        let listed: std::collections::BTreeSet<&str> = VARIABLES.iter().copied().collect();
        assert_eq!(read, listed);
    }

    #[test]
    fn unknown_variables_are_named_with_the_closest_setting() {
        let names = [
            "THREATWATCH_ACESS_TTL",
            "THREATWATCH_ACCESS_TTL",
            "THREATWATCH_PORT",
            "THREATWATCH_TEST_PG",
            "PATH",
        ]
        .map(String::from);
        let warnings = unknown_variables(names);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("THREATWATCH_ACESS_TTL is not a threatwatch setting")
                && warnings[0].contains("did you mean THREATWATCH_ACCESS_TTL?"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("Kubernetes"), "{warnings:?}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn origins_need_a_scheme_and_no_path() {
        let ok = parse_origins("V", " https://soc.example.com, http://localhost:3000 ,").unwrap();
        assert_eq!(ok, ["https://soc.example.com", "http://localhost:3000"]);
        for (bad, rule) in [
            ("example.com", "has no scheme"),
            ("https://example.com/", "has a path"),
            ("https://example.com/app", "has a path"),
            ("ftp://example.com", "expected http or https"),
            ("*", "is not allowed"),
            ("https://", "no valid host"),
        ] {
            let err = parse_origins("THREATWATCH_CORS_ORIGINS", bad).unwrap_err();
            assert!(
                err.starts_with("THREATWATCH_CORS_ORIGINS: ") && err.contains(rule),
                "{bad}: {err}"
            );
        }
        assert!(parse_origins("V", "example.com")
            .unwrap_err()
            .contains("https://example.com"));
    }
}
