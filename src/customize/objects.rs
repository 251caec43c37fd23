//! Mutations on custom objects: `createCustomObject`, `updateCustomObject`
//! and the delete, restore and purge lifecycle. Each answers with the
//! object as stored after the change.

use async_graphql::dynamic::{Field, InputValue, TypeRef};
use async_graphql::Value;

use super::definitions::object_answer;
use super::fields::field_spec;
use super::inputs::{object_arg, optional_text, required_text, Map};
use super::{admin, with_target, Boxed};
use crate::error::Result;
use crate::graphql::input::Path;
use crate::graphql::resolve::{resolved, text_arg};
use crate::metadata::change::{self, ObjectPatch, ObjectSpec, Target};
use crate::metadata::custom::StoredObject;

/// Mutation fields for custom objects: create, update, delete, restore and
/// purge.
pub(super) fn mutation_fields() -> Vec<Field> {
    vec![
        Field::new("createCustomObject", TypeRef::named_nn("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let spec = object_spec(object_arg(&ctx, "input")?)?;
                let stored = with_target(context, &["input", "name"], async |conn, target| {
                    change::create_object(conn, target, spec).await
                })
                .await?;
                object_answer(context, &stored).await
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("CreateCustomObjectInput")).description("The object."))
        .description(
            "Adds a custom object: its own table and the full API of a standard object (queries, filters, sorts, \
             create, update, batch, upsert, delete, restore) with every record field (id, name, owner, externalId …). \
             Admins only.",
        ),
        Field::new("updateCustomObject", TypeRef::named_nn("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let input = object_arg(&ctx, "input")?;
                let patch = ObjectPatch {
                    label: optional_text(input, "label"),
                    plural_label: optional_text(input, "pluralLabel"),
                    description: optional_text(input, "description"),
                };
                let stored = with_target(context, &["input"], async |conn, target| {
                    change::update_object(conn, target, &name, patch).await
                })
                .await?;
                object_answer(context, &stored).await
            })
        })
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom object."))
        .argument(InputValue::new("input", TypeRef::named_nn("UpdateCustomObjectInput")).description("The changes."))
        .description("Changes a custom object's labels and description. Admins only."),
        object_lifecycle("deleteCustomObject", "Deletes a custom object: gone from the API at once, its records kept until purgeCustomObject (restoreCustomObject brings it back). Refused while other objects' lookups refer to it. Admins only.", |conn, target, name| {
            Box::pin(async move { change::delete_object(conn, target, &name).await })
        }),
        object_lifecycle("restoreCustomObject", "Restores a deleted custom object with its records. Admins only.", |conn, target, name| {
            Box::pin(async move { change::restore_object(conn, target, &name).await })
        }),
        object_lifecycle("purgeCustomObject", "Removes a deleted custom object, its table and its records for good. Admins only.", |conn, target, name| {
            Box::pin(async move { change::purge_object(conn, target, &name).await })
        }),
    ]
}

/// `deleteCustomObject(name)` and its siblings.
pub(super) fn object_lifecycle(
    name: &str,
    description: &str,
    run: for<'a> fn(&'a mut diesel_async::AsyncPgConnection, &'a Target<'a>, String) -> Boxed<'a, StoredObject>,
) -> Field {
    Field::new(name, TypeRef::named_nn("ObjectDefinition"), move |ctx| {
        resolved(async move {
            let context = admin(&ctx)?;
            let name = text_arg(&ctx, "name")?;
            let stored = with_target(context, &["name"], async |conn, target| run(conn, target, name).await).await?;
            object_answer(context, &stored).await
        })
    })
    .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom object."))
    .description(description.to_owned())
}

pub(super) fn object_spec(map: &Map) -> Result<ObjectSpec> {
    let path = Path::root("input");
    let mut fields = Vec::new();
    match map.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = path.at("fields").index(i);
                let Value::Object(field) = item else {
                    return Err(at.error("a field is an object"));
                };
                fields.push(field_spec(field, &at)?);
            }
        }
        Some(_) => return Err(path.at("fields").error("fields is a list")),
    }
    Ok(ObjectSpec {
        name: required_text(map, "name", &path)?,
        label: required_text(map, "label", &path)?,
        plural_label: required_text(map, "pluralLabel", &path)?,
        plural: optional_text(map, "pluralName"),
        description: optional_text(map, "description").unwrap_or_default(),
        fields,
    })
}
