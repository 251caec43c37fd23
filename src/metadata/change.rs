//! Metadata changes: custom fields and custom objects made, changed,
//! deleted, restored and purged.
//!
//! Each change is one transaction holding the workspace's settings row
//! (so changes of one workspace run one at a time): it checks the change
//! against the current metadata and data, runs its DDL, writes the
//! `custom_field`/`custom_object` row, checks that the resulting GraphQL
//! schema builds, bumps the metadata version, records the change
//! (`metadata_change`, the audit log) and announces it with `NOTIFY`.
//! Any failure rolls all of it back: the table, the metadata and the
//! version stay as they were.

use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::conversion::{self, conversion, text_of, Retype};
use super::custom::{self, Customizations, StoredField, StoredObject};
use super::{FieldDef, FieldKind, Model, ObjectDef, PicklistOption};
use crate::audit::{self, Action, Trail};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::notify::Announcement;

/// Sample ids a refusal lists.
const SAMPLES: i64 = 5;

/// Where a change is made and who makes it.
pub struct Target<'a> {
    /// The workspace's Postgres schema.
    pub schema: &'a str,
    /// Who, through which request, in which workspace.
    pub trail: &'a Trail,
    /// Refuses a model the API cannot serve (the GraphQL schema build).
    pub check: &'a (dyn Fn(&Model) -> Result<()> + Send + Sync),
    /// Checks a value given for a field (a default).
    pub value: &'a ValueCheck,
    /// Replaying changes already made and recorded elsewhere (production's
    /// customizations into a new sandbox): nothing is recorded, audited or
    /// announced again.
    pub replaying: bool,
}

/// Checks a value given for a field the way a write would, and returns it
/// as the API shows it; errors point at the path given.
pub type ValueCheck = dyn Fn(&FieldDef, &Json, &[String]) -> Result<Json> + Send + Sync;

/// `(old value, new value)` of each renamed picklist option.
type Renames = Vec<(String, String)>;

/// A new custom field, its default already checked against its type.
#[derive(Debug, Clone, Default)]
pub struct FieldSpec {
    pub name: String,
    pub label: String,
    pub description: String,
    pub type_name: String,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    /// The default as the API shows values (a JSON value).
    pub default_value: Option<Json>,
    pub options: Vec<PicklistOption>,
    pub lookup_object: Option<String>,
    /// The list the lookup's target shows back (`subscriptions`).
    pub relation_name: Option<String>,
    /// Where the spec sits in the request (`["input"]`), for errors.
    pub path: Vec<String>,
}

/// Changes to a custom field's settings; `None` keeps a setting.
#[derive(Debug, Clone, Default)]
pub struct FieldPatch {
    pub label: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` removes the default.
    pub default_value: Option<Option<Json>>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub indexed: Option<bool>,
    /// The whole new list of picklist options, in order.
    pub options: Option<Vec<OptionSpec>>,
}

/// One picklist option of an update: kept, added, renamed (from
/// `renamed_from`) or deactivated.
#[derive(Debug, Clone)]
pub struct OptionSpec {
    pub value: String,
    pub label: Option<String>,
    pub active: bool,
    pub renamed_from: Option<String>,
}

/// A new custom object and its first fields.
#[derive(Debug, Clone, Default)]
pub struct ObjectSpec {
    pub name: String,
    pub label: String,
    pub plural_label: String,
    /// The list query's name; derived from `name` when absent.
    pub plural: Option<String>,
    pub description: String,
    pub fields: Vec<FieldSpec>,
}

/// Changes to a custom object's labels.
#[derive(Debug, Clone, Default)]
pub struct ObjectPatch {
    pub label: Option<String>,
    pub plural_label: Option<String>,
    pub description: Option<String>,
}

/// What a type change does to values that do not convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// Refuse the change (the default).
    Fail,
    /// Clear them.
    SetNull,
}

/// What a type change does to values that convert but lose information
/// (a time of day, fraction digits, a number other than 0 or 1 made a
/// boolean): losing them silently is what a user cannot take back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLossy {
    /// Refuse the change (the default).
    Refuse,
    /// Convert them anyway; changing the type back restores them for the
    /// records not changed since.
    Accept,
}

/// A field type change as asked.
#[derive(Debug, Clone)]
pub struct TypeChange {
    pub type_name: String,
    /// The options of a new picklist type.
    pub options: Vec<PicklistOption>,
    pub on_invalid: OnInvalid,
    pub on_lossy: OnLossy,
}

/// What a type change would do to existing records.
#[derive(Debug, Clone)]
pub struct Preview {
    pub object: String,
    pub field: String,
    pub from: String,
    pub to: String,
    /// Records with a value (every record counts, deleted ones too).
    pub with_value: i64,
    /// Values that convert, lossy ones included.
    pub convertible: i64,
    pub invalid: i64,
    /// Records whose value does not convert: id and value as text.
    pub samples: Vec<(String, String)>,
    /// Of the convertible values, those that lose information.
    pub lossy: i64,
    /// What a lossy value loses, in words; `None` when the conversion
    /// cannot lose anything.
    pub loses: Option<&'static str>,
    /// Some of the lossy values.
    pub lossy_samples: Vec<LossyValue>,
    /// Records whose value from before the field's previous type change
    /// comes back: this change undoes that one for the records whose value
    /// did not change since.
    pub restored: i64,
    /// Whether the column's storage type changes, rewriting the table.
    pub rewrites_table: bool,
}

/// A value a type change converts but loses information of.
#[derive(Debug, Clone)]
pub struct LossyValue {
    pub record_id: String,
    /// The value now, as text.
    pub value: String,
    /// The value it would become, as text.
    pub converted: String,
}

/// A type change made: the field as it is now, and what the change did to
/// the values (what a promotion reports of it).
#[derive(Debug, Clone)]
pub struct TypeChanged {
    pub field: StoredField,
    pub preview: Preview,
}

/// The workspace locked for a change, with its metadata as it stands.
struct State {
    version: i32,
    custom: Customizations,
    model: Model,
}

impl State {
    async fn lock(conn: &mut AsyncPgConnection, schema: &str) -> Result<State> {
        #[derive(diesel::QueryableByName)]
        struct Version {
            #[diesel(sql_type = Integer)]
            metadata_version: i32,
        }
        let mut query = Sql::raw("SELECT metadata_version FROM ");
        query.table(schema, "workspace_settings").push(" FOR UPDATE");
        let rows: Vec<Version> = query.load(conn).await?;
        let version = rows
            .first()
            .map(|r| r.metadata_version)
            .ok_or_else(|| CrmError::internal(format_args!("{schema}.workspace_settings is empty")))?;
        let custom = Customizations::read(conn, schema).await?;
        let model = custom.model()?;
        Ok(State { version, custom, model })
    }

    async fn reload(&mut self, conn: &mut AsyncPgConnection, schema: &str) -> Result<()> {
        self.custom = Customizations::read(conn, schema).await?;
        self.model = self.custom.model()?;
        Ok(())
    }

    fn object(&self, name: &str, path: &[&str]) -> Result<&ObjectDef> {
        self.model
            .object(name)
            .map(|o| o.as_ref())
            .ok_or_else(|| CrmError::bad_input(path, format!("there is no object {name}")))
    }

    /// A live custom field with its object and definition, or why it
    /// cannot be changed.
    fn custom_field(&self, object: &str, name: &str) -> Result<(ObjectDef, FieldDef, StoredField)> {
        let def = self.object(object, &["object"])?;
        if let Some(stored) = self.custom.field(object, name).filter(|f| f.deleted_at.is_none()) {
            let field = def
                .field(name)
                .cloned()
                .ok_or_else(|| CrmError::internal("a custom field is missing from the model"))?;
            return Ok((def.clone(), field, stored.clone()));
        }
        if def.field(name).is_some() {
            return Err(CrmError::bad_input(
                &["name"],
                format!("{object}.{name} is a standard field: only custom fields can be changed"),
            ));
        }
        Err(CrmError::NotFound {
            object: "Field".into(),
            id: format!("{object}.{name}"),
        })
    }

    fn retained_field(&self, object: &str, name: &str) -> Result<&StoredField> {
        self.custom
            .field(object, name)
            .filter(|f| f.deleted_at.is_some())
            .ok_or_else(|| CrmError::NotFound {
                object: "Deleted field".into(),
                id: format!("{object}.{name}"),
            })
    }
}

/// One change as recorded: `metadata_change` and the audit log.
struct Recorded {
    kind: &'static str,
    object: String,
    field: Option<String>,
    summary: String,
    breaking: bool,
    before: Option<Json>,
    after: Option<Json>,
    /// `CustomField` or `CustomObject`, and the row's id.
    audit_object: &'static str,
    record_id: Uuid,
    action: Action,
}

impl Recorded {
    /// A change of one custom field: `before` is `None` for a new field,
    /// `after` for a purged one.
    fn field(
        kind: &'static str,
        action: Action,
        before: Option<&StoredField>,
        after: Option<&StoredField>,
        breaking: bool,
        summary: String,
    ) -> Recorded {
        let current = after.or(before);
        Recorded {
            kind,
            object: current.map(|f| f.object.clone()).unwrap_or_default(),
            field: current.map(|f| f.name.clone()),
            summary,
            breaking,
            before: before.map(field_json),
            after: after.map(field_json),
            audit_object: "CustomField",
            record_id: current.map(|f| f.id).unwrap_or_default(),
            action,
        }
    }
}

/// Checks the new model, bumps the version, records the change and
/// announces it (delivered when the transaction commits).
async fn finish(conn: &mut AsyncPgConnection, target: &Target<'_>, state: &mut State, record: Recorded) -> Result<i32> {
    state.reload(conn, target.schema).await?;
    (target.check)(&state.model)?;
    let version = state.version + 1;
    let mut bump = Sql::raw("UPDATE ");
    bump.table(target.schema, "workspace_settings")
        .push(" SET metadata_version = ")
        .bind(Bind::Int(Some(version)));
    bump.execute(conn).await?;
    state.version = version;
    if target.replaying {
        return Ok(version);
    }
    let mut log = Sql::raw("INSERT INTO ");
    log.table(target.schema, "metadata_change")
        .push(" (version, actor_id, kind, object, field, summary, breaking, before, after) VALUES (");
    log.bind(Bind::Int(Some(version))).push(", ");
    log.bind(Bind::Uuid(target.trail.actor.as_ref().map(|a| a.user_id)))
        .push(", ");
    log.bind(Bind::Text(Some(record.kind.into()))).push(", ");
    log.bind(Bind::Text(Some(record.object.clone()))).push(", ");
    log.bind(Bind::Text(record.field.clone())).push(", ");
    log.bind(Bind::Text(Some(record.summary.clone()))).push(", ");
    log.bind(Bind::Bool(Some(record.breaking))).push(", ");
    log.bind(Bind::Json(record.before.clone())).push(", ");
    log.bind(Bind::Json(record.after.clone())).push(")");
    log.execute(conn).await?;
    let entry = audit::Entry {
        object: record.audit_object.into(),
        record_id: Some(record.record_id),
        action: record.action,
        changes: definition_changes(record.before.as_ref(), record.after.as_ref()),
    };
    audit::append(conn, target.trail, &[entry]).await?;
    let announcement = Announcement::Metadata {
        workspace: target.trail.workspace.clone(),
        version,
    };
    crate::notify::announce(conn, &announcement).await?;
    Ok(version)
}

/// A change made of many (a promotion, a revert), recorded as one more
/// version of the workspace's metadata.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `PROMOTED`, `PROMOTION_REVERTED`.
    pub kind: &'static str,
    pub summary: String,
    pub breaking: bool,
    pub after: Json,
    /// The promotion's id, for the audit log.
    pub record_id: Uuid,
    pub action: Action,
}

/// Records a batch of changes already made in this transaction: the
/// schema still builds, the version goes up once more, and the history,
/// the audit log and other servers learn of it. Returns the new version.
pub async fn record_batch(conn: &mut AsyncPgConnection, target: &Target<'_>, batch: Batch) -> Result<i32> {
    let mut state = State::lock(conn, target.schema).await?;
    let record = Recorded {
        kind: batch.kind,
        object: "*".into(),
        field: None,
        summary: batch.summary,
        breaking: batch.breaking,
        before: None,
        after: Some(batch.after),
        audit_object: "Promotion",
        record_id: batch.record_id,
        action: batch.action,
    };
    finish(conn, target, &mut state, record).await
}

/// The properties of a definition that differ, for the audit log.
fn definition_changes(before: Option<&Json>, after: Option<&Json>) -> Vec<audit::Change> {
    let empty = serde_json::Map::new();
    let before = before.and_then(Json::as_object).unwrap_or(&empty);
    let after = after.and_then(Json::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = after.keys().collect();
    keys.extend(before.keys().filter(|k| !after.contains_key(*k)));
    keys.into_iter()
        .filter_map(|key| {
            let old = before.get(key).cloned().unwrap_or(Json::Null);
            let new = after.get(key).cloned().unwrap_or(Json::Null);
            (old != new).then(|| audit::Change {
                field: key.clone(),
                before: old,
                after: new,
            })
        })
        .collect()
}

/// A custom field's definition as the API shows it.
pub fn field_json(field: &StoredField) -> Json {
    json!({
        "id": field.id,
        "name": field.name,
        "label": field.label,
        "description": field.description,
        "type": field.r#type,
        "required": field.required,
        "unique": field.is_unique,
        "indexed": field.indexed,
        "defaultValue": field.default_value,
        "options": field.options,
        "lookupObject": field.lookup_object,
        "relationName": field.relation_name,
        "deleted": field.deleted_at.is_some(),
    })
}

/// A custom object's definition as the API shows it.
pub fn object_json(object: &StoredObject) -> Json {
    json!({
        "name": object.name,
        "pluralName": object.plural,
        "label": object.label,
        "pluralLabel": object.plural_label,
        "description": object.description,
        "deleted": object.deleted_at.is_some(),
    })
}

// ---------------------------------------------------------------- fields

/// Adds a custom field to `object`.
pub async fn create_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    spec: FieldSpec,
) -> Result<StoredField> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let stored = add_field(conn, target, &mut state, object, &spec).await?;
        let summary = format!("added {object}.{} ({})", stored.name, stored.r#type);
        let record = Recorded::field(
            "FIELD_CREATED",
            Action::Create,
            None,
            Some(&stored),
            stored.required && stored.default_value.is_none(),
            summary,
        );
        finish(conn, target, &mut state, record).await?;
        Ok(stored)
    })
    .await
}

/// Checks a new field and makes its column, indexes and metadata row.
async fn add_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    state: &mut State,
    object_name: &str,
    spec: &FieldSpec,
) -> Result<StoredField> {
    let schema = target.schema;
    let at = |name: &str| -> Vec<String> {
        let mut path = spec.path.clone();
        path.push(name.into());
        path
    };
    let object = state
        .model
        .object(object_name)
        .cloned()
        .ok_or_else(|| CrmError::bad_input_at(at("object"), format!("there is no object {object_name}")))?;
    if object.schema.is_some() {
        return Err(CrmError::bad_input_at(
            at("object"),
            format!("{object_name} is shared by every workspace and cannot have custom fields"),
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
        personal: super::Personal::of_kind(&kind),
        kind: kind.clone(),
    };
    let default = match &spec.default_value {
        Some(value) => Some((target.value)(&new_field, value, &at("defaultValue"))?),
        None => None,
    };
    let spec = &FieldSpec {
        default_value: default,
        ..spec.clone()
    };
    // Existing records matter only to a required field without a default
    // and to a unique one with a default: counting a big table is not free.
    let counted = (spec.required && spec.default_value.is_none()) || (spec.unique && spec.default_value.is_some());
    let rows = if counted {
        count_rows(conn, schema, &object.table).await?
    } else {
        0
    };
    if spec.required && spec.default_value.is_none() && rows > 0 {
        return Err(CrmError::bad_input_at(
            at("required"),
            format!(
                "{} has {rows} records, which would have no {}: give a defaultValue, or add the field optional, fill it and then make it required",
                object.name, spec.label
            ),
        ));
    }
    if spec.unique && spec.default_value.is_some() && rows > 1 {
        return Err(CrmError::bad_input_at(
            at("defaultValue"),
            format!(
                "{} has {rows} records: a unique field cannot give them all the same default",
                object.name
            ),
        ));
    }
    let column = custom::field_column(&spec.name);
    let mut ddl = alter_table(schema, &object.table);
    ddl.push(" ADD COLUMN ")
        .ident(&column)
        .push(" ")
        .push(custom::column_type(&kind));
    if let FieldKind::Lookup(lookup) = &kind {
        let target = state.object(&lookup.target, &[])?;
        ddl.push(" CONSTRAINT ")
            .ident(&custom::index_name(&object.table, &column, "fkey"));
        ddl.push(" REFERENCES ")
            .table(target.schema_in(schema), &target.table)
            .push(" (id)");
    }
    if let Some(default) = &spec.default_value {
        ddl.push(" DEFAULT ").append(&literal(&kind, default)?);
    }
    if spec.required {
        ddl.push(" NOT NULL");
    }
    ddl.execute(conn).await?;
    let position = state.custom.fields.iter().map(|f| f.position).max().unwrap_or(0) + 1;
    let mut insert = Sql::raw("INSERT INTO ");
    insert.table(schema, "custom_field").push(
        " (object, name, column_name, label, description, type, required, is_unique, indexed, default_value, \
         options, lookup_object, relation_name, position) VALUES (",
    );
    let lookup = kind_lookup(&kind);
    let values = [
        Bind::Text(Some(object.name.clone())),
        Bind::Text(Some(spec.name.clone())),
        Bind::Text(Some(column.clone())),
        Bind::Text(Some(spec.label.clone())),
        Bind::Text(Some(spec.description.clone())),
        Bind::Text(Some(kind.type_name().into())),
        Bind::Bool(Some(spec.required)),
        Bind::Bool(Some(spec.unique)),
        Bind::Bool(Some(spec.indexed)),
        Bind::Json(spec.default_value.clone()),
        Bind::Json(Some(custom::options_json(kind.options().unwrap_or_default()))),
        Bind::Text(lookup.clone().map(|l| l.0)),
        Bind::Text(lookup.and_then(|l| l.1)),
        Bind::Int(Some(position)),
    ];
    insert.binds(values).push(")");
    insert.execute(conn).await?;
    state.reload(conn, schema).await?;
    let def = state
        .model
        .object(object_name)
        .and_then(|o| o.field(&spec.name))
        .cloned()
        .ok_or_else(|| CrmError::internal("a new field is missing from the model"))?;
    create_indexes(conn, schema, &object.table, &def).await?;
    stored_field(state, object_name, &spec.name)
}

fn kind_lookup(kind: &FieldKind) -> Option<(String, Option<String>)> {
    match kind {
        FieldKind::Lookup(lookup) => Some((lookup.target.clone(), lookup.inverse.clone())),
        _ => None,
    }
}

fn stored_field(state: &State, object: &str, name: &str) -> Result<StoredField> {
    state
        .custom
        .field(object, name)
        .cloned()
        .ok_or_else(|| CrmError::internal(format_args!("custom field {object}.{name} vanished")))
}

/// The kind a spec asks for, with its options and lookup checked.
fn spec_kind(
    state: &State,
    object: &ObjectDef,
    spec: &FieldSpec,
    at: &dyn Fn(&str) -> Vec<String>,
) -> Result<FieldKind> {
    let kind = custom::kind_of(
        &spec.type_name,
        spec.options.clone(),
        spec.lookup_object.as_deref(),
        None,
        &spec.label,
    );
    let kind = match kind {
        Some(kind) => kind,
        None if spec.type_name == "LOOKUP" => {
            return Err(CrmError::bad_input_at(
                at("lookupObject"),
                "a lookup needs lookupObject: the object it refers to",
            ))
        }
        None => {
            return Err(CrmError::bad_input_at(
                at("type"),
                format!("{} is not a field type", spec.type_name),
            ))
        }
    };
    if let Some(options) = kind.options() {
        check_options(options, at("options"))?;
    } else if !spec.options.is_empty() {
        return Err(CrmError::bad_input_at(at("options"), "only picklists have options"));
    }
    if spec.lookup_object.is_some() && !matches!(kind, FieldKind::Lookup(_)) {
        return Err(CrmError::bad_input_at(
            at("lookupObject"),
            "only lookups refer to an object",
        ));
    }
    let FieldKind::Lookup(mut lookup) = kind else {
        if spec.relation_name.is_some() {
            return Err(CrmError::bad_input_at(
                at("relationName"),
                "only lookups have a relation name",
            ));
        }
        return Ok(kind);
    };
    let target = state
        .object(&lookup.target, &[])
        .map_err(|_| CrmError::bad_input_at(at("lookupObject"), format!("there is no object {}", lookup.target)))?;
    let relation = match &spec.relation_name {
        Some(name) => name.clone(),
        None => object.plural.clone(),
    };
    custom::check_field_name(&relation).map_err(|why| CrmError::bad_input_at(at("relationName"), why))?;
    let mut clash = field_names(&state.model, target);
    if target.name == object.name {
        clash.push(spec.name.clone());
        clash.push(format!("{}Id", spec.name));
    }
    if clash.iter().any(|n| n.eq_ignore_ascii_case(&relation)) {
        let hint = if spec.relation_name.is_none() {
            " (the default, the plural of this object); choose another relationName"
        } else {
            ""
        };
        return Err(CrmError::bad_input_at(
            at("relationName"),
            format!("{} already has a field {relation}{hint}", target.name),
        ));
    }
    lookup.inverse = Some(relation);
    Ok(FieldKind::Lookup(lookup))
}

/// Every name `object` answers to in the API: fields, lookup id keys,
/// related lists and `history`.
fn field_names(model: &Model, object: &ObjectDef) -> Vec<String> {
    let mut names: Vec<String> = object
        .fields
        .iter()
        .flat_map(|f| [f.name.clone(), f.value_key()])
        .collect();
    names.extend(model.inverse_relations(&object.name).into_iter().map(|r| r.name));
    names.push("history".into());
    names
}

/// Refuses a name another field, list or retained field of `object` has
/// (case-insensitively).
fn check_free_name(state: &State, object: &ObjectDef, name: &str, at: Vec<String>) -> Result<()> {
    let id_key = format!("{name}Id");
    if let Some(taken) = field_names(&state.model, object)
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(&id_key))
    {
        return Err(CrmError::bad_input_at(
            at,
            format!("{} already has a field {taken}", object.name),
        ));
    }
    if let Some(retained) = state
        .custom
        .fields
        .iter()
        .find(|f| f.object == object.name && f.deleted_at.is_some() && f.name.eq_ignore_ascii_case(name))
    {
        return Err(CrmError::bad_input_at(
            at,
            format!(
                "the deleted field {}.{} keeps this name until it is purged: restore it, or purge it first",
                object.name, retained.name
            ),
        ));
    }
    Ok(())
}

fn check_label(label: &str, at: Vec<String>) -> Result<()> {
    if label.trim().is_empty() {
        return Err(CrmError::bad_input_at(at, "a label must not be empty"));
    }
    if label.chars().count() > 255 || label.contains('\0') {
        return Err(CrmError::bad_input_at(
            at,
            "a label is at most 255 characters, without NUL",
        ));
    }
    Ok(())
}

/// Which kinds may be unique, indexed and have a default.
fn check_flags(
    kind: &FieldKind,
    unique: bool,
    indexed: bool,
    default: &Option<Json>,
    at: &dyn Fn(&str) -> Vec<String>,
) -> Result<()> {
    let name = kind.type_name();
    if unique
        && matches!(
            kind,
            FieldKind::LongText | FieldKind::MultiPicklist(_) | FieldKind::Json | FieldKind::Boolean
        )
    {
        return Err(CrmError::bad_input_at(
            at("unique"),
            format!("a {name} field cannot be unique"),
        ));
    }
    if indexed && matches!(kind, FieldKind::LongText) {
        return Err(CrmError::bad_input_at(
            at("indexed"),
            "a LONG_TEXT field cannot be indexed",
        ));
    }
    if default.is_some() && matches!(kind, FieldKind::Lookup(_)) {
        return Err(CrmError::bad_input_at(
            at("defaultValue"),
            "a lookup cannot have a default",
        ));
    }
    Ok(())
}

fn check_options(options: &[PicklistOption], at: Vec<String>) -> Result<()> {
    if options.is_empty() {
        return Err(CrmError::bad_input_at(at, "a picklist needs at least one option"));
    }
    if options.len() > 1000 {
        return Err(CrmError::bad_input_at(at, "a picklist has at most 1000 options"));
    }
    for (i, option) in options.iter().enumerate() {
        let mut item = at.clone();
        item.push(i.to_string());
        custom::check_option_value(&option.value).map_err(|why| {
            let mut path = item.clone();
            path.push("value".into());
            CrmError::bad_input_at(path, why)
        })?;
        if options[..i].iter().any(|o| o.value == option.value) {
            return Err(CrmError::bad_input_at(
                item,
                format!("{} is listed twice", option.value),
            ));
        }
        let mut label_at = item.clone();
        label_at.push("label".into());
        check_label(&option.label, label_at)?;
    }
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
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let (object_def, field, before) = state.custom_field(object, name)?;
        let at = |key: &str| vec!["input".to_owned(), key.to_owned()];
        let table = object_def.table.clone();
        let mut sets: Vec<(&str, Bind)> = Vec::new();
        let mut breaking = false;
        if let Some(label) = &patch.label {
            check_label(label, at("label"))?;
            sets.push(("label", Bind::Text(Some(label.clone()))));
        }
        if let Some(description) = &patch.description {
            sets.push(("description", Bind::Text(Some(description.clone()))));
        }
        let mut kind = field.kind.clone();
        let mut default = before.default_value.clone();
        let mut applied_renames = Renames::new();
        if let Some(options) = &patch.options {
            let Some(current) = field.kind.options() else {
                return Err(CrmError::bad_input(&["input", "options"], "only picklists have options"));
            };
            let (new_options, renames) = merged_options(current, options)?;
            applied_renames.clone_from(&renames);
            for (old, new) in &renames {
                rename_option(conn, target.schema, &table, &field, old, new).await?;
                default = default.map(|value| renamed_in(value, old, new));
            }
            breaking |= !renames.is_empty();
            kind = match kind {
                FieldKind::MultiPicklist(_) => FieldKind::MultiPicklist(new_options.clone()),
                _ => FieldKind::Picklist(new_options.clone()),
            };
            sets.push(("options", Bind::Json(Some(custom::options_json(&new_options)))));
        }
        if let Some(new_default) = &patch.default_value {
            let mut typed = field.clone();
            typed.kind = kind.clone();
            default = match new_default {
                Some(value) => {
                    let at = vec!["input".to_owned(), "defaultValue".to_owned()];
                    Some((target.value)(&typed, value, &at)?)
                }
                None => None,
            };
        }
        // A default must stay a live value of the (possibly new) options.
        if let (Some(value), Some(options)) = (&default, kind.options()) {
            let values: Vec<&str> = match value {
                Json::Array(items) => items.iter().filter_map(Json::as_str).collect(),
                other => other.as_str().into_iter().collect(),
            };
            if let Some(retired) = values
                .into_iter()
                .find(|v| !options.iter().any(|o| o.value == *v && o.active))
            {
                return Err(CrmError::bad_input(
                    &["input", "defaultValue"],
                    format!("the default {retired} is not an active option: change the default too"),
                ));
            }
        }
        if default != before.default_value {
            let mut ddl = alter_table(target.schema, &table);
            ddl.push(" ALTER COLUMN ").ident(&field.column);
            match &default {
                Some(value) => {
                    check_flags(&kind, false, false, &default, &at)?;
                    ddl.push(" SET DEFAULT ").append(&literal(&kind, value)?)
                }
                None => ddl.push(" DROP DEFAULT"),
            };
            ddl.execute(conn).await?;
            sets.push(("default_value", Bind::Json(default.clone())));
        }
        if let Some(required) = patch.required.filter(|r| *r != before.required) {
            let mut ddl = alter_table(target.schema, &table);
            ddl.push(" ALTER COLUMN ").ident(&field.column);
            if required {
                let mut violating = Sql::new();
                violating.ident(&field.column).push(" IS NULL");
                let (count, samples) = violations(conn, target.schema, &table, violating).await?;
                if count > 0 {
                    return Err(CrmError::DataConflict {
                        message: format!(
                            "{count} {} records have no {}: fill them before making it required",
                            object_def.name, field.label
                        ),
                        field: at("required"),
                        count,
                        sample_ids: samples,
                    });
                }
                ddl.push(" SET NOT NULL");
                breaking = true;
            } else {
                ddl.push(" DROP NOT NULL");
            }
            ddl.execute(conn).await?;
            sets.push(("required", Bind::Bool(Some(required))));
        }
        let unique = patch.unique.unwrap_or(before.is_unique);
        let indexed = patch.indexed.unwrap_or(before.indexed);
        check_flags(&kind, unique, indexed, &None, &at)?;
        if unique && !before.is_unique {
            let mut violating = Sql::new();
            violating.ident(&field.column).push(" IN (SELECT ").ident(&field.column);
            violating.push(" FROM ").table(target.schema, &table);
            violating.push(" GROUP BY ").ident(&field.column).push(" HAVING count(*) > 1)");
            let (count, samples) = violations(conn, target.schema, &table, violating).await?;
            if count > 0 {
                return Err(CrmError::DataConflict {
                    message: format!(
                        "{count} {} records share their {} with another: make the values distinct before making it unique",
                        object_def.name, field.label
                    ),
                    field: at("unique"),
                    count,
                    sample_ids: samples,
                });
            }
        }
        if unique != before.is_unique || indexed != before.indexed {
            sets.push(("is_unique", Bind::Bool(Some(unique))));
            sets.push(("indexed", Bind::Bool(Some(indexed))));
            let mut changed = field.clone();
            changed.unique = unique;
            changed.indexed = indexed || unique || matches!(kind, FieldKind::Lookup(_));
            changed.kind = kind.clone();
            drop_indexes(conn, target.schema, &table, &field.column).await?;
            create_indexes(conn, target.schema, &table, &changed).await?;
        }
        if sets.is_empty() {
            return Err(CrmError::bad_input(&["input"], "input changes nothing"));
        }
        update_row(conn, target.schema, "custom_field", before.id, sets).await?;
        state.reload(conn, target.schema).await?;
        let after = stored_field(&state, object, name)?;
        let mut record = Recorded::field(
            "FIELD_UPDATED",
            Action::Update,
            Some(&before),
            Some(&after),
            breaking,
            format!("changed {object}.{name}"),
        );
        if !applied_renames.is_empty() {
            // A promotion replays renames: records follow the new value.
            let renames: Vec<Json> = applied_renames
                .iter()
                .map(|(from, to)| json!({ "from": from, "to": to }))
                .collect();
            if let Some(Json::Object(after)) = &mut record.after {
                after.insert("renamedOptions".into(), Json::Array(renames));
            }
        }
        finish(conn, target, &mut state, record).await?;
        Ok(after)
    })
    .await
}

/// The new option list of an update, and the values it renames. Every
/// current value must be listed: options are deactivated, not removed,
/// because records hold them.
fn merged_options(current: &[PicklistOption], specs: &[OptionSpec]) -> Result<(Vec<PicklistOption>, Renames)> {
    let at = |i: usize, key: &str| vec!["input".to_owned(), "options".to_owned(), i.to_string(), key.to_owned()];
    let mut out = Vec::with_capacity(specs.len());
    let mut renames = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let previous = spec.renamed_from.as_deref().unwrap_or(&spec.value);
        let existing = current.iter().find(|o| o.value == previous);
        if spec.renamed_from.is_some() && existing.is_none() {
            return Err(CrmError::bad_input_at(
                at(i, "renamedFrom"),
                format!("{previous} is not a value of this picklist"),
            ));
        }
        if let Some(from) = &spec.renamed_from {
            if from != &spec.value {
                if current.iter().any(|o| o.value == spec.value) {
                    return Err(CrmError::bad_input_at(
                        at(i, "value"),
                        format!("{} is already a value of this picklist", spec.value),
                    ));
                }
                renames.push((from.clone(), spec.value.clone()));
            }
        }
        let label = spec
            .label
            .clone()
            .or_else(|| existing.map(|o| o.label.clone()))
            .unwrap_or_else(|| spec.value.clone());
        out.push(PicklistOption {
            value: spec.value.clone(),
            label,
            active: spec.active,
        });
    }
    check_options(&out, vec!["input".into(), "options".into()])?;
    for option in current {
        let kept = specs
            .iter()
            .any(|s| s.renamed_from.as_deref().unwrap_or(&s.value) == option.value);
        if !kept {
            return Err(CrmError::bad_input(
                &["input", "options"],
                format!(
                    "{} is missing: list every current value (set active: false to retire one, renamedFrom to rename one)",
                    option.value
                ),
            ));
        }
    }
    Ok((out, renames))
}

/// A picklist default (a value or a list of values) with `old` renamed to `new`.
fn renamed_in(value: Json, old: &str, new: &str) -> Json {
    match value {
        Json::String(s) if s == old => Json::String(new.to_owned()),
        Json::Array(items) => Json::Array(items.into_iter().map(|item| renamed_in(item, old, new)).collect()),
        other => other,
    }
}

/// Rewrites the records holding a renamed picklist value.
async fn rename_option(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &str,
    field: &FieldDef,
    old: &str,
    new: &str,
) -> Result<()> {
    let mut query = Sql::raw("UPDATE ");
    query.table(schema, table).push(" SET ").ident(&field.column);
    if matches!(field.kind, FieldKind::MultiPicklist(_)) {
        query.push(" = array_replace(").ident(&field.column).push(", ");
        query
            .bind(Bind::Text(Some(old.into())))
            .push(", ")
            .bind(Bind::Text(Some(new.into())));
        query
            .push(") WHERE ")
            .bind(Bind::Text(Some(old.into())))
            .push(" = ANY(")
            .ident(&field.column)
            .push(")");
    } else {
        query.push(" = ").bind(Bind::Text(Some(new.into())));
        query
            .push(" WHERE ")
            .ident(&field.column)
            .push(" = ")
            .bind(Bind::Text(Some(old.into())));
    }
    query.execute(conn).await?;
    Ok(())
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
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let (object_def, _, before) = state.custom_field(object, name)?;
        custom::check_field_name(new_name).map_err(|why| CrmError::bad_input(&["newName"], why))?;
        if new_name == name {
            return Err(CrmError::bad_input(&["newName"], "the new name is the current one"));
        }
        // The field's own names do not block a change of case.
        let mut others = object_def.clone();
        others.fields.retain(|f| f.name != name);
        check_free_name(&state, &others, new_name, vec!["newName".into()])?;
        let old_column = before.column_name.clone();
        let new_column = custom::field_column(new_name);
        let table = object_def.table.clone();
        let mut ddl = alter_table(target.schema, &table);
        ddl.push(" RENAME COLUMN ")
            .ident(&old_column)
            .push(" TO ")
            .ident(&new_column);
        ddl.execute(conn).await?;
        for suffix in ["key", "idx"] {
            let mut rename = Sql::raw("ALTER INDEX IF EXISTS ");
            rename.table(target.schema, &custom::index_name(&table, &old_column, suffix));
            rename
                .push(" RENAME TO ")
                .ident(&custom::index_name(&table, &new_column, suffix));
            rename.execute(conn).await?;
        }
        if before.r#type == "LOOKUP" {
            let mut rename = alter_table(target.schema, &table);
            rename
                .push(" RENAME CONSTRAINT ")
                .ident(&custom::index_name(&table, &old_column, "fkey"));
            rename
                .push(" TO ")
                .ident(&custom::index_name(&table, &new_column, "fkey"));
            rename.execute(conn).await?;
        }
        update_row(
            conn,
            target.schema,
            "custom_field",
            before.id,
            vec![
                ("name", Bind::Text(Some(new_name.into()))),
                ("column_name", Bind::Text(Some(new_column))),
            ],
        )
        .await?;
        state.reload(conn, target.schema).await?;
        let after = stored_field(&state, object, new_name)?;
        let record = Recorded::field(
            "FIELD_RENAMED",
            Action::Update,
            Some(&before),
            Some(&after),
            true,
            format!("renamed {object}.{name} to {object}.{new_name}: clients using {name} must change"),
        );
        finish(conn, target, &mut state, record).await?;
        Ok(after)
    })
    .await
}

/// What changing a field's type would do, without changing anything.
pub async fn preview_type_change(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &str,
    name: &str,
    change: &TypeChange,
) -> Result<Preview> {
    let custom = Customizations::read(conn, schema).await?;
    let state = State {
        version: 0,
        model: custom.model()?,
        custom,
    };
    let (object_def, field, stored) = state.custom_field(object, name)?;
    let kind = new_kind(&field, change)?;
    let retype = Retype::new(conn, schema, &object_def.table, stored.id, &field, &kind).await?;
    preview(conn, &object_def, &retype).await
}

/// Counts what a type change does to each record's value: converts it
/// exactly, loses information of it, cannot convert it, or gives back its
/// value from before the type change it undoes.
async fn preview(conn: &mut AsyncPgConnection, object: &ObjectDef, retype: &Retype<'_>) -> Result<Preview> {
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        with_value: i64,
        #[diesel(sql_type = BigInt)]
        invalid: i64,
        #[diesel(sql_type = BigInt)]
        lossy: i64,
        #[diesel(sql_type = BigInt)]
        restored: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct Sample {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        value: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Lossy {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        value: String,
        #[diesel(sql_type = Text)]
        converted: String,
    }
    let (schema, field, kind) = (retype.schema, retype.field, retype.kind);
    let converted = conversion(field, kind).map_err(|why| CrmError::bad_input(&["newType"], why))?;
    let restorable = retype.restorable();
    let mut kept = Sql::raw(" AND NOT (");
    kept.append(&restorable).push(")");
    let mut invalid = Sql::new();
    invalid
        .ident(&field.column)
        .push(" IS NOT NULL AND (")
        .append(&converted)
        .push(") IS NULL")
        .append(&kept);
    let loss = conversion::loss(field, kind);
    let mut lossy = Sql::new();
    match &loss {
        Some((lost, _)) => {
            lossy
                .ident(&field.column)
                .push(" IS NOT NULL AND (")
                .append(&converted)
                .push(") IS NOT NULL AND (");
            lossy.append(lost).push(")").append(&kept);
        }
        None => {
            lossy.push("false");
        }
    }
    let from = |sql: &mut Sql| {
        sql.push(" FROM ").table(schema, &object.table).push(" AS t");
    };
    let mut counts = Sql::raw("SELECT count(*) FILTER (WHERE ");
    counts
        .ident(&field.column)
        .push(" IS NOT NULL) AS with_value, count(*) FILTER (WHERE ");
    counts.append(&invalid).push(") AS invalid, count(*) FILTER (WHERE ");
    counts.append(&lossy).push(") AS lossy, count(*) FILTER (WHERE ");
    counts.append(&restorable).push(") AS restored");
    from(&mut counts);
    let counts: Vec<Counts> = counts.load(conn).await?;
    let (with_value, invalid_count, lossy_count, restored) = counts
        .first()
        .map(|c| (c.with_value, c.invalid, c.lossy, c.restored))
        .unwrap_or_default();
    let mut samples = Sql::raw("SELECT t.id::text AS id, ");
    samples.append(&text_of(field)).push(" AS value");
    from(&mut samples);
    samples
        .push(" WHERE ")
        .append(&invalid)
        .push(" ORDER BY t.id LIMIT ")
        .push(&SAMPLES.to_string());
    let samples: Vec<Sample> = if invalid_count > 0 {
        samples.load(conn).await?
    } else {
        Vec::new()
    };
    let lossy_samples: Vec<Lossy> = if lossy_count > 0 {
        let mut query = Sql::raw("SELECT t.id::text AS id, ");
        query.append(&text_of(field)).push(" AS value, to_jsonb(");
        query.append(&converted).push(") #>> '{}' AS converted");
        from(&mut query);
        query
            .push(" WHERE ")
            .append(&lossy)
            .push(" ORDER BY t.id LIMIT ")
            .push(&SAMPLES.to_string());
        query.load(conn).await?
    } else {
        Vec::new()
    };
    Ok(Preview {
        object: object.name.clone(),
        field: field.name.clone(),
        from: field.kind.type_name().into(),
        to: kind.type_name().into(),
        with_value,
        convertible: with_value - invalid_count,
        invalid: invalid_count,
        samples: samples.into_iter().map(|s| (s.id, s.value)).collect(),
        lossy: lossy_count,
        loses: loss.map(|(_, what)| what),
        lossy_samples: lossy_samples
            .into_iter()
            .map(|s| LossyValue {
                record_id: s.id,
                value: s.value,
                converted: s.converted,
            })
            .collect(),
        restored,
        rewrites_table: custom::column_type(&field.kind) != custom::column_type(kind),
    })
}

fn new_kind(field: &FieldDef, change: &TypeChange) -> Result<FieldKind> {
    let kind = custom::kind_of(&change.type_name, change.options.clone(), None, None, &field.label).ok_or_else(
        || match change.type_name.as_str() {
            "LOOKUP" => CrmError::bad_input(&["newType"], "a field cannot become a lookup: add a lookup field"),
            other => CrmError::bad_input(&["newType"], format!("{other} is not a field type")),
        },
    )?;
    if let Some(options) = kind.options() {
        check_options(options, vec!["options".into()])?;
    }
    if kind.type_name() == field.kind.type_name() {
        return Err(CrmError::bad_input(
            &["newType"],
            format!("{} is already {}", field.name, kind.type_name()),
        ));
    }
    Ok(kind)
}

/// Changes a custom field's type, converting its values. Values that do
/// not convert refuse the change (`FAIL`) or are cleared (`SET_NULL`);
/// values that would lose information refuse it unless accepted. Every
/// value it changes is kept, so changing the type back restores the
/// records not changed since.
pub async fn change_type(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
    change: TypeChange,
) -> Result<TypeChanged> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let (object_def, field, before) = state.custom_field(object, name)?;
        let kind = new_kind(&field, &change)?;
        let table = object_def.table.clone();
        let retype = Retype::new(conn, target.schema, &table, before.id, &field, &kind).await?;
        let preview = preview(conn, &object_def, &retype).await?;
        if preview.invalid > 0 && (change.on_invalid == OnInvalid::Fail || field.required) {
            let why = if field.required {
                "the field is required, so they cannot be cleared: make it optional first"
            } else {
                "pass onInvalid: SET_NULL to clear them"
            };
            return Err(CrmError::DataConflict {
                message: format!(
                    "{} of {} {} values do not convert to {}; {why}",
                    preview.invalid, preview.with_value, field.label, preview.to
                ),
                field: vec!["newType".into()],
                count: preview.invalid,
                sample_ids: preview.samples.iter().map(|s| s.0.clone()).collect(),
            });
        }
        if preview.lossy > 0 && change.on_lossy == OnLossy::Refuse {
            return Err(CrmError::LossyChange {
                message: format!(
                    "{}; pass onLossy: ACCEPT to convert them anyway",
                    lossy_summary(&preview, &field.label)
                ),
                field: vec!["onLossy".into()],
                count: preview.lossy,
                sample_ids: preview.lossy_samples.iter().map(|s| s.record_id.clone()).collect(),
            });
        }
        let unique = before.is_unique && check_flags(&kind, true, false, &None, &|_| vec![]).is_ok();
        let indexed = before.indexed && check_flags(&kind, false, true, &None, &|_| vec![]).is_ok();
        let converted = conversion(&field, &kind).map_err(|why| CrmError::bad_input(&["newType"], why))?;
        // The version `finish` gives this change names its kept values.
        let version = state.version + 1;
        retype.keep(conn, version, &converted, preview.rewrites_table).await?;
        drop_indexes(conn, target.schema, &table, &field.column).await?;
        if before.default_value.is_some() {
            let mut ddl = alter_table(target.schema, &table);
            ddl.push(" ALTER COLUMN ").ident(&field.column).push(" DROP DEFAULT");
            ddl.execute(conn).await?;
        }
        if preview.rewrites_table {
            let mut ddl = alter_table(target.schema, &table);
            ddl.push(" ALTER COLUMN ").ident(&field.column).push(" TYPE ");
            ddl.push(custom::column_type(&kind))
                .push(" USING (")
                .append(&converted)
                .push(")");
            ddl.execute(conn).await?;
        } else {
            let mut update = Sql::raw("UPDATE ");
            update
                .table(target.schema, &table)
                .push(" AS t SET ")
                .ident(&field.column)
                .push(" = ");
            update
                .append(&converted)
                .push(" WHERE ")
                .ident(&field.column)
                .push(" IS DISTINCT FROM (");
            update.append(&converted).push(")");
            update.execute(conn).await?;
        }
        retype.restore(conn, version).await?;
        let mut changed = field.clone();
        changed.kind = kind.clone();
        changed.unique = unique;
        changed.indexed = indexed || unique;
        create_indexes(conn, target.schema, &table, &changed).await?;
        update_row(
            conn,
            target.schema,
            "custom_field",
            before.id,
            vec![
                ("type", Bind::Text(Some(kind.type_name().into()))),
                (
                    "options",
                    Bind::Json(Some(custom::options_json(kind.options().unwrap_or_default()))),
                ),
                ("default_value", Bind::Json(None)),
                ("is_unique", Bind::Bool(Some(unique))),
                ("indexed", Bind::Bool(Some(indexed))),
            ],
        )
        .await?;
        state.reload(conn, target.schema).await?;
        let after = stored_field(&state, object, name)?;
        let record = Recorded::field(
            "FIELD_TYPE_CHANGED",
            Action::Update,
            Some(&before),
            Some(&after),
            true,
            format!(
                "changed the type of {object}.{name} from {} to {} ({} values cleared, {} lossy, {} restored)",
                preview.from, preview.to, preview.invalid, preview.lossy, preview.restored
            ),
        );
        finish(conn, target, &mut state, record).await?;
        Ok(TypeChanged { field: after, preview })
    })
    .await
}

/// The lossy values of a type change in words: how many, what they lose,
/// and one of them (`1 of 2 Closed at values would lose the time of day
/// converting to DATE, e.g. 2026-03-01T15:45:30Z → 2026-03-01`).
pub fn lossy_summary(preview: &Preview, label: &str) -> String {
    let example = preview
        .lossy_samples
        .first()
        .map(|s| format!(", e.g. {} → {}", s.value, s.converted))
        .unwrap_or_default();
    format!(
        "{} of {} {label} values would lose {} converting to {}{example}",
        preview.lossy,
        preview.with_value,
        preview.loses.unwrap_or("information"),
        preview.to
    )
}

/// Hides a custom field from the API at once; its column keeps the data
/// until `purge_field`, so `restore_field` can bring it back.
pub async fn delete_field(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
) -> Result<StoredField> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let (object_def, _, before) = state.custom_field(object, name)?;
        let table = object_def.table;
        if before.required {
            // New records cannot name it any more.
            let mut ddl = alter_table(target.schema, &table);
            ddl.push(" ALTER COLUMN ")
                .ident(&before.column_name)
                .push(" DROP NOT NULL");
            ddl.execute(conn).await?;
        }
        let mut query = Sql::raw("UPDATE ");
        query
            .table(target.schema, "custom_field")
            .push(" SET deleted_at = now(), updated_at = now() WHERE id = ");
        query.bind(Bind::Uuid(Some(before.id)));
        query.execute(conn).await?;
        state.reload(conn, target.schema).await?;
        let after = stored_field(&state, object, name)?;
        let record = Recorded::field(
            "FIELD_DELETED",
            Action::Delete,
            Some(&before),
            Some(&after),
            true,
            format!("deleted {object}.{name} (its data is kept until it is purged)"),
        );
        finish(conn, target, &mut state, record).await?;
        Ok(after)
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
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let object_def = state.object(object, &["object"])?.clone();
        let before = state.retained_field(object, name)?.clone();
        let mut sets = vec![("deleted_at", Bind::DateTime(None))];
        if before.required {
            let mut missing = Sql::new();
            missing.ident(&before.column_name).push(" IS NULL");
            let (count, _) = violations(conn, target.schema, &object_def.table, missing).await?;
            if count == 0 {
                let mut ddl = alter_table(target.schema, &object_def.table);
                ddl.push(" ALTER COLUMN ")
                    .ident(&before.column_name)
                    .push(" SET NOT NULL");
                ddl.execute(conn).await?;
            } else {
                sets.push(("required", Bind::Bool(Some(false))));
            }
        }
        update_row(conn, target.schema, "custom_field", before.id, sets).await?;
        state.reload(conn, target.schema).await?;
        let after = stored_field(&state, object, name)?;
        let record = Recorded::field(
            "FIELD_RESTORED",
            Action::Restore,
            Some(&before),
            Some(&after),
            false,
            format!("restored {object}.{name}"),
        );
        finish(conn, target, &mut state, record).await?;
        Ok(after)
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
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let before = state.retained_field(object, name)?.clone();
        let table = match state.custom.object(object) {
            Some(stored) => stored.table_name.clone(),
            None => state.object(object, &["object"])?.table.clone(),
        };
        let mut ddl = alter_table(target.schema, &table);
        ddl.push(" DROP COLUMN ").ident(&before.column_name);
        ddl.execute(conn).await?;
        conversion::forget(conn, target.schema, vec![before.id]).await?;
        let mut delete = Sql::raw("DELETE FROM ");
        delete
            .table(target.schema, "custom_field")
            .push(" WHERE id = ")
            .bind(Bind::Uuid(Some(before.id)));
        delete.execute(conn).await?;
        let record = Recorded::field(
            "FIELD_PURGED",
            Action::Purge,
            Some(&before),
            None,
            false,
            format!("purged {object}.{name} and its data"),
        );
        finish(conn, target, &mut state, record).await?;
        Ok(before)
    })
    .await
}

// --------------------------------------------------------------- objects

/// Makes a custom object: its table, with every standard record field
/// (id, timestamps, version, externalId, owner, createdBy, name), and its
/// first custom fields, in one change.
pub async fn create_object(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    spec: ObjectSpec,
) -> Result<StoredObject> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let at = |key: &str| vec!["input".to_owned(), key.to_owned()];
        custom::check_object_name(&spec.name).map_err(|why| CrmError::bad_input_at(at("name"), why))?;
        let plural = spec.plural.clone().unwrap_or_else(|| custom::plural_of(&spec.name));
        custom::check_field_name(&plural).map_err(|why| CrmError::bad_input_at(at("pluralName"), why))?;
        if plural == super::lower_first(&spec.name) {
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
                .any(|n| n.eq_ignore_ascii_case(&plural) || n.eq_ignore_ascii_case(&super::lower_first(&spec.name)))
            {
                return Err(CrmError::bad_input_at(
                    at("pluralName"),
                    format!("{} already uses the query names of {plural}", existing.name),
                ));
            }
        }
        if let Some(retained) = state.custom.objects.iter().find(|o| {
            o.deleted_at.is_some()
                && (o.name.eq_ignore_ascii_case(&spec.name) || o.plural.eq_ignore_ascii_case(&plural))
        }) {
            return Err(CrmError::bad_input_at(
                at("name"),
                format!(
                    "the deleted object {} keeps this name until it is purged: restore it, or purge it first",
                    retained.name
                ),
            ));
        }
        let table = custom::object_table(&spec.name);
        create_table(conn, target.schema, &table).await?;
        let mut insert = Sql::raw("INSERT INTO ");
        insert
            .table(target.schema, "custom_object")
            .push(" (name, plural, table_name, label, plural_label, description) VALUES (");
        insert.bind(Bind::Text(Some(spec.name.clone()))).push(", ");
        insert.bind(Bind::Text(Some(plural.clone()))).push(", ");
        insert.bind(Bind::Text(Some(table.clone()))).push(", ");
        insert.bind(Bind::Text(Some(spec.label.clone()))).push(", ");
        insert.bind(Bind::Text(Some(spec.plural_label.clone()))).push(", ");
        insert.bind(Bind::Text(Some(spec.description.clone()))).push(")");
        insert.execute(conn).await?;
        state.reload(conn, target.schema).await?;
        for field in &spec.fields {
            add_field(conn, target, &mut state, &spec.name, field).await?;
        }
        let stored = state
            .custom
            .object(&spec.name)
            .cloned()
            .ok_or_else(|| CrmError::internal("a new object is missing"))?;
        let mut after = object_json(&stored);
        after["fields"] = Json::Array(spec.fields.iter().map(|f| Json::String(f.name.clone())).collect());
        let record = Recorded {
            kind: "OBJECT_CREATED",
            object: spec.name.clone(),
            field: None,
            summary: format!(
                "added the object {} with {} custom fields",
                spec.name,
                spec.fields.len()
            ),
            breaking: false,
            before: None,
            after: Some(after),
            audit_object: "CustomObject",
            record_id: stored.id,
            action: Action::Create,
        };
        finish(conn, target, &mut state, record).await?;
        Ok(stored)
    })
    .await
}

async fn create_table(conn: &mut AsyncPgConnection, schema: &str, table: &str) -> Result<()> {
    let mut ddl = Sql::raw("CREATE TABLE ");
    ddl.table(schema, table).push(
        " (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
         created_at timestamptz NOT NULL DEFAULT now(), \
         updated_at timestamptz NOT NULL DEFAULT now(), \
         version integer NOT NULL DEFAULT 1, \
         deleted_at timestamptz, \
         external_id text, \
         owner_id uuid REFERENCES crm_system.users (id), \
         created_by uuid REFERENCES crm_system.users (id), \
         name text NOT NULL CHECK (length(name) BETWEEN 1 AND 255), CONSTRAINT ",
    );
    // The standard columns' names are the ones Postgres gives, as on the
    // standard objects' tables.
    ddl.ident(&format!("{table}_external_id_key"))
        .push(" UNIQUE (external_id))");
    ddl.execute(conn).await?;
    for (columns, suffix) in [
        ("(created_at, id)", "created_at_idx"),
        ("(name, id)", "name_idx"),
        ("(owner_id)", "owner_id_idx"),
    ] {
        let mut index = Sql::raw("CREATE INDEX ");
        index
            .ident(&format!("{table}_{suffix}"))
            .push(" ON ")
            .table(schema, table)
            .push(" ")
            .push(columns);
        index.execute(conn).await?;
    }
    Ok(())
}

/// Changes a custom object's labels and description.
pub async fn update_object(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    name: &str,
    patch: ObjectPatch,
) -> Result<StoredObject> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let before = live_custom_object(&state, name)?.clone();
        let mut sets = Vec::new();
        if let Some(label) = &patch.label {
            check_label(label, vec!["input".into(), "label".into()])?;
            sets.push(("label", Bind::Text(Some(label.clone()))));
        }
        if let Some(label) = &patch.plural_label {
            check_label(label, vec!["input".into(), "pluralLabel".into()])?;
            sets.push(("plural_label", Bind::Text(Some(label.clone()))));
        }
        if let Some(description) = &patch.description {
            sets.push(("description", Bind::Text(Some(description.clone()))));
        }
        if sets.is_empty() {
            return Err(CrmError::bad_input(&["input"], "input changes nothing"));
        }
        update_row(conn, target.schema, "custom_object", before.id, sets).await?;
        state.reload(conn, target.schema).await?;
        let after = state
            .custom
            .object(name)
            .cloned()
            .ok_or_else(|| CrmError::internal("object vanished"))?;
        let record = Recorded {
            kind: "OBJECT_UPDATED",
            object: name.into(),
            field: None,
            summary: format!("changed the object {name}"),
            breaking: false,
            before: Some(object_json(&before)),
            after: Some(object_json(&after)),
            audit_object: "CustomObject",
            record_id: after.id,
            action: Action::Update,
        };
        finish(conn, target, &mut state, record).await?;
        Ok(after)
    })
    .await
}

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
    set_object_deleted(conn, target, name, true).await
}

/// Brings a deleted custom object back with its records.
pub async fn restore_object(conn: &mut AsyncPgConnection, target: &Target<'_>, name: &str) -> Result<StoredObject> {
    set_object_deleted(conn, target, name, false).await
}

async fn set_object_deleted(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    name: &str,
    delete: bool,
) -> Result<StoredObject> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let before = if delete {
            let stored = live_custom_object(&state, name)?.clone();
            let referring = lookups_to(&state, name, true);
            if !referring.is_empty() {
                return Err(CrmError::bad_input(
                    &["name"],
                    format!("{} refer to {name}: delete those lookups first", referring.join(", ")),
                ));
            }
            stored
        } else {
            let stored = state
                .custom
                .object(name)
                .filter(|o| o.deleted_at.is_some())
                .cloned()
                .ok_or_else(|| CrmError::NotFound {
                    object: "Deleted object".into(),
                    id: name.into(),
                })?;
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
            stored
        };
        let mut query = Sql::raw("UPDATE ");
        query
            .table(target.schema, "custom_object")
            .push(" SET updated_at = now(), deleted_at = ");
        query.push(if delete { "now()" } else { "NULL" }).push(" WHERE id = ");
        query.bind(Bind::Uuid(Some(before.id)));
        query.execute(conn).await?;
        state.reload(conn, target.schema).await?;
        let after = state
            .custom
            .object(name)
            .cloned()
            .ok_or_else(|| CrmError::internal("object vanished"))?;
        let record = Recorded {
            kind: if delete { "OBJECT_DELETED" } else { "OBJECT_RESTORED" },
            object: name.into(),
            field: None,
            summary: if delete {
                format!("deleted the object {name} (its records are kept until it is purged)")
            } else {
                format!("restored the object {name}")
            },
            breaking: delete,
            before: Some(object_json(&before)),
            after: Some(object_json(&after)),
            audit_object: "CustomObject",
            record_id: after.id,
            action: if delete { Action::Delete } else { Action::Restore },
        };
        finish(conn, target, &mut state, record).await?;
        Ok(after)
    })
    .await
}

/// Drops a deleted custom object's table, records and fields for good.
pub async fn purge_object(conn: &mut AsyncPgConnection, target: &Target<'_>, name: &str) -> Result<StoredObject> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        let mut state = State::lock(conn, target.schema).await?;
        let before = state
            .custom
            .object(name)
            .filter(|o| o.deleted_at.is_some())
            .cloned()
            .ok_or_else(|| CrmError::NotFound {
                object: "Deleted object".into(),
                id: name.into(),
            })?;
        let referring = lookups_to(&state, name, false);
        if !referring.is_empty() {
            return Err(CrmError::bad_input(
                &["name"],
                format!("{} refer to {name}: purge those fields first", referring.join(", ")),
            ));
        }
        let mut drop = Sql::raw("DROP TABLE ");
        drop.table(target.schema, &before.table_name);
        drop.execute(conn).await?;
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
        let record = Recorded {
            kind: "OBJECT_PURGED",
            object: name.into(),
            field: None,
            summary: format!("purged the object {name} and its records"),
            breaking: false,
            before: Some(object_json(&before)),
            after: None,
            audit_object: "CustomObject",
            record_id: before.id,
            action: Action::Purge,
        };
        finish(conn, target, &mut state, record).await?;
        Ok(before)
    })
    .await
}

// ------------------------------------------------------------------- DDL

fn alter_table(schema: &str, table: &str) -> Sql {
    let mut sql = Sql::raw("ALTER TABLE ");
    sql.table(schema, table);
    sql
}

/// The indexes a field's settings ask for: unique (`key`), or for
/// filters and sorts (`idx`: `(column, id)` for keyset pages, GIN for
/// lists and JSON); lookups always have one. Named by
/// [`custom::index_name`], which `drop_indexes`, a rename and
/// `records::write` (naming the field of a violation) compute again.
async fn create_indexes(conn: &mut AsyncPgConnection, schema: &str, table: &str, field: &FieldDef) -> Result<()> {
    let mut ddl = Sql::new();
    if field.unique {
        ddl.push("CREATE UNIQUE INDEX ")
            .ident(&custom::index_name(table, &field.column, "key"));
        ddl.push(" ON ")
            .table(schema, table)
            .push(" (")
            .ident(&field.column)
            .push(")");
    } else if field.indexed {
        ddl.push("CREATE INDEX ")
            .ident(&custom::index_name(table, &field.column, "idx"));
        ddl.push(" ON ").table(schema, table);
        match field.kind {
            FieldKind::MultiPicklist(_) | FieldKind::Json => ddl.push(" USING gin (").ident(&field.column).push(")"),
            FieldKind::Lookup(_) => ddl.push(" (").ident(&field.column).push(")"),
            _ => ddl.push(" (").ident(&field.column).push(", id)"),
        };
    } else {
        return Ok(());
    }
    ddl.execute(conn).await?;
    Ok(())
}

/// Drops a field's indexes, by the names `create_indexes` gave them: only
/// this field's, however long its name.
async fn drop_indexes(conn: &mut AsyncPgConnection, schema: &str, table: &str, column: &str) -> Result<()> {
    for suffix in ["key", "idx"] {
        let mut ddl = Sql::raw("DROP INDEX IF EXISTS ");
        ddl.table(schema, &custom::index_name(table, column, suffix));
        ddl.execute(conn).await?;
    }
    Ok(())
}

async fn count_rows(conn: &mut AsyncPgConnection, schema: &str, table: &str) -> Result<i64> {
    let (count, _) = violations(conn, schema, table, Sql::raw("true")).await?;
    Ok(count)
}

/// How many rows of a table match `condition`, and the first few ids.
async fn violations(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &str,
    condition: Sql,
) -> Result<(i64, Vec<String>)> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut count = Sql::raw("SELECT count(*) AS count FROM ");
    count.table(schema, table).push(" WHERE ").append(&condition);
    let count: Vec<Count> = count.load(conn).await?;
    let count = count.first().map(|c| c.count).unwrap_or(0);
    if count == 0 {
        return Ok((0, vec![]));
    }
    let mut ids = Sql::raw("SELECT id::text AS id FROM ");
    ids.table(schema, table).push(" WHERE ").append(&condition);
    ids.push(" ORDER BY id LIMIT ").push(&SAMPLES.to_string());
    let ids: Vec<Id> = ids.load(conn).await?;
    Ok((count, ids.into_iter().map(|i| i.id).collect()))
}

/// `UPDATE <table> SET col = $1, …, updated_at = now() WHERE id = $n`.
async fn update_row(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &str,
    id: Uuid,
    sets: Vec<(&str, Bind)>,
) -> Result<()> {
    let mut query = Sql::raw("UPDATE ");
    query.table(schema, table).push(" SET updated_at = now()");
    for (column, value) in sets {
        query.push(", ").ident(column).push(" = ").bind(value);
    }
    query.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    query.execute(conn).await?;
    Ok(())
}

/// A checked default value as a SQL literal of the column's type (DDL
/// takes no bind parameters).
fn literal(kind: &FieldKind, value: &Json) -> Result<Sql> {
    let mut sql = Sql::new();
    let text = |value: &Json| -> Result<String> {
        let text = match value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        if text.contains('\0') {
            return Err(CrmError::bad_input(
                &["input", "defaultValue"],
                "a default must not contain NUL",
            ));
        }
        Ok(text)
    };
    match kind {
        FieldKind::Integer | FieldKind::Boolean => {
            // Checked as an integer or a boolean: digits, a sign, true, false.
            let text = text(value)?;
            if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(CrmError::bad_input(&["input", "defaultValue"], "not a valid default"));
            }
            sql.push(&text);
        }
        FieldKind::MultiPicklist(_) => {
            let items = value.as_array().cloned().unwrap_or_default();
            sql.push("ARRAY[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.string_literal(&text(item)?);
            }
            sql.push("]::text[]");
        }
        FieldKind::Json => {
            sql.string_literal(&text(&Json::String(value.to_string()))?)
                .push("::jsonb");
        }
        _ => {
            sql.string_literal(&text(value)?)
                .push("::")
                .push(custom::column_type(kind));
        }
    }
    Ok(sql)
}
