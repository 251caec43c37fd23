//! Customization, the room: read every object and field, make and change
//! custom fields and custom objects, and the workspace settings (admins
//! only, on every workspace endpoint).
//!
//! Resolvers here turn arguments into `metadata::change` specs;
//! every check, the DDL and the bookkeeping live there. After a change
//! commits, this server's schema is rebuilt at once; other servers learn
//! of it through `notify`.
//!
//! The API is split by concern: `definitions` (objects and fields as
//! shown, `objects`/`object`), `inputs` (input types, argument reading),
//! `fields` and `objects` (the mutations), `preview` (type changes)
//! `history` (the change log) and `settings`. This module registers them
//! and holds what they share: the admin check and running a change.

mod definitions;
mod fields;
mod history;
mod inputs;
mod objects;
mod preview;
pub mod settings;

use async_graphql::dynamic::{Field, ResolverContext};

use crate::access::{self, AdminPermission};
use crate::error::{CrmError, Result};
use crate::graphql::input::checked_value;
use crate::graphql::resolve::{context, RequestContext};
use crate::graphql::room::Surface;
use crate::graphql::Workspace;
use crate::metadata::change::Target;
use crate::metadata::custom::Customizations;
use crate::metadata::Model;

/// Adds the settings, `objects`, `object`, `previewFieldTypeChange`,
/// `metadataChanges`, the field and object mutations, and their types.
pub fn register(surface: &mut Surface) {
    settings::register(surface);
    surface.enumeration(definitions::field_type());
    for enumeration in preview::enums() {
        surface.enumeration(enumeration);
    }
    for input in inputs::types() {
        surface.input(input);
    }
    for object in definitions::types().into_iter().chain(preview::types()) {
        surface.object(object);
    }
    surface.object(history::metadata_change_type());
    let mut queries = definitions::query_fields();
    queries.push(preview::query_field());
    queries.push(history::query_field());
    surface.queries(
        &["objects", "object", "previewFieldTypeChange", "metadataChanges"],
        queries,
    );
    surface.mutations(mutation_fields());
}

/// Mutation fields: create, update, rename, change type, delete, restore
/// and purge custom fields; create, update, delete, restore and purge
/// custom objects.
fn mutation_fields() -> Vec<Field> {
    let mut fields = fields::mutation_fields();
    fields.extend(objects::mutation_fields());
    fields
}

pub(super) type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// The request's context, for admins only (`metadata.change`).
pub(super) fn admin<'a>(ctx: &'a ResolverContext<'_>) -> Result<&'a RequestContext> {
    let context = context(ctx)?;
    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)?;
    Ok(context)
}

pub(super) async fn read(context: &RequestContext) -> Result<Customizations> {
    let mut conn = context.db.conn().await?;
    Customizations::read(&mut conn, &context.schema).await
}

/// Runs a metadata change on its own connection, then rebuilds this
/// server's schema so the next request sees it. A clash the schema build
/// finds is reported at `clash_path`.
pub(super) async fn with_target<T>(
    context: &RequestContext,
    clash_path: &[&str],
    body: impl AsyncFnOnce(&mut diesel_async::AsyncPgConnection, &Target<'_>) -> Result<T>,
) -> Result<T> {
    let path: Vec<String> = clash_path.iter().map(|s| s.to_string()).collect();
    let rooms = context.rooms;
    let check = move |model: &Model| -> Result<()> {
        rooms
            .build(model, None)
            .map(|_| ())
            .map_err(|err| CrmError::bad_input_at(path.clone(), format!("the change clashes with the API: {}", err.0)))
    };
    let target = Target {
        schema: &context.schema,
        trail: &context.trail,
        check: &check,
        value: &checked_value,
        replaying: false,
        rehearsal: false,
        lock_timeout: Some(context.db.metadata_lock_timeout()),
    };
    let mut conn = context.db.conn().await?;
    let done = body(&mut conn, &target).await?;
    drop(conn);
    if let Some(schemas) = &context.schemas {
        let workspace = Workspace {
            name: context.trail.workspace.clone(),
            pg_schema: context.schema.to_string(),
        };
        schemas.refresh(&context.db, &workspace).await;
    }
    Ok(done)
}
