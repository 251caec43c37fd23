//! Copies production's rows into a new sandbox, inside Postgres: one
//! `INSERT … SELECT` per table, no row passes through the server.
//!
//! Configuration (pipelines, stages) always comes along in full and as it
//! is. Records come along by mode: none, a sample that keeps every
//! relation consistent (a lookup whose record is not in the sample is left
//! empty, and a record whose required lookup's record is not in the sample
//! is not taken), or all of them. With `mask`, records' personal data is
//! replaced by deterministic fake values in the same statement (the
//! `crm_system.mask_*` functions); configuration is metadata a promotion
//! moves back to production, so it is never masked. What the server
//! records of the copied records (stage entries, field changes, lifecycle
//! changes) comes along with them, all of it.

use std::collections::{HashMap, HashSet};

use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::AsyncPgConnection;

use super::Progress;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::custom::{Customizations, StoredField, StoredObject};
use crate::metadata::{Access, Personal};

/// Which records a sandbox gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    None,
    /// Up to this many live records of each object, the newest and the
    /// best connected first.
    Sample(i64),
    All,
}

/// What one copy takes and where it puts it.
pub struct Copy<'a> {
    /// The Postgres schemas copied from and into.
    pub from: &'a str,
    pub to: &'a str,
    pub records: Records,
    pub mask: bool,
    pub progress: &'a dyn Progress,
}

/// One table to fill, with the columns both sides have.
struct Table {
    name: String,
    configuration: bool,
    /// What the server records of records (stage entries): all of the
    /// copied records' rows, however many.
    history: bool,
    /// A custom object's table.
    custom: bool,
    columns: Vec<Column>,
}

struct Column {
    name: String,
    not_null: bool,
    /// A custom field's column.
    custom: bool,
    /// The table a lookup column refers to, when that table is copied too.
    refers_to: Option<String>,
    /// What personal data it holds: a record's column only.
    personal: Option<Personal>,
}

impl Copy<'_> {
    /// Fills the sandbox from production. `custom` is production's
    /// customizations, retained (deleted) ones included: their tables and
    /// columns still hold data, and a restore in the sandbox brings it back.
    /// Returns how many rows were copied.
    pub async fn run(&self, conn: &mut AsyncPgConnection, custom: &Customizations) -> Result<u64> {
        let tables = self.tables(conn, custom).await?;
        let salt = if self.mask { Some(mask_salt(conn).await?) } else { None };
        let estimate = self.estimate(conn, &tables).await?;
        self.progress.start(estimate);
        let mut copied = 0;
        let configuration: Vec<&Table> = tables.iter().filter(|t| t.configuration).collect();
        // The migrations made the standard pipeline; production's replaces it.
        for table in configuration.iter().rev() {
            let mut clear = Sql::raw("DELETE FROM ");
            clear.table(self.to, &table.name);
            clear.execute(conn).await?;
        }
        let records: Vec<&Table> = tables.iter().filter(|t| !t.configuration).collect();
        let mut samples = HashMap::new();
        if let Records::Sample(size) = self.records {
            for (i, table) in records.iter().enumerate() {
                let temp = format!("crm_sample_{i}");
                self.sample(conn, table, &temp, size, &samples).await?;
                samples.insert(table.name.clone(), temp);
            }
        }
        let mut order: Vec<&Table> = configuration;
        if self.records != Records::None {
            order.extend(records.iter().copied());
        }
        // The rows come from one consistent snapshot of production and the
        // sample keeps every lookup inside it, so where the role may (a
        // superuser), foreign keys and triggers are not checked row by row.
        // Otherwise the database checks every row, and a lookup to a table
        // not copied yet is filled afterwards.
        let unchecked = is_superuser(conn).await?;
        let mut filled: HashSet<&str> = HashSet::new();
        if unchecked {
            Sql::raw("SET LOCAL session_replication_role = replica")
                .execute(conn)
                .await?;
            filled.extend(order.iter().map(|t| t.name.as_str()));
        }
        // Indexes are built once over all the rows, far faster than row by
        // row: the copy drops those of the record tables and makes them
        // again, exactly as the catalog defines them.
        let indexes = if self.records == Records::All {
            drop_indexes(conn, self.to, &records).await?
        } else {
            Vec::new()
        };
        let mut deferred = Vec::new();
        for table in &order {
            self.progress.step(&format!("copying {}", table.name));
            let rows = self
                .insert(conn, table, &filled, &samples, salt.as_deref(), &mut deferred)
                .await?;
            copied += rows;
            self.progress.copied(rows);
            filled.insert(&table.name);
        }
        for (table, column) in deferred {
            self.fill_later(conn, table, column, &samples).await?;
        }
        if !unchecked && order.iter().any(|t| t.name == "opportunity") {
            self.stale_dates(conn).await?;
        }
        if !indexes.is_empty() {
            self.progress.step("indexing");
            Sql::raw("SET LOCAL maintenance_work_mem = '128MB'")
                .execute(conn)
                .await?;
            for index in indexes {
                Sql::raw(&index).execute(conn).await?;
            }
        }
        if unchecked {
            Sql::raw("SET LOCAL session_replication_role = DEFAULT")
                .execute(conn)
                .await?;
        }
        Ok(copied)
    }

    /// The tables to fill, parents before children: configuration first,
    /// then records.
    async fn tables(&self, conn: &mut AsyncPgConnection, custom: &Customizations) -> Result<Vec<Table>> {
        let model = everything(custom).model()?;
        let ours = columns(conn, self.to).await?;
        let theirs: HashSet<(String, String)> = columns(conn, self.from)
            .await?
            .into_iter()
            .map(|c| (c.table_name, c.column_name))
            .collect();
        let copied: Vec<_> = model
            .objects()
            .iter()
            .filter(|o| o.schema.is_none())
            .filter(|o| matches!(o.access, Access::Record | Access::Configuration | Access::History))
            .collect();
        let table_of: HashMap<&str, &str> = copied.iter().map(|o| (o.name.as_str(), o.table.as_str())).collect();
        let mut tables = Vec::new();
        for object in &copied {
            let columns = ours
                .iter()
                .filter(|c| c.table_name == object.table)
                .filter(|c| theirs.contains(&(c.table_name.clone(), c.column_name.clone())))
                .map(|c| {
                    let field = object.fields.iter().find(|f| f.column == c.column_name);
                    Column {
                        name: c.column_name.clone(),
                        not_null: c.not_null,
                        custom: field.is_some_and(|f| f.custom),
                        refers_to: field
                            .and_then(|f| f.lookup())
                            .and_then(|l| table_of.get(l.target.as_str()))
                            .map(|t| t.to_string()),
                        // Only records hold people's data: configuration
                        // (a pipeline's description) is copied as it is.
                        personal: field
                            .filter(|_| object.access == Access::Record)
                            .and_then(|f| f.personal),
                    }
                })
                .collect();
            tables.push(Table {
                name: object.table.clone(),
                configuration: object.access == Access::Configuration,
                history: object.access == Access::History,
                custom: object.custom,
                columns,
            });
        }
        Ok(parents_first(tables))
    }

    /// How many rows the copy will take, from the planner's statistics.
    async fn estimate(&self, conn: &mut AsyncPgConnection, tables: &[Table]) -> Result<u64> {
        #[derive(diesel::QueryableByName)]
        struct Estimate {
            #[diesel(sql_type = Text)]
            table_name: String,
            #[diesel(sql_type = BigInt)]
            rows: i64,
        }
        let mut query = Sql::raw(
            "SELECT c.relname AS table_name, greatest(c.reltuples, 0)::bigint AS rows FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = ",
        );
        query.bind(Bind::Text(Some(self.from.to_owned())));
        let rows: Vec<Estimate> = query.load(conn).await?;
        let mut total = 0;
        for table in tables {
            let rows = rows.iter().find(|r| r.table_name == table.name).map_or(0, |r| r.rows);
            total += match (table.configuration, self.records) {
                (true, _) | (false, Records::All) => rows,
                (false, Records::Sample(size)) => rows.min(size),
                (false, Records::None) => 0,
            };
        }
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Picks the ids of the sample of `table` into the temporary table
    /// `temp`: live records whose required lookups point into the samples
    /// made before, those pointing into them most first, then the newest.
    async fn sample(
        &self,
        conn: &mut AsyncPgConnection,
        table: &Table,
        temp: &str,
        size: i64,
        samples: &HashMap<String, String>,
    ) -> Result<()> {
        let mut query = Sql::raw("CREATE TEMPORARY TABLE ");
        query.ident(temp).push(" ON COMMIT DROP AS SELECT src.id FROM ");
        query
            .table(self.from, &table.name)
            .push(" AS src WHERE src.deleted_at IS NULL");
        let mut connected = Vec::new();
        for column in &table.columns {
            let Some(sample) = column.refers_to.as_ref().and_then(|t| samples.get(t)) else {
                continue;
            };
            let mut test = Sql::new();
            test.column("src", &column.name)
                .push(" IN (SELECT id FROM ")
                .ident(sample)
                .push(")");
            if column.not_null {
                query.push(" AND ").append(&test);
            } else {
                connected.push(test);
            }
        }
        query.push(" ORDER BY ");
        for test in &connected {
            query.push("(").append(test).push(")::int + ");
        }
        if !connected.is_empty() {
            query.push("0 DESC, ");
        }
        query.push("src.created_at DESC, src.id");
        if !table.history {
            query.push(" LIMIT ").bind(Bind::Int(Some(
                i32::try_from(size).map_err(|_| CrmError::internal("sample size out of range"))?,
            )));
        }
        query.execute(conn).await?;
        Ok(())
    }

    /// Copies the rows of one table. A lookup to a table not filled yet (a
    /// cycle of lookups) is left empty here and filled by `fill_later`.
    #[allow(clippy::too_many_arguments)]
    async fn insert<'t>(
        &self,
        conn: &mut AsyncPgConnection,
        table: &'t Table,
        filled: &HashSet<&str>,
        samples: &HashMap<String, String>,
        salt: Option<&str>,
        deferred: &mut Vec<(&'t Table, &'t Column)>,
    ) -> Result<u64> {
        if table.history {
            // Rows the copied records' triggers recorded (where they ran)
            // are replaced by production's.
            let mut clear = Sql::raw("DELETE FROM ");
            clear.table(self.to, &table.name);
            clear.execute(conn).await?;
        }
        let mut query = Sql::raw("INSERT INTO ");
        query.table(self.to, &table.name).push(" (");
        let names: Vec<Sql> = table
            .columns
            .iter()
            .map(|c| {
                let mut name = Sql::new();
                name.ident(&c.name);
                name
            })
            .collect();
        query.join(&names, ", ").push(") SELECT ");
        let mut values = Vec::new();
        for column in &table.columns {
            let mut value = Sql::new();
            match &column.refers_to {
                Some(target) if *target != table.name && !filled.contains(target.as_str()) => {
                    deferred.push((table, column));
                    value.push("NULL");
                }
                Some(target) if samples.contains_key(target) => {
                    value.push("CASE WHEN ").column("src", &column.name);
                    value
                        .push(" IN (SELECT id FROM ")
                        .ident(&samples[target])
                        .push(") THEN ");
                    value.column("src", &column.name).push(" END");
                }
                _ => match (column.personal, salt) {
                    (Some(personal), Some(salt)) => masked(&mut value, personal, salt, &column.name),
                    _ => {
                        value.column("src", &column.name);
                    }
                },
            }
            values.push(value);
        }
        query.join(&values, ", ").push(" FROM ");
        query.table(self.from, &table.name).push(" AS src");
        if let Some(sample) = samples.get(&table.name) {
            query.push(" WHERE src.id IN (SELECT id FROM ").ident(sample).push(")");
        }
        let rows = query.execute(conn).await?;
        Ok(rows as u64)
    }

    /// Where triggers ran during the copy (not a superuser), they dated the
    /// copied deals' staleness from their copy: production's dates are put
    /// back (an update of `stale_at` alone fires no trigger).
    async fn stale_dates(&self, conn: &mut AsyncPgConnection) -> Result<()> {
        let mut query = Sql::raw("UPDATE ");
        query
            .table(self.to, "opportunity")
            .push(" AS dst SET stale_at = src.stale_at FROM ");
        query
            .table(self.from, "opportunity")
            .push(" AS src WHERE dst.id = src.id AND dst.stale_at IS DISTINCT FROM src.stale_at");
        query.execute(conn).await?;
        Ok(())
    }

    /// Sets a lookup left empty by `insert` once its table is filled.
    async fn fill_later(
        &self,
        conn: &mut AsyncPgConnection,
        table: &Table,
        column: &Column,
        samples: &HashMap<String, String>,
    ) -> Result<()> {
        let mut query = Sql::raw("UPDATE ");
        query
            .table(self.to, &table.name)
            .push(" AS dst SET ")
            .ident(&column.name);
        query.push(" = src.").ident(&column.name).push(" FROM ");
        query
            .table(self.from, &table.name)
            .push(" AS src WHERE dst.id = src.id AND ");
        query.column("src", &column.name).push(" IS NOT NULL");
        if let Some(sample) = column.refers_to.as_ref().and_then(|t| samples.get(t)) {
            query.push(" AND ").column("src", &column.name);
            query.push(" IN (SELECT id FROM ").ident(sample).push(")");
        }
        query.execute(conn).await?;
        Ok(())
    }
}

/// The fake value of a personal column: `crm_system.mask_*` keyed by the
/// installation's salt, so the same input gives the same fake everywhere.
fn masked(value: &mut Sql, personal: Personal, salt: &str, column: &str) {
    let keyed = |value: &mut Sql, function: &str| {
        value.push("crm_system.").push(function).push("(");
        value.bind(Bind::Text(Some(salt.to_owned()))).push(", ");
        value.column("src", column).push(")");
    };
    match personal {
        Personal::GivenName => keyed(value, "mask_given_name"),
        Personal::FamilyName => keyed(value, "mask_family_name"),
        Personal::Email => keyed(value, "mask_email"),
        Personal::Phone => keyed(value, "mask_phone"),
        Personal::Street => keyed(value, "mask_street"),
        Personal::City => keyed(value, "mask_city"),
        Personal::PostalCode => keyed(value, "mask_postal_code"),
        Personal::FreeText => {
            value.push("crm_system.mask_text(").column("src", column).push(")");
        }
        Personal::Birthdate => {
            value.push("crm_system.mask_date(").column("src", column).push(")");
        }
    }
}

/// Tables in an order where a record's parents come before it: the
/// targets of its required lookups, of its standard lookups and of a
/// custom object's lookups. A custom lookup added to a standard object is
/// a reference, not a parent (as for record visibility): when its target
/// comes later, it is filled after both are copied. Configuration tables
/// come first.
fn parents_first(tables: Vec<Table>) -> Vec<Table> {
    fn visit(i: usize, tables: &[Table], state: &mut [u8], order: &mut Vec<usize>) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        // Required lookups first: those must be satisfied at insert.
        let mut parents: Vec<&Column> = tables[i]
            .columns
            .iter()
            .filter(|c| c.refers_to.is_some() && (c.not_null || !c.custom || tables[i].custom))
            .collect();
        parents.sort_by_key(|c| !c.not_null);
        for column in parents {
            if let Some(j) = tables.iter().position(|t| Some(&t.name) == column.refers_to.as_ref()) {
                visit(j, tables, state, order);
            }
        }
        state[i] = 2;
        order.push(i);
    }
    let mut state = vec![0; tables.len()];
    let mut order = Vec::new();
    for configuration in [true, false] {
        for i in 0..tables.len() {
            if tables[i].configuration == configuration {
                visit(i, &tables, &mut state, &mut order);
            }
        }
    }
    let mut slots: Vec<Option<Table>> = tables.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Every custom object and field as if none were deleted: the model of
/// everything that has a table or a column.
fn everything(custom: &Customizations) -> Customizations {
    Customizations {
        objects: custom
            .objects
            .iter()
            .map(|o| StoredObject {
                deleted_at: None,
                ..o.clone()
            })
            .collect(),
        fields: custom
            .fields
            .iter()
            .map(|f| StoredField {
                deleted_at: None,
                ..f.clone()
            })
            .collect(),
    }
}

#[derive(diesel::QueryableByName)]
struct CatalogColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

/// The stored columns of every table of a schema (generated ones are
/// computed again on insert).
async fn columns(conn: &mut AsyncPgConnection, schema: &str) -> Result<Vec<CatalogColumn>> {
    let mut query = Sql::raw(
        "SELECT c.relname::text AS table_name, a.attname::text AS column_name, a.attnotnull AS not_null \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND n.nspname = ",
    );
    query.bind(Bind::Text(Some(schema.to_owned())));
    query.push(" ORDER BY c.relname, a.attnum");
    Ok(query.load(conn).await?)
}

/// Whether the connection's role is a superuser (may skip row checks).
async fn is_superuser(conn: &mut AsyncPgConnection) -> Result<bool> {
    let rows: Vec<crate::db::sql::Exists> =
        Sql::raw("SELECT true AS exists WHERE current_setting('is_superuser') = 'on'")
            .load(conn)
            .await?;
    Ok(!rows.is_empty())
}

/// Drops the indexes of `tables` that no constraint needs (primary keys and
/// unique constraints stay) and returns the statements making them again.
async fn drop_indexes(conn: &mut AsyncPgConnection, schema: &str, tables: &[&Table]) -> Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Index {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        definition: String,
    }
    let mut query = Sql::raw(
        "SELECT ic.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AND n.nspname = ",
    );
    query.bind(Bind::Text(Some(schema.to_owned())));
    query
        .push(" AND c.relname::text = ANY(")
        .bind(Bind::TextArray(Some(tables.iter().map(|t| t.name.clone()).collect())));
    query.push(") ORDER BY ic.relname");
    let indexes: Vec<Index> = query.load(conn).await?;
    for index in &indexes {
        let mut drop = Sql::raw("DROP INDEX ");
        drop.table(schema, &index.name);
        drop.execute(conn).await?;
    }
    Ok(indexes.into_iter().map(|i| i.definition).collect())
}

/// The installation's masking key (made by the migrations).
async fn mask_salt(conn: &mut AsyncPgConnection) -> Result<String> {
    #[derive(diesel::QueryableByName)]
    struct Secret {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let rows: Vec<Secret> = Sql::raw("SELECT value FROM crm_system.secret WHERE name = 'mask_salt'")
        .load(conn)
        .await?;
    rows.into_iter()
        .next()
        .map(|s| s.value)
        .ok_or_else(|| CrmError::internal("crm_system.secret has no mask_salt"))
}
