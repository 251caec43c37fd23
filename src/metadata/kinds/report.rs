//! Saved reports: rows of `report`, written directly (see
//! `configuration`). What a report means (its object, fields and keys)
//! is checked where reports are run and saved through the API.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::configuration::{self, Table};
use super::impact::{Level, Lifecycle, SdlChange};
use super::{deleted, items_of, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind};
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;
use crate::metadata::standard::CHARTS;

/// A saved report.
pub struct Report;

/// Where reports are written.
const TABLE: Table = Table {
    name: "report",
    audited_as: "Report",
    in_pipeline: false,
};

static ABOUT: About = About {
    kind: Kind::Report,
    identifier: "REPORT",
    noun: "report",
    description: "A saved report.",
    key: "reports",
};

/// The properties of a report's state, with their columns.
const PROPERTIES: [(&str, &str); 10] = [
    ("description", "description"),
    ("object", "object"),
    ("filter", "filter"),
    ("groupBy", "group_by"),
    ("metrics", "metrics"),
    ("having", "group_having"),
    ("orderBy", "order_by"),
    ("first", "group_limit"),
    ("timeZone", "time_zone"),
    ("chart", "chart"),
];

impl MetadataKind for Report {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, schema: &str) -> String {
        table_rows(schema, "report", "t.created_at, t.id")
    }

    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        items_of(doc, ABOUT.key, |row| {
            let mut state = json!({ "name": row["name"], "deleted": !row["deleted_at"].is_null() });
            for (property, column) in PROPERTIES {
                state[property] = row[column].clone();
            }
            state
        })
    }

    fn table(&self) -> Option<&'static str> {
        Some(TABLE.name)
    }

    fn target_of(&self, state: &Json) -> String {
        text(state, "name")
    }

    fn deleted_frees_name(&self) -> bool {
        true
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
        let path = &change.target;
        match Lifecycle::of(before, after) {
            Lifecycle::Added => vec![SdlChange::new(Level::Safe, path, format!("report {path} is added"))],
            Lifecycle::Removed => vec![SdlChange::new(
                Level::Dangerous,
                path,
                format!("report {path} is removed: dashboards that run it by id get NOT_FOUND"),
            )],
            Lifecycle::Gone => Vec::new(),
            Lifecycle::Changed => {
                let before = before.unwrap_or(&Json::Null);
                let changed: Vec<&str> = PROPERTIES
                    .iter()
                    .map(|(property, _)| *property)
                    .chain(["name"])
                    .filter(|p| before[*p] != after[*p])
                    .collect();
                if changed.is_empty() {
                    return Vec::new();
                }
                vec![SdlChange::new(
                    Level::Dangerous,
                    path,
                    format!(
                        "report {path} changes ({}): its answers change shape or figures",
                        changed.join(", ")
                    ),
                )]
            }
        }
    }

    /// After fields and objects (which a report names) and pipelines.
    fn phase(&self, _desired: &Json) -> u8 {
        5
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        let json = |key: &str, default: Option<Json>| {
            Bind::Json(match &desired[key] {
                Json::Null => default,
                value => Some(value.clone()),
            })
        };
        let columns = vec![
            ("name", Bind::Text(Some(text(desired, "name")))),
            (
                "description",
                Bind::Text(desired["description"].as_str().map(str::to_owned)),
            ),
            ("object", Bind::Text(Some(text(desired, "object")))),
            ("filter", json("filter", None)),
            ("group_by", json("groupBy", Some(json!([])))),
            ("metrics", json("metrics", Some(json!([])))),
            ("group_having", json("having", None)),
            ("order_by", json("orderBy", Some(json!([])))),
            (
                "group_limit",
                Bind::Int(desired["first"].as_i64().and_then(|v| i32::try_from(v).ok())),
            ),
            (
                "time_zone",
                Bind::Text(Some(desired["timeZone"].as_str().unwrap_or("UTC").to_owned())),
            ),
            (
                "chart",
                Bind::Text(Some(desired["chart"].as_str().unwrap_or("TABLE").to_owned())),
            ),
        ];
        Box::pin(async move {
            if !deleted(desired) {
                checked(desired)?;
            }
            configuration::write(conn, target, &TABLE, columns, current, desired, change).await?;
            Ok(None)
        })
    }
}

/// Refuses a report state the table would (a changeset file written by
/// hand): named, one of the charts, at most 1,000 groups, a time zone's
/// name. What its definition means is the analytics room's check.
fn checked(desired: &Json) -> Result<()> {
    let name = text(desired, "name");
    if name.is_empty() || name.chars().count() > 255 {
        return Err(CrmError::bad_input(&["name"], "a report's name is 1 to 255 characters"));
    }
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "a report names its object"));
    }
    let chart = desired["chart"].as_str().unwrap_or("TABLE");
    if !CHARTS.iter().any(|(value, _)| *value == chart) {
        return Err(CrmError::bad_input(&["chart"], format!("{chart} is not a chart")));
    }
    if !desired["first"].is_null() && !desired["first"].as_i64().is_some_and(|n| (0..=1000).contains(&n)) {
        return Err(CrmError::bad_input(&["first"], "first is 0 to 1000"));
    }
    let zone = desired["timeZone"].as_str().unwrap_or("UTC");
    if zone.is_empty() || zone.len() > 64 {
        return Err(CrmError::bad_input(&["timeZone"], "timeZone is a time zone's name"));
    }
    Ok(())
}
