//! Which fields of an object a query selects, so SQL projects only those.

use async_graphql::SelectionField;

use crate::metadata::ObjectDef;
use crate::records::{FieldSet, OrderKey};

/// The fields a selection on a record of `object` needs: selected values,
/// the lookup keys behind to-one relations, and `id` (for to-many relations
/// and loaders), plus `extra` value keys.
pub fn record_fields<'a>(
    object: &ObjectDef,
    selection: impl IntoIterator<Item = SelectionField<'a>>,
    extra: &[String],
) -> FieldSet {
    let mut keys: Vec<String> = extra.to_vec();
    for field in selection {
        let name = field.name();
        if let Some(def) = object.field(name) {
            keys.push(def.value_key());
        } else if object.field_by_value_key(name).is_some() {
            keys.push(name.to_owned());
        }
    }
    FieldSet::of(object, keys.iter().map(String::as_str))
}

/// The fields a connection selection (`nodes { … }`, `edges { node { … } }`)
/// needs, plus the order keys its cursors are made of.
pub fn connection_fields(connection: SelectionField<'_>, object: &ObjectDef, order: &[OrderKey]) -> FieldSet {
    let mut nodes = Vec::new();
    for field in connection.selection_set() {
        match field.name() {
            "nodes" => nodes.extend(field.selection_set()),
            "edges" => {
                for edge_field in field.selection_set().filter(|f| f.name() == "node") {
                    nodes.extend(edge_field.selection_set());
                }
            }
            _ => {}
        }
    }
    // Keys read through a lookup come with the row on their own.
    let order_keys: Vec<String> = order
        .iter()
        .filter(|key| key.through.is_none())
        .map(|key| key.field.value_key())
        .collect();
    record_fields(object, nodes, &order_keys)
}
