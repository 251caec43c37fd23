//! Live updates: the GraphQL subscription `recordChanged(object, filter,
//! events)`, served over WebSocket (graphql-transport-ws) at a
//! workspace's GraphQL URL. It is fed by the committed record events the
//! webhooks' outbox holds (`feed`); each event is checked, for each
//! subscriber, against what the subscriber may see and their filter (a
//! condition as workflow rules take, `changed` and `previous` included)
//! before it is sent, so a record leaving someone's visibility stops
//! reaching them at once. A sandbox's endpoint sees only its sandbox.

pub mod feed;

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, SubscriptionField, SubscriptionFieldFuture,
    TypeRef,
};
use async_graphql::{ErrorExtensions, Value};
use futures_util::{Stream, StreamExt};
use serde_json::Value as Json;
use tokio::sync::broadcast::error::RecvError;

use crate::access::{self, Operation};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, enum_name, parent_field, text_arg, timestamp, RequestContext};
use crate::graphql::room::Surface;
use crate::metadata::standard::RECORD_EVENTS;
use crate::metadata::{Access, ObjectDef};

use crate::records::{Filter, Record};

/// The room: `recordChanged` and its types.
pub fn register(surface: &mut Surface) {
    let mut events = Enum::new("RecordEvent").description("What happened to a record.");
    for (name, description) in RECORD_EVENTS {
        events = events.item(EnumItem::new(*name).description(*description));
    }
    surface.enumeration(events);
    surface.object(change_type());
    surface.subscriptions(vec![record_changed()]);
}

/// An event on its way to a subscriber.
struct Change {
    event: feed::Event,
    record: Record,
}

fn change_type() -> Object {
    Object::new("RecordChange")
        .description("A committed change of a record, as a subscription sends it.")
        .field(
            parent_field::<Change>("event", TypeRef::named_nn("RecordEvent"), |c| {
                Some(Value::Enum(async_graphql::Name::new(&c.event.event)))
            })
            .description("What happened."),
        )
        .field(
            parent_field::<Change>("eventId", TypeRef::named_nn(TypeRef::ID), |c| {
                Some(Value::String(c.event.id.to_string()))
            })
            .description("The event: the `eventId` of the webhooks that carry it too."),
        )
        .field(
            parent_field::<Change>("object", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.event.object.clone()))
            })
            .description("The record's object."),
        )
        .field(
            parent_field::<Change>("id", TypeRef::named_nn(TypeRef::ID), |c| {
                Some(Value::String(c.event.record_id.to_string()))
            })
            .description("The record's id."),
        )
        .field(
            parent_field::<Change>("at", TypeRef::named_nn("DateTime"), |c| Some(timestamp(c.event.at)))
                .description("When the change was written."),
        )
        .field(
            parent_field::<Change>("changedFields", TypeRef::named_nn_list_nn(TypeRef::STRING), |c| {
                Some(Value::List(
                    c.event.changed.iter().cloned().map(Value::String).collect(),
                ))
            })
            .description("The fields an update changed (empty for other events)."),
        )
        .field(
            parent_field::<Change>("previous", TypeRef::named("JSON"), |c| {
                c.event.previous.clone().and_then(|p| Value::from_json(p).ok())
            })
            .description("What an update's changed fields held before: `{ \"stage\": \"QUALIFY\" }`."),
        )
        .field(
            Field::new("record", TypeRef::named_nn("AnyRecord"), |ctx| {
                FieldFuture::new(async move {
                    let change = ctx.parent_value.try_downcast_ref::<Change>()?;
                    Ok(Some(
                        FieldValue::owned_any(change.record.clone()).with_type(change.event.object.clone()),
                    ))
                })
            })
            .description(
                "The record as the change left it (a deleted one with `deletedAt`): `record { ... on Lead { status \
                 owner { email } } }`; its relations are read when sent.",
            ),
        )
}

/// What one subscription asked for, and who asked.
struct Wanted {
    schema: Arc<str>,
    object: Arc<ObjectDef>,
    events: HashSet<String>,
    filter: Option<Filter>,
    actor: crate::auth::Actor,
    model: Arc<crate::metadata::Model>,
    /// The workspace's `recordVisibility`, as it is when each event is
    /// sent (an admin may change it while the subscription runs).
    setting: Arc<crate::access::VisibilitySetting>,
}

impl Wanted {
    /// The subscriber's visibility of the object now, then their filter,
    /// and their text (subscribers with the same share each event's check).
    fn conditions(&self) -> (Vec<Filter>, String) {
        let visibility = crate::records::Visibility::of(&self.actor, self.setting.get(), &self.model);
        let conditions: Vec<Filter> = visibility
            .filter(&self.object.name)
            .cloned()
            .into_iter()
            .chain(self.filter.clone())
            .collect();
        let key = format!("{conditions:?}");
        (conditions, key)
    }
}

fn record_changed() -> SubscriptionField {
    SubscriptionField::new("recordChanged", TypeRef::named_nn("RecordChange"), |ctx| {
        SubscriptionFieldFuture::new(async move {
            let context = context(&ctx).map_err(|err| err.extend())?;
            let wanted = wanted(context, &ctx).map_err(|err| err.extend())?;
            let db = context.db.clone();
            Ok(changes(db, wanted))
        })
    })
    .description(
        "Every committed change of an object's records the caller may see, as it happens: `subscription { \
         recordChanged(object: \"Opportunity\", filter: { stage: { eq: \"WON\" } }, events: [UPDATED]) { event id \
         changedFields record { ... on Opportunity { name amount } } } }`. Over WebSocket (graphql-transport-ws) at \
         this GraphQL URL, the API token in `connection_init`'s payload (`{ \"authorization\": \"Bearer …\" }`).",
    )
    .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object: `Lead`."))
    .argument(InputValue::new("filter", TypeRef::named("JSON")).description(
        "Only records matching this condition, as workflow rules write them (with `changed: \"stage\"` and \
         `previous: { … }`): `{ \"stage\": { \"eq\": \"WON\" }, \"changed\": \"stage\" }`.",
    ))
    .argument(
        InputValue::new("events", TypeRef::named_nn_list("RecordEvent"))
            .description("Only these events (default: all)."),
    )
}

/// Reads and checks the arguments of `recordChanged`.
fn wanted(context: &RequestContext, ctx: &async_graphql::dynamic::ResolverContext<'_>) -> Result<Wanted> {
    let name = text_arg(ctx, "object")?;
    let object = context
        .model
        .object(&name)
        .filter(|object| object.access == Access::Record)
        .ok_or_else(|| CrmError::bad_input(&["object"], format!("{name} is not an object with records")))?;
    access::require(&context.actor, object, Operation::Read)?;
    let filter = match arg(ctx, "filter").filter(|v| !matches!(v, Value::Null)) {
        Some(filter) => input::rule_condition(&context.model, object, filter, &Path::root("filter"))?,
        None => None,
    };
    let events: HashSet<String> = match arg(ctx, "events") {
        Some(Value::List(items)) => items.iter().filter_map(|item| enum_name(Some(item))).collect(),
        _ => RECORD_EVENTS.iter().map(|(name, _)| (*name).to_owned()).collect(),
    };
    Ok(Wanted {
        schema: context.schema.clone(),
        object: object.clone(),
        events,
        filter,
        actor: context.actor.clone(),
        model: context.model.clone(),
        setting: context.record_visibility.clone(),
    })
}

/// The changes a subscription sends, from the feed.
fn changes<'a>(
    db: crate::db::Database,
    wanted: Wanted,
) -> impl Stream<Item = async_graphql::Result<FieldValue<'a>>> + Send + 'a {
    let receiver = feed::subscribe();
    let wanted = Arc::new(wanted);
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let next = receiver.recv().await;
        Some((next, receiver))
    })
    .then(move |next| {
        let db = db.clone();
        let wanted = wanted.clone();
        async move {
            match next {
                Ok(batch) if batch.missed && batch.server == db.id() => Err(CrmError::Unavailable(
                    "the server lost its connection to the database for a while and may have missed changes: read \
                     the records again"
                        .into(),
                )
                .extend()),
                Ok(batch) => Ok(matching(&db, &wanted, &batch).await),
                Err(RecvError::Lagged(missed)) => Err(CrmError::Unavailable(format!(
                    "this subscription fell behind and missed {missed} transactions' changes: read the records again"
                ))
                .extend()),
                Err(RecvError::Closed) => Ok(Vec::new()),
            }
        }
    })
    .flat_map(|found| {
        futures_util::stream::iter(match found {
            Ok(changes) => changes.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(err) => vec![Err(err)],
        })
    })
}

/// The events of `batch` a subscription wants, and may see.
async fn matching<'a>(db: &crate::db::Database, wanted: &Wanted, batch: &feed::Batch) -> Vec<FieldValue<'a>> {
    let mut found = Vec::new();
    if batch.server != db.id() || batch.schema != *wanted.schema {
        return found;
    }
    let (conditions, key) = wanted.conditions();
    for event in &batch.events {
        if event.object != wanted.object.name || !wanted.events.contains(&event.event) {
            continue;
        }
        let record: Record = match &event.record {
            Json::Object(map) => Arc::new(map.clone()),
            _ => continue,
        };
        if !conditions.is_empty() && !holds(db, wanted, (&conditions, &key), batch, event, &record).await {
            continue;
        }
        found.push(FieldValue::owned_any(Change {
            event: event.clone(),
            record,
        }));
    }
    found
}

/// Whether `event` meets the subscription's conditions (what it may see,
/// its filter), checked once per batch for all subscribers alike.
async fn holds(
    db: &crate::db::Database,
    wanted: &Wanted,
    (conditions, key): (&[Filter], &str),
    batch: &feed::Batch,
    event: &feed::Event,
    record: &Record,
) -> bool {
    let cell = batch
        .checked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry((event.id, key.to_owned()))
        .or_default()
        .clone();
    *cell
        .get_or_init(async || {
            let before = before(record, event.previous.as_ref());
            let held = match db.conn().await {
                Ok(mut conn) => {
                    crate::automation::evaluate_record(
                        &mut conn,
                        &wanted.schema,
                        &wanted.object,
                        record,
                        before.as_ref(),
                        conditions,
                    )
                    .await
                }
                Err(err) => Err(err),
            };
            match held {
                Ok(held) => held.iter().all(|h| *h),
                Err(err) => {
                    tracing::warn!(%err, "checking a change for a subscription failed; it is not sent");
                    false
                }
            }
        })
        .await
}

/// The record before an update: as it is, with its changed fields'
/// previous values; none for a new record.
fn before(record: &Record, previous: Option<&Json>) -> Option<Record> {
    let Json::Object(previous) = previous? else {
        return None;
    };
    let mut before = (**record).clone();
    before.extend(previous.clone());
    Some(Arc::new(before))
}
