//! Merging duplicates into one record, and undoing it.
//!
//! `mergeRecords` keeps one record, the survivor, with the values chosen
//! field by field from any of the merged ones; every reference to the
//! merged records — standard and custom lookups of every object, contact
//! roles, activities, stage history — moves to the survivor; each merged
//! record is deleted and leaves a tombstone (`records::merged`) so its id
//! and external id still lead to the survivor. One transaction, audited,
//! dry-runnable. The merge keeps what it changed (`record_merge`), so
//! `unmergeRecords` puts everything back while the survivor and the
//! merged records are as the merge left them.

pub mod api;
pub mod undo;

use std::collections::HashMap;

use diesel::sql_types::{Integer, Jsonb, Nullable, Timestamptz, Uuid as SqlUuid};
use diesel_async::AsyncPgConnection;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::audit::{Action, Entry};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::resolve::RequestContext;
use crate::graphql::room::{RecordHooks, Written};
use crate::metadata::{FieldDef, FieldKind, ObjectDef};
use crate::records::{record_id, write, Record};

/// The most records one merge folds into its survivor.
pub const MAX_MERGED: usize = 10;

/// A merge as asked: the survivor, the records folded into it, and which
/// record's value each chosen field takes.
pub struct Request {
    pub survivor: Uuid,
    pub merged: Vec<Uuid>,
    /// (field, record whose value it takes).
    pub choices: Vec<(FieldDef, Uuid)>,
}

/// A stored merge, as `RecordMerge` shows it.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Merge {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub created_by: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub object: String,
    #[diesel(sql_type = SqlUuid)]
    pub survivor_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Array<SqlUuid>)]
    pub merged_ids: Vec<Uuid>,
    #[diesel(sql_type = Jsonb)]
    pub survivor_before: Json,
    #[diesel(sql_type = Integer)]
    pub survivor_version: i32,
    #[diesel(sql_type = Jsonb)]
    pub merged_versions: Json,
    #[diesel(sql_type = Jsonb)]
    pub moved: Json,
    #[diesel(sql_type = Jsonb)]
    pub removed: Json,
    #[diesel(sql_type = Jsonb)]
    pub repointed: Json,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub undone_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a merge did, with the survivor as it now stands.
pub struct Merged {
    pub merge: Merge,
    pub survivor: Record,
}

/// The columns of a stored merge.
const COLUMNS: &str =
    "id, created_at, created_by, object, survivor_id, merged_ids, survivor_before, survivor_version, \
                       merged_versions, moved, removed, repointed, undone_at";

/// Reads a stored merge, locked when `lock`.
pub async fn read(conn: &mut AsyncPgConnection, schema: &str, id: Uuid, lock: bool) -> Result<Option<Merge>> {
    let mut query = Sql::raw("SELECT ");
    query.push(COLUMNS).push(" FROM ").table(schema, "record_merge");
    query.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    if lock {
        query.push(" FOR UPDATE");
    }
    Ok(query.load::<Merge>(conn).await?.into_iter().next())
}

fn version(record: &Record) -> i32 {
    record
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

/// The lookups of the workspace that refer to `object`: (referring object, field).
fn references<'m>(context: &'m RequestContext, object: &ObjectDef) -> Vec<(&'m ObjectDef, &'m FieldDef)> {
    let mut out = Vec::new();
    for referring in context.model.objects() {
        if referring.schema.is_some() {
            continue;
        }
        for field in &referring.fields {
            if let FieldKind::Lookup(lookup) = &field.kind {
                if lookup.target == object.name {
                    out.push((referring.as_ref(), field));
                }
            }
        }
    }
    out
}

/// Locks a record the caller may see, live, or refuses naming `at`.
async fn locked(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    id: Uuid,
    at: &Path,
) -> Result<Record> {
    let record = write::lock(conn, context.table(object), id)
        .await?
        .ok_or_else(|| at.error(format!("no {} {id} you can see", object.name)))?;
    if record.get("deletedAt").is_some_and(|d| !d.is_null()) {
        return Err(at.error(format!("{} {id} is deleted", object.name)));
    }
    Ok(record)
}

/// Merges in the caller's transaction; answers what it did and the audit
/// entries to append.
pub async fn merge(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    object: &ObjectDef,
    request: &Request,
) -> Result<(Merged, Vec<Entry>)> {
    let (survivor_before, merged_before) = lock_all(conn, context, object, request).await?;
    let mut entries = Vec::new();

    // The merged records go first (their values are read from before).
    let table = context.table(object);
    let mut merged_versions = serde_json::Map::new();
    let mut removed = Vec::new();
    for before in &merged_before {
        let id = record_id(before).ok_or_else(|| CrmError::internal("record without id"))?;
        removed.extend(release_unique(conn, context, object, request, id, before).await?);
        let after = write::soft_delete(conn, table, id).await?;
        let scope = context.check_scope(&[]);
        let written = Written {
            before: Some(before),
            record: &after,
        };
        let after = hooks.run_own(conn, &scope, object, written).await?;
        let told = Written {
            before: Some(before),
            record: &after,
        };
        crate::webhooks::told(conn, &scope, object, told).await?;
        merged_versions.insert(id.to_string(), json!(version(&after)));
        let mut entry = crate::records::audit_entry(object, Action::Merge, Some(before), &after);
        entry.changes.push(crate::audit::Change {
            field: "mergedInto".into(),
            before: Json::Null,
            after: json!(request.survivor),
        });
        entries.push(entry);
    }

    let (moved, roles) = move_references(conn, context, object, request).await?;
    removed.extend(roles);

    // The survivor takes the chosen values (and its version moves on).
    let (values, replaced) = chosen(request, &survivor_before, &merged_before)?;
    let survivor = write::update(conn, &context.model, table, request.survivor, &values, None, &[]).await?;
    let scope = context.check_scope(&[]);
    let written = Written {
        before: Some(&survivor_before),
        record: &survivor,
    };
    let survivor = hooks.run_own(conn, &scope, object, written).await?;
    let told = Written {
        before: Some(&survivor_before),
        record: &survivor,
    };
    crate::webhooks::told(conn, &scope, object, told).await?;
    entries.push(crate::records::audit_entry(
        object,
        Action::Update,
        Some(&survivor_before),
        &survivor,
    ));

    let stored = Stored {
        replaced,
        survivor_version: version(&survivor),
        merged_versions,
        moved,
        removed,
    };
    let merge = store(conn, context, object, request, stored).await?;
    Ok((Merged { merge, survivor }, entries))
}

/// A unique value the survivor takes from merged record `id` leaves that
/// record first (deleted rows keep unique values); the merge keeps it to
/// put it back (`{object, id, undo: "value", field, value}`).
async fn release_unique(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    request: &Request,
    id: Uuid,
    before: &Record,
) -> Result<Vec<Json>> {
    let mut released = Vec::new();
    for (field, _) in request.choices.iter().filter(|(f, from)| f.unique && *from == id) {
        let value = before.get(&field.value_key()).cloned().unwrap_or(Json::Null);
        if value.is_null() {
            continue;
        }
        let mut clear = Sql::raw("UPDATE ");
        clear
            .table(&context.schema, &object.table)
            .push(" SET ")
            .ident(&field.column);
        clear.push(" = NULL WHERE id = ").bind(Bind::Uuid(Some(id)));
        clear.execute(conn).await?;
        released.push(json!({ "object": object.name, "id": id, "undo": "value", "field": field.name, "value": value }));
    }
    Ok(released)
}

/// What a merge keeps to be undone.
struct Stored {
    replaced: serde_json::Map<String, Json>,
    survivor_version: i32,
    merged_versions: serde_json::Map<String, Json>,
    moved: Vec<Json>,
    removed: Vec<Json>,
}

/// Locks the survivor and the merged records, each live and visible to
/// the caller, who must be allowed to change the one and delete the others.
async fn lock_all(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    request: &Request,
) -> Result<(Record, Vec<Record>)> {
    use crate::access::{require, require_owner, Operation};
    // Locked in id order, so two merges of the same records wait, not deadlock.
    let mut order: Vec<(Uuid, Path)> = vec![(request.survivor, Path::root("survivorId"))];
    order.extend(
        request
            .merged
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, Path::root("mergedIds").index(i))),
    );
    order.sort_by_key(|(id, _)| *id);
    let mut found = HashMap::new();
    for (id, at) in &order {
        found.insert(*id, locked(conn, context, object, *id, at).await?);
    }
    let take = |found: &mut HashMap<Uuid, Record>, id: &Uuid| {
        found
            .remove(id)
            .ok_or_else(|| CrmError::internal("a locked record is gone"))
    };
    let survivor = take(&mut found, &request.survivor)?;
    let merged = request
        .merged
        .iter()
        .map(|id| take(&mut found, id))
        .collect::<Result<Vec<_>>>()?;
    let owner = |r: &Record| r.get("ownerId").and_then(Json::as_str).and_then(|o| o.parse().ok());
    let grant = require(&context.actor, object, Operation::Update)?;
    require_owner(&context.actor, object, Operation::Update, grant, owner(&survivor))?;
    // Taking another record's owner is a reassignment.
    if let Some((_, from)) = request.choices.iter().find(|(f, _)| f.name == "owner") {
        let chosen = std::iter::once(&survivor)
            .chain(&merged)
            .find(|r| record_id(r) == Some(*from));
        crate::access::require_reassign(&context.actor, object, owner(&survivor), chosen.and_then(owner))?;
    }
    let grant = require(&context.actor, object, Operation::Delete)?;
    for record in &merged {
        require_owner(&context.actor, object, Operation::Delete, grant, owner(record))?;
    }
    Ok((survivor, merged))
}

/// The values the survivor takes (those that differ from its own), and
/// its own values they replace.
fn chosen(
    request: &Request,
    survivor_before: &Record,
    merged_before: &[Record],
) -> Result<(Vec<write::Assignment>, serde_json::Map<String, Json>)> {
    let mut values = Vec::new();
    let mut replaced = serde_json::Map::new();
    for (field, from) in &request.choices {
        let source = std::iter::once(survivor_before)
            .chain(merged_before.iter())
            .find(|r| record_id(r) == Some(*from))
            .ok_or_else(|| CrmError::internal("a chosen record is not in the merge"))?;
        let key = field.value_key();
        let value = source.get(&key).cloned().unwrap_or(Json::Null);
        if survivor_before.get(&key) == Some(&value) {
            continue;
        }
        let bind = if value.is_null() {
            crate::graphql::input::null_for(field)
        } else {
            crate::records::page::bind_from_json(field, &value)
                .ok_or_else(|| CrmError::internal(format_args!("{key} holds a value it cannot take")))?
        };
        replaced.insert(key.clone(), survivor_before.get(&key).cloned().unwrap_or(Json::Null));
        values.push((field.clone(), bind));
    }
    Ok((values, replaced))
}

/// Leaves the tombstones (the merged ids, and older ones that led to
/// them, lead to the survivor) and stores the merge.
async fn store(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    request: &Request,
    stored: Stored,
) -> Result<Merge> {
    let schema: &str = &context.schema;
    let merge_id = Uuid::new_v4();
    let mut repoint = Sql::raw("WITH old AS (SELECT merged_id, survivor_id FROM ");
    repoint.table(schema, "merged_record").push(" WHERE survivor_id = ANY(");
    repoint
        .bind(Bind::UuidArray(request.merged.clone()))
        .push(") FOR UPDATE) UPDATE ");
    repoint.table(schema, "merged_record").push(" m SET survivor_id = ");
    repoint.bind(Bind::Uuid(Some(request.survivor)));
    repoint.push(
        " FROM old WHERE m.merged_id = old.merged_id \
         RETURNING jsonb_build_object('merged', old.merged_id, 'survivor', old.survivor_id) AS row",
    );
    let repointed: Vec<crate::db::sql::JsonRow> = repoint.load(conn).await?;
    let repointed: Vec<Json> = repointed.into_iter().map(|r| r.row).collect();

    let mut insert = Sql::raw("INSERT INTO ");
    insert.table(schema, "record_merge").push(
        " (id, created_by, object, survivor_id, merged_ids, survivor_before, survivor_version, merged_versions, moved, \
         removed, repointed) VALUES (",
    );
    insert.binds([
        Bind::Uuid(Some(merge_id)),
        Bind::Uuid(Some(context.actor.user_id)),
        Bind::Text(Some(object.name.clone())),
        Bind::Uuid(Some(request.survivor)),
        Bind::UuidArray(request.merged.clone()),
        Bind::Json(Some(Json::Object(stored.replaced))),
        Bind::Int(Some(stored.survivor_version)),
        Bind::Json(Some(Json::Object(stored.merged_versions))),
        Bind::Json(Some(Json::Array(stored.moved))),
        Bind::Json(Some(Json::Array(stored.removed))),
        Bind::Json(Some(Json::Array(repointed))),
    ]);
    insert.push(")");
    insert.execute(conn).await?;
    let mut tombstones = Sql::raw("INSERT INTO ");
    tombstones
        .table(schema, "merged_record")
        .push(" (merged_id, object, survivor_id, merge_id) SELECT unnest(");
    tombstones.bind(Bind::UuidArray(request.merged.clone())).push("), ");
    tombstones.bind(Bind::Text(Some(object.name.clone()))).push(", ");
    tombstones.bind(Bind::Uuid(Some(request.survivor))).push(", ");
    tombstones.bind(Bind::Uuid(Some(merge_id)));
    tombstones.execute(conn).await?;
    read(conn, schema, merge_id, false)
        .await?
        .ok_or_else(|| CrmError::internal("a merge just stored is gone"))
}

/// Moves every reference to the merged records onto the survivor: each
/// lookup of every object (deleted records' too, so a restore finds its
/// references where they belong). A contact role that would repeat one of
/// the survivor's (same deal, contact and role) is deleted instead, and a
/// second primary role on a merged deal stops being primary. Answers what
/// moved (`[{object, field, rows: [[id, from]]}]`) and what was removed.
async fn move_references(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    request: &Request,
) -> Result<(Vec<Json>, Vec<Json>)> {
    let schema: &str = &context.schema;
    let merged = Bind::UuidArray(request.merged.clone());
    let survivor = Bind::Uuid(Some(request.survivor));
    let mut removed = Vec::new();
    if let Some(roles) = context.model.object("ContactRole") {
        let column = match object.name.as_str() {
            "Contact" => Some(("contact_id", "opportunity_id")),
            "Opportunity" => Some(("opportunity_id", "contact_id")),
            _ => None,
        };
        if let Some((moving, other)) = column {
            // Roles that would repeat another once moved.
            let mut repeat = Sql::raw("UPDATE ");
            repeat.table(schema, &roles.table).push(" r SET deleted_at = now(), version = r.version + 1, updated_at = now() WHERE r.deleted_at IS NULL AND ");
            repeat
                .ident(moving)
                .push(" = ANY(")
                .bind(merged.clone())
                .push(") AND EXISTS (SELECT 1 FROM ");
            repeat
                .table(schema, &roles.table)
                .push(" s WHERE s.deleted_at IS NULL AND s.role = r.role AND s.");
            repeat
                .ident(other)
                .push(" = r.")
                .ident(other)
                .push(" AND (s.")
                .ident(moving)
                .push(" = ")
                .bind(survivor.clone());
            repeat
                .push(" OR (s.")
                .ident(moving)
                .push(" = ANY(")
                .bind(merged.clone());
            repeat.push(") AND (s.created_at, s.id) < (r.created_at, r.id)))) RETURNING jsonb_build_object('object', 'ContactRole', 'id', r.id, 'undo', 'restore') AS row");
            let rows: Vec<crate::db::sql::JsonRow> = repeat.load(conn).await?;
            removed.extend(rows.into_iter().map(|r| r.row));
            if object.name == "Opportunity" {
                // One primary role per deal: the survivor's (or the oldest moved) stays.
                let mut primary = Sql::raw("UPDATE ");
                primary.table(schema, &roles.table).push(" r SET is_primary = false, version = r.version + 1, updated_at = now() WHERE r.deleted_at IS NULL AND r.is_primary AND r.opportunity_id = ANY(");
                primary.bind(merged.clone()).push(") AND EXISTS (SELECT 1 FROM ");
                primary
                    .table(schema, &roles.table)
                    .push(" s WHERE s.deleted_at IS NULL AND s.is_primary AND s.id <> r.id AND (s.opportunity_id = ");
                primary
                    .bind(survivor.clone())
                    .push(" OR (s.opportunity_id = ANY(")
                    .bind(merged.clone());
                primary.push(") AND (s.created_at, s.id) < (r.created_at, r.id)))) RETURNING jsonb_build_object('object', 'ContactRole', 'id', r.id, 'undo', 'primary') AS row");
                let rows: Vec<crate::db::sql::JsonRow> = primary.load(conn).await?;
                removed.extend(rows.into_iter().map(|r| r.row));
            }
        }
    }
    let mut moved = Vec::new();
    for (referring, field) in references(context, object) {
        let versioned = referring.field("version").is_some();
        let mut sql = Sql::raw("WITH old AS (SELECT id, ");
        sql.ident(&field.column)
            .push(" AS was FROM ")
            .table(schema, &referring.table);
        sql.push(" WHERE ")
            .ident(&field.column)
            .push(" = ANY(")
            .bind(merged.clone())
            .push(")");
        if referring.name == object.name {
            // A record of the object itself: the merged ones go, and the
            // survivor does not come to refer to itself.
            sql.push(" AND id <> ").bind(survivor.clone());
            sql.push(" AND NOT id = ANY(").bind(merged.clone()).push(")");
        }
        sql.push(" FOR UPDATE) UPDATE ");
        sql.table(schema, &referring.table)
            .push(" t SET ")
            .ident(&field.column)
            .push(" = ")
            .bind(survivor.clone());
        if versioned {
            sql.push(", version = t.version + 1, updated_at = now()");
        }
        sql.push(" FROM old WHERE t.id = old.id RETURNING jsonb_build_array(t.id, old.was) AS row");
        let rows: Vec<crate::db::sql::JsonRow> = sql.load(conn).await?;
        if !rows.is_empty() {
            moved.push(json!({
                "object": referring.name,
                "field": field.name,
                "rows": rows.into_iter().map(|r| r.row).collect::<Vec<_>>(),
            }));
        }
    }
    Ok((moved, removed))
}

/// How many references a merge moved, by object and field.
pub fn moved_counts(merge: &Merge) -> Vec<(String, String, usize)> {
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for moved in merge.moved.as_array().into_iter().flatten() {
        let key = (
            moved["object"].as_str().unwrap_or_default().to_owned(),
            moved["field"].as_str().unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_default() += moved["rows"].as_array().map_or(0, Vec::len);
    }
    let mut out: Vec<_> = counts.into_iter().map(|((o, f), n)| (o, f, n)).collect();
    out.sort();
    out
}
