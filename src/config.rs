//! Settings, read once at start from the environment (and `.env`).
//!
//! Every setting is parsed here so that a bad value stops the start with a
//! message naming the variable, instead of failing later on first use.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// `THREATWATCH_SECRET_KEY`: seals webhook secrets at rest (see
    /// `notify::seal`).
    pub secret_key: Option<SecretKey>,
    /// `THREATWATCH_WEBHOOK_ALLOW_NETS`: ranges webhooks may reach although
    /// private, loopback or link-local (see `notify::address`).
    pub webhook_allow_nets: Vec<ipnet::IpNet>,
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

/// Reads a variable; an empty value counts as unset, as in most `.env` files.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn duration(name: &str, default: &str) -> Result<Duration, String> {
    let raw = var(name).unwrap_or_else(|| default.to_string());
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{name}: {e} (expected e.g. 30s, 5m, 1h, 1d), got {raw:?}"))?;
    if d.is_zero() {
        return Err(format!("{name}: must be longer than zero"));
    }
    Ok(d)
}

fn switch(name: &str, default: bool) -> Result<bool, String> {
    match var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "on" | "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "off" | "false" | "0" | "no") => Ok(false),
        Some(v) => Err(format!("{name}: expected on or off, got {v:?}")),
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    name: &str,
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
        let bind = bind_raw.trim().parse().map_err(|_| {
            format!("THREATWATCH_BIND: expected HOST:PORT such as 127.0.0.1:8000, got {bind_raw:?}")
        })?;
        let jwt_secret = var("THREATWATCH_JWT_SECRET");
        if let Some(s) = &jwt_secret {
            if s.len() < 32 {
                return Err("THREATWATCH_JWT_SECRET: must be at least 32 characters".into());
            }
        }
        let quota = |name: &str, default: &str| {
            Quota::parse(name, &var(name).unwrap_or_else(|| default.to_string()))
        };
        let cors_origins = var("THREATWATCH_CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let trusted_proxies = var("THREATWATCH_TRUSTED_PROXIES")
            .map(|v| parse_networks("THREATWATCH_TRUSTED_PROXIES", &v))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            secret_key: var("THREATWATCH_SECRET_KEY")
                .map(|v| SecretKey::parse("THREATWATCH_SECRET_KEY", &v))
                .transpose()?,
            webhook_allow_nets: var("THREATWATCH_WEBHOOK_ALLOW_NETS")
                .map(|v| parse_networks("THREATWATCH_WEBHOOK_ALLOW_NETS", &v))
                .transpose()?
                .unwrap_or_default(),
            database_url,
            trusted_proxies,
            bind,
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
}
