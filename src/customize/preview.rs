//! Changing a field's type: `previewFieldTypeChange` and its result types,
//! the `onInvalid`/`onLossy` enums, and the reading of the arguments a type
//! change takes (shared with `changeCustomFieldType`), so the preview and
//! the change always mean the same thing.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};

use super::admin;
use super::definitions::text;
use super::inputs::new_options;
use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::resolve::{arg, enum_name, parent_field, resolved, text_arg};
use crate::metadata::change::{self, OnInvalid, OnLossy, TypeChange};

/// The enums that say what a type change does with values that do not
/// convert, or convert with a loss.
pub(super) fn enums() -> Vec<Enum> {
    vec![
        Enum::new("InvalidValueAction")
            .description("What a field type change does with values that do not convert.")
            .item(EnumItem::new("FAIL").description("Refuse the change; nothing changes."))
            .item(EnumItem::new("SET_NULL").description("Clear those values.")),
        Enum::new("LossyValueAction")
            .description(
                "What a field type change does with values that convert but lose information (a time of day, \
                 fraction digits, a number other than 0 or 1 made a boolean).",
            )
            .item(
                EnumItem::new("REFUSE")
                    .description("Refuse the change (BAD_USER_INPUT with their count); nothing changes."),
            )
            .item(EnumItem::new("ACCEPT").description(
                "Convert them anyway. Their old values are kept: changing the type back restores them for the records \
                 not changed since.",
            )),
    ]
}

/// `FieldTypeChangePreview` and the samples it lists.
pub(super) fn types() -> Vec<Object> {
    vec![
        preview_type(),
        Object::new("InvalidValue")
            .description("A record whose value a type change cannot convert.")
            .field(sample_field("recordId", TypeRef::ID, |s| s.0.clone()).description("The record."))
            .field(sample_field("value", TypeRef::STRING, |s| s.1.clone()).description("Its value, as text.")),
        Object::new("LossyValue")
            .description("A record whose value a type change converts but loses information of.")
            .field(
                parent_field("recordId", TypeRef::named_nn(TypeRef::ID), |v: &change::LossyValue| {
                    text(&v.record_id)
                })
                .description("The record."),
            )
            .field(
                parent_field("value", TypeRef::named_nn(TypeRef::STRING), |v: &change::LossyValue| {
                    text(&v.value)
                })
                .description("Its value now, as text."),
            )
            .field(
                parent_field(
                    "converted",
                    TypeRef::named_nn(TypeRef::STRING),
                    |v: &change::LossyValue| text(&v.converted),
                )
                .description("The value it would become, as text."),
            ),
    ]
}

pub(super) fn sample_field(name: &str, type_name: &str, get: fn(&(String, String)) -> String) -> Field {
    Field::new(name, TypeRef::named_nn(type_name), move |ctx| {
        let value = ctx.parent_value.try_downcast_ref::<(String, String)>().map(get);
        FieldFuture::from_value(value.ok().map(Value::String))
    })
}

pub(super) fn preview_type() -> Object {
    fn field(name: &str, type_ref: TypeRef, get: fn(&change::Preview) -> Value) -> Field {
        Field::new(name, type_ref, move |ctx| {
            let value = ctx.parent_value.try_downcast_ref::<change::Preview>().map(get);
            FieldFuture::from_value(value.ok())
        })
    }
    Object::new("FieldTypeChangePreview")
        .description("What changing a field's type would do to existing records. Nothing has changed.")
        .field(
            field("object", TypeRef::named_nn(TypeRef::STRING), |p| {
                Value::String(p.object.clone())
            })
            .description("The object."),
        )
        .field(
            field("field", TypeRef::named_nn(TypeRef::STRING), |p| {
                Value::String(p.field.clone())
            })
            .description("The field."),
        )
        .field(
            field("from", TypeRef::named_nn("FieldType"), |p| {
                Value::Enum(Name::new(&p.from))
            })
            .description("Its type now."),
        )
        .field(
            field("to", TypeRef::named_nn("FieldType"), |p| Value::Enum(Name::new(&p.to)))
                .description("The type asked for."),
        )
        .field(
            field("withValue", TypeRef::named_nn(TypeRef::INT), |p| {
                Value::from(p.with_value)
            })
            .description("Records with a value, deleted ones included."),
        )
        .field(
            field("convertible", TypeRef::named_nn(TypeRef::INT), |p| {
                Value::from(p.convertible)
            })
            .description("Values that convert, lossy ones included."),
        )
        .field(
            field("invalid", TypeRef::named_nn(TypeRef::INT), |p| Value::from(p.invalid))
                .description("Values that do not: the change refuses them, or clears them with SET_NULL."),
        )
        .field(
            Field::new("samples", TypeRef::named_nn_list_nn("InvalidValue"), |ctx| {
                resolved(async move {
                    let preview = ctx.parent_value.try_downcast_ref::<change::Preview>()?;
                    Ok(Some(FieldValue::list(
                        preview.samples.iter().cloned().map(FieldValue::owned_any),
                    )))
                })
            })
            .description("Some records whose value does not convert."),
        )
        .field(
            field("lossy", TypeRef::named_nn(TypeRef::INT), |p| Value::from(p.lossy)).description(
                "Of the convertible values, those that lose information (see loses): the change refuses them unless \
                 onLossy: ACCEPT.",
            ),
        )
        .field(
            Field::new("loses", TypeRef::named(TypeRef::STRING), |ctx| {
                let preview = ctx.parent_value.try_downcast_ref::<change::Preview>();
                FieldFuture::from_value(preview.ok().and_then(|p| p.loses).map(|l| Value::String(l.to_owned())))
            })
            .description("What a lossy value loses (`the time of day`); null when no value can lose anything."),
        )
        .field(
            Field::new("lossySamples", TypeRef::named_nn_list_nn("LossyValue"), |ctx| {
                resolved(async move {
                    let preview = ctx.parent_value.try_downcast_ref::<change::Preview>()?;
                    Ok(Some(FieldValue::list(
                        preview.lossy_samples.iter().cloned().map(FieldValue::owned_any),
                    )))
                })
            })
            .description("Some records whose value loses information, with what it would become."),
        )
        .field(
            field("restored", TypeRef::named_nn(TypeRef::INT), |p| Value::from(p.restored)).description(
                "Records whose value from before the field's previous type change comes back: the change undoes that \
                 one for the records whose value did not change since.",
            ),
        )
        .field(
            field("rewritesTable", TypeRef::named_nn(TypeRef::BOOLEAN), |p| {
                Value::Boolean(p.rewrites_table)
            })
            .description("The column's storage type changes: the table is rewritten, which takes longer."),
        )
}

/// Query field: `previewFieldTypeChange`.
pub(super) fn query_field() -> Field {
    Field::new("previewFieldTypeChange", TypeRef::named_nn("FieldTypeChangePreview"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                let change = type_change(&ctx)?;
                let mut conn = context.db.conn().await?;
                let preview = change::preview_type_change(&mut conn, &context.schema, &object, &name, &change).await?;
                Ok(Some(FieldValue::owned_any(preview)))
            })
        })
        .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object."))
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom field."))
        .argument(InputValue::new("newType", TypeRef::named_nn("FieldType")).description("The type it would get."))
        .argument(
            InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                .description("The options, when it would become a picklist: values match by value or label."),
        )
        .description("What `changeCustomFieldType` would do to existing values: how many convert, how many lose information, how many do not, how many come back from before the previous type change, samples. Admins only.")
}

pub(super) fn type_change(ctx: &ResolverContext<'_>) -> Result<TypeChange> {
    Ok(TypeChange {
        type_name: enum_name(arg(ctx, "newType"))
            .ok_or_else(|| CrmError::bad_input(&["newType"], "newType is required"))?,
        options: new_options(arg(ctx, "options"), &Path::root("options"))?,
        on_invalid: match enum_name(arg(ctx, "onInvalid")).as_deref() {
            Some("SET_NULL") => OnInvalid::SetNull,
            _ => OnInvalid::Fail,
        },
        on_lossy: match enum_name(arg(ctx, "onLossy")).as_deref() {
            Some("ACCEPT") => OnLossy::Accept,
            _ => OnLossy::Refuse,
        },
    })
}
