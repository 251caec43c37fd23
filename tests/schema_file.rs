//! `schema.graphql` at the repository root is the production SDL.

use std::path::Path;

#[test]
fn schema_graphql_matches_the_production_schema() {
    let expected = crm::graphql::production_sdl().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == expected,
        "schema.graphql is out of date: run `cargo run -- schema print > schema.graphql` \
         (or UPDATE_SCHEMA=1 cargo test schema_graphql) and commit it"
    );
}
