//! The GraphQL surface of leads: `convertLead`, `convertLeads`,
//! `previewScoringRules` and `rescoreLeads`, with their types.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef};
use async_graphql::Value;
use diesel_async::AsyncConnection;
use serde_json::{json, Value as Json};

use super::convert::{self, Conversion, Request};
use super::scoring::{self, Rule};
use crate::access::{self, Operation};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::mutation::{hooks, MAX_BATCH};
use crate::graphql::resolve::{arg, context, resolved, RequestContext};
use crate::graphql::room::Surface;
use crate::graphql::schema::picklist_type;
use crate::records::Table;

/// Registers the leads room's types and fields.
pub fn register(surface: &mut Surface) {
    for (object, what) in [
        ("Account", "account"),
        ("Contact", "contact"),
        ("Opportunity", "opportunity"),
    ] {
        surface.input(target_input(object, what));
    }
    surface.input(convert_input());
    surface.object(duplicate_type());
    surface.object(conversion_type());
    surface.object(bucket_type());
    surface.object(grade_count_type());
    surface.object(preview_type());
    surface.object(rescored_type());
    surface.queries(&["previewScoringRules"], vec![preview_field()]);
    surface.mutations(vec![convert_field(), convert_batch_field(), rescore_field()]);
}

/// `ConvertLeadAccountInput { id create }`.
fn target_input(object: &str, what: &str) -> InputObject {
    InputObject::new(format!("ConvertLead{object}Input"))
        .description(format!(
            "The {what} a lead becomes: an existing one (`id`; only its empty fields are filled from the lead) \
             or a new one (`create`, the values the mapped lead fields do not give or that override them; \
             `{{}}` makes one from the mapping alone)."
        ))
        .field(InputValue::new("id", TypeRef::named(TypeRef::ID)).description(format!("An existing {what}.")))
        .field(
            InputValue::new("create", TypeRef::named(format!("Update{object}Input")))
                .description(format!("Values of a new {what}, over the mapped ones.")),
        )
}

fn convert_input() -> InputObject {
    let role = crate::metadata::standard::objects()
        .into_iter()
        .find(|o| o.name == "ContactRole")
        .and_then(|o| o.field("role").map(|f| picklist_type(&o, f)))
        .unwrap_or_else(|| "String".into());
    InputObject::new("ConvertLeadInput")
        .description("One lead to convert, and into what.")
        .field(InputValue::new("leadId", TypeRef::named_nn(TypeRef::ID)).description("The lead."))
        .field(
            InputValue::new("account", TypeRef::named("ConvertLeadAccountInput"))
                .description("The account: existing or new; omitted, a new one from the mapping."),
        )
        .field(
            InputValue::new("contact", TypeRef::named("ConvertLeadContactInput"))
                .description("The contact: existing or new; omitted, a new one from the mapping."),
        )
        .field(
            InputValue::new("opportunity", TypeRef::named("ConvertLeadOpportunityInput")).description(
                "The opportunity: existing or new (`{ create: { name, pipelineId, stageId, amount, closeDate } }`); \
                 omitted or null, none.",
            ),
        )
        .field(
            InputValue::new("contactRole", TypeRef::named(role))
                .description("The contact's role in the opportunity (default DECISION_MAKER)."),
        )
        .field(
            InputValue::new("ownerId", TypeRef::named(TypeRef::ID))
                .description("The owner of the new records; default the lead's owner."),
        )
        .field(
            InputValue::new("idempotencyKey", TypeRef::named(TypeRef::STRING)).description(
                "A key the client makes once per conversion: the same key again answers this conversion \
             (`replayed: true`) instead of converting twice.",
            ),
        )
        .field(
            InputValue::new("allowDuplicates", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Create the account or contact even though records like it exist."),
        )
        .field(
            InputValue::new("dryRun", TypeRef::named(TypeRef::BOOLEAN))
                .default_value(false)
                .description("Answer the duplicates and the records the conversion would make, and change nothing."),
        )
}

/// A field of `T` answered from the parent value by `get`.
fn parent_field<T: Send + Sync + 'static>(
    name: &str,
    type_ref: TypeRef,
    description: &str,
    get: fn(&T) -> Option<FieldValue<'static>>,
) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx.parent_value.try_downcast_ref::<T>().ok().and_then(get);
        FieldFuture::new(async move { Ok(value) })
    })
    .description(description)
}

/// A field of a JSON parent answered from its key `name`: scalars as
/// values, objects and lists of objects as JSON parents again.
fn json_field(name: &'static str, type_ref: TypeRef, description: &str) -> Field {
    Field::new(name, type_ref, move |ctx| {
        let value = ctx
            .parent_value
            .try_downcast_ref::<Json>()
            .ok()
            .map(|j| j[name].clone());
        FieldFuture::new(async move {
            Ok(match value {
                None | Some(Json::Null) => None,
                Some(Json::Array(items)) if items.iter().all(Json::is_object) => {
                    Some(FieldValue::list(items.into_iter().map(FieldValue::owned_any)))
                }
                Some(Json::Object(map)) => Some(FieldValue::owned_any(Json::Object(map))),
                Some(other) => Some(FieldValue::value(Value::from_json(other).unwrap_or(Value::Null))),
            })
        })
    })
    .description(description)
}

fn duplicate_type() -> Object {
    Object::new("DuplicateCandidate")
        .description("An existing record that looks like one a write would make.")
        .field(json_field(
            "object",
            TypeRef::named_nn(TypeRef::STRING),
            "Its object: `Account`, `Contact`.",
        ))
        .field(json_field("id", TypeRef::named_nn(TypeRef::ID), "Its id."))
        .field(json_field(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            "What it is called.",
        ))
        .field(json_field(
            "rule",
            TypeRef::named_nn(TypeRef::STRING),
            "The duplicate rule that matched it.",
        ))
        .field(json_field(
            "matchedOn",
            TypeRef::named_nn_list_nn(TypeRef::STRING),
            "The fields the rule compares: `name`, `email`, `firstName` and `lastName` …",
        ))
}

/// A record of a conversion, as its type's value.
fn record(c: &Conversion, get: fn(&Conversion) -> Option<&crate::records::Record>) -> Option<FieldValue<'static>> {
    get(c).cloned().map(FieldValue::owned_any)
}

fn flag(value: bool) -> Option<FieldValue<'static>> {
    Some(FieldValue::value(Value::Boolean(value)))
}

fn conversion_type() -> Object {
    Object::new("LeadConversion")
        .description(
            "What converting a lead made: the lead (now read-only), its account, contact, opportunity and the \
             contact's role in it. In a dry run, records that would be made are shown as they would be, and their \
             links to other new records read null.",
        )
        .field(parent_field(
            "lead",
            TypeRef::named_nn("Lead"),
            "The lead, as converted.",
            |c: &Conversion| record(c, |c| Some(&c.lead)),
        ))
        .field(parent_field(
            "account",
            TypeRef::named_nn("Account"),
            "The account.",
            |c: &Conversion| record(c, |c| Some(&c.account)),
        ))
        .field(parent_field(
            "contact",
            TypeRef::named_nn("Contact"),
            "The contact.",
            |c: &Conversion| record(c, |c| Some(&c.contact)),
        ))
        .field(parent_field(
            "opportunity",
            TypeRef::named("Opportunity"),
            "The opportunity, when one was asked for.",
            |c: &Conversion| record(c, |c| c.opportunity.as_ref()),
        ))
        .field(parent_field(
            "contactRole",
            TypeRef::named("ContactRole"),
            "The contact's role in the opportunity.",
            |c: &Conversion| record(c, |c| c.contact_role.as_ref()),
        ))
        .field(parent_field(
            "accountCreated",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            "Whether the account is new.",
            |c: &Conversion| flag(c.account_created),
        ))
        .field(parent_field(
            "contactCreated",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            "Whether the contact is new.",
            |c: &Conversion| flag(c.contact_created),
        ))
        .field(parent_field(
            "opportunityCreated",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            "Whether the opportunity is new.",
            |c: &Conversion| flag(c.opportunity_created),
        ))
        .field(parent_field(
            "activitiesMoved",
            TypeRef::named_nn(TypeRef::INT),
            "How many of the lead's activities now also point at the account, contact and opportunity.",
            |c: &Conversion| Some(FieldValue::value(Value::from(c.activities_moved as i64))),
        ))
        .field(parent_field(
            "duplicates",
            TypeRef::named_nn_list_nn("DuplicateCandidate"),
            "Existing accounts and contacts the workspace's duplicate rules (of any action) match with the ones the \
             conversion makes. A conversion that finds some refuses with DUPLICATE unless allowDuplicates; a BLOCK \
             rule refuses it even then.",
            |c: &Conversion| {
                Some(FieldValue::list(
                    c.duplicates.iter().cloned().map(FieldValue::owned_any),
                ))
            },
        ))
        .field(parent_field(
            "dryRun",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            "Whether nothing was changed.",
            |c: &Conversion| flag(c.dry_run),
        ))
        .field(parent_field(
            "replayed",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            "Whether this answers an earlier conversion with the same idempotency key (nothing new was made).",
            |c: &Conversion| flag(c.replayed),
        ))
}

/// Refuses unless the actor may change scoring rules (admins).
fn may_score(context: &RequestContext) -> Result<()> {
    let rules = context
        .model
        .object("ScoringRule")
        .ok_or_else(|| CrmError::internal("the model has no ScoringRule"))?;
    access::require(&context.actor, rules, Operation::Update).map(|_| ())
}

fn convert_field() -> Field {
    Field::new("convertLead", TypeRef::named_nn("LeadConversion"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let value = arg(&ctx, "input").cloned().unwrap_or(Value::Null);
            let request = Request::of(&value, Path::root("input"))?;
            convert::permitted(context, &request)?;
            let dry_run = request.dry_run;
            let mut done = convert::run(context, hooks(&ctx), &[request], dry_run).await?;
            let conversion = done
                .pop()
                .ok_or_else(|| CrmError::internal("a conversion answered nothing"))?;
            Ok(Some(FieldValue::owned_any(conversion)))
        })
    })
    .argument(InputValue::new("input", TypeRef::named_nn("ConvertLeadInput")).description("The conversion."))
    .description(
        "Converts a lead into an account, a contact and (when asked) an opportunity, in one transaction: the \
         workspace's lead field mappings fill the new records (an existing one only where empty), the lead's \
         activities move along, a contact role ties the contact to the deal, and the lead turns read-only. \
         Possible duplicates are looked for first. The same idempotencyKey converts once.",
    )
}

fn convert_batch_field() -> Field {
    Field::new("convertLeads", TypeRef::named_nn_list_nn("LeadConversion"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let items = input::list_items(arg(&ctx, "inputs"), &Path::root("inputs"), "inputs must be a list")?;
            if items.len() > MAX_BATCH {
                return Err(CrmError::bad_input(
                    &["inputs"],
                    format!("a batch holds at most {MAX_BATCH} conversions, not {}", items.len()),
                ));
            }
            let requests = items
                .iter()
                .enumerate()
                .map(|(i, item)| Request::of(item, Path::root("inputs").index(i)))
                .collect::<Result<Vec<_>>>()?;
            let dry_run = requests.first().is_some_and(|r| r.dry_run);
            if requests.iter().any(|r| r.dry_run != dry_run) {
                return Err(CrmError::bad_input(
                    &["inputs"],
                    "dryRun is the same for every conversion of a batch",
                ));
            }
            for request in &requests {
                convert::permitted(context, request)?;
            }
            let done = convert::run(context, hooks(&ctx), &requests, dry_run).await?;
            Ok(Some(FieldValue::list(done.into_iter().map(FieldValue::owned_any))))
        })
    })
    .argument(
        InputValue::new("inputs", TypeRef::named_nn_list_nn("ConvertLeadInput"))
            .description(format!("The conversions, at most {MAX_BATCH}.")),
    )
    .description(format!(
        "Converts up to {MAX_BATCH} leads in one transaction: all or none. An error names the conversion by its index."
    ))
}

fn bucket_type() -> Object {
    Object::new("ScoreBucket")
        .description("A bar of a score distribution: the leads scoring from `from` to `to`.")
        .field(json_field(
            "from",
            TypeRef::named_nn(TypeRef::INT),
            "Lowest score of the bar.",
        ))
        .field(json_field(
            "to",
            TypeRef::named_nn(TypeRef::INT),
            "Highest score of the bar.",
        ))
        .field(json_field("leads", TypeRef::named_nn(TypeRef::INT), "Leads in it."))
}

fn grade_count_type() -> Object {
    Object::new("GradeCount")
        .description("How many leads a grade would hold, and holds now.")
        .field(json_field(
            "grade",
            TypeRef::named(TypeRef::STRING),
            "The grade; null: below every grade.",
        ))
        .field(json_field(
            "minScore",
            TypeRef::named(TypeRef::INT),
            "Its minimum score.",
        ))
        .field(json_field(
            "leads",
            TypeRef::named_nn(TypeRef::INT),
            "Leads with the previewed rules.",
        ))
        .field(json_field("leadsNow", TypeRef::named_nn(TypeRef::INT), "Leads now."))
}

fn preview_type() -> Object {
    Object::new("ScoringPreview")
        .description("What the leads would score with the previewed rules. Nothing is saved.")
        .field(json_field(
            "leads",
            TypeRef::named_nn(TypeRef::INT),
            "Leads scored (live, unconverted, visible, matching the filter).",
        ))
        .field(json_field(
            "changed",
            TypeRef::named_nn(TypeRef::INT),
            "Leads whose score would change.",
        ))
        .field(json_field("min", TypeRef::named(TypeRef::INT), "Lowest score."))
        .field(json_field("max", TypeRef::named(TypeRef::INT), "Highest score."))
        .field(json_field("average", TypeRef::named(TypeRef::FLOAT), "Average score."))
        .field(json_field("median", TypeRef::named(TypeRef::FLOAT), "Median score."))
        .field(json_field(
            "buckets",
            TypeRef::named_nn_list_nn("ScoreBucket"),
            "The distribution, in up to 10 bars of equal width.",
        ))
        .field(json_field(
            "grades",
            TypeRef::named_nn_list_nn("GradeCount"),
            "Leads per grade (highest first, then the ungraded), with the rules and now.",
        ))
}

fn rescored_type() -> Object {
    Object::new("LeadsRescored")
        .description("What a rescoring did.")
        .field(json_field("leads", TypeRef::named_nn(TypeRef::INT), "Leads scored."))
        .field(json_field(
            "changed",
            TypeRef::named_nn(TypeRef::INT),
            "Leads whose score or grade changed.",
        ))
}

fn preview_field() -> Field {
    Field::new("previewScoringRules", TypeRef::named_nn("ScoringPreview"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            may_score(context)?;
            let mut conn = context.db.conn().await?;
            let without = input::list_items(arg(&ctx, "without"), &Path::root("without"), "without must be a list")?
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(id) => input::parse_id(id, &Path::root("without").index(i)),
                    _ => Err(CrmError::bad_input(&["without"], "without lists rule ids")),
                })
                .collect::<Result<Vec<_>>>()?;
            let mut rules: Vec<Rule> = scoring::rules(&mut conn, &context.schema, &context.model)
                .await?
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.id.is_none_or(|id| !without.contains(&id)))
                .collect();
            let added = input::list_items(arg(&ctx, "add"), &Path::root("add"), "add must be a list")?;
            for (i, item) in added.iter().enumerate() {
                let at = Path::root("add").index(i);
                let state = item.clone().into_json().map_err(|_| at.error("not a scoring rule"))?;
                if state["isActive"] == json!(false) {
                    continue;
                }
                rules.push(Rule::of(&context.model, &state, &at)?);
            }
            let lead = scoring::lead_object(&context.model)?;
            let filter = match arg(&ctx, "filter") {
                Some(value) => input::filter(&context.model, &context.visibility, lead, value, &Path::root("filter"))?,
                None => None,
            };
            let table = Table::new(&context.schema, lead).restricted(&context.visibility);
            let preview = super::preview::preview(&mut conn, table, &rules, filter.as_ref()).await?;
            Ok(Some(FieldValue::owned_any(preview)))
        })
    })
    .argument(
        InputValue::new("add", TypeRef::named_nn_list("CreateScoringRuleInput"))
            .description("Rules not saved yet, as they would be created (inactive ones are left out)."),
    )
    .argument(
        InputValue::new("without", TypeRef::named_nn_list(TypeRef::ID))
            .description("Saved rules to leave out (to preview a change of one: leave it out, add its new version)."),
    )
    .argument(InputValue::new("filter", TypeRef::named("LeadFilter")).description("Only these leads."))
    .description(
        "What the leads would score with the saved scoring rules, without some and with new ones, before anything \
         is saved: how many change, the distribution, and the leads per grade against now. Admins.",
    )
}

fn rescore_field() -> Field {
    Field::new("rescoreLeads", TypeRef::named_nn("LeadsRescored"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            may_score(context)?;
            let mut conn = context.db.conn().await?;
            // All or none, as every mutation: the job commits batch by batch.
            let (leads, changed) = conn
                .transaction::<_, CrmError, _>(async |conn| {
                    super::rescore_all(conn, &context.schema, &context.model).await
                })
                .await?;
            Ok(Some(FieldValue::owned_any(
                json!({ "leads": leads, "changed": changed }),
            )))
        })
    })
    .description(
        "Rescores every lead of the workspace by its rules now, as the nightly job does (decay included), in one \
         transaction. Admins.",
    )
}
