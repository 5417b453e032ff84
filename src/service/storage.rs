//! The database's life outside requests: migrating it, opening it, backing
//! it up, importing into it, and whether it answers. The server and the
//! command line do these through here and never see storage itself.

use std::path::Path;

use super::Service;
use crate::config::{DatabaseUrl, Settings};
use crate::db::Db;
use crate::django::{Report, Source};
use crate::error::Result;
use crate::ingest::WriterTask;

/// Applies the migrations the database lacks; returns their names.
pub async fn migrate(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    match crate::db::migrate(url).await {
        Ok(applied) => Ok(applied),
        Err(e) => Err(with_cause(url, e).await),
    }
}

/// The migrations the database lacks, without applying them.
pub async fn pending_migrations(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    match crate::db::pending_migrations(url).await {
        Ok(pending) => Ok(pending),
        Err(e) => Err(with_cause(url, e).await),
    }
}

/// The PostgreSQL driver reports a server it could not reach as "error
/// connecting to server" and drops why; an operator needs the why (nothing
/// listens, the name does not resolve) to know what to fix, so it is found
/// out again here. What the server itself refused (a password, a database
/// that does not exist) already says so.
async fn with_cause(url: &DatabaseUrl, e: anyhow::Error) -> anyhow::Error {
    let DatabaseUrl::Postgres(raw) = url else {
        return e;
    };
    if !format!("{e:#}").contains("error connecting to server") {
        return e;
    }
    match unreachable_because(raw).await {
        Some(cause) => anyhow::anyhow!(
            "DATABASE_URL: cannot connect to {}: {cause}",
            crate::config::redact_url(raw)
        ),
        None => e,
    }
}

/// Why nothing answers at the host and port of a `postgres://` URL, if
/// that is the trouble.
async fn unreachable_because(url: &str) -> Option<String> {
    let (host, port) = postgres_host(url)?;
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => found.collect(),
            Err(e) => return Some(format!("unknown host {host:?} ({e}); check the host name")),
        };
    let mut last = None;
    for addr in addrs {
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(addr),
        );
        match attempt.await {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(format!(
                    "connection refused at {addr}; is PostgreSQL running and listening there?"
                ))
            }
            Ok(Err(e)) => last = Some(format!("{addr}: {e}")),
            Err(_) => {
                last = Some(format!(
                    "no answer from {addr} within 5 s (a firewall, or the wrong address?)"
                ))
            }
        }
    }
    last
}

/// The host and port of a `postgres://user:pass@host:port/db` URL (5432
/// when none is given); `None` for other forms, such as a socket directory.
fn postgres_host(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() || hostport.contains(',') {
        return None;
    }
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 5432,
    };
    Some((host.to_string(), port))
}

/// Writes a consistent copy of the database to `to`; returns its size in
/// bytes.
pub async fn backup(url: &DatabaseUrl, to: &Path) -> anyhow::Result<u64> {
    crate::db::backup::backup(url, to).await
}

/// Copies the Django system's rows that are not here yet into the
/// (migrated) database, in one transaction, and logs the audit entries it
/// wrote once it has committed.
pub async fn import_django(
    settings: &Settings,
    source: Source,
    origin: String,
) -> anyhow::Result<Report> {
    let db = Db::connect(&settings.database_url, 1, settings.sqlite_synchronous).await?;
    let (report, audits) = crate::django::import::run(&db, source, origin)
        .await
        .map_err(|e| anyhow::anyhow!("nothing was imported: {e}"))?;
    audits.iter().for_each(crate::db::audit::log);
    Ok(report)
}

impl Service {
    /// Opens a pool of `pool_size` connections on the (migrated) database
    /// and builds the service on it; returns it with the ingest writer's
    /// task, to be shut down after the last request.
    pub async fn open(settings: Settings, pool_size: u32) -> anyhow::Result<(Self, WriterTask)> {
        let db = Db::connect(
            &settings.database_url,
            pool_size,
            settings.sqlite_synchronous,
        )
        .await?;
        Self::start(settings, db).await
    }

    /// "sqlite" or "postgres".
    pub fn database_backend(&self) -> &'static str {
        self.db.backend_name()
    }

    /// Connections open and idle in the pool, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        self.db.pool_state()
    }

    /// Whether the database answers; for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::postgres_host;

    #[test]
    fn hosts_of_postgres_urls() {
        let host = |u: &str| postgres_host(u);
        assert_eq!(
            host("postgres://tw:p@ss@db.example:6432/tw"),
            Some(("db.example".into(), 6432))
        );
        assert_eq!(host("postgres://tw@db/tw"), Some(("db".into(), 5432)));
        assert_eq!(
            host("postgresql://[::1]:5433/tw?sslmode=disable"),
            Some(("::1".into(), 5433))
        );
        assert_eq!(host("postgres:///tw?host=/run/postgresql"), None);
    }
}
