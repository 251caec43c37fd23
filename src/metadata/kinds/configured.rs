//! The configuration-row kinds (see `rows`): saved reports, lead field
//! mappings, scoring rules, lead grades, duplicate rules, import mappings,
//! validation rules, workflow rules, email templates and webhook
//! subscriptions. What each state may hold is
//! checked here as its table would; what it means (fields, conditions)
//! is the rooms' check.

use serde_json::Value as Json;

use super::configuration::Table;
use super::rows::{named, Column, Property, Rows};
use super::{text, About, Kind};
use crate::error::{CrmError, Result};
use crate::metadata::standard::{CHARTS, CONVERSION_TARGETS, DUPLICATE_ACTIONS, IMPORT_MODES, WORKFLOW_TRIGGERS};

/// A saved report.
pub(super) static REPORT: Rows = Rows {
    about: &About {
        kind: Kind::Report,
        identifier: "REPORT",
        noun: "report",
        description: "A saved report.",
        key: "reports",
    },
    table: Table {
        name: "report",
        audited_as: "Report",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("filter", "filter", Column::Json),
        Property::new("groupBy", "group_by", Column::Json).or("[]"),
        Property::new("metrics", "metrics", Column::Json).or("[]"),
        Property::new("having", "group_having", Column::Json),
        Property::new("orderBy", "order_by", Column::Json).or("[]"),
        Property::new("first", "group_limit", Column::Int),
        Property::new("timeZone", "time_zone", Column::Text).or("\"UTC\""),
        Property::new("chart", "chart", Column::Text).or("\"TABLE\""),
    ],
    target: named,
    // After fields and objects (which a report names) and pipelines.
    phase: 5,
    check: report,
    removed: "dashboards that run it by id get NOT_FOUND",
    changed: "its answers change shape or figures",
};

/// A lead field mapping.
pub(super) static LEAD_FIELD_MAPPING: Rows = Rows {
    about: &About {
        kind: Kind::LeadFieldMapping,
        identifier: "LEAD_FIELD_MAPPING",
        noun: "lead field mapping",
        description: "Which lead field fills which field of a converted lead's account, contact or opportunity.",
        key: "leadFieldMappings",
    },
    table: Table {
        name: "lead_field_mapping",
        audited_as: "LeadFieldMapping",
        in_pipeline: false,
    },
    properties: &[
        Property::new("leadField", "lead_field", Column::Text),
        Property::new("targetObject", "target_object", Column::Text),
        Property::new("targetField", "target_field", Column::Text),
    ],
    target: mapping_target,
    // After the fields it names.
    phase: 5,
    check: mapping,
    removed: "conversions no longer fill that field",
    changed: "conversions fill the field from another lead field",
};

/// A scoring rule.
pub(super) static SCORING_RULE: Rows = Rows {
    about: &About {
        kind: Kind::ScoringRule,
        identifier: "SCORING_RULE",
        noun: "scoring rule",
        description: "Points a lead earns or loses.",
        key: "scoringRules",
    },
    table: Table {
        name: "scoring_rule",
        audited_as: "ScoringRule",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("condition", "condition", Column::Json),
        Property::new("activityType", "activity_type", Column::Text),
        Property::new("points", "points", Column::Int),
        Property::new("maxPoints", "max_points", Column::Int),
        Property::new("decayPoints", "decay_points", Column::Int).or("0"),
        Property::new("decayEveryDays", "decay_every_days", Column::Int),
        Property::new("isActive", "is_active", Column::Bool).or("true"),
    ],
    target: named,
    // After the fields its condition names.
    phase: 5,
    check: scoring_rule,
    removed: "leads lose its points",
    changed: "lead scores and grades change",
};

/// A lead grade.
pub(super) static LEAD_GRADE: Rows = Rows {
    about: &About {
        kind: Kind::LeadGrade,
        identifier: "LEAD_GRADE",
        noun: "lead grade",
        description: "A name for a lead score threshold.",
        key: "leadGrades",
    },
    table: Table {
        name: "lead_grade",
        audited_as: "LeadGrade",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("minScore", "min_score", Column::Int),
    ],
    target: named,
    phase: 5,
    check: lead_grade,
    removed: "leads filtered by that grade no longer match",
    changed: "leads change grade",
};

/// A duplicate rule.
pub(super) static DUPLICATE_RULE: Rows = Rows {
    about: &About {
        kind: Kind::DuplicateRule,
        identifier: "DUPLICATE_RULE",
        noun: "duplicate rule",
        description: "When two records are one customer, and what a write that makes a second one gets.",
        key: "duplicateRules",
    },
    table: Table {
        name: "duplicate_rule",
        audited_as: "DuplicateRule",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("criteria", "criteria", Column::Json),
        Property::new("action", "action", Column::Text).or("\"WARN\""),
        Property::new("isActive", "is_active", Column::Bool).or("true"),
    ],
    target: named,
    // After the fields and objects it names.
    phase: 5,
    check: duplicate_rule,
    removed: "writes that it warned of or blocked go through",
    changed: "writes are warned of or blocked differently",
};

/// A saved import mapping.
pub(super) static IMPORT_MAPPING: Rows = Rows {
    about: &About {
        kind: Kind::ImportMapping,
        identifier: "IMPORT_MAPPING",
        noun: "import mapping",
        description: "A saved way to import a kind of file into an object: columns, defaults, formats, mode.",
        key: "importMappings",
    },
    table: Table {
        name: "import_mapping",
        audited_as: "ImportMapping",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("columns", "columns", Column::Json).or("{}"),
        Property::new("defaults", "defaults", Column::Json),
        Property::new("mode", "mode", Column::Text).or("\"CREATE\""),
        Property::new("matchOn", "match_on", Column::Text),
        Property::new("dateFormat", "date_format", Column::Text),
        Property::new("decimalComma", "decimal_comma", Column::Bool).or("false"),
        Property::new("delimiter", "delimiter", Column::Text),
        Property::new("encoding", "encoding", Column::Text),
    ],
    target: named,
    // After the fields and objects it names.
    phase: 5,
    check: import_mapping,
    removed: "imports that name it are refused",
    changed: "imports that name it read files differently",
};

/// A validation rule.
pub(super) static VALIDATION_RULE: Rows = Rows {
    about: &About {
        kind: Kind::ValidationRule,
        identifier: "VALIDATION_RULE",
        noun: "validation rule",
        description: "A condition that refuses writes, with the message and field the writer is told.",
        key: "validationRules",
    },
    table: Table {
        name: "validation_rule",
        audited_as: "ValidationRule",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("errorCondition", "error_condition", Column::Json),
        Property::new("message", "message", Column::Text),
        Property::new("field", "field", Column::Text),
        Property::new("isActive", "is_active", Column::Bool).or("true"),
    ],
    target: named,
    // After the fields and objects it names.
    phase: 5,
    check: validation_rule,
    removed: "writes it refused go through",
    changed: "writes are refused differently",
};

/// A workflow rule.
pub(super) static WORKFLOW_RULE: Rows = Rows {
    about: &About {
        kind: Kind::WorkflowRule,
        identifier: "WORKFLOW_RULE",
        noun: "workflow rule",
        description: "What happens when a record is created, changed, deleted, or a time comes: its actions.",
        key: "workflowRules",
    },
    table: Table {
        name: "workflow_rule",
        audited_as: "WorkflowRule",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("trigger", "trigger", Column::Text),
        Property::new("triggerFields", "trigger_fields", Column::Json),
        Property::new("condition", "condition", Column::Json),
        Property::new("whenBecomesTrue", "when_becomes_true", Column::Bool).or("false"),
        Property::new("scoreThreshold", "score_threshold", Column::Int),
        Property::new("schedule", "schedule", Column::Text),
        Property::new("dateField", "date_field", Column::Text),
        Property::new("offsetMinutes", "offset_minutes", Column::Int),
        Property::new("actions", "actions", Column::Json).or("[]"),
        Property::new("isActive", "is_active", Column::Bool).or("true"),
    ],
    target: named,
    // After the fields, objects and email templates it names.
    phase: 6,
    check: workflow_rule,
    removed: "what it did on writes and schedules stops (emails, field updates, tasks)",
    changed: "writes and schedules do something else",
};

/// An email template.
pub(super) static EMAIL_TEMPLATE: Rows = Rows {
    about: &About {
        kind: Kind::EmailTemplate,
        identifier: "EMAIL_TEMPLATE",
        noun: "email template",
        description: "An email filled from a record's fields, sent by workflow rules.",
        key: "emailTemplates",
    },
    table: Table {
        name: "email_template",
        audited_as: "EmailTemplate",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("subject", "subject", Column::Text),
        Property::new("textBody", "text_body", Column::Text),
        Property::new("htmlBody", "html_body", Column::Text),
        Property::new("fromName", "from_name", Column::Text),
        Property::new("replyTo", "reply_to", Column::Text),
    ],
    target: named,
    // After the fields it fills from.
    phase: 5,
    check: email_template,
    removed: "workflow rules that send it fail",
    changed: "the emails sent from it change",
};

/// A webhook subscription. Its secret and disabled state are each
/// workspace's own (`webhook_state`), not metadata.
pub(super) static WEBHOOK_SUBSCRIPTION: Rows = Rows {
    about: &About {
        kind: Kind::WebhookSubscription,
        identifier: "WEBHOOK_SUBSCRIPTION",
        noun: "webhook subscription",
        description: "Where the changes of an object's records are posted, signed.",
        key: "webhookSubscriptions",
    },
    table: Table {
        name: "webhook_subscription",
        audited_as: "WebhookSubscription",
        in_pipeline: false,
    },
    properties: &[
        Property::new("name", "name", Column::Text),
        Property::new("description", "description", Column::Text),
        Property::new("url", "url", Column::Text),
        Property::new("object", "object", Column::Text),
        Property::new("events", "events", Column::Json).or("[]"),
        Property::new("fields", "fields", Column::Json),
        Property::new("isActive", "is_active", Column::Bool).or("true"),
    ],
    target: named,
    // After the fields and objects it names; before the workflow rules
    // that call it.
    phase: 5,
    check: webhook_subscription,
    removed: "its receiver gets no more events, and workflow rules that call it fail",
    changed: "its receiver gets other events or payloads",
};

/// `name` is 1 to `max` characters.
fn name_of(desired: &Json, noun: &str, max: usize) -> Result<()> {
    let name = text(desired, "name");
    if name.trim().is_empty() || name.chars().count() > max {
        return Err(CrmError::bad_input(
            &["name"],
            format!("a {noun}'s name is 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// `key`, when set, is an integer in `range`.
fn int_in(desired: &Json, key: &str, range: std::ops::RangeInclusive<i64>) -> Result<()> {
    match &desired[key] {
        Json::Null => Ok(()),
        value if value.as_i64().is_some_and(|n| range.contains(&n)) => Ok(()),
        _ => Err(CrmError::bad_input(
            &[key],
            format!("{key} is {} to {}", range.start(), range.end()),
        )),
    }
}

/// Named, one of the charts, at most 1,000 groups, a time zone's name.
fn report(desired: &Json) -> Result<()> {
    name_of(desired, "report", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "a report names its object"));
    }
    let chart = desired["chart"].as_str().unwrap_or("TABLE");
    if !CHARTS.iter().any(|(value, _)| *value == chart) {
        return Err(CrmError::bad_input(&["chart"], format!("{chart} is not a chart")));
    }
    int_in(desired, "first", 0..=1000)?;
    let zone = desired["timeZone"].as_str().unwrap_or("UTC");
    if zone.is_empty() || zone.len() > 64 {
        return Err(CrmError::bad_input(&["timeZone"], "timeZone is a time zone's name"));
    }
    Ok(())
}

/// `Contact.email`: the field a mapping fills, unique among live mappings.
fn mapping_target(state: &Json) -> String {
    let object = text(state, "targetObject");
    let object = CONVERSION_TARGETS
        .iter()
        .find(|(value, _)| *value == object)
        .map_or(object.as_str(), |(_, name)| name);
    format!("{object}.{}", text(state, "targetField"))
}

/// Both fields named, the target one of the three.
fn mapping(desired: &Json) -> Result<()> {
    for key in ["leadField", "targetField"] {
        let name = text(desired, key);
        if name.is_empty() || name.chars().count() > 255 {
            return Err(CrmError::bad_input(&[key], format!("{key} is a field's name")));
        }
    }
    let object = text(desired, "targetObject");
    if !CONVERSION_TARGETS.iter().any(|(value, _)| *value == object) {
        return Err(CrmError::bad_input(
            &["targetObject"],
            format!("{object} is not ACCOUNT, CONTACT or OPPORTUNITY"),
        ));
    }
    Ok(())
}

/// Named, points and decay in their ranges.
fn scoring_rule(desired: &Json) -> Result<()> {
    name_of(desired, "scoring rule", 255)?;
    if desired["points"].is_null() {
        return Err(CrmError::bad_input(&["points"], "a scoring rule gives points"));
    }
    int_in(desired, "points", -1000..=1000)?;
    int_in(desired, "maxPoints", 0..=100_000)?;
    int_in(desired, "decayPoints", 0..=1000)?;
    int_in(desired, "decayEveryDays", 1..=3650)
}

/// Named, for an object, with criteria and one of the actions.
fn duplicate_rule(desired: &Json) -> Result<()> {
    name_of(desired, "duplicate rule", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "a duplicate rule names its object"));
    }
    if desired["criteria"].as_array().is_none_or(Vec::is_empty) {
        return Err(CrmError::bad_input(
            &["criteria"],
            "a duplicate rule has at least one criterion",
        ));
    }
    let action = desired["action"].as_str().unwrap_or("WARN");
    if !DUPLICATE_ACTIONS.iter().any(|(value, _)| *value == action) {
        return Err(CrmError::bad_input(
            &["action"],
            format!("{action} is not ALLOW, WARN or BLOCK"),
        ));
    }
    Ok(())
}

/// Named, with a minimum score.
fn lead_grade(desired: &Json) -> Result<()> {
    name_of(desired, "lead grade", 64)?;
    if desired["minScore"].is_null() {
        return Err(CrmError::bad_input(&["minScore"], "a grade has a minimum score"));
    }
    int_in(desired, "minScore", -100_000..=100_000)
}

/// Named, for an object, columns an object of header → field name or null,
/// one of the modes.
fn import_mapping(desired: &Json) -> Result<()> {
    name_of(desired, "import mapping", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "an import mapping names its object"));
    }
    let columns_ok = desired["columns"]
        .as_object()
        .is_some_and(|columns| columns.values().all(|field| field.is_string() || field.is_null()));
    if !columns_ok {
        return Err(CrmError::bad_input(
            &["columns"],
            "columns is an object of header → a field's API name (or null)",
        ));
    }
    if !(desired["defaults"].is_null() || desired["defaults"].is_object()) {
        return Err(CrmError::bad_input(
            &["defaults"],
            "defaults is an object of field → value",
        ));
    }
    let mode = desired["mode"].as_str().unwrap_or("CREATE");
    if !IMPORT_MODES.iter().any(|(value, _)| *value == mode) {
        return Err(CrmError::bad_input(
            &["mode"],
            format!("{mode} is not CREATE, UPSERT or UPDATE"),
        ));
    }
    Ok(())
}

/// Named, for an object, with a condition and a message.
fn validation_rule(desired: &Json) -> Result<()> {
    name_of(desired, "validation rule", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "a validation rule names its object"));
    }
    if !desired["errorCondition"].is_object() {
        return Err(CrmError::bad_input(
            &["errorCondition"],
            "errorCondition is a filter of the object",
        ));
    }
    let message = text(desired, "message");
    if message.trim().is_empty() || message.chars().count() > 1000 {
        return Err(CrmError::bad_input(
            &["message"],
            "a validation rule's message is 1 to 1000 characters",
        ));
    }
    Ok(())
}

/// Named, for an object, one of the triggers, actions a list.
fn workflow_rule(desired: &Json) -> Result<()> {
    name_of(desired, "workflow rule", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "a workflow rule names its object"));
    }
    let trigger = text(desired, "trigger");
    if !WORKFLOW_TRIGGERS.iter().any(|(value, _)| *value == trigger) {
        return Err(CrmError::bad_input(
            &["trigger"],
            format!("{trigger} is not a workflow trigger"),
        ));
    }
    if !(desired["condition"].is_null() || desired["condition"].is_object()) {
        return Err(CrmError::bad_input(
            &["condition"],
            "condition is a filter of the object",
        ));
    }
    if !(desired["actions"].is_null() || desired["actions"].is_array()) {
        return Err(CrmError::bad_input(&["actions"], "actions is a list"));
    }
    Ok(())
}

/// Named, for an object, with a subject and a body.
fn email_template(desired: &Json) -> Result<()> {
    name_of(desired, "email template", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(&["object"], "an email template names its object"));
    }
    if text(desired, "subject").trim().is_empty() {
        return Err(CrmError::bad_input(&["subject"], "an email template has a subject"));
    }
    if desired["textBody"].is_null() && desired["htmlBody"].is_null() {
        return Err(CrmError::bad_input(
            &["textBody"],
            "an email template has a text or an HTML body",
        ));
    }
    Ok(())
}

/// Named, for an object, with a URL, lists of events and fields (what
/// they hold is checked against the model when saved: `webhooks`).
fn webhook_subscription(desired: &Json) -> Result<()> {
    name_of(desired, "webhook subscription", 255)?;
    if text(desired, "object").is_empty() {
        return Err(CrmError::bad_input(
            &["object"],
            "a webhook subscription names its object",
        ));
    }
    if text(desired, "url").is_empty() {
        return Err(CrmError::bad_input(&["url"], "a webhook subscription has a URL"));
    }
    for key in ["events", "fields"] {
        if !(desired[key].is_null() || desired[key].is_array()) {
            return Err(CrmError::bad_input(&[key], format!("{key} is a list")));
        }
    }
    Ok(())
}
