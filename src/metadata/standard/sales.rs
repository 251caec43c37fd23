//! The sales process: Pipeline, Stage, Opportunity and ContactRole,
//! the objects a deal is made of from first interest to close.

use super::{lookup, one_way, picklist, Object, F, LEAD_SOURCES};
use crate::metadata::{Access, FieldKind, ObjectDef};

const FORECAST_CATEGORIES: &[(&str, &str)] = &[
    ("PIPELINE", "Pipeline: early, uncertain deals"),
    ("BEST_CASE", "Best case: could close this period"),
    ("COMMIT", "Commit: expected to close this period"),
    ("CLOSED", "Closed: won"),
    ("OMITTED", "Omitted: lost or left out of the forecast"),
];

/// Pipeline: a sales process, configuration rather than records.
pub(super) fn pipeline() -> ObjectDef {
    use FieldKind::*;
    let mut pipeline = Object::new(
        "Pipeline",
        "pipelines",
        "pipeline",
        "A sales process: an ordered list of stages deals move through. There can be many (new business, renewals …).",
    );
    pipeline.access = Access::Configuration;
    pipeline.fields(vec![
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
        F::new(
            "staleAfterDays",
            "stale_after_days",
            "Stale after (days)",
            Integer,
            "An open deal with no stage change and no activity for this many days is stale (1–3650).",
        )
        .required()
        .default("30"),
    ])
}

/// Stage: a step of a pipeline, with its probability and forecast category.
pub(super) fn stage() -> ObjectDef {
    use FieldKind::*;
    let mut stage = Object::new(
        "Stage",
        "stages",
        "stage",
        "A step of a pipeline, with the win probability and forecast category deals in it get.",
    );
    stage.default_order = "position";
    stage.access = Access::Configuration;
    stage.fields(vec![
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
    ])
}

/// Opportunity: a deal moving through a pipeline.
pub(super) fn opportunity() -> ObjectDef {
    use FieldKind::*;
    Object::new(
        "Opportunity",
        "opportunities",
        "opportunity",
        "A potential deal: revenue you expect to win from an account, moving through the stages of a pipeline.",
    )
    .fields(vec![
        F::new("name", "name", "Opportunity name", Text, "A short name for the deal.")
            .required()
            .max(255)
            .searchable(),
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
        F::new(
            "staleAt",
            "stale_at",
            "Stale at",
            DateTime,
            "When the open deal goes (or went) stale: its last stage change or activity plus its pipeline's \
             `staleAfterDays`. Null once closed. Filter with `isStale`.",
        )
        .system(),
    ])
}

/// The fields of a deal whose changes are recorded, as
/// `OpportunityFieldChange.field` names them.
pub const TRACKED_FIELDS: &[(&str, &str)] = &[
    ("STAGE", "The stage (values are stage ids)"),
    ("AMOUNT", "The amount"),
    ("PROBABILITY", "The probability, in percent"),
    ("FORECAST_CATEGORY", "The forecast category"),
    ("CLOSE_DATE", "The close date"),
];

/// OpportunityFieldChange: one change of a deal's stage, amount,
/// probability, forecast category or close date, kept by the server.
pub(super) fn opportunity_field_change() -> ObjectDef {
    use FieldKind::*;
    Object::history(
        "OpportunityFieldChange",
        "opportunityFieldChanges",
        "opportunity_field_change",
        "One change of a deal's stage, amount, probability, forecast category or close date: the value before and \
         after, when and who. Recorded by the server whatever made the change; read-only.",
        "changedAt",
    )
    .fields(vec![
        F::new(
            "opportunity",
            "opportunity_id",
            "Opportunity",
            lookup(
                "Opportunity",
                "fieldChanges",
                "The changes of the deal's tracked fields, oldest first.",
            ),
            "The deal.",
        )
        .required(),
        F::new(
            "field",
            "field",
            "Field",
            picklist(TRACKED_FIELDS),
            "The field that changed.",
        )
        .required(),
        F::new(
            "before",
            "before",
            "Before",
            Text,
            "The value before (null: empty, or the deal was created).",
        ),
        F::new(
            "after",
            "after",
            "After",
            Text,
            "The value after (amounts and dates as the API writes them; stages as ids).",
        ),
        F::new("changedAt", "changed_at", "Changed at", DateTime, "When it changed.").required(),
        F::new(
            "changedBy",
            "changed_by",
            "Changed by",
            one_way("User"),
            "The user whose request made it; null for the server's own work.",
        ),
    ])
}

/// StageEntry: a deal's stay in a stage, kept by the server.
pub(super) fn stage_entry() -> ObjectDef {
    use FieldKind::*;
    Object::history(
        "StageEntry",
        "stageEntries",
        "opportunity_stage_entry",
        "A deal's stay in a stage: when it entered and left, for which stage, and the days it spent there. \
         Recorded by the server whatever changed the stage; read-only.",
        "enteredAt",
    )
    .fields(vec![
        F::new(
            "opportunity",
            "opportunity_id",
            "Opportunity",
            lookup(
                "Opportunity",
                "stageEntries",
                "The deal's stays in stages, oldest first.",
            ),
            "The deal.",
        )
        .required(),
        F::new(
            "pipeline",
            "pipeline_id",
            "Pipeline",
            one_way("Pipeline"),
            "The stage's pipeline.",
        )
        .required(),
        F::new(
            "stage",
            "stage_id",
            "Stage",
            one_way("Stage"),
            "The stage the deal entered.",
        )
        .required(),
        F::new(
            "enteredAt",
            "entered_at",
            "Entered at",
            DateTime,
            "When the deal entered the stage.",
        )
        .required(),
        F::new(
            "leftAt",
            "left_at",
            "Left at",
            DateTime,
            "When it left; null while it is there.",
        ),
        F::new(
            "nextStage",
            "next_stage_id",
            "Next stage",
            one_way("Stage"),
            "The stage it went to.",
        ),
        F::new(
            "daysInStage",
            "days_in_stage",
            "Days in stage",
            Decimal,
            "Days from entering to leaving, to the hundredth; null while it is there.",
        ),
        F::new(
            "enteredBy",
            "entered_by",
            "Entered by",
            one_way("User"),
            "Who moved the deal into the stage.",
        ),
    ])
}

/// ContactRole: the part a contact plays in a deal.
pub(super) fn contact_role() -> ObjectDef {
    use FieldKind::*;
    Object::new(
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
    ])
}
