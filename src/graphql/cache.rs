//! A memory of things derived from query texts (parsed documents, compiled
//! plans), bounded in entries and in the bytes of the texts it keys them
//! by: any token holder can send new texts of up to the body limit, so a
//! count of entries alone would let them fill gigabytes.

use std::collections::HashMap;

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
        if let Some(slot) = self.entries.get_mut(&key) {
            *slot = value;
            return;
        }
        if self.entries.len() >= ENTRIES || self.bytes + key.len() > TEXT_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += key.len();
        self.entries.insert(key, value);
    }
}
