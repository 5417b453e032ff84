//! Statements Diesel's query builder cannot express for both backends, or
//! would not keep prepared: multi-row INSERTs with a variable number of
//! rows, `IN` lists, and `UPDATE`s.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::dsl;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::BigInt;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::sqlite::Sqlite;
use diesel::{BoolExpressionMethods, QueryResult};

use crate::domain::page::{Direction, Page};

/// SQL assembled at run time from text and bound values, like
/// `diesel::sql_query(..).bind(..)`, except that a connection may keep it
/// prepared: Diesel never caches `sql_query`, an `UPDATE`, or an `IN`
/// list, so the ingest writer re-parsed five statements per batch. This
/// one is cached by its text while it binds at most `MAX_CACHED_VALUES`
/// values, or when its rows or list come in one of the few sizes
/// `shaped_chunks` cuts: every cached text costs memory for the
/// connection's lifetime, so statements of any other large size are parsed
/// afresh. Diesel writes each placeholder itself (`?` or `$n`); consecutive
/// values are separated by `, `.
///
/// It serves both backends: every value can be written by either.
pub struct Statement<'a> {
    parts: Vec<Part<'a>>,
    values: usize,
    /// Whether its rows and lists (if any) all have sizes `shaped_chunks`
    /// cuts.
    shaped: Option<bool>,
}

/// See `Statement`: up to 28 rows of a nine-column insert.
const MAX_CACHED_VALUES: usize = 256;

enum Part<'a> {
    Sql(Cow<'static, str>),
    Value(Box<dyn Value + 'a>),
}

/// A bound value either backend can write.
trait Value: QueryFragment<Sqlite> + QueryFragment<Pg> + Send {}

impl<T: QueryFragment<Sqlite> + QueryFragment<Pg> + Send> Value for T {}

struct Bound<ST, U> {
    value: U,
    sql_type: PhantomData<ST>,
}

impl<ST, U, DB> QueryFragment<DB> for Bound<ST, U>
where
    DB: Backend + HasSqlType<ST>,
    U: ToSql<ST, DB>,
{
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        pass.push_bind_param::<ST, U>(&self.value)
    }
}

impl<'a> Statement<'a> {
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            parts: vec![Part::Sql(sql.into())],
            values: 0,
            shaped: None,
        }
    }

    pub fn sql(mut self, sql: impl Into<Cow<'static, str>>) -> Self {
        self.parts.push(Part::Sql(sql.into()));
        self
    }

    pub fn bind<ST, U>(mut self, value: U) -> Self
    where
        Sqlite: HasSqlType<ST>,
        Pg: HasSqlType<ST>,
        U: ToSql<ST, Sqlite> + ToSql<ST, Pg> + Send + 'a,
        ST: Send + 'static,
    {
        if matches!(self.parts.last(), Some(Part::Value(_))) {
            self.parts.push(Part::Sql(Cow::Borrowed(", ")));
        }
        self.values += 1;
        self.parts.push(Part::Value(Box::new(Bound {
            value,
            sql_type: PhantomData::<ST>,
        })));
        self
    }

    /// `(v, …), (v, …)`: one parenthesised row per item, its values bound
    /// by `row`.
    pub fn rows<T>(mut self, items: &'a [T], mut row: impl FnMut(Self, &'a T) -> Self) -> Self {
        self.shaped = Some(self.shaped.unwrap_or(true) && is_shaped(items.len()));
        for (i, item) in items.iter().enumerate() {
            self = row(self.sql(if i == 0 { "(" } else { "), (" }), item);
        }
        if !items.is_empty() {
            self = self.sql(")");
        }
        self
    }

    /// `v, v, …`: each item bound as one value, for an `IN (…)` list.
    pub fn list<ST, U>(mut self, items: &'a [U]) -> Self
    where
        U: Copy + ToSql<ST, Sqlite> + ToSql<ST, Pg> + Send + 'a,
        Sqlite: HasSqlType<ST>,
        Pg: HasSqlType<ST>,
        ST: Send + 'static,
    {
        self.shaped = Some(self.shaped.unwrap_or(true) && is_shaped(items.len()));
        for item in items {
            self = self.bind::<ST, U>(*item);
        }
        self
    }
}

impl<'a, DB: Backend> QueryFragment<DB> for Statement<'a>
where
    dyn Value + 'a: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.values > MAX_CACHED_VALUES && self.shaped != Some(true) {
            out.unsafe_to_cache_prepared();
        }
        for part in &self.parts {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Value(value) => value.walk_ast(out.reborrow())?,
            }
        }
        Ok(())
    }
}

impl QueryId for Statement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement<'_> {
    type SqlType = Untyped;
}

impl<Conn: diesel::Connection> diesel::RunQueryDsl<Conn> for Statement<'_> {}

/// A time bound many times over, formatted for SQLite once: Diesel formats
/// a `NaiveDateTime` anew for every bind (`%F %T%.f`), and a batch binds
/// one time for every row. On PostgreSQL it binds as the time itself.
#[derive(Debug)]
pub struct Stamp {
    at: chrono::NaiveDateTime,
    text: String,
}

impl Stamp {
    pub fn new(at: chrono::NaiveDateTime) -> Self {
        Self {
            at,
            // Diesel's own SQLite encoding of a timestamp.
            text: at.format("%F %T%.f").to_string(),
        }
    }
}

impl ToSql<diesel::sql_types::Timestamp, diesel::sqlite::Sqlite> for Stamp {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        out.set_value(self.text.as_str());
        Ok(diesel::serialize::IsNull::No)
    }
}

impl ToSql<diesel::sql_types::Timestamp, diesel::pg::Pg> for Stamp {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        ToSql::<diesel::sql_types::Timestamp, diesel::pg::Pg>::to_sql(&self.at, out)
    }
}

/// Rows per multi-row INSERT: far below SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters, with up to ten columns a row.
pub const ROWS_PER_STATEMENT: usize = 1_000;

/// The most rows (or list items) of a statement cut by `shaped_chunks`.
const MAX_SHAPED: usize = 64;

fn is_shaped(n: usize) -> bool {
    n.is_power_of_two() && n <= MAX_SHAPED
}

/// Ranges that cut `len` items into statements that stay prepared: runs
/// of 64, then the rest in falling powers of two, so that every statement
/// has one of seven sizes. A 1,000-row INSERT as one statement of 9,000
/// values would be parsed afresh each time; sixteen cached ones skip the
/// parse.
pub fn shaped_chunks(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = len - start;
        if rest == 0 {
            return None;
        }
        let take = if rest >= MAX_SHAPED {
            MAX_SHAPED
        } else {
            1 << rest.ilog2()
        };
        start += take;
        Some(start - take..start)
    })
}

/// `WHERE` conditions chosen at run time without boxing the query (a boxed
/// Diesel query belongs to one backend): `Maybe(Some(e))` is `e`,
/// `Maybe(None)` is always true. The query's type is the same either way,
/// so one query serves every combination of filters on both databases; its
/// text differs, so it is prepared and cached by text.
#[derive(Debug, Clone, Copy)]
pub struct Maybe<E>(pub Option<E>);

impl<E> diesel::Expression for Maybe<E>
where
    E: diesel::Expression,
    E::SqlType: diesel::sql_types::BoolOrNullableBool,
{
    type SqlType = E::SqlType;
}

impl<E, QS> diesel::AppearsOnTable<QS> for Maybe<E>
where
    E: diesel::AppearsOnTable<QS>,
    E::SqlType: diesel::sql_types::BoolOrNullableBool,
{
}

impl<E, QS> diesel::SelectableExpression<QS> for Maybe<E>
where
    E: diesel::SelectableExpression<QS>,
    E::SqlType: diesel::sql_types::BoolOrNullableBool,
{
}

impl<E, G> diesel::expression::ValidGrouping<G> for Maybe<E>
where
    E: diesel::expression::ValidGrouping<G>,
{
    type IsAggregate = E::IsAggregate;
}

impl<E: QueryId> QueryId for Maybe<E> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<E, DB> QueryFragment<DB> for Maybe<E>
where
    DB: diesel::backend::Backend,
    E: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        match &self.0 {
            Some(e) => e.walk_ast(out.reborrow()),
            None => {
                out.push_sql("1 = 1");
                Ok(())
            }
        }
    }
}

/// `ORDER BY` a column in a direction chosen at run time, for the same
/// reason as `Maybe`.
#[derive(Debug, Clone, Copy)]
pub struct Sort<C> {
    pub column: C,
    pub descending: bool,
}

impl<C: diesel::Expression> diesel::Expression for Sort<C> {
    type SqlType = C::SqlType;
}

impl<C: diesel::AppearsOnTable<QS>, QS> diesel::AppearsOnTable<QS> for Sort<C> {}

impl<C, G> diesel::expression::ValidGrouping<G> for Sort<C>
where
    C: diesel::expression::ValidGrouping<G>,
{
    type IsAggregate = C::IsAggregate;
}

impl<C> QueryId for Sort<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C, DB> QueryFragment<DB> for Sort<C>
where
    DB: diesel::backend::Backend,
    C: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(if self.descending { " DESC" } else { " ASC" });
        Ok(())
    }
}

/// A keyset page (see `domain::page`) of a query over `id`, in pieces:
/// `query.filter(k.range).order(k.order).limit(k.limit)`.
pub struct Keyset<C: diesel::Expression<SqlType = BigInt>> {
    /// The cursor's bounds: below it going forward, above it going back.
    pub range: Range<C>,
    /// The order for the page's direction.
    pub order: Sort<C>,
    /// One row more than the page shows.
    pub limit: i64,
}

/// Ids below one bound and above another, each present or not.
pub type Range<C> = dsl::And<Maybe<dsl::Lt<C, i64>>, Maybe<dsl::Gt<C, i64>>>;

pub fn keyset<C>(page: &Page, id: C) -> Keyset<C>
where
    C: diesel::ExpressionMethods + diesel::Expression<SqlType = BigInt> + Copy,
{
    Keyset {
        range: Maybe(page.below.map(|b| id.lt(b))).and(Maybe(page.above.map(|a| id.gt(a)))),
        order: Sort {
            column: id,
            descending: page.direction == Direction::Forward,
        },
        limit: page.fetch_limit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaped_chunks_cover_every_item_in_few_sizes() {
        for len in 0..300 {
            let chunks: Vec<_> = shaped_chunks(len).collect();
            let mut next = 0;
            for c in &chunks {
                assert_eq!(c.start, next, "len {len}: {chunks:?}");
                assert!(is_shaped(c.len()), "len {len}: {chunks:?}");
                next = c.end;
            }
            assert_eq!(next, len, "len {len}: {chunks:?}");
        }
        assert_eq!(
            shaped_chunks(1000).map(|c| c.len()).collect::<Vec<_>>(),
            [vec![64; 15], vec![32, 8]].concat()
        );
    }

    /// A large statement of a shaped size stays cacheable; one of another
    /// large size does not.
    #[test]
    fn only_shaped_large_statements_are_cached() {
        use diesel::sql_types::BigInt;
        use diesel::sqlite::Sqlite;
        let cached = |n: usize| {
            let rows: Vec<[i64; 5]> = vec![[1; 5]; n];
            let stmt: Statement<'_> = Statement::new("INSERT INTO t VALUES ")
                .rows(&rows, |s, r| {
                    r.iter().fold(s, |s, v| s.bind::<BigInt, _>(*v))
                });
            QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&stmt, &Sqlite).unwrap()
        };
        assert!(cached(10));
        assert!(cached(64));
        assert!(!cached(63));
        assert!(!cached(1000));
    }

    /// The text is what the statement cache keys on: the same shape gives
    /// the same text, with placeholders Diesel numbers itself.
    #[test]
    fn statement_renders_placeholders_and_separators() {
        use diesel::pg::Pg;
        use diesel::sql_types::{BigInt, Text};
        let rows = [(1i64, "a"), (2, "b")];
        let stmt: Statement<'_> = Statement::new("INSERT INTO t (a, b) VALUES ")
            .rows(&rows, |s, (a, b)| {
                s.bind::<BigInt, _>(*a).bind::<Text, _>(*b)
            })
            .sql(" RETURNING id");
        assert_eq!(
            diesel::debug_query::<Pg, _>(&stmt)
                .to_string()
                .split(" -- ")
                .next(),
            Some("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING id")
        );
        let ids = [5i64, 6, 7];
        let stmt: Statement<'_> = Statement::new("DELETE FROM t WHERE id IN (")
            .list::<BigInt, _>(&ids)
            .sql(")");
        assert_eq!(
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&stmt)
                .to_string()
                .split(" -- ")
                .next(),
            Some("DELETE FROM t WHERE id IN (?, ?, ?)")
        );
    }

    /// A `Stamp` is stored exactly as the time itself would be: it reads
    /// back equal, and compares equal in SQL with a Diesel-bound time.
    #[test]
    fn stamp_stores_what_diesel_would() {
        use diesel::prelude::*;
        use diesel::sql_types::{Bool, Timestamp};
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Timestamp)]
            t: chrono::NaiveDateTime,
            #[diesel(sql_type = Bool)]
            same: bool,
        }
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        for at in [
            chrono::DateTime::from_timestamp(1_764_000_000, 123_456_000)
                .unwrap()
                .naive_utc(),
            chrono::DateTime::from_timestamp(1_764_000_000, 0)
                .unwrap()
                .naive_utc(),
        ] {
            let stamp = Stamp::new(at);
            let row: Row = diesel::sql_query("SELECT ? AS t, ? = ? AS same")
                .bind::<Timestamp, _>(&stamp)
                .bind::<Timestamp, _>(&stamp)
                .bind::<Timestamp, _>(at)
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(row.t, at);
            assert!(row.same);
        }
    }

    /// Small statements are kept prepared; large ones are not, so that a
    /// connection's cache stays small whatever batch sizes it meets.
    #[test]
    fn only_small_statements_are_cached() {
        use diesel::sql_types::BigInt;
        use diesel::sqlite::Sqlite;
        let small: Vec<i64> = (0..MAX_CACHED_VALUES as i64).collect();
        let large: Vec<i64> = (0..=MAX_CACHED_VALUES as i64).collect();
        let cacheable = |ids: &[i64]| {
            Statement::new("SELECT 1 WHERE 1 IN (")
                .list::<BigInt, _>(ids)
                .sql(")")
                .is_safe_to_cache_prepared(&Sqlite)
                .unwrap()
        };
        assert!(cacheable(&small));
        assert!(!cacheable(&large));
    }
}
