//! Possible duplicates of the records a write would make. Until duplicate
//! rules exist, conversion asks the two questions every CRM asks: is
//! there an account of this name, a contact of this email or of this
//! first and last name (case and surrounding spaces aside)? Only records
//! the caller may see are answered.

use diesel_async::AsyncPgConnection;
use serde_json::{json, Value as Json};

use super::convert::{object, Target};
use crate::db::sql::{Bind, JsonRow, Sql};
use crate::error::Result;
use crate::graphql::resolve::RequestContext;

/// Existing records the caller may see that look like the account and
/// contact the conversion would create: accounts of the same name, contacts
/// of the same email or the same first and last name (case and spaces
/// aside). Until duplicate rules exist, these are the rules.
pub(super) async fn of_conversion(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    account: &Target,
    account_values: &serde_json::Map<String, Json>,
    contact: &Target,
    contact_values: &serde_json::Map<String, Json>,
) -> Result<Vec<Json>> {
    let mut found = Vec::new();
    let value = |values: &serde_json::Map<String, Json>, given: &Target, key: &str| -> Option<String> {
        let given = match given {
            Target::Create(given) => given.get(key),
            _ => None,
        };
        given
            .or_else(|| values.get(key))
            .and_then(Json::as_str)
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
    };
    if matches!(account, Target::Create(_)) {
        if let Some(name) = value(account_values, account, "name") {
            let matches = [("name", name)];
            found.extend(similar(conn, context, "Account", &matches, "name").await?);
        }
    }
    if matches!(contact, Target::Create(_)) {
        if let Some(email) = value(contact_values, contact, "email") {
            found.extend(similar(conn, context, "Contact", &[("email", email)], "email").await?);
        }
        if let (Some(first), Some(last)) = (
            value(contact_values, contact, "firstName"),
            value(contact_values, contact, "lastName"),
        ) {
            let matches = [("first_name", first), ("last_name", last)];
            for candidate in similar(conn, context, "Contact", &matches, "firstName,lastName").await? {
                if !found.iter().any(|f| f["id"] == candidate["id"]) {
                    found.push(candidate);
                }
            }
        }
    }
    Ok(found)
}

/// Up to ten live, visible records of `name` whose columns equal these
/// values (trimmed, case aside), as duplicate candidates.
async fn similar(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    name: &str,
    matches: &[(&str, String)],
    matched_on: &str,
) -> Result<Vec<Json>> {
    let object = object(context, name)?;
    let table = context.table(object);
    let title = if name == "Contact" {
        "concat_ws(' ', t.first_name, t.last_name)"
    } else {
        "t.name"
    };
    let mut query = Sql::raw("SELECT jsonb_build_object('object', ");
    query.bind(Bind::Text(Some(name.to_owned())));
    query
        .push("::text, 'id', t.id, 'name', ")
        .push(title)
        .push(", 'matchedOn', ");
    query.bind(Bind::Json(Some(json!(matched_on.split(',').collect::<Vec<_>>()))));
    query
        .push("::jsonb) AS row")
        .append(&table.from_as("t"))
        .push(" WHERE ")
        .append(&table.rows(false, "t"));
    for (column, value) in matches {
        query
            .push(" AND lower(btrim(")
            .column("t", column)
            .push(")) = ")
            .bind(Bind::Text(Some(value.clone())));
    }
    query.push(" ORDER BY t.created_at, t.id LIMIT 10");
    let rows: Vec<JsonRow> = query.load(conn).await?;
    Ok(rows.into_iter().map(|r| r.row).collect())
}
