//! `crm migrate`: brings the system schema and every workspace (production
//! and each sandbox) up to date, and says what it applied where, so an
//! operator can upgrade the database before starting new servers.

/// Applies the pending migrations on the database at `url` and prints one
/// line per schema that was up to date and per migration applied.
pub async fn run(url: &str) -> anyhow::Result<()> {
    for applied in crm::db::migrate::migrate_all(url).await? {
        if applied.versions.is_empty() {
            println!("{}: up to date", applied.schema);
        }
        for version in applied.versions {
            println!("{}: applied {version}", applied.schema);
        }
    }
    Ok(())
}
