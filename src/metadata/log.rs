//! The metadata change log as clients read it: each change of a
//! workspace's metadata, oldest first, with the version it made.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;

use crate::db::sql::{Bind, Sql};
use crate::error::Result;

/// The most changes one read returns.
pub const MAX_READ: i32 = 500;

/// One logged change: a `metadata_change` row.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Logged {
    #[diesel(sql_type = Integer)]
    pub version: i32,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub actor_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub field: Option<String>,
    #[diesel(sql_type = Text)]
    pub summary: String,
    #[diesel(sql_type = Bool)]
    pub breaking: bool,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub before: Option<Json>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub after: Option<Json>,
}

/// The changes of `schema`'s metadata that made a version after `since`,
/// oldest first, at most [`MAX_READ`].
pub async fn since(conn: &mut AsyncPgConnection, schema: &str, since: i32) -> Result<Vec<Logged>> {
    let mut query =
        Sql::raw("SELECT version, at, actor_id, kind, object, field, summary, breaking, before, after FROM ");
    query.table(schema, "metadata_change").push(" WHERE version > ");
    query.bind(Bind::Int(Some(since)));
    query.push(" ORDER BY version LIMIT ").bind(Bind::Int(Some(MAX_READ)));
    Ok(query.load(conn).await?)
}
