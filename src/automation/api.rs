//! Automation's GraphQL surface: `workflowRuns` (what rules did, and why
//! one failed), `emails` and `capturedEmails` (the outbox; a sandbox's
//! emails, kept and never sent, with their whole message),
//! `emailPreview` (a template filled from a record, sent nowhere),
//! `sandboxEmailDomains` / `setSandboxEmailDomains` (where a sandbox may
//! really send) and `retryEmail`. The rules and templates themselves are
//! configuration objects with the engine's CRUD (`createWorkflowRule` …).

use async_graphql::dynamic::{Enum, EnumItem, Field, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::access::{self, AdminPermission};
use crate::db::sql::{Bind, JsonRow, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::Path;
use crate::graphql::resolve::{
    arg, context, enum_name, first_arg, id_arg, instant, json_enum_field as json_enum, json_field as json,
    json_rows as rows, optional_id as id_of, resolved, text_arg, RequestContext,
};
use crate::graphql::room::Surface;
use crate::records::FieldSet;
use crate::webhooks::allow_list::{self, AllowList};

/// Adds the queries, mutations and their types.
pub fn register(surface: &mut Surface) {
    surface.enumeration(run_status());
    surface.enumeration(email_status());
    surface.object(run_type());
    surface.object(email_type());
    surface.object(header_type());
    surface.object(preview_type());
    surface.queries(
        &[
            "workflowRuns",
            "emails",
            "capturedEmails",
            "emailPreview",
            "sandboxEmailDomains",
        ],
        vec![
            runs_field(),
            emails_field("emails", false),
            emails_field("capturedEmails", true),
            preview_field(),
            domains_field(),
        ],
    );
    surface.mutations(vec![set_domains_field(), retry_field()]);
}

/// Reading runs and emails is for those who configure automation.
fn admin(context: &RequestContext) -> Result<()> {
    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)
}

fn run_status() -> Enum {
    Enum::new("WorkflowRunStatus")
        .description("How a workflow rule's run ended, or that it waits.")
        .item(EnumItem::new("SUCCEEDED").description("Every action was done."))
        .item(EnumItem::new("FAILED").description("An action failed: none of the rule's actions stayed done; `error` says why."))
        .item(EnumItem::new("WAITING").description("A WAIT action paused it until `resumeAt`."))
        .item(EnumItem::new("CANCELLED").description(
            "A waiting run that did not go on: its rule was switched off, its record deleted or its condition no longer held.",
        ))
}

fn email_status() -> Enum {
    Enum::new("EmailStatus")
        .description("Where an email automation sent stands.")
        .item(EnumItem::new("PENDING").description("Waiting to be sent (or to be tried again after a failure)."))
        .item(EnumItem::new("SENT").description("Accepted by the SMTP server."))
        .item(EnumItem::new("FAILED").description("Refused for good, or failed every try; `retryEmail` tries again."))
        .item(EnumItem::new("CAPTURED").description(
            "Rendered in a sandbox and kept, never sent (its recipients' domains are not allowed for the sandbox).",
        ))
}

fn run_type() -> Object {
    Object::new("WorkflowRun")
        .description("One firing of a workflow rule for a record: what each action did, or why the run failed.")
        .field(json("id", TypeRef::named_nn(TypeRef::ID), "The run."))
        .field(json("ruleId", TypeRef::named_nn(TypeRef::ID), "The rule that fired."))
        .field(json(
            "ruleName",
            TypeRef::named_nn(TypeRef::STRING),
            "The rule's name when it fired.",
        ))
        .field(json(
            "object",
            TypeRef::named_nn(TypeRef::STRING),
            "The record's object.",
        ))
        .field(json(
            "recordId",
            TypeRef::named_nn(TypeRef::ID),
            "The record it fired for.",
        ))
        .field(json(
            "trigger",
            TypeRef::named_nn(TypeRef::STRING),
            "The rule's trigger: `CREATED`, `DATE_OFFSET` …",
        ))
        .field(json_enum(
            "status",
            TypeRef::named_nn("WorkflowRunStatus"),
            "How it ended, or that it waits.",
        ))
        .field(json(
            "actions",
            TypeRef::named_nn("JSON"),
            "What each action did, in order: `[{ \"type\": \"SET_FIELDS\", \"fields\": [\"rating\"] }, { \"type\": \
             \"SEND_EMAIL\", \"emailId\": …, \"to\": […], \"status\": \"PENDING\" }]`.",
        ))
        .field(json(
            "error",
            TypeRef::named(TypeRef::STRING),
            "Why it failed or was cancelled.",
        ))
        .field(json(
            "depth",
            TypeRef::named_nn(TypeRef::INT),
            "How many rules' changes led to it: 0 for a client's write.",
        ))
        .field(json("startedAt", TypeRef::named_nn("DateTime"), "When it fired."))
        .field(json(
            "finishedAt",
            TypeRef::named("DateTime"),
            "When it ended (not while it waits).",
        ))
        .field(json(
            "resumeAt",
            TypeRef::named("DateTime"),
            "A waiting run: when it goes on.",
        ))
}

fn email_type() -> Object {
    rendered(
        Object::new("Email")
            .description("An email automation rendered: sent, to be sent, failed, or captured in a sandbox."),
    )
    .field(json("id", TypeRef::named_nn(TypeRef::ID), "The email."))
    .field(json(
        "createdAt",
        TypeRef::named_nn("DateTime"),
        "When the rule rendered it.",
    ))
    .field(json_enum(
        "status",
        TypeRef::named_nn("EmailStatus"),
        "Where it stands.",
    ))
    .field(json(
        "ruleId",
        TypeRef::named(TypeRef::ID),
        "The workflow rule that sent it.",
    ))
    .field(json("runId", TypeRef::named(TypeRef::ID), "The rule's run."))
    .field(json(
        "template",
        TypeRef::named(TypeRef::STRING),
        "The template's name.",
    ))
    .field(json("object", TypeRef::named(TypeRef::STRING), "The record's object."))
    .field(json(
        "recordId",
        TypeRef::named(TypeRef::ID),
        "The record it was filled from.",
    ))
    .field(
        Field::new("headers", TypeRef::named_nn_list_nn("EmailHeader"), |ctx| {
            resolved(async move {
                let headers = ctx
                    .parent_value
                    .try_downcast_ref::<Json>()
                    .ok()
                    .and_then(|p| p["message"].as_str().map(headers))
                    .unwrap_or_default();
                Ok(Some(FieldValue::list(headers.into_iter().map(FieldValue::owned_any))))
            })
        })
        .description("The message's headers, in order (folded lines unfolded)."),
    )
    .field(json(
        "attempts",
        TypeRef::named_nn(TypeRef::INT),
        "How many times sending it was tried.",
    ))
    .field(json(
        "lastError",
        TypeRef::named(TypeRef::STRING),
        "Why the last try failed.",
    ))
    .field(json(
        "sentAt",
        TypeRef::named("DateTime"),
        "When the SMTP server accepted it.",
    ))
}

fn header_type() -> Object {
    Object::new("EmailHeader")
        .description("One header line of an email.")
        .field(json(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            "`Subject`, `To`, `Message-ID` …",
        ))
        .field(json(
            "value",
            TypeRef::named_nn(TypeRef::STRING),
            "Its value, as encoded in the message.",
        ))
}

fn preview_type() -> Object {
    rendered(
        Object::new("EmailPreview")
            .description("A template filled from a record, as SEND_EMAIL would send it (nothing is sent)."),
    )
}

/// The fields of a rendered message, an email's or a preview's.
fn rendered(object: Object) -> Object {
    object
        .field(json(
            "from",
            TypeRef::named_nn(TypeRef::STRING),
            "The sender's address.",
        ))
        .field(json(
            "to",
            TypeRef::named_nn_list_nn(TypeRef::STRING),
            "The recipients' addresses.",
        ))
        .field(json("subject", TypeRef::named_nn(TypeRef::STRING), "The subject line."))
        .field(json(
            "textBody",
            TypeRef::named(TypeRef::STRING),
            "The plain-text body.",
        ))
        .field(json(
            "htmlBody",
            TypeRef::named(TypeRef::STRING),
            "The HTML body (values escaped).",
        ))
        .field(json(
            "message",
            TypeRef::named_nn(TypeRef::STRING),
            "The whole message as sent (or as it would be): headers and MIME body.",
        ))
}

/// A message's header lines, unfolded.
fn headers(message: &str) -> Vec<Json> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out.into_iter()
        .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
        .collect()
}

/// An optional id argument.
fn runs_field() -> Field {
    Field::new("workflowRuns", TypeRef::named_nn_list_nn("WorkflowRun"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let first = first_arg(&ctx, 50, 500)?;
            let mut query = Sql::raw(
                "SELECT jsonb_build_object('id', r.id, 'ruleId', r.rule_id, 'ruleName', r.rule_name, 'object', r.object, \
                 'recordId', r.record_id, 'trigger', r.trigger, 'status', r.status, 'actions', r.actions, 'error', r.error, \
                 'depth', r.depth, 'startedAt', ",
            );
            query.append(&instant("r.started_at")).push(", 'finishedAt', ").append(&instant("r.finished_at"));
            query.push(", 'resumeAt', ").append(&instant("r.resume_at")).push(") AS row FROM ");
            query.table(&context.schema, "workflow_run").push(" r WHERE true");
            if let Some(rule) = id_of(&ctx, "ruleId")? {
                query.push(" AND r.rule_id = ").bind(Bind::Uuid(Some(rule)));
            }
            if let Some(record) = id_of(&ctx, "recordId")? {
                query.push(" AND r.record_id = ").bind(Bind::Uuid(Some(record)));
            }
            if let Some(status) = enum_name(arg(&ctx, "status")) {
                query.push(" AND r.status = ").bind(Bind::Text(Some(status)));
            }
            query.push(" ORDER BY r.started_at DESC, r.id DESC LIMIT ").push(&first.to_string());
            rows(context, query).await
        })
    })
    .description("What workflow rules did, newest first: each run's actions, or why it failed.")
    .argument(InputValue::new("ruleId", TypeRef::named(TypeRef::ID)).description("Only this rule's runs."))
    .argument(InputValue::new("recordId", TypeRef::named(TypeRef::ID)).description("Only the runs for this record."))
    .argument(InputValue::new("status", TypeRef::named("WorkflowRunStatus")).description("Only runs that ended so."))
    .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)).description("How many (default 50, at most 500)."))
}

/// The SELECT of emails as the `Email` type reads them.
fn email_select(schema: &str) -> Sql {
    let mut query = Sql::raw(
        "SELECT jsonb_build_object('id', e.id, 'status', e.status, 'ruleId', e.rule_id, 'runId', e.run_id, \
         'template', e.template, 'object', e.object, 'recordId', e.record_id, 'from', e.sender, 'to', e.recipients, \
         'subject', e.subject, 'textBody', e.text_body, 'htmlBody', e.html_body, 'message', e.message, \
         'attempts', e.attempts, 'lastError', e.last_error, 'createdAt', ",
    );
    query
        .append(&instant("e.created_at"))
        .push(", 'sentAt', ")
        .append(&instant("e.sent_at"));
    query.push(") AS row FROM ").table(schema, "email_outbox").push(" e");
    query
}

fn emails_field(name: &'static str, captured: bool) -> Field {
    let field = Field::new(name, TypeRef::named_nn_list_nn("Email"), move |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let first = first_arg(&ctx, 50, 500)?;
            let mut query = email_select(&context.schema);
            query.push(" WHERE true");
            if captured {
                query.push(" AND e.status = 'CAPTURED'");
            } else if let Some(Value::List(statuses)) = arg(&ctx, "status") {
                let statuses: Vec<String> = statuses.iter().filter_map(|s| enum_name(Some(s))).collect();
                query
                    .push(" AND e.status = ANY(")
                    .bind(Bind::TextArray(Some(statuses)))
                    .push(")");
            }
            if let Some(record) = id_of(&ctx, "recordId")? {
                query.push(" AND e.record_id = ").bind(Bind::Uuid(Some(record)));
            }
            query
                .push(" ORDER BY e.created_at DESC, e.id DESC LIMIT ")
                .push(&first.to_string());
            rows(context, query).await
        })
    })
    .argument(
        InputValue::new("recordId", TypeRef::named(TypeRef::ID))
            .description("Only the emails filled from this record."),
    )
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT)).description("How many (default 50, at most 500)."),
    );
    if captured {
        field.description(
            "The emails this workspace's rules rendered but kept instead of sending, newest first: a sandbox's \
             (unless their recipients' domains are allowed for it), with their whole message and headers.",
        )
    } else {
        field
            .description("The outbox, newest first: every email automation rendered here, with where it stands.")
            .argument(
                InputValue::new("status", TypeRef::named_nn_list("EmailStatus"))
                    .description("Only emails standing so."),
            )
    }
}

fn preview_field() -> Field {
    Field::new("emailPreview", TypeRef::named_nn("EmailPreview"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let name = text_arg(&ctx, "template")?;
            let record =
                id_of(&ctx, "recordId")?.ok_or_else(|| CrmError::bad_input(&["recordId"], "recordId is required"))?;
            let to: Vec<String> = match arg(&ctx, "to") {
                Some(Value::List(items)) => items
                    .iter()
                    .filter_map(|v| {
                        if let Value::String(s) = v {
                            Some(s.clone())
                        } else {
                            None
                        }
                    })
                    .collect(),
                _ => vec!["email".to_owned()],
            };
            let mut conn = context.db.conn().await?;
            let template = super::email::template(&mut conn, &context.schema, &name)
                .await
                .map_err(|_| CrmError::bad_input(&["template"], format!("no email template named {name}")))?;
            let object = context
                .model
                .object(&template.object)
                .ok_or_else(|| CrmError::bad_input(&["template"], "the template's object is gone"))?;
            let found =
                crate::records::get_many(&mut conn, context.table(object), &FieldSet::all(object), &[record]).await?;
            let found = found
                .get(&record)
                .ok_or_else(|| CrmError::not_found(&object.name, record))?;
            let scope = context.check_scope(&[]);
            let rendered =
                super::email::render(&mut conn, &scope, object, found, &template, &to, Uuid::new_v4()).await?;
            Ok(Some(FieldValue::owned_any(serde_json::json!({
                "from": rendered.from,
                "to": rendered.to,
                "subject": rendered.subject,
                "textBody": rendered.text,
                "htmlBody": rendered.html,
                "message": rendered.message,
            }))))
        })
    })
    .description(
        "A template filled from one of its object's records, as a workflow rule would send it; nothing is sent.",
    )
    .argument(InputValue::new("template", TypeRef::named_nn(TypeRef::STRING)).description("The template's name."))
    .argument(InputValue::new("recordId", TypeRef::named_nn(TypeRef::ID)).description("The record that fills it."))
    .argument(
        InputValue::new("to", TypeRef::named_nn_list(TypeRef::STRING))
            .description("As SEND_EMAIL's `to`: email fields, `owner`, addresses (default: `email`)."),
    )
}

fn domains_field() -> Field {
    allow_list::query_field(
        "sandboxEmailDomains",
        AllowList::EmailDomains,
        "The recipient domains a sandbox's emails are really sent to; all others are captured.",
    )
}

/// A domain name as an allow-list holds it: lower case, letters, digits,
/// dots and hyphens, with a dot.
fn domain(text: &str, at: &Path) -> Result<String> {
    let domain = text.trim().trim_start_matches('@').to_lowercase();
    let valid = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(at.error(format!("{text} is not a domain name")))
    }
}

fn set_domains_field() -> Field {
    allow_list::mutation_field(
        "setSandboxEmailDomains",
        AllowList::EmailDomains,
        ("domains", "Domain names: `example.com` (the team's own test inboxes)."),
        domain,
        "Sets the recipient domains a sandbox's emails are really sent to (through the server's SMTP server): an \
         email goes out only when every recipient is in one of them; the others are captured. Empty: capture all.",
    )
}

fn retry_field() -> Field {
    Field::new("retryEmail", TypeRef::named_nn("Email"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            admin(context)?;
            let id = id_arg(&ctx)?;
            let mut conn = context.db.conn().await?;
            let mut query = Sql::raw("UPDATE ");
            query.table(&context.schema, "email_outbox");
            query.push(" SET status = 'PENDING', attempts = 0, next_attempt_at = now(), last_error = NULL WHERE id = ");
            query.bind(Bind::Uuid(Some(id))).push(" AND status = 'FAILED'");
            let changed = query.execute(&mut conn).await?;
            let mut read = email_select(&context.schema);
            read.push(" WHERE e.id = ").bind(Bind::Uuid(Some(id)));
            let found: Vec<JsonRow> = read.load(&mut conn).await?;
            let Some(email) = found.into_iter().next() else {
                return Err(CrmError::not_found("Email", id));
            };
            if changed == 0 {
                return Err(CrmError::Conflict(format!(
                    "only a FAILED email is tried again; this one is {}",
                    email.row["status"].as_str().unwrap_or_default()
                )));
            }
            super::worker::wake();
            Ok(Some(FieldValue::owned_any(email.row)))
        })
    })
    .description("Sends a FAILED email again (from its first try's backoff).")
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The email."))
}
