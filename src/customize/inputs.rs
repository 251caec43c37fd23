//! The input side of the metadata API: the input object types that custom
//! field and object mutations take, and the helpers that read their
//! arguments (text, booleans, picklist options) with the path an error
//! points at.

use async_graphql::dynamic::{InputObject, InputValue, ResolverContext, TypeRef};
use async_graphql::{Name, Value};

use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::resolve::arg;
use crate::metadata::change::OptionSpec;
use crate::metadata::PicklistOption;

/// The input types of the field and object mutations.
pub(super) fn types() -> Vec<InputObject> {
    vec![
        field_input("CreateCustomFieldInput", true),
        field_input("CustomObjectFieldInput", false),
        InputObject::new("PicklistOptionInput")
            .description(
                "One option of a picklist. In an update, list every current option in the order wanted: \
                 new values are added, `renamedFrom` renames one (records follow), `active: false` retires one.",
            )
            .field(
                InputValue::new("value", TypeRef::named_nn(TypeRef::STRING))
                    .description("The API value, an enum value: SCREAMING_SNAKE_CASE."),
            )
            .field(
                InputValue::new("label", TypeRef::named(TypeRef::STRING))
                    .description("What people read; defaults to the current label, or the value."),
            )
            .field(
                InputValue::new("active", TypeRef::named(TypeRef::BOOLEAN))
                    .default_value(true)
                    .description("Retired values stay on records but are not accepted in writes."),
            )
            .field(
                InputValue::new("renamedFrom", TypeRef::named(TypeRef::STRING))
                    .description("The current value this option renames."),
            ),
        InputObject::new("UpdateCustomFieldInput")
            .description("Settings of a custom field to change; omitted ones stay.")
            .field(InputValue::new("label", TypeRef::named(TypeRef::STRING)).description("What people read."))
            .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("Help text."))
            .field(
                InputValue::new("defaultValue", TypeRef::named("JSON"))
                    .description("The value new records get; null removes the default."),
            )
            .field(
                InputValue::new("required", TypeRef::named(TypeRef::BOOLEAN))
                    .description("Refused with the count and sample ids while records have no value."),
            )
            .field(
                InputValue::new("unique", TypeRef::named(TypeRef::BOOLEAN))
                    .description("Refused with the count and sample ids while records share a value."),
            )
            .field(InputValue::new("indexed", TypeRef::named(TypeRef::BOOLEAN)).description("Keep an index on it."))
            .field(
                InputValue::new("searchable", TypeRef::named(TypeRef::BOOLEAN))
                    .description("Let `search` find records by its words (text fields)."),
            )
            .field(
                InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                    .description("The whole option list of a picklist, in order."),
            ),
        InputObject::new("CreateCustomObjectInput")
            .description("A new custom object.")
            .field(
                InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                    .description("Its type name: PascalCase, singular (`Subscription`)."),
            )
            .field(InputValue::new("label", TypeRef::named_nn(TypeRef::STRING)).description("What people call one."))
            .field(
                InputValue::new("pluralLabel", TypeRef::named_nn(TypeRef::STRING))
                    .description("What people call several."),
            )
            .field(
                InputValue::new("pluralName", TypeRef::named(TypeRef::STRING))
                    .description("Its list query, camelCase (`subscriptions`); derived from name when absent."),
            )
            .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("What it is for."))
            .field(
                InputValue::new("fields", TypeRef::named_nn_list("CustomObjectFieldInput"))
                    .description("Its custom fields, beyond what every record has (id, name, owner …)."),
            ),
        InputObject::new("UpdateCustomObjectInput")
            .description("Labels of a custom object to change.")
            .field(InputValue::new("label", TypeRef::named(TypeRef::STRING)).description("What people call one."))
            .field(
                InputValue::new("pluralLabel", TypeRef::named(TypeRef::STRING))
                    .description("What people call several."),
            )
            .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("What it is for.")),
    ]
}

pub(super) fn field_input(name: &str, with_object: bool) -> InputObject {
    let mut input = InputObject::new(name).description("A new custom field.");
    if with_object {
        input = input.field(
            InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object to add it to."),
        );
    }
    input
        .field(
            InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                .description("API name: camelCase ASCII, at most 63 bytes (`renewalDate`)."),
        )
        .field(InputValue::new("label", TypeRef::named_nn(TypeRef::STRING)).description("What people read."))
        .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("Help text."))
        .field(InputValue::new("type", TypeRef::named_nn("FieldType")).description("Its type."))
        .field(
            InputValue::new("required", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Every record must have a value (needs a default when records exist)."),
        )
        .field(
            InputValue::new("unique", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("No two records share a value."),
        )
        .field(
            InputValue::new("indexed", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Keep an index for filters and sorts on it."),
        )
        .field(
            InputValue::new("searchable", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Let `search` find records by its words, accents and typos aside (text fields only)."),
        )
        .field(
            InputValue::new("defaultValue", TypeRef::named("JSON")).description(
                "The value new records get, written as for a create (`\"GOLD\"`, `12`, `\"2026-01-31\"`).",
            ),
        )
        .field(
            InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                .description("A picklist's options, in order."),
        )
        .field(
            InputValue::new("lookupObject", TypeRef::named(TypeRef::STRING))
                .description("A lookup's target object (`Account`)."),
        )
        .field(
            InputValue::new("relationName", TypeRef::named(TypeRef::STRING))
                .description("The list of referring records the target shows; by default this object's plural."),
        )
}

pub(super) fn object_arg<'a>(
    ctx: &'a ResolverContext<'_>,
    name: &str,
) -> Result<&'a async_graphql::indexmap::IndexMap<Name, Value>> {
    match arg(ctx, name) {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(CrmError::bad_input(&[name], format!("{name} is required"))),
    }
}

pub(super) type Map = async_graphql::indexmap::IndexMap<Name, Value>;

pub(super) fn optional_text(map: &Map, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn required_text(map: &Map, key: &str, path: &Path) -> Result<String> {
    optional_text(map, key).ok_or_else(|| path.at(key).error(format!("{key} is required")))
}

pub(super) fn optional_bool(map: &Map, key: &str) -> Option<bool> {
    match map.get(key) {
        Some(Value::Boolean(b)) => Some(*b),
        _ => None,
    }
}

/// `[PicklistOptionInput!]` as option specs.
pub(super) fn option_specs(value: Option<&Value>, path: &Path) -> Result<Option<Vec<OptionSpec>>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::List(items)) => items,
        Some(_) => return Err(path.error("options is a list")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(path
                .index(i)
                .error("an option is { value, label, active, renamedFrom }"));
        };
        out.push(OptionSpec {
            value: required_text(map, "value", &path.index(i))?,
            label: optional_text(map, "label"),
            active: optional_bool(map, "active").unwrap_or(true),
            renamed_from: optional_text(map, "renamedFrom"),
        });
    }
    Ok(Some(out))
}

/// New options (no renames): value, label (default: the value), active.
pub(super) fn new_options(value: Option<&Value>, path: &Path) -> Result<Vec<PicklistOption>> {
    let specs = option_specs(value, path)?.unwrap_or_default();
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            if spec.renamed_from.is_some() {
                return Err(path
                    .index(i)
                    .at("renamedFrom")
                    .error("a new picklist has nothing to rename"));
            }
            Ok(PicklistOption {
                label: spec.label.unwrap_or_else(|| spec.value.clone()),
                value: spec.value,
                active: spec.active,
            })
        })
        .collect()
}
