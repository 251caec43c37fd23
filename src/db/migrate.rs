//! Embedded migrations: the system set in `crm_system`, the workspace set
//! in every workspace schema (production and each sandbox).

use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::sql::quote_ident;
use super::Error;

/// Schema of what is global: the workspace registry, users, tokens, the
/// audit log, sandboxes and promotions.
pub const SYSTEM_SCHEMA: &str = "crm_system";
/// Schema of production records and metadata.
pub const PRODUCTION_SCHEMA: &str = "crm";

const SYSTEM: EmbeddedMigrations = embed_migrations!("migrations/system");
const WORKSPACE: EmbeddedMigrations = embed_migrations!("migrations/workspace");

/// Serializes migrations of concurrent processes (two servers starting).
const MIGRATION_LOCK: i64 = 0x63726d5f6d696772; // "crm_migr"

/// The versions of the system migrations this program carries, oldest
/// first, as `__diesel_schema_migrations` stores them.
pub fn system_versions() -> Result<Vec<String>, Error> {
    versions_of(&SYSTEM, SYSTEM_SCHEMA)
}

/// The versions of the workspace migrations this program carries.
pub fn workspace_versions() -> Result<Vec<String>, Error> {
    versions_of(&WORKSPACE, PRODUCTION_SCHEMA)
}

fn versions_of(migrations: &EmbeddedMigrations, schema: &str) -> Result<Vec<String>, Error> {
    use diesel::migration::MigrationSource;
    let all = MigrationSource::<diesel::pg::Pg>::migrations(migrations).map_err(|cause| Error::Migration {
        schema: schema.to_owned(),
        cause,
    })?;
    let mut versions: Vec<String> = all.iter().map(|m| m.name().version().to_string()).collect();
    versions.sort();
    Ok(versions)
}

/// Migrations applied to one schema by a run.
#[derive(Debug)]
pub struct Applied {
    pub schema: String,
    pub versions: Vec<String>,
}

/// Brings the system schema and every registered workspace schema up to date.
pub async fn migrate_all(url: &str) -> Result<Vec<Applied>, Error> {
    let mut report = vec![migrate_schema(url, SYSTEM_SCHEMA, SYSTEM).await?];
    for schema in workspace_schemas(url).await? {
        report.push(migrate_schema(url, &schema, WORKSPACE).await?);
    }
    Ok(report)
}

async fn workspace_schemas(url: &str) -> Result<Vec<String>, Error> {
    use diesel_async::AsyncConnection;
    let mut conn = AsyncPgConnection::establish(url).await?;
    Ok(super::workspaces(&mut conn)
        .await?
        .into_iter()
        .map(|w| w.pg_schema)
        .collect())
}

async fn migrate_schema(url: &str, schema: &str, migrations: EmbeddedMigrations) -> Result<Applied, Error> {
    let url = url.to_owned();
    let schema = schema.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).map_err(Error::MigrationConnection)?;
        let quoted = quote_ident(&schema);
        conn.batch_execute(&format!(
            "SELECT pg_advisory_lock({MIGRATION_LOCK}); \
             CREATE SCHEMA IF NOT EXISTS {quoted}; SET search_path TO {quoted}"
        ))?;
        let applied = conn
            .run_pending_migrations(migrations)
            .map(|versions| versions.iter().map(ToString::to_string).collect());
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
        match applied {
            Ok(versions) => Ok(Applied { schema, versions }),
            Err(cause) => Err(Error::Migration { schema, cause }),
        }
    })
    .await?
}

/// Makes a new workspace schema on `conn` and runs the workspace migrations
/// in it, inside the transaction open on the connection: each migration
/// becomes a savepoint of it, so whatever fails later in that transaction
/// leaves no schema behind. The migrations run on a blocking thread (the
/// runner is synchronous); the connection comes back for the rest.
pub async fn migrate_new_workspace(conn: super::Conn, schema: &str) -> crate::error::Result<super::Conn> {
    let schema = schema.to_owned();
    let migrated = tokio::task::spawn_blocking(move || -> Result<super::Conn, Error> {
        let mut conn = AsyncConnectionWrapper::<super::Conn>::from(conn);
        let quoted = quote_ident(&schema);
        conn.batch_execute(&format!("CREATE SCHEMA {quoted}; SET LOCAL search_path TO {quoted}"))?;
        if let Err(cause) = conn.run_pending_migrations(WORKSPACE) {
            return Err(Error::Migration { schema, cause });
        }
        conn.batch_execute("SET LOCAL search_path TO DEFAULT")?;
        Ok(conn.into_inner())
    })
    .await;
    match migrated {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(err)) => Err(crate::error::CrmError::internal(err)),
        Err(err) => Err(crate::error::CrmError::internal(format_args!(
            "migrating a new schema: {err}"
        ))),
    }
}
