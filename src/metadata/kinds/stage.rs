//! The stages of a pipeline: rows of `stage`, written directly (see
//! `configuration`). A stage open deals sit in cannot be removed.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::configuration::{self, Table};
use super::impact::{from_to, Level, Lifecycle, SdlChange};
use super::pipeline::Pipeline;
use super::{deleted, items_of, rows, table_rows, text, About, Change, DataImpact, Item, Kind, MetadataKind};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;

/// A stage of a pipeline.
pub struct Stage;

/// Where stages are written.
const TABLE: Table = Table {
    name: "stage",
    audited_as: "Stage",
    in_pipeline: true,
};

static ABOUT: About = About {
    kind: Kind::Stage,
    identifier: "STAGE",
    noun: "stage",
    description: "A stage of a pipeline.",
    key: "stages",
};

impl MetadataKind for Stage {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn document_sql(&self, schema: &str) -> String {
        table_rows(schema, "stage", "t.pipeline_id, t.position, t.id")
    }

    /// Each stage names its pipeline by name, as a changeset applied
    /// elsewhere finds it.
    fn read(&self, doc: &Json) -> Vec<(String, Json)> {
        let pipelines = rows(doc, Pipeline.about().key);
        items_of(doc, ABOUT.key, |row| {
            let pipeline = pipelines
                .iter()
                .find(|p| p["id"] == row["pipeline_id"])
                .map(|p| text(p, "name"))
                .unwrap_or_default();
            json!({
                "pipeline": pipeline,
                "name": row["name"],
                "position": row["position"],
                "probability": row["probability"],
                "forecastCategory": row["forecast_category"],
                "isClosed": row["is_closed"],
                "isWon": row["is_won"],
                "deleted": !row["deleted_at"].is_null(),
            })
        })
    }

    fn table(&self) -> Option<&'static str> {
        Some(TABLE.name)
    }

    fn target_of(&self, state: &Json) -> String {
        format!("{} / {}", text(state, "pipeline"), text(state, "name"))
    }

    fn client_impact(&self, before: Option<&Json>, after: &Json, change: &Change) -> Vec<SdlChange> {
        let path = &change.target;
        let dangerous = |message: String| SdlChange::new(Level::Dangerous, path, message);
        match Lifecycle::of(before, after) {
            Lifecycle::Added => vec![SdlChange::new(Level::Safe, path, format!("stage {path} is added"))],
            Lifecycle::Removed => vec![dangerous(format!(
                "stage {path} is removed: the funnel, reports and forecasts by stage no longer show it \
                 (its opportunities must move to another stage first)"
            ))],
            Lifecycle::Gone => Vec::new(),
            Lifecycle::Changed => {
                let before = before.unwrap_or(&Json::Null);
                let mut out = Vec::new();
                for key in ["probability", "forecastCategory", "isWon", "isClosed"] {
                    if before[key] != after[key] {
                        out.push(dangerous(format!(
                            "stage {path} changes {key} {}: forecasts, win rates and pipeline totals over its \
                             opportunities change",
                            from_to(before, after, key)
                        )));
                    }
                }
                if before["name"] != after["name"] {
                    out.push(dangerous(format!(
                        "stage {path} is renamed {}: reports and clients that match it by name change",
                        from_to(before, after, "name")
                    )));
                }
                out
            }
        }
    }

    /// After their pipelines.
    fn phase(&self, _desired: &Json) -> u8 {
        5
    }

    /// A deleted stage leaves its name free.
    fn deleted_frees_name(&self) -> bool {
        true
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        target: &'a Target<'a>,
        current: Option<&'a Item>,
        desired: &'a Json,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Option<DataImpact>>> {
        let int = |key: &str| Bind::Int(desired[key].as_i64().and_then(|v| i32::try_from(v).ok()));
        let columns = vec![
            ("name", Bind::Text(Some(text(desired, "name")))),
            ("position", int("position")),
            ("probability", int("probability")),
            ("forecast_category", Bind::Text(Some(text(desired, "forecastCategory")))),
            ("is_closed", Bind::Bool(desired["isClosed"].as_bool())),
            ("is_won", Bind::Bool(desired["isWon"].as_bool())),
        ];
        Box::pin(async move {
            if let Some(item) = current.filter(|item| deleted(desired) && !deleted(&item.state)) {
                let id = configuration::row_id(item)?;
                stage_is_empty(conn, target.schema, id, &change.target).await?;
            }
            configuration::write(conn, target, &TABLE, columns, current, desired, change).await?;
            Ok(None)
        })
    }
}

/// Refuses to remove a stage that open deals sit in.
async fn stage_is_empty(conn: &mut AsyncPgConnection, schema: &str, stage: Uuid, name: &str) -> Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Deal {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        total: i64,
    }
    let mut query = Sql::raw("SELECT id::text AS id, count(*) OVER () AS total FROM ");
    query
        .table(schema, "opportunity")
        .push(" WHERE deleted_at IS NULL AND stage_id = ");
    query
        .bind(Bind::Uuid(Some(stage)))
        .push(" ORDER BY created_at, id LIMIT 5");
    let deals: Vec<Deal> = query.load(conn).await?;
    let Some(first) = deals.first() else {
        return Ok(());
    };
    Err(CrmError::DataConflict {
        message: format!(
            "{} opportunities sit in the stage {name}: move them to another stage before removing it",
            first.total
        ),
        field: vec!["deleted".into()],
        count: first.total,
        sample_ids: deals.into_iter().map(|d| d.id).collect(),
    })
}
