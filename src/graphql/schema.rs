//! Builds a workspace's GraphQL schema from its metadata.
//!
//! For each object `X` (plural `xs`): the type `X`, `XConnection`/`XEdge`,
//! `XFilter`, `XOrderBy` with `XOrderField`, `CreateXInput`, `UpdateXInput`
//! and one enum per picklist; queries `x(id)` and `xs(…)`; mutations
//! `createX`, `updateX`, `deleteX`, `restoreX`.

use std::collections::HashSet;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, InputObject, InputValue, Object, Scalar, Schema, SchemaBuilder, SchemaError, Type, TypeRef,
    Union,
};
use async_graphql::Value;

use super::input::order_field_name;
use super::resolve;
use super::room::{PerObject, Surface};
use crate::metadata::{lower_first, upper_first, words, Access, FieldDef, FieldKind, Model, ObjectDef};
use crate::records::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Limits every request is checked against before it runs (see `limits`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Whether `__schema` and `__type` are answered.
    pub introspection: bool,
}

/// The scalar filter inputs, by GraphQL type of the field.
const SCALAR_FILTERS: &[(&str, &str, bool, bool)] = &[
    // (filter name, value type, ordered comparisons, text patterns)
    ("IDFilter", TypeRef::ID, false, false),
    ("StringFilter", TypeRef::STRING, true, true),
    ("IntFilter", TypeRef::INT, true, false),
    ("DecimalFilter", "Decimal", true, false),
    ("BooleanFilter", TypeRef::BOOLEAN, false, false),
    ("DateFilter", "Date", true, false),
    ("DateTimeFilter", "DateTime", true, false),
];

/// Registers types once each: a second type of the same name (a custom
/// object named like a generated type) is an error, not an overwrite.
struct Types {
    builder: Option<SchemaBuilder>,
    seen: HashSet<String>,
    duplicate: Option<String>,
}

impl Types {
    fn add(&mut self, name: &str, ty: impl Into<Type>) {
        if !self.seen.insert(name.to_owned()) && self.duplicate.is_none() {
            self.duplicate = Some(name.to_owned());
        }
        self.builder = self.builder.take().map(|builder| builder.register(ty));
    }
    fn object(&mut self, ty: Object) {
        let name = ty.type_name().to_owned();
        self.add(&name, ty);
    }
    fn input(&mut self, ty: InputObject) {
        let name = ty.type_name().to_owned();
        self.add(&name, ty);
    }
    fn enumeration(&mut self, ty: Enum) {
        let name = ty.type_name().to_owned();
        self.add(&name, ty);
    }
    fn scalar(&mut self, ty: Scalar) {
        let name = ty.type_name().to_owned();
        self.add(&name, ty);
    }
    fn union(&mut self, ty: Union) {
        let name = ty.type_name().to_owned();
        self.add(&name, ty);
    }
    /// What a room made for an object or the whole model.
    fn added(&mut self, added: PerObject) -> Vec<(String, Field)> {
        added.objects.into_iter().for_each(|ty| self.object(ty));
        added.inputs.into_iter().for_each(|ty| self.input(ty));
        added.enums.into_iter().for_each(|ty| self.enumeration(ty));
        added.unions.into_iter().for_each(|ty| self.union(ty));
        added.queries
    }
}

/// Builds the schema of a workspace whose model is `model`, with what the
/// rooms add (`surface`); requests are checked against `limits` (none for
/// printing the SDL).
pub fn build(model: &Model, limits: Option<Limits>, surface: Surface) -> Result<Schema, SchemaError> {
    let mut query = Object::new("Query").description("Read CRM records.");
    let mut mutation = Object::new("Mutation").description("Create, change, delete and restore CRM records.");
    let mut types = Types {
        builder: Some(Schema::build(
            "Query",
            Some("Mutation"),
            // Not `Subscription`: a CRM's custom object may well be named so.
            (!surface.subscriptions.is_empty()).then_some("SubscriptionRoot"),
        )),
        seen: HashSet::new(),
        duplicate: None,
    };
    shared_types(&mut types, model);
    let mut root_names: HashSet<String> = surface.query_names.iter().map(|n| n.to_string()).collect();
    for object in model.objects() {
        for name in [object.singular(), object.plural.clone()] {
            if !root_names.insert(name.clone()) {
                return Err(SchemaError(format!("the query field {name} is defined twice")));
            }
        }
        record_types(&mut types, model, object, &surface.record_fields);
        for field in resolve::query_fields(object) {
            query = query.field(field);
        }
        for field in super::mutation::fields(object) {
            mutation = mutation.field(field);
        }
        for make in &surface.per_object {
            for (name, field) in types.added(make(model, object)) {
                if !root_names.insert(name.clone()) {
                    return Err(SchemaError(format!("the query field {name} is defined twice")));
                }
                query = query.field(field);
            }
        }
    }
    types.union(record_union(model));
    for make in &surface.per_model {
        for (name, field) in types.added(make(model)) {
            if !root_names.insert(name.clone()) {
                return Err(SchemaError(format!("the query field {name} is defined twice")));
            }
            query = query.field(field);
        }
    }
    for scalar in surface.scalars {
        types.scalar(scalar);
    }
    for union in surface.unions {
        types.union(union);
    }
    for e in surface.enums {
        types.enumeration(e);
    }
    for input in surface.inputs {
        types.input(input);
    }
    for object in surface.objects {
        types.object(object);
    }
    for field in surface.queries {
        query = query.field(field);
    }
    for field in surface.mutations {
        mutation = mutation.field(field);
    }
    types.object(query);
    types.object(mutation);
    if !surface.subscriptions.is_empty() {
        let mut subscription = async_graphql::dynamic::Subscription::new("SubscriptionRoot")
            .description("Live updates over WebSocket (graphql-transport-ws), at the workspace's GraphQL URL.");
        for field in surface.subscriptions {
            subscription = subscription.field(field);
        }
        types.builder = types.builder.take().map(|builder| builder.register(subscription));
    }
    if let Some(name) = types.duplicate {
        return Err(SchemaError(format!("the type {name} is defined twice")));
    }
    let mut builder = types
        .builder
        .ok_or_else(|| SchemaError("the schema builder is gone".into()))?
        .data(surface.record_hooks);
    if let Some(limits) = limits {
        builder = builder.extension(super::limits::QueryGate::new(limits));
        if !limits.introspection {
            builder = builder.disable_introspection();
        }
    }
    builder.finish()
}

/// `AnyRecord`: a record of any CRM object, for answers that mix objects
/// (search hits, merges, timelines); its resolvers name the record's type.
fn record_union(model: &Model) -> Union {
    let mut union = Union::new("AnyRecord")
        .description("A record of any CRM object: select its fields with `... on Account { name }`.");
    for object in model.objects().iter().filter(|o| o.access == Access::Record) {
        union = union.possible_type(&object.name);
    }
    union
}

/// The types every schema has: scalars, orderings, page info, filters.
fn shared_types(types: &mut Types, model: &Model) {
    for scalar in scalars() {
        types.scalar(scalar);
    }
    types.enumeration(
        Enum::new("OrderDirection")
            .description("Sort direction.")
            .item(EnumItem::new("ASC").description("Smallest first."))
            .item(EnumItem::new("DESC").description("Largest first.")),
    );
    types.enumeration(
        Enum::new("NullsOrder")
            .description("Where records without a value go. Default: last when ascending, first when descending.")
            .item(EnumItem::new("FIRST").description("Records without a value come first."))
            .item(EnumItem::new("LAST").description("Records without a value come last.")),
    );
    types.object(resolve::page_info_type());
    for (name, value_type, ordered, text) in SCALAR_FILTERS {
        types.input(scalar_filter(name, value_type, *ordered, *text));
    }
    let has_json = model
        .objects()
        .iter()
        .any(|o| o.fields.iter().any(|f| f.kind == FieldKind::Json));
    if has_json {
        types.input(json_filter());
    }
}

/// The types of one object's records: its type, connection, edge, filters,
/// orderings, inputs and picklist enums.
fn record_types(
    types: &mut Types,
    model: &Model,
    object: &ObjectDef,
    record_fields: &[fn(&ObjectDef) -> Option<Field>],
) {
    for field in &object.fields {
        if let Some(options) = field.kind.options() {
            let mut picklist = Enum::new(picklist_type(object, field))
                .description(format!("Values of {}.{}.", object.name, field.name));
            for option in options {
                let mut item = EnumItem::new(&option.value).description(&option.label);
                if !option.active {
                    item = item.deprecation(Some("Retired: records may hold it, writes do not take it."));
                }
                picklist = picklist.item(item);
            }
            types.enumeration(picklist);
            match field.kind {
                FieldKind::MultiPicklist(_) => types.input(multi_filter(object, field)),
                _ => types.input(enum_filter(object, field)),
            }
        }
    }
    types.object(object_type(model, object, record_fields));
    types.object(resolve::edge_type(object));
    types.object(resolve::connection_type(object));
    types.input(filter_input(model, object));
    // Only a list some object has: a relation filter on it needs the type.
    if object
        .fields
        .iter()
        .any(|f| f.lookup().is_some_and(|l| l.inverse.is_some()))
    {
        types.input(list_filter_input(object));
    }
    let (order_field, order_by) = order_inputs(object);
    types.enumeration(order_field);
    types.input(order_by);
    if object.writable() {
        types.input(write_input(object, true));
        types.input(write_input(object, false));
        types.input(super::mutation::update_item_input(object));
    }
}

fn scalars() -> Vec<Scalar> {
    vec![
        Scalar::new("JSON").description("Any JSON value."),
        Scalar::new("DateTime")
            .description("An instant, as an RFC 3339 string in UTC, e.g. `2026-11-23T09:30:00.000000Z`.")
            .specified_by_url("https://datatracker.ietf.org/doc/html/rfc3339")
            .validator(|v| matches!(v, Value::String(s) if crate::metadata::parse_datetime(s).is_ok())),
        Scalar::new("Date")
            .description("A calendar date, `YYYY-MM-DD`.")
            .validator(|v| matches!(v, Value::String(s) if crate::metadata::parse_date(s).is_ok())),
        Scalar::new("Decimal")
            .description(
                "An exact decimal number as a string, e.g. `\"125000.50\"`: money keeps every cent \
                 (JSON numbers would round).",
            )
            .validator(|v| match v {
                Value::String(s) => crate::metadata::parse_decimal(s).is_ok(),
                Value::Number(_) => true,
                _ => false,
            }),
    ]
}

fn scalar_filter(name: &str, value_type: &str, ordered: bool, text: bool) -> InputObject {
    let mut input = InputObject::new(name).description("Conditions on one field; all given must hold.");
    input = input
        .field(InputValue::new("eq", TypeRef::named(value_type)).description("Equal to."))
        .field(InputValue::new("neq", TypeRef::named(value_type)).description("Not equal to (empty values match)."))
        .field(InputValue::new("in", TypeRef::named_nn_list(value_type)).description("Equal to one of."))
        .field(InputValue::new("notIn", TypeRef::named_nn_list(value_type)).description("Equal to none of."))
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)).description("Empty (true) or set (false)."));
    if ordered {
        for (op, description) in [
            ("gt", "Greater than."),
            ("gte", "At least."),
            ("lt", "Less than."),
            ("lte", "At most."),
        ] {
            input = input.field(InputValue::new(op, TypeRef::named(value_type)).description(description));
        }
    }
    if text {
        input = input
            .field(InputValue::new("like", TypeRef::named(TypeRef::STRING)).description("SQL LIKE pattern (`%`, `_`)."))
            .field(
                InputValue::new("ilike", TypeRef::named(TypeRef::STRING)).description("Case-insensitive LIKE pattern."),
            )
            .field(InputValue::new("startsWith", TypeRef::named(TypeRef::STRING)).description("Starts with this text."))
            .field(InputValue::new("contains", TypeRef::named(TypeRef::STRING)).description("Contains this text."));
    }
    input
}

/// `AccountIndustry`.
pub fn picklist_type(object: &ObjectDef, field: &FieldDef) -> String {
    format!("{}{}", object.name, upper_first(&field.name))
}

fn enum_filter(object: &ObjectDef, field: &FieldDef) -> InputObject {
    let value_type = picklist_type(object, field);
    InputObject::new(format!("{value_type}Filter"))
        .description("Conditions on a picklist; all given must hold.")
        .field(InputValue::new("eq", TypeRef::named(&value_type)).description("Equal to."))
        .field(InputValue::new("neq", TypeRef::named(&value_type)).description("Not equal to (empty values match)."))
        .field(InputValue::new("in", TypeRef::named_nn_list(&value_type)).description("Equal to one of."))
        .field(InputValue::new("notIn", TypeRef::named_nn_list(&value_type)).description("Equal to none of."))
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)).description("Empty (true) or set (false)."))
}

/// `ContactTiersMultiFilter`: conditions on a multi-select picklist.
fn multi_filter(object: &ObjectDef, field: &FieldDef) -> InputObject {
    let value_type = picklist_type(object, field);
    InputObject::new(format!("{value_type}MultiFilter"))
        .description("Conditions on a multi-select picklist; all given must hold.")
        .field(
            InputValue::new("containsAny", TypeRef::named_nn_list(&value_type))
                .description("Holds at least one of these."),
        )
        .field(InputValue::new("containsAll", TypeRef::named_nn_list(&value_type)).description("Holds all of these."))
        .field(
            InputValue::new("containsNone", TypeRef::named_nn_list(&value_type))
                .description("Holds none of these (empty values match)."),
        )
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)).description("Empty (true) or set (false)."))
}

fn json_filter() -> InputObject {
    InputObject::new("JSONFilter")
        .description("Conditions on a JSON field; all given must hold.")
        .field(
            InputValue::new("contains", TypeRef::named("JSON"))
                .description("Contains this document: `{\"plan\": \"pro\"}` matches objects with that key and value."),
        )
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)).description("Empty (true) or set (false)."))
}

/// The GraphQL type of a field's value, nullable or not: a list of its
/// enum for a multi-select picklist.
pub fn field_type_ref(object: &ObjectDef, field: &FieldDef, non_null: bool) -> TypeRef {
    let value_type = value_type(object, field);
    match (&field.kind, non_null) {
        (FieldKind::MultiPicklist(_), true) => TypeRef::named_nn_list_nn(value_type),
        (FieldKind::MultiPicklist(_), false) => TypeRef::named_nn_list(value_type),
        (_, true) => TypeRef::named_nn(value_type),
        (_, false) => TypeRef::named(value_type),
    }
}

/// The GraphQL type of a field's value (`ID` for a lookup's id).
pub fn value_type(object: &ObjectDef, field: &FieldDef) -> String {
    match &field.kind {
        FieldKind::Id | FieldKind::Lookup(_) => TypeRef::ID.into(),
        FieldKind::Text | FieldKind::Email | FieldKind::Url | FieldKind::Phone | FieldKind::LongText => {
            TypeRef::STRING.into()
        }
        FieldKind::Integer => TypeRef::INT.into(),
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => "Decimal".into(),
        FieldKind::Json => "JSON".into(),
        FieldKind::MultiPicklist(_) => picklist_type(object, field),
        FieldKind::Boolean => TypeRef::BOOLEAN.into(),
        FieldKind::Date => "Date".into(),
        FieldKind::DateTime => "DateTime".into(),
        FieldKind::Picklist(_) => picklist_type(object, field),
    }
}

fn filter_type(object: &ObjectDef, field: &FieldDef) -> String {
    match &field.kind {
        FieldKind::Picklist(_) => format!("{}Filter", picklist_type(object, field)),
        FieldKind::MultiPicklist(_) => format!("{}MultiFilter", picklist_type(object, field)),
        _ => format!("{}Filter", value_type(object, field)),
    }
}

fn object_type(model: &Model, object: &ObjectDef, record_fields: &[fn(&ObjectDef) -> Option<Field>]) -> Object {
    let mut ty = Object::new(&object.name).description(&object.description);
    for field in &object.fields {
        let type_ref = field_type_ref(object, field, field.required);
        match field.lookup() {
            Some(lookup) => {
                ty = ty
                    .field(
                        resolve::value_field(field, &field.value_key(), type_ref)
                            .description(format!("The id of {}", lower_first(&field.description))),
                    )
                    .field(resolve::to_one_field(field, lookup).description(&field.description));
            }
            None => ty = ty.field(resolve::value_field(field, &field.name, type_ref).description(&field.description)),
        }
    }
    for relation in model.inverse_relations(&object.name) {
        ty = ty.field(resolve::to_many_field(relation));
    }
    for field in record_fields.iter().filter_map(|field| field(object)) {
        ty = ty.field(field);
    }
    ty
}

fn filter_input(model: &Model, object: &ObjectDef) -> InputObject {
    let name = format!("{}Filter", object.name);
    let mut input = InputObject::new(&name)
        .description(format!(
            "Conditions on {}: every field given must match.",
            words(&object.plural)
        ))
        .field(InputValue::new("and", TypeRef::named_nn_list(&name)).description("All of these match."))
        .field(InputValue::new("or", TypeRef::named_nn_list(&name)).description("At least one of these matches."))
        .field(InputValue::new("not", TypeRef::named(&name)).description("This does not match."));
    for field in &object.fields {
        input = input.field(
            InputValue::new(field.value_key(), TypeRef::named(filter_type(object, field))).description(&field.label),
        );
        if let Some(lookup) = field.lookup() {
            input = input.field(
                InputValue::new(&field.name, TypeRef::named(format!("{}Filter", lookup.target)))
                    .description(format!("Conditions on the {} this record refers to.", lookup.target)),
            );
        }
    }
    if super::input::stale_at(object).is_some() {
        input = input.field(
            InputValue::new(super::input::IS_STALE, TypeRef::named(TypeRef::BOOLEAN))
                .description("true: open and idle past `staleAt`; false: closed or not stale yet."),
        );
    }
    for relation in model.inverse_relations(&object.name) {
        input = input.field(
            InputValue::new(
                &relation.name,
                TypeRef::named(format!("{}ListFilter", relation.child.name)),
            )
            .description(relation.description.clone()),
        );
    }
    input
}

/// `ContactListFilter { some none every }`: conditions on a related list.
fn list_filter_input(object: &ObjectDef) -> InputObject {
    let filter = format!("{}Filter", object.name);
    InputObject::new(format!("{}ListFilter", object.name))
        .description(format!(
            "Conditions on a list of related {}; all given must hold.",
            words(&object.plural)
        ))
        .field(InputValue::new("some", TypeRef::named(&filter)).description("At least one matches."))
        .field(InputValue::new("none", TypeRef::named(&filter)).description("None matches."))
        .field(InputValue::new("every", TypeRef::named(&filter)).description("All match (true for an empty list)."))
}

fn order_inputs(object: &ObjectDef) -> (Enum, InputObject) {
    let field_enum = format!("{}OrderField", object.name);
    let mut fields = Enum::new(&field_enum).description(format!("Fields {} can be ordered by.", words(&object.plural)));
    for field in object.fields.iter().filter(|f| f.sortable()) {
        fields = fields.item(EnumItem::new(order_field_name(field)).description(&field.label));
    }
    let mut input =
        InputObject::new(format!("{}OrderBy", object.name))
            .description(
                "One sort key: a `field`, or a lookup and a field of the record it refers to \
                 (`{ account: NAME }`). Lists always end with `id`, so the order is total and cursors are stable.",
            )
            .field(InputValue::new("field", TypeRef::named(&field_enum)).description("The field to sort by."))
            .field(
                InputValue::new("direction", TypeRef::named_nn("OrderDirection"))
                    .default_value(Value::Enum(async_graphql::Name::new("ASC")))
                    .description("Ascending (the default) or descending."),
            )
            .field(InputValue::new("nulls", TypeRef::named("NullsOrder")).description(
                "Where records without a value go: by default last when ascending, first when descending.",
            ));
    for field in &object.fields {
        if let Some(lookup) = field.lookup() {
            input = input.field(
                InputValue::new(&field.name, TypeRef::named(format!("{}OrderField", lookup.target))).description(
                    format!(
                        "Sort by this field of the {} the record refers to (instead of `field`).",
                        lookup.target
                    ),
                ),
            );
        }
    }
    (fields, input)
}

/// `CreateXInput` (required fields non-null) or `UpdateXInput` (all optional;
/// null clears a field).
fn write_input(object: &ObjectDef, create: bool) -> InputObject {
    let name = if create {
        format!("Create{}Input", object.name)
    } else {
        format!("Update{}Input", object.name)
    };
    let mut input = InputObject::new(name).description(if create {
        format!("The values of a new {}.", object.name)
    } else {
        format!(
            "The fields to change on {}; omitted fields keep their value, null clears one.",
            crate::metadata::with_article(&object.name)
        )
    });
    for field in object.fields.iter().filter(|f| !f.system) {
        let type_ref = field_type_ref(object, field, create && field.required_on_create());
        let mut value = InputValue::new(field.value_key(), type_ref).description(&field.description);
        if let (true, Some(default)) = (create, &field.default_value) {
            value = value.description(format!("{} Default: {default}.", field.description));
        }
        input = input.field(value);
    }
    input
}

/// The arguments of every list field, top-level or nested.
pub fn list_arguments(field: Field, object: &ObjectDef) -> Field {
    field
        .argument(
            InputValue::new("filter", TypeRef::named(format!("{}Filter", object.name)))
                .description("Only records matching these conditions."),
        )
        .argument(
            InputValue::new("orderBy", TypeRef::named_nn_list(format!("{}OrderBy", object.name))).description(format!(
                "Sort keys, most significant first. Default: by {}.",
                words(&object.default_order)
            )),
        )
        .argument(
            InputValue::new("first", TypeRef::named(TypeRef::INT))
                .description(format!("Page size, 0–{MAX_PAGE_SIZE}; default {DEFAULT_PAGE_SIZE}.")),
        )
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)).description("Continue after this cursor."))
        .argument(InputValue::new("last", TypeRef::named(TypeRef::INT)).description("Page backwards: the last N."))
        .argument(
            InputValue::new("before", TypeRef::named(TypeRef::STRING))
                .description("Continue before this cursor (with last)."),
        )
        .argument(
            InputValue::new("includeDeleted", TypeRef::named(TypeRef::BOOLEAN))
                .description("Also list deleted records.")
                .default_value(false),
        )
}
