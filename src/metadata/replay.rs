//! Replays one workspace's customizations into another (production's into
//! a new sandbox) through the same changes that made them: no second way
//! of making tables, columns or indexes.

use diesel_async::AsyncPgConnection;

use super::change::{self, FieldSpec, ObjectSpec, Target};
use super::custom::{parse_options, Customizations, StoredField};
use crate::db::sql::Sql;
use crate::error::Result;

/// Makes in `target`'s workspace every custom object and field of the
/// workspace schema `from`, retained (deleted) ones included, so the two
/// have the same tables, columns, indexes and metadata rows (ids, times and
/// positions too). Objects come first, so any lookup finds its target;
/// fields follow in the order they were added; deletions last.
pub async fn replay(conn: &mut AsyncPgConnection, target: &Target<'_>, from: &str) -> Result<Customizations> {
    let custom = Customizations::read(conn, from).await?;
    for object in &custom.objects {
        let spec = ObjectSpec {
            name: object.name.clone(),
            label: object.label.clone(),
            plural_label: object.plural_label.clone(),
            plural: Some(object.plural.clone()),
            description: object.description.clone(),
            fields: Vec::new(),
        };
        change::create_object(conn, target, spec).await?;
    }
    let mut fields: Vec<&StoredField> = custom.fields.iter().collect();
    fields.sort_by_key(|f| f.position);
    for field in &fields {
        change::create_field(conn, target, &field.object, spec_of(field)).await?;
    }
    for field in fields.iter().filter(|f| f.deleted_at.is_some()) {
        change::delete_field(conn, target, &field.object, &field.name).await?;
    }
    for object in custom.objects.iter().filter(|o| o.deleted_at.is_some()) {
        change::delete_object(conn, target, &object.name).await?;
    }
    same_identities(conn, from, target.schema).await?;
    Ok(custom)
}

/// The field as it was asked for when it was made.
fn spec_of(field: &StoredField) -> FieldSpec {
    FieldSpec {
        name: field.name.clone(),
        label: field.label.clone(),
        description: field.description.clone(),
        type_name: field.r#type.clone(),
        required: field.required,
        unique: field.is_unique,
        indexed: field.indexed,
        searchable: field.searchable,
        default_value: field.default_value.clone(),
        options: parse_options(&field.options),
        lookup_object: field.lookup_object.clone(),
        relation_name: field.relation_name.clone(),
        path: Vec::new(),
    }
}

/// Gives the replayed metadata rows the ids, times and positions of the
/// originals, and the workspace the same metadata version, settings and
/// change history: a promotion matches items by id (a renamed field is the
/// same field), and the sandbox's own changes count from the base version.
async fn same_identities(conn: &mut AsyncPgConnection, from: &str, to: &str) -> Result<()> {
    let mut objects = Sql::raw("UPDATE ");
    objects.table(to, "custom_object").push(
        " AS copy SET id = original.id, created_at = original.created_at, \
         updated_at = original.updated_at, deleted_at = original.deleted_at FROM ",
    );
    objects
        .table(from, "custom_object")
        .push(" AS original WHERE copy.name = original.name");
    objects.execute(conn).await?;
    let mut fields = Sql::raw("UPDATE ");
    fields.table(to, "custom_field").push(
        " AS copy SET id = original.id, created_at = original.created_at, updated_at = original.updated_at, \
         deleted_at = original.deleted_at, position = original.position FROM ",
    );
    fields
        .table(from, "custom_field")
        .push(" AS original WHERE copy.object = original.object AND copy.name = original.name");
    fields.execute(conn).await?;
    let mut history = Sql::raw("INSERT INTO ");
    history.table(to, "metadata_change").push(" SELECT * FROM ");
    history.table(from, "metadata_change");
    history.execute(conn).await?;
    let mut settings = Sql::raw("UPDATE ");
    settings.table(to, "workspace_settings").push(
        " AS copy SET metadata_version = original.metadata_version, \
         record_visibility = original.record_visibility, \
         deleted_record_retention_days = original.deleted_record_retention_days, \
         audit_retention_days = original.audit_retention_days FROM ",
    );
    settings.table(from, "workspace_settings").push(" AS original");
    settings.execute(conn).await?;
    Ok(())
}
