//! Mutations of every object: create, update, delete, restore, batch
//! create and update (one transaction), and upsert by external id.

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldValue, InputObject, InputValue, ResolverContext, TypeRef};
use async_graphql::Value;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::input::{self, Path};
use super::resolve::{arg, context, id_arg, resolved, RequestContext};
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::{upper_first, with_article, words, ObjectDef};
use crate::records::{write, Record};

/// The most records one batch mutation may carry.
pub const MAX_BATCH: usize = 500;

/// All mutation fields of one object.
pub fn fields(object: &Arc<ObjectDef>) -> Vec<Field> {
    vec![
        create(object),
        update(object),
        state_change(object, StateChange::Delete),
        state_change(object, StateChange::Restore),
        batch(object, Batch::Create),
        batch(object, Batch::Update),
        upsert(object),
    ]
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

async fn create_one(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    input: &Value,
    path: &Path,
) -> Result<Record> {
    let values = input::assignments(object, input, path)?;
    write::insert(conn, &context.model, context.table(object), &values, path.parts()).await
}

async fn update_one(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    id: Uuid,
    input: &Value,
    expected_version: Option<&Value>,
    path: &Path,
) -> Result<Record> {
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
    write::update(conn, &context.model, table, id, &values, expected, path.parts()).await
}

fn create(object: &Arc<ObjectDef>) -> Field {
    let name = &object.name;
    let captured = object.clone();
    Field::new(format!("create{name}"), TypeRef::named_nn(name), move |ctx| {
        let object = captured.clone();
        resolved(async move {
            let input = arg(&ctx, "input").cloned().unwrap_or(Value::Null);
            let context = context(&ctx)?;
            let mut conn = context.db.conn().await?;
            let record = create_one(&mut conn, context, &object, &input, &Path::root("input")).await?;
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
            let id = id_arg(&ctx)?;
            let input = arg(&ctx, "input").cloned().unwrap_or(Value::Null);
            let context = context(&ctx)?;
            let mut conn = context.db.conn().await?;
            let expected = arg(&ctx, "expectedVersion");
            let record = update_one(&mut conn, context, &object, id, &input, expected, &Path::root("input")).await?;
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
async fn batch_item(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    object: &ObjectDef,
    batch: Batch,
    at: Path,
    item: &Value,
) -> Result<Record> {
    if batch == Batch::Create {
        return create_one(conn, context, object, item, &at).await;
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
            let items = batch_items(&ctx)?;
            let context = context(&ctx)?;
            let mut conn = context.db.conn().await?;
            let object = &object;
            let records = conn
                .transaction::<_, CrmError, _>(async |conn| {
                    let mut records = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let at = Path::root("inputs").index(i);
                        records.push(batch_item(conn, context, object, batch, at, item).await?);
                    }
                    Ok(records)
                })
                .await?;
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
            let context = context(&ctx)?;
            let mut conn = context.db.conn().await?;
            let table = context.table(&object);
            let external = (field, Bind::Text(Some(external_id)));
            let record = write::upsert(&mut conn, &context.model, table, external, &values, path.parts()).await?;
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
            let id = id_arg(&ctx)?;
            let context = context(&ctx)?;
            let mut conn = context.db.conn().await?;
            let table = context.table(&object);
            let record = match change {
                StateChange::Delete => write::soft_delete(&mut conn, table, id).await?,
                StateChange::Restore => write::restore(&mut conn, table, id).await?,
            };
            Ok(Some(FieldValue::owned_any(record)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The record's id."))
    .description(description)
}
