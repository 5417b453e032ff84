//! Batch loading for fields that point at other rows, so that a page of
//! alerts costs one query per level, not one per alert.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};

use crate::db::models::{SilenceRow, UserRow};
use crate::db::Db;
use crate::error::Error;

pub struct Users(Db);

impl Loader<i64> for Users {
    type Value = UserRow;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, UserRow>, Arc<Error>> {
        let rows = self.0.users_by_ids(ids.to_vec()).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

pub struct Silences(Db);

impl Loader<i64> for Silences {
    type Value = SilenceRow;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, SilenceRow>, Arc<Error>> {
        let rows = self
            .0
            .silences_by_ids(ids.to_vec())
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|s| (s.id, s)).collect())
    }
}

pub fn silences(db: Db) -> DataLoader<Silences> {
    DataLoader::new(Silences(db), tokio::spawn).delay(Duration::ZERO)
}

/// No cache (a user's row may change between requests) and no delay: the
/// keys of one page are all asked for in the same poll, and async-graphql's
/// default 1 ms wait costs more than it gathers (async-graphql issue
/// #1306).
pub fn users(db: Db) -> DataLoader<Users> {
    DataLoader::new(Users(db), tokio::spawn).delay(Duration::ZERO)
}
