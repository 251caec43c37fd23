//! Sales pipelines: rows of `pipeline`, written directly (see
//! `configuration`).

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::configuration::{self, Table};
use super::{rows, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind};
use crate::db::sql::Bind;
use crate::error::Result;
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
        rows(doc, ABOUT.key)
            .iter()
            .map(|row| {
                let state = json!({
                    "name": row["name"],
                    "description": row["description"],
                    "isDefault": row["is_default"],
                    "deleted": !row["deleted_at"].is_null(),
                });
                (super::id_of(row), state)
            })
            .collect()
    }

    fn table(&self) -> Option<&'static str> {
        Some(TABLE.name)
    }

    fn target_of(&self, state: &Json) -> String {
        text(state, "name")
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
        ];
        Box::pin(async move {
            configuration::write(conn, target, &TABLE, columns, current, desired, change).await?;
            Ok(None)
        })
    }
}
