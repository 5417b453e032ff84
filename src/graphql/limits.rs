//! Limits async-graphql does not have built in: document size and aliases.
//! Depth, complexity and directives are set on the schema (see `build`).
//!
//! The reference points are GraphQL Armor's defaults (15,000 characters,
//! 15 aliases); aliases are allowed a little more because dashboards alias
//! several filtered `alerts` lists in one query.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult};

use crate::auth::cache::TtlCache;

pub const MAX_QUERY_CHARS: usize = 15_000;
pub const MAX_ALIASES: usize = 30;
/// Fragments nested deeper than this are not followed (validation, which
/// runs later, rejects cycles; this walk must not loop on one before that).
const MAX_FRAGMENT_NESTING: usize = 16;

/// Documents kept parsed: sensors and dashboards send the same few query
/// strings over and over, with different variables.
const CACHED_DOCUMENTS: usize = 512;
/// Longer documents are parsed every time rather than kept.
const MAX_CACHED_CHARS: usize = 4_096;

/// Parses every request's document before the schema sees it, and refuses
/// what the limits above do not allow. Not an async-graphql extension: with
/// any extension installed, every field of every response is resolved
/// through the extension chain (two boxed futures a field per extension),
/// and an alerts page has well over a hundred fields.
pub struct DocumentLimits {
    /// When false, a document that asks for `__schema` or `__type` is
    /// refused with an error instead of quietly answered with null.
    introspection: bool,
    cache: TtlCache<String, ExecutableDocument>,
}

/// Long enough to matter, short enough that the cache follows the clients.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl DocumentLimits {
    pub fn new(introspection: bool) -> Self {
        Self {
            introspection,
            cache: TtlCache::new(CACHE_TTL, CACHED_DOCUMENTS),
        }
    }

    /// Gives the request its parsed document, or says why it has none.
    pub fn prepare(&self, request: &mut Request) -> ServerResult<()> {
        let doc = self.parse(&request.query)?;
        request.set_parsed_query(doc);
        Ok(())
    }

    fn parse(&self, query: &str) -> ServerResult<ExecutableDocument> {
        if let Some(doc) = self.cache.get(query) {
            return Ok(doc);
        }
        if query.len() > MAX_QUERY_CHARS {
            return Err(ServerError::new(
                format!("query: longer than {MAX_QUERY_CHARS} characters"),
                None,
            ));
        }
        let doc = async_graphql::parser::parse_query(query)?;
        let aliases: usize = doc
            .operations
            .iter()
            .map(|(_, op)| count_aliases(&doc, &op.node.selection_set.node, 0))
            .sum();
        if aliases > MAX_ALIASES {
            return Err(ServerError::new(
                format!("query: uses {aliases} aliases, at most {MAX_ALIASES} are allowed"),
                None,
            ));
        }
        if !self.introspection && asks_introspection(&doc) {
            return Err(ServerError::new(
                "introspection is disabled on this server (THREATWATCH_INTROSPECTION=off)",
                None,
            ));
        }
        if query.len() <= MAX_CACHED_CHARS {
            self.cache.insert(query.to_string(), doc.clone());
        }
        Ok(doc)
    }
}

fn asks_introspection(doc: &ExecutableDocument) -> bool {
    fn walk(doc: &ExecutableDocument, set: &SelectionSet, nesting: usize) -> bool {
        nesting <= MAX_FRAGMENT_NESTING
            && set.items.iter().any(|item| match &item.node {
                Selection::Field(f) => {
                    matches!(f.node.name.node.as_str(), "__schema" | "__type")
                        || walk(doc, &f.node.selection_set.node, nesting)
                }
                Selection::InlineFragment(f) => walk(doc, &f.node.selection_set.node, nesting),
                Selection::FragmentSpread(s) => doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_some_and(|f| walk(doc, &f.node.selection_set.node, nesting + 1)),
            })
    }
    doc.operations
        .iter()
        .any(|(_, op)| walk(doc, &op.node.selection_set.node, 0))
}

/// Aliases as executed: a fragment's aliases count once per spread.
fn count_aliases(doc: &ExecutableDocument, set: &SelectionSet, nesting: usize) -> usize {
    if nesting > MAX_FRAGMENT_NESTING {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some())
                    + count_aliases(doc, &f.node.selection_set.node, nesting)
            }
            Selection::InlineFragment(f) => count_aliases(doc, &f.node.selection_set.node, nesting),
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .map_or(0, |f| {
                    count_aliases(doc, &f.node.selection_set.node, nesting + 1)
                }),
        })
        .fold(0, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(q: &str) -> usize {
        let doc = async_graphql::parser::parse_query(q).unwrap();
        doc.operations
            .iter()
            .map(|(_, op)| count_aliases(&doc, &op.node.selection_set.node, 0))
            .sum()
    }

    #[test]
    fn counts_aliases_through_fragments() {
        assert_eq!(aliases("{ a: me { id } b: me { x: id } }"), 3);
        assert_eq!(
            aliases("{ ...F ...F } fragment F on Query { a: me { id } }"),
            2
        );
        // A cycle is left for validation to refuse; counting ends.
        assert!(aliases("{ ...F } fragment F on Query { a: me { id } ...F }") > 0);
    }
}
