//! The query depth limit, applied before execution.
//!
//! async-graphql's own limit also counts introspection, and the query every
//! GraphQL tool sends on start (GraphiQL's docs and autocompletion) nests
//! `ofType` a dozen levels deep. Depth here counts record fields only:
//! `__schema`/`__type` subtrees are free (their shape is fixed and small).

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::Name;

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
