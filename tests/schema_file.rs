//! `schema.graphql` at the repository root is the production SDL.

use std::path::Path;

#[test]
fn schema_graphql_matches_the_production_schema() {
    let expected = crm::graphql::production_sdl(crm::app::ROOMS).unwrap();
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

/// Every root query a room adds is named in its registration, so no custom
/// object can take the name for its own queries.
#[test]
fn rooms_name_every_query_they_add() {
    let sdl = crm::graphql::production_sdl(crm::app::ROOMS).unwrap();
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(&sdl).unwrap();
    let mut fields: Vec<String> = document
        .definitions
        .into_iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) if ty.node.name.node == "Query" => Some(ty.node.kind),
            _ => None,
        })
        .flat_map(|kind| match kind {
            TypeKind::Object(object) => object.fields,
            _ => Vec::new(),
        })
        .map(|field| field.node.name.node.to_string())
        .collect();
    let model = crm::metadata::Model::standard();
    let records: Vec<String> = model
        .objects()
        .iter()
        .flat_map(|object| [object.singular(), object.plural.clone()])
        .collect();
    fields.retain(|name| !records.contains(name));
    fields.sort();
    let surface = crm::graphql::Surface::of(crm::app::ROOMS.0);
    let mut named: Vec<String> = surface.query_names().iter().map(|n| n.to_string()).collect();
    named.extend(surface.object_query_names(&model));
    named.sort();
    assert_eq!(fields, named);
}
