//! Rooms: the capabilities beside records (users and tokens, the audit
//! log, customization, sandboxes, promotions) add their GraphQL surface to
//! every workspace's schema through a [`Room`], registered once by the
//! server. The engine builds the schema from the model and the rooms; it
//! does not know them.

use async_graphql::dynamic::{Enum, Field, InputObject, Object, Scalar, Union};

use crate::metadata::{Model, ObjectDef};

/// A capability's registration: adds its types and root fields.
pub type Room = fn(&mut Surface);

/// What rooms add to a schema.
#[derive(Default)]
pub struct Surface {
    pub(super) objects: Vec<Object>,
    pub(super) inputs: Vec<InputObject>,
    pub(super) enums: Vec<Enum>,
    pub(super) scalars: Vec<Scalar>,
    pub(super) unions: Vec<Union>,
    pub(super) queries: Vec<Field>,
    /// The names of `queries`: no object may take them for its own.
    pub(super) query_names: Vec<&'static str>,
    pub(super) mutations: Vec<Field>,
    pub(super) subscriptions: Vec<async_graphql::dynamic::SubscriptionField>,
    pub(super) record_fields: Vec<fn(&ObjectDef) -> Option<Field>>,
    pub(super) per_object: Vec<fn(&Model, &ObjectDef) -> PerObject>,
    pub(super) per_model: Vec<fn(&Model) -> PerObject>,
    pub(super) record_hooks: RecordHooks,
    pub(super) after_promotion: Vec<AfterPromotion>,
}

/// What a room does when an API write (or a promotion) makes a record of
/// an object it cares about, in the write's transaction, after the
/// engine's own checks: refuse it (an error undoes the write, or fails the
/// promoted change), keep something in step with it (a lead's score), or
/// ask for work once the transaction's writes are done ([`FollowUps`]).
/// It may answer the record as it now stands (after it changed it), which
/// the API then answers and audits instead.
pub type RecordHook =
    for<'a> fn(
        &'a mut diesel_async::AsyncPgConnection,
        &'a CheckScope<'a>,
        Written<'a>,
    ) -> futures_util::future::BoxFuture<'a, crate::error::Result<Option<crate::records::Record>>>;

/// A record a write made: as it was (`None` for a new one) and as it is
/// (deleted records carry `deletedAt`).
#[derive(Clone, Copy)]
pub struct Written<'a> {
    pub before: Option<&'a crate::records::Record>,
    pub record: &'a crate::records::Record,
}

impl Written<'_> {
    /// What the write did to the record.
    pub fn event(&self) -> RecordEvent {
        RecordEvent::of(*self)
    }
}

/// What a write did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEvent {
    Created,
    Updated,
    Deleted,
    Restored,
}

impl RecordEvent {
    pub fn of(written: Written<'_>) -> RecordEvent {
        use crate::records::is_deleted;
        match written.before {
            None => RecordEvent::Created,
            Some(before) if !is_deleted(before) && is_deleted(written.record) => RecordEvent::Deleted,
            Some(before) if is_deleted(before) && !is_deleted(written.record) => RecordEvent::Restored,
            Some(_) => RecordEvent::Updated,
        }
    }

    /// Its name in the API: `CREATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordEvent::Created => "CREATED",
            RecordEvent::Updated => "UPDATED",
            RecordEvent::Deleted => "DELETED",
            RecordEvent::Restored => "RESTORED",
        }
    }
}

/// What a record is checked against: the workspace's model (after the
/// change), its Postgres schema and what the writer may see; `at`, where
/// the record's values are in the request (`["input"]`, `["inputs", "2"]`;
/// empty for a promotion); where to ask for work after the writes.
pub struct CheckScope<'a> {
    pub model: &'a Model,
    pub schema: &'a str,
    pub visibility: &'a crate::access::Visibility,
    pub at: &'a [String],
    pub follow_ups: &'a FollowUps,
    /// Where warnings for the response go.
    pub notices: &'a Notices,
    /// Who writes, as the audit log records it.
    pub trail: &'a crate::audit::Trail,
    /// The workflow rules whose actions led to this write, outermost
    /// first, each with the record it fired for: empty for a write a
    /// client (or a promotion) made. Automation's depth.
    pub cascade: &'a [Firing],
    /// What the transaction's writes share: the workflow rules fired for
    /// each record (a rule fires once per record per transaction,
    /// automation's loop guard) and what rooms read once per transaction.
    pub state: &'a TransactionState,
    /// Leads a hook rescored besides the record written (an activity's
    /// lead), for automation's SCORE_CROSSED rules.
    pub rescored: &'a Rescored,
}

/// Leads rescored by a write of another record: `(lead, score before,
/// score after)`.
#[derive(Default)]
pub struct Rescored(std::sync::Mutex<Vec<(uuid::Uuid, i32, i32)>>);

impl Rescored {
    pub fn push(&self, lead: uuid::Uuid, before: i32, after: i32) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((lead, before, after));
    }

    /// Forgets them (the transaction ended).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// The leads rescored so far, taken.
    pub fn take(&self) -> Vec<(uuid::Uuid, i32, i32)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// What one transaction's writes share: the workflow rules it fired, by
/// record; and what rooms read once for it (an object's active rules,
/// scoring and duplicate rules, which the nested writes of workflow rules
/// read again), never across transactions.
#[derive(Default)]
pub struct TransactionState(
    std::sync::Mutex<std::collections::HashSet<Firing>>,
    std::sync::Mutex<std::collections::HashMap<String, Kept>>,
    /// Firings by the record whose write began their cascade.
    std::sync::Mutex<std::collections::HashMap<uuid::Uuid, usize>>,
);

/// Whether a rule may fire for a record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    Yes,
    /// It fired for this record in this transaction already.
    Again,
    /// The write that began this cascade fired `most` rules already.
    TooMany,
}

/// A value kept for a transaction.
pub type Kept = std::sync::Arc<dyn std::any::Any + Send + Sync>;

impl TransactionState {
    /// Notes that `firing` fires now, in the cascade a write of `root`
    /// began, unless it fired before in this transaction or that cascade
    /// fired `most` rules already.
    pub fn fire(&self, firing: Firing, root: uuid::Uuid, most: usize) -> Fire {
        let mut fired = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if fired.contains(&firing) {
            return Fire::Again;
        }
        let mut counts = self.2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(root).or_default();
        if *count >= most {
            return Fire::TooMany;
        }
        *count += 1;
        fired.insert(firing);
        Fire::Yes
    }

    /// The value kept under `key` in this transaction, if any.
    pub fn kept(&self, key: &str) -> Option<Kept> {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Keeps `value` under `key` until the transaction ends.
    pub fn keep(&self, key: String, value: Kept) {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, value);
    }

    /// Forgets everything (the transaction ended).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.2.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

/// A workflow rule firing for a record: `(rule id, record id)`.
pub type Firing = (uuid::Uuid, uuid::Uuid);

/// What a request's writes report beside their answer, in the response's
/// `extensions`: the matches of WARN duplicate rules, under `duplicates`;
/// and what a checked configuration change means for existing records (a
/// promotion reports it as the change's data impact).
#[derive(Default)]
pub struct Notices(
    std::sync::Mutex<Vec<serde_json::Value>>,
    std::sync::Mutex<Option<crate::metadata::kinds::DataImpact>>,
);

impl Notices {
    /// Adds a duplicate warning.
    pub fn duplicate(&self, warning: serde_json::Value) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(warning);
    }

    /// Says what the configuration row just checked means for the records
    /// that exist (a new validation rule's count of records it refuses).
    pub fn impact(&self, impact: crate::metadata::kinds::DataImpact) {
        *self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(impact);
    }

    /// The impact said, taken.
    pub fn take_impact(&self) -> Option<crate::metadata::kinds::DataImpact> {
        self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// How many warnings there are (to drop those of a write that failed).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the warnings after the first `len` (their write failed).
    pub fn truncate(&self, len: usize) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .truncate(len);
    }

    /// The warnings, taken.
    pub fn take(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Work hooks ask for once per transaction, whatever number of records
/// asked (rescoring every lead after a batch of rule changes), run before
/// it commits.
pub type FollowUp = for<'a> fn(
    &'a mut diesel_async::AsyncPgConnection,
    &'a CheckScope<'a>,
) -> futures_util::future::BoxFuture<'a, crate::error::Result<()>>;

/// The follow-ups asked for in a transaction, each once.
#[derive(Default)]
pub struct FollowUps(std::sync::Mutex<Vec<FollowUp>>);

impl FollowUps {
    /// Asks for `work` when the transaction's writes are done.
    pub fn ask(&self, work: FollowUp) {
        let mut asked = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !asked.iter().any(|w| std::ptr::fn_addr_eq(*w, work)) {
            asked.push(work);
        }
    }

    /// Forgets what was asked for (the transaction failed).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Runs (and forgets) what was asked for.
    pub async fn run(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        scope: &CheckScope<'_>,
    ) -> crate::error::Result<()> {
        let asked = std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for work in asked {
            work(conn, scope).await?;
        }
        Ok(())
    }
}

/// A hook on the records of every object (duplicate rules, automation
/// apply to any). It is given the schema's hooks, to run them on records
/// it writes itself, and may answer the record as it now stands.
pub type EveryRecordHook =
    for<'a> fn(
        &'a mut diesel_async::AsyncPgConnection,
        &'a CheckScope<'a>,
        &'a RecordHooks,
        &'a ObjectDef,
        Written<'a>,
    ) -> futures_util::future::BoxFuture<'a, crate::error::Result<Option<crate::records::Record>>>;

/// The hooks of a schema by object name, and those of every object, kept
/// as the schema's data.
#[derive(Default, Clone)]
pub struct RecordHooks(
    pub(super) std::collections::HashMap<&'static str, Vec<RecordHook>>,
    pub(super) Vec<EveryRecordHook>,
);

impl RecordHooks {
    /// Runs the hooks of `object`'s records on `written`; answers the
    /// record as it stands after them.
    pub async fn run<'a>(
        &self,
        conn: &'a mut diesel_async::AsyncPgConnection,
        scope: &'a CheckScope<'a>,
        object: &ObjectDef,
        written: Written<'a>,
    ) -> crate::error::Result<crate::records::Record> {
        Ok(self.run_audited(conn, scope, object, written).await?.0)
    }

    /// [`RecordHooks::run`], answering beside the record as it stands the
    /// record as the write itself left it (with what its object's own
    /// hooks keep in step, a lead's score): what the writer's audit entry
    /// says. What the hooks of every object changed after that (the fields
    /// workflow rules set) is theirs, audited as `AUTOMATION`.
    pub async fn run_audited<'a>(
        &self,
        conn: &'a mut diesel_async::AsyncPgConnection,
        scope: &'a CheckScope<'a>,
        object: &ObjectDef,
        written: Written<'a>,
    ) -> crate::error::Result<(crate::records::Record, crate::records::Record)> {
        let own = self.run_own(conn, scope, object, written).await?;
        let mut now = own.clone();
        for hook in &self.1 {
            let written = Written {
                before: written.before,
                record: &now,
            };
            if let Some(changed) = hook(conn, scope, self, object, written).await? {
                now = changed;
            }
        }
        Ok((now, own))
    }

    /// Runs only the hooks of `object`'s own records, not those of every
    /// object (a merge's survivor is not a new duplicate).
    pub async fn run_own<'a>(
        &self,
        conn: &'a mut diesel_async::AsyncPgConnection,
        scope: &'a CheckScope<'a>,
        object: &ObjectDef,
        written: Written<'a>,
    ) -> crate::error::Result<crate::records::Record> {
        let mut now = written.record.clone();
        for hook in self.0.get(object.name.as_str()).into_iter().flatten() {
            let written = Written {
                before: written.before,
                record: &now,
            };
            if let Some(changed) = hook(conn, scope, written).await? {
                now = changed;
            }
        }
        Ok(now)
    }

    /// Whether records of `object` have hooks.
    pub fn hooks(&self, object: &ObjectDef) -> bool {
        self.0.contains_key(object.name.as_str())
    }
}

/// What a room does after a promotion (or revert) applied its changes, in
/// its transaction, given the target's schema, its model as the changes
/// left it and the changes: for work that follows configuration as a whole
/// (rescoring leads after rules changed, indexes after duplicate rules did).
pub type AfterPromotion = for<'a> fn(
    &'a mut diesel_async::AsyncPgConnection,
    &'a str,
    &'a Model,
    &'a [crate::metadata::kinds::Change],
) -> futures_util::future::BoxFuture<'a, crate::error::Result<()>>;

/// What a room adds for each object of a workspace's model: its types and
/// root query fields (`opportunitiesAggregate`), made from the object's
/// metadata as the engine makes the object's own.
#[derive(Default)]
pub struct PerObject {
    pub objects: Vec<Object>,
    pub inputs: Vec<InputObject>,
    pub enums: Vec<Enum>,
    pub unions: Vec<Union>,
    /// Root query fields by name.
    pub queries: Vec<(String, Field)>,
}

impl Surface {
    /// The surface of `rooms`, in their order.
    pub fn of(rooms: &[Room]) -> Surface {
        let mut surface = Surface::default();
        for room in rooms {
            room(&mut surface);
        }
        surface
    }

    pub fn object(&mut self, object: Object) {
        self.objects.push(object);
    }

    pub fn input(&mut self, input: InputObject) {
        self.inputs.push(input);
    }

    pub fn enumeration(&mut self, enumeration: Enum) {
        self.enums.push(enumeration);
    }

    pub fn scalar(&mut self, scalar: Scalar) {
        self.scalars.push(scalar);
    }

    pub fn union(&mut self, union: Union) {
        self.unions.push(union);
    }

    /// Objects, input objects and enums at once.
    pub fn types(&mut self, (objects, inputs, enums): (Vec<Object>, Vec<InputObject>, Vec<Enum>)) {
        self.objects.extend(objects);
        self.inputs.extend(inputs);
        self.enums.extend(enums);
    }

    /// Root query fields, named by `names` (a test checks the names match
    /// the fields).
    pub fn queries(&mut self, names: &[&'static str], fields: Vec<Field>) {
        self.query_names.extend_from_slice(names);
        self.queries.extend(fields);
    }

    /// Root mutation fields.
    pub fn mutations(&mut self, fields: Vec<Field>) {
        self.mutations.extend(fields);
    }

    /// Root subscription fields (live updates over WebSocket).
    pub fn subscriptions(&mut self, fields: Vec<async_graphql::dynamic::SubscriptionField>) {
        self.subscriptions.extend(fields);
    }

    /// The names of the root queries the rooms add.
    pub fn query_names(&self) -> &[&'static str] {
        &self.query_names
    }

    /// The names of the root queries the rooms make for each object of `model`.
    pub fn object_query_names(&self, model: &Model) -> Vec<String> {
        let mut names = Vec::new();
        for make in &self.per_object {
            for object in model.objects() {
                names.extend(make(model, object).queries.into_iter().map(|(name, _)| name));
            }
        }
        for make in &self.per_model {
            names.extend(make(model).queries.into_iter().map(|(name, _)| name));
        }
        names
    }

    /// A field record types get (`history` on all, `stageHistory` on
    /// opportunities): `None` for a type without it.
    pub fn record_field(&mut self, field: fn(&ObjectDef) -> Option<Field>) {
        self.record_fields.push(field);
    }

    /// A hook on every record of `object` an API write (or a promotion)
    /// makes.
    pub fn on_write(&mut self, object: &'static str, hook: RecordHook) {
        self.record_hooks.0.entry(object).or_default().push(hook);
    }

    /// A hook on every record of every object an API write makes.
    pub fn on_every_write(&mut self, hook: EveryRecordHook) {
        self.record_hooks.1.push(hook);
    }

    /// Work after every promotion and revert.
    pub fn after_promotion(&mut self, work: AfterPromotion) {
        self.after_promotion.push(work);
    }

    /// Types and root queries made for every object.
    pub fn per_object(&mut self, make: fn(&Model, &ObjectDef) -> PerObject) {
        self.per_object.push(make);
    }

    /// Types and root queries made from the whole model (a union of its
    /// record types, an input keyed by its objects).
    pub fn per_model(&mut self, make: fn(&Model) -> PerObject) {
        self.per_model.push(make);
    }
}

/// The rooms a server registered: what every schema it builds includes.
#[derive(Debug, Clone, Copy)]
pub struct Rooms(pub &'static [Room]);

impl Rooms {
    /// Builds the schema of a workspace whose model is `model`; requests
    /// are checked against `limits` (none for printing the SDL or checking
    /// that the API can serve a model).
    pub fn build(
        self,
        model: &crate::metadata::Model,
        limits: Option<super::Limits>,
    ) -> std::result::Result<async_graphql::dynamic::Schema, async_graphql::dynamic::SchemaError> {
        super::schema::build(model, limits, Surface::of(self.0))
    }

    /// The record hooks of the rooms.
    pub fn record_hooks(self) -> RecordHooks {
        Surface::of(self.0).record_hooks
    }

    /// Runs what the rooms do after a promotion (or revert, or rebase)
    /// applied `changes` to the workspace in `schema`, in its transaction,
    /// with the model read once for all of them.
    pub async fn after_promotion(
        self,
        conn: &mut diesel_async::AsyncPgConnection,
        schema: &str,
        changes: &[crate::metadata::kinds::Change],
    ) -> crate::error::Result<()> {
        let work = Surface::of(self.0).after_promotion;
        if work.is_empty() || changes.is_empty() {
            return Ok(());
        }
        let model = crate::metadata::custom::Customizations::read(conn, schema)
            .await?
            .model()?;
        for work in work {
            work(conn, schema, &model, changes).await?;
        }
        Ok(())
    }
}
