//! `search(query, objects, filter, first, after)`: hits across objects,
//! best first, each with its record (`AnyRecord`).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef};
use async_graphql::Value;

use super::{After, Hit, Query, Searched};
use crate::access::{self, Operation};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{after_arg, arg, context, first_arg, resolved, text_arg, PageInfo};
use crate::graphql::room::{PerObject, Surface};
use crate::metadata::ddl::search::searched;
use crate::metadata::Model;
use crate::records::{FieldSet, Record};

/// Hits a page holds when the client names no size.
const DEFAULT_HITS: usize = 20;
/// Hits a page holds at most.
const MAX_HITS: usize = 100;

/// Adds `search` and its types.
pub fn register(surface: &mut Surface) {
    surface.object(hit_type());
    surface.object(
        Object::new("SearchEdge")
            .description("A hit and its cursor.")
            .field(
                Field::new("cursor", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                    let hit = ctx.parent_value.try_downcast_ref::<HitValue>();
                    FieldFuture::from_value(hit.ok().map(|h| Value::String(h.cursor())))
                })
                .description("Pass it as `after` to read on from here."),
            )
            .field(
                Field::new("node", TypeRef::named_nn("SearchHit"), |ctx| {
                    resolved(async move {
                        let hit = ctx.parent_value.try_downcast_ref::<HitValue>()?;
                        Ok(Some(FieldValue::borrowed_any(hit)))
                    })
                })
                .description("The hit."),
            ),
    );
    surface.object(connection_type());
    surface.per_model(filter_type);
    surface.queries(&["search"], vec![search_field()]);
}

/// `SearchFilter`: a filter per searchable object, by its plural name.
fn filter_type(model: &Model) -> PerObject {
    let mut filter = InputObject::new("SearchFilter")
        .description("Conditions on the hits of each object, as its list takes them: `{ contacts: { account: { industry: { eq: SOFTWARE } } } }`.");
    for object in model.objects().iter().filter(|o| searched(o)) {
        filter = filter.field(
            InputValue::new(&object.plural, TypeRef::named(format!("{}Filter", object.name)))
                .description(format!("Which {} may be hits.", crate::metadata::words(&object.plural))),
        );
    }
    PerObject {
        inputs: vec![filter],
        ..PerObject::default()
    }
}

/// A hit on its way to `SearchHit`, with its record.
struct HitValue {
    hit: Hit,
    record: Record,
}

impl HitValue {
    fn cursor(&self) -> String {
        After::cursor(&self.hit.rank, &self.hit.object, self.hit.id)
    }
}

fn hit_field(name: &str, type_ref: TypeRef, get: fn(&HitValue) -> Value) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let hit = ctx.parent_value.try_downcast_ref::<HitValue>();
        FieldFuture::from_value(hit.ok().map(get))
    })
}

fn hit_type() -> Object {
    Object::new("SearchHit")
        .description("A record the query found.")
        .field(
            hit_field("object", TypeRef::named_nn(TypeRef::STRING), |h| {
                Value::String(h.hit.object.clone())
            })
            .description("Its object: `Contact`, `Account` …"),
        )
        .field(
            hit_field("id", TypeRef::named_nn(TypeRef::ID), |h| {
                Value::String(h.hit.id.to_string())
            })
            .description("Its id."),
        )
        .field(
            hit_field("title", TypeRef::named_nn(TypeRef::STRING), |h| {
                Value::String(h.hit.title.clone())
            })
            .description("What it is called: a person's names, else its name."),
        )
        .field(
            hit_field("rank", TypeRef::named_nn(TypeRef::FLOAT), |h| {
                Value::from(h.hit.rank.parse::<f64>().unwrap_or(0.0))
            })
            .description(
                "How well it matches: 1 and more when every word of the query starts one of its words (names weigh \
                 more than emails), below 1 for a similar spelling.",
            ),
        )
        .field(
            Field::new("record", TypeRef::named_nn("AnyRecord"), |ctx| {
                resolved(async move {
                    let hit = ctx.parent_value.try_downcast_ref::<HitValue>()?;
                    Ok(Some(
                        FieldValue::owned_any(hit.record.clone()).with_type(hit.hit.object.clone()),
                    ))
                })
            })
            .description("The record: `record { ... on Contact { email account { name } } }`."),
        )
}

/// A page of hits.
struct Hits {
    hits: Vec<HitValue>,
    has_next_page: bool,
}

fn connection_type() -> Object {
    Object::new("SearchConnection")
        .description("A page of hits, best first.")
        .field(
            Field::new("edges", TypeRef::named_nn_list_nn("SearchEdge"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Hits>()?;
                    Ok(Some(FieldValue::list(
                        page.hits.iter().map(|h| FieldValue::borrowed_any(h)),
                    )))
                })
            })
            .description("The hits with their cursors."),
        )
        .field(
            Field::new("nodes", TypeRef::named_nn_list_nn("SearchHit"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Hits>()?;
                    Ok(Some(FieldValue::list(
                        page.hits.iter().map(|h| FieldValue::borrowed_any(h)),
                    )))
                })
            })
            .description("The hits."),
        )
        .field(
            Field::new("pageInfo", TypeRef::named_nn("PageInfo"), |ctx| {
                resolved(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Hits>()?;
                    Ok(Some(FieldValue::owned_any(PageInfo {
                        has_next_page: page.has_next_page,
                        has_previous_page: false,
                        start_cursor: page.hits.first().map(HitValue::cursor),
                        end_cursor: page.hits.last().map(HitValue::cursor),
                    })))
                })
            })
            .description("Where the page sits; search pages forwards only."),
        )
}

fn search_field() -> Field {
    Field::new("search", TypeRef::named_nn("SearchConnection"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let query = Query::parse(&text_arg(&ctx, "query")?)?;
            let first = first_arg(&ctx, DEFAULT_HITS, MAX_HITS)?;
            let after = after_arg(&ctx, "search", After::decode)?;
            let model = &context.model;
            let asked = objects_asked(&ctx, model)?;
            let filters = match arg(&ctx, "filter") {
                Some(Value::Object(filters)) => filters.clone(),
                _ => Default::default(),
            };
            let mut objects = Vec::new();
            for object in asked {
                let filter = match filters.get(object.plural.as_str()) {
                    Some(value) => input::filter(
                        model,
                        &context.visibility,
                        object,
                        value,
                        &Path::root("filter").at(&object.plural),
                    )?,
                    None => None,
                };
                objects.push(Searched {
                    table: context.table(object),
                    filter,
                });
            }
            let mut conn = context.db.conn().await?;
            let mut hits = super::search(&mut conn, &objects, &query, after.as_ref(), first).await?;
            let has_next_page = hits.len() > first;
            hits.truncate(first);
            let records = records_of(&mut conn, context, &hits).await?;
            let hits = hits
                .into_iter()
                .filter_map(|hit| {
                    let record = records.get(&(hit.object.clone(), hit.id))?.clone();
                    Some(HitValue { hit, record })
                })
                .collect();
            Ok(Some(FieldValue::owned_any(Hits { hits, has_next_page })))
        })
    })
    .argument(
        InputValue::new("query", TypeRef::named_nn(TypeRef::STRING))
            .description("A few words (up to 200 characters): names, emails, companies. Accents and case do not matter; a typo costs rank, not the hit."),
    )
    .argument(
        InputValue::new("objects", TypeRef::named_nn_list(TypeRef::STRING)).description(
            "The objects to search (`[\"Contact\", \"Lead\"]`); all searchable objects the caller may read when absent.",
        ),
    )
    .argument(InputValue::new("filter", TypeRef::named("SearchFilter")).description("Conditions per object."))
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT))
            .description(format!("Hits per page, at most {MAX_HITS}; {DEFAULT_HITS} when absent.")),
    )
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)).description("The `endCursor` of the page before."))
    .description(
        "Finds records by their searchable fields (names and emails, and custom fields marked `searchable`) across \
         objects: full text with accents and case aside, plus trigram similarity for typos. Best hits first; only \
         records the caller may read.",
    )
}

/// The objects a request asked to search: named ones (each must exist,
/// be searchable and readable by the caller), or all the caller may read.
fn objects_asked<'m>(
    ctx: &async_graphql::dynamic::ResolverContext<'_>,
    model: &'m Model,
) -> Result<Vec<&'m crate::metadata::ObjectDef>> {
    let context = context(ctx)?;
    let readable = |o: &crate::metadata::ObjectDef| access::require(&context.actor, o, Operation::Read).is_ok();
    let Some(Value::List(names)) = arg(ctx, "objects") else {
        return Ok(model
            .objects()
            .iter()
            .map(Arc::as_ref)
            .filter(|o| searched(o) && readable(o))
            .collect());
    };
    let mut objects = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = Path::root("objects").index(i);
        let Value::String(name) = name else {
            return Err(at.error("an object's name"));
        };
        let object = model
            .object(name)
            .filter(|o| searched(o))
            .ok_or_else(|| at.error(format!("{name} is not a searchable object")))?;
        access::require(&context.actor, object, Operation::Read)?;
        if !objects
            .iter()
            .any(|o: &&crate::metadata::ObjectDef| o.name == object.name)
        {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// The hits' records, by (object, id).
async fn records_of(
    conn: &mut diesel_async::AsyncPgConnection,
    context: &crate::graphql::resolve::RequestContext,
    hits: &[Hit],
) -> Result<HashMap<(String, uuid::Uuid), Record>> {
    let mut by_object: HashMap<&str, Vec<uuid::Uuid>> = HashMap::new();
    for hit in hits {
        by_object.entry(hit.object.as_str()).or_default().push(hit.id);
    }
    let mut out = HashMap::new();
    for (name, ids) in by_object {
        let object = context
            .model
            .object(name)
            .ok_or_else(|| CrmError::internal(format_args!("a hit of unknown object {name}")))?;
        let found = crate::records::get_many(conn, context.table(object), &FieldSet::all(object), &ids).await?;
        out.extend(found.into_iter().map(|(id, record)| ((name.to_owned(), id), record)));
    }
    Ok(out)
}
