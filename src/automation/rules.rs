//! Validation and workflow rules as the server reads them: rows of their
//! tables checked against the workspace's model (conditions compiled,
//! fields, templates and users named by actions found), and loaded per
//! object for a write in one statement.

use async_graphql::Value;
use diesel::sql_types::Text;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::room::{CheckScope, Written};
use crate::metadata::{Access, FieldDef, FieldKind, Model, ObjectDef};
use crate::records::{record_id, Filter, Record};

/// The most actions one rule carries.
const MAX_ACTIONS: usize = 20;

/// A validation rule, ready to check writes.
#[derive(Debug, Clone)]
pub struct ValidationRule {
    pub id: Uuid,
    pub name: String,
    pub message: String,
    /// The field the error is about.
    pub field: Option<FieldDef>,
    pub condition: Filter,
}

/// When a workflow rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Created,
    Updated,
    CreatedOrUpdated,
    Deleted,
    StageChanged,
    ScoreCrossed,
    Schedule,
    DateOffset,
}

impl Trigger {
    fn parse(text: &str) -> Option<Trigger> {
        Some(match text {
            "CREATED" => Trigger::Created,
            "UPDATED" => Trigger::Updated,
            "CREATED_OR_UPDATED" => Trigger::CreatedOrUpdated,
            "DELETED" => Trigger::Deleted,
            "STAGE_CHANGED" => Trigger::StageChanged,
            "SCORE_CROSSED" => Trigger::ScoreCrossed,
            "SCHEDULE" => Trigger::Schedule,
            "DATE_OFFSET" => Trigger::DateOffset,
            _ => return None,
        })
    }

    /// Its identifier, as runs record it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Created => "CREATED",
            Trigger::Updated => "UPDATED",
            Trigger::CreatedOrUpdated => "CREATED_OR_UPDATED",
            Trigger::Deleted => "DELETED",
            Trigger::StageChanged => "STAGE_CHANGED",
            Trigger::ScoreCrossed => "SCORE_CROSSED",
            Trigger::Schedule => "SCHEDULE",
            Trigger::DateOffset => "DATE_OFFSET",
        }
    }
}

/// How ASSIGN_OWNER picks the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The first user of the list.
    Fixed,
    /// Each user of the list in turn.
    RoundRobin,
    /// The user of the list with the fewest open deals.
    LeastOpenDeals,
}

/// One action of a workflow rule.
#[derive(Debug, Clone)]
pub enum Action {
    /// Changes fields of the record: an update input.
    SetFields { values: Value },
    /// Makes a record (a task about the record): a create input whose text
    /// values may hold placeholders; due `due_in_minutes` from now.
    CreateRecord {
        object: String,
        values: Value,
        due_in_minutes: Option<i64>,
    },
    /// Gives the record an owner from `users` (ids or emails).
    AssignOwner { strategy: Strategy, users: Vec<String> },
    /// Renders a template into the outbox, to `to`: fields holding an
    /// address, `owner`, or addresses.
    SendEmail { template: String, to: Vec<String> },
    /// Posts the record to a webhook subscription's URL, through the
    /// webhooks' outbox.
    Webhook { subscription: String },
    /// Pauses the run.
    Wait { minutes: i64 },
}

impl Action {
    /// Its identifier, as runs record it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::SetFields { .. } => "SET_FIELDS",
            Action::CreateRecord { .. } => "CREATE_RECORD",
            Action::AssignOwner { .. } => "ASSIGN_OWNER",
            Action::SendEmail { .. } => "SEND_EMAIL",
            Action::Webhook { .. } => "WEBHOOK",
            Action::Wait { .. } => "WAIT",
        }
    }
}

/// A workflow rule, ready to fire.
#[derive(Debug, Clone)]
pub struct WorkflowRule {
    pub id: Uuid,
    pub name: String,
    pub object: String,
    pub trigger: Trigger,
    /// Updates fire only when one of these changes (none: any update).
    pub trigger_fields: Vec<FieldDef>,
    pub condition: Option<Filter>,
    pub when_becomes_true: bool,
    pub score_threshold: Option<i64>,
    pub schedule: Option<croner::Cron>,
    /// DATE_OFFSET: the field and the offset.
    pub date_field: Option<FieldDef>,
    pub offset_minutes: i64,
    pub actions: Vec<Action>,
}

/// The active rules of one object.
#[derive(Debug, Default)]
pub struct Rules {
    pub validation: Vec<ValidationRule>,
    pub workflow: Vec<WorkflowRule>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.validation.is_empty() && self.workflow.is_empty()
    }
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    row: Json,
}

/// The active validation and workflow rules of `object`, in the order
/// they were made, read in one statement. A rule that no longer fits the
/// model (a field it names is gone) is left out with a warning in the log:
/// no write is refused for it.
pub async fn active(conn: &mut AsyncPgConnection, schema: &str, model: &Model, object: &ObjectDef) -> Result<Rules> {
    let name = Bind::Text(Some(object.name.clone()));
    let mut query = Sql::raw("SELECT 'V' AS kind, to_jsonb(v) AS row, v.created_at, v.id FROM ");
    query.table(schema, "validation_rule").push(" v WHERE v.object = ");
    query
        .bind(name.clone())
        .push(" AND v.deleted_at IS NULL AND v.is_active");
    query.push(" UNION ALL SELECT 'W', to_jsonb(w), w.created_at, w.id FROM ");
    query.table(schema, "workflow_rule").push(" w WHERE w.object = ");
    query.bind(name).push(" AND w.deleted_at IS NULL AND w.is_active");
    query.push(" ORDER BY 1, 3, 4");
    let rows: Vec<Row> = query.load(conn).await?;
    let mut rules = Rules::default();
    for row in rows {
        let parsed = if row.kind == "V" {
            validation(model, object, &row.row, &[]).map(|rule| rules.validation.push(rule))
        } else {
            workflow(model, object, &row.row, &[]).map(|rule| rules.workflow.push(rule))
        };
        if let Err(err) = parsed {
            tracing::warn!(%err, rule = %text(&row.row, "name"), "a rule that no longer fits the model is skipped");
        }
    }
    Ok(rules)
}

/// [`active`], read once per transaction: a write's nested writes (the
/// fields its rules set) read the same rules.
pub async fn active_in(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
) -> Result<std::sync::Arc<Rules>> {
    let key = format!("rules:{}.{}", scope.schema, object.name);
    if let Some(rules) = scope.state.kept(&key).and_then(|kept| kept.downcast::<Rules>().ok()) {
        return Ok(rules);
    }
    let rules = std::sync::Arc::new(active(conn, scope.schema, scope.model, object).await?);
    scope.state.keep(key, rules.clone());
    Ok(rules)
}

/// The active workflow rules of every object with `trigger`, for the
/// worker (schedules, date offsets).
pub async fn with_trigger(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    trigger: &str,
) -> Result<Vec<WorkflowRule>> {
    let mut query = Sql::raw("SELECT 'W' AS kind, to_jsonb(w) AS row FROM ");
    query.table(schema, "workflow_rule").push(" w WHERE w.trigger = ");
    query
        .bind(Bind::Text(Some(trigger.to_owned())))
        .push(" AND w.deleted_at IS NULL AND w.is_active ORDER BY w.created_at, w.id");
    let rows: Vec<Row> = query.load(conn).await?;
    let mut rules = Vec::new();
    for row in rows {
        let Some(object) = model.object(&text(&row.row, "object")) else {
            continue;
        };
        match workflow(model, object, &row.row, &[]) {
            Ok(rule) => rules.push(rule),
            Err(err) => {
                tracing::warn!(%err, rule = %text(&row.row, "name"), "a rule that no longer fits the model is skipped")
            }
        }
    }
    Ok(rules)
}

/// The workflow rule `id`, active or not (a waiting run's rule may have
/// been switched off since: it then does not go on).
pub async fn workflow_by_id(
    conn: &mut AsyncPgConnection,
    schema: &str,
    model: &Model,
    id: Uuid,
) -> Result<Option<(WorkflowRule, bool)>> {
    let mut query = Sql::raw("SELECT 'W' AS kind, to_jsonb(w) AS row FROM ");
    query.table(schema, "workflow_rule").push(" w WHERE w.id = ");
    query.bind(Bind::Uuid(Some(id)));
    let rows: Vec<Row> = query.load(conn).await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let live = row.row["deleted_at"].is_null() && row.row["is_active"].as_bool().unwrap_or(false);
    let Some(object) = model.object(&text(&row.row, "object")) else {
        return Ok(None);
    };
    Ok(workflow(model, object, &row.row, &[]).ok().map(|rule| (rule, live)))
}

fn text(row: &Json, key: &str) -> String {
    row[key].as_str().unwrap_or_default().to_owned()
}

fn id_of(row: &Json) -> Result<Uuid> {
    row["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| CrmError::internal("a rule without an id"))
}

/// The object a rule names: one whose records can be written.
pub fn object<'m>(model: &'m Model, name: &str, at: &Path) -> Result<&'m ObjectDef> {
    model
        .object(name)
        .map(|o| &**o)
        .filter(|o| o.access == Access::Record)
        .ok_or_else(|| at.at("object").error(format!("{name} is not an object with records")))
}

/// A rule's condition as JSON (a stored filter), compiled.
fn condition(model: &Model, object: &ObjectDef, json: &Json, at: &Path) -> Result<Option<Filter>> {
    if json.is_null() {
        return Ok(None);
    }
    let value = Value::from_json(json.clone()).map_err(|_| at.error("the condition is not a JSON value"))?;
    input::rule_condition(model, object, &value, at)
}

/// A validation rule's row (column names, as `to_jsonb` gives it) checked
/// against the model; errors name the property under `at`.
pub fn validation(model: &Model, object: &ObjectDef, row: &Json, at: &[String]) -> Result<ValidationRule> {
    let at = Path::from_parts(at);
    let condition = condition(model, object, &row["error_condition"], &at.at("errorCondition"))?
        .ok_or_else(|| at.at("errorCondition").error("the error condition says nothing"))?;
    let field = match row["field"].as_str() {
        None => None,
        Some(name) => Some(
            field_named(object, name)
                .ok_or_else(|| at.at("field").error(format!("{} has no field {name}", object.name)))?
                .clone(),
        ),
    };
    Ok(ValidationRule {
        id: id_of(row)?,
        name: text(row, "name"),
        message: text(row, "message"),
        field,
        condition,
    })
}

/// A field by its API name or its value key (`owner`, `ownerId`).
pub fn field_named<'o>(object: &'o ObjectDef, name: &str) -> Option<&'o FieldDef> {
    object.field(name).or_else(|| object.field_by_value_key(name))
}

/// A workflow rule's row checked against the model.
pub fn workflow(model: &Model, object: &ObjectDef, row: &Json, at: &[String]) -> Result<WorkflowRule> {
    let at = Path::from_parts(at);
    let trigger_text = text(row, "trigger");
    let trigger = Trigger::parse(&trigger_text)
        .ok_or_else(|| at.at("trigger").error(format!("{trigger_text} is not a trigger")))?;
    let mut trigger_fields = Vec::new();
    if let Some(names) = row["trigger_fields"].as_array() {
        for (i, name) in names.iter().enumerate() {
            let name = name.as_str().unwrap_or_default();
            let field = field_named(object, name).ok_or_else(|| {
                at.at("triggerFields")
                    .index(i)
                    .error(format!("{} has no field {name}", object.name))
            })?;
            trigger_fields.push(field.clone());
        }
    }
    let needs = |field: &str, what: &str| at.at(field).error(format!("a {trigger_text} rule needs {what}"));
    match trigger {
        Trigger::StageChanged if object.field("stage").is_none() => {
            return Err(at.at("trigger").error(format!("{} has no stage", object.name)))
        }
        Trigger::ScoreCrossed if object.field("score").is_none() => {
            return Err(at.at("trigger").error(format!("{} has no score", object.name)))
        }
        Trigger::ScoreCrossed if row["score_threshold"].is_null() => {
            return Err(needs("scoreThreshold", "a scoreThreshold"))
        }
        _ => {}
    }
    let schedule = match (trigger, row["schedule"].as_str()) {
        (Trigger::Schedule, Some(cron)) => Some(
            cron.parse::<croner::Cron>()
                .map_err(|err| at.at("schedule").error(format!("{cron} is not a cron schedule: {err}")))?,
        ),
        (Trigger::Schedule, None) => return Err(needs("schedule", "a cron schedule")),
        _ => None,
    };
    let date_field = match (trigger, row["date_field"].as_str()) {
        (Trigger::DateOffset, Some(name)) => {
            let field = field_named(object, name)
                .filter(|f| matches!(f.kind, FieldKind::Date | FieldKind::DateTime))
                .ok_or_else(|| {
                    at.at("dateField")
                        .error(format!("{} has no date or date-time field {name}", object.name))
                })?;
            Some(field.clone())
        }
        (Trigger::DateOffset, None) => return Err(needs("dateField", "a date field")),
        _ => None,
    };
    let actions = actions(model, object, &row["actions"], &at.at("actions"))?;
    if trigger == Trigger::Deleted {
        if let Some(i) = actions
            .iter()
            .position(|a| matches!(a, Action::SetFields { .. } | Action::AssignOwner { .. }))
        {
            return Err(at
                .at("actions")
                .index(i)
                .error("a DELETED rule cannot change the deleted record; it can make records and send emails"));
        }
    }
    Ok(WorkflowRule {
        id: id_of(row)?,
        name: text(row, "name"),
        object: object.name.clone(),
        trigger,
        trigger_fields,
        condition: condition(model, object, &row["condition"], &at.at("condition"))?,
        when_becomes_true: row["when_becomes_true"].as_bool().unwrap_or(false),
        score_threshold: row["score_threshold"].as_i64(),
        schedule,
        date_field,
        offset_minutes: row["offset_minutes"].as_i64().unwrap_or(0),
        actions,
    })
}

/// The actions of a rule, each checked against the model.
fn actions(model: &Model, object: &ObjectDef, json: &Json, at: &Path) -> Result<Vec<Action>> {
    let Some(items) = json.as_array() else {
        return Err(at.error("actions is a list"));
    };
    if items.is_empty() || items.len() > MAX_ACTIONS {
        return Err(at.error(format!("a workflow rule has 1 to {MAX_ACTIONS} actions")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| action(model, object, item, &at.index(i)))
        .collect()
}

fn action(model: &Model, object: &ObjectDef, item: &Json, at: &Path) -> Result<Action> {
    let kind = item["type"].as_str().unwrap_or_default();
    let values = |key: &str| -> Result<Value> {
        match &item[key] {
            Json::Object(_) => Value::from_json(item[key].clone()).map_err(|_| at.at(key).error("not a JSON value")),
            _ => Err(at.at(key).error(format!("{key} is an object of field → value"))),
        }
    };
    match kind {
        "SET_FIELDS" => {
            let values = values("values")?;
            if input::assignments(object, &values, &at.at("values"))?.is_empty() {
                return Err(at.at("values").error("SET_FIELDS sets at least one field"));
            }
            Ok(Action::SetFields { values })
        }
        "CREATE_RECORD" => {
            let name = item["object"].as_str().unwrap_or_default();
            let target = self::object(model, name, at)?;
            let values = values("values")?;
            // Placeholders are checked as the record's fields; the values
            // as the created record's, with a stand-in for each placeholder.
            super::template::check_all(model, object, &item["values"], &at.at("values"))?;
            let sample = super::template::render_json(&item["values"], &|_| "x".to_owned());
            let sample = Value::from_json(sample).unwrap_or(Value::Null);
            input::assignments(target, &sample, &at.at("values"))?;
            let due_in_minutes = match &item["dueInMinutes"] {
                Json::Null => None,
                due => Some(
                    due.as_i64()
                        .filter(|m| m.abs() <= 525_600 * 10)
                        .ok_or_else(|| at.at("dueInMinutes").error("dueInMinutes is a number of minutes"))?,
                ),
            };
            Ok(Action::CreateRecord {
                object: target.name.clone(),
                values,
                due_in_minutes,
            })
        }
        "ASSIGN_OWNER" => {
            if object.field("owner").is_none() {
                return Err(at.error(format!("{} records have no owner", object.name)));
            }
            let strategy = match item["strategy"].as_str().unwrap_or("FIXED") {
                "FIXED" => Strategy::Fixed,
                "ROUND_ROBIN" => Strategy::RoundRobin,
                "LEAST_OPEN_DEALS" => Strategy::LeastOpenDeals,
                other => {
                    return Err(at
                        .at("strategy")
                        .error(format!("{other} is not FIXED, ROUND_ROBIN or LEAST_OPEN_DEALS")))
                }
            };
            let users = strings(item, "users", at)?;
            if users.is_empty() {
                return Err(at.at("users").error("ASSIGN_OWNER names at least one user"));
            }
            Ok(Action::AssignOwner { strategy, users })
        }
        "SEND_EMAIL" => {
            let template = item["template"].as_str().unwrap_or_default().to_owned();
            if template.is_empty() {
                return Err(at.at("template").error("SEND_EMAIL names an email template"));
            }
            let mut to = strings(item, "to", at)?;
            if to.is_empty() {
                to.push("email".to_owned());
            }
            for (i, recipient) in to.iter().enumerate() {
                let known = recipient.contains('@')
                    || recipient == "owner"
                    || field_named(object, recipient).is_some_and(|f| matches!(f.kind, FieldKind::Email));
                if !known {
                    return Err(at.at("to").index(i).error(format!(
                        "{recipient} is not an email field of {}, owner, or an address",
                        object.name
                    )));
                }
            }
            Ok(Action::SendEmail { template, to })
        }
        "WEBHOOK" => {
            let subscription = item["webhook"].as_str().unwrap_or_default().to_owned();
            if subscription.is_empty() {
                return Err(at.at("webhook").error("WEBHOOK names a webhook subscription"));
            }
            Ok(Action::Webhook { subscription })
        }
        "WAIT" => {
            let minutes = item["minutes"]
                .as_i64()
                .filter(|m| (1..=525_600).contains(m))
                .ok_or_else(|| at.at("minutes").error("WAIT lasts 1 to 525,600 minutes (a year)"))?;
            Ok(Action::Wait { minutes })
        }
        other => Err(at.at("type").error(format!(
            "{other} is not SET_FIELDS, CREATE_RECORD, ASSIGN_OWNER, SEND_EMAIL, WEBHOOK or WAIT"
        ))),
    }
}

/// A list of strings at `key` (absent: none).
fn strings(item: &Json, key: &str, at: &Path) -> Result<Vec<String>> {
    match &item[key] {
        Json::Null => Ok(Vec::new()),
        Json::String(one) => Ok(vec![one.clone()]),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| at.at(key).index(i).error("not a string"))
            })
            .collect(),
        _ => Err(at.at(key).error(format!("{key} is a list of strings"))),
    }
}

/// A rule saved through the API or a promotion must fit the model: its
/// fields, templates (of its object) and users exist. Its timers and
/// schedule follow it.
pub fn rule_written<'a>(
    conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let id = record_id(written.record).ok_or_else(|| CrmError::internal("a rule without an id"))?;
        if let Some((row, at, object)) = super::saved(scope, written.record)? {
            let rule = workflow(scope.model, object, &row, scope.at)?;
            if let Some(condition) = &rule.condition {
                if matches!(rule.trigger, Trigger::Schedule | Trigger::DateOffset) && condition.compares_writes() {
                    return Err(at.at("condition").error(
                        "a SCHEDULE or DATE_OFFSET rule fires for records at rest: its condition cannot say changed or previous",
                    ));
                }
                let mut conditions = vec![condition.clone()];
                if rule.when_becomes_true {
                    conditions.push(Filter::Previous(Box::new(condition.before_write())));
                }
                super::compiles(conn, scope.schema, object, &conditions, &at.at("condition")).await?;
            }
            check_names(conn, scope, &rule, &at).await?;
        }
        super::timers::sync(conn, scope.schema, scope.model, &[id]).await?;
        let mut reset = Sql::raw("UPDATE ");
        reset
            .table(scope.schema, "workflow_state")
            .push(" SET next_run_at = NULL, schedule = NULL WHERE rule_id = ");
        reset.bind(Bind::Uuid(Some(id)));
        reset.execute(conn).await?;
        Ok(None)
    })
}

#[derive(diesel::QueryableByName)]
struct Template {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    object: String,
}

/// The templates and users a rule's actions name exist.
async fn check_names(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    rule: &WorkflowRule,
    at: &Path,
) -> Result<()> {
    for (i, action) in rule.actions.iter().enumerate() {
        let at = at.at("actions").index(i);
        match action {
            Action::SendEmail { template, .. } => {
                let mut query = Sql::raw("SELECT name, object FROM ");
                query
                    .table(scope.schema, "email_template")
                    .push(" WHERE deleted_at IS NULL AND name = ");
                query.bind(Bind::Text(Some(template.clone())));
                let found: Vec<Template> = query.load(conn).await?;
                match found.first() {
                    None => return Err(at.at("template").error(format!("no email template named {template}"))),
                    Some(t) if t.object != rule.object => {
                        return Err(at.at("template").error(format!(
                            "{} is a template for {}, not {}",
                            t.name, t.object, rule.object
                        )))
                    }
                    Some(_) => {}
                }
            }
            Action::AssignOwner { users, .. } => {
                users_at(conn, users, &at).await?;
            }
            Action::Webhook { subscription } => {
                let found = crate::webhooks::subscription_named(conn, scope.schema, subscription).await?;
                match found {
                    None => {
                        return Err(at
                            .at("webhook")
                            .error(format!("no webhook subscription named {subscription}")))
                    }
                    Some((_, object)) if object != rule.object => {
                        return Err(at.at("webhook").error(format!(
                            "{subscription} is a subscription for {object}, not {}",
                            rule.object
                        )))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

async fn users_at(conn: &mut AsyncPgConnection, names: &[String], at: &Path) -> Result<()> {
    match super::actions::users(conn, names).await {
        Err(CrmError::BadUserInput { message, field }) => {
            let mut path = at.parts().to_vec();
            path.extend(field);
            Err(CrmError::bad_input_at(path, message))
        }
        other => other.map(drop),
    }
}
