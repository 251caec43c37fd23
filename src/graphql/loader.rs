//! DataLoaders: relations cost one query per relation per level.
//!
//! Resolvers of sibling records ask for their related records one key at a
//! time; the loaders collect the keys of one tick and run one statement per
//! object (to-one) or per relation and arguments (to-many).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use crate::access::Visibility;
use crate::audit;
use crate::db::Database;
use crate::error::{CrmError, Result};
use crate::metadata::{FieldDef, Model};
use crate::records::{self, ChildPage, FieldSet, PageRequest, Record, Table};

/// One record of one object, by id, with the fields the query needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub object: Arc<str>,
    pub fields: FieldSet,
    pub id: Uuid,
}

/// The arguments of one to-many field occurrence, compared by their
/// canonical text so identical arguments share a batch.
#[derive(Debug)]
pub struct ChildQuery {
    /// Child object name.
    pub object: Arc<str>,
    /// The lookup on the child pointing at the parent.
    pub lookup: FieldDef,
    /// The child fields the query needs.
    pub fields: FieldSet,
    pub request: PageRequest,
    /// The relation and arguments as text: equality of batches.
    pub canonical: String,
}

/// The first page of one parent's children for one [`ChildQuery`].
#[derive(Debug, Clone)]
pub struct ChildrenKey {
    pub query: Arc<ChildQuery>,
    pub parent: Uuid,
}

impl PartialEq for ChildrenKey {
    fn eq(&self, other: &Self) -> bool {
        self.parent == other.parent && self.query.canonical == other.query.canonical
    }
}

impl Eq for ChildrenKey {}

impl Hash for ChildrenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parent.hash(state);
        self.query.canonical.hash(state);
    }
}

/// The newest audit entries of one record (its `history` field).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryKey {
    pub object: Arc<str>,
    pub record: Uuid,
    pub first: usize,
    /// The entry id of the `after` cursor.
    pub after: Option<i64>,
}

/// Loads records of a workspace; one per request.
pub struct RecordLoader {
    pub db: Database,
    pub schema: Arc<str>,
    /// The workspace's name (`production`), as the audit log names it.
    pub workspace: Arc<str>,
    pub model: Arc<Model>,
    /// The records the request may see.
    pub visibility: Visibility,
}

impl RecordLoader {
    fn table<'a>(&'a self, object: &str) -> Result<Table<'a>> {
        let object = self
            .model
            .object(object)
            .ok_or_else(|| CrmError::internal(format_args!("loader asked for unknown object {object}")))?;
        Ok(Table::new(&self.schema, object).restricted(&self.visibility))
    }
}

impl Loader<RecordKey> for RecordLoader {
    type Value = Record;
    type Error = CrmError;

    async fn load(&self, keys: &[RecordKey]) -> Result<HashMap<RecordKey, Record>> {
        let mut by_object: HashMap<(&Arc<str>, &FieldSet), Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_object.entry((&key.object, &key.fields)).or_default().push(key.id);
        }
        let mut conn = self.db.conn().await?;
        let mut out = HashMap::with_capacity(keys.len());
        for ((object, fields), ids) in by_object {
            let found = records::get_many(&mut conn, self.table(object)?, fields, &ids).await?;
            out.extend(found.into_iter().map(|(id, record)| {
                let key = RecordKey {
                    object: object.clone(),
                    fields: fields.clone(),
                    id,
                };
                (key, record)
            }));
        }
        Ok(out)
    }
}

impl Loader<ChildrenKey> for RecordLoader {
    type Value = Arc<ChildPage>;
    type Error = CrmError;

    async fn load(&self, keys: &[ChildrenKey]) -> Result<HashMap<ChildrenKey, Arc<ChildPage>>> {
        let mut by_query: HashMap<&str, (&Arc<ChildQuery>, Vec<Uuid>)> = HashMap::new();
        for key in keys {
            by_query
                .entry(key.query.canonical.as_str())
                .or_insert_with(|| (&key.query, Vec::new()))
                .1
                .push(key.parent);
        }
        let mut conn = self.db.conn().await?;
        let mut out = HashMap::with_capacity(keys.len());
        for (query, parents) in by_query.into_values() {
            let table = self.table(&query.object)?;
            let mut pages =
                records::children(&mut conn, table, &query.lookup, &query.fields, &parents, &query.request).await?;
            for parent in parents {
                let page = pages.remove(&parent).unwrap_or_default();
                out.insert(
                    ChildrenKey {
                        query: query.clone(),
                        parent,
                    },
                    Arc::new(page),
                );
            }
        }
        Ok(out)
    }
}

impl Loader<HistoryKey> for RecordLoader {
    type Value = Arc<audit::Page>;
    type Error = CrmError;

    async fn load(&self, keys: &[HistoryKey]) -> Result<HashMap<HistoryKey, Arc<audit::Page>>> {
        // Records asking for the same page (object, size, cursor) share a statement.
        type Page<'k> = (&'k Arc<str>, usize, Option<i64>);
        let mut by_page: HashMap<Page<'_>, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_page
                .entry((&key.object, key.first, key.after))
                .or_default()
                .push(key.record);
        }
        let mut conn = self.db.conn().await?;
        let mut out = HashMap::with_capacity(keys.len());
        for ((object, first, after), records) in by_page {
            // A survivor's history holds the records merged into it.
            let merged = crate::records::merged::merged_into(&mut conn, &self.schema, &records).await?;
            let mut pages = audit::histories(&mut conn, &self.workspace, object, &records, first, after).await?;
            for (survivor, ids) in merged {
                let filter = audit::Filter {
                    workspace: Some(self.workspace.to_string()),
                    object: Some(object.to_string()),
                    record_ids: std::iter::once(survivor).chain(ids).collect(),
                    ..audit::Filter::default()
                };
                pages.insert(survivor, audit::page(&mut conn, &filter, first, after).await?);
            }
            for record in records {
                let key = HistoryKey {
                    object: object.clone(),
                    record,
                    first,
                    after,
                };
                out.insert(key, Arc::new(pages.remove(&record).unwrap_or_default()));
            }
        }
        Ok(out)
    }
}
