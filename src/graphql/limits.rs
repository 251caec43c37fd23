//! Query depth and cost limits, applied before execution.
//!
//! async-graphql's own limits count introspection (the query every GraphQL
//! tool sends on start nests `ofType` a dozen levels deep) and weigh every
//! field as 1 whatever the page size. Here introspection is free (its shape
//! is fixed and small), and a field inside a list costs once per record the
//! list may return: `first`/`last`, or the default page for a connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerResult, Value, Variables};

use super::Limits;
use crate::error::CrmError;
use crate::records::page::DEFAULT_PAGE_SIZE;

/// Distinct query texts whose parsed form is kept; clients send a few
/// fixed queries, so a full cache is a sign of generated ones and is reset.
const CACHED_DOCUMENTS: usize = 1024;

/// Every request passes here instead of the plain parser: documents seen
/// before come from a cache (parsing is a tenth of a small query's time),
/// and each is checked against the depth and cost limits before it runs.
#[derive(Clone)]
pub struct QueryGate {
    limits: Limits,
    documents: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

impl QueryGate {
    pub fn new(limits: Limits) -> Self {
        QueryGate {
            limits,
            documents: Arc::default(),
        }
    }

    fn check(&self, document: &ExecutableDocument, variables: &Variables) -> ServerResult<()> {
        let depth = query_depth(document);
        if depth > self.limits.max_depth {
            let message = format!(
                "the query nests fields {depth} levels deep; at most {} are allowed",
                self.limits.max_depth
            );
            return Err(CrmError::QueryTooComplex(message).into_server_error());
        }
        let cost = query_cost(document, variables);
        if cost > self.limits.max_complexity as u64 {
            let message = format!(
                "the query may resolve {cost} fields (page sizes multiplied through); at most {} are allowed: \
                 ask for smaller pages or fewer nested lists",
                self.limits.max_complexity
            );
            return Err(CrmError::QueryTooComplex(message).into_server_error());
        }
        Ok(())
    }
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
        let cached = self
            .documents
            .lock()
            .ok()
            .and_then(|documents| documents.get(query).cloned());
        let document = match cached {
            Some(document) => document,
            None => {
                let document = next.run(ctx, query, variables).await?;
                if let Ok(mut documents) = self.documents.lock() {
                    if documents.len() >= CACHED_DOCUMENTS {
                        documents.clear();
                    }
                    documents.insert(query.to_owned(), document.clone());
                }
                document
            }
        };
        self.check(&document, variables)?;
        Ok(document)
    }
}

/// The deepest nesting of non-introspection fields in any operation.
pub fn query_depth(document: &ExecutableDocument) -> usize {
    let mut fragments_on_path = Vec::new();
    document
        .operations
        .iter()
        .map(|(_, operation)| depth(document, &operation.node.selection_set.node, &mut fragments_on_path))
        .max()
        .unwrap_or(0)
}

fn depth<'a>(document: &'a ExecutableDocument, set: &'a SelectionSet, on_path: &mut Vec<&'a Name>) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) if field.node.name.node.starts_with("__") => 0,
            Selection::Field(field) => 1 + depth(document, &field.node.selection_set.node, on_path),
            Selection::InlineFragment(fragment) => depth(document, &fragment.node.selection_set.node, on_path),
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                // A fragment cycle is a validation error reported later; stop here.
                match document.fragments.get(name) {
                    Some(fragment) if !on_path.contains(&name) => {
                        on_path.push(name);
                        let d = depth(document, &fragment.node.selection_set.node, on_path);
                        on_path.pop();
                        d
                    }
                    _ => 0,
                }
            }
        })
        .max()
        .unwrap_or(0)
}

/// The most records each field of the query may be resolved for, summed:
/// `accounts(first: 20) { nodes { name } }` costs 1 + 20 × 2.
pub fn query_cost(document: &ExecutableDocument, variables: &Variables) -> u64 {
    let mut fragments_on_path = Vec::new();
    document
        .operations
        .iter()
        .map(|(_, operation)| {
            cost(
                document,
                variables,
                &operation.node.selection_set.node,
                &mut fragments_on_path,
            )
        })
        .max()
        .unwrap_or(0)
}

fn cost<'a>(
    document: &'a ExecutableDocument,
    variables: &Variables,
    set: &'a SelectionSet,
    on_path: &mut Vec<&'a Name>,
) -> u64 {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) if field.node.name.node.starts_with("__") => 0,
            Selection::Field(field) => {
                let children = cost(document, variables, &field.node.selection_set.node, on_path);
                1u64.saturating_add(page_size(field, variables).saturating_mul(children))
            }
            Selection::InlineFragment(fragment) => {
                cost(document, variables, &fragment.node.selection_set.node, on_path)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match document.fragments.get(name) {
                    Some(fragment) if !on_path.contains(&name) => {
                        on_path.push(name);
                        let c = cost(document, variables, &fragment.node.selection_set.node, on_path);
                        on_path.pop();
                        c
                    }
                    _ => 0,
                }
            }
        })
        .fold(0u64, u64::saturating_add)
}

/// How many records a field's selection is resolved for: its `first` or
/// `last`, the default page for a connection (it selects `nodes`/`edges`),
/// else one.
fn page_size(field: &Positioned<Field>, variables: &Variables) -> u64 {
    for name in ["first", "last"] {
        if let Some(value) = field.node.get_argument(name) {
            let value = value
                .node
                .clone()
                .into_const_with(|name| variables.get(&name).cloned().ok_or(()));
            if let Ok(Value::Number(n)) = value {
                return n.as_u64().unwrap_or(0);
            }
        }
    }
    let is_connection = field
        .node
        .selection_set
        .node
        .items
        .iter()
        .any(|s| matches!(&s.node, Selection::Field(f) if matches!(f.node.name.node.as_str(), "nodes" | "edges")));
    if is_connection {
        DEFAULT_PAGE_SIZE as u64
    } else {
        1
    }
}

/// The deepest nesting of `{ }` in a GraphQL request body (JSON or query
/// text), outside strings and comments: a cheap upper bound on selection
/// depth plus input-object nesting, checked before anything else.
pub fn brace_nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    let mut in_comment = false;
    for &byte in text {
        if in_comment {
            in_comment = byte != b'\n';
            continue;
        }
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'#' => in_comment = true,
            b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
