//! The sales forecast: per close period (month, quarter or year) and, if
//! asked, per owner, pipeline or forecast category, what the deals closing
//! in it add up to. The forecast categories come from the stages (each
//! stage names one; a deal may override it), the probabilities too:
//!
//! - `pipeline`: the amounts of open deals not omitted from the forecast;
//! - `weighted`: Σ amount × probability of those, plus closed-won amounts;
//! - `commit`: closed won plus open deals in `COMMIT`;
//! - `bestCase`: closed won plus open deals in `COMMIT` or `BEST_CASE`;
//! - `closedWon`: the amounts of won deals.
//!
//! Amounts are never added across currencies: the currency is part of
//! every row's key, so deals in euros and in dollars make separate rows.

use async_graphql::dynamic::{Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::{Name, Value};
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::sql::{Bind, Sql};
use crate::db::Conn;
use crate::error::Result;
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, enum_name, resolved};
use crate::graphql::room::Surface;
use crate::records::Table;

const T: &str = "t";

/// The length of a forecast period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month,
    Quarter,
    Year,
}

impl Period {
    /// The `period` argument (`ForecastPeriod`, default `QUARTER`).
    pub fn of_arg(ctx: &async_graphql::dynamic::ResolverContext<'_>) -> Period {
        match enum_name(arg(ctx, "period")).as_deref() {
            Some("MONTH") => Period::Month,
            Some("YEAR") => Period::Year,
            _ => Period::Quarter,
        }
    }
}

/// What forecast rows are split by, besides period and currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Owner,
    Pipeline,
    Category,
}

/// A forecast's request.
#[derive(Debug, Clone)]
pub struct Request {
    pub pipeline: Option<uuid::Uuid>,
    pub period: Period,
    /// Close dates from `from` (included) to `to` (excluded).
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub by: Option<By>,
}

/// One row: a period, its group, a currency and the sums (decimal text).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Row {
    #[diesel(sql_type = Text)]
    pub period: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub grp: Option<String>,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub deals: i64,
    #[diesel(sql_type = Text)]
    pub pipeline: String,
    #[diesel(sql_type = Text)]
    pub weighted: String,
    #[diesel(sql_type = Text)]
    pub commit: String,
    #[diesel(sql_type = Text)]
    pub best_case: String,
    #[diesel(sql_type = Text)]
    pub closed_won: String,
}

/// The forecast of the opportunities `table` shows (live, visible).
pub async fn forecast(conn: &mut Conn, table: Table<'_>, request: &Request) -> Result<Vec<Row>> {
    let unit = match request.period {
        Period::Month => "month",
        Period::Quarter => "quarter",
        Period::Year => "year",
    };
    let group = match request.by {
        None => "NULL::text",
        Some(By::Owner) => "t.owner_id::text",
        Some(By::Pipeline) => "t.pipeline_id::text",
        Some(By::Category) => "t.forecast_category",
    };
    let open = "NOT t.is_closed AND t.forecast_category <> 'OMITTED'";
    let sum = |expression: &str, condition: &str| {
        format!("(coalesce(sum({expression}) FILTER (WHERE {condition}), 0))::numeric(20, 2)::text")
    };
    let mut sql = Sql::raw("SELECT date_trunc('");
    sql.push(unit)
        .push("', t.close_date::timestamp)::date::text AS period, ");
    sql.push(group).push(" AS grp, t.currency, count(*) AS deals, ");
    sql.push(&sum("t.amount", open)).push(" AS pipeline, (");
    sql.push(&sum("t.expected_revenue", open)).push(")::numeric + (");
    sql.push(&sum("t.amount", "t.is_won"))
        .push(")::numeric AS weighted_raw, ");
    sql.push(&sum(
        "t.amount",
        "t.is_won OR (NOT t.is_closed AND t.forecast_category = 'COMMIT')",
    ));
    sql.push(" AS commit, ");
    sql.push(&sum(
        "t.amount",
        "t.is_won OR (NOT t.is_closed AND t.forecast_category IN ('COMMIT', 'BEST_CASE'))",
    ));
    sql.push(" AS best_case, ")
        .push(&sum("t.amount", "t.is_won"))
        .push(" AS closed_won");
    sql.append(&table.from_as(T))
        .push(" WHERE ")
        .append(&table.rows(false, T));
    sql.push(" AND t.close_date >= ").bind(Bind::Date(Some(request.from)));
    sql.push(" AND t.close_date < ").bind(Bind::Date(Some(request.to)));
    if let Some(pipeline) = request.pipeline {
        sql.push(" AND t.pipeline_id = ").bind(Bind::Uuid(Some(pipeline)));
    }
    sql.push(" GROUP BY 1, 2, 3");
    let mut outer = Sql::raw(
        "SELECT period, grp, currency, deals, pipeline, weighted_raw::numeric(20, 2)::text AS weighted, \
         commit, best_case, closed_won FROM (",
    );
    outer
        .append(&sql)
        .push(") AS f ORDER BY period, grp NULLS FIRST, currency");
    Ok(outer.planned_for_values().load(conn).await?)
}

/// `forecast(…)` and its types.
pub fn register(surface: &mut Surface) {
    surface.enumeration(
        Enum::new("ForecastPeriod")
            .description("The length of a forecast period, by close date.")
            .item(EnumItem::new("MONTH").description("Calendar months."))
            .item(EnumItem::new("QUARTER").description("Calendar quarters."))
            .item(EnumItem::new("YEAR").description("Calendar years.")),
    );
    surface.enumeration(
        Enum::new("ForecastBy")
            .description("What forecast rows are split by, besides period and currency.")
            .item(EnumItem::new("OWNER").description("The deal's owner."))
            .item(EnumItem::new("PIPELINE").description("The deal's pipeline."))
            .item(EnumItem::new("CATEGORY").description("The deal's forecast category.")),
    );
    let decimal = |name: &str, get: fn(&Row) -> &String, description: &str| {
        row_field(name, TypeRef::named_nn("Decimal"), description, move |row, _| {
            Some(Value::String(get(row).clone()))
        })
    };
    let group = |name: &str, by: By, type_ref: TypeRef, description: &str| {
        row_field(name, type_ref, description, move |row, asked| {
            (asked == Some(by))
                .then(|| row.grp.clone())
                .flatten()
                .map(|value| match by {
                    By::Category => Value::Enum(Name::new(value)),
                    By::Owner | By::Pipeline => Value::String(value),
                })
        })
    };
    surface.object(
        Object::new("ForecastRow")
            .description("What the deals closing in one period (and group, and currency) add up to.")
            .field(row_field(
                "period",
                TypeRef::named_nn("Date"),
                "The period's first day.",
                |row, _| Some(Value::String(row.period.clone())),
            ))
            .field(group(
                "ownerId",
                By::Owner,
                TypeRef::named(TypeRef::ID),
                "The owner (with `by: OWNER`).",
            ))
            .field(group(
                "pipelineId",
                By::Pipeline,
                TypeRef::named(TypeRef::ID),
                "The pipeline (with `by: PIPELINE`).",
            ))
            .field(group(
                "category",
                By::Category,
                TypeRef::named("OpportunityForecastCategory"),
                "The forecast category (with `by: CATEGORY`).",
            ))
            .field(row_field(
                "currency",
                TypeRef::named_nn(TypeRef::STRING),
                "The currency of every amount in the row (amounts in different currencies are never added).",
                |row, _| Some(Value::String(row.currency.clone())),
            ))
            .field(row_field(
                "deals",
                TypeRef::named_nn(TypeRef::INT),
                "Deals closing in the period, open or closed.",
                |row, _| Some(Value::from(row.deals)),
            ))
            .field(decimal(
                "pipeline",
                |r| &r.pipeline,
                "Amounts of open deals not omitted from the forecast.",
            ))
            .field(decimal(
                "weighted",
                |r| &r.weighted,
                "Σ amount × probability of open deals not omitted, plus closed won.",
            ))
            .field(decimal(
                "commit",
                |r| &r.commit,
                "Closed won plus open deals in COMMIT.",
            ))
            .field(decimal(
                "bestCase",
                |r| &r.best_case,
                "Closed won plus open deals in COMMIT or BEST_CASE.",
            ))
            .field(decimal("closedWon", |r| &r.closed_won, "Amounts of won deals.")),
    );
    surface.queries(&["forecast"], vec![forecast_field()]);
}

/// A field of a forecast row, read off `(Row, by)`.
fn row_field(
    name: &str,
    type_ref: TypeRef,
    description: &str,
    get: impl Fn(&Row, Option<By>) -> Option<Value> + Send + Sync + 'static,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx
            .parent_value
            .try_downcast_ref::<(Row, Option<By>)>()
            .ok()
            .and_then(|(row, by)| get(row, *by));
        FieldFuture::from_value(value)
    })
    .description(description)
}

fn forecast_field() -> Field {
    Field::new("forecast", TypeRef::named_nn_list_nn("ForecastRow"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let (from, to) = super::range_args(&ctx, crate::metadata::parse_date, "a date, YYYY-MM-DD")?;
            let period = Period::of_arg(&ctx);
            let by = match enum_name(arg(&ctx, "by")).as_deref() {
                Some("OWNER") => Some(By::Owner),
                Some("PIPELINE") => Some(By::Pipeline),
                Some("CATEGORY") => Some(By::Category),
                _ => None,
            };
            let pipeline = match arg(&ctx, "pipelineId") {
                Some(Value::String(text)) => Some(input::parse_id(text, &Path::root("pipelineId"))?),
                _ => None,
            };
            let request = Request {
                pipeline,
                period,
                from,
                to,
                by,
            };
            let mut conn = context.db.conn().await?;
            let table = super::opportunities(context)?;
            let rows = forecast(&mut conn, table, &request).await?;
            Ok(Some(FieldValue::list(
                rows.into_iter().map(|row| FieldValue::owned_any((row, by))),
            )))
        })
    })
    .description(
        "The sales forecast: per close period (and owner, pipeline or category), what the deals closing in it \
         add up to: pipeline, weighted, commit, best case and closed won. Same record visibility as lists.",
    )
    .argument(
        InputValue::new("pipelineId", TypeRef::named(TypeRef::ID)).description("One pipeline's deals (default: all)."),
    )
    .argument(
        InputValue::new("period", TypeRef::named_nn("ForecastPeriod"))
            .default_value(Value::Enum(Name::new("QUARTER")))
            .description("The length of a period."),
    )
    .argument(InputValue::new("from", TypeRef::named_nn("Date")).description("Close dates from this day (included)."))
    .argument(InputValue::new("to", TypeRef::named_nn("Date")).description("Close dates before this day (excluded)."))
    .argument(InputValue::new("by", TypeRef::named("ForecastBy")).description("Split each period by this too."))
}
