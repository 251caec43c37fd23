//! The running server: configuration, database and schema cache, shared by
//! every request as `Arc<App>`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use crate::auth::{self, Authenticator};
use crate::config::Config;
use crate::db::{self, ClusterOptions, Database, EmbeddedPostgres, PoolOptions};
use crate::graphql::{Limits, Room, Rooms, SchemaCache};
use crate::http::rate_limit::RateLimits;
use crate::notify::Announcement;

/// The capabilities beside records, in the order their fields appear in
/// the schema: each adds its GraphQL surface (`graphql::room`).
pub const ROOMS: Rooms = Rooms(&[
    crate::team::api::register as Room,
    crate::history::api::register,
    crate::customize::register,
    crate::sandbox::api::register,
    crate::promotion::api::register,
]);

/// State shared by all requests.
pub struct App {
    pub config: Config,
    pub db: Database,
    pub schemas: Arc<SchemaCache>,
    /// Checks the API token of every request.
    pub auth: Arc<Authenticator>,
    /// How often a token, or an address failing to authenticate, may call.
    pub limits: RateLimits,
    /// Dropping it stops the task listening for other servers' changes.
    _listener: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .field("db", &self.db)
            .finish()
    }
}

impl App {
    /// Builds the state over a migrated database, and starts listening for
    /// changes other servers on the same database announce (`notify`): it
    /// must run inside the Tokio runtime.
    pub fn new(config: Config, database_url: &str) -> anyhow::Result<Arc<App>> {
        let db = Database::connect(
            database_url,
            &PoolOptions {
                size: config.pool_size,
                statement_timeout: config.statement_timeout,
            },
        )?;
        let limits = Limits {
            max_depth: config.max_depth,
            max_complexity: config.max_complexity,
            introspection: config.introspection,
        };
        let schemas = Arc::new(SchemaCache::new(limits, ROOMS));
        let auth = Arc::new(Authenticator::new(db.clone()));
        let limits = RateLimits::new(&config);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let app = Arc::new(App {
            config,
            db,
            schemas,
            auth,
            limits,
            _listener: stop,
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
/// embedded cluster in the data folder.
#[derive(Debug)]
pub struct DatabaseServer {
    url: String,
    cluster: Option<EmbeddedPostgres>,
}

impl DatabaseServer {
    /// Uses `DATABASE_URL` when set; otherwise starts (or joins) the embedded
    /// cluster and makes sure its `crm` database exists.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        if let Some(url) = &config.database_url {
            return Ok(DatabaseServer {
                url: url.clone(),
                cluster: None,
            });
        }
        let cluster = EmbeddedPostgres::start(&config.data_dir, ClusterOptions::default()).await?;
        db::create_database(&cluster.url("postgres"), db::EMBEDDED_DATABASE, None).await?;
        Ok(DatabaseServer {
            url: cluster.url(db::EMBEDDED_DATABASE),
            cluster: Some(cluster),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the embedded cluster if this process started it.
    pub async fn stop(mut self) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stop().await;
        }
    }
}

/// `crm serve`: migrate, then serve until SIGINT/SIGTERM; in-flight requests
/// finish before the database stops.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let server = DatabaseServer::open(&config).await?;
    let result = serve_on(&config, server.url()).await;
    server.stop().await;
    result
}

async fn serve_on(config: &Config, url: &str) -> anyhow::Result<()> {
    for applied in db::migrate::migrate_all(url).await? {
        for version in &applied.versions {
            tracing::info!(schema = %applied.schema, %version, "applied migration");
        }
    }
    let app = App::new(config.clone(), url)?;
    let first_admin = {
        let mut conn = app.db.conn().await?;
        auth::first_admin(&mut conn).await?
    };
    let address = SocketAddr::new(config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    let address = listener.local_addr()?;
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        address.ip().to_string()
    };
    println!("CRM server listening on http://{host}:{}", address.port());
    println!(
        "  GraphQL endpoint and playground: http://{host}:{}/graphql",
        address.port()
    );
    let token_file = config.data_dir.join("admin-token");
    match first_admin {
        Some(issued) => {
            write_secret(&token_file, &issued.token)?;
            println!(
                "  Created the administrator {} and its API token (shown once):",
                issued.info.user_email
            );
            println!("    {}", issued.token);
            println!("  It is also in {} (readable by you only).", token_file.display());
        }
        None if token_file.exists() => {
            println!("  The first admin token is in {}.", token_file.display());
        }
        None => {}
    }
    println!("  Authenticate with the header  Authorization: Bearer <token>  (more tokens: crm token create)");
    println!("  Health: /healthz  Readiness: /readyz  Metrics: /metrics");
    crate::http::serve(listener, app, shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped accepting requests; in-flight requests finished");
    Ok(())
}

/// Writes a secret to a file only its owner can read (mode 0600).
fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its mode through `open`: narrow it too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

impl crate::notify::Subscriber for App {
    async fn apply(&self, announcement: Announcement) {
        match announcement {
            Announcement::Metadata { workspace, version } => {
                // Not built here yet: the first request builds the new one.
                if let Some(entry) = self.schemas.cached(&workspace) {
                    if entry.metadata_version < version {
                        self.schemas.refresh(&self.db, &entry.workspace).await;
                    }
                }
            }
            Announcement::Settings { workspace } => self.schemas.settings_changed(&self.db, &workspace).await,
            Announcement::WorkspaceReplaced { workspace } => self.schemas.invalidate(&workspace),
            Announcement::TokenRevoked { id } => self.auth.forget(id),
            Announcement::UserChanged { id } => self.auth.forget_user(id),
        }
    }

    async fn catch_up(&self) {
        for workspace in self.schemas.cached_workspaces() {
            self.schemas.refresh(&self.db, &workspace).await;
            self.schemas.reload_settings(&self.db, &workspace.name).await;
        }
        self.auth.forget_all();
    }
}
