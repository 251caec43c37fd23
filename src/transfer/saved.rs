//! Saved import mappings (`ImportMapping`, a promotable metadata kind):
//! checked when written, and applied to an import that names one before
//! what the import names itself.

use diesel::sql_types::{Bool, Jsonb, Nullable, Text};
use futures_util::future::BoxFuture;
use serde_json::Value as Json;

use super::{mapping, Encoding, Mode, Options, Target};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, Written};
use crate::metadata::ObjectDef;
use crate::records::Record;

#[derive(diesel::QueryableByName)]
struct Saved {
    #[diesel(sql_type = Text)]
    object: String,
    #[diesel(sql_type = Jsonb)]
    columns: Json,
    #[diesel(sql_type = Nullable<Jsonb>)]
    defaults: Option<Json>,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Nullable<Text>)]
    match_on: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    date_format: Option<String>,
    #[diesel(sql_type = Bool)]
    decimal_comma: bool,
    #[diesel(sql_type = Nullable<Text>)]
    delimiter: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    encoding: Option<String>,
}

/// Fills `options` from the workspace's live import mapping `name`; what
/// the import then names itself is applied over it.
pub async fn apply(target: &Target, name: &str, options: &mut Options) -> Result<()> {
    let mut query = Sql::raw(
        "SELECT object, columns, defaults, mode, match_on, date_format, decimal_comma, delimiter, encoding FROM ",
    );
    query.table(&target.schema, "import_mapping");
    query
        .push(" WHERE deleted_at IS NULL AND name = ")
        .bind(Bind::Text(Some(name.to_owned())));
    let mut conn = target.db.conn().await?;
    let saved: Vec<Saved> = query.load(&mut conn).await?;
    let saved = saved
        .into_iter()
        .next()
        .ok_or_else(|| CrmError::bad_input(&["savedMapping"], format!("there is no import mapping {name:?}")))?;
    let object = target.object(&options.object)?;
    if target.object(&saved.object)?.name != object.name {
        return Err(CrmError::bad_input(
            &["savedMapping"],
            format!(
                "the import mapping {name:?} is for {}, not {}",
                saved.object, object.plural
            ),
        ));
    }
    if let Some(columns) = saved.columns.as_object() {
        for (header, field) in columns {
            options
                .mapping
                .push((header.clone(), field.as_str().map(str::to_owned)));
        }
    }
    if let Some(defaults) = saved.defaults.as_ref().and_then(Json::as_object) {
        options.defaults.extend(defaults.clone());
    }
    options.mode = Mode::parse(&saved.mode).unwrap_or(Mode::Create);
    options.match_on = saved.match_on;
    options.formats.date = saved.date_format;
    options.formats.decimal_comma = saved.decimal_comma;
    options.delimiter = saved.delimiter.as_deref().and_then(delimiter);
    options.encoding = saved.encoding.as_deref().and_then(Encoding::parse);
    Ok(())
}

/// A delimiter as written: one character, or `\t` / `tab`.
pub fn delimiter(text: &str) -> Option<u8> {
    match text {
        "tab" | "\\t" | "\t" => Some(b'\t'),
        one if one.len() == 1 => Some(one.as_bytes()[0]),
        _ => None,
    }
}

/// The write hook of `ImportMapping`: its object can be imported into,
/// its columns name fields a file can fill, its defaults are values of
/// their fields.
pub fn check<'a>(
    _conn: &'a mut diesel_async::AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let record = written.record;
        if record.get("deletedAt").is_some_and(|at| !at.is_null()) {
            return Ok(None);
        }
        let at = |key: &str| -> Vec<String> { scope.at.iter().cloned().chain([key.to_owned()]).collect() };
        let name = record.get("object").and_then(Json::as_str).unwrap_or_default();
        let object: &ObjectDef = scope
            .model
            .objects()
            .iter()
            .find(|o| o.name == name && o.writable() && o.access != crate::metadata::Access::Users)
            .ok_or_else(|| CrmError::bad_input_at(at("object"), format!("{name:?} is not an object to import into")))?;
        let mut options = Options::new(&object.name);
        if let Some(columns) = record.get("columns").and_then(Json::as_object) {
            let headers: Vec<String> = columns.keys().cloned().collect();
            options.mapping = columns
                .iter()
                .map(|(header, field)| (header.clone(), field.as_str().map(str::to_owned)))
                .collect();
            mapping::resolve(object, &headers, &options)
                .map_err(|err| CrmError::bad_input_at(at("columns"), err.to_string()))?;
        }
        if let Some(defaults) = record.get("defaults").and_then(Json::as_object) {
            for (field_name, value) in defaults {
                let field = object
                    .fields
                    .iter()
                    .find(|f| (f.name == *field_name || f.value_key() == *field_name) && !f.system)
                    .ok_or_else(|| {
                        CrmError::bad_input_at(
                            at("defaults"),
                            format!("{} has no writable field {field_name:?}", object.name),
                        )
                    })?;
                super::cells::default_of(field, value, &options.formats)
                    .map_err(|err| CrmError::bad_input_at(at("defaults"), format!("{field_name}: {}", err.message)))?;
            }
        }
        if let Some(delimiter_text) = record.get("delimiter").and_then(Json::as_str) {
            if delimiter(delimiter_text).is_none() {
                return Err(CrmError::bad_input_at(
                    at("delimiter"),
                    "delimiter is one character, or \\t",
                ));
            }
        }
        if let Some(encoding) = record.get("encoding").and_then(Json::as_str) {
            if Encoding::parse(encoding).is_none() {
                return Err(CrmError::bad_input_at(at("encoding"), "encoding is UTF8 or LATIN1"));
            }
        }
        Ok(None)
    })
}
