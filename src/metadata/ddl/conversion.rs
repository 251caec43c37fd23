//! How a custom field's values become another type's: the SQL converting
//! them, what a conversion loses, and the values it changed, kept so that
//! changing the type back brings them back.
//!
//! A value either converts exactly, converts but loses information (a time
//! of day, fraction digits, a number other than 0 or 1 made a boolean:
//! `loss`), or does not convert at all (`conversion` gives NULL). A type
//! change keeps every value it changes (`converted_value`); the next type
//! change of the field, if it goes back to the type before, gives the
//! records whose value did not change since their old value again.

use diesel::sql_types::{Integer, Text};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::column_type;
use crate::db::sql::{Bind, Sql};
use crate::error::Result;
use crate::metadata::custom;
use crate::metadata::{FieldDef, FieldKind, PicklistOption};

/// One type change of one field, as the kept values see it.
pub(in crate::metadata) struct Retype<'a> {
    /// The workspace's schema.
    pub schema: &'a str,
    /// The object's table.
    pub table: &'a str,
    /// The field's `custom_field` id, which its kept values name.
    pub field_id: Uuid,
    /// The field as it is, of its old type.
    pub field: &'a FieldDef,
    /// The type it gets.
    pub kind: &'a FieldKind,
    /// The field's latest conversion, when it went from `kind` to the
    /// field's type now: the one this change undoes.
    pub undone: Option<i32>,
}

impl<'a> Retype<'a> {
    /// The change of `field` (stored as `field_id` in `table`) to `kind`,
    /// with the conversion it undoes, if any.
    pub async fn new(
        conn: &mut AsyncPgConnection,
        schema: &'a str,
        table: &'a str,
        field_id: Uuid,
        field: &'a FieldDef,
        kind: &'a FieldKind,
    ) -> Result<Retype<'a>> {
        #[derive(diesel::QueryableByName)]
        struct Latest {
            #[diesel(sql_type = Integer)]
            version: i32,
            #[diesel(sql_type = Text)]
            from_type: String,
            #[diesel(sql_type = Text)]
            to_type: String,
        }
        let mut query = Sql::raw("SELECT version, from_type, to_type FROM ");
        query.table(schema, "field_conversion").push(" WHERE field_id = ");
        query
            .bind(Bind::Uuid(Some(field_id)))
            .push(" ORDER BY version DESC LIMIT 1");
        let latest: Vec<Latest> = query.load(conn).await?;
        let undone = latest
            .into_iter()
            .next()
            .filter(|l| l.from_type == kind.type_name() && l.to_type == field.kind.type_name())
            .map(|l| l.version);
        Ok(Retype {
            schema,
            table,
            field_id,
            field,
            kind,
            undone,
        })
    }

    /// A condition on the record `t`: its value is the one the undone
    /// conversion made, so its value from before that comes back.
    pub fn restorable(&self) -> Sql {
        let Some(undone) = self.undone else {
            return Sql::raw("false");
        };
        let mut after = Sql::new();
        after.column("p", "after");
        let mut sql = Sql::raw("EXISTS (SELECT 1 FROM ");
        sql.table(self.schema, "converted_value")
            .push(" AS p WHERE p.field_id = ");
        sql.bind(Bind::Uuid(Some(self.field_id)))
            .push(" AND p.version = ")
            .bind(Bind::Int(Some(undone)));
        sql.push(" AND p.record_id = t.id AND ")
            .append(&from_json(&after, &self.field.kind))
            .push(" IS NOT DISTINCT FROM ")
            .column("t", &self.field.column)
            .push(")");
        sql
    }

    /// Before the column is converted: records the conversion (the
    /// metadata version `version`) and keeps the value of every record it
    /// changes or restores. `converted` is the conversion's expression;
    /// when the storage type stays (`rewrites` false), values it leaves as
    /// they are need no keeping.
    pub async fn keep(
        &self,
        conn: &mut AsyncPgConnection,
        version: i32,
        converted: &Sql,
        rewrites: bool,
    ) -> Result<()> {
        let mut conversion = Sql::raw("INSERT INTO ");
        conversion
            .table(self.schema, "field_conversion")
            .push(" (field_id, version, from_type, to_type) VALUES (");
        conversion
            .binds([
                Bind::Uuid(Some(self.field_id)),
                Bind::Int(Some(version)),
                Bind::Text(Some(self.field.kind.type_name().into())),
                Bind::Text(Some(self.kind.type_name().into())),
            ])
            .push(")");
        conversion.execute(conn).await?;
        let restorable = self.restorable();
        let mut values = Sql::raw("INSERT INTO ");
        values
            .table(self.schema, "converted_value")
            .push(" (field_id, version, record_id, ")
            .ident("before")
            .push(", restored) SELECT ");
        values
            .bind(Bind::Uuid(Some(self.field_id)))
            .push(", ")
            .bind(Bind::Int(Some(version)));
        values
            .push(", t.id, to_jsonb(")
            .column("t", &self.field.column)
            .push("), ");
        values.append(&restorable).push(" FROM ").table(self.schema, self.table);
        values.push(" AS t WHERE ").append(&restorable).push(" OR ");
        values.column("t", &self.field.column);
        if rewrites {
            values.push(" IS NOT NULL");
        } else {
            values.push(" IS DISTINCT FROM (").append(converted).push(")");
        }
        values.execute(conn).await?;
        Ok(())
    }

    /// After the column is converted: the records the change restores get
    /// their value from before the undone conversion back, and each kept
    /// value learns what it became.
    pub async fn restore(&self, conn: &mut AsyncPgConnection, version: i32) -> Result<()> {
        if let Some(undone) = self.undone {
            let mut before = Sql::new();
            before.column("p", "before");
            let mut update = Sql::raw("UPDATE ");
            update.table(self.schema, self.table).push(" AS t SET ");
            update
                .ident(&self.field.column)
                .push(" = ")
                .append(&from_json(&before, self.kind));
            update
                .push(" FROM ")
                .table(self.schema, "converted_value")
                .push(" AS c JOIN ");
            update
                .table(self.schema, "converted_value")
                .push(" AS p ON p.field_id = c.field_id AND p.record_id = c.record_id AND p.version = ");
            update.bind(Bind::Int(Some(undone))).push(" WHERE c.field_id = ");
            update
                .bind(Bind::Uuid(Some(self.field_id)))
                .push(" AND c.version = ")
                .bind(Bind::Int(Some(version)));
            update.push(" AND c.restored AND c.record_id = t.id");
            update.execute(conn).await?;
        }
        let mut after = Sql::raw("UPDATE ");
        after
            .table(self.schema, "converted_value")
            .push(" AS c SET ")
            .ident("after");
        after
            .push(" = to_jsonb(")
            .column("t", &self.field.column)
            .push(") FROM ");
        after.table(self.schema, self.table).push(" AS t WHERE c.field_id = ");
        after
            .bind(Bind::Uuid(Some(self.field_id)))
            .push(" AND c.version = ")
            .bind(Bind::Int(Some(version)));
        after.push(" AND c.record_id = t.id");
        after.execute(conn).await?;
        Ok(())
    }
}

/// Forgets the conversions and kept values of fields being purged (`ids`).
pub(in crate::metadata) async fn forget(conn: &mut AsyncPgConnection, schema: &str, ids: Vec<Uuid>) -> Result<()> {
    for table in ["converted_value", "field_conversion"] {
        let mut delete = Sql::raw("DELETE FROM ");
        delete
            .table(schema, table)
            .push(" WHERE field_id = ANY(")
            .bind(Bind::UuidArray(ids.clone()))
            .push(")");
        delete.execute(conn).await?;
    }
    Ok(())
}

/// A kept value (`to_jsonb` of a column of `kind`'s type) as that type
/// again: exact whatever the session's time zone or date style.
fn from_json(value: &Sql, kind: &FieldKind) -> Sql {
    let mut sql = Sql::new();
    match kind {
        FieldKind::Json => {
            sql.append(value);
        }
        FieldKind::MultiPicklist(_) => {
            sql.push("CASE WHEN ")
                .append(value)
                .push(" IS NOT NULL THEN ARRAY(SELECT e.item FROM ");
            sql.push("jsonb_array_elements_text(")
                .append(value)
                .push(") WITH ORDINALITY AS e(item, n) ORDER BY e.n) END");
        }
        _ => {
            sql.push("(").append(value).push(" #>> '{}')::").push(column_type(kind));
        }
    }
    sql
}

/// What converting `field`'s values to `kind` can lose: a condition true
/// for the values that lose information (evaluated on any value, it never
/// fails), and what they lose, in words. `None` when every value that
/// converts converts exactly: a text that is trimmed or matched to a
/// picklist option by its label keeps its meaning; a longer text than the
/// new type takes does not convert at all.
pub(in crate::metadata) fn loss(field: &FieldDef, kind: &FieldKind) -> Option<(Sql, &'static str)> {
    let numeric = field.kind.is_decimal() || field.kind == FieldKind::Integer;
    let column = || column_of(field);
    let txt = || trimmed_text_of(field);
    let parses = |target: &str| {
        let mut sql = Sql::raw("crm_system.convertible(");
        sql.append(&txt()).push(", '").push(target).push("')");
        sql
    };
    // The lost test runs only where the text parses (a CASE keeps the order).
    let parsed = |valid: Sql, lost: Sql| {
        let mut sql = Sql::raw("CASE WHEN ");
        sql.append(&valid).push(" THEN ").append(&lost).push(" ELSE false END");
        sql
    };
    let mut lost = Sql::new();
    let what = match kind {
        FieldKind::Boolean if numeric => {
            lost.append(&column()).push(" NOT IN (0, 1)");
            "their number (every number but 0 becomes true)"
        }
        FieldKind::Date if field.kind == FieldKind::DateTime => {
            lost.push("(")
                .append(&column())
                .push(" AT TIME ZONE 'UTC')::time <> time '00:00'");
            "the time of day"
        }
        FieldKind::Date => {
            let mut valid = parses("date");
            valid.push(" AND ").append(&parses("timestamptz"));
            let mut differs = txt();
            differs.push("::timestamp <> ").append(&txt()).push("::date::timestamp");
            lost = parsed(valid, differs);
            "the time of day"
        }
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent
            if !numeric && field.kind != FieldKind::Boolean =>
        {
            let mut differs = txt();
            differs.push("::numeric <> ").append(&txt()).push("::numeric(18, 2)");
            lost = parsed(parses("numeric"), differs);
            "digits after the second decimal place"
        }
        FieldKind::Text
        | FieldKind::LongText
        | FieldKind::Email
        | FieldKind::Url
        | FieldKind::Phone
        | FieldKind::Picklist(_)
        | FieldKind::MultiPicklist(_)
        | FieldKind::Json
            if field.kind == FieldKind::DateTime =>
        {
            lost.push("date_trunc('second', ")
                .append(&column())
                .push(") <> ")
                .append(&column());
            "fractions of a second"
        }
        _ => return None,
    };
    Some((lost, what))
}

/// A field's column.
fn column_of(field: &FieldDef) -> Sql {
    let mut sql = Sql::new();
    sql.ident(&field.column);
    sql
}

/// A field's value as text without surrounding spaces: what conversions parse.
fn trimmed_text_of(field: &FieldDef) -> Sql {
    let mut sql = Sql::raw("btrim(");
    sql.append(&text_of(field)).push(")");
    sql
}

/// A field's value as text, for conversions and samples.
pub(in crate::metadata) fn text_of(field: &FieldDef) -> Sql {
    let mut sql = Sql::new();
    match field.kind {
        FieldKind::DateTime => {
            sql.push("to_char(").ident(&field.column);
            sql.push(" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
        }
        FieldKind::MultiPicklist(_) => {
            sql.push("array_to_string(").ident(&field.column).push(", ';')");
        }
        FieldKind::Json => {
            sql.push("CASE WHEN jsonb_typeof(")
                .ident(&field.column)
                .push(") = 'string' THEN ");
            sql.ident(&field.column)
                .push(" #>> '{}' ELSE ")
                .ident(&field.column)
                .push("::text END");
        }
        FieldKind::Text
        | FieldKind::Email
        | FieldKind::Url
        | FieldKind::Phone
        | FieldKind::LongText
        | FieldKind::Picklist(_) => {
            sql.ident(&field.column);
        }
        _ => {
            sql.ident(&field.column).push("::text");
        }
    }
    sql
}

/// The expression converting `field`'s column to `kind`: the new value,
/// or NULL where the old one does not convert.
pub(in crate::metadata) fn conversion(field: &FieldDef, kind: &FieldKind) -> std::result::Result<Sql, String> {
    if matches!(field.kind, FieldKind::Lookup(_)) || matches!(kind, FieldKind::Lookup(_)) {
        return Err("a lookup's type cannot change: add a new field instead".into());
    }
    let column = || column_of(field);
    let txt = || trimmed_text_of(field);
    let when = case_when;
    let castable = |target: &str, cast: &str| {
        let mut valid = Sql::raw("crm_system.convertible(");
        valid.append(&txt()).push(", '").push(target).push("')");
        let mut value = txt();
        value.push("::").push(cast);
        when(valid, value)
    };
    let numeric = field.kind.is_decimal() || field.kind == FieldKind::Integer;
    Ok(match kind {
        FieldKind::Text | FieldKind::LongText | FieldKind::Phone | FieldKind::Email | FieldKind::Url => {
            to_text(field, kind)
        }
        FieldKind::Integer if numeric => {
            let mut valid = column();
            valid
                .push(" = trunc(")
                .append(&column())
                .push(") AND ")
                .append(&column());
            valid.push(" BETWEEN -2147483648 AND 2147483647");
            let mut value = column();
            value.push("::integer");
            when(valid, value)
        }
        FieldKind::Integer if field.kind == FieldKind::Boolean => {
            let mut sql = Sql::raw("CASE WHEN ");
            sql.append(&column()).push(" THEN 1 ELSE 0 END");
            sql
        }
        FieldKind::Integer => castable("integer", "integer"),
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent if numeric => {
            let mut valid = Sql::raw("abs(");
            valid.append(&column()).push(") < 1e16");
            let mut value = column();
            value.push("::numeric(18, 2)");
            when(valid, value)
        }
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent if field.kind == FieldKind::Boolean => {
            let mut sql = Sql::raw("CASE WHEN ");
            sql.append(&column()).push(" THEN 1 ELSE 0 END::numeric(18, 2)");
            sql
        }
        FieldKind::Decimal | FieldKind::Currency | FieldKind::Percent => castable("numeric", "numeric(18, 2)"),
        FieldKind::Boolean if numeric => {
            let mut sql = Sql::raw("(");
            sql.append(&column()).push(" <> 0)");
            sql
        }
        FieldKind::Boolean => castable("boolean", "boolean"),
        FieldKind::Date if field.kind == FieldKind::DateTime => {
            let mut sql = Sql::raw("(");
            sql.append(&column()).push(" AT TIME ZONE 'UTC')::date");
            sql
        }
        FieldKind::Date => castable("date", "date"),
        FieldKind::DateTime if field.kind == FieldKind::Date => {
            let mut sql = Sql::raw("(");
            sql.append(&column()).push("::timestamp AT TIME ZONE 'UTC')");
            sql
        }
        FieldKind::DateTime => castable("timestamptz", "timestamptz"),
        FieldKind::Picklist(options) => option_of(txt(), options),
        FieldKind::MultiPicklist(options) => {
            let mut sql = Sql::raw("CASE WHEN (");
            sql.append(&option_of(txt(), options)).push(") IS NOT NULL THEN ARRAY[");
            sql.append(&option_of(txt(), options)).push("] END");
            sql
        }
        FieldKind::Json if field.kind == FieldKind::Json => column(),
        FieldKind::Json if numeric || field.kind == FieldKind::Boolean => {
            let mut sql = Sql::raw("to_jsonb(");
            sql.append(&column()).push(")");
            sql
        }
        FieldKind::Json => {
            let mut sql = Sql::raw("to_jsonb(");
            sql.append(&text_of(field)).push(")");
            sql
        }
        FieldKind::Id | FieldKind::Lookup(_) => return Err("a field cannot become an id or a lookup".into()),
    })
}

/// `CASE WHEN <valid> THEN <value> END`: the value, or NULL where it is
/// not valid.
fn case_when(valid: Sql, value: Sql) -> Sql {
    let mut sql = Sql::raw("CASE WHEN ");
    sql.append(&valid).push(" THEN ").append(&value).push(" END");
    sql
}

/// The conversion to a text kind: any value as text, kept where it fits
/// the kind's length (and looks like an email address or a web address).
fn to_text(field: &FieldDef, kind: &FieldKind) -> Sql {
    let txt = || trimmed_text_of(field);
    match kind {
        FieldKind::Email => {
            let mut valid = Sql::raw("char_length(");
            valid.append(&txt()).push(") <= 320 AND ").append(&txt());
            valid.push(" ~ '^[^@[:space:]]+@[^@[:space:].]+(\\.[^@[:space:].]+)+$'");
            case_when(valid, txt())
        }
        FieldKind::Url => {
            let mut valid = Sql::raw("char_length(");
            valid
                .append(&txt())
                .push(") <= 2048 AND ")
                .append(&txt())
                .push(" !~ '[[:space:]]' AND (");
            valid
                .append(&txt())
                .push(" LIKE '%.%' OR ")
                .append(&txt())
                .push(" LIKE '%://%')");
            case_when(valid, txt())
        }
        _ => {
            let max = custom::max_length(kind).unwrap_or(255);
            let mut valid = Sql::raw("char_length(");
            valid.append(&text_of(field)).push(") <= ").push(&max.to_string());
            case_when(valid, text_of(field))
        }
    }
}

/// The picklist value `text` names, by value or (case-insensitively) by
/// label; NULL when it names none.
fn option_of(text: Sql, options: &[PicklistOption]) -> Sql {
    let mut sql = Sql::raw("CASE");
    for option in options {
        sql.push(" WHEN ")
            .append(&text)
            .push(" = ")
            .string_literal(&option.value);
        sql.push(" OR lower(")
            .append(&text)
            .push(") = lower(")
            .string_literal(&option.label);
        sql.push(") THEN ").string_literal(&option.value);
    }
    sql.push(" END");
    sql
}
