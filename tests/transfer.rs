//! Bringing data in and taking it out: CSV imports checked row by row and
//! across the file, all or nothing, with an error file, dry runs, upserts
//! and reverts; exports that an import reads back unchanged; a kill -9
//! mid-import leaves nothing behind.

use hyper::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::support::TestApp;

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// `POST /imports?…` with `csv` as the body; the answer's JSON.
async fn import(app: &TestApp, query: &[(&str, &str)], csv: impl Into<Vec<u8>>) -> (u16, Value) {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    let response = app
        .request(
            Method::POST,
            &format!("/imports?{}", query.join("&")),
            &[("content-type", "text/csv")],
            csv.into(),
        )
        .await;
    (response.status.as_u16(), response.json())
}

async fn contacts(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) AS n FROM crm.contact WHERE deleted_at IS NULL")
        .await
}

const JOB: &str = "query($id: ID!) { importJob(id: $id) { id mode dryRun message
    status { state rowsRead rowsImported rowsCreated rowsUpdated rowsUnchanged rowsFailed warnings }
    mapping { column header field }
    errors { row column value code message warning } errorFileUrl } }";

#[tokio::test]
async fn imports_check_every_row_skip_or_abort_and_keep_an_error_file() {
    let app = TestApp::start().await;
    let acme = app
        .create("Account", json!({ "name": "Acme", "externalId": "ACME-1" }))
        .await;
    app.create("Account", json!({ "name": "Twin" })).await;
    app.create("Account", json!({ "name": "twin" })).await;
    // A spreadsheet's export: semicolons, a byte order mark, German dates,
    // lookups by name and by external id, and five bad rows.
    let csv = "\u{feff}First Name;Last Name;E-mail;Account;Birthdate;External ID;Shoe size\n\
               Ann;Lee;ann@acme.test;Acme;17.05.1990;C-1;42\n\
               Bob;Stone;bob@acme.test;ACME-1;;C-2;43\n\
               Cid;Moss;not-an-email;Acme;;C-3;\n\
               Dee;Park;dee@acme.test;Initech;;C-4;\n\
               Eve;Hart;eve@acme.test;Twin;;C-5;\n\
               Fay;Lin;fay@acme.test;;31.02.1990;C-6;\n\
               Gus;Kerr;gus@acme.test;;;C-1;\n\
               \n\
               ;Noor;noor@acme.test;;;C-8;\n";
    let before = contacts(&app).await;
    let (status, rehearsed) = import(
        &app,
        &[("object", "contacts"), ("dateFormat", "%d.%m.%Y"), ("dryRun", "true")],
        csv,
    )
    .await;
    assert_eq!(status, 200, "{rehearsed}");
    let job = &rehearsed["importJob"];
    assert_eq!(job["status"]["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["status"]["rowsCreated"], 3, "{job}");
    assert_eq!(job["status"]["rowsFailed"], 5, "{job}");
    assert_eq!(contacts(&app).await, before, "a dry run writes nothing");

    // ABORT: one bad row and nothing is imported.
    let (_, aborted) = import(
        &app,
        &[("object", "Contact"), ("dateFormat", "%d.%m.%Y"), ("onError", "ABORT")],
        csv,
    )
    .await;
    assert_eq!(aborted["importJob"]["status"]["state"], "FAILED", "{aborted}");
    assert_eq!(contacts(&app).await, before);

    // SKIP (the default): the good rows go in, the others to the error file.
    let (_, done) = import(&app, &[("object", "contacts"), ("dateFormat", "%d.%m.%Y")], csv).await;
    let id = done["importJob"]["id"].as_str().unwrap().to_owned();
    let job = app.data(JOB, json!({ "id": id })).await["importJob"].clone();
    assert_eq!(job["status"]["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["status"]["rowsRead"], 8, "the blank line is not a row: {job}");
    assert_eq!(job["status"]["rowsCreated"], 3);
    assert_eq!(job["status"]["rowsFailed"], 5);
    assert_eq!(contacts(&app).await, before + 3);
    let mapped: Vec<(String, Value)> = job["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["header"].as_str().unwrap().to_owned(), c["field"].clone()))
        .collect();
    assert_eq!(mapped[0], ("First Name".to_owned(), json!("firstName")));
    assert_eq!(mapped[2], ("E-mail".to_owned(), json!("email")));
    assert_eq!(mapped[3], ("Account".to_owned(), json!("account")));
    assert_eq!(mapped[6], ("Shoe size".to_owned(), Value::Null));
    let errors: Vec<(i64, String)> = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["code"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        errors,
        [
            (4, "INVALID_VALUE"),
            (5, "NOT_FOUND"),
            (6, "AMBIGUOUS"),
            (7, "INVALID_VALUE"),
            (8, "DUPLICATE_IN_FILE")
        ]
        .map(|(row, code)| (row, code.to_owned()))
        .to_vec(),
        "{job}"
    );
    let bob = app
        .data(
            "{ contacts(filter: { externalId: { eq: \"C-2\" } }) { nodes { accountId birthdate ownerId } } }",
            json!({}),
        )
        .await;
    assert_eq!(bob["contacts"]["nodes"][0]["accountId"], acme.as_str());
    let ann = app
        .data(
            "{ contacts(filter: { externalId: { eq: \"C-1\" } }) { nodes { birthdate } } }",
            json!({}),
        )
        .await;
    assert_eq!(ann["contacts"]["nodes"][0]["birthdate"], "1990-05-17");

    // The error file, as CSV with the caller's token.
    let file = app.get(&format!("/imports/{id}/errors.csv"), &[]).await;
    assert_eq!(file.status.as_u16(), 200);
    assert!(file.header("content-type").starts_with("text/csv"));
    let text = file.text();
    assert!(text.starts_with("row,column,value,code,message,warning\n"), "{text}");
    assert!(text.contains("4,E-mail,not-an-email,INVALID_VALUE,"), "{text}");
    assert!(text.contains("5,Account,Initech,NOT_FOUND,"), "{text}");
}

#[tokio::test]
async fn bad_imports_are_refused_with_codes_and_paths_and_mappings_are_shown_first() {
    let app = TestApp::start().await;
    let csv = "Name,Website\nAcme,acme.test\n";
    let (status, unknown) = import(&app, &[("object", "Gadget")], csv).await;
    assert_eq!(status, 400);
    assert_eq!(unknown["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        unknown["errors"][0]["extensions"]["field"],
        json!(["object"]),
        "{unknown}"
    );
    let (status, wrong) = import(
        &app,
        &[("object", "accounts"), ("mapping", r#"{"Website": "homepage"}"#)],
        csv,
    )
    .await;
    assert_eq!(status, 400, "{wrong}");
    assert_eq!(
        wrong["errors"][0]["extensions"]["field"],
        json!(["mapping", 0]),
        "{wrong}"
    );
    let (status, missing) = import(&app, &[("object", "accounts")], "Website\nacme.test\n").await;
    assert_eq!(status, 400, "{missing}");
    assert!(
        missing["errors"][0]["message"].as_str().unwrap().contains("name"),
        "{missing}"
    );
    let (status, no_key) = import(&app, &[("object", "accounts"), ("mode", "UPDATE")], csv).await;
    assert_eq!(status, 400, "{no_key}");
    assert_eq!(
        no_key["errors"][0]["extensions"]["field"],
        json!(["matchOn"]),
        "{no_key}"
    );
    let anonymous = app
        .request_without_token(Method::POST, "/imports?object=accounts", &[], csv.into())
        .await;
    assert_eq!(anonymous.status.as_u16(), 401);
    let (_, reader) = app.user("reader@crm.test", "READ_ONLY").await;
    let refused = app
        .request(
            Method::POST,
            "/imports?object=accounts",
            &[("authorization", &format!("Bearer {reader}"))],
            csv.into(),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 403, "{}", refused.text());
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.import_job").await,
        0,
        "refused before a job"
    );

    let shown = app
        .data(
            "{ importColumns(object: \"Contact\", headers: [\"Given name\", \"last_name\", \"Email Address\", \"Account Name\", \"Notes?\"]) { column header field note } }",
            json!({}),
        )
        .await;
    let fields: Vec<Value> = shown["importColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].clone())
        .collect();
    assert_eq!(fields[1], "lastName");
    assert_eq!(fields[2], "email");
    assert_eq!(fields[3], "account");
    assert_eq!(fields[4], Value::Null);
}

#[tokio::test]
async fn an_export_imported_back_changes_nothing_and_reverts_undo_imports() {
    let app = TestApp::start().await;
    let acme = app
        .create("Account", json!({ "name": "Acme, Inc.", "externalId": "A-1" }))
        .await;
    for (first, last, external) in [
        ("Zoë", "O'Hara", "P-1"),
        ("Li", "Wu \"Tiger\"", "P-2"),
        ("Ann", "Lee", "P-3"),
    ] {
        app.create(
            "Contact",
            json!({ "firstName": first, "lastName": last, "externalId": external, "accountId": acme, "birthdate": "1980-02-29" }),
        )
        .await;
    }
    let filter = encode(r#"{"externalId": {"in": ["P-1", "P-2", "P-3"]}}"#);
    let order = encode(r#"[{"field": "LAST_NAME"}]"#);
    let exported = app
        .get(&format!("/exports/contacts?filter={filter}&orderBy={order}"), &[])
        .await;
    assert_eq!(exported.status.as_u16(), 200, "{}", exported.text());
    let csv = exported.text();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().contains("Lee"),
        "ordered by last name: {csv}"
    );
    let named = app
        .get("/exports/contacts?fields=firstName,account&lookups=names", &[])
        .await
        .text();
    assert!(named.contains("\"Acme, Inc.\""), "{named}");

    let versions = app.scalar("SELECT sum(version) AS n FROM crm.contact").await;
    let (_, again) = import(&app, &[("object", "contacts"), ("mode", "UPSERT")], csv.clone()).await;
    let status = &again["importJob"]["status"];
    assert_eq!(again["importJob"]["matchOn"], "id", "{again}");
    assert_eq!(
        (
            status["rowsCreated"].clone(),
            status["rowsUpdated"].clone(),
            status["rowsUnchanged"].clone()
        ),
        (json!(0), json!(0), json!(3)),
        "{again}"
    );
    assert_eq!(app.scalar("SELECT sum(version) AS n FROM crm.contact").await, versions);
    // Matched by external id, the file's id column is not written.
    let (_, by_external) = import(
        &app,
        &[("object", "contacts"), ("mode", "UPSERT"), ("matchOn", "externalId")],
        csv.replace(&acme, "00000000-0000-0000-0000-000000000000"),
    )
    .await;
    assert_eq!(
        by_external["importJob"]["status"]["rowsFailed"], 3,
        "an account that is not there: {by_external}"
    );
    let (_, by_external) = import(
        &app,
        &[("object", "contacts"), ("mode", "UPSERT"), ("matchOn", "externalId")],
        csv.lines()
            .map(|line| {
                line.split_once(',')
                    .map_or(line.to_owned(), |(_, rest)| format!("{},{rest}", uuid_like()))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .await;
    assert_eq!(by_external["importJob"]["status"]["rowsUnchanged"], 3, "{by_external}");
    assert_eq!(app.scalar("SELECT sum(version) AS n FROM crm.contact").await, versions);

    // UPSERT by external id: one changed, one new; then reverted.
    let (_, upserted) = import(
        &app,
        &[("object", "contacts"), ("mode", "UPSERT"), ("matchOn", "externalId")],
        "externalId,lastName,firstName\nP-3,Leigh,\nP-9,New,Nia\n",
    )
    .await;
    let job = upserted["importJob"]["id"].as_str().unwrap().to_owned();
    assert_eq!(upserted["importJob"]["status"]["rowsUpdated"], 1, "{upserted}");
    assert_eq!(upserted["importJob"]["status"]["rowsCreated"], 1, "{upserted}");
    let ann = "{ contacts(filter: { externalId: { in: [\"P-3\", \"P-9\"] } }) { nodes { firstName lastName } } }";
    let names = app.data(ann, json!({})).await;
    assert_eq!(names["contacts"]["nodes"].as_array().unwrap().len(), 2);
    let revert = "mutation($id: ID!, $dry: Boolean) { revertImport(id: $id, dryRun: $dry) {
        recordsDeleted recordsRestored dryRun job { status { state } revertedAt } } }";
    let rehearsed = app.data(revert, json!({ "id": job, "dry": true })).await;
    assert_eq!(rehearsed["revertImport"]["recordsDeleted"], 1);
    assert_eq!(rehearsed["revertImport"]["job"]["status"]["state"], "SUCCEEDED");
    let reverted = app.data(revert, json!({ "id": job })).await;
    assert_eq!(reverted["revertImport"]["recordsRestored"], 1, "{reverted}");
    assert_eq!(reverted["revertImport"]["job"]["status"]["state"], "REVERTED");
    let names = app.data(ann, json!({})).await;
    assert_eq!(
        names["contacts"]["nodes"],
        json!([{ "firstName": "Ann", "lastName": "Lee" }])
    );
    let twice = app.error(revert, json!({ "id": job })).await;
    assert_eq!(twice["extensions"]["code"], "CONFLICT", "{twice}");

    // A record changed since the import: the revert is refused, nothing undone.
    let (_, renamed) = import(
        &app,
        &[("object", "contacts"), ("mode", "UPDATE"), ("matchOn", "externalId")],
        "externalId,lastName\nP-1,Hara\n",
    )
    .await;
    let job = renamed["importJob"]["id"].as_str().unwrap().to_owned();
    let zoe = app
        .data(
            "{ contacts(filter: { externalId: { eq: \"P-1\" } }) { nodes { id } } }",
            json!({}),
        )
        .await["contacts"]["nodes"][0]["id"]
        .clone();
    app.data(
        "mutation($id: ID!) { updateContact(id: $id, input: { title: \"CEO\" }) { id } }",
        json!({ "id": zoe }),
    )
    .await;
    let refused = app.error(revert, json!({ "id": job })).await;
    assert_eq!(refused["extensions"]["code"], "CONFLICT", "{refused}");
    let still = app
        .data(
            "{ contacts(filter: { externalId: { eq: \"P-1\" } }) { nodes { lastName } } }",
            json!({}),
        )
        .await;
    assert_eq!(still["contacts"]["nodes"][0]["lastName"], "Hara");
}

#[tokio::test]
async fn latin1_files_are_read_and_duplicate_rules_warn_or_block_imported_rows() {
    let app = TestApp::start().await;
    app.create(
        "Contact",
        json!({ "firstName": "Kim", "lastName": "Old", "email": "kim@x.test" }),
    )
    .await;
    // "Jürgen Müller" in Windows-1252, no byte order mark.
    let mut latin1 = b"firstName,lastName,email\n".to_vec();
    latin1.extend_from_slice(b"J\xfcrgen,M\xfcller,jm@x.test\nKim,New,KIM@x.test\nJo,Twice,jm@x.test \n");
    let (_, warned) = import(&app, &[("object", "contacts")], latin1.clone()).await;
    let status = &warned["importJob"]["status"];
    assert_eq!(status["rowsCreated"], 3, "WARN imports: {warned}");
    assert_eq!(status["warnings"], 2, "{warned}");
    let found = app
        .data(
            "{ contacts(filter: { lastName: { eq: \"Müller\" } }) { nodes { firstName } } }",
            json!({}),
        )
        .await;
    assert_eq!(found["contacts"]["nodes"][0]["firstName"], "Jürgen");

    app.sql("UPDATE crm.duplicate_rule SET action = 'BLOCK' WHERE name = 'Contacts with the same email'")
        .await;
    let (_, blocked) = import(
        &app,
        &[("object", "contacts")],
        "firstName,lastName,email\nNew,One,new1@x.test\nKim,Third,kim@x.test\nA,B,fresh@x.test\nC,D,FRESH@x.test\n",
    )
    .await;
    let status = &blocked["importJob"]["status"];
    assert_eq!(status["rowsCreated"], 2, "{blocked}");
    assert_eq!(status["rowsFailed"], 2, "{blocked}");
    let id = blocked["importJob"]["id"].as_str().unwrap();
    let job = app.data(JOB, json!({ "id": id })).await;
    let codes: Vec<(i64, String)> = job["importJob"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["code"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        codes,
        vec![(3, "DUPLICATE".to_owned()), (5, "DUPLICATE".to_owned())],
        "{job}"
    );
}

#[tokio::test]
async fn a_kill_9_mid_import_leaves_no_record_and_the_job_interrupted() {
    let app = TestApp::start().await;
    let dir = crate::cli::scratch_dir("import-kill");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("contacts.csv");
    let mut csv = String::from("firstName,lastName,email,externalId\n");
    for i in 0..150_000 {
        csv.push_str(&format!("First{i},Last{i},p{i}@kill.test,K-{i}\n"));
    }
    std::fs::write(&file, csv).unwrap();
    let mut child = crate::cli::crm()
        .args(["import", "contacts"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&dir)
        .env("DATABASE_URL", &app.database_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the import is writing records (its progress says so).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let writing = app
            .scalar("SELECT count(*) AS n FROM crm.import_job WHERE rows_created > 0 AND state = 'RUNNING'")
            .await;
        if writing > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was killed"
        );
        assert!(std::time::Instant::now() < deadline, "the import never started writing");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    crate::cli::signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let job_id = {
        let data = app.data("{ importJobs { id status { state } } }", json!({})).await;
        data["importJobs"][0]["id"].as_str().unwrap().to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let job = app.data(JOB, json!({ "id": job_id })).await;
        if job["importJob"]["status"]["state"] == "INTERRUPTED" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after its server died: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM crm.contact").await,
        0,
        "no half batch"
    );
    assert_eq!(app.scalar("SELECT count(*) AS n FROM crm.import_record").await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cards as common tools write them: Apple Contacts (3.0, grouped items,
/// `TYPE=pref`), Google Contacts (3.0), Outlook (2.1 style types), and
/// RFC 6350's own example (4.0, `tel:` URIs, quoted TYPE lists).
const CARDS: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n\
N:Appleseed;Johnny;;;\r\nFN:Johnny Appleseed\r\nORG:Apple Inc.;Design\r\nTITLE:Designer\r\n\
item1.EMAIL;type=INTERNET;type=pref:johnny@apple.test\r\nitem1.X-ABLabel:_$!<Other>!$_\r\n\
EMAIL;type=INTERNET;type=HOME:j@home.test\r\nTEL;type=CELL;type=VOICE;type=pref:+1 408 555 0101\r\n\
TEL;type=WORK;type=VOICE:+1 408 555 0102\r\n\
item2.ADR;type=WORK;type=pref:;;1 Infinite Loop;Cupertino;CA;95014;United States\r\n\
BDAY;VALUE=date:1976-04-01\r\nUID:apple-0001\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Gina Gómez\r\nN:Gómez;Gina;;;\r\nEMAIL;TYPE=INTERNET:gina@example.test\r\n\
TEL;TYPE=CELL:+34 600 000 001\r\nADR;TYPE=HOME:;;Calle Mayor 1;Madrid;;28013;Spain\r\nORG:Globex\r\n\
NOTE:Met at the trade show\\, booth 4\r\nUID:google-0002\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:2.1\r\nN;LANGUAGE=en-us:Doe;John\r\nFN:John Doe\r\nORG:Contoso\r\nTITLE:Buyer\r\n\
TEL;WORK;VOICE:(425) 555-0199\r\nEMAIL;PREF;INTERNET:john.doe@contoso.test\r\nUID:outlook-0003\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Simon Perreault\r\nN:Perreault;Simon;;;ing. jr,M.Sc.\r\nBDAY:--0203\r\n\
GENDER:M\r\nLANG;PREF=1:fr\r\nTEL;VALUE=uri;TYPE=\"work,voice\";PREF=1:tel:+1-418-656-9254;ext=102\r\n\
TEL;VALUE=uri;TYPE=\"work,cell,voice,video,text\":tel:+1-418-262-6501\r\n\
EMAIL;TYPE=work:simon.perreault@viagenie.test\r\nORG;TYPE=work:Viagenie\r\n\
ADR;TYPE=work:;Suite D2-630;2875 Laurier;Quebec;QC;G1V 2M2;Canada\r\n\
URL;TYPE=home:http://nomis80.org\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\nEND:VCARD\r\n";

#[tokio::test]
async fn vcards_import_as_contacts_with_their_accounts_and_export_in_either_version() {
    let app = TestApp::start().await;
    app.create("Account", json!({ "name": "Contoso" })).await;
    let accounts = || app.scalar("SELECT count(*) AS n FROM crm.account");
    let before = accounts().await;
    let (_, imported) = import(&app, &[("object", "contacts"), ("fileName", "people.vcf")], CARDS).await;
    let status = &imported["importJob"]["status"];
    assert_eq!(status["rowsCreated"], 4, "{imported}");
    assert_eq!(status["rowsFailed"], 0, "{imported}");
    assert_eq!(
        accounts().await,
        before + 3,
        "Apple Inc., Globex and Viagenie are made; Contoso is found"
    );
    let read = "query($id: String!) { contacts(filter: { externalId: { eq: $id } }) { nodes {
        firstName lastName email phone mobile title department birthdate mailingStreet mailingCity mailingCountry
        account { name } } } }";
    let johnny = app.data(read, json!({ "id": "apple-0001" })).await["contacts"]["nodes"][0].clone();
    assert_eq!(
        johnny,
        json!({ "firstName": "Johnny", "lastName": "Appleseed", "email": "johnny@apple.test",
            "phone": "+1 408 555 0102", "mobile": "+1 408 555 0101", "title": "Designer", "department": "Design",
            "birthdate": "1976-04-01", "mailingStreet": "1 Infinite Loop", "mailingCity": "Cupertino",
            "mailingCountry": "United States", "account": { "name": "Apple Inc." } })
    );
    let gina = app.data(read, json!({ "id": "google-0002" })).await["contacts"]["nodes"][0].clone();
    assert_eq!(gina["lastName"], "Gómez");
    assert_eq!(gina["mailingCity"], "Madrid");
    let john = app.data(read, json!({ "id": "outlook-0003" })).await["contacts"]["nodes"][0].clone();
    assert_eq!(
        (john["email"].clone(), john["account"]["name"].clone()),
        (json!("john.doe@contoso.test"), json!("Contoso"))
    );
    let simon = app
        .data(read, json!({ "id": "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1" }))
        .await["contacts"]["nodes"][0]
        .clone();
    assert_eq!(simon["mobile"], "+1-418-262-6501", "{simon}");
    assert_eq!(simon["birthdate"], Value::Null, "a birthday without a year is left out");
    assert_eq!(simon["mailingCity"], "Quebec");

    // Exported in either version, and imported back unchanged.
    for version in ["3.0", "4.0"] {
        let cards = app
            .get(&format!("/exports/contacts?format=vcard&vcardVersion={version}"), &[])
            .await;
        assert_eq!(cards.status.as_u16(), 200, "{}", cards.text());
        assert!(cards.header("content-type").starts_with("text/vcard"));
        let text = cards.text();
        assert_eq!(text.matches("BEGIN:VCARD").count(), 4, "{text}");
        assert!(text.contains(&format!("VERSION:{version}")), "{text}");
        assert!(
            text.contains("FN:Johnny Appleseed") && text.contains("ORG:Apple Inc.;Design"),
            "{text}"
        );
        let (_, again) = import(
            &app,
            &[("object", "contacts"), ("mode", "UPSERT"), ("matchOn", "externalId")],
            text,
        )
        .await;
        let status = &again["importJob"]["status"];
        assert_eq!(
            (status["rowsUnchanged"].clone(), status["rowsFailed"].clone()),
            (json!(4), json!(0)),
            "{again}"
        );
    }
    assert_eq!(accounts().await, before + 3, "no account made twice");

    // The first import reverted: its contacts and the accounts it made go.
    let id = imported["importJob"]["id"].as_str().unwrap();
    let reverted = app
        .data(
            "mutation($id: ID!) { revertImport(id: $id) { recordsDeleted } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(reverted["revertImport"]["recordsDeleted"], 7, "{reverted}");
    assert_eq!(accounts().await, before);
    assert_eq!(contacts(&app).await, 0);
}

const MAPPING: &str = "mutation($input: CreateImportMappingInput!) { createImportMapping(input: $input) { id name } }";

#[tokio::test]
async fn saved_import_mappings_are_tried_in_a_sandbox_and_promoted() {
    let app = TestApp::start().await;
    app.data(
        "mutation { createSandbox(input: { name: \"imports\", mode: METADATA_ONLY }) { name } }",
        json!({}),
    )
    .await;
    let mapping = json!({ "input": { "name": "Salon leads", "object": "Contact",
        "columns": { "Nom": "lastName", "Prénom": "firstName", "Courriel": "email", "Remarque": null },
        "defaults": { "leadSource": "Trade show" }, "dateFormat": "%d/%m/%Y", "delimiter": ";" } });
    // Checked when written: fields that exist, values they take.
    let mut wrong = mapping.clone();
    wrong["input"]["columns"]["Nom"] = json!("surname");
    let refused = app
        .graphql_at("/sandboxes/imports/graphql", None, MAPPING, wrong)
        .await
        .json();
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
    assert_eq!(
        refused["errors"][0]["extensions"]["field"],
        json!(["input", "columns"]),
        "{refused}"
    );
    app.sandbox_data("imports", MAPPING, mapping).await;

    let file = "Nom;Prénom;Courriel;Naissance;Remarque\nDurand;Léa;lea@salon.test;;vue au stand\n";
    let query = "object=contacts&savedMapping=Salon%20leads";
    let in_sandbox = app
        .request(
            Method::POST,
            &format!("/sandboxes/imports/imports?{query}"),
            &[],
            file.into(),
        )
        .await
        .json();
    assert_eq!(in_sandbox["importJob"]["status"]["rowsCreated"], 1, "{in_sandbox}");
    let lea = app
        .sandbox_data("imports", "{ contacts { nodes { firstName leadSource } } }", json!({}))
        .await;
    assert_eq!(
        lea["contacts"]["nodes"],
        json!([{ "firstName": "Léa", "leadSource": "TRADE_SHOW" }])
    );
    let (status, missing) = import(&app, &[("object", "contacts"), ("savedMapping", "Salon leads")], file).await;
    assert_eq!(status, 400, "not in production yet: {missing}");
    assert_eq!(missing["errors"][0]["extensions"]["field"], json!(["savedMapping"]));
    assert_eq!(contacts(&app).await, 0, "the sandbox's import stayed there");

    let diff = app
        .data(
            "query { sandboxDiff(name: \"imports\") { changes { kind action target } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        diff["sandboxDiff"]["changes"],
        json!([{ "kind": "IMPORT_MAPPING", "action": "ADD", "target": "Salon leads" }])
    );
    let version = app
        .scalar("SELECT metadata_version::bigint AS n FROM crm.workspace_settings")
        .await;
    let promoted = app
        .data(
            "mutation($version: Int!) { promoteSandbox(name: \"imports\", dryRun: false, expectedProductionVersion: $version) { applied } }",
            json!({ "version": version }),
        )
        .await;
    assert_eq!(promoted["promoteSandbox"]["applied"], true, "{promoted}");
    let (_, done) = import(
        &app,
        &[
            ("object", "contacts"),
            ("savedMapping", "Salon leads"),
            ("mode", "CREATE"),
        ],
        file,
    )
    .await;
    assert_eq!(done["importJob"]["status"]["rowsCreated"], 1, "{done}");
    let mapped: Vec<Value> = done["importJob"]["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].clone())
        .collect();
    assert_eq!(
        mapped,
        vec![
            json!("lastName"),
            json!("firstName"),
            json!("email"),
            Value::Null,
            Value::Null
        ]
    );
}

#[tokio::test]
async fn imports_match_records_by_a_duplicate_rule_and_only_owners_reassign() {
    let app = TestApp::start().await;
    app.create(
        "Contact",
        json!({ "firstName": "Kim", "lastName": "Old", "email": "kim@x.test", "externalId": "K" }),
    )
    .await;
    app.create("Contact", json!({ "lastName": "Twin A", "email": "twin@x.test" }))
        .await;
    app.create("Contact", json!({ "lastName": "Twin B", "email": "TWIN@x.test" }))
        .await;
    let (_, done) = import(
        &app,
        &[
            ("object", "contacts"),
            ("mode", "UPSERT"),
            ("matchOn", "Contacts with the same email"),
        ],
        "email,lastName,title\n KIM@X.test ,Old,CEO\ntwin@x.test,T,CTO\nnew@x.test,New,CFO\n",
    )
    .await;
    let job = &done["importJob"];
    assert_eq!(job["matchOn"], "Contacts with the same email", "{done}");
    let status = &job["status"];
    assert_eq!(
        (
            status["rowsUpdated"].clone(),
            status["rowsCreated"].clone(),
            status["rowsFailed"].clone()
        ),
        (json!(1), json!(1), json!(1)),
        "{done}"
    );
    let kim = app
        .data(
            "{ contacts(filter: { externalId: { eq: \"K\" } }) { nodes { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(kim["contacts"]["nodes"][0]["title"], "CEO");
    let errors = app.data(JOB, json!({ "id": job["id"] })).await;
    assert_eq!(errors["importJob"]["errors"][0]["code"], "AMBIGUOUS", "{errors}");
    let (status, unknown) = import(
        &app,
        &[("object", "contacts"), ("mode", "UPDATE"), ("matchOn", "No such rule")],
        "email\nkim@x.test\n",
    )
    .await;
    assert_eq!(status, 400, "{unknown}");
    assert_eq!(unknown["errors"][0]["extensions"]["field"], json!(["matchOn"]));

    // A sales rep may not give the admin's record another owner.
    let (_, sales) = app.user("rep@crm.test", "SALES").await;
    let response = app
        .request(
            Method::POST,
            "/imports?object=contacts&mode=UPDATE&matchOn=externalId",
            &[("authorization", &format!("Bearer {sales}"))],
            "externalId,owner,title\nK,rep@crm.test,Boss\n".into(),
        )
        .await
        .json();
    let status = &response["importJob"]["status"];
    assert_eq!(
        (status["rowsUpdated"].clone(), status["rowsFailed"].clone()),
        (json!(0), json!(1)),
        "{response}"
    );
    // Admins read every job; the rep's own token reads only the rep's.
    let refused = app.data(JOB, json!({ "id": response["importJob"]["id"] })).await;
    assert_eq!(refused["importJob"]["errors"][0]["code"], "FORBIDDEN", "{refused}");
    let theirs = app.graphql_as(&sales, "{ importJobs { id } }", json!({})).await;
    assert_eq!(theirs["data"]["importJobs"].as_array().unwrap().len(), 1, "{theirs}");
}

/// An id no record has.
fn uuid_like() -> String {
    "11111111-2222-3333-4444-555555555555".to_owned()
}

#[tokio::test]
async fn imported_leads_and_activities_are_scored_as_writes_of_them_would_be() {
    let app = TestApp::start().await;
    app.data(
        "mutation($input: CreateScoringRuleInput!) { createScoringRule(input: $input) { id } }",
        json!({ "input": { "name": "Emails", "activityType": "EMAIL", "points": 10, "maxPoints": 30 } }),
    )
    .await;
    let (_, leads) = import(
        &app,
        &[("object", "leads")],
        "lastName,company,externalId\nLovelace,Analytical Engines,L-1\nHopper,Navy,L-2\n",
    )
    .await;
    assert_eq!(leads["importJob"]["status"]["rowsCreated"], 2, "{leads}");
    let (_, activities) = import(
        &app,
        &[("object", "activities")],
        "type,subject,lead\nEMAIL,Hello,L-1\nEMAIL,Again,L-1\nEMAIL,Hi,Hopper\n",
    )
    .await;
    assert_eq!(activities["importJob"]["status"]["rowsCreated"], 3, "{activities}");
    let scores = app
        .data(
            "{ leads(orderBy: [{ field: LAST_NAME }]) { nodes { lastName score } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        scores["leads"]["nodes"],
        json!([{ "lastName": "Hopper", "score": 10 }, { "lastName": "Lovelace", "score": 20 }])
    );
}
