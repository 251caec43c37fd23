//! The manifest written beside a backup's dump: what the dump holds (the
//! migrations of every schema, each workspace's metadata version and row
//! counts), the server that wrote it and the dump's checksum. It is read
//! before a restore touches anything, and the restored database is
//! compared with it afterwards.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;
use crate::db::migrate::{self, SYSTEM_SCHEMA};
use crate::db::sql::Sql;
use crate::metadata::custom::Customizations;

/// What `format` says in every manifest.
pub const FORMAT: &str = "crm-backup";
/// The newest manifest layout this program reads (and the one it writes).
pub const FORMAT_VERSION: u32 = 1;

/// The manifest of one backup (`<dump>.manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout of this manifest ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The `crm` version that wrote the backup.
    pub server_version: String,
    /// The PostgreSQL server the data was dumped from.
    pub postgres_version: String,
    /// When the backup's snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The dump file beside the manifest.
    pub dump: Dump,
    /// What the database held in the dump's snapshot.
    #[serde(flatten)]
    pub state: State,
}

/// The dump file a manifest describes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dump {
    /// Its file name (the manifest sits in the same folder).
    pub file: String,
    /// `pg_dump --format=custom`.
    pub format: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// What an installation holds, as far as a backup checks it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Applied migration versions per Postgres schema (`crm_system`, `crm`,
    /// `sandbox_<name>`), oldest first.
    pub migrations: BTreeMap<String, Vec<String>>,
    /// Each workspace by name (`production`, then the sandboxes).
    pub workspaces: BTreeMap<String, WorkspaceState>,
}

/// One workspace in a [`State`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceState {
    /// Its Postgres schema.
    pub schema: String,
    /// `production` or `sandbox`.
    pub kind: String,
    /// Its metadata version (`workspace_settings.metadata_version`).
    pub metadata_version: i32,
    /// Rows per object (API name), deleted (restorable) records included.
    pub records: BTreeMap<String, i64>,
}

/// The manifest's path for a dump: `<dump>.manifest.json`.
pub fn manifest_path(dump: &Path) -> PathBuf {
    let mut name = dump.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".manifest.json");
    dump.with_file_name(name)
}

/// Reads the manifest beside `dump`, checking it is one.
pub fn read(dump: &Path) -> Result<Manifest, Error> {
    let path = manifest_path(dump);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        doing: format!(
            "reading the manifest {} (every backup is a dump and the manifest beside it)",
            path.display()
        ),
        source,
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|err| Error::BadManifest {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(Error::BadManifest {
            path,
            reason: format!(
                "format {} {} is not a {FORMAT} {FORMAT_VERSION} manifest",
                manifest.format, manifest.format_version
            ),
        });
    }
    Ok(manifest)
}

/// Writes `manifest` beside `dump` (through a temporary file, so a
/// manifest on disk is always whole).
pub fn write(dump: &Path, manifest: &Manifest) -> Result<PathBuf, Error> {
    let path = manifest_path(dump);
    let partial = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(manifest).map_err(|err| Error::BadManifest {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    let doing = || format!("writing {}", path.display());
    std::fs::write(&partial, text + "\n").map_err(|source| Error::Io { doing: doing(), source })?;
    std::fs::rename(&partial, &path).map_err(|source| Error::Io { doing: doing(), source })?;
    Ok(path)
}

/// The size and SHA-256 (lowercase hex) of a file, read in blocks.
pub fn checksum(path: &Path) -> Result<(u64, String), Error> {
    let doing = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|source| Error::Io { doing: doing(), source })?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|source| Error::Io { doing: doing(), source })?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        hasher.update(&buffer[..read]);
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hex))
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Reads the state of the installation on `conn`: the migrations of every
/// schema, and for each registered workspace its metadata version and the
/// rows of every object of its model. Run inside the transaction of a
/// snapshot, it describes exactly what a dump of that snapshot holds.
pub async fn read_state(conn: &mut AsyncPgConnection) -> Result<State, Error> {
    let mut state = State::default();
    state
        .migrations
        .insert(SYSTEM_SCHEMA.to_owned(), migrations(conn, SYSTEM_SCHEMA).await?);
    let registered = crate::db::workspaces(conn).await?;
    for workspace in registered {
        let schema = workspace.pg_schema;
        state
            .migrations
            .insert(schema.clone(), migrations(conn, &schema).await?);
        let metadata_version = crate::sandbox::metadata_version(conn, &schema).await?;
        let model = Customizations::read(conn, &schema).await?.model()?;
        let mut records = BTreeMap::new();
        for object in model.objects().iter().filter(|o| o.schema.is_none()) {
            let mut count = Sql::raw("SELECT count(*) AS n FROM ");
            count.table(&schema, &object.table);
            let rows: Vec<Count> = count.load(conn).await?;
            records.insert(object.name.clone(), rows.first().map_or(0, |c| c.n));
        }
        state.workspaces.insert(
            workspace.name,
            WorkspaceState {
                schema,
                kind: workspace.kind,
                metadata_version,
                records,
            },
        );
    }
    Ok(state)
}

async fn migrations(conn: &mut AsyncPgConnection, schema: &str) -> Result<Vec<String>, Error> {
    let mut query = Sql::raw("SELECT version FROM ");
    query
        .table(schema, "__diesel_schema_migrations")
        .push(" ORDER BY version");
    let rows: Vec<Version> = query.load(conn).await?;
    Ok(rows.into_iter().map(|v| v.version).collect())
}

/// What differs between the state a manifest describes and the one found
/// after a restore, one sentence each; empty when they agree.
pub fn differences(expected: &State, found: &State) -> Vec<String> {
    let mut out = Vec::new();
    for (schema, versions) in &expected.migrations {
        match found.migrations.get(schema) {
            None => out.push(format!("schema {schema} is missing")),
            Some(got) if got != versions => out.push(format!(
                "schema {schema} has migrations {} instead of {}",
                got.join(", "),
                versions.join(", ")
            )),
            Some(_) => {}
        }
    }
    for (name, workspace) in &expected.workspaces {
        let Some(got) = found.workspaces.get(name) else {
            out.push(format!("workspace {name} is missing"));
            continue;
        };
        if got.metadata_version != workspace.metadata_version {
            out.push(format!(
                "workspace {name} has metadata version {} instead of {}",
                got.metadata_version, workspace.metadata_version
            ));
        }
        for (object, rows) in &workspace.records {
            let count = got.records.get(object).copied().unwrap_or(0);
            if count != *rows {
                out.push(format!("{name}: {object} has {count} records instead of {rows}"));
            }
        }
    }
    for name in found
        .workspaces
        .keys()
        .filter(|n| !expected.workspaces.contains_key(*n))
    {
        out.push(format!("workspace {name} is not in the backup"));
    }
    out
}

/// Why this program may not restore a backup: it was written by a newer
/// `crm`, or holds migrations this one does not know. `None` when it may.
pub fn refusal(manifest: &Manifest) -> Result<Option<String>, Error> {
    let ours = env!("CARGO_PKG_VERSION");
    if version_parts(&manifest.server_version) > version_parts(ours) {
        return Ok(Some(format!(
            "the backup was written by crm {}, newer than this crm {ours}: restore it with crm {} or later",
            manifest.server_version, manifest.server_version
        )));
    }
    let system = migrate::system_versions()?;
    let workspace = migrate::workspace_versions()?;
    for (schema, versions) in &manifest.state.migrations {
        let known = if schema == SYSTEM_SCHEMA { &system } else { &workspace };
        let unknown: Vec<&str> = versions
            .iter()
            .filter(|v| !known.contains(v))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Ok(Some(format!(
                "schema {schema} of the backup has migrations this crm {ours} does not know ({}): \
                 restore it with the crm that wrote it ({}) or a newer one",
                unknown.join(", "),
                manifest.server_version
            )));
        }
    }
    Ok(None)
}

/// `0.4.1-beta` → `[0, 4, 1]`, for comparing versions.
fn version_parts(version: &str) -> Vec<u64> {
    let release = version.split(['-', '+']).next().unwrap_or(version);
    release.split('.').map(|part| part.parse().unwrap_or(0)).collect()
}
