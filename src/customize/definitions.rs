//! Objects and fields as the metadata API shows them: the `ObjectDefinition`,
//! `FieldDefinition` and `PicklistOptionDefinition` types, the `FieldType`
//! enum, and the `objects` and `object` queries that read them.
//!
//! Standard and custom definitions, live and deleted ones, meet here in one
//! shape, so every resolver answers with the same types.

use async_graphql::dynamic::{Enum, EnumItem, Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::{Name, Value};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::read;
use crate::access::{self, AdminPermission};
use crate::error::Result;
use crate::graphql::resolve::{arg, context, parent_field, resolved, text_arg, timestamp, RequestContext};
use crate::metadata::custom::{self, Customizations, StoredField, StoredObject};
use crate::metadata::{FieldDef, FieldKind, ObjectDef, PicklistOption};

/// A field as the metadata API shows it.
#[derive(Debug, Clone)]
pub(super) struct FieldInfo {
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

    pub(super) fn custom(stored: &StoredField) -> Result<Self> {
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
pub(super) struct ObjectInfo {
    def: ObjectDef,
    deleted_at: Option<DateTime<Utc>>,
    /// Every field, live ones in model order, then retained ones.
    fields: Vec<FieldInfo>,
}

/// Every object, with its fields; deleted (retained) ones too when asked.
pub(super) fn objects(custom: &Customizations, include_deleted: bool) -> Result<Vec<ObjectInfo>> {
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

pub(super) fn fields_of(custom: &Customizations, object: &ObjectDef, include_deleted: bool) -> Result<Vec<FieldInfo>> {
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

/// `FieldType`: every type a field can have, standard ones (`ID`) included.
pub(super) fn field_type() -> Enum {
    let mut field_type = Enum::new("FieldType").description("The type of a field.");
    field_type = field_type.item(EnumItem::new("ID").description("A record's id (standard fields only)."));
    for (name, description) in custom::FIELD_TYPES {
        field_type = field_type.item(EnumItem::new(*name).description(*description));
    }
    field_type
}

/// The output types that describe objects, fields and picklist options.
pub(super) fn types() -> Vec<Object> {
    vec![
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
    ]
}

pub(super) fn option_field(name: &str, type_ref: TypeRef, get: fn(&PicklistOption) -> Value) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx.parent_value.try_downcast_ref::<PicklistOption>().map(get);
        FieldFuture::from_value(value.ok())
    })
}

pub(super) fn object_field(name: &str, type_ref: TypeRef, get: fn(&ObjectInfo) -> Option<Value>) -> Field {
    parent_field(name, type_ref, get)
}

pub(super) fn text(s: &str) -> Option<Value> {
    Some(Value::String(s.to_owned()))
}

pub(super) fn boolean(b: bool) -> Option<Value> {
    Some(Value::Boolean(b))
}

pub(super) fn object_definition_type() -> Object {
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

pub(super) fn info_field(name: &str, type_ref: TypeRef, get: fn(&FieldInfo) -> Option<Value>) -> Field {
    parent_field(name, type_ref, get)
}

pub(super) fn field_definition_type() -> Object {
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
            info_field("searchable", TypeRef::named_nn(TypeRef::BOOLEAN), |f| {
                boolean(f.def.searchable)
            })
            .description("`search` finds records by its words."),
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

/// The object a change answers with, as stored now; a purged one as it was.
pub(super) async fn object_answer<'a>(
    context: &RequestContext,
    stored: &StoredObject,
) -> Result<Option<FieldValue<'a>>> {
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

/// Query fields: `objects` and `object`. Every role reads the live model
/// (what a frontend needs to render lists and forms); deleted objects and
/// fields, kept until a purge, are for admins.
pub(super) fn query_fields() -> Vec<Field> {
    vec![
        Field::new("objects", TypeRef::named_nn_list_nn("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                let include_deleted = matches!(arg(&ctx, "includeDeleted"), Some(Value::Boolean(true)));
                if include_deleted {
                    access::require_admin(&context.actor, AdminPermission::ChangeMetadata)?;
                }
                let custom = read(context).await?;
                let objects = objects(&custom, include_deleted)?;
                Ok(Some(FieldValue::list(objects.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(
            InputValue::new("includeDeleted", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description(
                    "Also list deleted custom objects and fields, whose data is kept until a purge. Admins only.",
                ),
        )
        .description(
            "Every object with its fields: names, labels, types, picklist options, required flags — what a \
             frontend needs to render lists and forms. Every role may read it.",
        ),
        Field::new("object", TypeRef::named("ObjectDefinition"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let admin = access::require_admin(&context.actor, AdminPermission::ChangeMetadata).is_ok();
                let custom = read(context).await?;
                let found = objects(&custom, admin)?.into_iter().find(|o| o.def.name == name);
                Ok(found.map(FieldValue::owned_any))
            })
        })
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("Its type name (`Account`)."))
        .description(
            "One object with its fields; null when there is none. Every role may read it; admins also see a \
             deleted object and deleted fields.",
        ),
    ]
}
