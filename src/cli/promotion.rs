//! `crm promotion`: the history of promotions and their reverts; and
//! [`promote`], the one runner every command that changes a workspace's
//! metadata goes through (`sandbox diff`/`promote`, `changeset`,
//! `promotion revert`), so they all print the same report and refuse alike.

use std::io::IsTerminal;

use crm::audit::Trail;
use crm::promotion::{Options, Source};
use crm::App;

use crate::PromotionCommand;

/// Runs one `crm promotion` command.
pub async fn run(command: &PromotionCommand, app: &App) -> anyhow::Result<()> {
    match command {
        PromotionCommand::List { first } => list(app, *first).await,
        PromotionCommand::Revert {
            id,
            dry_run,
            allow_lossy,
        } => {
            let options = Options {
                dry_run: *dry_run,
                allow_lossy: *allow_lossy,
                ..Default::default()
            };
            revert(app, *id, options).await
        }
    }
}

/// One line per promotion, newest first; `first` is kept within 1..=500.
async fn list(app: &App, first: i32) -> anyhow::Result<()> {
    let mut conn = app.db.conn().await?;
    let found = crm::promotion::list(&mut conn, first.clamp(1, 500)).await?;
    if found.is_empty() {
        println!("no promotions yet");
    }
    for promotion in found {
        println!("{}", crm::promotion::text::promotion_line(&promotion));
    }
    Ok(())
}

/// Applies a promotion's stored inverse to the workspace it changed.
async fn revert(app: &App, id: uuid::Uuid, options: Options) -> anyhow::Result<()> {
    let mut conn = app.db.conn().await?;
    let found = crm::promotion::find(&mut conn, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("there is no promotion {id} (see crm promotion list)"))?;
    drop(conn);
    let workspace = found["workspace"].as_str().unwrap_or("production").to_owned();
    promote(app, Source::Revert(id), &workspace, options).await
}

/// Runs a promotion, prints its report, and fails when it was refused.
/// The report is coloured only on a terminal, and never with `NO_COLOR`.
pub async fn promote(app: &App, source: Source, to: &str, options: Options) -> anyhow::Result<()> {
    let trail = Trail::cli(to);
    let report = crm::promotion::run(&app.db, &trail, app.schemas.rooms(), &source, to, &options)
        .await
        .map_err(|err| match err {
            crm::CrmError::NotFound { object, id } => anyhow::anyhow!("there is no {} {id}", object.to_lowercase()),
            err => anyhow::anyhow!(err),
        })?;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!(
        "{}",
        crm::promotion::text::render(&report, crm::promotion::text::Paint(color))
    );
    if !options.dry_run && !report.applied {
        anyhow::bail!("refused: {}", report.blockers.join("; "));
    }
    Ok(())
}
