//! Mutations on custom fields: `createCustomField`, `updateCustomField`,
//! `renameCustomField`, `changeCustomFieldType` and the delete, restore and
//! purge lifecycle. Each turns its arguments into a
//! [`crate::metadata::change`] spec and answers with the field as stored.

use async_graphql::dynamic::{Field, FieldValue, InputValue, TypeRef};
use async_graphql::{Name, Value};

use super::definitions::FieldInfo;
use super::inputs::{new_options, object_arg, option_specs, optional_bool, optional_text, required_text, Map};
use super::preview::type_change;
use super::{admin, with_target, Boxed};
use crate::error::Result;
use crate::graphql::input::Path;
use crate::graphql::resolve::{enum_name, resolved, text_arg};
use crate::metadata::change::{self, FieldPatch, FieldSpec, Target};
use crate::metadata::custom::StoredField;

/// Mutation fields for custom fields: create, update, rename, change type,
/// delete, restore and purge.
pub(super) fn mutation_fields() -> Vec<Field> {
    vec![
        create_field(),
        update_field(),
        rename_field(),
        change_field_type(),
        lifecycle("deleteCustomField", "Deletes a custom field: gone from the API at once, its data kept until purgeCustomField (restoreCustomField brings it back). Admins only.", |conn, target, object, name| {
            Box::pin(async move { change::delete_field(conn, target, &object, &name).await })
        }),
        lifecycle("restoreCustomField", "Restores a deleted custom field with its data. Admins only.", |conn, target, object, name| {
            Box::pin(async move { change::restore_field(conn, target, &object, &name).await })
        }),
        lifecycle("purgeCustomField", "Removes a deleted custom field and its data for good. Admins only.", |conn, target, object, name| {
            Box::pin(async move { change::purge_field(conn, target, &object, &name).await })
        }),
    ]
}

/// A field taking the custom field's `object` and `name`.
fn object_and_name(field: Field, what: &str) -> Field {
    field
        .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object."))
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description(what.to_owned()))
}

/// `createCustomField`.
fn create_field() -> Field {
    Field::new("createCustomField", TypeRef::named_nn("FieldDefinition"), |ctx| {
        resolved(async move {
            let context = admin(&ctx)?;
            let input = object_arg(&ctx, "input")?;
            let object = required_text(input, "object", &Path::root("input"))?;
            let spec = field_spec(input, &Path::root("input"))?;
            let stored = with_target(context, &["input", "name"], async |conn, target| {
                change::create_field(conn, target, &object, spec).await
            })
            .await?;
            Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
        })
    })
    .argument(InputValue::new("input", TypeRef::named_nn("CreateCustomFieldInput")).description("The field."))
    .description(
        "Adds a custom field: a typed column (with an index when indexed or unique) and a typed GraphQL field, \
         usable at once in queries, filters, sorts and writes. Admins only.",
    )
}

/// `updateCustomField`.
fn update_field() -> Field {
    object_and_name(
        Field::new("updateCustomField", TypeRef::named_nn("FieldDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                let patch = field_patch(object_arg(&ctx, "input")?)?;
                let stored = with_target(context, &["input"], async |conn, target| {
                    change::update_field(conn, target, &object, &name, patch).await
                })
                .await?;
                Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
            })
        }),
        "The custom field.",
    )
    .argument(InputValue::new("input", TypeRef::named_nn("UpdateCustomFieldInput")).description("The changes."))
    .description(
        "Changes a custom field's label, description, default, picklist options, required, unique or indexed. \
         A constraint existing records violate is refused (CONFLICT, with count and sampleIds). Admins only.",
    )
}

/// `renameCustomField`.
fn rename_field() -> Field {
    object_and_name(
        Field::new("renameCustomField", TypeRef::named_nn("FieldDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                let new_name = text_arg(&ctx, "newName")?;
                let stored = with_target(context, &["newName"], async |conn, target| {
                    change::rename_field(conn, target, &object, &name, &new_name).await
                })
                .await?;
                Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
            })
        }),
        "The custom field.",
    )
    .argument(InputValue::new("newName", TypeRef::named_nn(TypeRef::STRING)).description("Its new API name."))
    .description("Changes a custom field's API name, keeping its data. A breaking change for clients using the old name. Admins only.")
}

/// `changeCustomFieldType`.
fn change_field_type() -> Field {
    object_and_name(
        Field::new("changeCustomFieldType", TypeRef::named_nn("FieldDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                let change = type_change(&ctx)?;
                let stored = with_target(context, &["newType"], async |conn, target| {
                    Ok(change::change_type(conn, target, &object, &name, change).await?.field)
                })
                .await?;
                Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
            })
        }),
        "The custom field.",
    )
    .argument(InputValue::new("newType", TypeRef::named_nn("FieldType")).description("Its new type."))
    .argument(
        InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
            .description("The options, when it becomes a picklist: values match by value or label."),
    )
    .argument(
        InputValue::new("onInvalid", TypeRef::named_nn("InvalidValueAction"))
            .default_value(Value::Enum(Name::new("FAIL")))
            .description("What happens to values that do not convert (see previewFieldTypeChange)."),
    )
    .argument(
        InputValue::new("onLossy", TypeRef::named_nn("LossyValueAction"))
            .default_value(Value::Enum(Name::new("REFUSE")))
            .description(
                "What happens to values that convert but lose information (see previewFieldTypeChange's lossy).",
            ),
    )
    .description(
        "Changes a custom field's type, converting its values; the default is removed. Values that would lose \
         information refuse it unless onLossy: ACCEPT. Changed values are kept: changing the type back restores \
         them for the records not changed since. Admins only.",
    )
}

/// `deleteCustomField(object, name)` and its siblings.
pub(super) fn lifecycle(
    name: &str,
    description: &str,
    run: for<'a> fn(&'a mut diesel_async::AsyncPgConnection, &'a Target<'a>, String, String) -> Boxed<'a, StoredField>,
) -> Field {
    Field::new(name, TypeRef::named_nn("FieldDefinition"), move |ctx| {
        resolved(async move {
            let context = admin(&ctx)?;
            let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
            let stored = with_target(context, &["name"], async |conn, target| {
                run(conn, target, object, name).await
            })
            .await?;
            Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
        })
    })
    .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object."))
    .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom field."))
    .description(description.to_owned())
}

pub(super) fn field_spec(map: &Map, path: &Path) -> Result<FieldSpec> {
    Ok(FieldSpec {
        name: required_text(map, "name", path)?,
        label: required_text(map, "label", path)?,
        description: optional_text(map, "description").unwrap_or_default(),
        type_name: enum_name(map.get("type")).ok_or_else(|| path.at("type").error("type is required"))?,
        required: optional_bool(map, "required").unwrap_or(false),
        unique: optional_bool(map, "unique").unwrap_or(false),
        indexed: optional_bool(map, "indexed").unwrap_or(false),
        searchable: optional_bool(map, "searchable").unwrap_or(false),
        default_value: match map.get("defaultValue") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .clone()
                    .into_json()
                    .map_err(|_| path.at("defaultValue").error("not JSON"))?,
            ),
        },
        options: new_options(map.get("options"), &path.at("options"))?,
        lookup_object: optional_text(map, "lookupObject"),
        relation_name: optional_text(map, "relationName"),
        path: path.parts().to_vec(),
    })
}

pub(super) fn field_patch(map: &Map) -> Result<FieldPatch> {
    let path = Path::root("input");
    Ok(FieldPatch {
        label: optional_text(map, "label"),
        description: optional_text(map, "description"),
        default_value: match map.get("defaultValue") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(value) => Some(Some(
                value
                    .clone()
                    .into_json()
                    .map_err(|_| path.at("defaultValue").error("not JSON"))?,
            )),
        },
        required: optional_bool(map, "required"),
        unique: optional_bool(map, "unique"),
        indexed: optional_bool(map, "indexed"),
        searchable: optional_bool(map, "searchable"),
        options: option_specs(map.get("options"), &path.at("options"))?,
    })
}
