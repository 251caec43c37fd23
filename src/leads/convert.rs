//! Lead conversion: one lead becomes an account, a contact and (when
//! asked) an opportunity, in one transaction. The workspace's field
//! mappings fill the new records (an existing one only where it is
//! empty); possible duplicates are looked for first and refuse a create
//! unless allowed; the lead's activities move to what it became; a
//! contact role ties the contact to the deal; the lead records the ids and
//! turns read-only. An idempotency key makes a second request with it
//! answer the first conversion instead of making another.

use async_graphql::Value;
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::mapping::{self, Mapping};
use crate::access::{self, Operation};
use crate::audit::{self, Action, Entry};
use crate::db::sql::{Bind, Exists, Sql};
use crate::error::{CrmError, Result};
use crate::graphql::input::{self, Path};
use crate::graphql::mutation::{create_one, update_one};
use crate::graphql::resolve::RequestContext;
use crate::graphql::room::{RecordHooks, Written};
use crate::metadata::ObjectDef;
use crate::records::{self, record_id, write, FieldSet, Record, Table};

/// What a conversion made or found, and what it saw on the way.
#[derive(Clone)]
pub struct Conversion {
    pub lead: Record,
    pub account: Record,
    pub contact: Record,
    pub opportunity: Option<Record>,
    pub contact_role: Option<Record>,
    pub account_created: bool,
    pub contact_created: bool,
    pub opportunity_created: bool,
    pub activities_moved: usize,
    pub duplicates: Vec<Json>,
    pub dry_run: bool,
    pub replayed: bool,
}

/// What a conversion does with one of its targets.
pub(super) enum Target {
    /// Fills the empty fields of this record.
    Existing(Uuid),
    /// Makes one from the mapped values and these (an update input).
    Create(serde_json::Map<String, Json>),
    /// Nothing (an opportunity not asked for).
    Skip,
}

/// A `ConvertLeadInput`, read.
pub struct Request {
    lead_id: Uuid,
    account: Target,
    contact: Target,
    opportunity: Target,
    owner: Option<Uuid>,
    role: String,
    key: Option<String>,
    allow_duplicates: bool,
    pub dry_run: bool,
    at: Path,
}

/// `{ id }`, `{ create }` or nothing (`absent`) at `at`.
fn target(value: Option<&Value>, at: &Path, absent: Target) -> Result<Target> {
    let Some(Value::Object(map)) = value else {
        return Ok(absent);
    };
    let id = map.get("id").filter(|v| !matches!(v, Value::Null));
    let create = map.get("create").filter(|v| !matches!(v, Value::Null));
    match (id, create) {
        (Some(_), Some(_)) => Err(at.error("give id (an existing record) or create (a new one), not both")),
        (Some(Value::String(id)), None) => Ok(Target::Existing(input::parse_id(id, &at.at("id"))?)),
        (Some(_), None) => Err(at.at("id").error("id must be an ID")),
        (None, Some(create)) => match create.clone().into_json() {
            Ok(Json::Object(values)) => Ok(Target::Create(values)),
            _ => Err(at.at("create").error("create must be an object")),
        },
        (None, None) => Ok(Target::Create(serde_json::Map::new())),
    }
}

impl Request {
    /// Reads a `ConvertLeadInput` found at `at`.
    pub fn of(value: &Value, at: Path) -> Result<Request> {
        let Value::Object(map) = value else {
            return Err(at.error("each conversion is a ConvertLeadInput"));
        };
        let text = |key: &str| match map.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let lead_id = input::parse_id(
            &text("leadId").ok_or_else(|| at.at("leadId").error("leadId is required"))?,
            &at.at("leadId"),
        )?;
        let owner = text("ownerId")
            .map(|id| input::parse_id(&id, &at.at("ownerId")))
            .transpose()?;
        let key = text("idempotencyKey");
        if key
            .as_ref()
            .is_some_and(|k| k.trim().is_empty() || k.chars().count() > 255)
        {
            return Err(at.at("idempotencyKey").error("idempotencyKey is 1 to 255 characters"));
        }
        let flag = |key: &str| matches!(map.get(key), Some(Value::Boolean(true)));
        Ok(Request {
            lead_id,
            account: target(
                map.get("account"),
                &at.at("account"),
                Target::Create(Default::default()),
            )?,
            contact: target(
                map.get("contact"),
                &at.at("contact"),
                Target::Create(Default::default()),
            )?,
            opportunity: target(map.get("opportunity"), &at.at("opportunity"), Target::Skip)?,
            owner,
            role: match map.get("contactRole") {
                Some(Value::Enum(role)) => role.to_string(),
                Some(Value::String(role)) => role.clone(),
                _ => "DECISION_MAKER".into(),
            },
            key,
            allow_duplicates: flag("allowDuplicates"),
            dry_run: flag("dryRun"),
            at,
        })
    }
}

/// The model's object `name`.
pub(super) fn object<'a>(context: &'a RequestContext, name: &str) -> Result<&'a ObjectDef> {
    context
        .model
        .object(name)
        .map(|o| o.as_ref())
        .ok_or_else(|| CrmError::internal(format_args!("the model has no {name}")))
}

/// Refuses unless the actor may do what `request` asks: change the lead
/// (and own it, where ownership decides), make or change the targets.
pub fn permitted(context: &RequestContext, request: &Request) -> Result<()> {
    access::require(&context.actor, object(context, "Lead")?, Operation::Update)?;
    for (name, target) in [
        ("Account", &request.account),
        ("Contact", &request.contact),
        ("Opportunity", &request.opportunity),
    ] {
        let operation = match target {
            Target::Existing(_) => Operation::Update,
            Target::Create(_) => Operation::Create,
            Target::Skip => continue,
        };
        access::require(&context.actor, object(context, name)?, operation)?;
    }
    if !matches!(request.opportunity, Target::Skip) {
        access::require(&context.actor, object(context, "ContactRole")?, Operation::Create)?;
    }
    // Records the caller could not see once made could not be tied to
    // each other in their name.
    let restricted = ["Account", "Contact", "Opportunity"]
        .iter()
        .any(|name| context.visibility.filter(name).is_some());
    if restricted && request.owner.is_some_and(|owner| owner != context.actor.user_id) {
        return Err(request.at.at("ownerId").error(
            "under OWNED record visibility the records you convert into are yours: leave ownerId out, \
             or ask an admin to convert for someone else",
        ));
    }
    Ok(())
}

/// Converts one lead in the caller's transaction; returns what it made
/// and the audit entries of every record it wrote.
pub async fn convert(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    hooks: &RecordHooks,
    request: &Request,
) -> Result<(Conversion, Vec<Entry>)> {
    let at = &request.at;
    let lead = match locked_lead(conn, context, request).await? {
        Locked::Converted(conversion) => return Ok((*conversion, Vec::new())),
        Locked::Lead(lead) => lead,
    };
    let mappings = mapping::mappings(conn, &context.schema, &context.model).await?;
    // The request's owner wins over a mapped one; else the lead's owner.
    let owner = match request.owner {
        Some(owner) => Owner::Given(owner),
        None => Owner::Default(uuid_of(&lead, "ownerId").unwrap_or(context.actor.user_id)),
    };
    let mut made = Made {
        conn,
        context,
        hooks,
        lead: &lead,
        mappings: &mappings,
        owner,
        entries: Vec::new(),
    };

    let mut account_values = made.mapped("Account");
    if account_values.get("name").is_none_or(Json::is_null) {
        account_values.insert("name".into(), json!(full_name(&lead)));
    }
    let mut contact_values = made.mapped("Contact");
    let duplicates = super::duplicates::of_conversion(
        made.conn,
        context,
        &request.account,
        &account_values,
        &request.contact,
        &contact_values,
    )
    .await?;
    if !duplicates.is_empty() && !request.allow_duplicates && !request.dry_run {
        return Err(CrmError::Duplicate {
            message: format!(
                "{} existing record(s) look like what this conversion would create: convert into them (`id`), \
                 or pass allowDuplicates: true",
                duplicates.len()
            ),
            field: at.parts().to_vec(),
            duplicates,
        });
    }

    let (account, account_created) = made
        .target("Account", &request.account, account_values, &at.at("account"))
        .await?;
    let account_id = id_of(&account)?;
    contact_values.insert("accountId".into(), json!(account_id));
    let (contact, contact_created) = made
        .target("Contact", &request.contact, contact_values, &at.at("contact"))
        .await?;
    let contact_id = id_of(&contact)?;
    let mut opportunity = None;
    let mut opportunity_created = false;
    if !matches!(request.opportunity, Target::Skip) {
        let mut values = made.mapped("Opportunity");
        values.insert("accountId".into(), json!(account_id));
        if values.get("name").is_none_or(Json::is_null) {
            values.insert("name".into(), account.get("name").cloned().unwrap_or(Json::Null));
        }
        let (record, created) = made
            .target("Opportunity", &request.opportunity, values, &at.at("opportunity"))
            .await?;
        opportunity = Some(record);
        opportunity_created = created;
    }
    let contact_role = match &opportunity {
        Some(deal) => Some(made.contact_role(id_of(deal)?, contact_id, &request.role, at).await?),
        None => None,
    };
    let opportunity_id = opportunity.as_ref().map(id_of).transpose()?;
    let activities_moved = made
        .move_activities(request.lead_id, account_id, contact_id, opportunity_id)
        .await?;
    let lead = made
        .mark_converted(account_id, contact_id, opportunity_id, request.key.clone(), at)
        .await?;
    let entries = made.entries;
    Ok((
        Conversion {
            lead,
            account,
            contact,
            opportunity,
            contact_role,
            account_created,
            contact_created,
            opportunity_created,
            activities_moved,
            duplicates,
            dry_run: request.dry_run,
            replayed: false,
        },
        entries,
    ))
}

/// The lead of a request, locked, or the conversion it already had with
/// the request's key.
enum Locked {
    Lead(Record),
    Converted(Box<Conversion>),
}

/// Locks the request's lead: live, visible, the caller's to change, not
/// converted (unless with this very key: then its conversion), and the
/// key not used for another lead.
async fn locked_lead(conn: &mut AsyncPgConnection, context: &RequestContext, request: &Request) -> Result<Locked> {
    let at = &request.at;
    let lead_object = object(context, "Lead")?;
    if let Some(key) = &request.key {
        if let Some(other) = keyed_lead(conn, context, key).await? {
            if other != request.lead_id {
                // Which lead is not said: the caller may not see it.
                return Err(at
                    .at("idempotencyKey")
                    .error("this idempotencyKey converted another lead; use a new key for each lead"));
            }
        }
    }
    let lead = write::lock(conn, context.table(lead_object), request.lead_id)
        .await?
        .filter(|lead| is_null(lead, "deletedAt"))
        .ok_or_else(|| at.at("leadId").error(format!("Lead {} not found", request.lead_id)))?;
    let grant = access::require(&context.actor, lead_object, Operation::Update)?;
    access::require_owner(
        &context.actor,
        lead_object,
        Operation::Update,
        grant,
        uuid_of(&lead, "ownerId"),
    )?;
    if is_null(&lead, "convertedAt") {
        return Ok(Locked::Lead(lead));
    }
    match (&request.key, lead.get("conversionKey").and_then(Json::as_str)) {
        (Some(key), Some(done)) if key == done => Ok(Locked::Converted(Box::new(replay(conn, context, lead).await?))),
        _ => Err(CrmError::Conflict(format!(
            "{}lead {} was converted at {}: a converted lead is read-only",
            where_in_batch(at),
            request.lead_id,
            lead.get("convertedAt").map(Json::to_string).unwrap_or_default()
        ))),
    }
}

/// The records one conversion writes, and their audit entries.
struct Made<'c, 'x> {
    conn: &'c mut AsyncPgConnection,
    context: &'x RequestContext,
    hooks: &'x RecordHooks,
    lead: &'x Record,
    mappings: &'x [Mapping],
    owner: Owner,
    entries: Vec<Entry>,
}

/// Who owns the records a conversion makes.
#[derive(Clone, Copy)]
enum Owner {
    /// The request named them: over any mapped owner.
    Given(Uuid),
    /// Unless an owner is mapped or given in `create`.
    Default(Uuid),
}

impl Made<'_, '_> {
    /// The values the mappings give a record of `object`, by input key.
    fn mapped(&self, object: &str) -> serde_json::Map<String, Json> {
        let mut values = serde_json::Map::new();
        for mapping in self.mappings.iter().filter(|m| m.object == object) {
            if let Some(value) = self.lead.get(&mapping.lead_field.value_key()).filter(|v| !is_empty(v)) {
                values.insert(mapping.target_field.value_key(), value.clone());
            }
        }
        values
    }

    /// Makes or fills the target of `object`; answers it and whether it
    /// was made.
    async fn target(
        &mut self,
        name: &str,
        target: &Target,
        mut values: serde_json::Map<String, Json>,
        at: &Path,
    ) -> Result<(Record, bool)> {
        let object = object(self.context, name)?;
        match target {
            Target::Skip => Err(CrmError::internal("a skipped target has no record")),
            Target::Create(given) => {
                let mapped_owner = values.remove("ownerId");
                values.extend(given.clone());
                if object.field("owner").is_some() && !given.contains_key("ownerId") {
                    let owner = match (self.owner, mapped_owner) {
                        (Owner::Given(owner), _) | (Owner::Default(owner), None | Some(Json::Null)) => json!(owner),
                        (Owner::Default(_), Some(mapped)) => mapped,
                    };
                    values.insert("ownerId".into(), owner);
                }
                let input = graphql_value(Json::Object(values), at)?;
                let (record, entry) =
                    create_one(self.conn, self.context, self.hooks, object, &input, &at.at("create")).await?;
                self.entries.push(entry);
                Ok((record, true))
            }
            Target::Existing(id) => {
                let table = self.context.table(object);
                let before = write::lock(self.conn, table, *id)
                    .await?
                    .filter(|r| is_null(r, "deletedAt"))
                    .ok_or_else(|| at.at("id").error(format!("{name} {id} not found")))?;
                let grant = access::require(&self.context.actor, object, Operation::Update)?;
                access::require_owner(
                    &self.context.actor,
                    object,
                    Operation::Update,
                    grant,
                    uuid_of(&before, "ownerId"),
                )?;
                values.retain(|key, _| before.get(key).is_none_or(is_empty));
                values.remove("ownerId");
                if values.is_empty() {
                    return Ok((before, false));
                }
                let input = graphql_value(Json::Object(values), at)?;
                let (record, entry) = update_one(
                    self.conn,
                    self.context,
                    self.hooks,
                    object,
                    *id,
                    &input,
                    None,
                    &at.at("id"),
                )
                .await?;
                self.entries.push(entry);
                Ok((record, false))
            }
        }
    }

    /// The contact's role in the deal: the one it has, else a new one
    /// (primary when the deal has none).
    async fn contact_role(&mut self, deal: Uuid, contact: Uuid, role: &str, at: &Path) -> Result<Record> {
        let object = object(self.context, "ContactRole")?;
        let table = Table::new(&self.context.schema, object);
        if let Some(id) = role_of(self.conn, self.context, deal, contact).await? {
            let records = records::get_many(self.conn, table, &FieldSet::all(object), &[id]).await?;
            if let Some(record) = records.get(&id) {
                return Ok(record.clone());
            }
        }
        let mut primary = Sql::raw("SELECT EXISTS (SELECT 1");
        primary
            .append(&table.from_as("t"))
            .push(" WHERE t.opportunity_id = ")
            .bind(Bind::Uuid(Some(deal)));
        primary.push(" AND t.is_primary AND t.deleted_at IS NULL) AS exists");
        let has_primary: Vec<Exists> = primary.load(self.conn).await?;
        let has_primary = has_primary.first().is_some_and(|r| r.exists);
        let values = json!({
            "opportunityId": deal,
            "contactId": contact,
            "role": role,
            "isPrimary": !has_primary,
        });
        let input = graphql_value(values, at)?;
        let (record, entry) = create_one(
            self.conn,
            self.context,
            self.hooks,
            object,
            &input,
            &at.at("contactRole"),
        )
        .await?;
        self.entries.push(entry);
        Ok(record)
    }

    /// Points the lead's live activities at the account, contact and deal
    /// where they point at none yet (they keep the lead); answers how many.
    async fn move_activities(
        &mut self,
        lead: Uuid,
        account: Uuid,
        contact: Uuid,
        opportunity: Option<Uuid>,
    ) -> Result<usize> {
        let object = object(self.context, "Activity")?;
        // The server moves them: all of them, whoever may see which.
        let table = Table::new(&self.context.schema, object);
        let mut query = Sql::raw("SELECT t.id");
        query
            .append(&table.from_as("t"))
            .push(" WHERE t.lead_id = ")
            .bind(Bind::Uuid(Some(lead)));
        query.push(" AND t.deleted_at IS NULL ORDER BY t.created_at, t.id");
        let mut moved = 0;
        for id in super::ids(self.conn, query).await? {
            let Some(before) = write::lock(self.conn, table, id).await? else {
                continue;
            };
            let mut values = Vec::new();
            for (name, to) in [
                ("account", Some(account)),
                ("contact", Some(contact)),
                ("opportunity", opportunity),
            ] {
                let (Some(field), Some(to)) = (object.field(name), to) else {
                    continue;
                };
                if before.get(&field.value_key()).is_none_or(Json::is_null) {
                    values.push((field.clone(), Bind::Uuid(Some(to))));
                }
            }
            if values.is_empty() {
                continue;
            }
            let record = write::update(self.conn, &self.context.model, table, id, &values, None, &[]).await?;
            let written = Written {
                before: Some(&before),
                record: &record,
            };
            let (_, audited) = self
                .hooks
                .run_audited(self.conn, &self.context.check_scope(&[]), object, written)
                .await?;
            self.entries
                .push(records::audit_entry(object, Action::Update, Some(&before), &audited));
            moved += 1;
        }
        Ok(moved)
    }

    /// Marks the lead converted into these records.
    async fn mark_converted(
        &mut self,
        account: Uuid,
        contact: Uuid,
        opportunity: Option<Uuid>,
        key: Option<String>,
        at: &Path,
    ) -> Result<Record> {
        let object = object(self.context, "Lead")?;
        let field = |name: &str| {
            object
                .field(name)
                .cloned()
                .ok_or_else(|| CrmError::internal(format_args!("Lead has no {name}")))
        };
        let values = vec![
            (field("status")?, Bind::Text(Some("CONVERTED".into()))),
            (field("convertedAccount")?, Bind::Uuid(Some(account))),
            (field("convertedContact")?, Bind::Uuid(Some(contact))),
            (field("convertedOpportunity")?, Bind::Uuid(opportunity)),
            (field("convertedAt")?, Bind::DateTime(Some(Utc::now()))),
            (field("conversionKey")?, Bind::Text(key)),
        ];
        let id = id_of(self.lead)?;
        let table = self.context.table(object);
        let record = write::update(self.conn, &self.context.model, table, id, &values, None, at.parts()).await?;
        let written = Written {
            before: Some(self.lead),
            record: &record,
        };
        let (record, audited) = self
            .hooks
            .run_audited(self.conn, &self.context.check_scope(at.parts()), object, written)
            .await?;
        self.entries
            .push(records::audit_entry(object, Action::Update, Some(self.lead), &audited));
        Ok(record)
    }
}

/// The conversion a converted lead records, read back.
async fn replay(conn: &mut AsyncPgConnection, context: &RequestContext, lead: Record) -> Result<Conversion> {
    let missing = || {
        CrmError::Conflict(
            "this lead was converted with this key, into records that are gone or that you may not see".into(),
        )
    };
    let account = read(conn, context, "Account", uuid_of(&lead, "convertedAccountId"))
        .await?
        .ok_or_else(missing)?;
    let contact = read(conn, context, "Contact", uuid_of(&lead, "convertedContactId"))
        .await?
        .ok_or_else(missing)?;
    let opportunity = read(conn, context, "Opportunity", uuid_of(&lead, "convertedOpportunityId")).await?;
    let role_id = match (&opportunity, record_id(&contact)) {
        (Some(deal), Some(contact)) => role_of(conn, context, id_of(deal)?, contact).await?,
        _ => None,
    };
    let contact_role = read(conn, context, "ContactRole", role_id).await?;
    Ok(Conversion {
        lead,
        account,
        contact,
        opportunity,
        contact_role,
        account_created: false,
        contact_created: false,
        opportunity_created: false,
        activities_moved: 0,
        duplicates: Vec::new(),
        dry_run: false,
        replayed: true,
    })
}

/// The record `id` of `name`, if there is one the caller may see.
async fn read(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    name: &str,
    id: Option<Uuid>,
) -> Result<Option<Record>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let object = object(context, name)?;
    let found = records::get_many(conn, context.table(object), &FieldSet::all(object), &[id]).await?;
    Ok(found.get(&id).cloned())
}

/// The live role of `contact` in `deal`, if any.
async fn role_of(
    conn: &mut AsyncPgConnection,
    context: &RequestContext,
    deal: Uuid,
    contact: Uuid,
) -> Result<Option<Uuid>> {
    let mut query = Sql::raw("SELECT id FROM ");
    query
        .table(&context.schema, "contact_role")
        .push(" WHERE opportunity_id = ")
        .bind(Bind::Uuid(Some(deal)));
    query.push(" AND contact_id = ").bind(Bind::Uuid(Some(contact)));
    query.push(" AND deleted_at IS NULL LIMIT 1");
    Ok(super::ids(conn, query).await?.into_iter().next())
}

/// The lead an idempotency key converted, if any.
async fn keyed_lead(conn: &mut AsyncPgConnection, context: &RequestContext, key: &str) -> Result<Option<Uuid>> {
    let mut query = Sql::raw("SELECT id FROM ");
    query
        .table(&context.schema, "lead")
        .push(" WHERE conversion_key = ")
        .bind(Bind::Text(Some(key.to_owned())));
    Ok(super::ids(conn, query).await?.into_iter().next())
}

/// Runs conversions in one transaction: all or none. A dry run rolls it
/// back and answers what it would have done.
pub async fn run(
    context: &RequestContext,
    hooks: &RecordHooks,
    requests: &[Request],
    dry_run: bool,
) -> Result<Vec<Conversion>> {
    let mut conn = context.db.conn().await?;
    let mut rehearsed = None;
    // What automation noted in the request's earlier transactions is not this one's.
    context.state.clear();
    context.rescored.clear();
    let done = conn
        .transaction::<_, CrmError, _>(async |conn| {
            audit::act_as(conn, &context.trail).await?;
            let mut conversions = Vec::with_capacity(requests.len());
            let mut entries = Vec::new();
            for request in requests {
                let (conversion, made) = convert(conn, context, hooks, request).await?;
                conversions.push(conversion);
                entries.extend(made);
            }
            context.follow_ups.run(conn, &context.check_scope(&[])).await?;
            audit::append(conn, &context.trail, &entries).await?;
            if dry_run {
                rehearsed = Some(conversions);
                // Undoes every write; the answer is kept above.
                return Err(CrmError::Conflict("dry run".into()));
            }
            Ok(conversions)
        })
        .await;
    // What a failed or rehearsed write asked for is not the next one's.
    context.follow_ups.clear();
    context.state.clear();
    context.rescored.clear();
    match rehearsed {
        Some(conversions) => Ok(conversions),
        None => done,
    }
}

/// `inputs.3: ` for a conversion of a batch, to name it in messages of
/// errors that carry no path (conflicts); nothing for a single one.
fn where_in_batch(at: &Path) -> String {
    match at.parts() {
        [root, index, ..] if root == "inputs" => format!("inputs.{index}: "),
        _ => String::new(),
    }
}

/// A JSON document as a GraphQL input value.
fn graphql_value(json: Json, at: &Path) -> Result<Value> {
    Value::from_json(json).map_err(|_| at.error("not a JSON value"))
}

fn is_null(record: &Record, key: &str) -> bool {
    record.get(key).is_none_or(Json::is_null)
}

/// Whether a value counts as empty for "fill only empty fields".
fn is_empty(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn uuid_of(record: &Record, key: &str) -> Option<Uuid> {
    record.get(key)?.as_str()?.parse().ok()
}

fn id_of(record: &Record) -> Result<Uuid> {
    record_id(record).ok_or_else(|| CrmError::internal("a record without id"))
}

/// `First Last`, for an account made from a lead without a company.
fn full_name(lead: &Record) -> String {
    let part = |key: &str| {
        lead.get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    [part("firstName"), part("lastName")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
