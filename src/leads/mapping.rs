//! Lead field mappings: which lead field fills which field of the
//! account, contact or opportunity a conversion makes. Mappings are
//! `LeadFieldMapping` records (configuration, promoted like reports);
//! this file checks one against the model when it is saved or promoted,
//! and reads the workspace's into what a conversion fills.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;

use crate::db::sql::{JsonRow, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, Written};
use crate::metadata::standard::CONVERSION_TARGETS;
use crate::metadata::{FieldDef, FieldKind, Model};
use crate::records::Record;

/// One mapping, resolved against the model.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub lead_field: FieldDef,
    /// `Account`, `Contact` or `Opportunity`.
    pub object: &'static str,
    pub target_field: FieldDef,
}

/// The object a mapping's `targetObject` value names.
fn target_object(value: &str) -> Option<&'static str> {
    CONVERSION_TARGETS
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, name)| *name)
}

/// Whether a value of `from` can be stored in `to` as it is: the same
/// type (a lookup to the same object), text into text, a number into a
/// decimal, a picklist value into text or into a picklist that has every
/// value of it.
fn compatible(from: &FieldKind, to: &FieldKind) -> bool {
    use FieldKind::*;
    let text = |k: &FieldKind| matches!(k, Text | Email | Url | Phone | LongText);
    let covers = |a: &[crate::metadata::PicklistOption], b: &[crate::metadata::PicklistOption]| {
        a.iter().all(|o| b.iter().any(|t| t.value == o.value))
    };
    match (from, to) {
        (Lookup(a), Lookup(b)) => a.target == b.target,
        (Picklist(a), Picklist(b)) | (MultiPicklist(a), MultiPicklist(b)) => covers(a, b),
        (Picklist(_), Text | LongText) => true,
        (a, Text | LongText) if text(a) => true,
        (Integer, b) if b.is_decimal() => true,
        (a, b) if a.is_decimal() && b.is_decimal() => true,
        (a, b) => a.type_name() == b.type_name(),
    }
}

/// A mapping's state (by API names) resolved against `model`; errors at
/// `at` + the property.
pub fn resolve(model: &Model, state: &Json, at: &[String]) -> Result<Mapping> {
    let error = |property: &str, message: String| {
        let mut path = at.to_vec();
        path.push(property.to_owned());
        CrmError::bad_input_at(path, message)
    };
    let text = |key: &str| state[key].as_str().unwrap_or_default().to_owned();
    let lead = super::scoring::lead_object(model)?;
    let lead_name = text("leadField");
    let lead_field = lead
        .field(&lead_name)
        .filter(|f| !matches!(f.kind, FieldKind::Id) && !f.name.starts_with("converted") && f.name != "conversionKey")
        .ok_or_else(|| error("leadField", format!("Lead has no field {lead_name} to map")))?;
    let object_value = text("targetObject");
    let object = target_object(&object_value).ok_or_else(|| {
        error(
            "targetObject",
            format!("{object_value} is not ACCOUNT, CONTACT or OPPORTUNITY"),
        )
    })?;
    let target = model
        .object(object)
        .ok_or_else(|| CrmError::internal(format_args!("the model has no {object}")))?;
    let target_name = text("targetField");
    let target_field = target
        .field(&target_name)
        .filter(|f| !f.system)
        .ok_or_else(|| error("targetField", format!("{object} has no writable field {target_name}")))?;
    if !compatible(&lead_field.kind, &target_field.kind) {
        return Err(error(
            "targetField",
            format!(
                "Lead.{lead_name} ({}) cannot fill {object}.{target_name} ({})",
                lead_field.kind.type_name(),
                target_field.kind.type_name()
            ),
        ));
    }
    if let (Some(from), Some(to)) = (lead_field.max_length, target_field.max_length) {
        if to < from {
            return Err(error(
                "targetField",
                format!("Lead.{lead_name} holds up to {from} characters, {object}.{target_name} only {to}"),
            ));
        }
    }
    Ok(Mapping {
        lead_field: lead_field.clone(),
        object,
        target_field: target_field.clone(),
    })
}

/// A mapping saved through the API (or promoted) must name fields that
/// exist and fit each other.
pub fn check<'a>(
    _conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        if written.record.get("deletedAt").is_some_and(|at| !at.is_null()) {
            return Ok(None);
        }
        let state = Json::Object((**written.record).clone());
        resolve(scope.model, &state, scope.at)?;
        Ok(None)
    })
}

/// The workspace's live mappings. One that no longer resolves (a field
/// deleted since) fills nothing, and says so in the log.
pub async fn mappings(conn: &mut AsyncPgConnection, schema: &str, model: &Model) -> Result<Vec<Mapping>> {
    let mut query = Sql::raw(
        "SELECT jsonb_build_object('leadField', lead_field, 'targetObject', target_object, \
         'targetField', target_field) AS row FROM ",
    );
    query
        .table(schema, "lead_field_mapping")
        .push(" WHERE deleted_at IS NULL ORDER BY created_at, id");
    let rows: Vec<JsonRow> = query.load(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match resolve(model, &row.row, &[]) {
            Ok(mapping) => out.push(mapping),
            Err(err) => tracing::warn!(%err, mapping = %row.row, "a lead field mapping fills nothing"),
        }
    }
    Ok(out)
}
