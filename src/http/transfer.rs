//! Files in and out over HTTP, beside the GraphQL API and with its tokens:
//!
//! - `POST /imports?object=Contact&mode=UPSERT…` streams a CSV body into an
//!   import job and answers the finished job (its progress is readable
//!   meanwhile with the `importJob`/`importJobs` queries);
//! - `GET /imports/{id}/errors.csv`: a job's error file;
//! - `GET /exports/{object}?filter=…&orderBy=…&fields=…&lookups=names`:
//!   the records as CSV, streamed (`format=vcard&vcardVersion=3.0`:
//!   contacts as vCards).
//!
//! Each also under `/sandboxes/{name}/…` for a sandbox.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::RequestPartsExt;
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::workspace::Endpoint;
use super::{HttpError, Shared};
use crate::audit::Trail;
use crate::auth::{Actor, Role};
use crate::error::CrmError;
use crate::records::Visibility;
use crate::transfer::export;
use crate::transfer::{self, job, Encoding, Job, Mode, OnError, Options, Progress, Target};

type Params = HashMap<String, String>;

/// The caller, and where (production or the sandbox the path names) the
/// request works.
async fn target(app: &Arc<Shared>, path: &Params, parts: &mut axum::http::request::Parts) -> Result<Target, HttpError> {
    let actor: Actor = parts.extract_with_state(app).await?;
    let endpoint = match path.get("name") {
        Some(name) => Endpoint::Sandbox(name.clone()),
        None => Endpoint::Production,
    };
    let workspace = endpoint.resolve(app, &actor).await?;
    let entry = app
        .schemas
        .get(&app.db, &workspace)
        .await
        .map_err(HttpError::unavailable)?;
    let visibility = Visibility::of(&actor, entry.record_visibility.get(), &entry.model);
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Target {
        db: app.db.clone(),
        schema: workspace.pg_schema.clone(),
        model: entry.model.clone(),
        actor: actor.clone(),
        visibility,
        trail: Trail {
            actor: Some(actor),
            request_id,
            workspace: workspace.name.clone(),
            automated: false,
        },
    })
}

fn bad(field: &str, message: impl Into<String>) -> HttpError {
    CrmError::bad_input(&[field], message).into()
}

/// The import's options from the query string: a saved mapping's
/// (`savedMapping`) first, what the query names over it.
async fn options(target: &Target, query: &Params) -> Result<Options, HttpError> {
    let object = query
        .get("object")
        .ok_or_else(|| bad("object", "name the object to import into: ?object=Contact"))?;
    let mut options = Options::new(object);
    if let Some(name) = query.get("savedMapping") {
        transfer::saved::apply(target, name, &mut options).await?;
    }
    if let Some(mode) = query.get("mode") {
        options.mode = Mode::parse(mode).ok_or_else(|| bad("mode", "mode is CREATE, UPSERT or UPDATE"))?;
    }
    if let Some(field) = query.get("matchOn") {
        options.match_on = Some(field.clone());
    }
    if let Some(policy) = query.get("onError") {
        options.on_error = OnError::parse(policy).ok_or_else(|| bad("onError", "onError is SKIP or ABORT"))?;
    }
    options.dry_run = matches!(query.get("dryRun").map(String::as_str), Some("true" | "1"));
    if let Some(encoding) = query.get("encoding") {
        options.encoding =
            Some(Encoding::parse(encoding).ok_or_else(|| bad("encoding", "encoding is UTF8 or LATIN1"))?);
    }
    if let Some(delimiter) = query.get("delimiter") {
        let delimiter = transfer::saved::delimiter(delimiter)
            .ok_or_else(|| bad("delimiter", "delimiter is one character (or tab)"))?;
        options.delimiter = Some(delimiter);
    }
    if let Some(date) = query.get("dateFormat") {
        options.formats.date = Some(date.clone());
    }
    if let Some(comma) = query.get("decimalComma") {
        options.formats.decimal_comma = matches!(comma.as_str(), "true" | "1");
    }
    if let Some(mapping) = query.get("mapping") {
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(mapping)
            .map_err(|_| bad("mapping", "mapping is a JSON object: {\"header\": \"field\" or null}"))?;
        for (header, field) in parsed {
            let field = match field {
                serde_json::Value::String(field) => Some(field),
                serde_json::Value::Null => None,
                _ => {
                    return Err(bad(
                        "mapping",
                        format!("the field of {header:?} is a field's API name or null"),
                    ))
                }
            };
            options.mapping.push((header, field));
        }
    }
    if let Some(defaults) = query.get("defaults") {
        let defaults: serde_json::Map<String, serde_json::Value> = serde_json::from_str(defaults)
            .map_err(|_| bad("defaults", "defaults is a JSON object: {\"field\": value}"))?;
        options.defaults.extend(defaults);
    }
    options.file_name = query.get("fileName").cloned();
    Ok(options)
}

/// A job as the HTTP answers show it.
pub(super) fn job_json(job: &Job, errors_url: &str) -> serde_json::Value {
    json!({
        "id": job.id,
        "object": job.object,
        "mode": job.mode,
        "matchOn": job.match_on,
        "dryRun": job.dry_run,
        "status": {
            "state": job.state,
            "rowsRead": job.rows_read,
            "rowsImported": job.rows_created + job.rows_updated,
            "rowsCreated": job.rows_created,
            "rowsUpdated": job.rows_updated,
            "rowsUnchanged": job.rows_unchanged,
            "rowsFailed": job.rows_failed,
            "warnings": job.warnings,
        },
        "message": job.message,
        "mapping": job.mapping,
        "errorFileUrl": errors_url,
    })
}

/// `POST /imports`: the body is the file, read as it arrives.
pub(super) async fn import(
    State(app): State<Arc<Shared>>,
    path: Option<Path<Params>>,
    Query(query): Query<Params>,
    request: Request,
) -> Result<Response, HttpError> {
    let path = path.map(|Path(p)| p).unwrap_or_default();
    let (mut parts, body) = request.into_parts();
    let target = target(&app, &path, &mut parts).await?;
    let options = options(&target, &query).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            if sender.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                break;
            }
        }
    });
    let source = Box::new(transfer::reader::ChannelReader::new(receiver));
    let job = transfer::import(&target, options, source, Progress::new()).await?;
    if let Some(replicas) = &app.replicas {
        // The importer's reads wait for what it imported.
        replicas.wrote(target.actor.token_id).await;
    }
    let base = super::graphql::base_url(&app, &parts.headers).unwrap_or_default();
    let url = format!("{base}{}", job::error_file_path(&target.trail.workspace, job.id));
    Ok((StatusCode::OK, axum::Json(json!({ "importJob": job_json(&job, &url) }))).into_response())
}

/// `GET /imports/{id}/errors.csv`: the job's error file.
pub(super) async fn errors(
    State(app): State<Arc<Shared>>,
    Path(path): Path<Params>,
    request: Request,
) -> Result<Response, HttpError> {
    let (mut parts, _) = request.into_parts();
    let target = target(&app, &path, &mut parts).await?;
    let id: Uuid = path
        .get("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| HttpError::from(CrmError::not_found("ImportJob", path.get("id").map_or("", |v| v))))?;
    let mut conn = app.db.conn().await.map_err(HttpError::unavailable)?;
    let job = job::get(&mut conn, &target.schema, id)
        .await?
        .filter(|job| target.actor.role == Role::Admin || job.created_by == Some(target.actor.user_id))
        .ok_or_else(|| HttpError::from(CrmError::not_found("ImportJob", id.to_string())))?;
    drop(conn);
    // A page of errors at a time, however many the file has.
    let header = Some(b"row,column,value,code,message,warning\n".to_vec());
    let pages = futures_util::stream::unfold(
        (app.db.clone(), target.schema.clone(), job.id, header, None, false),
        |(db, schema, job, header, after, done)| async move {
            if let Some(header) = header {
                return Some((Ok(bytes::Bytes::from(header)), (db, schema, job, None, after, done)));
            }
            if done {
                return None;
            }
            let page = async {
                let mut conn = db.conn().await?;
                job::errors_after(&mut conn, &schema, job, after, Some(ERRORS_PAGE)).await
            }
            .await;
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    return Some((
                        Err(std::io::Error::other(err.to_string())),
                        (db, schema, job, None, after, true),
                    ))
                }
            };
            let last = page.last().map(|(id, e)| (e.row_number, *id));
            let done = page.len() < ERRORS_PAGE;
            if page.is_empty() {
                return None;
            }
            Some((
                Ok(bytes::Bytes::from(error_lines(page))),
                (db, schema, job, None, last, done),
            ))
        },
    );
    Ok(csv_response(
        Body::from_stream(pages),
        &format!("import-{id}-errors.csv"),
    ))
}

/// Errors an error file reads at a time.
const ERRORS_PAGE: usize = 5_000;

/// Errors as lines of the error file.
fn error_lines(page: Vec<(i64, job::RowError)>) -> Vec<u8> {
    let mut file = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for (_, row) in page {
        // Writing into memory cannot fail.
        let _ = file.write_record([
            row.row_number.to_string(),
            row.column_name.unwrap_or_default(),
            row.value.unwrap_or_default(),
            row.code,
            row.message,
            row.warning.to_string(),
        ]);
    }
    file.into_inner().unwrap_or_default()
}

fn csv_response(body: Body, file_name: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /exports/{object}`: the records as CSV, streamed.
pub(super) async fn export(
    State(app): State<Arc<Shared>>,
    Path(path): Path<Params>,
    Query(query): Query<Params>,
    request: Request,
) -> Result<Response, HttpError> {
    let (mut parts, _) = request.into_parts();
    let target = target(&app, &path, &mut parts).await?;
    let name = path
        .get("object")
        .map(|o| o.trim_end_matches(".csv"))
        .unwrap_or_default();
    let object = target.object(name)?.clone();
    let request = export::request(&target, &object, &query)?;
    match query.get("format").map(|f| f.to_ascii_lowercase()).as_deref() {
        None | Some("csv") => {
            let rows = export::stream(&target, &object, &request).await?;
            Ok(csv_response(Body::from_stream(rows), &format!("{}.csv", object.plural)))
        }
        Some("vcard") => {
            let version = export::vcard_version(query.get("vcardVersion").map_or("4.0", String::as_str))?;
            let cards = export::vcards(&target, &object, &request, version).await?;
            let mut response = csv_response(Body::from_stream(cards), &format!("{}.vcf", object.plural));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/vcard; charset=utf-8"),
            );
            Ok(response)
        }
        Some(_) => Err(bad("format", "format is csv or vcard")),
    }
}
