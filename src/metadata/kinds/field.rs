//! Custom fields, with their picklist options: rows of `custom_field`,
//! made through the metadata changes the API makes.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::{
    adopt_id, deleted, differs, rows, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind, Snapshot,
};
use crate::error::{CrmError, Result};
use crate::metadata::change::{
    self, FieldPatch, FieldSpec, OnInvalid, OnLossy, OptionSpec, Preview, Target, TypeChange,
};
use crate::metadata::custom::parse_options;

/// A custom field.
pub struct Field;

static ABOUT: About = About {
    kind: Kind::Field,
    identifier: "FIELD",
    noun: "field",
    description: "A custom field, with its picklist options.",
    key: "fields",
};

impl MetadataKind for Field {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, schema: &str) -> String {
        table_rows(schema, "custom_field", "t.position, t.name")
    }

    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        rows(doc, ABOUT.key)
            .iter()
            .map(|row| {
                let state = json!({
                    "object": row["object"],
                    "name": row["name"],
                    "label": row["label"],
                    "description": row["description"],
                    "type": row["type"],
                    "required": row["required"],
                    "unique": row["is_unique"],
                    "indexed": row["indexed"],
                    "defaultValue": row["default_value"],
                    "options": row["options"],
                    "lookupObject": row["lookup_object"],
                    "relationName": row["relation_name"],
                    "deleted": !row["deleted_at"].is_null(),
                });
                (super::id_of(row), state)
            })
            .collect()
    }

    fn table(&self) -> Option<&'static str> {
        Some("custom_field")
    }

    fn target_of(&self, state: &Json) -> String {
        format!("{}.{}", text(state, "object"), text(state, "name"))
    }

    fn in_schema(&self) -> bool {
        true
    }

    /// After the objects they belong to, before the deletion of objects
    /// they point at.
    fn phase(&self, _desired: &Json) -> u8 {
        1
    }

    /// `add field Account.tier (PICKLIST, required)`.
    fn add_summary(&self, change: &Change) -> String {
        format!(
            "add field {} ({}{})",
            change.target,
            text(&change.after, "type"),
            if change.after["required"] == json!(true) {
                ", required"
            } else {
                ""
            }
        )
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        Box::pin(field(conn, target, current, desired, change))
    }
}

/// A custom field: made through the metadata changes. A type change is
/// made even when it loses information of values; what it loses is
/// returned, and the promotion refuses it unless allowed.
async fn field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    current: Option<&Item>,
    desired: &Json,
    change: &Change,
) -> Result<Option<DataImpact>> {
    let object = text(desired, "object");
    let Some(current) = current else {
        let made = change::create_field(conn, target, &object, field_spec(desired)).await?;
        adopt_id(conn, target.schema, "custom_field", made.id, &change.id).await?;
        if deleted(desired) {
            change::delete_field(conn, target, &object, &made.name).await?;
        }
        return Ok(None);
    };
    let mut name = text(&current.state, "name");
    // Whether a restore, rename or type change made the field differ from
    // `current` in more than the property it set.
    let mut reshaped = false;
    let mut lossy = None;
    match (deleted(&current.state), deleted(desired)) {
        (true, true) => return Ok(None),
        (false, true) => return change::delete_field(conn, target, &object, &name).await.map(|_| None),
        (true, false) => {
            change::restore_field(conn, target, &object, &name).await?;
            reshaped = true;
        }
        (false, false) => {}
    }
    let wanted = text(desired, "name");
    if wanted != name {
        change::rename_field(conn, target, &object, &name, &wanted).await?;
        name = wanted;
        reshaped = true;
    }
    if current.state["type"] != desired["type"] {
        reshaped = true;
        let type_change = TypeChange {
            type_name: text(desired, "type"),
            options: parse_options(&desired["options"]),
            on_invalid: OnInvalid::Fail,
            on_lossy: OnLossy::Accept,
        };
        let changed = change::change_type(conn, target, &object, &name, type_change).await?;
        lossy = lossy_impact(&change.target, &changed.preview);
    }
    // What restore, rename and type change left.
    let now = if reshaped {
        Snapshot::read(conn, target.schema)
            .await?
            .get(Kind::Field, &current.id)
            .map(|item| item.state.clone())
            .ok_or_else(|| CrmError::internal("a changed field vanished"))?
    } else {
        current.state.clone()
    };
    let bool_of = |key: &str| differs(&now, desired, key).and_then(|v| v.as_bool());
    let patch = FieldPatch {
        label: differs(&now, desired, "label").map(|_| text(desired, "label")),
        description: differs(&now, desired, "description").map(|_| text(desired, "description")),
        default_value: differs(&now, desired, "defaultValue").map(|v| (!v.is_null()).then_some(v)),
        required: bool_of("required"),
        unique: bool_of("unique"),
        indexed: bool_of("indexed"),
        options: differs(&now, desired, "options").map(|_| option_specs(&now, desired, change)),
    };
    let empty = patch.label.is_none()
        && patch.description.is_none()
        && patch.default_value.is_none()
        && patch.required.is_none()
        && patch.unique.is_none()
        && patch.indexed.is_none()
        && patch.options.is_none();
    if !empty {
        change::update_field(conn, target, &object, &name, patch).await?;
    }
    Ok(lossy)
}

/// How the field a state describes is made.
fn field_spec(state: &Json) -> FieldSpec {
    let optional = |key: &str| state[key].as_str().map(str::to_owned);
    FieldSpec {
        name: text(state, "name"),
        label: text(state, "label"),
        description: text(state, "description"),
        type_name: text(state, "type"),
        required: state["required"] == json!(true),
        unique: state["unique"] == json!(true),
        indexed: state["indexed"] == json!(true),
        default_value: (!state["defaultValue"].is_null()).then(|| state["defaultValue"].clone()),
        options: parse_options(&state["options"]),
        lookup_object: optional("lookupObject"),
        relation_name: optional("relationName"),
        path: Vec::new(),
    }
}

/// The whole new option list, naming the renamed values' old names. A
/// value the change drops (a revert of an added option) is retired, not
/// removed: records may hold it.
fn option_specs(now: &Json, desired: &Json, change: &Change) -> Vec<OptionSpec> {
    let options = parse_options(&now["options"]);
    let current: Vec<String> = options.iter().map(|o| o.value.clone()).collect();
    let mut specs: Vec<OptionSpec> = parse_options(&desired["options"])
        .into_iter()
        .map(|option| {
            let renamed_from = change
                .renamed_options
                .iter()
                .find(|r| r.to == option.value && current.contains(&r.from) && !current.contains(&r.to))
                .map(|r| r.from.clone());
            OptionSpec {
                value: option.value,
                label: Some(option.label),
                active: option.active,
                renamed_from,
            }
        })
        .collect();
    for option in options {
        let kept = specs
            .iter()
            .any(|s| s.renamed_from.as_deref().unwrap_or(&s.value) == option.value);
        if !kept {
            specs.push(OptionSpec {
                value: option.value,
                label: Some(option.label),
                active: false,
                renamed_from: None,
            });
        }
    }
    specs
}

/// The values a type change made lose information of, as its data impact.
fn lossy_impact(target: &str, preview: &Preview) -> Option<DataImpact> {
    (preview.lossy > 0).then(|| DataImpact {
        message: format!(
            "{}: pass allowLossy to apply it (their old values are kept; a revert brings them back)",
            change::lossy_summary(preview, target)
        ),
        path: vec!["type".into()],
        count: Some(preview.lossy),
        sample_ids: preview.lossy_samples.iter().map(|s| s.record_id.clone()).collect(),
        lossy: true,
    })
}
