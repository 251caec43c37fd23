//! What is not records of an object: the caller (`me`), API tokens, the
//! audit log (`auditLog` and every record's `history`) and workspace
//! settings.

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Scalar, TypeRef,
};
use async_graphql::{Name, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::input::{self, Path};
use super::loader::{HistoryKey, RecordKey};
use super::resolve::{arg, context, id_arg, parent_field, resolved, timestamp, RequestContext};
use super::selection;
use crate::access::{self, AdminPermission, RecordVisibility};
use crate::audit::{self, Action, Stored};
use crate::auth::{self, NewToken, Role, TokenInfo, UserRef};
use crate::db::sql::Sql;
use crate::error::{CrmError, Result};
use crate::metadata::ObjectDef;
use crate::records::record_id;

/// The types this module adds to every workspace schema.
pub fn types() -> (Vec<Object>, Vec<InputObject>, Vec<Enum>, Vec<Scalar>) {
    let objects = vec![
        me_type(),
        api_token_type(),
        created_token_type(),
        audit_entry_type(),
        field_change_type(),
        audit_edge_type(),
        audit_connection_type(),
        settings_type(),
    ];
    let inputs = vec![
        InputObject::new("CreateApiTokenInput")
            .description("A new API token.")
            .field(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)).description("The user it acts for."))
            .field(
                InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                    .description("What it is for, e.g. `billing sync`."),
            )
            .field(
                InputValue::new("role", TypeRef::named("UserRole"))
                    .description("The role it acts with: at most the user's role, which is the default."),
            )
            .field(
                InputValue::new("expiresAt", TypeRef::named("DateTime"))
                    .description("When it stops working; never, when absent."),
            ),
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
        InputObject::new("UpdateWorkspaceSettingsInput")
            .description("Workspace settings to change.")
            .field(
                InputValue::new("recordVisibility", TypeRef::named("RecordVisibility"))
                    .description("Which records sales reps read."),
            ),
    ];
    let mut action = Enum::new("AuditAction").description("What a change did.");
    for a in Action::ALL {
        action = action.item(EnumItem::new(a.as_str()).description(a.description()));
    }
    let enums = vec![
        action,
        Enum::new("AuditVia")
            .description("Where a change came from.")
            .item(EnumItem::new("API").description("A GraphQL request."))
            .item(EnumItem::new("CLI").description("The `crm` command line.")),
        Enum::new("RecordVisibility")
            .description("Which records sales reps read.")
            .item(EnumItem::new("ALL").description("Every record."))
            .item(EnumItem::new("OWNED").description(
                "Records they own, and the records under those (contacts and deals of their accounts, \
                 activities on their deals …).",
            )),
    ];
    let scalars = vec![Scalar::new("JSON").description("Any JSON value.")];
    (objects, inputs, enums, scalars)
}

/// Query fields: `me`, `apiTokens`, `auditLog`, `workspaceSettings`.
pub fn query_fields() -> Vec<Field> {
    vec![
        Field::new("me", TypeRef::named_nn("Me"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                Ok(Some(FieldValue::owned_any(context.actor.clone())))
            })
        })
        .description("Who the request acts for: the token's user and role."),
        Field::new("apiTokens", TypeRef::named_nn_list_nn("ApiToken"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
                let user = optional_id(&ctx, "userId")?;
                let mut conn = context.db.conn().await?;
                let tokens = auth::list(&mut conn, user).await?;
                Ok(Some(FieldValue::list(tokens.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(InputValue::new("userId", TypeRef::named(TypeRef::ID)).description("Only this user's tokens."))
        .description("API tokens, newest first (never their secrets). Admins only."),
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
                })))
            })
        })
        .argument(InputValue::new("filter", TypeRef::named("AuditLogFilter")).description("Which entries."))
        .argument(first_argument())
        .argument(after_argument())
        .description("Every change made in this workspace, newest first. Admins only; entries cannot be changed."),
        Field::new("workspaceSettings", TypeRef::named_nn("WorkspaceSettings"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                let mut conn = context.db.conn().await?;
                let visibility = super::record_visibility(&mut conn, &context.schema).await?;
                Ok(Some(FieldValue::owned_any(visibility)))
            })
        })
        .description("The workspace's settings."),
    ]
}

/// Mutation fields: `createApiToken`, `revokeApiToken`, `updateWorkspaceSettings`.
pub fn mutation_fields() -> Vec<Field> {
    vec![
        Field::new("createApiToken", TypeRef::named_nn("CreatedApiToken"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
                let new = new_token(arg(&ctx, "input"))?;
                let mut conn = context.db.conn().await?;
                let issued = auth::issue(&mut conn, &context.trail, &new).await?;
                Ok(Some(FieldValue::owned_any(issued)))
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("CreateApiTokenInput")).description("The token."))
        .description("Creates an API token. Its text is in the answer and nowhere else: keep it. Admins only."),
        Field::new("revokeApiToken", TypeRef::named_nn("ApiToken"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
                let id = id_arg(&ctx)?;
                let mut conn = context.db.conn().await?;
                let revoked = auth::revoke(&mut conn, &context.trail, id).await?;
                if let Some(authenticator) = &context.authenticator {
                    authenticator.forget(id);
                }
                Ok(Some(FieldValue::owned_any(revoked)))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The token's id."))
        .description("Revokes an API token: requests with it are refused from now on. Admins only."),
        Field::new(
            "updateWorkspaceSettings",
            TypeRef::named_nn("WorkspaceSettings"),
            |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)?;
                    let visibility = match arg(&ctx, "input") {
                        Some(Value::Object(input)) => match input.get("recordVisibility") {
                            Some(Value::Enum(name)) => RecordVisibility::parse(name.as_str()),
                            Some(Value::String(name)) => RecordVisibility::parse(name),
                            _ => None,
                        },
                        _ => None,
                    };
                    let Some(visibility) = visibility else {
                        return Err(CrmError::bad_input(
                            &["input", "recordVisibility"],
                            "name the setting to change",
                        ));
                    };
                    let mut conn = context.db.conn().await?;
                    let saved = conn
                        .transaction::<_, CrmError, _>(async |conn| {
                            let before = read_visibility(conn, &context.schema).await?;
                            crate::metadata::settings::set_record_visibility(conn, &context.schema, visibility).await?;
                            let entry = audit::Entry {
                                object: "WorkspaceSettings".into(),
                                record_id: None,
                                action: Action::Update,
                                changes: audit::changes(Some(&settings_record(before)), &settings_record(visibility)),
                            };
                            audit::append(conn, &context.trail, &[entry]).await?;
                            let workspace = context.trail.workspace.clone();
                            let announcement = crate::notify::Announcement::Settings { workspace };
                            crate::notify::announce(conn, &announcement).await?;
                            Ok(visibility)
                        })
                        .await?;
                    match &context.schemas {
                        Some(schemas) => schemas.settings_changed(&context.db, &context.trail.workspace).await,
                        None => context.record_visibility.set(saved),
                    }
                    Ok(Some(FieldValue::owned_any(saved)))
                })
            },
        )
        .argument(
            InputValue::new("input", TypeRef::named_nn("UpdateWorkspaceSettingsInput")).description("The changes."),
        )
        .description("Changes workspace settings. Admins only."),
    ]
}

/// `history(first, after)` on a record type: the record's audit entries.
pub fn history_field(object: &ObjectDef) -> Field {
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
            Ok(Some(FieldValue::owned_any(AuditConnection { page, filter })))
        })
    })
    .argument(first_argument())
    .argument(after_argument())
    .description("Changes made to this record, newest first: who, when, which fields from what to what.")
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
    let first = match arg(ctx, "first") {
        None | Some(Value::Null) => audit::DEFAULT_PAGE,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= audit::MAX_PAGE)
            .ok_or_else(|| CrmError::bad_input(&["first"], format!("first is 0 to {}", audit::MAX_PAGE)))?,
        Some(_) => return Err(CrmError::bad_input(&["first"], "first must be an integer")),
    };
    let after = match arg(ctx, "after") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(
            decode_cursor(cursor).ok_or_else(|| CrmError::bad_input(&["after"], "not a cursor of the audit log"))?,
        ),
        Some(_) => return Err(CrmError::bad_input(&["after"], "after must be a cursor")),
    };
    Ok((first, after))
}

fn cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{id}"))
}

fn decode_cursor(text: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("audit:")?.parse().ok()
}

fn optional_id(ctx: &ResolverContext<'_>, name: &str) -> Result<Option<Uuid>> {
    match arg(ctx, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => input::parse_id(text, &Path::root(name)).map(Some),
        Some(other) => Err(CrmError::bad_input(
            &[name],
            format!("{other} is not a valid ID (a UUID)"),
        )),
    }
}

fn new_token(input: Option<&Value>) -> Result<NewToken> {
    let Some(Value::Object(input)) = input else {
        return Err(CrmError::bad_input(&["input"], "input must be an object"));
    };
    let path = Path::root("input");
    let user = match input.get("userId") {
        Some(Value::String(id)) => input::parse_id(id, &path.at("userId"))?,
        _ => return Err(path.at("userId").error("userId is required")),
    };
    let name = match input.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err(path.at("name").error("name is required")),
    };
    let role = match input.get("role") {
        None | Some(Value::Null) => None,
        Some(Value::Enum(role)) => Role::parse(role.as_str()),
        Some(Value::String(role)) => Role::parse(role),
        Some(_) => None,
    };
    let expires_at = match input.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) => {
            Some(crate::metadata::parse_datetime(at).map_err(|_| path.at("expiresAt").error("not a DateTime"))?)
        }
        Some(_) => return Err(path.at("expiresAt").error("not a DateTime")),
    };
    Ok(NewToken {
        user: UserRef::Id(user),
        role,
        name,
        expires_at,
    })
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

/// Reads the workspace's own `recordVisibility`, locked for a change.
async fn read_visibility(conn: &mut AsyncPgConnection, schema: &str) -> Result<RecordVisibility> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        record_visibility: String,
    }
    let mut query = Sql::raw("SELECT record_visibility FROM ");
    query.table(schema, "workspace_settings").push(" FOR UPDATE");
    let rows: Vec<Row> = query.load(conn).await?;
    Ok(rows
        .first()
        .and_then(|row| RecordVisibility::parse(&row.record_visibility))
        .unwrap_or_default())
}

fn settings_record(visibility: RecordVisibility) -> crate::records::Record {
    let mut map = serde_json::Map::new();
    map.insert("recordVisibility".into(), visibility.as_str().into());
    crate::records::Record::new(map)
}

/// A page of audit entries on its way to `AuditEntryConnection`.
struct AuditConnection {
    page: Arc<audit::Page>,
    /// For `totalCount`.
    filter: audit::Filter,
}

fn me_type() -> Object {
    Object::new("Me")
        .description("Who a request acts for.")
        .field(
            Field::new("user", TypeRef::named_nn("User"), |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    let actor = ctx.parent_value.try_downcast_ref::<auth::Actor>()?;
                    let user = load_user(&ctx, context, actor.user_id).await?;
                    Ok(user)
                })
            })
            .description("The token's user."),
        )
        .field(
            Field::new("role", TypeRef::named_nn("UserRole"), |ctx| {
                let role = ctx.parent_value.try_downcast_ref::<auth::Actor>().map(|a| a.role);
                FieldFuture::from_value(role.ok().map(|r| Value::Enum(Name::new(r.as_str()))))
            })
            .description("The role requests act with: the token's, at most the user's."),
        )
        .field(
            Field::new("tokenId", TypeRef::named(TypeRef::ID), |ctx| {
                let token = ctx.parent_value.try_downcast_ref::<auth::Actor>().map(|a| a.token_id);
                FieldFuture::from_value(token.ok().flatten().map(|id| Value::String(id.to_string())))
            })
            .description("The id of the token the request came with."),
        )
}

/// A user by id, as the selection under the current field asks.
pub(super) async fn load_user<'a>(
    ctx: &ResolverContext<'a>,
    context: &RequestContext,
    id: Uuid,
) -> Result<Option<FieldValue<'a>>> {
    let object = context
        .model
        .object("User")
        .ok_or_else(|| CrmError::internal("the model has no User"))?;
    let fields = selection::record_fields(object, ctx.field().selection_set(), &[]);
    let user = context
        .loader
        .load_one(RecordKey {
            object: "User".into(),
            fields,
            id,
        })
        .await?;
    Ok(user.map(FieldValue::owned_any))
}

fn token_field(name: &str, type_ref: TypeRef, get: fn(&TokenInfo) -> Option<Value>) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let token = ctx.parent_value.try_downcast_ref::<TokenInfo>().or_else(|_| {
            ctx.parent_value
                .try_downcast_ref::<auth::IssuedToken>()
                .map(|t| &t.info)
        });
        FieldFuture::from_value(token.ok().and_then(get))
    })
}

fn api_token_type() -> Object {
    Object::new("ApiToken")
        .description("An API token, without its secret.")
        .field(
            token_field("id", TypeRef::named_nn(TypeRef::ID), |t| {
                Some(Value::String(t.id.to_string()))
            })
            .description("The token's id: its text starts with `crm_` and this id without dashes."),
        )
        .field(
            token_field("name", TypeRef::named_nn(TypeRef::STRING), |t| {
                Some(Value::String(t.name.clone()))
            })
            .description("What it is for."),
        )
        .field(
            Field::new("user", TypeRef::named_nn("User"), |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    let token = ctx.parent_value.try_downcast_ref::<TokenInfo>()?;
                    load_user(&ctx, context, token.user_id).await
                })
            })
            .description("The user it acts for."),
        )
        .field(
            token_field("role", TypeRef::named_nn("UserRole"), |t| {
                Some(Value::Enum(Name::new(&t.role)))
            })
            .description("The role it acts with (at most its user's)."),
        )
        .field(
            token_field("createdAt", TypeRef::named_nn("DateTime"), |t| {
                Some(timestamp(t.created_at))
            })
            .description("When it was created."),
        )
        .field(
            token_field("expiresAt", TypeRef::named("DateTime"), |t| t.expires_at.map(timestamp))
                .description("When it stops working."),
        )
        .field(
            token_field("revokedAt", TypeRef::named("DateTime"), |t| t.revoked_at.map(timestamp))
                .description("When it was revoked."),
        )
        .field(
            token_field("lastUsedAt", TypeRef::named("DateTime"), |t| {
                t.last_used_at.map(timestamp)
            })
            .description("When a request last came with it (to within a few seconds)."),
        )
}

fn created_token_type() -> Object {
    Object::new("CreatedApiToken")
        .description("A token just created: the only time its text is shown.")
        .field(
            Field::new("token", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                let issued = ctx.parent_value.try_downcast_ref::<auth::IssuedToken>();
                FieldFuture::from_value(issued.ok().map(|t| Value::String(t.token.clone())))
            })
            .description("Send it as `Authorization: Bearer <token>`. It is not stored: keep it now."),
        )
        .field(
            Field::new("apiToken", TypeRef::named_nn("ApiToken"), |ctx| {
                resolved(async move {
                    let issued = ctx.parent_value.try_downcast_ref::<auth::IssuedToken>()?;
                    Ok(Some(FieldValue::owned_any(issued.info.clone())))
                })
            })
            .description("The token's details."),
        )
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
                    Ok(Some(FieldValue::owned_any(super::resolve::PageInfo {
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
                    let count = audit::count(&mut conn, &page.filter).await?;
                    Ok(Some(FieldValue::value(Value::from(count))))
                })
            })
            .description("Entries matching the filter, on all pages (counted only when asked)."),
        )
}

fn settings_type() -> Object {
    Object::new("WorkspaceSettings")
        .description("Settings of the workspace.")
        .field(
            Field::new("recordVisibility", TypeRef::named_nn("RecordVisibility"), |ctx| {
                let visibility = ctx.parent_value.try_downcast_ref::<RecordVisibility>();
                FieldFuture::from_value(visibility.ok().map(|v| Value::Enum(Name::new(v.as_str()))))
            })
            .description("Which records sales reps read: ALL, or OWNED (their own and the records under them)."),
        )
}
