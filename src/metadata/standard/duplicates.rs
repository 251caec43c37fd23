//! DuplicateRule: when two records are the same customer, and what a
//! write that would make a second one gets. Configuration, made in a
//! sandbox and promoted like scoring rules.

use super::{picklist, Object, F};
use crate::metadata::{Access, FieldKind, ObjectDef};

/// What a rule does with a write that matches existing records.
pub const DUPLICATE_ACTIONS: &[(&str, &str)] = &[
    (
        "ALLOW",
        "Allow: findDuplicates lists the matches; writes go through silently",
    ),
    (
        "WARN",
        "Warn: the write goes through and extensions.duplicates lists the matches",
    ),
    ("BLOCK", "Block: the write is refused with DUPLICATE and the matches"),
];

/// DuplicateRule: fields that, all matching, make two records one customer.
pub(super) fn duplicate_rule() -> ObjectDef {
    use FieldKind::*;
    let mut rule = Object::new(
        "DuplicateRule",
        "duplicateRules",
        "duplicate_rule",
        "When two records of an object are the same customer: every criterion matches (a field compared EXACT, \
         NORMALIZED — case, spaces and accents aside, a phone's last ten digits, an email trimmed — by DOMAIN of an \
         email or web address, or FUZZY by trigram similarity), and what a create, update, upsert or lead \
         conversion that would make such a pair gets (ALLOW, WARN, BLOCK). Rules for one object are alternatives. \
         Presets: accounts of the same name, contacts and leads of the same email (WARN), contacts of the same name \
         (ALLOW).",
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
            "Why records matching it are one.",
        )
        .max(32_000),
        F::new(
            "object",
            "object",
            "Object",
            Text,
            "The object whose records it compares: `Contact`, `Account`, a custom object's name.",
        )
        .required()
        .max(255),
        F::new(
            "criteria",
            "criteria",
            "Criteria",
            Json,
            "What must all match: `[{ \"field\": \"email\", \"match\": \"NORMALIZED\" }, { \"field\": \"lastName\", \
             \"match\": \"FUZZY\", \"threshold\": 0.6 }]`. `match` is EXACT, NORMALIZED, DOMAIN or FUZZY; `threshold` \
             (FUZZY, 0.1 to 1, default 0.6) is the trigram similarity the values need.",
        )
        .required(),
        F::new(
            "action",
            "action",
            "Action",
            picklist(DUPLICATE_ACTIONS),
            "What a write that makes a match gets.",
        )
        .required()
        .default("WARN"),
        F::new(
            "isActive",
            "is_active",
            "Active",
            Boolean,
            "Inactive rules match nothing.",
        )
        .required()
        .default("true"),
    ])
}
