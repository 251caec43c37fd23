//! The rules a custom field's definition must follow: a name no other
//! field, list or retained field has, a type with valid options or a
//! lookup target, labels, and which types may be unique, indexed or have
//! a default. Checked before any DDL runs, so a refusal points at the
//! request's key and changes nothing.

use serde_json::Value as Json;

use super::FieldSpec;
use crate::error::{CrmError, Result};
use crate::metadata::change::State;
use crate::metadata::custom;
use crate::metadata::{FieldKind, Model, ObjectDef, PicklistOption};

/// The kind a spec asks for, with its options and lookup checked.
pub(super) fn spec_kind(
    state: &State,
    object: &ObjectDef,
    spec: &FieldSpec,
    at: &dyn Fn(&str) -> Vec<String>,
) -> Result<FieldKind> {
    let kind = custom::kind_of(
        &spec.type_name,
        spec.options.clone(),
        spec.lookup_object.as_deref(),
        None,
        &spec.label,
    );
    let kind = match kind {
        Some(kind) => kind,
        None if spec.type_name == "LOOKUP" => {
            return Err(CrmError::bad_input_at(
                at("lookupObject"),
                "a lookup needs lookupObject: the object it refers to",
            ))
        }
        None => {
            return Err(CrmError::bad_input_at(
                at("type"),
                format!("{} is not a field type", spec.type_name),
            ))
        }
    };
    if let Some(options) = kind.options() {
        check_options(options, at("options"))?;
    } else if !spec.options.is_empty() {
        return Err(CrmError::bad_input_at(at("options"), "only picklists have options"));
    }
    if spec.lookup_object.is_some() && !matches!(kind, FieldKind::Lookup(_)) {
        return Err(CrmError::bad_input_at(
            at("lookupObject"),
            "only lookups refer to an object",
        ));
    }
    let FieldKind::Lookup(mut lookup) = kind else {
        if spec.relation_name.is_some() {
            return Err(CrmError::bad_input_at(
                at("relationName"),
                "only lookups have a relation name",
            ));
        }
        return Ok(kind);
    };
    let target = state
        .object(&lookup.target, &[])
        .map_err(|_| CrmError::bad_input_at(at("lookupObject"), format!("there is no object {}", lookup.target)))?;
    if !target.writable() {
        return Err(CrmError::bad_input_at(
            at("lookupObject"),
            format!("{} is recorded by the server: records cannot refer to it", target.name),
        ));
    }
    let relation = match &spec.relation_name {
        Some(name) => name.clone(),
        None => object.plural.clone(),
    };
    custom::check_field_name(&relation).map_err(|why| CrmError::bad_input_at(at("relationName"), why))?;
    let mut clash = field_names(&state.model, target);
    if target.name == object.name {
        clash.push(spec.name.clone());
        clash.push(format!("{}Id", spec.name));
    }
    if clash.iter().any(|n| n.eq_ignore_ascii_case(&relation)) {
        let hint = if spec.relation_name.is_none() {
            " (the default, the plural of this object); choose another relationName"
        } else {
            ""
        };
        return Err(CrmError::bad_input_at(
            at("relationName"),
            format!("{} already has a field {relation}{hint}", target.name),
        ));
    }
    lookup.inverse = Some(relation);
    Ok(FieldKind::Lookup(lookup))
}

/// Every name `object` answers to in the API: fields, lookup id keys,
/// related lists, `history` and `timeline`.
fn field_names(model: &Model, object: &ObjectDef) -> Vec<String> {
    let mut names: Vec<String> = object
        .fields
        .iter()
        .flat_map(|f| [f.name.clone(), f.value_key()])
        .collect();
    names.extend(model.inverse_relations(&object.name).into_iter().map(|r| r.name));
    names.extend(["history".into(), "timeline".into()]);
    names
}

/// Refuses a name another field, list or retained field of `object` has
/// (case-insensitively).
pub(super) fn check_free_name(state: &State, object: &ObjectDef, name: &str, at: Vec<String>) -> Result<()> {
    let id_key = format!("{name}Id");
    if let Some(taken) = field_names(&state.model, object)
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(&id_key))
    {
        return Err(CrmError::bad_input_at(
            at,
            format!("{} already has a field {taken}", object.name),
        ));
    }
    if let Some(retained) = state
        .custom
        .fields
        .iter()
        .find(|f| f.object == object.name && f.deleted_at.is_some() && f.name.eq_ignore_ascii_case(name))
    {
        return Err(CrmError::bad_input_at(
            at,
            format!(
                "the deleted field {}.{} keeps this name until it is purged: restore it, or purge it first",
                object.name, retained.name
            ),
        ));
    }
    Ok(())
}

/// Refuses an empty, overlong or NUL-holding label, at `at`.
pub(in crate::metadata) fn check_label(label: &str, at: Vec<String>) -> Result<()> {
    if label.trim().is_empty() {
        return Err(CrmError::bad_input_at(at, "a label must not be empty"));
    }
    if label.chars().count() > 255 || label.contains('\0') {
        return Err(CrmError::bad_input_at(
            at,
            "a label is at most 255 characters, without NUL",
        ));
    }
    Ok(())
}

/// Which kinds may be unique, indexed and have a default.
pub(super) fn check_flags(
    kind: &FieldKind,
    unique: bool,
    indexed: bool,
    default: &Option<Json>,
    at: &dyn Fn(&str) -> Vec<String>,
) -> Result<()> {
    let name = kind.type_name();
    if unique
        && matches!(
            kind,
            FieldKind::LongText | FieldKind::MultiPicklist(_) | FieldKind::Json | FieldKind::Boolean
        )
    {
        return Err(CrmError::bad_input_at(
            at("unique"),
            format!("a {name} field cannot be unique"),
        ));
    }
    if indexed && matches!(kind, FieldKind::LongText) {
        return Err(CrmError::bad_input_at(
            at("indexed"),
            "a LONG_TEXT field cannot be indexed",
        ));
    }
    if default.is_some() && matches!(kind, FieldKind::Lookup(_)) {
        return Err(CrmError::bad_input_at(
            at("defaultValue"),
            "a lookup cannot have a default",
        ));
    }
    Ok(())
}

/// Only text is searchable.
pub(super) fn check_searchable(kind: &FieldKind, searchable: bool, at: &dyn Fn(&str) -> Vec<String>) -> Result<()> {
    if searchable && !kind.searchable() {
        return Err(CrmError::bad_input_at(
            at("searchable"),
            format!(
                "a {} field cannot be searchable: only TEXT, LONG_TEXT, EMAIL, PHONE and URL are",
                kind.type_name()
            ),
        ));
    }
    Ok(())
}

/// Refuses a picklist without options, with too many, with an invalid
/// or repeated value, or an invalid label.
pub(super) fn check_options(options: &[PicklistOption], at: Vec<String>) -> Result<()> {
    if options.is_empty() {
        return Err(CrmError::bad_input_at(at, "a picklist needs at least one option"));
    }
    if options.len() > 1000 {
        return Err(CrmError::bad_input_at(at, "a picklist has at most 1000 options"));
    }
    for (i, option) in options.iter().enumerate() {
        let mut item = at.clone();
        item.push(i.to_string());
        custom::check_option_value(&option.value).map_err(|why| {
            let mut path = item.clone();
            path.push("value".into());
            CrmError::bad_input_at(path, why)
        })?;
        if options[..i].iter().any(|o| o.value == option.value) {
            return Err(CrmError::bad_input_at(
                item,
                format!("{} is listed twice", option.value),
            ));
        }
        let mut label_at = item.clone();
        label_at.push("label".into());
        check_label(&option.label, label_at)?;
    }
    Ok(())
}
