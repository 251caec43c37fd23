//! The staging table of an import: a temporary table on the import's own
//! connection, filled by binary `COPY` as rows are read (so memory stays
//! flat whatever the file's size), gone with the connection.

use std::pin::Pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::mapping::Plan;
use crate::db::Database;
use crate::error::{CrmError, Result};

/// The staging table: `row_number`, then one text column per staged
/// field (`c0`, `c1` …, in the plan's order).
pub const TABLE: &str = "import_rows";

/// A row that passed the checks of its cells: its number in the file
/// (the header is row 1) and the staged text of each staged field.
pub type Row = (i64, Vec<Option<String>>);

/// The import's connection, holding the job's lock while it lives.
pub struct Session {
    client: tokio_postgres::Client,
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// The import's connection as a Diesel connection, with its place among
/// the server's dedicated connections.
pub type Held = (diesel_async::AsyncPgConnection, tokio::sync::OwnedSemaphorePermit);

fn failed(what: &str) -> impl Fn(tokio_postgres::Error) -> CrmError + '_ {
    move |err| CrmError::internal(format_args!("{what}: {err}"))
}

impl Session {
    /// Opens the connection and takes the lock of job `id`: while it is
    /// held, the job is running.
    pub async fn open(db: &Database, id: Uuid) -> Result<Session> {
        let crate::db::Dedicated { client, slot } = db.dedicated().await?;
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&format!("import:{id}")],
            )
            .await
            .map_err(failed("locking the import job"))?;
        Ok(Session { client, slot })
    }

    /// Creates the staging table for `plan`.
    pub async fn create(&self, plan: &Plan) -> Result<()> {
        let columns: String = (0..plan.staged.len()).map(|i| format!(", c{i} text")).collect();
        self.client
            .batch_execute(&format!(
                "CREATE TEMPORARY TABLE {TABLE} (row_number bigint NOT NULL{columns}, failed boolean NOT NULL DEFAULT false)"
            ))
            .await
            .map_err(failed("creating the staging table"))
    }

    /// A writer of rows into the staging table by binary `COPY`.
    pub async fn copy(&self, plan: &Plan) -> Result<Pin<Box<BinaryCopyInWriter>>> {
        let columns: String = (0..plan.staged.len()).map(|i| format!(", c{i}")).collect();
        let sink = self
            .client
            .copy_in(&format!(
                "COPY {TABLE} (row_number{columns}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(failed("starting the copy"))?;
        let mut types = vec![Type::INT8];
        types.extend(std::iter::repeat_n(Type::TEXT, plan.staged.len()));
        Ok(Box::pin(BinaryCopyInWriter::new(sink, &types)))
    }

    /// Indexes and analyzes the staged rows, for the checks and the load.
    pub async fn staged(&self) -> Result<()> {
        self.client
            .batch_execute(&format!("CREATE UNIQUE INDEX ON {TABLE} (row_number); ANALYZE {TABLE}"))
            .await
            .map_err(failed("indexing the staged rows"))
    }

    /// The connection as a Diesel connection, for the set-based checks and
    /// the load (the staging table stays: same connection).
    pub async fn into_diesel(self) -> Result<Held> {
        let conn = diesel_async::AsyncPgConnection::try_from(self.client)
            .await
            .map_err(|err| CrmError::internal(format_args!("using the import's connection: {err}")))?;
        Ok((conn, self.slot))
    }
}

/// Writes one staged row.
pub async fn write(writer: &mut Pin<Box<BinaryCopyInWriter>>, row: &Row) -> Result<()> {
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(row.1.len() + 1);
    values.push(&row.0);
    for value in &row.1 {
        values.push(value);
    }
    writer
        .as_mut()
        .write(&values)
        .await
        .map_err(failed("copying rows into the staging table"))
}

/// Ends the copy; answers the rows copied.
pub async fn finish(writer: &mut Pin<Box<BinaryCopyInWriter>>) -> Result<u64> {
    writer.as_mut().finish().await.map_err(failed("finishing the copy"))
}

/// A Diesel connection of its own, without a statement timeout, for long
/// work (an import's revert).
pub async fn diesel_connection(db: &Database) -> Result<Held> {
    let crate::db::Dedicated { client, slot } = db.dedicated().await?;
    let conn = diesel_async::AsyncPgConnection::try_from(client)
        .await
        .map_err(|err| CrmError::internal(format_args!("opening a connection: {err}")))?;
    Ok((conn, slot))
}
