//! Possible duplicates of the account and contact a conversion would
//! create, by the workspace's duplicate rules (of every action: a
//! conversion asks before it creates). Only records the caller may see
//! are answered.

use diesel_async::AsyncPgConnection;
use serde_json::Value as Json;

use super::convert::{object, Target};
use crate::error::Result;
use crate::graphql::resolve::RequestContext;

/// Existing records the caller may see that the rules of `Account` and
/// `Contact` match with the account and contact the conversion would
/// create (its mapped values, with what the request gives over them).
pub(super) async fn of_conversion(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    account: &Target,
    account_values: &serde_json::Map<String, Json>,
    contact: &Target,
    contact_values: &serde_json::Map<String, Json>,
) -> Result<Vec<Json>> {
    let mut found: Vec<Json> = Vec::new();
    for (name, target, mapped) in [
        ("Account", account, account_values),
        ("Contact", contact, contact_values),
    ] {
        let Target::Create(given) = target else {
            continue;
        };
        let mut values = mapped.clone();
        values.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        let scope = context.check_scope(&[]);
        let matches = crate::duplicates::check(conn, &scope, object(context, name)?, &values, None, &|_| true).await?;
        for candidate in matches.into_iter().flat_map(|m| m.visible) {
            if !found.iter().any(|f| f["id"] == candidate["id"]) {
                found.push(candidate);
            }
        }
    }
    Ok(found)
}
