//! The running server: the state every request reads ([`http::Shared`]),
//! built over a database, plus the task that keeps its caches in line with
//! what other servers on the same database change. Shared by every
//! request as `Arc<App>`.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::embedded::{lock_for_serving, FolderLock};
use crate::db::replicas::Replicas;
use crate::db::{self, ClusterHealth, ClusterOptions, Database, EmbeddedPostgres, PoolOptions, Supervisor};
use crate::graphql::{Limits, Room, Rooms, SchemaCache};
use crate::http::{self, rate_limit::RateLimits};
use crate::notify::Announcement;

/// The capabilities beside records, in the order their fields appear in
/// the schema: each adds its GraphQL surface (`graphql::room`).
pub const ROOMS: Rooms = Rooms(&[
    crate::team::api::register as Room,
    crate::history::api::register,
    crate::analytics::api::register,
    crate::search::api::register,
    crate::duplicates::register,
    crate::leads::register,
    crate::merge::api::register,
    crate::webhooks::register,
    crate::automation::register,
    crate::live::register,
    crate::timeline::api::register,
    crate::transfer::api::register,
    crate::customize::register,
    crate::sandbox::api::register,
    crate::promotion::api::register,
]);

/// The server: what requests read, and the listener for other servers'
/// changes (see `notify`). Its fields are those of [`http::Shared`],
/// which it dereferences to.
pub struct App {
    shared: Arc<http::Shared>,
    /// Dropping it stops the task listening for other servers' changes.
    _listener: tokio::sync::oneshot::Sender<()>,
    /// Committed record events to read for this server's subscriptions, in
    /// the order announced, off the listener's loop (`live::feed`).
    events: tokio::sync::mpsc::UnboundedSender<(String, i64)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .field("db", &self.db)
            .finish()
    }
}

impl Deref for App {
    type Target = http::Shared;

    fn deref(&self) -> &http::Shared {
        &self.shared
    }
}

impl http::Server for App {
    fn shared(&self) -> &Arc<http::Shared> {
        &self.shared
    }
}

impl App {
    /// Builds the state over a migrated database, and starts listening for
    /// changes other servers on the same database announce (`notify`): it
    /// must run inside the Tokio runtime.
    pub fn new(config: Config, database_url: &str) -> Result<Arc<App>, db::Error> {
        App::build(config, database_url, ClusterHealth::default())
    }

    /// Builds the state over `server`'s database, refusing requests at
    /// once while its supervised cluster is down (see
    /// [`DatabaseServer::open_supervised`]).
    pub fn serving(config: Config, server: &DatabaseServer) -> Result<Arc<App>, db::Error> {
        App::build(config, server.url(), server.health())
    }

    fn build(config: Config, database_url: &str, health: ClusterHealth) -> Result<Arc<App>, db::Error> {
        let pool = PoolOptions {
            size: config.pool_size,
            statement_timeout: config.statement_timeout,
            metadata_lock_timeout: config.metadata_lock_timeout,
        };
        let db = Database::connect(database_url, &pool)?.supervised_by(health);
        let limits = Limits {
            max_depth: config.max_depth,
            max_complexity: config.max_complexity,
            introspection: config.introspection,
        };
        let schemas = Arc::new(SchemaCache::new(limits, ROOMS));
        let auth = Arc::new(Authenticator::new(db.clone()));
        let limits = RateLimits::new(&config);
        let replicas = Replicas::connect(&db, &config.replica_urls, &pool, config.replica_max_lag)?;
        if let Some(replicas) = &replicas {
            replicas.spawn_checks();
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (events, committed) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(crate::live::feed::follow(db.clone(), committed));
        let app = Arc::new(App {
            shared: Arc::new(http::Shared {
                config,
                db,
                schemas,
                auth,
                limits,
                replicas,
            }),
            _listener: stop,
            events,
        });
        tokio::spawn(crate::notify::listen(
            Arc::downgrade(&app),
            database_url.to_owned(),
            stopped,
        ));
        Ok(app)
    }
}

/// The PostgreSQL server a command talks to: `DATABASE_URL`, or the
/// embedded cluster in the data folder (under a server, supervised).
#[derive(Debug)]
pub struct DatabaseServer {
    url: String,
    cluster: Option<EmbeddedPostgres>,
    supervisor: Option<Supervisor>,
    /// Held by `crm serve` on the embedded cluster: one server per folder.
    _serving: Option<FolderLock>,
}

impl DatabaseServer {
    /// Uses `DATABASE_URL` when set; otherwise starts (or joins) the embedded
    /// cluster and makes sure its `crm` database exists.
    pub async fn open(config: &Config) -> Result<Self, db::Error> {
        if let Some(url) = &config.database_url {
            return Ok(DatabaseServer {
                url: url.clone(),
                cluster: None,
                supervisor: None,
                _serving: None,
            });
        }
        let cluster = EmbeddedPostgres::start(&config.data_dir, ClusterOptions::for_this_binary()?).await?;
        db::create_database(&cluster.url("postgres"), db::EMBEDDED_DATABASE, None).await?;
        Ok(DatabaseServer {
            url: cluster.url(db::EMBEDDED_DATABASE),
            cluster: Some(cluster),
            supervisor: None,
            _serving: None,
        })
    }

    /// As [`DatabaseServer::open`], for `crm serve`: the embedded cluster
    /// is this process's to serve alone (a second server on the folder is
    /// refused) and is supervised: restarted whenever it goes away,
    /// whether this process started it or joined it under a command.
    pub async fn open_supervised(config: &Config) -> Result<Self, db::Error> {
        if config.database_url.is_some() {
            return DatabaseServer::open(config).await;
        }
        let serving = lock_for_serving(&config.data_dir)?;
        let mut server = DatabaseServer::open(config).await?;
        if let Some(cluster) = server.cluster.take() {
            server.supervisor = Some(Supervisor::watch(cluster, ClusterOptions::for_this_binary()?));
        }
        server._serving = Some(serving);
        Ok(server)
    }

    /// What the supervisor knows of the cluster (always up unsupervised).
    pub fn health(&self) -> ClusterHealth {
        self.supervisor.as_ref().map(Supervisor::health).unwrap_or_default()
    }

    /// The connection URL of the server's `crm` database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops using the embedded cluster: it stops if no other process uses it.
    pub async fn stop(mut self) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stop().await;
        }
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.stop().await;
        }
    }
}

impl App {
    /// Reads wait for a metadata change on their replica before they meet
    /// the schema built from it.
    async fn replicas_catch_up(&self) {
        if let Some(replicas) = &self.replicas {
            replicas.metadata_changed().await;
        }
    }
}

impl crate::notify::Subscriber for App {
    async fn apply(&self, announcement: Announcement) {
        match announcement {
            Announcement::Metadata { workspace, version } => {
                self.replicas_catch_up().await;
                // Not built here yet: the first request builds the new one.
                if let Some(entry) = self.schemas.cached(&workspace) {
                    if entry.metadata_version < version {
                        self.schemas.refresh(&self.db, &entry.workspace).await;
                    }
                }
            }
            Announcement::Settings { workspace } => {
                self.replicas_catch_up().await;
                self.schemas.settings_changed(&self.db, &workspace).await;
            }
            Announcement::WorkspaceReplaced { workspace } => {
                self.replicas_catch_up().await;
                self.schemas.invalidate(&workspace);
            }
            Announcement::TokenRevoked { id } => self.auth.forget(id),
            Announcement::UserChanged { id } => self.auth.forget_user(id),
            Announcement::Automation { .. } => crate::automation::worker::wake(),
            Announcement::Events { schema, tx } => {
                crate::webhooks::delivery::wake(&self.db, &schema);
                if crate::live::feed::listeners() > 0 {
                    let _ = self.events.send((schema, tx));
                }
            }
        }
    }

    async fn catch_up(&self) {
        // Announcements were missed: reads wait until replicas have what
        // the primary has now.
        self.replicas_catch_up().await;
        crate::live::feed::missed(&self.db);
        for workspace in self.schemas.cached_workspaces() {
            self.schemas.refresh(&self.db, &workspace).await;
            self.schemas.reload_settings(&self.db, &workspace.name).await;
        }
        self.auth.forget_all();
    }
}
