//! The one way a metadata change runs, and the door the rest of the
//! server uses to make one.
//!
//! Each change is one transaction holding the workspace's settings row
//! (so changes of one workspace run one at a time): it checks the change
//! against the current metadata and data, runs its DDL, writes the
//! `custom_field`/`custom_object` row, checks that the resulting GraphQL
//! schema builds, bumps the metadata version, records the change
//! (`metadata_change`, the audit log) and announces it with `NOTIFY`.
//! Any failure rolls all of it back: the table, the metadata and the
//! version stay as they were.
//!
//! That skeleton is [`run`] (and [`run_within`] for a change inside the
//! caller's transaction); the changes themselves live in [`super::field`]
//! and [`super::object`], the SQL they run on record tables in
//! [`super::ddl`]. They are re-exported here, so callers name a change
//! `change::create_field` whichever file holds it.

use std::future::Future;

use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::custom::{Customizations, StoredField, StoredObject};
use super::{FieldDef, Model, ObjectDef};
use crate::audit::{self, Action, Trail};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::notify::Announcement;

pub use super::field::retype::{
    change_type, lossy_summary, preview_type_change, LossyValue, OnInvalid, OnLossy, Preview, TypeChange, TypeChanged,
};
pub use super::field::{
    create_field, delete_field, purge_field, rename_field, restore_field, update_field, FieldPatch, FieldSpec,
    OptionSpec,
};
pub use super::object::{
    create_object, delete_object, purge_object, restore_object, update_object, ObjectPatch, ObjectSpec,
};

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
    /// How long DDL waits for a record table other work holds before the
    /// change gives up (`Busy`) and is tried again; `None` keeps the
    /// transaction's own setting.
    pub lock_timeout: Option<std::time::Duration>,
    /// Rehearsing (a promotion's diff or dry run, rolled back): the
    /// metadata changes and every check on the records run, but no
    /// statement that changes or locks a record table, so production's
    /// reads and writes never wait for it.
    pub rehearsal: bool,
}

/// Checks a value given for a field the way a write would, and returns it
/// as the API shows it; errors point at the path given.
pub type ValueCheck = dyn Fn(&FieldDef, &Json, &[String]) -> Result<Json> + Send + Sync;

/// The workspace's metadata as a change sees it: locked by [`run`], with
/// the version the change builds on.
pub(in crate::metadata) struct State {
    /// The version the change builds on; [`finish`] gives it the next.
    pub(in crate::metadata) version: i32,
    /// The custom objects and fields as stored, retained ones included.
    pub(in crate::metadata) custom: Customizations,
    /// The model the API serves: standard and live custom objects.
    pub(in crate::metadata) model: Model,
}

impl State {
    /// Locks the workspace's settings row and reads its metadata.
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
        let mut state = State::read(conn, schema).await?;
        state.version = version;
        Ok(state)
    }

    /// The metadata as it stands, unlocked and without its version: what
    /// a preview, which changes nothing, reads.
    pub(in crate::metadata) async fn read(conn: &mut AsyncPgConnection, schema: &str) -> Result<State> {
        let custom = Customizations::read(conn, schema).await?;
        let model = custom.model()?;
        Ok(State {
            version: 0,
            custom,
            model,
        })
    }

    /// Reads the metadata again after the change wrote its rows.
    pub(in crate::metadata) async fn reload(&mut self, conn: &mut AsyncPgConnection, schema: &str) -> Result<()> {
        self.custom = Customizations::read(conn, schema).await?;
        self.model = self.custom.model()?;
        Ok(())
    }

    /// The version [`finish`] gives the change being made (a type change
    /// names the values it keeps by it).
    pub(in crate::metadata) fn next_version(&self) -> i32 {
        self.version + 1
    }

    /// An object of the model, or a refusal pointing at `path`.
    pub(in crate::metadata) fn object(&self, name: &str, path: &[&str]) -> Result<&ObjectDef> {
        self.model
            .object(name)
            .map(|o| o.as_ref())
            .ok_or_else(|| CrmError::bad_input(path, format!("there is no object {name}")))
    }

    /// A live custom field with its object and definition, or why it
    /// cannot be changed.
    pub(in crate::metadata) fn custom_field(
        &self,
        object: &str,
        name: &str,
    ) -> Result<(ObjectDef, FieldDef, StoredField)> {
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

    /// A deleted custom field kept until it is purged.
    pub(in crate::metadata) fn retained_field(&self, object: &str, name: &str) -> Result<&StoredField> {
        self.custom
            .field(object, name)
            .filter(|f| f.deleted_at.is_some())
            .ok_or_else(|| CrmError::NotFound {
                object: "Deleted field".into(),
                id: format!("{object}.{name}"),
            })
    }

    /// A custom field's row as the metadata now stands.
    pub(in crate::metadata) fn stored_field(&self, object: &str, name: &str) -> Result<StoredField> {
        self.custom
            .field(object, name)
            .cloned()
            .ok_or_else(|| CrmError::internal(format_args!("custom field {object}.{name} vanished")))
    }

    /// A custom field's row after the change wrote it: the metadata read
    /// again, so the record shows the field as it now is.
    pub(in crate::metadata) async fn reread_field(
        &mut self,
        conn: &mut AsyncPgConnection,
        schema: &str,
        object: &str,
        name: &str,
    ) -> Result<StoredField> {
        self.reload(conn, schema).await?;
        self.stored_field(object, name)
    }

    /// A custom object's row after the change wrote it.
    pub(in crate::metadata) async fn reread_object(
        &mut self,
        conn: &mut AsyncPgConnection,
        schema: &str,
        name: &str,
    ) -> Result<StoredObject> {
        self.reload(conn, schema).await?;
        self.custom
            .object(name)
            .cloned()
            .ok_or_else(|| CrmError::internal(format_args!("custom object {name} vanished")))
    }
}

/// One change as recorded: `metadata_change` and the audit log.
pub(in crate::metadata) struct Recorded {
    kind: &'static str,
    object: String,
    field: Option<String>,
    summary: String,
    breaking: bool,
    before: Option<Json>,
    after: Option<Json>,
    /// `CustomField`, `CustomObject` or `Promotion`, and the row's id.
    audit_object: &'static str,
    record_id: Uuid,
    action: Action,
}

impl Recorded {
    /// A change of one custom field: `before` is `None` for a new field,
    /// `after` for a purged one.
    pub(in crate::metadata) fn field(
        kind: &'static str,
        action: Action,
        (before, after): (Option<&StoredField>, Option<&StoredField>),
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

    /// A change of one custom object: `before` is `None` for a new object,
    /// `after` for a purged one.
    pub(in crate::metadata) fn object(
        kind: &'static str,
        action: Action,
        (before, after): (Option<&StoredObject>, Option<&StoredObject>),
        breaking: bool,
        summary: String,
    ) -> Recorded {
        let current = after.or(before);
        Recorded {
            kind,
            object: current.map(|o| o.name.clone()).unwrap_or_default(),
            field: None,
            summary,
            breaking,
            before: before.map(object_json),
            after: after.map(object_json),
            audit_object: "CustomObject",
            record_id: current.map(|o| o.id).unwrap_or_default(),
            action,
        }
    }

    /// Adds what the definition alone does not say to the recorded
    /// `after` (the options a change renamed, the fields a new object
    /// came with): a promotion replays it from there.
    pub(in crate::metadata) fn noting(mut self, key: &str, value: Json) -> Recorded {
        if let Some(Json::Object(after)) = &mut self.after {
            after.insert(key.into(), value);
        }
        self
    }
}

/// What a change made: the value its caller gets back, and how it is
/// recorded.
pub(in crate::metadata) struct Made<T> {
    /// What the caller gets back (the field or object as it now is).
    pub(in crate::metadata) value: T,
    /// How the change is recorded and announced.
    pub(in crate::metadata) record: Recorded,
}

/// Runs one change the way every change runs: in its own transaction,
/// [`run_within`]. Any error rolls all of it back.
pub(in crate::metadata) async fn run<T, F>(conn: &mut AsyncPgConnection, target: &Target<'_>, make: F) -> Result<T>
where
    F: for<'r> MakeChange<'r, T> + Send + Sync + Clone,
    T: Send,
{
    let mut attempt = 1;
    loop {
        let tried = conn
            .transaction::<_, CrmError, _>(async |conn| {
                if let Some(timeout) = target.lock_timeout {
                    conn.batch_execute(&format!("SET LOCAL lock_timeout = {}", timeout.as_millis()))
                        .await?;
                }
                Ok(run_within(conn, target, make.clone()).await?.0)
            })
            .await;
        match tried {
            // Other work held a record table longer than the change may
            // wait: it stood aside (production's queries queued behind it
            // went on), and tries again a little later.
            Err(CrmError::Busy(_)) if attempt < LOCK_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// How many times a change whose DDL timed out waiting for a table is tried.
const LOCK_ATTEMPTS: u64 = 4;

/// Runs one change in the caller's transaction: locks the workspace's
/// settings row and reads its metadata, lets `make` check the change
/// against them and make it (DDL, metadata rows), then [`finish`]es it.
/// Returns what `make` made and the new metadata version.
pub(in crate::metadata) async fn run_within<T, F>(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    make: F,
) -> Result<(T, i32)>
where
    F: for<'r> MakeChange<'r, T> + Send,
    T: Send,
{
    let mut state = State::lock(conn, target.schema).await?;
    let made = make(conn, &mut state).await?;
    let version = finish(conn, target, &mut state, made.record).await?;
    Ok((made.value, version))
}

/// The body of a change given to [`run`]: an async closure over the
/// connection and the locked [`State`] whose future is `Send` (the
/// transaction may move between threads), which a bound on `AsyncFnOnce`
/// alone cannot say.
pub(in crate::metadata) trait MakeChange<'r, T>:
    AsyncFnOnce(&'r mut AsyncPgConnection, &'r mut State) -> Result<Made<T>>
    + FnOnce(&'r mut AsyncPgConnection, &'r mut State) -> <Self as MakeChange<'r, T>>::Fut
{
    /// The closure's future, `Send`.
    type Fut: Future<Output = Result<Made<T>>> + Send;
}

impl<'r, T, F, Fut> MakeChange<'r, T> for F
where
    F: AsyncFnOnce(&'r mut AsyncPgConnection, &'r mut State) -> Result<Made<T>>
        + FnOnce(&'r mut AsyncPgConnection, &'r mut State) -> Fut,
    Fut: Future<Output = Result<Made<T>>> + Send,
{
    type Fut = Fut;
}

/// Checks the new model, bumps the version, records the change and
/// announces it (delivered when the transaction commits).
async fn finish(conn: &mut AsyncPgConnection, target: &Target<'_>, state: &mut State, record: Recorded) -> Result<i32> {
    state.reload(conn, target.schema).await?;
    (target.check)(&state.model)?;
    // Searchable fields came, went or changed: `search` follows them.
    super::ddl::search::sync(conn, target, &state.model).await?;
    let version = state.next_version();
    let mut bump = Sql::raw("UPDATE ");
    bump.table(target.schema, "workspace_settings")
        .push(" SET metadata_version = ")
        .bind(Bind::Int(Some(version)));
    bump.execute(conn).await?;
    state.version = version;
    if target.replaying {
        return Ok(version);
    }
    write_history(conn, target, version, &record).await?;
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

/// The change's row in `metadata_change`, the history diff and promotion
/// read.
async fn write_history(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    version: i32,
    record: &Recorded,
) -> Result<()> {
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
    Ok(())
}

/// A change made of many (a promotion, a revert), recorded as one more
/// version of the workspace's metadata.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `PROMOTED`, `PROMOTION_REVERTED`.
    pub kind: &'static str,
    /// One line for the history, in the words a reviewer reads.
    pub summary: String,
    /// Whether clients of the API may have to change.
    pub breaking: bool,
    /// What the batch did, as the history shows it.
    pub after: Json,
    /// The promotion's id, for the audit log.
    pub record_id: Uuid,
    /// The audit log's action.
    pub action: Action,
}

/// Records a batch of changes already made in this transaction: the
/// schema still builds, the version goes up once more, and the history,
/// the audit log and other servers learn of it. Returns the new version.
pub async fn record_batch(conn: &mut AsyncPgConnection, target: &Target<'_>, batch: Batch) -> Result<i32> {
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
    let made = async |_: &mut AsyncPgConnection, _: &mut State| Ok(Made { value: (), record });
    Ok(run_within(conn, target, made).await?.1)
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
        "searchable": field.searchable,
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

/// One write to a `custom_field` or `custom_object` row: the columns a
/// change sets, and `updated_at`, which every write moves.
pub(in crate::metadata) struct RowUpdate {
    query: Sql,
    id: Uuid,
    sets: usize,
}

impl RowUpdate {
    /// An update of row `id` of the metadata table `table`.
    pub(in crate::metadata) fn new(schema: &str, table: &str, id: Uuid) -> RowUpdate {
        let mut query = Sql::raw("UPDATE ");
        query.table(schema, table).push(" SET updated_at = now()");
        RowUpdate { query, id, sets: 0 }
    }

    /// Sets `column` to `value`.
    pub(in crate::metadata) fn set(&mut self, column: &str, value: Bind) -> &mut RowUpdate {
        self.query.push(", ").ident(column).push(" = ").bind(value);
        self.sets += 1;
        self
    }

    /// Sets `column` to the transaction's time, as `updated_at` is.
    pub(in crate::metadata) fn set_now(&mut self, column: &str) -> &mut RowUpdate {
        self.query.push(", ").ident(column).push(" = now()");
        self.sets += 1;
        self
    }

    /// Whether the change asked for nothing.
    pub(in crate::metadata) fn is_empty(&self) -> bool {
        self.sets == 0
    }

    /// Runs the update.
    pub(in crate::metadata) async fn execute(self, conn: &mut AsyncPgConnection) -> Result<()> {
        let mut query = self.query;
        query.push(" WHERE id = ").bind(Bind::Uuid(Some(self.id)));
        query.execute(conn).await?;
        Ok(())
    }
}
