//! Memories of what is derived from query texts: the one parsed document
//! per distinct text that every stage of a request shares (the HTTP layer's
//! mutation check, the plan cache, the query gate, answer ordering), and
//! the compiled plans. Each is bounded in entries and in the bytes of the
//! texts it is keyed by: any token holder can send new texts of up to the
//! body limit, so a count of entries alone would let them fill gigabytes.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use async_graphql::parser::types::ExecutableDocument;

/// Distinct query texts remembered; clients send a few fixed queries, so a
/// full memory is a sign of generated ones and is started over.
const ENTRIES: usize = 1024;
/// Bytes of query text remembered (what each entry holds grows with it).
const TEXT_BYTES: usize = 8 * 1024 * 1024;

/// Values keyed by query text.
#[derive(Debug)]
pub struct TextCache<V> {
    entries: HashMap<String, V>,
    bytes: usize,
}

impl<V> Default for TextCache<V> {
    fn default() -> Self {
        TextCache {
            entries: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<V> TextCache<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key)
    }

    /// Remembers `value`, first forgetting everything when full.
    pub fn insert(&mut self, key: String, value: V) {
        let bytes = key.len();
        self.insert_weighing(key, value, bytes);
    }

    /// Remembers `value`, which holds `bytes` of text (its key's and its
    /// own), first forgetting everything when full.
    pub fn insert_weighing(&mut self, key: String, value: V, bytes: usize) {
        if let Some(slot) = self.entries.get_mut(&key) {
            *slot = value;
            return;
        }
        if self.entries.len() >= ENTRIES || self.bytes + bytes > TEXT_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
        self.entries.insert(key, value);
    }
}

/// Parsed documents by query text, for the whole process: parsing is pure,
/// so every workspace and server in it may share them.
static DOCUMENTS: LazyLock<RwLock<TextCache<Arc<ExecutableDocument>>>> = LazyLock::new(RwLock::default);

/// The parsed form of a query text, parsed on its first sight only.
pub fn document(query: &str) -> async_graphql::parser::Result<Arc<ExecutableDocument>> {
    if let Some(document) = DOCUMENTS
        .read()
        .ok()
        .and_then(|documents| documents.get(query).cloned())
    {
        return Ok(document);
    }
    let document = Arc::new(async_graphql::parser::parse_query(query)?);
    if let Ok(mut documents) = DOCUMENTS.write() {
        documents.insert(query.to_owned(), document.clone());
    }
    Ok(document)
}
