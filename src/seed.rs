//! `crm seed --demo`: a small, realistic data set so the playground has
//! something to show. Records go in through the GraphQL mutations, the same
//! path a client takes.

use serde_json::{json, Value};

use crate::app::App;
use crate::auth::{Actor, Role};
use crate::error::CrmError;
use crate::graphql::{self, Caller, Workspace};

/// What the seed created.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub accounts: usize,
    pub contacts: usize,
    pub opportunities: usize,
    pub activities: usize,
    /// True when production already had records and nothing was added.
    pub skipped: bool,
}

impl SeedReport {
    /// Nothing added: production already had records.
    fn skipped() -> Self {
        SeedReport {
            skipped: true,
            ..SeedReport::default()
        }
    }
}

struct DemoAccount {
    name: &'static str,
    website: &'static str,
    industry: &'static str,
    revenue: &'static str,
    employees: i32,
    contacts: &'static [(&'static str, &'static str, &'static str)],
    opportunities: &'static [(&'static str, &'static str, &'static str)],
}

const DEMO: &[DemoAccount] = &[
    DemoAccount {
        name: "Acme Robotics",
        website: "https://acme-robotics.example",
        industry: "MANUFACTURING",
        revenue: "48000000.00",
        employees: 320,
        contacts: &[("Ada", "Lovelace", "VP Operations"), ("Grace", "Hopper", "CTO")],
        opportunities: &[
            ("Acme — assembly line analytics", "125000.00", "2027-01-31"),
            ("Acme — support renewal", "18000.00", "2026-12-15"),
        ],
    },
    DemoAccount {
        name: "Globex Health",
        website: "https://globex-health.example",
        industry: "HEALTHCARE",
        revenue: "210000000.00",
        employees: 1800,
        contacts: &[
            ("Hedy", "Lamarr", "Head of IT"),
            ("Rosalind", "Franklin", "Research Director"),
            ("Mary", "Jackson", "Procurement Lead"),
        ],
        opportunities: &[("Globex — patient portal", "340000.00", "2027-03-01")],
    },
    DemoAccount {
        name: "Initech Software",
        website: "https://initech.example",
        industry: "SOFTWARE",
        revenue: "12500000.00",
        employees: 95,
        contacts: &[
            ("Alan", "Turing", "Founder & CEO"),
            ("Katherine", "Johnson", "Engineering Manager"),
        ],
        opportunities: &[
            ("Initech — 50 seats", "60000.00", "2026-12-20"),
            ("Initech — data migration", "22500.00", "2027-02-10"),
        ],
    },
    DemoAccount {
        name: "Umbrella Logistics",
        website: "https://umbrella-logistics.example",
        industry: "TRANSPORTATION",
        revenue: "95000000.00",
        employees: 760,
        contacts: &[("Margaret", "Hamilton", "COO")],
        opportunities: &[("Umbrella — fleet tracking pilot", "45000.00", "2027-01-15")],
    },
    DemoAccount {
        name: "Stark Energy",
        website: "https://stark-energy.example",
        industry: "ENERGY",
        revenue: "530000000.00",
        employees: 4200,
        contacts: &[
            ("Lise", "Meitner", "Chief Scientist"),
            ("Chien-Shiung", "Wu", "VP Engineering"),
        ],
        opportunities: &[("Stark — enterprise agreement", "780000.00", "2027-06-30")],
    },
    DemoAccount {
        name: "Wayne Financial",
        website: "https://wayne-financial.example",
        industry: "FINANCE",
        revenue: "1200000000.00",
        employees: 9000,
        contacts: &[
            ("Emmy", "Noether", "Head of Risk"),
            ("Dorothy", "Vaughan", "Data Platform Lead"),
        ],
        opportunities: &[
            ("Wayne — risk dashboards", "215000.00", "2027-04-12"),
            ("Wayne — training", "12000.00", "2026-12-05"),
        ],
    },
];

/// Why seeding stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's own refusal or failure (building the schema, finding
    /// the administrator, a pool connection).
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// A seeding mutation answered with an error.
    #[error("seeding failed: {0}")]
    Refused(String),
    /// A seeding query's data is not JSON.
    #[error("reading a seed result")]
    Result(#[source] serde_json::Error),
    /// The benchmark data set's SQL failed.
    #[error("loading the benchmark data set")]
    Load(#[source] diesel::result::Error),
    /// A statement around the bulk load failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Adds the demo data unless production already has accounts.
pub async fn demo(app: &App) -> Result<SeedReport, Error> {
    if has_accounts(app).await? {
        return Ok(SeedReport::skipped());
    }
    let mut demo = Demo::start(app).await?;
    for account in DEMO {
        demo.account(account).await?;
    }
    demo.leads().await?;
    demo.churn().await?;
    Ok(demo.report)
}

/// Whether production already has accounts: then a seed adds nothing.
async fn has_accounts(app: &App) -> Result<bool, Error> {
    let existing = run(app, "query { accounts(first: 1) { totalCount } }", json!({})).await?;
    Ok(existing["accounts"]["totalCount"].as_i64().unwrap_or(0) > 0)
}

/// The demo data set on its way in: the user owning every record, the
/// pipeline's stages the deals spread over, and what was added so far.
struct Demo<'a> {
    app: &'a App,
    owner: Value,
    stages: Vec<Value>,
    report: SeedReport,
}

impl<'a> Demo<'a> {
    /// Creates the owner and reads the stages.
    async fn start(app: &'a App) -> Result<Self, Error> {
        let owner = run(
            app,
            "mutation { upsertUser(externalId: \"demo-owner\", input: { name: \"Sam Seller\", email: \"sam.seller@crm.example\" }) { id } }",
            json!({}),
        )
        .await?["upsertUser"]["id"]
            .clone();
        let stages = run(app, "{ stages(first: 20) { nodes { id } } }", json!({})).await?;
        let stages: Vec<Value> = stages["stages"]["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().map(|n| n["id"].clone()).collect())
            .unwrap_or_default();
        Ok(Demo {
            app,
            owner,
            stages,
            report: SeedReport::default(),
        })
    }

    /// One account with its contacts and its deals.
    async fn account(&mut self, account: &DemoAccount) -> Result<(), Error> {
        let created = run(
            self.app,
            "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }",
            json!({ "input": {
                "name": account.name, "website": account.website, "industry": account.industry,
                "annualRevenue": account.revenue, "employeeCount": account.employees,
                "type": "CUSTOMER", "lifecycleStage": "CUSTOMER", "ownerId": self.owner,
            }}),
        )
        .await?;
        let account_id = created["createAccount"]["id"].clone();
        self.report.accounts += 1;
        let contacts = self.contacts(account, &account_id).await?;
        for deal in account.opportunities {
            self.opportunity(deal, &account_id, &contacts).await?;
        }
        Ok(())
    }

    /// The account's contacts, with addresses at its domain; their ids.
    async fn contacts(&mut self, account: &DemoAccount, account_id: &Value) -> Result<Vec<Value>, Error> {
        let mut contacts = Vec::new();
        for (first, last, title) in account.contacts {
            let domain = account.website.trim_start_matches("https://");
            let email = format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase());
            let contact = run(
                self.app,
                "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
                json!({ "input": { "firstName": first, "lastName": last, "title": title, "email": email,
                                   "accountId": account_id, "ownerId": self.owner } }),
            )
            .await?;
            contacts.push(contact["createContact"]["id"].clone());
            self.report.contacts += 1;
        }
        Ok(contacts)
    }

    /// One deal of the account, with its contacts' roles and two activities.
    async fn opportunity(
        &mut self,
        (name, amount, close): &(&str, &str, &str),
        account_id: &Value,
        contacts: &[Value],
    ) -> Result<(), Error> {
        // Spread the deals over the pipeline so the stages have something to show.
        let stage = self
            .stages
            .get(self.report.opportunities % self.stages.len().max(1))
            .cloned()
            .unwrap_or(Value::Null);
        let deal = run(
            self.app,
            "mutation($input: CreateOpportunityInput!) { createOpportunity(input: $input) { id } }",
            json!({ "input": {
                "name": name, "amount": amount, "closeDate": close, "stageId": stage,
                "accountId": account_id, "primaryContactId": contacts.first(), "ownerId": self.owner,
                "nextStep": "Schedule a demo with the buying committee", "leadSource": "WEB",
            }}),
        )
        .await?;
        let deal_id = deal["createOpportunity"]["id"].clone();
        self.contact_roles(&deal_id, contacts).await?;
        self.activities(&deal_id, account_id, contacts).await?;
        self.report.opportunities += 1;
        Ok(())
    }

    /// The first contacts' roles in a deal, the first one primary.
    async fn contact_roles(&self, deal_id: &Value, contacts: &[Value]) -> Result<(), Error> {
        for (i, (contact, role)) in contacts
            .iter()
            .zip(["DECISION_MAKER", "CHAMPION", "TECHNICAL_BUYER"])
            .enumerate()
        {
            run(
                self.app,
                "mutation($input: CreateContactRoleInput!) { createContactRole(input: $input) { id } }",
                json!({ "input": { "opportunityId": deal_id, "contactId": contact, "role": role, "isPrimary": i == 0 } }),
            )
            .await?;
        }
        Ok(())
    }

    /// A completed call and an open task on a deal.
    async fn activities(&mut self, deal_id: &Value, account_id: &Value, contacts: &[Value]) -> Result<(), Error> {
        for (kind, subject, status) in [
            ("CALL", "Discovery call", "COMPLETED"),
            ("TASK", "Send the proposal", "OPEN"),
        ] {
            run(
                self.app,
                "mutation($input: CreateActivityInput!) { createActivity(input: $input) { id } }",
                json!({ "input": { "type": kind, "subject": subject, "status": status, "ownerId": self.owner,
                                   "opportunityId": deal_id, "accountId": account_id, "contactId": contacts.first() } }),
            )
            .await?;
            self.report.activities += 1;
        }
        Ok(())
    }

    /// The accounts became customers in June 2025; Umbrella Logistics
    /// churned in September 2026 (its pilot is a win-back), so churn and
    /// lifetime value have something to show.
    async fn churn(&self) -> Result<(), Error> {
        use diesel_async::SimpleAsyncConnection;
        let umbrella = run(
            self.app,
            "{ accounts(filter: { name: { eq: \"Umbrella Logistics\" } }) { nodes { id } } }",
            json!({}),
        )
        .await?["accounts"]["nodes"][0]["id"]
            .clone();
        run(
            self.app,
            "mutation($id: ID!) { updateAccount(id: $id, input: { lifecycleStage: CHURNED }) { id } }",
            json!({ "id": umbrella }),
        )
        .await?;
        let mut conn = self.app.db.conn().await?;
        conn.batch_execute(
            "UPDATE crm.account_lifecycle_change SET changed_at = CASE to_stage WHEN 'CHURNED' \
             THEN timestamptz '2026-09-15 09:00:00+00' ELSE timestamptz '2025-06-01 09:00:00+00' END",
        )
        .await?;
        Ok(())
    }

    /// Three leads not yet converted.
    async fn leads(&self) -> Result<(), Error> {
        for (first, last, company, status) in [
            ("Rosalind", "Franklin", "Helix Labs", "NEW"),
            ("Claude", "Shannon", "Bell Signals", "WORKING"),
            ("Barbara", "Liskov", "Substitution Systems", "QUALIFIED"),
        ] {
            run(
                self.app,
                "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }",
                json!({ "input": { "firstName": first, "lastName": last, "company": company, "status": status,
                                   "source": "TRADE_SHOW", "rating": "WARM", "ownerId": self.owner } }),
            )
            .await?;
        }
        Ok(())
    }
}

/// Runs one GraphQL operation on production as the administrator; its data.
async fn run(app: &App, query: &str, variables: Value) -> Result<Value, Error> {
    let entry = app.schemas.get(&app.db, &Workspace::production()).await?;
    let admin = {
        let mut conn = app.db.conn().await?;
        crate::auth::admin_user(&mut conn).await?
    };
    // The seed acts as the administrator, with no token.
    let caller = Caller {
        actor: Actor {
            user_id: admin,
            token_id: None,
            role: Role::Admin,
        },
        request_id: None,
        authenticator: None,
        schemas: None,
        base_url: None,
    };
    let request = async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables));
    let response = graphql::execute(&entry, &app.db, caller, request).await;
    if let Some(error) = response.errors.first() {
        return Err(Error::Refused(error.message.clone()));
    }
    response.data.into_json().map_err(Error::Result)
}

/// Sizes of the benchmark data set.
pub const BENCH_ACCOUNTS: i64 = 20_000;
pub const BENCH_CONTACTS: i64 = 100_000;
pub const BENCH_OPPORTUNITIES: i64 = 50_000;
pub const BENCH_ACTIVITIES: i64 = 200_000;

/// The benchmark data set, made inside Postgres in one transaction.
/// Deterministic: record n of an object has the id `md5('<object>' || n)`,
/// account n is named `Account 0000n` (five digits, more at a larger
/// scale); contact n and opportunity n belong to account ((n - 1) mod
/// accounts) + 1, activity n to opportunity ((n - 1) mod opportunities) +
/// 1 and its account. Opportunities spread over the default pipeline's
/// stages, each having walked the stages before its own; accounts have
/// lifecycles, some churned.
const BENCH_SQL: &str = r#"
INSERT INTO crm.account (id, name, website, domain, industry, type, annual_revenue, employee_count, created_at, updated_at)
SELECT md5('account' || n)::uuid,
       'Account ' || lpad(n::text, $DIGITS, '0'),
       'https://account' || n || '.example',
       'account' || n || '.example',
       (ARRAY['AGRICULTURE','BANKING','CONSULTING','EDUCATION','ENERGY','FINANCE','GOVERNMENT','HEALTHCARE',
              'HOSPITALITY','INSURANCE','MANUFACTURING','MEDIA','NONPROFIT','REAL_ESTATE','RETAIL','SOFTWARE',
              'TELECOMMUNICATIONS','TRANSPORTATION','OTHER'])[1 + n % 19],
       (ARRAY['PROSPECT','CUSTOMER','PARTNER'])[1 + n % 3],
       ((n::bigint * 7919) % 100000000)::numeric + 0.5,
       10 + (n * 31) % 5000,
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
FROM generate_series(1, $ACCOUNTS) n;

-- Lifecycles: half the accounts became customers during 2025; one in
-- twenty churned during 2026; the others are leads or in a deal.
UPDATE crm.account a SET lifecycle_stage = (ARRAY['CUSTOMER','CUSTOMER','OPPORTUNITY','LEAD'])[1 + n % 4]
FROM generate_series(1, $ACCOUNTS) n WHERE a.id = md5('account' || n)::uuid;
UPDATE crm.account a SET lifecycle_stage = 'CHURNED'
FROM generate_series(1, $ACCOUNTS) n WHERE a.id = md5('account' || n)::uuid AND n % 20 = 0;
UPDATE crm.account_lifecycle_change c
SET changed_at = CASE c.to_stage WHEN 'CHURNED' THEN timestamptz '2026-01-01 00:00:00+00' + (n % 330) * interval '1 day'
                                 ELSE timestamptz '2025-01-01 00:00:00+00' + (n % 365) * interval '1 day' END
FROM generate_series(1, $ACCOUNTS) n WHERE c.account_id = md5('account' || n)::uuid;

INSERT INTO crm.contact (id, first_name, last_name, email, title, account_id, created_at, updated_at)
SELECT md5('contact' || n)::uuid,
       (ARRAY['Ada','Grace','Alan','Hedy','Katherine','Margaret','Edsger','Barbara','Donald','Frances'])[1 + n % 10],
       (ARRAY['Lovelace','Hopper','Turing','Lamarr','Johnson','Hamilton','Dijkstra','Liskov','Knuth','Allen'])[1 + (n / 10) % 10]
           || ' ' || n,
       'contact' || n || '@account' || ((n - 1) % $ACCOUNTS + 1) || '.example',
       (ARRAY['CEO','CTO','VP Sales','Head of IT','Procurement Lead'])[1 + n % 5],
       md5('account' || ((n - 1) % $ACCOUNTS + 1))::uuid,
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
FROM generate_series(1, $CONTACTS) n;

INSERT INTO crm.opportunity (id, name, account_id, primary_contact_id, stage_id, amount, close_date, created_at, updated_at)
SELECT md5('opportunity' || n)::uuid,
       'Opportunity ' || n,
       md5('account' || ((n - 1) % $ACCOUNTS + 1))::uuid,
       md5('contact' || (((n - 1) % $ACCOUNTS + 1) + $ACCOUNTS * (n % 5)))::uuid,
       s.ids[1 + n % array_length(s.ids, 1)],
       1000 + (n::bigint * 104729) % 500000,
       date '2026-01-01' + (n % 365),
       timestamptz '2026-01-01 00:00:00+00' + (n % 300) * interval '1 day' + n * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + (n % 300) * interval '1 day' + n * interval '1 second'
FROM generate_series(1, $OPPORTUNITIES) n,
     (SELECT array_agg(st.id ORDER BY st.position) AS ids
      FROM crm.stage st JOIN crm.pipeline p ON p.id = st.pipeline_id AND p.is_default) s;

-- Each deal walked the open stages before the one it is in, 1 to 10 days
-- in each (a closed deal went to its closed stage from the last open one
-- it reached): its stage history and stays, replacing the single stay
-- the insert recorded.
DELETE FROM crm.opportunity_stage_entry;
DELETE FROM crm.opportunity_field_change WHERE field = 'STAGE';
WITH st AS (
    SELECT s.id, s.is_closed, row_number() OVER (ORDER BY s.position, s.id) AS k
    FROM crm.stage s JOIN crm.pipeline p ON p.id = s.pipeline_id AND p.is_default WHERE s.deleted_at IS NULL
), path AS (
    SELECT o.id AS deal, o.pipeline_id, o.created_at, st.id AS stage,
           row_number() OVER (PARTITION BY o.id ORDER BY st.k) AS step
    FROM crm.opportunity o JOIN st cur ON cur.id = o.stage_id
    JOIN st ON st.k = cur.k OR (NOT st.is_closed AND st.k < cur.k)
), timed AS (
    SELECT p.*, p.created_at + coalesce(sum(1 + abs(hashtext(p.deal::text || p.step)) % 10) OVER (
               PARTITION BY p.deal ORDER BY p.step ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) * interval '1 day'
           AS entered_at
    FROM path p
), moves AS (
    SELECT t.*, lead(t.entered_at) OVER w AS left_at, lead(t.stage) OVER w AS next_stage, lag(t.stage) OVER w AS previous
    FROM timed t WINDOW w AS (PARTITION BY t.deal ORDER BY t.step)
), history AS (
    INSERT INTO crm.opportunity_field_change (created_at, updated_at, opportunity_id, field, before, after, changed_at)
    SELECT entered_at, entered_at, deal, 'STAGE', previous::text, stage::text, entered_at FROM moves
)
INSERT INTO crm.opportunity_stage_entry
    (created_at, updated_at, opportunity_id, pipeline_id, stage_id, entered_at, left_at, next_stage_id, days_in_stage)
SELECT entered_at, coalesce(left_at, entered_at), deal, pipeline_id, stage, entered_at, left_at, next_stage,
       round((extract(epoch FROM left_at - entered_at) / 86400)::numeric, 2)
FROM moves;
UPDATE crm.opportunity o SET stale_at = crm.opportunity_stale_at(o.id, o.pipeline_id, o.is_closed,
    crm.opportunity_stage_since(o.id, o.created_at));

INSERT INTO crm.activity (id, type, subject, status, due_at, opportunity_id, account_id, created_at, updated_at)
SELECT md5('activity' || n)::uuid,
       (ARRAY['CALL','EMAIL','MEETING','TASK','NOTE'])[1 + n % 5],
       'Activity ' || n,
       (ARRAY['OPEN','COMPLETED'])[1 + n % 2],
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 minute',
       md5('opportunity' || ((n - 1) % $OPPORTUNITIES + 1))::uuid,
       md5('account' || (((n - 1) % $OPPORTUNITIES) % $ACCOUNTS + 1))::uuid,
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
FROM generate_series(1, $ACTIVITIES) n;
"#;

/// The largest scale factor of the benchmark data set (a billion rows
/// would not fit a laptop).
pub const MAX_SCALE: u32 = 100;

/// Loads the benchmark data set, `scale` times its size (1: 20,000
/// accounts …), into an empty production workspace.
pub async fn bench(app: &App, scale: u32) -> Result<SeedReport, Error> {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    if !(1..=MAX_SCALE).contains(&scale) {
        return Err(Error::Refused(format!("the scale is 1 to {MAX_SCALE}, not {scale}")));
    }
    if has_accounts(app).await? {
        return Ok(SeedReport::skipped());
    }
    let scale = i64::from(scale);
    let (accounts, contacts, opportunities, activities) = (
        BENCH_ACCOUNTS * scale,
        BENCH_CONTACTS * scale,
        BENCH_OPPORTUNITIES * scale,
        BENCH_ACTIVITIES * scale,
    );
    let sql = BENCH_SQL
        .replace("$DIGITS", &accounts.to_string().len().max(5).to_string())
        .replace("$ACCOUNTS", &accounts.to_string())
        .replace("$CONTACTS", &contacts.to_string())
        .replace("$OPPORTUNITIES", &opportunities.to_string())
        .replace("$ACTIVITIES", &activities.to_string());
    let mut conn = app.db.conn().await?;
    // Bulk load: no statement timeout, one transaction.
    conn.batch_execute("SET statement_timeout = 0").await?;
    let loaded = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| conn.batch_execute(&sql).await)
        .await;
    loaded.map_err(Error::Load)?;
    // Statistics for the planner, and the rows the load replaced (the
    // stays and history it rewrote, the deals it updated) made room again.
    for table in [
        "account",
        "contact",
        "opportunity",
        "activity",
        "opportunity_stage_entry",
        "opportunity_field_change",
        "account_lifecycle_change",
    ] {
        conn.batch_execute(&format!("VACUUM ANALYZE crm.{table}")).await?;
    }
    conn.batch_execute(&format!(
        "SET statement_timeout = {}",
        app.config.statement_timeout.as_millis()
    ))
    .await?;
    Ok(SeedReport {
        accounts: accounts as usize,
        contacts: contacts as usize,
        opportunities: opportunities as usize,
        activities: activities as usize,
        skipped: false,
    })
}
