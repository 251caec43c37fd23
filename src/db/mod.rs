//! Database access: the embedded cluster, the connection pool, migrations
//! and the SQL builder every query goes through.

pub mod embedded;
mod error;
pub mod migrate;
pub mod replicas;
pub mod sql;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Hook, HookError};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

pub use embedded::supervisor::{ClusterHealth, Supervisor};
pub use embedded::{ClusterOptions, EmbeddedPostgres};
pub use error::Error;

/// Checkouts after which a pooled connection is replaced.
const CONNECTION_USES: usize = 10_000;

/// How long a request waits for a pooled connection when all are busy;
/// past it the request is refused `UNAVAILABLE` rather than queued longer.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How long opening a connection, or checking a returned one, may take: a
/// stalled server (say, paused) fails requests fast instead of holding them.
const POOL_CONNECT: Duration = Duration::from_secs(5);

/// A pooled connection.
pub type Conn = Object<AsyncPgConnection>;

/// The most connections outside the pool (imports and exports, each
/// holding one while it streams) a server opens at once; more wait.
const DEDICATED_CONNECTIONS: usize = 8;
/// How long an import or export waits for one before it is refused.
const DEDICATED_WAIT: Duration = Duration::from_secs(30);

/// A connection outside the pool and its place among the few allowed.
pub struct Dedicated {
    pub client: tokio_postgres::Client,
    /// Held as long as the connection is used.
    pub slot: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for Dedicated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedicated").finish()
    }
}

/// The pool plus the counters operators read on `/metrics`.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AsyncPgConnection>,
    /// Where the pool connects, for work on a connection of its own.
    url: Arc<str>,
    /// Connections of their own open at once (imports, exports).
    dedicated: Arc<tokio::sync::Semaphore>,
    statements: Arc<AtomicU64>,
    /// How long a metadata change's DDL waits for a record table.
    metadata_lock_timeout: Duration,
    health: ClusterHealth,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("status", &self.pool.status()).finish()
    }
}

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub size: usize,
    pub statement_timeout: Duration,
    /// How long a metadata change's DDL waits for a record table that
    /// other work holds before it gives up (and retries): production's
    /// reads and writes queue behind a waiting DDL at most that long.
    pub metadata_lock_timeout: Duration,
}

impl Database {
    /// Identifies this pool among those of the process (one per server;
    /// tests run several): for process-wide state kept per server.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.statements) as usize
    }

    /// Builds the pool. Every connection gets the configured
    /// `statement_timeout`, UTC as its time zone, and a counter of the SQL
    /// statements it runs (the N+1 guard in the tests reads it).
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Self, Error> {
        let statements = Arc::new(AtomicU64::new(0));
        let timeout_ms = options.statement_timeout.as_millis();
        let counter = statements.clone();
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |url| {
            let counter = counter.clone();
            let url = url.to_owned();
            async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.batch_execute(&format!("SET statement_timeout = {timeout_ms}; SET TIME ZONE 'UTC'"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(StatementCounter(counter));
                Ok(conn)
            }
            .boxed()
        });
        let manager = AsyncDieselConnectionManager::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(options.size)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_CONNECT))
            .recycle_timeout(Some(POOL_CONNECT))
            .runtime(deadpool::Runtime::Tokio1)
            // Each connection keeps the statements it prepared; retiring it
            // after many uses bounds that cache whatever queries clients send.
            .post_recycle(Hook::sync_fn(|_, metrics| {
                if metrics.recycle_count >= CONNECTION_USES {
                    Err(HookError::Message("retired to bound its statement cache".into()))
                } else {
                    Ok(())
                }
            }))
            .build()
            .map_err(Error::Pool)?;
        Ok(Database {
            pool,
            url: url.into(),
            dedicated: Arc::new(tokio::sync::Semaphore::new(DEDICATED_CONNECTIONS)),
            statements,
            metadata_lock_timeout: options.metadata_lock_timeout,
            health: ClusterHealth::default(),
        })
    }

    /// The pool, told by `health` when the cluster is down: while it is,
    /// [`Database::conn`] refuses at once instead of trying to connect.
    pub fn supervised_by(mut self, health: ClusterHealth) -> Self {
        self.health = health;
        self
    }

    /// A connection from the pool; `UNAVAILABLE` when the database is
    /// down or no connection could be had in time.
    pub async fn conn(&self) -> crate::error::Result<Conn> {
        if !self.health.is_up() {
            return Err(crate::error::CrmError::unavailable(
                "the embedded PostgreSQL is restarting",
            ));
        }
        Ok(self.pool.get().await?)
    }

    /// A connection outside the pool, with no statement timeout, for long
    /// work a pooled connection cannot do (`COPY` of an import or export):
    /// the client and the task driving its connection.
    pub async fn dedicated(&self) -> crate::error::Result<Dedicated> {
        if !self.health.is_up() {
            return Err(crate::error::CrmError::unavailable(
                "the embedded PostgreSQL is restarting",
            ));
        }
        let slot = tokio::time::timeout(DEDICATED_WAIT, self.dedicated.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                crate::error::CrmError::Busy(format!(
                    "{DEDICATED_CONNECTIONS} imports and exports are running; try again when one has finished"
                ))
            })?;
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .map_err(|err| crate::error::CrmError::unavailable(format!("connecting to the database: {err}")))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("a dedicated connection ended: {err}");
            }
        });
        client
            .batch_execute("SET statement_timeout = 0; SET TIME ZONE 'UTC'")
            .await
            .map_err(|err| crate::error::CrmError::internal(format_args!("setting up a connection: {err}")))?;
        Ok(Dedicated { client, slot })
    }

    /// How long a metadata change's DDL waits for a record table.
    pub fn metadata_lock_timeout(&self) -> Duration {
        self.metadata_lock_timeout
    }

    /// What the supervisor of the embedded cluster knows (always up for a
    /// server named by `DATABASE_URL`).
    pub fn health(&self) -> &ClusterHealth {
        &self.health
    }

    /// SQL statements run through this pool since it was built.
    pub fn statements_run(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Connections in use and idle, for `/metrics`.
    pub fn pool_status(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size - status.available, status.available)
    }
}

struct StatementCounter(Arc<AtomicU64>);

impl Instrumentation for StatementCounter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Opens one connection and closes it: succeeds when the server answers.
pub async fn ping(url: &str) -> diesel::ConnectionResult<()> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute("SELECT 1")
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
}

/// Creates database `name` in the cluster behind `admin_url` unless it
/// exists, optionally as a copy of `template`.
pub async fn create_database(admin_url: &str, name: &str, template: Option<&str>) -> Result<(), Error> {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(admin_url).await?;
    let exists: Vec<sql::Exists> = diesel::sql_query("SELECT true AS exists FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .load(&mut conn)
        .await?;
    if exists.is_empty() {
        let mut statement = format!("CREATE DATABASE {}", sql::quote_ident(name));
        if let Some(template) = template {
            statement.push_str(&format!(" TEMPLATE {}", sql::quote_ident(template)));
        }
        conn.batch_execute(&statement)
            .await
            .map_err(|source| Error::CreateDatabase {
                name: name.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Replaces the database name in a `postgres://` URL, the embedded
/// cluster's socket URLs included (their socket folder is percent-encoded
/// in the host, so the first `/` after it starts the database).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// The database the server uses inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "crm";

/// A workspace the system schema registers: production or a sandbox.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct RegisteredWorkspace {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub name: String,
    /// Its Postgres schema.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub pg_schema: String,
    /// `production` or `sandbox`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
}

/// Every registered workspace, production first, then sandboxes by name.
pub async fn workspaces(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<RegisteredWorkspace>> {
    sql::Sql::raw("SELECT name, pg_schema, kind FROM crm_system.workspace ORDER BY kind <> 'production', name")
        .load(conn)
        .await
}

/// Runs `work` unless another session holds the advisory lock `key`
/// (`pg_try_advisory_lock`): background jobs that one server at a time
/// runs. `None` when another holds it. The lock is taken on a connection
/// out of the pool: should this future be dropped midway, the connection
/// closes and the session lock goes with it.
pub async fn exclusively<T>(
    db: &Database,
    key: i64,
    work: impl std::future::Future<Output = crate::error::Result<T>>,
) -> crate::error::Result<Option<T>> {
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let mut lock_conn = deadpool::managed::Object::take(db.conn().await?);
    let mut lock = sql::Sql::raw("SELECT pg_try_advisory_lock(");
    lock.push(&key.to_string()).push(") AS locked");
    let rows: Vec<Locked> = lock.load(&mut lock_conn).await?;
    if !rows.first().is_some_and(|row| row.locked) {
        return Ok(None);
    }
    let result = work.await;
    let mut unlock = sql::Sql::raw("SELECT pg_advisory_unlock(");
    unlock.push(&key.to_string()).push(") AS locked");
    let unlocked: std::result::Result<Vec<Locked>, _> = unlock.load(&mut lock_conn).await;
    if let Err(err) = unlocked {
        tracing::warn!(%err, key, "releasing a job's advisory lock");
    }
    result.map(Some)
}

/// Runs `job` in the background `first_after` the start (at most
/// `interval`), then every `interval`; never when `interval` is zero. For
/// the jobs servers run on a schedule ([`exclusively`] one at a time):
/// each run logs its own outcome.
pub fn repeat<F>(first_after: Duration, interval: Duration, mut job: F)
where
    F: FnMut() -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
{
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(first_after.min(interval)).await;
        loop {
            job().await;
            tokio::time::sleep(interval).await;
        }
    });
}

/// Runs a job's `work` on every registered workspace (production first),
/// or only on the one named, for jobs that go over them all. A workspace
/// that fails (a sandbox dropped or refreshed meanwhile) is logged under
/// `job` and left out, unless it is the one named: then its failure is
/// the run's. `NOT_FOUND` when the one named is not registered.
pub async fn each_workspace<T>(
    db: &Database,
    only: Option<&str>,
    job: &str,
    work: for<'a> fn(
        &'a mut AsyncPgConnection,
        &'a RegisteredWorkspace,
    ) -> futures_util::future::BoxFuture<'a, crate::error::Result<T>>,
) -> crate::error::Result<Vec<T>> {
    let mut conn = db.conn().await?;
    let chosen: Vec<_> = workspaces(&mut conn)
        .await?
        .into_iter()
        .filter(|w| only.is_none_or(|only| only == w.name))
        .collect();
    if let (Some(name), true) = (only, chosen.is_empty()) {
        return Err(crate::error::CrmError::not_found("Workspace", name));
    }
    let mut all = Vec::with_capacity(chosen.len());
    for workspace in &chosen {
        match work(&mut conn, workspace).await {
            Ok(done) => all.push(done),
            Err(err) if only.is_some() => return Err(err),
            Err(err) => tracing::warn!(workspace = %workspace.name, %err, "{job} skipped a workspace"),
        }
    }
    Ok(all)
}
