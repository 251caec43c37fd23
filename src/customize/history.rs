//! The metadata change log: the `MetadataChange` type and the
//! `metadataChanges` query, read from the workspace's `metadata_change`
//! table, so clients can see what changed and whether it breaks them.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;
use serde_json::Value as Json;

use super::admin;
use crate::graphql::resolve::{arg, resolved, timestamp};
use crate::metadata::log::{self, Logged};

pub(super) fn json(value: &Option<Json>) -> Option<Value> {
    value.clone().and_then(|v| Value::from_json(v).ok())
}

pub(super) fn metadata_change_type() -> Object {
    fn field(name: &str, type_ref: TypeRef, get: fn(&Logged) -> Option<Value>) -> Field {
        Field::new(name, type_ref, move |ctx| {
            let value = ctx.parent_value.try_downcast_ref::<Logged>().map(get);
            FieldFuture::from_value(value.ok().flatten())
        })
    }
    Object::new("MetadataChange")
        .description("One change of the workspace's metadata, and the version it made.")
        .field(
            field("version", TypeRef::named_nn(TypeRef::INT), |c| {
                Some(Value::from(c.version))
            })
            .description("The metadata version after it."),
        )
        .field(field("at", TypeRef::named_nn("DateTime"), |c| Some(timestamp(c.at))).description("When."))
        .field(
            field("actorId", TypeRef::named(TypeRef::ID), |c| {
                c.actor_id.map(|id| Value::String(id.to_string()))
            })
            .description("Who (null for the command line)."),
        )
        .field(
            field("kind", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.kind.clone()))
            })
            .description("`FIELD_CREATED`, `FIELD_RENAMED`, `FIELD_TYPE_CHANGED`, `OBJECT_DELETED` …"),
        )
        .field(
            field("object", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.object.clone()))
            })
            .description("The object."),
        )
        .field(
            field("field", TypeRef::named(TypeRef::STRING), |c| {
                c.field.clone().map(Value::String)
            })
            .description("The field, for field changes."),
        )
        .field(
            field("summary", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.summary.clone()))
            })
            .description("What happened, in words."),
        )
        .field(
            field("breaking", TypeRef::named_nn(TypeRef::BOOLEAN), |c| {
                Some(Value::Boolean(c.breaking))
            })
            .description("Clients written against the API before may fail (a name, type or requirement changed)."),
        )
        .field(field("before", TypeRef::named("JSON"), |c| json(&c.before)).description("The definition before."))
        .field(field("after", TypeRef::named("JSON"), |c| json(&c.after)).description("The definition after."))
}

/// Query field: `metadataChanges`.
pub(super) fn query_field() -> Field {
    Field::new("metadataChanges", TypeRef::named_nn_list_nn("MetadataChange"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let since = match arg(&ctx, "sinceVersion") {
                    Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                    _ => 0,
                };
                let since = i32::try_from(since.max(0)).unwrap_or(i32::MAX);
                let mut conn = context.db.conn().await?;
                let rows = log::since(&mut conn, &context.schema, since).await?;
                Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(
            InputValue::new("sinceVersion", TypeRef::named(TypeRef::INT))
                .description("Only changes that made a later version."),
        )
        .description("Metadata changes in order, oldest first (at most 500): what changed, and whether it breaks clients. Admins only.")
}
