//! Webhooks' GraphQL surface: `webhookDeliveries` (what was sent where,
//! what failed and why: the dead letters), `capturedWebhooks` (a
//! sandbox's deliveries, rendered and kept, never sent), `webhookSecret`,
//! `redeliverWebhook`, `enableWebhookSubscription`, `rotateWebhookSecret`,
//! and `sandboxWebhookUrls` / `setSandboxWebhookUrls` (where a sandbox may
//! really post). Subscriptions themselves are configuration objects with
//! the engine's CRUD (`createWebhookSubscription` …).

use async_graphql::dynamic::{Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::allow_list::{self, AllowList};
use super::sign;
use crate::access::{self, AdminPermission};
use crate::audit::{self, Action};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::resolve::{
    arg, context, enum_name, first_arg, id_arg, instant, json_enum_field, json_field, optional_id, resolved,
    RequestContext,
};
use crate::graphql::room::Surface;

/// Adds the queries, mutations and their types.
pub fn register(surface: &mut Surface) {
    surface.enumeration(delivery_status());
    surface.object(delivery_type());
    surface.object(header_type());
    surface.object(state_type());
    surface.record_field(state_field);
    surface.queries(
        &[
            "webhookDeliveries",
            "capturedWebhooks",
            "webhookSecret",
            "sandboxWebhookUrls",
        ],
        vec![
            deliveries_field("webhookDeliveries", false),
            deliveries_field("capturedWebhooks", true),
            secret_field(),
            urls_field(),
        ],
    );
    surface.mutations(vec![
        redeliver_field(),
        enable_field(),
        rotate_field(),
        set_urls_field(),
    ]);
}

/// Webhooks are for those who configure the workspace.
fn admin(context: &RequestContext) -> Result<()> {
    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)
}

fn delivery_status() -> Enum {
    Enum::new("WebhookDeliveryStatus")
        .description("Where a webhook delivery stands.")
        .item(EnumItem::new("PENDING").description("Waiting to be sent, or to be tried again after a failure."))
        .item(EnumItem::new("DELIVERED").description("The receiver answered 2xx."))
        .item(EnumItem::new("FAILED").description(
            "A dead letter: every try failed, or the receiver answered 410 Gone; `redeliverWebhook` sends it again.",
        ))
        .item(
            EnumItem::new("CAPTURED")
                .description("Rendered in a sandbox and kept, never sent (its URL is not allowed for the sandbox)."),
        )
        .item(EnumItem::new("CANCELLED").description("Not sent: its subscription was deleted first."))
}

fn delivery_type() -> Object {
    let fields = [
        (
            "id",
            TypeRef::named_nn(TypeRef::ID),
            "The delivery: its `webhook-id` header, the same at every try.",
        ),
        (
            "subscriptionId",
            TypeRef::named_nn(TypeRef::ID),
            "The subscription it goes to.",
        ),
        (
            "subscription",
            TypeRef::named_nn(TypeRef::STRING),
            "The subscription's name.",
        ),
        ("url", TypeRef::named_nn(TypeRef::STRING), "Where it is posted."),
        (
            "type",
            TypeRef::named_nn(TypeRef::STRING),
            "The event's type: `lead.created`, `lead.workflow` …",
        ),
        (
            "eventId",
            TypeRef::named_nn(TypeRef::ID),
            "The event (one per write of a record).",
        ),
        ("object", TypeRef::named_nn(TypeRef::STRING), "The record's object."),
        ("recordId", TypeRef::named_nn(TypeRef::ID), "The record."),
        ("attempts", TypeRef::named_nn(TypeRef::INT), "Tries so far."),
        (
            "nextAttemptAt",
            TypeRef::named("DateTime"),
            "When a PENDING delivery is tried next.",
        ),
        ("lastAttemptAt", TypeRef::named("DateTime"), "When it was last tried."),
        (
            "responseStatus",
            TypeRef::named(TypeRef::INT),
            "The HTTP status the receiver last answered.",
        ),
        ("lastError", TypeRef::named(TypeRef::STRING), "Why the last try failed."),
        (
            "deliveredAt",
            TypeRef::named("DateTime"),
            "When the receiver accepted it.",
        ),
        (
            "createdAt",
            TypeRef::named_nn("DateTime"),
            "When its event was written.",
        ),
        (
            "payload",
            TypeRef::named_nn("JSON"),
            "The body posted: `{ type, timestamp, data: { event, object, id, record, previous, changedFields } }`.",
        ),
    ];
    let mut object = Object::new("WebhookDelivery")
        .description("One event posted (or to be posted, or captured) to one subscription's URL.")
        .field(json_enum_field(
            "status",
            TypeRef::named_nn("WebhookDeliveryStatus"),
            "Where it stands.",
        ))
        .field(
            Field::new("headers", TypeRef::named_nn_list_nn("WebhookHeader"), |ctx| {
                let headers = ctx
                    .parent_value
                    .try_downcast_ref::<Json>()
                    .ok()
                    .and_then(|parent| parent["headers"].as_array().cloned())
                    .unwrap_or_default();
                FieldFuture::new(
                    async move { Ok(Some(FieldValue::list(headers.into_iter().map(FieldValue::owned_any)))) },
                )
            })
            .description(
                "The headers of its last try (of its capture, in a sandbox), signature included: `webhook-id`, \
                 `webhook-timestamp`, `webhook-signature`.",
            ),
        );
    for (name, type_ref, description) in fields {
        object = object.field(json_field(name, type_ref, description));
    }
    object
}

fn header_type() -> Object {
    Object::new("WebhookHeader")
        .description("One header of a webhook delivery.")
        .field(json_field(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            "`webhook-signature` …",
        ))
        .field(json_field("value", TypeRef::named_nn(TypeRef::STRING), "Its value."))
}

fn state_type() -> Object {
    Object::new("WebhookSubscriptionState")
        .description("Whether a subscription is sent to now: the workspace's own, never promoted or copied.")
        .field(json_field(
            "enabled",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            "Whether its deliveries go out (an inactive one gets no new events either way).",
        ))
        .field(json_field(
            "disabledAt",
            TypeRef::named("DateTime"),
            "When it was disabled.",
        ))
        .field(json_field(
            "disabledReason",
            TypeRef::named(TypeRef::STRING),
            "Why: `GONE` (its receiver answered 410), `COPIED` (copied into a sandbox: enable it to capture \
             deliveries), `MANUAL`.",
        ))
        .field(json_field(
            "pending",
            TypeRef::named_nn(TypeRef::INT),
            "Deliveries waiting to be sent.",
        ))
        .field(json_field("failed", TypeRef::named_nn(TypeRef::INT), "Dead letters."))
}

/// A delivery's row document with its payload and headers.
fn rendered(loaded: sign::Loaded) -> Json {
    let body = sign::body(&loaded.event);
    let id = loaded.document["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(Uuid::nil);
    let headers: Vec<Json> = sign::headers(&loaded.secret, id, loaded.signed_at.timestamp(), &body)
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let mut row = loaded.document;
    row["type"] = Json::from(sign::event_type(&loaded.event.object, &loaded.event.event));
    row["payload"] = serde_json::from_str(&body).unwrap_or(Json::Null);
    row["headers"] = Json::from(headers);
    row
}

/// The SELECT of deliveries as [`sign::Loaded`] reads them.
fn select(schema: &str) -> Sql {
    let mut query = Sql::raw(
        "SELECT jsonb_build_object('id', d.id, 'status', d.status, 'subscriptionId', d.subscription_id, \
         'subscription', w.name, 'url', w.url, 'eventId', d.event_id, 'object', e.object, 'recordId', d.record_id, \
         'attempts', d.attempts, 'responseStatus', d.response_status, 'lastError', d.last_error, 'nextAttemptAt', \
         CASE WHEN d.status = 'PENDING' THEN ",
    );
    query
        .append(&instant("d.next_attempt_at"))
        .push(" END, 'lastAttemptAt', ");
    query.append(&instant("d.last_attempt_at")).push(", 'deliveredAt', ");
    query.append(&instant("d.delivered_at")).push(", 'createdAt', ");
    query.append(&instant("d.created_at"));
    query.push(
        ") AS document, coalesce(st.secret, '') AS secret, coalesce(d.last_attempt_at, d.created_at) AS signed_at, ",
    );
    query.push(sign::EVENT_COLUMNS).push(" FROM ");
    query
        .table(schema, "webhook_delivery")
        .push(" d JOIN ")
        .table(schema, "webhook_subscription");
    query
        .push(" w ON w.id = d.subscription_id LEFT JOIN ")
        .table(schema, "webhook_state");
    query
        .push(" st ON st.subscription_id = w.id JOIN ")
        .table(schema, "record_event");
    query.push(" e ON e.id = d.event_id");
    query
}

async fn load(context: &RequestContext, query: Sql) -> Result<Vec<Json>> {
    let mut conn = context.db.conn().await?;
    let rows: Vec<sign::Loaded> = query.load(&mut conn).await?;
    Ok(rows.into_iter().map(rendered).collect())
}

fn deliveries_field(name: &'static str, captured: bool) -> Field {
    let field = Field::new(name, TypeRef::named_nn_list_nn("WebhookDelivery"), move |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let first = first_arg(&ctx, 50, 500)?;
            let mut query = select(&context.schema);
            query.push(" WHERE true");
            if captured {
                query.push(" AND d.status = 'CAPTURED'");
            } else if let Some(Value::List(statuses)) = arg(&ctx, "status") {
                let statuses: Vec<String> = statuses.iter().filter_map(|s| enum_name(Some(s))).collect();
                query
                    .push(" AND d.status = ANY(")
                    .bind(Bind::TextArray(Some(statuses)))
                    .push(")");
            }
            if let Some(subscription) = optional_id(&ctx, "subscriptionId")? {
                query
                    .push(" AND d.subscription_id = ")
                    .bind(Bind::Uuid(Some(subscription)));
            }
            if let Some(record) = optional_id(&ctx, "recordId")? {
                query.push(" AND d.record_id = ").bind(Bind::Uuid(Some(record)));
            }
            query.push(" ORDER BY d.seq DESC LIMIT ").push(&first.to_string());
            let rows = load(context, query).await?;
            Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
        })
    })
    .argument(InputValue::new("subscriptionId", TypeRef::named(TypeRef::ID)).description("Only this subscription's."))
    .argument(InputValue::new("recordId", TypeRef::named(TypeRef::ID)).description("Only this record's events."))
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT)).description("How many (default 50, at most 500)."),
    );
    if captured {
        field.description(
            "The deliveries this workspace rendered but kept instead of posting, newest first: a sandbox's (unless \
             their URL is allowed for it), with the payload and signed headers they would have had.",
        )
    } else {
        field
            .description(
                "Webhook deliveries, newest first, with where each stands; `status: [FAILED]` lists the dead letters.",
            )
            .argument(
                InputValue::new("status", TypeRef::named_nn_list("WebhookDeliveryStatus"))
                    .description("Only deliveries standing so."),
            )
    }
}

/// A subscription's state, by its id.
async fn state(context: &RequestContext, id: Uuid) -> Result<Json> {
    let mut query = Sql::raw("SELECT jsonb_build_object('enabled', st.disabled_at IS NULL, 'disabledAt', ");
    query.append(&instant("st.disabled_at"));
    query.push(", 'disabledReason', st.disabled_reason, 'pending', (SELECT count(*) FROM ");
    query
        .table(&context.schema, "webhook_delivery")
        .push(" d WHERE d.subscription_id = w.id AND d.status = 'PENDING'), 'failed', (SELECT count(*) FROM ");
    query
        .table(&context.schema, "webhook_delivery")
        .push(" d WHERE d.subscription_id = w.id AND d.status = 'FAILED')) AS row FROM ");
    query
        .table(&context.schema, "webhook_subscription")
        .push(" w LEFT JOIN ")
        .table(&context.schema, "webhook_state")
        .push(" st ON st.subscription_id = w.id WHERE w.id = ")
        .bind(Bind::Uuid(Some(id)));
    let mut conn = context.db.conn().await?;
    let rows: Vec<crate::db::sql::JsonRow> = query.load(&mut conn).await?;
    rows.into_iter()
        .next()
        .map(|row| row.row)
        .ok_or_else(|| CrmError::not_found("WebhookSubscription", id))
}

/// `state` on `WebhookSubscription`.
fn state_field(object: &crate::metadata::ObjectDef) -> Option<Field> {
    if object.name != "WebhookSubscription" {
        return None;
    }
    Some(
        Field::new("state", TypeRef::named_nn("WebhookSubscriptionState"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                let record = ctx.parent_value.try_downcast_ref::<crate::records::Record>()?;
                let id = crate::records::record_id(record).ok_or_else(|| CrmError::internal("record without id"))?;
                Ok(Some(FieldValue::owned_any(state(context, id).await?)))
            })
        })
        .description("Whether its deliveries go out here, and how many wait or failed."),
    )
}

/// The subscription id argument, checked to exist.
fn subscription_arg(ctx: &async_graphql::dynamic::ResolverContext<'_>, name: &str) -> Result<Uuid> {
    optional_id(ctx, name)?.ok_or_else(|| CrmError::bad_input(&[name], format!("{name} is required")))
}

/// A live subscription's secret.
async fn secret_of(context: &RequestContext, id: Uuid) -> Result<String> {
    let mut query = Sql::raw("SELECT jsonb_build_object('secret', st.secret) AS row FROM ");
    query
        .table(&context.schema, "webhook_subscription")
        .push(" w JOIN ")
        .table(&context.schema, "webhook_state")
        .push(" st ON st.subscription_id = w.id WHERE w.deleted_at IS NULL AND w.id = ")
        .bind(Bind::Uuid(Some(id)));
    let mut conn = context.db.conn().await?;
    let rows: Vec<crate::db::sql::JsonRow> = query.load(&mut conn).await?;
    rows.into_iter()
        .next()
        .and_then(|row| row.row["secret"].as_str().map(str::to_owned))
        .ok_or_else(|| CrmError::not_found("WebhookSubscription", id))
}

fn secret_field() -> Field {
    Field::new("webhookSecret", TypeRef::named_nn(TypeRef::STRING), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let id = subscription_arg(&ctx, "subscriptionId")?;
            let secret = secret_of(context, id).await?;
            Ok(Some(FieldValue::value(Value::String(secret))))
        })
    })
    .description(
        "A subscription's signing secret (`whsec_…`), for its receiver to check signatures. Each workspace has its \
         own: a sandbox's subscriptions never hold production's secrets, and a promoted subscription gets a new one.",
    )
    .argument(InputValue::new("subscriptionId", TypeRef::named_nn(TypeRef::ID)).description("The subscription."))
}

fn redeliver_field() -> Field {
    Field::new("redeliverWebhook", TypeRef::named_nn("WebhookDelivery"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let id = id_arg(&ctx)?;
            let mut conn = context.db.conn().await?;
            let mut update = Sql::raw("UPDATE ");
            update.table(&context.schema, "webhook_delivery").push(
                " SET status = 'PENDING', attempts = 0, next_attempt_at = now(), last_error = NULL \
                 WHERE status IN ('FAILED', 'DELIVERED') AND subscription_id IN (SELECT id FROM ",
            );
            update
                .table(&context.schema, "webhook_subscription")
                .push(" WHERE deleted_at IS NULL) AND id = ")
                .bind(Bind::Uuid(Some(id)));
            let changed = update.execute(&mut conn).await?;
            let mut read = select(&context.schema);
            read.push(" WHERE d.id = ").bind(Bind::Uuid(Some(id)));
            drop(conn);
            let delivery = load(context, read)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| CrmError::not_found("WebhookDelivery", id))?;
            if changed == 0 {
                return Err(CrmError::Conflict(format!(
                    "only a FAILED or DELIVERED delivery of a live subscription is sent again; this one is {}",
                    delivery["status"].as_str().unwrap_or_default()
                )));
            }
            super::delivery::wake(&context.db, &context.schema);
            Ok(Some(FieldValue::owned_any(delivery)))
        })
    })
    .description(
        "Sends a dead letter (or a delivered event) again, now, with the same `webhook-id`; a disabled \
         subscription's waits until it is enabled.",
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The delivery."))
}

/// Changes a subscription's own state in an audited transaction.
async fn change_state(context: &RequestContext, id: Uuid, set: &str, field: &str) -> Result<Json> {
    crate::audited!(context, |conn| {
        super::stated(conn, &context.schema).await?;
        let mut update = Sql::raw("UPDATE ");
        update
            .table(&context.schema, "webhook_state")
            .push(" SET ")
            .push(set)
            .push(" WHERE subscription_id = (SELECT id FROM ")
            .table(&context.schema, "webhook_subscription")
            .push(" WHERE deleted_at IS NULL AND id = ")
            .bind(Bind::Uuid(Some(id)))
            .push(")");
        if update.execute(conn).await? == 0 {
            return Err(CrmError::not_found("WebhookSubscription", id));
        }
        let entry = audit::Entry {
            object: "WebhookSubscription".into(),
            record_id: Some(id),
            action: Action::Update,
            changes: vec![audit::Change {
                field: field.to_owned(),
                before: Json::Null,
                after: Json::from("changed"),
            }],
        };
        ((), vec![entry])
    })?;
    super::delivery::wake(&context.db, &context.schema);
    state(context, id).await
}

fn enable_field() -> Field {
    Field::new(
        "enableWebhookSubscription",
        TypeRef::named_nn("WebhookSubscriptionState"),
        |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                admin(context)?;
                let id = id_arg(&ctx)?;
                let enabled = !matches!(arg(&ctx, "enabled"), Some(Value::Boolean(false)));
                let set = if enabled {
                    "disabled_at = NULL, disabled_reason = NULL"
                } else {
                    "disabled_at = coalesce(disabled_at, now()), disabled_reason = coalesce(disabled_reason, 'MANUAL')"
                };
                let state = change_state(context, id, set, "enabled").await?;
                Ok(Some(FieldValue::owned_any(state)))
            })
        },
    )
    .description(
        "Enables a subscription here (after its receiver answered 410, or one copied into a sandbox, which then \
         captures its deliveries), or disables it (`enabled: false`). A disabled subscription gets no new events \
         (as an inactive one); those queued before wait and go out once it is enabled again.",
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The subscription."))
    .argument(
        InputValue::new("enabled", TypeRef::named(TypeRef::BOOLEAN)).description("False disables it (default: true)."),
    )
}

fn rotate_field() -> Field {
    Field::new("rotateWebhookSecret", TypeRef::named_nn(TypeRef::STRING), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let id = id_arg(&ctx)?;
            let set = format!("secret = {}", super::NEW_SECRET);
            change_state(context, id, &set, "secret").await?;
            let secret = secret_of(context, id).await?;
            Ok(Some(FieldValue::value(Value::String(secret))))
        })
    })
    .description("Gives a subscription a new signing secret, answered once here (then read with `webhookSecret`).")
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The subscription."))
}

fn urls_field() -> Field {
    allow_list::query_field(
        "sandboxWebhookUrls",
        AllowList::WebhookUrls,
        "The webhook URLs a sandbox's deliveries are really posted to; all others are captured.",
    )
}

/// A URL as a sandbox's allow-list holds it.
fn url(text: &str, at: &Path) -> Result<String> {
    let url = text.trim().to_owned();
    if super::is_http_url(&url) {
        Ok(url)
    } else {
        Err(at.error(format!("{url} is not an http(s) URL")))
    }
}

fn set_urls_field() -> Field {
    allow_list::mutation_field(
        "setSandboxWebhookUrls",
        AllowList::WebhookUrls,
        ("urls", "Webhook URLs."),
        url,
        "Sets the URLs a sandbox's webhook deliveries are really posted to (exactly as a subscription's `url` \
         says): a test receiver of the team's. Deliveries to any other URL are captured. Empty: capture all.",
    )
}
