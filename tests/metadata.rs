//! The migrated tables are what the metadata says they are.

use std::collections::BTreeMap;

use crm::metadata::Model;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::support;

#[derive(diesel::QueryableByName, Debug)]
struct Column {
    #[diesel(sql_type = Text)]
    table_schema: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[derive(diesel::QueryableByName, Debug)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    target_table: String,
}

#[tokio::test]
async fn tables_match_metadata() {
    let url = support::fresh_database().await;
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_schema::text, table_name::text, column_name::text, data_type::text, is_nullable::text
         FROM information_schema.columns WHERE table_schema IN ('crm', 'crm_system')",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let foreign_keys: Vec<ForeignKey> = diesel::sql_query(
        "SELECT c.conrelid::regclass::text AS table_name, a.attname::text AS column_name,
                c.confrelid::regclass::text AS target_table
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.connamespace IN ('crm'::regnamespace, 'crm_system'::regnamespace)",
    )
    .load(&mut conn)
    .await
    .unwrap();

    let model = Model::standard();
    let mut actual: BTreeMap<(String, String, String), (String, bool)> = BTreeMap::new();
    for c in &columns {
        actual.insert(
            (c.table_schema.clone(), c.table_name.clone(), c.column_name.clone()),
            (c.data_type.clone(), c.is_nullable == "YES"),
        );
    }
    for object in model.objects() {
        let schema = object.schema_in("crm");
        let mut described = 0;
        for field in &object.fields {
            let key = (schema.to_owned(), object.table.clone(), field.column.clone());
            let (data_type, nullable) = actual
                .get(&key)
                .unwrap_or_else(|| panic!("{}.{} has no column {}", object.name, field.name, field.column));
            assert_eq!(data_type, field.pg_type(), "type of {}.{}", object.table, field.column);
            assert_eq!(
                *nullable, !field.required,
                "nullability of {}.{}",
                object.table, field.column
            );
            if let Some(lookup) = field.lookup() {
                let target = model.object(&lookup.target).unwrap();
                let fk = foreign_keys
                    .iter()
                    .find(|fk| {
                        fk.table_name.rsplit('.').next() == Some(object.table.as_str())
                            && fk.column_name == field.column
                    })
                    .unwrap_or_else(|| panic!("{}.{} has no foreign key", object.table, field.column));
                assert!(
                    fk.target_table.rsplit('.').next() == Some(target.table.as_str()),
                    "{fk:?} should point at {}",
                    target.table
                );
            }
            described += 1;
        }
        // Search's stored columns are derived from the searchable fields.
        let in_table = columns
            .iter()
            .filter(|c| c.table_schema == schema && c.table_name == object.table)
            .filter(|c| !matches!(c.column_name.as_str(), "search_document" | "search_words"))
            .count();
        assert_eq!(
            in_table, described,
            "{} has columns the metadata does not describe",
            object.table
        );
    }
}
