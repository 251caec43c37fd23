//! `previewScoringRules`: what the workspace's leads would score with a
//! set of rules — the saved ones, without some, with new ones not saved
//! yet — before anything is saved: how many change, the spread of scores
//! and how many leads each grade would hold against how many it holds now.
//! In a sandbox it previews against the sandbox's leads.

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use serde_json::{json, Value as Json};

use super::scoring::{Rule, Scorer};
use crate::db::sql::{JsonRow, Sql};
use crate::error::Result;
use crate::records::{Filter, Table};

/// How many bars the score distribution has at most.
const BUCKETS: i64 = 10;

/// The preview of `rules` over the leads of `table` (live, visible,
/// unconverted) that `filter` keeps, as `ScoringPreview` answers it.
pub async fn preview(
    conn: &mut AsyncPgConnection,
    table: Table<'_>,
    rules: &[Rule],
    filter: Option<&Filter>,
) -> Result<Json> {
    let scorer = Scorer {
        schema: table.workspace_schema,
        rules,
        now: Utc::now(),
    };
    let mut which = table.rows(false, "t");
    which.push(" AND t.converted_at IS NULL");
    if let Some(filter) = filter {
        which
            .push(" AND (")
            .append(&filter.compile(table.workspace_schema, "t"))
            .push(")");
    }
    let mut sql = Sql::raw("WITH scored AS (");
    sql.append(&scorer.scored(&which)).push(
        ") SELECT jsonb_build_object(\
         'leads', (SELECT count(*) FROM scored), \
         'changed', (SELECT count(*) FROM scored WHERE score IS DISTINCT FROM current), \
         'average', (SELECT round(avg(score), 2)::float8 FROM scored), \
         'median', (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM scored), \
         'scores', (SELECT coalesce(jsonb_agg(jsonb_build_array(score, n) ORDER BY score), '[]') \
                    FROM (SELECT score, count(*) AS n FROM scored GROUP BY score) s), \
         'gradesNow', (SELECT coalesce(jsonb_object_agg(coalesce(current_grade, ''), n), '{}') \
                       FROM (SELECT current_grade, count(*) AS n FROM scored GROUP BY current_grade) g), \
         'grades', (SELECT coalesce(jsonb_agg(jsonb_build_array(name, min_score) ORDER BY min_score DESC), '[]') FROM ",
    );
    sql.table(table.workspace_schema, "lead_grade")
        .push(" WHERE deleted_at IS NULL)) AS row");
    let rows: Vec<JsonRow> = sql.planned_for_values().load(conn).await?;
    let raw = rows.into_iter().next().map(|r| r.row).unwrap_or(Json::Null);
    Ok(shaped(&raw))
}

/// The statement's figures as the answer: buckets from the score counts,
/// grade counts from the scores and the grade thresholds.
fn shaped(raw: &Json) -> Json {
    let scores: Vec<(i64, i64)> = raw["scores"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| Some((p[0].as_i64()?, p[1].as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    let grades: Vec<(String, i64)> = raw["grades"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    let (min, max) = (scores.first().map(|s| s.0), scores.last().map(|s| s.0));
    let mut buckets = Vec::new();
    if let (Some(min), Some(max)) = (min, max) {
        let width = ((max - min) / BUCKETS + 1).max(1);
        let mut from = min;
        while from <= max {
            let to = from + width - 1;
            let leads: i64 = scores
                .iter()
                .filter(|(s, _)| (from..=to).contains(s))
                .map(|(_, n)| n)
                .sum();
            buckets.push(json!({ "from": from, "to": to, "leads": leads }));
            from = to + 1;
        }
    }
    let grade_of = |score: i64| {
        grades
            .iter()
            .find(|(_, min)| score >= *min)
            .map(|(name, _)| name.clone())
    };
    let now = |name: &str| raw["gradesNow"][name].as_i64().unwrap_or(0);
    let mut by_grade: Vec<Json> = grades
        .iter()
        .map(|(name, min_score)| {
            let leads: i64 = scores
                .iter()
                .filter(|(s, _)| grade_of(*s).as_deref() == Some(name))
                .map(|(_, n)| n)
                .sum();
            json!({ "grade": name, "minScore": min_score, "leads": leads, "leadsNow": now(name) })
        })
        .collect();
    let ungraded: i64 = scores
        .iter()
        .filter(|(s, _)| grade_of(*s).is_none())
        .map(|(_, n)| n)
        .sum();
    by_grade.push(json!({ "grade": null, "minScore": null, "leads": ungraded, "leadsNow": now("") }));
    json!({
        "leads": raw["leads"],
        "changed": raw["changed"],
        "min": min,
        "max": max,
        "average": raw["average"],
        "median": raw["median"],
        "buckets": buckets,
        "grades": by_grade,
    })
}
