//! What a sandbox may really reach — the URLs of its webhooks, the
//! recipient domains of its emails (automation's) — kept on its workspace
//! row: read, and set in an audited transaction.

use serde_json::Value as Json;

use crate::audit::{self, Action};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::resolve::RequestContext;

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
