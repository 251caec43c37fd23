//! The workspace settings' API: `workspaceSettings` and
//! `updateWorkspaceSettings`.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef,
};
use async_graphql::{Name, Value};

use crate::access::{self, AdminPermission, RecordVisibility};
use crate::error::CrmError;
use crate::graphql::resolve::{arg, context, resolved};
use crate::graphql::room::Surface;
use crate::metadata::settings::change_record_visibility;

/// Adds the settings' query, mutation and types.
pub(super) fn register(surface: &mut Surface) {
    surface.object(settings_type());
    surface.input(
        InputObject::new("UpdateWorkspaceSettingsInput")
            .description("Workspace settings to change.")
            .field(
                InputValue::new("recordVisibility", TypeRef::named("RecordVisibility"))
                    .description("Which records sales reps read."),
            ),
    );
    surface.enumeration(
        Enum::new("RecordVisibility")
            .description("Which records sales reps read.")
            .item(EnumItem::new("ALL").description("Every record."))
            .item(EnumItem::new("OWNED").description(
                "Records they own, and the records under those (contacts and deals of their accounts, \
                 activities on their deals …).",
            )),
    );
    surface.queries(&["workspaceSettings"], vec![query_field()]);
    surface.mutations(vec![mutation_field()]);
}

fn query_field() -> Field {
    Field::new("workspaceSettings", TypeRef::named_nn("WorkspaceSettings"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let mut conn = context.db.conn().await?;
            let visibility = crate::graphql::record_visibility(&mut conn, &context.schema).await?;
            Ok(Some(FieldValue::owned_any(visibility)))
        })
    })
    .description("The workspace's settings.")
}

fn mutation_field() -> Field {
    Field::new(
        "updateWorkspaceSettings",
        TypeRef::named_nn("WorkspaceSettings"),
        |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ChangeMetadata)?;
                let visibility = match arg(&ctx, "input") {
                    Some(Value::Object(input)) => match input.get("recordVisibility") {
                        Some(Value::Enum(name)) => RecordVisibility::parse(name.as_str()),
                        Some(Value::String(name)) => RecordVisibility::parse(name),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(visibility) = visibility else {
                    return Err(CrmError::bad_input(
                        &["input", "recordVisibility"],
                        "name the setting to change",
                    ));
                };
                let mut conn = context.db.conn().await?;
                change_record_visibility(&mut conn, &context.trail, &context.schema, visibility).await?;
                match &context.schemas {
                    Some(schemas) => schemas.settings_changed(&context.db, &context.trail.workspace).await,
                    None => context.record_visibility.set(visibility),
                }
                Ok(Some(FieldValue::owned_any(visibility)))
            })
        },
    )
    .argument(InputValue::new("input", TypeRef::named_nn("UpdateWorkspaceSettingsInput")).description("The changes."))
    .description("Changes workspace settings. Admins only.")
}

fn settings_type() -> Object {
    Object::new("WorkspaceSettings")
        .description("Settings of the workspace.")
        .field(
            Field::new("recordVisibility", TypeRef::named_nn("RecordVisibility"), |ctx| {
                let visibility = ctx.parent_value.try_downcast_ref::<RecordVisibility>();
                FieldFuture::from_value(visibility.ok().map(|v| Value::Enum(Name::new(v.as_str()))))
            })
            .description("Which records sales reps read: ALL, or OWNED (their own and the records under them)."),
        )
}
