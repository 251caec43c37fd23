//! The delivery worker every server runs: claims due deliveries with
//! `FOR UPDATE SKIP LOCKED` (so any number of servers send each once),
//! leasing them for as long as a try may take, posts them concurrently
//! with no transaction open, records how each went, and retries failures
//! with exponential backoff and jitter (10 tries over about a day at the
//! default base) before keeping them as dead letters.
//!
//! Per subscription and record, a delivery waits until the ones before it
//! are done (delivered, or dead), so a receiver sees a record's events in
//! the order they were written. An answer of 410 Gone disables the
//! subscription. A server killed after commit leaves its deliveries
//! pending, and the next look (of any server) sends them (those it had
//! claimed once their lease ends); one killed between a receiver's answer
//! and recording it sends that delivery again with the same `webhook-id`:
//! at least once, as Standard Webhooks expects.

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

/// Deliveries posted at once.
const CONCURRENCY: usize = 64;
/// Rounds of posts one claim takes deliveries for: it lasts as long as
/// that many tries may take (their timeout), so every delivery it takes
/// is posted within it.
const ROUNDS: u32 = 4;
/// Deliveries one claim takes.
const BATCH: i64 = CONCURRENCY as i64 * ROUNDS as i64;
/// Tries before a delivery is a dead letter.
pub const MAX_ATTEMPTS: i32 = 10;
/// The wait after each failed try, in units of the retry base (5 s by
/// default: 5 s, 1 min, 5 min, 15 min, 1 h, 2 h, 4 h, 8 h, 9 h).
const BACKOFF: [u32; 9] = [1, 12, 60, 180, 720, 1440, 2880, 5760, 6480];
/// How long events are kept once nothing waits on them.
const EVENT_RETENTION_DAYS: i32 = 30;
/// How much longer than a try's timeout a claim lasts.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// The most of a receiver's answer read (and thrown away).
const ANSWER_LIMIT: usize = 64 * 1024;

static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// The workspaces (Postgres schemas) whose events committed since the
/// worker of a server ([`Database::id`]) last looked: a wake looks at
/// those only.
static DUE: std::sync::Mutex<Vec<(usize, String)>> = std::sync::Mutex::new(Vec::new());

/// Has the worker of the server over `db` look for deliveries of the
/// workspace in `schema` now (events committed there).
pub fn wake(db: &Database, schema: &str) {
    {
        let mut due = DUE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = (db.id(), schema.to_owned());
        if !due.contains(&entry) {
            due.push(entry);
        }
    }
    WAKE.notify_waiters();
}

/// The workspaces woken for the server over `db`, taken.
fn woken(db: &Database) -> Vec<String> {
    let mut due = DUE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut *due)
        .into_iter()
        .partition(|(id, _)| *id == db.id());
    *due = others;
    mine.into_iter().map(|(_, schema)| schema).collect()
}

type Https = hyper_rustls::HttpsConnector<HttpConnector<Resolver>>;

/// Resolves receivers' names, refusing addresses on this machine and in
/// private networks unless the server allows them (`--webhook-allow-private-networks`):
/// an admin's URL must not reach the database port or a cloud's metadata
/// service (169.254.169.254) from inside.
#[derive(Clone)]
struct Resolver {
    allow_private: bool,
}

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = futures_util::future::BoxFuture<'static, std::io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<std::net::SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || public(a.ip()))
                .collect();
            if public.is_empty() && !found.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{host} is on this machine or a private network, which webhooks may not reach \
                     (--webhook-allow-private-networks)"
                )));
            }
            Ok(public.into_iter())
        })
    }
}

/// Whether an address is on the public internet (not this machine, a
/// private or link-local network, or a shared or reserved range).
pub fn public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// What the worker works with.
#[derive(Clone)]
pub struct Deliverer {
    db: Database,
    client: Client<Https, Full<Bytes>>,
    retry_base: Duration,
    timeout: Duration,
    allow_private: bool,
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
        // Every workspace is looked at once an interval at least (retries,
        // claims that ran out), however often commits wake the worker.
        let mut looked = std::time::Instant::now();
        let mut woken_only = false;
        loop {
            let notified = WAKE.notified();
            let done = if woken_only && looked.elapsed() < interval {
                deliverer.schemas(&woken(&deliverer.db)).await;
                Ok(())
            } else {
                looked = std::time::Instant::now();
                deliverer.tick().await
            };
            if let Err(err) = done {
                tracing::warn!(%err, "delivering webhooks failed; it is tried again");
            }
            if pruned.elapsed() > Duration::from_secs(3600) {
                pruned = std::time::Instant::now();
                if let Err(err) = deliverer.prune().await {
                    tracing::warn!(%err, "removing old record events failed");
                }
            }
            woken_only = tokio::select! {
                () = notified => true,
                () = tokio::time::sleep(interval) => false,
            };
        }
    });
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
    /// Until when it is claimed: its outcome is recorded only while the
    /// claim holds (no other worker took it since).
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    leased_until: chrono::DateTime<Utc>,
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
        let mut http = HttpConnector::new_with_resolver(Resolver {
            allow_private: config.webhook_allow_private,
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.webhook_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Deliverer {
            db,
            client,
            retry_base: config.webhook_retry_base,
            timeout: config.webhook_timeout,
            allow_private: config.webhook_allow_private,
        }
    }

    /// One look at every workspace: sends what is due, a batch at a time.
    pub async fn tick(&self) -> Result<()> {
        let workspaces = {
            let mut conn = self.db.conn().await?;
            crate::db::workspaces(&mut conn).await?
        };
        let schemas: Vec<String> = workspaces.into_iter().map(|w| w.pg_schema).collect();
        {
            // A subscription made without its state (none should be) is
            // given one, so it is signed and sent.
            let mut conn = self.db.conn().await?;
            for schema in &schemas {
                super::stated(&mut conn, schema).await?;
            }
        }
        self.schemas(&schemas).await;
        Ok(())
    }

    /// Sends what is due in the workspaces of `schemas`, a batch at a time.
    async fn schemas(&self, schemas: &[String]) {
        for schema in schemas {
            loop {
                match self.batch(schema).await {
                    Ok(taken) if taken < BATCH as usize => break,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%err, schema, "delivering webhooks failed");
                        break;
                    }
                }
            }
        }
    }

    /// Takes up to [`BATCH`] due deliveries of the workspace in `schema`
    /// (leased for the time a try may take, in a statement of its own:
    /// no transaction stays open while receivers answer), sends them and
    /// records how each went, in a short transaction.
    async fn batch(&self, schema: &str) -> Result<usize> {
        let lease = self.timeout * ROUNDS + LEASE_MARGIN;
        let due: Vec<Due> = {
            let mut conn = self.db.conn().await?;
            claim(schema, lease).load(&mut conn).await?
        };
        let Some(leased_until) = due.first().map(|d| d.leased_until) else {
            return Ok(0);
        };
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
        let mut conn = self.db.conn().await?;
        conn.transaction::<_, CrmError, _>(async |conn| self.record(conn, schema, leased_until, outcomes).await)
            .await?;
        Ok(taken)
    }

    /// Posts one delivery.
    async fn post(&self, due: &Due) -> Outcome {
        // An address written in the URL is not resolved: checked here.
        let literal = due
            .url
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
            .and_then(|host| host.parse::<std::net::IpAddr>().ok());
        if literal.is_some_and(|ip| !self.allow_private && !public(ip)) {
            return Outcome::Failed(
                None,
                "the URL's address is on this machine or a private network, which webhooks may not reach \
                 (--webhook-allow-private-networks)"
                    .into(),
            );
        }
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

    /// Records each outcome while its claim (until `leased_until`) holds:
    /// delivered ones at once, failures with their next try (or as dead
    /// letters), a 410's subscription disabled.
    async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        schema: &str,
        leased_until: chrono::DateTime<Utc>,
        outcomes: Vec<(Uuid, Uuid, i32, Outcome)>,
    ) -> Result<()> {
        let claimed = |update: &mut Sql| {
            update
                .push(" AND status = 'PENDING' AND next_attempt_at = ")
                .bind(Bind::DateTime(Some(leased_until)));
        };
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
                    claimed(&mut update);
                    if update.execute(conn).await? == 0 {
                        continue;
                    }
                    let mut disable = Sql::raw("UPDATE ");
                    disable.table(schema, "webhook_state").push(
                        " SET disabled_at = now(), disabled_reason = 'GONE' WHERE disabled_at IS NULL \
                         AND subscription_id = ",
                    );
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
                    claimed(&mut update);
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
                 now(), last_error = NULL, response_status = u.code::integer FROM unnest(",
            );
            update
                .bind(Bind::UuidArray(ids))
                .push("::uuid[], ")
                .bind(Bind::TextArray(Some(statuses)))
                .push("::text[]) AS u(delivery, code) WHERE d.id = u.delivery");
            claimed(&mut update);
            update.execute(conn).await?;
        }
        if !captured.is_empty() {
            let mut update = Sql::raw("UPDATE ");
            update
                .table(schema, "webhook_delivery")
                .push(" SET status = 'CAPTURED' WHERE id = ANY(")
                .bind(Bind::UuidArray(captured))
                .push(")");
            claimed(&mut update);
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
        let workspaces = {
            let mut conn = self.db.conn().await?;
            crate::db::workspaces(&mut conn).await?
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

/// Claims the deliveries of the workspace in `schema` due now, oldest
/// first, each the first of its subscription and record still pending:
/// leased for `lease` (others skip them meanwhile; a server that dies
/// holding them leaves them to the next look once the lease ends).
fn claim(schema: &str, lease: Duration) -> Sql {
    let mut query = Sql::raw("WITH due AS (SELECT d.id FROM ");
    query
        .table(schema, "webhook_delivery")
        .push(" d JOIN ")
        .table(schema, "webhook_subscription");
    query
        .push(" w ON w.id = d.subscription_id JOIN ")
        .table(schema, "webhook_state");
    query.push(
        " st ON st.subscription_id = w.id WHERE d.status = 'PENDING' AND d.next_attempt_at <= now() \
         AND st.disabled_at IS NULL AND w.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM ",
    );
    query.table(schema, "webhook_delivery").push(
        " p WHERE p.subscription_id = d.subscription_id AND p.record_id = d.record_id AND p.status = 'PENDING' \
         AND p.seq < d.seq) ORDER BY d.seq LIMIT ",
    );
    query
        .push(&BATCH.to_string())
        .push(" FOR UPDATE OF d SKIP LOCKED), claimed AS (UPDATE ");
    query
        .table(schema, "webhook_delivery")
        .push(" d SET next_attempt_at = now() + make_interval(secs => ")
        .push(&format!("{:.3}", lease.as_secs_f64()))
        .push(
            ") FROM due WHERE d.id = due.id RETURNING d.id, d.attempts, d.subscription_id, d.event_id, d.seq, \
             d.next_attempt_at) ",
        );
    query.push("SELECT c.id, c.attempts, c.subscription_id, w.url, st.secret, c.next_attempt_at AS leased_until, ");
    query.push("(coalesce(ws.kind, 'production') = 'sandbox' AND NOT w.url = ANY(ws.webhook_urls)) AS captured, ");
    query.push(sign::EVENT_COLUMNS).push(" FROM claimed c JOIN ");
    query
        .table(schema, "webhook_subscription")
        .push(" w ON w.id = c.subscription_id JOIN ")
        .table(schema, "webhook_state");
    query
        .push(" st ON st.subscription_id = w.id JOIN ")
        .table(schema, "record_event");
    query
        .push(" e ON e.id = c.event_id LEFT JOIN crm_system.workspace ws ON ws.pg_schema = ")
        .bind(Bind::Text(Some(schema.to_owned())))
        .push(" ORDER BY c.seq");
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
