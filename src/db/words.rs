//! SQLite's word index (`events_fts`), filled behind ingest rather than
//! inside it.
//!
//! FTS5 writes a new segment for every transaction that touches it and
//! merges segments as they pile up. Group commit makes ingest transactions
//! small and frequent, so indexing each one's words cost ingest about a
//! fifth of its rate; the same rows indexed a second at a time, in
//! transactions of their own, cost a small fraction of that. A search
//! first indexes whatever is newer than the index (`Db::index_words`), so
//! it never misses an event however far behind the index is.
//!
//! PostgreSQL needs none of this: its words are a stored column of
//! `events` with a GIN index, written with the row.

use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::schema::{events, events_words_indexed};
use super::sql::Statement;
use super::{Conn, Db};
use crate::error::Result;

/// Events indexed per transaction: ingest waits while one runs, so the
/// index catches up in steps of a few milliseconds each, however large
/// the backlog (the first start after a big import).
const CHUNK: i64 = 5_000;

/// The newest event id the index holds, and the newest event id stored.
async fn marks(conn: &mut Conn<'_>) -> Result<(i64, Option<i64>)> {
    let through: i64 = conn
        .first(events_words_indexed::table.select(events_words_indexed::through))
        .await?;
    let newest: Option<i64> = conn
        .first(events::table.select(dsl::max(events::id)))
        .await?;
    Ok((through, newest))
}

/// Indexes up to `CHUNK` events newer than the index, inside the caller's
/// write transaction; true when more remain. Ids only grow and the write
/// lock is held, so every id up to `newest` is committed or never will be.
async fn index_chunk(conn: &mut Conn<'_>) -> Result<bool> {
    let (through, newest) = marks(conn).await?;
    let Some(newest) = newest.filter(|&n| n > through) else {
        return Ok(false);
    };
    let upto = newest.min(through.saturating_add(CHUNK));
    let insert = Statement::new(
        "INSERT INTO events_fts (rowid, body) \
         SELECT id, source || ' ' || event_type || ' ' || description \
         FROM events WHERE id > ",
    )
    .bind::<BigInt, _>(through)
    .sql(" AND id <= ")
    .bind::<BigInt, _>(upto);
    conn.execute(insert).await?;
    conn.execute(
        diesel::update(events_words_indexed::table).set(events_words_indexed::through.eq(upto)),
    )
    .await?;
    Ok(upto < newest)
}

impl Db {
    /// Brings SQLite's word index up to the newest stored event; a no-op on
    /// PostgreSQL and when nothing is new (a read, no write lock).
    pub async fn index_words(&self) -> Result<()> {
        if self.backend_name() == "postgres" {
            return Ok(());
        }
        let (through, newest) = self
            .read_page(async |mut conn| marks(&mut conn).await)
            .await?;
        if newest.is_none_or(|n| n <= through) {
            return Ok(());
        }
        while self
            .transaction(async |mut conn| index_chunk(&mut conn).await)
            .await?
        {}
        Ok(())
    }
}
