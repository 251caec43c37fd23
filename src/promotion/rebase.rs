//! A promoted sandbox after its promotion: it takes production's new
//! metadata as its base and agrees with it item by item, ids included, so
//! its next diff shows only its own new work. Where the sandbox and
//! production each made the same item (a change already applied, a
//! conflict resolved, an item matched by name), the sandbox's item takes
//! production's id, and whatever refers to it follows. When that promotion
//! is reverted, the sandbox's changes show again.

use std::collections::BTreeSet;

use diesel::sql_types::{Jsonb, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::apply::{self, Entry, Side};
use crate::audit::Trail;
use crate::db::migrate::PRODUCTION_SCHEMA;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::checked_value;
use crate::graphql::Rooms;
use crate::metadata::change::Target;
use crate::metadata::kinds::{self, deleted, Change, Item, Kind, Snapshot};
use crate::metadata::Model;
use crate::notify::{self, Announcement};
use crate::sandbox;

/// An item a promotion touched: its kind and its id in production.
pub(super) type Touched = (Kind, String);

/// Columns that hold a row's id without a foreign key: a custom field's
/// kept converted values. (Foreign keys are found in the catalog.)
const UNKEYED: [(&str, &str, &str); 2] = [
    ("custom_field", "field_conversion", "field_id"),
    ("custom_field", "converted_value", "field_id"),
];

/// The items the entries of a promotion are about, by their id in the
/// target: its changes (of any status) and the target's own changes.
pub(super) fn touched<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<Touched> {
    entries
        .into_iter()
        .map(|e| {
            let id = e.current.as_ref().map_or(&e.change.id, |c| &c.id);
            (e.change.kind, id.clone())
        })
        .collect()
}

/// Gives a promoted sandbox production's new metadata as its base. The
/// sandbox's items that are production's under another id take
/// production's id; then every item the promotion touched (`touched`)
/// becomes in the sandbox what it is in production (production's version
/// winning), so the next diff shows only the sandbox's own new work. When
/// the sandbox's data refuses that, the sandbox keeps its old base (and
/// shows PRODUCTION_CHANGED).
pub(super) async fn rebase(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    rooms: Rooms,
    name: &str,
    touched: Vec<Touched>,
) -> Result<bool> {
    let schema = sandbox::schema_of(name);
    let in_sandbox = Trail {
        workspace: name.to_owned(),
        ..trail.clone()
    };
    let check = |model: &Model| apply::built(rooms, model).map(drop);
    let target = Target {
        schema: &schema,
        trail: &in_sandbox,
        check: &check,
        value: &checked_value,
        replaying: false,
        rehearsal: false,
        lock_timeout: None,
    };
    let rebased = conn
        .transaction::<_, CrmError, _>(async |conn| {
            let production = Snapshot::read(conn, PRODUCTION_SCHEMA).await?;
            let mut touched = touched;
            let adopted = adopt_ids(conn, &schema, &production, &mut touched).await?;
            let sandbox_now = Snapshot::read(conn, &schema).await?;
            let changes = agreeing(&sandbox_now, &production, touched);
            let resolutions: Vec<(String, Side)> = changes.iter().map(|c| (apply::key_of(c), Side::Source)).collect();
            let mut entries = apply::plan(changes, &sandbox_now, &resolutions);
            apply::run(conn, &target, &mut entries, None).await?;
            if let Some(refused) = entries.iter().find(|e| e.blocks()) {
                return Err(CrmError::Conflict(format!(
                    "{} does not apply in the sandbox",
                    refused.change.target
                )));
            }
            // What follows the changes (lead scores) follows them here too.
            let applied: Vec<kinds::Change> = entries
                .iter()
                .filter(|e| e.status == apply::Status::Ready)
                .map(|e| e.change.clone())
                .collect();
            rooms.after_promotion(conn, &schema, &applied).await?;
            let mut update = Sql::raw("UPDATE crm_system.workspace SET base_version = s.metadata_version, base = ");
            update.append(&kinds::document(PRODUCTION_SCHEMA)).push(" FROM ");
            update
                .table(PRODUCTION_SCHEMA, "workspace_settings")
                .push(" AS s WHERE name = ");
            update.bind(Bind::Text(Some(name.to_owned())));
            update.execute(conn).await?;
            if adopted {
                // Cached schemas of the sandbox know its items by their old ids.
                let replaced = Announcement::WorkspaceReplaced {
                    workspace: name.to_owned(),
                };
                notify::announce(conn, &replaced).await?;
            }
            Ok(())
        })
        .await;
    match rebased {
        Ok(()) => Ok(true),
        Err(CrmError::Internal { reference }) => Err(CrmError::Internal { reference }),
        Err(err) => {
            tracing::warn!(sandbox = name, %err, "the promoted sandbox keeps its old base");
            Ok(false)
        }
    }
}

/// Gives each of the sandbox's items that is one of production's under
/// another id production's id, with everything that refers to it, and
/// adds it to `touched`. Returns whether an id changed.
async fn adopt_ids(
    conn: &mut AsyncPgConnection,
    schema: &str,
    production: &Snapshot,
    touched: &mut Vec<Touched>,
) -> Result<bool> {
    let sandbox_now = Snapshot::read(conn, schema).await?;
    let mut adopted = false;
    for (ours, theirs) in same_items(&sandbox_now, production) {
        let Some(table) = ours.kind.def().table() else {
            continue;
        };
        let (Ok(from), Ok(to)) = (Uuid::parse_str(&ours.id), Uuid::parse_str(&theirs.id)) else {
            continue;
        };
        move_id(conn, schema, table, from, to).await?;
        touched.push((theirs.kind, theirs.id.clone()));
        adopted = true;
    }
    Ok(adopted)
}

/// The sandbox's items that are production's under another id: of the
/// same kind and name, while neither id is known on the other side.
fn same_items<'a>(sandbox: &'a Snapshot, production: &'a Snapshot) -> Vec<(&'a Item, &'a Item)> {
    let mut taken = BTreeSet::new();
    let mut pairs = Vec::new();
    for ours in sandbox.items.values() {
        if production.get(ours.kind, &ours.id).is_some() {
            continue;
        }
        let frees_name = ours.kind.def().deleted_frees_name();
        let theirs = production
            .items
            .values()
            .filter(|p| p.kind == ours.kind && p.target == ours.target && sandbox.get(p.kind, &p.id).is_none())
            .filter(|p| !frees_name || !deleted(&p.state) && !deleted(&ours.state))
            .filter(|p| !taken.contains(&(p.kind, p.id.as_str())))
            .min_by_key(|p| deleted(&p.state) != deleted(&ours.state));
        if let Some(theirs) = theirs {
            taken.insert((theirs.kind, theirs.id.as_str()));
            pairs.push((ours, theirs));
        }
    }
    pairs
}

/// Gives the row `from` of `table` in `schema` the id `to`, in one
/// statement with every row referring to it by a foreign key (a stage's
/// pipeline, a deal's stage, a lookup) or by an unkeyed column, and the
/// metadata history's entries about it.
async fn move_id(conn: &mut AsyncPgConnection, schema: &str, table: &str, from: Uuid, to: Uuid) -> Result<()> {
    let mut referring = foreign_keys(conn, schema, table).await?;
    let keyed: Vec<String> = referring.iter().map(|(t, _)| t.clone()).collect();
    referring.extend(
        UNKEYED
            .iter()
            .filter(|(of, _, _)| *of == table)
            .map(|(_, t, c)| ((*t).to_owned(), (*c).to_owned())),
    );
    // The workspace's rules (a stage stays in its pipeline, a deal takes
    // its stage's state) would see the row half moved.
    triggers(conn, schema, &keyed, "DISABLE").await?;
    let mut update = Sql::raw("WITH moved AS (UPDATE ");
    update
        .table(schema, table)
        .push(" SET id = ")
        .bind(Bind::Uuid(Some(to)));
    update.push(" WHERE id = ").bind(Bind::Uuid(Some(from)));
    update.push(" RETURNING id)");
    for (i, (referrer, column)) in referring.iter().enumerate() {
        update.push(&format!(", r{i} AS (UPDATE ")).table(schema, referrer);
        update
            .push(" SET ")
            .ident(column)
            .push(" = ")
            .bind(Bind::Uuid(Some(to)));
        update
            .push(" WHERE ")
            .ident(column)
            .push(" = ")
            .bind(Bind::Uuid(Some(from)));
        update.push(" AND EXISTS (SELECT 1 FROM moved))");
    }
    update.push(" SELECT count(*) FROM moved");
    update.execute(conn).await?;
    triggers(conn, schema, &keyed, "ENABLE").await?;
    for side in ["before", "after"] {
        let mut history = Sql::raw("UPDATE ");
        history.table(schema, "metadata_change").push(" SET ").ident(side);
        history.push(" = jsonb_set(").ident(side).push(", '{id}', to_jsonb(");
        history
            .bind(Bind::Text(Some(to.to_string())))
            .push(")) WHERE ")
            .ident(side);
        history.push("->>'id' = ").bind(Bind::Text(Some(from.to_string())));
        history.execute(conn).await?;
    }
    Ok(())
}

/// The tables of `schema` (and their columns) whose foreign keys refer to
/// `table`.
async fn foreign_keys(conn: &mut AsyncPgConnection, schema: &str, table: &str) -> Result<Vec<(String, String)>> {
    #[derive(diesel::QueryableByName)]
    struct Reference {
        #[diesel(sql_type = Text)]
        referrer: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let mut query = Sql::raw(
        "SELECT r.relname::text AS referrer, a.attname::text AS column_name FROM pg_constraint c \
         JOIN pg_class r ON r.oid = c.conrelid \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
         WHERE c.contype = 'f' AND r.relnamespace = ",
    );
    query.bind(Bind::Text(Some(schema.to_owned()))).push("::regnamespace");
    query.push(" AND c.confrelid = to_regclass(format('%I.%I', ");
    query.bind(Bind::Text(Some(schema.to_owned()))).push("::text, ");
    query
        .bind(Bind::Text(Some(table.to_owned())))
        .push("::text)) ORDER BY 1, 2");
    let rows: Vec<Reference> = query.load(conn).await?;
    Ok(rows.into_iter().map(|r| (r.referrer, r.column_name)).collect())
}

/// Turns the user triggers of `tables` off or back on (`DISABLE`,
/// `ENABLE`), within the transaction.
async fn triggers(conn: &mut AsyncPgConnection, schema: &str, tables: &[String], how: &str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for table in tables.iter().filter(|t| seen.insert(t.as_str())) {
        let mut alter = Sql::raw("ALTER TABLE ");
        alter.table(schema, table).push(&format!(" {how} TRIGGER USER"));
        alter.execute(conn).await?;
    }
    Ok(())
}

/// What makes each `touched` item of the sandbox what it is in
/// production: its state, or its addition, or its deletion when
/// production has it no more.
fn agreeing(sandbox: &Snapshot, production: &Snapshot, mut touched: Vec<Touched>) -> Vec<Change> {
    touched.sort();
    touched.dedup();
    let mut changes = Vec::new();
    for (kind, id) in touched {
        let (before, after, target) = match (sandbox.get(kind, &id), production.get(kind, &id)) {
            (Some(ours), Some(theirs)) if ours.state != theirs.state => {
                (Some(ours.state.clone()), theirs.state.clone(), theirs.target.clone())
            }
            (None, Some(theirs)) if !deleted(&theirs.state) => (None, theirs.state.clone(), theirs.target.clone()),
            (Some(ours), None) if !deleted(&ours.state) => {
                let mut gone = ours.state.clone();
                gone["deleted"] = json!(true);
                (Some(ours.state.clone()), gone, ours.target.clone())
            }
            _ => continue,
        };
        let position = production.get(kind, &id).and_then(|item| item.position);
        changes.push(Change {
            kind,
            target,
            id,
            before,
            after,
            renamed_options: Vec::new(),
            position,
        });
    }
    changes
}

/// After the revert of promotion `reverted`: when it promoted a sandbox
/// whose base is still what that promotion made, the sandbox's base
/// becomes production's metadata now without the items the promotion
/// added, so the sandbox shows its changes again (the revert undid them in
/// production) instead of the revert as production's own change.
pub(super) async fn restore_base(conn: &mut AsyncPgConnection, reverted: Uuid) -> Result<()> {
    let Some(promotion) = super::find(conn, reverted).await? else {
        return Ok(());
    };
    let (Some(name), Some(version_after)) = (promotion["source"].as_str(), promotion["versionAfter"].as_i64()) else {
        return Ok(());
    };
    if promotion["kind"] != json!("SANDBOX") || promotion["workspace"] != json!("production") {
        return Ok(());
    }
    let mut base = production_document(conn).await?;
    let added = promotion["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["before"].is_null());
    for change in added {
        let Ok(kind) = serde_json::from_value::<Kind>(change["kind"].clone()) else {
            continue;
        };
        if let Some(rows) = base[kind.def().about().key].as_array_mut() {
            rows.retain(|row| row["id"] != change["id"]);
        }
    }
    let version = base["version"].as_i64().and_then(|v| i32::try_from(v).ok());
    let mut update = Sql::raw("UPDATE crm_system.workspace SET base_version = ");
    update
        .bind(Bind::Int(version))
        .push(", base = ")
        .bind(Bind::Json(Some(base)));
    update
        .push(" WHERE kind = 'sandbox' AND name = ")
        .bind(Bind::Text(Some(name.to_owned())));
    update
        .push(" AND base_version = ")
        .bind(Bind::Int(i32::try_from(version_after).ok()));
    update.execute(conn).await?;
    Ok(())
}

/// Production's metadata document now.
async fn production_document(conn: &mut AsyncPgConnection) -> Result<Json> {
    #[derive(diesel::QueryableByName)]
    struct Doc {
        #[diesel(sql_type = Jsonb)]
        doc: Json,
    }
    let mut query = Sql::raw("SELECT ");
    query.append(&kinds::document(PRODUCTION_SCHEMA)).push(" AS doc FROM ");
    query.table(PRODUCTION_SCHEMA, "workspace_settings").push(" AS s");
    let rows: Vec<Doc> = query.load(conn).await?;
    rows.into_iter()
        .next()
        .map(|row| row.doc)
        .ok_or_else(|| CrmError::internal("production's workspace_settings is empty"))
}
