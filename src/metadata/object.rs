//! Custom object changes: an object made (with its table and first
//! fields), relabelled, deleted, restored or purged. Each is a body given
//! to [`change::run`]; its table's DDL is in [`ddl`].

use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;

use super::change::{self, Made, Recorded, RowUpdate, State, Target};
use super::custom::{self, StoredObject};
use super::ddl::{self, conversion};
use super::field::{add_field, check_label, FieldSpec};
use crate::audit::Action;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};

/// A new custom object and its first fields.
#[derive(Debug, Clone, Default)]
pub struct ObjectSpec {
    /// The GraphQL type name (`Subscription`); the table is derived from it.
    pub name: String,
    /// What users see for one record.
    pub label: String,
    /// What users see for a list.
    pub plural_label: String,
    /// The list query's name; derived from `name` when absent.
    pub plural: Option<String>,
    /// Why the object exists, shown as the GraphQL description.
    pub description: String,
    /// Fields the object starts with, made in the same change.
    pub fields: Vec<FieldSpec>,
}

/// Changes to a custom object's labels.
#[derive(Debug, Clone, Default)]
pub struct ObjectPatch {
    /// The new label.
    pub label: Option<String>,
    /// The new plural label.
    pub plural_label: Option<String>,
    /// The new description.
    pub description: Option<String>,
}

/// Makes a custom object: its table, with every standard record field
/// (id, timestamps, version, externalId, owner, createdBy, name), and its
/// first custom fields, in one change.
pub async fn create_object(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    spec: ObjectSpec,
) -> Result<StoredObject> {
    change::run(conn, target, async |conn, state| {
        let plural = check_new_object(state, &spec)?;
        let table = custom::object_table(&spec.name);
        ddl::create_table(conn, target, &table).await?;
        let mut insert = Sql::raw("INSERT INTO ");
        insert
            .table(target.schema, "custom_object")
            .push(" (name, plural, table_name, label, plural_label, description) VALUES (");
        let values = [
            Bind::Text(Some(spec.name.clone())),
            Bind::Text(Some(plural)),
            Bind::Text(Some(table)),
            Bind::Text(Some(spec.label.clone())),
            Bind::Text(Some(spec.plural_label.clone())),
            Bind::Text(Some(spec.description.clone())),
        ];
        insert.binds(values).push(")");
        insert.execute(conn).await?;
        state.reload(conn, target.schema).await?;
        for field in &spec.fields {
            add_field(conn, target, state, &spec.name, field).await?;
        }
        let stored = state.reread_object(conn, target.schema, &spec.name).await?;
        let summary = format!(
            "added the object {} with {} custom fields",
            spec.name,
            spec.fields.len()
        );
        let fields = spec.fields.iter().map(|f| Json::String(f.name.clone())).collect();
        let record = Recorded::object("OBJECT_CREATED", Action::Create, (None, Some(&stored)), false, summary)
            .noting("fields", Json::Array(fields));
        Ok(Made { value: stored, record })
    })
    .await
}

/// Checks a new object's names and labels against every object, retained
/// ones included; returns its plural.
fn check_new_object(state: &State, spec: &ObjectSpec) -> Result<String> {
    let at = |key: &str| vec!["input".to_owned(), key.to_owned()];
    custom::check_object_name(&spec.name).map_err(|why| CrmError::bad_input_at(at("name"), why))?;
    let plural = spec.plural.clone().unwrap_or_else(|| custom::plural_of(&spec.name));
    custom::check_field_name(&plural).map_err(|why| CrmError::bad_input_at(at("pluralName"), why))?;
    let singular = super::lower_first(&spec.name);
    if plural == singular {
        return Err(CrmError::bad_input_at(
            at("pluralName"),
            "the plural must differ from the singular",
        ));
    }
    check_label(&spec.label, at("label"))?;
    check_label(&spec.plural_label, at("pluralLabel"))?;
    for existing in state.model.objects() {
        if existing.name.eq_ignore_ascii_case(&spec.name) {
            return Err(CrmError::bad_input_at(
                at("name"),
                format!("there is already an object {}", existing.name),
            ));
        }
        let names = [existing.plural.as_str(), &existing.singular()];
        if names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&plural) || n.eq_ignore_ascii_case(&singular))
        {
            return Err(CrmError::bad_input_at(
                at("pluralName"),
                format!("{} already uses the query names of {plural}", existing.name),
            ));
        }
    }
    if let Some(retained) = state.custom.objects.iter().find(|o| {
        o.deleted_at.is_some() && (o.name.eq_ignore_ascii_case(&spec.name) || o.plural.eq_ignore_ascii_case(&plural))
    }) {
        return Err(CrmError::bad_input_at(
            at("name"),
            format!(
                "the deleted object {} keeps this name until it is purged: restore it, or purge it first",
                retained.name
            ),
        ));
    }
    Ok(plural)
}

/// Changes a custom object's labels and description.
pub async fn update_object(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    name: &str,
    patch: ObjectPatch,
) -> Result<StoredObject> {
    change::run(conn, target, async |conn, state| {
        let before = live_custom_object(state, name)?.clone();
        let mut row = RowUpdate::new(target.schema, "custom_object", before.id);
        if let Some(label) = &patch.label {
            check_label(label, vec!["input".into(), "label".into()])?;
            row.set("label", Bind::Text(Some(label.clone())));
        }
        if let Some(label) = &patch.plural_label {
            check_label(label, vec!["input".into(), "pluralLabel".into()])?;
            row.set("plural_label", Bind::Text(Some(label.clone())));
        }
        if let Some(description) = &patch.description {
            row.set("description", Bind::Text(Some(description.clone())));
        }
        if row.is_empty() {
            return Err(CrmError::bad_input(&["input"], "input changes nothing"));
        }
        row.execute(conn).await?;
        let after = state.reread_object(conn, target.schema, name).await?;
        let summary = format!("changed the object {name}");
        let record = Recorded::object(
            "OBJECT_UPDATED",
            Action::Update,
            (Some(&before), Some(&after)),
            false,
            summary,
        );
        Ok(Made { value: after, record })
    })
    .await
}

/// A live custom object, or why it cannot be changed (a standard one,
/// none by that name).
fn live_custom_object<'s>(state: &'s State, name: &str) -> Result<&'s StoredObject> {
    match state.custom.object(name) {
        Some(stored) if stored.deleted_at.is_none() => Ok(stored),
        _ if state.model.object(name).is_some() => Err(CrmError::bad_input(
            &["name"],
            format!("{name} is a standard object: only custom objects can be changed or deleted"),
        )),
        _ => Err(CrmError::NotFound {
            object: "Object".into(),
            id: name.into(),
        }),
    }
}

/// Lookups on other objects that refer to `name`: live ones (`live`) or
/// any, retained ones included.
fn lookups_to(state: &State, name: &str, live: bool) -> Vec<String> {
    state
        .custom
        .fields
        .iter()
        .filter(|f| f.object != name && f.lookup_object.as_deref() == Some(name))
        .filter(|f| !live || f.deleted_at.is_none())
        .map(|f| format!("{}.{}", f.object, f.name))
        .collect()
}

/// Hides a custom object (its queries, mutations and the lists other
/// objects showed of it) at once; its table keeps the records until
/// `purge_object`.
pub async fn delete_object(conn: &mut AsyncPgConnection, target: &Target<'_>, name: &str) -> Result<StoredObject> {
    change::run(conn, target, async |conn, state| {
        let before = live_custom_object(state, name)?.clone();
        let referring = lookups_to(state, name, true);
        if !referring.is_empty() {
            return Err(CrmError::bad_input(
                &["name"],
                format!("{} refer to {name}: delete those lookups first", referring.join(", ")),
            ));
        }
        let mut row = RowUpdate::new(target.schema, "custom_object", before.id);
        row.set_now("deleted_at");
        row.execute(conn).await?;
        let after = state.reread_object(conn, target.schema, name).await?;
        let summary = format!("deleted the object {name} (its records are kept until it is purged)");
        let record = Recorded::object(
            "OBJECT_DELETED",
            Action::Delete,
            (Some(&before), Some(&after)),
            true,
            summary,
        );
        Ok(Made { value: after, record })
    })
    .await
}

/// Brings a deleted custom object back with its records.
pub async fn restore_object(conn: &mut AsyncPgConnection, target: &Target<'_>, name: &str) -> Result<StoredObject> {
    change::run(conn, target, async |conn, state| {
        let before = retained_object(state, name)?.clone();
        if let Some(lookup) = state
            .custom
            .fields
            .iter()
            .filter(|f| f.object == name && f.deleted_at.is_none())
            .find_map(|f| f.lookup_object.as_ref().filter(|t| state.model.object(t).is_none()))
        {
            return Err(CrmError::bad_input(
                &["name"],
                format!("{name} has a lookup to {lookup}, which is deleted: restore {lookup} first"),
            ));
        }
        let mut row = RowUpdate::new(target.schema, "custom_object", before.id);
        row.set("deleted_at", Bind::DateTime(None));
        row.execute(conn).await?;
        let after = state.reread_object(conn, target.schema, name).await?;
        let summary = format!("restored the object {name}");
        let record = Recorded::object(
            "OBJECT_RESTORED",
            Action::Restore,
            (Some(&before), Some(&after)),
            false,
            summary,
        );
        Ok(Made { value: after, record })
    })
    .await
}

/// A deleted custom object kept until it is purged.
fn retained_object<'s>(state: &'s State, name: &str) -> Result<&'s StoredObject> {
    state
        .custom
        .object(name)
        .filter(|o| o.deleted_at.is_some())
        .ok_or_else(|| CrmError::NotFound {
            object: "Deleted object".into(),
            id: name.into(),
        })
}

/// Drops a deleted custom object's table, records and fields for good.
pub async fn purge_object(conn: &mut AsyncPgConnection, target: &Target<'_>, name: &str) -> Result<StoredObject> {
    change::run(conn, target, async |conn, state| {
        let before = retained_object(state, name)?.clone();
        let referring = lookups_to(state, name, false);
        if !referring.is_empty() {
            return Err(CrmError::bad_input(
                &["name"],
                format!("{} refer to {name}: purge those fields first", referring.join(", ")),
            ));
        }
        ddl::drop_table(conn, target, &before.table_name).await?;
        let fields = state.custom.fields.iter().filter(|f| f.object == name).map(|f| f.id);
        conversion::forget(conn, target.schema, fields.collect()).await?;
        let mut fields = Sql::raw("DELETE FROM ");
        fields
            .table(target.schema, "custom_field")
            .push(" WHERE object = ")
            .bind(Bind::Text(Some(name.into())));
        fields.execute(conn).await?;
        let mut object = Sql::raw("DELETE FROM ");
        object
            .table(target.schema, "custom_object")
            .push(" WHERE id = ")
            .bind(Bind::Uuid(Some(before.id)));
        object.execute(conn).await?;
        let summary = format!("purged the object {name} and its records");
        let record = Recorded::object("OBJECT_PURGED", Action::Purge, (Some(&before), None), false, summary);
        Ok(Made { value: before, record })
    })
    .await
}
