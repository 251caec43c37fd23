//! Webhooks: every write of a record appends an event (`record_event`) in
//! the write's transaction, and a delivery (`webhook_delivery`) for each
//! active subscription of its object and event, in the same statement.
//! Nothing is sent inside the transaction: when it commits, an
//! announcement wakes the delivery worker of every server (`delivery`),
//! which posts each delivery signed per Standard Webhooks, in order per
//! record, retried with backoff for about a day, then kept as a dead
//! letter. A rolled-back write leaves no event, so no receiver hears of a
//! change that did not happen; a committed one is delivered even if the
//! server dies right after.
//!
//! A sandbox's deliveries are CAPTURED (rendered and kept, never sent)
//! unless an admin allowed their URL for it; its subscriptions have their
//! own secrets, and those copied from production start disabled.
//!
//! The same events feed GraphQL subscriptions (`live`).

pub mod allow_list;
pub mod api;
pub mod delivery;
pub mod sign;

use diesel::sql_types::{Nullable, Text};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, RecordEvent, RecordHooks, Surface, Written};
use crate::metadata::standard::RECORD_EVENTS;
use crate::metadata::{Access, ObjectDef};
use crate::records::{record_id, Record};

/// The room: events on every write, subscriptions checked when saved,
/// `webhookDeliveries`, `capturedWebhooks`, `redeliverWebhook` …
pub fn register(surface: &mut Surface) {
    surface.on_every_write(written);
    surface.on_write("WebhookSubscription", subscription_written);
    api::register(surface);
}

/// Fields a write always touches: not a change of values.
const BOOKKEEPING: &[&str] = &["updatedAt", "version"];

/// The fields a write changed, and what they held before.
fn changes(written: Written<'_>) -> (Vec<String>, Option<Json>) {
    let Some(before) = written.before else {
        return (Vec::new(), None);
    };
    let mut changed = Vec::new();
    let mut previous = serde_json::Map::new();
    for (key, value) in written.record.iter() {
        if BOOKKEEPING.contains(&key.as_str()) {
            continue;
        }
        let was = before.get(key).unwrap_or(&Json::Null);
        if was != value {
            changed.push(key.clone());
            previous.insert(key.clone(), was.clone());
        }
    }
    (changed, Some(Json::Object(previous)))
}

/// Every write of a record: its event, and a delivery for each active
/// subscription that asks for it.
fn written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    _hooks: &'a RecordHooks,
    object: &'a ObjectDef,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(told(conn, scope, object, written))
}

/// Appends the event of a write (and its deliveries): for writes that run
/// only their object's own hooks (a merge's records), as every other
/// write's hook does.
pub async fn told(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
    written: Written<'_>,
) -> Result<Option<Record>> {
    {
        if object.access != Access::Record {
            return Ok(None);
        }
        let event = written.event();
        let (changed, previous) = changes(written);
        if event == RecordEvent::Updated && changed.is_empty() {
            // Written again as it was: nothing happened to tell.
            return Ok(None);
        }
        let actor = scope.trail.actor.as_ref().map(|actor| actor.user_id);
        let event = NewEvent {
            object,
            record: written.record,
            event: event.as_str(),
            previous,
            changed,
            actor,
            rule: None,
        };
        append(conn, scope.schema, &event, None).await?;
        Ok(None)
    }
}

/// An event to append.
pub struct NewEvent<'a> {
    pub object: &'a ObjectDef,
    pub record: &'a Record,
    /// `CREATED` … or `WORKFLOW` (a rule's WEBHOOK action).
    pub event: &'a str,
    pub previous: Option<Json>,
    pub changed: Vec<String>,
    pub actor: Option<Uuid>,
    /// The workflow rule that called a webhook.
    pub rule: Option<&'a str>,
}

#[derive(diesel::QueryableByName)]
struct Appended {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

/// Appends an event in the workspace whose schema is `schema` and its
/// deliveries: to every active subscription of its object and event, or
/// only to `to` (a WEBHOOK action's subscription). A sandbox's deliveries
/// are CAPTURED unless their URL is allowed for it. Announces the
/// transaction's events on commit (once per transaction). Answers the
/// event and the status of its delivery to `to`.
pub async fn append(
    conn: &mut AsyncPgConnection,
    schema: &str,
    event: &NewEvent<'_>,
    to: Option<Uuid>,
) -> Result<(Uuid, Option<String>)> {
    let id = record_id(event.record).ok_or_else(|| CrmError::internal("an event of a record without an id"))?;
    let mut query = Sql::raw("WITH e AS (INSERT INTO ");
    query.table(schema, "record_event").push(
        " (tx, object, record_id, event, record, previous, changed, actor_id, rule_name) \
         VALUES (pg_current_xact_id()::text::bigint, ",
    );
    query
        .bind(Bind::Text(Some(event.object.name.clone())))
        .push(", ")
        .bind(Bind::Uuid(Some(id)))
        .push(", ");
    query.bind(Bind::Text(Some(event.event.to_owned()))).push(", ");
    query
        .bind(Bind::Json(Some(Json::Object((**event.record).clone()))))
        .push(", ")
        .bind(Bind::Json(event.previous.clone()))
        .push(", ");
    query.bind(Bind::TextArray(Some(event.changed.clone()))).push(", ");
    query
        .bind(Bind::Uuid(event.actor))
        .push(", ")
        .bind(Bind::Text(event.rule.map(str::to_owned)))
        .push(") RETURNING id, record_id, event, tx)");
    deliveries(&mut query, schema, &event.object.name, to);
    query.push(" SELECT e.id, (SELECT status FROM d LIMIT 1) AS status FROM e, n");
    let rows: Vec<Appended> = query.load(conn).await?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| CrmError::internal("an event was not appended"))?;
    Ok((row.id, row.status))
}

/// The deliveries of the events in CTE `e` (`id, record_id, event, tx`)
/// as CTE `d` — to every active subscription of `object` and the event,
/// or only to `to` — and the announcement of their transaction as `n`.
/// A sandbox's deliveries are CAPTURED unless their URL is allowed for it.
fn deliveries(query: &mut Sql, schema: &str, object: &str, to: Option<Uuid>) {
    query
        .push(", d AS (INSERT INTO ")
        .table(schema, "webhook_delivery")
        .push(
            " (event_id, subscription_id, record_id, status) SELECT e.id, w.id, e.record_id, \
         CASE WHEN ws.kind = 'sandbox' AND NOT w.url = ANY(ws.webhook_urls) THEN 'CAPTURED' ELSE 'PENDING' END \
         FROM e CROSS JOIN ",
        );
    query
        .table(schema, "webhook_subscription")
        .push(" w LEFT JOIN ")
        .table(schema, "webhook_state")
        .push(" st ON st.subscription_id = w.id LEFT JOIN crm_system.workspace ws ON ws.pg_schema = ");
    query
        .bind(Bind::Text(Some(schema.to_owned())))
        .push(" WHERE w.deleted_at IS NULL AND st.disabled_at IS NULL AND w.is_active AND ");
    match to {
        Some(subscription) => query.push("w.id = ").bind(Bind::Uuid(Some(subscription))),
        None => query
            .push("w.object = ")
            .bind(Bind::Text(Some(object.to_owned())))
            .push(" AND w.events ? e.event"),
    };
    query.push(" ORDER BY e.record_id RETURNING status), n AS (SELECT pg_notify(");
    query
        .bind(Bind::Text(Some(crate::notify::CHANNEL.to_owned())))
        .push(", json_build_object('kind', 'events', 'schema', ");
    query
        .bind(Bind::Text(Some(schema.to_owned())))
        .push(", 'tx', tx)::text) FROM (SELECT DISTINCT tx FROM e) t)");
}

/// The events of the records the batch `start..end` of import `job`
/// wrote, CREATED or UPDATED each (without the previous values), with
/// their deliveries, in the import's transaction: as a write of each
/// would append them.
pub async fn imported(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    actor: Option<Uuid>,
    job: Uuid,
    (start, end): (i64, i64),
) -> Result<()> {
    let mut query = Sql::raw("WITH e AS (INSERT INTO ");
    query
        .table(schema, "record_event")
        .push(" (tx, object, record_id, event, record, actor_id) SELECT pg_current_xact_id()::text::bigint, ");
    query
        .bind(Bind::Text(Some(object.name.clone())))
        .push(", r.record_id, CASE WHEN r.created THEN 'CREATED' ELSE 'UPDATED' END, ");
    query
        .append(&crate::records::projection(
            object,
            &crate::records::FieldSet::all(object),
            "t",
        ))
        .push(", ");
    query
        .bind(Bind::Uuid(actor))
        .push(" FROM ")
        .table(schema, "import_record");
    query
        .push(" r JOIN ")
        .table(schema, &object.table)
        .push(" t ON t.id = r.record_id WHERE r.job_id = ");
    query.bind(Bind::Uuid(Some(job)));
    query
        .push(" AND r.object IS NULL AND r.row_number >= ")
        .push(&start.to_string());
    query
        .push(" AND r.row_number < ")
        .push(&end.to_string())
        .push(" ORDER BY r.row_number RETURNING id, record_id, event, tx)");
    deliveries(&mut query, schema, &object.name, None);
    query.push(" SELECT count(*)::int AS n FROM n");
    query.execute(conn).await?;
    Ok(())
}

/// A subscription saved through the API or a promotion: its object has
/// records and its fields are the object's. A deleted one's pending
/// deliveries are cancelled.
fn subscription_written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let at = crate::graphql::input::Path::from_parts(scope.at);
        // Its secret, made here (a promoted subscription gets one of this
        // workspace's own).
        stated(conn, scope.schema).await?;
        if crate::records::is_deleted(written.record) {
            if let Some(id) = record_id(written.record) {
                let mut query = Sql::raw("UPDATE ");
                query.table(scope.schema, "webhook_delivery").push(
                    " SET status = 'CANCELLED', last_error = 'the subscription was deleted' \
                     WHERE status = 'PENDING' AND subscription_id = ",
                );
                query.bind(Bind::Uuid(Some(id)));
                query.execute(conn).await?;
            }
            return Ok(None);
        }
        let url = written.record.get("url").and_then(Json::as_str).unwrap_or_default();
        if !is_http_url(url) {
            return Err(at
                .at("url")
                .error("a webhook's URL is an absolute http:// or https:// address"));
        }
        if let Some(Json::Array(events)) = written.record.get("events") {
            for (i, event) in events.iter().enumerate() {
                let name = event.as_str().unwrap_or_default();
                if !RECORD_EVENTS.iter().any(|(value, _)| *value == name) {
                    return Err(at.at("events").index(i).error(format!(
                        "{event} is not an event: CREATED, UPDATED, DELETED or RESTORED"
                    )));
                }
            }
        }
        let name = written.record.get("object").and_then(Json::as_str).unwrap_or_default();
        let object = scope
            .model
            .object(name)
            .filter(|object| object.access == Access::Record)
            .ok_or_else(|| at.at("object").error(format!("{name} is not an object with records")))?;
        if let Some(Json::Array(fields)) = written.record.get("fields") {
            for (i, field) in fields.iter().enumerate() {
                let field = field.as_str().unwrap_or_default();
                if object.field(field).is_none() {
                    return Err(at
                        .at("fields")
                        .index(i)
                        .error(format!("{} has no field {field}", object.name)));
                }
            }
        }
        Ok(None)
    })
}

/// Whether `url` is an absolute http(s) address.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["http://", "https://"]
        .iter()
        .any(|scheme| lower.len() > scheme.len() && lower.starts_with(scheme))
        && !url.chars().any(char::is_whitespace)
}

/// A new signing secret, in SQL: `whsec_` and 32 random bytes in base64.
pub const NEW_SECRET: &str = "'whsec_' || encode(sha256(convert_to(gen_random_uuid()::text || \
                              gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')), 'base64')";

/// Gives every subscription of the workspace in `schema` its state (a
/// secret of its own) if it has none yet.
pub async fn stated(conn: &mut AsyncPgConnection, schema: &str) -> Result<()> {
    let mut query = Sql::raw("INSERT INTO ");
    query
        .table(schema, "webhook_state")
        .push(" (subscription_id) SELECT w.id FROM ")
        .table(schema, "webhook_subscription");
    query
        .push(" w WHERE NOT EXISTS (SELECT 1 FROM ")
        .table(schema, "webhook_state")
        .push(" st WHERE st.subscription_id = w.id) ON CONFLICT DO NOTHING");
    query.execute(conn).await?;
    Ok(())
}

/// After a sandbox was filled from production: the subscriptions it
/// copied get secrets of their own (production's are never copied) and
/// start disabled, so nothing a sandbox does reaches production's
/// receivers until an admin says so.
pub async fn copied(conn: &mut AsyncPgConnection, schema: &str) -> Result<()> {
    let mut query = Sql::raw("INSERT INTO ");
    query
        .table(schema, "webhook_state")
        .push(" (subscription_id, disabled_at, disabled_reason) SELECT id, now(), 'COPIED' FROM ")
        .table(schema, "webhook_subscription");
    query.push(" WHERE deleted_at IS NULL ON CONFLICT (subscription_id) DO UPDATE SET secret = ");
    query
        .push(NEW_SECRET)
        .push(", disabled_at = now(), disabled_reason = 'COPIED'");
    query.execute(conn).await?;
    stated(conn, schema).await
}

#[derive(diesel::QueryableByName)]
struct Named {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    object: String,
}

/// The live subscription named `name` in `schema`: its id and object.
pub async fn subscription_named(
    conn: &mut AsyncPgConnection,
    schema: &str,
    name: &str,
) -> Result<Option<(Uuid, String)>> {
    let mut query = Sql::raw("SELECT id, object FROM ");
    query
        .table(schema, "webhook_subscription")
        .push(" WHERE deleted_at IS NULL AND name = ")
        .bind(Bind::Text(Some(name.to_owned())));
    let found: Vec<Named> = query.load(conn).await?;
    Ok(found.into_iter().next().map(|n| (n.id, n.object)))
}
