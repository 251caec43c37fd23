//! Saved reports: `Report` records (configuration, so they are made in a
//! sandbox and promoted like a pipeline) name an object and the arguments
//! of its aggregate; `runReport(id)` answers one as a table of columns
//! and rows any frontend can draw. A report is checked against the
//! workspace's model when it is saved through the API and when it runs:
//! a field it names that no longer exists is a clear error, not an empty
//! answer.

use async_graphql::dynamic::{Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;
use serde_json::Value as Json;

use super::api::{self, Scope};
use super::{Aggregate, Group, GroupKey, Measure, Metric};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, resolved, RequestContext};
use crate::graphql::room::{CheckScope, Surface, Written};
use crate::metadata::{FieldKind, ObjectDef};
use crate::records::{FieldSet, Record, Table};

/// The object saved reports are records of.
pub const REPORT: &str = "Report";

/// `runReport` and its types; the check of reports saved through the API.
pub fn register(surface: &mut Surface) {
    surface.on_write(REPORT, check);
    surface.enumeration(
        Enum::new("ReportColumnRole")
            .description("What a report column holds.")
            .item(EnumItem::new("KEY").description("A group key: the value the group's records share."))
            .item(EnumItem::new("COUNT").description("How many records are in the group."))
            .item(EnumItem::new("METRIC").description("A metric of a field over the group.")),
    );
    surface.object(column_type());
    surface.object(row_type());
    surface.object(result_type());
    surface.queries(&["runReport"], vec![run_field()]);
}

/// One column of a report's answer.
#[derive(Debug, Clone)]
struct Column {
    key: String,
    label: String,
    role: &'static str,
    /// The field's type: `DECIMAL`, `DATE`, `PICKLIST` …
    value_type: String,
}

/// A report's answer.
#[derive(Debug, Clone)]
struct Answer {
    report: Record,
    columns: Vec<Column>,
    rows: Vec<Vec<Json>>,
}

/// A report's aggregate, read from its record against `context`'s model.
/// Errors name the report's field (`groupBy`, `filter` …) under `root`.
fn definition(context: &CheckScope<'_>, record: &Record, root: &[&str]) -> Result<(ObjectDef, Aggregate)> {
    let rooted = |error: CrmError| match error {
        CrmError::BadUserInput { message, field } => CrmError::BadUserInput {
            message,
            field: root.iter().map(|p| (*p).to_owned()).chain(field).collect(),
        },
        other => other,
    };
    let object_name = record.get("object").and_then(Json::as_str).unwrap_or_default();
    let object = context
        .model
        .object(object_name)
        .filter(|o| o.name != REPORT)
        .ok_or_else(|| {
            rooted(CrmError::bad_input(
                &["object"],
                format!("there is no object {object_name}"),
            ))
        })?
        .as_ref()
        .clone();
    let mut args = std::collections::HashMap::new();
    for name in ["filter", "groupBy", "having", "orderBy", "first", "timeZone", "metrics"] {
        let value = record.get(name).cloned().unwrap_or(Json::Null);
        let value = Value::from_json(value).map_err(|_| rooted(CrmError::bad_input(&[name], "not a JSON value")))?;
        args.insert(name, value);
    }
    let scope = Scope {
        model: context.model,
        schema: context.schema,
        visibility: context.visibility,
        object: &object,
    };
    let measures = api::listed_measures(&object, args.get("metrics"), &Path::root("metrics")).map_err(rooted)?;
    let aggregate = api::parse(&scope, &|name| args.get(name), measures).map_err(rooted)?;
    Ok((object, aggregate))
}

/// A report saved through the API (or promoted) must mean something in
/// the workspace, its time zone included; a deleted one need not.
fn check<'a>(
    conn: &'a mut diesel_async::AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> futures_util::future::BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        if written.record.get("deletedAt").is_some_and(|at| !at.is_null()) {
            return Ok(None);
        }
        let root: Vec<&str> = scope.at.iter().map(String::as_str).collect();
        let (_, aggregate) = definition(scope, written.record, &root)?;
        time_zone(conn, &aggregate, &root).await?;
        Ok(None)
    })
}

/// Refuses a time zone PostgreSQL does not know, at `root.timeZone`.
async fn time_zone(conn: &mut diesel_async::AsyncPgConnection, aggregate: &Aggregate, root: &[&str]) -> Result<()> {
    if aggregate.time_zone == "UTC" || super::known_time_zone(conn, &aggregate.time_zone).await? {
        return Ok(());
    }
    let mut at: Vec<&str> = root.to_vec();
    at.push("timeZone");
    Err(CrmError::bad_input(
        &at,
        format!(
            "{} is not a time zone PostgreSQL knows (e.g. Europe/Paris)",
            aggregate.time_zone
        ),
    ))
}

/// The type of a column of a field's values: the field's type as the API
/// names it (`DECIMAL`, `DATETIME`, `PICKLIST` …); a lookup's are ids.
fn field_type(field: &crate::metadata::FieldDef) -> String {
    match &field.kind {
        FieldKind::Lookup(_) => "ID".into(),
        other => other.type_name().into(),
    }
}

fn key_column(key: &GroupKey) -> Column {
    let field = &key.key.field;
    let (key_name, label) = match &key.key.through {
        Some(through) => (
            format!("{}.{}", through.lookup, field.value_key()),
            format!(
                "{}: {}",
                crate::metadata::upper_first(&crate::metadata::words(&through.lookup)),
                field.label
            ),
        ),
        None => (field.value_key(), field.label.clone()),
    };
    let label = match key.granularity {
        Some(granularity) => format!("{label} ({})", granularity.name().to_lowercase()),
        None => label,
    };
    Column {
        key: key_name,
        label,
        role: "KEY",
        value_type: field_type(field),
    }
}

fn measure_column(measure: &Measure) -> Column {
    let field = &measure.field;
    Column {
        key: format!("{}.{}", measure.metric.key(), field.value_key()),
        label: format!("{} of {}", measure.metric.key(), field.label),
        role: "METRIC",
        value_type: match measure.metric {
            Metric::Sum | Metric::Avg => "DECIMAL".into(),
            Metric::CountDistinct => "INTEGER".into(),
            Metric::Min | Metric::Max => field_type(field),
        },
    }
}

/// The cells of a group: its keys, its count, its metrics.
fn cells(group: &Group, measures: &[Measure]) -> Vec<Json> {
    let mut cells = group.keys.clone();
    cells.push(Json::from(group.count));
    for measure in measures {
        cells.push(
            group
                .metric(measure.metric, &measure.field)
                .cloned()
                .unwrap_or(Json::Null),
        );
    }
    cells
}

/// Runs the report `id` for the request.
async fn run(context: &RequestContext, id: uuid::Uuid) -> Result<Answer> {
    let report_object = context
        .model
        .object(REPORT)
        .ok_or_else(|| CrmError::internal("no Report object"))?;
    let mut conn = context.db.conn().await?;
    let reports = Table::new(&context.schema, report_object).restricted(&context.visibility);
    let report = crate::records::get_many(&mut conn, reports, &FieldSet::all(report_object), &[id])
        .await?
        .remove(&id)
        .ok_or_else(|| CrmError::NotFound {
            object: REPORT.into(),
            id: id.to_string(),
        })?;
    let (object, aggregate) = definition(&context.check_scope(&[]), &report, &["report"])?;
    time_zone(&mut conn, &aggregate, &["report"]).await?;
    let table = Table::new(&context.schema, &object).restricted(&context.visibility);
    let groups = super::groups(&mut conn, table, &aggregate).await?;
    let mut columns: Vec<Column> = aggregate.keys.iter().map(key_column).collect();
    columns.push(Column {
        key: "count".into(),
        label: "Records".into(),
        role: "COUNT",
        value_type: "INTEGER".into(),
    });
    columns.extend(aggregate.measures.iter().map(measure_column));
    let rows = groups.iter().map(|g| cells(g, &aggregate.measures)).collect();
    Ok(Answer { report, columns, rows })
}

fn column_type() -> Object {
    let text = |name: &str, description: &str, get: fn(&Column) -> String| {
        Field::new(name, TypeRef::named_nn(TypeRef::STRING), move |ctx| {
            FieldFuture::from_value(
                ctx.parent_value
                    .try_downcast_ref::<Column>()
                    .ok()
                    .map(|c| Value::String(get(c))),
            )
        })
        .description(description)
    };
    Object::new("ReportColumn")
        .description("One column of a report's answer.")
        .field(text(
            "key",
            "A stable key: `stageId`, `account.industry`, `count`, `sum.amount`.",
            |c| c.key.clone(),
        ))
        .field(text("label", "What to call it on screen.", |c| c.label.clone()))
        .field(
            Field::new("role", TypeRef::named_nn("ReportColumnRole"), |ctx| {
                FieldFuture::from_value(
                    ctx.parent_value
                        .try_downcast_ref::<Column>()
                        .ok()
                        .map(|c| Value::Enum(async_graphql::Name::new(c.role))),
                )
            })
            .description("A group key, the count or a metric."),
        )
        .field(text(
            "type",
            "The type of its cells, as field types are named: ID, TEXT, PICKLIST, INTEGER, DECIMAL, DATE, DATETIME, BOOLEAN …",
            |c| c.value_type.clone(),
        ))
}

fn row_type() -> Object {
    Object::new("ReportRow")
        .description("One group of a report's answer.")
        .field(
            Field::new("cells", TypeRef::named_nn_list("JSON"), |ctx| {
                let cells = ctx.parent_value.try_downcast_ref::<Vec<Json>>().ok().map(|cells| {
                    Value::List(
                        cells
                            .iter()
                            .map(|c| Value::from_json(c.clone()).unwrap_or(Value::Null))
                            .collect(),
                    )
                });
                FieldFuture::from_value(cells)
            })
            .description("The group's values, one per column in order (decimals as strings, dates as ISO text)."),
        )
}

fn result_type() -> Object {
    Object::new("ReportResult")
        .description("A saved report's answer: its columns and one row per group.")
        .field(
            Field::new("report", TypeRef::named_nn(REPORT), |ctx| {
                let report = ctx.parent_value.try_downcast_ref::<Answer>().map(|a| a.report.clone());
                FieldFuture::new(async move { Ok(Some(FieldValue::owned_any(report?))) })
            })
            .description("The report run (its chart hint included)."),
        )
        .field(
            Field::new("columns", TypeRef::named_nn_list_nn("ReportColumn"), |ctx| {
                let columns = ctx.parent_value.try_downcast_ref::<Answer>().map(|a| a.columns.clone());
                FieldFuture::new(
                    async move { Ok(Some(FieldValue::list(columns?.into_iter().map(FieldValue::owned_any)))) },
                )
            })
            .description("The group keys, the count, then the metrics."),
        )
        .field(
            Field::new("rows", TypeRef::named_nn_list_nn("ReportRow"), |ctx| {
                let rows = ctx.parent_value.try_downcast_ref::<Answer>().map(|a| a.rows.clone());
                FieldFuture::new(
                    async move { Ok(Some(FieldValue::list(rows?.into_iter().map(FieldValue::owned_any)))) },
                )
            })
            .description("One per group, in the report's order."),
        )
}

fn run_field() -> Field {
    Field::new("runReport", TypeRef::named_nn("ReportResult"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let id = match arg(&ctx, "id") {
                Some(Value::String(text)) => input::parse_id(text, &Path::root("id"))?,
                _ => return Err(CrmError::bad_input(&["id"], "name the report")),
            };
            let answer = run(context, id).await?;
            Ok(Some(FieldValue::owned_any(answer)))
        })
    })
    .description(
        "Runs a saved report: its object's records grouped and added up as the report says, with the same filter \
         language and record visibility as lists.",
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The report."))
}
