//! Small values the service keeps with its data (e.g. the generated JWT key).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::settings;
use super::Db;
use crate::error::Result;

impl Db {
    /// Returns the stored value of `key`, storing `candidate` first if there
    /// is none. Safe when several instances start at once: the first insert
    /// wins and everyone reads the winner.
    pub async fn setting_or_insert(&self, key: &str, candidate: String) -> Result<String> {
        let key = key.to_string();
        let lookup = key.clone();
        transaction!(self, |conn| {
            diesel::insert_into(settings::table)
                .values((settings::key.eq(&key), settings::value.eq(&candidate)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            Ok(())
        })?;
        run!(self, |conn| {
            Ok(settings::table
                .find(&lookup)
                .select(settings::value)
                .first(conn)
                .await?)
        })
    }
}
