//! Changes one server announces to every server on the same database,
//! through Postgres `LISTEN/NOTIFY`: a metadata change (rebuild that
//! workspace's schema), a settings change (read `recordVisibility` again),
//! a sandbox made, made again or deleted (forget its schema), a revoked token or
//! a changed user (check their tokens again).
//!
//! An announcement made inside a transaction is delivered when it commits,
//! and not at all when it rolls back.

use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::Result;

/// The channel every announcement goes through.
pub const CHANNEL: &str = "crm_changes";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement {
    /// A workspace's metadata is now at `version`.
    Metadata { workspace: String, version: i32 },
    /// A workspace's settings changed.
    Settings { workspace: String },
    /// A sandbox was made, made again from production, or deleted:
    /// whatever is cached of it is stale.
    WorkspaceReplaced { workspace: String },
    /// An API token was revoked.
    TokenRevoked { id: Uuid },
    /// A user's role or active flag may have changed.
    UserChanged { id: Uuid },
    /// Automation has work to do now in a workspace (an email to send).
    Automation { workspace: String },
    /// A transaction (`tx`, its id) appended record events in the
    /// workspace whose Postgres schema is `schema`: webhooks to deliver,
    /// GraphQL subscriptions to feed.
    Events { schema: String, tx: i64 },
}

/// Announces a change on `conn` (on commit, inside a transaction).
pub async fn announce(conn: &mut AsyncPgConnection, announcement: &Announcement) -> Result<()> {
    let payload = serde_json::to_string(announcement).unwrap_or_default();
    let mut query = Sql::raw("SELECT pg_notify(");
    query.bind(Bind::Text(Some(CHANNEL.into()))).push(", ");
    query.bind(Bind::Text(Some(payload))).push(")");
    query.execute(conn).await?;
    Ok(())
}

/// What a server does with what other servers (and itself) announce: the
/// server (`App`) implements it, so this room needs nothing above it.
pub trait Subscriber: Send + Sync + 'static {
    /// Brings the server's caches in line with one announcement.
    fn apply(&self, announcement: Announcement) -> impl Future<Output = ()> + Send;
    /// After a lost connection: announcements may have been missed, so
    /// whatever is cached is checked again.
    fn catch_up(&self) -> impl Future<Output = ()> + Send;
}

/// Listens until `stop` fires or the subscriber is gone, reconnecting
/// after a lost connection (and then catching up).
pub async fn listen<S: Subscriber>(app: Weak<S>, url: String, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let mut reconnected = false;
    loop {
        let connected = tokio::select! {
            _ = &mut stop => return,
            connected = connect(&url) => connected,
        };
        match connected {
            Ok(mut conn) => {
                if reconnected {
                    let Some(app) = app.upgrade() else { return };
                    app.catch_up().await;
                }
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                loop {
                    let next = tokio::select! {
                        _ = &mut stop => return,
                        next = notifications.next() => next,
                    };
                    let Some(Ok(notification)) = next else {
                        tracing::warn!("lost the connection listening for changes; reconnecting");
                        break;
                    };
                    let Some(app) = app.upgrade() else { return };
                    match serde_json::from_str::<Announcement>(&notification.payload) {
                        Ok(announcement) => app.apply(announcement).await,
                        Err(err) => tracing::warn!(%err, payload = %notification.payload, "unreadable announcement"),
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "cannot listen for changes of other servers; retrying"),
        }
        reconnected = true;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn connect(url: &str) -> std::result::Result<AsyncPgConnection, crate::db::Error> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    Sql::raw(&format!("LISTEN {CHANNEL}")).execute(&mut conn).await?;
    Ok(conn)
}
