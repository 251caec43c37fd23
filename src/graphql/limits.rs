//! Query depth, cost and shape limits, applied before execution.
//!
//! async-graphql's own limits count introspection (the query every GraphQL
//! tool sends on start nests `ofType` a dozen levels deep) and weigh every
//! field as 1 whatever the page size. Here introspection adds no depth (its
//! shape is fixed and small), and a field inside a list costs once per
//! record the list may return: `first`/`last`, or the default page for a
//! connection, whether `nodes`/`edges` are selected directly or through
//! fragments. A `totalCount` counts every matching row, so it costs
//! [`COUNT_COST`].
//!
//! Every walk here is bounded: the text was checked for nesting before it
//! was parsed ([`nesting`]), fragments are few ([`MAX_FRAGMENTS`]) and each
//! fragment is summed once however often it is spread, so no document can
//! exhaust the stack or take exponential time.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerResult, Value, Variables};

use super::cache::document;
use super::Limits;
use crate::error::CrmError;
use crate::records::page::DEFAULT_PAGE_SIZE;

/// What a `totalCount` weighs: it reads every matching row, not one; as
/// much as a default page of records.
pub const COUNT_COST: u64 = DEFAULT_PAGE_SIZE as u64;
/// Root fields (aliases included) one operation may ask for: each runs
/// concurrently on its own connection.
pub const MAX_ROOT_FIELDS: usize = 32;
/// Fields (aliases included) one selection set may hold.
pub const MAX_SELECTIONS: usize = 256;
/// Fragment definitions one document may hold.
pub const MAX_FRAGMENTS: usize = 256;
/// Fragments spread inside fragments, one in the next.
pub const MAX_FRAGMENT_NESTING: usize = 32;
/// Selections a document holds once every fragment is spread out (what
/// validation walks): 2 × 2 × … spreads cannot make it explode.
pub const MAX_EXPANDED_SELECTIONS: u64 = 50_000;
/// Selection sets and fragments one walk descends through before it
/// stops and calls the document too deep (far past any allowed depth).
const WALK_NESTING: usize = 128;
/// Nesting of braces and brackets (`{`, `[`) past the query depth a
/// request may use for its arguments' input objects and lists.
pub const ARGUMENT_NESTING: usize = 32;

/// Every request passes here instead of the plain parser: the document
/// comes from the shared cache of parsed texts (parsing is a tenth of a
/// small query's time), and is checked against the limits before it runs.
#[derive(Clone)]
pub struct QueryGate {
    limits: Limits,
}

impl QueryGate {
    /// A gate for every request of one workspace's schema.
    pub fn new(limits: Limits) -> Self {
        QueryGate { limits }
    }
}

/// Refuses a document that asks for more than `limits` allow, or carries a
/// value no field can store (a NUL character).
pub fn check(document: &ExecutableDocument, variables: &Variables, limits: &Limits) -> Result<(), CrmError> {
    if document.fragments.len() > MAX_FRAGMENTS {
        return Err(CrmError::QueryTooComplex(format!(
            "the document defines {} fragments; at most {MAX_FRAGMENTS} are allowed",
            document.fragments.len()
        )));
    }
    let mut walk = Walk::new(document, variables);
    for (_, operation) in document.operations.iter() {
        let set = &operation.node.selection_set.node;
        let roots = walk.fields(set);
        if roots > MAX_ROOT_FIELDS as u64 {
            return Err(CrmError::QueryTooComplex(format!(
                "the operation asks for {roots} root fields; at most {MAX_ROOT_FIELDS} are allowed: \
                 split it into several requests"
            )));
        }
        let summary = walk.summary(set);
        if summary.widest > MAX_SELECTIONS as u64 {
            return Err(CrmError::QueryTooComplex(format!(
                "a selection asks for {} fields; at most {MAX_SELECTIONS} are allowed in one selection",
                summary.widest
            )));
        }
        if summary.expanded > MAX_EXPANDED_SELECTIONS {
            return Err(CrmError::QueryTooComplex(format!(
                "the operation holds {} selections once its fragments are spread out; at most \
                 {MAX_EXPANDED_SELECTIONS} are allowed (and fragments nest at most {MAX_FRAGMENT_NESTING} deep)",
                summary.expanded
            )));
        }
        if summary.depth > limits.max_depth {
            return Err(CrmError::QueryTooComplex(format!(
                "the query nests fields {} levels deep; at most {} are allowed",
                summary.depth, limits.max_depth
            )));
        }
        if summary.cost > limits.max_complexity as u64 {
            return Err(CrmError::QueryTooComplex(format!(
                "the query may resolve {} fields (page sizes multiplied through, {COUNT_COST} per totalCount); \
                 at most {} are allowed: ask for smaller pages or fewer nested lists",
                summary.cost, limits.max_complexity
            )));
        }
    }
    no_nul_characters(document, variables)
}

impl ExtensionFactory for QueryGate {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryGate {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Checked before async-graphql's own passes walk it (they follow
        // every path through fragments, which a document spreading each
        // fragment twice makes exponential), and walked by nothing of
        // async-graphql's before validation: the check bounds its nesting.
        let document = match document(query) {
            Ok(document) => ExecutableDocument::clone(&document),
            // async-graphql words the syntax error.
            Err(_) => next.run(ctx, query, variables).await?,
        };
        check(&document, variables, &self.limits).map_err(CrmError::into_server_error)?;
        Ok(document)
    }
}

/// What a selection set adds up to.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    /// Nesting of non-introspection fields.
    depth: usize,
    /// Fields resolved, page sizes multiplied through.
    cost: u64,
    /// The most fields one selection set (fragments merged in) holds.
    widest: u64,
    /// Whether it selects `nodes` or `edges`: a connection's page.
    connection: bool,
    /// Selections (fields, spreads, inline fragments) met when every
    /// fragment is spread out: what validation walks.
    expanded: u64,
}

/// One pass over a document: each fragment is summed once (memoized), a
/// fragment spread inside itself counts as empty (validation reports the
/// cycle), so the walk is linear in the document's size.
struct Walk<'d> {
    document: &'d ExecutableDocument,
    variables: &'d Variables,
    fragments: HashMap<&'d Name, Summary>,
    fragment_fields: HashMap<&'d Name, u64>,
    on_path: Vec<&'d Name>,
    /// Selection sets entered and not yet left.
    nesting: usize,
}

impl Summary {
    /// What a walk that went too deep reports: over every limit.
    fn too_deep() -> Self {
        Summary {
            depth: usize::MAX / 2,
            cost: u64::MAX,
            widest: u64::MAX,
            connection: false,
            expanded: u64::MAX,
        }
    }
}

impl<'d> Walk<'d> {
    fn new(document: &'d ExecutableDocument, variables: &'d Variables) -> Self {
        Walk {
            document,
            variables,
            fragments: HashMap::new(),
            fragment_fields: HashMap::new(),
            on_path: Vec::new(),
            nesting: 0,
        }
    }

    /// The fields a selection set holds once its fragments are merged in
    /// (aliases count once each).
    fn fields(&mut self, set: &'d SelectionSet) -> u64 {
        if self.nesting >= WALK_NESTING {
            return u64::MAX;
        }
        self.nesting += 1;
        let total = self.fields_within(set);
        self.nesting -= 1;
        total
    }

    fn fields_within(&mut self, set: &'d SelectionSet) -> u64 {
        let mut total = 0u64;
        for selection in &set.items {
            total = total.saturating_add(match &selection.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(fragment) => self.fields(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(&known) = self.fragment_fields.get(name) {
                        known
                    } else {
                        match self.document.fragments.get(name) {
                            Some(fragment) if !self.on_path.contains(&name) => {
                                self.on_path.push(name);
                                let n = self.fields(&fragment.node.selection_set.node);
                                self.on_path.pop();
                                self.fragment_fields.insert(name, n);
                                n
                            }
                            _ => 0,
                        }
                    }
                }
            });
        }
        total
    }

    fn summary(&mut self, set: &'d SelectionSet) -> Summary {
        if self.nesting >= WALK_NESTING {
            return Summary::too_deep();
        }
        self.nesting += 1;
        let summary = self.summary_within(set);
        self.nesting -= 1;
        summary
    }

    fn summary_within(&mut self, set: &'d SelectionSet) -> Summary {
        let mut out = Summary {
            widest: self.fields(set),
            ..Summary::default()
        };
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => self.field(field),
                Selection::InlineFragment(fragment) => self.summary(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            out.depth = out.depth.max(part.depth);
            out.cost = out.cost.saturating_add(part.cost);
            out.widest = out.widest.max(part.widest);
            out.connection |= part.connection;
            out.expanded = out.expanded.saturating_add(1).saturating_add(part.expanded);
        }
        out
    }

    fn fragment(&mut self, name: &'d Name) -> Summary {
        if let Some(known) = self.fragments.get(name) {
            return *known;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Summary::default();
        };
        if self.on_path.contains(&name) {
            return Summary::default();
        }
        if self.on_path.len() >= MAX_FRAGMENT_NESTING {
            return Summary::too_deep();
        }
        self.on_path.push(name);
        let summary = self.summary(&fragment.node.selection_set.node);
        self.on_path.pop();
        self.fragments.insert(name, summary);
        summary
    }

    /// A field: 1, plus its selection once per record it may resolve for.
    fn field(&mut self, field: &'d Positioned<Field>) -> Summary {
        let name = field.node.name.node.as_str();
        let children = self.summary(&field.node.selection_set.node);
        let own = if name == "totalCount" { COUNT_COST } else { 1 };
        let records = page_size(field, self.variables).unwrap_or(if children.connection {
            DEFAULT_PAGE_SIZE as u64
        } else {
            1
        });
        Summary {
            // Introspection's shape is fixed: it adds no depth.
            depth: if name.starts_with("__") { 0 } else { 1 + children.depth },
            cost: own.saturating_add(records.saturating_mul(children.cost)),
            widest: children.widest,
            connection: matches!(name, "nodes" | "edges"),
            expanded: children.expanded,
        }
    }
}

/// A field's `first` or `last`, when it has one.
fn page_size(field: &Positioned<Field>, variables: &Variables) -> Option<u64> {
    ["first", "last"].into_iter().find_map(|name| {
        let value = field.node.get_argument(name)?;
        let value = value
            .node
            .clone()
            .into_const_with(|name| variables.get(&name).cloned().ok_or(()));
        match value {
            Ok(Value::Number(n)) => Some(n.as_u64().unwrap_or(0)),
            _ => None,
        }
    })
}

/// PostgreSQL text cannot hold NUL characters: an argument holding one
/// (written in the document or passed as a variable) is refused here, with
/// the argument's path, before anything runs.
fn no_nul_characters(document: &ExecutableDocument, variables: &Variables) -> Result<(), CrmError> {
    let mut defaults = HashMap::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            if let Some(default) = &definition.node.default_value {
                defaults.insert(definition.node.name.node.clone(), default.node.clone());
            }
        }
    }
    let value_of = |name: Name| {
        let value = variables.get(&name).or_else(|| defaults.get(&name)).cloned();
        Ok::<_, ()>(value.unwrap_or(Value::Null))
    };
    let mut sets: Vec<&SelectionSet> = document
        .operations
        .iter()
        .map(|(_, operation)| &operation.node.selection_set.node)
        .collect();
    sets.extend(
        document
            .fragments
            .values()
            .map(|fragment| &fragment.node.selection_set.node),
    );
    while let Some(set) = sets.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    for (name, value) in &field.node.arguments {
                        let Ok(value) = value.node.clone().into_const_with(value_of) else {
                            continue;
                        };
                        if let Some(path) = nul_in(&value, name.node.as_str()) {
                            return Err(nul_error(path));
                        }
                    }
                    sets.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => sets.push(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    Ok(())
}

/// The path of the first string holding a NUL character in `value`, if
/// any. The path is built on the way back from a hit only, so a walk that
/// finds none (a 5,000-value list, every request) allocates nothing.
fn nul_in(value: &Value, root: &str) -> Option<Vec<String>> {
    /// The hit's path below `value`, innermost key first.
    fn walk(value: &Value) -> Option<Vec<String>> {
        match value {
            Value::String(text) if text.contains('\0') => Some(Vec::new()),
            Value::List(items) => items.iter().enumerate().find_map(|(i, item)| {
                let mut path = walk(item)?;
                path.push(i.to_string());
                Some(path)
            }),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                let mut path = if key.contains('\0') { Vec::new() } else { walk(item)? };
                path.push(key.to_string());
                Some(path)
            }),
            _ => None,
        }
    }
    let mut path = walk(value)?;
    path.push(root.to_owned());
    path.reverse();
    Some(path)
}

fn nul_error(path: Vec<String>) -> CrmError {
    CrmError::bad_input_at(path, "text cannot contain NUL characters (\\u0000)")
}

/// The deepest nesting of `{ }` and `[ ]` in a GraphQL document or JSON
/// text, outside strings (`"…"` and block strings `"""…"""`) and comments: a
/// cheap upper bound on selection depth plus argument nesting, checked
/// before anything parses it.
pub fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'#' => {
                while i < text.len() && text[i] != b'\n' && text[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if text[i..].starts_with(b"\"\"\"") => {
                // A block string ends at the first `"""` not escaped as `\"""`.
                i += 3;
                while i < text.len() && !text[i..].starts_with(b"\"\"\"") {
                    i += if text[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// The deepest nesting of lists and objects in the request's variables.
pub fn variables_nesting(variables: &Variables) -> usize {
    fn depth(value: &Value) -> usize {
        match value {
            Value::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    variables.values().map(depth).max().unwrap_or(0)
}
