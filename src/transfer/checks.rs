//! The checks of an import across the whole file, set-based over the
//! staging table once every row is staged: lookups resolved (by id,
//! external id, email or name), rows matched with the records they change,
//! required fields of new records, unique fields, and the object's
//! duplicate rules. A row that fails one is marked `failed` and listed in
//! the error file; a duplicate rule's WARN is listed as a warning.

use diesel::sql_types::BigInt;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::cells::cast;
use super::mapping::Plan;
use super::{Mode, Target};
use crate::access::{self, Operation};
use crate::db::sql::{Bind, Sql};
use crate::duplicates::rules::{self, Action, Rule};
use crate::error::Result;
use crate::metadata::{FieldKind, ObjectDef};
use crate::records::{self, Table};

/// The staging table, as the import's connection names it.
pub const ROWS: &str = "pg_temp.import_rows";

/// Refuses an import the actor may not make: creating needs the create
/// permission, changing the update permission.
pub fn permitted(target: &Target, object: &ObjectDef, mode: Mode) -> Result<()> {
    if mode != Mode::Update {
        access::require(&target.actor, object, Operation::Create)?;
    }
    if mode != Mode::Create {
        access::require(&target.actor, object, Operation::Update)?;
    }
    Ok(())
}

/// Refuses an import matching records by a duplicate rule the object has
/// not (active), before it starts.
pub async fn rule_exists(target: &Target, object: &ObjectDef, name: &str) -> Result<()> {
    let mut conn = target.db.conn().await?;
    let found = rules::active(&mut conn, &target.schema, &target.model, Some(&object.name)).await?;
    if found.iter().any(|r| r.name == name) {
        return Ok(());
    }
    Err(crate::error::CrmError::bad_input(
        &["matchOn"],
        format!(
            "{name:?} is neither a field of {} nor an active duplicate rule of it",
            object.name
        ),
    ))
}

/// The staged rows (`s`) `condition` holds for.
pub async fn count(conn: &mut AsyncPgConnection, condition: &str) -> Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let query = Sql::raw(&format!("SELECT count(*) AS n FROM {ROWS} s WHERE {condition}"));
    let rows: Vec<Count> = query.load(conn).await?;
    Ok(rows.first().map_or(0, |c| c.n))
}

/// What the checks found: rows refused, and warnings.
#[derive(Debug, Default)]
pub struct Found {
    pub failed: i64,
    pub warnings: i64,
}

/// One check's refusal (or warning): the rows `condition` holds for, with
/// the cell, a code and a message (SQL text expressions over `s`).
struct Refusal<'a> {
    condition: Sql,
    column: Option<String>,
    value: Sql,
    code: &'a str,
    message: Sql,
    warning: bool,
}

/// How rows found their records, for the refusals after matching.
struct FoundBy {
    column: Option<String>,
    value: Sql,
    /// `externalId`, `duplicate rule Same email`.
    what: String,
    /// The message of a row that matched nothing.
    missing: Sql,
}

impl<'a> Refusal<'a> {
    /// The rows `condition` holds for are refused with `code` and `message`.
    fn rows(condition: Sql, code: &'a str, message: Sql) -> Self {
        Refusal {
            condition,
            column: None,
            value: Sql::raw("NULL::text"),
            code,
            message,
            warning: false,
        }
    }

    /// … naming the cell at fault: its column's header and value.
    fn cell(self, column: Option<String>, value: Sql) -> Self {
        Refusal { column, value, ..self }
    }

    /// … or, `true`, only warned of.
    fn warning(self, warning: bool) -> Self {
        Refusal { warning, ..self }
    }
}

/// The checks a staging table's rows go through, in order.
pub struct Checks<'a> {
    pub conn: &'a mut AsyncPgConnection,
    pub target: &'a Target,
    pub object: &'a ObjectDef,
    pub plan: &'a Plan,
    pub mode: Mode,
    pub job: Uuid,
    /// Lookups whose missing records the load makes (see `Options`).
    pub create_missing: &'a [String],
}

/// A text literal for messages.
fn text(value: &str) -> Sql {
    let mut sql = Sql::new();
    sql.bind(Bind::Text(Some(value.to_owned())));
    sql
}

/// Rows of `from` (aliased `n`) with an earlier row, not failed, of the
/// same `keys` (all set): one sort, not a comparison of every pair.
fn earlier_same(from: &str, keys: &[Sql]) -> Sql {
    let mut sql = Sql::raw("s.row_number IN (SELECT d.r FROM (SELECT n.row_number AS r, count(*) OVER (PARTITION BY ");
    sql.join(keys, ", ");
    sql.push(&format!(
        " ORDER BY n.row_number ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier FROM {from} n WHERE NOT n.failed"
    ));
    for key in keys {
        sql.push(" AND (").append(key).push(") IS NOT NULL");
    }
    sql.push(") d WHERE d.earlier > 0)");
    sql
}

fn staged_column(i: usize) -> String {
    format!("c{i}")
}

impl Checks<'_> {
    /// Runs every check; answers what they found.
    pub async fn run(mut self) -> Result<Found> {
        self.lookups().await?;
        self.targets().await?;
        self.restorable().await?;
        self.reassign().await?;
        self.required().await?;
        self.unique().await?;
        let warnings = self.duplicates().await?;
        let failed = self.count("failed").await?;
        Ok(Found { failed, warnings })
    }

    async fn execute(&mut self, sql: &str) -> Result<()> {
        Sql::raw(sql).execute(self.conn).await?;
        Ok(())
    }

    /// Lists the rows `refusal` holds for in the error file and, unless it
    /// is a warning, marks them failed; answers how many.
    async fn refuse(&mut self, refusal: Refusal<'_>) -> Result<i64> {
        let mut insert = Sql::raw("INSERT INTO ");
        insert
            .table(&self.target.schema, "import_error")
            .push(" (job_id, row_number, column_name, value, code, message, warning) SELECT ");
        insert.bind(Bind::Uuid(Some(self.job))).push(", s.row_number, ");
        insert.bind(Bind::Text(refusal.column)).push(", ");
        insert
            .append(&refusal.value)
            .push(", ")
            .append(&text(refusal.code))
            .push(", ");
        insert
            .append(&refusal.message)
            .push(", ")
            .bind(Bind::Bool(Some(refusal.warning)));
        insert.push(" FROM ").push(ROWS).push(" s WHERE NOT s.failed AND (");
        insert.append(&refusal.condition).push(")");
        let count = insert.execute(self.conn).await?;
        if !refusal.warning && count > 0 {
            let mut mark = Sql::raw("UPDATE ");
            mark.push(ROWS).push(" s SET failed = true WHERE NOT s.failed AND (");
            mark.append(&refusal.condition).push(")");
            mark.execute(self.conn).await?;
        }
        Ok(count as i64)
    }

    async fn count(&mut self, condition: &str) -> Result<i64> {
        count(self.conn, condition).await
    }

    /// The header of the column filling staged field `i`.
    fn header(&self, i: usize) -> Option<String> {
        let column = self.plan.staged[i].column?;
        self.plan.columns.get(column).map(|c| c.header.clone())
    }

    /// Each lookup cell as the id of the record it names (`l<i>`): by id,
    /// external id, email, or a name only one record has.
    async fn lookups(&mut self) -> Result<()> {
        for (i, staged) in self.plan.staged.iter().enumerate() {
            let Some(lookup) = staged.field.lookup() else { continue };
            let Some(related) = self.target.model.object(&lookup.target).cloned() else {
                continue;
            };
            let c = staged_column(i);
            self.execute(&format!("ALTER TABLE {ROWS} ADD COLUMN l{i} uuid"))
                .await?;
            let table = Table::new(&self.target.schema, &related).restricted(&self.target.visibility);
            let by_id = format!(
                "(CASE WHEN s.{c} ~* '^[0-9a-f]{{8}}-?[0-9a-f]{{4}}-?[0-9a-f]{{4}}-?[0-9a-f]{{4}}-?[0-9a-f]{{12}}$' THEN s.{c}::uuid END)"
            );
            let mut keys = vec![Sql::raw(&by_id)];
            for unique in ["externalId", "email"] {
                if let Some(field) = related.field(unique).filter(|f| f.unique || unique == "externalId") {
                    let mut key = Sql::raw("x.");
                    key.ident(&field.column);
                    keys.push(key);
                }
            }
            for (n, key) in keys.iter().enumerate() {
                let mut resolve = Sql::raw(&format!("UPDATE {ROWS} s SET l{i} = x.id"));
                resolve.append(&table.from_as("x")).push(" WHERE ");
                resolve.push(&format!("s.l{i} IS NULL AND s.{c} IS NOT NULL AND "));
                if n == 0 {
                    resolve.push("x.id = ").push(&by_id);
                } else {
                    resolve.append(key).push(&format!(" = s.{c}"));
                }
                resolve.push(" AND ").append(&table.rows(false, "x"));
                resolve.execute(self.conn).await?;
            }
            self.lookup_by_name(i, &related, &table).await?;
            let makes = self.create_missing.contains(&staged.field.name)
                && related.field("name").is_some()
                && access::require(&self.target.actor, &related, Operation::Create).is_ok();
            if makes {
                let longest = related.field("name").and_then(|f| f.max_length).unwrap_or(255);
                let mut message = Sql::raw("format('a new %s''s name is at most %s characters', ");
                message.append(&text(&related.name)).push(&format!(", {longest})"));
                self.refuse(
                    Refusal::rows(
                        Sql::raw(&format!("s.l{i} IS NULL AND length(s.{c}) > {longest}")),
                        "INVALID_VALUE",
                        message,
                    )
                    .cell(self.header(i), Sql::raw(&format!("s.{c}"))),
                )
                .await?;
                continue;
            }
            let mut message = Sql::raw("format('no %s you can see has the id, external id or name %s', ");
            message.append(&text(&related.name)).push(&format!(", s.{c})"));
            self.refuse(
                Refusal::rows(
                    Sql::raw(&format!("s.{c} IS NOT NULL AND s.l{i} IS NULL")),
                    "NOT_FOUND",
                    message,
                )
                .cell(self.header(i), Sql::raw(&format!("s.{c}"))),
            )
            .await?;
        }
        Ok(())
    }

    /// Lookup cells naming a record by its name (its title): resolved when
    /// exactly one record has it, refused as ambiguous otherwise.
    async fn lookup_by_name(&mut self, i: usize, related: &ObjectDef, table: &Table<'_>) -> Result<()> {
        let c = staged_column(i);
        let title = records::title(related, "x");
        let mut names = Sql::raw("(SELECT lower(");
        names
            .append(&title)
            .push(") AS k, (array_agg(x.id))[1] AS id, count(*) AS n");
        names
            .append(&table.from_as("x"))
            .push(" WHERE ")
            .append(&table.rows(false, "x"));
        names.push(" AND lower(").append(&title);
        names.push(&format!(
            ") IN (SELECT lower(s.{c}) FROM {ROWS} s WHERE s.l{i} IS NULL AND s.{c} IS NOT NULL)"
        ));
        names.push(" GROUP BY 1) m");
        let mut resolve = Sql::raw(&format!("UPDATE {ROWS} s SET l{i} = m.id FROM "));
        resolve.append(&names);
        resolve.push(&format!(" WHERE s.l{i} IS NULL AND lower(s.{c}) = m.k AND m.n = 1"));
        resolve.execute(self.conn).await?;
        let mut ambiguous = Sql::raw(&format!(
            "s.l{i} IS NULL AND s.{c} IS NOT NULL AND EXISTS (SELECT 1 FROM "
        ));
        ambiguous
            .append(&names)
            .push(&format!(" WHERE m.k = lower(s.{c}) AND m.n > 1)"));
        let mut message = Sql::raw("format('more than one %s is called %s: name it by its id or external id', ");
        message.append(&text(&related.name)).push(&format!(", s.{c})"));
        self.refuse(Refusal::rows(ambiguous, "AMBIGUOUS", message).cell(self.header(i), Sql::raw(&format!("s.{c}"))))
            .await?;
        Ok(())
    }

    /// UPSERT and UPDATE: the record each row changes (`target`), found by
    /// the key field (a merged record's survivor); refuses rows of UPDATE
    /// that match nothing, rows matching a record the actor may not see,
    /// and a second row changing the same record. Rows to create get their
    /// new id (`new_id`).
    async fn targets(&mut self) -> Result<()> {
        self.execute(&format!(
            "ALTER TABLE {ROWS} ADD COLUMN target uuid, ADD COLUMN new_id uuid"
        ))
        .await?;
        if let Some(k) = self.plan.key {
            self.match_key(k).await?;
        } else if let Some(rule) = &self.plan.match_rule {
            self.match_rule(rule).await?;
        }
        let mut new_ids = Sql::raw(&format!("UPDATE {ROWS} s SET new_id = gen_random_uuid() WHERE "));
        new_ids.push("s.target IS NULL AND NOT s.failed");
        new_ids.execute(self.conn).await?;
        Ok(())
    }

    async fn match_key(&mut self, k: usize) -> Result<()> {
        let key = self.plan.staged[k].field.clone();
        let all = Table::new(&self.target.schema, self.object);
        let mut find = Sql::raw(&format!("UPDATE {ROWS} s SET target = "));
        find.append(&records::merged::redirected(
            &self.target.schema,
            self.object,
            &Sql::raw("x.id"),
        ));
        find.append(&all.from_as("x")).push(" WHERE x.").ident(&key.column);
        find.push(&format!(" = s.c{k}::{}", cast(&key)));
        if self.mode == Mode::Update {
            find.push(" AND (x.deleted_at IS NULL OR EXISTS (SELECT 1 FROM ");
            find.table(&self.target.schema, "merged_record")
                .push(" m WHERE m.merged_id = x.id))");
        }
        find.execute(self.conn).await?;
        let by_id = key.kind == FieldKind::Id;
        let mut message = Sql::raw("format('no %s has the %s %s', ");
        message
            .append(&text(&self.object.name))
            .push(", ")
            .append(&text(&key.name));
        message.push(&format!(", s.c{k})"));
        let found_by = FoundBy {
            column: self.header(k),
            value: Sql::raw(&format!("s.c{k}")),
            what: key.name.clone(),
            missing: message,
        };
        self.after_match(found_by, self.mode == Mode::Update || by_id).await
    }

    /// UPSERT and UPDATE by a duplicate rule: the one stored record each
    /// row matches by the rule's criteria; a row matching several is
    /// refused as ambiguous.
    async fn match_rule(&mut self, name: &str) -> Result<()> {
        let found = rules::active(
            self.conn,
            &self.target.schema,
            &self.target.model,
            Some(&self.object.name),
        )
        .await?;
        let rule = found.into_iter().find(|r| r.name == name).ok_or_else(|| {
            crate::error::CrmError::bad_input(
                &["matchOn"],
                format!(
                    "{name:?} is neither a field of {} nor an active duplicate rule of it",
                    self.object.name
                ),
            )
        })?;
        self.incoming_view(std::slice::from_ref(&rule)).await?;
        let mut matches = Sql::raw(
            "(SELECT n.row_number, (array_agg(o.id ORDER BY o.id))[1] AS id, count(*) AS k \
             FROM pg_temp.import_incoming n JOIN ",
        );
        matches.table(&self.target.schema, &self.object.table).push(" o ON ");
        for (i, criterion) in rule.criteria.iter().enumerate() {
            if i > 0 {
                matches.push(" AND ");
            }
            matches.append(&criterion.pairing("n", "o"));
        }
        matches.push(" WHERE o.deleted_at IS NULL AND NOT n.failed GROUP BY n.row_number) m");
        let mut find = Sql::raw(&format!("UPDATE {ROWS} s SET target = m.id FROM "));
        find.append(&matches)
            .push(" WHERE s.row_number = m.row_number AND m.k = 1");
        find.execute(self.conn).await?;
        let mut several = Sql::raw("s.row_number IN (SELECT m.row_number FROM ");
        several.append(&matches).push(" WHERE m.k > 1)");
        let mut message = Sql::raw("format('more than one stored %s matches by the duplicate rule %s', ");
        message
            .append(&text(&self.object.name))
            .push(", ")
            .append(&text(&rule.name))
            .push(")");
        self.refuse(Refusal::rows(several, "AMBIGUOUS", message)).await?;
        self.execute("DROP VIEW pg_temp.import_incoming").await?;
        let mut missing = Sql::raw("format('no %s matches by the duplicate rule %s', ");
        missing
            .append(&text(&self.object.name))
            .push(", ")
            .append(&text(&rule.name))
            .push(")");
        let found_by = FoundBy {
            column: None,
            value: Sql::raw("NULL::text"),
            what: format!("duplicate rule {}", rule.name),
            missing,
        };
        self.after_match(found_by, self.mode == Mode::Update).await
    }

    /// After rows are matched: refuses those that match nothing (when
    /// `required`), those matching a record the actor may not see, and a
    /// second row changing the same record.
    async fn after_match(&mut self, by: FoundBy, required: bool) -> Result<()> {
        if required {
            self.refuse(
                Refusal::rows(Sql::raw("s.target IS NULL"), "NOT_FOUND", by.missing)
                    .cell(by.column.clone(), by.value.clone()),
            )
            .await?;
        }
        let all = Table::new(&self.target.schema, self.object);
        if let Some(visible) = self.target.visibility.filter(&self.object.name) {
            let mut hidden = Sql::raw("s.target IS NOT NULL AND NOT EXISTS (SELECT 1");
            hidden.append(&all.from_as("x")).push(" WHERE x.id = s.target AND (");
            hidden.append(&visible.compile(&self.target.schema, "x")).push("))");
            let mut message = Sql::raw("format('the %s found by %s is not yours to change', ");
            message
                .append(&text(&self.object.name))
                .push(", ")
                .append(&text(&by.what))
                .push(")");
            self.refuse(Refusal::rows(hidden, "FORBIDDEN", message).cell(by.column.clone(), by.value.clone()))
                .await?;
        }
        let again = earlier_same(ROWS, &[Sql::raw("n.target")]);
        self.refuse(
            Refusal::rows(
                again,
                "DUPLICATE_IN_FILE",
                Sql::raw("'an earlier row of the file changes the same record'"),
            )
            .cell(by.column, by.value),
        )
        .await?;
        Ok(())
    }

    /// UPSERT brings a deleted record back only for an actor who may
    /// restore it (as `upsert<Object>`); a converted lead is read-only.
    async fn restorable(&mut self) -> Result<()> {
        if self.plan.key.is_none() && self.plan.match_rule.is_none() {
            return Ok(());
        }
        if self.object.field("convertedAt").is_some() {
            let mut converted = Sql::raw("s.target IS NOT NULL AND EXISTS (SELECT 1 FROM ");
            converted.table(&self.target.schema, &self.object.table);
            converted.push(" x WHERE x.id = s.target AND x.converted_at IS NOT NULL)");
            self.refuse(Refusal::rows(
                converted,
                "CONFLICT",
                Sql::raw("'the lead was converted: a converted lead is read-only'"),
            ))
            .await?;
        }
        if self.mode != Mode::Upsert {
            return Ok(());
        }
        let mut deleted = Sql::raw("s.target IS NOT NULL AND EXISTS (SELECT 1 FROM ");
        deleted.table(&self.target.schema, &self.object.table);
        deleted.push(" x WHERE x.id = s.target AND x.deleted_at IS NOT NULL");
        match access::require(&self.target.actor, self.object, Operation::Restore) {
            Ok(access::Grant::Owned) => match self.object.field("owner") {
                Some(owner) => {
                    deleted.push(" AND x.").ident(&owner.column).push(" IS DISTINCT FROM ");
                    deleted.bind(Bind::Uuid(Some(self.target.actor.user_id)));
                }
                None => return Ok(()),
            },
            Ok(_) => return Ok(()),
            Err(_) => {}
        }
        deleted.push(")");
        self.refuse(Refusal::rows(
            deleted,
            "FORBIDDEN",
            Sql::raw("'the record it matches was deleted, and restoring it is not yours to do'"),
        ))
        .await?;
        Ok(())
    }

    /// Only admins and a record's owner give it another owner, as with
    /// a mutation.
    async fn reassign(&mut self) -> Result<()> {
        let (Some(i), Some(owner)) = (self.plan.position("owner"), self.object.field("owner")) else {
            return Ok(());
        };
        if self.target.actor.role == crate::auth::Role::Admin {
            return Ok(());
        }
        let mut taken = Sql::raw(&format!(
            "s.target IS NOT NULL AND s.l{i} IS NOT NULL AND EXISTS (SELECT 1 FROM "
        ));
        taken
            .table(&self.target.schema, &self.object.table)
            .push(" x WHERE x.id = s.target AND x.");
        taken
            .ident(&owner.column)
            .push(&format!(" IS DISTINCT FROM s.l{i} AND x."));
        taken.ident(&owner.column).push(" IS DISTINCT FROM ");
        taken.bind(Bind::Uuid(Some(self.target.actor.user_id))).push(")");
        let message = Sql::raw("'only its owner or an admin may give a record another owner'");
        self.refuse(Refusal::rows(taken, "FORBIDDEN", message).cell(self.header(i), Sql::raw(&format!("s.c{i}"))))
            .await?;
        Ok(())
    }

    /// Rows that create a record must fill its required fields.
    async fn required(&mut self) -> Result<()> {
        if self.mode == Mode::Update {
            return Ok(());
        }
        let required: Vec<_> = self
            .object
            .fields
            .iter()
            .filter(|f| f.required_on_create())
            .cloned()
            .collect();
        for field in required {
            let position = self.plan.position(&field.name);
            let staged = position.map(|i| &self.plan.staged[i]);
            if staged.is_some_and(|s| s.fallback.is_some()) {
                continue;
            }
            let condition = match position {
                Some(i) => format!("s.target IS NULL AND s.c{i} IS NULL"),
                None => "s.target IS NULL".to_owned(),
            };
            let mut message = Sql::raw("format('a new %s needs %s', ");
            message
                .append(&text(&self.object.name))
                .push(", ")
                .append(&text(&field.label))
                .push(")");
            self.refuse(
                Refusal::rows(Sql::raw(&condition), "REQUIRED", message)
                    .cell(position.and_then(|i| self.header(i)), Sql::raw("NULL::text")),
            )
            .await?;
        }
        Ok(())
    }

    /// A unique field's value must not repeat in the file nor belong to
    /// another record.
    async fn unique(&mut self) -> Result<()> {
        let table = Table::new(&self.target.schema, self.object);
        let unique: Vec<(usize, crate::metadata::FieldDef)> = self
            .plan
            .staged
            .iter()
            .enumerate()
            .filter(|(_, s)| s.field.unique && s.column.is_some())
            .map(|(i, s)| (i, s.field.clone()))
            .collect();
        for (i, field) in unique {
            let repeated = earlier_same(ROWS, &[Sql::raw(&format!("n.c{i}"))]);
            let mut message_text = Sql::raw("format('an earlier row of the file has the same %s', ");
            message_text.append(&text(&field.label)).push(")");
            self.refuse(
                Refusal::rows(repeated, "DUPLICATE_IN_FILE", message_text)
                    .cell(self.header(i), Sql::raw(&format!("s.c{i}"))),
            )
            .await?;
            let mut taken = Sql::raw(&format!("s.c{i} IS NOT NULL AND EXISTS (SELECT 1"));
            taken.append(&table.from_as("x")).push(" WHERE x.").ident(&field.column);
            taken.push(&format!(
                " = s.c{i}::{} AND x.id IS DISTINCT FROM s.target)",
                cast(&field)
            ));
            let mut message = Sql::raw("format('another %s has this %s', ");
            message
                .append(&text(&self.object.name))
                .push(", ")
                .append(&text(&field.label))
                .push(")");
            self.refuse(Refusal::rows(taken, "UNIQUE", message).cell(self.header(i), Sql::raw(&format!("s.c{i}"))))
                .await?;
        }
        Ok(())
    }

    /// The object's active duplicate rules: a row matching another record
    /// or an earlier row is refused (BLOCK) or listed as a warning (WARN).
    /// Answers the warnings.
    async fn duplicates(&mut self) -> Result<i64> {
        let rules = rules::active(
            self.conn,
            &self.target.schema,
            &self.target.model,
            Some(&self.object.name),
        )
        .await?;
        let rules: Vec<Rule> = rules.into_iter().filter(|r| r.action != Action::Allow).collect();
        if rules.is_empty() {
            return Ok(0);
        }
        self.incoming_view(&rules).await?;
        let rows = self.count("NOT s.failed").await?;
        let mut warnings = 0;
        for rule in &rules {
            // Trigram matches within a large file would compare every row
            // with every other; they are checked against stored records only.
            let within_file = rule.fuzzy_threshold().is_none() || rows <= 10_000;
            warnings += self.duplicate_rule(rule, within_file).await?;
        }
        self.execute("DROP VIEW pg_temp.import_incoming").await?;
        Ok(warnings)
    }

    /// `pg_temp.import_incoming`: each row's values of the rules' fields
    /// as the record will hold them, in columns named as the table's.
    async fn incoming_view(&mut self, rules: &[Rule]) -> Result<()> {
        let mut view = Sql::raw("CREATE TEMPORARY VIEW import_incoming AS SELECT s.row_number, s.target, s.failed");
        let mut seen: Vec<String> = Vec::new();
        for criterion in rules.iter().flat_map(|r| &r.criteria) {
            let field = &criterion.field;
            if seen.contains(&field.column) {
                continue;
            }
            seen.push(field.column.clone());
            view.push(", ");
            match self.plan.position(&field.name) {
                Some(i) if field.lookup().is_some() => view.push(&format!("coalesce(s.l{i}, x.")),
                Some(i) => view.push(&format!("coalesce(s.c{i}::{}, x.", cast(field))),
                None => view.push("(x."),
            };
            view.ident(&field.column).push(") AS ").ident(&field.column);
        }
        view.push(&format!(" FROM {ROWS} s LEFT JOIN "));
        view.table(&self.target.schema, &self.object.table)
            .push(" x ON x.id = s.target");
        view.execute(self.conn).await?;
        Ok(())
    }

    async fn duplicate_rule(&mut self, rule: &Rule, within_file: bool) -> Result<i64> {
        let pairs = |a: &str, b: &str| {
            let mut sql = Sql::new();
            for (n, criterion) in rule.criteria.iter().enumerate() {
                if n > 0 {
                    sql.push(" AND ");
                }
                sql.append(&criterion.pairing(a, b));
            }
            sql
        };
        let (code, warning) = match rule.action {
            Action::Block => ("DUPLICATE", false),
            _ => ("DUPLICATE", true),
        };
        let mut stored = Sql::raw("s.row_number IN (SELECT n.row_number FROM pg_temp.import_incoming n JOIN ");
        stored
            .table(&self.target.schema, &self.object.table)
            .push(" o ON ")
            .append(&pairs("n", "o"));
        stored.push(" WHERE o.deleted_at IS NULL AND o.id IS DISTINCT FROM n.target)");
        let mut message = Sql::raw("format('matches a stored %s by the duplicate rule %s', ");
        message
            .append(&text(&self.object.name))
            .push(", ")
            .append(&text(&rule.name))
            .push(")");
        let mut found = self
            .refuse(Refusal::rows(stored, code, message).warning(warning))
            .await?;
        if within_file {
            let earlier = if rule.fuzzy_threshold().is_none() {
                let keys: Vec<Sql> = rule.criteria.iter().map(|c| c.key(Some("n"))).collect();
                earlier_same("pg_temp.import_incoming", &keys)
            } else {
                let mut pairs_in_file = Sql::raw("s.row_number IN (SELECT n.row_number FROM pg_temp.import_incoming n JOIN pg_temp.import_incoming m ON ");
                pairs_in_file.append(&pairs("n", "m"));
                pairs_in_file.push(" WHERE m.row_number < n.row_number AND NOT m.failed AND NOT n.failed)");
                pairs_in_file
            };
            let mut message = Sql::raw("format('matches an earlier row of the file by the duplicate rule %s', ");
            message.append(&text(&rule.name)).push(")");
            found += self
                .refuse(Refusal::rows(earlier, code, message).warning(warning))
                .await?;
        }
        Ok(if warning { found } else { 0 })
    }
}
