//! The aggregates' GraphQL surface, made from each object's metadata: for
//! `Opportunity`, the query `opportunitiesAggregate(filter, groupBy,
//! having, orderBy, first, timeZone)` answering `[OpportunityGroup!]!`,
//! each group with its `key` (`OpportunityGroupKey`: a typed field per
//! groupable field, and per lookup the referred record's keys), `count`,
//! `countDistinct`, and `sum`/`avg`/`min`/`max` of the fields they apply
//! to. A custom field is aggregatable as soon as it exists, in the schema
//! of the workspace (or sandbox) that has it.

use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};
use serde_json::{Map, Value as Json};

use super::{
    groupable, Aggregate, Granularity, Group, GroupKey, GroupOrder, Having, Measure, Metric, DEFAULT_GROUPS,
    MAX_GROUPS, MAX_GROUP_KEYS,
};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, enum_name, output, resolved};
use crate::graphql::room::{PerObject, Surface};
use crate::graphql::schema::{field_type_ref, value_type};
use crate::metadata::{screaming_snake, upper_first, words, FieldDef, FieldKind, Model, ObjectDef};
use crate::records::filter::Comparison;
use crate::records::OrderKey;

/// Adds the shared enums and, per object, the aggregate query and its types.
pub fn register(surface: &mut Surface) {
    let mut granularity = Enum::new("DateGranularity").description("How date keys are bucketed.");
    for g in Granularity::ALL {
        let description = match g {
            Granularity::Day => "By calendar day.",
            Granularity::Week => "By ISO week, starting on Monday.",
            Granularity::Month => "By month.",
            Granularity::Quarter => "By quarter (January, April, July, October).",
            Granularity::Year => "By year.",
        };
        granularity = granularity.item(EnumItem::new(g.name()).description(description));
    }
    surface.enumeration(granularity);
    surface.enumeration(
        Enum::new("AggregateMetric")
            .description("What groups are ordered by.")
            .item(EnumItem::new("COUNT").description("The number of records."))
            .item(EnumItem::new("SUM").description("The sum of a numeric field."))
            .item(EnumItem::new("AVG").description("The average of a numeric field."))
            .item(EnumItem::new("MIN").description("The smallest value of a field."))
            .item(EnumItem::new("MAX").description("The largest value of a field."))
            .item(EnumItem::new("COUNT_DISTINCT").description("The number of distinct values of a field.")),
    );
    surface.per_object(per_object);
    super::history::register(surface);
    super::forecast::register(surface);
    super::funnel::register(surface);
    super::churn::register(surface);
    super::reports::register(surface);
}

/// The fields records of `object` can be grouped by.
fn group_fields(object: &ObjectDef) -> impl Iterator<Item = &FieldDef> {
    object.fields.iter().filter(|f| groupable(&f.kind))
}

/// The fields `metric` applies to (system counters like `version` left out).
fn metric_fields(object: &ObjectDef, metric: Metric) -> Vec<&FieldDef> {
    object
        .fields
        .iter()
        .filter(|f| metric.applies_to(&f.kind) && !(metric != Metric::CountDistinct && f.name == "version"))
        .collect()
}

/// `STAGE`, `CLOSE_DATE`: a field's name in `<Object>GroupField`.
fn group_field_name(field: &FieldDef) -> String {
    screaming_snake(&field.name)
}

fn per_object(_model: &Model, object: &ObjectDef) -> PerObject {
    let name = &object.name;
    let mut added = PerObject::default();
    let mut fields = Enum::new(format!("{name}GroupField")).description(format!(
        "Fields {} can be grouped by (a lookup groups by the record it refers to).",
        words(&object.plural)
    ));
    for field in group_fields(object) {
        fields = fields.item(EnumItem::new(group_field_name(field)).description(&field.label));
    }
    added.enums.push(fields);
    let (group_by, key) = key_types(object);
    added.inputs.push(group_by);
    added.objects.push(key);
    metric_types(object, &mut added);
    added.inputs.push(order_input(object));
    let query_name = format!("{}Aggregate", object.plural);
    added
        .queries
        .push((query_name.clone(), aggregate_field(object, query_name)));
    added
}

/// `<Object>GroupBy`, the input naming a key, and `<Object>GroupKey`, a
/// group's keys: a field per groupable field, and per lookup the referred
/// record's keys.
fn key_types(object: &ObjectDef) -> (InputObject, Object) {
    let name = &object.name;
    let mut group_by = InputObject::new(format!("{name}GroupBy"))
        .description(
            "One group key: a `field`, or a lookup and a field of the record it refers to (`{ account: INDUSTRY }`).",
        )
        .field(
            InputValue::new("field", TypeRef::named(format!("{name}GroupField"))).description("The field to group by."),
        )
        .field(
            InputValue::new("granularity", TypeRef::named("DateGranularity"))
                .description("For a date or date-time key: the bucket (default: the exact value)."),
        );
    let mut key = Object::new(format!("{name}GroupKey")).description(format!(
        "The keys of a group of {}: the fields grouped by hold the group's value, the others are null.",
        words(&object.plural)
    ));
    for field in group_fields(object) {
        let value_key = field.value_key();
        let captured = field.clone();
        key = key.field(
            Field::new(&value_key, field_type_ref(object, field, false), move |ctx| {
                let value = ctx
                    .parent_value
                    .try_downcast_ref::<Map<String, Json>>()
                    .ok()
                    .and_then(|keys| output(&captured, keys.get(&captured.value_key())));
                FieldFuture::from_value(value)
            })
            .description(&field.label),
        );
        if let Some(lookup) = field.lookup() {
            group_by = group_by.field(
                InputValue::new(&field.name, TypeRef::named(format!("{}GroupField", lookup.target))).description(
                    format!("Group by this field of the {} the record refers to.", lookup.target),
                ),
            );
            let lookup_name = field.name.clone();
            key = key.field(
                Field::new(
                    &field.name,
                    TypeRef::named(format!("{}GroupKey", lookup.target)),
                    move |ctx| {
                        let inner = ctx
                            .parent_value
                            .try_downcast_ref::<Map<String, Json>>()
                            .ok()
                            .and_then(|keys| keys.get(&lookup_name))
                            .and_then(Json::as_object)
                            .cloned();
                        FieldFuture::new(async move { Ok(inner.map(FieldValue::owned_any)) })
                    },
                )
                .description(format!("Keys read from the {} the record refers to.", lookup.target)),
            );
        }
    }
    (group_by, key)
}

/// `<Object>Group` with its metric types (`<Object>Sum` …) and
/// `<Object>AggregateHaving` with theirs (`<Object>SumHaving` …).
fn metric_types(object: &ObjectDef, added: &mut PerObject) {
    let name = &object.name;
    let mut group = Object::new(format!("{name}Group"))
        .description(format!("A group of {} and what they add up to.", words(&object.plural)))
        .field(
            Field::new("key", TypeRef::named_nn(format!("{name}GroupKey")), |ctx| {
                let keys = ctx.parent_value.try_downcast_ref::<Answer>().map(|a| a.keys.clone());
                FieldFuture::new(async move { Ok(Some(FieldValue::owned_any(keys?))) })
            })
            .description("The values the group shares."),
        )
        .field(
            Field::new("count", TypeRef::named_nn(TypeRef::INT), |ctx| {
                let count = ctx.parent_value.try_downcast_ref::<Answer>().map(|a| a.group.count);
                FieldFuture::from_value(count.ok().map(Value::from))
            })
            .description("How many records are in the group."),
        );
    let mut having = InputObject::new(format!("{name}AggregateHaving"))
        .description("Conditions on groups: every one given must hold.")
        .field(InputValue::new("count", TypeRef::named("IntFilter")).description("On the number of records."));
    for metric in [
        Metric::Sum,
        Metric::Avg,
        Metric::Min,
        Metric::Max,
        Metric::CountDistinct,
    ] {
        let fields = metric_fields(object, metric);
        if fields.is_empty() {
            continue;
        }
        let type_name = format!("{name}{}", upper_first(metric.key()));
        let (values, filter) = metric_type(object, metric, &type_name, &fields);
        added.objects.push(values);
        added.inputs.push(filter);
        having = having.field(
            InputValue::new(metric.key(), TypeRef::named(format!("{type_name}Having")))
                .description(format!("On the groups' {}.", metric.key())),
        );
        group = group.field(
            Field::new(metric.key(), TypeRef::named_nn(&type_name), |ctx| {
                let answer = ctx.parent_value.try_downcast_ref::<Answer>().cloned();
                FieldFuture::new(async move { Ok(Some(FieldValue::owned_any(answer?))) })
            })
            .description(match metric {
                Metric::Sum => "Sums of numeric fields.",
                Metric::Avg => "Averages of numeric fields.",
                Metric::Min => "Smallest values.",
                Metric::Max => "Largest values.",
                Metric::CountDistinct => "Distinct values counted.",
            }),
        );
    }
    added.objects.push(group);
    added.inputs.push(having);
}

/// One metric's values per field (`OpportunitySum { amount … }`) and the
/// conditions on them (`OpportunitySumHaving`).
fn metric_type(object: &ObjectDef, metric: Metric, type_name: &str, fields: &[&FieldDef]) -> (Object, InputObject) {
    let mut values = Object::new(type_name).description(match metric {
        Metric::Sum => "Sums of the group's numeric fields (empty values count as nothing).",
        Metric::Avg => "Averages of the group's numeric fields, over the records that have a value, to the cent.",
        Metric::Min => "The smallest value of each field in the group.",
        Metric::Max => "The largest value of each field in the group.",
        Metric::CountDistinct => "How many distinct values each field has in the group (empty not counted).",
    });
    let mut filter = InputObject::new(format!("{type_name}Having")).description("Conditions on these metrics.");
    for field in fields {
        let type_ref = match metric {
            Metric::Sum | Metric::Avg => TypeRef::named("Decimal"),
            Metric::Min | Metric::Max => field_type_ref(object, field, false),
            Metric::CountDistinct => TypeRef::named_nn(TypeRef::INT),
        };
        let captured = (*field).clone();
        values = values.field(
            Field::new(field.value_key(), type_ref, move |ctx| {
                let value = ctx.parent_value.try_downcast_ref::<Answer>().ok().and_then(|answer| {
                    let json = answer.group.metric(metric, &captured);
                    match metric {
                        Metric::Sum | Metric::Avg => json.and_then(Json::as_str).map(|s| Value::String(s.to_owned())),
                        Metric::Min | Metric::Max => output(&captured, json),
                        Metric::CountDistinct => Some(Value::from(json.and_then(Json::as_i64).unwrap_or(0))),
                    }
                });
                FieldFuture::from_value(value)
            })
            .description(&field.label),
        );
        let filter_type = match metric {
            Metric::CountDistinct => "IntFilter".to_owned(),
            Metric::Sum | Metric::Avg => "DecimalFilter".to_owned(),
            Metric::Min | Metric::Max => format!("{}Filter", value_type(object, field)),
        };
        filter =
            filter.field(InputValue::new(field.value_key(), TypeRef::named(filter_type)).description(&field.label));
    }
    (values, filter)
}

/// `<Object>AggregateOrderBy`.
fn order_input(object: &ObjectDef) -> InputObject {
    InputObject::new(format!("{}AggregateOrderBy", object.name))
        .description("One order of groups: a metric (with its field, except COUNT) or a group key by position.")
        .field(InputValue::new("metric", TypeRef::named("AggregateMetric")).description("Order by this metric."))
        .field(
            InputValue::new("field", TypeRef::named(format!("{}GroupField", object.name)))
                .description("The field of the metric (not for COUNT)."),
        )
        .field(
            InputValue::new("key", TypeRef::named(TypeRef::INT))
                .description("Order by the group key at this position in `groupBy` (0 is the first)."),
        )
        .field(
            InputValue::new("direction", TypeRef::named_nn("OrderDirection"))
                .default_value(Value::Enum(Name::new("ASC")))
                .description("Ascending (the default) or descending; empty values last either way."),
        )
}

/// One group as its fields read it: the group, and its keys as a tree
/// (`{ "stageId": …, "account": { "industry": … } }`).
#[derive(Clone)]
struct Answer {
    group: Arc<Group>,
    keys: Map<String, Json>,
}

fn aggregate_field(object: &ObjectDef, query_name: String) -> Field {
    let name = object.name.clone();
    Field::new(
        &query_name,
        TypeRef::named_nn_list_nn(format!("{name}Group")),
        move |ctx| {
            let object_name = name.clone();
            resolved(async move {
                let context = context(&ctx)?;
                let object = context
                    .model
                    .object(&object_name)
                    .ok_or_else(|| CrmError::internal(format_args!("no object {object_name}")))?
                    .clone();
                let request = request(&ctx, &context.model, &context.schema, &context.visibility, &object)?;
                let mut conn = context.db.conn().await?;
                if request.time_zone != "UTC" && !super::known_time_zone(&mut conn, &request.time_zone).await? {
                    return Err(CrmError::bad_input(
                        &["timeZone"],
                        format!("{} is not a time zone PostgreSQL knows (e.g. Europe/Paris)", request.time_zone),
                    ));
                }
                let table = crate::records::Table {
                    schema: object.schema_in(&context.schema),
                    workspace_schema: &context.schema,
                    object: &object,
                    visibility: &context.visibility,
                };
                let groups = super::groups(&mut conn, table, &request).await?;
                let answers = groups.into_iter().map(|group| {
                    let keys = key_tree(&request.keys, &group.keys);
                    FieldValue::owned_any(Answer {
                        group: Arc::new(group),
                        keys,
                    })
                });
                Ok(Some(FieldValue::list(answers)))
            })
        },
    )
    .description(format!(
        "{} grouped by up to {MAX_GROUP_KEYS} keys, with what each group adds up to. Same filter and visibility as `{}`.",
        upper_first(&words(&object.plural)),
        object.plural
    ))
    .argument(
        InputValue::new("filter", TypeRef::named(format!("{}Filter", object.name)))
            .description("Only records matching these conditions."),
    )
    .argument(
        InputValue::new("groupBy", TypeRef::named_nn_list(format!("{}GroupBy", object.name)))
            .description(format!("Up to {MAX_GROUP_KEYS} keys; none: one group of every matching record.")),
    )
    .argument(
        InputValue::new("having", TypeRef::named(format!("{}AggregateHaving", object.name)))
            .description("Only groups meeting these conditions."),
    )
    .argument(
        InputValue::new("orderBy", TypeRef::named_nn_list(format!("{}AggregateOrderBy", object.name)))
            .description("Group orders, most significant first; then the keys, ascending."),
    )
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT))
            .description(format!("At most this many groups, 0–{MAX_GROUPS}; default {DEFAULT_GROUPS}.")),
    )
    .argument(
        InputValue::new("timeZone", TypeRef::named_nn(TypeRef::STRING))
            .default_value("UTC")
            .description("The IANA time zone date-time keys are bucketed in, e.g. `Europe/Paris`."),
    )
}

/// The keys of one group as a tree the key types read: own fields by value
/// key, keys read through a lookup under the lookup's name.
fn key_tree(keys: &[GroupKey], values: &[Json]) -> Map<String, Json> {
    let mut tree = Map::new();
    for (key, value) in keys.iter().zip(values) {
        match &key.key.through {
            None => {
                tree.insert(key.key.field.value_key(), value.clone());
            }
            Some(through) => {
                let inner = tree
                    .entry(through.lookup.clone())
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(map) = inner {
                    map.insert(key.key.field.value_key(), value.clone());
                }
            }
        }
    }
    tree
}

/// The aggregate the arguments and the selection ask for.
fn request(
    ctx: &ResolverContext<'_>,
    model: &Model,
    schema: &str,
    visibility: &crate::access::Visibility,
    object: &ObjectDef,
) -> Result<Aggregate> {
    let mut measures = Vec::new();
    for selected in ctx.field().selection_set() {
        let Some(metric) = metric_of_key(selected.name()) else {
            continue;
        };
        for field in selected.selection_set() {
            if let Some(def) = object
                .field_by_value_key(field.name())
                .or_else(|| object.field(field.name()))
            {
                add_measure(&mut measures, metric, def);
            }
        }
    }
    let scope = Scope {
        model,
        schema,
        visibility,
        object,
    };
    parse(&scope, &|name| arg(ctx, name), measures)
}

/// What an aggregate's arguments are read against: the workspace's model
/// as the request may see it, and the object aggregated.
pub struct Scope<'a> {
    pub model: &'a Model,
    pub schema: &'a str,
    pub visibility: &'a crate::access::Visibility,
    pub object: &'a ObjectDef,
}

/// The aggregate of the arguments `args` gives by name (`filter`,
/// `groupBy`, `having`, `orderBy`, `first`, `timeZone`), computing
/// `measures` and those the arguments name.
pub fn parse<'v>(
    scope: &Scope<'_>,
    args: &dyn Fn(&str) -> Option<&'v Value>,
    mut measures: Vec<Measure>,
) -> Result<Aggregate> {
    let Scope {
        model,
        schema,
        visibility,
        object,
    } = *scope;
    let filter = match args("filter") {
        Some(value) => input::filter(model, visibility, object, value, &Path::root("filter"))?,
        None => None,
    };
    let keys = group_keys(model, schema, visibility, object, args("groupBy"))?;
    let having = having(object, args("having"), &mut measures)?;
    let order = group_order(object, args("orderBy"), keys.len(), &mut measures)?;
    let first = match args("first") {
        None | Some(Value::Null) => DEFAULT_GROUPS,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n as usize <= MAX_GROUPS => n as usize,
            _ => {
                return Err(CrmError::bad_input(
                    &["first"],
                    format!("first must be between 0 and {MAX_GROUPS}"),
                ))
            }
        },
        Some(_) => return Err(CrmError::bad_input(&["first"], "first must be an integer")),
    };
    let time_zone = match args("timeZone") {
        Some(Value::String(zone)) if !zone.is_empty() && zone.len() <= 64 && !zone.contains('\0') => zone.clone(),
        None | Some(Value::Null) => "UTC".to_owned(),
        Some(_) => return Err(CrmError::bad_input(&["timeZone"], "timeZone is an IANA time zone name")),
    };
    Ok(Aggregate {
        filter,
        keys,
        measures,
        having,
        order,
        first,
        time_zone,
    })
}

/// `[{ metric: SUM, field: AMOUNT }, …]`: the measures a saved report
/// lists (`COUNT` is every group's anyway).
pub fn listed_measures(object: &ObjectDef, value: Option<&Value>, path: &Path) -> Result<Vec<Measure>> {
    let items = input::list_items(value, path, "metrics takes a list of { metric, field }")?;
    let mut measures = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(map) = item else {
            return Err(at.error("each metric is { metric, field }"));
        };
        let name = enum_name(map.get("metric")).ok_or_else(|| at.at("metric").error("name the metric"))?;
        if name == "COUNT" {
            continue;
        }
        let metric = metric_named(&name).ok_or_else(|| at.at("metric").error(format!("{name} is not a metric")))?;
        let field_name = enum_name(map.get("field")).ok_or_else(|| at.at("field").error("name the metric's field"))?;
        let field = metric_fields(object, metric)
            .into_iter()
            .find(|f| group_field_name(f) == field_name)
            .ok_or_else(|| at.at("field").error(format!("{field_name} has no {}", metric.key())))?;
        add_measure(&mut measures, metric, field);
    }
    Ok(measures)
}

/// A metric by its `AggregateMetric` name (not `COUNT`).
fn metric_named(name: &str) -> Option<Metric> {
    match name {
        "SUM" => Some(Metric::Sum),
        "AVG" => Some(Metric::Avg),
        "MIN" => Some(Metric::Min),
        "MAX" => Some(Metric::Max),
        "COUNT_DISTINCT" => Some(Metric::CountDistinct),
        _ => None,
    }
}

fn metric_of_key(name: &str) -> Option<Metric> {
    [
        Metric::Sum,
        Metric::Avg,
        Metric::Min,
        Metric::Max,
        Metric::CountDistinct,
    ]
    .into_iter()
    .find(|m| m.key() == name)
}

fn add_measure(measures: &mut Vec<Measure>, metric: Metric, field: &FieldDef) -> Measure {
    let measure = Measure {
        metric,
        field: field.clone(),
    };
    if !measures
        .iter()
        .any(|m| m.metric == metric && m.field.name == field.name)
    {
        measures.push(measure.clone());
    }
    measure
}

/// `groupBy: [{ field, granularity } | { <lookup>: FIELD, granularity }]`.
fn group_keys(
    model: &Model,
    schema: &str,
    visibility: &crate::access::Visibility,
    object: &ObjectDef,
    value: Option<&Value>,
) -> Result<Vec<GroupKey>> {
    let path = Path::root("groupBy");
    let items = input::list_items(value, &path, "groupBy takes a list of { field, granularity }")?;
    if items.len() > MAX_GROUP_KEYS {
        return Err(path.error(format!("at most {MAX_GROUP_KEYS} group keys")));
    }
    let words = input::KeyWords {
        list: "groupBy",
        verb: "grouped by",
        missing: "name a field",
    };
    let mut keys = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(map) = item else {
            return Err(at.error("each groupBy item is { field, granularity }"));
        };
        let (field, through) = input::keyed_field(model, schema, visibility, object, map, &at, &words, |f| {
            groupable(&f.kind)
        })?;
        let key = OrderKey::new(field, false, None);
        let key = match through {
            Some(through) => key.through(through),
            None => key,
        };
        let granularity = match enum_name(map.get("granularity")) {
            None => None,
            Some(name) => {
                if !matches!(key.field.kind, FieldKind::Date | FieldKind::DateTime) {
                    return Err(at
                        .at("granularity")
                        .error("granularity applies to date and date-time keys"));
                }
                let granularity = Granularity::ALL
                    .into_iter()
                    .find(|g| g.name() == name)
                    .ok_or_else(|| at.at("granularity").error(format!("{name} is not a granularity")))?;
                Some(granularity)
            }
        };
        keys.push(GroupKey { key, granularity });
    }
    Ok(keys)
}

/// `having: { count: { gte: 2 }, sum: { amount: { gt: "1000" } } }`.
fn having(object: &ObjectDef, value: Option<&Value>, measures: &mut Vec<Measure>) -> Result<Vec<Having>> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(CrmError::bad_input(&["having"], "having is an object")),
    };
    let path = Path::root("having");
    let mut conditions = Vec::new();
    for (name, ops) in map {
        let at = path.at(name);
        if name.as_str() == "count" {
            conditions.extend(
                comparisons(&count_field(), ops, &at)?
                    .into_iter()
                    .map(|(op, value)| Having {
                        measure: None,
                        op,
                        value,
                    }),
            );
            continue;
        }
        let metric = metric_of_key(name).ok_or_else(|| at.error(format!("{name} is not a metric")))?;
        let Value::Object(fields) = ops else {
            return Err(at.error("name the fields of the metric"));
        };
        for (field_name, ops) in fields {
            let at = at.at(field_name);
            let field = object
                .field_by_value_key(field_name)
                .or_else(|| object.field(field_name))
                .filter(|f| metric.applies_to(&f.kind))
                .ok_or_else(|| at.error(format!("{field_name} has no {name}")))?;
            let measure = add_measure(measures, metric, field);
            // Sums and averages are decimals whatever the field's type.
            let compared = match metric {
                Metric::Sum | Metric::Avg => decimal_field(),
                Metric::CountDistinct => count_field(),
                Metric::Min | Metric::Max => field.clone(),
            };
            for (op, value) in comparisons(&compared, ops, &at)? {
                conditions.push(Having {
                    measure: Some(measure.clone()),
                    op,
                    value,
                });
            }
        }
    }
    Ok(conditions)
}

/// `{ gte: 2, lt: 10 }` as comparisons of values of `field`'s type.
fn comparisons(field: &FieldDef, ops: &Value, at: &Path) -> Result<Vec<(Comparison, crate::db::sql::Bind)>> {
    let Value::Object(ops) = ops else {
        return Err(at.error("conditions are an object such as { gte: 2 }"));
    };
    let mut out = Vec::new();
    for (op, value) in ops {
        let comparison = match op.as_str() {
            "eq" => Comparison::Eq,
            "neq" => Comparison::Neq,
            "gt" => Comparison::Gt,
            "gte" => Comparison::Gte,
            "lt" => Comparison::Lt,
            "lte" => Comparison::Lte,
            other => return Err(at.at(other).error(format!("{other} does not apply to a metric"))),
        };
        out.push((comparison, input::scalar(field, value, &at.at(op))?));
    }
    Ok(out)
}

/// A stand-in field giving counts their type (a whole number).
fn count_field() -> FieldDef {
    stand_in("count", FieldKind::Integer)
}

/// A stand-in field giving sums and averages their type (a decimal).
fn decimal_field() -> FieldDef {
    stand_in("value", FieldKind::Decimal)
}

fn stand_in(name: &str, kind: FieldKind) -> FieldDef {
    FieldDef {
        name: name.into(),
        column: name.into(),
        label: name.into(),
        description: String::new(),
        kind,
        required: false,
        system: true,
        max_length: None,
        default_value: None,
        custom: false,
        unique: false,
        indexed: false,
        searchable: false,
        personal: None,
    }
}

/// `orderBy: [{ metric: SUM, field: AMOUNT, direction: DESC }, { key: 0 }]`.
fn group_order(
    object: &ObjectDef,
    value: Option<&Value>,
    keys: usize,
    measures: &mut Vec<Measure>,
) -> Result<Vec<(GroupOrder, bool)>> {
    let path = Path::root("orderBy");
    let items = input::list_items(
        value,
        &path,
        "orderBy takes a list of { metric, field, key, direction }",
    )?;
    let mut order = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(map) = item else {
            return Err(at.error("each orderBy item is { metric, field, key, direction }"));
        };
        let descending = enum_name(map.get("direction")).as_deref() == Some("DESC");
        let by = match (enum_name(map.get("metric")), map.get("key")) {
            (Some(metric), None) if metric == "COUNT" => GroupOrder::Count,
            (Some(metric), None) => {
                let metric =
                    metric_named(&metric).ok_or_else(|| at.at("metric").error(format!("{metric} is not a metric")))?;
                let field_name =
                    enum_name(map.get("field")).ok_or_else(|| at.at("field").error("name the metric's field"))?;
                let field = group_fields(object)
                    .find(|f| group_field_name(f) == field_name && metric.applies_to(&f.kind))
                    .ok_or_else(|| at.at("field").error(format!("{field_name} has no {}", metric.key())))?;
                GroupOrder::Measure(Box::new(add_measure(measures, metric, field)))
            }
            (None, Some(Value::Number(n))) => match n.as_u64() {
                Some(k) if (k as usize) < keys => GroupOrder::Key(k as usize),
                _ => {
                    return Err(at.at("key").error(format!(
                        "key is the position of a groupBy key, 0–{}",
                        keys.saturating_sub(1)
                    )))
                }
            },
            _ => return Err(at.error("each orderBy item names a metric or a key")),
        };
        order.push((by, descending));
    }
    Ok(order)
}
