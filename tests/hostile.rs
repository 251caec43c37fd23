//! A hostile-input run: at least 10,000 generated requests per run —
//! random bytes, truncated JSON, wrong types, huge strings, deep and wide
//! nesting, many aliases, bad variables and cursors, hostile custom names,
//! every role against every mutation — against the real server. None may
//! answer 5xx or INTERNAL, nothing may panic, and the server answers a
//! normal query after every batch.
//!
//! The generator is seeded: a failure prints the seed and the request, and
//! `HOSTILE_SEED=<n> cargo test hostile` replays the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use futures_util::stream::{self, StreamExt};
use hyper::Method;
use serde_json::{json, Value};

use crate::support::{http_request, HttpResponse, TestApp};

/// Requests per run, over all batches.
const REQUESTS: usize = 10_000;
const BATCH: usize = 500;
const IN_FLIGHT: usize = 16;
/// Kinds of case, taken in turn (see [`case`]).
const KINDS: usize = 12;

/// Panics raised outside the tests' own code (the server's, its crates').
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();
/// Microseconds spent per kind of case, printed at the end.
static SPENT: [AtomicUsize; KINDS] = [const { AtomicUsize::new(0) }; KINDS];

fn count_server_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_tests = info.location().is_some_and(|l| l.file().starts_with("tests/"));
            if !in_tests {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// splitmix64: small, seeded, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    /// Up to `most` random bytes.
    fn bytes(&mut self, most: usize) -> Vec<u8> {
        let n = self.below(most);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One request to send.
#[derive(Debug, Clone)]
enum Case {
    Post {
        path: String,
        token: Option<String>,
        body: Vec<u8>,
    },
    Get {
        path: String,
        token: Option<String>,
    },
    /// Bytes that are not HTTP at all, on a raw connection.
    Raw(Vec<u8>),
}

impl Case {
    fn describe(&self) -> String {
        match self {
            Case::Post { path, body, .. } => {
                let body = String::from_utf8_lossy(body);
                let body: String = body.chars().take(600).collect();
                format!("POST {path} {body}")
            }
            Case::Get { path, .. } => format!("GET {}", path.chars().take(600).collect::<String>()),
            Case::Raw(bytes) => format!("raw {} bytes", bytes.len()),
        }
    }
}

/// Texts that have broken parsers and databases before.
const NASTY: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "a\u{0}b",
    "\\",
    "%",
    "_",
    "%%\\",
    "'; DROP TABLE account; --",
    "\"",
    "${x}",
    "{{x}}",
    "\u{202e}rtl",
    "😀",
    "\u{fffd}",
    "\u{1}\u{2}",
    "NaN",
    "-0",
    "1e999999",
    "0x10",
    "  padded  ",
    "null",
    "true",
    "[]",
    "{}",
    "<script>",
    "../../etc/passwd",
    "\r\n",
    "é",
    "ß",
    "İ",
];
const NAMES: &[&str] = &[
    "id",
    "ID",
    "__typename",
    "__schema",
    "name",
    "owner",
    "createdAt",
    "cf_x",
    "select",
    "table",
    "user",
    "Account",
    "account",
    "accounts",
    "x-y",
    "x y",
    "1abc",
    "ünïcode",
    "a\u{0}",
    "",
    "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongname",
    "Drop\"Table",
    "order",
    "where",
    "group",
    "constructor",
    "prototype",
    "toString",
    "_",
    "__",
];
const OBJECTS: &[&str] = &[
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "activities",
    "pipelines",
    "stages",
    "users",
];
const TYPES: &[&str] = &[
    "TEXT",
    "LONG_TEXT",
    "INTEGER",
    "DECIMAL",
    "CURRENCY",
    "PERCENT",
    "BOOLEAN",
    "DATE",
    "DATETIME",
    "EMAIL",
    "PHONE",
    "URL",
    "PICKLIST",
    "MULTI_PICKLIST",
    "LOOKUP",
    "JSON",
    "NOPE",
];

/// A random JSON value, nested at most `depth` levels.
fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(*rng.pick(&[0i64, -1, 1, i32::MAX as i64 + 1, i64::MAX, i64::MIN, 500, 501, 65_536])),
        3 => json!(*rng.pick(&[0.5f64, -1e300, 1e300, 2.5])),
        4 => json!(*rng.pick(NASTY)),
        5 => json!("x".repeat(*rng.pick(&[1, 255, 256, 10_000, 100_000]))),
        6 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth - 1)).collect()),
        7 => json!(uuid::Uuid::from_u128(rng.next() as u128).to_string()),
        _ => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                map.insert((*rng.pick(NAMES)).to_owned(), value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// GraphQL literal text for a JSON value.
fn literal(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .filter(|(k, _)| !k.starts_with(|c: char| c.is_ascii_digit()))
                .map(|(k, v)| format!("{k}: {}", literal(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(literal).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A list query with generated arguments and selections.
fn list_query(rng: &mut Rng) -> String {
    let object = rng.pick(OBJECTS);
    let mut args = Vec::new();
    if rng.chance(50) {
        args.push(format!(
            "first: {}",
            rng.pick(&["0", "1", "500", "501", "-1", "99999999999", "\"10\"", "null", "1.5"])
        ));
    }
    if rng.chance(40) {
        args.push(format!("filter: {}", literal(&value(rng, 4))));
    }
    if rng.chance(30) {
        let name = rng
            .pick(NASTY)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\u{0}', "\\u0000");
        let op = rng.pick(&["eq", "like", "ilike", "startsWith", "contains", "in", "gt"]);
        args.push(format!("filter: {{ name: {{ {op}: \"{name}\" }} }}"));
    }
    if rng.chance(25) {
        let cursor = match rng.below(3) {
            0 => base64_url(&rng.bytes(64)),
            1 => base64_url(
                format!(
                    "{{\"o\":\"createdAt:a:l,id:a:l\",\"v\":[{},\"{}\"]}}",
                    value(rng, 1),
                    rng.pick(NASTY)
                )
                .as_bytes(),
            ),
            _ => rng.pick(NASTY).to_string(),
        };
        let cursor = cursor
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\u{0}', "\\u0000");
        args.push(format!("{}: \"{cursor}\"", rng.pick(&["after", "before"])));
    }
    if rng.chance(25) {
        args.push(format!(
            "orderBy: [{{ field: {} }}]",
            rng.pick(&["NAME", "CREATED_AT", "AMOUNT", "NOPE", "\"NAME\""])
        ));
    }
    let aliases = if rng.chance(10) { rng.below(400) } else { 1 };
    let fields: Vec<String> = (0..aliases).map(|i| format!("f{i}: id")).collect();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    format!("{{ {object}{args} {{ totalCount nodes {{ {} }} }} }}", fields.join(" "))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// GraphQL-looking token soup.
fn soup(rng: &mut Rng) -> String {
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ":",
        "$x",
        "...",
        "fragment",
        "on",
        "query",
        "mutation",
        "subscription",
        "accounts",
        "nodes",
        "id",
        "@include(if: true)",
        "@skip(if: $x)",
        "\"s\"",
        "\"\\u0000\"",
        "1",
        "-1.5e3",
        "\"\"\"block\"\"\"",
        "#comment\n",
        ",",
        "=",
        "!",
        "Account",
        "__schema",
        "__type(name: \"Account\")",
        "totalCount",
        "filter:",
        "first:",
        "F",
        "...F",
        "\"\\",
        "\u{0}",
    ];
    (0..rng.below(60))
        .map(|_| *rng.pick(TOKENS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A deep or wide document.
fn nested(rng: &mut Rng) -> String {
    let depth = *rng.pick(&[10, 33, 45, 100, 1_000, 5_000, 20_000]);
    match rng.below(5) {
        0 => format!(
            "{{ accounts(filter: {{ name: {{ in: {}\"a\"{} }} }}) {{ totalCount }} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        1 => format!("{}{}", "{ a ".repeat(depth), "}".repeat(depth)),
        2 => format!(
            "{{ accounts(filter: {}{}) {{ totalCount }} }}",
            "{ not: ".repeat(depth),
            " }".repeat(depth)
        ),
        3 => {
            let mut text = String::from("{ ...F0 }\n");
            for i in 0..depth.min(2_000) {
                text.push_str(&format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1));
            }
            text
        }
        _ => format!(
            "{{ {} }}",
            (0..depth.min(5_000))
                .map(|i| format!("a{i}: accounts {{ totalCount }}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Hostile customization: names and types that have broken metadata engines.
fn customize(rng: &mut Rng) -> (String, Value) {
    let name = rng.pick(NAMES).to_string();
    if rng.chance(70) {
        let query = "mutation($input: CreateCustomFieldInput!) { createCustomField(input: $input) { name } }";
        let mut input = json!({
            "object": rng.pick(&["Account", "Contact", "Nope", "", "User", "Activity"]),
            "name": name,
            "label": rng.pick(NASTY),
            "type": rng.pick(TYPES),
        });
        if rng.chance(40) {
            input["defaultValue"] = value(rng, 2);
        }
        if rng.chance(30) {
            input["options"] = json!([{ "value": rng.pick(NAMES), "label": rng.pick(NASTY) }]);
        }
        if rng.chance(20) {
            input["lookupObject"] = json!(rng.pick(&["Account", "Nope", "User"]));
        }
        (query.to_owned(), json!({ "input": input }))
    } else {
        let query = "mutation($input: CreateCustomObjectInput!) { createCustomObject(input: $input) { name } }";
        let input = json!({ "name": name, "label": rng.pick(NASTY), "pluralLabel": rng.pick(NASTY) });
        (query.to_owned(), json!({ "input": input }))
    }
}

/// The mutation fields of the production schema, with their arguments.
async fn mutations(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let data = app
        .data(
            "{ __schema { mutationType { fields { name args { name } } } } }",
            json!({}),
        )
        .await;
    data["__schema"]["mutationType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| {
            let args = field["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
                .collect();
            (field["name"].as_str().unwrap().to_owned(), args)
        })
        .collect()
}

/// A call of one mutation with generated arguments.
fn mutation_call(rng: &mut Rng, name: &str, args: &[String]) -> String {
    let mut given = Vec::new();
    for arg in args {
        if rng.chance(80) {
            given.push(format!("{arg}: {}", literal(&value(rng, 3))));
        }
    }
    let args = given;
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    format!("mutation {{ {name}{args} {{ __typename }} }}")
}

fn post(path: &str, token: Option<&str>, query: &str, variables: Value) -> Case {
    Case::Post {
        path: path.to_owned(),
        token: token.map(str::to_owned),
        body: json!({ "query": query, "variables": variables })
            .to_string()
            .into_bytes(),
    }
}

/// The `i`-th request of the run.
fn case(rng: &mut Rng, tokens: &[Option<String>], mutations: &[(String, Vec<String>)], i: usize) -> Case {
    let token = rng.pick(tokens).clone();
    let token = token.as_deref();
    let admin = tokens[0].as_deref();
    match i % KINDS {
        0 => Case::Post {
            path: "/graphql".into(),
            token: token.map(str::to_owned),
            body: rng.bytes(2_000),
        },
        1 => {
            let body = json!({ "query": list_query(rng), "variables": value(rng, 2) }).to_string();
            let cut = rng.below(body.len());
            Case::Post {
                path: "/graphql".into(),
                token: admin.map(str::to_owned),
                body: body.as_bytes()[..cut].to_vec(),
            }
        }
        2 | 3 => post("/graphql", token, &list_query(rng), json!({})),
        4 => post("/graphql", admin, &nested(rng), json!({})),
        5 => post("/graphql", token, &soup(rng), value(rng, 2)),
        6 => {
            // In a sandbox: production's reads do not wait on its DDL.
            let (query, variables) = customize(rng);
            post("/sandboxes/dev/graphql", admin, &query, variables)
        }
        7 | 8 => {
            // Every role (and no token, and a forged one) against every
            // mutation, in turn: the run covers each pair.
            let pair = (i / KINDS) * 2 + (i % KINDS - 7);
            let (name, args) = &mutations[pair % mutations.len()];
            let token = tokens[(pair / mutations.len()) % tokens.len()].as_deref();
            post("/graphql", token, &mutation_call(rng, name, args), json!({}))
        }
        9 => {
            // Typed variables of the wrong shape.
            let query = *rng.pick(&[
                "query($f: AccountFilter, $n: Int, $c: String) { accounts(filter: $f, first: $n, after: $c) { totalCount } }",
                "mutation($i: CreateContactInput!) { createContact(input: $i) { id } }",
                "mutation($id: ID!, $i: UpdateAccountInput!, $v: Int) { updateAccount(id: $id, input: $i, expectedVersion: $v) { id } }",
                "mutation($e: String!, $i: CreateAccountInput!) { upsertAccount(externalId: $e, input: $i) { id } }",
                "query($id: ID!) { account(id: $id) { id name } }",
            ]);
            let variables = json!({ "f": value(rng, 3), "n": value(rng, 0), "c": value(rng, 0), "i": value(rng, 3),
                                    "id": value(rng, 0), "v": value(rng, 0), "e": value(rng, 0) });
            post("/graphql", token, query, variables)
        }
        10 => {
            let sandbox = rng.pick(NAMES).replace(['/', '?', '#', ' '], "_");
            let path = format!("/sandboxes/{}/graphql", sandbox.replace('\u{0}', "%00"));
            if rng.chance(50) {
                post(&path, token, "{ accounts { totalCount } }", json!({}))
            } else {
                let query: String = url_encode(&list_query(rng));
                Case::Get {
                    path: format!("{path}?query={query}"),
                    token: token.map(str::to_owned),
                }
            }
        }
        _ => {
            if rng.chance(50) {
                Case::Raw(rng.bytes(300))
            } else {
                let query = url_encode(&list_query(rng));
                let extra = url_encode(&value(rng, 3).to_string());
                Case::Get {
                    path: format!("/graphql?query={query}&variables={extra}"),
                    token: token.map(str::to_owned),
                }
            }
        }
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends a case; `None` when the server closed a raw connection (fine).
async fn send(app: &TestApp, case: &Case) -> Option<HttpResponse> {
    match case {
        Case::Post { path, token, body } => {
            let mut headers = vec![("content-type", "application/json")];
            let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
            if let Some(bearer) = &bearer {
                headers.push(("authorization", bearer));
            }
            Some(http_request(app.addr, Method::POST, path, &headers, body.clone()).await)
        }
        Case::Get { path, token } => {
            let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
            let mut headers = vec![("accept", "application/json")];
            if let Some(bearer) = &bearer {
                headers.push(("authorization", bearer));
            }
            if path.parse::<hyper::Uri>().is_err() {
                return None;
            }
            Some(http_request(app.addr, Method::GET, path, &headers, Vec::new()).await)
        }
        Case::Raw(bytes) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
            let _ = stream.write_all(bytes).await;
            let _ = stream.shutdown().await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
            let head = String::from_utf8_lossy(&answer);
            assert!(!head.starts_with("HTTP/1.1 5"), "raw bytes got {head}");
            None
        }
    }
}

/// Why an answer is unacceptable, if it is.
fn refused(response: &HttpResponse) -> Option<String> {
    if response.status.is_server_error() {
        return Some(format!("status {}: {}", response.status, response.text()));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&response.body) else {
        return None;
    };
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    for error in errors {
        let code = error["extensions"]["code"].as_str();
        match code {
            None => return Some(format!("an error without a code: {error}")),
            Some("INTERNAL") => return Some(format!("INTERNAL: {error}")),
            Some(_) => {}
        }
    }
    None
}

#[tokio::test]
async fn ten_thousand_hostile_requests_get_clean_answers() {
    count_server_panics();
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_C0DE);
    println!("hostile input run: HOSTILE_SEED={seed}");
    let app = TestApp::start_with(crm::Config {
        rate_limit: 0,
        ..Default::default()
    })
    .await;
    let (_, sales) = app.user("rep@example.com", "SALES").await;
    let (_, support) = app.user("support@example.com", "SUPPORT").await;
    let (_, reader) = app.user("reader@example.com", "READ_ONLY").await;
    for i in 0..20 {
        app.create("Account", json!({ "name": format!("Account {i}") })).await;
    }
    app.data(
        r#"mutation { createSandbox(input: { name: "dev" }) { name } }"#,
        json!({}),
    )
    .await;
    let forged = format!("crm_{}_{}", uuid::Uuid::from_u128(7).simple(), "forged");
    let tokens = vec![
        Some(app.token.clone()),
        Some(sales),
        Some(support),
        Some(reader),
        None,
        Some(forged),
    ];
    let mutations = mutations(&app).await;
    // The mutation cases (two kinds in twelve) cover every pair.
    assert!(
        REQUESTS / KINDS * 2 >= mutations.len() * tokens.len(),
        "{} mutations",
        mutations.len()
    );
    let mut rng = Rng(seed);
    let mut sent = 0;
    while sent < REQUESTS {
        let cases: Vec<(usize, Case)> = (sent..sent + BATCH)
            .map(|i| (i, case(&mut rng, &tokens, &mutations, i)))
            .collect();
        let app = &app;
        let failures: Vec<String> = stream::iter(cases)
            .map(|(i, case)| async move {
                let started = std::time::Instant::now();
                let response = send(app, &case).await;
                SPENT[i % KINDS].fetch_add(started.elapsed().as_micros() as usize, Ordering::Relaxed);
                let response = response?;
                refused(&response).map(|why| format!("request {i} (seed {seed}): {why}\n  {}", case.describe()))
            })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(|failure| async move { failure })
            .collect()
            .await;
        assert!(
            failures.is_empty(),
            "{} bad answers, first:\n{}",
            failures.len(),
            failures[..failures.len().min(5)].join("\n")
        );
        assert_eq!(
            SERVER_PANICS.load(Ordering::SeqCst),
            0,
            "the server panicked (seed {seed}, batch at {sent})"
        );
        let data = app.data("{ accounts(first: 1) { totalCount } }", json!({})).await;
        assert!(
            data["accounts"]["totalCount"].as_i64().unwrap() >= 20,
            "batch at {sent}: {data}"
        );
        sent += BATCH;
    }
    let spent: Vec<String> = SPENT
        .iter()
        .map(|s| format!("{} ms", s.load(Ordering::Relaxed) / 1000))
        .collect();
    println!(
        "{sent} hostile requests answered cleanly; time per kind of case: {}",
        spent.join(", ")
    );
}
