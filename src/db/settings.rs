//! Small values the service keeps with its data (e.g. the generated JWT key).

use diesel::prelude::*;

use super::schema::settings;
use super::Db;
use crate::error::Result;

impl Db {
    /// Returns the stored value of `key`, storing `candidate` first if there
    /// is none. Safe when several instances start at once: the first insert
    /// wins and everyone reads the winner.
    pub async fn setting_or_insert(&self, key: &str, candidate: String) -> Result<String> {
        let key = key.to_string();
        self.transaction(async move |mut conn| {
            let insert = diesel::insert_into(settings::table)
                .values((settings::key.eq(key.clone()), settings::value.eq(candidate)))
                .on_conflict_do_nothing();
            conn.execute(insert).await?;
            let query = settings::table.find(key).select(settings::value);
            Ok(conn.first(query).await?)
        })
        .await
    }
}
