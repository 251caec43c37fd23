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
use diesel::deserialize::QueryableByName;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use crate::db::sql::{Bind, Sql};
use crate::db::Conn;
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, resolved};
use crate::graphql::room::Surface;
use crate::records::Table;

const T: &str = "t";

/// One stage of the funnel.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct StageRow {
    #[diesel(sql_type = Text)]
    pub stage_id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub entered: i64,
    #[diesel(sql_type = BigInt)]
    pub moved_on: i64,
    #[diesel(sql_type = BigInt)]
    pub lost: i64,
    #[diesel(sql_type = BigInt)]
    pub won: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub median_days: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub p90_days: Option<f64>,
    /// Open deals in the stage now, idle past their pipeline's days.
    #[diesel(sql_type = BigInt)]
    pub stale: i64,
}

/// The pipeline's totals over the period.
#[derive(Debug, Clone, Default, diesel::QueryableByName)]
pub struct Totals {
    #[diesel(sql_type = BigInt, column_name = total_won)]
    pub won: i64,
    #[diesel(sql_type = BigInt, column_name = total_lost)]
    pub lost: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub average_won_amount: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub average_cycle_days: Option<f64>,
}

/// A stage and the pipeline's totals, as one statement reads them.
#[derive(QueryableByName)]
struct Row {
    #[diesel(embed)]
    stage: StageRow,
    #[diesel(embed)]
    totals: Totals,
}

/// A funnel: its stages in order and the totals.
#[derive(Debug, Clone)]
pub struct Funnel {
    pub stages: Vec<StageRow>,
    pub totals: Totals,
}

/// The stays in stages of `pipeline` that began in `[from, to)`, of
/// visible, live deals: each with the stage's and the next stage's order
/// and status, the deal's status now, amount and creation (one indexed
/// read of the stage entries).
fn entries(
    table: &Table<'_>,
    pipeline: uuid::Uuid,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Sql {
    let stage = |sql: &mut Sql| {
        sql.table(table.schema, "stage");
    };
    let mut sql = Sql::raw(
        "WITH entered AS (SELECT e.stage_id, e.entered_at, e.left_at, e.next_stage_id, \
         t.is_won AS won_now, t.amount, t.created_at, s.position, s.is_closed, s.is_won, \
         n.position AS next_position, n.is_closed AS next_closed, n.is_won AS next_won FROM ",
    );
    sql.table(table.schema, "opportunity_stage_entry").push(" e JOIN ");
    sql.table(table.schema, &table.object.table)
        .push(" t ON t.id = e.opportunity_id AND ");
    sql.append(&table.rows(false, T));
    sql.push(" JOIN ");
    stage(&mut sql);
    sql.push(" s ON s.id = e.stage_id LEFT JOIN ");
    stage(&mut sql);
    sql.push(" n ON n.id = e.next_stage_id WHERE e.pipeline_id = ")
        .bind(Bind::Uuid(Some(pipeline)));
    sql.push(" AND e.entered_at >= ").bind(Bind::DateTime(Some(from)));
    sql.push(" AND e.entered_at < ")
        .bind(Bind::DateTime(Some(to)))
        .push(") ");
    sql
}

/// The funnel of `pipeline` for stage entries in `[from, to)`, and its
/// stale deals now.
pub async fn funnel(
    conn: &mut Conn,
    table: Table<'_>,
    pipeline: uuid::Uuid,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Funnel> {
    let mut stages = entries(&table, pipeline, from, to);
    // Counted per stage first, then laid on the pipeline's stages: one pass
    // over the entries, whatever the number of stages.
    stages.push(
        ", per_stage AS (SELECT e.stage_id, count(*) AS entered, \
         count(*) FILTER (WHERE e.next_stage_id IS NOT NULL AND (e.next_won OR (NOT e.next_closed AND e.next_position > e.position))) AS moved_on, \
         count(*) FILTER (WHERE e.next_closed AND NOT e.next_won) AS lost, \
         count(*) FILTER (WHERE e.won_now) AS won, \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.left_at - e.entered_at) / 86400) AS median_days, \
         percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM e.left_at - e.entered_at) / 86400) AS p90_days \
         FROM entered e GROUP BY e.stage_id), \
         totals AS (SELECT count(*) FILTER (WHERE is_won) AS total_won, \
         count(*) FILTER (WHERE is_closed AND NOT is_won) AS total_lost, \
         (round(avg(amount) FILTER (WHERE is_won), 2))::text AS average_won_amount, \
         (avg(extract(epoch FROM entered_at - created_at) / 86400) FILTER (WHERE is_won))::float8 AS average_cycle_days \
         FROM entered WHERE is_closed), stale AS (SELECT t.stage_id, count(*) AS stale FROM ",
    );
    // Stale now: open deals idle past their pipeline's days (an index
    // range on `stale_at`).
    stages.table(table.schema, &table.object.table).push(" t WHERE ");
    stages.append(&table.rows(false, T));
    stages.push(" AND t.pipeline_id = ").bind(Bind::Uuid(Some(pipeline)));
    stages
        .push(" AND t.stale_at <= ")
        .bind(Bind::DateTime(Some(chrono::Utc::now())));
    stages.push(
        " GROUP BY t.stage_id) SELECT s.id::text AS stage_id, s.name, coalesce(p.entered, 0) AS entered, \
         coalesce(p.moved_on, 0) AS moved_on, coalesce(p.lost, 0) AS lost, coalesce(p.won, 0) AS won, \
         p.median_days, p.p90_days, coalesce(st.stale, 0) AS stale, totals.* FROM ",
    );
    stages.table(table.schema, "stage").push(
        " s LEFT JOIN per_stage p ON p.stage_id = s.id LEFT JOIN stale st ON st.stage_id = s.id CROSS JOIN totals",
    );
    stages.push(" WHERE s.pipeline_id = ").bind(Bind::Uuid(Some(pipeline)));
    stages.push(" AND s.deleted_at IS NULL ORDER BY s.position, s.id");
    let rows: Vec<Row> = stages.load(conn).await?;
    let totals = rows.first().map(|row| row.totals.clone()).unwrap_or_default();
    Ok(Funnel {
        stages: rows.into_iter().map(|row| row.stage).collect(),
        totals,
    })
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
            let mut conn = context.db.conn().await?;
            let table = super::opportunities(context)?;
            let funnel = funnel(&mut conn, table, pipeline, from, to).await?;
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
