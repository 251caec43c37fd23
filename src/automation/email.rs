//! Emails from templates: rendered in the write's transaction into the
//! workspace's outbox (the whole message, headers included), delivered
//! after commit by the worker over SMTP (`lettre`), retried with backoff.
//! A sandbox's emails are CAPTURED, never sent — unless every recipient's
//! domain is one an admin allowed for that sandbox — and SMTP settings are
//! the server's, never a workspace's: nothing a sandbox holds can send.

use std::sync::RwLock;

use diesel::sql_types::{Nullable, Text};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value as Json;
use uuid::Uuid;

use super::rules::{self, WorkflowRule};
use super::template::{self, Values};
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, Written};
use crate::metadata::ObjectDef;
use crate::records::{record_id, Record};

/// The sender of emails when none is configured.
pub const DEFAULT_SENDER: &str = "crm@localhost";

static SENDER: RwLock<Option<String>> = RwLock::new(None);

/// Sets the address emails are sent from (`--smtp-from`).
pub fn set_sender(address: &str) {
    *SENDER.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(address.to_owned());
}

fn sender() -> String {
    SENDER
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| DEFAULT_SENDER.to_owned())
}

/// A template as stored.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Template {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub text_body: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub html_body: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub from_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub reply_to: Option<String>,
}

/// The live template `name`.
pub async fn template(conn: &mut AsyncPgConnection, schema: &str, name: &str) -> Result<Template> {
    let mut query = Sql::raw("SELECT name, object, subject, text_body, html_body, from_name, reply_to FROM ");
    query
        .table(schema, "email_template")
        .push(" WHERE deleted_at IS NULL AND name = ");
    query.bind(Bind::Text(Some(name.to_owned())));
    let found: Vec<Template> = query.load(conn).await?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| CrmError::not_found("EmailTemplate", name))
}

/// A message rendered from a template for a record.
pub struct Rendered {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// The whole message as sent.
    pub message: String,
}

/// Renders `template` for the record, to the addresses `to` names: fields
/// holding an address, `owner` (the record's owner), or addresses.
pub async fn render(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
    record: &Record,
    template: &Template,
    to: &[String],
    id: Uuid,
) -> Result<Rendered> {
    let texts: Vec<&str> = [
        Some(template.subject.as_str()),
        template.text_body.as_deref(),
        template.html_body.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let values = Values::read(conn, scope.schema, scope.model, object, record.clone(), &texts).await?;
    let fill = |p: &template::Placeholder| values.get(p);
    let subject = template::one_line(&template::render(&template.subject, &fill));
    let text = template.text_body.as_deref().map(|body| template::render(body, &fill));
    let html = template
        .html_body
        .as_deref()
        .map(|body| template::render(body, &|p| template::escape_html(&values.get(p))));
    let recipients = recipients(conn, object, record, to).await?;
    let from = sender();
    let message = build(
        id,
        &from,
        template,
        &recipients,
        &subject,
        text.as_deref(),
        html.as_deref(),
    )?;
    Ok(Rendered {
        from,
        to: recipients,
        subject,
        text,
        html,
        message,
    })
}

/// The addresses `to` names for the record.
async fn recipients(
    conn: &mut AsyncPgConnection,
    object: &ObjectDef,
    record: &Record,
    to: &[String],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in to {
        let address = if name.contains('@') {
            Some(name.clone())
        } else if name == "owner" {
            let owner = record
                .get("ownerId")
                .and_then(Json::as_str)
                .and_then(|o| Uuid::parse_str(o).ok());
            match owner {
                Some(owner) => owner_email(conn, owner).await?,
                None => None,
            }
        } else {
            rules::field_named(object, name)
                .and_then(|f| record.get(&f.value_key()))
                .and_then(Json::as_str)
                .map(str::to_owned)
        };
        if let Some(address) = address.filter(|a| !a.trim().is_empty()) {
            if !out.contains(&address) {
                out.push(address);
            }
        }
    }
    if out.is_empty() {
        return Err(CrmError::bad_input(
            &["to"],
            format!("the record has no address in {}", to.join(", ")),
        ));
    }
    Ok(out)
}

#[derive(diesel::QueryableByName)]
struct Address {
    #[diesel(sql_type = Text)]
    email: String,
}

async fn owner_email(conn: &mut AsyncPgConnection, owner: Uuid) -> Result<Option<String>> {
    let mut query = Sql::raw("SELECT email FROM crm_system.users WHERE id = ");
    query.bind(Bind::Uuid(Some(owner)));
    let found: Vec<Address> = query.load(conn).await?;
    Ok(found.into_iter().next().map(|a| a.email))
}

/// The message as lettre formats it: MIME, encoded headers, a Message-ID
/// and a Date.
fn build(
    id: Uuid,
    from: &str,
    template: &Template,
    to: &[String],
    subject: &str,
    text: Option<&str>,
    html: Option<&str>,
) -> Result<String> {
    let mailbox = |text: &str, what: &str| {
        text.parse::<Mailbox>()
            .map_err(|err| CrmError::bad_input(&["to"], format!("{what} {text} is not an email address: {err}")))
    };
    let mut sender = mailbox(from, "the sender")?;
    if let Some(name) = &template.from_name {
        sender.name = Some(template::one_line(name));
    }
    // The outbox's id names the message: a bounce or a reply finds it.
    let domain = from.rsplit('@').next().unwrap_or("localhost");
    let mut builder = Message::builder()
        .message_id(Some(format!("<{id}@{domain}>")))
        .from(sender)
        .subject(subject)
        .date_now();
    for address in to {
        builder = builder.to(mailbox(address, "the recipient")?);
    }
    if let Some(reply_to) = &template.reply_to {
        builder = builder.reply_to(mailbox(reply_to, "the reply-to address")?);
    }
    let built = match (text, html) {
        (Some(text), Some(html)) => {
            builder.multipart(MultiPart::alternative_plain_html(text.to_owned(), html.to_owned()))
        }
        (None, Some(html)) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.to_owned()),
        ),
        (text, None) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.unwrap_or_default().to_owned()),
        ),
    };
    let message = built.map_err(|err| CrmError::bad_input(&[], format!("the email cannot be built: {err}")))?;
    Ok(String::from_utf8_lossy(&message.formatted()).into_owned())
}

/// What SEND_EMAIL did.
pub struct Queued {
    pub id: Uuid,
    pub to: Vec<String>,
    /// PENDING (to be sent) or CAPTURED (a sandbox's, kept).
    pub status: &'static str,
}

#[derive(diesel::QueryableByName)]
struct Registered {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    email_domains: Vec<String>,
    #[diesel(sql_type = Text)]
    name: String,
}

/// Renders the template for the record into the outbox, in the caller's
/// transaction: sent once it commits (production, or a sandbox's allowed
/// domains), else captured.
#[allow(clippy::too_many_arguments)]
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    scope: &CheckScope<'_>,
    object: &ObjectDef,
    record: &Record,
    rule: &WorkflowRule,
    run: Uuid,
    template_name: &str,
    to: &[String],
) -> Result<Queued> {
    let template = template(conn, scope.schema, template_name).await?;
    let id = Uuid::new_v4();
    let rendered = render(conn, scope, object, record, &template, to, id).await?;
    let mut query = Sql::raw("SELECT kind, email_domains, name FROM crm_system.workspace WHERE pg_schema = ");
    query.bind(Bind::Text(Some(scope.schema.to_owned())));
    let workspace: Vec<Registered> = query.load(conn).await?;
    let workspace = workspace
        .into_iter()
        .next()
        .ok_or_else(|| CrmError::internal("a workspace that is not registered"))?;
    let allowed = |address: &String| {
        let domain = address.rsplit('@').next().unwrap_or_default().to_lowercase();
        workspace.email_domains.iter().any(|d| d.eq_ignore_ascii_case(&domain))
    };
    let status = if workspace.kind == "production" || rendered.to.iter().all(allowed) {
        "PENDING"
    } else {
        "CAPTURED"
    };
    let mut insert = Sql::raw("INSERT INTO ");
    insert.table(scope.schema, "email_outbox").push(
        " (id, rule_id, run_id, template, object, record_id, sender, recipients, subject, text_body, html_body, message, \
         status) VALUES (",
    );
    insert
        .bind(Bind::Uuid(Some(id)))
        .push(", ")
        .bind(Bind::Uuid(Some(rule.id)))
        .push(", ");
    insert
        .bind(Bind::Uuid(Some(run)))
        .push(", ")
        .bind(Bind::Text(Some(template.name.clone())))
        .push(", ");
    insert
        .bind(Bind::Text(Some(object.name.clone())))
        .push(", ")
        .bind(Bind::Uuid(record_id(record)))
        .push(", ");
    insert.bind(Bind::Text(Some(rendered.from))).push(", ");
    insert.bind(Bind::TextArray(Some(rendered.to.clone()))).push(", ");
    insert.bind(Bind::Text(Some(rendered.subject))).push(", ");
    insert
        .bind(Bind::Text(rendered.text))
        .push(", ")
        .bind(Bind::Text(rendered.html))
        .push(", ");
    insert.bind(Bind::Text(Some(rendered.message))).push(", ");
    insert.bind(Bind::Text(Some(status.to_owned()))).push(")");
    insert.execute(conn).await?;
    if status == "PENDING" {
        // Wakes the worker of every server when the transaction commits.
        let due = crate::notify::Announcement::Automation {
            workspace: workspace.name,
        };
        crate::notify::announce(conn, &due).await?;
    }
    Ok(Queued {
        id,
        to: rendered.to,
        status,
    })
}

/// A template saved through the API or a promotion: its object has
/// records and its placeholders name its fields.
pub fn template_written<'a>(
    _conn: &'a mut AsyncPgConnection,
    scope: &'a CheckScope<'a>,
    written: Written<'a>,
) -> BoxFuture<'a, Result<Option<Record>>> {
    Box::pin(async move {
        let Some((_, at, object)) = super::saved(scope, written.record)? else {
            return Ok(None);
        };
        let text = |key: &str| written.record.get(key).and_then(Json::as_str).map(str::to_owned);
        for key in ["subject", "textBody", "htmlBody"] {
            if let Some(body) = text(key) {
                template::check(scope.model, object, &body, &at.at(key))?;
            }
        }
        Ok(None)
    })
}

/// An SMTP client for the server's settings.
pub fn transport(smtp: &SmtpConfig) -> std::result::Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match smtp.security {
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpSecurity::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(|e| e.to_string())?
        }
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(|e| e.to_string())?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(30)));
    if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            password.clone(),
        ));
    }
    Ok(builder.build())
}

/// Why a delivery failed, and whether trying again may succeed.
pub struct Failure {
    pub message: String,
    pub permanent: bool,
}

/// Sends one stored message to its recipients.
pub async fn deliver(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    sender: &str,
    recipients: &[String],
    message: &str,
) -> std::result::Result<(), Failure> {
    let parse = |text: &str| {
        text.parse::<lettre::Address>().map_err(|err| Failure {
            message: format!("{text} is not an address: {err}"),
            permanent: true,
        })
    };
    let to = recipients
        .iter()
        .map(|r| parse(r))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let envelope = lettre::address::Envelope::new(Some(parse(sender)?), to).map_err(|err| Failure {
        message: err.to_string(),
        permanent: true,
    })?;
    transport
        .send_raw(&envelope, message.as_bytes())
        .await
        .map(drop)
        .map_err(|err| Failure {
            permanent: err.is_permanent(),
            message: err.to_string(),
        })
}
