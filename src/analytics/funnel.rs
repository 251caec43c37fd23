//! The funnel of a pipeline, from the stage entries: per stage, the
//! deals that entered it in a period, how many moved on (to a later stage
//! or a won one), were lost from it, and are won now; the conversion to the
//! next stage and to won; the median and 90th percentile of the days deals
//! spent in it (those that left). For the whole pipeline: the win rate
//! (won ÷ (won + lost) among deals closed in the period), the average won
//! deal and the average sales cycle (days from creation to won); the
//! deals stale now, per stage and in all. It reads the stage entries the
//! server keeps (`StageEntry`), one indexed range of the period.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use crate::db::sql::{Bind, Sql};
use crate::db::{Conn, Database};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, resolved};
use crate::graphql::room::Surface;
use crate::records::Table;

const T: &str = "t";

/// One stage of the funnel.
#[derive(Debug, Clone, Default)]
pub struct StageRow {
    pub stage_id: String,
    pub name: String,
    pub entered: i64,
    pub moved_on: i64,
    pub lost: i64,
    pub won: i64,
    pub median_days: Option<f64>,
    pub p90_days: Option<f64>,
    /// Open deals in the stage now, idle past their pipeline's days.
    pub stale: i64,
}

/// The pipeline's totals over the period.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub won: i64,
    pub lost: i64,
    pub average_won_amount: Option<String>,
    pub average_cycle_days: Option<f64>,
}

/// A funnel: its stages in order and the totals.
#[derive(Debug, Clone)]
pub struct Funnel {
    pub stages: Vec<StageRow>,
    pub totals: Totals,
}

/// A stage, with what a stay's next stage is compared on.
#[derive(diesel::QueryableByName)]
struct Stage {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pipeline_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    position: i32,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_closed: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_won: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    live: bool,
}

/// Stays alike: of one stage, to one next stage, of one length (days to
/// the hundredth, as kept), of deals won now or not, and how many.
#[derive(diesel::QueryableByName)]
struct Stays {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    stage_id: uuid::Uuid,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    next_stage_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Nullable<Double>)]
    days: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    won_now: bool,
    #[diesel(sql_type = BigInt)]
    stays: i64,
}

/// Deals stale now in one stage.
#[derive(diesel::QueryableByName)]
struct PerStage {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    stage_id: uuid::Uuid,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// The amounts and cycles of the deals won in the period.
#[derive(Default, diesel::QueryableByName)]
struct Wins {
    #[diesel(sql_type = Nullable<Text>)]
    average_won_amount: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    average_cycle_days: Option<f64>,
}

/// The instants a funnel's stays began in: `[from, to)`.
type Period = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

/// The stays in stages of `pipeline` that began in the period, of live
/// deals the request may see (a stay is deleted with its deal, so only a
/// restricted visibility reads the deals), counted alike: one hash
/// aggregate over one range of the stays, whatever their number.
async fn stays(conn: &mut Conn, table: &Table<'_>, pipeline: uuid::Uuid, (from, to): Period) -> Result<Vec<Stays>> {
    let mut sql = Sql::raw(
        "SELECT e.stage_id, e.next_stage_id, e.days_in_stage::float8 AS days, w.id IS NOT NULL AS won_now, \
         count(*) AS stays FROM ",
    );
    sql.table(table.schema, "opportunity_stage_entry").push(" e");
    if table.visible().is_some() {
        sql.push(" JOIN ")
            .table(table.schema, &table.object.table)
            .push(" t ON t.id = e.opportunity_id AND ");
        sql.append(&table.rows(false, T));
    }
    // The deals won now: few, hashed beside the stays.
    sql.push(" LEFT JOIN (SELECT t.id FROM ")
        .table(table.schema, &table.object.table);
    sql.push(" t WHERE t.is_won AND ").append(&table.rows(false, T));
    sql.push(") w ON w.id = e.opportunity_id WHERE ");
    in_period(&mut sql, pipeline, (from, to));
    sql.push(" GROUP BY 1, 2, 3, 4");
    Ok(sql.planned_for_values().load(conn).await?)
}

/// `e`'s stays of `pipeline` that began in the period and are live.
fn in_period(sql: &mut Sql, pipeline: uuid::Uuid, (from, to): Period) {
    sql.push("e.pipeline_id = ").bind(Bind::Uuid(Some(pipeline)));
    sql.push(" AND e.deleted_at IS NULL AND e.entered_at >= ")
        .bind(Bind::DateTime(Some(from)));
    sql.push(" AND e.entered_at < ").bind(Bind::DateTime(Some(to)));
}

/// The average amount and cycle of the deals won in the period: their
/// stays in the pipeline's won stages (an index range each), each with its
/// deal read by id.
async fn wins(conn: &mut Conn, table: &Table<'_>, pipeline: uuid::Uuid, period: Period) -> Result<Wins> {
    let mut sql = Sql::raw(
        "SELECT (round(avg(t.amount), 2))::text AS average_won_amount, \
         (avg(date_part('epoch', e.entered_at - t.created_at) / 86400))::float8 AS average_cycle_days FROM ",
    );
    sql.table(table.schema, "stage").push(" es JOIN ");
    sql.table(table.schema, "opportunity_stage_entry")
        .push(" e ON e.stage_id = es.id AND ");
    in_period(&mut sql, pipeline, period);
    sql.push(" CROSS JOIN LATERAL (SELECT t.amount, t.created_at FROM ")
        .table(table.schema, &table.object.table)
        .push(" t WHERE t.id = e.opportunity_id AND ")
        .append(&table.rows(false, T));
    sql.push(") t WHERE es.is_won AND es.pipeline_id = ")
        .bind(Bind::Uuid(Some(pipeline)));
    let rows: Vec<Wins> = sql.planned_for_values().load(conn).await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// The funnel of `pipeline` for stage entries in `[from, to)`, and its
/// stale deals now.
pub async fn funnel(
    db: &Database,
    table: Table<'_>,
    pipeline: uuid::Uuid,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Funnel> {
    // The stays on one connection, the rest on another at the same time.
    let mut first = db.conn().await?;
    let mut second = db.conn().await?;
    let (stays, (all, wins, stale)) = tokio::try_join!(stays(&mut first, &table, pipeline, (from, to)), async {
        let conn = &mut second;
        // Every stage (a stay may move to another pipeline's), the
        // pipeline's live ones in order.
        let mut query =
            Sql::raw("SELECT id, pipeline_id, name, position, is_closed, is_won, deleted_at IS NULL AS live FROM ");
        query.table(table.schema, "stage").push(" ORDER BY position, id");
        let all: Vec<Stage> = query.load(conn).await?;
        let wins = wins(conn, &table, pipeline, (from, to)).await?;
        // Stale now: open deals idle past their pipeline's days.
        let mut query = Sql::raw("SELECT t.stage_id, count(*) AS count");
        query
            .append(&table.from_as(T))
            .push(" WHERE ")
            .append(&table.rows(false, T));
        query.push(" AND t.pipeline_id = ").bind(Bind::Uuid(Some(pipeline)));
        let stale = crate::records::Filter::stale("stale_at", true, chrono::Utc::now());
        query.push(" AND ").append(&stale.compile(table.workspace_schema, T));
        query.push(" GROUP BY t.stage_id");
        let stale: Vec<PerStage> = query.planned_for_values().load(conn).await?;
        Ok::<_, crate::error::CrmError>((all, wins, stale))
    })?;
    let stages: std::collections::HashMap<uuid::Uuid, &Stage> = all.iter().map(|s| (s.id, s)).collect();
    let count =
        |counts: &[PerStage], stage: uuid::Uuid| counts.iter().find(|c| c.stage_id == stage).map_or(0, |c| c.count);
    let mut totals = Totals {
        average_won_amount: wins.average_won_amount,
        average_cycle_days: wins.average_cycle_days,
        ..Totals::default()
    };

    let mut rows = Vec::new();
    for stage in all.iter().filter(|s| s.pipeline_id == pipeline && s.live) {
        let mut row = StageRow {
            stage_id: stage.id.to_string(),
            name: stage.name.clone(),
            stale: count(&stale, stage.id),
            ..StageRow::default()
        };
        let mut days = Vec::new();
        for alike in stays.iter().filter(|s| s.stage_id == stage.id) {
            row.entered += alike.stays;
            if alike.won_now {
                row.won += alike.stays;
            }
            if let Some(next) = alike.next_stage_id.and_then(|id| stages.get(&id)) {
                let same_pipeline = next.pipeline_id == stage.pipeline_id;
                if same_pipeline && (next.is_won || (!next.is_closed && next.position > stage.position)) {
                    row.moved_on += alike.stays;
                }
                if same_pipeline && next.is_closed && !next.is_won {
                    row.lost += alike.stays;
                }
            }
            if let Some(d) = alike.days {
                days.push((d, alike.stays));
            }
        }
        days.sort_by(|a, b| a.0.total_cmp(&b.0));
        row.median_days = percentile(&days, 0.5);
        row.p90_days = percentile(&days, 0.9);
        // Deals closed in the period: those that entered a closed stage.
        match (stage.is_closed, stage.is_won) {
            (true, true) => totals.won += row.entered,
            (true, false) => totals.lost += row.entered,
            _ => {}
        }
        rows.push(row);
    }
    Ok(Funnel { stages: rows, totals })
}

/// The continuous percentile `p` (as PostgreSQL's `percentile_cont`) of
/// values given sorted, each with how many times it occurs.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn percentile(sorted: &[(f64, i64)], p: f64) -> Option<f64> {
    let n: i64 = sorted.iter().map(|(_, count)| count).sum();
    if n == 0 {
        return None;
    }
    let position = p * (n - 1) as f64;
    let (below, above) = (position.floor() as i64, position.ceil() as i64);
    let at = |k: i64| {
        let mut seen = 0;
        for (value, count) in sorted {
            seen += count;
            if k < seen {
                return *value;
            }
        }
        sorted.last().map_or(0.0, |(value, _)| *value)
    };
    let (low, high) = (at(below), at(above));
    Some(low + (position - below as f64) * (high - low))
}

/// `funnel(pipelineId, from, to)` and its types.
pub fn register(surface: &mut Surface) {
    surface.object(stage_type());
    surface.object(funnel_type());
    surface.queries(&["funnel"], vec![funnel_field()]);
}

/// Days to a tenth.
fn days(value: Option<f64>) -> Option<Value> {
    value.map(|d| Value::from((d * 10.0).round() / 10.0))
}

/// `part ÷ whole` to a thousandth; null when `whole` is none.
#[allow(clippy::cast_precision_loss)]
fn ratio(part: i64, whole: i64) -> Option<Value> {
    (whole > 0).then(|| Value::from(((part as f64 / whole as f64) * 1000.0).round() / 1000.0))
}

fn stage_type() -> Object {
    Object::new("FunnelStage")
        .description("One stage of a funnel: the deals that entered it in the period and what became of them.")
        .field(stage_field(
            "stageId",
            TypeRef::named_nn(TypeRef::ID),
            "The stage.",
            |s| Some(Value::String(s.stage_id.clone())),
        ))
        .field(stage_field(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            "The stage's name.",
            |s| Some(Value::String(s.name.clone())),
        ))
        .field(stage_field(
            "entered",
            TypeRef::named_nn(TypeRef::INT),
            "Deals that entered the stage in the period.",
            |s| Some(Value::from(s.entered)),
        ))
        .field(stage_field(
            "movedOn",
            TypeRef::named_nn(TypeRef::INT),
            "Of those, deals whose next stage was a later one or a won one.",
            |s| Some(Value::from(s.moved_on)),
        ))
        .field(stage_field(
            "lost",
            TypeRef::named_nn(TypeRef::INT),
            "Of those, deals whose next stage was a lost one.",
            |s| Some(Value::from(s.lost)),
        ))
        .field(stage_field(
            "won",
            TypeRef::named_nn(TypeRef::INT),
            "Of those, deals that are won now.",
            |s| Some(Value::from(s.won)),
        ))
        .field(stage_field(
            "conversionToNext",
            TypeRef::named(TypeRef::FLOAT),
            "movedOn ÷ entered (null when none entered).",
            move |s| ratio(s.moved_on, s.entered),
        ))
        .field(stage_field(
            "conversionToWon",
            TypeRef::named(TypeRef::FLOAT),
            "won ÷ entered (null when none entered).",
            move |s| ratio(s.won, s.entered),
        ))
        .field(stage_field(
            "medianDaysInStage",
            TypeRef::named(TypeRef::FLOAT),
            "Median days deals that left it spent in the stage.",
            move |s| days(s.median_days),
        ))
        .field(stage_field(
            "p90DaysInStage",
            TypeRef::named(TypeRef::FLOAT),
            "90th percentile of the days deals that left it spent in the stage.",
            move |s| days(s.p90_days),
        ))
        .field(stage_field(
            "stale",
            TypeRef::named_nn(TypeRef::INT),
            "Open deals in the stage now with no stage change or activity for the pipeline's `staleAfterDays` \
             (whenever they entered; `opportunities(filter: { isStale: true })` lists them).",
            |s| Some(Value::from(s.stale)),
        ))
}

fn funnel_type() -> Object {
    Object::new("Funnel")
        .description("A pipeline's funnel over a period, from the opportunity history.")
        .field(
            Field::new("stages", TypeRef::named_nn_list_nn("FunnelStage"), |ctx| {
                let stages = ctx.parent_value.try_downcast_ref::<Funnel>().map(|f| f.stages.clone());
                FieldFuture::new(
                    async move { Ok(Some(FieldValue::list(stages?.into_iter().map(FieldValue::owned_any)))) },
                )
            })
            .description("The pipeline's stages in order."),
        )
        .field(totals_field(
            "won",
            TypeRef::named_nn(TypeRef::INT),
            "Deals won in the period.",
            |t| Some(Value::from(t.won)),
        ))
        .field(totals_field(
            "lost",
            TypeRef::named_nn(TypeRef::INT),
            "Deals lost in the period.",
            |t| Some(Value::from(t.lost)),
        ))
        .field(totals_field(
            "winRate",
            TypeRef::named(TypeRef::FLOAT),
            "won ÷ (won + lost); null when none closed.",
            move |t| ratio(t.won, t.won + t.lost),
        ))
        .field(totals_field(
            "averageWonAmount",
            TypeRef::named("Decimal"),
            "The average amount of deals won in the period.",
            |t| t.average_won_amount.clone().map(Value::String),
        ))
        .field(
            Field::new("staleDeals", TypeRef::named_nn(TypeRef::INT), |ctx| {
                let stale = ctx
                    .parent_value
                    .try_downcast_ref::<Funnel>()
                    .map(|f| f.stages.iter().map(|s| s.stale).sum::<i64>());
                FieldFuture::from_value(stale.ok().map(Value::from))
            })
            .description("Open deals of the pipeline that are stale now (the stages' `stale` added up)."),
        )
        .field(totals_field(
            "averageSalesCycleDays",
            TypeRef::named(TypeRef::FLOAT),
            "Average days from a won deal's creation to its win.",
            move |t| days(t.average_cycle_days),
        ))
}

fn stage_field(
    name: &str,
    type_ref: TypeRef,
    description: &str,
    get: impl Fn(&StageRow) -> Option<Value> + Send + Sync + 'static,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        FieldFuture::from_value(ctx.parent_value.try_downcast_ref::<StageRow>().ok().and_then(&get))
    })
    .description(description)
}

fn totals_field(
    name: &str,
    type_ref: TypeRef,
    description: &str,
    get: impl Fn(&Totals) -> Option<Value> + Send + Sync + 'static,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        FieldFuture::from_value(
            ctx.parent_value
                .try_downcast_ref::<Funnel>()
                .ok()
                .and_then(|f| get(&f.totals)),
        )
    })
    .description(description)
}

fn funnel_field() -> Field {
    Field::new("funnel", TypeRef::named_nn("Funnel"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let (from, to) = super::range_args(&ctx, crate::metadata::parse_datetime, "a DateTime")?;
            let pipeline = match arg(&ctx, "pipelineId") {
                Some(Value::String(text)) => input::parse_id(text, &Path::root("pipelineId"))?,
                _ => return Err(CrmError::bad_input(&["pipelineId"], "name the pipeline")),
            };
            let table = super::opportunities(context)?;
            let funnel = funnel(&context.db, table, pipeline, from, to).await?;
            Ok(Some(FieldValue::owned_any(funnel)))
        })
    })
    .description(
        "A pipeline's funnel over a period: per stage, deals that entered it and what became of them, conversions \
         and days in stage; the win rate, average won deal and sales cycle. Same record visibility as lists.",
    )
    .argument(InputValue::new("pipelineId", TypeRef::named_nn(TypeRef::ID)).description("The pipeline."))
    .argument(
        InputValue::new("from", TypeRef::named_nn("DateTime"))
            .description("Stage entries from this instant (included)."),
    )
    .argument(
        InputValue::new("to", TypeRef::named_nn("DateTime"))
            .description("Stage entries before this instant (excluded)."),
    )
}
