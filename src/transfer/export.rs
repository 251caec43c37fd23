//! Exports: the records of an object as CSV, streamed by PostgreSQL's
//! `COPY (SELECT …) TO STDOUT` from a connection of the export's own, with
//! the list query's filter and order and the caller's record visibility;
//! no row cap, and memory flat whatever the size. Values are written the
//! way an import reads them back (dates ISO 8601, instants RFC 3339 in
//! UTC, multi-select values `A;B`), so an export imported with UPSERT on
//! `id` changes nothing.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::Target;
use crate::db::sql::Sql;
use crate::error::{CrmError, Result};
use crate::metadata::{FieldDef, FieldKind, ObjectDef};
use crate::records::page::{order_by, OrderKey};
use crate::records::{self, Filter, Table};

/// How lookups are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookups {
    /// The referred record's id, under `accountId`: what an import on
    /// ids reads back.
    Ids,
    /// The referred record's name (its title), under `account`.
    Names,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    /// The fields, in column order; every field but the system ones (and
    /// `id` first) when empty.
    pub fields: Vec<FieldDef>,
    pub filter: Option<Filter>,
    pub order: Vec<OrderKey>,
    pub lookups: Lookups,
}

/// The fields an export writes when none are named: `id`, then every
/// field a file can fill.
pub fn default_fields(object: &ObjectDef) -> Vec<FieldDef> {
    object
        .fields
        .iter()
        .filter(|f| f.kind == FieldKind::Id || !f.system)
        .cloned()
        .collect()
}

/// The header of a field's column.
pub fn header(field: &FieldDef, lookups: Lookups) -> String {
    match (field.lookup(), lookups) {
        (Some(_), Lookups::Ids) => field.value_key(),
        _ => field.name.clone(),
    }
}

/// The value of a field as the file writes it.
fn column(target: &Target, field: &FieldDef, lookups: Lookups) -> Sql {
    let mut sql = Sql::new();
    match &field.kind {
        FieldKind::DateTime => {
            sql.push("to_char(t.").ident(&field.column);
            sql.push(" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
        }
        FieldKind::MultiPicklist(_) => {
            sql.push("array_to_string(t.").ident(&field.column).push(", ';')");
        }
        FieldKind::Boolean => {
            sql.push("CASE WHEN t.")
                .ident(&field.column)
                .push(" THEN 'true' WHEN NOT t.");
            sql.ident(&field.column).push(" THEN 'false' END");
        }
        FieldKind::Lookup(lookup) if lookups == Lookups::Names => match target.model.object(&lookup.target) {
            Some(related) => {
                // Only a record the caller may see is named (a list shows
                // no other), as the API would.
                let table = Table::new(&target.schema, related).restricted(&target.visibility);
                sql.push("(SELECT ").append(&records::title(related, "l"));
                sql.append(&table.from_as("l"))
                    .push(" WHERE l.id = t.")
                    .ident(&field.column);
                sql.push(" AND ").append(&table.rows(false, "l")).push(")");
            }
            None => {
                sql.push("t.").ident(&field.column);
            }
        },
        _ => {
            sql.push("t.").ident(&field.column).push("::text");
        }
    }
    sql.push(" AS ").ident(&header(field, lookups));
    sql
}

/// The `COPY` statement of an export.
pub fn statement(target: &Target, object: &ObjectDef, request: &Request) -> Result<String> {
    let table = Table::new(&target.schema, object).restricted(&target.visibility);
    let fields = if request.fields.is_empty() {
        default_fields(object)
    } else {
        request.fields.clone()
    };
    let columns: Vec<Sql> = fields.iter().map(|f| column(target, f, request.lookups)).collect();
    let mut select = Sql::raw("COPY (SELECT ");
    select.join(&columns, ", ").append(&table.from_as("t"));
    select.push(" WHERE ").append(&table.rows(false, "t"));
    if let Some(filter) = &request.filter {
        select
            .push(" AND (")
            .append(&filter.compile(&target.schema, "t"))
            .push(")");
    }
    let id = object
        .field("id")
        .ok_or_else(|| CrmError::internal("an object without id"))?;
    let order = crate::records::PageRequest::total_order(&request.order, id);
    select.push(" ORDER BY ").append(&order_by(&order, "t"));
    select.push(") TO STDOUT (FORMAT csv, HEADER true, ENCODING 'UTF8')");
    select
        .inline()
        .ok_or_else(|| CrmError::bad_input(&["filter"], "the filter holds a NUL character"))
}

/// Streams the export as CSV bytes.
pub async fn stream(
    target: &Target,
    object: &ObjectDef,
    request: &Request,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    crate::access::require(&target.actor, object, crate::access::Operation::Read)?;
    let statement = statement(target, object, request)?;
    let connection = target.db.dedicated().await?;
    let client = &connection.client;
    client
        .batch_execute("SET standard_conforming_strings = on")
        .await
        .map_err(|err| CrmError::internal(format_args!("preparing an export: {err}")))?;
    let rows = client
        .copy_out(statement.as_str())
        .await
        .map_err(|err| CrmError::internal(format_args!("starting an export: {err}")))?;
    // The connection lives as long as the stream: dropping it would end the copy.
    Ok(rows.map(move |chunk| {
        let _connection = &connection;
        chunk.map_err(std::io::Error::other)
    }))
}

/// An export's fields, filter, order and lookups as a query string (or
/// the command line) gives them: `filter` and `orderBy` in JSON as the
/// list query takes them, `fields` comma-separated API names, `lookups`
/// `ids` or `names`.
pub fn request(
    target: &Target,
    object: &ObjectDef,
    params: &std::collections::HashMap<String, String>,
) -> Result<Request> {
    use crate::graphql::input::{self, Path};
    let json = |name: &str| -> Result<Option<async_graphql::Value>> {
        let Some(text) = params.get(name) else {
            return Ok(None);
        };
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|err| CrmError::bad_input(&[name], format!("{name} is not JSON: {err}")))?;
        async_graphql::Value::from_json(json)
            .map(Some)
            .map_err(|_| CrmError::bad_input(&[name], format!("{name} is not a JSON value")))
    };
    let filter = match json("filter")? {
        Some(value) => input::filter(&target.model, &target.visibility, object, &value, &Path::root("filter"))?,
        None => None,
    };
    let order = match json("orderBy")? {
        Some(value) => input::order(
            &target.model,
            &target.schema,
            &target.visibility,
            object,
            Some(&value),
            &Path::root("orderBy"),
        )?,
        None => Vec::new(),
    };
    let lookups = match params.get("lookups").map(|l| l.to_ascii_lowercase()).as_deref() {
        None | Some("ids") => Lookups::Ids,
        Some("names") => Lookups::Names,
        Some(_) => return Err(CrmError::bad_input(&["lookups"], "lookups is ids or names")),
    };
    let mut fields = Vec::new();
    for name in params
        .get("fields")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
    {
        if name.is_empty() {
            continue;
        }
        let field = object
            .fields
            .iter()
            .find(|f| f.name == name || f.value_key() == name)
            .ok_or_else(|| CrmError::bad_input(&["fields"], format!("{} has no field {name:?}", object.name)))?;
        fields.push(field.clone());
    }
    Ok(Request {
        fields,
        filter,
        order,
        lookups,
    })
}

/// A vCard version as `3.0` / `4.0` (or `3` / `4`) names it.
pub fn vcard_version(text: &str) -> Result<calcard::vcard::VCardVersion> {
    match text.trim() {
        "3" | "3.0" => Ok(calcard::vcard::VCardVersion::V3_0),
        "4" | "4.0" => Ok(calcard::vcard::VCardVersion::V4_0),
        _ => Err(CrmError::bad_input(&["vcardVersion"], "vcardVersion is 3.0 or 4.0")),
    }
}

/// Streams contacts as vCards of `version`, with the request's filter and
/// order: the CSV export of the fields a card holds, turned into cards a
/// row at a time on a blocking thread.
pub async fn vcards(
    target: &Target,
    object: &ObjectDef,
    request: &Request,
    version: calcard::vcard::VCardVersion,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    if object.name != "Contact" {
        return Err(CrmError::bad_input(
            &["format"],
            format!("vCards hold contacts, not {}", object.plural),
        ));
    }
    let fields = super::vcard::exported()
        .into_iter()
        .filter_map(|name| object.field(name).cloned())
        .collect();
    let request = Request {
        fields,
        lookups: Lookups::Names,
        ..request.clone()
    };
    let mut rows = Box::pin(stream(target, object, &request).await?);
    let (chunks, received) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(chunk) = rows.next().await {
            if chunks.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let (cards, out) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut reader = csv::Reader::from_reader(super::reader::ChannelReader::new(received));
        for record in reader.records() {
            let card = match record {
                Ok(record) => {
                    let cells: Vec<String> = record.iter().map(str::to_owned).collect();
                    Ok(Bytes::from(super::vcard::card(&cells, version)))
                }
                Err(err) => Err(std::io::Error::other(err)),
            };
            let failed = card.is_err();
            if cards.blocking_send(card).is_err() || failed {
                return;
            }
        }
    });
    Ok(futures_util::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|card| (card, out))
    }))
}
