//! Lead scoring: the workspace's scoring rules, compiled into one SQL
//! expression per lead, and the statements that keep `lead.score` and
//! `lead.grade` in step with them. A rule gives its points once (a
//! condition on the lead's fields) or per activity of a type; with decay,
//! the points fade by `decayPoints` every `decayEveryDays` — an activity's
//! from when it happened (completed, else created), a condition's from the
//! lead's last activity (else its creation) — never past zero. The grade
//! is the live grade with the highest `minScore` the score reaches.
//! Converted leads keep the score they were converted with.

use async_graphql::Value;
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::sql::{Bind, JsonRow, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::metadata::{FieldKind, Model, ObjectDef};
use crate::records::{Filter, Visibility};

/// The object scored.
pub const LEAD: &str = "Lead";
/// Up to how many leads a rescoring is a write's (its plan reused).
const FEW: usize = 100;
/// How many leads one statement of a full rescoring scores.
const BATCH: i64 = 5_000;

/// A scoring rule as the scorer reads it.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its record's id; none for a rule not saved (a preview's).
    pub id: Option<Uuid>,
    pub name: String,
    condition: Option<Filter>,
    activity_type: Option<String>,
    points: i32,
    max_points: Option<i32>,
    /// Points lost and every how many days, when the rule decays.
    decay: Option<(i32, i32)>,
}

impl Rule {
    /// A rule from its state (a `ScoringRule` record or preview input, by
    /// API names), checked against the model; errors under `path`.
    pub fn of(model: &Model, state: &Json, path: &Path) -> Result<Rule> {
        let lead = lead_object(model)?;
        let condition = match &state["condition"] {
            Json::Null => None,
            value if names_score(value) => {
                return Err(path
                    .at("condition")
                    .error("a rule's condition cannot name score or grade: the score would depend on itself"))
            }
            value => {
                let value = Value::from_json(value.clone())
                    .map_err(|_| path.at("condition").error("condition is not a JSON value"))?;
                input::filter(model, &Visibility::all(), lead, &value, &path.at("condition"))?
            }
        };
        let activity_type = match state["activityType"].as_str() {
            None => None,
            Some(kind) => Some(activity_type(model, kind, &path.at("activityType"))?),
        };
        let int = |key: &str| state[key].as_i64().and_then(|n| i32::try_from(n).ok());
        let points = int("points").ok_or_else(|| path.at("points").error("a scoring rule gives points"))?;
        if !(-1000..=1000).contains(&points) {
            return Err(path.at("points").error("points is -1000 to 1000"));
        }
        let max_points = int("maxPoints");
        if max_points.is_some_and(|m| !(0..=100_000).contains(&m)) {
            return Err(path.at("maxPoints").error("maxPoints is 0 to 100000"));
        }
        if max_points.is_some() && activity_type.is_none() {
            return Err(path
                .at("maxPoints")
                .error("maxPoints caps an activity rule; this rule has no activityType"));
        }
        let decay = match (int("decayPoints").unwrap_or(0), int("decayEveryDays")) {
            (0, _) => None,
            (points, Some(days)) if (1..=1000).contains(&points) && (1..=3650).contains(&days) => Some((points, days)),
            (_, None) => return Err(path.at("decayEveryDays").error("decayPoints needs decayEveryDays")),
            _ => {
                return Err(path
                    .at("decayPoints")
                    .error("decayPoints is 0 to 1000 and decayEveryDays 1 to 3650"))
            }
        };
        Ok(Rule {
            id: state["id"].as_str().and_then(|id| id.parse().ok()),
            name: state["name"].as_str().unwrap_or_default().to_owned(),
            condition,
            activity_type,
            points,
            max_points,
            decay,
        })
    }
}

/// Whether a lead filter names the lead's own score or grade (at its top
/// level or under `and`, `or`, `not`).
fn names_score(filter: &Json) -> bool {
    match filter {
        Json::Object(map) => map.iter().any(|(key, value)| match key.as_str() {
            "score" | "grade" => true,
            "and" | "or" | "not" => names_score(value),
            _ => false,
        }),
        Json::Array(items) => items.iter().any(names_score),
        _ => false,
    }
}

/// The Lead object of a model.
pub fn lead_object(model: &Model) -> Result<&ObjectDef> {
    model
        .object(LEAD)
        .map(|o| o.as_ref())
        .ok_or_else(|| CrmError::internal("the model has no Lead"))
}

/// `kind`, when it is one of the activity types (active or not).
fn activity_type(model: &Model, kind: &str, path: &Path) -> Result<String> {
    let options = model
        .object("Activity")
        .and_then(|o| o.field("type"))
        .map(|f| match &f.kind {
            FieldKind::Picklist(options) => options.iter().map(|o| o.value.clone()).collect(),
            _ => Vec::new(),
        })
        .unwrap_or_default();
    if options.iter().any(|o| o == kind) {
        Ok(kind.to_owned())
    } else {
        Err(path.error(format!("{kind} is not an activity type ({})", options.join(", "))))
    }
}

/// The live, active rules of the workspace in `schema`; `None` while it
/// never had one, so scores stay as they were (a workspace upgraded from
/// when scores were typed in keeps them until its first rule). A rule that
/// no longer means anything (a field it names was deleted since) gives no
/// points, and says so in the log.
pub async fn rules(conn: &mut AsyncPgConnection, schema: &str, model: &Model) -> Result<Option<Vec<Rule>>> {
    let mut query = Sql::raw(
        "SELECT jsonb_build_object('id', id, 'name', name, 'condition', condition, 'activityType', activity_type, \
         'points', points, 'maxPoints', max_points, 'decayPoints', decay_points, 'decayEveryDays', decay_every_days) \
         AS row FROM ",
    );
    query
        .table(schema, "scoring_rule")
        .push(" WHERE deleted_at IS NULL AND is_active ORDER BY created_at, id");
    let rows: Vec<JsonRow> = query.load(conn).await?;
    if rows.is_empty() {
        let mut ever = Sql::raw("SELECT EXISTS (SELECT 1 FROM ");
        ever.table(schema, "scoring_rule").push(") AS exists");
        let ever: Vec<crate::db::sql::Exists> = ever.load(conn).await?;
        if !ever.first().is_some_and(|row| row.exists) {
            return Ok(None);
        }
    }
    let mut rules = Vec::with_capacity(rows.len());
    for row in rows {
        match Rule::of(model, &row.row, &Path::root("rule")) {
            Ok(rule) => rules.push(rule),
            Err(err) => tracing::warn!(%err, rule = %row.row["name"], "a scoring rule gives no points"),
        }
    }
    Ok(Some(rules))
}

/// Locks these leads (in id order, so two rescorings cannot deadlock):
/// what is computed after sees every change committed before, and nothing
/// changes them until the transaction ends.
pub async fn lock(conn: &mut AsyncPgConnection, schema: &str, ids: &[Uuid]) -> Result<()> {
    let mut query = Sql::raw("SELECT 1 FROM ");
    query
        .table(schema, "lead")
        .push(" WHERE id = ANY(")
        .bind(Bind::UuidArray(ids.to_vec()))
        .push(") ORDER BY id FOR UPDATE");
    query.execute(conn).await?;
    Ok(())
}

/// Rules at a moment: what scores leads.
pub struct Scorer<'a> {
    pub schema: &'a str,
    pub rules: &'a [Rule],
    pub now: DateTime<Utc>,
}

impl Scorer<'_> {
    /// Days from `at` (SQL) to now, never negative.
    fn age(&self, at: &str) -> Sql {
        let mut age = Sql::raw("greatest(0, extract(epoch FROM (");
        age.bind(Bind::DateTime(Some(self.now)))
            .push("::timestamptz - ")
            .push(at)
            .push(")) / 86400.0)");
        age
    }

    /// `points`, faded by the rule's decay over `age` days.
    fn decayed(rule: &Rule, age: &Sql) -> Sql {
        let mut sql = Sql::new();
        let points = Bind::Int(Some(rule.points));
        match rule.decay {
            None => {
                sql.bind(points).push("::int");
            }
            Some((lost, every)) => {
                sql.push("(sign(")
                    .bind(points.clone())
                    .push("::int) * greatest(0, abs(")
                    .bind(points)
                    .push("::int) - ")
                    .bind(Bind::Int(Some(lost)))
                    .push("::int * floor(")
                    .append(age)
                    .push(" / ")
                    .bind(Bind::Int(Some(every)))
                    .push("::int)))");
            }
        }
        sql
    }

    /// `SELECT t.id, t.score AS current, <score> AS score FROM lead t …
    /// WHERE <which>`: each lead's score now, and the one it has.
    pub fn scored(&self, which: &Sql) -> Sql {
        let mut lateral = Sql::raw("SELECT max(coalesce(x.completed_at, x.created_at)) AS last_at");
        let mut score = Sql::raw("(0");
        for (i, rule) in self.rules.iter().enumerate() {
            let given = match &rule.activity_type {
                None => Self::decayed(rule, &self.age("greatest(t.created_at, act.last_at)")),
                Some(kind) => {
                    let each = Self::decayed(rule, &self.age("coalesce(x.completed_at, x.created_at)"));
                    lateral
                        .push(", coalesce(sum(")
                        .append(&each)
                        .push(") FILTER (WHERE x.type = ")
                        .bind(Bind::Text(Some(kind.clone())))
                        .push(&format!("), 0) AS r{i}"));
                    let mut sum = Sql::raw(&format!("act.r{i}"));
                    if let Some(max) = rule.max_points {
                        let (bound, cap) = if rule.points >= 0 {
                            ("least", max)
                        } else {
                            ("greatest", -max)
                        };
                        sum = Sql::raw(&format!("{bound}(act.r{i}, "));
                        sum.bind(Bind::Int(Some(cap))).push("::int)");
                    }
                    sum
                }
            };
            score.push(" + CASE WHEN ");
            match &rule.condition {
                Some(condition) => score.push("(").append(&condition.compile(self.schema, "t")).push(")"),
                None => score.push("true"),
            };
            score.push(" THEN ").append(&given).push(" ELSE 0 END");
        }
        score.push(")");
        let mut sql = Sql::raw("SELECT t.id, t.score AS current, t.grade AS current_grade, least(greatest(");
        sql.append(&score)
            .push(", -2000000000), 2000000000)::int AS score FROM ");
        sql.table(self.schema, "lead")
            .push(" t LEFT JOIN LATERAL (")
            .append(&lateral);
        sql.push(" FROM ").table(self.schema, "activity");
        sql.push(" x WHERE x.lead_id = t.id AND x.deleted_at IS NULL AND x.status IS DISTINCT FROM 'CANCELLED') act ON true WHERE ");
        sql.append(which);
        sql
    }

    /// The grade of `score` (SQL), from the live grades.
    pub fn grade(&self, score: &str) -> Sql {
        let mut sql = Sql::raw("(SELECT g.name FROM ");
        sql.table(self.schema, "lead_grade")
            .push(" g WHERE g.deleted_at IS NULL AND g.min_score <= ")
            .push(score)
            .push(" ORDER BY g.min_score DESC LIMIT 1)");
        sql
    }

    /// Stores the score and grade of the leads `which` selects (on `t`)
    /// where they changed; answers the leads changed, with both.
    async fn store(&self, conn: &mut AsyncPgConnection, which: &Sql, ids_in_batch: usize) -> Result<Vec<Rescored>> {
        #[derive(diesel::QueryableByName)]
        struct Stored {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            before: i32,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            score: i32,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            grade: Option<String>,
        }
        let mut sql = Sql::raw("WITH scored AS (");
        sql.append(&self.scored(which));
        sql.push("), graded AS (SELECT id, score, ")
            .append(&self.grade("scored.score"))
            .push(" AS grade FROM scored) UPDATE ");
        sql.table(self.schema, "lead")
            .push(" AS l SET score = graded.score, grade = graded.grade FROM graded JOIN ");
        // `o`, the same rows as the statement began: their scores before.
        sql.table(self.schema, "lead").push(
            " AS o ON o.id = graded.id WHERE l.id = graded.id \
             AND (l.score IS DISTINCT FROM graded.score OR l.grade IS DISTINCT FROM graded.grade) \
             RETURNING l.id, o.score AS before, l.score, l.grade",
        );
        // A batch is planned for its values; a write's few leads reuse the
        // connection's prepared statement (the same rules, the same text).
        let sql = if ids_in_batch > FEW {
            sql.planned_for_values()
        } else {
            sql
        };
        let rows: Vec<Stored> = sql.load(conn).await?;
        Ok(rows
            .into_iter()
            .map(|r| Rescored {
                id: r.id,
                before: r.before,
                score: r.score,
                grade: r.grade,
            })
            .collect())
    }

    /// Rescores the unconverted leads among `ids`; answers those changed.
    pub async fn rescore(&self, conn: &mut AsyncPgConnection, ids: &[Uuid]) -> Result<Vec<Rescored>> {
        let mut which = Sql::raw("t.converted_at IS NULL AND t.id = ANY(");
        which.bind(Bind::UuidArray(ids.to_vec())).push(")");
        self.store(conn, &which, ids.len()).await
    }
}

/// A lead whose score or grade a rescoring changed.
#[derive(Debug, Clone)]
pub struct Rescored {
    pub id: Uuid,
    /// Its score before.
    pub before: i32,
    pub score: i32,
    pub grade: Option<String>,
}

/// The next batch of live unconverted leads after `after`, by id.
pub async fn batch(conn: &mut AsyncPgConnection, schema: &str, after: Option<Uuid>) -> Result<Vec<Uuid>> {
    let mut batch = Sql::raw("SELECT id FROM ");
    batch
        .table(schema, "lead")
        .push(" WHERE deleted_at IS NULL AND converted_at IS NULL");
    if let Some(after) = after {
        batch.push(" AND id > ").bind(Bind::Uuid(Some(after)));
    }
    batch.push(" ORDER BY id LIMIT ").push(&BATCH.to_string());
    super::ids(conn, batch).await
}
