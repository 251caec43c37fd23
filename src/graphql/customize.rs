//! The metadata API: read every object and field, make and change custom
//! fields and custom objects (admins only, on every workspace endpoint).
//!
//! Resolvers here turn arguments into [`crate::metadata::change`] specs;
//! every check, the DDL and the bookkeeping live there. After a change
//! commits, this server's schema is rebuilt at once; other servers learn
//! of it through `notify`.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::sql_types::{Bool, Integer, Jsonb, Nullable, Text, Timestamptz};
use serde_json::Value as Json;

use super::input::{self, Path};
use super::resolve::{arg, context, enum_name, parent_field, resolved, text_arg, timestamp, RequestContext};
use super::Workspace;
use crate::access::{self, AdminPermission};
use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::change::{
    self, FieldPatch, FieldSpec, ObjectPatch, ObjectSpec, OnInvalid, OnLossy, OptionSpec, Target, TypeChange,
};
use crate::metadata::custom::{self, Customizations, StoredField, StoredObject};
use crate::metadata::{FieldDef, FieldKind, Model, ObjectDef, PicklistOption};

/// A field as the metadata API shows it.
#[derive(Debug, Clone)]
struct FieldInfo {
    object: String,
    def: FieldDef,
    default: Option<Json>,
    deleted_at: Option<DateTime<Utc>>,
}

impl FieldInfo {
    fn standard(object: &str, def: &FieldDef) -> Self {
        let default = def.default_value.as_ref().map(|text| match def.kind {
            FieldKind::Boolean | FieldKind::Integer => serde_json::from_str(text).unwrap_or(Json::String(text.clone())),
            _ => Json::String(text.clone()),
        });
        FieldInfo {
            object: object.into(),
            def: def.clone(),
            default,
            deleted_at: None,
        }
    }

    fn custom(stored: &StoredField) -> Result<Self> {
        Ok(FieldInfo {
            object: stored.object.clone(),
            def: stored.definition()?,
            default: stored.default_value.clone(),
            deleted_at: stored.deleted_at,
        })
    }
}

/// An object as the metadata API shows it.
#[derive(Debug, Clone)]
struct ObjectInfo {
    def: ObjectDef,
    deleted_at: Option<DateTime<Utc>>,
    /// Every field, live ones in model order, then retained ones.
    fields: Vec<FieldInfo>,
}

/// Every object, with its fields; deleted (retained) ones too when asked.
fn objects(custom: &Customizations, include_deleted: bool) -> Result<Vec<ObjectInfo>> {
    let model = custom.model()?;
    let mut out = Vec::new();
    for object in model.objects() {
        out.push(ObjectInfo {
            def: object.as_ref().clone(),
            deleted_at: None,
            fields: fields_of(custom, object, include_deleted)?,
        });
    }
    if include_deleted {
        for stored in custom.objects.iter().filter(|o| o.deleted_at.is_some()) {
            let def = stored.definition();
            let mut fields: Vec<FieldInfo> = def.fields.iter().map(|f| FieldInfo::standard(&def.name, f)).collect();
            for field in custom.fields.iter().filter(|f| f.object == stored.name) {
                fields.push(FieldInfo::custom(field)?);
            }
            out.push(ObjectInfo {
                def,
                deleted_at: stored.deleted_at,
                fields,
            });
        }
    }
    Ok(out)
}

fn fields_of(custom: &Customizations, object: &ObjectDef, include_deleted: bool) -> Result<Vec<FieldInfo>> {
    let mut fields = Vec::with_capacity(object.fields.len());
    for def in &object.fields {
        match custom.field(&object.name, &def.name).filter(|_| def.custom) {
            Some(stored) => fields.push(FieldInfo::custom(stored)?),
            None => fields.push(FieldInfo::standard(&object.name, def)),
        }
    }
    if include_deleted {
        for stored in custom
            .fields
            .iter()
            .filter(|f| f.object == object.name && f.deleted_at.is_some())
        {
            fields.push(FieldInfo::custom(stored)?);
        }
    }
    Ok(fields)
}

/// The types this module adds to every workspace schema.
pub fn types() -> (Vec<Object>, Vec<InputObject>, Vec<Enum>) {
    let mut field_type = Enum::new("FieldType").description("The type of a field.");
    field_type = field_type.item(EnumItem::new("ID").description("A record's id (standard fields only)."));
    for (name, description) in custom::FIELD_TYPES {
        field_type = field_type.item(EnumItem::new(*name).description(*description));
    }
    let enums = vec![
        field_type,
        Enum::new("InvalidValueAction")
            .description("What a field type change does with values that do not convert.")
            .item(EnumItem::new("FAIL").description("Refuse the change; nothing changes."))
            .item(EnumItem::new("SET_NULL").description("Clear those values.")),
        Enum::new("LossyValueAction")
            .description(
                "What a field type change does with values that convert but lose information (a time of day, \
                 fraction digits, a number other than 0 or 1 made a boolean).",
            )
            .item(
                EnumItem::new("REFUSE")
                    .description("Refuse the change (BAD_USER_INPUT with their count); nothing changes."),
            )
            .item(EnumItem::new("ACCEPT").description(
                "Convert them anyway. Their old values are kept: changing the type back restores them for the records \
                 not changed since.",
            )),
    ];
    let inputs = vec![
        field_input("CreateCustomFieldInput", true),
        field_input("CustomObjectFieldInput", false),
        InputObject::new("PicklistOptionInput")
            .description(
                "One option of a picklist. In an update, list every current option in the order wanted: \
                 new values are added, `renamedFrom` renames one (records follow), `active: false` retires one.",
            )
            .field(
                InputValue::new("value", TypeRef::named_nn(TypeRef::STRING))
                    .description("The API value, an enum value: SCREAMING_SNAKE_CASE."),
            )
            .field(
                InputValue::new("label", TypeRef::named(TypeRef::STRING))
                    .description("What people read; defaults to the current label, or the value."),
            )
            .field(
                InputValue::new("active", TypeRef::named(TypeRef::BOOLEAN))
                    .default_value(true)
                    .description("Retired values stay on records but are not accepted in writes."),
            )
            .field(
                InputValue::new("renamedFrom", TypeRef::named(TypeRef::STRING))
                    .description("The current value this option renames."),
            ),
        InputObject::new("UpdateCustomFieldInput")
            .description("Settings of a custom field to change; omitted ones stay.")
            .field(InputValue::new("label", TypeRef::named(TypeRef::STRING)).description("What people read."))
            .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("Help text."))
            .field(
                InputValue::new("defaultValue", TypeRef::named("JSON"))
                    .description("The value new records get; null removes the default."),
            )
            .field(
                InputValue::new("required", TypeRef::named(TypeRef::BOOLEAN))
                    .description("Refused with the count and sample ids while records have no value."),
            )
            .field(
                InputValue::new("unique", TypeRef::named(TypeRef::BOOLEAN))
                    .description("Refused with the count and sample ids while records share a value."),
            )
            .field(InputValue::new("indexed", TypeRef::named(TypeRef::BOOLEAN)).description("Keep an index on it."))
            .field(
                InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                    .description("The whole option list of a picklist, in order."),
            ),
        InputObject::new("CreateCustomObjectInput")
            .description("A new custom object.")
            .field(
                InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                    .description("Its type name: PascalCase, singular (`Subscription`)."),
            )
            .field(InputValue::new("label", TypeRef::named_nn(TypeRef::STRING)).description("What people call one."))
            .field(
                InputValue::new("pluralLabel", TypeRef::named_nn(TypeRef::STRING))
                    .description("What people call several."),
            )
            .field(
                InputValue::new("pluralName", TypeRef::named(TypeRef::STRING))
                    .description("Its list query, camelCase (`subscriptions`); derived from name when absent."),
            )
            .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("What it is for."))
            .field(
                InputValue::new("fields", TypeRef::named_nn_list("CustomObjectFieldInput"))
                    .description("Its custom fields, beyond what every record has (id, name, owner …)."),
            ),
        InputObject::new("UpdateCustomObjectInput")
            .description("Labels of a custom object to change.")
            .field(InputValue::new("label", TypeRef::named(TypeRef::STRING)).description("What people call one."))
            .field(
                InputValue::new("pluralLabel", TypeRef::named(TypeRef::STRING))
                    .description("What people call several."),
            )
            .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("What it is for.")),
    ];
    let objects = vec![
        object_definition_type(),
        field_definition_type(),
        Object::new("PicklistOptionDefinition")
            .description("One option of a picklist.")
            .field(
                option_field("value", TypeRef::named_nn(TypeRef::STRING), |o| {
                    Value::String(o.value.clone())
                })
                .description("The API value, an enum value of the field's type."),
            )
            .field(
                option_field("label", TypeRef::named_nn(TypeRef::STRING), |o| {
                    Value::String(o.label.clone())
                })
                .description("What people read."),
            )
            .field(
                option_field("active", TypeRef::named_nn(TypeRef::BOOLEAN), |o| {
                    Value::Boolean(o.active)
                })
                .description("Retired values (false) stay on records but writes do not take them."),
            ),
        preview_type(),
        Object::new("InvalidValue")
            .description("A record whose value a type change cannot convert.")
            .field(sample_field("recordId", TypeRef::ID, |s| s.0.clone()).description("The record."))
            .field(sample_field("value", TypeRef::STRING, |s| s.1.clone()).description("Its value, as text.")),
        Object::new("LossyValue")
            .description("A record whose value a type change converts but loses information of.")
            .field(
                parent_field("recordId", TypeRef::named_nn(TypeRef::ID), |v: &change::LossyValue| {
                    text(&v.record_id)
                })
                .description("The record."),
            )
            .field(
                parent_field("value", TypeRef::named_nn(TypeRef::STRING), |v: &change::LossyValue| {
                    text(&v.value)
                })
                .description("Its value now, as text."),
            )
            .field(
                parent_field(
                    "converted",
                    TypeRef::named_nn(TypeRef::STRING),
                    |v: &change::LossyValue| text(&v.converted),
                )
                .description("The value it would become, as text."),
            ),
        metadata_change_type(),
    ];
    (objects, inputs, enums)
}

fn field_input(name: &str, with_object: bool) -> InputObject {
    let mut input = InputObject::new(name).description("A new custom field.");
    if with_object {
        input = input.field(
            InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object to add it to."),
        );
    }
    input
        .field(
            InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                .description("API name: camelCase ASCII, at most 63 bytes (`renewalDate`)."),
        )
        .field(InputValue::new("label", TypeRef::named_nn(TypeRef::STRING)).description("What people read."))
        .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("Help text."))
        .field(InputValue::new("type", TypeRef::named_nn("FieldType")).description("Its type."))
        .field(
            InputValue::new("required", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Every record must have a value (needs a default when records exist)."),
        )
        .field(
            InputValue::new("unique", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("No two records share a value."),
        )
        .field(
            InputValue::new("indexed", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Keep an index for filters and sorts on it."),
        )
        .field(
            InputValue::new("defaultValue", TypeRef::named("JSON")).description(
                "The value new records get, written as for a create (`\"GOLD\"`, `12`, `\"2026-01-31\"`).",
            ),
        )
        .field(
            InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                .description("A picklist's options, in order."),
        )
        .field(
            InputValue::new("lookupObject", TypeRef::named(TypeRef::STRING))
                .description("A lookup's target object (`Account`)."),
        )
        .field(
            InputValue::new("relationName", TypeRef::named(TypeRef::STRING))
                .description("The list of referring records the target shows; by default this object's plural."),
        )
}

fn option_field(name: &str, type_ref: TypeRef, get: fn(&PicklistOption) -> Value) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx.parent_value.try_downcast_ref::<PicklistOption>().map(get);
        FieldFuture::from_value(value.ok())
    })
}

fn sample_field(name: &str, type_name: &str, get: fn(&(String, String)) -> String) -> Field {
    Field::new(name, TypeRef::named_nn(type_name), move |ctx| {
        let value = ctx.parent_value.try_downcast_ref::<(String, String)>().map(get);
        FieldFuture::from_value(value.ok().map(Value::String))
    })
}

fn object_field(name: &str, type_ref: TypeRef, get: fn(&ObjectInfo) -> Option<Value>) -> Field {
    parent_field(name, type_ref, get)
}

fn text(s: &str) -> Option<Value> {
    Some(Value::String(s.to_owned()))
}

fn boolean(b: bool) -> Option<Value> {
    Some(Value::Boolean(b))
}

fn object_definition_type() -> Object {
    Object::new("ObjectDefinition")
        .description("An object (a record type) and its fields.")
        .field(
            object_field("name", TypeRef::named_nn(TypeRef::STRING), |o| text(&o.def.name))
                .description("Its type name."),
        )
        .field(
            object_field("label", TypeRef::named_nn(TypeRef::STRING), |o| text(&o.def.label))
                .description("What people call one."),
        )
        .field(
            object_field("pluralLabel", TypeRef::named_nn(TypeRef::STRING), |o| {
                text(&o.def.plural_label)
            })
            .description("What people call several."),
        )
        .field(
            object_field("pluralName", TypeRef::named_nn(TypeRef::STRING), |o| {
                text(&o.def.plural)
            })
            .description("Its list query."),
        )
        .field(
            object_field("description", TypeRef::named_nn(TypeRef::STRING), |o| {
                text(&o.def.description)
            })
            .description("What it is for."),
        )
        .field(
            object_field("isCustom", TypeRef::named_nn(TypeRef::BOOLEAN), |o| {
                Some(Value::Boolean(o.def.custom))
            })
            .description("Made by an admin."),
        )
        .field(
            object_field("deletedAt", TypeRef::named("DateTime"), |o| o.deleted_at.map(timestamp))
                .description("When it was deleted; its records are kept until it is purged."),
        )
        .field(
            Field::new("fields", TypeRef::named_nn_list_nn("FieldDefinition"), |ctx| {
                resolved(async move {
                    let object = ctx.parent_value.try_downcast_ref::<ObjectInfo>()?;
                    Ok(Some(FieldValue::list(
                        object.fields.iter().cloned().map(FieldValue::owned_any),
                    )))
                })
            })
            .description("Its fields: standard ones, then custom ones."),
        )
}

fn info_field(name: &str, type_ref: TypeRef, get: fn(&FieldInfo) -> Option<Value>) -> Field {
    parent_field(name, type_ref, get)
}

fn field_definition_type() -> Object {
    Object::new("FieldDefinition")
        .description("A field of an object.")
        .field(info_field("object", TypeRef::named_nn(TypeRef::STRING), |f| text(&f.object)).description("Its object."))
        .field(
            info_field("name", TypeRef::named_nn(TypeRef::STRING), |f| text(&f.def.name)).description("Its API name."),
        )
        .field(
            info_field("label", TypeRef::named_nn(TypeRef::STRING), |f| text(&f.def.label))
                .description("What people read."),
        )
        .field(
            info_field("description", TypeRef::named_nn(TypeRef::STRING), |f| {
                text(&f.def.description)
            })
            .description("Help text."),
        )
        .field(
            info_field("type", TypeRef::named_nn("FieldType"), |f| {
                Some(Value::Enum(Name::new(f.def.kind.type_name())))
            })
            .description("Its type."),
        )
        .field(
            info_field("isCustom", TypeRef::named_nn(TypeRef::BOOLEAN), |f| {
                boolean(f.def.custom)
            })
            .description("Made by an admin."),
        )
        .field(
            info_field("isSystem", TypeRef::named_nn(TypeRef::BOOLEAN), |f| {
                boolean(f.def.system)
            })
            .description("Maintained by the server; read-only."),
        )
        .field(
            info_field("required", TypeRef::named_nn(TypeRef::BOOLEAN), |f| {
                boolean(f.def.required)
            })
            .description("Every record has a value."),
        )
        .field(
            info_field("unique", TypeRef::named_nn(TypeRef::BOOLEAN), |f| boolean(f.def.unique))
                .description("No two records share a value."),
        )
        .field(
            info_field("indexed", TypeRef::named_nn(TypeRef::BOOLEAN), |f| {
                boolean(f.def.indexed)
            })
            .description("An index serves filters and sorts on it."),
        )
        .field(
            info_field("defaultValue", TypeRef::named("JSON"), |f| {
                f.default.clone().and_then(|d| Value::from_json(d).ok())
            })
            .description("The value new records get."),
        )
        .field(
            info_field("maxLength", TypeRef::named(TypeRef::INT), |f| {
                f.def.max_length.map(|n| Value::from(n as u64))
            })
            .description("The longest text it takes, in characters."),
        )
        .field(
            Field::new(
                "options",
                TypeRef::named_nn_list_nn("PicklistOptionDefinition"),
                |ctx| {
                    resolved(async move {
                        let field = ctx.parent_value.try_downcast_ref::<FieldInfo>()?;
                        let options = field.def.kind.options().unwrap_or_default().to_vec();
                        Ok(Some(FieldValue::list(options.into_iter().map(FieldValue::owned_any))))
                    })
                },
            )
            .description("A picklist's options, in order (empty for other types)."),
        )
        .field(
            info_field("lookupObject", TypeRef::named(TypeRef::STRING), |f| {
                f.def.lookup().map(|l| Value::String(l.target.clone()))
            })
            .description("A lookup's target object."),
        )
        .field(
            info_field("relationName", TypeRef::named(TypeRef::STRING), |f| {
                f.def.lookup().and_then(|l| l.inverse.clone()).map(Value::String)
            })
            .description("The list of referring records the target shows."),
        )
        .field(
            info_field("deletedAt", TypeRef::named("DateTime"), |f| f.deleted_at.map(timestamp))
                .description("When it was deleted; its data is kept until it is purged."),
        )
}

fn preview_type() -> Object {
    fn field(name: &str, type_ref: TypeRef, get: fn(&change::Preview) -> Value) -> Field {
        Field::new(name, type_ref, move |ctx| {
            let value = ctx.parent_value.try_downcast_ref::<change::Preview>().map(get);
            FieldFuture::from_value(value.ok())
        })
    }
    Object::new("FieldTypeChangePreview")
        .description("What changing a field's type would do to existing records. Nothing has changed.")
        .field(
            field("object", TypeRef::named_nn(TypeRef::STRING), |p| {
                Value::String(p.object.clone())
            })
            .description("The object."),
        )
        .field(
            field("field", TypeRef::named_nn(TypeRef::STRING), |p| {
                Value::String(p.field.clone())
            })
            .description("The field."),
        )
        .field(
            field("from", TypeRef::named_nn("FieldType"), |p| {
                Value::Enum(Name::new(&p.from))
            })
            .description("Its type now."),
        )
        .field(
            field("to", TypeRef::named_nn("FieldType"), |p| Value::Enum(Name::new(&p.to)))
                .description("The type asked for."),
        )
        .field(
            field("withValue", TypeRef::named_nn(TypeRef::INT), |p| {
                Value::from(p.with_value)
            })
            .description("Records with a value, deleted ones included."),
        )
        .field(
            field("convertible", TypeRef::named_nn(TypeRef::INT), |p| {
                Value::from(p.convertible)
            })
            .description("Values that convert, lossy ones included."),
        )
        .field(
            field("invalid", TypeRef::named_nn(TypeRef::INT), |p| Value::from(p.invalid))
                .description("Values that do not: the change refuses them, or clears them with SET_NULL."),
        )
        .field(
            Field::new("samples", TypeRef::named_nn_list_nn("InvalidValue"), |ctx| {
                resolved(async move {
                    let preview = ctx.parent_value.try_downcast_ref::<change::Preview>()?;
                    Ok(Some(FieldValue::list(
                        preview.samples.iter().cloned().map(FieldValue::owned_any),
                    )))
                })
            })
            .description("Some records whose value does not convert."),
        )
        .field(
            field("lossy", TypeRef::named_nn(TypeRef::INT), |p| Value::from(p.lossy)).description(
                "Of the convertible values, those that lose information (see loses): the change refuses them unless \
                 onLossy: ACCEPT.",
            ),
        )
        .field(
            Field::new("loses", TypeRef::named(TypeRef::STRING), |ctx| {
                let preview = ctx.parent_value.try_downcast_ref::<change::Preview>();
                FieldFuture::from_value(preview.ok().and_then(|p| p.loses).map(|l| Value::String(l.to_owned())))
            })
            .description("What a lossy value loses (`the time of day`); null when no value can lose anything."),
        )
        .field(
            Field::new("lossySamples", TypeRef::named_nn_list_nn("LossyValue"), |ctx| {
                resolved(async move {
                    let preview = ctx.parent_value.try_downcast_ref::<change::Preview>()?;
                    Ok(Some(FieldValue::list(
                        preview.lossy_samples.iter().cloned().map(FieldValue::owned_any),
                    )))
                })
            })
            .description("Some records whose value loses information, with what it would become."),
        )
        .field(
            field("restored", TypeRef::named_nn(TypeRef::INT), |p| Value::from(p.restored)).description(
                "Records whose value from before the field's previous type change comes back: the change undoes that \
                 one for the records whose value did not change since.",
            ),
        )
        .field(
            field("rewritesTable", TypeRef::named_nn(TypeRef::BOOLEAN), |p| {
                Value::Boolean(p.rewrites_table)
            })
            .description("The column's storage type changes: the table is rewritten, which takes longer."),
        )
}

/// A `metadata_change` row.
#[derive(Debug, Clone, diesel::QueryableByName)]
struct ChangeRow {
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    actor_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    object: String,
    #[diesel(sql_type = Nullable<Text>)]
    field: Option<String>,
    #[diesel(sql_type = Text)]
    summary: String,
    #[diesel(sql_type = Bool)]
    breaking: bool,
    #[diesel(sql_type = Nullable<Jsonb>)]
    before: Option<Json>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    after: Option<Json>,
}

fn json(value: &Option<Json>) -> Option<Value> {
    value.clone().and_then(|v| Value::from_json(v).ok())
}

fn metadata_change_type() -> Object {
    fn field(name: &str, type_ref: TypeRef, get: fn(&ChangeRow) -> Option<Value>) -> Field {
        Field::new(name, type_ref, move |ctx| {
            let value = ctx.parent_value.try_downcast_ref::<ChangeRow>().map(get);
            FieldFuture::from_value(value.ok().flatten())
        })
    }
    Object::new("MetadataChange")
        .description("One change of the workspace's metadata, and the version it made.")
        .field(
            field("version", TypeRef::named_nn(TypeRef::INT), |c| {
                Some(Value::from(c.version))
            })
            .description("The metadata version after it."),
        )
        .field(field("at", TypeRef::named_nn("DateTime"), |c| Some(timestamp(c.at))).description("When."))
        .field(
            field("actorId", TypeRef::named(TypeRef::ID), |c| {
                c.actor_id.map(|id| Value::String(id.to_string()))
            })
            .description("Who (null for the command line)."),
        )
        .field(
            field("kind", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.kind.clone()))
            })
            .description("`FIELD_CREATED`, `FIELD_RENAMED`, `FIELD_TYPE_CHANGED`, `OBJECT_DELETED` …"),
        )
        .field(
            field("object", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.object.clone()))
            })
            .description("The object."),
        )
        .field(
            field("field", TypeRef::named(TypeRef::STRING), |c| {
                c.field.clone().map(Value::String)
            })
            .description("The field, for field changes."),
        )
        .field(
            field("summary", TypeRef::named_nn(TypeRef::STRING), |c| {
                Some(Value::String(c.summary.clone()))
            })
            .description("What happened, in words."),
        )
        .field(
            field("breaking", TypeRef::named_nn(TypeRef::BOOLEAN), |c| {
                Some(Value::Boolean(c.breaking))
            })
            .description("Clients written against the API before may fail (a name, type or requirement changed)."),
        )
        .field(field("before", TypeRef::named("JSON"), |c| json(&c.before)).description("The definition before."))
        .field(field("after", TypeRef::named("JSON"), |c| json(&c.after)).description("The definition after."))
}

/// Query fields: `objects`, `object`, `previewFieldTypeChange`, `metadataChanges`.
pub fn query_fields() -> Vec<Field> {
    vec![
        Field::new("objects", TypeRef::named_nn_list_nn("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let include_deleted = matches!(arg(&ctx, "includeDeleted"), Some(Value::Boolean(true)));
                let custom = read(context).await?;
                let objects = objects(&custom, include_deleted)?;
                Ok(Some(FieldValue::list(objects.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(
            InputValue::new("includeDeleted", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Also list deleted custom objects and fields, whose data is kept until a purge."),
        )
        .description("Every object with its fields. Admins only."),
        Field::new("object", TypeRef::named("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let custom = read(context).await?;
                let found = objects(&custom, true)?.into_iter().find(|o| o.def.name == name);
                Ok(found.map(FieldValue::owned_any))
            })
        })
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("Its type name (`Account`)."))
        .description("One object with its fields (deleted ones too); null when there is none. Admins only."),
        Field::new("previewFieldTypeChange", TypeRef::named_nn("FieldTypeChangePreview"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                let change = type_change(&ctx)?;
                let mut conn = context.db.conn().await?;
                let preview = change::preview_type_change(&mut conn, &context.schema, &object, &name, &change).await?;
                Ok(Some(FieldValue::owned_any(preview)))
            })
        })
        .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object."))
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom field."))
        .argument(InputValue::new("newType", TypeRef::named_nn("FieldType")).description("The type it would get."))
        .argument(
            InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                .description("The options, when it would become a picklist: values match by value or label."),
        )
        .description("What `changeCustomFieldType` would do to existing values: how many convert, how many lose information, how many do not, how many come back from before the previous type change, samples. Admins only."),
        Field::new("metadataChanges", TypeRef::named_nn_list_nn("MetadataChange"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let since = match arg(&ctx, "sinceVersion") {
                    Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                    _ => 0,
                };
                let mut query = Sql::raw(
                    "SELECT version, at, actor_id, kind, object, field, summary, breaking, before, after FROM ",
                );
                query.table(&context.schema, "metadata_change").push(" WHERE version > ");
                query.bind(Bind::Int(Some(i32::try_from(since).unwrap_or(i32::MAX))));
                query.push(" ORDER BY version LIMIT 500");
                let mut conn = context.db.conn().await?;
                let rows: Vec<ChangeRow> = query.load(&mut conn).await?;
                Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(
            InputValue::new("sinceVersion", TypeRef::named(TypeRef::INT))
                .description("Only changes that made a later version."),
        )
        .description("Metadata changes in order, oldest first (at most 500): what changed, and whether it breaks clients. Admins only."),
    ]
}

/// Mutation fields: create, update, rename, change type, delete, restore
/// and purge custom fields; create, update, delete, restore and purge
/// custom objects.
pub fn mutation_fields() -> Vec<Field> {
    let object_and_name = |field: Field, what: &str| {
        field
            .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object."))
            .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description(what.to_owned()))
    };
    vec![
        Field::new("createCustomField", TypeRef::named_nn("FieldDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let input = object_arg(&ctx, "input")?;
                let object = required_text(input, "object", &Path::root("input"))?;
                let spec = field_spec(input, &Path::root("input"))?;
                let stored = with_target(context, &["input", "name"], async |conn, target| {
                    change::create_field(conn, target, &object, spec).await
                })
                .await?;
                Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("CreateCustomFieldInput")).description("The field."))
        .description(
            "Adds a custom field: a typed column (with an index when indexed or unique) and a typed GraphQL field, \
             usable at once in queries, filters, sorts and writes. Admins only.",
        ),
        object_and_name(
            Field::new("updateCustomField", TypeRef::named_nn("FieldDefinition"), |ctx| {
                resolved(async move {
                    let context = admin(&ctx)?;
                    let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                    let patch = field_patch(object_arg(&ctx, "input")?)?;
                    let stored = with_target(context, &["input"], async |conn, target| {
                        change::update_field(conn, target, &object, &name, patch).await
                    })
                    .await?;
                    Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
                })
            }),
            "The custom field.",
        )
        .argument(InputValue::new("input", TypeRef::named_nn("UpdateCustomFieldInput")).description("The changes."))
        .description(
            "Changes a custom field's label, description, default, picklist options, required, unique or indexed. \
             A constraint existing records violate is refused (CONFLICT, with count and sampleIds). Admins only.",
        ),
        object_and_name(
            Field::new("renameCustomField", TypeRef::named_nn("FieldDefinition"), |ctx| {
                resolved(async move {
                    let context = admin(&ctx)?;
                    let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                    let new_name = text_arg(&ctx, "newName")?;
                    let stored = with_target(context, &["newName"], async |conn, target| {
                        change::rename_field(conn, target, &object, &name, &new_name).await
                    })
                    .await?;
                    Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
                })
            }),
            "The custom field.",
        )
        .argument(InputValue::new("newName", TypeRef::named_nn(TypeRef::STRING)).description("Its new API name."))
        .description("Changes a custom field's API name, keeping its data. A breaking change for clients using the old name. Admins only."),
        object_and_name(
            Field::new("changeCustomFieldType", TypeRef::named_nn("FieldDefinition"), |ctx| {
                resolved(async move {
                    let context = admin(&ctx)?;
                    let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
                    let change = type_change(&ctx)?;
                    let stored = with_target(context, &["newType"], async |conn, target| {
                        Ok(change::change_type(conn, target, &object, &name, change).await?.field)
                    })
                    .await?;
                    Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
                })
            }),
            "The custom field.",
        )
        .argument(InputValue::new("newType", TypeRef::named_nn("FieldType")).description("Its new type."))
        .argument(
            InputValue::new("options", TypeRef::named_nn_list("PicklistOptionInput"))
                .description("The options, when it becomes a picklist: values match by value or label."),
        )
        .argument(
            InputValue::new("onInvalid", TypeRef::named_nn("InvalidValueAction"))
                .default_value(Value::Enum(Name::new("FAIL")))
                .description("What happens to values that do not convert (see previewFieldTypeChange)."),
        )
        .argument(
            InputValue::new("onLossy", TypeRef::named_nn("LossyValueAction"))
                .default_value(Value::Enum(Name::new("REFUSE")))
                .description(
                    "What happens to values that convert but lose information (see previewFieldTypeChange's lossy).",
                ),
        )
        .description(
            "Changes a custom field's type, converting its values; the default is removed. Values that would lose \
             information refuse it unless onLossy: ACCEPT. Changed values are kept: changing the type back restores \
             them for the records not changed since. Admins only.",
        ),
        lifecycle("deleteCustomField", "Deletes a custom field: gone from the API at once, its data kept until purgeCustomField (restoreCustomField brings it back). Admins only.", |conn, target, object, name| {
            Box::pin(async move { change::delete_field(conn, target, &object, &name).await })
        }),
        lifecycle("restoreCustomField", "Restores a deleted custom field with its data. Admins only.", |conn, target, object, name| {
            Box::pin(async move { change::restore_field(conn, target, &object, &name).await })
        }),
        lifecycle("purgeCustomField", "Removes a deleted custom field and its data for good. Admins only.", |conn, target, object, name| {
            Box::pin(async move { change::purge_field(conn, target, &object, &name).await })
        }),
        Field::new("createCustomObject", TypeRef::named_nn("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let spec = object_spec(object_arg(&ctx, "input")?)?;
                let stored = with_target(context, &["input", "name"], async |conn, target| {
                    change::create_object(conn, target, spec).await
                })
                .await?;
                object_answer(context, &stored).await
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("CreateCustomObjectInput")).description("The object."))
        .description(
            "Adds a custom object: its own table and the full API of a standard object (queries, filters, sorts, \
             create, update, batch, upsert, delete, restore) with every record field (id, name, owner, externalId …). \
             Admins only.",
        ),
        Field::new("updateCustomObject", TypeRef::named_nn("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = admin(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let input = object_arg(&ctx, "input")?;
                let patch = ObjectPatch {
                    label: optional_text(input, "label"),
                    plural_label: optional_text(input, "pluralLabel"),
                    description: optional_text(input, "description"),
                };
                let stored = with_target(context, &["input"], async |conn, target| {
                    change::update_object(conn, target, &name, patch).await
                })
                .await?;
                object_answer(context, &stored).await
            })
        })
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom object."))
        .argument(InputValue::new("input", TypeRef::named_nn("UpdateCustomObjectInput")).description("The changes."))
        .description("Changes a custom object's labels and description. Admins only."),
        object_lifecycle("deleteCustomObject", "Deletes a custom object: gone from the API at once, its records kept until purgeCustomObject (restoreCustomObject brings it back). Refused while other objects' lookups refer to it. Admins only.", |conn, target, name| {
            Box::pin(async move { change::delete_object(conn, target, &name).await })
        }),
        object_lifecycle("restoreCustomObject", "Restores a deleted custom object with its records. Admins only.", |conn, target, name| {
            Box::pin(async move { change::restore_object(conn, target, &name).await })
        }),
        object_lifecycle("purgeCustomObject", "Removes a deleted custom object, its table and its records for good. Admins only.", |conn, target, name| {
            Box::pin(async move { change::purge_object(conn, target, &name).await })
        }),
    ]
}

type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// `deleteCustomField(object, name)` and its siblings.
fn lifecycle(
    name: &str,
    description: &str,
    run: for<'a> fn(&'a mut diesel_async::AsyncPgConnection, &'a Target<'a>, String, String) -> Boxed<'a, StoredField>,
) -> Field {
    Field::new(name, TypeRef::named_nn("FieldDefinition"), move |ctx| {
        resolved(async move {
            let context = admin(&ctx)?;
            let (object, name) = (text_arg(&ctx, "object")?, text_arg(&ctx, "name")?);
            let stored = with_target(context, &["name"], async |conn, target| {
                run(conn, target, object, name).await
            })
            .await?;
            Ok(Some(FieldValue::owned_any(FieldInfo::custom(&stored)?)))
        })
    })
    .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object."))
    .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom field."))
    .description(description.to_owned())
}

/// `deleteCustomObject(name)` and its siblings.
fn object_lifecycle(
    name: &str,
    description: &str,
    run: for<'a> fn(&'a mut diesel_async::AsyncPgConnection, &'a Target<'a>, String) -> Boxed<'a, StoredObject>,
) -> Field {
    Field::new(name, TypeRef::named_nn("ObjectDefinition"), move |ctx| {
        resolved(async move {
            let context = admin(&ctx)?;
            let name = text_arg(&ctx, "name")?;
            let stored = with_target(context, &["name"], async |conn, target| run(conn, target, name).await).await?;
            object_answer(context, &stored).await
        })
    })
    .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The custom object."))
    .description(description.to_owned())
}

/// The request's context, for admins only (`metadata.change`).
fn admin<'a>(ctx: &'a ResolverContext<'_>) -> Result<&'a RequestContext> {
    let context = context(ctx)?;
    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)?;
    Ok(context)
}

async fn read(context: &RequestContext) -> Result<Customizations> {
    let mut conn = context.db.conn().await?;
    Customizations::read(&mut conn, &context.schema).await
}

/// Runs a metadata change on its own connection, then rebuilds this
/// server's schema so the next request sees it. A clash the schema build
/// finds is reported at `clash_path`.
async fn with_target<T>(
    context: &RequestContext,
    clash_path: &[&str],
    body: impl AsyncFnOnce(&mut diesel_async::AsyncPgConnection, &Target<'_>) -> Result<T>,
) -> Result<T> {
    let path: Vec<String> = clash_path.iter().map(|s| s.to_string()).collect();
    let check = move |model: &Model| -> Result<()> {
        super::schema::build(model, None)
            .map(|_| ())
            .map_err(|err| CrmError::bad_input_at(path.clone(), format!("the change clashes with the API: {}", err.0)))
    };
    let target = Target {
        schema: &context.schema,
        trail: &context.trail,
        check: &check,
        value: &checked_value,
        replaying: false,
    };
    let mut conn = context.db.conn().await?;
    let done = body(&mut conn, &target).await?;
    drop(conn);
    if let Some(schemas) = &context.schemas {
        let workspace = Workspace {
            name: context.trail.workspace.clone(),
            pg_schema: context.schema.to_string(),
        };
        schemas.refresh(&context.db, &workspace).await;
    }
    Ok(done)
}

/// A value given for a field (a default), checked as a write would check
/// it, in the form the API shows.
pub(crate) fn checked_value(field: &FieldDef, value: &Json, path: &[String]) -> Result<Json> {
    let path = Path::from_parts(path);
    let value = Value::from_json(value.clone()).map_err(|_| path.error("not a JSON value"))?;
    if matches!(value, Value::Null) {
        return Err(path.error("a default cannot be null; leave it out"));
    }
    let bind = input::assignment(field, &value, &path)?;
    Ok(match bind {
        Bind::Text(v) | Bind::Decimal(v) => v.map(Json::String).unwrap_or(Json::Null),
        Bind::Int(v) => v.map(Json::from).unwrap_or(Json::Null),
        Bind::Bool(v) => v.map(Json::Bool).unwrap_or(Json::Null),
        Bind::Date(v) => v.map(|d| Json::String(d.to_string())).unwrap_or(Json::Null),
        Bind::DateTime(v) => v
            .map(|t| Json::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)))
            .unwrap_or(Json::Null),
        Bind::TextArray(v) => v
            .map(|items| Json::Array(items.into_iter().map(Json::String).collect()))
            .unwrap_or(Json::Null),
        Bind::Json(v) => v.unwrap_or(Json::Null),
        Bind::Uuid(v) => v.map(|id| Json::String(id.to_string())).unwrap_or(Json::Null),
        Bind::UuidArray(_) | Bind::Bytes(_) => return Err(path.error("not a value this field takes")),
    })
}

/// The object a change answers with, as stored now; a purged one as it was.
async fn object_answer<'a>(context: &RequestContext, stored: &StoredObject) -> Result<Option<FieldValue<'a>>> {
    let custom = read(context).await?;
    let found = objects(&custom, true)?.into_iter().find(|o| o.def.name == stored.name);
    let info = found.unwrap_or_else(|| {
        let def = stored.definition();
        let fields = def.fields.iter().map(|f| FieldInfo::standard(&def.name, f)).collect();
        ObjectInfo {
            def,
            deleted_at: stored.deleted_at,
            fields,
        }
    });
    Ok(Some(FieldValue::owned_any(info)))
}

fn object_arg<'a>(
    ctx: &'a ResolverContext<'_>,
    name: &str,
) -> Result<&'a async_graphql::indexmap::IndexMap<Name, Value>> {
    match arg(ctx, name) {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(CrmError::bad_input(&[name], format!("{name} is required"))),
    }
}

type Map = async_graphql::indexmap::IndexMap<Name, Value>;

fn optional_text(map: &Map, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn required_text(map: &Map, key: &str, path: &Path) -> Result<String> {
    optional_text(map, key).ok_or_else(|| path.at(key).error(format!("{key} is required")))
}

fn optional_bool(map: &Map, key: &str) -> Option<bool> {
    match map.get(key) {
        Some(Value::Boolean(b)) => Some(*b),
        _ => None,
    }
}

/// `[PicklistOptionInput!]` as option specs.
fn option_specs(value: Option<&Value>, path: &Path) -> Result<Option<Vec<OptionSpec>>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::List(items)) => items,
        Some(_) => return Err(path.error("options is a list")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(path
                .index(i)
                .error("an option is { value, label, active, renamedFrom }"));
        };
        out.push(OptionSpec {
            value: required_text(map, "value", &path.index(i))?,
            label: optional_text(map, "label"),
            active: optional_bool(map, "active").unwrap_or(true),
            renamed_from: optional_text(map, "renamedFrom"),
        });
    }
    Ok(Some(out))
}

/// New options (no renames): value, label (default: the value), active.
fn new_options(value: Option<&Value>, path: &Path) -> Result<Vec<PicklistOption>> {
    let specs = option_specs(value, path)?.unwrap_or_default();
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            if spec.renamed_from.is_some() {
                return Err(path
                    .index(i)
                    .at("renamedFrom")
                    .error("a new picklist has nothing to rename"));
            }
            Ok(PicklistOption {
                label: spec.label.unwrap_or_else(|| spec.value.clone()),
                value: spec.value,
                active: spec.active,
            })
        })
        .collect()
}

fn field_spec(map: &Map, path: &Path) -> Result<FieldSpec> {
    Ok(FieldSpec {
        name: required_text(map, "name", path)?,
        label: required_text(map, "label", path)?,
        description: optional_text(map, "description").unwrap_or_default(),
        type_name: enum_name(map.get("type")).ok_or_else(|| path.at("type").error("type is required"))?,
        required: optional_bool(map, "required").unwrap_or(false),
        unique: optional_bool(map, "unique").unwrap_or(false),
        indexed: optional_bool(map, "indexed").unwrap_or(false),
        default_value: match map.get("defaultValue") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .clone()
                    .into_json()
                    .map_err(|_| path.at("defaultValue").error("not JSON"))?,
            ),
        },
        options: new_options(map.get("options"), &path.at("options"))?,
        lookup_object: optional_text(map, "lookupObject"),
        relation_name: optional_text(map, "relationName"),
        path: path.parts().to_vec(),
    })
}

fn field_patch(map: &Map) -> Result<FieldPatch> {
    let path = Path::root("input");
    Ok(FieldPatch {
        label: optional_text(map, "label"),
        description: optional_text(map, "description"),
        default_value: match map.get("defaultValue") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(value) => Some(Some(
                value
                    .clone()
                    .into_json()
                    .map_err(|_| path.at("defaultValue").error("not JSON"))?,
            )),
        },
        required: optional_bool(map, "required"),
        unique: optional_bool(map, "unique"),
        indexed: optional_bool(map, "indexed"),
        options: option_specs(map.get("options"), &path.at("options"))?,
    })
}

fn object_spec(map: &Map) -> Result<ObjectSpec> {
    let path = Path::root("input");
    let mut fields = Vec::new();
    match map.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = path.at("fields").index(i);
                let Value::Object(field) = item else {
                    return Err(at.error("a field is an object"));
                };
                fields.push(field_spec(field, &at)?);
            }
        }
        Some(_) => return Err(path.at("fields").error("fields is a list")),
    }
    Ok(ObjectSpec {
        name: required_text(map, "name", &path)?,
        label: required_text(map, "label", &path)?,
        plural_label: required_text(map, "pluralLabel", &path)?,
        plural: optional_text(map, "pluralName"),
        description: optional_text(map, "description").unwrap_or_default(),
        fields,
    })
}

fn type_change(ctx: &ResolverContext<'_>) -> Result<TypeChange> {
    Ok(TypeChange {
        type_name: enum_name(arg(ctx, "newType"))
            .ok_or_else(|| CrmError::bad_input(&["newType"], "newType is required"))?,
        options: new_options(arg(ctx, "options"), &Path::root("options"))?,
        on_invalid: match enum_name(arg(ctx, "onInvalid")).as_deref() {
            Some("SET_NULL") => OnInvalid::SetNull,
            _ => OnInvalid::Fail,
        },
        on_lossy: match enum_name(arg(ctx, "onLossy")).as_deref() {
            Some("ACCEPT") => OnLossy::Accept,
            _ => OnLossy::Refuse,
        },
    })
}
