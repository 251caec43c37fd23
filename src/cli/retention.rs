//! `crm retention run`: the retention job at once, for operators and
//! tests, printing what it removed.

use crm::retention::{self, Outcome};
use crm::App;

use crate::RetentionCommand;

/// Runs one `crm retention` command.
pub async fn run(command: &RetentionCommand, app: &App) -> anyhow::Result<()> {
    let RetentionCommand::Run { workspace } = command;
    match retention::run(&app.db, workspace.as_deref()).await? {
        Outcome::Busy => println!("retention is running on another server now; nothing done"),
        Outcome::Ran(purged) => {
            for workspace in purged {
                if workspace.is_empty() {
                    println!("{}: nothing to remove", workspace.workspace);
                    continue;
                }
                let mut parts: Vec<String> = workspace
                    .records
                    .iter()
                    .map(|(object, n)| format!("{n} {object}"))
                    .collect();
                if workspace.audit_entries > 0 {
                    parts.push(format!("{} audit log entries", workspace.audit_entries));
                }
                println!("{}: removed {}", workspace.workspace, parts.join(", "));
            }
        }
    }
    Ok(())
}
