//! The standard objects, described as metadata. Their tables are made by
//! `migrations/workspace`; a test checks the two agree.

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

    fn fields(self, fields: Vec<F>) -> ObjectDef {
        let mut all = system_fields(&self.name.to_lowercase());
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

const FORECAST_CATEGORIES: &[(&str, &str)] = &[
    ("PIPELINE", "Pipeline: early, uncertain deals"),
    ("BEST_CASE", "Best case: could close this period"),
    ("COMMIT", "Commit: expected to close this period"),
    ("CLOSED", "Closed: won"),
    ("OMITTED", "Omitted: lost or left out of the forecast"),
];

/// The standard objects: Account, Contact, Lead, Pipeline, Stage,
/// Opportunity, ContactRole, Activity and User.
pub fn objects() -> Vec<ObjectDef> {
    use FieldKind::*;
    let account = Object::new(
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
                    .max(255),
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
    );
    let contact = Object::new(
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
                    .personal(Personal::GivenName),
                F::new("lastName", "last_name", "Last name", Text, "Family name.")
                    .required()
                    .max(255)
                    .personal(Personal::FamilyName),
                F::new("email", "email", "Email", Email, "Work email address.").max(320),
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
    );
    let lead = Object::new(
        "Lead",
        "leads",
        "lead",
        "A person or company that showed interest but is not qualified yet; converting it makes an account, a contact and an opportunity.",
    )
    .fields(vec![
        F::new("firstName", "first_name", "First name", Text, "Given name.")
                    .max(255)
                    .personal(Personal::GivenName),
        F::new("lastName", "last_name", "Last name", Text, "Family name.")
            .required()
            .max(255)
            .personal(Personal::FamilyName),
        F::new("company", "company", "Company", Text, "The company the lead works for.").max(255),
        F::new("title", "title", "Title", Text, "Job title.").max(255),
        F::new("email", "email", "Email", Email, "Email address.").max(320),
        F::new("phone", "phone", "Phone", Phone, "Phone number.").max(64),
        F::new(
            "status",
            "status",
            "Status",
            picklist(&[
                ("NEW", "New"),
                ("WORKING", "Working"),
                ("NURTURING", "Nurturing"),
                ("QUALIFIED", "Qualified"),
                ("UNQUALIFIED", "Unqualified"),
                ("CONVERTED", "Converted"),
            ]),
            "Where the lead is in qualification.",
        )
        .required()
        .default("NEW"),
        F::new("source", "source", "Lead source", picklist(LEAD_SOURCES), "How the lead found you."),
        F::new(
            "rating",
            "rating",
            "Rating",
            picklist(&[("HOT", "Hot"), ("WARM", "Warm"), ("COLD", "Cold")]),
            "How promising the lead looks.",
        ),
        F::new("budget", "budget", "Budget", Decimal, "BANT: the budget the lead has for a purchase."),
        F::new("authority", "authority", "Authority", Text, "BANT: who decides the purchase.").max(255),
        F::new("need", "need", "Need", LongText, "BANT: the problem the lead needs solved.").max(32_000),
        F::new("timeline", "timeline", "Timeline", Text, "BANT: when the lead plans to buy.").max(255),
        F::new("score", "score", "Score", Integer, "Lead score: higher is more promising."),
        F::new(
            "convertedAccount",
            "converted_account_id",
            "Converted account",
            lookup("Account", "convertedLeads", "The leads converted into this account."),
            "The account the lead was converted into.",
        ),
        F::new(
            "convertedContact",
            "converted_contact_id",
            "Converted contact",
            lookup("Contact", "convertedLeads", "The leads converted into this contact."),
            "The contact the lead was converted into.",
        ),
        F::new(
            "convertedOpportunity",
            "converted_opportunity_id",
            "Converted opportunity",
            lookup("Opportunity", "convertedLeads", "The leads converted into this opportunity."),
            "The opportunity the lead was converted into.",
        ),
        F::new("convertedAt", "converted_at", "Converted at", DateTime, "When the lead was converted."),
    ]);
    let mut pipeline = Object::new(
        "Pipeline",
        "pipelines",
        "pipeline",
        "A sales process: an ordered list of stages deals move through. There can be many (new business, renewals …).",
    );
    pipeline.access = Access::Configuration;
    let pipeline = pipeline.fields(vec![
        F::new("name", "name", "Pipeline name", Text, "The pipeline's name, unique.")
            .required()
            .max(255),
        F::new(
            "description",
            "description",
            "Description",
            LongText,
            "What the pipeline is for.",
        )
        .max(32_000),
        F::new(
            "isDefault",
            "is_default",
            "Default",
            Boolean,
            "New opportunities without a pipeline go to the default one; there is at most one.",
        )
        .required()
        .default("false"),
    ]);
    let mut stage = Object::new(
        "Stage",
        "stages",
        "stage",
        "A step of a pipeline, with the win probability and forecast category deals in it get.",
    );
    stage.default_order = "position";
    stage.access = Access::Configuration;
    let stage = stage.fields(vec![
        F::new(
            "pipeline",
            "pipeline_id",
            "Pipeline",
            lookup("Pipeline", "stages", "The stages of this pipeline."),
            "The pipeline this stage belongs to; a stage cannot move to another pipeline.",
        )
        .required(),
        F::new(
            "name",
            "name",
            "Stage name",
            Text,
            "The stage's name, unique within its pipeline.",
        )
        .required()
        .max(255),
        F::new(
            "position",
            "position",
            "Position",
            Integer,
            "Order of the stage in its pipeline, from 1.",
        )
        .required(),
        F::new(
            "probability",
            "probability",
            "Probability (%)",
            Integer,
            "Chance to win a deal in this stage, 0–100: the default probability of its opportunities.",
        )
        .required(),
        F::new(
            "forecastCategory",
            "forecast_category",
            "Forecast category",
            picklist(FORECAST_CATEGORIES),
            "How deals in this stage count in the forecast.",
        )
        .required(),
        F::new(
            "isClosed",
            "is_closed",
            "Closed",
            Boolean,
            "Deals in this stage are finished (won or lost).",
        )
        .required()
        .default("false"),
        F::new(
            "isWon",
            "is_won",
            "Won",
            Boolean,
            "Deals in this stage are won (a won stage is closed).",
        )
        .required()
        .default("false"),
    ]);
    let opportunity = Object::new(
        "Opportunity",
        "opportunities",
        "opportunity",
        "A potential deal: revenue you expect to win from an account, moving through the stages of a pipeline.",
    )
    .fields(vec![
        F::new("name", "name", "Opportunity name", Text, "A short name for the deal.").required().max(255),
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
            lookup("Contact", "primaryOpportunities", "The deals where this contact is the primary contact."),
            "The main person you deal with on this opportunity.",
        ),
        F::new(
            "pipeline",
            "pipeline_id",
            "Pipeline",
            lookup("Pipeline", "opportunities", "The deals in this pipeline."),
            "The pipeline the deal moves through.",
        )
        .required()
        .default("the stage's pipeline, else the default pipeline"),
        F::new(
            "stage",
            "stage_id",
            "Stage",
            lookup("Stage", "opportunities", "The deals in this stage."),
            "The stage the deal is in; it must belong to the deal's pipeline.",
        )
        .required()
        .default("the pipeline's first stage"),
        F::new("amount", "amount", "Amount", Decimal, "Expected deal value, in `currency`."),
        F::new("currency", "currency", "Currency", Text, "ISO 4217 code of the amount, e.g. EUR; USD when not given.")
            .required()
            .default("USD")
            .max(3),
        F::new("closeDate", "close_date", "Close date", Date, "When the deal is expected to close."),
        F::new(
            "probability",
            "probability",
            "Probability (%)",
            Integer,
            "Chance to win, 0–100. Defaults to the stage's probability and follows the stage when it changes, unless set.",
        )
        .required()
        .default("the stage's probability"),
        F::new(
            "expectedRevenue",
            "expected_revenue",
            "Expected revenue",
            Decimal,
            "amount × probability / 100: what the deal is worth in a weighted forecast.",
        )
        .system(),
        F::new(
            "forecastCategory",
            "forecast_category",
            "Forecast category",
            picklist(FORECAST_CATEGORIES),
            "How the deal counts in the forecast. Defaults to the stage's category.",
        )
        .required()
        .default("the stage's forecast category"),
        F::new("nextStep", "next_step", "Next step", Text, "What happens next to move the deal forward.").max(255),
        F::new("leadSource", "lead_source", "Lead source", picklist(LEAD_SOURCES), "Where the deal came from."),
        F::new("isClosed", "is_closed", "Closed", Boolean, "The deal is finished: its stage is a closed one.")
            .required()
            .system(),
        F::new("isWon", "is_won", "Won", Boolean, "The deal is won: its stage is a won one.").required().system(),
    ]);
    let contact_role = Object::new(
        "ContactRole",
        "contactRoles",
        "contact_role",
        "The part a contact plays in a deal: decision maker, economic buyer, champion …",
    )
    .fields(vec![
        F::new(
            "opportunity",
            "opportunity_id",
            "Opportunity",
            lookup(
                "Opportunity",
                "contactRoles",
                "The people involved in this deal and their roles.",
            ),
            "The deal.",
        )
        .required(),
        F::new(
            "contact",
            "contact_id",
            "Contact",
            lookup(
                "Contact",
                "opportunityRoles",
                "The deals this contact is involved in, and the role they play.",
            ),
            "The person.",
        )
        .required(),
        F::new(
            "role",
            "role",
            "Role",
            picklist(&[
                ("DECISION_MAKER", "Decision maker"),
                ("ECONOMIC_BUYER", "Economic buyer"),
                ("TECHNICAL_BUYER", "Technical buyer"),
                ("INFLUENCER", "Influencer"),
                ("CHAMPION", "Champion"),
                ("OTHER", "Other"),
            ]),
            "The part the contact plays.",
        )
        .required(),
        F::new(
            "isPrimary",
            "is_primary",
            "Primary",
            Boolean,
            "The main contact of the deal; at most one per deal.",
        )
        .required()
        .default("false"),
    ]);
    let activity = Object::new(
        "Activity",
        "activities",
        "activity",
        "A call, email, meeting, task or note, linked to any of an account, a contact, a lead and an opportunity.",
    )
    .fields(vec![
        F::new(
            "type",
            "type",
            "Type",
            picklist(&[
                ("CALL", "Call"),
                ("EMAIL", "Email"),
                ("MEETING", "Meeting"),
                ("TASK", "Task"),
                ("NOTE", "Note"),
            ]),
            "What kind of activity this is.",
        )
        .required(),
        F::new("subject", "subject", "Subject", Text, "A one-line summary.")
            .required()
            .max(255)
            .personal(Personal::FreeText),
        F::new("body", "body", "Body", LongText, "Details, notes or the email text.").max(100_000),
        F::new(
            "dueAt",
            "due_at",
            "Due at",
            DateTime,
            "When the activity is due or scheduled.",
        ),
        F::new(
            "completedAt",
            "completed_at",
            "Completed at",
            DateTime,
            "When the activity was done.",
        ),
        F::new(
            "status",
            "status",
            "Status",
            picklist(&[
                ("OPEN", "Open"),
                ("IN_PROGRESS", "In progress"),
                ("COMPLETED", "Completed"),
                ("CANCELLED", "Cancelled"),
            ]),
            "Where the activity stands.",
        )
        .required()
        .default("OPEN"),
        F::new(
            "priority",
            "priority",
            "Priority",
            picklist(&[("LOW", "Low"), ("NORMAL", "Normal"), ("HIGH", "High")]),
            "How urgent the activity is.",
        )
        .required()
        .default("NORMAL"),
        F::new(
            "account",
            "account_id",
            "Account",
            lookup(
                "Account",
                "activities",
                "Calls, emails, meetings, tasks and notes about this account.",
            ),
            "The account the activity is about.",
        ),
        F::new(
            "contact",
            "contact_id",
            "Contact",
            lookup(
                "Contact",
                "activities",
                "Calls, emails, meetings, tasks and notes with this contact.",
            ),
            "The contact the activity is with.",
        ),
        F::new(
            "lead",
            "lead_id",
            "Lead",
            lookup(
                "Lead",
                "activities",
                "Calls, emails, meetings, tasks and notes with this lead.",
            ),
            "The lead the activity is with.",
        ),
        F::new(
            "opportunity",
            "opportunity_id",
            "Opportunity",
            lookup(
                "Opportunity",
                "activities",
                "Calls, emails, meetings, tasks and notes about this deal.",
            ),
            "The deal the activity is about.",
        ),
    ]);
    let mut user = Object::new(
        "User",
        "users",
        "users",
        "A person who works in the CRM: owns records, logs activities.",
    );
    user.owned = false;
    user.access = Access::Users;
    let mut user = user.fields(vec![
        F::new("name", "name", "Name", Text, "Full name.").required().max(255),
        F::new("email", "email", "Email", Email, "Sign-in email address, unique.")
            .required()
            .max(320),
        F::new(
            "role",
            "role",
            "Role",
            picklist(&[
                ("ADMIN", "Admin: everything, including customization and users"),
                ("SALES", "Sales: works accounts, contacts, leads and deals"),
                ("SUPPORT", "Support: works contacts and activities"),
                ("READ_ONLY", "Read-only: reads everything, changes nothing"),
            ]),
            "What the user may do.",
        )
        .required()
        .default("SALES"),
        F::new(
            "active",
            "active",
            "Active",
            Boolean,
            "Deactivated users keep their records but cannot sign in.",
        )
        .required()
        .default("true"),
    ]);
    user.schema = Some(crate::db::migrate::SYSTEM_SCHEMA.into());
    vec![
        account,
        contact,
        lead,
        pipeline,
        stage,
        opportunity,
        contact_role,
        activity,
        user,
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
