//! `crm seed --demo`: a small, realistic data set so the playground has
//! something to show. Records go in through the GraphQL mutations, the same
//! path a client takes.

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::app::App;
use crate::graphql::{self, Workspace};

/// What the seed created.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub accounts: usize,
    pub contacts: usize,
    pub opportunities: usize,
    /// True when production already had records and nothing was added.
    pub skipped: bool,
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

/// Adds the demo data unless production already has accounts.
pub async fn demo(app: &App) -> anyhow::Result<SeedReport> {
    let existing = run(app, "query { accounts(first: 1) { totalCount } }", json!({})).await?;
    if existing["accounts"]["totalCount"].as_i64().unwrap_or(0) > 0 {
        return Ok(SeedReport {
            skipped: true,
            ..SeedReport::default()
        });
    }
    let mut report = SeedReport::default();
    for account in DEMO {
        let created = run(
            app,
            "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }",
            json!({ "input": {
                "name": account.name, "website": account.website, "industry": account.industry,
                "annualRevenue": account.revenue, "employeeCount": account.employees,
            }}),
        )
        .await?;
        let account_id = created["createAccount"]["id"].clone();
        report.accounts += 1;
        let mut first_contact = Value::Null;
        for (first, last, title) in account.contacts {
            let domain = account.website.trim_start_matches("https://");
            let email = format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase());
            let contact = run(
                app,
                "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
                json!({ "input": { "firstName": first, "lastName": last, "title": title, "email": email, "accountId": account_id } }),
            )
            .await?;
            if first_contact.is_null() {
                first_contact = contact["createContact"]["id"].clone();
            }
            report.contacts += 1;
        }
        for (name, amount, close) in account.opportunities {
            run(
                app,
                "mutation($input: CreateOpportunityInput!) { createOpportunity(input: $input) { id } }",
                json!({ "input": {
                    "name": name, "amount": amount, "closeDate": close,
                    "accountId": account_id, "primaryContactId": first_contact,
                    "nextStep": "Schedule a demo with the buying committee",
                }}),
            )
            .await?;
            report.opportunities += 1;
        }
    }
    Ok(report)
}

async fn run(app: &App, query: &str, variables: Value) -> anyhow::Result<Value> {
    let entry = app.schemas.get(&app.db, &Workspace::production()).await?;
    let request = async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables));
    let response = graphql::execute(&entry, &app.db, request).await;
    if let Some(error) = response.errors.first() {
        bail!("seeding failed: {}", error.message);
    }
    response.data.into_json().context("reading a seed result")
}
