//! Backups of the whole installation and their restore, and the export of
//! a workspace as newline-delimited JSON ([`export`]).
//!
//! A backup is two files: the dump, `pg_dump --format=custom` of the whole
//! database (the system schema, production and every sandbox) in one
//! snapshot, and its [`manifest`] beside it (`<dump>.manifest.json`): the
//! server version, the migrations of every schema, each workspace's
//! metadata version and row counts, all read in the dump's own snapshot,
//! and the dump's SHA-256. A restore checks the manifest and the checksum
//! before it touches anything, restores only into an empty database, and
//! compares what it restored with the manifest.

pub mod export;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::db::embedded::PgBinaries;
use crate::db::migrate::SYSTEM_SCHEMA;
use crate::db::sql::{quote_ident, Sql};
use crate::error::CrmError;
pub use manifest::{Manifest, State};

/// Why a backup, restore or export stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached, or a program not found.
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    /// Reading the model or the metadata failed.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// A statement failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The connection could not be opened.
    #[error(transparent)]
    Connect(#[from] diesel::ConnectionError),
    /// A file operation failed; `doing` says which.
    #[error("{doing}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    /// `pg_dump` or `pg_restore` failed; `output` is what it printed.
    #[error("{program} failed ({status}):\n{output}")]
    Tool {
        program: String,
        status: ExitStatus,
        output: String,
    },
    /// The manifest is not one this program reads.
    #[error("{} is not a backup manifest this crm reads: {reason}", .path.display())]
    BadManifest { path: PathBuf, reason: String },
    /// The dump's bytes are not those the manifest describes.
    #[error(
        "{} is damaged or not the dump its manifest describes: its SHA-256 is {found}, \
         the manifest says {expected}. Nothing was restored",
        .path.display()
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The backup was written by a newer server, or with unknown migrations.
    #[error("{0}. Nothing was restored")]
    TooNew(String),
    /// The target of a restore already holds data.
    #[error(
        "the target database is not empty (it has the schemas {}): restore only into an empty \
         data folder (--data-dir) or an empty database (--database-url). Nothing was restored",
        .0.join(", ")
    )]
    NotEmpty(Vec<String>),
    /// The restored database does not match the manifest.
    #[error("the restored database does not match the backup's manifest:\n  {}", .0.join("\n  "))]
    Mismatch(Vec<String>),
    /// The database holds no installation to back up or export.
    #[error("the database holds no crm installation (no crm_system schema): run `crm migrate` or `crm serve` first")]
    NoInstallation,
    /// An export named a workspace that does not exist.
    #[error("there is no workspace {0} (production or a sandbox's name)")]
    UnknownWorkspace(String),
}

/// What a backup wrote.
#[derive(Debug)]
pub struct Backup {
    /// What the manifest says (as written beside the dump).
    pub manifest: Manifest,
    /// The dump file.
    pub dump: PathBuf,
    /// The manifest file beside it.
    pub manifest_path: PathBuf,
}

/// Backs up the database at `url` into `dump` and its manifest. The
/// manifest's state is read in a repeatable-read transaction whose
/// snapshot `pg_dump` shares (`--snapshot`), so both describe the same
/// instant, while the server goes on serving.
pub async fn backup(url: &str, dump: &Path) -> Result<Backup, Error> {
    let pg_dump = PgBinaries::client_tool("pg_dump")?;
    let mut conn = AsyncPgConnection::establish(url).await?;
    if !schemas(&mut conn).await?.iter().any(|s| s == SYSTEM_SCHEMA) {
        return Err(Error::NoInstallation);
    }
    conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let snapshot: Vec<Setting> = Sql::raw("SELECT pg_export_snapshot() AS value").load(&mut conn).await?;
    let snapshot = snapshot.into_iter().next().map(|s| s.value).unwrap_or_default();
    let created_at = chrono::Utc::now();
    let state = manifest::read_state(&mut conn).await?;
    let postgres: Vec<Setting> = Sql::raw("SELECT current_setting('server_version') AS value")
        .load(&mut conn)
        .await?;
    let partial = with_suffix(dump, ".partial");
    let mut command = tokio::process::Command::new(&pg_dump);
    crate::db::embedded::end_with_this_process(&mut command);
    command
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(&partial)
        .arg("--dbname");
    connect_to(&mut command, url);
    if let Err(err) = run(command, &pg_dump).await {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    conn.batch_execute("COMMIT").await?;
    let (bytes, sha256) = manifest::checksum(&partial)?;
    std::fs::rename(&partial, dump).map_err(|source| Error::Io {
        doing: format!("moving the dump to {}", dump.display()),
        source,
    })?;
    let manifest = Manifest {
        format: manifest::FORMAT.to_owned(),
        format_version: manifest::FORMAT_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        postgres_version: postgres.into_iter().next().map(|s| s.value).unwrap_or_default(),
        created_at,
        dump: manifest::Dump {
            file: dump
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format: "pg_dump --format=custom".to_owned(),
            bytes,
            sha256,
        },
        state,
    };
    let manifest_path = manifest::write(dump, &manifest)?;
    Ok(Backup {
        manifest,
        dump: dump.to_path_buf(),
        manifest_path,
    })
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Adds the connection URL to a PostgreSQL program's arguments, its
/// password moved to `PGPASSWORD`: the command line of a process is
/// visible to every user of the machine, its environment is not.
fn connect_to(command: &mut tokio::process::Command, url: &str) {
    let (url, password) = without_password(url);
    command.arg(url);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
}

/// `postgres://user:secret@host/db` → (`postgres://user@host/db`, `secret`
/// percent-decoded); a URL without a password as it is.
fn without_password(url: &str) -> (String, Option<String>) {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return (url.to_owned(), None);
    };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), None);
    };
    let Some(colon) = rest[..at].find(':') else {
        return (url.to_owned(), None);
    };
    let password = percent_encoding::percent_decode_str(&rest[colon + 1..at])
        .decode_utf8_lossy()
        .into_owned();
    (
        format!("{}{}{}", &url[..start], &rest[..colon], &rest[at..]),
        Some(password),
    )
}

/// Runs a PostgreSQL program to its end, failing with what it printed.
async fn run(mut command: tokio::process::Command, program: &Path) -> Result<(), Error> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| Error::Io {
            doing: format!("running {}", program.display()),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Tool {
        program: program.display().to_string(),
        status: output.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// Reads and checks a backup before anything is restored: its manifest,
/// that this program may restore it (not newer, no unknown migrations),
/// and the dump's checksum.
pub fn check(dump: &Path) -> Result<Manifest, Error> {
    let manifest = manifest::read(dump)?;
    if let Some(refusal) = manifest::refusal(&manifest)? {
        return Err(Error::TooNew(refusal));
    }
    let (_, found) = manifest::checksum(dump)?;
    if found != manifest.dump.sha256 {
        return Err(Error::Checksum {
            path: dump.to_path_buf(),
            expected: manifest.dump.sha256.clone(),
            found,
        });
    }
    Ok(manifest)
}

/// Restores a checked backup into the empty database at `url`, then
/// compares it with the manifest. Refuses a database that holds anything.
pub async fn restore(url: &str, dump: &Path, manifest: &Manifest) -> Result<State, Error> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    let found = schemas(&mut conn).await?;
    if !found.is_empty() {
        return Err(Error::NotEmpty(found));
    }
    drop(conn);
    pg_restore(url, dump).await?;
    let mut conn = AsyncPgConnection::establish(url).await?;
    let state = manifest::read_state(&mut conn).await?;
    let differences = manifest::differences(&manifest.state, &state);
    if differences.is_empty() {
        Ok(state)
    } else {
        Err(Error::Mismatch(differences))
    }
}

/// The schemas of the database that hold something: none in a new one
/// (an empty `public` is every new database's).
async fn schemas(conn: &mut AsyncPgConnection) -> Result<Vec<String>, Error> {
    let rows: Vec<Setting> = Sql::raw(
        "SELECT n.nspname AS value FROM pg_namespace n \
         WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
         AND (n.nspname <> 'public' OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid)) \
         ORDER BY 1",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.value).collect())
}

/// `pg_restore` of the whole dump in one transaction: all or nothing.
/// Objects belong to the user restoring (`--no-owner`, `--no-privileges`),
/// so a dump of the embedded cluster restores into any server.
async fn pg_restore(url: &str, dump: &Path) -> Result<(), Error> {
    let program = PgBinaries::client_tool("pg_restore")?;
    let mut command = tokio::process::Command::new(&program);
    crate::db::embedded::end_with_this_process(&mut command);
    command
        .args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
        ])
        .arg("--dbname");
    connect_to(&mut command, url);
    command.arg(dump);
    run(command, &program).await
}

/// What `restore --verify` found.
#[derive(Debug)]
pub struct Verification {
    /// The scratch database the backup was restored into (dropped since).
    pub database: String,
    /// What the restored database holds.
    pub state: State,
    /// How the restored database differs from the manifest; empty when not.
    pub differences: Vec<String>,
    /// Live accounts of production, counted through the records layer over
    /// the restored model.
    pub live_accounts: i64,
}

/// Restores a checked backup into a scratch database on the server at
/// `url`, compares it with the manifest, reads production through the
/// library, and drops the scratch database again, whatever happened. The
/// database at `url` is not touched.
pub async fn verify(url: &str, dump: &Path, manifest: &Manifest) -> Result<Verification, Error> {
    let database = format!("crm_verify_{}", std::process::id());
    drop_database(url, &database).await?;
    crate::db::create_database(url, &database, None).await?;
    let scratch = crate::db::with_database(url, &database);
    let result = verify_in(&scratch, dump, manifest).await;
    let dropped = drop_database(url, &database).await;
    let (state, differences, live_accounts) = result?;
    dropped?;
    Ok(Verification {
        database,
        state,
        differences,
        live_accounts,
    })
}

async fn verify_in(scratch: &str, dump: &Path, manifest: &Manifest) -> Result<(State, Vec<String>, i64), Error> {
    pg_restore(scratch, dump).await?;
    let mut conn = AsyncPgConnection::establish(scratch).await?;
    let state = manifest::read_state(&mut conn).await?;
    let differences = manifest::differences(&manifest.state, &state);
    drop(conn);
    let live_accounts = smoke(scratch).await?;
    Ok((state, differences, live_accounts))
}

/// Reads production as the server would: its model from its metadata,
/// then a count of live accounts through the records layer, on a pool.
async fn smoke(url: &str) -> Result<i64, Error> {
    use crate::db::{Database, PoolOptions};
    use crate::records::{self, Table};
    let db = Database::connect(
        url,
        &PoolOptions {
            size: 1,
            statement_timeout: std::time::Duration::from_secs(60),
            metadata_lock_timeout: crate::config::Config::default().metadata_lock_timeout,
        },
    )?;
    let mut conn = db.conn().await?;
    let schema = crate::db::migrate::PRODUCTION_SCHEMA;
    let model = crate::metadata::custom::Customizations::read(&mut conn, schema)
        .await?
        .model()?;
    let account = model
        .object("Account")
        .ok_or_else(|| CrmError::internal("the restored model has no Account"))?;
    Ok(records::count(&mut conn, Table::new(schema, account), None, false).await?)
}

/// Drops a scratch database, closing its connections.
async fn drop_database(url: &str, name: &str) -> Result<(), Error> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
        .await?;
    Ok(())
}
