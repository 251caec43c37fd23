//! `crm schema print`: the production GraphQL schema without a database,
//! for clients' code generators and the checked-in `schema.graphql`.

use anyhow::Context;

/// Prints the production SDL (standard objects, no customizations).
pub fn print() -> anyhow::Result<()> {
    print!(
        "{}",
        crm::graphql::production_sdl(crm::app::ROOMS).context("building the schema")?
    );
    Ok(())
}
