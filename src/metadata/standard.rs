//! The standard objects, described as metadata. Their tables are made by
//! `migrations/workspace`; a test checks the two agree.

use super::{FieldDef, FieldKind, Lookup, ObjectDef, PicklistOption};

/// A field builder, so each definition reads as one line.
struct F(FieldDef);

impl F {
    fn new(name: &str, column: &str, label: &str, kind: FieldKind, description: &str) -> Self {
        F(FieldDef {
            name: name.into(),
            column: column.into(),
            label: label.into(),
            description: description.into(),
            kind,
            required: false,
            system: false,
            max_length: None,
            default_value: None,
        })
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
    fn max(mut self, chars: usize) -> Self {
        self.0.max_length = Some(chars);
        self
    }
}

fn lookup(target: &str, inverse: &str, inverse_description: &str) -> FieldKind {
    FieldKind::Lookup(Lookup {
        target: target.into(),
        inverse: inverse.into(),
        inverse_description: inverse_description.into(),
    })
}

fn picklist(values: &[(&str, &str)]) -> FieldKind {
    FieldKind::Picklist(
        values
            .iter()
            .map(|(value, label)| PicklistOption {
                value: (*value).into(),
                label: (*label).into(),
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
    ]
}

fn object(name: &str, plural: &str, table: &str, description: &str, fields: Vec<F>) -> ObjectDef {
    let mut all = system_fields(&name.to_lowercase());
    all.extend(fields.into_iter().map(|f| f.0));
    ObjectDef {
        name: name.into(),
        plural: plural.into(),
        table: table.into(),
        label: name.into(),
        description: description.into(),
        fields: all,
    }
}

const INDUSTRIES: &[(&str, &str)] = &[
    ("AGRICULTURE", "Agriculture"),
    ("BANKING", "Banking"),
    ("CONSULTING", "Consulting"),
    ("EDUCATION", "Education"),
    ("ENERGY", "Energy"),
    ("FINANCE", "Finance"),
    ("GOVERNMENT", "Government"),
    ("HEALTHCARE", "Healthcare"),
    ("HOSPITALITY", "Hospitality"),
    ("INSURANCE", "Insurance"),
    ("MANUFACTURING", "Manufacturing"),
    ("MEDIA", "Media"),
    ("NONPROFIT", "Nonprofit"),
    ("REAL_ESTATE", "Real estate"),
    ("RETAIL", "Retail"),
    ("SOFTWARE", "Software"),
    ("TELECOMMUNICATIONS", "Telecommunications"),
    ("TRANSPORTATION", "Transportation"),
    ("OTHER", "Other"),
];

/// Account, Contact and Opportunity.
pub fn objects() -> Vec<ObjectDef> {
    use FieldKind::*;
    vec![
        object(
            "Account",
            "accounts",
            "account",
            "A company or organization you do business with: a customer, a prospect or a partner.",
            vec![
                F::new("name", "name", "Account name", Text, "The company's name.")
                    .required()
                    .max(255),
                F::new("website", "website", "Website", Url, "The company's web site.").max(2048),
                F::new(
                    "industry",
                    "industry",
                    "Industry",
                    picklist(INDUSTRIES),
                    "The industry the company works in.",
                ),
                F::new(
                    "annualRevenue",
                    "annual_revenue",
                    "Annual revenue",
                    Decimal,
                    "Yearly revenue, in the account's currency.",
                ),
                F::new(
                    "employeeCount",
                    "employee_count",
                    "Employees",
                    Integer,
                    "Number of employees.",
                ),
                F::new("phone", "phone", "Phone", Phone, "Main phone number.").max(64),
                F::new(
                    "description",
                    "description",
                    "Description",
                    LongText,
                    "Free-text notes about the account.",
                )
                .max(32_000),
            ],
        ),
        object(
            "Contact",
            "contacts",
            "contact",
            "A person you deal with, usually working at an account.",
            vec![
                F::new("firstName", "first_name", "First name", Text, "Given name.").max(255),
                F::new("lastName", "last_name", "Last name", Text, "Family name.")
                    .required()
                    .max(255),
                F::new("email", "email", "Email", Email, "Work email address.").max(320),
                F::new("phone", "phone", "Phone", Phone, "Work phone number.").max(64),
                F::new("title", "title", "Title", Text, "Job title, e.g. VP Sales.").max(255),
                F::new(
                    "account",
                    "account_id",
                    "Account",
                    lookup("Account", "contacts", "The contacts working at this account."),
                    "The account the contact works at.",
                ),
            ],
        ),
        object(
            "Opportunity",
            "opportunities",
            "opportunity",
            "A potential deal: revenue you expect to win from an account.",
            vec![
                F::new("name", "name", "Opportunity name", Text, "A short name for the deal.")
                    .required()
                    .max(255),
                F::new(
                    "amount",
                    "amount",
                    "Amount",
                    Decimal,
                    "Expected deal value, in `currency`.",
                ),
                F::new(
                    "currency",
                    "currency",
                    "Currency",
                    Text,
                    "ISO 4217 code of the amount, e.g. EUR; USD when not given.",
                )
                .required()
                .default("USD")
                .max(3),
                F::new(
                    "closeDate",
                    "close_date",
                    "Close date",
                    Date,
                    "When the deal is expected to close.",
                ),
                F::new(
                    "nextStep",
                    "next_step",
                    "Next step",
                    Text,
                    "What happens next to move the deal forward.",
                )
                .max(255),
                F::new(
                    "account",
                    "account_id",
                    "Account",
                    lookup("Account", "opportunities", "The deals with this account."),
                    "The account the deal is with.",
                ),
                F::new(
                    "primaryContact",
                    "primary_contact_id",
                    "Primary contact",
                    lookup(
                        "Contact",
                        "primaryOpportunities",
                        "The deals where this contact is the primary contact.",
                    ),
                    "The main person you deal with on this opportunity.",
                ),
            ],
        ),
    ]
}
