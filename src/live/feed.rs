//! The server's feed of committed record events: each announcement of a
//! transaction's events (`notify`, from this server or another) is read
//! once from the outbox and handed to every open GraphQL subscription of
//! this server. Nothing is read while nobody listens.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz};
use serde_json::Value as Json;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::db::Database;

/// Batches an open subscription may fall behind by before it is told it
/// missed events.
const BACKLOG: usize = 1024;

/// One transaction's events in one workspace.
#[derive(Debug)]
pub struct Batch {
    /// The server that read it ([`Database::id`]).
    pub server: usize,
    /// The workspace's Postgres schema.
    pub schema: String,
    pub events: Vec<Event>,
    /// Events may have been missed (the server lost its connection to the
    /// announcements for a while): subscribers are told to read again.
    pub missed: bool,
    /// Whether each event met a set of conditions (by the event and the
    /// conditions' text), checked once for every subscriber who has the
    /// same visibility and filter (a thousand dashboards of one team).
    pub checked: std::sync::Mutex<std::collections::HashMap<(Uuid, String), Checked>>,
}

/// Whether an event met a set of conditions, once known.
pub type Checked = Arc<tokio::sync::OnceCell<bool>>;

/// A committed event of a record.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Event {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub record_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event: String,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    pub record: Json,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub previous: Option<Json>,
    #[diesel(sql_type = Array<Text>)]
    pub changed: Vec<String>,
}

static FEED: LazyLock<broadcast::Sender<Arc<Batch>>> = LazyLock::new(|| broadcast::channel(BACKLOG).0);

/// Follows the feed from now on.
pub fn subscribe() -> broadcast::Receiver<Arc<Batch>> {
    FEED.subscribe()
}

/// Open subscriptions on this server.
pub fn listeners() -> usize {
    FEED.receiver_count()
}

/// Reads the events of each transaction announced on `committed`
/// (`(schema, tx)`, in the order announced) and hands them to the open
/// subscriptions; ends when the server is gone.
pub async fn follow(db: Database, mut committed: tokio::sync::mpsc::UnboundedReceiver<(String, i64)>) {
    while let Some((schema, tx)) = committed.recv().await {
        if FEED.receiver_count() == 0 {
            continue;
        }
        match read(&db, &schema, tx).await {
            Ok(events) if events.is_empty() => {}
            Ok(events) => {
                let _ = FEED.send(Arc::new(Batch {
                    server: db.id(),
                    schema,
                    events,
                    missed: false,
                    checked: std::sync::Mutex::default(),
                }));
            }
            Err(err) => tracing::warn!(%err, schema, tx, "reading committed events for subscriptions failed"),
        }
    }
}

/// The server over `db` may have missed announcements (its listening
/// connection was lost): its subscribers are told so.
pub fn missed(db: &Database) {
    let _ = FEED.send(Arc::new(Batch {
        server: db.id(),
        schema: String::new(),
        events: Vec::new(),
        missed: true,
        checked: std::sync::Mutex::default(),
    }));
}

async fn read(db: &Database, schema: &str, tx: i64) -> crate::error::Result<Vec<Event>> {
    let mut conn = db.conn().await?;
    let mut query = Sql::raw("SELECT id, object, record_id, event, at, record, previous, changed FROM ");
    query
        .table(schema, "record_event")
        .push(" WHERE event <> 'WORKFLOW' AND tx = ")
        .bind(Bind::Text(Some(tx.to_string())))
        .push("::bigint ORDER BY seq");
    Ok(query.load(&mut conn).await?)
}
