//! Duplicate rules as the server reads them: criteria checked against the
//! model, and the SQL that compares a record's values with other
//! records' (through the indexes `indexes` keeps).

use diesel::sql_types::{Jsonb, Text, Uuid as SqlUuid};
use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::{Access, FieldDef, FieldKind, Model, ObjectDef};

/// How a criterion compares a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The same value.
    Exact,
    /// The same value but for case, spaces and accents (text), the last
    /// ten digits (phones), case and spaces (emails).
    Normalized,
    /// The same domain of an email or web address.
    Domain,
    /// Text at least `threshold` similar (trigrams).
    Fuzzy,
}

impl Method {
    fn parse(text: &str) -> Option<Method> {
        Some(match text {
            "EXACT" => Method::Exact,
            "NORMALIZED" => Method::Normalized,
            "DOMAIN" => Method::Domain,
            "FUZZY" => Method::Fuzzy,
            _ => return None,
        })
    }
}

/// What a rule does with a write that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Warn,
    Block,
}

/// One criterion: a field, how it is compared.
#[derive(Debug, Clone)]
pub struct Criterion {
    pub field: FieldDef,
    pub method: Method,
    /// FUZZY: the similarity the values need, 0.1 to 1.
    pub threshold: f64,
}

/// The default similarity of a FUZZY criterion.
const DEFAULT_THRESHOLD: f64 = 0.6;

impl Criterion {
    /// The function both sides go through, if any: `crm_system.normalized_email`.
    pub fn function(&self) -> Option<&'static str> {
        match (self.method, &self.field.kind) {
            (Method::Exact, _) => None,
            (Method::Domain, _) => Some("crm_system.domain_of"),
            (Method::Fuzzy, _) => Some("crm_system.search_text"),
            (Method::Normalized, FieldKind::Email) => Some("crm_system.normalized_email"),
            (Method::Normalized, FieldKind::Phone) => Some("crm_system.phone_digits"),
            (Method::Normalized, FieldKind::Text | FieldKind::LongText | FieldKind::Url) => {
                Some("crm_system.normalized_text")
            }
            (Method::Normalized, _) => None,
        }
    }

    /// How the index and the comparison name the method: a NORMALIZED
    /// criterion on a number is an EXACT one.
    pub fn method_name(&self) -> &'static str {
        match (self.method, self.function()) {
            (Method::Exact, _) | (Method::Normalized, None) => "EXACT",
            (Method::Normalized, Some(_)) => "NORMALIZED",
            (Method::Domain, _) => "DOMAIN",
            (Method::Fuzzy, _) => "FUZZY",
        }
    }

    /// The compared expression of column `column` of alias `alias`
    /// (bare in an index).
    pub fn key(&self, alias: Option<&str>) -> Sql {
        let mut sql = Sql::new();
        if let Some(function) = self.function() {
            sql.push(function).push("(");
        }
        match alias {
            Some(alias) => sql.column(alias, &self.field.column),
            None => sql.ident(&self.field.column),
        };
        if self.function().is_some() {
            sql.push(")");
        }
        sql
    }

    /// The record's value as the other side compares it; `None` when the
    /// record has none (an empty value matches nothing).
    pub fn value(&self, record: &serde_json::Map<String, Json>) -> Option<Sql> {
        let value = record.get(&self.field.value_key()).filter(|v| !v.is_null())?;
        if value.as_str().is_some_and(|s| s.trim().is_empty()) {
            return None;
        }
        let bind = crate::records::page::bind_from_json(&self.field, value)?;
        let mut sql = Sql::new();
        match self.function() {
            Some(function) => {
                let text = match value {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                sql.push(function).push("(").bind(Bind::Text(Some(text))).push(")");
            }
            None => {
                sql.bind(bind);
            }
        }
        Some(sql)
    }

    /// `key = value` (or similar enough), for another record in alias
    /// `alias`; `None` when the record has no value to compare.
    pub fn matching(&self, alias: &str, record: &serde_json::Map<String, Json>) -> Option<Sql> {
        let value = self.value(record)?;
        let mut sql = Sql::raw("(");
        sql.append(&self.key(Some(alias)));
        if self.method == Method::Fuzzy {
            // `%` finds candidates through the trigram index (its threshold
            // is the rule's, set for the statement); the similarity decides.
            sql.push(" OPERATOR(crm_system.%) ").append(&value);
            sql.push(" AND crm_system.similarity(").append(&self.key(Some(alias)));
            sql.push(", ").append(&value).push(") >= ");
            sql.push(&format!("{:.2}", self.threshold));
        } else {
            sql.push(" = ").append(&value);
        }
        sql.push(")");
        Some(sql)
    }

    /// The two sides compared between records in aliases `a` and `b`.
    pub fn pairing(&self, a: &str, b: &str) -> Sql {
        let mut sql = Sql::raw("(");
        sql.append(&self.key(Some(a)));
        if self.method == Method::Fuzzy {
            sql.push(" OPERATOR(crm_system.%) ").append(&self.key(Some(b)));
            sql.push(" AND crm_system.similarity(").append(&self.key(Some(a)));
            sql.push(", ").append(&self.key(Some(b))).push(") >= ");
            sql.push(&format!("{:.2}", self.threshold));
        } else {
            sql.push(" = ").append(&self.key(Some(b)));
        }
        sql.push(")");
        sql
    }
}

/// A duplicate rule, checked against the model.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: Uuid,
    pub name: String,
    pub object: String,
    pub action: Action,
    pub criteria: Vec<Criterion>,
}

impl Rule {
    /// The lowest similarity its FUZZY criteria need (for `%`), if any.
    pub fn fuzzy_threshold(&self) -> Option<f64> {
        self.criteria
            .iter()
            .filter(|c| c.method == Method::Fuzzy)
            .map(|c| c.threshold)
            .reduce(f64::min)
    }

    /// Waits for other transactions writing a record with the same
    /// compared values (of the criteria that compare equal values), so two
    /// concurrent writes cannot both pass a BLOCK rule: one commits first,
    /// the other then sees it. `false` when the values leave a criterion
    /// empty (the rule does not apply).
    pub async fn lock(&self, conn: &mut AsyncPgConnection, values: &serde_json::Map<String, Json>) -> Result<bool> {
        let mut key = Sql::raw("SELECT pg_advisory_xact_lock(hashtextextended(concat_ws('|', ");
        key.bind(Bind::Text(Some(self.id.to_string())));
        for criterion in &self.criteria {
            let Some(value) = criterion.value(values) else {
                return Ok(false);
            };
            if criterion.method != Method::Fuzzy {
                key.push(", ").append(&value).push("::text");
            }
        }
        key.push("), 0))");
        key.execute(conn).await?;
        Ok(true)
    }

    /// The API names of its fields.
    pub fn fields(&self) -> Vec<String> {
        self.criteria.iter().map(|c| c.field.name.clone()).collect()
    }
}

/// `at` and then `keys`: where a rule's part sits in the request.
fn path(at: &[String], keys: &[&str]) -> Vec<String> {
    at.iter().cloned().chain(keys.iter().map(|k| (*k).to_owned())).collect()
}

/// The object a rule compares: a CRM record object of the model. `at` is
/// where the rule sits in the request.
pub fn object<'m>(model: &'m Model, name: &str, at: &[String]) -> Result<&'m ObjectDef> {
    model
        .object(name)
        .filter(|o| o.access == Access::Record && o.schema.is_none())
        .map(AsRef::as_ref)
        .ok_or_else(|| {
            CrmError::bad_input_at(
                path(at, &["object"]),
                format!("{name} is not an object whose records a rule can compare"),
            )
        })
}

/// A rule's criteria, checked against `object`: known fields, methods
/// that fit their types, thresholds in range. Errors name the criterion.
pub fn criteria(object: &ObjectDef, criteria: &Json, at: &[String]) -> Result<Vec<Criterion>> {
    let items = criteria
        .as_array()
        .filter(|items| !items.is_empty() && items.len() <= 10)
        .ok_or_else(|| {
            CrmError::bad_input_at(
                path(at, &["criteria"]),
                "criteria is a list of 1 to 10 { field, match, threshold }",
            )
        })?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let at = |key: &str| path(at, &["criteria", &index, key]);
        let name = item["field"].as_str().unwrap_or_default();
        let field = object
            .field(name)
            .or_else(|| object.field_by_value_key(name))
            .filter(|f| !matches!(f.kind, FieldKind::Id | FieldKind::Json | FieldKind::MultiPicklist(_)))
            .filter(|f| f.name != "createdAt" && f.name != "updatedAt")
            .ok_or_else(|| {
                CrmError::bad_input_at(
                    at("field"),
                    format!("{} has no field {name} a rule can compare", object.name),
                )
            })?;
        let method = Method::parse(item["match"].as_str().unwrap_or("NORMALIZED"))
            .ok_or_else(|| CrmError::bad_input_at(at("match"), "match is EXACT, NORMALIZED, DOMAIN or FUZZY"))?;
        let text = matches!(
            field.kind,
            FieldKind::Text | FieldKind::LongText | FieldKind::Email | FieldKind::Url | FieldKind::Phone
        );
        if matches!(method, Method::Domain | Method::Fuzzy) && !text {
            return Err(CrmError::bad_input_at(
                at("match"),
                format!("{} is not text: only EXACT and NORMALIZED compare it", field.name),
            ));
        }
        let threshold = match &item["threshold"] {
            Json::Null => DEFAULT_THRESHOLD,
            value => value
                .as_f64()
                .filter(|t| (0.1..=1.0).contains(t))
                .ok_or_else(|| CrmError::bad_input_at(at("threshold"), "threshold is 0.1 to 1"))?,
        };
        out.push(Criterion {
            field: field.clone(),
            method,
            threshold,
        });
    }
    Ok(out)
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    object: String,
    #[diesel(sql_type = Jsonb)]
    criteria: Json,
    #[diesel(sql_type = Text)]
    action: String,
}

/// The live, active rules of the workspace in `schema` (of one object,
/// when named), as the model reads them now; a rule whose fields are gone
/// matches nothing (and says so in the log).
pub async fn active(conn: &mut AsyncPgConnection, schema: &str, model: &Model, of: Option<&str>) -> Result<Vec<Rule>> {
    let mut query = Sql::raw("SELECT id, name, object, criteria, action FROM ");
    query
        .table(schema, "duplicate_rule")
        .push(" WHERE deleted_at IS NULL AND is_active");
    if let Some(of) = of {
        query.push(" AND object = ").bind(Bind::Text(Some(of.to_owned())));
    }
    query.push(" ORDER BY created_at, id");
    let stored: Vec<Stored> = query.load(conn).await?;
    let mut rules = Vec::new();
    for rule in stored {
        let checked = object(model, &rule.object, &[]).and_then(|o| criteria(o, &rule.criteria, &[]));
        match checked {
            Ok(criteria) => rules.push(Rule {
                id: rule.id,
                name: rule.name,
                object: rule.object,
                action: match rule.action.as_str() {
                    "BLOCK" => Action::Block,
                    "ALLOW" => Action::Allow,
                    _ => Action::Warn,
                },
                criteria,
            }),
            Err(err) => {
                tracing::warn!(rule = %rule.name, %err, "a duplicate rule that no longer fits the model matches nothing")
            }
        }
    }
    Ok(rules)
}
