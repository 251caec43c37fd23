//! Search: find a record by a few words of its name or email, accents,
//! case and typos aside, across accounts, contacts, leads, opportunities
//! and custom objects at once.
//!
//! Each object's searchable fields (metadata: `searchable`) have two
//! indexes, kept by `metadata::ddl::search`: a weighted full text vector
//! and the fields' text for trigram similarity. A record is a hit when
//! every word of the query starts one of its words (full text, prefix
//! match) or is similar enough to one of them (`word_similarity`, which
//! finds "Jonh" for "John"). Hits are ranked —
//! full text matches first, by weight (names before emails), then by
//! similarity — and paged by keyset on (rank, object, id). Only records
//! the caller may read are searched.

pub mod api;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db::sql::{Bind, Sql};
use crate::error::{CrmError, Result};
use crate::metadata::ddl::search::{DOCUMENT, WORDS};
use crate::records::{Filter, Table};

/// The longest query, in characters.
pub const MAX_QUERY: usize = 200;
/// The most words of a query that count.
const MAX_WORDS: usize = 8;
/// How similar (`word_similarity`) a record's text must be to the query
/// for a typo to find it: "Jonh" is 0.4 similar to "John Smith".
const SIMILARITY: &str = "0.4";
/// Words shorter than this match by full text only.
const MIN_FUZZY_CHARS: usize = 3;

/// A query split into the words full text search matches (by prefix).
#[derive(Debug, Clone)]
pub struct Query {
    pub text: String,
    words: Vec<String>,
}

impl Query {
    /// Checks and splits `text`; refuses one without words or too long.
    pub fn parse(text: &str) -> Result<Query> {
        let text = text.trim();
        if text.chars().count() > MAX_QUERY {
            return Err(CrmError::bad_input(
                &["query"],
                format!("a query is at most {MAX_QUERY} characters"),
            ));
        }
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(MAX_WORDS)
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return Err(CrmError::bad_input(&["query"], "the query has no words to search for"));
        }
        Ok(Query {
            text: text.to_owned(),
            words,
        })
    }

    /// The full text query: every word, accents off.
    fn tsquery(&self) -> Sql {
        let mut sql = Sql::raw("(");
        for i in 0..self.words.len() {
            if i > 0 {
                sql.push(" && ");
            }
            sql.append(&self.word_query(i));
        }
        sql.push(")");
        sql
    }

    /// Word `i` as a full text query, accents off: the last word as a
    /// prefix (the one being typed), the others whole ("account" does not
    /// stand for every "account4711" of every email).
    fn word_query(&self, i: usize) -> Sql {
        let mut sql = Sql::raw("to_tsquery('simple'::regconfig, quote_literal(crm_system.search_text(");
        sql.bind(Bind::Text(Some(self.words[i].clone()))).push("))");
        if i + 1 == self.words.len() {
            sql.push(" || ':*'");
        }
        sql.push(")");
        sql
    }
}

/// Whether a word may match by similarity: two letters are similar to too much.
fn fuzzy(word: &str) -> bool {
    word.chars().count() >= MIN_FUZZY_CHARS
}

/// Where a page of hits starts: after the hit with this rank, object and id.
#[derive(Debug, Clone, PartialEq)]
pub struct After {
    rank: String,
    object: String,
    id: Uuid,
}

impl After {
    pub fn cursor(rank: &str, object: &str, id: Uuid) -> String {
        URL_SAFE_NO_PAD.encode(format!("search:{rank}|{object}|{id}"))
    }

    pub fn decode(text: &str) -> Option<After> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.strip_prefix("search:")?.splitn(3, '|');
        let rank = parts.next()?;
        // A rank is a small plain decimal; anything else was not ours.
        let valid = rank.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-') && rank.len() <= 32;
        rank.parse::<f64>().ok().filter(|r| valid && r.is_finite())?;
        Some(After {
            rank: rank.to_owned(),
            object: parts.next()?.to_owned(),
            id: parts.next()?.parse().ok()?,
        })
    }
}

/// One hit: which record, its title and its rank.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Hit {
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub title: String,
    /// The rank as text (a numeric rounded to six places): exact in cursors.
    #[diesel(sql_type = Text)]
    pub rank: String,
}

/// An object to search: its rows as the caller may read them, and the
/// filter the request gave for it.
pub struct Searched<'a> {
    pub table: Table<'a>,
    pub filter: Option<Filter>,
}

/// `t.search_document` and `t.search_words`.
fn columns() -> (Sql, Sql) {
    let (mut document, mut words) = (Sql::new(), Sql::new());
    document.column("t", DOCUMENT);
    words.column("t", WORDS);
    (document, words)
}

/// Which words of the query start a word of some record of the object the
/// caller may see: a word that does is not taken for a typo (matching it by
/// similarity too would only add noise, and cost).
async fn exact_words(conn: &mut AsyncPgConnection, searched: &Searched<'_>, query: &Query) -> Result<Vec<bool>> {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Bool>)]
        found: Vec<bool>,
    }
    let (document, _) = columns();
    let mut sql = Sql::raw("SELECT ARRAY[");
    for i in 0..query.words.len() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("EXISTS (SELECT 1")
            .append(&searched.table.from_as("t"))
            .push(" WHERE ");
        sql.append(&searched.table.rows(false, "t")).push(" AND ");
        sql.append(&document)
            .push(" @@ ")
            .append(&query.word_query(i))
            .push(")");
    }
    sql.push("]::boolean[] AS found");
    // Planned for its words: a plan made for any word scans the table.
    let sql = sql.planned_for_values();
    let found: Vec<Found> = sql.load(conn).await?;
    Ok(found.into_iter().next().map(|f| f.found).unwrap_or_default())
}

/// The hits of one object, ranked, as a `SELECT` of [`Hit`] columns:
/// every word starts a word of the record, or (a word no record has)
/// is similar to one. Full text hits rank 1 and more (by `ts_rank`, names
/// over emails); hits by similarity rank by it, below 1.
fn hits_of(searched: &Searched<'_>, query: &Query, exact: &[bool]) -> Sql {
    let object = searched.table.object;
    let (document, words) = columns();
    let tsquery = query.tsquery();
    let mut sql = Sql::raw("SELECT ");
    sql.bind(Bind::Text(Some(object.name.clone())))
        .push("::text AS object, t.id, ")
        .append(&crate::records::title(object, "t"))
        .push(" AS title, round((CASE WHEN ")
        .append(&document)
        .push(" @@ ")
        .append(&tsquery)
        .push(" THEN 1 + ts_rank(")
        .append(&document)
        .push(", ")
        .append(&tsquery)
        .push(") ELSE crm_system.word_similarity(crm_system.search_text(")
        .bind(Bind::Text(Some(query.text.clone())))
        .push("), ")
        .append(&words)
        .push(") END)::numeric, 6) AS rank")
        .append(&searched.table.from_as("t"))
        .push(" WHERE ")
        .append(&searched.table.rows(false, "t"));
    for (i, (word, exact)) in query
        .words
        .iter()
        .zip(exact.iter().copied().chain(std::iter::repeat(false)))
        .enumerate()
    {
        sql.push(" AND (")
            .append(&document)
            .push(" @@ ")
            .append(&query.word_query(i));
        if !exact && fuzzy(word) {
            sql.push(" OR crm_system.search_text(")
                .bind(Bind::Text(Some(word.clone())))
                .push(") OPERATOR(crm_system.<%) ")
                .append(&words);
        }
        sql.push(")");
    }
    if let Some(filter) = &searched.filter {
        sql.push(" AND (")
            .append(&filter.compile(searched.table.workspace_schema, "t"))
            .push(")");
    }
    sql
}

/// One page of hits across `objects`, best first; `limit + 1` are read so
/// the caller knows whether more follow. Runs in a transaction of its own
/// (the similarity threshold is set for it alone).
pub async fn search(
    conn: &mut AsyncPgConnection,
    objects: &[Searched<'_>],
    query: &Query,
    after: Option<&After>,
    limit: usize,
) -> Result<Vec<Hit>> {
    use diesel_async::AsyncConnection;
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction::<_, CrmError, _>(async |conn| {
        // Whether a word exists is one probe of its object's GIN index; a
        // planner guessing a few hundred matches would scan the table for
        // the first, so the scan is off for these probes.
        set(conn, "enable_seqscan", "off").await?;
        let mut exact = Vec::with_capacity(objects.len());
        for searched in objects {
            exact.push(exact_words(conn, searched, query).await?);
        }
        set(conn, "enable_seqscan", "on").await?;
        set(conn, "pg_trgm.word_similarity_threshold", SIMILARITY).await?;
        let mut sql = Sql::raw("SELECT object, id, title, rank::text AS rank FROM (");
        for (i, searched) in objects.iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            sql.append(&hits_of(searched, query, &exact[i]));
        }
        sql.push(") hits");
        if let Some(after) = after {
            sql.push(" WHERE (rank < ")
                .bind(Bind::Text(Some(after.rank.clone())))
                .push("::numeric OR (rank = ")
                .bind(Bind::Text(Some(after.rank.clone())))
                .push("::numeric AND (object, id) > (")
                .bind(Bind::Text(Some(after.object.clone())))
                .push("::text, ")
                .bind(Bind::Uuid(Some(after.id)))
                .push(")))");
        }
        sql.push(" ORDER BY rank DESC, object, id LIMIT ")
            .push(&(limit + 1).to_string());
        // Planned for its words: how many records a word matches decides the plan.
        Ok(sql.planned_for_values().load::<Hit>(conn).await?)
    })
    .await
}

/// Sets a setting for the rest of the transaction.
async fn set(conn: &mut AsyncPgConnection, name: &str, value: &str) -> Result<()> {
    let mut sql = Sql::raw("SELECT set_config(");
    sql.bind(Bind::Text(Some(name.to_owned())))
        .push(", ")
        .bind(Bind::Text(Some(value.to_owned())))
        .push(", true)");
    sql.execute(conn).await?;
    Ok(())
}
