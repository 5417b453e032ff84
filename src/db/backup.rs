//! Online backups of a SQLite database, taken while the service serves.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::config::DatabaseUrl;

/// Writes a consistent copy of the database to `to` and returns its size.
///
/// `VACUUM INTO` reads one snapshot of the database in a read transaction,
/// so ingest goes on meanwhile (WAL readers do not block the writer) and the
/// copy holds exactly the transactions committed before it began: no
/// half-written alert, no event without its audit entry. The copy is also
/// compacted and needs no `-wal` file beside it.
///
/// `to` must not exist: the file is created exclusively before anything is
/// written, so a backup never replaces one, even racing another.
pub async fn backup(url: &DatabaseUrl, to: &Path) -> anyhow::Result<u64> {
    let DatabaseUrl::Sqlite(path) = url.clone() else {
        anyhow::bail!(
            "backup: DATABASE_URL is PostgreSQL; back it up with pg_dump (README, \"Backups\")"
        );
    };
    let to = to.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if !Path::new(&path).is_file() {
            anyhow::bail!("backup: no SQLite database at {path:?} (DATABASE_URL)");
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&to)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "backup: {} already exists; a backup never overwrites a file, choose a new name",
                to.display()
            ),
            Err(e) => anyhow::bail!("backup: cannot create {}: {e}", to.display()),
        }
        let copied = copy(&path, &to);
        if copied.is_err() {
            // Only the file this call created, empty or half-written.
            let _ = std::fs::remove_file(&to);
        }
        copied?;
        Ok(std::fs::metadata(&to)?.len())
    })
    .await?
}

fn copy(from: &str, to: &Path) -> anyhow::Result<()> {
    let target = to
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("backup: {} is not a UTF-8 path", to.display()))?;
    let mut conn = SqliteConnection::establish(from)
        .map_err(|e| anyhow::anyhow!("backup: cannot open {from:?}: {e}"))?;
    // The writer may hold its lock for a moment; wait for it as the service does.
    conn.batch_execute("PRAGMA busy_timeout = 10000;")?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(target)
        .execute(&mut conn)
        .map_err(|e| anyhow::anyhow!("backup: copying into {target} failed: {e}"))?;
    rekey_words(target)
}

/// Gives the copy a word index owner key of its own (`db::words`): the
/// word file beside a database that is later restored from this copy
/// indexed rows the copy may not hold, and must be rebuilt, not trusted.
/// A database from before the word file has no key to change.
fn rekey_words(copy: &str) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Tables {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = SqliteConnection::establish(copy)
        .map_err(|e| anyhow::anyhow!("backup: cannot open the copy {copy:?}: {e}"))?;
    let mark = |e| anyhow::anyhow!("backup: cannot mark the copy {copy:?}: {e}");
    let owner: Tables = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'words_owner'",
    )
    .get_result(&mut conn)
    .map_err(mark)?;
    if owner.n == 0 {
        return Ok(());
    }
    conn.batch_execute("UPDATE words_owner SET key = lower(hex(randomblob(16)))")
        .map_err(mark)
}
