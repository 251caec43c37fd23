//! The sandbox API on the production endpoint: `sandboxes`, `sandbox`,
//! `createSandbox`, `refreshSandbox`, `deleteSandbox` and the grants that
//! let users who are not admins use a sandbox's endpoint.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};

use crate::access::{self, AdminPermission};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::resolve::{
    arg, context, enum_name, int, parent_field, resolved, text_arg, timestamp, RequestContext,
};
use crate::graphql::room::Surface;
use crate::sandbox::progress::{self, Made, Tracked};
use crate::sandbox::{self, Filling, Mode, NewSandbox, Sandbox};
use crate::team::api::load_user;

/// Adds the sandbox queries and mutations and their types.
pub fn register(surface: &mut Surface) {
    surface.types(types());
    surface.queries(&["sandboxes", "sandbox", "sandboxProgress"], query_fields());
    surface.mutations(mutation_fields());
}

fn types() -> (Vec<Object>, Vec<InputObject>, Vec<Enum>) {
    let mut mode = Enum::new("SandboxMode").description("What a sandbox is filled with.");
    for m in Mode::ALL {
        mode = mode.item(EnumItem::new(m.as_str()).description(m.description()));
    }
    let status = Enum::new("SandboxStatus")
        .description("How a sandbox stands to production.")
        .item(EnumItem::new("CURRENT").description("Production's metadata has not changed since the sandbox's base."))
        .item(EnumItem::new("PRODUCTION_CHANGED").description(
            "Production's metadata changed since the sandbox's base: a promotion merges both; a refresh starts over.",
        ));
    let inputs = vec![InputObject::new("CreateSandboxInput")
        .description("A new sandbox.")
        .field(
            InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                .description("1 to 40 lowercase letters, digits and underscores; part of its endpoint's path."),
        )
        .field(InputValue::new("description", TypeRef::named(TypeRef::STRING)).description("What it is for."))
        .field(
            InputValue::new("mode", TypeRef::named_nn("SandboxMode"))
                .default_value(Value::Enum(Name::new(Mode::MetadataOnly.as_str())))
                .description("What it is filled with."),
        )
        .field(
            InputValue::new("sampleSize", TypeRef::named(TypeRef::INT))
                .description("SAMPLE only: records per object, 1 to 100000; 1000 when not given."),
        )
        .field(
            InputValue::new("mask", TypeRef::named_nn(TypeRef::BOOLEAN))
                .default_value(false)
                .description(
                    "Replace personal data (names, emails, phones, addresses, notes) with fake values while \
                     copying: the same value always gets the same fake, emails stay unique.",
                ),
        )];
    (
        vec![sandbox_type(), size_type(), deleted_type(), progress_type()],
        inputs,
        vec![mode, status],
    )
}

fn sandbox_field(name: &str, type_ref: TypeRef, get: fn(&Sandbox) -> Option<Value>) -> Field {
    parent_field(name, type_ref, get)
}

fn sandbox_type() -> Object {
    Object::new("Sandbox")
        .description(
            "A copy of production's schema with its own endpoint, where customizations are built and tested \
             while production does not change.",
        )
        .field(
            sandbox_field("name", TypeRef::named_nn(TypeRef::STRING), |s| {
                Some(Value::String(s.name.clone()))
            })
            .description("Its name, in its endpoint's path and its Postgres schema (`sandbox_<name>`)."),
        )
        .field(
            sandbox_field("description", TypeRef::named_nn(TypeRef::STRING), |s| {
                Some(Value::String(s.description.clone()))
            })
            .description("What it is for."),
        )
        .field(
            sandbox_field("mode", TypeRef::named_nn("SandboxMode"), |s| {
                Some(Value::Enum(Name::new(s.mode.as_str())))
            })
            .description("What it was filled with."),
        )
        .field(
            sandbox_field("sampleSize", TypeRef::named(TypeRef::INT), |s| {
                s.sample_size.map(Value::from)
            })
            .description("Records per object of a SAMPLE sandbox."),
        )
        .field(
            sandbox_field("masked", TypeRef::named_nn(TypeRef::BOOLEAN), |s| {
                Some(Value::Boolean(s.masked))
            })
            .description("Personal data was replaced by fake values while copying."),
        )
        .field(status_field())
        .field(
            sandbox_field("createdAt", TypeRef::named_nn("DateTime"), |s| {
                Some(timestamp(s.created_at))
            })
            .description("When it was made."),
        )
        .field(user_field("createdBy", |s| s.created_by).description("Who made it; null for the command line."))
        .field(
            sandbox_field("refreshedAt", TypeRef::named("DateTime"), |s| {
                s.refreshed_at.map(timestamp)
            })
            .description("When it was last made again from production; null if never."),
        )
        .field(user_field("refreshedBy", |s| s.refreshed_by).description("Who refreshed it last."))
        .field(
            sandbox_field("baseVersion", TypeRef::named_nn(TypeRef::INT), |s| {
                Some(Value::from(s.base_version))
            })
            .description("Production's metadata version it was made (or refreshed) from: its base."),
        )
        .field(production_version_field())
        .field(size_field())
        .field(endpoint_field())
        .field(granted_users_field())
}

/// `Sandbox.status`.
fn status_field() -> Field {
    Field::new("status", TypeRef::named_nn("SandboxStatus"), |ctx| {
        resolved(async move {
            let (context, sandbox) = parent(&ctx)?;
            let mut conn = context.db.conn().await?;
            let production = sandbox::production_version(&mut conn).await?;
            let status = if production == sandbox.base_version {
                "CURRENT"
            } else {
                "PRODUCTION_CHANGED"
            };
            Ok(Some(FieldValue::value(Value::Enum(Name::new(status)))))
        })
    })
    .description("Whether production's metadata changed since the sandbox's base.")
}

/// `Sandbox.productionVersion`.
fn production_version_field() -> Field {
    Field::new("productionVersion", TypeRef::named_nn(TypeRef::INT), |ctx| {
        resolved(async move {
            let (context, _) = parent(&ctx)?;
            let mut conn = context.db.conn().await?;
            let version = sandbox::production_version(&mut conn).await?;
            Ok(Some(FieldValue::value(Value::from(version))))
        })
    })
    .description("Production's metadata version now.")
}

/// `Sandbox.size`.
fn size_field() -> Field {
    Field::new("size", TypeRef::named_nn("SandboxSize"), |ctx| {
        resolved(async move {
            let (context, sandbox) = parent(&ctx)?;
            let mut conn = context.db.conn().await?;
            let size = sandbox::size(&mut conn, sandbox).await?;
            Ok(Some(FieldValue::owned_any(size)))
        })
    })
    .description("What it holds now (counted when asked).")
}

/// `Sandbox.endpoint`.
fn endpoint_field() -> Field {
    Field::new("endpoint", TypeRef::named_nn(TypeRef::STRING), |ctx| {
        resolved(async move {
            let (context, sandbox) = parent(&ctx)?;
            let path = format!("/sandboxes/{}/graphql", sandbox.name);
            let url = match &context.base_url {
                Some(base) => format!("{base}{path}"),
                None => path,
            };
            Ok(Some(FieldValue::value(Value::String(url))))
        })
    })
    .description("Its GraphQL endpoint; open it in a browser for its playground.")
}

/// `Sandbox.grantedUsers`.
fn granted_users_field() -> Field {
    Field::new("grantedUsers", TypeRef::named_nn_list_nn("User"), |ctx| {
        resolved(async move {
            let (context, sandbox) = parent(&ctx)?;
            let mut conn = context.db.conn().await?;
            let ids = sandbox::granted(&mut conn, &sandbox.name).await?;
            drop(conn);
            let mut users = Vec::new();
            for id in ids {
                users.extend(load_user(&ctx, context, id).await?);
            }
            Ok(Some(FieldValue::list(users)))
        })
    })
    .description("Users who are not admins but may use its endpoint (admins always may).")
}

fn user_field(name: &str, get: fn(&Sandbox) -> Option<uuid::Uuid>) -> Field {
    Field::new(name, TypeRef::named("User"), move |ctx| {
        resolved(async move {
            let (context, sandbox) = parent(&ctx)?;
            match get(sandbox) {
                Some(id) => load_user(&ctx, context, id).await,
                None => Ok(None),
            }
        })
    })
}

fn parent<'a>(ctx: &'a ResolverContext<'_>) -> Result<(&'a RequestContext, &'a Sandbox)> {
    Ok((context(ctx)?, ctx.parent_value.try_downcast_ref::<Sandbox>()?))
}

fn size_type() -> Object {
    let size = |name: &str, get: fn(&sandbox::Size) -> Value| {
        Field::new(
            name,
            TypeRef::named_nn(if name == "rows" { TypeRef::INT } else { TypeRef::FLOAT }),
            move |ctx| {
                let size = ctx.parent_value.try_downcast_ref::<sandbox::Size>();
                FieldFuture::from_value(size.ok().map(get))
            },
        )
    };
    Object::new("SandboxSize")
        .description("What a sandbox holds.")
        .field(size("rows", |s| Value::from(s.rows)).description("Records and configuration rows (pipelines, stages)."))
        .field(size("bytes", |s| Value::from(s.bytes as f64)).description("Disk used by its tables and indexes."))
}

fn deleted_type() -> Object {
    Object::new("DeletedSandbox")
        .description("A sandbox that was deleted, with everything in it.")
        .field(
            sandbox_field("name", TypeRef::named_nn(TypeRef::STRING), |s| {
                Some(Value::String(s.name.clone()))
            })
            .description("Its name, in its endpoint's path and its Postgres schema (`sandbox_<name>`)."),
        )
}

/// The context of a sandbox-management request: admins, on the production
/// endpoint.
pub fn manager<'a>(ctx: &'a ResolverContext<'_>) -> Result<&'a RequestContext> {
    let context = context(ctx)?;
    access::require_admin(&context.actor, AdminPermission::ManageSandboxes)?;
    if context.trail.workspace != "production" {
        return Err(CrmError::bad_input(
            &[],
            "sandboxes are managed on the production endpoint, /graphql",
        ));
    }
    Ok(context)
}

fn query_fields() -> Vec<Field> {
    vec![
        Field::new("sandboxes", TypeRef::named_nn_list_nn("Sandbox"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let mut conn = context.db.conn().await?;
                let sandboxes = sandbox::list(&mut conn).await?;
                Ok(Some(FieldValue::list(sandboxes.into_iter().map(FieldValue::owned_any))))
            })
        })
        .description("Every sandbox, by name. Admins only, on the production endpoint."),
        Field::new("sandbox", TypeRef::named("Sandbox"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let mut conn = context.db.conn().await?;
                Ok(sandbox::find(&mut conn, &name).await?.map(FieldValue::owned_any))
            })
        })
        .argument(name_argument())
        .description("One sandbox; null when there is none. Admins only, on the production endpoint."),
        Field::new("sandboxProgress", TypeRef::named("SandboxProgress"), |ctx| {
            resolved(async move {
                manager(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                Ok(progress::current(&name).map(FieldValue::owned_any))
            })
        })
        .argument(name_argument())
        .description(
            "How the making (createSandbox) or refreshing of a sandbox goes while it runs on this server; null \
             when none is under way here. Admins only.",
        ),
    ]
}

fn progress_type() -> Object {
    let made = |name: &str, type_ref: TypeRef, get: fn(&Made) -> Option<Value>| parent_field(name, type_ref, get);
    Object::new("SandboxProgress")
        .description("A sandbox being made or refreshed: the step under way and the rows copied so far.")
        .field(
            made("name", TypeRef::named_nn(TypeRef::STRING), |m| {
                Some(Value::String(m.name.clone()))
            })
            .description("The sandbox's name."),
        )
        .field(
            made("step", TypeRef::named_nn(TypeRef::STRING), |m| {
                Some(Value::String(m.step.clone()))
            })
            .description("The step under way: `copying contact`, `indexing` …"),
        )
        .field(
            made("rowsEstimated", TypeRef::named_nn(TypeRef::FLOAT), |m| {
                Some(Value::from(m.rows_estimated as f64))
            })
            .description("About how many rows its mode copies in all (0 before copying begins)."),
        )
        .field(
            made("rowsCopied", TypeRef::named_nn(TypeRef::FLOAT), |m| {
                Some(Value::from(m.rows_copied as f64))
            })
            .description("Rows copied so far."),
        )
        .field(
            made("startedAt", TypeRef::named_nn("DateTime"), |m| {
                Some(timestamp(m.started_at))
            })
            .description("When it began."),
        )
}

fn mutation_fields() -> Vec<Field> {
    vec![
        Field::new("createSandbox", TypeRef::named_nn("Sandbox"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let new = new_sandbox(arg(&ctx, "input"))?;
                let tracked = Tracked::new(&new.name);
                let made = sandbox::create(&context.db, &context.trail, &new, &tracked).await?;
                Ok(Some(FieldValue::owned_any(made)))
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("CreateSandboxInput")).description("The sandbox."))
        .description(
            "Makes a sandbox from production as it is now, in one transaction: its schema, production's \
             customizations and configuration, and the records its mode asks for. Admins only.",
        ),
        Field::new("refreshSandbox", TypeRef::named_nn("Sandbox"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let mut conn = context.db.conn().await?;
                let current = sandbox::find(&mut conn, &name)
                    .await?
                    .ok_or_else(|| CrmError::not_found("Sandbox", &name))?;
                drop(conn);
                let mode = enum_name(arg(&ctx, "mode"))
                    .and_then(|m| Mode::parse(&m))
                    .unwrap_or(current.mode);
                let sample_size = match arg(&ctx, "sampleSize") {
                    Some(value) => int(value, &["sampleSize"])?,
                    None if mode == current.mode => current.sample_size,
                    None => None,
                };
                let mask = match arg(&ctx, "mask") {
                    Some(Value::Boolean(mask)) => *mask,
                    _ => current.masked,
                };
                let filling = Filling::new(mode, sample_size, mask, &["sampleSize"])?;
                let tracked = Tracked::new(&name);
                let made = sandbox::refresh(&context.db, &context.trail, &name, &filling, &tracked).await?;
                if let Some(schemas) = &context.schemas {
                    schemas.invalidate(&name);
                }
                Ok(Some(FieldValue::owned_any(made)))
            })
        })
        .argument(name_argument())
        .argument(
            InputValue::new("mode", TypeRef::named("SandboxMode")).description("A new mode; the same when not given."),
        )
        .argument(InputValue::new("sampleSize", TypeRef::named(TypeRef::INT)).description("A new sample size."))
        .argument(InputValue::new("mask", TypeRef::named(TypeRef::BOOLEAN)).description("Mask personal data or not."))
        .description(
            "Makes a sandbox again from production as it is now, discarding every change made in it. \
             Admins only.",
        ),
        Field::new("deleteSandbox", TypeRef::named_nn("DeletedSandbox"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let deleted = sandbox::delete(&context.db, &context.trail, &name).await?;
                if let Some(schemas) = &context.schemas {
                    schemas.invalidate(&name);
                }
                Ok(Some(FieldValue::owned_any(deleted)))
            })
        })
        .argument(name_argument())
        .description("Deletes a sandbox and everything in it; production does not change. Admins only."),
        grant_field("grantSandboxAccess", true).description(
            "Lets a user who is not an admin use a sandbox's endpoint, with their own role (testers trying \
             changes). Admins only.",
        ),
        grant_field("revokeSandboxAccess", false).description("Takes back a grant. Admins only."),
    ]
}

fn grant_field(name: &str, grant: bool) -> Field {
    Field::new(name, TypeRef::named_nn("Sandbox"), move |ctx| {
        resolved(async move {
            let context = manager(&ctx)?;
            let name = text_arg(&ctx, "name")?;
            let user = match arg(&ctx, "userId") {
                Some(Value::String(id)) => input::parse_id(id, &Path::root("userId"))?,
                _ => return Err(CrmError::bad_input(&["userId"], "userId is required")),
            };
            let mut conn = context.db.conn().await?;
            if grant {
                sandbox::grant(&mut conn, &context.trail, &name, user).await?;
            } else {
                sandbox::revoke(&mut conn, &context.trail, &name, user).await?;
            }
            Ok(sandbox::find(&mut conn, &name).await?.map(FieldValue::owned_any))
        })
    })
    .argument(name_argument())
    .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)).description("The user."))
}

fn name_argument() -> InputValue {
    InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The sandbox's name.")
}

fn new_sandbox(input: Option<&Value>) -> Result<NewSandbox> {
    let Some(Value::Object(input)) = input else {
        return Err(CrmError::bad_input(&["input"], "input is required"));
    };
    let text = |key: &str| match input.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let name = text("name").ok_or_else(|| CrmError::bad_input(&["input", "name"], "name is required"))?;
    sandbox::check_name(&name).map_err(|why| CrmError::bad_input(&["input", "name"], why))?;
    let description = text("description").unwrap_or_default();
    if description.chars().count() > 1000 || description.contains('\0') {
        return Err(CrmError::bad_input(
            &["input", "description"],
            "a description is at most 1000 characters, without NUL",
        ));
    }
    let mode = match enum_name(input.get("mode")) {
        Some(mode) => {
            Mode::parse(&mode).ok_or_else(|| CrmError::bad_input(&["input", "mode"], "not a sandbox mode"))?
        }
        None => Mode::MetadataOnly,
    };
    let sample_size = match input.get("sampleSize") {
        Some(value) => int(value, &["input", "sampleSize"])?,
        None => None,
    };
    let mask = matches!(input.get("mask"), Some(Value::Boolean(true)));
    Ok(NewSandbox {
        name,
        description,
        filling: Filling::new(mode, sample_size, mask, &["input", "sampleSize"])?,
    })
}
