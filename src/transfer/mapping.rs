//! Which column of a file fills which field: named by the import, else
//! guessed from the fields' API names and labels (`First Name`,
//! `first_name` and `firstName` all fill `firstName`; `Account`, `Account
//! Name` and `Account ID` fill the `account` lookup), and the plan of what
//! an import stages and writes.

use super::cells::{self, Formats};
use super::{Mode, Options};
use crate::error::{CrmError, Result};
use crate::metadata::{FieldDef, FieldKind, ObjectDef};

/// One column of the file and the field it fills, if any.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its position in the file, from 0.
    pub index: usize,
    pub header: String,
    pub field: Option<FieldDef>,
    /// Why a column fills no field, or how its field was chosen.
    pub note: String,
}

/// Letters and digits (of any script), lower case: what headers and names
/// are compared by.
fn key(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The fields a file may fill: every field a create or update takes,
/// and `id` (to match records by).
fn fillable(object: &ObjectDef) -> impl Iterator<Item = &FieldDef> {
    object.fields.iter().filter(|f| !f.system || f.kind == FieldKind::Id)
}

/// The names a header may give `field` by.
fn names_of(field: &FieldDef) -> Vec<String> {
    let mut names = vec![
        key(&field.name),
        key(&field.label),
        key(&field.column),
        key(&field.value_key()),
    ];
    if field.lookup().is_some() {
        for suffix in ["name", "id", "externalid"] {
            names.push(format!("{}{suffix}", key(&field.name)));
            names.push(format!("{}{suffix}", key(&field.label)));
        }
    }
    if field.kind == FieldKind::Id {
        names.extend(["recordid".to_owned(), format!("{}id", key(&field.label))]);
    }
    if field.kind == FieldKind::Email {
        names.push(format!("{}address", key(&field.label)));
    }
    names
}

/// The field a header names, guessed.
fn guess_field<'o>(object: &'o ObjectDef, header: &str) -> Option<&'o FieldDef> {
    let wanted = key(header);
    if wanted.is_empty() {
        return None;
    }
    // An exact API name first, then any of the names.
    fillable(object)
        .find(|f| f.name == header.trim() || f.value_key() == header.trim())
        .or_else(|| fillable(object).find(|f| names_of(f).contains(&wanted)))
}

/// The mapping of `headers` guessed from the fields of `object`: what an
/// admin is shown before running an import.
pub fn guess(object: &ObjectDef, headers: &[String]) -> Vec<Column> {
    let mut taken: Vec<String> = Vec::new();
    headers
        .iter()
        .enumerate()
        .map(|(index, header)| {
            let field = guess_field(object, header)
                .filter(|f| !taken.contains(&f.name))
                .cloned();
            let note = match &field {
                Some(field) => {
                    taken.push(field.name.clone());
                    format!("guessed from the header: {}", field.label)
                }
                None if guess_field(object, header).is_some() => "an earlier column fills the same field".to_owned(),
                None => format!("no field of {} is called {header:?}", object.name),
            };
            Column {
                index,
                header: header.clone(),
                field,
                note,
            }
        })
        .collect()
}

/// The mapping an import uses: the options' (header → field API name, or
/// nothing to ignore the column), the rest guessed.
pub fn resolve(object: &ObjectDef, headers: &[String], options: &Options) -> Result<Vec<Column>> {
    let mut columns = guess(object, headers);
    for (i, (header, field)) in options.mapping.iter().enumerate() {
        let at = |message: String| CrmError::bad_input_at(vec!["mapping".into(), i.to_string()], message);
        // The header as written first; else alike but for case, spaces and
        // punctuation (never two headers without letters or digits).
        let position = columns.iter().position(|c| c.header == *header).or_else(|| {
            let wanted = key(header);
            (!wanted.is_empty())
                .then(|| columns.iter().position(|c| key(&c.header) == wanted))
                .flatten()
        });
        let column = position
            .map(|i| &mut columns[i])
            .ok_or_else(|| at(format!("the file has no column {header:?}")))?;
        column.field = match field {
            None => None,
            Some(name) => Some(
                fillable(object)
                    .find(|f| f.name == *name || f.value_key() == *name)
                    .cloned()
                    .ok_or_else(|| at(format!("{} has no field {name:?} a file can fill", object.name)))?,
            ),
        };
        column.note = match field {
            Some(_) => "named by the import".to_owned(),
            None => "ignored by the import".to_owned(),
        };
    }
    // A field named for one column is no longer guessed for another.
    let named: Vec<(usize, String)> = columns
        .iter()
        .filter(|c| c.note == "named by the import")
        .filter_map(|c| Some((c.index, c.field.as_ref()?.name.clone())))
        .collect();
    for column in &mut columns {
        let Some(field) = &column.field else { continue };
        if named
            .iter()
            .any(|(index, name)| *name == field.name && *index != column.index)
        {
            column.field = None;
            column.note = "another column is named for the same field".to_owned();
        }
    }
    Ok(columns)
}

/// A field an import writes: from a column, a default, or both.
#[derive(Debug, Clone)]
pub struct Staged {
    pub field: FieldDef,
    /// The column of the file that fills it.
    pub column: Option<usize>,
    /// The value an empty cell (or every row, without a column) takes.
    pub default: Option<String>,
    /// What a new record gets when the row leaves the field empty: the
    /// field's own default.
    pub fallback: Option<String>,
}

/// What an import stages and writes, checked before any row is read.
#[derive(Debug, Clone)]
pub struct Plan {
    pub columns: Vec<Column>,
    /// The fields staged, in staging-table order.
    pub staged: Vec<Staged>,
    /// UPSERT and UPDATE: the position in `staged` of the field that
    /// finds the record a row changes.
    pub key: Option<usize>,
    /// UPSERT and UPDATE by a duplicate rule: the active rule (of the
    /// object) whose criteria find the record a row changes.
    pub match_rule: Option<String>,
}

impl Plan {
    pub fn new(object: &ObjectDef, mut columns: Vec<Column>, options: &Options) -> Result<Plan> {
        // An id only finds the record a row changes: it is never written.
        let by_id = options.mode != Mode::Create && options.match_on.as_deref().is_none_or(|m| m == "id");
        if !by_id {
            for column in &mut columns {
                if column.field.as_ref().is_some_and(|f| f.kind == FieldKind::Id) {
                    column.field = None;
                    column.note =
                        "ids are the server's: new records get theirs, others are matched by matchOn".to_owned();
                }
            }
        }
        let mut staged: Vec<Staged> = Vec::new();
        for column in &columns {
            let Some(field) = &column.field else { continue };
            if field.system && field.kind != FieldKind::Id {
                continue;
            }
            staged.push(Staged {
                field: field.clone(),
                column: Some(column.index),
                default: None,
                fallback: fallback(field, &options.formats),
            });
        }
        defaults(object, &mut staged, options)?;
        let (key, match_rule) = match &options.match_on {
            // Not a field: a duplicate rule, checked when rules are read.
            Some(name) if options.mode != Mode::Create && object.field(name).is_none() => (None, Some(name.clone())),
            _ => (key_field(object, &staged, options)?, None),
        };
        if options.mode == Mode::Create {
            let missing: Vec<&str> = object
                .fields
                .iter()
                .filter(|f| f.required_on_create() && !staged.iter().any(|s| s.field.name == f.name))
                .map(|f| f.name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(CrmError::bad_input(
                    &["mapping"],
                    format!(
                        "no column fills {}, which new {} require: map a column or give a default",
                        missing.join(", "),
                        object.plural
                    ),
                ));
            }
        }
        if staged.is_empty() {
            return Err(CrmError::bad_input(
                &["mapping"],
                format!("no column of the file fills a field of {}", object.name),
            ));
        }
        Ok(Plan {
            columns,
            staged,
            key,
            match_rule,
        })
    }

    /// The staged field with this API name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.staged.iter().position(|s| s.field.name == name)
    }
}

/// The field's own default as staged text, for new records.
fn fallback(field: &FieldDef, formats: &Formats) -> Option<String> {
    let text = field.default_value.as_ref()?;
    cells::staged(field, text, formats).ok()
}

/// Adds the options' default values to the staged fields, checked.
fn defaults(object: &ObjectDef, staged: &mut Vec<Staged>, options: &Options) -> Result<()> {
    for (name, value) in &options.defaults {
        let at = |message: String| CrmError::bad_input_at(vec!["defaults".into(), name.clone()], message);
        let field = fillable(object)
            .find(|f| (f.name == *name || f.value_key() == *name) && !f.system)
            .ok_or_else(|| at(format!("{} has no writable field {name:?}", object.name)))?;
        let text = cells::default_of(field, value, &options.formats).map_err(|e| at(e.message))?;
        match staged.iter_mut().find(|s| s.field.name == field.name) {
            Some(slot) => slot.default = Some(text),
            None => staged.push(Staged {
                field: field.clone(),
                column: None,
                default: Some(text),
                fallback: None,
            }),
        }
    }
    Ok(())
}

/// The staged field UPSERT and UPDATE find records by: `matchOn` (a field;
/// a duplicate rule is [`Plan::match_rule`]), else `id` when a column fills
/// it, else `externalId`.
fn key_field(object: &ObjectDef, staged: &[Staged], options: &Options) -> Result<Option<usize>> {
    if options.mode == Mode::Create {
        return Ok(None);
    }
    let name = match &options.match_on {
        Some(name) => name.clone(),
        None if staged.iter().any(|s| s.field.kind == FieldKind::Id) => "id".to_owned(),
        None => "externalId".to_owned(),
    };
    let at = |message: String| CrmError::bad_input(&["matchOn"], message);
    let field = object
        .fields
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| at(format!("{} has no field {name:?} to match records on", object.name)))?;
    if field.kind != FieldKind::Id && !field.unique {
        return Err(at(format!(
            "{name} is not unique, so it cannot find one record: match on id, externalId or a unique field"
        )));
    }
    staged
        .iter()
        .position(|s| s.field.name == field.name && s.column.is_some())
        .map(Some)
        .ok_or_else(|| {
            at(format!(
                "no column of the file fills {name}, which {} matches records on",
                options.mode.as_str()
            ))
        })
}
