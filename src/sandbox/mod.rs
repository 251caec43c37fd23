//! Sandboxes: copies of production's Postgres schema (`sandbox_<name>`)
//! where admins build and test customizations with their own GraphQL
//! endpoint, while production does not change.
//!
//! A sandbox is made in one transaction: the registry row, the schema by
//! the same workspace migrations as production, production's
//! customizations replayed through the same metadata code that made them,
//! and the rows its mode asks for ([`copy`]). Production is read at one
//! snapshot, so the copy is consistent; a failure leaves nothing behind.

pub mod api;
pub mod copy;
pub mod progress;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, SimpleAsyncConnection, TransactionManager,
};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::audit::{self, Action, Trail};
use crate::db::migrate::{self, PRODUCTION_SCHEMA};
use crate::db::sql::{Bind, Sql};
use crate::db::{Conn, Database};
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;
use crate::metadata::custom::Customizations;
use crate::metadata::replay;
use crate::notify::{self, Announcement};
use copy::{Copy, Records};

/// Records a SAMPLE sandbox takes of each object unless told otherwise.
pub const DEFAULT_SAMPLE_SIZE: i32 = 1000;
/// The largest sample: beyond it, a FULL copy is what is wanted.
pub const MAX_SAMPLE_SIZE: i32 = 100_000;

/// What a sandbox is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Customizations and configuration (pipelines, stages); no records.
    MetadataOnly,
    /// Also up to `sample_size` records of each object, relations intact.
    Sample,
    /// Also every record.
    Full,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::MetadataOnly, Mode::Sample, Mode::Full];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::MetadataOnly => "METADATA_ONLY",
            Mode::Sample => "SAMPLE",
            Mode::Full => "FULL",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    pub fn description(self) -> &'static str {
        match self {
            Mode::MetadataOnly => "Customizations and configuration (pipelines, stages), no records: made in a moment.",
            Mode::Sample => {
                "Also a sample of each object's records (sampleSize, default 1000), every relation kept consistent."
            }
            Mode::Full => "Also every record, copied inside Postgres.",
        }
    }
}

/// A sandbox as registered.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub name: String,
    /// Its Postgres schema, `sandbox_<name>`.
    pub pg_schema: String,
    pub description: String,
    pub mode: Mode,
    /// Records per object of a SAMPLE sandbox.
    pub sample_size: Option<i32>,
    /// Personal data was replaced by fake values while copying.
    pub masked: bool,
    pub created_at: DateTime<Utc>,
    /// `None` when made on the command line.
    pub created_by: Option<Uuid>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub refreshed_by: Option<Uuid>,
    /// Production's metadata version when the sandbox was made or last
    /// refreshed: the base of a promotion.
    pub base_version: i32,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    pg_schema: String,
    #[diesel(sql_type = Text)]
    description: String,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Nullable<Integer>)]
    sample_size: Option<i32>,
    #[diesel(sql_type = Bool)]
    masked: bool,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    created_by: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    refreshed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    refreshed_by: Option<Uuid>,
    #[diesel(sql_type = Integer)]
    base_version: i32,
}

impl Row {
    fn sandbox(self) -> Result<Sandbox> {
        let mode = Mode::parse(&self.mode)
            .ok_or_else(|| CrmError::internal(format_args!("sandbox {} has mode {}", self.name, self.mode)))?;
        Ok(Sandbox {
            name: self.name,
            pg_schema: self.pg_schema,
            description: self.description,
            mode,
            sample_size: self.sample_size,
            masked: self.masked,
            created_at: self.created_at,
            created_by: self.created_by,
            refreshed_at: self.refreshed_at,
            refreshed_by: self.refreshed_by,
            base_version: self.base_version,
        })
    }
}

/// How a sandbox is to be filled, checked.
#[derive(Debug, Clone)]
pub struct Filling {
    pub mode: Mode,
    pub sample_size: Option<i32>,
    pub mask: bool,
}

impl Filling {
    /// Checks a sample size against the mode; `at` is the path of the
    /// argument that gave it.
    pub fn new(mode: Mode, sample_size: Option<i32>, mask: bool, at: &[&str]) -> Result<Filling> {
        let sample_size = match (mode, sample_size) {
            (Mode::Sample, None) => Some(DEFAULT_SAMPLE_SIZE),
            (Mode::Sample, Some(size)) if (1..=MAX_SAMPLE_SIZE).contains(&size) => Some(size),
            (Mode::Sample, Some(_)) => {
                return Err(CrmError::bad_input(
                    at,
                    format!("a sample has 1 to {MAX_SAMPLE_SIZE} records per object"),
                ))
            }
            (_, Some(_)) => return Err(CrmError::bad_input(at, "only a SAMPLE sandbox takes a sampleSize")),
            (_, None) => None,
        };
        Ok(Filling {
            mode,
            sample_size,
            mask,
        })
    }

    fn records(&self) -> Records {
        match self.mode {
            Mode::MetadataOnly => Records::None,
            Mode::Sample => Records::Sample(i64::from(self.sample_size.unwrap_or(DEFAULT_SAMPLE_SIZE))),
            Mode::Full => Records::All,
        }
    }
}

/// A sandbox to make.
#[derive(Debug, Clone)]
pub struct NewSandbox {
    pub name: String,
    pub description: String,
    pub filling: Filling,
}

/// Told how making a sandbox goes, for progress bars.
pub trait Progress: Send + Sync {
    /// Copying begins; about `rows` rows will be copied.
    fn start(&self, _rows: u64) {}
    /// A step begins (`copying contact`).
    fn step(&self, _what: &str) {}
    /// `rows` more rows were copied.
    fn copied(&self, _rows: u64) {}
}

/// Why a name cannot name a sandbox, if it cannot.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let valid = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err("a sandbox name has 1 to 40 lowercase letters, digits and underscores".into());
    }
    if name == "production" {
        return Err("production is the name of the production workspace".into());
    }
    Ok(())
}

/// The Postgres schema of a sandbox.
pub fn schema_of(name: &str) -> String {
    format!("sandbox_{name}")
}

const COLUMNS: &str = "name, pg_schema, description, mode, sample_size, masked, created_at, created_by, \
                       refreshed_at, refreshed_by, base_version";

/// Every sandbox, by name.
pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<Sandbox>> {
    let query = Sql::raw(&format!(
        "SELECT {COLUMNS} FROM crm_system.workspace WHERE kind = 'sandbox' ORDER BY name"
    ));
    let rows: Vec<Row> = query.load(conn).await?;
    rows.into_iter().map(Row::sandbox).collect()
}

/// The sandbox of this name, if there is one.
pub async fn find(conn: &mut AsyncPgConnection, name: &str) -> Result<Option<Sandbox>> {
    let mut query = Sql::raw(&format!(
        "SELECT {COLUMNS} FROM crm_system.workspace WHERE kind = 'sandbox' AND name = "
    ));
    query.bind(Bind::Text(Some(name.to_owned())));
    let rows: Vec<Row> = query.load(conn).await?;
    rows.into_iter().next().map(Row::sandbox).transpose()
}

async fn existing(conn: &mut AsyncPgConnection, name: &str) -> Result<Sandbox> {
    find(conn, name)
        .await?
        .ok_or_else(|| CrmError::not_found("Sandbox", name))
}

/// Makes a sandbox from production as it is now.
pub async fn create(db: &Database, trail: &Trail, new: &NewSandbox, progress: &dyn Progress) -> Result<Sandbox> {
    check_name(&new.name).map_err(|why| CrmError::bad_input(&["input", "name"], why))?;
    let schema = schema_of(&new.name);
    build(db, trail, &new.name, &new.filling, progress, async |conn| {
        if find(conn, &new.name).await?.is_some() {
            return Err(CrmError::Conflict(format!(
                "there is already a sandbox named {}",
                new.name
            )));
        }
        if schema_exists(conn, &schema).await? {
            return Err(CrmError::Conflict(format!(
                "the database has a schema {schema} that is not a sandbox's: drop it or choose another name"
            )));
        }
        let mut insert = Sql::raw(
            "INSERT INTO crm_system.workspace \
             (name, pg_schema, kind, description, mode, sample_size, masked, created_by, base_version, base) SELECT ",
        );
        for value in [
            Bind::Text(Some(new.name.clone())),
            Bind::Text(Some(schema.clone())),
            Bind::Text(Some("sandbox".into())),
            Bind::Text(Some(new.description.clone())),
            Bind::Text(Some(new.filling.mode.as_str().into())),
            Bind::Int(new.filling.sample_size),
            Bind::Bool(Some(new.filling.mask)),
            Bind::Uuid(trail.actor.as_ref().map(|a| a.user_id)),
        ] {
            insert.bind(value).push(", ");
        }
        insert.push("s.metadata_version, ").append(&base_snapshot());
        insert
            .push(" FROM ")
            .table(PRODUCTION_SCHEMA, "workspace_settings")
            .push(" AS s");
        insert.execute(conn).await.map_err(|err| match CrmError::from(err) {
            CrmError::Conflict(_) => CrmError::Conflict(format!("there is already a sandbox named {}", new.name)),
            other => other,
        })?;
        let entry = audit::Entry {
            object: "Sandbox".into(),
            record_id: None,
            action: Action::Create,
            changes: settings_changes(&new.name, &new.filling),
        };
        audit::append(conn, trail, &[entry]).await?;
        // No server has anything of it to forget; reads routed to replicas
        // wait for it (`db::replicas`).
        let made = Announcement::WorkspaceReplaced {
            workspace: new.name.clone(),
        };
        notify::announce(conn, &made).await
    })
    .await
}

/// Makes a sandbox again from production as it is now, discarding
/// everything changed in it; `filling` may change how it is filled.
pub async fn refresh(
    db: &Database,
    trail: &Trail,
    name: &str,
    filling: &Filling,
    progress: &dyn Progress,
) -> Result<Sandbox> {
    build(db, trail, name, filling, progress, async |conn| {
        let sandbox = existing(conn, name).await?;
        let mut drop = Sql::raw("DROP SCHEMA ");
        drop.ident(&sandbox.pg_schema).push(" CASCADE");
        drop.execute(conn).await?;
        let mut update = Sql::raw("UPDATE crm_system.workspace SET mode = ");
        update.bind(Bind::Text(Some(filling.mode.as_str().into())));
        update.push(", sample_size = ").bind(Bind::Int(filling.sample_size));
        update.push(", masked = ").bind(Bind::Bool(Some(filling.mask)));
        update.push(", refreshed_at = now(), refreshed_by = ");
        update.bind(Bind::Uuid(trail.actor.as_ref().map(|a| a.user_id)));
        update
            .push(", base_version = s.metadata_version, base = ")
            .append(&base_snapshot());
        update.push(" FROM ").table(PRODUCTION_SCHEMA, "workspace_settings");
        update
            .push(" AS s WHERE name = ")
            .bind(Bind::Text(Some(name.to_owned())));
        update.execute(conn).await?;
        let entry = audit::Entry {
            object: "Sandbox".into(),
            record_id: None,
            action: Action::Update,
            changes: settings_changes(name, filling),
        };
        audit::append(conn, trail, &[entry]).await?;
        let replaced = Announcement::WorkspaceReplaced {
            workspace: name.to_owned(),
        };
        notify::announce(conn, &replaced).await
    })
    .await
}

/// The transaction making a sandbox's schema: `register` (the registry
/// row, a dropped old schema), the migrations, the replayed
/// customizations and the copy. Production is read at one snapshot taken
/// by its first statement, which also keeps production's metadata from
/// changing until the commit.
async fn build(
    db: &Database,
    trail: &Trail,
    name: &str,
    filling: &Filling,
    progress: &dyn Progress,
    register: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<()>,
) -> Result<Sandbox> {
    let mut conn = db.conn().await?;
    AnsiTransactionManager::begin_transaction(&mut *conn).await?;
    let registered = async {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL statement_timeout = 0")
            .await?;
        let mut lock = Sql::raw("SELECT metadata_version FROM ");
        lock.table(PRODUCTION_SCHEMA, "workspace_settings").push(" FOR SHARE");
        lock.execute(&mut conn).await.map_err(production_moved)?;
        register(&mut conn).await
    }
    .await;
    if let Err(err) = registered {
        return abandon(conn, err).await;
    }
    progress.step("making the schema");
    let schema = schema_of(name);
    // On failure the connection is dropped with its transaction open: the
    // pool discards it and Postgres rolls the transaction back.
    let mut conn = migrate::migrate_new_workspace(conn, &schema).await?;
    match fill(&mut conn, trail, name, filling, progress).await {
        Ok(()) => {
            AnsiTransactionManager::commit_transaction(&mut *conn)
                .await
                .map_err(production_moved)?;
            existing(&mut conn, name).await
        }
        Err(err) => abandon(conn, err).await,
    }
}

/// Replays production's customizations into the new schema and copies rows.
async fn fill(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    name: &str,
    filling: &Filling,
    progress: &dyn Progress,
) -> Result<()> {
    progress.step("replaying production's customizations");
    let schema = schema_of(name);
    let in_sandbox = Trail {
        workspace: name.to_owned(),
        ..trail.clone()
    };
    let target = Target {
        schema: &schema,
        trail: &in_sandbox,
        // Production's API serves these already.
        check: &|_| Ok(()),
        // Stored values, checked when they were first given.
        value: &|_, value, _| Ok(value.clone()),
        replaying: true,
        rehearsal: false,
        lock_timeout: None,
    };
    let custom = replay::replay(conn, &target, PRODUCTION_SCHEMA).await?;
    let copy = Copy {
        from: PRODUCTION_SCHEMA,
        to: &schema,
        records: filling.records(),
        mask: filling.mask,
        progress,
    };
    copy.run(conn, &custom).await?;
    // The copied duplicate rules compare through their indexes here too
    // (replayed fields built their search indexes as they were made).
    let model = crate::metadata::custom::Customizations::read(conn, &schema)
        .await?
        .model()?;
    crate::duplicates::indexes::sync(conn, &schema, &model).await?;
    // Copied DATE_OFFSET rules fire for the copied records too (at times
    // still to come; only what the sandbox captures leaves it).
    let rules = crate::automation::rules::with_trigger(conn, &schema, &model, "DATE_OFFSET").await?;
    let ids: Vec<uuid::Uuid> = rules.iter().map(|rule| rule.id).collect();
    crate::automation::timers::sync(conn, &schema, &model, &ids).await?;
    // Copied webhook subscriptions start disabled, with secrets of their own.
    crate::webhooks::copied(conn, &schema).await?;
    Ok(())
}

async fn abandon<T>(mut conn: Conn, err: CrmError) -> Result<T> {
    if let Err(rollback) = AnsiTransactionManager::rollback_transaction(&mut *conn).await {
        tracing::warn!(%rollback, "rolling back a sandbox that was not made");
    }
    Err(err)
}

/// Production's metadata changed between the snapshot and the lock (or
/// the commit): the copy would not match it.
fn production_moved(err: diesel::result::Error) -> CrmError {
    use diesel::result::{DatabaseErrorKind, Error};
    match err {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => CrmError::Conflict(
            "production's metadata changed while the sandbox was being made: nothing was made, try again".into(),
        ),
        err => err.into(),
    }
}

/// Deletes a sandbox: its schema with everything in it, and its grants.
pub async fn delete(db: &Database, trail: &Trail, name: &str) -> Result<Sandbox> {
    let mut conn = db.conn().await?;
    conn.transaction::<_, CrmError, _>(async |conn| {
        let sandbox = existing(conn, name).await?;
        let mut lock = Sql::raw("SELECT name FROM crm_system.workspace WHERE name = ");
        lock.bind(Bind::Text(Some(name.to_owned()))).push(" FOR UPDATE");
        lock.execute(conn).await?;
        let mut drop = Sql::raw("DROP SCHEMA ");
        drop.ident(&sandbox.pg_schema).push(" CASCADE");
        drop.execute(conn).await?;
        let mut delete = Sql::raw("DELETE FROM crm_system.workspace WHERE name = ");
        delete.bind(Bind::Text(Some(name.to_owned())));
        delete.execute(conn).await?;
        let entry = audit::Entry {
            object: "Sandbox".into(),
            record_id: None,
            action: Action::Purge,
            changes: vec![audit::Change {
                field: "name".into(),
                before: Json::String(name.to_owned()),
                after: Json::Null,
            }],
        };
        audit::append(conn, trail, &[entry]).await?;
        let replaced = Announcement::WorkspaceReplaced {
            workspace: name.to_owned(),
        };
        notify::announce(conn, &replaced).await?;
        Ok(sandbox)
    })
    .await
}

/// Lets a user who is not an admin use a sandbox's endpoint, with the
/// role they have.
pub async fn grant(conn: &mut AsyncPgConnection, trail: &Trail, name: &str, user: Uuid) -> Result<()> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        existing(conn, name).await?;
        let mut insert = Sql::raw("INSERT INTO crm_system.sandbox_access (workspace, user_id, granted_by) SELECT ");
        insert.bind(Bind::Text(Some(name.to_owned()))).push(", u.id, ");
        insert.bind(Bind::Uuid(trail.actor.as_ref().map(|a| a.user_id)));
        insert
            .push(" FROM crm_system.users u WHERE u.id = ")
            .bind(Bind::Uuid(Some(user)));
        insert.push(" ON CONFLICT DO NOTHING");
        if insert.execute(conn).await? == 0 && !may_use(conn, name, user).await? {
            return Err(CrmError::bad_input(&["userId"], format!("there is no user {user}")));
        }
        let entry = access_entry(name, user, Action::Create);
        audit::append(conn, trail, &[entry]).await
    })
    .await
}

/// Takes back a grant.
pub async fn revoke(conn: &mut AsyncPgConnection, trail: &Trail, name: &str, user: Uuid) -> Result<()> {
    conn.transaction::<_, CrmError, _>(async |conn| {
        existing(conn, name).await?;
        let mut delete = Sql::raw("DELETE FROM crm_system.sandbox_access WHERE workspace = ");
        delete.bind(Bind::Text(Some(name.to_owned())));
        delete.push(" AND user_id = ").bind(Bind::Uuid(Some(user)));
        if delete.execute(conn).await? == 0 {
            return Err(CrmError::bad_input(
                &["userId"],
                format!("user {user} has no access to the sandbox {name}"),
            ));
        }
        let entry = access_entry(name, user, Action::Revoke);
        audit::append(conn, trail, &[entry]).await
    })
    .await
}

fn access_entry(name: &str, user: Uuid, action: Action) -> audit::Entry {
    audit::Entry {
        object: "SandboxAccess".into(),
        record_id: Some(user),
        action,
        changes: vec![audit::Change {
            field: "sandbox".into(),
            before: Json::Null,
            after: Json::String(name.to_owned()),
        }],
    }
}

/// Whether a user was granted the use of a sandbox.
pub async fn may_use(conn: &mut AsyncPgConnection, name: &str, user: Uuid) -> Result<bool> {
    let mut query = Sql::raw("SELECT true AS exists FROM crm_system.sandbox_access WHERE workspace = ");
    query.bind(Bind::Text(Some(name.to_owned())));
    query.push(" AND user_id = ").bind(Bind::Uuid(Some(user)));
    let rows: Vec<crate::db::sql::Exists> = query.load(conn).await?;
    Ok(!rows.is_empty())
}

/// The users granted the use of a sandbox.
pub async fn granted(conn: &mut AsyncPgConnection, name: &str) -> Result<Vec<Uuid>> {
    #[derive(diesel::QueryableByName)]
    struct Grant {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        user_id: Uuid,
    }
    let mut query = Sql::raw("SELECT user_id FROM crm_system.sandbox_access WHERE workspace = ");
    query.bind(Bind::Text(Some(name.to_owned())));
    query.push(" ORDER BY granted_at, user_id");
    let rows: Vec<Grant> = query.load(conn).await?;
    Ok(rows.into_iter().map(|g| g.user_id).collect())
}

/// How much a sandbox holds.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Records and configuration rows of its live objects.
    pub rows: i64,
    /// Disk used by its tables, indexes included.
    pub bytes: i64,
}

/// Counts a sandbox's rows (exactly) and bytes.
pub async fn size(conn: &mut AsyncPgConnection, sandbox: &Sandbox) -> Result<Size> {
    #[derive(diesel::QueryableByName)]
    struct Measured {
        #[diesel(sql_type = BigInt)]
        rows: i64,
        #[diesel(sql_type = BigInt)]
        bytes: i64,
    }
    let model = Customizations::read(conn, &sandbox.pg_schema).await?.model()?;
    let mut query = Sql::raw("SELECT (0");
    for object in model.objects().iter().filter(|o| o.schema.is_none()) {
        query
            .push(" + (SELECT count(*) FROM ")
            .table(&sandbox.pg_schema, &object.table)
            .push(")");
    }
    query.push(
        ")::bigint AS rows, (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = ",
    );
    query.bind(Bind::Text(Some(sandbox.pg_schema.clone())));
    query.push(")::bigint AS bytes");
    let rows: Vec<Measured> = query.load(conn).await?;
    let measured = rows
        .first()
        .ok_or_else(|| CrmError::internal("measuring a sandbox gave no row"))?;
    Ok(Size {
        rows: measured.rows,
        bytes: measured.bytes,
    })
}

/// Production's metadata version now.
pub async fn production_version(conn: &mut AsyncPgConnection) -> Result<i32> {
    metadata_version(conn, PRODUCTION_SCHEMA).await
}

/// A workspace schema's metadata version now.
pub async fn metadata_version(conn: &mut AsyncPgConnection, schema: &str) -> Result<i32> {
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = Integer)]
        metadata_version: i32,
    }
    let mut query = Sql::raw("SELECT metadata_version FROM ");
    query.table(schema, "workspace_settings");
    let rows: Vec<Version> = query.load(conn).await?;
    Ok(rows.first().map_or(0, |v| v.metadata_version))
}

async fn schema_exists(conn: &mut AsyncPgConnection, schema: &str) -> Result<bool> {
    let mut query = Sql::raw("SELECT true AS exists FROM pg_namespace WHERE nspname = ");
    query.bind(Bind::Text(Some(schema.to_owned())));
    let rows: Vec<crate::db::sql::Exists> = query.load(conn).await?;
    Ok(!rows.is_empty())
}

/// Production's metadata as it stands, as one JSON document, for a
/// statement reading `workspace_settings AS s`: a sandbox's base.
fn base_snapshot() -> Sql {
    crate::metadata::kinds::document(PRODUCTION_SCHEMA)
}

fn settings_changes(name: &str, filling: &Filling) -> Vec<audit::Change> {
    let settings = [
        ("name", json!(name)),
        ("mode", json!(filling.mode.as_str())),
        ("sampleSize", json!(filling.sample_size)),
        ("masked", json!(filling.mask)),
    ];
    settings
        .into_iter()
        .map(|(field, after)| audit::Change {
            field: field.into(),
            before: Json::Null,
            after,
        })
        .collect()
}
