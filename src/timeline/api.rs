//! `timeline(first, after, kinds, since, until, includeRelated)` on
//! accounts, contacts, deals and leads, and its event types.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dynamic::{Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, TypeRef, Union};
use async_graphql::{Name, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{decode, Event, Request, KINDS, OBJECTS};
use crate::error::{CrmError, Result};
use crate::graphql::resolve::{after_arg, arg, context, first_arg, resolved, timestamp, PageInfo, RequestContext};
use crate::graphql::room::Surface;
use crate::metadata::ObjectDef;
use crate::records::{record_id, FieldSet, Record};

/// Events a page holds when the client names no size.
const DEFAULT_EVENTS: usize = 50;
/// Events a page holds at most.
const MAX_EVENTS: usize = 200;

/// The event types, by kind.
const TYPES: &[(&str, &str)] = &[
    ("ACTIVITY", "TimelineActivity"),
    ("FIELD_CHANGE", "TimelineFieldChange"),
    ("STAGE_CHANGE", "TimelineStageChange"),
    ("CONVERSION", "TimelineConversion"),
    ("MERGE", "TimelineMerge"),
    ("AUTOMATION", "TimelineAutomation"),
];

/// Adds `timeline` to accounts, contacts, deals and leads, and its types.
pub fn register(surface: &mut Surface) {
    let mut kind = Enum::new("TimelineKind").description("What kind of thing happened.");
    for (name, description) in KINDS {
        kind = kind.item(EnumItem::new(*name).description(*description));
    }
    surface.enumeration(kind);
    let mut union = Union::new("TimelineEvent")
        .description("Something that happened: select each kind with `... on TimelineActivity { … }`.");
    for (_, name) in TYPES {
        union = union.possible_type(*name);
    }
    surface.types((
        vec![
            activity_type(),
            field_change_type(),
            stage_change_type(),
            conversion_type(),
            merge_type(),
            automation_type(),
            edge_type(),
            connection_type(),
        ],
        Vec::new(),
        Vec::new(),
    ));
    surface.union(union);
    surface.record_field(timeline_field);
}

/// An event with the records it names, loaded for the page.
struct EventValue {
    event: Event,
    records: Arc<HashMap<Uuid, Record>>,
    object_of: Arc<HashMap<Uuid, String>>,
}

impl EventValue {
    fn id(&self, key: &str) -> Option<Uuid> {
        self.event.payload[key].as_str()?.parse().ok()
    }

    /// The record the payload names under `key`, if the caller may see
    /// it; named by its type for a field of the `AnyRecord` union.
    fn record(&self, key: &str, union: bool) -> Option<FieldValue<'static>> {
        let id = self.id(key)?;
        let record = FieldValue::owned_any(self.records.get(&id)?.clone());
        if !union {
            return Some(record);
        }
        Some(record.with_type(self.object_of.get(&id)?.clone()))
    }
}

fn common(object: Object) -> Object {
    object
        .field(
            Field::new("at", TypeRef::named_nn("DateTime"), |ctx| {
                let event = ctx.parent_value.try_downcast_ref::<EventValue>();
                FieldFuture::from_value(event.ok().map(|e| timestamp(e.event.at)))
            })
            .description("When it happened (an activity: when done, else when due)."),
        )
        .field(
            Field::new("kind", TypeRef::named_nn("TimelineKind"), |ctx| {
                let event = ctx.parent_value.try_downcast_ref::<EventValue>();
                FieldFuture::from_value(event.ok().map(|e| Value::Enum(Name::new(&e.event.kind))))
            })
            .description("What kind of thing happened."),
        )
}

/// A field answering the record the payload names under `key`.
fn record_field(name: &str, type_name: &str, key: &'static str, non_null: bool) -> Field {
    let type_ref = if non_null {
        TypeRef::named_nn(type_name)
    } else {
        TypeRef::named(type_name)
    };
    let type_name = type_name.to_owned();
    Field::new(name, type_ref, move |ctx| {
        let type_name = type_name.clone();
        resolved(async move {
            let event = ctx.parent_value.try_downcast_ref::<EventValue>()?;
            Ok(event.record(key, type_name == "AnyRecord"))
        })
    })
}

fn payload_field(name: &str, type_ref: TypeRef, get: fn(&Json) -> Option<Value>) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let event = ctx.parent_value.try_downcast_ref::<EventValue>();
        FieldFuture::from_value(event.ok().and_then(|e| get(&e.event.payload)))
    })
}

fn actor_field() -> Field {
    Field::new("actor", TypeRef::named("User"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let event = ctx.parent_value.try_downcast_ref::<EventValue>()?;
            match event.id("actorId") {
                Some(id) => crate::team::api::load_user(&ctx, context, id).await,
                None => Ok(None),
            }
        })
    })
    .description("Who did it; null for the command line or the server.")
}

fn activity_type() -> Object {
    common(Object::new("TimelineActivity").description("A call, email, meeting, task or note."))
        .field(record_field("activity", "Activity", "id", true).description("The activity."))
        .field(
            payload_field("planned", TypeRef::named_nn(TypeRef::BOOLEAN), |p| {
                p.get("planned").and_then(|v| Value::from_json(v.clone()).ok())
            })
            .description("Still to do (open or in progress)."),
        )
}

fn field_change_type() -> Object {
    common(Object::new("TimelineFieldChange").description("A record created, changed, deleted, restored or merged."))
        .field(
            payload_field("object", TypeRef::named_nn(TypeRef::STRING), |p| {
                p["object"].as_str().map(|s| Value::String(s.into()))
            })
            .description("The record's object."),
        )
        .field(
            payload_field("recordId", TypeRef::named_nn(TypeRef::ID), |p| {
                p["recordId"].as_str().map(|s| Value::String(s.into()))
            })
            .description("The record's id."),
        )
        .field(
            record_field("record", "AnyRecord", "recordId", false)
                .description("The record, while it lives (a merged one reads null)."),
        )
        .field(
            payload_field("action", TypeRef::named_nn("AuditAction"), |p| {
                p["action"].as_str().map(|s| Value::Enum(Name::new(s)))
            })
            .description("What the change did."),
        )
        .field(actor_field())
        .field(
            Field::new("changes", TypeRef::named_nn_list_nn("FieldChange"), |ctx| {
                resolved(async move {
                    let event = ctx.parent_value.try_downcast_ref::<EventValue>()?;
                    let changes = event.event.payload["changes"].as_array().cloned().unwrap_or_default();
                    Ok(Some(FieldValue::list(changes.into_iter().map(FieldValue::owned_any))))
                })
            })
            .description("The fields it changed, from what to what."),
        )
}

fn stage_change_type() -> Object {
    common(Object::new("TimelineStageChange").description("A deal moving to a stage."))
        .field(record_field("opportunity", "Opportunity", "opportunityId", false).description("The deal."))
        .field(record_field("stage", "Stage", "stageId", false).description("The stage it entered."))
        .field(
            record_field("fromStage", "Stage", "fromStageId", false)
                .description("The stage it left; null for its first."),
        )
        .field(actor_field())
}

fn conversion_type() -> Object {
    common(Object::new("TimelineConversion").description("A lead converted."))
        .field(record_field("lead", "Lead", "leadId", false).description("The lead."))
        .field(record_field("account", "Account", "accountId", false).description("The account it became or joined."))
        .field(record_field("contact", "Contact", "contactId", false).description("The contact it became."))
        .field(
            record_field("opportunity", "Opportunity", "opportunityId", false)
                .description("The deal it became, if any."),
        )
}

fn merge_type() -> Object {
    common(Object::new("TimelineMerge").description("Duplicates merged into a record."))
        .field(
            payload_field("mergeId", TypeRef::named_nn(TypeRef::ID), |p| {
                p["id"].as_str().map(|s| Value::String(s.into()))
            })
            .description("The merge: `unmergeRecords(id:)` undoes it."),
        )
        .field(record_field("survivor", "AnyRecord", "survivorId", false).description("The record that stayed."))
        .field(
            payload_field("mergedIds", TypeRef::named_nn_list_nn(TypeRef::ID), |p| {
                Value::from_json(p["mergedIds"].clone()).ok()
            })
            .description("The records merged into it."),
        )
        .field(
            payload_field("undoneAt", TypeRef::named("DateTime"), |p| {
                p["undoneAt"].as_str().map(|s| Value::String(s.into()))
            })
            .description("When it was undone, if it was."),
        )
        .field(actor_field())
}

fn automation_type() -> Object {
    common(Object::new("TimelineAutomation").description("A workflow rule that fired for the record."))
        .field(
            payload_field("runId", TypeRef::named_nn(TypeRef::ID), |p| {
                p["id"].as_str().map(|s| Value::String(s.into()))
            })
            .description("The run (`workflowRuns`)."),
        )
        .field(
            payload_field("ruleName", TypeRef::named_nn(TypeRef::STRING), |p| {
                p["ruleName"].as_str().map(|s| Value::String(s.into()))
            })
            .description("The rule's name when it fired."),
        )
        .field(
            payload_field("status", TypeRef::named_nn("WorkflowRunStatus"), |p| {
                p["status"].as_str().map(|s| Value::Enum(Name::new(s)))
            })
            .description("How the run ended, or that it waits."),
        )
        .field(
            payload_field("actions", TypeRef::named_nn("JSON"), |p| {
                Value::from_json(p["actions"].clone()).ok()
            })
            .description("What each action did."),
        )
        .field(
            payload_field("error", TypeRef::named(TypeRef::STRING), |p| {
                p["error"].as_str().map(|s| Value::String(s.into()))
            })
            .description("Why it failed, if it did."),
        )
        .field(record_field("record", "AnyRecord", "recordId", false).description("The record it fired for."))
}

fn edge_type() -> Object {
    Object::new("TimelineEdge")
        .description("An event and its cursor.")
        .field(
            Field::new("cursor", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                let event = ctx.parent_value.try_downcast_ref::<EventValue>();
                FieldFuture::from_value(event.ok().map(|e| Value::String(e.event.cursor())))
            })
            .description("Pass it as `after` to read on from here."),
        )
        .field(
            Field::new("node", TypeRef::named_nn("TimelineEvent"), |ctx| {
                resolved(async move {
                    let event = ctx.parent_value.try_downcast_ref::<EventValue>()?;
                    Ok(Some(typed(event)))
                })
            })
            .description("The event."),
        )
}

/// An event as its union member.
fn typed(event: &EventValue) -> FieldValue<'_> {
    let name = TYPES
        .iter()
        .find(|(kind, _)| *kind == event.event.kind)
        .map_or("TimelineFieldChange", |(_, name)| name);
    FieldValue::borrowed_any(event).with_type(name)
}

/// A page of events.
struct Events {
    events: Vec<EventValue>,
    has_next_page: bool,
}

fn connection_type() -> Object {
    Object::new("TimelineConnection")
        .description("A page of a timeline, newest first.")
        .field(
            Field::new("edges", TypeRef::named_nn_list_nn("TimelineEdge"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Events>()?;
                    Ok(Some(FieldValue::list(
                        page.events.iter().map(|e| FieldValue::borrowed_any(e)),
                    )))
                })
            })
            .description("The events with their cursors."),
        )
        .field(
            Field::new("nodes", TypeRef::named_nn_list_nn("TimelineEvent"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Events>()?;
                    Ok(Some(FieldValue::list(page.events.iter().map(typed))))
                })
            })
            .description("The events."),
        )
        .field(
            Field::new("pageInfo", TypeRef::named_nn("PageInfo"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Events>()?;
                    Ok(Some(FieldValue::owned_any(PageInfo {
                        has_next_page: page.has_next_page,
                        has_previous_page: false,
                        start_cursor: page.events.first().map(|e| e.event.cursor()),
                        end_cursor: page.events.last().map(|e| e.event.cursor()),
                    })))
                })
            })
            .description("Where the page sits; a timeline pages forwards (into the past)."),
        )
}

/// `timeline` on the objects that have one.
fn timeline_field(object: &ObjectDef) -> Option<Field> {
    if !OBJECTS.contains(&object.name.as_str()) {
        return None;
    }
    let name: Arc<str> = object.name.as_str().into();
    let field = Field::new("timeline", TypeRef::named_nn("TimelineConnection"), move |ctx| {
        let name = name.clone();
        resolved(async move {
            let context = context(&ctx)?;
            let record = ctx.parent_value.try_downcast_ref::<Record>()?;
            let id = record_id(record).ok_or_else(|| CrmError::internal("record without id"))?;
            let object = context
                .model
                .object(&name)
                .ok_or_else(|| CrmError::internal(format_args!("the model has no {name}")))?;
            let request = request_of(&ctx)?;
            let mut conn = context.db.conn().await?;
            let view = super::in_view(&mut conn, context, object, id, request.include_related).await?;
            let mut events = super::page(&mut conn, context, &view, &request).await?;
            let has_next_page = events.len() > request.first;
            events.truncate(request.first);
            let (records, object_of) = named_records(&mut conn, context, &events).await?;
            let (records, object_of) = (Arc::new(records), Arc::new(object_of));
            let events = events
                .into_iter()
                .map(|event| EventValue {
                    event,
                    records: records.clone(),
                    object_of: object_of.clone(),
                })
                .collect();
            Ok(Some(FieldValue::owned_any(Events { events, has_next_page })))
        })
    })
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT))
            .description(format!("Events per page, at most {MAX_EVENTS}; {DEFAULT_EVENTS} when absent.")),
    )
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)).description("The `endCursor` of the page before."))
    .argument(InputValue::new("kinds", TypeRef::named_nn_list("TimelineKind")).description("Only these kinds; all when absent."))
    .argument(InputValue::new("since", TypeRef::named("DateTime")).description("At or after this instant."))
    .argument(InputValue::new("until", TypeRef::named("DateTime")).description("Before this instant."))
    .argument(
        InputValue::new("includeRelated", TypeRef::named(TypeRef::BOOLEAN))
            .default_value(true)
            .description("An account's contacts' and deals' events, and those of leads converted into the record; false: its own only."),
    )
    .description(
        "Everything that happened, newest first: activities (done and planned), field changes, stage moves, \
         conversions and merges — of the records the caller may see.",
    );
    Some(field)
}

fn request_of(ctx: &async_graphql::dynamic::ResolverContext<'_>) -> Result<Request> {
    let first = first_arg(ctx, DEFAULT_EVENTS, MAX_EVENTS)?;
    let after = after_arg(ctx, "a timeline", decode)?;
    let at = |key: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        match arg(ctx, key) {
            Some(Value::String(text)) => crate::metadata::parse_datetime(text)
                .map(Some)
                .map_err(|_| CrmError::bad_input(&[key], "not a DateTime")),
            _ => Ok(None),
        }
    };
    let kinds = match arg(ctx, "kinds") {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|k| crate::graphql::resolve::enum_name(Some(k)))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Request {
        kinds,
        since: at("since")?,
        until: at("until")?,
        include_related: !matches!(arg(ctx, "includeRelated"), Some(Value::Boolean(false))),
        after,
        first,
    })
}

/// The ids the events name, by object: activities, deals and stages,
/// leads, accounts, contacts and records of field changes and merges.
fn named(events: &[Event]) -> HashMap<String, Vec<Uuid>> {
    let mut out: HashMap<String, Vec<Uuid>> = HashMap::new();
    let mut add = |object: &str, value: &Json| {
        if let Some(id) = value.as_str().and_then(|s| s.parse().ok()) {
            out.entry(object.to_owned()).or_default().push(id);
        }
    };
    for event in events {
        let p = &event.payload;
        match event.kind.as_str() {
            "ACTIVITY" => add("Activity", &p["id"]),
            "FIELD_CHANGE" => add(p["object"].as_str().unwrap_or_default(), &p["recordId"]),
            "STAGE_CHANGE" => {
                add("Opportunity", &p["opportunityId"]);
                add("Stage", &p["stageId"]);
                add("Stage", &p["fromStageId"]);
            }
            "CONVERSION" => {
                add("Lead", &p["leadId"]);
                add("Account", &p["accountId"]);
                add("Contact", &p["contactId"]);
                add("Opportunity", &p["opportunityId"]);
            }
            "AUTOMATION" => add(p["object"].as_str().unwrap_or_default(), &p["recordId"]),
            _ => add(p["object"].as_str().unwrap_or_default(), &p["survivorId"]),
        }
    }
    out
}

/// The records the events name that the caller may see, and their objects.
async fn named_records(
    conn: &mut diesel_async::AsyncPgConnection,
    context: &RequestContext,
    events: &[Event],
) -> Result<(HashMap<Uuid, Record>, HashMap<Uuid, String>)> {
    let mut records = HashMap::new();
    let mut object_of = HashMap::new();
    for (name, ids) in named(events) {
        let Some(object) = context.model.object(&name) else {
            continue;
        };
        let found = crate::records::get_many(conn, context.table(object), &FieldSet::all(object), &ids).await?;
        for (id, record) in found {
            object_of.insert(id, name.clone());
            records.insert(id, record);
        }
    }
    Ok((records, object_of))
}
