//! Automation's configuration: validation rules (a condition that refuses
//! a write, with a message on a field), workflow rules (a trigger, a
//! condition and actions) and email templates. Made in a sandbox, diffed,
//! promoted and reverted like the other rules.

use super::{picklist, Object, F};
use crate::metadata::{Access, FieldKind, ObjectDef};

/// When a workflow rule fires.
pub const WORKFLOW_TRIGGERS: &[(&str, &str)] = &[
    ("CREATED", "Created: a record is created"),
    (
        "UPDATED",
        "Updated: a record changes (with triggerFields, only when one of them changes)",
    ),
    ("CREATED_OR_UPDATED", "Created or updated"),
    ("DELETED", "Deleted: a record is deleted"),
    (
        "STAGE_CHANGED",
        "Stage changed: a deal (or a record with a stage) moves to another stage",
    ),
    (
        "SCORE_CROSSED",
        "Score crossed: a lead's score rises to scoreThreshold or above from below it",
    ),
    (
        "SCHEDULE",
        "Schedule: on a cron schedule (UTC), for every record the condition holds for",
    ),
    (
        "DATE_OFFSET",
        "Date offset: offsetMinutes after (or, negative, before) the time in dateField, once per record and time",
    ),
];

/// ValidationRule: a condition that refuses a write.
pub(super) fn validation_rule() -> ObjectDef {
    use FieldKind::*;
    let mut rule = Object::new(
        "ValidationRule",
        "validationRules",
        "validation_rule",
        "A condition that refuses a write: when `errorCondition` holds for a record as a create, update, upsert, \
         batch, import or lead conversion would leave it, the write is refused with VALIDATION_FAILED, the rule's \
         message and its field's path. The condition is a filter of the object, with `changed` (a field name, or a \
         list: any of them changed) and `previous` (a filter on the values before the write) for updates. A diff or \
         dry run of a new rule counts the existing records it would refuse when next written.",
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
        F::new("description", "description", "Description", LongText, "Why the rule exists.").max(32_000),
        F::new(
            "object",
            "object",
            "Object",
            Text,
            "The object whose records it checks: `Opportunity`, a custom object's name.",
        )
        .required()
        .max(255),
        F::new(
            "errorCondition",
            "error_condition",
            "Error condition",
            Json,
            "When the record is refused, as a filter of the object: `{ \"stage\": { \"isClosed\": { \"eq\": true } }, \
             \"amount\": { \"isNull\": true } }`; `{ \"changed\": \"closeDate\", \"previous\": { \"isClosed\": { \"eq\": \
             true } } }` refuses changing a closed deal's close date.",
        )
        .required(),
        F::new(
            "message",
            "message",
            "Error message",
            Text,
            "What the writer is told: `A closed deal needs an amount`.",
        )
        .required()
        .max(1000),
        F::new(
            "field",
            "field",
            "Error field",
            Text,
            "The field the error is about (its API name): the error's path ends with it.",
        )
        .max(255),
        F::new("isActive", "is_active", "Active", Boolean, "Inactive rules refuse nothing.")
            .required()
            .default("true"),
    ])
}

/// WorkflowRule: when something happens to a record, do something.
pub(super) fn workflow_rule() -> ObjectDef {
    use FieldKind::*;
    let mut rule = Object::new(
        "WorkflowRule",
        "workflowRules",
        "workflow_rule",
        "When something happens to a record (its trigger) and the condition holds, the rule's actions run: \
         SET_FIELDS and ASSIGN_OWNER change the record, CREATE_RECORD makes a task or any record, SEND_EMAIL \
         renders a template into the outbox (sent after the write commits; captured, never sent, in a sandbox), \
         WEBHOOK posts the record to a webhook subscription's URL the same way, WAIT pauses the run for a while, after which it goes on if the condition still holds. Record triggers run \
         in the write's transaction; each rule's actions succeed or fail together without failing the write. Every \
         run is recorded (`workflowRuns`, the record's timeline).",
    );
    rule.access = Access::Configuration;
    rule.fields(
        vec![
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
                "What the rule is for.",
            )
            .max(32_000),
            F::new(
                "object",
                "object",
                "Object",
                Text,
                "The object whose records it acts on: `Lead`, a custom object's name.",
            )
            .required()
            .max(255),
            F::new(
                "trigger",
                "trigger",
                "Trigger",
                picklist(WORKFLOW_TRIGGERS),
                "When the rule fires.",
            )
            .required(),
            F::new(
                "triggerFields",
                "trigger_fields",
                "Trigger fields",
                Json,
                "UPDATED and CREATED_OR_UPDATED: fire on an update only when one of these fields changes: \
             `[\"status\", \"amount\"]`.",
            ),
            F::new(
                "condition",
                "condition",
                "Condition",
                Json,
                "A filter of the object the record must match (with `changed` and `previous`, as validation rules): \
             `{ \"amount\": { \"gt\": \"50000\" } }`. None: every record.",
            ),
            F::new(
                "whenBecomesTrue",
                "when_becomes_true",
                "Only when the condition becomes true",
                Boolean,
                "Fire on an update only when the condition did not hold before the update and holds after it.",
            )
            .required()
            .default("false"),
            F::new(
                "actions",
                "actions",
                "Actions",
                Json,
                "What the rule does, in order: `[{ \"type\": \"SET_FIELDS\", \"values\": { \"rating\": \"HOT\" } }, \
             { \"type\": \"CREATE_RECORD\", \"object\": \"Activity\", \"values\": { \"type\": \"TASK\", \"subject\": \
             \"Call {{lead.firstName}}\" }, \"dueInMinutes\": 1440 }, { \"type\": \"ASSIGN_OWNER\", \"strategy\": \
             \"ROUND_ROBIN\", \"users\": [\"ana@example.com\", \"ben@example.com\"] }, { \"type\": \"SEND_EMAIL\", \
             \"template\": \"Welcome\", \"to\": [\"email\"] }, { \"type\": \"WEBHOOK\", \"webhook\": \"Billing\" }, \
             { \"type\": \"WAIT\", \"minutes\": 2880 }]`. ASSIGN_OWNER \
             strategies: FIXED, ROUND_ROBIN, LEAST_OPEN_DEALS; SEND_EMAIL `to`: a field holding an address, `owner`, \
             or an address.",
            )
            .required(),
            F::new("isActive", "is_active", "Active", Boolean, "Inactive rules never fire.")
                .required()
                .default("true"),
        ]
        .into_iter()
        .chain(trigger_settings())
        .collect(),
    )
}

/// What the time-based and threshold triggers need.
fn trigger_settings() -> Vec<F> {
    use FieldKind::*;
    vec![
        F::new(
            "scoreThreshold",
            "score_threshold",
            "Score threshold",
            Integer,
            "SCORE_CROSSED: the score a lead rises to.",
        ),
        F::new(
            "schedule",
            "schedule",
            "Schedule",
            Text,
            "SCHEDULE: a cron expression in UTC (minute hour day month weekday): `0 9 * * MON`.",
        )
        .max(255),
        F::new(
            "dateField",
            "date_field",
            "Date field",
            Text,
            "DATE_OFFSET: the date or date-time field the rule fires relative to: `createdAt`, `closeDate`.",
        )
        .max(255),
        F::new(
            "offsetMinutes",
            "offset_minutes",
            "Offset (minutes)",
            Integer,
            "DATE_OFFSET: minutes after the date field's time (negative: before); 2880 is 48 hours.",
        ),
    ]
}

/// EmailTemplate: an email written once, filled from a record.
pub(super) fn email_template() -> ObjectDef {
    use FieldKind::*;
    let mut template = Object::new(
        "EmailTemplate",
        "emailTemplates",
        "email_template",
        "An email written once and filled from a record when a workflow rule sends it: `{{lead.firstName}}` is the \
         lead's first name, `{{lead.owner.email}}` its owner's address, `{{lead.firstName|there}}` falls back to \
         `there` when empty. Values are HTML-escaped in the HTML body; picklists show their labels.",
    );
    template.access = Access::Configuration;
    template.fields(vec![
        F::new(
            "name",
            "name",
            "Template name",
            Text,
            "The template's name, unique among live templates; SEND_EMAIL actions name it.",
        )
        .required()
        .max(255),
        F::new(
            "description",
            "description",
            "Description",
            LongText,
            "What the email is for.",
        )
        .max(32_000),
        F::new(
            "object",
            "object",
            "Object",
            Text,
            "The object whose records fill it: `Lead`; its placeholders start with the object's name \
             (`{{lead.email}}`) or `record`.",
        )
        .required()
        .max(255),
        F::new(
            "subject",
            "subject",
            "Subject",
            Text,
            "The subject line, with placeholders.",
        )
        .required()
        .max(998),
        F::new(
            "textBody",
            "text_body",
            "Text body",
            LongText,
            "The plain-text body, with placeholders.",
        ),
        F::new(
            "htmlBody",
            "html_body",
            "HTML body",
            LongText,
            "The HTML body, with placeholders (their values escaped).",
        ),
        F::new(
            "fromName",
            "from_name",
            "From name",
            Text,
            "The sender's display name; the address is the server's (--smtp-from).",
        )
        .max(255),
        F::new("replyTo", "reply_to", "Reply to", Email, "Where replies go.").max(255),
    ])
}
