//! What `alerts` and `events` can be narrowed down by besides severity and
//! status: where an event came from, its type, when, and its words.

use chrono::NaiveDateTime;

use super::event::{label, MAX_LABEL_CHARS};
use crate::error::{Error, Result};

/// The longest search a client may send: a few words to look for, not a
/// document; it also bounds the work of parsing it into index terms.
pub const MAX_SEARCH_CHARS: usize = 200;

/// The most distinct words a search may ask for: each is one more index
/// lookup every page of the search pays for.
pub const MAX_SEARCH_WORDS: usize = 16;

/// The filters `alerts` and `events` share, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowing {
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// Created at or after this instant.
    pub since: Option<NaiveDateTime>,
    /// Created at or before this instant.
    pub until: Option<NaiveDateTime>,
    pub search: Option<Search>,
}

impl Narrowing {
    /// Parses what a client sent; each error names its argument.
    pub fn parse(
        source: Option<&str>,
        event_type: Option<&str>,
        since: Option<NaiveDateTime>,
        until: Option<NaiveDateTime>,
        search: Option<&str>,
    ) -> Result<Self> {
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(Error::invalid(
                    "since, until",
                    "since must not be later than until",
                ));
            }
        }
        Ok(Self {
            source: source
                .map(|s| label("source", s, MAX_LABEL_CHARS))
                .transpose()?,
            event_type: event_type
                .map(|t| label("eventType", t, MAX_LABEL_CHARS))
                .transpose()?,
            since,
            until,
            search: search.map(Search::parse).transpose()?,
        })
    }

    /// Whether nothing is narrowed down.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Whether the list is ordered by creation time: when cut to a time
    /// range or to a source, and not
    /// searched (a search walks its word index, in id order). One index,
    /// (source, created_at, id), then serves a source with or without a
    /// time range.
    pub fn by_time(&self) -> bool {
        (self.since.is_some() || self.until.is_some() || self.source.is_some())
            && self.search.is_none()
    }
}

/// Words to look for, all of them, in any order, whatever their case.
///
/// A word is a run of letters and digits: what SQLite's unicode61
/// tokenizer cuts text into, and what PostgreSQL's parser sees once the
/// indexed text has its ASCII punctuation turned into spaces (as the
/// PostgreSQL migration that stores the words does). Left to itself, PostgreSQL's parser keeps
/// `evil.example.com` whole and reads `HOST-7` as `host` and `-7`, so
/// `host 7` would find it on one database and not on the other. What still
/// differs: SQLite folds diacritics (`cafe` finds `café`) and PostgreSQL's
/// 'simple' configuration does not, and it lowercases letters beyond ASCII
/// only as the database's ctype says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    words: Vec<String>,
}

impl Search {
    pub fn parse(raw: &str) -> Result<Self> {
        let text = raw.trim();
        let chars = text.chars().count();
        if chars == 0 {
            return Err(Error::invalid("search", "must not be empty"));
        }
        if chars > MAX_SEARCH_CHARS {
            return Err(Error::invalid(
                "search",
                format!("must be at most {MAX_SEARCH_CHARS} characters, got {chars}"),
            ));
        }
        if text.contains('\0') {
            return Err(Error::invalid("search", "must not contain NUL characters"));
        }
        let mut words: Vec<String> = Vec::new();
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            // Case is ignored, so a word asked for twice in any case is one.
            if !words
                .iter()
                .any(|w| w.to_lowercase() == word.to_lowercase())
            {
                words.push(word.to_owned());
            }
        }
        if words.is_empty() {
            return Err(Error::invalid(
                "search",
                "must contain at least one letter or digit",
            ));
        }
        if words.len() > MAX_SEARCH_WORDS {
            return Err(Error::invalid(
                "search",
                format!(
                    "must hold at most {MAX_SEARCH_WORDS} different words, got {}",
                    words.len()
                ),
            ));
        }
        Ok(Self { words })
    }

    /// The words, separated by spaces: for `plainto_tsquery`, which asks
    /// for all of them and reads no syntax in any text.
    pub fn plain(&self) -> String {
        self.words.join(" ")
    }

    /// An FTS5 query that asks for every word: each one quoted as an FTS5
    /// string, so that nothing a client types (quotes, `*`, `NEAR(`, `OR`,
    /// `-`, column filters) is read as query syntax.
    pub fn fts5_query(&self) -> String {
        self.words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_quoted_whatever_was_typed() {
        let s = Search::parse("  NEAR(\"evil\" * -OR  Café_42 ").unwrap();
        assert_eq!(s.plain(), "NEAR evil OR Café 42");
        assert_eq!(s.fts5_query(), "\"NEAR\" \"evil\" \"OR\" \"Café\" \"42\"");
    }

    #[test]
    fn search_needs_a_word_and_a_bounded_length() {
        for bad in ["", "   ", "\"*-()", "a\0b"] {
            assert!(Search::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Search::parse(&"a".repeat(MAX_SEARCH_CHARS)).is_ok());
        assert!(Search::parse(&"a".repeat(MAX_SEARCH_CHARS + 1)).is_err());
    }

    #[test]
    fn search_words_are_counted_once_and_bounded() {
        let s = Search::parse("ssh SSH Ssh failed ssh").unwrap();
        assert_eq!(s.plain(), "ssh failed");
        let many: Vec<String> = (0..=MAX_SEARCH_WORDS).map(|i| format!("w{i}")).collect();
        let err = Search::parse(&many.join(" ")).unwrap_err();
        assert!(
            err.to_string()
                .contains("at most 16 different words, got 17"),
            "{err}"
        );
        let repeated = vec!["a"; 100].join(" ");
        assert_eq!(Search::parse(&repeated).unwrap().plain(), "a");
    }

    #[test]
    fn a_reversed_time_range_is_refused_naming_both() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%F %T").unwrap();
        let err = Narrowing::parse(
            None,
            None,
            Some(t("2026-12-02 00:00:00")),
            Some(t("2026-12-01 00:00:00")),
            None,
        )
        .unwrap_err();
        assert!(format!("{err:?}").contains("since, until"), "{err:?}");
        let same = Narrowing::parse(
            None,
            None,
            Some(t("2026-12-02 00:00:00")),
            Some(t("2026-12-02 00:00:00")),
            None,
        );
        assert!(same.is_ok());
    }

    #[test]
    fn labels_follow_the_event_rules() {
        assert!(Narrowing::parse(Some(""), None, None, None, None).is_err());
        assert!(Narrowing::parse(None, Some(&"x".repeat(101)), None, None, None).is_err());
        let n = Narrowing::parse(Some(" fw-1 "), Some("Malware"), None, None, None).unwrap();
        assert_eq!(n.source.as_deref(), Some("fw-1"));
        assert!(!n.is_empty());
        assert!(Narrowing::default().is_empty());
    }
}
