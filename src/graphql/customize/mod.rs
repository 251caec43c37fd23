//! The metadata API: read every object and field, make and change custom
//! fields and custom objects (admins only, on every workspace endpoint).
//!
//! Resolvers here turn arguments into [`crate::metadata::change`] specs;
//! every check, the DDL and the bookkeeping live there. After a change
//! commits, this server's schema is rebuilt at once; other servers learn
//! of it through `notify`.
//!
//! The API is split by concern: `definitions` (objects and fields as
//! shown, `objects`/`object`), `inputs` (input types, argument reading),
//! `fields` and `objects` (the mutations), `preview` (type changes)
//! and `history` (the change log). This module assembles them and holds
//! what they share: the admin check and running a change.

mod definitions;
mod fields;
mod history;
mod inputs;
mod objects;
mod preview;

use async_graphql::dynamic::{Enum, Field, InputObject, Object, ResolverContext};
use async_graphql::Value;
use chrono::SecondsFormat;
use serde_json::Value as Json;

use super::input::{self, Path};
use super::resolve::{context, RequestContext};
use super::Workspace;
use crate::access::{self, AdminPermission};
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;
use crate::metadata::custom::Customizations;
use crate::metadata::{FieldDef, Model};

/// The types this module adds to every workspace schema.
pub fn types() -> (Vec<Object>, Vec<InputObject>, Vec<Enum>) {
    let mut enums = vec![definitions::field_type()];
    enums.extend(preview::enums());
    let inputs = inputs::types();
    let mut objects = definitions::types();
    objects.extend(preview::types());
    objects.push(history::metadata_change_type());
    (objects, inputs, enums)
}

/// Query fields: `objects`, `object`, `previewFieldTypeChange`, `metadataChanges`.
pub fn query_fields() -> Vec<Field> {
    let mut fields = definitions::query_fields();
    fields.push(preview::query_field());
    fields.push(history::query_field());
    fields
}

/// Mutation fields: create, update, rename, change type, delete, restore
/// and purge custom fields; create, update, delete, restore and purge
/// custom objects.
pub fn mutation_fields() -> Vec<Field> {
    let mut fields = fields::mutation_fields();
    fields.extend(objects::mutation_fields());
    fields
}

pub(super) type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// The request's context, for admins only (`metadata.change`).
pub(super) fn admin<'a>(ctx: &'a ResolverContext<'_>) -> Result<&'a RequestContext> {
    let context = context(ctx)?;
    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)?;
    Ok(context)
}

pub(super) async fn read(context: &RequestContext) -> Result<Customizations> {
    let mut conn = context.db.conn().await?;
    Customizations::read(&mut conn, &context.schema).await
}

/// Runs a metadata change on its own connection, then rebuilds this
/// server's schema so the next request sees it. A clash the schema build
/// finds is reported at `clash_path`.
pub(super) async fn with_target<T>(
    context: &RequestContext,
    clash_path: &[&str],
    body: impl AsyncFnOnce(&mut diesel_async::AsyncPgConnection, &Target<'_>) -> Result<T>,
) -> Result<T> {
    let path: Vec<String> = clash_path.iter().map(|s| s.to_string()).collect();
    let check = move |model: &Model| -> Result<()> {
        super::schema::build(model, None)
            .map(|_| ())
            .map_err(|err| CrmError::bad_input_at(path.clone(), format!("the change clashes with the API: {}", err.0)))
    };
    let target = Target {
        schema: &context.schema,
        trail: &context.trail,
        check: &check,
        value: &checked_value,
        replaying: false,
    };
    let mut conn = context.db.conn().await?;
    let done = body(&mut conn, &target).await?;
    drop(conn);
    if let Some(schemas) = &context.schemas {
        let workspace = Workspace {
            name: context.trail.workspace.clone(),
            pg_schema: context.schema.to_string(),
        };
        schemas.refresh(&context.db, &workspace).await;
    }
    Ok(done)
}

/// A value given for a field (a default), checked as a write would check
/// it, in the form the API shows.
pub(crate) fn checked_value(field: &FieldDef, value: &Json, path: &[String]) -> Result<Json> {
    let path = Path::from_parts(path);
    let value = Value::from_json(value.clone()).map_err(|_| path.error("not a JSON value"))?;
    if matches!(value, Value::Null) {
        return Err(path.error("a default cannot be null; leave it out"));
    }
    let bind = input::assignment(field, &value, &path)?;
    Ok(match bind {
        Bind::Text(v) | Bind::Decimal(v) => v.map(Json::String).unwrap_or(Json::Null),
        Bind::Int(v) => v.map(Json::from).unwrap_or(Json::Null),
        Bind::Bool(v) => v.map(Json::Bool).unwrap_or(Json::Null),
        Bind::Date(v) => v.map(|d| Json::String(d.to_string())).unwrap_or(Json::Null),
        Bind::DateTime(v) => v
            .map(|t| Json::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)))
            .unwrap_or(Json::Null),
        Bind::TextArray(v) => v
            .map(|items| Json::Array(items.into_iter().map(Json::String).collect()))
            .unwrap_or(Json::Null),
        Bind::Json(v) => v.unwrap_or(Json::Null),
        Bind::Uuid(v) => v.map(|id| Json::String(id.to_string())).unwrap_or(Json::Null),
        Bind::UuidArray(_) | Bind::Bytes(_) => return Err(path.error("not a value this field takes")),
    })
}
