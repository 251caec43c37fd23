//! `crm seed`: fills an empty production with the demo or the benchmark
//! data set, so a new install has something to look at or measure.

use crm::App;

/// Loads the benchmark data set (`scale` times its size) when `bench`,
/// else the demo one, and says what it added (or that production already
/// had accounts).
pub async fn run(app: &App, bench: bool, scale: u32) -> anyhow::Result<()> {
    let report = if bench {
        crm::seed::bench(app, scale).await?
    } else {
        crm::seed::demo(app).await?
    };
    if report.skipped {
        println!("production already has accounts; nothing added");
    } else {
        println!(
            "added {} accounts, {} contacts, {} opportunities, {} activities",
            report.accounts, report.contacts, report.opportunities, report.activities
        );
    }
    Ok(())
}
