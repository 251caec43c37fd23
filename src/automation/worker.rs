//! The automation worker every server runs: timers that came due (a
//! DATE_OFFSET rule's time, a waiting run), SCHEDULE rules whose cron
//! time came, and emails to deliver, in production and every sandbox.
//! Work is taken with `FOR UPDATE SKIP LOCKED` in the transaction that
//! does it, so with any number of servers each piece runs once, and a
//! server killed mid-way leaves it for the next look. Emails are
//! delivered at least once: a crash between the SMTP server's answer and
//! the commit sends that one again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use uuid::Uuid;

use super::rules::{self, WorkflowRule};
use super::run::{self, Start};
use crate::access::Visibility;
use crate::audit::Trail;
use crate::config::Config;
use crate::db::sql::{Bind, Sql};
use crate::db::Database;
use crate::error::{CrmError, Result};
use crate::graphql::room::{CheckScope, Firing, FollowUps, Notices, RecordHooks, Rescored, TransactionState};
use crate::metadata::custom::Customizations;
use crate::metadata::Model;
use crate::records::{FieldSet, Table};

/// How many timers one transaction takes.
const TIMER_BATCH: i64 = 100;
/// How many emails one transaction sends.
const EMAIL_BATCH: i64 = 20;
/// How many records one firing of a SCHEDULE rule runs for.
const SCHEDULE_RECORDS: i64 = 10_000;
/// Tries of an email before it is FAILED.
const MAX_ATTEMPTS: i32 = 8;

static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Has the workers of this process look for work now (an email was
/// queued and committed).
pub fn wake() {
    WAKE.notify_waiters();
}

/// What the worker works with.
#[derive(Clone)]
pub struct Worker {
    pub db: Database,
    pub hooks: RecordHooks,
    pub smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

/// Starts the worker: a look at every workspace every `interval` and
/// whenever an email is queued (none when the interval is zero).
pub fn spawn(db: Database, hooks: RecordHooks, config: &Config) {
    super::email::set_sender(&config.smtp_from);
    if config.automation_interval.is_zero() {
        return;
    }
    let smtp = match config.smtp.as_ref().map(super::email::transport) {
        Some(Ok(transport)) => Some(transport),
        Some(Err(err)) => {
            tracing::error!(%err, "the SMTP settings are not usable; emails wait in the outbox");
            None
        }
        None => None,
    };
    let worker = Worker { db, hooks, smtp };
    let interval = config.automation_interval;
    tokio::spawn(async move {
        loop {
            let woken = WAKE.notified();
            if let Err(err) = worker.tick().await {
                tracing::warn!(%err, "automation work failed; it is tried again");
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
}

#[derive(diesel::QueryableByName)]
struct Workspace {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    pg_schema: String,
}

#[derive(diesel::QueryableByName)]
struct Due {
    #[diesel(sql_type = Bool)]
    timers: bool,
    #[diesel(sql_type = Bool)]
    schedules: bool,
    #[diesel(sql_type = Bool)]
    emails: bool,
}

impl Worker {
    /// One look at every workspace.
    pub async fn tick(&self) -> Result<()> {
        let workspaces: Vec<Workspace> = {
            let mut conn = self.db.conn().await?;
            Sql::raw("SELECT name, pg_schema FROM crm_system.workspace ORDER BY kind DESC, name")
                .load(&mut conn)
                .await?
        };
        for workspace in workspaces {
            if let Err(err) = self.workspace(&workspace).await {
                tracing::warn!(%err, workspace = %workspace.name, "automation work in a workspace failed");
            }
        }
        Ok(())
    }

    async fn workspace(&self, workspace: &Workspace) -> Result<()> {
        let schema = &workspace.pg_schema;
        let due = {
            let mut conn = self.db.conn().await?;
            let mut query = Sql::raw("SELECT EXISTS (SELECT 1 FROM ");
            query
                .table(schema, "workflow_timer")
                .push(" WHERE due_at <= now()) AS timers, EXISTS (SELECT 1 FROM ");
            query
                .table(schema, "workflow_rule")
                .push(" w LEFT JOIN ")
                .table(schema, "workflow_state");
            query.push(
                " st ON st.rule_id = w.id WHERE w.trigger = 'SCHEDULE' AND w.deleted_at IS NULL AND w.is_active \
                 AND (st.next_run_at IS NULL OR st.next_run_at <= now() OR st.schedule IS DISTINCT FROM w.schedule)) \
                 AS schedules, EXISTS (SELECT 1 FROM ",
            );
            query.table(schema, "email_outbox");
            query.push(" WHERE status = 'PENDING' AND next_attempt_at <= now()) AS emails");
            let rows: Vec<Due> = query.load(&mut conn).await?;
            rows.into_iter().next()
        };
        let Some(due) = due else { return Ok(()) };
        // Each kind of work goes on whatever happened to the others.
        if due.timers {
            loop {
                match self.timers(workspace).await {
                    Ok(taken) if taken == TIMER_BATCH as usize => {}
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(%err, workspace = %workspace.name, "due workflow timers failed");
                        break;
                    }
                }
            }
        }
        if due.schedules {
            if let Err(err) = self.schedules(workspace).await {
                tracing::warn!(%err, workspace = %workspace.name, "scheduled workflow rules failed");
            }
        }
        if due.emails {
            while self.emails(schema).await? == EMAIL_BATCH as usize {}
        }
        Ok(())
    }

    /// Takes a batch of due timers and runs each; answers how many.
    async fn timers(&self, workspace: &Workspace) -> Result<usize> {
        #[derive(diesel::QueryableByName)]
        struct Timer {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            rule_id: Uuid,
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            record_id: Uuid,
            #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
            run_id: Option<Uuid>,
            #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
            next_action: Option<i32>,
            #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
            depth: Option<i32>,
        }
        let schema = workspace.pg_schema.as_str();
        let mut conn = self.db.conn().await?;
        conn.transaction::<_, CrmError, _>(async |conn| {
            let mut query = Sql::raw("WITH taken AS (DELETE FROM ");
            query
                .table(schema, "workflow_timer")
                .push(" WHERE id IN (SELECT id FROM ");
            query
                .table(schema, "workflow_timer")
                .push(" WHERE due_at <= now() ORDER BY due_at, id LIMIT ");
            query
                .push(&TIMER_BATCH.to_string())
                .push(" FOR UPDATE SKIP LOCKED) RETURNING rule_id, record_id, run_id)");
            query.push(" SELECT taken.rule_id, taken.record_id, taken.run_id, r.next_action, r.depth FROM taken LEFT JOIN ");
            query
                .table(schema, "workflow_run")
                .push(" r ON r.id = taken.run_id AND r.status = 'WAITING'");
            let timers: Vec<Timer> = query.load(conn).await?;
            if timers.is_empty() {
                return Ok(0);
            }
            let model = Customizations::read(conn, schema).await?.model()?;
            let mut rules: HashMap<Uuid, Option<(WorkflowRule, bool)>> = HashMap::new();
            let context = Context::new(&workspace.name);
            for timer in &timers {
                if let std::collections::hash_map::Entry::Vacant(entry) = rules.entry(timer.rule_id) {
                    entry.insert(rules::workflow_by_id(conn, schema, &model, timer.rule_id).await?);
                }
                let rule = rules.get(&timer.rule_id).and_then(Option::as_ref);
                let start = match (timer.run_id, timer.next_action) {
                    (Some(run), Some(from)) => Start::Resume {
                        run,
                        from: usize::try_from(from).unwrap_or(usize::MAX),
                    },
                    // A run that no longer waits (cancelled meanwhile).
                    (Some(_), None) => continue,
                    (None, _) => Start::New,
                };
                // A resumed run goes on as deep in its cascade as it was.
                let depth = usize::try_from(timer.depth.unwrap_or(0)).unwrap_or(0);
                let done = conn
                    .transaction::<_, CrmError, _>(async |conn| {
                        self.due(conn, schema, &model, &context, rule, timer.record_id, start, depth)
                            .await
                    })
                    .await;
                // One failing timer does not hold back the others: it is
                // dropped (its run, if any, recorded FAILED) and logged.
                if let Err(err) = done {
                    if matches!(err, CrmError::Unavailable(_)) {
                        return Err(err);
                    }
                    tracing::warn!(%err, rule = %timer.rule_id, record = %timer.record_id, "a due workflow rule failed");
                    if let Start::Resume { run, .. } = start {
                        run::finish(conn, schema, run, "FAILED", &err.to_string()).await?;
                    }
                }
            }
            context.finish(conn, schema, &model).await?;
            Ok(timers.len())
        })
        .await
    }

    /// Runs a due rule for a record, if the rule is on, the record live and
    /// the condition holds; else a waiting run is cancelled.
    #[allow(clippy::too_many_arguments)]
    async fn due(
        &self,
        conn: &mut AsyncPgConnection,
        schema: &str,
        model: &Model,
        context: &Context,
        rule: Option<&(WorkflowRule, bool)>,
        record: Uuid,
        start: Start,
        depth: usize,
    ) -> Result<()> {
        let cancel = async |conn: &mut AsyncPgConnection, why: &str| match start {
            Start::Resume { run, .. } => run::finish(conn, schema, run, "CANCELLED", why).await,
            Start::New => Ok(()),
        };
        let Some((rule, true)) = rule else {
            return cancel(conn, "the rule is off or gone").await;
        };
        let Some(object) = model.object(&rule.object) else {
            return cancel(conn, "the rule's object is gone").await;
        };
        let found =
            crate::records::get_many(conn, Table::new(schema, object), &FieldSet::all(object), &[record]).await?;
        let Some(found) = found.get(&record).cloned() else {
            return cancel(conn, "the record is deleted").await;
        };
        if let Some(condition) = &rule.condition {
            // No write to compare with: `changed` and `previous` hold.
            let at_rest = [condition.at_rest()];
            let holds = super::evaluate(conn, schema, object, record, Some(&found), &at_rest).await?;
            if !holds.first().copied().unwrap_or(false) {
                return cancel(conn, "the rule's condition no longer holds").await;
            }
        }
        let chain = vec![(Uuid::nil(), record); depth];
        // Each due firing has a transaction's budget of its own.
        let state = TransactionState::default();
        let scope = CheckScope {
            state: &state,
            ..context.scope(model, schema, &chain)
        };
        run::fire_all(conn, &scope, &self.hooks, object, &[(rule, start)], found).await?;
        Ok(())
    }

    /// Fires the SCHEDULE rules whose time came, for every record their
    /// condition holds for; sets each one's next time.
    async fn schedules(&self, workspace: &Workspace) -> Result<()> {
        #[derive(diesel::QueryableByName)]
        struct State {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            rule_id: Uuid,
            #[diesel(sql_type = Nullable<Text>)]
            schedule: Option<String>,
            #[diesel(sql_type = Nullable<Text>)]
            rule_schedule: Option<String>,
            #[diesel(sql_type = Nullable<Timestamptz>)]
            next_run_at: Option<DateTime<Utc>>,
        }
        let schema = workspace.pg_schema.as_str();
        let mut conn = self.db.conn().await?;
        conn.transaction::<_, CrmError, _>(async |conn| {
            let mut made = Sql::raw("INSERT INTO ");
            made.table(schema, "workflow_state").push(" (rule_id) SELECT id FROM ");
            made.table(schema, "workflow_rule");
            made.push(" WHERE trigger = 'SCHEDULE' AND deleted_at IS NULL AND is_active ON CONFLICT DO NOTHING");
            made.execute(conn).await?;
            let mut query =
                Sql::raw("SELECT st.rule_id, st.schedule, w.schedule AS rule_schedule, st.next_run_at FROM ");
            query
                .table(schema, "workflow_state")
                .push(" st JOIN ")
                .table(schema, "workflow_rule");
            query.push(
                " w ON w.id = st.rule_id WHERE w.trigger = 'SCHEDULE' AND w.deleted_at IS NULL AND w.is_active \
                 AND (st.next_run_at IS NULL OR st.next_run_at <= now() OR st.schedule IS DISTINCT FROM w.schedule) \
                 FOR UPDATE OF st SKIP LOCKED",
            );
            let states: Vec<State> = query.load(conn).await?;
            if states.is_empty() {
                return Ok(());
            }
            let model = Customizations::read(conn, schema).await?.model()?;
            let context = Context::new(&workspace.name);
            let now = Utc::now();
            for state in states {
                let Some((rule, true)) = rules::workflow_by_id(conn, schema, &model, state.rule_id).await? else {
                    continue;
                };
                let Some(cron) = &rule.schedule else { continue };
                let fresh = state.schedule != state.rule_schedule || state.next_run_at.is_none();
                if !fresh {
                    let done = conn
                        .transaction::<_, CrmError, _>(async |conn| {
                            self.scheduled(conn, schema, &model, &context, &rule).await
                        })
                        .await;
                    // A failing schedule is logged and tried at its next time.
                    if let Err(err) = done {
                        if matches!(err, CrmError::Unavailable(_)) {
                            return Err(err);
                        }
                        tracing::warn!(%err, rule = %rule.name, "a scheduled workflow rule failed");
                    }
                }
                let next = cron.find_next_occurrence(&now, false).ok();
                let mut set = Sql::raw("UPDATE ");
                set.table(schema, "workflow_state").push(" SET schedule = ");
                set.bind(Bind::Text(state.rule_schedule.clone()))
                    .push(", next_run_at = ");
                set.bind(Bind::DateTime(next))
                    .push(" WHERE rule_id = ")
                    .bind(Bind::Uuid(Some(rule.id)));
                set.execute(conn).await?;
            }
            context.finish(conn, schema, &model).await
        })
        .await
    }

    /// One firing of a SCHEDULE rule: every live record its condition
    /// holds for (at most [`SCHEDULE_RECORDS`]).
    async fn scheduled(
        &self,
        conn: &mut AsyncPgConnection,
        schema: &str,
        model: &Model,
        context: &Context,
        rule: &WorkflowRule,
    ) -> Result<()> {
        let Some(object) = model.object(&rule.object) else {
            return Ok(());
        };
        let mut query = Sql::raw("SELECT t.id FROM ");
        query
            .table(schema, &object.table)
            .push(" t CROSS JOIN LATERAL (SELECT t.*) tp WHERE t.deleted_at IS NULL");
        if let Some(condition) = &rule.condition {
            query
                .push(" AND coalesce((")
                .append(&condition.compile(schema, "t"))
                .push("), false)");
        }
        query.push(" ORDER BY t.id LIMIT ").push(&SCHEDULE_RECORDS.to_string());
        let ids = crate::records::ids(conn, query).await?;
        let table = Table::new(schema, object);
        for chunk in ids.chunks(500) {
            let found = crate::records::get_many(conn, table, &FieldSet::all(object), chunk).await?;
            for id in chunk {
                if let Some(record) = found.get(id) {
                    let state = TransactionState::default();
                    let scope = CheckScope {
                        state: &state,
                        ..context.scope(model, schema, &[])
                    };
                    run::fire_all(conn, &scope, &self.hooks, object, &[(rule, Start::New)], record.clone()).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends a batch of pending emails; answers how many it took.
    async fn emails(&self, schema: &str) -> Result<usize> {
        #[derive(diesel::QueryableByName)]
        struct Pending {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
            #[diesel(sql_type = Text)]
            sender: String,
            #[diesel(sql_type = Array<Text>)]
            recipients: Vec<String>,
            #[diesel(sql_type = Text)]
            message: String,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            attempts: i32,
        }
        let Some(smtp) = &self.smtp else {
            return self.unsendable(schema).await;
        };
        let mut conn = self.db.conn().await?;
        conn.transaction::<_, CrmError, _>(async |conn| {
            // A sandbox's allow-list may have shrunk since its emails were
            // queued: those no longer allowed are captured, not sent.
            let mut recheck = Sql::raw("UPDATE ");
            recheck.table(schema, "email_outbox").push(
                " e SET status = 'CAPTURED', last_error = 'its recipient domains are no longer allowed for this sandbox' \
                 FROM crm_system.workspace w WHERE w.pg_schema = ",
            );
            recheck.bind(Bind::Text(Some(schema.to_owned()))).push(
                " AND w.kind = 'sandbox' AND e.status = 'PENDING' AND EXISTS (SELECT 1 FROM unnest(e.recipients) r \
                 WHERE NOT lower(split_part(r, '@', 2)) = ANY(w.email_domains))",
            );
            recheck.execute(conn).await?;
            let mut query = Sql::raw("SELECT id, sender, recipients, message, attempts FROM ");
            query.table(schema, "email_outbox");
            query.push(" WHERE status = 'PENDING' AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT ");
            query.push(&EMAIL_BATCH.to_string()).push(" FOR UPDATE SKIP LOCKED");
            let pending: Vec<Pending> = query.load(conn).await?;
            for email in &pending {
                let sent = super::email::deliver(smtp, &email.sender, &email.recipients, &email.message).await;
                let mut update = Sql::raw("UPDATE ");
                update.table(schema, "email_outbox").push(" SET attempts = attempts + 1, ");
                match sent {
                    Ok(()) => {
                        update.push("status = 'SENT', sent_at = now(), last_error = NULL");
                    }
                    Err(failure) => {
                        let attempts = email.attempts + 1;
                        let last = failure.permanent || attempts >= MAX_ATTEMPTS;
                        tracing::warn!(email = %email.id, error = %failure.message, attempts, "an email was not delivered");
                        update.push("last_error = ").bind(Bind::Text(Some(failure.message)));
                        if last {
                            update.push(", status = 'FAILED'");
                        } else {
                            // 1, 2, 4 … 64 minutes, give or take a fifth.
                            let minutes = f64::from(1u32 << (attempts - 1).clamp(0, 6).unsigned_abs());
                            let jitter = 0.8 + 0.4 * f64::from(Uuid::new_v4().as_bytes()[0]) / 255.0;
                            let seconds = (minutes * 60.0 * jitter).round() as i64;
                            update.push(", next_attempt_at = now() + make_interval(secs => ");
                            update.push(&seconds.to_string()).push(")");
                        }
                    }
                }
                update.push(" WHERE id = ").bind(Bind::Uuid(Some(email.id)));
                update.execute(conn).await?;
            }
            Ok(pending.len())
        })
        .await
    }

    /// Without an SMTP server, pending emails wait: each says why, once an
    /// hour.
    async fn unsendable(&self, schema: &str) -> Result<usize> {
        let mut conn = self.db.conn().await?;
        let mut query = Sql::raw("UPDATE ");
        query.table(schema, "email_outbox").push(
            " SET last_error = 'no SMTP server is configured (--smtp-host); the email waits', \
             next_attempt_at = now() + interval '1 hour' WHERE status = 'PENDING' AND next_attempt_at <= now()",
        );
        let count = query.execute(&mut conn).await?;
        if count > 0 {
            tracing::warn!(
                count,
                "emails wait in the outbox: no SMTP server is configured (--smtp-host)"
            );
        }
        Ok(0)
    }
}

/// What the worker's runs share in one transaction: the trail (audited
/// as AUTOMATION, no actor) and the follow-ups their writes ask for.
struct Context {
    trail: Trail,
    everything: Visibility,
    follow_ups: FollowUps,
    notices: Notices,
    state: TransactionState,
    rescored: Rescored,
}

impl Context {
    fn new(workspace: &str) -> Context {
        Context {
            trail: Trail::automation(workspace),
            everything: Visibility::all(),
            follow_ups: FollowUps::default(),
            notices: Notices::default(),
            state: TransactionState::default(),
            rescored: Rescored::default(),
        }
    }

    fn scope<'a>(&'a self, model: &'a Model, schema: &'a str, cascade: &'a [Firing]) -> CheckScope<'a> {
        CheckScope {
            model,
            schema,
            visibility: &self.everything,
            at: &[],
            follow_ups: &self.follow_ups,
            notices: &self.notices,
            trail: &self.trail,
            cascade,
            state: &self.state,
            rescored: &self.rescored,
        }
    }

    /// Runs what the transaction's writes asked for, before it commits.
    async fn finish(&self, conn: &mut AsyncPgConnection, schema: &str, model: &Model) -> Result<()> {
        let scope = self.scope(model, schema, &[]);
        self.follow_ups.run(conn, &scope).await
    }
}
