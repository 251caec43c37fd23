//! Report: a saved aggregate of one object's records, kept as
//! configuration so admins build it in a sandbox and promote it.

use super::{picklist, Object, F};
use crate::metadata::{Access, FieldKind, ObjectDef};

/// The ways a report asks to be drawn.
pub const CHARTS: &[(&str, &str)] = &[
    ("TABLE", "A table of the groups"),
    ("BAR", "Bars, one per group"),
    ("LINE", "A line over the first (date) key"),
    ("PIE", "Slices of a whole"),
    ("FUNNEL", "Stages narrowing down"),
    ("NUMBER", "One number (no group keys)"),
];

/// Report: what `runReport` answers, and how to draw it.
pub(super) fn report() -> ObjectDef {
    use FieldKind::*;
    let mut report = Object::new(
        "Report",
        "reports",
        "report",
        "A saved report: an aggregate of one object's records (filter, group keys, metrics, conditions on groups, \
         order) and a chart hint. `runReport(id)` answers it. Admins make them, in a sandbox, and promote them.",
    );
    report.access = Access::Configuration;
    let mut fields = vec![
        F::new(
            "name",
            "name",
            "Report name",
            Text,
            "The report's name, unique among live reports.",
        )
        .required()
        .max(255),
        F::new(
            "description",
            "description",
            "Description",
            LongText,
            "What the report answers.",
        )
        .max(32_000),
        F::new(
            "object",
            "object",
            "Object",
            Text,
            "The object reported on, by its type name: `Opportunity`, or a custom object's.",
        )
        .required()
        .max(255),
        F::new(
            "first",
            "group_limit",
            "Groups",
            Integer,
            "At most this many groups, 0–1000 (default 100).",
        ),
        F::new(
            "timeZone",
            "time_zone",
            "Time zone",
            Text,
            "The IANA time zone date-time keys are bucketed in.",
        )
        .required()
        .default("UTC")
        .max(64),
        F::new(
            "chart",
            "chart",
            "Chart",
            picklist(CHARTS),
            "How a frontend should draw it.",
        )
        .required()
        .default("TABLE"),
    ];
    fields.splice(3..3, aggregate_arguments());
    report.fields(fields)
}

/// What a report passes its object's aggregate: the arguments of
/// `<plural>Aggregate`, as JSON.
fn aggregate_arguments() -> Vec<F> {
    use FieldKind::*;
    vec![
        F::new(
            "filter",
            "filter",
            "Filter",
            Json,
            "Which records count, as the object's list filter: `{ \"isClosed\": { \"eq\": false } }`.",
        ),
        F::new(
            "groupBy",
            "group_by",
            "Group by",
            Json,
            "Up to 3 keys as `<plural>Aggregate(groupBy:)` takes them: \
             `[{ \"field\": \"CLOSE_DATE\", \"granularity\": \"QUARTER\" }, { \"owner\": \"NAME\" }]`.",
        )
        .required()
        .default("[]"),
        F::new(
            "metrics",
            "metrics",
            "Metrics",
            Json,
            "What each group adds up to besides its count: `[{ \"metric\": \"SUM\", \"field\": \"AMOUNT\" }]` \
             (SUM, AVG, MIN, MAX, COUNT_DISTINCT).",
        )
        .required()
        .default("[]"),
        F::new(
            "having",
            "group_having",
            "Having",
            Json,
            "Conditions on groups, as `<plural>Aggregate(having:)` takes them.",
        ),
        F::new(
            "orderBy",
            "order_by",
            "Order by",
            Json,
            "Group orders, as `<plural>Aggregate(orderBy:)` takes them.",
        )
        .required()
        .default("[]"),
    ]
}
