//! ImportMapping: a saved way to read a kind of file into an object — the
//! column mapping, defaults and formats an admin worked out (in a sandbox,
//! on a copy of production) and promotes like the other configuration.

use super::{picklist, Object, F};
use crate::metadata::{Access, FieldKind, ObjectDef};

/// What an import does with each row.
pub const IMPORT_MODES: &[(&str, &str)] = &[
    ("CREATE", "Create: every row is a new record"),
    ("UPSERT", "Upsert: a row matching a record changes it, others are new"),
    ("UPDATE", "Update: every row must match a record, which it changes"),
];

/// ImportMapping: how to read a kind of file into an object.
pub(super) fn import_mapping() -> ObjectDef {
    use FieldKind::*;
    let mut mapping = Object::new(
        "ImportMapping",
        "importMappings",
        "import_mapping",
        "A saved way to import a kind of file into an object: which column fills which field, the values empty \
         cells take, the file's formats and what to do with each row. An import names it \
         (`savedMapping=NAME`, `crm import --saved-mapping NAME`); what the import names itself wins.",
    );
    mapping.access = Access::Configuration;
    mapping.fields(
        vec![
            F::new(
                "name",
                "name",
                "Mapping name",
                Text,
                "Its name, unique among live mappings.",
            )
            .required()
            .max(255),
            F::new(
                "description",
                "description",
                "Description",
                LongText,
                "What files it is for.",
            )
            .max(32_000),
            F::new(
                "object",
                "object",
                "Object",
                Text,
                "The object it imports into: `Contact`, a custom object's name.",
            )
            .required()
            .max(255),
            F::new(
                "columns",
                "columns",
                "Columns",
                Json,
                "Header → field API name, or null to leave the column out: `{\"E-mail Address\": \"email\", \
             \"Notes\": null}`. Columns it does not name are guessed.",
            )
            .required(),
            F::new(
                "defaults",
                "defaults",
                "Defaults",
                Json,
                "Field → the value of cells left empty and of a field no column fills: `{\"leadSource\": \"WEB\"}`.",
            ),
            F::new(
                "mode",
                "mode",
                "Mode",
                picklist(IMPORT_MODES),
                "What the import does with each row.",
            )
            .required()
            .default("CREATE"),
            F::new(
                "matchOn",
                "match_on",
                "Match on",
                Text,
                "UPSERT and UPDATE: the field rows find records by (`id`, `externalId`, another unique field).",
            )
            .max(255),
        ]
        .into_iter()
        .chain(formats())
        .collect(),
    )
}

/// How the files it is for write dates, numbers and columns.
fn formats() -> Vec<F> {
    use FieldKind::*;
    vec![
        F::new(
            "dateFormat",
            "date_format",
            "Date format",
            Text,
            "The file's dates when not YYYY-MM-DD, as chrono writes formats: `%d.%m.%Y`.",
        )
        .max(64),
        F::new(
            "decimalComma",
            "decimal_comma",
            "Decimal comma",
            Boolean,
            "Numbers are written `1.234,56`.",
        )
        .required()
        .default("false"),
        F::new(
            "delimiter",
            "delimiter",
            "Delimiter",
            Text,
            "The column separator (one character; `\\t` for tab); guessed when empty.",
        )
        .max(2),
        F::new(
            "encoding",
            "encoding",
            "Encoding",
            Text,
            "`UTF8` or `LATIN1`; guessed when empty.",
        )
        .max(16),
    ]
}
