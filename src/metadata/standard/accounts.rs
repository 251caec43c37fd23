//! Account and Contact: the companies and people a CRM is about, the
//! objects every other one refers to.

use super::{address, lookup, one_way, picklist, Object, F, LEAD_SOURCES};
use crate::metadata::{FieldKind, ObjectDef, Personal};

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

/// LifecycleChange: an account moving from one lifecycle stage to another,
/// kept by the server.
pub(super) fn lifecycle_change() -> ObjectDef {
    use FieldKind::*;
    Object::history(
        "LifecycleChange",
        "lifecycleChanges",
        "account_lifecycle_change",
        "An account's lifecycle stage changing (prospect to customer, customer to churned …): from, to, when and \
         who. Recorded by the server whatever made the change; read-only. Churn and lifetime value read it.",
        "changedAt",
    )
    .fields(vec![
        F::new(
            "account",
            "account_id",
            "Account",
            lookup(
                "Account",
                "lifecycleChanges",
                "The account's lifecycle changes, oldest first.",
            ),
            "The account.",
        )
        .required(),
        F::new(
            "fromStage",
            "from_stage",
            "From",
            Text,
            "The lifecycle stage before (null: none, or created).",
        ),
        F::new(
            "toStage",
            "to_stage",
            "To",
            Text,
            "The lifecycle stage after (null: cleared).",
        ),
        F::new("changedAt", "changed_at", "Changed at", DateTime, "When it changed.").required(),
        F::new(
            "changedBy",
            "changed_by",
            "Changed by",
            one_way("User"),
            "Who changed it (null: the server).",
        ),
    ])
}

/// Account: a company you do business with.
pub(super) fn account() -> ObjectDef {
    use FieldKind::*;
    Object::new(
        "Account",
        "accounts",
        "account",
        "A company or organization you do business with: a customer, a prospect or a partner.",
    )
    .fields(
        [
            vec![
                F::new("name", "name", "Account name", Text, "The company's name.")
                    .required()
                    .max(255)
                    .searchable(),
                F::new("website", "website", "Website", Url, "The company's web site.").max(2048),
                F::new(
                    "domain",
                    "domain",
                    "Domain",
                    Text,
                    "The company's internet domain, e.g. acme.com.",
                )
                .max(255),
                F::new(
                    "industry",
                    "industry",
                    "Industry",
                    picklist(INDUSTRIES),
                    "The industry the company works in.",
                ),
                F::new(
                    "type",
                    "type",
                    "Type",
                    picklist(&[
                        ("PROSPECT", "Prospect"),
                        ("CUSTOMER", "Customer"),
                        ("PARTNER", "Partner"),
                        ("RESELLER", "Reseller"),
                        ("VENDOR", "Vendor"),
                        ("COMPETITOR", "Competitor"),
                        ("OTHER", "Other"),
                    ]),
                    "The relationship you have with the company.",
                ),
                F::new(
                    "lifecycleStage",
                    "lifecycle_stage",
                    "Lifecycle stage",
                    picklist(&[
                        ("LEAD", "Lead"),
                        ("MARKETING_QUALIFIED", "Marketing qualified"),
                        ("SALES_QUALIFIED", "Sales qualified"),
                        ("OPPORTUNITY", "Opportunity"),
                        ("CUSTOMER", "Customer"),
                        ("CHURNED", "Churned"),
                    ]),
                    "Where the company is in its journey with you, from first interest to customer (or churned).",
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
                    "parentAccount",
                    "parent_account_id",
                    "Parent account",
                    lookup("Account", "childAccounts", "The subsidiaries of this account."),
                    "The account this one belongs to (a parent company): accounts form a hierarchy.",
                ),
                F::new(
                    "description",
                    "description",
                    "Description",
                    LongText,
                    "Free-text notes about the account.",
                )
                .max(32_000),
            ],
            address("billing", "Billing address"),
            address("shipping", "Shipping address"),
        ]
        .concat(),
    )
}

/// Contact: a person, usually at an account.
pub(super) fn contact() -> ObjectDef {
    use FieldKind::*;
    Object::new(
        "Contact",
        "contacts",
        "contact",
        "A person you deal with, usually working at an account.",
    )
    .fields(
        [
            vec![
                F::new("firstName", "first_name", "First name", Text, "Given name.")
                    .max(255)
                    .personal(Personal::GivenName)
                    .searchable(),
                F::new("lastName", "last_name", "Last name", Text, "Family name.")
                    .required()
                    .max(255)
                    .personal(Personal::FamilyName)
                    .searchable(),
                F::new("email", "email", "Email", Email, "Work email address.")
                    .max(320)
                    .searchable(),
                F::new("phone", "phone", "Phone", Phone, "Work phone number.").max(64),
                F::new("mobile", "mobile", "Mobile", Phone, "Mobile phone number.").max(64),
                F::new("title", "title", "Title", Text, "Job title, e.g. VP Sales.").max(255),
                F::new(
                    "department",
                    "department",
                    "Department",
                    Text,
                    "Department, e.g. Finance.",
                )
                .max(255),
                F::new(
                    "account",
                    "account_id",
                    "Account",
                    lookup("Account", "contacts", "The contacts working at this account."),
                    "The account the contact works at.",
                ),
                F::new(
                    "leadSource",
                    "lead_source",
                    "Lead source",
                    picklist(LEAD_SOURCES),
                    "How the contact found you.",
                ),
                F::new(
                    "doNotContact",
                    "do_not_contact",
                    "Do not contact",
                    Boolean,
                    "The contact asked not to be contacted: no calls, emails or campaigns.",
                )
                .required()
                .default("false"),
                F::new("birthdate", "birthdate", "Birthdate", Date, "Date of birth.").personal(Personal::Birthdate),
            ],
            address("mailing", "Mailing address"),
        ]
        .concat(),
    )
}
