//! The standard objects, described as metadata. Their tables are made by
//! `migrations/workspace`; a test checks the two agree.
//!
//! This module holds the builders every object uses (`F`, `lookup`,
//! `picklist`, the system and ownership fields) and assembles the list;
//! the objects themselves live by group: `accounts`, `leads`, `sales`,
//! `activities`, `reports`, `duplicates` and `users`. The list's order is the schema's order.

mod accounts;
mod activities;
mod automation;
mod duplicates;
mod imports;
mod leads;
mod reports;

pub use automation::WORKFLOW_TRIGGERS;
pub use duplicates::DUPLICATE_ACTIONS;
pub use imports::IMPORT_MODES;
pub use leads::CONVERSION_TARGETS;
pub use reports::CHARTS;
pub use webhooks::RECORD_EVENTS;
mod sales;
mod users;
mod webhooks;

use super::{Access, FieldDef, FieldKind, Lookup, ObjectDef, Personal, PicklistOption};

/// A field builder, so each definition reads as one line.
#[derive(Clone)]
struct F(FieldDef);

impl F {
    fn new(name: &str, column: &str, label: &str, kind: FieldKind, description: &str) -> Self {
        F(FieldDef {
            name: name.into(),
            column: column.into(),
            label: label.into(),
            description: description.into(),
            required: false,
            system: false,
            max_length: None,
            default_value: None,
            custom: false,
            unique: false,
            // Every lookup column has an index (joins, child lists).
            indexed: matches!(kind, FieldKind::Lookup(_)),
            searchable: false,
            personal: super::Personal::of_kind(&kind),
            kind,
        })
    }
    /// The field holds personal data of this kind (masked in sandboxes).
    fn personal(mut self, personal: Personal) -> Self {
        self.0.personal = Some(personal);
        self
    }
    fn required(mut self) -> Self {
        self.0.required = true;
        self
    }
    fn system(mut self) -> Self {
        self.0.system = true;
        self
    }
    fn default(mut self, value: &str) -> Self {
        self.0.default_value = Some(value.into());
        self
    }
    fn unique(mut self) -> Self {
        self.0.unique = true;
        self.0.indexed = true;
        self
    }
    /// `search` finds records by its words.
    fn searchable(mut self) -> Self {
        self.0.searchable = true;
        self
    }
    fn max(mut self, chars: usize) -> Self {
        self.0.max_length = Some(chars);
        self
    }
}

fn lookup(target: &str, inverse: &str, inverse_description: &str) -> FieldKind {
    FieldKind::Lookup(Lookup {
        target: target.into(),
        inverse: Some(inverse.into()),
        inverse_description: inverse_description.into(),
    })
}

/// A lookup the target does not list back (`createdBy`).
fn one_way(target: &str) -> FieldKind {
    FieldKind::Lookup(Lookup {
        target: target.into(),
        inverse: None,
        inverse_description: String::new(),
    })
}

fn picklist(values: &[(&str, &str)]) -> FieldKind {
    FieldKind::Picklist(
        values
            .iter()
            .map(|(value, label)| PicklistOption {
                value: (*value).into(),
                label: (*label).into(),
                active: true,
            })
            .collect(),
    )
}

/// The fields every record has, maintained by the server.
fn system_fields(object: &str) -> Vec<FieldDef> {
    vec![
        F::new(
            "id",
            "id",
            "ID",
            FieldKind::Id,
            &format!("Unique identifier of the {object}."),
        )
        .required()
        .system()
        .0,
        F::new(
            "createdAt",
            "created_at",
            "Created at",
            FieldKind::DateTime,
            "When the record was created.",
        )
        .required()
        .system()
        .0,
        F::new(
            "updatedAt",
            "updated_at",
            "Updated at",
            FieldKind::DateTime,
            "When the record last changed.",
        )
        .required()
        .system()
        .0,
        F::new(
            "version",
            "version",
            "Version",
            FieldKind::Integer,
            "Increases with every change; pass it as `expectedVersion` to update only what you read.",
        )
        .required()
        .system()
        .0,
        F::new(
            "deletedAt",
            "deleted_at",
            "Deleted at",
            FieldKind::DateTime,
            "When the record was deleted (it can be restored); null while it is live.",
        )
        .system()
        .0,
        F::new(
            "externalId",
            "external_id",
            "External ID",
            FieldKind::Text,
            "The record's id in another system, unique per object: `upsert` matches on it.",
        )
        .max(255)
        .unique()
        .0,
    ]
}

/// Who owns and who created a record: every CRM record has both.
fn ownership(plural: &str) -> Vec<F> {
    vec![
        F::new(
            "owner",
            "owner_id",
            "Owner",
            lookup(
                "User",
                &format!("owned{}", super::upper_first(plural)),
                &format!("The {} this user owns.", super::words(plural)),
            ),
            "The user responsible for the record.",
        ),
        F::new(
            "createdBy",
            "created_by",
            "Created by",
            one_way("User"),
            "The user who created the record.",
        )
        .system(),
    ]
}

struct Object {
    name: &'static str,
    plural: &'static str,
    table: &'static str,
    description: &'static str,
    default_order: &'static str,
    owned: bool,
    access: Access,
}

impl Object {
    fn new(name: &'static str, plural: &'static str, table: &'static str, description: &'static str) -> Self {
        Object {
            name,
            plural,
            table,
            description,
            default_order: "createdAt",
            owned: true,
            access: Access::Record,
        }
    }

    /// What the server records of another object's records: read-only,
    /// owned by no one, listed in the order it happened (`at`).
    fn history(
        name: &'static str,
        plural: &'static str,
        table: &'static str,
        description: &'static str,
        at: &'static str,
    ) -> Self {
        Object {
            owned: false,
            access: Access::History,
            default_order: at,
            ..Object::new(name, plural, table, description)
        }
    }

    fn fields(self, fields: Vec<F>) -> ObjectDef {
        let mut all = system_fields(&self.name.to_lowercase());
        // What the server records is never upserted from elsewhere.
        if self.access == Access::History {
            all.retain(|f| f.name != "externalId");
        }
        if self.owned {
            all.extend(ownership(self.plural).into_iter().map(|f| f.0));
        }
        all.extend(fields.into_iter().map(|f| f.0));
        ObjectDef {
            name: self.name.into(),
            plural: self.plural.into(),
            table: self.table.into(),
            label: self.name.into(),
            description: self.description.into(),
            fields: all,
            schema: None,
            default_order: self.default_order.into(),
            access: self.access,
            custom: false,
            plural_label: super::upper_first(&super::words(self.plural)),
        }
    }
}

/// An address as five text fields: `billingStreet`, `billingCity` …
fn address(prefix: &str, label: &str) -> Vec<F> {
    [
        ("Street", "street", "Street and number", Some(Personal::Street)),
        ("City", "city", "City", Some(Personal::City)),
        ("State", "state", "State or province", None),
        ("PostalCode", "postal_code", "Postal code", Some(Personal::PostalCode)),
        ("Country", "country", "Country", None),
    ]
    .into_iter()
    .map(|(name, column, part, personal)| {
        let mut field = F::new(
            &format!("{prefix}{name}"),
            &format!("{prefix}_{column}"),
            &format!("{label}: {}", part.to_lowercase()),
            FieldKind::Text,
            &format!("{label}: {}.", part.to_lowercase()),
        )
        .max(255);
        field.0.personal = personal;
        field
    })
    .collect()
}

const LEAD_SOURCES: &[(&str, &str)] = &[
    ("WEB", "Web"),
    ("PHONE_INQUIRY", "Phone inquiry"),
    ("PARTNER_REFERRAL", "Partner referral"),
    ("PURCHASED_LIST", "Purchased list"),
    ("TRADE_SHOW", "Trade show"),
    ("WORD_OF_MOUTH", "Word of mouth"),
    ("EMAIL_CAMPAIGN", "Email campaign"),
    ("SOCIAL_MEDIA", "Social media"),
    ("ADVERTISEMENT", "Advertisement"),
    ("EVENT", "Event"),
    ("OTHER", "Other"),
];

/// The standard objects: Account, LifecycleChange, Contact, Lead,
/// Pipeline, Stage, Opportunity, OpportunityFieldChange, StageEntry,
/// ContactRole, Activity, Report, LeadFieldMapping, ScoringRule, LeadGrade,
/// DuplicateRule and User.
pub fn objects() -> Vec<ObjectDef> {
    vec![
        accounts::account(),
        accounts::lifecycle_change(),
        accounts::contact(),
        leads::lead(),
        sales::pipeline(),
        sales::stage(),
        sales::opportunity(),
        sales::opportunity_field_change(),
        sales::stage_entry(),
        sales::contact_role(),
        activities::activity(),
        reports::report(),
        leads::lead_field_mapping(),
        leads::scoring_rule(),
        leads::lead_grade(),
        duplicates::duplicate_rule(),
        imports::import_mapping(),
        automation::validation_rule(),
        automation::workflow_rule(),
        automation::email_template(),
        webhooks::webhook_subscription(),
        users::user(),
    ]
}

/// A custom object's definition before its custom fields: what every CRM
/// record has (id, timestamps, version, external id, owner, creator) and a
/// required `name`, the record's title in lists and lookups.
pub fn custom_object(
    name: &str,
    plural: &str,
    table: &str,
    label: &str,
    plural_label: &str,
    description: &str,
) -> ObjectDef {
    let mut fields = system_fields(&label.to_lowercase());
    fields.extend(ownership(plural).into_iter().map(|f| f.0));
    fields.push(
        F::new(
            "name",
            "name",
            "Name",
            FieldKind::Text,
            &format!("The {}'s name.", label.to_lowercase()),
        )
        .required()
        .max(255)
        .searchable()
        .0,
    );
    ObjectDef {
        name: name.into(),
        plural: plural.into(),
        table: table.into(),
        label: label.into(),
        description: description.into(),
        fields,
        schema: None,
        default_order: "createdAt".into(),
        access: Access::Record,
        custom: true,
        plural_label: plural_label.into(),
    }
}
