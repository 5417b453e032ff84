//! Relay cursor pagination over lists ordered newest first.
//!
//! Cursors are keyset positions (the row id, which grows with insertion),
//! never offsets: a client paging with `after` sees no duplicate and skips
//! nothing while new rows arrive, and every page costs one index seek.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: i64 = 10;
pub const MAX_PAGE_SIZE: i64 = 100;

/// Versioned so that the encoding can change without old cursors being
/// misread as something else.
const CURSOR_PREFIX: &str = "k1:";

pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

pub fn decode_cursor(field: &str, cursor: &str) -> Result<i64> {
    let bad = || Error::invalid(field, "malformed cursor");
    if cursor.len() > 64 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let id = text
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(bad)?;
    if id <= 0 {
        return Err(bad());
    }
    Ok(id)
}

/// Which end of the list a page is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `first`/`after`: newest first, walking to older rows.
    Forward,
    /// `last`/`before`: the oldest rows of the window, read upward.
    Backward,
}

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub size: i64,
    pub direction: Direction,
    /// Only rows with a smaller id (older than the `after` cursor).
    pub below: Option<i64>,
    /// Only rows with a larger id (newer than the `before` cursor).
    pub above: Option<i64>,
}

impl Page {
    pub fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> Result<Self> {
        let size = |field: &str, n: i32| {
            let n = i64::from(n);
            if (1..=MAX_PAGE_SIZE).contains(&n) {
                Ok(n)
            } else {
                Err(Error::invalid(
                    field,
                    format!("must be between 1 and {MAX_PAGE_SIZE}, got {n}"),
                ))
            }
        };
        let (size, direction) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("first, last", "give one of them, not both"))
            }
            (Some(n), None) => (size("first", n)?, Direction::Forward),
            (None, Some(n)) => (size("last", n)?, Direction::Backward),
            (None, None) => (DEFAULT_PAGE_SIZE, Direction::Forward),
        };
        Ok(Self {
            size,
            direction,
            below: after.map(|c| decode_cursor("after", c)).transpose()?,
            above: before.map(|c| decode_cursor("before", c)).transpose()?,
        })
    }

    /// Rows to fetch: one more than the page, to learn whether more exist.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Turns the rows a query returned (newest first when `Forward`, oldest
    /// first when `Backward`, at most `fetch_limit`) into the page, newest
    /// first, with Relay's page flags.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> PageOf<T> {
        let more = rows.len() as i64 > self.size;
        rows.truncate(self.size as usize);
        match self.direction {
            Direction::Forward => PageOf {
                rows,
                has_next_page: more,
                has_previous_page: self.below.is_some(),
            },
            Direction::Backward => {
                rows.reverse();
                PageOf {
                    rows,
                    has_next_page: self.above.is_some(),
                    has_previous_page: more,
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct PageOf<T> {
    pub rows: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor("after", &encode_cursor(42)).unwrap(), 42);
        for bad in [
            "",
            "!!!",
            "MTIz",
            &URL_SAFE_NO_PAD.encode("k1:-5"),
            &"A".repeat(100),
        ] {
            let err = decode_cursor("after", bad).unwrap_err();
            assert_eq!(err.to_string(), "after: malformed cursor");
        }
    }

    #[test]
    fn page_arguments() {
        let p = Page::parse(None, None, None, None).unwrap();
        assert_eq!((p.size, p.direction), (10, Direction::Forward));
        assert!(Page::parse(Some(1), None, Some(1), None).is_err());
        assert!(Page::parse(Some(0), None, None, None).is_err());
        assert!(Page::parse(Some(101), None, None, None).is_err());
        assert!(Page::parse(None, None, Some(-1), None).is_err());
        let p = Page::parse(None, None, Some(5), Some(&encode_cursor(9))).unwrap();
        assert_eq!(
            (p.size, p.direction, p.above),
            (5, Direction::Backward, Some(9))
        );
    }

    #[test]
    fn finish_sets_flags() {
        let p = Page::parse(Some(2), None, None, None).unwrap();
        let page = p.finish(vec![5, 4, 3]);
        assert_eq!(page.rows, [5, 4]);
        assert!(page.has_next_page && !page.has_previous_page);
        let p = Page::parse(None, None, Some(2), None).unwrap();
        let page = p.finish(vec![1, 2, 3]);
        assert_eq!(page.rows, [2, 1]);
        assert!(page.has_previous_page && !page.has_next_page);
    }
}
