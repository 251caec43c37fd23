//! Mutations of every object: create, update, delete, restore, batch
//! create and update (one transaction), and upsert by external id.

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldValue, InputObject, InputValue, ResolverContext, TypeRef};
use async_graphql::Value;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::input::{self, Path};
use super::resolve::{arg, context, id_arg, resolved, RequestContext};
use super::room::{RecordHooks, Written};
use crate::access::{self, AdminPermission, Grant, Operation};
use crate::audit::{Action, Entry};
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::{upper_first, with_article, words, Access, FieldDef, ObjectDef};
use crate::records::{self, write, Record};

/// The most records one batch mutation may carry.
pub const MAX_BATCH: usize = 500;

/// All mutation fields of one object (none for what the server records).
/// Users are deactivated, not deleted.
pub fn fields(object: &Arc<ObjectDef>) -> Vec<Field> {
    if !object.writable() {
        return Vec::new();
    }
    let mut fields = vec![create(object), update(object)];
    if object.access == Access::Users {
        fields.push(deactivate(object));
    } else {
        fields.push(state_change(object, StateChange::Delete));
        fields.push(state_change(object, StateChange::Restore));
    }
    fields.extend([
        batch(object, Batch::Create),
        batch(object, Batch::Update),
        upsert(object),
    ]);
    fields
}

/// What rooms do with the records API writes make (see [`RecordHooks`]).
pub fn hooks<'a>(ctx: &'a ResolverContext<'_>) -> &'a RecordHooks {
    static NONE: std::sync::OnceLock<RecordHooks> = std::sync::OnceLock::new();
    ctx.data_opt::<RecordHooks>()
        .unwrap_or_else(|| NONE.get_or_init(RecordHooks::default))
}

/// Refuses with `FORBIDDEN` unless the request's actor may do `operation`
/// on records of `object`; users are managed under `users.manage`.
fn permitted(context: &RequestContext, object: &ObjectDef, operation: Operation) -> Result<Grant> {
    if object.access == Access::Users && operation != Operation::Read {
        access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
        return Ok(Grant::Granted);
    }
    access::require(&context.actor, object, operation)
}

/// Runs `$body` on `$conn`, a connection in a transaction, then the
/// follow-ups the rooms' hooks asked for, and appends the audit entries it
/// gives with its result, `(result, entries)`: the change and its entries
/// are committed together or not at all.
#[macro_export]
macro_rules! audited {
    ($context:expr, |$conn:ident| $body:block) => {{
        let context: &$crate::graphql::resolve::RequestContext = $context;
        let notices = context.notices.len();
        context.state.clear();
        context.rescored.clear();
        let mut conn = context.db.conn().await?;
        let done =
            diesel_async::AsyncConnection::transaction::<_, $crate::error::CrmError, _>(&mut conn, async |$conn| {
                $crate::audit::act_as($conn, &context.trail).await?;
                let (done, entries): (_, Vec<$crate::audit::Entry>) = $body;
                context.follow_ups.run($conn, &context.check_scope(&[])).await?;
                $crate::audit::append($conn, &context.trail, &entries).await?;
                Ok(done)
            })
            .await;
        // What a failed write asked for is not the next one's to do, and
        // what it warned of did not happen.
        context.follow_ups.clear();
        context.state.clear();
        context.rescored.clear();
        if done.is_err() {
            context.notices.truncate(notices);
        }
        done
    }};
}

/// Who created a new record and, unless the input names one, its owner:
/// the actor.
pub fn with_creator(context: &RequestContext, object: &ObjectDef, values: &mut Vec<(FieldDef, Bind)>) {
    let actor = Bind::Uuid(Some(context.actor.user_id));
    if let Some(created_by) = object.field("createdBy") {
        values.push((created_by.clone(), actor.clone()));
    }
    if let Some(owner) = object.field("owner") {
        if !values.iter().any(|(field, _)| field.name == owner.name) {
            values.push((owner.clone(), actor));
        }
    }
}

/// The owner of a record as it was before a change.
fn owner_of(record: &Record) -> Option<Uuid> {
    record.get("ownerId").and_then(|owner| owner.as_str()?.parse().ok())
}

/// See [`access::require_owner`]; nothing to check for a record not found.
fn check_owned(
    context: &RequestContext,
    object: &ObjectDef,
    operation: Operation,
    grant: Grant,
    before: Option<&Record>,
) -> Result<()> {
    match before {
        Some(before) => access::require_owner(&context.actor, object, operation, grant, owner_of(before)),
        None => Ok(()),
    }
}

/// See [`access::require_reassign`]: applies when the change sets `ownerId`.
fn check_reassign(
    context: &RequestContext,
    object: &ObjectDef,
    before: Option<&Record>,
    values: &[(FieldDef, Bind)],
) -> Result<()> {
    let new_owner = values.iter().find_map(|(field, value)| match value {
        Bind::Uuid(owner) if field.name == "owner" => Some(*owner),
        _ => None,
    });
    match (before, new_owner) {
        (Some(before), Some(new_owner)) => {
            access::require_reassign(&context.actor, object, owner_of(before), new_owner)
        }
        _ => Ok(()),
    }
}

/// `AccountUpdate { id input expectedVersion }`: one item of `updateAccounts`.
pub fn update_item_input(object: &ObjectDef) -> InputObject {
    InputObject::new(format!("{}Update", object.name))
        .description(format!("One change of a batch update of {}.", words(&object.plural)))
        .field(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The record to change."))
        .field(
            InputValue::new("input", TypeRef::named_nn(format!("Update{}Input", object.name)))
                .description("The fields to change."),
        )
        .field(
            InputValue::new("expectedVersion", TypeRef::named(TypeRef::INT))
                .description("Refuse the whole batch with CONFLICT unless the record is still at this version."),
        )
}

/// Creates a record of `object` from a create input, as `create<Object>`
/// does: checked, owned, hooked and audited (the entry is the caller's to
/// append).
pub async fn create_one(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    object: &ObjectDef,
    input: &Value,
    path: &Path,
) -> Result<(Record, Entry)> {
    let mut values = input::assignments(object, input, path)?;
    with_creator(context, object, &mut values);
    let record = write::insert(conn, &context.model, context.table(object), &values, path.parts()).await?;
    let written = Written {
        before: None,
        record: &record,
    };
    let (record, audited) = hooks
        .run_audited(conn, &context.check_scope(path.parts()), object, written)
        .await?;
    let entry = records::audit_entry(object, Action::Create, None, &audited);
    Ok((record, entry))
}

/// Changes a record of `object` by an update input, as `update<Object>`
/// does (the audit entry is the caller's to append).
#[allow(clippy::too_many_arguments)]
pub async fn update_one(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    object: &ObjectDef,
    id: Uuid,
    input: &Value,
    expected_version: Option<&Value>,
    path: &Path,
) -> Result<(Record, Entry)> {
    let values = input::assignments(object, input, path)?;
    if values.is_empty() {
        return Err(path.error("input changes no field"));
    }
    let expected = match expected_version {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
            CrmError::bad_input_at(
                path.parts()[..path.parts().len() - 1].to_vec(),
                "expectedVersion is not a version",
            )
        })?),
        Some(_) => return Err(path.error("expectedVersion must be an integer")),
    };
    let table = context.table(object);
    let before = write::lock(conn, table, id).await?;
    check_reassign(context, object, before.as_ref(), &values)?;
    let record = write::update(conn, &context.model, table, id, &values, expected, path.parts()).await?;
    let written = Written {
        before: before.as_ref(),
        record: &record,
    };
    let (record, audited) = hooks
        .run_audited(conn, &context.check_scope(path.parts()), object, written)
        .await?;
    let entry = records::audit_entry(object, Action::Update, before.as_ref(), &audited);
    Ok((record, entry))
}

/// An upsert whose external id belongs to a merged record: it changes the
/// survivor (which the caller must be able to see).
async fn update_survivor(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    object: &ObjectDef,
    survivor: Uuid,
    values: &[(FieldDef, Bind)],
    path: &Path,
) -> Result<(Record, Entry)> {
    let table = context.table(object);
    let before = write::lock(conn, table, survivor).await?.ok_or_else(|| {
        CrmError::Conflict(format!(
            "the {} with this externalId was merged into one you cannot see",
            object.name
        ))
    })?;
    check_reassign(context, object, Some(&before), values)?;
    let record = write::update(conn, &context.model, table, survivor, values, None, path.parts()).await?;
    let written = Written {
        before: Some(&before),
        record: &record,
    };
    let (record, audited) = hooks
        .run_audited(conn, &context.check_scope(path.parts()), object, written)
        .await?;
    let entry = records::audit_entry(object, Action::Update, Some(&before), &audited);
    Ok((record, entry))
}

fn create(object: &Arc<ObjectDef>) -> Field {
    let name = &object.name;
    let captured = object.clone();
    Field::new(format!("create{name}"), TypeRef::named_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let context = context(&ctx)?;
            permitted(context, &object, Operation::Create)?;
            let input = arg(&ctx, "input").cloned().unwrap_or(Value::Null);
            let record = audited!(context, |conn| {
                let hooks = hooks(&ctx);
                let (record, entry) = create_one(conn, context, hooks, &object, &input, &Path::root("input")).await?;
                (record, vec![entry])
            })?;
            Ok(Some(FieldValue::owned_any(record)))
        })
    })
    .argument(
        InputValue::new("input", TypeRef::named_nn(format!("Create{name}Input")))
            .description("The new record's values."),
    )
    .description(format!("Creates {}.", with_article(name)))
}

fn update(object: &Arc<ObjectDef>) -> Field {
    let name = &object.name;
    let captured = object.clone();
    Field::new(format!("update{name}"), TypeRef::named_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let context = context(&ctx)?;
            permitted(context, &object, Operation::Update)?;
            let id = id_arg(&ctx)?;
            let input = arg(&ctx, "input").cloned().unwrap_or(Value::Null);
            let expected = arg(&ctx, "expectedVersion");
            let record = audited!(context, |conn| {
                let path = Path::root("input");
                let hooks = hooks(&ctx);
                let (record, entry) = update_one(conn, context, hooks, &object, id, &input, expected, &path).await?;
                (record, vec![entry])
            })?;
            users_changed(context, &object, &record).await;
            Ok(Some(FieldValue::owned_any(record)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The record's id."))
    .argument(
        InputValue::new("input", TypeRef::named_nn(format!("Update{name}Input"))).description("The fields to change."),
    )
    .argument(
        InputValue::new("expectedVersion", TypeRef::named(TypeRef::INT))
            .description("Refuse the change with CONFLICT unless the record is still at this version."),
    )
    .description(format!("Changes {}; its version goes up by one.", with_article(name)))
}

/// The items of a batch argument, at most [`MAX_BATCH`].
fn batch_items<'a>(ctx: &'a ResolverContext<'_>) -> Result<&'a [Value]> {
    match arg(ctx, "inputs") {
        Some(Value::List(items)) if items.len() <= MAX_BATCH => Ok(items),
        Some(Value::List(items)) => Err(CrmError::bad_input(
            &["inputs"],
            format!("a batch holds at most {MAX_BATCH} records, not {}", items.len()),
        )),
        _ => Err(CrmError::bad_input(&["inputs"], "inputs must be a list")),
    }
}

/// The two batch mutations: `createAccounts` and `updateAccounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    Create,
    Update,
}

/// One record of a batch, at `inputs[i]`.
#[allow(clippy::too_many_arguments)]
async fn batch_item(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    object: &ObjectDef,
    batch: Batch,
    at: Path,
    item: &Value,
) -> Result<(Record, Entry)> {
    if batch == Batch::Create {
        return create_one(conn, context, hooks, object, item, &at).await;
    }
    let Value::Object(item) = item else {
        return Err(at.error("each item is { id, input, expectedVersion }"));
    };
    let id = match item.get("id") {
        Some(Value::String(id)) => input::parse_id(id, &at.at("id"))?,
        _ => return Err(at.at("id").error("id is required")),
    };
    let input = item.get("input").cloned().unwrap_or(Value::Null);
    update_one(
        conn,
        context,
        hooks,
        object,
        id,
        &input,
        item.get("expectedVersion"),
        &at.at("input"),
    )
    .await
}

fn batch(object: &Arc<ObjectDef>, batch: Batch) -> Field {
    let name = &object.name;
    let plural = upper_first(&object.plural);
    let (field, item_type, items, verb) = match batch {
        Batch::Create => (
            format!("create{plural}"),
            format!("Create{name}Input"),
            "The new records",
            "Creates",
        ),
        Batch::Update => (
            format!("update{plural}"),
            format!("{name}Update"),
            "The changes",
            "Changes",
        ),
    };
    let captured = object.clone();
    Field::new(field, TypeRef::named_nn_list_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let context = context(&ctx)?;
            let operation = match batch {
                Batch::Create => Operation::Create,
                Batch::Update => Operation::Update,
            };
            permitted(context, &object, operation)?;
            let items = batch_items(&ctx)?;
            let object = &object;
            let records = audited!(context, |conn| {
                let mut records = Vec::with_capacity(items.len());
                let mut entries = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let at = Path::root("inputs").index(i);
                    let (record, entry) = batch_item(conn, context, hooks(&ctx), object, batch, at, item).await?;
                    records.push(record);
                    entries.push(entry);
                }
                (records, entries)
            })?;
            for record in &records {
                users_changed(context, object, record).await;
            }
            Ok(Some(FieldValue::list(records.into_iter().map(FieldValue::owned_any))))
        })
    })
    .argument(
        InputValue::new("inputs", TypeRef::named_nn_list_nn(item_type))
            .description(format!("{items}, at most {MAX_BATCH}.")),
    )
    .description(format!(
        "{verb} up to {MAX_BATCH} {} in one transaction: all or none. An error names the item by its index.",
        words(&object.plural)
    ))
}

fn upsert(object: &Arc<ObjectDef>) -> Field {
    let name = &object.name;
    let captured = object.clone();
    Field::new(format!("upsert{name}"), TypeRef::named_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let external_id = match arg(&ctx, "externalId") {
                Some(Value::String(id)) if !id.trim().is_empty() && id.chars().count() <= 255 => id.clone(),
                _ => {
                    return Err(CrmError::bad_input(
                        &["externalId"],
                        "externalId must be 1 to 255 characters",
                    ))
                }
            };
            let context = context(&ctx)?;
            permitted(context, &object, Operation::Create)?;
            permitted(context, &object, Operation::Update)?;
            let input = arg(&ctx, "input").cloned().unwrap_or(Value::Null);
            let path = Path::root("input");
            let mut values = input::assignments(&object, &input, &path)?;
            let field = object
                .field("externalId")
                .ok_or_else(|| CrmError::internal(format_args!("{} has no externalId", object.name)))?
                .clone();
            if let Some((_, value)) = values.iter().find(|(f, _)| f.name == "externalId") {
                if *value != Bind::Text(Some(external_id.clone())) {
                    return Err(path
                        .at("externalId")
                        .error("input.externalId differs from the externalId argument"));
                }
            }
            values.retain(|(f, _)| f.name != "externalId");
            let table = context.table(&object);
            let external = (field, Bind::Text(Some(external_id)));
            let record = audited!(context, |conn| {
                // Found among all rows (the external id is unique among them),
                // then changed only if the request may see it.
                let (field, value) = &external;
                let every = table.unrestricted();
                let before = write::lock_where(conn, every, &field.column, value.clone()).await?;
                // A merged record's external id changes its survivor.
                let merged_into = match before.as_ref().and_then(crate::records::record_id) {
                    Some(id) => crate::records::merged::survivor_of(conn, &context.schema, &object, id).await?,
                    None => None,
                };
                if let Some(survivor) = merged_into {
                    let (record, entry) =
                        update_survivor(conn, context, hooks(&ctx), &object, survivor, &values, &path).await?;
                    (record, vec![entry])
                } else {
                    if let (Some(found), Some(_)) = (&before, table.visible()) {
                        let id =
                            crate::records::record_id(found).ok_or_else(|| CrmError::internal("record without id"))?;
                        if write::lock(conn, table, id).await?.is_none() {
                            return Err(CrmError::Conflict(format!(
                                "another {} already has this externalId",
                                object.name
                            )));
                        }
                    }
                    let action = match &before {
                        None => {
                            with_creator(context, &object, &mut values);
                            Action::Create
                        }
                        Some(before) if before.get("deletedAt").is_some_and(|at| !at.is_null()) => {
                            // Bringing a deleted record back is a restore, whatever the path.
                            let grant = permitted(context, &object, Operation::Restore)?;
                            check_owned(context, &object, Operation::Restore, grant, Some(before))?;
                            Action::Restore
                        }
                        Some(_) => Action::Update,
                    };
                    check_reassign(context, &object, before.as_ref(), &values)?;
                    let record = write::upsert(conn, &context.model, table, external, &values, path.parts()).await?;
                    let scope = context.check_scope(path.parts());
                    let written = Written {
                        before: before.as_ref(),
                        record: &record,
                    };
                    let (record, audited) = hooks(&ctx).run_audited(conn, &scope, &object, written).await?;
                    let entry = records::audit_entry(&object, action, before.as_ref(), &audited);
                    (record, vec![entry])
                }
            })?;
            users_changed(context, &object, &record).await;
            Ok(Some(FieldValue::owned_any(record)))
        })
    })
    .argument(
        InputValue::new("externalId", TypeRef::named_nn(TypeRef::STRING))
            .description("The record's id in the other system."),
    )
    .argument(
        InputValue::new("input", TypeRef::named_nn(format!("Create{name}Input")))
            .description("The values to create with, or to change."),
    )
    .description(format!(
        "Creates {} with this externalId, or changes the one that has it (restoring it if deleted): \
         for integrations that sync from another system.",
        with_article(name)
    ))
}

/// `deactivateUser(id)`: the user keeps their records but their tokens
/// stop working at once.
fn deactivate(object: &Arc<ObjectDef>) -> Field {
    let name = &object.name;
    let captured = object.clone();
    Field::new(format!("deactivate{name}"), TypeRef::named_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let context = context(&ctx)?;
            permitted(context, &object, Operation::Update)?;
            let id = id_arg(&ctx)?;
            if id == context.actor.user_id {
                return Err(CrmError::bad_input(
                    &["id"],
                    "you cannot deactivate yourself; another admin can",
                ));
            }
            let active = object
                .field("active")
                .ok_or_else(|| CrmError::internal(format_args!("{} has no active field", object.name)))?
                .clone();
            let record = audited!(context, |conn| {
                let table = context.table(&object);
                let before = write::lock(conn, table, id).await?;
                let values = [(active, Bind::Bool(Some(false)))];
                let record = write::update(conn, &context.model, table, id, &values, None, &[]).await?;
                let entry = records::audit_entry(&object, Action::Deactivate, before.as_ref(), &record);
                (record, vec![entry])
            })?;
            users_changed(context, &object, &record).await;
            Ok(Some(FieldValue::owned_any(record)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The user's id."))
    .description(format!(
        "Deactivates a {name}: they keep their records, their API tokens stop working at once. \
         `update{name}(input: {{ active: true }})` reactivates them."
    ))
}

/// A changed user's tokens are checked again on their next request (their
/// role or active flag may have changed), here and on every other server.
async fn users_changed(context: &RequestContext, object: &ObjectDef, record: &Record) {
    if object.access != Access::Users {
        return;
    }
    let Some(id) = crate::records::record_id(record) else {
        return;
    };
    if let Some(authenticator) = &context.authenticator {
        authenticator.forget_user(id);
    }
    let announced = match context.db.conn().await {
        Ok(mut conn) => crate::notify::announce(&mut conn, &crate::notify::Announcement::UserChanged { id }).await,
        Err(err) => Err(err),
    };
    if let Err(err) = announced {
        tracing::warn!(%err, user = %id, "other servers will see the user's change when their token cache expires");
    }
}

/// Soft delete and restore: the two changes of a record's life state.
#[derive(Debug, Clone, Copy)]
enum StateChange {
    Delete,
    Restore,
}

fn state_change(object: &Arc<ObjectDef>, change: StateChange) -> Field {
    let name = &object.name;
    let (verb, description) = match change {
        StateChange::Delete => (
            "delete",
            format!("Deletes {}; `restore{name}` brings it back.", with_article(name)),
        ),
        StateChange::Restore => ("restore", format!("Restores a deleted {name}.")),
    };
    let captured = object.clone();
    Field::new(format!("{verb}{name}"), TypeRef::named_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let context = context(&ctx)?;
            let (operation, action) = match change {
                StateChange::Delete => (Operation::Delete, Action::Delete),
                StateChange::Restore => (Operation::Restore, Action::Restore),
            };
            let grant = permitted(context, &object, operation)?;
            let id = id_arg(&ctx)?;
            let table = context.table(&object);
            let record = audited!(context, |conn| {
                let before = write::lock(conn, table, id).await?;
                check_owned(context, &object, operation, grant, before.as_ref())?;
                if matches!(change, StateChange::Restore) {
                    if let Some(survivor) =
                        crate::records::merged::survivor_of(conn, &context.schema, &object, id).await?
                    {
                        return Err(CrmError::Conflict(format!(
                            "{} {id} was merged into {survivor}: unmergeRecords brings it back",
                            object.name
                        )));
                    }
                }
                let record = match change {
                    StateChange::Delete => write::soft_delete(conn, table, id).await?,
                    // What it says must still mean something: hooks see it.
                    StateChange::Restore => write::restore(conn, table, id).await?,
                };
                let written = Written {
                    before: before.as_ref(),
                    record: &record,
                };
                let (record, audited) = hooks(&ctx)
                    .run_audited(conn, &context.check_scope(&[]), &object, written)
                    .await?;
                let entry = records::audit_entry(&object, action, before.as_ref(), &audited);
                (record, vec![entry])
            })?;
            Ok(Some(FieldValue::owned_any(record)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The record's id."))
    .description(description)
}
