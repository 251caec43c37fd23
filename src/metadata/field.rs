//! Custom field changes: a field added, changed, renamed, deleted,
//! restored or purged (its type changed: [`retype`]).
//!
//! Each change is a body given to [`change::run`]: it checks the change
//! against the locked metadata ([`checks`]) and the data, runs its DDL
//! ([`ddl`]) and writes the `custom_field` row; the skeleton records and
//! announces it.

mod checks;
mod options;
/// A field's type changed; its types are re-exported by [`change`].
pub mod retype;

use diesel_async::AsyncPgConnection;
use serde_json::{json, Value as Json};

use super::change::{self, Made, Recorded, RowUpdate, State, Target};
use super::custom::{self, StoredField};
use super::ddl::{self, conversion, NewColumn};
use super::{FieldDef, FieldKind, ObjectDef, PicklistOption};
use crate::audit::Action;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
pub(super) use checks::check_label;
use checks::{check_flags, check_free_name, check_searchable, spec_kind};

/// A new custom field, its default already checked against its type.
#[derive(Debug, Clone, Default)]
pub struct FieldSpec {
    /// The API name (`renewalDate`); the column is derived from it.
    pub name: String,
    /// What users see.
    pub label: String,
    /// Why the field exists, shown as the GraphQL description.
    pub description: String,
    /// A `FieldType` name (`TEXT`, `PICKLIST`, `LOOKUP` …).
    pub type_name: String,
    /// Whether every record must have a value (`NOT NULL`).
    pub required: bool,
    /// Whether two records may not share a value (a unique index).
    pub unique: bool,
    /// Whether filters and sorts on it get an index.
    pub indexed: bool,
    /// Whether `search` finds records by its words (text kinds).
    pub searchable: bool,
    /// The default as the API shows values (a JSON value).
    pub default_value: Option<Json>,
    /// A picklist's values, in order.
    pub options: Vec<PicklistOption>,
    /// The object a lookup refers to.
    pub lookup_object: Option<String>,
    /// The list the lookup's target shows back (`subscriptions`).
    pub relation_name: Option<String>,
    /// Where the spec sits in the request (`["input"]`), for errors.
    pub path: Vec<String>,
}

impl FieldSpec {
    /// The path of one of the spec's keys in the request, for errors.
    fn at(&self, key: &str) -> Vec<String> {
        let mut path = self.path.clone();
        path.push(key.into());
        path
    }
}

/// Changes to a custom field's settings; `None` keeps a setting.
#[derive(Debug, Clone, Default)]
pub struct FieldPatch {
    /// The new label.
    pub label: Option<String>,
    /// The new description.
    pub description: Option<String>,
    /// `Some(None)` removes the default.
    pub default_value: Option<Option<Json>>,
    /// Makes the field required or optional.
    pub required: Option<bool>,
    /// Makes the field unique or not.
    pub unique: Option<bool>,
    /// Adds or drops the field's index.
    pub indexed: Option<bool>,
    /// Makes `search` find records by the field's words, or stop.
    pub searchable: Option<bool>,
    /// The whole new list of picklist options, in order.
    pub options: Option<Vec<OptionSpec>>,
}

/// One picklist option of an update: kept, added, renamed (from
/// `renamed_from`) or deactivated.
#[derive(Debug, Clone)]
pub struct OptionSpec {
    /// The value records hold (`GOLD_PLUS`).
    pub value: String,
    /// What users see; the current one (or the value) when absent.
    pub label: Option<String>,
    /// Whether new records may take it; retired values stay in old records.
    pub active: bool,
    /// The value it had, when it is renamed: records follow.
    pub renamed_from: Option<String>,
}

/// Adds a custom field to `object`.
pub async fn create_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    spec: FieldSpec,
) -> Result<StoredField> {
    change::run(conn, target, async |conn, state| {
        let stored = add_field(conn, target, state, object, &spec).await?;
        let summary = format!("added {object}.{} ({})", stored.name, stored.r#type);
        let breaking = stored.required && stored.default_value.is_none();
        let record = Recorded::field(
            "FIELD_CREATED",
            Action::Create,
            (None, Some(&stored)),
            breaking,
            summary,
        );
        Ok(Made { value: stored, record })
    })
    .await
}

/// Checks a new field and makes its column, indexes and metadata row (a
/// new object's first fields come this way too).
pub(super) async fn add_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    state: &mut State,
    object_name: &str,
    spec: &FieldSpec,
) -> Result<StoredField> {
    let schema = target.schema;
    let (object, new_field, spec) = checked_spec(target, state, object_name, spec)?;
    check_existing_rows(conn, target, &object, &spec).await?;
    let kind = &new_field.kind;
    let references = match kind {
        FieldKind::Lookup(lookup) => {
            let to = state.object(&lookup.target, &[])?;
            Some((to.schema_in(schema).to_owned(), to.table.clone()))
        }
        _ => None,
    };
    let new = NewColumn {
        column: &new_field.column,
        kind,
        references: references.as_ref().map(|(s, t)| (s.as_str(), t.as_str())),
        default: spec.default_value.as_ref(),
        required: spec.required,
    };
    ddl::add_column(conn, target, &object.table, new).await?;
    insert_row(conn, schema, state, &object, &new_field, &spec).await?;
    state.reload(conn, schema).await?;
    let def = state
        .model
        .object(object_name)
        .and_then(|o| o.field(&spec.name))
        .cloned()
        .ok_or_else(|| CrmError::internal("a new field is missing from the model"))?;
    ddl::create_indexes(conn, target, &object.table, &def).await?;
    state.stored_field(object_name, &spec.name)
}

/// The object a new field goes on, its definition and the spec with its
/// default checked, or why the spec cannot be.
fn checked_spec(
    target: &Target<'_>,
    state: &State,
    object_name: &str,
    spec: &FieldSpec,
) -> Result<(ObjectDef, FieldDef, FieldSpec)> {
    let at = |name: &str| spec.at(name);
    let object = state
        .model
        .object(object_name)
        .map(|o| o.as_ref().clone())
        .ok_or_else(|| CrmError::bad_input_at(at("object"), format!("there is no object {object_name}")))?;
    if object.schema.is_some() {
        return Err(CrmError::bad_input_at(
            at("object"),
            format!("{object_name} is shared by every workspace and cannot have custom fields"),
        ));
    }
    if !object.writable() {
        return Err(CrmError::bad_input_at(
            at("object"),
            format!("{object_name} is recorded by the server and cannot have custom fields"),
        ));
    }
    custom::check_field_name(&spec.name).map_err(|why| CrmError::bad_input_at(at("name"), why))?;
    check_free_name(state, &object, &spec.name, at("name"))?;
    let kind = spec_kind(state, &object, spec, &at)?;
    if matches!(kind, FieldKind::Lookup(_)) && spec.name.len() + 2 > custom::MAX_NAME_BYTES {
        return Err(CrmError::bad_input_at(
            at("name"),
            "a lookup's name must leave room for its Id key",
        ));
    }
    check_label(&spec.label, at("label"))?;
    check_flags(&kind, spec.unique, spec.indexed, &spec.default_value, &at)?;
    check_searchable(&kind, spec.searchable, &at)?;
    let new_field = FieldDef {
        name: spec.name.clone(),
        column: custom::field_column(&spec.name),
        label: spec.label.clone(),
        description: spec.description.clone(),
        max_length: custom::max_length(&kind),
        default_value: None,
        required: spec.required,
        system: false,
        custom: true,
        unique: spec.unique,
        indexed: spec.indexed,
        searchable: spec.searchable,
        personal: super::Personal::of_kind(&kind),
        kind,
    };
    let default = match &spec.default_value {
        Some(value) => Some((target.value)(&new_field, value, &at("defaultValue"))?),
        None => None,
    };
    let spec = FieldSpec {
        default_value: default,
        ..spec.clone()
    };
    Ok((object, new_field, spec))
}

/// Refuses a required field without a default on an object with records
/// (they would have no value), and a unique field with a default on one
/// with two (they would share it).
async fn check_existing_rows(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &ObjectDef,
    spec: &FieldSpec,
) -> Result<()> {
    // Existing records matter only to a required field without a default
    // and to a unique one with a default: counting a big table is not free.
    let empty = spec.required && spec.default_value.is_none();
    let shared = spec.unique && spec.default_value.is_some();
    if !empty && !shared {
        return Ok(());
    }
    let (rows, sample_ids) = ddl::violations(conn, target, &object.table, Sql::raw("true")).await?;
    if empty && rows > 0 {
        return Err(CrmError::DataConflict {
            message: format!(
                "{} has {rows} records, which would have no {}: give a defaultValue, or add the field optional, fill it and then make it required",
                object.name, spec.label
            ),
            field: spec.at("required"),
            count: rows,
            sample_ids,
        });
    }
    if shared && rows > 1 {
        return Err(CrmError::DataConflict {
            message: format!(
                "{} has {rows} records: a unique field cannot give them all the same default",
                object.name
            ),
            field: spec.at("defaultValue"),
            count: rows,
            sample_ids,
        });
    }
    Ok(())
}

/// The new field's `custom_field` row, last in the workspace's order.
async fn insert_row(
    conn: &mut AsyncPgConnection,
    schema: &str,
    state: &State,
    object: &ObjectDef,
    field: &FieldDef,
    spec: &FieldSpec,
) -> Result<()> {
    let kind = &field.kind;
    let position = state.custom.fields.iter().map(|f| f.position).max().unwrap_or(0) + 1;
    let mut insert = Sql::raw("INSERT INTO ");
    insert.table(schema, "custom_field").push(
        " (object, name, column_name, label, description, type, required, is_unique, indexed, searchable, \
         default_value, options, lookup_object, relation_name, position) VALUES (",
    );
    let lookup = match kind {
        FieldKind::Lookup(lookup) => Some((lookup.target.clone(), lookup.inverse.clone())),
        _ => None,
    };
    let values = [
        Bind::Text(Some(object.name.clone())),
        Bind::Text(Some(spec.name.clone())),
        Bind::Text(Some(field.column.clone())),
        Bind::Text(Some(spec.label.clone())),
        Bind::Text(Some(spec.description.clone())),
        Bind::Text(Some(kind.type_name().into())),
        Bind::Bool(Some(spec.required)),
        Bind::Bool(Some(spec.unique)),
        Bind::Bool(Some(spec.indexed)),
        Bind::Bool(Some(spec.searchable)),
        Bind::Json(spec.default_value.clone()),
        Bind::Json(Some(custom::options_json(kind.options().unwrap_or_default()))),
        Bind::Text(lookup.clone().map(|l| l.0)),
        Bind::Text(lookup.and_then(|l| l.1)),
        Bind::Int(Some(position)),
    ];
    insert.binds(values).push(")");
    insert.execute(conn).await?;
    Ok(())
}

/// Changes a custom field's label, description, default, options or
/// constraints. A constraint existing records violate is refused with
/// their count and some of their ids.
pub async fn update_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
    patch: FieldPatch,
) -> Result<StoredField> {
    change::run(conn, target, async |conn, state| {
        let (object_def, field, before) = state.custom_field(object, name)?;
        let mut update = FieldUpdate {
            target,
            object: &object_def,
            field: &field,
            before: &before,
            row: RowUpdate::new(target.schema, "custom_field", before.id),
            kind: field.kind.clone(),
            breaking: false,
        };
        let renames = update.settings(conn, &patch).await?;
        update.constraints(conn, &patch).await?;
        let FieldUpdate { row, breaking, .. } = update;
        if row.is_empty() {
            return Err(CrmError::bad_input(&["input"], "input changes nothing"));
        }
        row.execute(conn).await?;
        let after = state.reread_field(conn, target.schema, object, name).await?;
        let summary = format!("changed {object}.{name}");
        let mut record = Recorded::field(
            "FIELD_UPDATED",
            Action::Update,
            (Some(&before), Some(&after)),
            breaking,
            summary,
        );
        if !renames.is_empty() {
            // A promotion replays renames: records follow the new value.
            let renames = renames.iter().map(|(from, to)| json!({ "from": from, "to": to }));
            record = record.noting("renamedOptions", Json::Array(renames.collect()));
        }
        Ok(Made { value: after, record })
    })
    .await
}

/// One `update_field` under way: what it changes so far.
struct FieldUpdate<'u> {
    target: &'u Target<'u>,
    object: &'u ObjectDef,
    field: &'u FieldDef,
    before: &'u StoredField,
    row: RowUpdate,
    /// The field's kind with the patch's options.
    kind: FieldKind,
    breaking: bool,
}

impl FieldUpdate<'_> {
    fn at(key: &str) -> Vec<String> {
        vec!["input".to_owned(), key.to_owned()]
    }

    /// Label, description, options and default; returns the options
    /// renamed.
    async fn settings(&mut self, conn: &mut AsyncPgConnection, patch: &FieldPatch) -> Result<options::Renames> {
        if let Some(label) = &patch.label {
            check_label(label, Self::at("label"))?;
            self.row.set("label", Bind::Text(Some(label.clone())));
        }
        if let Some(description) = &patch.description {
            self.row.set("description", Bind::Text(Some(description.clone())));
        }
        let mut default = self.before.default_value.clone();
        let mut renames = options::Renames::new();
        if let Some(specs) = &patch.options {
            let (kind, applied) = options::apply(conn, self.target, self.object, self.field, specs).await?;
            for (old, new) in &applied {
                default = default.map(|value| options::renamed_in(value, old, new));
            }
            self.breaking |= !applied.is_empty();
            let new_options = kind.options().unwrap_or_default();
            self.row
                .set("options", Bind::Json(Some(custom::options_json(new_options))));
            self.kind = kind;
            renames = applied;
        }
        if let Some(new_default) = &patch.default_value {
            let mut typed = self.field.clone();
            typed.kind = self.kind.clone();
            default = match new_default {
                Some(value) => Some((self.target.value)(&typed, value, &Self::at("defaultValue"))?),
                None => None,
            };
        }
        options::check_default(default.as_ref(), &self.kind)?;
        if default != self.before.default_value {
            if default.is_some() {
                check_flags(&self.kind, false, false, &default, &Self::at)?;
            }
            let table = &self.object.table;
            ddl::set_default(
                conn,
                self.target,
                table,
                &self.field.column,
                &self.kind,
                default.as_ref(),
            )
            .await?;
            self.row.set("default_value", Bind::Json(default));
        }
        Ok(renames)
    }

    /// Required, unique and indexed, each checked against the records.
    async fn constraints(&mut self, conn: &mut AsyncPgConnection, patch: &FieldPatch) -> Result<()> {
        let (schema, table, column) = (self.target.schema, &self.object.table, &self.field.column);
        if let Some(required) = patch.required.filter(|r| *r != self.before.required) {
            if required {
                let mut violating = Sql::new();
                violating.ident(column).push(" IS NULL");
                let (count, samples) = ddl::violations(conn, self.target, table, violating).await?;
                if count > 0 {
                    return Err(CrmError::DataConflict {
                        message: format!(
                            "{count} {} records have no {}: fill them before making it required",
                            self.object.name, self.field.label
                        ),
                        field: Self::at("required"),
                        count,
                        sample_ids: samples,
                    });
                }
                self.breaking = true;
            }
            ddl::set_not_null(conn, self.target, table, column, required).await?;
            self.row.set("required", Bind::Bool(Some(required)));
        }
        let unique = patch.unique.unwrap_or(self.before.is_unique);
        let indexed = patch.indexed.unwrap_or(self.before.indexed);
        check_flags(&self.kind, unique, indexed, &None, &Self::at)?;
        if let Some(searchable) = patch.searchable.filter(|s| *s != self.before.searchable) {
            check_searchable(&self.kind, searchable, &Self::at)?;
            // The object's search indexes follow when the change finishes.
            self.row.set("searchable", Bind::Bool(Some(searchable)));
        }
        if unique && !self.before.is_unique {
            let mut violating = Sql::new();
            violating.ident(column).push(" IN (SELECT ").ident(column);
            violating.push(" FROM ").table(schema, table);
            violating.push(" GROUP BY ").ident(column).push(" HAVING count(*) > 1)");
            let (count, samples) = ddl::violations(conn, self.target, table, violating).await?;
            if count > 0 {
                return Err(CrmError::DataConflict {
                    message: format!(
                        "{count} {} records share their {} with another: make the values distinct before making it unique",
                        self.object.name, self.field.label
                    ),
                    field: Self::at("unique"),
                    count,
                    sample_ids: samples,
                });
            }
        }
        if unique != self.before.is_unique || indexed != self.before.indexed {
            self.row.set("is_unique", Bind::Bool(Some(unique)));
            self.row.set("indexed", Bind::Bool(Some(indexed)));
            let mut changed = self.field.clone();
            changed.unique = unique;
            changed.indexed = indexed || unique || matches!(self.kind, FieldKind::Lookup(_));
            changed.kind = self.kind.clone();
            ddl::drop_indexes(conn, self.target, table, column).await?;
            ddl::create_indexes(conn, self.target, table, &changed).await?;
        }
        Ok(())
    }
}

/// Changes a custom field's API name (and its column's): a breaking change
/// for clients that use the old name.
pub async fn rename_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
    new_name: &str,
) -> Result<StoredField> {
    change::run(conn, target, async |conn, state| {
        let (object_def, _, before) = state.custom_field(object, name)?;
        custom::check_field_name(new_name).map_err(|why| CrmError::bad_input(&["newName"], why))?;
        if new_name == name {
            return Err(CrmError::bad_input(&["newName"], "the new name is the current one"));
        }
        // The field's own names do not block a change of case.
        let mut others = object_def.clone();
        others.fields.retain(|f| f.name != name);
        check_free_name(state, &others, new_name, vec!["newName".into()])?;
        // A rehearsal renames no column: the row keeps naming the one there is.
        let new_column = if target.rehearsal {
            before.column_name.clone()
        } else {
            custom::field_column(new_name)
        };
        let columns = (before.column_name.as_str(), new_column.as_str());
        let lookup = before.r#type == "LOOKUP";
        ddl::rename_column(conn, target, &object_def.table, columns, lookup).await?;
        let mut row = RowUpdate::new(target.schema, "custom_field", before.id);
        row.set("name", Bind::Text(Some(new_name.into())));
        row.set("column_name", Bind::Text(Some(new_column.clone())));
        row.execute(conn).await?;
        let after = state.reread_field(conn, target.schema, object, new_name).await?;
        let summary = format!("renamed {object}.{name} to {object}.{new_name}: clients using {name} must change");
        let record = Recorded::field(
            "FIELD_RENAMED",
            Action::Update,
            (Some(&before), Some(&after)),
            true,
            summary,
        );
        Ok(Made { value: after, record })
    })
    .await
}

/// Hides a custom field from the API at once; its column keeps the data
/// until `purge_field`, so `restore_field` can bring it back.
pub async fn delete_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
) -> Result<StoredField> {
    change::run(conn, target, async |conn, state| {
        let (object_def, _, before) = state.custom_field(object, name)?;
        if before.required {
            // New records cannot name it any more.
            ddl::set_not_null(conn, target, &object_def.table, &before.column_name, false).await?;
        }
        let mut row = RowUpdate::new(target.schema, "custom_field", before.id);
        row.set_now("deleted_at");
        row.execute(conn).await?;
        let after = state.reread_field(conn, target.schema, object, name).await?;
        let summary = format!("deleted {object}.{name} (its data is kept until it is purged)");
        let record = Recorded::field(
            "FIELD_DELETED",
            Action::Delete,
            (Some(&before), Some(&after)),
            true,
            summary,
        );
        Ok(Made { value: after, record })
    })
    .await
}

/// Brings a deleted custom field back with its data. A required field
/// whose records were created without it since comes back optional.
pub async fn restore_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
) -> Result<StoredField> {
    change::run(conn, target, async |conn, state| {
        let table = state.object(object, &["object"])?.table.clone();
        let before = state.retained_field(object, name)?.clone();
        let mut row = RowUpdate::new(target.schema, "custom_field", before.id);
        row.set("deleted_at", Bind::DateTime(None));
        if before.required {
            let mut missing = Sql::new();
            missing.ident(&before.column_name).push(" IS NULL");
            let (count, _) = ddl::violations(conn, target, &table, missing).await?;
            if count == 0 {
                ddl::set_not_null(conn, target, &table, &before.column_name, true).await?;
            } else {
                row.set("required", Bind::Bool(Some(false)));
            }
        }
        row.execute(conn).await?;
        let after = state.reread_field(conn, target.schema, object, name).await?;
        let summary = format!("restored {object}.{name}");
        let record = Recorded::field(
            "FIELD_RESTORED",
            Action::Restore,
            (Some(&before), Some(&after)),
            false,
            summary,
        );
        Ok(Made { value: after, record })
    })
    .await
}

/// Drops a deleted custom field's column and metadata for good.
pub async fn purge_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
) -> Result<StoredField> {
    change::run(conn, target, async |conn, state| {
        let before = state.retained_field(object, name)?.clone();
        let table = match state.custom.object(object) {
            Some(stored) => stored.table_name.clone(),
            None => state.object(object, &["object"])?.table.clone(),
        };
        ddl::drop_column(conn, target, &table, &before.column_name).await?;
        conversion::forget(conn, target.schema, vec![before.id]).await?;
        let mut delete = Sql::raw("DELETE FROM ");
        delete
            .table(target.schema, "custom_field")
            .push(" WHERE id = ")
            .bind(Bind::Uuid(Some(before.id)));
        delete.execute(conn).await?;
        let summary = format!("purged {object}.{name} and its data");
        let record = Recorded::field("FIELD_PURGED", Action::Purge, (Some(&before), None), false, summary);
        Ok(Made { value: before, record })
    })
    .await
}
