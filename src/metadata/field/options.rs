//! A picklist's options changed: the new list merged from an update's
//! specs, renamed values rewritten in the records (and in the default),
//! and the default kept to live options.

use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;

use super::checks::check_options;
use super::OptionSpec;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::change::Target;
use crate::metadata::{ddl, FieldDef, FieldKind, ObjectDef, PicklistOption};

/// `(old value, new value)` of each renamed picklist option.
pub(super) type Renames = Vec<(String, String)>;

/// The new option list of an update, and the values it renames. Every
/// current value must be listed: options are deactivated, not removed,
/// because records hold them.
fn merged_options(current: &[PicklistOption], specs: &[OptionSpec]) -> Result<(Vec<PicklistOption>, Renames)> {
    let at = |i: usize, key: &str| vec!["input".to_owned(), "options".to_owned(), i.to_string(), key.to_owned()];
    let mut out = Vec::with_capacity(specs.len());
    let mut renames = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let previous = spec.renamed_from.as_deref().unwrap_or(&spec.value);
        let existing = current.iter().find(|o| o.value == previous);
        if spec.renamed_from.is_some() && existing.is_none() {
            return Err(CrmError::bad_input_at(
                at(i, "renamedFrom"),
                format!("{previous} is not a value of this picklist"),
            ));
        }
        if let Some(from) = &spec.renamed_from {
            if from != &spec.value {
                if current.iter().any(|o| o.value == spec.value) {
                    return Err(CrmError::bad_input_at(
                        at(i, "value"),
                        format!("{} is already a value of this picklist", spec.value),
                    ));
                }
                renames.push((from.clone(), spec.value.clone()));
            }
        }
        let label = spec
            .label
            .clone()
            .or_else(|| existing.map(|o| o.label.clone()))
            .unwrap_or_else(|| spec.value.clone());
        out.push(PicklistOption {
            value: spec.value.clone(),
            label,
            active: spec.active,
        });
    }
    check_options(&out, vec!["input".into(), "options".into()])?;
    for option in current {
        let kept = specs
            .iter()
            .any(|s| s.renamed_from.as_deref().unwrap_or(&s.value) == option.value);
        if !kept {
            return Err(CrmError::bad_input(
                &["input", "options"],
                format!(
                    "{} is missing: list every current value (set active: false to retire one, renamedFrom to rename one)",
                    option.value
                ),
            ));
        }
    }
    Ok((out, renames))
}

/// A picklist default (a value or a list of values) with `old` renamed to `new`.
pub(super) fn renamed_in(value: Json, old: &str, new: &str) -> Json {
    match value {
        Json::String(s) if s == old => Json::String(new.to_owned()),
        Json::Array(items) => Json::Array(items.into_iter().map(|item| renamed_in(item, old, new)).collect()),
        other => other,
    }
}

/// Rewrites the records holding a renamed picklist value.
async fn rename_option(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    table: &str,
    field: &FieldDef,
    old: &str,
    new: &str,
) -> Result<()> {
    let mut query = Sql::raw("UPDATE ");
    query.table(target.schema, table).push(" SET ").ident(&field.column);
    if matches!(field.kind, FieldKind::MultiPicklist(_)) {
        query.push(" = array_replace(").ident(&field.column).push(", ");
        query
            .bind(Bind::Text(Some(old.into())))
            .push(", ")
            .bind(Bind::Text(Some(new.into())));
        query
            .push(") WHERE ")
            .bind(Bind::Text(Some(old.into())))
            .push(" = ANY(")
            .ident(&field.column)
            .push(")");
    } else {
        query.push(" = ").bind(Bind::Text(Some(new.into())));
        query
            .push(" WHERE ")
            .ident(&field.column)
            .push(" = ")
            .bind(Bind::Text(Some(old.into())));
    }
    ddl::run(conn, target, query).await
}

/// Applies an update's option list to a picklist field: rewrites the
/// records holding a renamed value and returns the field's new kind and
/// the renames made.
pub(super) async fn apply(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &ObjectDef,
    field: &FieldDef,
    specs: &[OptionSpec],
) -> Result<(FieldKind, Renames)> {
    let Some(current) = field.kind.options() else {
        return Err(CrmError::bad_input(
            &["input", "options"],
            "only picklists have options",
        ));
    };
    let (new_options, renames) = merged_options(current, specs)?;
    for (old, new) in &renames {
        rename_option(conn, target, &object.table, field, old, new).await?;
    }
    let kind = match field.kind {
        FieldKind::MultiPicklist(_) => FieldKind::MultiPicklist(new_options),
        _ => FieldKind::Picklist(new_options),
    };
    Ok((kind, renames))
}

/// Refuses a default that is not an active option of the (possibly new)
/// options.
pub(super) fn check_default(default: Option<&Json>, kind: &FieldKind) -> Result<()> {
    let (Some(value), Some(options)) = (default, kind.options()) else {
        return Ok(());
    };
    let values: Vec<&str> = match value {
        Json::Array(items) => items.iter().filter_map(Json::as_str).collect(),
        other => other.as_str().into_iter().collect(),
    };
    if let Some(retired) = values
        .into_iter()
        .find(|v| !options.iter().any(|o| o.value == *v && o.active))
    {
        return Err(CrmError::bad_input(
            &["input", "defaultValue"],
            format!("the default {retired} is not an active option: change the default too"),
        ));
    }
    Ok(())
}
