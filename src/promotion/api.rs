//! The promotion API on the production endpoint: `sandboxDiff`,
//! `promoteSandbox`, `promotions`, `promotion` and `revertPromotion`.
//! Reports are JSON documents built by [`crate::promotion`]; the types
//! here read their keys.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::{Name, Value};
use serde_json::Value as Json;

use crate::error::{CrmError, Result};
use crate::graphql::resolve::{arg, enum_name, id_arg, int, resolved, text_arg, RequestContext};
use crate::graphql::room::Surface;
use crate::graphql::Workspace;
use crate::metadata::kinds::{self, Action};
use crate::promotion::apply::{Side, Status};
use crate::promotion::sdl::Level;
use crate::promotion::{self, Options, Report, Source};
use crate::sandbox::api::manager;
use crate::team::api::load_user;

/// Promotions listed when the client names no number.
const DEFAULT_FIRST: i32 = 50;
const MAX_FIRST: i32 = 500;

/// Adds `sandboxDiff`, `promotions`, `promotion`, `promoteSandbox`, `revertPromotion` and their types.
pub fn register(surface: &mut Surface) {
    surface.types(types());
    surface.queries(&["sandboxDiff", "promotions", "promotion"], query_fields());
    surface.mutations(mutation_fields());
}

fn types() -> (Vec<Object>, Vec<InputObject>, Vec<Enum>) {
    let enumeration = |name: &str, description: &str, items: Vec<(&str, &str)>| {
        items
            .into_iter()
            .fold(Enum::new(name).description(description), |e, (value, about)| {
                e.item(EnumItem::new(value).description(about))
            })
    };
    let enums = vec![
        enumeration(
            "ChangeKind",
            "What a promoted change is about.",
            kinds::all()
                .iter()
                .map(|k| (k.about().identifier, k.about().description))
                .collect(),
        ),
        enumeration(
            "ChangeAction",
            "What a promoted change does to its item.",
            Action::ALL.iter().map(|a| (a.as_str(), a.description())).collect(),
        ),
        enumeration(
            "ChangeStatus",
            "Where a promoted change stands.",
            Status::ALL.iter().map(|s| (s.as_str(), s.description())).collect(),
        ),
        enumeration(
            "ApiImpact",
            "What a change does to existing GraphQL clients.",
            Level::ALL.iter().map(|l| (l.as_str(), l.description())).collect(),
        ),
        enumeration(
            "ConflictSide",
            "Which version wins a conflict.",
            vec![
                (
                    "SOURCE",
                    "The sandbox's (or changeset's) version is applied over the target's.",
                ),
                (
                    "TARGET",
                    "The target (production) keeps its version; the change is skipped.",
                ),
            ],
        ),
        enumeration(
            "PromotionKind",
            "Where a promotion's changes came from.",
            vec![
                ("SANDBOX", "A sandbox's changes since its base."),
                ("CHANGESET", "A changeset file."),
                ("REVERT", "The inverse of an earlier promotion."),
            ],
        ),
        enumeration(
            "PromotionStatus",
            "Whether a promotion still stands.",
            vec![
                ("APPLIED", "Its changes are in the workspace."),
                ("REVERTED", "It was undone by a later promotion of kind REVERT."),
            ],
        ),
    ];
    let inputs = vec![InputObject::new("ConflictResolution")
        .description("How to resolve one conflict of a promotion.")
        .field(
            InputValue::new("key", TypeRef::named_nn(TypeRef::STRING))
                .description("The conflicting change's key (PromotionChange.key)."),
        )
        .field(InputValue::new("take", TypeRef::named_nn("ConflictSide")).description("Whose version wins."))];
    let objects = vec![
        report_type(),
        change_type(),
        property_type(),
        sdl_change_type(),
        data_impact_type(),
        promotion_type(),
    ];
    (objects, inputs, enums)
}

/// A field reading the parent document's key of the same name.
fn value(name: &str, type_ref: TypeRef) -> Field {
    let key = name.to_owned();
    Field::new(name, type_ref, move |ctx| {
        let found = ctx
            .parent_value
            .try_downcast_ref::<Json>()
            .ok()
            .map(|doc| doc[&key].clone());
        FieldFuture::from_value(found.filter(|v| !v.is_null()).and_then(|v| Value::from_json(v).ok()))
    })
}

/// A field reading an enum value (a string) of the parent document.
fn enum_value(name: &str, type_ref: TypeRef) -> Field {
    let key = name.to_owned();
    Field::new(name, type_ref, move |ctx| {
        let found = ctx
            .parent_value
            .try_downcast_ref::<Json>()
            .ok()
            .map(|doc| doc[&key].clone());
        FieldFuture::from_value(found.and_then(|v| v.as_str().map(|s| Value::Enum(Name::new(s)))))
    })
}

/// A field reading a nested document, or a list of them.
fn nested(name: &str, type_ref: TypeRef) -> Field {
    let key = name.to_owned();
    Field::new(name, type_ref, move |ctx| {
        let found = ctx
            .parent_value
            .try_downcast_ref::<Json>()
            .ok()
            .map(|doc| doc[&key].clone());
        FieldFuture::new(async move {
            Ok(match found {
                Some(Json::Array(items)) => Some(FieldValue::list(items.into_iter().map(FieldValue::owned_any))),
                Some(Json::Null) | None => None,
                Some(doc) => Some(FieldValue::owned_any(doc)),
            })
        })
    })
}

/// A user named by an id key of the parent document.
fn user(name: &str, key: &'static str) -> Field {
    Field::new(name, TypeRef::named("User"), move |ctx| {
        resolved(async move {
            let context = crate::graphql::resolve::context(&ctx)?;
            let id = ctx
                .parent_value
                .try_downcast_ref::<Json>()?
                .get(key)
                .and_then(Json::as_str)
                .and_then(|id| uuid::Uuid::parse_str(id).ok());
            match id {
                Some(id) => load_user(&ctx, context, id).await,
                None => Ok(None),
            }
        })
    })
}

fn report_type() -> Object {
    Object::new("PromotionReport")
        .description(
            "What a diff, a dry run or a promotion found and did: every change with its conflicts, its effect \
             on GraphQL clients and on existing records.",
        )
        .field(
            value("source", TypeRef::named_nn(TypeRef::STRING))
                .description("`sandbox qa`, `changeset …`, `revert of promotion …`."),
        )
        .field(
            value("workspace", TypeRef::named_nn(TypeRef::STRING)).description("The workspace changed (the target)."),
        )
        .field(value("dryRun", TypeRef::named_nn(TypeRef::BOOLEAN)).description("Checked, then rolled back."))
        .field(
            value("applied", TypeRef::named_nn(TypeRef::BOOLEAN)).description("Committed: the target has the changes."),
        )
        .field(
            Field::new("promotion", TypeRef::named("Promotion"), |ctx| {
                resolved(async move {
                    let context = crate::graphql::resolve::context(&ctx)?;
                    let id = ctx
                        .parent_value
                        .try_downcast_ref::<Json>()?
                        .get("promotionId")
                        .and_then(Json::as_str)
                        .and_then(|id| uuid::Uuid::parse_str(id).ok());
                    let Some(id) = id else { return Ok(None) };
                    let mut conn = context.db.conn().await?;
                    Ok(promotion::find(&mut conn, id).await?.map(FieldValue::owned_any))
                })
            })
            .description("The promotion recorded; null unless applied."),
        )
        .field(
            value("baseVersion", TypeRef::named(TypeRef::INT))
                .description("The sandbox's base: production's metadata version it was made from."),
        )
        .field(
            value("versionBefore", TypeRef::named_nn(TypeRef::INT))
                .description("The target's metadata version before."),
        )
        .field(
            value("versionAfter", TypeRef::named_nn(TypeRef::INT))
                .description("The target's metadata version after (the same unless applied)."),
        )
        .field(
            nested("changes", TypeRef::named_nn_list_nn("PromotionChange"))
                .description("The changes, in the order they apply."),
        )
        .field(
            nested("targetChanges", TypeRef::named_nn_list_nn("PromotionChange"))
                .description("What the target (production) changed since the sandbox's base: kept as it is."),
        )
        .field(
            nested("sdlChanges", TypeRef::named_nn_list_nn("SdlChange"))
                .description("Every change of the target's GraphQL schema."),
        )
        .field(
            enum_value("apiImpact", TypeRef::named_nn("ApiImpact")).description("The most severe effect on clients."),
        )
        .field(
            value("conflicts", TypeRef::named_nn(TypeRef::INT))
                .description("Changes in conflict with the target's own."),
        )
        .field(
            value("failures", TypeRef::named_nn(TypeRef::INT)).description("Changes the target's data or API refuses."),
        )
        .field(value("breaking", TypeRef::named_nn(TypeRef::INT)).description("Changes that break existing clients."))
        .field(value("lossy", TypeRef::named_nn(TypeRef::INT)).description(
            "Type changes that lose information of the target's values (a time of day, fraction digits …): \
             refused unless allowLossy. The old values are kept, so a revert brings them back.",
        ))
        .field(
            value("blockers", TypeRef::named_nn_list_nn(TypeRef::STRING))
                .description("Why it cannot be applied as it stands; empty when it can."),
        )
        .field(
            Field::new("canApply", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                let doc = ctx.parent_value.try_downcast_ref::<Json>();
                let empty = doc.ok().map(|d| d["blockers"].as_array().is_none_or(|b| b.is_empty()));
                FieldFuture::from_value(empty.map(Value::Boolean))
            })
            .description("Nothing blocks applying it (with the same allowBreaking, allowLossy and resolutions)."),
        )
        .field(value("rebased", TypeRef::named(TypeRef::BOOLEAN)).description(
            "After a promotion: the sandbox now has production's metadata as its base (false when its data refused \
             production's own changes; it then shows PRODUCTION_CHANGED).",
        ))
}

fn change_type() -> Object {
    Object::new("PromotionChange")
        .description("One item's change (a custom object or field, a pipeline, a stage, the settings).")
        .field(
            value("key", TypeRef::named_nn(TypeRef::STRING))
                .description("Names the change in `resolutions`: kind and id."),
        )
        .field(enum_value("kind", TypeRef::named_nn("ChangeKind")).description("What the change is about."))
        .field(enum_value("action", TypeRef::named_nn("ChangeAction")).description("What it does to its item."))
        .field(
            value("target", TypeRef::named_nn(TypeRef::STRING))
                .description("The item: `Account.tier`, `Sales / Closed Won`."),
        )
        .field(value("summary", TypeRef::named_nn(TypeRef::STRING)).description("What it does, in one line."))
        .field(value("before", TypeRef::named("JSON")).description("The item at the base; null for a new one."))
        .field(value("after", TypeRef::named_nn("JSON")).description("The item as changed."))
        .field(
            nested("properties", TypeRef::named_nn_list_nn("PropertyChange"))
                .description("Each changed property, with the target's value now."),
        )
        .field(
            enum_value("status", TypeRef::named_nn("ChangeStatus")).description("Where it stands against the target."),
        )
        .field(
            value("conflict", TypeRef::named(TypeRef::STRING))
                .description("How the target changed the same item since the base."),
        )
        .field(enum_value("resolution", TypeRef::named("ConflictSide")).description("How its conflict was resolved."))
        .field(
            enum_value("apiImpact", TypeRef::named_nn("ApiImpact"))
                .description("Its effect on existing GraphQL clients."),
        )
        .field(
            nested("sdlChanges", TypeRef::named_nn_list_nn("SdlChange"))
                .description("The GraphQL schema changes it causes (known once it is made: READY, APPLIED)."),
        )
        .field(
            nested("clientImpacts", TypeRef::named_nn_list_nn("SdlChange")).description(
                "What it means for existing clients, from the metadata: given for every change that would be made, \
             whether or not the target's data accepts it (a new required input, a retired value, a stage \
             forecasts read …).",
            ),
        )
        .field(nested("dataImpact", TypeRef::named("DataImpact")).description(
            "Why the target's records (or API) refuse it (status FAILS), what a type change loses of them \
             (lossy), or the records a retired value stays on; null when none.",
        ))
}

fn property_type() -> Object {
    Object::new("PropertyChange")
        .description("One property of a change: at the base, as changed, and in the target now.")
        .field(
            value("name", TypeRef::named_nn(TypeRef::STRING))
                .description("The property: `label`, `options`, `required` …"),
        )
        .field(value("before", TypeRef::named("JSON")).description("Its value at the base."))
        .field(value("after", TypeRef::named("JSON")).description("Its value as changed."))
        .field(value("target", TypeRef::named("JSON")).description("The target's value now."))
}

fn sdl_change_type() -> Object {
    Object::new("SdlChange")
        .description("One change of the GraphQL schema and what it does to existing clients.")
        .field(enum_value("level", TypeRef::named_nn("ApiImpact")).description("What it does to existing clients."))
        .field(
            value("path", TypeRef::named_nn(TypeRef::STRING))
                .description("`Account.tier`, `AccountInput.tier`, `AccountTier.GOLD`."),
        )
        .field(value("message", TypeRef::named_nn(TypeRef::STRING)).description("The change in words."))
}

fn data_impact_type() -> Object {
    Object::new("DataImpact")
        .description(
            "Why the target's existing records (or its API) refuse a change, or what a type change loses of them.",
        )
        .field(value("message", TypeRef::named_nn(TypeRef::STRING)).description("What refuses it and how to fix it."))
        .field(value("path", TypeRef::named_nn_list_nn(TypeRef::STRING)).description("The property concerned."))
        .field(
            value("count", TypeRef::named(TypeRef::INT)).description("Records that violate it (or lose information)."),
        )
        .field(value("sampleIds", TypeRef::named_nn_list_nn(TypeRef::ID)).description("Some of them."))
        .field(
            // Promotions stored before this flag existed read as false.
            Field::new("lossy", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                let doc = ctx.parent_value.try_downcast_ref::<Json>();
                let lossy = doc.ok().map(|d| d["lossy"].as_bool().unwrap_or(false));
                FieldFuture::from_value(lossy.map(Value::Boolean))
            })
            .description(
                "The change applies, but count values lose information (a time of day, fraction digits …): the \
                 promotion needs allowLossy. Their old values are kept, so a revert brings them back.",
            ),
        )
}

fn promotion_type() -> Object {
    Object::new("Promotion")
        .description(
            "Changes applied to a workspace in one transaction, stored with what each did so they can be reverted.",
        )
        .field(value("id", TypeRef::named_nn(TypeRef::ID)).description("Its id: what revertPromotion takes."))
        .field(value("workspace", TypeRef::named_nn(TypeRef::STRING)).description("The workspace changed."))
        .field(enum_value("kind", TypeRef::named_nn("PromotionKind")).description("Where its changes came from."))
        .field(
            value("source", TypeRef::named_nn(TypeRef::STRING))
                .description("The sandbox, the changeset file, or the promotion reverted."),
        )
        .field(enum_value("status", TypeRef::named_nn("PromotionStatus")).description("Whether it still stands."))
        .field(value("at", TypeRef::named_nn("DateTime")).description("When it committed."))
        .field(user("by", "actorId").description("Who applied it; null for the command line."))
        .field(
            value("versionBefore", TypeRef::named_nn(TypeRef::INT))
                .description("The workspace's metadata version before."),
        )
        .field(
            value("versionAfter", TypeRef::named_nn(TypeRef::INT))
                .description("The workspace's metadata version it produced."),
        )
        .field(
            nested("changes", TypeRef::named_nn_list_nn("PromotionChange"))
                .description("The changes as applied: `before` and `after` are the workspace's item before and after."),
        )
        .field(
            nested("sdlChanges", TypeRef::named_nn_list_nn("SdlChange")).description("The GraphQL schema's changes."),
        )
        .field(value("revertOf", TypeRef::named(TypeRef::ID)).description("For a REVERT: the promotion it undid."))
        .field(
            value("revertedAt", TypeRef::named("DateTime")).description("When it was reverted; null while it stands."),
        )
        .field(user("revertedBy", "revertedBy").description("Who reverted it."))
        .field(value("revertedIn", TypeRef::named(TypeRef::ID)).description("The REVERT promotion that undid it."))
}

fn query_fields() -> Vec<Field> {
    vec![
        Field::new("sandboxDiff", TypeRef::named_nn("PromotionReport"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let options = Options {
                    dry_run: true,
                    ..Options::default()
                };
                let report = promotion::run(
                    &context.db,
                    &context.trail,
                    context.rooms,
                    &Source::Sandbox(name),
                    "production",
                    &options,
                )
                .await?;
                answer(report)
            })
        })
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The sandbox."))
        .description(
            "Everything promoting a sandbox would change in production: each change three ways (the sandbox's \
             base, the sandbox now, production now) with its conflicts, its GraphQL schema change and how it \
             affects clients, and what production's records refuse, checked by applying it in a transaction that \
             is rolled back. Admins only, on the production endpoint.",
        ),
        Field::new("promotions", TypeRef::named_nn_list_nn("Promotion"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let first = match arg(&ctx, "first").map(|v| int(v, &["first"])).transpose()?.flatten() {
                    None => DEFAULT_FIRST,
                    Some(n) if (1..=MAX_FIRST).contains(&n) => n,
                    Some(_) => {
                        return Err(CrmError::bad_input(
                            &["first"],
                            format!("first must be 1 to {MAX_FIRST}"),
                        ))
                    }
                };
                let mut conn = context.db.conn().await?;
                let found = promotion::list(&mut conn, first).await?;
                Ok(Some(FieldValue::list(found.into_iter().map(FieldValue::owned_any))))
            })
        })
        .argument(
            InputValue::new("first", TypeRef::named(TypeRef::INT))
                .description("How many, newest first (default 50, at most 500)."),
        )
        .description(
            "Promotions, newest first: who, when, what changed, the SDL diff and whether it stands. Admins only.",
        ),
        Field::new("promotion", TypeRef::named("Promotion"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let id = id_arg(&ctx)?;
                let mut conn = context.db.conn().await?;
                Ok(promotion::find(&mut conn, id).await?.map(FieldValue::owned_any))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The promotion."))
        .description("One promotion; null when there is none. Admins only."),
    ]
}

fn mutation_fields() -> Vec<Field> {
    vec![
        Field::new("promoteSandbox", TypeRef::named_nn("PromotionReport"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let name = text_arg(&ctx, "name")?;
                let options = Options {
                    dry_run: flag(&ctx, "dryRun"),
                    expected_version: Some(expected_version(&ctx)?),
                    allow_breaking: flag(&ctx, "allowBreaking"),
                    allow_lossy: flag(&ctx, "allowLossy"),
                    resolutions: resolutions(&ctx)?,
                };
                let report = promotion::run(
                    &context.db,
                    &context.trail,
                    context.rooms,
                    &Source::Sandbox(name.clone()),
                    "production",
                    &options,
                )
                .await?;
                finished(context, &report, Some(&name)).await;
                answer(report)
            })
        })
        .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)).description("The sandbox."))
        .argument(
            InputValue::new("dryRun", TypeRef::named_nn(TypeRef::BOOLEAN))
                .description("Check everything against production's data, then roll back."),
        )
        .argument(
            InputValue::new("expectedProductionVersion", TypeRef::named_nn(TypeRef::INT)).description(
                "Production's metadata version the diff was read at: refused with CONFLICT if it moved since.",
            ),
        )
        .argument(
            InputValue::new("allowBreaking", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Apply changes that break existing GraphQL clients."),
        )
        .argument(allow_lossy())
        .argument(
            InputValue::new("resolutions", TypeRef::named_nn_list("ConflictResolution"))
                .description("Resolves conflicts by change key: whose version wins."),
        )
        .description(
            "Applies a sandbox's changes to production in one transaction under a lock, all or nothing. Refused \
             with CONFLICT (and `extensions.blockers`) when production's metadata version is not the expected one, \
             when conflicts are unresolved, when production's data refuses a change, when a change breaks \
             clients without allowBreaking, or when a type change loses information of values without allowLossy. Production's schema is rebuilt and the sandbox rebased on it. A dry run \
             returns the same report without committing. Admins only.",
        ),
        Field::new("revertPromotion", TypeRef::named_nn("PromotionReport"), |ctx| {
            resolved(async move {
                let context = manager(&ctx)?;
                let id = id_arg(&ctx)?;
                let mut conn = context.db.conn().await?;
                let found = promotion::find(&mut conn, id)
                    .await?
                    .ok_or_else(|| CrmError::not_found("Promotion", id))?;
                drop(conn);
                let workspace = found["workspace"].as_str().unwrap_or("production").to_owned();
                let options = Options {
                    dry_run: flag(&ctx, "dryRun"),
                    allow_lossy: flag(&ctx, "allowLossy"),
                    ..Options::default()
                };
                let report =
                    promotion::run(&context.db, &context.trail, context.rooms, &Source::Revert(id), &workspace, &options).await?;
                finished(context, &report, None).await;
                answer(report)
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)).description("The promotion."))
        .argument(InputValue::new("dryRun", TypeRef::named_nn(TypeRef::BOOLEAN)).description("Check, then roll back."))
        .argument(allow_lossy())
        .description(
            "Undoes a promotion by applying its stored inverse, with the same checks: fields it added are deleted \
             (their data kept), fields it deleted come back with their data, fields whose type it changed get their \
             old type and the values they had (for records not changed since), changed properties get their old \
             values. Refused with CONFLICT when the workspace changed the same items since. Admins only.",
        ),
    ]
}

/// The report as the API answers it; a refused promotion is an error.
fn answer<'a>(report: Report) -> Result<Option<FieldValue<'a>>> {
    if !report.dry_run && !report.applied {
        return Err(CrmError::Refused {
            message: format!("nothing was changed: {}", report.blockers.join("; ")),
            blockers: report.blockers,
        });
    }
    let doc = serde_json::to_value(&report).map_err(CrmError::internal)?;
    Ok(Some(FieldValue::owned_any(doc)))
}

/// After a commit: this server serves the new schemas at once (others
/// learn of them by NOTIFY).
async fn finished(context: &RequestContext, report: &Report, sandbox: Option<&str>) {
    if !report.applied {
        return;
    }
    if let Some(schemas) = &context.schemas {
        schemas.refresh(&context.db, &Workspace::production()).await;
        if let Some(name) = sandbox {
            schemas.invalidate(name);
        }
        if report.workspace != "production" {
            schemas.invalidate(&report.workspace);
        }
    }
}

/// The `allowLossy` argument of a promotion and a revert.
fn allow_lossy() -> InputValue {
    InputValue::new("allowLossy", TypeRef::named(TypeRef::BOOLEAN))
        .default_value(false)
        .description(
            "Apply type changes that lose information of existing values (see dataImpact.lossy); their old values \
             are kept, so a revert brings them back.",
        )
}

fn flag(ctx: &ResolverContext<'_>, name: &str) -> bool {
    matches!(arg(ctx, name), Some(Value::Boolean(true)))
}

fn expected_version(ctx: &ResolverContext<'_>) -> Result<i32> {
    let at = ["expectedProductionVersion"];
    match arg(ctx, at[0]) {
        Some(value) => int(value, &at)?,
        None => None,
    }
    .ok_or_else(|| CrmError::bad_input(&at, "a metadata version is required"))
}

fn resolutions(ctx: &ResolverContext<'_>) -> Result<Vec<(String, Side)>> {
    let Some(Value::List(items)) = arg(ctx, "resolutions") else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |key: &str| vec!["resolutions".to_owned(), i.to_string(), key.to_owned()];
            let Value::Object(item) = item else {
                return Err(CrmError::bad_input_at(at("key"), "a resolution is an object"));
            };
            let key = match item.get("key") {
                Some(Value::String(key)) => key.clone(),
                _ => return Err(CrmError::bad_input_at(at("key"), "key is required")),
            };
            let side = match enum_name(item.get("take")).as_deref() {
                Some("SOURCE") => Side::Source,
                Some("TARGET") => Side::Target,
                _ => return Err(CrmError::bad_input_at(at("take"), "take is SOURCE or TARGET")),
            };
            Ok((key, side))
        })
        .collect()
}
