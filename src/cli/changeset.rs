//! `crm changeset`: applies a reviewed changeset file (from `crm sandbox
//! export`) to production or a sandbox, with the checks of a promotion, so
//! changes can travel between databases through git.

use anyhow::Context;
use crm::promotion::changeset::File;
use crm::promotion::{Options, Source};
use crm::App;

use super::promotion::promote;
use crate::ChangesetCommand;

/// Runs one `crm changeset` command: `diff` is `apply --dry-run`.
pub async fn run(command: &ChangesetCommand, app: &App) -> anyhow::Result<()> {
    let (path, to, options) = match command {
        ChangesetCommand::Apply {
            file,
            to,
            dry_run,
            allow_breaking,
            allow_lossy,
        } => (
            file,
            to,
            Options {
                dry_run: *dry_run,
                allow_breaking: *allow_breaking,
                allow_lossy: *allow_lossy,
                ..Options::default()
            },
        ),
        ChangesetCommand::Diff { file, to } => (
            file,
            to,
            Options {
                dry_run: true,
                ..Options::default()
            },
        ),
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file = File::parse(&text).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    promote(app, Source::File { name, file }, to, options).await
}
