//! The data model as metadata: objects, their fields, types and relations.
//!
//! Nothing about an object's shape is hard-coded in resolvers or SQL: the
//! GraphQL schema and every query (the graphql and records modules) are
//! derived from a [`Model`]. Standard objects are described in
//! [`standard`]; custom fields and objects ([`custom`]) are rows that load
//! into the same shapes. [`change`] is how they change: one skeleton
//! (lock, check, DDL, record, announce) around the field changes
//! (`field`), the object changes (`object`) and the DDL they run
//! ([`ddl`]). [`kinds`] are the kinds of metadata a promotion moves
//! (objects, fields, pipelines, stages, settings), one file each;
//! [`settings`] the workspace settings.

pub mod change;
pub mod custom;
pub mod ddl;
mod field;
pub mod kinds;
pub mod log;
mod object;
pub mod replay;
pub mod settings;
pub mod standard;

use std::collections::HashMap;
use std::sync::Arc;

/// The type of a field: decides its column type, GraphQL type, filter
/// operators and input validation.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// The record's UUID primary key.
    Id,
    /// Short text (one line).
    Text,
    /// Text that must look like an email address.
    Email,
    /// Text that must look like a web address.
    Url,
    /// A phone number, kept as entered.
    Phone,
    /// Long free text.
    LongText,
    /// A 32-bit integer.
    Integer,
    /// An exact decimal, exchanged as a string to keep precision.
    Decimal,
    /// An amount of money: a decimal with two places.
    Currency,
    /// A percentage (`12.5` is 12.5 %): a decimal with two places.
    Percent,
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339 in UTC.
    DateTime,
    /// One value of a fixed list; a GraphQL enum.
    Picklist(Vec<PicklistOption>),
    /// Any number of values of a fixed list; a list of a GraphQL enum.
    MultiPicklist(Vec<PicklistOption>),
    /// A reference to a record of another object (a foreign key).
    Lookup(Lookup),
    /// Any JSON document.
    Json,
}

impl FieldKind {
    /// Whether `search` can find records by a field of this kind: text.
    pub fn searchable(&self) -> bool {
        matches!(
            self,
            FieldKind::Text | FieldKind::LongText | FieldKind::Email | FieldKind::Phone | FieldKind::Url
        )
    }

    /// The type's name in the metadata API (`FieldType`).
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Id => "ID",
            FieldKind::Text => "TEXT",
            FieldKind::Email => "EMAIL",
            FieldKind::Url => "URL",
            FieldKind::Phone => "PHONE",
            FieldKind::LongText => "LONG_TEXT",
            FieldKind::Integer => "INTEGER",
            FieldKind::Decimal => "DECIMAL",
            FieldKind::Currency => "CURRENCY",
            FieldKind::Percent => "PERCENT",
            FieldKind::Boolean => "BOOLEAN",
            FieldKind::Date => "DATE",
            FieldKind::DateTime => "DATETIME",
            FieldKind::Picklist(_) => "PICKLIST",
            FieldKind::MultiPicklist(_) => "MULTI_PICKLIST",
            FieldKind::Lookup(_) => "LOOKUP",
            FieldKind::Json => "JSON",
        }
    }

    /// An exact decimal with two places, exchanged as a `Decimal` string.
    pub fn is_decimal(&self) -> bool {
        matches!(self, FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent)
    }

    /// The values of a picklist or multi-select picklist.
    pub fn options(&self) -> Option<&[PicklistOption]> {
        match self {
            FieldKind::Picklist(options) | FieldKind::MultiPicklist(options) => Some(options),
            _ => None,
        }
    }
}

/// One value of a picklist.
#[derive(Debug, Clone, PartialEq)]
pub struct PicklistOption {
    /// The API value (an enum value, SCREAMING_SNAKE_CASE), also stored.
    pub value: String,
    /// What people read.
    pub label: String,
    /// Inactive values stay readable on the records that hold them but
    /// cannot be written any more.
    pub active: bool,
}

/// The target of a lookup and the name of the list on the other side.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// The object referred to (`Account`).
    pub target: String,
    /// The field on the target listing the referring records (`contacts`);
    /// `None` when the target shows no such list (`createdBy`).
    pub inverse: Option<String>,
    /// Description of the inverse list.
    pub inverse_description: String,
}

/// A field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name, camelCase (`annualRevenue`; for lookups the relation, `account`).
    pub name: String,
    /// The Postgres column (`annual_revenue`, `account_id`).
    pub column: String,
    /// What people read.
    pub label: String,
    /// Becomes the GraphQL description.
    pub description: String,
    pub kind: FieldKind,
    /// The column is NOT NULL and the create input requires a value.
    pub required: bool,
    /// Maintained by the server (`id`, `createdAt` …): read-only in the API.
    pub system: bool,
    /// Longest accepted text, in characters.
    pub max_length: Option<usize>,
    /// The value a create without this field stores (the column's default).
    pub default_value: Option<String>,
    /// Added by an admin (a `cf_` column), not part of the product.
    pub custom: bool,
    /// No two live records share a value (a unique index).
    pub unique: bool,
    /// Filters and sorts on it are served by an index.
    pub indexed: bool,
    /// `search` finds records by its words (text kinds only).
    pub searchable: bool,
    /// The personal data it holds, which a masked sandbox copy replaces.
    pub personal: Option<Personal>,
}

/// Personal data a field holds. A sandbox made with `mask` replaces each
/// kind with a fake value of the same kind, in SQL, while copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    GivenName,
    FamilyName,
    Email,
    Phone,
    Street,
    City,
    PostalCode,
    /// Notes, descriptions, bodies: anything may be written there.
    FreeText,
    Birthdate,
}

impl Personal {
    /// What a field of `kind` holds when nothing more is known about it:
    /// emails, phone numbers and long text are personal; short text may be
    /// anything, so it is not assumed to be.
    pub fn of_kind(kind: &FieldKind) -> Option<Personal> {
        match kind {
            FieldKind::Email => Some(Personal::Email),
            FieldKind::Phone => Some(Personal::Phone),
            FieldKind::LongText => Some(Personal::FreeText),
            _ => None,
        }
    }
}

impl FieldDef {
    /// The Postgres type of the column, as `information_schema` spells it.
    pub fn pg_type(&self) -> &'static str {
        match self.kind {
            FieldKind::Id | FieldKind::Lookup(_) => "uuid",
            FieldKind::Text
            | FieldKind::Email
            | FieldKind::Url
            | FieldKind::Phone
            | FieldKind::LongText
            | FieldKind::Picklist(_) => "text",
            FieldKind::Integer => "integer",
            FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => "numeric",
            FieldKind::Boolean => "boolean",
            FieldKind::Date => "date",
            FieldKind::DateTime => "timestamp with time zone",
            FieldKind::MultiPicklist(_) => "ARRAY",
            FieldKind::Json => "jsonb",
        }
    }

    /// The key of this field's value in a row document and in inputs:
    /// the API name, or `<name>Id` for a lookup.
    pub fn value_key(&self) -> String {
        match self.kind {
            FieldKind::Lookup(_) => format!("{}Id", self.name),
            _ => self.name.clone(),
        }
    }

    /// Whether the field can be sorted on.
    pub fn sortable(&self) -> bool {
        !matches!(
            self.kind,
            FieldKind::LongText | FieldKind::Lookup(_) | FieldKind::MultiPicklist(_) | FieldKind::Json
        )
    }

    /// Whether a create must name a value (required, and no default).
    pub fn required_on_create(&self) -> bool {
        self.required && self.default_value.is_none() && !self.system
    }

    pub fn lookup(&self) -> Option<&Lookup> {
        match &self.kind {
            FieldKind::Lookup(lookup) => Some(lookup),
            _ => None,
        }
    }
}

/// An object (a record type): `Account`, `Contact` …
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API type name, PascalCase singular.
    pub name: String,
    /// API name of the list query, camelCase plural (`accounts`).
    pub plural: String,
    /// The table inside a workspace schema.
    pub table: String,
    pub label: String,
    pub description: String,
    pub fields: Vec<FieldDef>,
    /// A fixed Postgres schema for objects shared by every workspace
    /// (`User` lives in `crm_system`); `None` for workspace objects.
    pub schema: Option<String>,
    /// The field lists are ordered by when the client names no order
    /// (`createdAt`; `position` for stages).
    pub default_order: String,
    /// Who may see and change its records (see `access`).
    pub access: Access,
    /// Made by an admin (a `co_` table), not part of the product.
    pub custom: bool,
    /// What people call several of its records (`Accounts`).
    pub plural_label: String,
}

/// What kind of data an object holds, for permissions and visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// CRM records, each owned by a user. Under `recordVisibility: OWNED`
    /// sales reps see only their own records and those records' children.
    Record,
    /// Configuration every role reads and only admins change (pipelines,
    /// stages).
    Configuration,
    /// The people who use the CRM: every role reads them (owners, pickers),
    /// admins manage them; they are deactivated, never deleted.
    Users,
    /// What the server records of other records' lives (a deal's stays in
    /// stages, an account's lifecycle changes): read like records, seen
    /// with the record they are about, never written through the API.
    History,
}

impl ObjectDef {
    /// Whether the API writes its records: all but what the server records.
    pub fn writable(&self) -> bool {
        self.access != Access::History
    }

    /// The Postgres schema of this object's table inside `workspace_schema`.
    pub fn schema_in<'a>(&'a self, workspace_schema: &'a str) -> &'a str {
        self.schema.as_deref().unwrap_or(workspace_schema)
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field whose value key (`accountId` for a lookup) is `key`.
    pub fn field_by_value_key(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.value_key() == key)
    }

    /// The API name of the single-record query (`account`).
    pub fn singular(&self) -> String {
        lower_first(&self.name)
    }
}

/// A to-many relation seen from its target: `Account.contacts` is the
/// lookup `Contact.account` read backwards.
#[derive(Debug, Clone)]
pub struct InverseRelation {
    /// The field name on the target (`contacts`).
    pub name: String,
    pub description: String,
    /// The object holding the lookup (`Contact`).
    pub child: Arc<ObjectDef>,
    /// The lookup field on the child (`account`).
    pub lookup: FieldDef,
}

/// The whole model of one workspace.
#[derive(Debug, Clone)]
pub struct Model {
    objects: Vec<Arc<ObjectDef>>,
    by_name: HashMap<String, usize>,
}

impl Model {
    pub fn new(objects: Vec<ObjectDef>) -> Self {
        let by_name = objects.iter().enumerate().map(|(i, o)| (o.name.clone(), i)).collect();
        Model {
            objects: objects.into_iter().map(Arc::new).collect(),
            by_name,
        }
    }

    /// The standard objects with no customizations.
    pub fn standard() -> Self {
        Model::new(standard::objects())
    }

    pub fn objects(&self) -> &[Arc<ObjectDef>] {
        &self.objects
    }

    pub fn object(&self, name: &str) -> Option<&Arc<ObjectDef>> {
        self.by_name.get(name).map(|&i| &self.objects[i])
    }

    /// The to-many relations pointing at `target`, in model order.
    pub fn inverse_relations(&self, target: &str) -> Vec<InverseRelation> {
        let mut out = Vec::new();
        for child in &self.objects {
            for field in &child.fields {
                if let Some(lookup) = field.lookup() {
                    if let (true, Some(inverse)) = (lookup.target == target, &lookup.inverse) {
                        out.push(InverseRelation {
                            name: inverse.clone(),
                            description: lookup.inverse_description.clone(),
                            child: child.clone(),
                            lookup: field.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// `Account` → `an Account`, `User` → `a User`: for descriptions. A leading
/// U reads as "you" in the CRM's words (User, Unit), so it takes "a".
pub fn with_article(name: &str) -> String {
    let vowel = name.chars().next().is_some_and(|c| "AEIOaeio".contains(c));
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// `contactRoles` → `contact roles`: API names in prose.
pub fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            out.push(' ');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out.trim_start().to_owned()
}

/// `annualRevenue` → `ANNUAL_REVENUE`: the enum value naming a field.
pub fn screaming_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// `industry` → `Industry`.
pub fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `Account` → `account`.
pub fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Largest decimal digits before the point (columns are numeric(18, 2)).
const DECIMAL_INTEGER_DIGITS: usize = 16;
const DECIMAL_SCALE: usize = 2;

/// Validates a decimal: digits, one optional point, at most 2 decimals.
pub fn parse_decimal(text: &str) -> std::result::Result<String, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || (digits.contains('.') && frac.is_empty()) {
        return Err(format!("{text:?} is not a decimal number such as \"1250.50\""));
    }
    if int.trim_start_matches('0').len() > DECIMAL_INTEGER_DIGITS {
        return Err(format!(
            "{text} is too large (at most {DECIMAL_INTEGER_DIGITS} digits before the point)"
        ));
    }
    if frac.len() > DECIMAL_SCALE {
        return Err(format!("{text} has more than {DECIMAL_SCALE} decimal places"));
    }
    Ok(text.to_owned())
}

/// The earliest year PostgreSQL's `date` holds (4713 BC); chrono reads
/// earlier ones, which the database would refuse.
const EARLIEST_YEAR: i32 = -4712;

/// Reads a date (`YYYY-MM-DD`) that a `date` column can hold.
pub fn parse_date(text: &str) -> std::result::Result<chrono::NaiveDate, String> {
    use chrono::Datelike;
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|date| date.year() >= EARLIEST_YEAR)
        .ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD, 4713 BC or later)"))
}

/// Reads an RFC 3339 date-time (years 0000 to 9999: all fit `timestamptz`).
pub fn parse_datetime(text: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| format!("{text:?} is not an RFC 3339 date-time such as 2026-11-23T09:30:00Z"))
}
