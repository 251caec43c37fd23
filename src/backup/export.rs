//! `crm export --format ndjson`: a workspace as newline-delimited JSON,
//! readable without PostgreSQL. The first line is the workspace's metadata
//! (`{"metadata":{…}}`: the model's objects and fields, the custom objects
//! and fields, pipelines, stages and settings as stored); then one line per
//! record, `{"object":"Account","record":{…}}`, with the API's field names
//! and values as the API gives them (lookups as `<name>Id`). Everything is
//! read in one repeatable-read transaction, records through a server-side
//! cursor, so memory stays flat whatever the workspace's size.

use std::collections::BTreeMap;
use std::io::Write;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value as Json};

use super::Error;
use crate::db::sql::{Bind, JsonRow, Sql};
use crate::metadata::custom::Customizations;
use crate::metadata::{kinds, Model, ObjectDef};
use crate::records::{projection, FieldSet, Table};

/// Records read from the cursor at a time.
const BATCH: usize = 1000;

/// The name of the format in the metadata line.
pub const FORMAT: &str = "crm-ndjson";

/// Writes workspace `name` (`production` or a sandbox's) of the database
/// at `url` to `out` as NDJSON; returns the records written per object.
pub async fn workspace(url: &str, name: &str, out: &mut dyn Write) -> Result<BTreeMap<String, u64>, Error> {
    #[derive(diesel::QueryableByName)]
    struct Registered {
        #[diesel(sql_type = Text)]
        pg_schema: String,
    }
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let mut find = Sql::raw("SELECT pg_schema FROM crm_system.workspace WHERE name = ");
    find.bind(Bind::Text(Some(name.to_owned())));
    let registered: Vec<Registered> = find.load(&mut conn).await?;
    let schema = registered
        .into_iter()
        .next()
        .ok_or_else(|| Error::UnknownWorkspace(name.to_owned()))?
        .pg_schema;
    let model = Customizations::read(&mut conn, &schema).await?.model()?;
    let metadata = metadata(&mut conn, name, &schema, &model).await?;
    line(out, &json!({ "metadata": metadata }))?;
    let mut counts = BTreeMap::new();
    for object in model.objects() {
        let written = records(&mut conn, &schema, object, out).await?;
        counts.insert(object.name.clone(), written);
    }
    conn.batch_execute("COMMIT").await?;
    out.flush().map_err(write_error)?;
    Ok(counts)
}

/// The metadata line's content: the format, the workspace, the model as
/// the API shows it, and the stored metadata document.
async fn metadata(conn: &mut AsyncPgConnection, name: &str, schema: &str, model: &Model) -> Result<Json, Error> {
    let mut query = Sql::raw("SELECT ");
    query.append(&kinds::document(schema)).push(" AS row FROM ");
    query.table(schema, "workspace_settings").push(" s");
    let rows: Vec<JsonRow> = query.load(conn).await?;
    let stored = rows.into_iter().next().map(|r| r.row).unwrap_or(Json::Null);
    let objects: Vec<Json> = model.objects().iter().map(|o| object_json(o)).collect();
    Ok(json!({
        "format": FORMAT,
        "formatVersion": 1,
        "serverVersion": env!("CARGO_PKG_VERSION"),
        "exportedAt": chrono::Utc::now(),
        "workspace": name,
        "metadataVersion": stored["version"],
        "objects": objects,
        "stored": stored,
    }))
}

/// An object of the model: its names and each field's key and type.
fn object_json(object: &ObjectDef) -> Json {
    let fields: Vec<Json> = object
        .fields
        .iter()
        .map(|field| {
            json!({
                "name": field.name,
                "key": field.value_key(),
                "type": field.kind.type_name(),
                "required": field.required,
                "custom": field.custom,
                "lookupObject": field.lookup().map(|l| l.target.clone()),
            })
        })
        .collect();
    json!({
        "name": object.name,
        "plural": object.plural,
        "custom": object.custom,
        "fields": fields,
    })
}

/// Writes every row of `object` (deleted, restorable ones included, with
/// their `deletedAt`), in id order, a batch at a time from a cursor.
async fn records(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &ObjectDef,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let table = Table::new(schema, object);
    let mut declare = Sql::raw("DECLARE export_rows NO SCROLL CURSOR FOR SELECT ");
    declare
        .append(&projection(object, &FieldSet::all(object), "t"))
        .push(" AS row");
    declare.append(&table.from_as("t")).push(" ORDER BY t.id");
    declare.execute(conn).await?;
    let mut written = 0;
    loop {
        let rows: Vec<JsonRow> = Sql::raw(&format!("FETCH {BATCH} FROM export_rows")).load(conn).await?;
        let fetched = rows.len();
        for row in rows {
            line(out, &json!({ "object": object.name, "record": row.row }))?;
            written += 1;
        }
        if fetched < BATCH {
            break;
        }
    }
    conn.batch_execute("CLOSE export_rows").await?;
    Ok(written)
}

fn line(out: &mut dyn Write, value: &Json) -> Result<(), Error> {
    serde_json::to_writer(&mut *out, value).map_err(|err| write_error(err.into()))?;
    out.write_all(b"\n").map_err(write_error)
}

fn write_error(source: std::io::Error) -> Error {
    Error::Io {
        doing: "writing the export".to_owned(),
        source,
    }
}
