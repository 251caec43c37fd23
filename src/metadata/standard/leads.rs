//! Leads and what turns them into customers: the lead itself, the field
//! mapping its conversion follows, the rules that score it and the grades
//! its score earns. The last three are configuration, made in a sandbox
//! and promoted like reports.

use super::{lookup, picklist, Object, F, LEAD_SOURCES};
use crate::metadata::{Access, FieldKind, ObjectDef, Personal};

/// The objects a conversion makes, as a field mapping names them.
pub const CONVERSION_TARGETS: &[(&str, &str)] = &[
    ("ACCOUNT", "Account"),
    ("CONTACT", "Contact"),
    ("OPPORTUNITY", "Opportunity"),
];

/// Lead: interest not qualified yet, until converted.
pub(super) fn lead() -> ObjectDef {
    use FieldKind::*;
    Object::new(
        "Lead",
        "leads",
        "lead",
        "A person or company that showed interest but is not qualified yet. `convertLead` makes it an account, \
         a contact and an opportunity; a converted lead is read-only. Its score and grade follow the workspace's \
         scoring rules and grades.",
    )
    .fields(
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
            F::new("company", "company", "Company", Text, "The company the lead works for.")
                .max(255)
                .searchable(),
            F::new("title", "title", "Title", Text, "Job title.").max(255),
            F::new("email", "email", "Email", Email, "Email address.")
                .max(320)
                .searchable(),
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
            F::new(
                "source",
                "source",
                "Lead source",
                picklist(LEAD_SOURCES),
                "How the lead found you.",
            ),
            F::new(
                "rating",
                "rating",
                "Rating",
                picklist(&[("HOT", "Hot"), ("WARM", "Warm"), ("COLD", "Cold")]),
                "How promising the lead looks.",
            ),
            F::new(
                "budget",
                "budget",
                "Budget",
                Decimal,
                "BANT: the budget the lead has for a purchase.",
            ),
            F::new(
                "authority",
                "authority",
                "Authority",
                Text,
                "BANT: who decides the purchase.",
            )
            .max(255),
            F::new(
                "need",
                "need",
                "Need",
                LongText,
                "BANT: the problem the lead needs solved.",
            )
            .max(32_000),
            F::new(
                "purchaseTimeline",
                "timeline",
                "Purchase timeline",
                Text,
                "BANT: when the lead plans to buy.",
            )
            .max(255),
        ]
        .into_iter()
        .chain(kept_by_the_server())
        .collect(),
    )
}

/// The lead fields the server keeps: its score and grade (from the scoring
/// rules) and what a conversion made of it.
fn kept_by_the_server() -> Vec<F> {
    use FieldKind::*;
    vec![
        F::new(
            "score",
            "score",
            "Score",
            Integer,
            "Lead score, from the scoring rules: kept by the server when the lead or its activities change, \
             when the rules change and every night (decay); a converted lead keeps the score it was converted with.",
        )
        .required()
        .system()
        .default("0"),
        F::new(
            "grade",
            "grade",
            "Grade",
            Text,
            "The grade the score reaches (`MQL`, `SQL` …): the one with the highest minimum score at or below it.",
        )
        .system(),
        F::new(
            "convertedAccount",
            "converted_account_id",
            "Converted account",
            lookup("Account", "convertedLeads", "The leads converted into this account."),
            "The account the lead was converted into.",
        )
        .system(),
        F::new(
            "convertedContact",
            "converted_contact_id",
            "Converted contact",
            lookup("Contact", "convertedLeads", "The leads converted into this contact."),
            "The contact the lead was converted into.",
        )
        .system(),
        F::new(
            "convertedOpportunity",
            "converted_opportunity_id",
            "Converted opportunity",
            lookup(
                "Opportunity",
                "convertedLeads",
                "The leads converted into this opportunity.",
            ),
            "The opportunity the lead was converted into.",
        )
        .system(),
        F::new(
            "convertedAt",
            "converted_at",
            "Converted at",
            DateTime,
            "When the lead was converted.",
        )
        .system(),
        F::new(
            "conversionKey",
            "conversion_key",
            "Conversion key",
            Text,
            "The idempotency key the lead was converted with: converting again with it answers the same conversion.",
        )
        .system()
        .max(255),
    ]
}

/// LeadFieldMapping: which lead field fills which field of a conversion's
/// account, contact or opportunity.
pub(super) fn lead_field_mapping() -> ObjectDef {
    use FieldKind::*;
    let mut mapping = Object::new(
        "LeadFieldMapping",
        "leadFieldMappings",
        "lead_field_mapping",
        "Which lead field fills which field of the account, contact or opportunity `convertLead` makes (an existing \
         one only where it is empty). Standard mappings come preset; custom lead fields map to custom fields of the \
         same type. Admins change them in a sandbox and promote them.",
    );
    mapping.access = Access::Configuration;
    mapping.fields(vec![
        F::new(
            "leadField",
            "lead_field",
            "Lead field",
            Text,
            "The lead's field, by its API name: `company`, `budget`, a custom field's name.",
        )
        .required()
        .max(255),
        F::new(
            "targetObject",
            "target_object",
            "Target object",
            picklist(CONVERSION_TARGETS),
            "The record it fills.",
        )
        .required(),
        F::new(
            "targetField",
            "target_field",
            "Target field",
            Text,
            "The field it fills, by its API name; at most one lead field fills each.",
        )
        .required()
        .max(255),
    ])
}

/// ScoringRule: points for what a lead is or does.
pub(super) fn scoring_rule() -> ObjectDef {
    use FieldKind::*;
    let mut rule = Object::new(
        "ScoringRule",
        "scoringRules",
        "scoring_rule",
        "Points a lead earns or loses. Without `activityType`, a lead matching `condition` gets `points`; with it, \
         each of the lead's activities of that type does (up to `maxPoints`), when the lead matches `condition`. \
         With decay, the points fade by `decayPoints` every `decayEveryDays`: an activity's from when it happened, \
         a condition's from the lead's last activity (or its creation). `previewScoringRules` shows what a rule \
         would do before it is saved.",
    );
    rule.access = Access::Configuration;
    rule.fields(vec![
        F::new(
            "name",
            "name",
            "Rule name",
            Text,
            "The rule's name, unique among live rules.",
        )
        .required()
        .max(255),
        F::new(
            "description",
            "description",
            "Description",
            LongText,
            "Why the rule gives its points.",
        )
        .max(32_000),
        F::new(
            "condition",
            "condition",
            "Condition",
            Json,
            "Which leads the rule applies to, as a lead filter: `{ \"budget\": { \"gte\": 10000 } }`; null: all.",
        ),
        F::new(
            "activityType",
            "activity_type",
            "Activity type",
            Text,
            "Points per activity of this type (`EMAIL`, `MEETING` …) instead of once per lead.",
        )
        .max(255),
        F::new(
            "points",
            "points",
            "Points",
            Integer,
            "Points given (negative: taken), -1000 to 1000.",
        )
        .required(),
        F::new(
            "maxPoints",
            "max_points",
            "Max points",
            Integer,
            "At most this many points (in absolute value) from an activity rule.",
        ),
        F::new(
            "decayPoints",
            "decay_points",
            "Decay points",
            Integer,
            "Points the rule's points lose every `decayEveryDays` (never past zero).",
        )
        .required()
        .default("0"),
        F::new(
            "decayEveryDays",
            "decay_every_days",
            "Decay every (days)",
            Integer,
            "How often the points lose `decayPoints`, in days.",
        ),
        F::new(
            "isActive",
            "is_active",
            "Active",
            Boolean,
            "Inactive rules give no points.",
        )
        .required()
        .default("true"),
    ])
}

/// LeadGrade: a name for the leads whose score reaches a threshold.
pub(super) fn lead_grade() -> ObjectDef {
    use FieldKind::*;
    let mut grade = Object::new(
        "LeadGrade",
        "leadGrades",
        "lead_grade",
        "A name for a score threshold (MQL at 50, SQL at 100 come preset): a lead's grade is the one with the highest \
         minimum its score reaches.",
    );
    grade.access = Access::Configuration;
    grade.fields(vec![
        F::new(
            "name",
            "name",
            "Grade",
            Text,
            "The grade's name, unique among live grades.",
        )
        .required()
        .max(64),
        F::new(
            "description",
            "description",
            "Description",
            LongText,
            "What the grade means.",
        )
        .max(32_000),
        F::new(
            "minScore",
            "min_score",
            "Minimum score",
            Integer,
            "The score a lead needs for the grade; unique among live grades.",
        )
        .required(),
    ])
}
