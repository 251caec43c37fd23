//! `crm serve`: migrates the database, makes the first administrator's
//! token if there is none, says where the server listens, and serves until
//! SIGINT/SIGTERM. On the embedded cluster it is the folder's only server
//! and supervises the cluster (see `crm::db::embedded::supervisor`).

use std::net::SocketAddr;

use anyhow::Context;
use crm::app::DatabaseServer;
use crm::{auth, db, App, Config};

/// `crm serve`: migrate, then serve until SIGINT/SIGTERM; in-flight requests
/// finish (within the shutdown timeout) before the database stops.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let server = DatabaseServer::open_supervised(&config).await?;
    let result = serve_on(&config, &server).await;
    server.stop().await;
    result
}

async fn serve_on(config: &Config, server: &DatabaseServer) -> anyhow::Result<()> {
    let url = server.url();
    for applied in db::migrate::migrate_all(url).await? {
        for version in &applied.versions {
            tracing::info!(schema = %applied.schema, %version, "applied migration");
        }
    }
    let app = App::serving(config.clone(), server)?;
    {
        let mut conn = app.db.conn().await?;
        let built = crm::metadata::ddl::search::sync_workspaces(&mut conn).await?;
        if built > 0 {
            tracing::info!(built, "built search indexes");
        }
    }
    crm::retention::spawn(app.db.clone(), config.retention_interval);
    crm::leads::decay::spawn(app.db.clone(), config.rescore_interval);
    crm::automation::worker::spawn(app.db.clone(), crm::app::ROOMS.record_hooks(), config);
    crm::webhooks::delivery::spawn(app.db.clone(), config);
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
    println!(
        "  Admin console: http://{host}:{}/console (sign in with an API token)",
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
    crm::http::serve(listener, app, shutdown_signal())
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
async fn shutdown_signal() {
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
