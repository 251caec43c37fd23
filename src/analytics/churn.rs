//! Churn and customer lifetime value, from the accounts' lifecycle changes
//! the server records (`LifecycleChange`).
//!
//! An account is a customer from a change to `CUSTOMER` until its next
//! change. Per period `[start, end)`:
//!
//! - `customersAtStart`: accounts that were customers just before `start`;
//! - `lost`: of those, the accounts that stopped being customers in the
//!   period (to churned, or any other stage);
//! - `gained`: accounts that became customers in the period;
//! - `churnRate` = lost ÷ customersAtStart (the glossary's churn rate).
//!
//! The customer lifetime value over a window `[from, to)` of `years`:
//! the average annual revenue per account (won deals closing in the window
//! ÷ the accounts that won them ÷ years) × the average customer lifespan
//! (1 ÷ the annual churn rate, which is the window's lost ÷ customers at
//! its start ÷ years). Amounts are never added across currencies: one
//! value per currency. Every input is returned with the value.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::{Name, Value};
use chrono::{Datelike, Months, NaiveDate};
use diesel::sql_types::{BigInt, Nullable, Text};

use super::forecast::Period;
use crate::db::sql::{Bind, Sql};
use crate::db::Conn;
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{arg, context, resolved};
use crate::graphql::room::Surface;
use crate::records::Table;

const T: &str = "t";
/// The most periods one churn request covers (ten years of months).
pub const MAX_PERIODS: usize = 120;
/// The lifecycle stage churn is about.
const CUSTOMER: &str = "CUSTOMER";

/// One period's customers.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct ChurnPeriod {
    #[diesel(sql_type = Text)]
    pub start: String,
    #[diesel(sql_type = Text)]
    pub finish: String,
    #[diesel(sql_type = BigInt)]
    pub at_start: i64,
    #[diesel(sql_type = BigInt)]
    pub gained: i64,
    #[diesel(sql_type = BigInt)]
    pub lost: i64,
    #[diesel(sql_type = BigInt)]
    pub at_end: i64,
}

impl ChurnPeriod {
    /// lost ÷ customers at the start; none without customers.
    #[allow(clippy::cast_precision_loss)]
    pub fn rate(&self) -> Option<f64> {
        (self.at_start > 0).then(|| self.lost as f64 / self.at_start as f64)
    }
}

/// The periods of `period` length covering `[from, to)`, the first and
/// last cut to it.
pub fn periods(period: Period, from: NaiveDate, to: NaiveDate) -> Result<Vec<(NaiveDate, NaiveDate)>> {
    let months = match period {
        Period::Month => 1,
        Period::Quarter => 3,
        Period::Year => 12,
    };
    let first_month = match period {
        Period::Month => from.month(),
        Period::Quarter => (from.month() - 1) / 3 * 3 + 1,
        Period::Year => 1,
    };
    let mut start = NaiveDate::from_ymd_opt(from.year(), first_month, 1)
        .ok_or_else(|| CrmError::bad_input(&["from"], "from is out of range"))?;
    let mut out = Vec::new();
    while start < to {
        let next = start
            .checked_add_months(Months::new(months))
            .ok_or_else(|| CrmError::bad_input(&["to"], "to is out of range"))?;
        out.push((start.max(from), next.min(to)));
        if out.len() > MAX_PERIODS {
            return Err(CrmError::bad_input(
                &["period"],
                format!("at most {MAX_PERIODS} periods: choose a longer period or a shorter range"),
            ));
        }
        start = next;
    }
    Ok(out)
}

/// The customers of each period among the accounts `accounts` shows.
pub async fn churn(
    conn: &mut Conn,
    accounts: &Table<'_>,
    periods: &[(NaiveDate, NaiveDate)],
) -> Result<Vec<ChurnPeriod>> {
    let mut sql = Sql::raw("WITH periods (start, finish) AS (VALUES ");
    let rows: Vec<Sql> = periods
        .iter()
        .map(|(start, end)| {
            let mut row = Sql::raw("(");
            row.bind(Bind::Date(Some(*start)))
                .push("::date, ")
                .bind(Bind::Date(Some(*end)))
                .push("::date)");
            row
        })
        .collect();
    sql.join(&rows, ", ");
    // Each stay in a lifecycle stage, from its change to the next.
    sql.push("), bounds AS (SELECT start, finish, start::timestamp AT TIME ZONE 'UTC' AS s, ");
    sql.push("finish::timestamp AT TIME ZONE 'UTC' AS f FROM periods), stays AS (SELECT c.account_id, ");
    sql.push("c.to_stage, c.changed_at AS since, lead(c.changed_at) OVER ");
    sql.push("(PARTITION BY c.account_id ORDER BY c.changed_at, c.id) AS until FROM ");
    sql.table(accounts.schema, "account_lifecycle_change").push(" c JOIN ");
    sql.table(accounts.schema, &accounts.object.table)
        .push(" t ON t.id = c.account_id AND ");
    sql.append(&accounts.rows(false, T));
    sql.push(
        ") SELECT b.start::text AS start, b.finish::text AS finish, \
         count(DISTINCT k.account_id) FILTER (WHERE k.since < b.s AND (k.until IS NULL OR k.until >= b.s)) AS at_start, \
         count(DISTINCT k.account_id) FILTER (WHERE k.since >= b.s) AS gained, \
         count(DISTINCT k.account_id) FILTER (WHERE k.since < b.s AND k.until >= b.s AND k.until < b.f) AS lost, \
         count(DISTINCT k.account_id) FILTER (WHERE k.until IS NULL OR k.until >= b.f) AS at_end \
         FROM bounds b LEFT JOIN stays k ON k.to_stage = ",
    );
    sql.bind(Bind::Text(Some(CUSTOMER.into())));
    sql.push(" AND k.since < b.f AND (k.until IS NULL OR k.until >= b.s) GROUP BY b.start, b.finish ORDER BY b.start");
    Ok(sql.planned_for_values().load(conn).await?)
}

/// What one currency's won deals make of a customer's lifetime value.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct CurrencyValue {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Text)]
    pub won_revenue: String,
    #[diesel(sql_type = BigInt)]
    pub accounts: i64,
    #[diesel(sql_type = Text)]
    pub annual_revenue: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
}

/// A customer lifetime value with its inputs.
#[derive(Debug, Clone)]
pub struct Lifetime {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub account: Option<uuid::Uuid>,
    pub years: f64,
    pub churn: ChurnPeriod,
    /// lost ÷ customers at the start ÷ years; none without customers.
    pub annual_churn_rate: Option<f64>,
    /// 1 ÷ the annual churn rate; none when no customer was lost.
    pub lifespan_years: Option<f64>,
    pub currencies: Vec<CurrencyValue>,
}

/// The formula a lifetime value answers with.
pub const FORMULA: &str = "customerLifetimeValue = averageAnnualRevenuePerAccount × averageLifespanYears; \
    averageAnnualRevenuePerAccount = wonRevenue ÷ accounts ÷ years; averageLifespanYears = 1 ÷ annualChurnRate; \
    annualChurnRate = customersLost ÷ customersAtStart ÷ years";

/// The customer lifetime value over `[from, to)`: of the average account,
/// or of `account`, at the workspace's churn.
pub async fn lifetime_value(
    conn: &mut Conn,
    accounts: &Table<'_>,
    deals: &Table<'_>,
    (from, to): (NaiveDate, NaiveDate),
    account: Option<uuid::Uuid>,
) -> Result<Lifetime> {
    let churn = churn(conn, accounts, &[(from, to)])
        .await?
        .pop()
        .ok_or_else(|| CrmError::internal("the churn of a window has no row"))?;
    #[allow(clippy::cast_precision_loss)]
    let years = (to - from).num_days() as f64 / 365.25;
    let annual_churn_rate = churn.rate().map(|rate| rate / years);
    let lifespan_years = annual_churn_rate.filter(|rate| *rate > 0.0).map(|rate| 1.0 / rate);
    let decimal = |value: f64| Bind::Decimal(Some(format!("{value:.9}")));
    let mut sql = Sql::raw(
        "SELECT t.currency, sum(t.amount)::numeric(20, 2)::text AS won_revenue, \
         count(DISTINCT t.account_id) AS accounts, round(sum(t.amount) / count(DISTINCT t.account_id) / ",
    );
    sql.bind(decimal(years)).push("::numeric, 2)::text AS annual_revenue, ");
    match lifespan_years {
        Some(lifespan) => {
            sql.push("round(sum(t.amount) / count(DISTINCT t.account_id) / ")
                .bind(decimal(years))
                .push("::numeric * ")
                .bind(decimal(lifespan))
                .push("::numeric, 2)::text AS value");
        }
        None => {
            sql.push("NULL::text AS value");
        }
    }
    sql.append(&deals.from_as(T))
        .push(" WHERE ")
        .append(&deals.rows(false, T));
    sql.push(" AND t.is_won AND t.amount IS NOT NULL AND t.account_id IS NOT NULL");
    sql.push(" AND t.close_date >= ").bind(Bind::Date(Some(from)));
    sql.push(" AND t.close_date < ").bind(Bind::Date(Some(to)));
    if let Some(account) = account {
        sql.push(" AND t.account_id = ").bind(Bind::Uuid(Some(account)));
    }
    sql.push(" GROUP BY t.currency ORDER BY t.currency");
    let currencies = sql.planned_for_values().load(conn).await?;
    Ok(Lifetime {
        from,
        to,
        account,
        years,
        churn,
        annual_churn_rate,
        lifespan_years,
        currencies,
    })
}

/// `churnRate` and `customerLifetimeValue` and their types.
pub fn register(surface: &mut Surface) {
    surface.object(churn_type());
    surface.object(currency_value_type());
    surface.object(lifetime_type());
    surface.queries(
        &["churnRate", "customerLifetimeValue"],
        vec![churn_field(), lifetime_field()],
    );
}

/// To a thousandth.
fn rounded(value: Option<f64>) -> Option<Value> {
    value.map(|v| Value::from((v * 1000.0).round() / 1000.0))
}

fn getter<P: 'static>(
    name: &str,
    type_ref: TypeRef,
    description: &str,
    get: impl Fn(&P) -> Option<Value> + Send + Sync + 'static,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        FieldFuture::from_value(ctx.parent_value.try_downcast_ref::<P>().ok().and_then(&get))
    })
    .description(description)
}

fn churn_type() -> Object {
    let int = |name: &str, description: &str, get: fn(&ChurnPeriod) -> i64| {
        getter::<ChurnPeriod>(name, TypeRef::named_nn(TypeRef::INT), description, move |p| {
            Some(Value::from(get(p)))
        })
    };
    Object::new("ChurnPeriod")
        .description("The customers of one period: at its start, gained, lost, at its end, and the churn rate.")
        .field(getter::<ChurnPeriod>(
            "start",
            TypeRef::named_nn("Date"),
            "The period's first day.",
            |p| Some(Value::String(p.start.clone())),
        ))
        .field(getter::<ChurnPeriod>(
            "end",
            TypeRef::named_nn("Date"),
            "The day after the period's last.",
            |p| Some(Value::String(p.finish.clone())),
        ))
        .field(int(
            "customersAtStart",
            "Accounts that were customers just before the period began.",
            |p| p.at_start,
        ))
        .field(int("gained", "Accounts that became customers in the period.", |p| {
            p.gained
        }))
        .field(int(
            "lost",
            "Of the customers at the start, those that stopped being customers in the period.",
            |p| p.lost,
        ))
        .field(int(
            "customersAtEnd",
            "Accounts that were customers at the period's end.",
            |p| p.at_end,
        ))
        .field(getter::<ChurnPeriod>(
            "churnRate",
            TypeRef::named(TypeRef::FLOAT),
            "lost ÷ customersAtStart, to a thousandth; null without customers at the start.",
            |p| rounded(p.rate()),
        ))
}

fn currency_value_type() -> Object {
    Object::new("CurrencyLifetimeValue")
        .description("The lifetime value from the won deals in one currency (currencies are never added).")
        .field(getter::<CurrencyValue>(
            "currency",
            TypeRef::named_nn(TypeRef::STRING),
            "The currency of the amounts.",
            |v| Some(Value::String(v.currency.clone())),
        ))
        .field(getter::<CurrencyValue>(
            "wonRevenue",
            TypeRef::named_nn("Decimal"),
            "The amounts of won deals closing in the window.",
            |v| Some(Value::String(v.won_revenue.clone())),
        ))
        .field(getter::<CurrencyValue>(
            "accounts",
            TypeRef::named_nn(TypeRef::INT),
            "The accounts those deals were won with.",
            |v| Some(Value::from(v.accounts)),
        ))
        .field(getter::<CurrencyValue>(
            "averageAnnualRevenuePerAccount",
            TypeRef::named_nn("Decimal"),
            "wonRevenue ÷ accounts ÷ years, to the cent.",
            |v| Some(Value::String(v.annual_revenue.clone())),
        ))
        .field(getter::<CurrencyValue>(
            "value",
            TypeRef::named("Decimal"),
            "averageAnnualRevenuePerAccount × averageLifespanYears, to the cent; null when no customer was lost \
             (the lifespan is then unbounded).",
            |v| v.value.clone().map(Value::String),
        ))
}

fn lifetime_type() -> Object {
    Object::new("CustomerLifetimeValue")
        .description(
            "A customer lifetime value with the formula and every input: average annual revenue per account × \
             average customer lifespan (1 ÷ annual churn rate).",
        )
        .field(getter::<Lifetime>(
            "formula",
            TypeRef::named_nn(TypeRef::STRING),
            "How the value is computed from the other fields.",
            |_| Some(Value::String(FORMULA.into())),
        ))
        .field(getter::<Lifetime>(
            "from",
            TypeRef::named_nn("Date"),
            "The window's first day.",
            |l| Some(Value::String(l.from.to_string())),
        ))
        .field(getter::<Lifetime>(
            "to",
            TypeRef::named_nn("Date"),
            "The day after the window's last.",
            |l| Some(Value::String(l.to.to_string())),
        ))
        .field(getter::<Lifetime>(
            "accountId",
            TypeRef::named(TypeRef::ID),
            "The account valued; null for the average account.",
            |l| l.account.map(|id| Value::String(id.to_string())),
        ))
        .field(getter::<Lifetime>(
            "years",
            TypeRef::named_nn(TypeRef::FLOAT),
            "The window's length in years (days ÷ 365.25), to a thousandth.",
            |l| rounded(Some(l.years)),
        ))
        .field(getter::<Lifetime>(
            "customersAtStart",
            TypeRef::named_nn(TypeRef::INT),
            "Customers just before the window began.",
            |l| Some(Value::from(l.churn.at_start)),
        ))
        .field(getter::<Lifetime>(
            "customersLost",
            TypeRef::named_nn(TypeRef::INT),
            "Of those, customers lost in the window.",
            |l| Some(Value::from(l.churn.lost)),
        ))
        .field(getter::<Lifetime>(
            "annualChurnRate",
            TypeRef::named(TypeRef::FLOAT),
            "customersLost ÷ customersAtStart ÷ years, to a thousandth; null without customers at the start.",
            |l| rounded(l.annual_churn_rate),
        ))
        .field(getter::<Lifetime>(
            "averageLifespanYears",
            TypeRef::named(TypeRef::FLOAT),
            "1 ÷ annualChurnRate, to a thousandth; null when no customer was lost.",
            |l| rounded(l.lifespan_years),
        ))
        .field(
            Field::new(
                "byCurrency",
                TypeRef::named_nn_list_nn("CurrencyLifetimeValue"),
                |ctx| {
                    let values = ctx
                        .parent_value
                        .try_downcast_ref::<Lifetime>()
                        .map(|l| l.currencies.clone());
                    FieldFuture::new(async move {
                        Ok(Some(FieldValue::list(values?.into_iter().map(FieldValue::owned_any))))
                    })
                },
            )
            .description("The revenue and the value, per currency of the won deals."),
        )
}

fn churn_field() -> Field {
    Field::new("churnRate", TypeRef::named_nn_list_nn("ChurnPeriod"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let (from, to) = super::range_args(&ctx, crate::metadata::parse_date, "a date, YYYY-MM-DD")?;
            let period = Period::of_arg(&ctx);
            let periods = periods(period, from, to)?;
            let mut conn = context.db.conn().await?;
            let rows = churn(&mut conn, &super::readable(context, "Account")?, &periods).await?;
            Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
        })
    })
    .description(
        "Churn per period: customers at the start, gained, lost and at the end, and the churn rate (lost ÷ \
         customers at the start), from the accounts' lifecycle changes. Same record visibility as lists.",
    )
    .argument(
        InputValue::new("period", TypeRef::named_nn("ForecastPeriod"))
            .default_value(Value::Enum(Name::new("QUARTER")))
            .description("The length of a period."),
    )
    .argument(InputValue::new("from", TypeRef::named_nn("Date")).description("From this day (included)."))
    .argument(InputValue::new("to", TypeRef::named_nn("Date")).description("To this day (excluded)."))
}

fn lifetime_field() -> Field {
    Field::new(
        "customerLifetimeValue",
        TypeRef::named_nn("CustomerLifetimeValue"),
        |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                let window = super::range_args(&ctx, crate::metadata::parse_date, "a date, YYYY-MM-DD")?;
                let account = match arg(&ctx, "accountId") {
                    Some(Value::String(text)) => Some(input::parse_id(text, &Path::root("accountId"))?),
                    _ => None,
                };
                let mut conn = context.db.conn().await?;
                let deals = super::opportunities(context)?;
                let value = lifetime_value(
                    &mut conn,
                    &super::readable(context, "Account")?,
                    &deals,
                    window,
                    account,
                )
                .await?;
                Ok(Some(FieldValue::owned_any(value)))
            })
        },
    )
    .description(
        "The customer lifetime value over a window, with its formula and inputs: average annual revenue per \
         account from won deals × average customer lifespan (1 ÷ annual churn rate). Per currency; of one \
         account with `accountId`. Same record visibility as lists.",
    )
    .argument(
        InputValue::new("from", TypeRef::named_nn("Date"))
            .description("The window's first day: won deals closing and churn from then."),
    )
    .argument(InputValue::new("to", TypeRef::named_nn("Date")).description("The window's end (excluded)."))
    .argument(
        InputValue::new("accountId", TypeRef::named(TypeRef::ID))
            .description("Value this account's revenue (default: the average account's)."),
    )
}
