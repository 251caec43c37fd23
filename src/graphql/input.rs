//! GraphQL argument values → typed values, filters and page requests.
//!
//! Every conversion knows the path of the value it reads, so a refusal
//! names the exact input field (`["input", "email"]`).

use async_graphql::{Name, Value};
use chrono::SecondsFormat;
use serde_json::Value as Json;

use crate::access::Visibility;
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::{
    parse_date, parse_datetime, parse_decimal, screaming_snake, FieldDef, FieldKind, Model, ObjectDef, PicklistOption,
};
use crate::records::page::{Cursor, CursorError, OrderKey, PageRequest, Through, MAX_PAGE_SIZE};
use crate::records::write::Assignment;

pub use super::filter_input::{filter, rule_condition, stale_at, IS_STALE, MAX_IN_VALUES};

/// A path inside the arguments, grown as conversion descends.
#[derive(Debug, Clone, Default)]
pub struct Path(Vec<String>);

impl Path {
    pub fn root(name: &str) -> Self {
        Path(vec![name.to_owned()])
    }
    pub fn from_parts(parts: &[String]) -> Self {
        Path(parts.to_vec())
    }
    pub fn at(&self, name: &str) -> Self {
        let mut next = self.0.clone();
        next.push(name.to_owned());
        Path(next)
    }
    pub fn index(&self, i: usize) -> Self {
        self.at(&i.to_string())
    }
    pub fn error(&self, message: impl Into<String>) -> CrmError {
        CrmError::bad_input_at(self.0.clone(), message)
    }
    /// The names along the path, for errors raised further down.
    pub fn parts(&self) -> &[String] {
        &self.0
    }
}

/// The typed null of a field's column.
pub fn null_for(field: &FieldDef) -> Bind {
    match field.kind {
        FieldKind::Id | FieldKind::Lookup(_) => Bind::Uuid(None),
        FieldKind::Integer => Bind::Int(None),
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => Bind::Decimal(None),
        FieldKind::Boolean => Bind::Bool(None),
        FieldKind::MultiPicklist(_) => Bind::TextArray(None),
        FieldKind::Json => Bind::Json(None),
        FieldKind::Date => Bind::Date(None),
        FieldKind::DateTime => Bind::DateTime(None),
        _ => Bind::Text(None),
    }
}

/// A non-null GraphQL value as the typed value of `field`.
pub fn scalar(field: &FieldDef, value: &Value, path: &Path) -> Result<Bind> {
    let text = || match value {
        Value::String(s) => Ok(s.as_str()),
        _ => Err(path.error(format!("{} must be a string", field.label))),
    };
    Ok(match &field.kind {
        FieldKind::Id | FieldKind::Lookup(_) => Bind::Uuid(Some(parse_id(text()?, path)?)),
        FieldKind::Text | FieldKind::Phone | FieldKind::LongText => {
            Bind::Text(Some(checked_text(field, text()?, path)?))
        }
        FieldKind::Email => {
            let email = checked_text(field, text()?, path)?;
            if !looks_like_email(&email) {
                return Err(path.error(format!("{email:?} is not an email address")));
            }
            Bind::Text(Some(email))
        }
        FieldKind::Url => {
            let url = checked_text(field, text()?, path)?;
            if url.chars().any(char::is_whitespace) || !(url.contains('.') || url.contains("://")) {
                return Err(path.error(format!("{url:?} is not a web address")));
            }
            Bind::Text(Some(url))
        }
        FieldKind::Integer => match value {
            Value::Number(n) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => Bind::Int(Some(n)),
                None => return Err(path.error(format!("{n} is not a 32-bit integer"))),
            },
            _ => return Err(path.error(format!("{} must be an integer", field.label))),
        },
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(path.error(format!("{} must be a decimal string such as \"1250.50\"", field.label))),
            };
            Bind::Decimal(Some(parse_decimal(&text).map_err(|why| path.error(why))?))
        }
        FieldKind::Boolean => match value {
            Value::Boolean(b) => Bind::Bool(Some(*b)),
            _ => return Err(path.error(format!("{} must be true or false", field.label))),
        },
        FieldKind::Date => Bind::Date(Some(parse_date(text()?).map_err(|why| path.error(why))?)),
        FieldKind::DateTime => Bind::DateTime(Some(parse_datetime(text()?).map_err(|why| path.error(why))?)),
        FieldKind::Picklist(options) => Bind::Text(Some(option(field, options, value, path)?)),
        FieldKind::MultiPicklist(options) => {
            // A single value is a list of one, as GraphQL input coercion has it.
            let items = match value {
                Value::List(items) => items.as_slice(),
                single => std::slice::from_ref(single),
            };
            let mut values: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let value = option(field, options, item, &path.index(i))?;
                if !values.contains(&value) {
                    values.push(value);
                }
            }
            Bind::TextArray(Some(values))
        }
        FieldKind::Json => Bind::Json(Some(
            value
                .clone()
                .into_json()
                .map_err(|_| path.error(format!("{} must be a JSON value", field.label)))?,
        )),
    })
}

/// One value of a picklist.
fn option(field: &FieldDef, options: &[PicklistOption], value: &Value, path: &Path) -> Result<String> {
    let name = match value {
        Value::Enum(name) => name.as_str(),
        Value::String(s) => s.as_str(),
        _ => return Err(path.error(format!("{} must be one of its values", field.label))),
    };
    if !options.iter().any(|o| o.value == name) {
        return Err(path.error(format!("{name} is not a value of {}", field.label)));
    }
    Ok(name.to_owned())
}

/// Refuses retired (inactive) picklist values in what a write stores;
/// filters may still name them.
fn check_active(field: &FieldDef, bind: &Bind, path: &Path) -> Result<()> {
    let Some(options) = field.kind.options() else {
        return Ok(());
    };
    let values: Vec<&String> = match bind {
        Bind::Text(Some(value)) => vec![value],
        Bind::TextArray(Some(values)) => values.iter().collect(),
        _ => vec![],
    };
    for value in values {
        if options.iter().any(|o| &o.value == value && !o.active) {
            return Err(path.error(format!("{value} is retired: {} no longer takes it", field.label)));
        }
    }
    Ok(())
}

/// A GraphQL value (possibly null) to store in `field`.
pub fn assignment(field: &FieldDef, value: &Value, path: &Path) -> Result<Bind> {
    if matches!(value, Value::Null) {
        if field.required {
            return Err(path.error(format!("{} is required and cannot be null", field.label)));
        }
        return Ok(null_for(field));
    }
    let bind = scalar(field, value, path)?;
    check_active(field, &bind, path)?;
    Ok(bind)
}

/// The fields set by a create or update input.
pub fn assignments(object: &ObjectDef, input: &Value, path: &Path) -> Result<Vec<Assignment>> {
    let Value::Object(map) = input else {
        return Err(path.error("input must be an object"));
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let at = path.at(key);
        let field = object
            .field_by_value_key(key)
            .filter(|f| !f.system)
            .ok_or_else(|| at.error(format!("{} has no writable field {key}", object.name)))?;
        out.push((field.clone(), assignment(field, value, &at)?));
    }
    Ok(out)
}

/// Parses a record id.
pub fn parse_id(text: &str, path: &Path) -> Result<uuid::Uuid> {
    text.parse()
        .map_err(|_| path.error(format!("{text:?} is not a valid ID (a UUID)")))
}

fn checked_text(field: &FieldDef, text: &str, path: &Path) -> Result<String> {
    if field.required && text.trim().is_empty() {
        return Err(path.error(format!("{} must not be empty", field.label)));
    }
    if let Some(max) = field.max_length {
        let len = text.chars().count();
        if len > max {
            return Err(path.error(format!(
                "{} is {len} characters long; at most {max} are allowed",
                field.label
            )));
        }
    }
    if text.contains('\0') {
        return Err(path.error(format!("{} must not contain NUL characters", field.label)));
    }
    Ok(text.to_owned())
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

/// The enum value naming a sortable field in `<Object>OrderField`.
pub fn order_field_name(field: &FieldDef) -> String {
    screaming_snake(&field.name)
}

/// `orderBy: [{ field, direction, nulls }]` as order keys; an item may
/// name a lookup instead of `field` (`{ account: NAME }`) to sort by a field
/// of the referred record, read from the workspace schema `schema`.
pub fn order(
    model: &Model,
    schema: &str,
    visibility: &Visibility,
    object: &ObjectDef,
    value: Option<&Value>,
    path: &Path,
) -> Result<Vec<OrderKey>> {
    let items = list_items(value, path, "orderBy takes a list of { field, direction, nulls }")?;
    let words = KeyWords {
        list: "orderBy",
        verb: "ordered by",
        missing: "name a field to sort by",
    };
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(map) = item else {
            return Err(at.error("each orderBy item is { field, direction, nulls }"));
        };
        let descending = enum_in(map, "direction").as_deref() == Some("DESC");
        let nulls_first = enum_in(map, "nulls").map(|n| n == "FIRST");
        let (field, through) = keyed_field(model, schema, visibility, object, map, &at, &words, FieldDef::sortable)?;
        let key = OrderKey::new(field, descending, nulls_first);
        keys.push(match through {
            Some(through) => key.through(through),
            None => key,
        });
    }
    Ok(keys)
}

/// A list argument's items: one object counts as a list of one, as
/// GraphQL's input coercion has it; none when absent. `message` refuses
/// anything else.
pub fn list_items(value: Option<&Value>, path: &Path, message: &str) -> Result<Vec<Value>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::List(items)) => Ok(items.clone()),
        Some(single @ Value::Object(_)) => Ok(vec![single.clone()]),
        Some(_) => Err(path.error(message)),
    }
}

/// The name of an enum value in an input object, given inline (an enum)
/// or in variables (a string).
fn enum_in(map: &async_graphql::indexmap::IndexMap<Name, Value>, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::Enum(name)) => Some(name.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// How a list of keys (`orderBy`, `groupBy`) speaks of its items.
pub struct KeyWords<'a> {
    pub list: &'a str,
    /// `ordered by`: what an unknown field cannot be.
    pub verb: &'a str,
    /// What a lookup item without a field is told.
    pub missing: &'a str,
}

/// The field a key item names: `{ field: NAME }`, a field of `object`, or
/// `{ <lookup>: NAME }`, a field of the record the lookup refers to, with
/// how it is read through the lookup. Only fields `usable` says so of may
/// be named; their names are `SCREAMING_SNAKE` (`ANNUAL_REVENUE`).
#[allow(clippy::too_many_arguments)]
pub fn keyed_field(
    model: &Model,
    schema: &str,
    visibility: &Visibility,
    object: &ObjectDef,
    map: &async_graphql::indexmap::IndexMap<Name, Value>,
    at: &Path,
    words: &KeyWords<'_>,
    usable: fn(&FieldDef) -> bool,
) -> Result<(FieldDef, Option<Through>)> {
    let named = |object: &ObjectDef, name: &str, at: Path| -> Result<FieldDef> {
        object
            .fields
            .iter()
            .find(|f| usable(f) && screaming_snake(&f.name) == name)
            .cloned()
            .ok_or_else(|| at.error(format!("{} cannot be {} {name}", object.name, words.verb)))
    };
    let lookups: Vec<&FieldDef> = object
        .fields
        .iter()
        .filter(|f| f.lookup().is_some() && map.contains_key(&Name::new(&f.name)))
        .collect();
    match (enum_in(map, "field"), lookups.as_slice()) {
        (Some(name), []) => Ok((named(object, &name, at.at("field"))?, None)),
        (None, [lookup_field]) => {
            let (target, through) = through(model, schema, visibility, lookup_field)?;
            let at = at.at(&lookup_field.name);
            let name = enum_in(map, &lookup_field.name).ok_or_else(|| at.error(words.missing))?;
            Ok((named(target, &name, at)?, Some(through)))
        }
        _ => Err(at.error(format!(
            "each {} item names one field, or one lookup and a field of the record it refers to",
            words.list
        ))),
    }
}

/// The record a lookup field refers to, as a key read through it (a sort
/// or group key): its object, and where and which of its records are read.
pub fn through<'m>(
    model: &'m Model,
    schema: &str,
    visibility: &Visibility,
    lookup_field: &FieldDef,
) -> Result<(&'m ObjectDef, Through)> {
    let lookup = lookup_field
        .lookup()
        .ok_or_else(|| CrmError::internal(format_args!("{} is not a lookup", lookup_field.name)))?;
    let target = model
        .object(&lookup.target)
        .ok_or_else(|| CrmError::internal(format_args!("lookup to unknown object {}", lookup.target)))?;
    let through = Through {
        lookup: lookup_field.name.clone(),
        column: lookup_field.column.clone(),
        schema: target.schema_in(schema).to_owned(),
        table: target.table.clone(),
        workspace_schema: schema.to_owned(),
        visible: visibility.filter(&target.name).cloned(),
    };
    Ok((target, through))
}

/// The arguments of a list field.
#[derive(Debug, Default)]
pub struct ListArgs<'a> {
    pub filter: Option<&'a Value>,
    pub order_by: Option<&'a Value>,
    pub first: Option<&'a Value>,
    pub last: Option<&'a Value>,
    pub after: Option<&'a Value>,
    pub before: Option<&'a Value>,
    pub include_deleted: Option<&'a Value>,
}

/// Checks and converts list arguments into a page request.
pub fn page_request(
    model: &Model,
    schema: &str,
    visibility: &Visibility,
    object: &ObjectDef,
    args: &ListArgs<'_>,
) -> Result<PageRequest> {
    let filter = match args.filter {
        Some(value) => filter(model, visibility, object, value, &Path::root("filter"))?,
        None => None,
    };
    let mut user_order = order(model, schema, visibility, object, args.order_by, &Path::root("orderBy"))?;
    if user_order.is_empty() {
        // The object's natural order: creation time, or e.g. a stage's position.
        if let Some(field) = object.field(&object.default_order) {
            user_order.push(OrderKey::new(field.clone(), false, None));
        }
    }
    let id = object
        .field("id")
        .ok_or_else(|| CrmError::internal(format_args!("{} has no id field", object.name)))?;
    let order = PageRequest::total_order(&user_order, id);
    let first = page_size(args.first, "first")?;
    let last = page_size(args.last, "last")?;
    let after = cursor(args.after, "after", &order)?;
    let before = cursor(args.before, "before", &order)?;
    if first.is_some() && last.is_some() {
        return Err(CrmError::bad_input(&["last"], "pass either first or last, not both"));
    }
    if last.is_some() && after.is_some() {
        return Err(CrmError::bad_input(
            &["after"],
            "page backwards with last and before; forwards with first and after",
        ));
    }
    if last.is_none() && before.is_some() {
        return Err(CrmError::bad_input(
            &["before"],
            "before pages backwards: pass last with it",
        ));
    }
    Ok(PageRequest {
        filter,
        order,
        first,
        last,
        after,
        before,
        include_deleted: matches!(args.include_deleted, Some(Value::Boolean(true))),
    })
}

fn page_size(value: Option<&Value>, name: &str) -> Result<Option<usize>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) if (0..=MAX_PAGE_SIZE as i64).contains(&n) => Ok(Some(n as usize)),
            _ => Err(CrmError::bad_input(
                &[name],
                format!("{name} must be between 0 and {MAX_PAGE_SIZE}"),
            )),
        },
        Some(_) => Err(CrmError::bad_input(&[name], format!("{name} must be an integer"))),
    }
}

fn cursor(value: Option<&Value>, name: &str, order: &[OrderKey]) -> Result<Option<Cursor>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match Cursor::decode(text, order) {
            Ok(cursor) => Ok(Some(cursor)),
            Err(CursorError::Malformed) => Err(CrmError::bad_input(
                &[name],
                format!("{name} is not a cursor from this list"),
            )),
            Err(CursorError::OtherOrder) => Err(CrmError::bad_input(
                &[name],
                format!("{name} was made for a different orderBy; pass the same orderBy as the page it came from"),
            )),
        },
        Some(_) => Err(CrmError::bad_input(&[name], format!("{name} must be a cursor string"))),
    }
}

/// A value given for a field (a default), checked as a write would check
/// it, in the form the API shows.
pub fn checked_value(field: &FieldDef, value: &Json, path: &[String]) -> Result<Json> {
    let path = Path::from_parts(path);
    let value = Value::from_json(value.clone()).map_err(|_| path.error("not a JSON value"))?;
    if matches!(value, Value::Null) {
        return Err(path.error("a default cannot be null; leave it out"));
    }
    let bind = assignment(field, &value, &path)?;
    Ok(match bind {
        Bind::Text(v) | Bind::Decimal(v) => v.map(Json::String).unwrap_or(Json::Null),
        Bind::Int(v) => v.map(Json::from).unwrap_or(Json::Null),
        Bind::Bool(v) => v.map(Json::Bool).unwrap_or(Json::Null),
        Bind::Date(v) => v.map(|d| Json::String(d.to_string())).unwrap_or(Json::Null),
        Bind::DateTime(v) => v
            .map(|t| Json::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)))
            .unwrap_or(Json::Null),
        Bind::TextArray(v) => v
            .map(|items| Json::Array(items.into_iter().map(Json::String).collect()))
            .unwrap_or(Json::Null),
        Bind::Json(v) => v.unwrap_or(Json::Null),
        Bind::Uuid(v) => v.map(|id| Json::String(id.to_string())).unwrap_or(Json::Null),
        Bind::UuidArray(_) | Bind::Bytes(_) => return Err(path.error("not a value this field takes")),
    })
}
