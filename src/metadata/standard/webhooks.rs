//! Webhook subscriptions: which events of an object's records are posted
//! to which URL, signed per Standard Webhooks. Made in a sandbox, diffed,
//! promoted and reverted like rules; the signing secret and the disabled
//! state are each workspace's own (never promoted, never copied).

use super::{Object, F};
use crate::metadata::{Access, FieldKind, ObjectDef};

/// The events of a record a subscription may ask for.
pub const RECORD_EVENTS: &[(&str, &str)] = &[
    ("CREATED", "A record was created."),
    ("UPDATED", "A record's values changed."),
    ("DELETED", "A record was deleted."),
    ("RESTORED", "A deleted record was restored."),
];

/// WebhookSubscription: where an object's changes are posted.
pub(super) fn webhook_subscription() -> ObjectDef {
    use FieldKind::*;
    let mut subscription = Object::new(
        "WebhookSubscription",
        "webhookSubscriptions",
        "webhook_subscription",
        "Where the changes of an object's records are posted: each event is sent once per subscription, in \
         order per record, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: \
         v1,<base64 HMAC-SHA256>` with the subscription's secret), retried with backoff for about a day, then \
         kept as a dead letter (`webhookDeliveries`, `redeliverWebhook`). In a sandbox, deliveries are captured \
         (`capturedWebhooks`), not sent, except to URLs an admin allowed (`setSandboxWebhookUrls`).",
    );
    subscription.access = Access::Configuration;
    subscription.fields(vec![
        F::new(
            "name",
            "name",
            "Subscription name",
            Text,
            "The subscription's name, unique among live subscriptions; WEBHOOK actions of workflow rules name it.",
        )
        .required()
        .max(255),
        F::new(
            "description",
            "description",
            "Description",
            LongText,
            "What the receiver does with the events.",
        )
        .max(32_000),
        F::new(
            "url",
            "url",
            "URL",
            Url,
            "Where events are posted (http or https); redirects are not followed. An answer of 410 Gone disables \
             the subscription.",
        )
        .required()
        .max(2048),
        F::new(
            "object",
            "object",
            "Object",
            Text,
            "The object whose records' events are posted: `Lead`.",
        )
        .required()
        .max(255),
        F::new(
            "events",
            "events",
            "Events",
            Json,
            "Which events are posted: any of `[\"CREATED\", \"UPDATED\", \"DELETED\", \"RESTORED\"]`; empty for a \
             subscription only workflow rules' WEBHOOK actions call.",
        )
        .required()
        .default("[]"),
        F::new(
            "fields",
            "fields",
            "Fields",
            Json,
            "The fields a payload's record carries (`[\"email\", \"status\"]`, `id` always); none: all of them.",
        ),
        F::new(
            "isActive",
            "is_active",
            "Active",
            Boolean,
            "Inactive subscriptions get no new events.",
        )
        .required()
        .default("true"),
    ])
}
