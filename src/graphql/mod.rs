//! The dynamic GraphQL schema of each workspace, built from its metadata
//! and cached by metadata version.

pub mod cache;
pub mod compiled;
mod filter_input;
pub mod input;
pub mod limits;
pub mod loader;
pub mod mutation;
pub mod persisted;
pub mod resolve;
pub mod room;
pub mod schema;
pub mod selection;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_graphql::dynamic::Schema;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, Name, Request, Response, ServerError, Value};
use diesel::sql_types::Integer;

use crate::access::{RecordVisibility, Visibility, VisibilitySetting};
use crate::auth::Actor;
use crate::db::sql::Sql;
use crate::db::Database;
use crate::error::{CrmError, Result};
use crate::metadata::custom::Customizations;
use crate::metadata::Model;

pub use resolve::RequestContext;

/// Who sends a request, and which request it is (for the audit log).
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The server's token checker, told when users or tokens change.
    pub authenticator: Option<Arc<crate::auth::Authenticator>>,
    /// The server's schema cache, rebuilt after a metadata change.
    pub schemas: Option<Arc<SchemaCache>>,
    /// Where clients reach this server (`http://crm.example.com`), for the
    /// URLs the API gives out; unknown off HTTP.
    pub base_url: Option<String>,
}
pub use room::{Room, Rooms, Surface};
pub use schema::Limits;

/// A workspace: production or (later) a sandbox, each in its own Postgres schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// `production`, or the sandbox's name.
    pub name: String,
    /// The Postgres schema holding its records and metadata.
    pub pg_schema: String,
}

impl Workspace {
    pub fn production() -> Self {
        Workspace {
            name: "production".into(),
            pg_schema: crate::db::migrate::PRODUCTION_SCHEMA.into(),
        }
    }
}

/// A built schema and what it was built from.
pub struct WorkspaceSchema {
    pub workspace: Workspace,
    pub metadata_version: i32,
    /// Its `recordVisibility` setting.
    pub record_visibility: Arc<VisibilitySetting>,
    pub model: Arc<Model>,
    pub schema: Schema,
    /// The rooms the schema includes: a metadata change is checked against
    /// them too.
    pub rooms: Rooms,
    /// Which of its operations run as one compiled statement.
    pub plans: compiled::Plans,
}

/// Built schemas by workspace name. Reads are lock-free; a rebuilt schema
/// replaces the old one atomically while requests in flight finish on it.
pub struct SchemaCache {
    limits: Limits,
    /// What every schema includes beside records.
    rooms: Rooms,
    entries: ArcSwap<HashMap<String, Arc<WorkspaceSchema>>>,
    /// Requests answered by a compiled statement, in every workspace.
    compiled_answers: Arc<AtomicU64>,
    /// Schemas built, and the time spent building them (reading the
    /// metadata and building the GraphQL schema), in microseconds.
    builds: AtomicU64,
    build_micros: AtomicU64,
    /// One rebuild at a time: a change's own rebuild and the announcement
    /// of it arriving here build the new version once, not twice.
    rebuilding: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("workspaces", &self.entries.load().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SchemaCache {
    pub fn new(limits: Limits, rooms: Rooms) -> Self {
        SchemaCache {
            limits,
            rooms,
            entries: ArcSwap::from_pointee(HashMap::new()),
            compiled_answers: Arc::default(),
            builds: AtomicU64::new(0),
            build_micros: AtomicU64::new(0),
            rebuilding: tokio::sync::Mutex::new(()),
        }
    }

    /// The rooms every schema includes.
    pub fn rooms(&self) -> Rooms {
        self.rooms
    }

    /// Schemas built so far and the microseconds spent building them.
    pub fn build_stats(&self) -> (u64, u64) {
        (
            self.builds.load(Ordering::Relaxed),
            self.build_micros.load(Ordering::Relaxed),
        )
    }

    /// Requests answered by one compiled statement instead of resolvers.
    pub fn compiled_answers(&self) -> u64 {
        self.compiled_answers.load(Ordering::Relaxed)
    }

    /// The schema of `workspace`, built on first use.
    pub async fn get(&self, db: &Database, workspace: &Workspace) -> Result<Arc<WorkspaceSchema>> {
        if let Some(entry) = self.entries.load().get(&workspace.name) {
            return Ok(entry.clone());
        }
        let entry = Arc::new(self.build(db, workspace).await?);
        self.store(&entry);
        Ok(entry)
    }

    /// Caches a built schema unless a newer one is cached already (another
    /// request or a rebuild may have stored one meanwhile).
    fn store(&self, entry: &Arc<WorkspaceSchema>) {
        let name = &entry.workspace.name;
        self.entries.rcu(|entries| {
            let mut entries = HashMap::clone(entries);
            if entries
                .get(name)
                .is_none_or(|cached| cached.metadata_version < entry.metadata_version)
            {
                entries.insert(name.clone(), entry.clone());
            }
            entries
        });
    }

    /// Builds a workspace's schema from its metadata as stored now.
    async fn build(&self, db: &Database, workspace: &Workspace) -> Result<WorkspaceSchema> {
        let started = std::time::Instant::now();
        let mut conn = db.conn().await?;
        // Settings first: the model read after is at least as new as the version.
        let settings = settings(&mut conn, &workspace.pg_schema).await?;
        let custom = Customizations::read(&mut conn, &workspace.pg_schema).await?;
        drop(conn);
        let model = Arc::new(custom.model()?);
        let schema = self
            .rooms
            .build(&model, Some(self.limits))
            .map_err(|err| CrmError::internal(format_args!("building the schema of {}: {}", workspace.name, err.0)))?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.builds.fetch_add(1, Ordering::Relaxed);
        self.build_micros.fetch_add(micros, Ordering::Relaxed);
        tracing::info!(
            workspace = %workspace.name,
            version = settings.metadata_version,
            objects = model.objects().len(),
            elapsed_ms = micros as f64 / 1000.0,
            "built the GraphQL schema"
        );
        Ok(WorkspaceSchema {
            workspace: workspace.clone(),
            metadata_version: settings.metadata_version,
            record_visibility: Arc::new(VisibilitySetting::new(
                RecordVisibility::parse(&settings.record_visibility).unwrap_or_default(),
            )),
            model,
            schema,
            rooms: self.rooms,
            plans: compiled::Plans::new(Some(self.limits), self.compiled_answers.clone()),
        })
    }

    /// Rebuilds a cached workspace schema after its metadata changed (here or
    /// on another server) and swaps it in: requests in flight finish on the
    /// old one. An older build never replaces a newer one. When the rebuild
    /// fails, the cached schema is dropped so the next request builds it.
    pub async fn refresh(&self, db: &Database, workspace: &Workspace) {
        if let Err(err) = self.rebuild(db, workspace).await {
            tracing::error!(%err, workspace = %workspace.name, "rebuilding the schema failed");
            self.invalidate(&workspace.name);
        }
    }

    async fn rebuild(&self, db: &Database, workspace: &Workspace) -> Result<()> {
        let _one_at_a_time = self.rebuilding.lock().await;
        if let Some(cached) = self.cached_version(&workspace.name) {
            let mut conn = db.conn().await?;
            let current = settings(&mut conn, &workspace.pg_schema).await?.metadata_version;
            if cached >= current {
                return Ok(());
            }
        }
        self.store(&Arc::new(self.build(db, workspace).await?));
        Ok(())
    }

    /// A workspace's settings changed (here or on another server): reads
    /// them again, and those of every cached sandbox when production's
    /// changed (sandboxes that kept production's setting follow it).
    pub async fn settings_changed(&self, db: &Database, workspace: &str) {
        if workspace != Workspace::production().name {
            return self.reload_settings(db, workspace).await;
        }
        for cached in self.cached_workspaces() {
            self.reload_settings(db, &cached.name).await;
        }
    }

    /// Reads a cached workspace's `recordVisibility` again (another server
    /// changed it); on failure the cached schema is dropped.
    pub async fn reload_settings(&self, db: &Database, workspace: &str) {
        let Some(entry) = self.cached(workspace) else {
            return;
        };
        let read = async {
            let mut conn = db.conn().await?;
            record_visibility(&mut conn, &entry.workspace.pg_schema).await
        };
        match read.await {
            Ok(visibility) => entry.record_visibility.set(visibility),
            Err(err) => {
                tracing::error!(%err, %workspace, "reading changed settings failed");
                self.invalidate(workspace);
            }
        }
    }

    /// The metadata version a workspace's cached schema was built from.
    pub fn cached_version(&self, workspace: &str) -> Option<i32> {
        self.entries.load().get(workspace).map(|entry| entry.metadata_version)
    }

    /// The cached schema of a workspace, if built.
    pub fn cached(&self, workspace: &str) -> Option<Arc<WorkspaceSchema>> {
        self.entries.load().get(workspace).cloned()
    }

    /// The workspaces with a cached schema.
    pub fn cached_workspaces(&self) -> Vec<Workspace> {
        self.entries
            .load()
            .values()
            .map(|entry| entry.workspace.clone())
            .collect()
    }

    /// Drops the cached schema of a workspace whose metadata changed.
    pub fn invalidate(&self, workspace: &str) {
        self.entries.rcu(|entries| {
            let mut entries = HashMap::clone(entries);
            entries.remove(workspace);
            entries
        });
    }
}

#[derive(diesel::QueryableByName)]
struct Settings {
    #[diesel(sql_type = Integer)]
    metadata_version: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    record_visibility: String,
}

async fn settings(conn: &mut diesel_async::AsyncPgConnection, pg_schema: &str) -> Result<Settings> {
    let mut query = Sql::raw("SELECT metadata_version, record_visibility FROM ");
    query.table(pg_schema, "workspace_settings");
    let rows: Vec<Settings> = query.load(conn).await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| CrmError::internal(format_args!("{pg_schema}.workspace_settings is empty")))
}

/// The `recordVisibility` a workspace's requests obey now.
pub async fn record_visibility(
    conn: &mut diesel_async::AsyncPgConnection,
    pg_schema: &str,
) -> Result<RecordVisibility> {
    let settings = settings(conn, pg_schema).await?;
    Ok(RecordVisibility::parse(&settings.record_visibility).unwrap_or_default())
}

/// The SDL of the production schema with no customizations.
pub fn production_sdl(rooms: Rooms) -> std::result::Result<String, async_graphql::dynamic::SchemaError> {
    let schema = rooms.build(&Model::standard(), None)?;
    Ok(schema.sdl())
}

/// How a request was answered.
pub enum Answer {
    /// By one compiled statement: the response body, ready to send.
    Compiled(String),
    /// By the resolvers. `executed` is false when the request failed
    /// before execution (parse, validation, limits): then it has no `data`.
    Resolved { response: Box<Response>, executed: bool },
}

/// Runs a request: compiled when it can be, else through the resolvers,
/// with a stable `extensions.code` on every error.
pub async fn answer(entry: &WorkspaceSchema, db: &Database, caller: Caller, request: Request) -> Answer {
    let workspace = entry.workspace.pg_schema.as_str();
    let visibility = Visibility::of(&caller.actor, entry.record_visibility.get(), &entry.model);
    if let Some(body) = entry
        .plans
        .answer(
            &entry.model,
            workspace,
            &visibility,
            db,
            entry.schema.registry(),
            &request,
        )
        .await
    {
        return Answer::Compiled(body);
    }
    let key = compiled::plan_key(&request);
    let (response, executed) = run(entry, db, caller, visibility, request).await;
    entry.plans.confirm(key, &response);
    Answer::Resolved {
        response: Box::new(response),
        executed,
    }
}

/// Runs a request over a long-lived connection (a WebSocket): a
/// subscription's stream of responses, or a query's one, each error with
/// a stable `extensions.code`.
pub fn stream(
    entry: &WorkspaceSchema,
    db: &Database,
    caller: Caller,
    request: Request,
) -> futures_util::stream::BoxStream<'static, Response> {
    use futures_util::StreamExt;
    let visibility = Visibility::of(&caller.actor, entry.record_visibility.get(), &entry.model);
    let context = RequestContext::new(db.clone(), entry, caller, visibility);
    entry
        .schema
        .execute_stream(request.data(context))
        .map(|mut response| {
            for error in &mut response.errors {
                ensure_code(error);
            }
            response
        })
        .boxed()
}

/// Runs a request through the resolvers and gives every error a stable
/// `extensions.code`.
pub async fn execute(entry: &WorkspaceSchema, db: &Database, caller: Caller, request: Request) -> Response {
    let visibility = Visibility::of(&caller.actor, entry.record_visibility.get(), &entry.model);
    run(entry, db, caller, visibility, request).await.0
}

async fn run(
    entry: &WorkspaceSchema,
    db: &Database,
    caller: Caller,
    visibility: Visibility,
    request: Request,
) -> (Response, bool) {
    let context = RequestContext::new(db.clone(), entry, caller, visibility);
    let notices = context.notices.clone();
    let query = request.query.clone();
    let operation_name = request.operation_name.clone();
    let mut response = entry.schema.execute(request.data(context)).await;
    let duplicates = notices.take();
    if !duplicates.is_empty() {
        if let Ok(value) = Value::from_json(serde_json::Value::Array(duplicates)) {
            response.extensions.insert("duplicates".into(), value);
        }
    }
    // What a saved rule means for the records there are (a validation
    // rule's count of records it would refuse).
    if let Some(impact) = notices.take_impact() {
        let impact = serde_json::to_value(impact).unwrap_or_default();
        if let Ok(value) = Value::from_json(impact) {
            response.extensions.insert("dataImpact".into(), value);
        }
    }
    // Resolvers' errors carry a code and the position of their field;
    // errors before execution have no code (parse, validation) or, from
    // the query gate, no position.
    let executed = !matches!(response.data, Value::Null)
        || response.errors.iter().any(|error| {
            let code = error.extensions.as_ref().and_then(|e| e.get("code"));
            code.is_some() && !error.locations.is_empty()
        });
    for error in &mut response.errors {
        ensure_code(error);
    }
    in_selection_order(&mut response.data, &query, operation_name.as_deref());
    (response, executed)
}

/// async-graphql resolves sibling fields concurrently and lists them in
/// the order they finish; GraphQL (and every client) expects the order of
/// the query. Puts each object's keys back in selection order.
fn in_selection_order(data: &mut Value, query: &str, operation_name: Option<&str>) {
    if matches!(data, Value::Null) {
        return;
    }
    let Ok(document) = cache::document(query) else {
        return;
    };
    if let Some(operation) = compiled::operation(&document, operation_name) {
        order_value(data, &[&operation.selection_set.node], &document);
    }
}

fn order_value(value: &mut Value, sets: &[&SelectionSet], document: &ExecutableDocument) {
    match value {
        Value::List(items) => items.iter_mut().for_each(|item| order_value(item, sets, document)),
        Value::Object(map) => {
            let mut keys: Vec<(&Name, Vec<&SelectionSet>)> = Vec::new();
            for set in sets {
                selected_keys(set, document, &mut keys, 0);
            }
            let mut unordered = std::mem::take(map);
            for (key, subsets) in keys {
                if let Some(mut child) = unordered.swap_remove(key) {
                    order_value(&mut child, &subsets, document);
                    map.insert(key.clone(), child);
                }
            }
            map.extend(unordered);
        }
        _ => {}
    }
}

/// The response keys of a selection in order, each with the selection sets
/// of the fields merged under it.
fn selected_keys<'d>(
    set: &'d SelectionSet,
    document: &'d ExecutableDocument,
    keys: &mut Vec<(&'d Name, Vec<&'d SelectionSet>)>,
    nesting: usize,
) {
    if nesting > 16 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = &field.node.response_key().node;
                let subset = &field.node.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, subsets)) => subsets.push(subset),
                    None => keys.push((key, vec![subset])),
                }
            }
            Selection::InlineFragment(fragment) => {
                selected_keys(&fragment.node.selection_set.node, document, keys, nesting + 1)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    selected_keys(&fragment.node.selection_set.node, document, keys, nesting + 1);
                }
            }
        }
    }
}

/// Errors raised by async-graphql itself (parse, validation, limits) carry
/// no code: name them, and point input errors at the argument they concern.
fn ensure_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
    if extensions.get("code").is_some() {
        return;
    }
    let message = error.message.as_str();
    let code = if message.contains("nested too deep") || message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else if error.path.is_empty() {
        "BAD_USER_INPUT"
    } else {
        "INTERNAL"
    };
    extensions.set("code", code);
    if code == "BAD_USER_INPUT" {
        let field = quoted_path(message);
        if !field.is_empty() {
            extensions.set("field", Value::List(field.into_iter().map(Value::String).collect()));
        }
    }
}

/// The argument and field names an async-graphql validation message quotes:
/// `Invalid value for argument "input", field "lastName" …` → `["input", "lastName"]`.
fn quoted_path(message: &str) -> Vec<String> {
    let mut path = Vec::new();
    for marker in ["argument \"", "field \""] {
        let mut rest = message;
        while let Some(start) = rest.find(marker) {
            rest = &rest[start + marker.len()..];
            if let Some(end) = rest.find('"') {
                let name = &rest[..end];
                if marker == "argument \"" {
                    path.extend(name.split('.').map(str::to_owned));
                } else if !path.is_empty() {
                    path.push(name.to_owned());
                }
                rest = &rest[end..];
            }
        }
    }
    path
}
