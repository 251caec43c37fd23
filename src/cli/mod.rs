//! The bodies of the `crm` commands, one module per command family; the
//! flags they take are defined in `main.rs`. This module holds what they
//! share: the [`Config`] built from the flags and the database a command
//! runs against. `anyhow` lives here, at the edge, and not in the library.

pub mod backup;
pub mod changeset;
pub mod leads;
pub mod migrate;
pub mod progress;
pub mod promotion;
pub mod report;
pub mod retention;
pub mod sandbox;
pub mod schema;
pub mod seed;
pub mod serve;
pub mod token;
pub mod transfer;

use std::time::Duration;

use crm::app::{App, DatabaseServer};
use crm::Config;

use crate::{DatabaseArgs, ServeArgs};

/// Turns the flags into the one [`Config`] the library reads: every command
/// passes the database flags, `serve` also its limits and timeouts (the
/// other commands keep the defaults).
pub fn config(database: &DatabaseArgs, serve: Option<&ServeArgs>) -> Config {
    let mut config = Config {
        data_dir: database.data_dir.clone(),
        database_url: database.database_url.clone(),
        ..Config::default()
    };
    if let Some(serve) = serve {
        config.bind = serve.bind;
        config.port = serve.port;
        config.pool_size = serve.pool_size;
        config.statement_timeout = Duration::from_millis(serve.statement_timeout_ms);
        config.metadata_lock_timeout = Duration::from_millis(serve.metadata_lock_timeout_ms);
        config.body_limit = serve.body_limit;
        config.max_depth = serve.max_depth;
        config.max_complexity = serve.max_complexity;
        config.introspection = serve.introspection;
        config.cors_origins = serve.cors_origins.clone();
        config.rate_limit = serve.rate_limit;
        config.auth_failure_limit = serve.auth_failure_limit;
        config.header_timeout = Duration::from_millis(serve.header_timeout_ms);
        config.body_timeout = Duration::from_millis(serve.body_timeout_ms);
        config.request_timeout = Duration::from_millis(serve.request_timeout_ms);
        config.idle_timeout = Duration::from_millis(serve.idle_timeout_ms);
        config.shutdown_timeout = Duration::from_millis(serve.shutdown_timeout_ms);
        config.max_connections = usize::try_from(serve.max_connections).unwrap_or(usize::MAX);
        config.public_url = serve.public_url.clone();
        config.replica_urls = serve.replica_urls.clone();
        config.replica_max_lag = Duration::from_millis(serve.replica_max_lag_ms);
        config.retention_interval = Duration::from_secs(serve.retention_interval_s);
        config.rescore_interval = Duration::from_secs(serve.rescore_interval_s);
        config.automation_interval = Duration::from_millis(serve.automation_interval_ms);
        config.smtp = serve.smtp_host.clone().map(|host| crm::config::SmtpConfig {
            host,
            port: serve.smtp_port.unwrap_or(match serve.smtp_security {
                crm::config::SmtpSecurity::None => 25,
                crm::config::SmtpSecurity::StartTls => 587,
                crm::config::SmtpSecurity::Tls => 465,
            }),
            security: serve.smtp_security,
            user: serve.smtp_user.clone(),
            password: serve.smtp_password.clone(),
        });
        config.smtp_from = serve.smtp_from.clone();
        config.webhook_retry_base = Duration::from_millis(serve.webhook_retry_base_ms);
        config.webhook_timeout = Duration::from_millis(serve.webhook_timeout_ms.max(1));
        config.subscription_connections_per_token = serve.subscription_connections_per_token;
        config.webhook_allow_private = serve.webhook_allow_private_networks;
    }
    config
}

/// Runs a command on the migrated database, with the [`App`] a server
/// would have: the embedded cluster, or the server `DATABASE_URL` names.
pub async fn with_app(
    database: &DatabaseArgs,
    work: impl AsyncFnOnce(&App) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    with_database(database, async |config, url| {
        crm::db::migrate::migrate_all(url).await?;
        let app = App::new(config, url)?;
        work(&app).await
    })
    .await
}

/// Runs `work` against the configured database, given its URL, starting
/// the embedded cluster for the duration of the command when no server runs
/// it, and stopping it again even when the command fails.
pub async fn with_database(
    database: &DatabaseArgs,
    work: impl AsyncFnOnce(Config, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    on_database(config(database, None), work).await
}

/// Runs `work` against the database `config` names, as
/// [`with_database`] does.
pub async fn on_database(
    config: Config,
    work: impl AsyncFnOnce(Config, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let server = DatabaseServer::open(&config).await?;
    let result = work(config, server.url()).await;
    server.stop().await;
    result
}
