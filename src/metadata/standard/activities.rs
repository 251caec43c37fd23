//! Activity: the calls, emails, meetings, tasks and notes that record the
//! work done on accounts, contacts, leads and deals.

use super::{lookup, picklist, Object, F};
use crate::metadata::{FieldKind, ObjectDef, Personal};

/// Activity: a call, email, meeting, task or note about records.
// A table of field definitions, one entry per field: long, and clearest whole.
#[allow(clippy::too_many_lines)]
pub(super) fn activity() -> ObjectDef {
    use FieldKind::*;
    Object::new(
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
    ])
}
