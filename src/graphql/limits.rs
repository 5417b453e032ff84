//! Budgets on the work a GraphQL document may ask for, checked before
//! async-graphql sees it, so that no walk of a hostile document (ours, the
//! parser's, validation's, the executor's) costs more than its size allows.
//!
//! A document is first scanned as text (size, bracket nesting: the parser
//! recurses once per level), then parsed, then analysed in one pass in which
//! every fragment is walked once and remembered: cycles are refused as they
//! are met, and the sizes of fragments spread many times are multiplied,
//! never re-walked. What the analysis bounds:
//! - expanded selections: the document with every spread replaced by its
//!   fragment, which is what async-graphql's depth, complexity, directive and
//!   recursion checks and its executor walk;
//! - aliases, as executed;
//! - depth outside introspection, and depth inside it (graphql-js 16's
//!   introspection query nests `ofType` deeper than any query of ours needs);
//! - introspection in good faith (graphql-java's rules): one `__schema` and
//!   one `__type` per operation, and `fields`, `inputFields`, `interfaces`
//!   and `possibleTypes` at most once along any path below them, which is what
//!   keeps an introspection answer from growing with the nesting.
//!
//! The cost of what a query can return (list sizes multiplied through the
//! nesting) needs the schema, and is async-graphql's complexity pass with the
//! costs declared on the list fields (`list_cost`), limited to `MAX_NODES`;
//! it runs only on documents this analysis has bounded.
//!
//! The reference points are GraphQL Armor's defaults (15,000 characters,
//! 15 aliases, depth 6, cost 5,000); aliases are allowed a little more
//! because dashboards alias several filtered `alerts` lists in one query,
//! depth more because a Relay page is four levels before its first field.

use std::collections::HashMap;

use async_graphql::parser::types::{Directive, ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::parser::Positioned;
use async_graphql::{Name, Request, ServerError, ServerResult};
use async_graphql_value::Value;

use crate::auth::cache::TtlCache;
use crate::domain::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

pub const MAX_QUERY_CHARS: usize = 15_000;
/// Brackets (`{`, `(`, `[`) open at once. The parser recurses once per
/// level; a query at the depth limit with list arguments needs about 20.
pub const MAX_NESTING: usize = 64;
/// Selections and argument values (each variable, scalar, list item and
/// object field) after expanding every fragment spread, over all of a
/// document's operations: validation walks every operation's fragments on
/// its own, and some of its rules do work for each value. The largest
/// introspection query tools send expands to a few hundred, a full alerts
/// page to under a hundred.
pub const MAX_SELECTIONS: u64 = 5_000;
/// Arguments of one field or directive. The schema's largest takes 8;
/// validation compares the arguments of same-named fields pairwise.
pub const MAX_ARGUMENTS: usize = 16;
pub const MAX_ALIASES: u64 = 30;
/// Fields nested in one another, outside introspection: a Relay page
/// (alerts → edges → node → event → alert → event) is 6.
pub const MAX_DEPTH: u32 = 12;
/// Fields nested below `__schema` or `__type`: graphql-js's introspection
/// query reaches 15 (its `ofType` chain is 9 deep in the newest releases).
pub const MAX_INTROSPECTION_DEPTH: u32 = 20;
/// The worst case of what a query can return: every field costs 1, list
/// fields their page size times their item (`list_cost`). A page of 100
/// alerts with every field costs about 3,000, an `ingestEvents` of 1,000
/// events asking for the whole payload about 21,000; lists of lists of 100
/// (GraphQL Armor's cost of 5,000 would refuse the latter) go far past it.
pub const MAX_NODES: usize = 25_000;
/// Selection sets open at once in a walk: fields, inline fragments and
/// spreads together. async-graphql refuses documents past 32 (its
/// `limit_recursive_depth`) but only after walking them; here it also
/// bounds the analysis' own recursion.
pub const MAX_RECURSION: usize = 32;

/// Introspection fields that return lists of things that again have them:
/// each may appear once along a path, or an answer grows with the nesting.
const INTROSPECTION_LISTS: [&str; 4] = ["fields", "inputFields", "interfaces", "possibleTypes"];

/// Documents kept parsed: sensors and dashboards send the same few query
/// strings over and over, with different variables.
const CACHED_DOCUMENTS: usize = 512;
/// Longer documents are parsed every time rather than kept.
const MAX_CACHED_CHARS: usize = 4_096;
/// Nor are documents that expand to more than this: a cached document is
/// copied out on every use, and a short text can parse to a large tree.
const MAX_CACHED_SELECTIONS: u64 = 256;

/// The cost of a list field: its page size (the default when the client
/// gives none, never more than the largest page, which is refused later
/// with its own message) times the cost of one item. Declared on every
/// list field with `#[graphql(complexity = ...)]`.
pub fn list_cost(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = match first.or(last) {
        Some(n) => i64::from(n).clamp(0, MAX_PAGE_SIZE),
        None => DEFAULT_PAGE_SIZE,
    };
    usize::try_from(size)
        .unwrap_or(0)
        .saturating_mul(child)
        .saturating_add(1)
}

/// The cost of a list whose size is the length of an argument (the events of
/// an `ingestEvents`): exactly that many items come back.
pub fn items_cost(items: usize, child: usize) -> usize {
    items.saturating_mul(child).saturating_add(1)
}

/// The cost of a list that is not paged: sized like the largest page.
pub fn unpaged_cost(child: usize) -> usize {
    list_cost(Some(i32::MAX), None, child)
}

/// Parses every request's document before the schema sees it, and refuses
/// what the budgets above do not allow. Not an async-graphql extension: with
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
        check_text(query).map_err(refusal)?;
        let doc = async_graphql::parser::parse_query(query)?;
        let analysis = analyse(&doc).map_err(refusal)?;
        let size = analysis.check(self.introspection).map_err(refusal)?;
        if query.len() <= MAX_CACHED_CHARS && size <= MAX_CACHED_SELECTIONS {
            self.cache.insert(query.to_string(), doc.clone());
        }
        Ok(doc)
    }
}

fn refusal(message: String) -> ServerError {
    ServerError::new(message, None)
}

/// What can be told from the text alone, before the parser runs on it.
pub fn check_text(query: &str) -> Result<(), String> {
    if query.len() > MAX_QUERY_CHARS {
        return Err(format!("query: longer than {MAX_QUERY_CHARS} characters"));
    }
    let nesting = bracket_nesting(query);
    if nesting > MAX_NESTING {
        return Err(format!(
            "query: brackets nested {nesting} deep, at most {MAX_NESTING} are allowed"
        ));
    }
    Ok(())
}

/// The deepest bracket nesting outside strings and comments. Unbalanced
/// text is left for the parser to refuse with a position.
fn bracket_nesting(query: &str) -> usize {
    let bytes = query.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// What a selection set costs once its fragments are expanded. Counts add
/// up over siblings and multiply through spreads, saturating: a hostile
/// document can describe more selections than a `u64` holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub selections: u64,
    pub aliases: u64,
    /// The deepest field nesting outside introspection.
    pub depth: u32,
    /// The deepest field nesting, introspection included.
    pub full_depth: u32,
    pub schema_fields: u64,
    pub type_fields: u64,
    /// For each of `INTROSPECTION_LISTS`, the most times it appears along
    /// one path (an over-estimate when the maxima lie on different paths).
    per_path: [u32; 4],
}

impl Cost {
    /// Siblings: counts add, depths take the deeper.
    fn beside(&mut self, other: &Cost) {
        self.selections = self.selections.saturating_add(other.selections);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.depth = self.depth.max(other.depth);
        self.full_depth = self.full_depth.max(other.full_depth);
        self.schema_fields = self.schema_fields.saturating_add(other.schema_fields);
        self.type_fields = self.type_fields.saturating_add(other.type_fields);
        for (mine, theirs) in self.per_path.iter_mut().zip(other.per_path) {
            *mine = (*mine).max(theirs);
        }
    }

    fn asks_introspection(&self) -> bool {
        self.schema_fields > 0 || self.type_fields > 0
    }
}

/// The costs of a document's operations, and the refusal of the analysis
/// if it met a cycle or an introspection field asked in bad faith.
#[derive(Debug)]
pub struct Analysis {
    pub operations: Vec<Cost>,
}

impl Analysis {
    /// Refuses what the budgets do not allow. Selections and aliases are
    /// counted over the whole document: only one operation runs, but
    /// validation walks them all.
    /// Returns the expanded size of the document.
    pub fn check(&self, introspection: bool) -> Result<u64, String> {
        let mut total = Cost::default();
        for op in &self.operations {
            total.beside(op);
        }
        if total.selections > MAX_SELECTIONS {
            let count = match total.selections {
                u64::MAX => "more selections than can be counted".to_string(),
                n => format!("{n} selections"),
            };
            return Err(format!(
                "query: expands to {count} and argument values once fragments are spread, at most {MAX_SELECTIONS} are allowed"
            ));
        }
        if total.aliases > MAX_ALIASES {
            return Err(format!(
                "query: uses {} aliases, at most {MAX_ALIASES} are allowed",
                total.aliases
            ));
        }
        if total.depth > MAX_DEPTH {
            return Err(format!(
                "query: fields nested {} deep, at most {MAX_DEPTH} are allowed",
                total.depth
            ));
        }
        if total.full_depth > MAX_INTROSPECTION_DEPTH {
            return Err(format!(
                "query: introspection nested {} deep, at most {MAX_INTROSPECTION_DEPTH} is allowed",
                total.full_depth
            ));
        }
        if !introspection && total.asks_introspection() {
            return Err(
                "introspection is disabled on this server (THREATWATCH_INTROSPECTION=off)".into(),
            );
        }
        for op in &self.operations {
            if op.schema_fields > 1 || op.type_fields > 1 {
                return Err("query: an operation may ask for __schema once and __type once".into());
            }
        }
        Ok(total.selections)
    }
}

/// Walks the document once: every fragment is analysed the first time it
/// is spread (or, if never spread, at the end) and remembered, so the work
/// is linear in the document's size whatever its spreads multiply to.
pub fn analyse(doc: &ExecutableDocument) -> Result<Analysis, String> {
    let mut walk = Walk {
        doc,
        fragments: HashMap::with_capacity(doc.fragments.len()),
        open: 0,
    };
    let operations = doc
        .operations
        .iter()
        .map(|(_, op)| walk.selection_set(&op.node.selection_set.node))
        .collect::<Result<Vec<_>, _>>()?;
    // Unused fragments are refused by validation; a cycle among them must
    // still be refused here, before validation walks them.
    for name in doc.fragments.keys() {
        walk.fragment(name.as_str())?;
    }
    Ok(Analysis { operations })
}

enum Seen {
    /// On the current path: meeting it again is a cycle.
    Open,
    Done(Cost),
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    fragments: HashMap<&'a str, Seen>,
    /// Selection sets on the current path.
    open: usize,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<Cost, String> {
        if self.open >= MAX_RECURSION {
            return Err(format!(
                "query: selections nested more than {MAX_RECURSION} deep (fields, fragments and inline fragments together)"
            ));
        }
        self.open += 1;
        let cost = self.items(set);
        self.open -= 1;
        cost
    }

    fn items(&mut self, set: &'a SelectionSet) -> Result<Cost, String> {
        let mut cost = Cost::default();
        for item in &set.items {
            let mut child = match &item.node {
                Selection::Field(f) => self.field(&f.node)?,
                Selection::InlineFragment(f) => self.selection_set(&f.node.selection_set.node)?,
                Selection::FragmentSpread(s) => {
                    self.fragment(s.node.fragment_name.node.as_str())?
                }
            };
            if !matches!(item.node, Selection::Field(_)) {
                // The spread itself is walked too, even when its fragment
                // is unknown (validation names it).
                let values = directive_values(item.node.directives())?;
                child.selections = child.selections.saturating_add(1).saturating_add(values);
            }
            cost.beside(&child);
        }
        Ok(cost)
    }

    fn field(&mut self, field: &'a Field) -> Result<Cost, String> {
        let inner = self.selection_set(&field.selection_set.node)?;
        let name = field.name.node.as_str();
        let values = argument_values(name, &field.arguments)?
            .saturating_add(directive_values(&field.directives)?);
        let introspection = matches!(name, "__schema" | "__type");
        if introspection {
            if let Some(i) = inner.per_path.iter().position(|n| *n > 1) {
                return Err(format!(
                    "query: `{}` may appear once along a path below {name}",
                    INTROSPECTION_LISTS[i]
                ));
            }
        }
        let mut per_path = inner.per_path;
        if let Some(i) = INTROSPECTION_LISTS.iter().position(|l| *l == name) {
            per_path[i] = per_path[i].saturating_add(1);
        }
        Ok(Cost {
            selections: inner.selections.saturating_add(1).saturating_add(values),
            aliases: inner
                .aliases
                .saturating_add(u64::from(field.alias.is_some())),
            depth: if introspection { 0 } else { inner.depth + 1 },
            full_depth: inner.full_depth + 1,
            schema_fields: inner
                .schema_fields
                .saturating_add(u64::from(name == "__schema")),
            type_fields: inner
                .type_fields
                .saturating_add(u64::from(name == "__type")),
            per_path,
        })
    }

    fn fragment(&mut self, name: &'a str) -> Result<Cost, String> {
        match self.fragments.get(name) {
            Some(Seen::Done(cost)) => return Ok(*cost),
            Some(Seen::Open) => {
                return Err(format!(
                    "query: fragment {name} spreads itself, directly or through other fragments"
                ))
            }
            None => {}
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.fragments.insert(name, Seen::Open);
        let cost = self.selection_set(&fragment.node.selection_set.node)?;
        self.fragments.insert(name, Seen::Done(cost));
        Ok(cost)
    }
}

/// The values a field's arguments carry, refusing more arguments than any
/// field has.
fn argument_values(
    name: &str,
    args: &[(Positioned<Name>, Positioned<Value>)],
) -> Result<u64, String> {
    if args.len() > MAX_ARGUMENTS {
        return Err(format!(
            "query: {name} is given {} arguments, at most {MAX_ARGUMENTS} are allowed",
            args.len()
        ));
    }
    Ok(args
        .iter()
        .map(|(_, v)| value_nodes(&v.node))
        .fold(0, u64::saturating_add))
}

fn directive_values(directives: &[Positioned<Directive>]) -> Result<u64, String> {
    let mut total = 0u64;
    for d in directives {
        let values = argument_values(&format!("@{}", d.node.name.node), &d.node.arguments)?;
        total = total.saturating_add(1).saturating_add(values);
    }
    Ok(total)
}

/// Every node of a value: lists and objects count themselves and what they
/// hold. Recursion is bounded by the bracket nesting checked before parsing.
fn value_nodes(value: &Value) -> u64 {
    match value {
        Value::List(items) => items.iter().map(value_nodes).fold(1, u64::saturating_add),
        Value::Object(fields) => fields
            .values()
            .map(value_nodes)
            .fold(1, u64::saturating_add),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(q: &str) -> Result<Cost, String> {
        let doc = async_graphql::parser::parse_query(q).map_err(|e| e.to_string())?;
        let analysis = analyse(&doc)?;
        analysis.check(true)?;
        let mut total = Cost::default();
        for op in &analysis.operations {
            total.beside(op);
        }
        Ok(total)
    }

    #[test]
    fn counts_through_fragments_as_executed() {
        let c = cost("{ a: me { id } b: me { x: id } }").unwrap();
        assert_eq!((c.aliases, c.selections, c.depth), (3, 4, 2));
        let c = cost("{ ...F ...F } fragment F on Query { a: me { id } }").unwrap();
        assert_eq!((c.aliases, c.selections, c.depth), (2, 6, 2));
    }

    #[test]
    fn refuses_cycles_used_or_not() {
        for q in [
            "{ ...F } fragment F on Query { me { id } ...F }",
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            "{ me { id } } fragment A on Query { ...B } fragment B on Query { ...A }",
            "{...F} fragment F on Query {...F ...F ...F ...F ...F ...F ...F ...F ...F ...F}",
        ] {
            let e = cost(q).unwrap_err();
            assert!(e.contains("spreads itself"), "{q}: {e}");
        }
    }

    #[test]
    fn multiplies_fan_out_without_walking_it() {
        // Each fragment spreads the next ten times: 10^20 selections, from
        // a document of a few hundred characters.
        let mut q = String::from("{ ...F0 }");
        for i in 0..20 {
            q.push_str(&format!(" fragment F{i} on Query {{"));
            for _ in 0..10 {
                q.push_str(&format!(" ...F{}", i + 1));
            }
            q.push_str(" }");
        }
        q.push_str(" fragment F20 on Query { __typename }");
        let e = cost(&q).unwrap_err();
        assert!(e.contains("selections"), "{e}");
    }

    #[test]
    fn depth_leaves_out_introspection_but_bounds_it() {
        let mut deep = String::from("id");
        for _ in 0..13 {
            deep = format!("a {{ {deep} }}");
        }
        assert!(cost(&format!("{{ {deep} }}"))
            .unwrap_err()
            .contains("nested 14 deep"));
        let mut of_type = String::from("name");
        for _ in 0..12 {
            of_type = format!("ofType {{ {of_type} }}");
        }
        let q = format!("{{ __schema {{ types {{ fields {{ type {{ {of_type} }} }} }} }} }}");
        assert_eq!(cost(&q).unwrap().depth, 0);
        let mut deeper = String::from("name");
        for _ in 0..20 {
            deeper = format!("ofType {{ {deeper} }}");
        }
        let q = format!("{{ __type(name: \"Alert\") {{ {deeper} }} }}");
        assert!(cost(&q).unwrap_err().contains("introspection nested"));
    }

    #[test]
    fn introspection_in_good_faith() {
        for q in [
            "{ __schema { types { fields { type { fields { name } } } } } }",
            "{ __type(name: \"Alert\") { ...T } } fragment T on __Type { fields { type { ...U } } } fragment U on __Type { fields { name } }",
            "{ a: __schema { queryType { name } } b: __schema { queryType { name } } }",
            "{ a: __type(name: \"A\") { name } b: __type(name: \"B\") { name } }",
        ] {
            assert!(cost(q).is_err(), "{q}");
        }
        assert!(cost("{ __schema { types { fields { name } inputFields { name } } } __type(name: \"Alert\") { fields { name } } }").is_ok());
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        assert_eq!(bracket_nesting("{ a(b: [[1]]) { c } }"), 4);
        assert_eq!(bracket_nesting("{ a(s: \"{{{{\\\"{{\") # {{{{\n }"), 2);
        assert_eq!(bracket_nesting("{ a(s: \"\"\"{{{ \\\"\"\" {{\"\"\") }"), 2);
        assert!(check_text(&"{a".repeat(5_000))
            .unwrap_err()
            .contains("nested 5000 deep"));
    }

    #[test]
    fn list_costs() {
        assert_eq!(list_cost(None, None, 3), 31);
        assert_eq!(list_cost(Some(100), None, 3), 301);
        assert_eq!(list_cost(None, Some(5), 3), 16);
        assert_eq!(list_cost(Some(1_000_000), None, 3), 301);
        assert_eq!(list_cost(Some(-5), None, 3), 1);
        assert_eq!(items_cost(usize::MAX, 2), usize::MAX);
    }
}
