//! The delivery worker every server runs: takes due deliveries with
//! `FOR UPDATE SKIP LOCKED` (so any number of servers send each once) in
//! the transaction that records their outcome, posts them concurrently,
//! and retries failures with exponential backoff and jitter (10 tries over
//! about a day at the default base) before keeping them as dead letters.
//!
//! Per subscription and record, a delivery waits until the ones before it
//! are done (delivered, or dead), so a receiver sees a record's events in
//! the order they were written. An answer of 410 Gone disables the
//! subscription. A server killed after commit leaves its deliveries
//! pending, and the next look (of any server) sends them; one killed
//! between a receiver's answer and the commit sends that batch again with
//! the same `webhook-id`: at least once, as Standard Webhooks expects.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use diesel::sql_types::{Bool, Integer, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use uuid::Uuid;

use super::sign::{self, Event};
use crate::config::Config;
use crate::db::sql::{Bind, Sql};
use crate::db::Database;
use crate::error::{CrmError, Result};

/// Deliveries one transaction takes.
const BATCH: i64 = 200;
/// Deliveries posted at once.
const CONCURRENCY: usize = 64;
/// Tries before a delivery is a dead letter.
pub const MAX_ATTEMPTS: i32 = 10;
/// The wait after each failed try, in units of the retry base (5 s by
/// default: 5 s, 1 min, 5 min, 15 min, 1 h, 2 h, 4 h, 8 h, 9 h).
const BACKOFF: [u32; 9] = [1, 12, 60, 180, 720, 1440, 2880, 5760, 6480];
/// How long events are kept once nothing waits on them.
const EVENT_RETENTION_DAYS: i32 = 30;
/// The most of a receiver's answer read (and thrown away).
const ANSWER_LIMIT: usize = 64 * 1024;

static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Has this process's worker look for deliveries now (events committed).
pub fn wake() {
    WAKE.notify_waiters();
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// What the worker works with.
#[derive(Clone)]
pub struct Deliverer {
    db: Database,
    client: Client<Https, Full<Bytes>>,
    retry_base: Duration,
    timeout: Duration,
}

/// Starts the worker: a look at every workspace whenever events commit
/// (here or on another server) and every `automation_interval` (for
/// retries); none when that interval is zero.
pub fn spawn(db: Database, config: &Config) {
    if config.automation_interval.is_zero() {
        return;
    }
    let deliverer = Deliverer::new(db, config);
    let interval = config.automation_interval;
    tokio::spawn(async move {
        let mut pruned = std::time::Instant::now();
        loop {
            let woken = WAKE.notified();
            if let Err(err) = deliverer.tick().await {
                tracing::warn!(%err, "delivering webhooks failed; it is tried again");
            }
            if pruned.elapsed() > Duration::from_secs(3600) {
                pruned = std::time::Instant::now();
                if let Err(err) = deliverer.prune().await {
                    tracing::warn!(%err, "removing old record events failed");
                }
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
}

#[derive(QueryableByName)]
struct Workspace {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    pg_schema: String,
}

/// A delivery taken to be sent.
#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    subscription_id: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    secret: String,
    /// A sandbox's delivery whose URL is no longer allowed.
    #[diesel(sql_type = Bool)]
    captured: bool,
    #[diesel(embed)]
    event: Event,
}

/// How an attempt went.
enum Outcome {
    Delivered(u16),
    /// 410: the receiver is gone for good.
    Gone,
    Failed(Option<u16>, String),
    Captured,
}

impl Deliverer {
    pub fn new(db: Database, config: &Config) -> Deliverer {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Deliverer {
            db,
            client,
            retry_base: config.webhook_retry_base,
            timeout: config.webhook_timeout,
        }
    }

    /// One look at every workspace: sends what is due, a batch at a time.
    pub async fn tick(&self) -> Result<()> {
        let workspaces: Vec<Workspace> = {
            let mut conn = self.db.conn().await?;
            Sql::raw("SELECT name, pg_schema FROM crm_system.workspace ORDER BY kind DESC, name")
                .load(&mut conn)
                .await?
        };
        for workspace in workspaces {
            loop {
                match self.batch(&workspace.pg_schema).await {
                    Ok(taken) if taken < BATCH as usize => break,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%err, workspace = %workspace.name, "delivering webhooks failed");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes up to [`BATCH`] due deliveries of the workspace in `schema`,
    /// sends them and records how each went, in one transaction.
    async fn batch(&self, schema: &str) -> Result<usize> {
        let mut conn = self.db.conn().await?;
        conn.transaction::<_, CrmError, _>(async |conn| {
            let due: Vec<Due> = due(schema).load(conn).await?;
            if due.is_empty() {
                return Ok(0);
            }
            let outcomes: Vec<(Uuid, Uuid, i32, Outcome)> = futures_util::stream::iter(due)
                .map(async |due| {
                    let outcome = if due.captured {
                        Outcome::Captured
                    } else {
                        self.post(&due).await
                    };
                    (due.id, due.subscription_id, due.attempts, outcome)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let taken = outcomes.len();
            self.record(conn, schema, outcomes).await?;
            Ok(taken)
        })
        .await
    }

    /// Posts one delivery.
    async fn post(&self, due: &Due) -> Outcome {
        let body = sign::body(&due.event);
        let mut request = hyper::Request::post(due.url.as_str());
        for (name, value) in sign::headers(&due.secret, due.id, Utc::now().timestamp(), &body) {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(request) => request,
            Err(err) => return Outcome::Failed(None, format!("the URL cannot be posted to: {err}")),
        };
        let answered = tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            // Read (and drop) the answer, so the connection is reused.
            let _ = Limited::new(response.into_body(), ANSWER_LIMIT).collect().await;
            Ok::<u16, hyper_util::client::legacy::Error>(status)
        })
        .await;
        match answered {
            Err(_) => Outcome::Failed(None, format!("no answer within {} ms", self.timeout.as_millis())),
            Ok(Err(err)) => Outcome::Failed(None, format!("cannot reach the receiver: {}", error_chain(&err))),
            Ok(Ok(status)) if (200..300).contains(&status) => Outcome::Delivered(status),
            Ok(Ok(410)) => Outcome::Gone,
            Ok(Ok(status)) => Outcome::Failed(Some(status), format!("the receiver answered HTTP {status}")),
        }
    }

    /// Records each outcome: delivered ones at once, failures with their
    /// next try (or as dead letters), a 410's subscription disabled.
    async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        schema: &str,
        outcomes: Vec<(Uuid, Uuid, i32, Outcome)>,
    ) -> Result<()> {
        let mut delivered: Vec<(Uuid, u16)> = Vec::new();
        let mut captured = Vec::new();
        for (id, subscription, attempts, outcome) in outcomes {
            match outcome {
                Outcome::Delivered(status) => delivered.push((id, status)),
                Outcome::Captured => captured.push(id),
                Outcome::Gone => {
                    let mut update = Sql::raw("UPDATE ");
                    update.table(schema, "webhook_delivery").push(
                        " SET status = 'FAILED', attempts = attempts + 1, last_attempt_at = now(), \
                         response_status = 410, last_error = 'the receiver answered 410 Gone: the subscription \
                         was disabled' WHERE id = ",
                    );
                    update.bind(Bind::Uuid(Some(id)));
                    update.execute(conn).await?;
                    let mut disable = Sql::raw("UPDATE ");
                    disable
                        .table(schema, "webhook_subscription")
                        .push(" SET disabled_at = now(), disabled_reason = 'GONE' WHERE disabled_at IS NULL AND id = ");
                    disable.bind(Bind::Uuid(Some(subscription)));
                    disable.execute(conn).await?;
                }
                Outcome::Failed(status, error) => {
                    let tries = attempts + 1;
                    let mut update = Sql::raw("UPDATE ");
                    update
                        .table(schema, "webhook_delivery")
                        .push(" SET attempts = attempts + 1, last_attempt_at = now(), response_status = ");
                    update.bind(Bind::Int(status.map(i32::from))).push(", last_error = ");
                    update.bind(Bind::Text(Some(error)));
                    match self.backoff(tries) {
                        None => update.push(", status = 'FAILED'"),
                        Some(wait) => update
                            .push(", next_attempt_at = now() + make_interval(secs => ")
                            .push(&format!("{:.3}", wait.as_secs_f64()))
                            .push(")"),
                    };
                    update.push(" WHERE id = ").bind(Bind::Uuid(Some(id)));
                    update.execute(conn).await?;
                }
            }
        }
        if !delivered.is_empty() {
            let (ids, statuses): (Vec<Uuid>, Vec<String>) = delivered
                .into_iter()
                .map(|(id, status)| (id, status.to_string()))
                .unzip();
            let mut update = Sql::raw("UPDATE ");
            update.table(schema, "webhook_delivery").push(
                " d SET status = 'DELIVERED', attempts = d.attempts + 1, last_attempt_at = now(), delivered_at = \
                 now(), last_error = NULL, response_status = u.status::integer FROM unnest(",
            );
            update
                .bind(Bind::UuidArray(ids))
                .push("::uuid[], ")
                .bind(Bind::TextArray(Some(statuses)))
                .push("::text[]) AS u(id, status) WHERE d.id = u.id");
            update.execute(conn).await?;
        }
        if !captured.is_empty() {
            let mut update = Sql::raw("UPDATE ");
            update
                .table(schema, "webhook_delivery")
                .push(" SET status = 'CAPTURED' WHERE id = ANY(")
                .bind(Bind::UuidArray(captured))
                .push(")");
            update.execute(conn).await?;
        }
        Ok(())
    }

    /// How long to wait after the `tries`-th failed try; `None`: no more.
    fn backoff(&self, tries: i32) -> Option<Duration> {
        if tries >= MAX_ATTEMPTS {
            return None;
        }
        let step = BACKOFF[usize::try_from(tries - 1).unwrap_or(0).min(BACKOFF.len() - 1)];
        let jitter = 0.8 + 0.4 * f64::from(Uuid::new_v4().as_bytes()[0]) / 255.0;
        Some(self.retry_base.mul_f64(f64::from(step) * jitter))
    }

    /// Removes events past [`EVENT_RETENTION_DAYS`] that no delivery
    /// waits on (pending ones and dead letters keep theirs).
    async fn prune(&self) -> Result<()> {
        let workspaces: Vec<Workspace> = {
            let mut conn = self.db.conn().await?;
            Sql::raw("SELECT name, pg_schema FROM crm_system.workspace")
                .load(&mut conn)
                .await?
        };
        for workspace in workspaces {
            let schema = &workspace.pg_schema;
            let mut conn = self.db.conn().await?;
            let mut delete = Sql::raw("DELETE FROM ");
            delete
                .table(schema, "record_event")
                .push(" e WHERE e.at < now() - make_interval(days => ");
            delete
                .push(&EVENT_RETENTION_DAYS.to_string())
                .push(") AND NOT EXISTS (SELECT 1 FROM ");
            delete
                .table(schema, "webhook_delivery")
                .push(" d WHERE d.event_id = e.id AND d.status IN ('PENDING', 'FAILED'))");
            delete.execute(&mut conn).await?;
        }
        Ok(())
    }
}

/// The deliveries of the workspace in `schema` due now, oldest first,
/// each the first of its subscription and record still pending, locked
/// (others skip them).
fn due(schema: &str) -> Sql {
    let mut query = Sql::raw("SELECT d.id, d.attempts, d.subscription_id, w.url, w.secret, ");
    query.push("(coalesce(ws.kind, 'production') = 'sandbox' AND NOT w.url = ANY(ws.webhook_urls)) AS captured, ");
    query.push(sign::EVENT_COLUMNS).push(" FROM ");
    query
        .table(schema, "webhook_delivery")
        .push(" d JOIN ")
        .table(schema, "webhook_subscription");
    query
        .push(" w ON w.id = d.subscription_id JOIN ")
        .table(schema, "record_event");
    query
        .push(" e ON e.id = d.event_id LEFT JOIN crm_system.workspace ws ON ws.pg_schema = ")
        .bind(Bind::Text(Some(schema.to_owned())));
    query.push(
        " WHERE d.status = 'PENDING' AND d.next_attempt_at <= now() AND w.disabled_at IS NULL AND NOT EXISTS \
         (SELECT 1 FROM ",
    );
    query.table(schema, "webhook_delivery").push(
        " p WHERE p.subscription_id = d.subscription_id AND p.record_id = d.record_id AND p.status = 'PENDING' \
         AND p.seq < d.seq) ORDER BY d.seq LIMIT ",
    );
    query.push(&BATCH.to_string()).push(" FOR UPDATE OF d SKIP LOCKED");
    query
}

/// An error with its causes: hyper's own says little ("client error").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
