//! What a delivery posts: the body (rendered from its event the same way
//! at every attempt) and the Standard Webhooks headers, `webhook-id` (the
//! delivery's id, the same at every attempt: receivers dedupe on it),
//! `webhook-timestamp` (the attempt's time, in seconds) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` keyed with the secret's bytes (the base64
//! after `whsec_`).

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::QueryableByName;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value as Json};
use uuid::Uuid;

/// An event as a delivery renders it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Event {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub object: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub record_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub event: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub record: Json,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
    pub previous: Option<Json>,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub changed: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub actor_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub rule_name: Option<String>,
    /// The subscription's `fields` (null: all).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
    pub fields: Option<Json>,
}

/// A delivery as the API loads it: its row document, its subscription's
/// secret, when it was (last) signed, and its event.
#[derive(QueryableByName)]
pub struct Loaded {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub document: Json,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub secret: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub signed_at: DateTime<Utc>,
    #[diesel(embed)]
    pub event: Event,
}

/// The columns of [`Event`] from `record_event e` and `webhook_subscription w`.
pub const EVENT_COLUMNS: &str = "e.id AS event_id, e.object, e.record_id, e.event, e.at, e.record, e.previous, \
                                 e.changed, e.actor_id, e.rule_name, w.fields";

/// The event's type: `lead.created`, `opportunity.updated`, and for a
/// workflow rule's WEBHOOK action `lead.workflow`.
pub fn event_type(object: &str, event: &str) -> String {
    let mut chars = object.chars();
    let object: String = chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    format!("{object}.{}", event.to_lowercase())
}

/// Whether a record document's `key` is one of `fields` (a lookup's
/// `owner` is its `ownerId`); the id always is.
fn kept(key: &str, fields: &[String]) -> bool {
    key == "id"
        || fields
            .iter()
            .any(|f| f == key || key.strip_suffix("Id").is_some_and(|lookup| lookup == f))
}

/// Keeps of a record document only `fields` (and its id); all for none.
fn only(document: &Json, fields: Option<&[String]>) -> Json {
    match (document, fields) {
        (Json::Object(map), Some(fields)) => Json::Object(
            map.iter()
                .filter(|(key, _)| kept(key, fields))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        (document, _) => document.clone(),
    }
}

/// The body of a delivery of `event`: `{"type", "timestamp", "data"}`.
pub fn body(event: &Event) -> String {
    let fields: Option<Vec<String>> = event.fields.as_ref().and_then(|fields| {
        fields
            .as_array()
            .map(|list| list.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
    });
    let fields = fields.as_deref();
    let mut data = json!({
        "eventId": event.event_id,
        "event": event.event,
        "object": event.object,
        "id": event.record_id,
        "record": only(&event.record, fields),
    });
    if let Some(previous) = &event.previous {
        data["previous"] = only(previous, fields);
        data["changedFields"] = event
            .changed
            .iter()
            .filter(|key| fields.is_none_or(|fields| kept(key, fields)))
            .cloned()
            .collect();
    }
    if let Some(actor) = event.actor_id {
        data["actorId"] = json!(actor);
    }
    if let Some(rule) = &event.rule_name {
        data["rule"] = json!(rule);
    }
    json!({
        "type": event_type(&event.object, &event.event),
        "timestamp": event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with
/// `secret` (`whsec_<base64>`; a secret not in that form is used as its
/// bytes).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| b64.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        // HMAC takes keys of any length.
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

/// The headers of an attempt at `timestamp` (seconds) of delivery `id`.
pub fn headers(secret: &str, id: Uuid, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    let id = id.to_string();
    let signature = signature(secret, &id, timestamp, body);
    vec![
        ("content-type", "application/json".to_owned()),
        (
            "user-agent",
            concat!("crm-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}
