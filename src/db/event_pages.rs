//! Reading events: one event, a filtered page, a count. (Storing them is
//! `db::events`.)

use chrono::NaiveDateTime;
use diesel::dsl;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sqlite::Sqlite;

use super::conn::Loadable;
use super::events::{paired, with_alert};
use super::models::{columns, AlertRow, EventRow, EventWithAlert};
use super::schema::{alerts, events, events_fts};
use super::sql::{fts5_match, keyset, timed_keyset, Hint, List, Maybe, Walk, Words};
use super::{Conn, Db};
use crate::domain::alert::EventFilter;
use crate::domain::filter::Search;
use crate::domain::page::Page;
use crate::error::{Error, Result};

/// The events a filter keeps: one condition per filter, each always true
/// when the filter is not given.
type Matching = dsl::And<
    dsl::And<
        dsl::And<
            dsl::And<
                dsl::And<
                    Maybe<dsl::Eq<Hint<events::severity>, String>>,
                    Maybe<dsl::Eq<Hint<events::source>, String>>,
                >,
                Maybe<dsl::Eq<Hint<events::event_type>, String>>,
            >,
            Maybe<dsl::GtEq<Hint<events::created_at>, NaiveDateTime>>,
        >,
        Maybe<dsl::LtEq<Hint<events::created_at>, NaiveDateTime>>,
    >,
    Maybe<Words>,
>;

/// `walk`: which index the page walks, which the conditions then leave
/// to it (see `sql::Hint`): on a search page (SQLite's), every condition
/// is only checked, and the search is the driving FTS5 index rather than a
/// condition; on a time-ordered page, the (created_at, id) indexes (and
/// (source, created_at, id)) walk.
fn matching(filter: &EventFilter, walk: Walk) -> Matching {
    let n = &filter.narrowing;
    Maybe(filter.severity.map(|s| {
        Hint {
            column: events::severity,
            checked: walk != Walk::Id,
        }
        .eq(s.as_str().to_owned())
    }))
    .and(Maybe(n.source.clone().map(|s| {
        Hint {
            column: events::source,
            checked: walk == Walk::Words,
        }
        .eq(s)
    })))
    .and(Maybe(n.event_type.clone().map(|t| {
        Hint {
            column: events::event_type,
            checked: walk != Walk::Id,
        }
        .eq(t)
    })))
    .and(Maybe(n.since.map(|t| {
        Hint {
            column: events::created_at,
            checked: walk == Walk::Words,
        }
        .ge(t)
    })))
    .and(Maybe(n.until.map(|t| {
        Hint {
            column: events::created_at,
            checked: walk == Walk::Words,
        }
        .le(t)
    })))
    .and(Maybe(
        n.search
            .as_ref()
            .filter(|_| walk != Walk::Words)
            .map(|s| Words::new(List::Events, s)),
    ))
}

/// The creation time of the event a cursor names, which a page in
/// (created_at, id) order starts from; `field` names the cursor's argument.
async fn cursor_time(
    conn: &mut Conn<'_>,
    id: Option<i64>,
    field: &str,
) -> Result<Option<(NaiveDateTime, i64)>> {
    let Some(id) = id else { return Ok(None) };
    let at: Option<NaiveDateTime> = conn
        .first(events::table.find(id).select(events::created_at))
        .await
        .optional()?;
    match at {
        Some(at) => Ok(Some((at, id))),
        None => Err(Error::invalid(
            field,
            "names no event (any more); start again from the first page",
        )),
    }
}

/// A page's rows.
type Rows = (EventRow, Option<AlertRow>);

/// The page in id order (see `Db::events_page`).
fn by_id(
    filter: &EventFilter,
    page: &Page,
) -> impl Loadable<'static, Rows> + QueryFragment<Sqlite> {
    let k = keyset(page, events::id);
    with_alert()
        .filter(matching(filter, Walk::Id))
        .filter(k.range)
        .order(k.order)
        .limit(k.limit)
}

/// The page in (created_at, id) order, its cursors with their rows' times.
fn by_time(
    filter: &EventFilter,
    page: &Page,
    below: Option<(NaiveDateTime, i64)>,
    above: Option<(NaiveDateTime, i64)>,
) -> impl Loadable<'static, Rows> + QueryFragment<Sqlite> {
    let n = &filter.narrowing;
    let k = timed_keyset(
        page,
        List::Events,
        (events::created_at, events::id),
        below,
        above,
        (n.since, n.until),
    );
    let mut bounded = filter.clone();
    bounded.narrowing.since = k.since;
    bounded.narrowing.until = k.until;
    with_alert()
        .filter(matching(&bounded, Walk::Time))
        .filter(k.range)
        .order(k.order)
        .limit(k.limit)
}

/// SQLite's search page, driven by the FTS5 index in id order.
fn by_words(
    filter: &EventFilter,
    search: &Search,
    page: &Page,
) -> impl Loadable<'static, Rows> + QueryFragment<Sqlite> {
    let k = keyset(page, events_fts::rowid);
    events_fts::table
        .inner_join(events::table.on(events::id.eq(events_fts::rowid)))
        .left_join(alerts::table.on(alerts::id.nullable().eq(events::alert_id)))
        .select((columns::<EventRow>(), columns::<AlertRow>().nullable()))
        .filter(fts5_match(List::Events, search))
        .filter(matching(filter, Walk::Words))
        .filter(k.range)
        .order(k.order)
        .limit(k.limit)
}

impl Db {
    /// One event with its alert.
    pub async fn event(&self, id: i64) -> Result<Option<EventWithAlert>> {
        self.read(async move |mut conn| {
            let row: Option<(EventRow, Option<AlertRow>)> = conn
                .first(with_alert().filter(events::id.eq(id)).limit(1))
                .await
                .optional()?;
            Ok(row.map(|(event, alert)| EventWithAlert { event, alert }))
        })
        .await
    }

    /// One keyset page, in the shapes `Db::alerts_page` describes.
    pub async fn events_page(
        &self,
        filter: EventFilter,
        page: Page,
    ) -> Result<Vec<EventWithAlert>> {
        let searching = filter.narrowing.search.is_some();
        if searching {
            self.index_event_words().await?;
        }
        let work = async move |mut conn: Conn<'_>| {
            let n = &filter.narrowing;
            let rows = if let (Some(search), false) = (&n.search, conn.is_postgres()) {
                conn.load(by_words(&filter, search, &page)).await?
            } else if n.by_time() {
                let below = cursor_time(&mut conn, page.below, "after").await?;
                let above = cursor_time(&mut conn, page.above, "before").await?;
                conn.load(by_time(&filter, &page, below, above)).await?
            } else {
                conn.load(by_id(&filter, &page)).await?
            };
            Ok(paired(rows))
        };
        if searching {
            self.read(work).await
        } else {
            self.read_page(work).await
        }
    }

    pub async fn count_events(&self, filter: EventFilter) -> Result<i64> {
        if filter.narrowing.search.is_some() {
            self.index_event_words().await?;
        }
        self.read(async move |mut conn| {
            let query = events::table.filter(matching(&filter, Walk::Id)).count();
            Ok(conn.first(query).await?)
        })
        .await
    }
}

/// What SQLite's planner does with a query, on a migrated database under
/// the settings the service runs with.
#[cfg(test)]
pub(super) fn sqlite_plan<Q: QueryFragment<Sqlite>>(query: &Q) -> String {
    #[derive(QueryableByName, Debug)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let mut conn = super::words::migrated_with_words();
    let sql = diesel::debug_query::<Sqlite, _>(query).to_string();
    let sql = sql.split(" -- binds").next().unwrap();
    let plan: Vec<Plan> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
        .load(&mut conn)
        .unwrap();
    plan.into_iter()
        .map(|p| p.detail)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Filters and pages for the plan tests of both lists.
#[cfg(test)]
pub(super) mod samples {
    use crate::domain::filter::Narrowing;
    use crate::domain::page::{encode_cursor, Page};

    pub fn at(day: u32) -> chrono::NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, day)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    }

    /// The first page, a page after a cursor, and one before it.
    pub fn pages() -> [Page; 3] {
        let c = encode_cursor(500);
        [
            Page::parse(Some(10), None, None, None).unwrap(),
            Page::parse(Some(10), Some(&c), None, None).unwrap(),
            Page::parse(None, None, Some(10), Some(&c)).unwrap(),
        ]
    }

    pub fn narrowing(source: Option<&str>, timed: bool, search: Option<&str>) -> Narrowing {
        Narrowing::parse(
            source,
            None,
            timed.then(|| at(1)),
            timed.then(|| at(2)),
            search,
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{at, narrowing, pages};
    use super::{by_id, by_time, by_words, sqlite_plan};
    use crate::domain::alert::EventFilter;
    use crate::domain::filter::{Narrowing, Search};

    /// Every page shape is one index walk in the page's order: no sort of
    /// the matching rows, whichever cursor it starts from.
    #[test]
    fn event_pages_walk_an_index_in_their_order() {
        for page in pages() {
            let cursor = |id: Option<i64>| id.map(|id| (at(1), id));
            let f = EventFilter {
                narrowing: narrowing(Some("fw-1"), false, None),
                ..Default::default()
            };
            assert!(f.narrowing.by_time());
            let plan = sqlite_plan(&by_time(&f, &page, cursor(page.below), cursor(page.above)));
            assert!(plan.contains("events_source_created_at_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");

            // An event type has no index: the page walks ids and checks it.
            let f = EventFilter {
                narrowing: Narrowing::parse(None, Some("Malware"), None, None, None).unwrap(),
                ..Default::default()
            };
            let plan = sqlite_plan(&by_id(&f, &page));
            assert!(plan.contains("PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");

            let f = EventFilter {
                narrowing: narrowing(Some("fw-1"), true, None),
                ..Default::default()
            };
            let plan = sqlite_plan(&by_time(&f, &page, cursor(page.below), cursor(page.above)));
            assert!(plan.contains("events_source_created_at_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            let f = EventFilter {
                narrowing: narrowing(None, true, None),
                ..Default::default()
            };
            let plan = sqlite_plan(&by_time(&f, &page, cursor(page.below), cursor(page.above)));
            assert!(plan.contains("events_created_at_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");

            let search = Search::parse("evil \"NEAR(").unwrap();
            let f = EventFilter::default();
            let plan = sqlite_plan(&by_words(&f, &search, &page));
            assert!(plan.starts_with("SCAN events_fts VIRTUAL TABLE"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// With a cursor inside the time range, the walk seeks to the cursor
    /// (the range's own end is not a bound of the index walk), so page
    /// 10,000 costs what page 1 costs.
    #[test]
    fn a_cursor_bounds_the_time_walk() {
        let [_, after, before] = pages();
        let f = EventFilter {
            narrowing: narrowing(None, true, None),
            ..Default::default()
        };
        // `until` (`since`) is left out of the query, so the walk's upper
        // (lower) bound in the plan is the cursor's.
        let query = by_time(&f, &after, Some((at(1), 500)), None);
        let plan = sqlite_plan(&query);
        assert!(plan.contains("created_at<?"), "{plan}");
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
        assert!(!sql.contains("`created_at` <= "), "{sql}");
        let query = by_time(&f, &before, None, Some((at(1), 500)));
        let plan = sqlite_plan(&query);
        assert!(plan.contains("created_at>?"), "{plan}");
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
        assert!(!sql.contains("`created_at` >= "), "{sql}");
    }
}
