//! A custom field's type changed: what the change would do to the
//! values (the preview a user sees before deciding), the refusals when
//! values do not convert or would lose information, and the change
//! itself, which keeps every value it changes so changing the type back
//! restores them. The conversion SQL is [`ddl::conversion`].

use diesel::sql_types::{BigInt, Text};
use diesel_async::AsyncPgConnection;

use super::checks::{check_flags, check_options};
use crate::audit::Action;
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::change::{self, Made, Recorded, RowUpdate, State, Target};
use crate::metadata::custom::{self, StoredField};
use crate::metadata::ddl::conversion::{self, conversion, text_of, Retype};
use crate::metadata::ddl::{self, column_type, SAMPLES};
use crate::metadata::{FieldDef, FieldKind, ObjectDef, PicklistOption};

/// What a type change does to values that do not convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// Refuse the change (the default).
    Fail,
    /// Clear them.
    SetNull,
}

/// What a type change does to values that convert but lose information
/// (a time of day, fraction digits, a number other than 0 or 1 made a
/// boolean): losing them silently is what a user cannot take back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLossy {
    /// Refuse the change (the default).
    Refuse,
    /// Convert them anyway; changing the type back restores them for the
    /// records not changed since.
    Accept,
}

/// A field type change as asked.
#[derive(Debug, Clone)]
pub struct TypeChange {
    /// The `FieldType` the field becomes.
    pub type_name: String,
    /// The options of a new picklist type.
    pub options: Vec<PicklistOption>,
    /// What happens to values that do not convert.
    pub on_invalid: OnInvalid,
    /// What happens to values that would lose information.
    pub on_lossy: OnLossy,
}

/// What a type change would do to existing records.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The object the field is on.
    pub object: String,
    /// The field's name.
    pub field: String,
    /// The type it has.
    pub from: String,
    /// The type it would get.
    pub to: String,
    /// Records with a value (every record counts, deleted ones too).
    pub with_value: i64,
    /// Values that convert, lossy ones included.
    pub convertible: i64,
    /// Values that do not convert (cleared with `SET_NULL`).
    pub invalid: i64,
    /// Records whose value does not convert: id and value as text.
    pub samples: Vec<(String, String)>,
    /// Of the convertible values, those that lose information.
    pub lossy: i64,
    /// What a lossy value loses, in words; `None` when the conversion
    /// cannot lose anything.
    pub loses: Option<&'static str>,
    /// Some of the lossy values.
    pub lossy_samples: Vec<LossyValue>,
    /// Records whose value from before the field's previous type change
    /// comes back: this change undoes that one for the records whose value
    /// did not change since.
    pub restored: i64,
    /// Whether the column's storage type changes, rewriting the table.
    pub rewrites_table: bool,
}

/// A value a type change converts but loses information of.
#[derive(Debug, Clone)]
pub struct LossyValue {
    /// The record holding the value.
    pub record_id: String,
    /// The value now, as text.
    pub value: String,
    /// The value it would become, as text.
    pub converted: String,
}

/// A type change made: the field as it is now, and what the change did to
/// the values (what a promotion reports of it).
#[derive(Debug, Clone)]
pub struct TypeChanged {
    /// The field as it now is.
    pub field: StoredField,
    /// What the change did to the values.
    pub preview: Preview,
}

/// What changing a field's type would do, without changing anything.
pub async fn preview_type_change(
    conn: &mut AsyncPgConnection,
    schema: &str,
    object: &str,
    name: &str,
    change: &TypeChange,
) -> Result<Preview> {
    let state = State::read(conn, schema).await?;
    let (object_def, field, stored) = state.custom_field(object, name)?;
    let kind = new_kind(&field, change)?;
    let retype = Retype::new(conn, schema, &object_def.table, stored.id, &field, &kind).await?;
    preview(conn, &object_def, &retype).await
}

/// Counts what a type change does to each record's value: converts it
/// exactly, loses information of it, cannot convert it, or gives back its
/// value from before the type change it undoes.
async fn preview(conn: &mut AsyncPgConnection, object: &ObjectDef, retype: &Retype<'_>) -> Result<Preview> {
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        with_value: i64,
        #[diesel(sql_type = BigInt)]
        invalid: i64,
        #[diesel(sql_type = BigInt)]
        lossy: i64,
        #[diesel(sql_type = BigInt)]
        restored: i64,
    }
    let (field, kind) = (retype.field, retype.kind);
    let values = Values::of(retype)?;
    let mut counts = Sql::raw("SELECT count(*) FILTER (WHERE ");
    counts
        .ident(&field.column)
        .push(" IS NOT NULL) AS with_value, count(*) FILTER (WHERE ");
    counts
        .append(&values.invalid)
        .push(") AS invalid, count(*) FILTER (WHERE ");
    counts.append(&values.lossy).push(") AS lossy, count(*) FILTER (WHERE ");
    counts.append(&values.restorable).push(") AS restored");
    from_table(&mut counts, retype.schema, object);
    let counts: Vec<Counts> = counts.load(conn).await?;
    let (with_value, invalid, lossy, restored) = counts
        .first()
        .map(|c| (c.with_value, c.invalid, c.lossy, c.restored))
        .unwrap_or_default();
    let samples = if invalid > 0 {
        values.invalid_samples(conn, retype, object).await?
    } else {
        Vec::new()
    };
    let lossy_samples = if lossy > 0 {
        values.lossy_samples(conn, retype, object).await?
    } else {
        Vec::new()
    };
    Ok(Preview {
        object: object.name.clone(),
        field: field.name.clone(),
        from: field.kind.type_name().into(),
        to: kind.type_name().into(),
        with_value,
        convertible: with_value - invalid,
        invalid,
        samples,
        lossy,
        loses: values.loses,
        lossy_samples,
        restored,
        rewrites_table: column_type(&field.kind) != column_type(kind),
    })
}

/// ` FROM <table> AS t`, the table a preview reads.
fn from_table(sql: &mut Sql, schema: &str, object: &ObjectDef) {
    sql.push(" FROM ").table(schema, &object.table).push(" AS t");
}

/// The conditions a preview counts values by, over the table aliased `t`.
struct Values {
    /// The value converted to the new type (NULL when it does not convert).
    converted: Sql,
    /// A value that does not convert (and is not given back).
    invalid: Sql,
    /// A value that converts but loses information.
    lossy: Sql,
    /// A value the change gives back from before the change it undoes.
    restorable: Sql,
    /// What a lossy value loses, in words.
    loses: Option<&'static str>,
}

impl Values {
    fn of(retype: &Retype<'_>) -> Result<Values> {
        let (field, kind) = (retype.field, retype.kind);
        let converted = conversion(field, kind).map_err(|why| CrmError::bad_input(&["newType"], why))?;
        let restorable = retype.restorable();
        let mut kept = Sql::raw(" AND NOT (");
        kept.append(&restorable).push(")");
        let mut invalid = Sql::new();
        invalid
            .ident(&field.column)
            .push(" IS NOT NULL AND (")
            .append(&converted)
            .push(") IS NULL")
            .append(&kept);
        let loss = conversion::loss(field, kind);
        let mut lossy = Sql::new();
        match &loss {
            Some((lost, _)) => {
                lossy
                    .ident(&field.column)
                    .push(" IS NOT NULL AND (")
                    .append(&converted)
                    .push(") IS NOT NULL AND (");
                lossy.append(lost).push(")").append(&kept);
            }
            None => {
                lossy.push("false");
            }
        }
        Ok(Values {
            converted,
            invalid,
            lossy,
            restorable,
            loses: loss.map(|(_, what)| what),
        })
    }

    /// Some records whose value does not convert: id and value as text.
    async fn invalid_samples(
        &self,
        conn: &mut AsyncPgConnection,
        retype: &Retype<'_>,
        object: &ObjectDef,
    ) -> Result<Vec<(String, String)>> {
        #[derive(diesel::QueryableByName)]
        struct Sample {
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = Text)]
            value: String,
        }
        let mut samples = Sql::raw("SELECT t.id::text AS id, ");
        samples.append(&text_of(retype.field)).push(" AS value");
        from_table(&mut samples, retype.schema, object);
        samples
            .push(" WHERE ")
            .append(&self.invalid)
            .push(" ORDER BY t.id LIMIT ")
            .push(&SAMPLES.to_string());
        let samples: Vec<Sample> = samples.load(conn).await?;
        Ok(samples.into_iter().map(|s| (s.id, s.value)).collect())
    }

    /// Some values that would lose information, and what they would become.
    async fn lossy_samples(
        &self,
        conn: &mut AsyncPgConnection,
        retype: &Retype<'_>,
        object: &ObjectDef,
    ) -> Result<Vec<LossyValue>> {
        #[derive(diesel::QueryableByName)]
        struct Lossy {
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = Text)]
            value: String,
            #[diesel(sql_type = Text)]
            converted: String,
        }
        let mut query = Sql::raw("SELECT t.id::text AS id, ");
        query.append(&text_of(retype.field)).push(" AS value, to_jsonb(");
        query.append(&self.converted).push(") #>> '{}' AS converted");
        from_table(&mut query, retype.schema, object);
        query
            .push(" WHERE ")
            .append(&self.lossy)
            .push(" ORDER BY t.id LIMIT ")
            .push(&SAMPLES.to_string());
        let lossy: Vec<Lossy> = query.load(conn).await?;
        Ok(lossy
            .into_iter()
            .map(|s| LossyValue {
                record_id: s.id,
                value: s.value,
                converted: s.converted,
            })
            .collect())
    }
}

/// The kind a type change asks for, or why the field cannot become it.
fn new_kind(field: &FieldDef, change: &TypeChange) -> Result<FieldKind> {
    let kind = custom::kind_of(&change.type_name, change.options.clone(), None, None, &field.label).ok_or_else(
        || match change.type_name.as_str() {
            "LOOKUP" => CrmError::bad_input(&["newType"], "a field cannot become a lookup: add a lookup field"),
            other => CrmError::bad_input(&["newType"], format!("{other} is not a field type")),
        },
    )?;
    if let Some(options) = kind.options() {
        check_options(options, vec!["options".into()])?;
    }
    if kind.type_name() == field.kind.type_name() {
        return Err(CrmError::bad_input(
            &["newType"],
            format!("{} is already {}", field.name, kind.type_name()),
        ));
    }
    Ok(kind)
}

/// Changes a custom field's type, converting its values. Values that do
/// not convert refuse the change (`FAIL`) or are cleared (`SET_NULL`);
/// values that would lose information refuse it unless accepted. Every
/// value it changes is kept, so changing the type back restores the
/// records not changed since.
pub async fn change_type(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    object: &str,
    name: &str,
    change: TypeChange,
) -> Result<TypeChanged> {
    change::run(conn, target, async |conn, state| {
        let schema = target.schema;
        let (object_def, field, before) = state.custom_field(object, name)?;
        let kind = new_kind(&field, &change)?;
        let table = object_def.table.clone();
        let retype = Retype::new(conn, schema, &table, before.id, &field, &kind).await?;
        let preview = preview(conn, &object_def, &retype).await?;
        check_values(&preview, &field, &change)?;
        let unique = before.is_unique && check_flags(&kind, true, false, &None, &|_| vec![]).is_ok();
        let indexed = before.indexed && check_flags(&kind, false, true, &None, &|_| vec![]).is_ok();
        let converted = conversion(&field, &kind).map_err(|why| CrmError::bad_input(&["newType"], why))?;
        let version = state.next_version();
        // A rehearsal keeps and restores no values: it converts none.
        if !target.rehearsal {
            retype.keep(conn, version, &converted, preview.rewrites_table).await?;
        }
        ddl::drop_indexes(conn, target, &table, &field.column).await?;
        if field.searchable {
            ddl::search::drop(conn, target, &table).await?;
        }
        // Duplicate rules compare through indexes on the column, which the
        // new type may not fit: they are built again by the rules' next sync.
        for suffix in ["dupx", "dupn", "dupd", "dupf"] {
            let mut drop = Sql::raw("DROP INDEX IF EXISTS ");
            drop.table(schema, &ddl::index_name(&table, &field.column, suffix));
            ddl::run(conn, target, drop).await?;
        }
        if before.default_value.is_some() {
            ddl::set_default(conn, target, &table, &field.column, &field.kind, None).await?;
        }
        let column = (field.column.as_str(), &kind);
        ddl::convert_column(conn, target, &table, column, &converted, preview.rewrites_table).await?;
        if !target.rehearsal {
            retype.restore(conn, version).await?;
        }
        let mut changed = field.clone();
        changed.kind = kind.clone();
        changed.unique = unique;
        changed.indexed = indexed || unique;
        ddl::create_indexes(conn, target, &table, &changed).await?;
        let mut row = RowUpdate::new(schema, "custom_field", before.id);
        row.set("type", Bind::Text(Some(kind.type_name().into())));
        let options = custom::options_json(kind.options().unwrap_or_default());
        row.set("options", Bind::Json(Some(options)));
        row.set("default_value", Bind::Json(None));
        row.set("is_unique", Bind::Bool(Some(unique)));
        row.set("indexed", Bind::Bool(Some(indexed)));
        row.set("searchable", Bind::Bool(Some(before.searchable && kind.searchable())));
        row.execute(conn).await?;
        let after = state.reread_field(conn, schema, object, name).await?;
        let summary = format!(
            "changed the type of {object}.{name} from {} to {} ({} values cleared, {} lossy, {} restored)",
            preview.from, preview.to, preview.invalid, preview.lossy, preview.restored
        );
        let record = Recorded::field(
            "FIELD_TYPE_CHANGED",
            Action::Update,
            (Some(&before), Some(&after)),
            true,
            summary,
        );
        Ok(Made {
            value: TypeChanged { field: after, preview },
            record,
        })
    })
    .await
}

/// Refuses a type change whose values do not convert (unless they may be
/// cleared) or lose information (unless that is accepted).
fn check_values(preview: &Preview, field: &FieldDef, change: &TypeChange) -> Result<()> {
    if preview.invalid > 0 && (change.on_invalid == OnInvalid::Fail || field.required) {
        let why = if field.required {
            "the field is required, so they cannot be cleared: make it optional first"
        } else {
            "pass onInvalid: SET_NULL to clear them"
        };
        return Err(CrmError::DataConflict {
            message: format!(
                "{} of {} {} values do not convert to {}; {why}",
                preview.invalid, preview.with_value, field.label, preview.to
            ),
            field: vec!["newType".into()],
            count: preview.invalid,
            sample_ids: preview.samples.iter().map(|s| s.0.clone()).collect(),
        });
    }
    if preview.lossy > 0 && change.on_lossy == OnLossy::Refuse {
        return Err(CrmError::LossyChange {
            message: format!(
                "{}; pass onLossy: ACCEPT to convert them anyway",
                lossy_summary(preview, &field.label)
            ),
            field: vec!["onLossy".into()],
            count: preview.lossy,
            sample_ids: preview.lossy_samples.iter().map(|s| s.record_id.clone()).collect(),
        });
    }
    Ok(())
}

/// The lossy values of a type change in words: how many, what they lose,
/// and one of them (`1 of 2 Closed at values would lose the time of day
/// converting to DATE, e.g. 2026-03-01T15:45:30Z → 2026-03-01`).
pub fn lossy_summary(preview: &Preview, label: &str) -> String {
    let example = preview
        .lossy_samples
        .first()
        .map(|s| format!(", e.g. {} → {}", s.value, s.converted))
        .unwrap_or_default();
    format!(
        "{} of {} {label} values would lose {} converting to {}{example}",
        preview.lossy,
        preview.with_value,
        preview.loses.unwrap_or("information"),
        preview.to
    )
}
