//! The workspace settings' API: `workspaceSettings` and
//! `updateWorkspaceSettings`.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};

use crate::access::{self, AdminPermission, RecordVisibility};
use crate::error::{CrmError, Result};
use crate::graphql::resolve::{arg, context, resolved};
use crate::graphql::room::Surface;
use crate::metadata::settings::{change_settings, read_settings, SettingsChange, WorkspaceSettings};

/// Adds the settings' query, mutation and types.
pub(super) fn register(surface: &mut Surface) {
    surface.object(settings_type());
    surface.input(
        InputObject::new("UpdateWorkspaceSettingsInput")
            .description("Workspace settings to change; those left out stay as they are.")
            .field(
                InputValue::new("recordVisibility", TypeRef::named("RecordVisibility"))
                    .description("Which records sales reps read."),
            )
            .field(
                InputValue::new("deletedRecordRetentionDays", TypeRef::named(TypeRef::INT)).description(
                    "Days a deleted record can still be restored before it is removed for good, 0 to 3650; 0 \
                     keeps deleted records forever.",
                ),
            )
            .field(
                InputValue::new("auditRetentionDays", TypeRef::named(TypeRef::INT))
                    .description("Days the workspace's audit log entries are kept, 0 to 3650; 0 keeps them forever."),
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
            let settings = read_settings(&mut conn, &context.schema).await?;
            Ok(Some(FieldValue::owned_any(settings)))
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
                let change = settings_change(&ctx)?;
                let mut conn = context.db.conn().await?;
                let settings = change_settings(&mut conn, &context.trail, &context.schema, &change).await?;
                match &context.schemas {
                    Some(schemas) => schemas.settings_changed(&context.db, &context.trail.workspace).await,
                    None => context.record_visibility.set(settings.record_visibility),
                }
                Ok(Some(FieldValue::owned_any(settings)))
            })
        },
    )
    .argument(InputValue::new("input", TypeRef::named_nn("UpdateWorkspaceSettingsInput")).description("The changes."))
    .description("Changes workspace settings. Admins only.")
}

/// The settings the mutation's input names, checked.
fn settings_change(ctx: &ResolverContext<'_>) -> Result<SettingsChange> {
    let Some(Value::Object(input)) = arg(ctx, "input") else {
        return Err(CrmError::bad_input(&["input"], "name the settings to change"));
    };
    let record_visibility = match input.get("recordVisibility") {
        Some(Value::Enum(name)) => RecordVisibility::parse(name.as_str()),
        Some(Value::String(name)) => RecordVisibility::parse(name),
        _ => None,
    };
    let days = |name: &str| -> Result<Option<i32>> {
        match input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64().and_then(|d| i32::try_from(d).ok()) {
                Some(days) => Ok(Some(days)),
                None => Err(CrmError::bad_input(
                    &["input", name],
                    format!("{name} is a number of days"),
                )),
            },
            Some(_) => Err(CrmError::bad_input(
                &["input", name],
                format!("{name} is a number of days"),
            )),
        }
    };
    let change = SettingsChange {
        record_visibility,
        deleted_record_retention_days: days("deletedRecordRetentionDays")?,
        audit_retention_days: days("auditRetentionDays")?,
    };
    if change.is_empty() {
        return Err(CrmError::bad_input(
            &["input", "recordVisibility"],
            "name the setting to change",
        ));
    }
    change.check(&["input"])?;
    Ok(change)
}

fn settings_type() -> Object {
    let settings = |ctx: &async_graphql::dynamic::ResolverContext<'_>| {
        ctx.parent_value.try_downcast_ref::<WorkspaceSettings>().ok().copied()
    };
    Object::new("WorkspaceSettings")
        .description("Settings of the workspace.")
        .field(
            Field::new("recordVisibility", TypeRef::named_nn("RecordVisibility"), move |ctx| {
                let value = settings(&ctx).map(|s| Value::Enum(Name::new(s.record_visibility.as_str())));
                FieldFuture::from_value(value)
            })
            .description("Which records sales reps read: ALL, or OWNED (their own and the records under them)."),
        )
        .field(
            Field::new(
                "deletedRecordRetentionDays",
                TypeRef::named_nn(TypeRef::INT),
                move |ctx| {
                    let value = settings(&ctx).map(|s| Value::from(s.deleted_record_retention_days));
                    FieldFuture::from_value(value)
                },
            )
            .description(
                "Days a deleted record can still be restored; then the retention job removes it for good. 0 keeps \
                 deleted records forever.",
            ),
        )
        .field(
            Field::new("auditRetentionDays", TypeRef::named_nn(TypeRef::INT), move |ctx| {
                let value = settings(&ctx).map(|s| Value::from(s.audit_retention_days));
                FieldFuture::from_value(value)
            })
            .description(
                "Days the workspace's audit log entries are kept; then the retention job deletes them. 0 keeps \
                 them forever.",
            ),
        )
}
