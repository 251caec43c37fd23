//! Filter inputs (`AccountFilter`) → [`Filter`]: field operators,
//! `and`/`or`/`not`, relation filters over the records the request may
//! see, and, in rules' conditions, `changed` and `previous`.

use async_graphql::Value;

use super::input::{scalar, Path};
use crate::access::Visibility;
use crate::db::sql::Bind;
use crate::error::Result;
use crate::metadata::{FieldDef, FieldKind, Model, ObjectDef};
use crate::records::filter::{ArrayMatch, Comparison, TextMatch, MAX_FILTER_VALUES};
use crate::records::{Filter, Quantifier};

/// How deep relation filters may nest (`account: { parentAccount: { … } }`).
const MAX_FILTER_NESTING: usize = 6;

/// The most values one `in`/`notIn` list may hold.
pub const MAX_IN_VALUES: usize = 5_000;

/// A filter input (`AccountFilter`) as a [`Filter`]; `None` when empty.
/// Relation filters range over the related records `visibility` lets the
/// request see, as if the others did not exist.
pub fn filter(
    model: &Model,
    visibility: &Visibility,
    object: &ObjectDef,
    value: &Value,
    path: &Path,
) -> Result<Option<Filter>> {
    let scope = Scope {
        model,
        visibility,
        rule: false,
    };
    checked_filter(&scope, object, value, path)
}

/// A rule's condition (validation and workflow rules): a filter of
/// `object` over every record, which may also say `changed: "field"` (or a
/// list: any of them changed) and `previous: { …filter… }` (the values
/// before the write) at its top level, in `and`, `or` and `not`.
pub fn rule_condition(model: &Model, object: &ObjectDef, value: &Value, path: &Path) -> Result<Option<Filter>> {
    let scope = Scope {
        model,
        visibility: &Visibility::all(),
        rule: true,
    };
    checked_filter(&scope, object, value, path)
}

fn checked_filter(scope: &Scope<'_>, object: &ObjectDef, value: &Value, path: &Path) -> Result<Option<Filter>> {
    let filter = scope.filter_at(object, value, path, 0)?;
    let values = filter.as_ref().map_or(0, Filter::values);
    if values > MAX_FILTER_VALUES {
        return Err(path.error(format!(
            "the filter carries {values} values; at most {MAX_FILTER_VALUES} are allowed"
        )));
    }
    Ok(filter)
}

/// What a filter may refer to: the workspace's objects, as far as the
/// request may see them.
struct Scope<'a> {
    model: &'a Model,
    visibility: &'a Visibility,
    /// A rule's condition: `changed` and `previous` are allowed at the top.
    rule: bool,
}

impl Scope<'_> {
    fn filter_at(&self, object: &ObjectDef, value: &Value, path: &Path, nesting: usize) -> Result<Option<Filter>> {
        let Value::Object(map) = value else {
            return match value {
                Value::Null => Ok(None),
                _ => Err(path.error("a filter must be an object")),
            };
        };
        if nesting > MAX_FILTER_NESTING {
            return Err(path.error(format!(
                "relation filters nest at most {MAX_FILTER_NESTING} levels deep"
            )));
        }
        let mut all = Vec::new();
        for (key, value) in map {
            let at = path.at(key);
            if matches!(value, Value::Null) {
                continue;
            }
            match key.as_str() {
                "and" | "or" => {
                    let Value::List(items) = value else {
                        return Err(at.error(format!("{key} takes a list of filters")));
                    };
                    let mut parts = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        parts.push(
                            self.filter_at(object, item, &at.index(i), nesting)?
                                .unwrap_or(Filter::All(vec![])),
                        );
                    }
                    all.push(if key == "and" {
                        Filter::All(parts)
                    } else {
                        Filter::Any(parts)
                    });
                }
                "not" => {
                    if let Some(inner) = self.filter_at(object, value, &at, nesting)? {
                        all.push(Filter::Not(Box::new(inner)));
                    }
                }
                "changed" if self.rule && nesting == 0 => all.push(changed(object, value, &at)?),
                "previous" if self.rule && nesting == 0 => {
                    let before = Scope { rule: false, ..*self };
                    if let Some(inner) = before.filter_at(object, value, &at, nesting)? {
                        all.push(Filter::Previous(Box::new(inner)));
                    }
                }
                _ => all.extend(self.key_conditions(object, key, value, &at, nesting)?),
            }
        }
        Ok(match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Filter::All(all)),
        })
    }

    /// The conditions one filter key stands for: a field's operators, a lookup's
    /// target filter (`account: {…}`) or a related list's quantifiers
    /// (`contacts: { some: {…} }`).
    fn key_conditions(
        &self,
        object: &ObjectDef,
        key: &str,
        value: &Value,
        at: &Path,
        nesting: usize,
    ) -> Result<Vec<Filter>> {
        if let Some(field) = object.field_by_value_key(key) {
            return field_conditions(field, value, at);
        }
        if let Some(stale_at) = stale_at(object).filter(|_| key == IS_STALE) {
            let Value::Boolean(stale) = value else {
                return Err(at.error("isStale is true or false"));
            };
            return Ok(vec![Filter::stale(&stale_at.column, *stale, chrono::Utc::now())]);
        }
        let unknown = || at.error(format!("{} has no field {key}", object.name));
        if let Some(lookup_field) = object.field(key).filter(|f| f.lookup().is_some()) {
            let lookup = lookup_field.lookup().ok_or_else(unknown)?;
            let target = self.model.object(&lookup.target).ok_or_else(unknown)?;
            return Ok(self
                .filter_at(target, value, at, nesting + 1)?
                .map(|inner| Filter::Related {
                    schema: target.schema.clone(),
                    table: target.table.clone(),
                    related_column: "id".into(),
                    outer_column: lookup_field.column.clone(),
                    quantifier: Quantifier::Some,
                    inner: Box::new(inner),
                    visible: self.visible(target),
                })
                .into_iter()
                .collect());
        }
        let relation = self
            .model
            .inverse_relations(&object.name)
            .into_iter()
            .find(|r| r.name == key)
            .ok_or_else(unknown)?;
        let Value::Object(quantifiers) = value else {
            return Err(at.error(format!("{key} takes {{ some, none, every }}")));
        };
        let mut out = Vec::new();
        for (name, inner) in quantifiers {
            let quantifier = match name.as_str() {
                "some" => Quantifier::Some,
                "none" => Quantifier::None,
                "every" => Quantifier::Every,
                other => return Err(at.at(other).error(format!("{other} is not one of some, none, every"))),
            };
            // An empty condition matches every related record.
            let inner = self
                .filter_at(&relation.child, inner, &at.at(name), nesting + 1)?
                .unwrap_or(Filter::All(vec![]));
            out.push(Filter::Related {
                schema: relation.child.schema.clone(),
                table: relation.child.table.clone(),
                related_column: relation.lookup.column.clone(),
                outer_column: "id".into(),
                quantifier,
                inner: Box::new(inner),
                visible: self.visible(&relation.child),
            });
        }
        Ok(out)
    }

    /// The rows of `object` the request may see, when not all.
    fn visible(&self, object: &ObjectDef) -> Option<Box<Filter>> {
        self.visibility.filter(&object.name).cloned().map(Box::new)
    }
}

/// `changed: "field"` or `changed: ["a", "b"]`: any of the fields changed.
fn changed(object: &ObjectDef, value: &Value, at: &Path) -> Result<Filter> {
    let names: Vec<&Value> = match value {
        Value::List(items) if !items.is_empty() => items.iter().collect(),
        Value::String(_) => vec![value],
        _ => return Err(at.error("changed takes a field's name or a list of them")),
    };
    let mut columns = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let Value::String(name) = name else {
            return Err(at.index(i).error("changed takes field names"));
        };
        let field = object
            .field(name)
            .or_else(|| object.field_by_value_key(name))
            .ok_or_else(|| at.error(format!("{} has no field {name}", object.name)))?;
        columns.push(field.column.clone());
    }
    Ok(Filter::Changed(columns))
}

/// The filter key of records past their `staleAt` (deals no one moved or
/// worked on for their pipeline's days), on objects having one.
pub const IS_STALE: &str = "isStale";
const STALE_AT: &str = "staleAt";

/// The standard field `isStale` tests, when `object` has one (a custom
/// field of that name does not count).
pub fn stale_at(object: &ObjectDef) -> Option<&FieldDef> {
    object
        .field(STALE_AT)
        .filter(|f| !f.custom && f.kind == crate::metadata::FieldKind::DateTime)
}

fn field_conditions(field: &FieldDef, ops: &Value, path: &Path) -> Result<Vec<Filter>> {
    let Value::Object(ops) = ops else {
        return Err(path.error("a field filter must be an object of operators"));
    };
    let column = field.column.clone();
    let mut out = Vec::new();
    for (op, operand) in ops {
        let at = path.at(op);
        if matches!(operand, Value::Null) {
            return Err(at.error("use isNull to match empty values; an operator cannot take null"));
        }
        let compare = |op| -> Result<Filter> {
            Ok(Filter::Compare {
                column: column.clone(),
                op,
                value: scalar(field, operand, &at)?,
            })
        };
        let text = |op| -> Result<Filter> {
            match operand {
                Value::String(pattern)
                    if matches!(op, TextMatch::Like | TextMatch::ILike) && ends_with_escape(pattern) =>
                {
                    Err(at.error(
                        "a like pattern cannot end with the escape character \\: write \\\\ to match a backslash",
                    ))
                }
                Value::String(pattern) => Ok(Filter::Text {
                    column: column.clone(),
                    op,
                    pattern: pattern.clone(),
                }),
                _ => Err(at.error("a text pattern must be a string")),
            }
        };
        out.push(match op.as_str() {
            "eq" => compare(Comparison::Eq)?,
            "neq" => compare(Comparison::Neq)?,
            "gt" => compare(Comparison::Gt)?,
            "gte" => compare(Comparison::Gte)?,
            "lt" => compare(Comparison::Lt)?,
            "lte" => compare(Comparison::Lte)?,
            "in" | "notIn" => {
                let Value::List(items) = operand else {
                    return Err(at.error(format!("{op} takes a list")));
                };
                if items.len() > MAX_IN_VALUES {
                    return Err(at.error(format!(
                        "{op} takes at most {MAX_IN_VALUES} values, not {}",
                        items.len()
                    )));
                }
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| scalar(field, item, &at.index(i)))
                    .collect::<Result<Vec<_>>>()?;
                Filter::In {
                    column: column.clone(),
                    values,
                    negated: op == "notIn",
                }
            }
            "isNull" => match operand {
                Value::Boolean(is_null) => Filter::IsNull {
                    column: column.clone(),
                    is_null: *is_null,
                },
                _ => return Err(at.error("isNull takes true or false")),
            },
            "containsAny" | "containsAll" | "containsNone" => {
                let Bind::TextArray(Some(values)) = scalar(field, operand, &at)? else {
                    return Err(at.error(format!("{op} takes a list of values")));
                };
                let op = match op.as_str() {
                    "containsAny" => ArrayMatch::Any,
                    "containsAll" => ArrayMatch::All,
                    _ => ArrayMatch::None,
                };
                Filter::Array {
                    column: column.clone(),
                    op,
                    values,
                }
            }
            "contains" if field.kind == FieldKind::Json => Filter::JsonContains {
                column: column.clone(),
                value: operand
                    .clone()
                    .into_json()
                    .map_err(|_| at.error("contains takes a JSON value"))?,
            },
            "like" => text(TextMatch::Like)?,
            "ilike" => text(TextMatch::ILike)?,
            "startsWith" => text(TextMatch::StartsWith)?,
            "contains" => text(TextMatch::Contains)?,
            other => return Err(at.error(format!("unknown filter operator {other}"))),
        });
    }
    Ok(out)
}

/// Whether a LIKE pattern ends in an unescaped `\`, which PostgreSQL refuses.
fn ends_with_escape(pattern: &str) -> bool {
    pattern.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}
