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

/// Which index a page walks; see `Hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Whichever index of a filter ends in id (or the primary key); also
    /// what counts use.
    Id,
    /// (created_at, id) or (source, created_at, id).
    Time,
    /// SQLite's FTS5 index of the list's words.
    Words,
}

/// A column a condition only checks, never searches an index by, when
/// `checked`: on SQLite it is written `+column`, which keeps the planner
/// off its index. A page cut to a time range walks the (created_at, id)
/// index in order; without this, SQLite (which keeps no statistics here)
/// prefers an equality index such as `alerts_severity_id` and sorts every
/// HIGH alert to find ten; a search page likewise walks its FTS5 index.
/// PostgreSQL weighs the choices with its statistics, and has no unary `+`
/// for text.
#[derive(Debug, Clone, Copy)]
pub struct Hint<C> {
    pub column: C,
    pub checked: bool,
}

impl<C: diesel::Expression> diesel::Expression for Hint<C> {
    type SqlType = C::SqlType;
}

impl<C: diesel::AppearsOnTable<QS>, QS> diesel::AppearsOnTable<QS> for Hint<C> {}

impl<C: diesel::SelectableExpression<QS>, QS> diesel::SelectableExpression<QS> for Hint<C> {}

impl<C, G> diesel::expression::ValidGrouping<G> for Hint<C>
where
    C: diesel::expression::ValidGrouping<G>,
{
    type IsAggregate = C::IsAggregate;
}

impl<C> QueryId for Hint<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C: QueryFragment<Sqlite>> QueryFragment<Sqlite> for Hint<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        if self.checked {
            out.push_sql("+");
        }
        self.column.walk_ast(out)
    }
}

impl<C: QueryFragment<Pg>> QueryFragment<Pg> for Hint<C> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out)
    }
}

/// Which list a condition is written for: the table and its word index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Alerts,
    Events,
}

impl List {
    fn table(self) -> &'static str {
        match self {
            List::Alerts => "alerts",
            List::Events => "events",
        }
    }
}

/// Diesel's marker traits for a boolean condition written as SQL text,
/// which may appear in any query (it names its own tables).
macro_rules! raw_condition {
    ($name:ident) => {
        impl diesel::Expression for $name {
            type SqlType = diesel::sql_types::Bool;
        }
        impl<QS> diesel::AppearsOnTable<QS> for $name {}
        impl<QS> diesel::SelectableExpression<QS> for $name {}
        impl<G> diesel::expression::ValidGrouping<G> for $name {
            type IsAggregate = diesel::expression::is_aggregate::Never;
        }
        impl QueryId for $name {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }
    };
}

/// The rows whose words include every searched word: a condition whose
/// SQL differs per backend, so it is written once per backend here.
///
/// SQLite asks the list's FTS5 index (`alerts_fts` or `events_fts`, keyed
/// by the list's id; an alert holds its raising event's words) with every
/// word quoted (`Search::fts5_query`). It holds every row once
/// `Db::index_event_words` (or `index_alert_words`) has caught up, which
/// every SQLite search does first.
/// PostgreSQL matches `plainto_tsquery` against the GIN index on the
/// list's words (an alert holds its raising event's). This is the
/// form for counts and for PostgreSQL's pages; SQLite's pages are driven
/// by the FTS5 index itself (see `fts5_match`).
#[derive(Debug, Clone)]
pub struct Words {
    list: List,
    fts5: String,
    text: String,
}

impl Words {
    pub fn new(list: List, search: &crate::domain::filter::Search) -> Self {
        Self {
            list,
            fts5: search.fts5_query(),
            text: search.plain(),
        }
    }
}

raw_condition!(Words);

/// The list's stored words, which its GIN index (`events_words`,
/// `alerts_words`) serves: an event's own (a generated column), an alert's
/// copied from the event that raised it (a trigger, see
/// migrations/postgres/*_alert_words); see `Search` for what a word is.
fn pg_words(table: &str) -> String {
    format!("{table}.words")
}

impl QueryFragment<Sqlite> for Words {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let table = self.list.table();
        out.push_sql(&format!(
            "{table}.id IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH "
        ));
        out.push_bind_param::<diesel::sql_types::Text, String>(&self.fts5)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryFragment<Pg> for Words {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Planned for its words every time: a prepared statement falls back
        // to a generic plan after five runs, which cannot know whether the
        // words are in every row (walk the list's order, stop at the page)
        // or in a few (read them from the GIN index, then sort).
        out.unsafe_to_cache_prepared();
        out.push_sql(&pg_words(self.list.table()));
        out.push_sql(" @@ plainto_tsquery('simple', ");
        out.push_bind_param::<diesel::sql_types::Text, String>(&self.text)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `alerts.status = 'RESOLVED'`, for reads that the partial index of
/// resolved alerts (`alerts_resolved_at`) should serve. A literal: neither
/// planner looks at a bound value here, and a partial index serves a
/// query only when its planner sees the value. On SQLite it is wrapped in
/// `likely()`: planning without statistics, SQLite rated the equality as
/// selective and walked every resolved alert through `alerts_status_id`
/// (sorting them when the order was the partial index's); told that most
/// rows pass it, it takes the partial index's range.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAlert;

raw_condition!(ResolvedAlert);

impl QueryFragment<Sqlite> for ResolvedAlert {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("likely(alerts.status = 'RESOLVED')");
        Ok(())
    }
}

impl QueryFragment<Pg> for ResolvedAlert {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("alerts.status = 'RESOLVED'");
        Ok(())
    }
}

/// `alerts_fts MATCH ?` (or `events_fts`): the FTS5 index as the driving
/// table of a SQLite search page. FTS5 hands its rows out in rowid order
/// and takes the cursor's bound as a rowid range, so a page ordered by the
/// index's rowid reads the doclists of the words only until the page is
/// full: a common word costs a page, a rare one its short doclist.
#[derive(Debug, Clone)]
pub struct Fts5Match {
    list: List,
    query: String,
}

pub fn fts5_match(list: List, search: &crate::domain::filter::Search) -> Fts5Match {
    Fts5Match {
        list,
        query: search.fts5_query(),
    }
}

raw_condition!(Fts5Match);

impl QueryFragment<Sqlite> for Fts5Match {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(&format!("{}_fts MATCH ", self.list.table()));
        out.push_bind_param::<diesel::sql_types::Text, String>(&self.query)
    }
}

/// Not SQL PostgreSQL knows; never sent there (its pages filter by `Words`).
impl QueryFragment<Pg> for Fts5Match {
    fn walk_ast<'b>(&'b self, _out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Err(diesel::result::Error::QueryBuilderError(
            "an FTS5 search on PostgreSQL".into(),
        ))
    }
}

/// The cursor's bounds of a page ordered by (created_at, id), the order of
/// a list cut to a time range.
///
/// Why not id order, like every other list: ids and creation times mostly
/// rise together, but not always (imported alerts keep their old times; on
/// PostgreSQL two instances stamp and insert in either order), so a time
/// range is not an id range. Walking ids while checking the time would
/// either skip the newer rows first or, once the range is exhausted, read
/// the rest of the table to learn that no row is left. In (created_at, id)
/// order the range is one index range, and every page is one seek plus its
/// rows. The cursor stays an id; storage reads its row's `created_at` first
/// (a primary-key probe) and `timed_keyset` keeps one bound per side.
#[derive(Debug, Clone, Copy)]
pub struct Around {
    list: List,
    below: Option<(chrono::NaiveDateTime, i64)>,
    above: Option<(chrono::NaiveDateTime, i64)>,
}

raw_condition!(Around);

impl<DB> QueryFragment<DB> for Around
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<diesel::sql_types::Timestamp>,
    i64: ToSql<BigInt, DB>,
    chrono::NaiveDateTime: ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let t = self.list.table();
        let mut any = false;
        for (bound, op) in [(&self.below, "<"), (&self.above, ">")] {
            let Some((at, id)) = bound else { continue };
            if any {
                out.push_sql(" AND ");
            }
            any = true;
            out.push_sql(&format!("({t}.created_at, {t}.id) {op} ("));
            out.push_bind_param::<diesel::sql_types::Timestamp, _>(at)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, i64>(id)?;
            out.push_sql(")");
        }
        if !any {
            out.push_sql("1 = 1");
        }
        Ok(())
    }
}

/// A keyset page of a list ordered by (created_at, id): see `Around`.
pub struct TimedKeyset<T, C> {
    pub range: Around,
    pub order: (Sort<T>, Sort<C>),
    pub limit: i64,
    /// The time range left to check besides `range`: a planner given two
    /// bounds on one side of the index (`until` and the cursor) may seek
    /// by the looser one and walk every row between them (SQLite does), so
    /// of `until` and the `after` cursor only the tighter is kept, and of
    /// `since` and the `before` cursor likewise.
    pub since: Option<chrono::NaiveDateTime>,
    pub until: Option<chrono::NaiveDateTime>,
}

/// `below` and `above`: the page's cursors (`Page::below`, `Page::above`)
/// with their rows' `created_at`.
pub fn timed_keyset<T, C>(
    page: &Page,
    list: List,
    (created_at, id): (T, C),
    below: Option<(chrono::NaiveDateTime, i64)>,
    above: Option<(chrono::NaiveDateTime, i64)>,
    (since, until): (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>),
) -> TimedKeyset<T, C> {
    let descending = page.direction == Direction::Forward;
    // A cursor at or inside the range bounds it more tightly than the
    // range's own end; one outside it does not bound it at all.
    let below = below.filter(|(at, _)| until.is_none_or(|u| *at <= u));
    let above = above.filter(|(at, _)| since.is_none_or(|s| *at >= s));
    TimedKeyset {
        range: Around { list, below, above },
        order: (
            Sort {
                column: created_at,
                descending,
            },
            Sort {
                column: id,
                descending,
            },
        ),
        limit: page.fetch_limit(),
        since: since.filter(|_| above.is_none()),
        until: until.filter(|_| below.is_none()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL searches the columns its GIN indexes are built on.
    #[test]
    fn words_are_asked_as_the_indexes_were_built() {
        let events = include_str!("../../migrations/postgres/2026-12-02-000013_search/up.sql");
        let alerts = include_str!("../../migrations/postgres/2026-12-03-000017_alert_words/up.sql");
        for (list, migration) in [(List::Events, events), (List::Alerts, alerts)] {
            let table = list.table();
            let asked = pg_words(table).replace(&format!("{table}."), "");
            assert!(
                migration.contains(&format!("ON {table} USING gin ({asked})")),
                "{table}.{asked}"
            );
        }
    }

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
