//! Placeholders in email templates and in the values workflow rules write:
//! `{{lead.firstName}}` is a field of the record (`record.firstName`
//! too), `{{lead.owner.email}}` a field of a record it looks up, and
//! `{{lead.firstName|there}}` falls back to `there` when the value is
//! empty. Checked against the model when a template or rule is saved;
//! filled from the record when it is used. Picklists show their labels.

use std::collections::HashMap;

use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::error::Result;
use crate::graphql::input::Path;
use crate::metadata::{lower_first, FieldDef, FieldKind, Model, ObjectDef};
use crate::records::{FieldSet, Record, Table};

/// The longest placeholder read; longer `{{…}}` text is kept as it is.
const MAX_PLACEHOLDER: usize = 200;

/// One `{{…}}` of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The names after the object's: `["firstName"]`, `["owner", "email"]`.
    pub path: Vec<String>,
    pub fallback: Option<String>,
}

/// The pieces of a text: literal text and placeholders, in order.
enum Piece<'t> {
    Text(&'t str),
    Placeholder(Placeholder, &'t str),
}

fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start + 2..].find("}}").filter(|n| *n <= MAX_PLACEHOLDER) else {
            break;
        };
        out.push(Piece::Text(&rest[..start]));
        let raw = &rest[start..start + 2 + length + 2];
        let inner = &rest[start + 2..start + 2 + length];
        let (path, fallback) = match inner.split_once('|') {
            Some((path, fallback)) => (path, Some(fallback.trim().to_owned())),
            None => (inner, None),
        };
        let path: Vec<String> = path.trim().split('.').map(|p| p.trim().to_owned()).collect();
        out.push(Piece::Placeholder(Placeholder { path, fallback }, raw));
        rest = &rest[start + 2 + length + 2..];
    }
    out.push(Piece::Text(rest));
    out
}

/// The placeholders of `text`, each with its path after the object's name
/// checked against `object`; `at` names the text in errors.
pub fn check(model: &Model, object: &ObjectDef, text: &str, at: &Path) -> Result<Vec<Placeholder>> {
    let own = lower_first(&object.name);
    let mut found = Vec::new();
    for piece in pieces(text) {
        let Piece::Placeholder(mut placeholder, raw) = piece else {
            continue;
        };
        let unknown = |why: String| at.error(format!("{raw}: {why}"));
        match placeholder.path.first().map(String::as_str) {
            Some(first) if first == own || first == "record" => {}
            _ => return Err(unknown(format!("placeholders start with {own}. or record."))),
        }
        placeholder.path.remove(0);
        resolve(model, object, &placeholder.path).map_err(unknown)?;
        found.push(placeholder);
    }
    Ok(found)
}

/// Checks the placeholders of every string in a JSON value.
pub fn check_all(model: &Model, object: &ObjectDef, value: &Json, at: &Path) -> Result<()> {
    match value {
        Json::String(text) => check(model, object, text, at).map(drop),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_all(model, object, item, &at.index(i))),
        Json::Object(map) => map
            .iter()
            .try_for_each(|(key, item)| check_all(model, object, item, &at.at(key))),
        _ => Ok(()),
    }
}

/// The field a path names: a field of `object`, or a field of the record
/// one of its lookups refers to.
fn resolve<'m>(model: &'m Model, object: &'m ObjectDef, path: &[String]) -> std::result::Result<&'m FieldDef, String> {
    let field_of = |object: &'m ObjectDef, name: &str| {
        super::rules::field_named(object, name).ok_or_else(|| format!("{} has no field {name}", object.name))
    };
    match path {
        [name] => field_of(object, name),
        [lookup, name] => {
            let field = field_of(object, lookup)?;
            let target = field
                .lookup()
                .and_then(|l| model.object(&l.target))
                .ok_or_else(|| format!("{lookup} is not a lookup"))?;
            field_of(target, name)
        }
        _ => Err("a placeholder is a field, or a lookup and a field of its record".to_owned()),
    }
}

/// Replaces each placeholder of `text` by `value` of it.
pub fn render(text: &str, value: &dyn Fn(&Placeholder) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder(placeholder, _) => {
                let mut placeholder = placeholder;
                // The object's name or `record`, checked when saved.
                if !placeholder.path.is_empty() {
                    placeholder.path.remove(0);
                }
                let filled = value(&placeholder);
                if filled.is_empty() {
                    out.push_str(placeholder.fallback.as_deref().unwrap_or_default());
                } else {
                    out.push_str(&filled);
                }
            }
        }
    }
    out
}

/// Renders every string of a JSON value.
pub fn render_json(value: &Json, fill: &dyn Fn(&Placeholder) -> String) -> Json {
    match value {
        Json::String(text) => Json::String(render(text, fill)),
        Json::Array(items) => Json::Array(items.iter().map(|item| render_json(item, fill)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), render_json(item, fill)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What placeholders are filled from: the record and the records its
/// lookups refer to.
pub struct Values<'m> {
    model: &'m Model,
    object: &'m ObjectDef,
    record: Record,
    related: HashMap<String, Record>,
}

impl<'m> Values<'m> {
    /// Reads the records the placeholders of `texts` look up.
    pub async fn read(
        conn: &mut AsyncPgConnection,
        schema: &str,
        model: &'m Model,
        object: &'m ObjectDef,
        record: Record,
        texts: &[&str],
    ) -> Result<Values<'m>> {
        let mut related = HashMap::new();
        for text in texts {
            for piece in pieces(text) {
                let Piece::Placeholder(placeholder, _) = piece else {
                    continue;
                };
                let [_, lookup, _] = placeholder.path.as_slice() else {
                    continue;
                };
                let Some(field) = super::rules::field_named(object, lookup) else {
                    continue;
                };
                let key = field.value_key();
                if related.contains_key(&key) {
                    continue;
                }
                let id = record
                    .get(&key)
                    .and_then(Json::as_str)
                    .and_then(|id| Uuid::parse_str(id).ok());
                let (Some(id), Some(target)) = (id, field.lookup().and_then(|l| model.object(&l.target))) else {
                    continue;
                };
                let found =
                    crate::records::get_many(conn, Table::new(schema, target), &FieldSet::all(target), &[id]).await?;
                if let Some(found) = found.get(&id) {
                    related.insert(key, found.clone());
                }
            }
        }
        Ok(Values {
            model,
            object,
            record,
            related,
        })
    }

    /// The text a placeholder stands for ("" for an empty value).
    pub fn get(&self, placeholder: &Placeholder) -> String {
        let Ok(field) = resolve(self.model, self.object, &placeholder.path) else {
            return String::new();
        };
        let record = match placeholder.path.as_slice() {
            [_] => Some(&self.record),
            [lookup, _] => {
                super::rules::field_named(self.object, lookup).and_then(|f| self.related.get(&f.value_key()))
            }
            _ => None,
        };
        record
            .and_then(|r| r.get(&field.value_key()))
            .map(|value| shown(field, value))
            .unwrap_or_default()
    }
}

/// A value as a person reads it: a picklist's label, text as it is.
fn shown(field: &FieldDef, value: &Json) -> String {
    let label = |v: &str| match &field.kind {
        FieldKind::Picklist(options) | FieldKind::MultiPicklist(options) => options
            .iter()
            .find(|o| o.value == v)
            .map_or_else(|| v.to_owned(), |o| o.label.clone()),
        _ => v.to_owned(),
    };
    match value {
        Json::Null => String::new(),
        Json::String(text) => label(text),
        Json::Array(items) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), label))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Text made safe inside HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Text made safe as one header line: line breaks become spaces.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|ch| if ch == '\r' || ch == '\n' { ' ' } else { ch })
        .collect()
}
