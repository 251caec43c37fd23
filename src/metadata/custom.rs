//! Custom objects and custom fields as stored in a workspace
//! (`custom_object`, `custom_field`), and how they join the standard model.
//!
//! A stored row is the whole truth about its table or column: the model of
//! a workspace is the standard objects plus its live rows, loaded in two
//! statements whenever its GraphQL schema is built.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use super::{lower_first, standard, FieldDef, FieldKind, Lookup, Model, ObjectDef, PicklistOption};
use crate::db::sql::Sql;
use crate::error::{CrmError, Result};

/// Longest API name, in bytes (a Postgres identifier's limit).
pub const MAX_NAME_BYTES: usize = 63;
/// Longest custom object name: its table `co_<snake_name>` must fit too.
pub const MAX_OBJECT_NAME_BYTES: usize = 40;

/// The types a custom field can have, as the metadata API names them.
pub const FIELD_TYPES: &[(&str, &str)] = &[
    ("TEXT", "One line of text, up to 255 characters."),
    ("LONG_TEXT", "Free text, up to 131,072 characters."),
    ("INTEGER", "A whole number (32 bits)."),
    ("DECIMAL", "An exact number with two decimal places."),
    ("CURRENCY", "An amount of money with two decimal places."),
    ("PERCENT", "A percentage with two decimal places: 12.5 is 12.5 %."),
    ("BOOLEAN", "True or false."),
    ("DATE", "A calendar date."),
    ("DATETIME", "An instant in time."),
    ("EMAIL", "An email address."),
    ("PHONE", "A phone number, kept as entered."),
    ("URL", "A web address."),
    ("PICKLIST", "One value of a list of options: a GraphQL enum."),
    (
        "MULTI_PICKLIST",
        "Any number of values of a list of options: a list of a GraphQL enum.",
    ),
    (
        "LOOKUP",
        "A reference to a record of another object, with the list of referring records on the other side.",
    ),
    ("JSON", "Any JSON document."),
];

/// API names no field may take: the API's own words, GraphQL's and SQL's
/// keywords (compared case-insensitively).
const RESERVED_FIELD_NAMES: &[&str] = &[
    "id",
    "edges",
    "node",
    "nodes",
    "cursor",
    "totalCount",
    "pageInfo",
    "filter",
    "orderBy",
    "first",
    "last",
    "after",
    "before",
    "includeDeleted",
    "and",
    "or",
    "not",
    "some",
    "none",
    "every",
    "history",
    "timeline",
    "input",
    "expectedVersion",
    "version",
    "createdAt",
    "updatedAt",
    "deletedAt",
    "externalId",
    "owner",
    "ownerId",
    "createdBy",
    "createdById",
    "typename",
    "true",
    "false",
    "null",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "on",
    "schema",
    "type",
    "select",
    "insert",
    "update",
    "delete",
    "drop",
    "table",
    "from",
    "where",
    "user",
    "order",
    "group",
    "limit",
    "offset",
    "union",
    "all",
    "grant",
    "revoke",
    "create",
    "alter",
    "column",
    "index",
    "primary",
    "references",
    "default",
    "check",
    "constraint",
    "field",
    "direction",
    "nulls",
];

/// Type names of the API that a custom object could collide with, beyond
/// what the schema build itself refuses.
const RESERVED_OBJECT_NAMES: &[&str] = &[
    "Query",
    "Mutation",
    "SubscriptionRoot",
    "Object",
    "Field",
    "Me",
    "Node",
    "Edge",
    "Connection",
    "PageInfo",
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
    "JSON",
    "Date",
    "DateTime",
    "Decimal",
];

/// Suffixes of the types the schema makes per object (`AccountFilter` …).
const RESERVED_OBJECT_SUFFIXES: &[&str] = &[
    "Connection",
    "Edge",
    "Filter",
    "ListFilter",
    "OrderBy",
    "OrderField",
    "Input",
    "Update",
    "Definition",
];

/// A `custom_object` row.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct StoredObject {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub plural: String,
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = Text)]
    pub plural_label: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A `custom_field` row.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct StoredField {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub column_name: String,
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Text)]
    pub r#type: String,
    #[diesel(sql_type = Bool)]
    pub required: bool,
    #[diesel(sql_type = Bool)]
    pub is_unique: bool,
    #[diesel(sql_type = Bool)]
    pub indexed: bool,
    #[diesel(sql_type = Bool)]
    pub searchable: bool,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub default_value: Option<Json>,
    #[diesel(sql_type = Jsonb)]
    pub options: Json,
    #[diesel(sql_type = Nullable<Text>)]
    pub lookup_object: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub relation_name: Option<String>,
    #[diesel(sql_type = Integer)]
    pub position: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Everything customized in a workspace, deleted (retained) rows included.
#[derive(Debug, Clone, Default)]
pub struct Customizations {
    pub objects: Vec<StoredObject>,
    pub fields: Vec<StoredField>,
}

impl Customizations {
    /// Reads a workspace's custom objects and fields (two statements).
    pub async fn read(conn: &mut AsyncPgConnection, schema: &str) -> Result<Self> {
        let mut objects =
            Sql::raw("SELECT id, name, plural, table_name, label, plural_label, description, deleted_at FROM ");
        objects
            .table(schema, "custom_object")
            .push(" ORDER BY created_at, name");
        let mut fields = Sql::raw(
            "SELECT id, object, name, column_name, label, description, type, required, is_unique, indexed, \
             searchable, default_value, options, lookup_object, relation_name, position, deleted_at FROM ",
        );
        fields
            .table(schema, "custom_field")
            .push(" ORDER BY object, position, name");
        Ok(Customizations {
            objects: objects.load(conn).await?,
            fields: fields.load(conn).await?,
        })
    }

    /// The workspace's model: the standard objects, then live custom
    /// objects, each with its live custom fields after its own.
    pub fn model(&self) -> Result<Model> {
        let mut objects = standard::objects();
        for stored in self.objects.iter().filter(|o| o.deleted_at.is_none()) {
            objects.push(stored.definition());
        }
        let positions: HashMap<String, usize> = objects.iter().enumerate().map(|(i, o)| (o.name.clone(), i)).collect();
        for stored in self.fields.iter().filter(|f| f.deleted_at.is_none()) {
            // Fields of a deleted (retained) object leave with it.
            if let Some(&i) = positions.get(&stored.object) {
                objects[i].fields.push(stored.definition()?);
            }
        }
        // A lookup to a deleted object cannot be shown; deleting an object
        // refuses while one exists, so this only guards hand-made rows.
        let names: Vec<String> = objects.iter().map(|o| o.name.clone()).collect();
        for object in &mut objects {
            object
                .fields
                .retain(|f| f.lookup().is_none_or(|lookup| names.contains(&lookup.target)));
        }
        Ok(Model::new(objects))
    }

    pub fn object(&self, name: &str) -> Option<&StoredObject> {
        self.objects.iter().find(|o| o.name == name)
    }

    /// The stored field `name` of `object`, live or retained.
    pub fn field(&self, object: &str, name: &str) -> Option<&StoredField> {
        self.fields.iter().find(|f| f.object == object && f.name == name)
    }
}

impl StoredObject {
    pub fn definition(&self) -> ObjectDef {
        let mut object = standard::custom_object(
            &self.name,
            &self.plural,
            &self.table_name,
            &self.label,
            &self.plural_label,
            &self.description,
        );
        object.description = if self.description.is_empty() {
            format!("{} records (a custom object).", self.label)
        } else {
            self.description.clone()
        };
        object
    }
}

impl StoredField {
    /// The field as the model describes it.
    pub fn definition(&self) -> Result<FieldDef> {
        let options = parse_options(&self.options);
        let kind = kind_of(
            &self.r#type,
            options,
            self.lookup_object.as_deref(),
            self.relation_name.as_deref(),
            &self.label,
        )
        .ok_or_else(|| {
            CrmError::internal(format_args!(
                "custom field {}.{} has type {}",
                self.object, self.name, self.r#type
            ))
        })?;
        Ok(FieldDef {
            name: self.name.clone(),
            column: self.column_name.clone(),
            label: self.label.clone(),
            description: if self.description.is_empty() {
                format!("{} (a custom field).", self.label)
            } else {
                self.description.clone()
            },
            max_length: max_length(&kind),
            default_value: self.default_value.as_ref().map(default_text),
            required: self.required,
            system: false,
            custom: true,
            unique: self.is_unique,
            indexed: self.indexed || self.is_unique || matches!(kind, FieldKind::Lookup(_)),
            searchable: self.searchable && kind.searchable(),
            personal: super::Personal::of_kind(&kind),
            kind,
        })
    }
}

/// A default value as the API's descriptions show it.
pub fn default_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Stored picklist options.
pub fn parse_options(json: &Json) -> Vec<PicklistOption> {
    json.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some(PicklistOption {
                        value: item.get("value")?.as_str()?.to_owned(),
                        label: item.get("label")?.as_str()?.to_owned(),
                        active: item.get("active").and_then(Json::as_bool).unwrap_or(true),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Picklist options as stored.
pub fn options_json(options: &[PicklistOption]) -> Json {
    Json::Array(
        options
            .iter()
            .map(|o| serde_json::json!({ "value": o.value, "label": o.label, "active": o.active }))
            .collect(),
    )
}

/// The field kind of a metadata type name; `None` for an unknown name.
pub fn kind_of(
    type_name: &str,
    options: Vec<PicklistOption>,
    lookup_object: Option<&str>,
    relation_name: Option<&str>,
    label: &str,
) -> Option<FieldKind> {
    Some(match type_name {
        "TEXT" => FieldKind::Text,
        "LONG_TEXT" => FieldKind::LongText,
        "INTEGER" => FieldKind::Integer,
        "DECIMAL" => FieldKind::Decimal,
        "CURRENCY" => FieldKind::Currency,
        "PERCENT" => FieldKind::Percent,
        "BOOLEAN" => FieldKind::Boolean,
        "DATE" => FieldKind::Date,
        "DATETIME" => FieldKind::DateTime,
        "EMAIL" => FieldKind::Email,
        "PHONE" => FieldKind::Phone,
        "URL" => FieldKind::Url,
        "PICKLIST" => FieldKind::Picklist(options),
        "MULTI_PICKLIST" => FieldKind::MultiPicklist(options),
        "JSON" => FieldKind::Json,
        "LOOKUP" => FieldKind::Lookup(Lookup {
            target: lookup_object?.to_owned(),
            inverse: relation_name.map(str::to_owned),
            inverse_description: format!("The records whose {label} is this one."),
        }),
        _ => return None,
    })
}

/// The longest text a field of this kind accepts.
pub fn max_length(kind: &FieldKind) -> Option<usize> {
    match kind {
        FieldKind::Text => Some(255),
        FieldKind::Email => Some(320),
        FieldKind::Phone => Some(40),
        FieldKind::Url => Some(2048),
        FieldKind::LongText => Some(131_072),
        _ => None,
    }
}

/// `renewalDate` → `renewal_date`.
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The column of a custom field: `cf_<snake_name>`.
pub fn field_column(name: &str) -> String {
    format!("cf_{}", snake(name))
}

/// The table of a custom object: `co_<snake_name>`.
pub fn object_table(name: &str) -> String {
    format!("co_{}", snake(&lower_first(name)))
}

/// `Subscription` → `subscriptions`, `Company` → `companies`, `Box` → `boxes`.
pub fn plural_of(name: &str) -> String {
    let lower = lower_first(name);
    let ends = |s: &str| lower.ends_with(s);
    if ends("s") || ends("x") || ends("z") || ends("ch") || ends("sh") {
        format!("{lower}es")
    } else if ends("y") && !(ends("ay") || ends("ey") || ends("oy") || ends("uy")) {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

/// Checks a new field's API name: camelCase ASCII, at most 63 bytes, not a
/// word the API or GraphQL reserves. Collisions with the object's other
/// fields are checked by the caller, who knows them.
pub fn check_field_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("a field name must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{} is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            shown(name),
            name.len()
        ));
    }
    if name.starts_with("__") {
        return Err(format!("{} starts with __, which GraphQL reserves", shown(name)));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{} is not a camelCase name: use ASCII letters and digits, starting with a lowercase letter (e.g. renewalDate)",
            shown(name)
        ));
    }
    if RESERVED_FIELD_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!("{name} is reserved by the API"));
    }
    let column = field_column(name);
    if column.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{name} is too long: its column {column} would exceed {MAX_NAME_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Checks a new custom object's API name: PascalCase ASCII, at most 40
/// bytes, not a type name the API uses.
pub fn check_object_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("an object name must not be empty".into());
    }
    if name.len() > MAX_OBJECT_NAME_BYTES {
        return Err(format!(
            "{} is {} bytes long; at most {MAX_OBJECT_NAME_BYTES} are allowed",
            shown(name),
            name.len()
        ));
    }
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if !first_ok || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{} is not a PascalCase name: use ASCII letters and digits, starting with an uppercase letter (e.g. Subscription)",
            shown(name)
        ));
    }
    if RESERVED_OBJECT_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!("{name} is reserved by the API"));
    }
    if let Some(suffix) = RESERVED_OBJECT_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        return Err(format!(
            "{name} ends with {suffix}, which the API uses for its own types"
        ));
    }
    Ok(())
}

/// Checks a picklist value: SCREAMING_SNAKE_CASE, a valid GraphQL enum value.
pub fn check_option_value(value: &str) -> std::result::Result<(), String> {
    let first_ok = value.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if !first_ok
        || value.len() > MAX_NAME_BYTES
        || !value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "{} is not a picklist value: use at most {MAX_NAME_BYTES} uppercase ASCII letters, digits and _, starting with a letter (e.g. GOLD_PLUS)",
            shown(value)
        ));
    }
    if matches!(value, "TRUE" | "FALSE" | "NULL") {
        return Err(format!("{value} cannot be an enum value in GraphQL"));
    }
    Ok(())
}

/// A name as it can be quoted in a message: control characters escaped,
/// long ones cut.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(70).collect();
    format!("{cut:?}")
}
