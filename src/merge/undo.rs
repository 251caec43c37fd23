//! `unmergeRecords`: a merge undone while nothing has changed since —
//! the survivor and the merged records at the versions the merge left —
//! puts back the survivor's values, the merged records, the references
//! that still point to the survivor, the contact roles it removed and the
//! tombstones it redirected.

use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use super::{read, version, Merge, Merged};
use crate::audit::{Action, Entry};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::resolve::RequestContext;
use crate::graphql::room::{RecordHooks, Written};
use crate::metadata::ObjectDef;
use crate::records::write;

fn uuid(value: &Json) -> Option<Uuid> {
    value.as_str()?.parse().ok()
}

/// Undoes merge `id` in the caller's transaction.
pub async fn unmerge(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    id: Uuid,
) -> Result<(Merged, Vec<Entry>)> {
    let schema: &str = &context.schema;
    let merge = read(conn, schema, id, true)
        .await?
        .ok_or_else(|| CrmError::bad_input(&["id"], format!("no merge {id}")))?;
    if merge.undone_at.is_some() {
        return Err(CrmError::Conflict(format!("merge {id} was undone already")));
    }
    let object = context
        .model
        .object(&merge.object)
        .ok_or_else(|| CrmError::Conflict(format!("{} no longer exists", merge.object)))?
        .clone();
    crate::access::require(&context.actor, &object, crate::access::Operation::Update)?;
    let table = context.table(&object);
    let (survivor_before, merged_before) = unchanged(conn, table, &merge).await?;
    let owner = |r: &crate::records::Record| r.get("ownerId").and_then(Json::as_str).and_then(|o| o.parse().ok());
    let grant = crate::access::require(&context.actor, &object, crate::access::Operation::Restore)?;
    for record in std::iter::once(&survivor_before).chain(&merged_before) {
        crate::access::require_owner(
            &context.actor,
            &object,
            crate::access::Operation::Restore,
            grant,
            owner(record),
        )?;
    }
    let mut entries = Vec::new();
    move_back(conn, context, &merge).await?;
    roles_back(conn, context, &merge).await?;
    redirect_back(conn, schema, &merge).await?;

    // The merged records come back.
    for before in &merged_before {
        let id = crate::records::record_id(before).ok_or_else(|| CrmError::internal("record without id"))?;
        let after = write::restore(conn, table, id).await?;
        let scope = context.check_scope(&[]);
        let written = Written {
            before: Some(before),
            record: &after,
        };
        let after = hooks.run_own(conn, &scope, &object, written).await?;
        let told = Written {
            before: Some(before),
            record: &after,
        };
        crate::webhooks::told(conn, &scope, &object, told).await?;
        entries.push(crate::records::audit_entry(
            &object,
            Action::Unmerge,
            Some(before),
            &after,
        ));
    }

    // The survivor takes back the values the merge replaced.
    let survivor = restore_values(conn, context, hooks, &object, &merge, &survivor_before).await?;
    give_back_values(conn, context, &merge).await?;
    entries.push(crate::records::audit_entry(
        &object,
        Action::Unmerge,
        Some(&survivor_before),
        &survivor,
    ));

    let mut undone = Sql::raw("UPDATE ");
    undone
        .table(schema, "record_merge")
        .push(" SET undone_at = now(), undone_by = ");
    undone.bind(Bind::Uuid(Some(context.actor.user_id)));
    undone.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
    undone.execute(conn).await?;
    let merge = read(conn, schema, id, false)
        .await?
        .ok_or_else(|| CrmError::internal("a merge just undone is gone"))?;
    Ok((Merged { merge, survivor }, entries))
}

/// The survivor and the merged records, locked, refused unless they are
/// at the versions the merge left them.
async fn unchanged(
    conn: &mut AsyncPgConnection,
    table: crate::records::Table<'_>,
    merge: &Merge,
) -> Result<(crate::records::Record, Vec<crate::records::Record>)> {
    let object = table.object;
    let survivor = write::lock(conn, table, merge.survivor_id)
        .await?
        .ok_or_else(|| CrmError::Conflict(format!("the survivor {} is gone or hidden from you", merge.survivor_id)))?;
    if version(&survivor) != merge.survivor_version {
        return Err(CrmError::Conflict(format!(
            "{} {} changed since the merge (version {} now, {} then): the merge can no longer be undone",
            object.name,
            merge.survivor_id,
            version(&survivor),
            merge.survivor_version
        )));
    }
    let mut merged = Vec::new();
    for id in &merge.merged_ids {
        let record = write::lock(conn, table, *id)
            .await?
            .ok_or_else(|| CrmError::Conflict(format!("the merged {} {id} is gone or hidden from you", object.name)))?;
        let then = merge.merged_versions[id.to_string()].as_i64().unwrap_or(-1);
        if i64::from(version(&record)) != then {
            return Err(CrmError::Conflict(format!(
                "{} {id} changed since the merge: the merge can no longer be undone",
                object.name
            )));
        }
        merged.push(record);
    }
    Ok((survivor, merged))
}

/// The merge's tombstones go; older ones lead where they led before.
async fn redirect_back(conn: &mut AsyncPgConnection, schema: &str, merge: &Merge) -> Result<()> {
    let mut tombstones = Sql::raw("DELETE FROM ");
    tombstones
        .table(schema, "merged_record")
        .push(" WHERE merge_id = ")
        .bind(Bind::Uuid(Some(merge.id)));
    tombstones.execute(conn).await?;
    for old in merge.repointed.as_array().into_iter().flatten() {
        let (Some(merged), Some(survivor)) = (uuid(&old["merged"]), uuid(&old["survivor"])) else {
            continue;
        };
        let mut back = Sql::raw("UPDATE ");
        back.table(schema, "merged_record")
            .push(" SET survivor_id = ")
            .bind(Bind::Uuid(Some(survivor)));
        back.push(" WHERE merged_id = ").bind(Bind::Uuid(Some(merged)));
        back.execute(conn).await?;
    }
    Ok(())
}

/// References that still point to the survivor go back to the merged
/// record they pointed to; removed contact roles come back.
async fn move_back(conn: &mut AsyncPgConnection, context: &RequestContext, merge: &Merge) -> Result<()> {
    let schema: &str = &context.schema;
    for moved in merge.moved.as_array().into_iter().flatten() {
        let (Some(referring), Some(field)) = (
            moved["object"].as_str().and_then(|o| context.model.object(o)),
            moved["object"]
                .as_str()
                .and_then(|o| context.model.object(o))
                .and_then(|o| o.field(moved["field"].as_str().unwrap_or_default())),
        ) else {
            continue;
        };
        let versioned = referring.field("version").is_some();
        for row in moved["rows"].as_array().into_iter().flatten() {
            let (Some(id), Some(was)) = (uuid(&row[0]), uuid(&row[1])) else {
                continue;
            };
            let mut back = Sql::raw("UPDATE ");
            back.table(schema, &referring.table)
                .push(" t SET ")
                .ident(&field.column)
                .push(" = ");
            back.bind(Bind::Uuid(Some(was)));
            if versioned {
                back.push(", version = t.version + 1, updated_at = now()");
            }
            back.push(" WHERE t.id = ").bind(Bind::Uuid(Some(id)));
            back.push(" AND t.")
                .ident(&field.column)
                .push(" = ")
                .bind(Bind::Uuid(Some(merge.survivor_id)));
            back.execute(conn).await?;
        }
    }
    Ok(())
}

/// Unique values the survivor took go back to the merged records they
/// came from (once the survivor gave them back).
async fn give_back_values(conn: &mut AsyncPgConnection, context: &RequestContext, merge: &Merge) -> Result<()> {
    let schema: &str = &context.schema;
    for removed in merge.removed.as_array().into_iter().flatten() {
        if removed["undo"] != "value" {
            continue;
        }
        let object = removed["object"].as_str().and_then(|o| context.model.object(o));
        let field = object.and_then(|o| o.field(removed["field"].as_str().unwrap_or_default()));
        let (Some(object), Some(field), Some(id)) = (object, field, uuid(&removed["id"])) else {
            continue;
        };
        let Some(value) = crate::records::page::bind_from_json(field, &removed["value"]) else {
            continue;
        };
        let mut back = Sql::raw("UPDATE ");
        back.table(schema, &object.table)
            .push(" SET ")
            .ident(&field.column)
            .push(" = ")
            .bind(value);
        back.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
        back.execute(conn).await?;
    }
    Ok(())
}

/// Contact roles a merge deleted (or made no longer primary) come back.
async fn roles_back(conn: &mut AsyncPgConnection, context: &RequestContext, merge: &Merge) -> Result<()> {
    let schema: &str = &context.schema;
    if let Some(roles) = context.model.object("ContactRole") {
        for removed in merge.removed.as_array().into_iter().flatten() {
            let Some(id) = uuid(&removed["id"]) else {
                continue;
            };
            if removed["undo"] == "value" {
                continue;
            }
            let set = match removed["undo"].as_str() {
                Some("primary") => " SET is_primary = true",
                _ => " SET deleted_at = NULL",
            };
            let mut back = Sql::raw("UPDATE ");
            back.table(schema, &roles.table).push(" r").push(set);
            back.push(", version = r.version + 1, updated_at = now() WHERE r.id = ")
                .bind(Bind::Uuid(Some(id)));
            back.execute(conn).await?;
        }
    }
    Ok(())
}

/// The survivor with the values the merge replaced put back.
async fn restore_values(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    object: &ObjectDef,
    merge: &Merge,
    before: &crate::records::Record,
) -> Result<crate::records::Record> {
    let mut values = Vec::new();
    for (key, value) in merge.survivor_before.as_object().into_iter().flatten() {
        let Some(field) = object.field_by_value_key(key).or_else(|| object.field(key)) else {
            continue;
        };
        let bind = if value.is_null() {
            crate::graphql::input::null_for(field)
        } else {
            match crate::records::page::bind_from_json(field, value) {
                Some(bind) => bind,
                None => continue,
            }
        };
        values.push((field.clone(), bind));
    }
    let after = write::update(
        conn,
        &context.model,
        context.table(object),
        merge.survivor_id,
        &values,
        None,
        &[],
    )
    .await?;
    let scope = context.check_scope(&[]);
    let written = Written {
        before: Some(before),
        record: &after,
    };
    let now = hooks.run_own(conn, &scope, object, written).await?;
    let told = Written {
        before: Some(before),
        record: &now,
    };
    crate::webhooks::told(conn, &scope, object, told).await?;
    Ok(now)
}
