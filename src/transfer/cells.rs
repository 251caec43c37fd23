//! One cell of a file as a value of its field: read in the file's formats
//! (dates, decimal commas, yes/no, picklist labels), then checked by the
//! very checks a mutation's input goes through (`graphql::input`), and
//! written as the text PostgreSQL casts to the column's type.

use async_graphql::{Name, Value};
use chrono::{NaiveDate, NaiveDateTime, SecondsFormat};

use crate::db::sql::Bind;
use crate::error::CrmError;
use crate::graphql::input::{self, Path};
use crate::metadata::{FieldDef, FieldKind};

/// How the file writes dates and numbers.
#[derive(Debug, Clone, Default)]
pub struct Formats {
    /// A `chrono` format for dates (`%d.%m.%Y`, `%m/%d/%Y`); ISO 8601
    /// (`2026-11-30`) is always read too.
    pub date: Option<String>,
    /// Numbers as `1.234,56`: a comma before the decimals.
    pub decimal_comma: bool,
}

/// Why a cell was refused: a code for programs, a message for people.
#[derive(Debug, Clone)]
pub struct CellError {
    pub code: &'static str,
    pub message: String,
}

impl CellError {
    fn invalid(message: impl Into<String>) -> Self {
        CellError {
            code: "INVALID_VALUE",
            message: message.into(),
        }
    }
}

/// The staged text of a non-empty cell of `field`, as its column's type
/// reads it. Lookups are staged as written (an id, external id or name,
/// matched later against the target's records).
pub fn staged(field: &FieldDef, text: &str, formats: &Formats) -> Result<String, CellError> {
    let text = text.trim();
    if field.lookup().is_some() {
        if text.chars().count() > 1000 || text.contains('\0') {
            return Err(CellError::invalid("not an id, external id or name of a record"));
        }
        return Ok(text.to_owned());
    }
    if field.kind == FieldKind::Id {
        return text
            .parse::<uuid::Uuid>()
            .map(|id| id.to_string())
            .map_err(|_| CellError::invalid(format!("{text:?} is not a record id (a UUID)")));
    }
    let value = value(field, text, formats)?;
    let path = Path::root(&field.name);
    let bind = input::assignment(field, &value, &path).map_err(|err| match err {
        CrmError::BadUserInput { message, .. } => CellError::invalid(message),
        other => CellError::invalid(other.to_string()),
    })?;
    Ok(text_of(bind))
}

/// A field's metadata default (or an import's default value) checked as
/// a cell: `None` when it has none.
pub fn default_of(field: &FieldDef, value: &serde_json::Value, formats: &Formats) -> Result<String, CellError> {
    match value {
        serde_json::Value::String(text) => staged(field, text, formats),
        serde_json::Value::Null => Err(CellError::invalid("a default cannot be null")),
        other => staged(field, &other.to_string(), formats),
    }
}

/// The GraphQL value a cell stands for, read in the file's formats.
fn value(field: &FieldDef, text: &str, formats: &Formats) -> Result<Value, CellError> {
    Ok(match &field.kind {
        FieldKind::Integer => {
            let digits: String = text
                .chars()
                .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\'' | '_'))
                .collect();
            let digits = if formats.decimal_comma {
                digits.replace('.', "")
            } else {
                digits.replace(',', "")
            };
            let n: i64 = digits
                .parse()
                .map_err(|_| CellError::invalid(format!("{text:?} is not a whole number")))?;
            Value::from(n)
        }
        kind if kind.is_decimal() => Value::String(decimal(text, formats.decimal_comma)),
        FieldKind::Boolean => Value::Boolean(boolean(text)?),
        FieldKind::Date => Value::String(date(text, formats)?.to_string()),
        FieldKind::DateTime => Value::String(datetime(text, formats)?),
        FieldKind::Picklist(options) => Value::Enum(Name::new(option(options, text))),
        FieldKind::MultiPicklist(options) => Value::List(
            split_list(text)
                .map(|item| Value::Enum(Name::new(option(options, item))))
                .collect(),
        ),
        FieldKind::Json => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|err| CellError::invalid(format!("not a JSON value: {err}")))?;
            if json.to_string().contains("\\u0000") {
                return Err(CellError::invalid("JSON text cannot hold the character U+0000"));
            }
            Value::from_json(json).map_err(|_| CellError::invalid("not a JSON value"))?
        }
        _ => Value::String(text.to_owned()),
    })
}

/// `1.234,56` (with a decimal comma) or `1,234.56` as `1234.56`; currency
/// signs and a percent sign around it are left out.
fn decimal(text: &str, decimal_comma: bool) -> String {
    let kept: String = text
        .trim_matches(|c: char| matches!(c, '$' | '€' | '£' | '¥' | '%') || c.is_whitespace())
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\'' | '_'))
        .collect();
    if decimal_comma {
        kept.replace('.', "").replace(',', ".")
    } else {
        kept.replace(',', "")
    }
}

fn boolean(text: &str) -> Result<bool, CellError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" | "x" | "on" | "wahr" | "ja" | "oui" | "sí" | "si" => Ok(true),
        "false" | "f" | "no" | "n" | "0" | "off" | "falsch" | "nein" | "non" => Ok(false),
        _ => Err(CellError::invalid(format!(
            "{text:?} is not yes or no (true/false, 1/0)"
        ))),
    }
}

fn date(text: &str, formats: &Formats) -> Result<NaiveDate, CellError> {
    let iso = text.get(..10).unwrap_or(text);
    if let Ok(date) = NaiveDate::parse_from_str(iso, "%Y-%m-%d") {
        return Ok(date);
    }
    if let Some(format) = &formats.date {
        if let Ok(date) = NaiveDate::parse_from_str(text, format) {
            return Ok(date);
        }
        return Err(CellError::invalid(format!(
            "{text:?} is not a date in the format {format}"
        )));
    }
    Err(CellError::invalid(format!(
        "{text:?} is not a date as YYYY-MM-DD; name the file's format with dateFormat (\"%d.%m.%Y\", \"%m/%d/%Y\")"
    )))
}

/// RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC), PostgreSQL's own output, or a
/// date alone (midnight UTC).
fn datetime(text: &str, formats: &Formats) -> Result<String, CellError> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc().to_rfc3339_opts(SecondsFormat::Micros, true));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(at) = chrono::DateTime::parse_from_str(text, format) {
            return Ok(at.to_utc().to_rfc3339_opts(SecondsFormat::Micros, true));
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true));
        }
    }
    match date(text, formats) {
        Ok(day) => Ok(day
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Micros, true)),
        Err(_) => Err(CellError::invalid(format!(
            "{text:?} is not a date-time such as 2026-11-30T09:30:00Z or 2026-11-30 09:30"
        ))),
    }
}

/// The API value of a picklist option named by its value or its label
/// (any case); the text itself when none is (the check then refuses it
/// and names the field).
fn option(options: &[crate::metadata::PicklistOption], text: &str) -> String {
    let text = text.trim();
    options
        .iter()
        .find(|o| o.value == text)
        .or_else(|| {
            options
                .iter()
                .find(|o| o.value.eq_ignore_ascii_case(text) || o.label.eq_ignore_ascii_case(text))
        })
        .map(|o| o.value.clone())
        .unwrap_or_else(|| text.to_owned())
}

/// The items of a multi-select cell: `A;B`, or PostgreSQL's `{A,B}`.
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    let (inner, separator) = match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        Some(inner) => (inner, ','),
        None => (text, ';'),
    };
    inner
        .split(separator)
        .map(|item| item.trim().trim_matches('"'))
        .filter(|item| !item.is_empty())
}

/// A checked value as the text PostgreSQL reads back into its column.
pub fn text_of(bind: Bind) -> String {
    match bind {
        Bind::Text(v) | Bind::Decimal(v) => v.unwrap_or_default(),
        Bind::Int(v) => v.map(|n| n.to_string()).unwrap_or_default(),
        Bind::Bool(v) => v.map(|b| b.to_string()).unwrap_or_default(),
        Bind::Date(v) => v.map(|d| d.to_string()).unwrap_or_default(),
        Bind::DateTime(v) => v
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
            .unwrap_or_default(),
        Bind::TextArray(v) => array_literal(&v.unwrap_or_default()),
        Bind::Json(v) => v.map(|j| j.to_string()).unwrap_or_default(),
        Bind::Uuid(v) => v.map(|id| id.to_string()).unwrap_or_default(),
        Bind::UuidArray(ids) => array_literal(&ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
        Bind::Bytes(_) => String::new(),
    }
}

/// `{"A","B"}`: a text array as PostgreSQL reads it.
fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// The SQL type a staged text is cast to for `field`'s column.
pub fn cast(field: &FieldDef) -> &'static str {
    match field.kind {
        FieldKind::Id | FieldKind::Lookup(_) => "uuid",
        FieldKind::Integer => "integer",
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => "numeric",
        FieldKind::Boolean => "boolean",
        FieldKind::Date => "date",
        FieldKind::DateTime => "timestamptz",
        FieldKind::MultiPicklist(_) => "text[]",
        FieldKind::Json => "jsonb",
        _ => "text",
    }
}
