//! `crm report forecast`, `crm report funnel` and `crm report churn`: the
//! sales forecast, a pipeline's funnel and the customers' churn as tables
//! on a terminal, for admins without a frontend. They read production as
//! an admin would (every record).

use chrono::{Datelike, NaiveDate, Utc};
use crm::analytics::forecast::{self, By, Period};
use crm::analytics::{churn, funnel};
use crm::db::sql::{Bind, Sql};
use crm::graphql::Workspace;
use crm::records::Table;
use crm::App;

use crate::{ForecastBy, ForecastPeriod, Periods, ReportCommand};

/// Runs one `crm report` command.
pub async fn run(command: &ReportCommand, app: &App) -> anyhow::Result<()> {
    let entry = app.schemas.get(&app.db, &Workspace::production()).await?;
    let object = entry
        .model
        .object("Opportunity")
        .ok_or_else(|| anyhow::anyhow!("the model has no Opportunity"))?;
    let table = Table::new(&entry.workspace.pg_schema, object);
    let mut conn = app.db.conn().await?;
    match command {
        ReportCommand::Forecast { periods, by } => forecast_report(&mut conn, table, *periods, *by).await,
        ReportCommand::Churn { periods } => {
            let accounts = entry
                .model
                .object("Account")
                .ok_or_else(|| anyhow::anyhow!("the model has no Account"))?;
            let accounts = Table::new(&entry.workspace.pg_schema, accounts);
            churn_report(&mut conn, &accounts, *periods).await
        }
        ReportCommand::Funnel { pipeline, from, to } => {
            funnel_report(
                &app.db,
                table,
                &entry.workspace.pg_schema,
                pipeline.as_deref(),
                *from,
                *to,
            )
            .await
        }
    }
}

/// `--from` (default: 1 January this year) and `--to` (default: a year later).
fn span(Periods { from, to, .. }: Periods) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    let this_year = Utc::now().year();
    let from = from.unwrap_or_else(|| NaiveDate::from_ymd_opt(this_year, 1, 1).unwrap_or_default());
    let to = to.unwrap_or_else(|| NaiveDate::from_ymd_opt(from.year() + 1, from.month(), 1).unwrap_or(from));
    anyhow::ensure!(to > from, "--to must be after --from");
    Ok((from, to))
}

fn period_of(period: ForecastPeriod) -> Period {
    match period {
        ForecastPeriod::Month => Period::Month,
        ForecastPeriod::Quarter => Period::Quarter,
        ForecastPeriod::Year => Period::Year,
    }
}

async fn churn_report(conn: &mut crm::db::Conn, accounts: &Table<'_>, periods: Periods) -> anyhow::Result<()> {
    let (from, to) = span(periods)?;
    let periods = churn::periods(period_of(periods.period), from, to)?;
    let rows = churn::churn(conn, accounts, &periods).await?;
    println!("Churn, {from} to {to} (excluded)");
    let mut lines = vec![[
        "period",
        "end",
        "customers at start",
        "gained",
        "lost",
        "at end",
        "churn rate",
    ]
    .map(str::to_owned)
    .to_vec()];
    for row in rows {
        let rate = row
            .rate()
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1} %", r * 100.0));
        lines.push(vec![
            row.start,
            row.finish,
            row.at_start.to_string(),
            row.gained.to_string(),
            row.lost.to_string(),
            row.at_end.to_string(),
            rate,
        ]);
    }
    print_table(&lines);
    Ok(())
}

async fn forecast_report(
    conn: &mut crm::db::Conn,
    table: Table<'_>,
    periods: Periods,
    by: Option<ForecastBy>,
) -> anyhow::Result<()> {
    let (from, to) = span(periods)?;
    let request = forecast::Request {
        pipeline: None,
        period: period_of(periods.period),
        from,
        to,
        by: by.map(|by| match by {
            ForecastBy::Owner => By::Owner,
            ForecastBy::Pipeline => By::Pipeline,
            ForecastBy::Category => By::Category,
        }),
    };
    let rows = forecast::forecast(conn, table, &request).await?;
    println!("Forecast, close dates {from} to {to} (excluded)");
    let mut lines = vec![vec![
        "period".to_owned(),
        "group".to_owned(),
        "currency".to_owned(),
        "deals".to_owned(),
        "pipeline".to_owned(),
        "weighted".to_owned(),
        "commit".to_owned(),
        "best case".to_owned(),
        "closed won".to_owned(),
    ]];
    for row in rows {
        lines.push(vec![
            row.period,
            row.grp.unwrap_or_else(|| "all".to_owned()),
            row.currency,
            row.deals.to_string(),
            row.pipeline,
            row.weighted,
            row.commit,
            row.best_case,
            row.closed_won,
        ]);
    }
    print_table(&lines);
    Ok(())
}

async fn funnel_report(
    db: &crm::db::Database,
    table: Table<'_>,
    schema: &str,
    pipeline: Option<&str>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let to = to.unwrap_or_else(|| Utc::now().date_naive() + chrono::Days::new(1));
    let from = from.unwrap_or(to - chrono::Days::new(91));
    anyhow::ensure!(to > from, "--to must be after --from");
    let mut query = Sql::raw("SELECT id::text AS value FROM ");
    query.table(schema, "pipeline").push(" WHERE deleted_at IS NULL AND ");
    match pipeline {
        Some(name) => query.push("name = ").bind(Bind::Text(Some(name.to_owned()))),
        None => query.push("is_default"),
    };
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let mut conn = db.conn().await?;
    let found: Vec<Found> = query.load(&mut conn).await?;
    drop(conn);
    let pipeline_id = found
        .first()
        .and_then(|f| f.value.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no such pipeline (name one with --pipeline)"))?;
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let funnel = funnel::funnel(db, table, pipeline_id, start, end).await?;
    println!("Funnel, stage entries {from} to {to} (excluded)");
    let mut lines = vec![[
        "stage",
        "entered",
        "moved on",
        "lost",
        "won now",
        "median days",
        "p90 days",
        "stale now",
    ]
    .map(str::to_owned)
    .to_vec()];
    let days = |d: Option<f64>| d.map_or_else(|| "-".to_owned(), |d| format!("{d:.1}"));
    let stale: i64 = funnel.stages.iter().map(|s| s.stale).sum();
    for stage in funnel.stages {
        lines.push(vec![
            stage.name,
            stage.entered.to_string(),
            stage.moved_on.to_string(),
            stage.lost.to_string(),
            stage.won.to_string(),
            days(stage.median_days),
            days(stage.p90_days),
            stage.stale.to_string(),
        ]);
    }
    print_table(&lines);
    let totals = funnel.totals;
    let closed = totals.won + totals.lost;
    println!(
        "won {}, lost {}, win rate {}, average won deal {}, average sales cycle {} days, {stale} deals stale now",
        totals.won,
        totals.lost,
        if closed > 0 {
            format!("{:.1} %", 100.0 * totals.won as f64 / closed as f64)
        } else {
            "-".to_owned()
        },
        totals.average_won_amount.unwrap_or_else(|| "-".to_owned()),
        days(totals.average_cycle_days),
    );
    Ok(())
}

/// Columns padded to their widest cell: text left, numbers right.
fn print_table(lines: &[Vec<String>]) {
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| {
                let numeric = cell.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '-');
                if numeric {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
