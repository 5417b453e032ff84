//! Batch loading for fields that point at other rows, so that a page of
//! alerts costs one query per level, not one per alert.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};

use crate::domain::silence::SilenceRecord;
use crate::domain::user::UserRecord;
use crate::error::Error;
use crate::service::Service;

pub struct Users(Service);

impl Loader<i64> for Users {
    type Value = UserRecord;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, UserRecord>, Arc<Error>> {
        let rows = self.0.users_by_ids(ids.to_vec()).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

pub struct Silences(Service);

impl Loader<i64> for Silences {
    type Value = SilenceRecord;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, SilenceRecord>, Arc<Error>> {
        let rows = self
            .0
            .silences_by_ids(ids.to_vec())
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|s| (s.id, s)).collect())
    }
}

pub fn silences(service: Service) -> DataLoader<Silences> {
    DataLoader::new(Silences(service), tokio::spawn).delay(Duration::ZERO)
}

/// No cache (a user's row may change between requests) and no delay: the
/// keys of one page are all asked for in the same poll, and async-graphql's
/// default 1 ms wait costs more than it gathers (async-graphql issue
/// #1306).
pub fn users(service: Service) -> DataLoader<Users> {
    DataLoader::new(Users(service), tokio::spawn).delay(Duration::ZERO)
}
