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
    crate::db::migrate(url).await
}

/// The migrations the database lacks, without applying them.
pub async fn pending_migrations(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    crate::db::pending_migrations(url).await
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
