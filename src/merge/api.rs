//! `mergeRecords`, `unmergeRecords` and `RecordMerge`.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef};
use async_graphql::Value;
use uuid::Uuid;

use super::{moved_counts, Merged, Request, MAX_MERGED};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::mutation::hooks;
use crate::graphql::resolve::{arg, context, resolved, text_arg, timestamp};
use crate::graphql::room::Surface;
use crate::metadata::{Access, ObjectDef};

/// Adds the two mutations and their types.
pub fn register(surface: &mut Surface) {
    surface.input(
        InputObject::new("MergeFieldChoice")
            .description("Which record's value the survivor takes for a field.")
            .field(
                InputValue::new("field", TypeRef::named_nn(TypeRef::STRING))
                    .description("The field's API name: `email`, `accountId`."),
            )
            .field(
                InputValue::new("recordId", TypeRef::named_nn(TypeRef::ID))
                    .description("The survivor or one of the merged records."),
            ),
    );
    surface.object(
        Object::new("MovedReferences")
            .description("References a merge moved to the survivor, of one field.")
            .field(
                moved_field("object", TypeRef::named_nn(TypeRef::STRING), |m| {
                    Value::String(m.0.clone())
                })
                .description("The referring object: `Activity`."),
            )
            .field(
                moved_field("field", TypeRef::named_nn(TypeRef::STRING), |m| {
                    Value::String(m.1.clone())
                })
                .description("Its lookup: `contact`."),
            )
            .field(
                moved_field("count", TypeRef::named_nn(TypeRef::INT), |m| Value::from(m.2))
                    .description("How many records now refer to the survivor."),
            ),
    );
    surface.object(merge_type());
    surface.mutations(vec![merge_field(), unmerge_field()]);
}

type Moved = (String, String, usize);

fn moved_field(name: &str, type_ref: TypeRef, get: fn(&Moved) -> Value) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let moved = ctx.parent_value.try_downcast_ref::<Moved>();
        FieldFuture::from_value(moved.ok().map(get))
    })
}

/// A merge on its way to `RecordMerge`.
struct MergeValue {
    merged: Merged,
    dry_run: bool,
}

fn merge_field_of(name: &str, type_ref: TypeRef, get: fn(&MergeValue) -> Option<Value>) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let merge = ctx.parent_value.try_downcast_ref::<MergeValue>();
        FieldFuture::from_value(merge.ok().and_then(get))
    })
}

fn merge_type() -> Object {
    Object::new("RecordMerge")
        .description("Records merged into one survivor.")
        .field(
            merge_field_of("id", TypeRef::named_nn(TypeRef::ID), |m| {
                Some(Value::String(m.merged.merge.id.to_string()))
            })
            .description("The merge: `unmergeRecords(id:)` undoes it."),
        )
        .field(
            merge_field_of("object", TypeRef::named_nn(TypeRef::STRING), |m| {
                Some(Value::String(m.merged.merge.object.clone()))
            })
            .description("The records' object."),
        )
        .field(
            Field::new("survivor", TypeRef::named_nn("AnyRecord"), |ctx| {
                resolved(async move {
                    let merge = ctx.parent_value.try_downcast_ref::<MergeValue>()?;
                    Ok(Some(
                        FieldValue::owned_any(merge.merged.survivor.clone())
                            .with_type(merge.merged.merge.object.clone()),
                    ))
                })
            })
            .description("The survivor as it now stands."),
        )
        .field(
            merge_field_of("mergedIds", TypeRef::named_nn_list_nn(TypeRef::ID), |m| {
                Some(Value::List(
                    m.merged
                        .merge
                        .merged_ids
                        .iter()
                        .map(|id| Value::String(id.to_string()))
                        .collect(),
                ))
            })
            .description("The records merged into it: deleted, their ids lead to the survivor."),
        )
        .field(
            Field::new("moved", TypeRef::named_nn_list_nn("MovedReferences"), |ctx| {
                resolved(async move {
                    let merge = ctx.parent_value.try_downcast_ref::<MergeValue>()?;
                    Ok(Some(FieldValue::list(
                        moved_counts(&merge.merged.merge).into_iter().map(FieldValue::owned_any),
                    )))
                })
            })
            .description("References moved to the survivor, by object and field."),
        )
        .field(
            merge_field_of("removedContactRoles", TypeRef::named_nn(TypeRef::INT), |m| {
                Some(Value::from(m.merged.merge.removed.as_array().map_or(0, |r| {
                    r.iter().filter(|e| e["object"] == "ContactRole").count()
                })))
            })
            .description(
                "Contact roles that would have repeated one of the survivor's: deleted (or no longer primary).",
            ),
        )
        .field(
            merge_field_of("at", TypeRef::named_nn("DateTime"), |m| {
                Some(timestamp(m.merged.merge.created_at))
            })
            .description("When it was made."),
        )
        .field(
            merge_field_of("undoneAt", TypeRef::named("DateTime"), |m| {
                m.merged.merge.undone_at.map(timestamp)
            })
            .description("When it was undone; null while it stands."),
        )
        .field(
            merge_field_of("dryRun", TypeRef::named_nn(TypeRef::BOOLEAN), |m| {
                Some(Value::from(m.dry_run))
            })
            .description("Nothing was saved: this is what it would do."),
        )
}

/// The object named by the `object` argument, if its records can be merged.
fn mergeable<'a>(context: &'a crate::graphql::resolve::RequestContext, name: &str) -> Result<&'a ObjectDef> {
    context
        .model
        .object(name)
        .filter(|o| o.access == Access::Record && o.schema.is_none())
        .map(AsRef::as_ref)
        .ok_or_else(|| {
            CrmError::bad_input(
                &["object"],
                format!("{name} is not an object whose records can be merged"),
            )
        })
}

fn dry_run(ctx: &async_graphql::dynamic::ResolverContext<'_>) -> bool {
    matches!(arg(ctx, "dryRun"), Some(Value::Boolean(true)))
}

fn request_of(ctx: &async_graphql::dynamic::ResolverContext<'_>, object: &ObjectDef) -> Result<Request> {
    let id_at = |value: Option<&Value>, path: &Path| -> Result<Uuid> {
        match value {
            Some(Value::String(text)) => input::parse_id(text, path),
            _ => Err(path.error("an id is required")),
        }
    };
    let survivor = id_at(arg(ctx, "survivorId"), &Path::root("survivorId"))?;
    let merged_path = Path::root("mergedIds");
    let Some(Value::List(items)) = arg(ctx, "mergedIds") else {
        return Err(merged_path.error("mergedIds is a list of ids"));
    };
    if items.is_empty() || items.len() > MAX_MERGED {
        return Err(merged_path.error(format!("a merge folds 1 to {MAX_MERGED} records into the survivor")));
    }
    let mut merged = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = merged_path.index(i);
        let id = id_at(Some(item), &at)?;
        if id == survivor || merged.contains(&id) {
            return Err(at.error("each merged record is another record, named once"));
        }
        merged.push(id);
    }
    let mut choices = Vec::new();
    if let Some(Value::List(items)) = arg(ctx, "fieldChoices") {
        for (i, item) in items.iter().enumerate() {
            let at = Path::root("fieldChoices").index(i);
            let Value::Object(item) = item else {
                return Err(at.error("each choice is { field, recordId }"));
            };
            let name = match item.get("field") {
                Some(Value::String(name)) => name.clone(),
                _ => return Err(at.at("field").error("field is required")),
            };
            let field = object
                .field(&name)
                .or_else(|| object.field_by_value_key(&name))
                .filter(|f| !f.system && f.name != "externalId")
                .ok_or_else(|| {
                    at.at("field")
                        .error(format!("{} has no field {name} a merge can choose", object.name))
                })?;
            let from = id_at(item.get("recordId"), &at.at("recordId"))?;
            if from != survivor && !merged.contains(&from) {
                return Err(at.at("recordId").error("the survivor or one of the merged records"));
            }
            if choices
                .iter()
                .any(|(f, _): &(crate::metadata::FieldDef, Uuid)| f.name == field.name)
            {
                return Err(at.at("field").error(format!("{name} is chosen twice")));
            }
            choices.push((field.clone(), from));
        }
    }
    Ok(Request {
        survivor,
        merged,
        choices,
    })
}

fn merge_field() -> Field {
    Field::new("mergeRecords", TypeRef::named_nn("RecordMerge"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let object = mergeable(context, &text_arg(&ctx, "object")?)?;
            crate::access::require(&context.actor, object, crate::access::Operation::Update)?;
            crate::access::require(&context.actor, object, crate::access::Operation::Delete)?;
            let request = request_of(&ctx, object)?;
            let dry_run = dry_run(&ctx);
            let mut rehearsed = None;
            let done = crate::audited!(context, |conn| {
                let (merged, entries) = super::merge(conn, context, hooks(&ctx), object, &request).await?;
                if dry_run {
                    rehearsed = Some(MergeValue { merged, dry_run });
                    // Undoes every write; the answer is kept above.
                    return Err(CrmError::Conflict("dry run".into()));
                }
                (MergeValue { merged, dry_run }, entries)
            });
            answer(rehearsed, done)
        })
    })
    .argument(
        InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The records' object: `Contact`."),
    )
    .argument(InputValue::new("survivorId", TypeRef::named_nn(TypeRef::ID)).description("The record that stays."))
    .argument(
        InputValue::new("mergedIds", TypeRef::named_nn_list_nn(TypeRef::ID))
            .description(format!("The records folded into it, 1 to {MAX_MERGED}.")),
    )
    .argument(
        InputValue::new("fieldChoices", TypeRef::named_nn_list("MergeFieldChoice"))
            .description("Fields the survivor takes from another record; it keeps its own values for the rest."),
    )
    .argument(
        InputValue::new("dryRun", TypeRef::named(TypeRef::BOOLEAN))
            .default_value(false)
            .description("Answer what the merge would do, and change nothing."),
    )
    .description(
        "Merges duplicates into one survivor, in one transaction: it takes the chosen values, every reference to the \
         merged records (lookups of every object, contact roles, activities, stage history) moves to it, and the \
         merged records are deleted, their ids and external ids leading to the survivor. Audited; \
         `unmergeRecords` undoes it while nothing has changed since.",
    )
}

fn unmerge_field() -> Field {
    Field::new("unmergeRecords", TypeRef::named_nn("RecordMerge"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let id = match arg(&ctx, "id") {
                Some(Value::String(text)) => input::parse_id(text, &Path::root("id"))?,
                _ => return Err(CrmError::bad_input(&["id"], "id is required")),
            };
            let dry_run = dry_run(&ctx);
            let mut rehearsed = None;
            let done = crate::audited!(context, |conn| {
                let (merged, entries) = super::undo::unmerge(conn, context, hooks(&ctx), id).await?;
                if dry_run {
                    rehearsed = Some(MergeValue { merged, dry_run });
                    // Undoes every write; the answer is kept above.
                    return Err(CrmError::Conflict("dry run".into()));
                }
                (MergeValue { merged, dry_run }, entries)
            });
            answer(rehearsed, done)
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The merge (`RecordMerge.id`)."))
    .argument(
        InputValue::new("dryRun", TypeRef::named(TypeRef::BOOLEAN))
            .default_value(false)
            .description("Answer what undoing it would do, and change nothing."),
    )
    .description(
        "Undoes a merge while the survivor and the merged records are as it left them: the merged records come \
         back, the survivor's values and the references still pointing to it return, and so do removed contact roles.",
    )
}

/// A merge's answer: a dry run's was kept before its transaction rolled back.
fn answer(rehearsed: Option<MergeValue>, done: Result<MergeValue>) -> Result<Option<FieldValue<'static>>> {
    match rehearsed {
        Some(value) => Ok(Some(FieldValue::owned_any(value))),
        None => done.map(|value| Some(FieldValue::owned_any(value))),
    }
}
