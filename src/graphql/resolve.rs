//! Resolvers: thin glue from GraphQL arguments to [`crate::records`].

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use async_graphql::{ErrorExtensions, Name, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::input::{self, ListArgs, Path};
use super::loader::{ChildQuery, ChildrenKey, RecordKey, RecordLoader};
use super::schema::list_arguments;
use super::selection;
use super::{Caller, WorkspaceSchema};
use crate::access::Visibility;
use crate::audit::Trail;
use crate::auth::Actor;
use crate::db::Database;
use crate::error::{CrmError, Result};
use crate::metadata::{upper_first, with_article, FieldDef, FieldKind, InverseRelation, Lookup, Model, ObjectDef};
use crate::records::{self, Cursor, Filter, OrderKey, Page, Record, Table};

/// What resolvers of one request share: who asks, the workspace and its
/// loaders.
pub struct RequestContext {
    pub db: Database,
    /// The workspace's Postgres schema (`crm` for production).
    pub schema: Arc<str>,
    pub model: Arc<Model>,
    pub loader: DataLoader<RecordLoader>,
    pub actor: Actor,
    /// The records the actor may see.
    pub visibility: Visibility,
    /// Where changes are recorded as made.
    pub trail: Trail,
    /// The server's token checker, told when users or tokens change.
    pub authenticator: Option<Arc<crate::auth::Authenticator>>,
    /// The workspace's `recordVisibility`, as the schema cache holds it.
    pub record_visibility: Arc<crate::access::VisibilitySetting>,
    /// The server's schema cache, rebuilt after a metadata change.
    pub schemas: Option<Arc<super::SchemaCache>>,
    /// The rooms the workspace's schema includes.
    pub rooms: super::Rooms,
    /// Where clients reach this server, for URLs in answers.
    pub base_url: Option<String>,
    /// The work the hooks of the request's current write asked for.
    pub follow_ups: super::room::FollowUps,
    /// What the request's writes report beside their answer.
    pub notices: Arc<super::room::Notices>,
    /// The workflow rules the current write's transaction fired.
    pub state: super::room::TransactionState,
    /// Leads the current write's hooks rescored.
    pub rescored: super::room::Rescored,
}

impl RequestContext {
    /// The context of one request on `entry`'s schema.
    pub fn new(db: Database, entry: &WorkspaceSchema, caller: Caller, visibility: Visibility) -> Self {
        let workspace = &entry.workspace;
        let model = entry.model.clone();
        let schema: Arc<str> = workspace.pg_schema.as_str().into();
        let loader = DataLoader::new(
            RecordLoader {
                db: db.clone(),
                schema: schema.clone(),
                workspace: workspace.name.as_str().into(),
                model: model.clone(),
                visibility: visibility.clone(),
            },
            tokio::spawn,
        );
        RequestContext {
            db,
            schema,
            model,
            loader,
            trail: Trail {
                actor: Some(caller.actor.clone()),
                request_id: caller.request_id,
                workspace: workspace.name.clone(),
                automated: false,
            },
            actor: caller.actor,
            authenticator: caller.authenticator,
            schemas: caller.schemas,
            rooms: entry.rooms,
            base_url: caller.base_url,
            visibility,
            record_visibility: entry.record_visibility.clone(),
            follow_ups: Default::default(),
            notices: Default::default(),
            state: Default::default(),
            rescored: Default::default(),
        }
    }

    /// What the records this request writes at `at` are checked against.
    pub fn check_scope<'a>(&'a self, at: &'a [String]) -> super::room::CheckScope<'a> {
        super::room::CheckScope {
            model: &self.model,
            schema: &self.schema,
            visibility: &self.visibility,
            at,
            follow_ups: &self.follow_ups,
            notices: &self.notices,
            trail: &self.trail,
            cascade: &[],
            state: &self.state,
            rescored: &self.rescored,
        }
    }

    /// The rows of `object` this request may read and change.
    pub fn table<'a>(&'a self, object: &'a ObjectDef) -> Table<'a> {
        Table::new(&self.schema, object).restricted(&self.visibility)
    }
}

/// A list page on its way to `XConnection`.
pub struct ConnectionValue {
    records: Vec<Record>,
    order: Vec<OrderKey>,
    has_next_page: bool,
    has_previous_page: bool,
    total: TotalCount,
}

/// `totalCount` is computed only when asked: either known already (nested
/// lists count in their window) or counted on demand.
enum TotalCount {
    Known(i64),
    Count {
        object: Arc<ObjectDef>,
        filter: Option<Filter>,
        include_deleted: bool,
    },
}

struct Edge {
    record: Record,
    cursor: String,
}

/// A connection's `pageInfo`.
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// The request's context, which every resolver reads.
pub fn context<'a>(ctx: &'a ResolverContext<'_>) -> Result<&'a RequestContext> {
    Ok(ctx.data::<RequestContext>()?)
}

/// Runs a resolver body written against the crate's [`Result`], turning its
/// error into a GraphQL error with `extensions.code` in this one place.
pub fn resolved<'a, F>(body: F) -> FieldFuture<'a>
where
    F: std::future::Future<Output = Result<Option<FieldValue<'a>>>> + Send + 'a,
{
    FieldFuture::new(async move { body.await.map_err(|err| err.extend()) })
}

/// An argument's value, when given.
pub fn arg<'a>(ctx: &'a ResolverContext<'_>, name: &str) -> Option<&'a Value> {
    ctx.args.get(name).map(|v| v.as_value())
}

/// A required text argument.
pub fn text_arg(ctx: &ResolverContext<'_>, name: &str) -> Result<String> {
    match arg(ctx, name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(CrmError::bad_input(&[name], format!("{name} is required"))),
    }
}

/// The name of an enum value, given inline (an enum) or in variables (a string).
pub fn enum_name(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::Enum(name)) => Some(name.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// An instant as the API shows it (RFC 3339, UTC, microseconds).
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// A field read straight off its parent value, a `T`.
pub fn parent_field<T: std::any::Any + Send + Sync>(
    name: &str,
    type_ref: TypeRef,
    get: fn(&T) -> Option<Value>,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let parent = ctx.parent_value.try_downcast_ref::<T>();
        FieldFuture::from_value(parent.ok().and_then(get))
    })
}

/// The arguments of a list field.
fn list_args<'a>(ctx: &'a ResolverContext<'_>) -> ListArgs<'a> {
    ListArgs {
        filter: arg(ctx, "filter"),
        order_by: arg(ctx, "orderBy"),
        first: arg(ctx, "first"),
        last: arg(ctx, "last"),
        after: arg(ctx, "after"),
        before: arg(ctx, "before"),
        include_deleted: arg(ctx, "includeDeleted"),
    }
}

/// A 32-bit integer argument or input value; `None` for null.
pub fn int(value: &Value, at: &[&str]) -> Result<Option<i32>> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| CrmError::bad_input(at, "not a whole number")),
        _ => Err(CrmError::bad_input(at, "not a whole number")),
    }
}

/// The `first` argument of a page: `default` when absent, 0 to `max`.
pub fn first_arg(ctx: &ResolverContext<'_>, default: usize, max: usize) -> Result<usize> {
    match arg(ctx, "first") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= max)
            .ok_or_else(|| CrmError::bad_input(&["first"], format!("first is 0 to {max}"))),
        Some(_) => Err(CrmError::bad_input(&["first"], "first must be an integer")),
    }
}

/// The `after` argument of a page, a cursor `decode` reads; refused as
/// "not a cursor of `what`" when it cannot.
pub fn after_arg<T>(ctx: &ResolverContext<'_>, what: &str, decode: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
    match arg(ctx, "after") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => decode(text)
            .map(Some)
            .ok_or_else(|| CrmError::bad_input(&["after"], format!("not a cursor of {what}"))),
        Some(_) => Err(CrmError::bad_input(&["after"], "after must be a cursor")),
    }
}

/// The `id` argument, a UUID.
pub fn id_arg(ctx: &ResolverContext<'_>) -> Result<Uuid> {
    let path = Path::root("id");
    match arg(ctx, "id") {
        Some(Value::String(text)) => input::parse_id(text, &path),
        // The ID type lets numbers through; ids are UUID strings.
        Some(other) => Err(path.error(format!("{other} is not a valid ID (a UUID)"))),
        None => Err(path.error("id is required")),
    }
}

/// A record's value as GraphQL output: picklists as enum values, the rest
/// as Postgres rendered them.
pub fn output(field: &FieldDef, json: Option<&Json>) -> Option<Value> {
    match json {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if matches!(field.kind, FieldKind::Picklist(_)) => Some(Value::Enum(Name::new(s))),
        Some(Json::Array(items)) if matches!(field.kind, FieldKind::MultiPicklist(_)) => Some(Value::List(
            items
                .iter()
                .filter_map(Json::as_str)
                .map(|s| Value::Enum(Name::new(s)))
                .collect(),
        )),
        Some(json) => Value::from_json(json.clone()).ok(),
    }
}

/// A field holding a stored value (`name`, `accountId` …).
pub fn value_field(field: &FieldDef, api_name: &str, type_ref: TypeRef) -> Field {
    let field = field.clone();
    let key = field.value_key();
    Field::new(api_name, type_ref, move |ctx| {
        let value = ctx
            .parent_value
            .try_downcast_ref::<Record>()
            .map(|record| output(&field, record.get(&key)));
        FieldFuture::from_value(value.ok().flatten())
    })
}

/// The record a lookup points at, through the loader.
pub fn to_one_field(field: &FieldDef, lookup: &Lookup) -> Field {
    let key = field.value_key();
    let target: Arc<str> = lookup.target.as_str().into();
    Field::new(&field.name, TypeRef::named(&lookup.target), move |ctx| {
        let key = key.clone();
        let target = target.clone();
        resolved(async move {
            let record = ctx.parent_value.try_downcast_ref::<Record>()?;
            let Some(id) = record
                .get(&key)
                .and_then(Json::as_str)
                .and_then(|s| s.parse::<Uuid>().ok())
            else {
                return Ok(None);
            };
            let context = context(&ctx)?;
            let object = context
                .model
                .object(&target)
                .ok_or_else(|| CrmError::internal(format_args!("lookup to unknown object {target}")))?;
            let fields = selection::record_fields(object, ctx.field().selection_set(), &[]);
            let found = context
                .loader
                .load_one(RecordKey {
                    object: target,
                    fields,
                    id,
                })
                .await?;
            Ok(found.map(FieldValue::owned_any))
        })
    })
}

/// The records referring to this one (`Account.contacts`), as a connection.
pub fn to_many_field(relation: InverseRelation) -> Field {
    let child = relation.child.clone();
    let field = Field::new(
        &relation.name,
        TypeRef::named_nn(format!("{}Connection", child.name)),
        move |ctx| {
            let child = child.clone();
            let lookup = relation.lookup.clone();
            resolved(async move {
                let parent = ctx.parent_value.try_downcast_ref::<Record>()?;
                let parent = records::record_id(parent).ok_or_else(|| CrmError::internal("record without id"))?;
                let args = list_args(&ctx);
                let context = context(&ctx)?;
                let request = input::page_request(&context.model, &context.schema, &context.visibility, &child, &args)?;
                let fields = selection::connection_fields(ctx.field(), &child, &request.order);
                // Identical arguments (the same field under many parents) share one batch.
                let canonical = format!(
                    "{}.{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{fields:?}",
                    child.name,
                    lookup.name,
                    args.filter,
                    args.order_by,
                    args.first,
                    args.last,
                    args.after,
                    args.before,
                    args.include_deleted,
                );
                let order = request.order.clone();
                let query = Arc::new(ChildQuery {
                    object: child.name.as_str().into(),
                    lookup,
                    fields,
                    request,
                    canonical,
                });
                let page = context
                    .loader
                    .load_one(ChildrenKey { query, parent })
                    .await?
                    .unwrap_or_default();
                Ok(Some(FieldValue::owned_any(ConnectionValue {
                    records: page.records.clone(),
                    order,
                    has_next_page: page.has_next_page,
                    has_previous_page: page.has_previous_page,
                    total: TotalCount::Known(page.total_count),
                })))
            })
        },
    )
    .description(relation.description.clone());
    list_arguments(field, &relation.child)
}

/// `account(id)` and `accounts(…)`.
pub fn query_fields(object: &Arc<ObjectDef>) -> Vec<Field> {
    let one = {
        let captured = object.clone();
        Field::new(object.singular(), TypeRef::named(&object.name), move |ctx| {
            let object = captured.clone();
            resolved(async move {
                let id = id_arg(&ctx)?;
                let request = context(&ctx)?;
                let mut conn = request.db.conn().await?;
                let fields = selection::record_fields(&object, ctx.field().selection_set(), &[]);
                // A merged record's id reads its survivor.
                let id = records::merged::survivor_of(&mut conn, &request.schema, &object, id)
                    .await?
                    .unwrap_or(id);
                let mut found = records::get_many(&mut conn, request.table(&object), &fields, &[id]).await?;
                Ok(found.remove(&id).map(FieldValue::owned_any))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The record's id."))
        .description(format!("The {} with this id, or null.", object.name))
    };
    let list = {
        let captured = object.clone();
        let field = Field::new(
            &object.plural,
            TypeRef::named_nn(format!("{}Connection", object.name)),
            move |ctx| {
                let object = captured.clone();
                resolved(async move {
                    let args = list_args(&ctx);
                    let context = context(&ctx)?;
                    let request =
                        input::page_request(&context.model, &context.schema, &context.visibility, &object, &args)?;
                    let fields = selection::connection_fields(ctx.field(), &object, &request.order);
                    let mut conn = context.db.conn().await?;
                    let Page {
                        records,
                        has_next_page,
                        has_previous_page,
                    } = records::list(&mut conn, context.table(&object), &fields, &request).await?;
                    Ok(Some(FieldValue::owned_any(ConnectionValue {
                        records,
                        order: request.order,
                        has_next_page,
                        has_previous_page,
                        total: TotalCount::Count {
                            object: object.clone(),
                            filter: request.filter,
                            include_deleted: request.include_deleted,
                        },
                    })))
                })
            },
        )
        .description(format!(
            "{}, filtered, ordered and paged.",
            upper_first(&crate::metadata::words(&object.plural))
        ));
        list_arguments(field, object)
    };
    vec![one, list]
}

/// `PageInfo`, shared by every connection.
pub fn page_info_type() -> Object {
    let flag = |name: &str, get: fn(&PageInfo) -> bool| {
        Field::new(name, TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            let info = ctx.parent_value.try_downcast_ref::<PageInfo>().map(get);
            FieldFuture::from_value(info.ok().map(Value::Boolean))
        })
    };
    let cursor = |name: &str, get: fn(&PageInfo) -> Option<String>| {
        Field::new(name, TypeRef::named(TypeRef::STRING), move |ctx| {
            let info = ctx.parent_value.try_downcast_ref::<PageInfo>().ok().and_then(get);
            FieldFuture::from_value(info.map(Value::String))
        })
    };
    Object::new("PageInfo")
        .description("Where a page sits in its list.")
        .field(flag("hasNextPage", |p| p.has_next_page).description("More records follow this page."))
        .field(flag("hasPreviousPage", |p| p.has_previous_page).description("Records come before this page."))
        .field(
            cursor("startCursor", |p| p.start_cursor.clone())
                .description("The cursor of the first record; pass it as `before` for the page before."),
        )
        .field(
            cursor("endCursor", |p| p.end_cursor.clone())
                .description("The cursor of the last record; pass it as `after` for the next page."),
        )
}

/// `XEdge { cursor node }`.
pub fn edge_type(object: &ObjectDef) -> Object {
    Object::new(format!("{}Edge", object.name))
        .description(format!("{} and its cursor.", upper_first(&with_article(&object.name))))
        .field(
            Field::new("cursor", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                let edge = ctx.parent_value.try_downcast_ref::<Edge>();
                FieldFuture::from_value(edge.ok().map(|e| Value::String(e.cursor.clone())))
            })
            .description("The record's position: pass it as `after` or `before` to page from here."),
        )
        .field(
            Field::new("node", TypeRef::named_nn(&object.name), |ctx| {
                resolved(async move {
                    let edge = ctx.parent_value.try_downcast_ref::<Edge>()?;
                    Ok(Some(FieldValue::borrowed_any(&edge.record)))
                })
            })
            .description("The record."),
        )
}

/// `XConnection { edges nodes pageInfo totalCount }`.
pub fn connection_type(object: &ObjectDef) -> Object {
    let name = &object.name;
    Object::new(format!("{name}Connection"))
        .description(format!("A page of {}.", crate::metadata::words(&object.plural)))
        .field(
            Field::new("edges", TypeRef::named_nn_list_nn(format!("{name}Edge")), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<ConnectionValue>()?;
                    Ok(Some(FieldValue::list(page.records.iter().map(|record| {
                        FieldValue::owned_any(Edge {
                            record: record.clone(),
                            cursor: Cursor::of(record, &page.order),
                        })
                    }))))
                })
            })
            .description("The records of the page with their cursors."),
        )
        .field(
            Field::new("nodes", TypeRef::named_nn_list_nn(name), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<ConnectionValue>()?;
                    Ok(Some(FieldValue::list(
                        page.records.iter().map(|r| FieldValue::borrowed_any(r)),
                    )))
                })
            })
            .description("The records of the page."),
        )
        .field(
            Field::new("pageInfo", TypeRef::named_nn("PageInfo"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<ConnectionValue>()?;
                    Ok(Some(FieldValue::owned_any(PageInfo {
                        has_next_page: page.has_next_page,
                        has_previous_page: page.has_previous_page,
                        start_cursor: page.records.first().map(|r| Cursor::of(r, &page.order)),
                        end_cursor: page.records.last().map(|r| Cursor::of(r, &page.order)),
                    })))
                })
            })
            .description("Where the page sits in the list."),
        )
        .field(
            Field::new("totalCount", TypeRef::named_nn(TypeRef::INT), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<ConnectionValue>()?;
                    let count = match &page.total {
                        TotalCount::Known(n) => *n,
                        TotalCount::Count {
                            object,
                            filter,
                            include_deleted,
                        } => {
                            let context = context(&ctx)?;
                            let mut conn = context.db.conn().await?;
                            records::count(&mut conn, context.table(object), filter.as_ref(), *include_deleted).await?
                        }
                    };
                    Ok(Some(FieldValue::value(Value::from(count))))
                })
            })
            .description("Records matching the filter, on all pages (counted only when asked)."),
        )
}

/// A field read off a JSON parent (a row document) by its own name.
pub fn json_field(name: &'static str, type_ref: TypeRef, description: &str) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx
            .parent_value
            .try_downcast_ref::<Json>()
            .ok()
            .map(|parent| parent[name].clone())
            .filter(|value| !value.is_null())
            .and_then(|value| Value::from_json(value).ok());
        FieldFuture::from_value(value)
    })
    .description(description)
}

/// An enum field read off a JSON parent.
pub fn json_enum_field(name: &'static str, type_ref: TypeRef, description: &str) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx
            .parent_value
            .try_downcast_ref::<Json>()
            .ok()
            .and_then(|parent| parent[name].as_str().map(|s| Value::Enum(Name::new(s))));
        FieldFuture::from_value(value)
    })
    .description(description)
}

/// An optional id argument, a UUID.
pub fn optional_id(ctx: &ResolverContext<'_>, name: &str) -> Result<Option<Uuid>> {
    match arg(ctx, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => input::parse_id(text, &Path::root(name)).map(Some),
        Some(_) => Err(CrmError::bad_input(&[name], format!("{name} must be an id"))),
    }
}

/// `to_char` of an instant column as the API writes instants.
pub fn instant(column: &str) -> crate::db::sql::Sql {
    let mut sql = crate::db::sql::Sql::raw("to_char(");
    sql.push(column)
        .push(" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    sql
}

/// Loads row documents (`SELECT … AS row`) and answers them as a list.
pub async fn json_rows<'a>(context: &RequestContext, query: crate::db::sql::Sql) -> Result<Option<FieldValue<'a>>> {
    let mut conn = context.db.conn().await?;
    let rows: Vec<crate::db::sql::JsonRow> = query.load(&mut conn).await?;
    Ok(Some(FieldValue::list(
        rows.into_iter().map(|r| FieldValue::owned_any(r.row)),
    )))
}
