//! Automatic persisted queries, as Apollo's clients (and urql's, Relay's
//! with a small link) speak them: a client sends
//! `extensions.persistedQuery: { version: 1, sha256Hash }` instead of the
//! query text, over POST or GET. A hash the server knows runs that text; an
//! unknown one is answered `PERSISTED_QUERY_NOT_FOUND`, and the client
//! sends the text with its hash once, which the server checks and keeps.
//! After that the text stays off the wire, GET requests fit in a URL (and
//! so in HTTP caches), and the hash's text is the key of its parsed
//! document and compiled plan like any other.
//!
//! The texts are kept process-wide, bounded like every memory of query
//! texts ([`super::cache`]): a text is the same in every workspace, and the
//! hash proves which one it is.

use std::sync::{Arc, LazyLock, RwLock};

use async_graphql::{Request, Value};
use sha2::{Digest, Sha256};

use super::cache::TextCache;
use crate::error::{CrmError, Result};

/// Query texts by their SHA-256 (lowercase hex).
static TEXTS: LazyLock<RwLock<TextCache<Arc<str>>>> = LazyLock::new(RwLock::default);

/// Where the hash is in a request.
const PATH: [&str; 3] = ["extensions", "persistedQuery", "sha256Hash"];

/// Fills in the text of a request that names a persisted query by hash,
/// or checks and keeps the text sent with its hash; a request without
/// `persistedQuery` is left as it is.
pub fn resolve(request: &mut Request) -> Result<()> {
    let Some(persisted) = request.extensions.get("persistedQuery") else {
        return Ok(());
    };
    let Value::Object(persisted) = persisted else {
        return Err(CrmError::bad_input(
            &PATH[..2],
            "persistedQuery is an object: { version: 1, sha256Hash }",
        ));
    };
    match persisted.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        _ => {
            return Err(CrmError::bad_input(
                &["extensions", "persistedQuery", "version"],
                "the only persisted query version is 1",
            ))
        }
    }
    let hash = match persisted.get("sha256Hash") {
        Some(Value::String(hash)) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            hash.to_ascii_lowercase()
        }
        _ => {
            return Err(CrmError::bad_input(
                &PATH,
                "sha256Hash is the query's SHA-256, 64 hexadecimal digits",
            ))
        }
    };
    if request.query.is_empty() {
        let known = TEXTS.read().ok().and_then(|texts| texts.get(&hash).cloned());
        return match known {
            Some(text) => {
                request.query = text.to_string();
                Ok(())
            }
            None => Err(CrmError::PersistedQueryNotFound),
        };
    }
    if hex(&Sha256::digest(request.query.as_bytes())) != hash {
        return Err(CrmError::bad_input(&PATH, "provided sha does not match query"));
    }
    if let Ok(mut texts) = TEXTS.write() {
        let bytes = hash.len() + request.query.len();
        texts.insert_weighing(hash, Arc::from(request.query.as_str()), bytes);
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
