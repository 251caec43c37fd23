//! The audit log's API: `auditLog` and every record's `history`. What
//! is recorded, and how, is `audit`'s.

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access::{self, AdminPermission};
use crate::audit::{self, Action, Stored};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::loader::HistoryKey;
use crate::graphql::resolve::{
    after_arg, arg, context, first_arg, parent_field, resolved, timestamp, PageInfo, RequestContext,
};
use crate::graphql::room::Surface;
use crate::metadata::ObjectDef;
use crate::records::record_id;
use crate::team::api::load_user;

/// Adds `auditLog`, the `history` of every record type, and their types.
pub fn register(surface: &mut Surface) {
    for object in [
        audit_entry_type(),
        field_change_type(),
        audit_edge_type(),
        audit_connection_type(),
    ] {
        surface.object(object);
    }
    surface.input(
        InputObject::new("AuditLogFilter")
            .description("Which audit entries to list: every condition given must hold.")
            .field(
                InputValue::new("object", TypeRef::named(TypeRef::STRING)).description("Object name, e.g. `Account`."),
            )
            .field(InputValue::new("recordId", TypeRef::named(TypeRef::ID)).description("One record's entries."))
            .field(InputValue::new("actorId", TypeRef::named(TypeRef::ID)).description("Changes made by this user."))
            .field(InputValue::new("action", TypeRef::named("AuditAction")).description("Only this kind of change."))
            .field(InputValue::new("requestId", TypeRef::named(TypeRef::STRING)).description("One request's changes."))
            .field(InputValue::new("from", TypeRef::named("DateTime")).description("At or after this instant."))
            .field(InputValue::new("to", TypeRef::named("DateTime")).description("Before this instant.")),
    );
    surface.enumeration(action_enum());
    surface.enumeration(
        Enum::new("AuditVia")
            .description("Where a change came from.")
            .item(EnumItem::new("API").description("A GraphQL request."))
            .item(EnumItem::new("CLI").description("The `crm` command line."))
            .item(EnumItem::new("AUTOMATION").description(
                "A workflow rule: in a request's transaction (the actor is the request's) or on a schedule (no actor).",
            )),
    );
    surface.queries(&["auditLog"], vec![audit_log_field()]);
    surface.record_field(history_field);
}

fn action_enum() -> Enum {
    let mut action = Enum::new("AuditAction").description("What a change did.");
    for a in Action::ALL {
        action = action.item(EnumItem::new(a.as_str()).description(a.description()));
    }
    action
}

fn audit_log_field() -> Field {
    Field::new("auditLog", TypeRef::named_nn("AuditEntryConnection"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            access::require_admin(&context.actor, AdminPermission::ReadAuditLog)?;
            let filter = audit_filter(context, arg(&ctx, "filter"))?;
            let (first, after) = page_args(&ctx)?;
            let mut conn = context.db.conn().await?;
            let page = audit::page(&mut conn, &filter, first, after).await?;
            Ok(Some(FieldValue::owned_any(AuditConnection {
                page: Arc::new(page),
                filter,
                of_record: false,
            })))
        })
    })
    .argument(InputValue::new("filter", TypeRef::named("AuditLogFilter")).description("Which entries."))
    .argument(first_argument())
    .argument(after_argument())
    .description("Every change made in this workspace, newest first. Admins only; entries cannot be changed.")
}

/// `history(first, after)` on a record type: the record's audit entries.
pub fn history_field(object: &ObjectDef) -> Option<Field> {
    Some(history_of(object))
}

fn history_of(object: &ObjectDef) -> Field {
    let name: Arc<str> = object.name.as_str().into();
    Field::new("history", TypeRef::named_nn("AuditEntryConnection"), move |ctx| {
        let name = name.clone();
        resolved(async move {
            let context = context(&ctx)?;
            let record = ctx.parent_value.try_downcast_ref::<crate::records::Record>()?;
            let id = record_id(record).ok_or_else(|| CrmError::internal("record without id"))?;
            let (first, after) = page_args(&ctx)?;
            let page = context
                .loader
                .load_one(HistoryKey {
                    object: name.clone(),
                    record: id,
                    first,
                    after,
                })
                .await?
                .unwrap_or_default();
            let filter = audit::Filter {
                workspace: Some(context.trail.workspace.clone()),
                object: Some(name.to_string()),
                record_ids: vec![id],
                ..audit::Filter::default()
            };
            Ok(Some(FieldValue::owned_any(AuditConnection {
                page,
                filter,
                of_record: true,
            })))
        })
    })
    .argument(first_argument())
    .argument(after_argument())
    .description(
        "Changes made to this record (and to records merged into it), newest first: who, when, which fields from \
         what to what.",
    )
}

fn first_argument() -> InputValue {
    InputValue::new("first", TypeRef::named(TypeRef::INT)).description(format!(
        "Entries per page, at most {}; {} when absent.",
        audit::MAX_PAGE,
        audit::DEFAULT_PAGE
    ))
}

fn after_argument() -> InputValue {
    InputValue::new("after", TypeRef::named(TypeRef::STRING)).description("The `endCursor` of the page before.")
}

/// `first` and the entry id of `after`, checked.
fn page_args(ctx: &ResolverContext<'_>) -> Result<(usize, Option<i64>)> {
    let first = first_arg(ctx, audit::DEFAULT_PAGE, audit::MAX_PAGE)?;
    Ok((first, after_arg(ctx, "the audit log", decode_cursor)?))
}

fn cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{id}"))
}

fn decode_cursor(text: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("audit:")?.parse().ok()
}

fn audit_filter(context: &RequestContext, filter: Option<&Value>) -> Result<audit::Filter> {
    let mut out = audit::Filter {
        workspace: Some(context.trail.workspace.clone()),
        ..audit::Filter::default()
    };
    let Some(Value::Object(filter)) = filter else {
        return Ok(out);
    };
    let path = Path::root("filter");
    let text = |key: &str| match filter.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let id = |key: &str| -> Result<Option<Uuid>> {
        match filter.get(key) {
            Some(Value::String(text)) => input::parse_id(text, &path.at(key)).map(Some),
            _ => Ok(None),
        }
    };
    let at = |key: &str| -> Result<Option<DateTime<Utc>>> {
        match filter.get(key) {
            Some(Value::String(text)) => crate::metadata::parse_datetime(text)
                .map(Some)
                .map_err(|_| path.at(key).error("not a DateTime")),
            _ => Ok(None),
        }
    };
    out.object = text("object");
    out.request_id = text("requestId");
    out.record_ids = id("recordId")?.into_iter().collect();
    out.actor_id = id("actorId")?;
    out.action = match filter.get("action") {
        Some(Value::Enum(name)) => Action::ALL.into_iter().find(|a| a.as_str() == name.as_str()),
        _ => None,
    };
    out.from = at("from")?;
    out.to = at("to")?;
    Ok(out)
}

/// A page of audit entries on its way to `AuditEntryConnection`.
struct AuditConnection {
    page: Arc<audit::Page>,
    /// For `totalCount`.
    filter: audit::Filter,
    /// A record's `history`: its entries and those of records merged into it.
    of_record: bool,
}

fn entry_field(name: &str, type_ref: TypeRef, get: fn(&Stored) -> Option<Value>) -> Field {
    parent_field(name, type_ref, get)
}

fn audit_entry_type() -> Object {
    Object::new("AuditEntry")
        .description("One change: who made it, when, to what.")
        .field(
            entry_field("id", TypeRef::named_nn(TypeRef::ID), |e| {
                Some(Value::String(e.id.to_string()))
            })
            .description("The entry's number: later entries have higher ones."),
        )
        .field(
            entry_field("at", TypeRef::named_nn("DateTime"), |e| Some(timestamp(e.at)))
                .description("When it was made."),
        )
        .field(
            Field::new("actor", TypeRef::named("User"), |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    let entry = ctx.parent_value.try_downcast_ref::<Stored>()?;
                    match entry.actor_id {
                        Some(id) => load_user(&ctx, context, id).await,
                        None => Ok(None),
                    }
                })
            })
            .description("Who made it; null for the command line."),
        )
        .field(
            entry_field("actorRole", TypeRef::named("UserRole"), |e| {
                e.actor_role.as_deref().map(|r| Value::Enum(Name::new(r)))
            })
            .description("The role the change was made with."),
        )
        .field(
            entry_field("tokenId", TypeRef::named(TypeRef::ID), |e| {
                e.token_id.map(|id| Value::String(id.to_string()))
            })
            .description("The API token it was made with."),
        )
        .field(
            entry_field("via", TypeRef::named_nn("AuditVia"), |e| {
                Some(Value::Enum(Name::new(&e.via)))
            })
            .description("API or command line."),
        )
        .field(
            entry_field("requestId", TypeRef::named(TypeRef::STRING), |e| {
                e.request_id.clone().map(Value::String)
            })
            .description("The `x-request-id` of the HTTP request (also in the server log)."),
        )
        .field(
            entry_field("workspace", TypeRef::named_nn(TypeRef::STRING), |e| {
                Some(Value::String(e.workspace.clone()))
            })
            .description("`production` or a sandbox."),
        )
        .field(
            entry_field("object", TypeRef::named_nn(TypeRef::STRING), |e| {
                Some(Value::String(e.object.clone()))
            })
            .description("What kind of record: `Account`, `User`, `ApiToken` …"),
        )
        .field(
            entry_field("recordId", TypeRef::named(TypeRef::ID), |e| {
                e.record_id.map(|id| Value::String(id.to_string()))
            })
            .description("The record changed."),
        )
        .field(
            entry_field("action", TypeRef::named_nn("AuditAction"), |e| {
                Some(Value::Enum(Name::new(&e.action)))
            })
            .description("What the change did."),
        )
        .field(
            Field::new("changes", TypeRef::named_nn_list_nn("FieldChange"), |ctx| {
                resolved(async move {
                    let entry = ctx.parent_value.try_downcast_ref::<Stored>()?;
                    let changes = entry.changes.as_array().cloned().unwrap_or_default();
                    Ok(Some(FieldValue::list(changes.into_iter().map(FieldValue::owned_any))))
                })
            })
            .description("The fields it changed, with their values before and after."),
        )
}

fn field_change_type() -> Object {
    let part = |name: &str| {
        let key = name.to_owned();
        Field::new(name, TypeRef::named("JSON"), move |ctx| {
            let change = ctx.parent_value.try_downcast_ref::<serde_json::Value>();
            let value = change.ok().and_then(|c| c.get(&key)).cloned();
            FieldFuture::from_value(value.filter(|v| !v.is_null()).and_then(|v| Value::from_json(v).ok()))
        })
    };
    Object::new("FieldChange")
        .description("One field of a change.")
        .field(
            Field::new("field", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                let change = ctx.parent_value.try_downcast_ref::<serde_json::Value>();
                let field = change.ok().and_then(|c| c.get("field")).and_then(|f| f.as_str());
                FieldFuture::from_value(field.map(|f| Value::String(f.to_owned())))
            })
            .description("The field's API name."),
        )
        .field(part("before").description("Its value before; null when it had none."))
        .field(part("after").description("Its value after; null when it has none."))
}

fn audit_edge_type() -> Object {
    Object::new("AuditEntryEdge")
        .description("An audit entry and its cursor.")
        .field(
            Field::new("cursor", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                let entry = ctx.parent_value.try_downcast_ref::<Stored>();
                FieldFuture::from_value(entry.ok().map(|e| Value::String(cursor(e.id))))
            })
            .description("Pass it as `after` to read on from here."),
        )
        .field(
            Field::new("node", TypeRef::named_nn("AuditEntry"), |ctx| {
                resolved(async move {
                    let entry = ctx.parent_value.try_downcast_ref::<Stored>()?;
                    Ok(Some(FieldValue::borrowed_any(entry)))
                })
            })
            .description("The entry."),
        )
}

fn audit_connection_type() -> Object {
    Object::new("AuditEntryConnection")
        .description("A page of audit entries, newest first.")
        .field(
            Field::new("edges", TypeRef::named_nn_list_nn("AuditEntryEdge"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<AuditConnection>()?;
                    Ok(Some(FieldValue::list(
                        page.page.entries.iter().map(|e| FieldValue::borrowed_any(e)),
                    )))
                })
            })
            .description("The entries with their cursors."),
        )
        .field(
            Field::new("nodes", TypeRef::named_nn_list_nn("AuditEntry"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<AuditConnection>()?;
                    Ok(Some(FieldValue::list(
                        page.page.entries.iter().map(|e| FieldValue::borrowed_any(e)),
                    )))
                })
            })
            .description("The entries."),
        )
        .field(
            Field::new("pageInfo", TypeRef::named_nn("PageInfo"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<AuditConnection>()?;
                    let entries = &page.page.entries;
                    Ok(Some(FieldValue::owned_any(PageInfo {
                        has_next_page: page.page.has_next_page,
                        has_previous_page: false,
                        start_cursor: entries.first().map(|e| cursor(e.id)),
                        end_cursor: entries.last().map(|e| cursor(e.id)),
                    })))
                })
            })
            .description("Where the page sits; `hasPreviousPage` is always false (the log pages forwards)."),
        )
        .field(
            Field::new("totalCount", TypeRef::named_nn(TypeRef::INT), |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    let page = ctx.parent_value.try_downcast_ref::<AuditConnection>()?;
                    let mut conn = context.db.conn().await?;
                    let mut filter = page.filter.clone();
                    if page.of_record {
                        let merged =
                            crate::records::merged::merged_into(&mut conn, &context.schema, &filter.record_ids).await?;
                        filter.record_ids.extend(merged.into_values().flatten());
                    }
                    let count = audit::count(&mut conn, &filter).await?;
                    Ok(Some(FieldValue::value(Value::from(count))))
                })
            })
            .description("Entries matching the filter, on all pages (counted only when asked)."),
        )
}
