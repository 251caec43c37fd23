//! Sales pipelines: rows of `pipeline`, written directly (see
//! `configuration`).

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::configuration::{self, Table};
use super::impact::{from_to, Level, Lifecycle, SdlChange};
use super::{items_of, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind};
use crate::db::sql::Bind;
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;

/// A sales pipeline.
pub struct Pipeline;

/// Where pipelines are written.
const TABLE: Table = Table {
    name: "pipeline",
    audited_as: "Pipeline",
    in_pipeline: false,
};

static ABOUT: About = About {
    kind: Kind::Pipeline,
    identifier: "PIPELINE",
    noun: "pipeline",
    description: "A sales pipeline.",
    key: "pipelines",
};

impl MetadataKind for Pipeline {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, schema: &str) -> String {
        table_rows(schema, "pipeline", "t.created_at, t.id")
    }

    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        items_of(doc, ABOUT.key, |row| {
            json!({
                "name": row["name"],
                "description": row["description"],
                "isDefault": row["is_default"],
                // A base stored before the setting existed had the default.
                "staleAfterDays": if row["stale_after_days"].is_null() { json!(30) } else { row["stale_after_days"].clone() },
                "deleted": !row["deleted_at"].is_null(),
            })
        })
    }

    fn table(&self) -> Option<&'static str> {
        Some(TABLE.name)
    }

    fn target_of(&self, state: &Json) -> String {
        text(state, "name")
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
        let path = &change.target;
        let dangerous = |message: String| SdlChange::new(Level::Dangerous, path, message);
        match Lifecycle::of(before, after) {
            Lifecycle::Added => vec![SdlChange::new(Level::Safe, path, format!("pipeline {path} is added"))],
            Lifecycle::Removed => vec![dangerous(format!(
                "pipeline {path} is removed: reports and forecasts by pipeline no longer show it"
            ))],
            Lifecycle::Gone => Vec::new(),
            Lifecycle::Changed => {
                let before = before.unwrap_or(&Json::Null);
                let mut out = Vec::new();
                if before["name"] != after["name"] {
                    out.push(dangerous(format!(
                        "pipeline {path} is renamed {}: reports and clients that match it by name change",
                        from_to(before, after, "name")
                    )));
                }
                if before["isDefault"] != after["isDefault"] {
                    out.push(dangerous(format!(
                        "pipeline {path} {} the default: opportunities created without a pipeline go elsewhere",
                        if after["isDefault"] == json!(true) {
                            "becomes"
                        } else {
                            "stops being"
                        }
                    )));
                }
                if before["staleAfterDays"] != after["staleAfterDays"] {
                    out.push(SdlChange::new(
                        Level::Safe,
                        path,
                        format!(
                            "pipeline {path}: the days an open deal may rest before it is stale change {}",
                            from_to(before, after, "staleAfterDays")
                        ),
                    ));
                }
                out
            }
        }
    }

    /// After fields and objects; a pipeline losing its default flag before
    /// another takes it.
    fn phase(&self, desired: &Json) -> u8 {
        if desired["isDefault"] == json!(true) {
            4
        } else {
            3
        }
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        let columns = vec![
            ("name", Bind::Text(Some(text(desired, "name")))),
            (
                "description",
                Bind::Text(desired["description"].as_str().map(str::to_owned)),
            ),
            ("is_default", Bind::Bool(desired["isDefault"].as_bool())),
            (
                "stale_after_days",
                Bind::Int(Some(
                    desired["staleAfterDays"]
                        .as_i64()
                        .and_then(|d| i32::try_from(d).ok())
                        .unwrap_or(30),
                )),
            ),
        ];
        Box::pin(async move {
            let days = &desired["staleAfterDays"];
            if !days.is_null() && !days.as_i64().is_some_and(|d| (1..=3650).contains(&d)) {
                return Err(CrmError::bad_input(&["staleAfterDays"], "staleAfterDays is 1 to 3650"));
            }
            configuration::write(conn, target, &TABLE, columns, current, desired, change).await?;
            Ok(None)
        })
    }
}
