//! Opportunity history: every change of a deal's stage, amount,
//! probability, forecast category or close date, as the database records
//! it (a trigger, in the transaction of the change, whatever made it).
//! The rows are read-only records (`OpportunityFieldChange`, listed and
//! aggregated like any object); `Opportunity.stageHistory` reads a deal's,
//! batched over every deal of a page, in the order they were made.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use async_graphql::dynamic::{Enum, EnumItem, Field, FieldValue, InputValue, Object, TypeRef};
use async_graphql::{Name, Value};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Text, Timestamptz};
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::loader::RecordLoader;
use crate::graphql::resolve::{arg, context, parent_field, resolved, timestamp};
use crate::graphql::room::Surface;
use crate::metadata::ObjectDef;
use crate::records::record_id;

/// The fields whose changes are recorded, as the history names them.
pub const FIELDS: [&str; 5] = ["STAGE", "AMOUNT", "PROBABILITY", "FORECAST_CATEGORY", "CLOSE_DATE"];

/// One recorded change of one field.
#[derive(Debug, Clone)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub changed_at: DateTime<Utc>,
    pub changed_by: Option<Uuid>,
}

/// The changes of one deal, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryOf(pub Uuid);

impl Loader<HistoryOf> for RecordLoader {
    type Value = Arc<Vec<Change>>;
    type Error = CrmError;

    async fn load(&self, keys: &[HistoryOf]) -> Result<HashMap<HistoryOf, Arc<Vec<Change>>>> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            opportunity_id: Uuid,
            #[diesel(sql_type = Text)]
            field: String,
            #[diesel(sql_type = Nullable<Text>)]
            before: Option<String>,
            #[diesel(sql_type = Nullable<Text>)]
            after: Option<String>,
            #[diesel(sql_type = Timestamptz)]
            changed_at: DateTime<Utc>,
            #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
            changed_by: Option<Uuid>,
        }
        let mut query = Sql::raw("SELECT opportunity_id, field, before, after, changed_at, changed_by FROM ");
        query
            .table(&self.schema, "opportunity_field_change")
            .push(" WHERE opportunity_id = ANY(");
        query.bind(Bind::UuidArray(keys.iter().map(|key| key.0).collect()));
        // Changes made at one instant (one update) in the fields' order.
        query.push(") AND deleted_at IS NULL ORDER BY opportunity_id, changed_at, ");
        query.push("array_position(ARRAY['STAGE', 'AMOUNT', 'PROBABILITY', 'FORECAST_CATEGORY', 'CLOSE_DATE'], field)");
        let mut conn = self.db.conn().await?;
        let rows: Vec<Row> = query.load(&mut conn).await?;
        let mut out: HashMap<HistoryOf, Vec<Change>> = keys.iter().map(|key| (*key, Vec::new())).collect();
        for row in rows {
            if let Some(changes) = out.get_mut(&HistoryOf(row.opportunity_id)) {
                changes.push(Change {
                    field: row.field,
                    before: row.before,
                    after: row.after,
                    changed_at: row.changed_at,
                    changed_by: row.changed_by,
                });
            }
        }
        Ok(out.into_iter().map(|(key, changes)| (key, Arc::new(changes))).collect())
    }
}

/// The history's types and `Opportunity.stageHistory`.
pub fn register(surface: &mut Surface) {
    let mut fields =
        Enum::new("OpportunityHistoryField").description("The fields of a deal whose changes are recorded.");
    for field in FIELDS {
        fields = fields.item(EnumItem::new(field).description(match field {
            "STAGE" => "The stage (values are stage ids).",
            "AMOUNT" => "The amount.",
            "PROBABILITY" => "The probability, in percent.",
            "FORECAST_CATEGORY" => "The forecast category.",
            _ => "The close date.",
        }));
    }
    surface.enumeration(fields);
    surface.object(
        Object::new("OpportunityChange")
            .description("One change of one field of a deal: its value before and after, when and by whom.")
            .field(
                parent_field::<Change>("field", TypeRef::named_nn("OpportunityHistoryField"), |c| {
                    Some(Value::Enum(Name::new(&c.field)))
                })
                .description("The field that changed."),
            )
            .field(
                parent_field::<Change>("before", TypeRef::named(TypeRef::STRING), |c| c.before.clone().map(Value::String))
                    .description("The value before (null: empty, or the deal was created)."),
            )
            .field(
                parent_field::<Change>("after", TypeRef::named(TypeRef::STRING), |c| c.after.clone().map(Value::String))
                    .description("The value after (amounts and dates as the API writes them; stages as ids)."),
            )
            .field(
                parent_field::<Change>("changedAt", TypeRef::named_nn("DateTime"), |c| Some(timestamp(c.changed_at)))
                    .description("When."),
            )
            .field(
                parent_field::<Change>("changedById", TypeRef::named(TypeRef::ID), |c| {
                    c.changed_by.map(|id| Value::String(id.to_string()))
                })
                .description("The user whose request made it; null for the server's own work (imports, promotions, the command line)."),
            ),
    );
    surface.record_field(stage_history_field);
}

fn stage_history_field(object: &ObjectDef) -> Option<Field> {
    if object.name != "Opportunity" {
        return None;
    }
    let field = Field::new("stageHistory", TypeRef::named_nn_list_nn("OpportunityChange"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let record = ctx.parent_value.try_downcast_ref::<crate::records::Record>()?;
            let id = record_id(record).ok_or_else(|| CrmError::internal("record without id"))?;
            let only: Option<Vec<String>> = match arg(&ctx, "fields") {
                Some(Value::List(items)) => Some(
                    items
                        .iter()
                        .filter_map(|item| match item {
                            Value::Enum(name) => Some(name.to_string()),
                            Value::String(text) => Some(text.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => None,
            };
            let changes = context.loader.load_one(HistoryOf(id)).await?.unwrap_or_default();
            let shown = changes
                .iter()
                .filter(|change| only.as_ref().is_none_or(|only| only.contains(&change.field)))
                .cloned()
                .map(FieldValue::owned_any);
            Ok(Some(FieldValue::list(shown)))
        })
    })
    .argument(
        InputValue::new("fields", TypeRef::named_nn_list("OpportunityHistoryField"))
            .description("Only changes of these fields (default: all)."),
    )
    .description(
        "Every change of the deal's stage, amount, probability, forecast category and close date, oldest first.",
    );
    Some(field)
}
