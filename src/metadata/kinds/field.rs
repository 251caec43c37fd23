//! Custom fields, with their picklist options: rows of `custom_field`,
//! made through the metadata changes the API makes.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::impact::{from_to, Level, Lifecycle, SdlChange};
use super::{
    adopt_id, deleted, differs, items_of, rows, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind,
    Snapshot,
};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::change::{
    self, FieldPatch, FieldSpec, OnInvalid, OnLossy, OptionSpec, Preview, Target, TypeChange,
};
use crate::metadata::custom::{parse_options, Customizations};
use crate::metadata::{ddl, FieldKind};

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
        items_of(doc, ABOUT.key, |row| {
            json!({
                "object": row["object"],
                "name": row["name"],
                "label": row["label"],
                "description": row["description"],
                "type": row["type"],
                "required": row["required"],
                "unique": row["is_unique"],
                "indexed": row["indexed"],
                // Documents from before fields were searchable say nothing.
                "searchable": row["searchable"].as_bool().unwrap_or(false),
                "defaultValue": row["default_value"],
                "options": row["options"],
                "lookupObject": row["lookup_object"],
                "relationName": row["relation_name"],
                "deleted": !row["deleted_at"].is_null(),
            })
        })
    }

    fn table(&self) -> Option<&'static str> {
        Some("custom_field")
    }

    fn target_of(&self, state: &Json) -> String {
        format!("{}.{}", text(state, "object"), text(state, "name"))
    }

    /// A field's place among its object's fields (`custom_field.position`).
    fn positions(&self, doc: &Json) -> Vec<(String, i64)> {
        rows(doc, ABOUT.key)
            .iter()
            .filter_map(|row| Some((super::id_of(row), row["position"].as_i64()?)))
            .collect()
    }

    /// Its object.
    fn parent_of(&self, state: &Json) -> String {
        text(state, "object")
    }

    fn in_schema(&self) -> bool {
        true
    }

    /// After the objects they belong to, before the deletion of objects
    /// they point at.
    fn phase(&self, _desired: &Json) -> u8 {
        1
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
        client_impact(before, after, change)
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
        searchable: bool_of("searchable"),
        options: differs(&now, desired, "options").map(|_| option_specs(&now, desired, change)),
    };
    let empty = patch.label.is_none()
        && patch.description.is_none()
        && patch.default_value.is_none()
        && patch.required.is_none()
        && patch.unique.is_none()
        && patch.indexed.is_none()
        && patch.searchable.is_none()
        && patch.options.is_none();
    if !empty {
        change::update_field(conn, target, &object, &name, patch).await?;
    }
    match lossy {
        Some(lossy) => Ok(Some(lossy)),
        None => retired_holders(conn, target, &object, &name, &now, desired, change).await,
    }
}

/// The values a change retires (active now, inactive or gone after, not
/// renamed) and the records holding them, as its data impact: they keep
/// the value, writes can no longer set it.
async fn retired_holders(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
    now: &Json,
    desired: &Json,
    change: &Change,
) -> Result<Option<DataImpact>> {
    let after = parse_options(&desired["options"]);
    let retired: Vec<String> = parse_options(&now["options"])
        .into_iter()
        .filter(|o| o.active && !change.renamed_options.iter().any(|r| r.from == o.value))
        .filter(|o| !after.iter().any(|a| a.value == o.value && a.active))
        .map(|o| o.value)
        .collect();
    if retired.is_empty() {
        return Ok(None);
    }
    let model = Customizations::read(conn, target.schema).await?.model()?;
    let (table, field) = model
        .object(object)
        .and_then(|o| Some((o.table.clone(), o.field(name)?.clone())))
        .ok_or_else(|| CrmError::internal(format_args!("{object}.{name} vanished while changed")))?;
    let mut holding = Sql::new();
    holding.ident(&field.column);
    match field.kind {
        FieldKind::MultiPicklist(_) => holding.push(" && "),
        _ => holding.push(" = ANY("),
    };
    holding.bind(Bind::TextArray(Some(retired.clone())));
    if !matches!(field.kind, FieldKind::MultiPicklist(_)) {
        holding.push(")");
    }
    let (count, sample_ids) = ddl::violations(conn, target, &table, holding).await?;
    Ok(Some(DataImpact {
        message: format!(
            "{count} {object} records hold {} (retired): they keep it, and writes can no longer set it",
            retired.join(", ")
        ),
        path: vec!["options".into()],
        count: Some(count),
        sample_ids,
        lossy: false,
    }))
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
        searchable: state["searchable"] == json!(true),
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

/// What a field change means for clients: a removed, renamed or retyped
/// field, a new required input or a retired value breaks them; a new
/// value, another default or a uniqueness rule may surprise them.
fn client_impact(before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
    let path = &change.target;
    let mut out = Vec::new();
    let required_input = |state: &Json| state["required"] == json!(true) && state["defaultValue"].is_null();
    match Lifecycle::of(before, after) {
        Lifecycle::Gone => {}
        Lifecycle::Removed => out.push(SdlChange::new(
            Level::Breaking,
            path,
            format!("field {path} leaves the API: operations that select, filter, sort or write it fail"),
        )),
        Lifecycle::Added if required_input(after) => out.push(SdlChange::new(
            Level::Breaking,
            path,
            format!("field {path} is required, with no default: creates that do not give it fail"),
        )),
        Lifecycle::Added => out.push(SdlChange::new(Level::Safe, path, format!("field {path} joins the API"))),
        Lifecycle::Changed => {
            let before = before.unwrap_or(&Json::Null);
            changed_field(before, after, change, &mut out);
        }
    }
    out
}

/// The impact of the properties a live field changes.
fn changed_field(before: &Json, after: &Json, change: &Change, out: &mut Vec<SdlChange>) {
    let path = &change.target;
    let breaking = |out: &mut Vec<SdlChange>, message: String| out.push(SdlChange::new(Level::Breaking, path, message));
    if before["name"] != after["name"] {
        breaking(
            out,
            format!(
                "field {path} is renamed to {}: operations using the old name fail",
                text(after, "name")
            ),
        );
    }
    if before["type"] != after["type"] || before["lookupObject"] != after["lookupObject"] {
        breaking(
            out,
            format!(
                "field {path} changes type {}: its values and filters change shape",
                from_to(before, after, "type")
            ),
        );
    }
    if before["required"] != after["required"] {
        let (now, effect) = if after["required"] == json!(true) {
            (
                "required",
                "its type becomes non-null and creates must give it unless it has a default",
            )
        } else {
            ("optional", "its type becomes nullable: readers may get null")
        };
        breaking(out, format!("field {path} becomes {now}: {effect}"));
    }
    if before["defaultValue"] != after["defaultValue"] {
        out.push(SdlChange::new(
            Level::Dangerous,
            path,
            format!(
                "field {path} changes its default {}: creates that leave it out store another value",
                from_to(before, after, "defaultValue")
            ),
        ));
    }
    if before["unique"] != after["unique"] && after["unique"] == json!(true) {
        out.push(SdlChange::new(
            Level::Dangerous,
            path,
            format!("field {path} becomes unique: writes giving a value another record holds are refused"),
        ));
    }
    if before["options"] != after["options"] {
        option_impact(before, after, change, out);
    }
}

/// Picklist values: renamed, retired or dropped ones break writers (and
/// filters naming them); new or reactivated ones may surprise readers.
fn option_impact(before: &Json, after: &Json, change: &Change, out: &mut Vec<SdlChange>) {
    let path = &change.target;
    let old = parse_options(&before["options"]);
    let new = parse_options(&after["options"]);
    for rename in &change.renamed_options {
        out.push(SdlChange::new(
            Level::Breaking,
            format!("{path}.{}", rename.from),
            format!(
                "value {} of {path} is renamed to {}: operations naming {} fail",
                rename.from, rename.to, rename.from
            ),
        ));
    }
    let renamed_from = |value: &str| change.renamed_options.iter().any(|r| r.from == value);
    let renamed_to = |value: &str| change.renamed_options.iter().any(|r| r.to == value);
    for option in old.iter().filter(|o| o.active && !renamed_from(&o.value)) {
        let still = new.iter().find(|n| n.value == option.value);
        if still.is_none_or(|n| !n.active) {
            out.push(SdlChange::new(
                Level::Breaking,
                format!("{path}.{}", option.value),
                format!(
                    "value {} of {path} is retired: writes that set it are refused; records holding it keep it, so \
                     readers still see it",
                    option.value
                ),
            ));
        }
    }
    for option in new.iter().filter(|n| n.active && !renamed_to(&n.value)) {
        let was = old.iter().find(|o| o.value == option.value);
        if was.is_none_or(|o| !o.active) {
            out.push(SdlChange::new(
                Level::Dangerous,
                format!("{path}.{}", option.value),
                format!(
                    "value {} of {path} {}: readers that handle every value may not expect it",
                    option.value,
                    if was.is_some() { "is active again" } else { "is added" }
                ),
            ));
        }
    }
}
