//! PostgreSQL LISTEN/NOTIFY, for telling other instances about changes.
//! SQLite has one instance by design, so there it does nothing.

use std::pin::pin;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures_util::StreamExt;

use super::{Db, PgConn, Pool};
use crate::error::{Error, Result};

impl Db {
    /// Sends `payload` on `channel` to every listening instance (PostgreSQL).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        match self.pool() {
            Pool::Sqlite(_) => Ok(()),
            Pool::Postgres(pool) => {
                let mut conn = pool.get().await?;
                diesel::sql_query("SELECT pg_notify($1, $2)")
                    .bind::<Text, _>(channel)
                    .bind::<Text, _>(payload)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }
    }
}

/// A dedicated connection that listens on one channel.
pub struct Listener {
    conn: PgConn,
}

impl Listener {
    pub async fn connect(url: &str, channel: &str) -> Result<Self> {
        let mut conn = PgConn::establish(url)
            .await
            .map_err(|e| Error::internal(anyhow::anyhow!("listener cannot connect: {e}")))?;
        // Channel names cannot be bound; ours is a fixed identifier.
        diesel::sql_query(format!("LISTEN {channel}"))
            .execute(&mut conn)
            .await?;
        Ok(Self { conn })
    }

    /// The next notification's payload, or `None` after `idle` passes with
    /// none (the caller then checks the connection with `ping`).
    pub async fn next(&mut self, idle: std::time::Duration) -> Result<Option<String>> {
        let mut stream = pin!(self.conn.notifications_stream());
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(n))) => Ok(Some(n.payload)),
            Ok(Some(Err(e))) => Err(e.into()),
            Ok(None) => Err(Error::internal(anyhow::anyhow!(
                "listener connection closed"
            ))),
            Err(_) => Ok(None),
        }
    }

    pub async fn ping(&mut self) -> Result<()> {
        diesel::sql_query("SELECT 1")
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }
}
