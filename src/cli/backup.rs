//! `crm backup`, `crm restore` and `crm export`: the installation written
//! to a dump and its manifest, brought back into an empty data folder or
//! database (or checked in a scratch database), and a workspace written as
//! NDJSON for tools without PostgreSQL.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use crm::backup::{self, Manifest, State};

use super::with_database;
use crate::DatabaseArgs;

/// Writes the backup to `output` (default `crm-backup-<UTC time>.dump`)
/// and says what it holds.
pub async fn backup(database: &DatabaseArgs, output: Option<&Path>) -> anyhow::Result<()> {
    let dump = match output {
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(format!(
            "crm-backup-{}.dump",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        )),
    };
    with_database(database, async |_, url| {
        let written = backup::backup(url, &dump).await?;
        let manifest = &written.manifest;
        println!(
            "backed up to {} ({}, sha256 {}) with its manifest {}",
            written.dump.display(),
            size(manifest.dump.bytes),
            manifest.dump.sha256,
            written.manifest_path.display()
        );
        print_workspaces(&manifest.state);
        Ok(())
    })
    .await
}

/// Checks the backup, then restores it into the configured (empty) target
/// or, with `verify`, into a scratch database that is dropped afterwards.
pub async fn restore(database: &DatabaseArgs, file: &Path, verify: bool) -> anyhow::Result<()> {
    // Before the target is opened: a damaged or too new backup changes nothing.
    let manifest = backup::check(file)?;
    if verify {
        return with_database(database, async |_, url| report_verification(url, file, &manifest).await).await;
    }
    let target = match &database.database_url {
        Some(_) => "the database DATABASE_URL names".to_owned(),
        None => format!("the data folder {}", database.data_dir.display()),
    };
    with_database(database, async |_, url| {
        let state = backup::restore(url, file, &manifest)
            .await
            .with_context(|| format!("restoring {} into {target}", file.display()))?;
        println!(
            "restored {} (crm {}, taken {}) into {target}; it matches its manifest",
            file.display(),
            manifest.server_version,
            manifest.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        print_workspaces(&state);
        println!("the next `crm serve` or `crm migrate` applies the migrations newer than the backup, if any");
        Ok(())
    })
    .await
}

async fn report_verification(url: &str, file: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let verification = backup::verify(url, file, manifest).await?;
    let records: i64 = records_of(&verification.state).iter().map(|(_, n)| n).sum();
    println!(
        "verifying {} in the scratch database {}:",
        file.display(),
        verification.database
    );
    println!("  checksum        OK (sha256 {})", manifest.dump.sha256);
    println!(
        "  written by      crm {} (this is crm {})",
        manifest.server_version,
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  restore         OK ({} schemas, {} workspaces, {records} records)",
        verification.state.migrations.len(),
        verification.state.workspaces.len()
    );
    println!(
        "  smoke query     OK ({} live accounts in production)",
        verification.live_accounts
    );
    if verification.differences.is_empty() {
        println!("  manifest        OK (migrations, metadata versions and record counts match)");
        println!("OK: the backup restores and matches its manifest; the scratch database is dropped");
        return Ok(());
    }
    println!("  manifest        DIFFERS:");
    for difference in &verification.differences {
        println!("    {difference}");
    }
    bail!("the restored backup does not match its manifest")
}

/// Records per workspace, in the manifest's order.
fn records_of(state: &State) -> Vec<(&str, i64)> {
    state
        .workspaces
        .iter()
        .map(|(name, workspace)| (name.as_str(), workspace.records.values().sum()))
        .collect()
}

fn print_workspaces(state: &State) {
    for (name, workspace) in &state.workspaces {
        let records: i64 = workspace.records.values().sum();
        println!(
            "  {name}: {records} records in {} objects, metadata version {}",
            workspace.records.len(),
            workspace.metadata_version
        );
    }
}

/// `12345678` → `11.8 MiB`.
fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// Writes each workspace as NDJSON: to standard output, to one file, or
/// to `<workspace>.ndjson` files in an existing folder.
pub async fn export(database: &DatabaseArgs, output: Option<&Path>, workspaces: &[String]) -> anyhow::Result<()> {
    with_database(database, async |_, url| {
        let folder = output.filter(|path| path.is_dir());
        let mut single: Option<Box<dyn Write>> = match (output, folder) {
            (_, Some(_)) => None,
            (Some(path), None) => Some(Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ))),
            (None, None) => Some(Box::new(std::io::BufWriter::new(std::io::stdout().lock()))),
        };
        for name in workspaces {
            let (counts, to) = match (&mut single, folder) {
                (Some(out), _) => match backup::export::workspace(url, name, out.as_mut()).await {
                    // The reader went away (`crm export … | head`): not a failure.
                    Err(backup::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(());
                    }
                    written => (
                        written?,
                        output.map_or("standard output".to_owned(), |p| p.display().to_string()),
                    ),
                },
                (None, Some(folder)) => {
                    let path = folder.join(format!("{name}.ndjson"));
                    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    (
                        backup::export::workspace(url, name, &mut out).await?,
                        path.display().to_string(),
                    )
                }
                (None, None) => bail!("no output"),
            };
            let records: u64 = counts.values().sum();
            eprintln!("exported {name}: {records} records of {} objects to {to}", counts.len());
        }
        Ok(())
    })
    .await
}
