//! The API of users and tokens: the caller (`me`) and API tokens. The
//! tokens themselves (issuing, hashing, revoking) are `auth`'s.

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};
use uuid::Uuid;

use crate::access::{self, AdminPermission};
use crate::auth::{self, NewToken, Role, TokenInfo, UserRef};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::loader::RecordKey;
use crate::graphql::resolve::{arg, context, id_arg, resolved, timestamp, RequestContext};
use crate::graphql::room::Surface;
use crate::graphql::selection;

/// Adds `me`, `apiTokens`, `createApiToken` and `revokeApiToken`.
pub fn register(surface: &mut Surface) {
    surface.object(me_type());
    surface.object(api_token_type());
    surface.object(created_token_type());
    surface.input(
        InputObject::new("CreateApiTokenInput")
            .description("A new API token.")
            .field(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)).description("The user it acts for."))
            .field(
                InputValue::new("name", TypeRef::named_nn(TypeRef::STRING))
                    .description("What it is for, e.g. `billing sync`."),
            )
            .field(
                InputValue::new("role", TypeRef::named("UserRole"))
                    .description("The role it acts with: at most the user's role, which is the default."),
            )
            .field(
                InputValue::new("expiresAt", TypeRef::named("DateTime"))
                    .description("When it stops working; never, when absent."),
            ),
    );
    surface.queries(&["me", "apiTokens"], query_fields());
    surface.mutations(mutation_fields());
}

fn query_fields() -> Vec<Field> {
    vec![
        Field::new("me", TypeRef::named_nn("Me"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                Ok(Some(FieldValue::owned_any(context.actor.clone())))
            })
        })
        .description("Who the request acts for: the token's user and role."),
        Field::new("apiTokens", TypeRef::named_nn_list_nn("ApiToken"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
                let user = optional_id(&ctx, "userId")?;
                let mut conn = context.db.conn().await?;
                let tokens = auth::list(&mut conn, user).await?;
                Ok(Some(FieldValue::list(tokens.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(InputValue::new("userId", TypeRef::named(TypeRef::ID)).description("Only this user's tokens."))
        .description("API tokens, newest first (never their secrets). Admins only."),
    ]
}

fn mutation_fields() -> Vec<Field> {
    vec![
        Field::new("createApiToken", TypeRef::named_nn("CreatedApiToken"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
                let new = new_token(arg(&ctx, "input"))?;
                let mut conn = context.db.conn().await?;
                let issued = auth::issue(&mut conn, &context.trail, &new).await?;
                Ok(Some(FieldValue::owned_any(issued)))
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("CreateApiTokenInput")).description("The token."))
        .description("Creates an API token. Its text is in the answer and nowhere else: keep it. Admins only."),
        Field::new("revokeApiToken", TypeRef::named_nn("ApiToken"), |ctx| {
            resolved(async move {
                let context = context(&ctx)?;
                access::require_admin(&context.actor, AdminPermission::ManageUsers)?;
                let id = id_arg(&ctx)?;
                let mut conn = context.db.conn().await?;
                let revoked = auth::revoke(&mut conn, &context.trail, id).await?;
                if let Some(authenticator) = &context.authenticator {
                    authenticator.forget(id);
                }
                Ok(Some(FieldValue::owned_any(revoked)))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The token's id."))
        .description("Revokes an API token: requests with it are refused from now on. Admins only."),
    ]
}

fn optional_id(ctx: &ResolverContext<'_>, name: &str) -> Result<Option<Uuid>> {
    match arg(ctx, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => input::parse_id(text, &Path::root(name)).map(Some),
        Some(other) => Err(CrmError::bad_input(
            &[name],
            format!("{other} is not a valid ID (a UUID)"),
        )),
    }
}

fn new_token(input: Option<&Value>) -> Result<NewToken> {
    let Some(Value::Object(input)) = input else {
        return Err(CrmError::bad_input(&["input"], "input must be an object"));
    };
    let path = Path::root("input");
    let user = match input.get("userId") {
        Some(Value::String(id)) => input::parse_id(id, &path.at("userId"))?,
        _ => return Err(path.at("userId").error("userId is required")),
    };
    let name = match input.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err(path.at("name").error("name is required")),
    };
    let role = match input.get("role") {
        None | Some(Value::Null) => None,
        Some(Value::Enum(role)) => Role::parse(role.as_str()),
        Some(Value::String(role)) => Role::parse(role),
        Some(_) => None,
    };
    let expires_at = match input.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) => {
            Some(crate::metadata::parse_datetime(at).map_err(|_| path.at("expiresAt").error("not a DateTime"))?)
        }
        Some(_) => return Err(path.at("expiresAt").error("not a DateTime")),
    };
    Ok(NewToken {
        user: UserRef::Id(user),
        role,
        name,
        expires_at,
    })
}

fn me_type() -> Object {
    Object::new("Me")
        .description("Who a request acts for.")
        .field(
            Field::new("user", TypeRef::named_nn("User"), |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    let actor = ctx.parent_value.try_downcast_ref::<auth::Actor>()?;
                    let user = load_user(&ctx, context, actor.user_id).await?;
                    Ok(user)
                })
            })
            .description("The token's user."),
        )
        .field(
            Field::new("role", TypeRef::named_nn("UserRole"), |ctx| {
                let role = ctx.parent_value.try_downcast_ref::<auth::Actor>().map(|a| a.role);
                FieldFuture::from_value(role.ok().map(|r| Value::Enum(Name::new(r.as_str()))))
            })
            .description("The role requests act with: the token's, at most the user's."),
        )
        .field(
            Field::new("tokenId", TypeRef::named(TypeRef::ID), |ctx| {
                let token = ctx.parent_value.try_downcast_ref::<auth::Actor>().map(|a| a.token_id);
                FieldFuture::from_value(token.ok().flatten().map(|id| Value::String(id.to_string())))
            })
            .description("The id of the token the request came with."),
        )
}

/// A user by id, as the selection under the current field asks.
pub async fn load_user<'a>(
    ctx: &ResolverContext<'a>,
    context: &RequestContext,
    id: Uuid,
) -> Result<Option<FieldValue<'a>>> {
    let object = context
        .model
        .object("User")
        .ok_or_else(|| CrmError::internal("the model has no User"))?;
    let fields = selection::record_fields(object, ctx.field().selection_set(), &[]);
    let user = context
        .loader
        .load_one(RecordKey {
            object: "User".into(),
            fields,
            id,
        })
        .await?;
    Ok(user.map(FieldValue::owned_any))
}

fn token_field(name: &str, type_ref: TypeRef, get: fn(&TokenInfo) -> Option<Value>) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let token = ctx.parent_value.try_downcast_ref::<TokenInfo>().or_else(|_| {
            ctx.parent_value
                .try_downcast_ref::<auth::IssuedToken>()
                .map(|t| &t.info)
        });
        FieldFuture::from_value(token.ok().and_then(get))
    })
}

fn api_token_type() -> Object {
    Object::new("ApiToken")
        .description("An API token, without its secret.")
        .field(
            token_field("id", TypeRef::named_nn(TypeRef::ID), |t| {
                Some(Value::String(t.id.to_string()))
            })
            .description("The token's id: its text starts with `crm_` and this id without dashes."),
        )
        .field(
            token_field("name", TypeRef::named_nn(TypeRef::STRING), |t| {
                Some(Value::String(t.name.clone()))
            })
            .description("What it is for."),
        )
        .field(
            Field::new("user", TypeRef::named_nn("User"), |ctx| {
                resolved(async move {
                    let context = context(&ctx)?;
                    let token = ctx.parent_value.try_downcast_ref::<TokenInfo>()?;
                    load_user(&ctx, context, token.user_id).await
                })
            })
            .description("The user it acts for."),
        )
        .field(
            token_field("role", TypeRef::named_nn("UserRole"), |t| {
                Some(Value::Enum(Name::new(&t.role)))
            })
            .description("The role it acts with (at most its user's)."),
        )
        .field(
            token_field("createdAt", TypeRef::named_nn("DateTime"), |t| {
                Some(timestamp(t.created_at))
            })
            .description("When it was created."),
        )
        .field(
            token_field("expiresAt", TypeRef::named("DateTime"), |t| t.expires_at.map(timestamp))
                .description("When it stops working."),
        )
        .field(
            token_field("revokedAt", TypeRef::named("DateTime"), |t| t.revoked_at.map(timestamp))
                .description("When it was revoked."),
        )
        .field(
            token_field("lastUsedAt", TypeRef::named("DateTime"), |t| {
                t.last_used_at.map(timestamp)
            })
            .description("When a request last came with it (to within a few seconds)."),
        )
}

fn created_token_type() -> Object {
    Object::new("CreatedApiToken")
        .description("A token just created: the only time its text is shown.")
        .field(
            Field::new("token", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                let issued = ctx.parent_value.try_downcast_ref::<auth::IssuedToken>();
                FieldFuture::from_value(issued.ok().map(|t| Value::String(t.token.clone())))
            })
            .description("Send it as `Authorization: Bearer <token>`. It is not stored: keep it now."),
        )
        .field(
            Field::new("apiToken", TypeRef::named_nn("ApiToken"), |ctx| {
                resolved(async move {
                    let issued = ctx.parent_value.try_downcast_ref::<auth::IssuedToken>()?;
                    Ok(Some(FieldValue::owned_any(issued.info.clone())))
                })
            })
            .description("The token's details."),
        )
}
