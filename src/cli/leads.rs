//! `crm leads rescore`: the lead scoring job at once, for operators and
//! tests, printing what changed.

use crm::leads::decay;
use crm::App;

use crate::LeadsCommand;

/// Runs one `crm leads` command.
pub async fn run(command: &LeadsCommand, app: &App) -> anyhow::Result<()> {
    let LeadsCommand::Rescore { workspace } = command;
    match decay::run(&app.db, workspace.as_deref()).await? {
        None => println!("lead scoring is running on another server now; nothing done"),
        Some(runs) => {
            for run in runs {
                println!("{}: {} leads scored, {} changed", run.workspace, run.leads, run.changed);
            }
        }
    }
    Ok(())
}
