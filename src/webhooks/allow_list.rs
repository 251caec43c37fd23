//! What a sandbox may really reach — the URLs of its webhooks, the
//! recipient domains of its emails (automation's) — kept on its workspace
//! row: read, and set in an audited transaction.

use async_graphql::dynamic::{Field, FieldValue, InputValue, TypeRef};
use async_graphql::Value;
use serde_json::Value as Json;

use crate::access::{self, AdminPermission};
use crate::audit::{self, Action};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::resolve::{arg, context, resolved, text_arg, RequestContext};

/// One of a sandbox's allow-lists.
#[derive(Debug, Clone, Copy)]
pub enum AllowList {
    EmailDomains,
    WebhookUrls,
}

impl AllowList {
    fn column(self) -> &'static str {
        match self {
            AllowList::EmailDomains => "email_domains",
            AllowList::WebhookUrls => "webhook_urls",
        }
    }

    /// Its name in the audit log: `qa.emailDomains`.
    fn field(self) -> &'static str {
        match self {
            AllowList::EmailDomains => "emailDomains",
            AllowList::WebhookUrls => "webhookUrls",
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Listed {
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    list: Vec<String>,
}

/// A sandbox's list; NOT_FOUND for no such sandbox.
pub async fn read(conn: &mut diesel_async::AsyncPgConnection, sandbox: &str, list: AllowList) -> Result<Vec<String>> {
    let mut query = Sql::raw("SELECT ");
    query
        .push(list.column())
        .push(" AS list FROM crm_system.workspace WHERE kind = 'sandbox' AND name = ");
    query.bind(Bind::Text(Some(sandbox.to_owned())));
    let found: Vec<Listed> = query.load(conn).await?;
    found
        .into_iter()
        .next()
        .map(|l| l.list)
        .ok_or_else(|| CrmError::not_found("Sandbox", sandbox))
}

/// Sets a sandbox's list to `values`, audited as a change of the sandbox.
pub async fn set(context: &RequestContext, sandbox: &str, list: AllowList, values: Vec<String>) -> Result<Vec<String>> {
    crate::audited!(context, |conn| {
        let before = read(conn, sandbox, list).await?;
        let mut query = Sql::raw("UPDATE crm_system.workspace SET ");
        query
            .push(list.column())
            .push(" = ")
            .bind(Bind::TextArray(Some(values.clone())))
            .push(" WHERE kind = 'sandbox' AND name = ");
        query.bind(Bind::Text(Some(sandbox.to_owned())));
        query.execute(conn).await?;
        let entry = audit::Entry {
            object: "Sandbox".into(),
            record_id: None,
            action: Action::Update,
            changes: vec![audit::Change {
                field: format!("{sandbox}.{}", list.field()),
                before: Json::from(before),
                after: Json::from(values.clone()),
            }],
        };
        (values.clone(), vec![entry])
    })
}

/// A list as the API answers it.
fn listed<'a>(values: Vec<String>) -> Option<FieldValue<'a>> {
    Some(FieldValue::list(
        values.into_iter().map(|v| FieldValue::value(Value::String(v))),
    ))
}

/// The query `name(sandbox:)` answering a sandbox's `list` (admins who
/// manage sandboxes).
pub fn query_field(name: &'static str, list: AllowList, description: &str) -> Field {
    Field::new(name, TypeRef::named_nn_list_nn(TypeRef::STRING), move |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            access::require_admin(&context.actor, AdminPermission::ManageSandboxes)?;
            let sandbox = text_arg(&ctx, "sandbox")?;
            let mut conn = context.db.conn().await?;
            Ok(listed(read(&mut conn, &sandbox, list).await?))
        })
    })
    .description(description)
    .argument(InputValue::new("sandbox", TypeRef::named_nn(TypeRef::STRING)).description("The sandbox's name."))
}

/// How one value of a list is checked and written (`at` is its place in
/// the arguments).
pub type Check = fn(&str, &Path) -> Result<String>;

/// The mutation `name(sandbox:, <values>:)` setting a sandbox's `list`,
/// each value checked by `check` (duplicates dropped).
pub fn mutation_field(
    name: &'static str,
    list: AllowList,
    (values, values_description): (&'static str, &str),
    check: Check,
    description: &str,
) -> Field {
    Field::new(name, TypeRef::named_nn_list_nn(TypeRef::STRING), move |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            access::require_admin(&context.actor, AdminPermission::ManageSandboxes)?;
            let sandbox = text_arg(&ctx, "sandbox")?;
            let mut checked = Vec::new();
            if let Some(Value::List(items)) = arg(&ctx, values) {
                for (i, item) in items.iter().enumerate() {
                    let Value::String(text) = item else { continue };
                    let value = check(text, &Path::root(values).index(i))?;
                    if !checked.contains(&value) {
                        checked.push(value);
                    }
                }
            }
            Ok(listed(set(context, &sandbox, list, checked).await?))
        })
    })
    .description(description)
    .argument(InputValue::new("sandbox", TypeRef::named_nn(TypeRef::STRING)).description("The sandbox's name."))
    .argument(InputValue::new(values, TypeRef::named_nn_list_nn(TypeRef::STRING)).description(values_description))
}
