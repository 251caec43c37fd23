//! Connections on the flat path: `nodes`, `edges` (`cursor`, `node`),
//! `pageInfo` and `totalCount`, paged either way. A page reads one row past
//! its size when `pageInfo` asks whether more follow; cursors are made here
//! from the order keys' values, read as columns, byte for byte as
//! `records::page::cursor_sql` and `Cursor::of` make them.

use async_graphql::parser::types::{Field, SelectionSet};
use async_graphql::Name;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{cell, write_key, write_record, write_string, Fetched, Level, ROWS};
use crate::db::sql::Sql;
use crate::graphql::compiled::compiler::{Compiled, Compiler, Skip};
use crate::metadata::ObjectDef;
use crate::records::page;

/// A connection field planned for the flat path.
pub(super) struct Connection<'a> {
    pub(super) request: page::PageRequest,
    /// Its fields, in the order selected.
    parts: Vec<(Name, Part)>,
    /// What each node shows (only its id when no node is selected).
    pub(super) level: Level<'a>,
    /// The first column of the cursor's key values, and the order's
    /// signature, when a cursor is shown.
    cursor: Option<(usize, String)>,
    /// Whether `pageInfo` asks whether more rows follow the page.
    probe: bool,
    /// Whether `totalCount` is selected.
    pub(super) total: bool,
    /// Whether anything reads the page's rows (not only `totalCount`).
    pub(super) reads_page: bool,
}

enum Part {
    Typename(String),
    TotalCount,
    Nodes,
    Edges(Vec<(Name, EdgePart)>),
    PageInfo(Vec<(Name, InfoPart)>),
}

enum EdgePart {
    Typename(String),
    Cursor,
    Node,
}

enum InfoPart {
    Typename,
    HasNextPage,
    HasPreviousPage,
    StartCursor,
    EndCursor,
}

impl Connection<'_> {
    /// Rows read per list: the page, plus one when `pageInfo` needs to know
    /// whether more follow.
    pub(super) fn rows_read(&self) -> usize {
        self.request.limit() + usize::from(self.probe)
    }

    fn backward(&self) -> bool {
        self.request.last.is_some()
    }
}

impl<'a> Compiler<'a> {
    /// A connection of `object` as the flat path reads it, or `None` when
    /// its shape needs the JSON statement: two node selections (`nodes`
    /// and `edges { node }`), or a nested `totalCount` past a cursor.
    pub(super) fn flat_connection(
        &mut self,
        object: &'a ObjectDef,
        field: &'a Field,
        nested: bool,
    ) -> Compiled<Option<Connection<'a>>> {
        let request = self.page_request(object, field)?;
        let backward = request.last.is_some();
        let connection_type = format!("{}Connection", object.name);
        let edge_type = format!("{}Edge", object.name);
        let mut seen = Seen::default();
        let (mut total, mut reads_page) = (false, false);
        let mut parts = Vec::new();
        for item in self.fields(&field.selection_set.node, &connection_type)? {
            Self::only_arguments(item, &[])?;
            let part = match item.name.node.as_str() {
                "__typename" => Part::Typename(connection_type.clone()),
                "totalCount" => {
                    total = true;
                    Part::TotalCount
                }
                "nodes" => {
                    reads_page = true;
                    seen.node(&item.selection_set.node);
                    Part::Nodes
                }
                "edges" => {
                    reads_page = true;
                    Part::Edges(self.edge_parts(item, &edge_type, &mut seen)?)
                }
                "pageInfo" => {
                    reads_page = true;
                    Part::PageInfo(self.info_parts(item, backward, &mut seen)?)
                }
                _ => return Err(Skip::Unsupported),
            };
            parts.push((item.response_key().node.clone(), part));
        }
        // A nested page past a cursor numbers only the rows after it, so
        // its window cannot count them all.
        if seen.nodes > 1 || nested && total && request.cursor().is_some() {
            return Ok(None);
        }
        let mut level = match seen.node {
            Some(set) => match self.level(object, set)? {
                Some(level) => level,
                None => return Ok(None),
            },
            None => {
                let id = object.field("id").ok_or(Skip::Unsupported)?;
                Level {
                    columns: vec![cell(id).0],
                    items: Vec::new(),
                }
            }
        };
        let cursor = seen.cursor.then(|| {
            let first = level.columns.len();
            for key in &request.order {
                let mut value = Sql::raw("to_json(");
                value.append(&key.json(ROWS)).push(")::text");
                level.column(value);
            }
            (first, page::order_signature(&request.order))
        });
        Ok(Some(Connection {
            request,
            parts,
            level,
            cursor,
            probe: seen.probe,
            total,
            reads_page,
        }))
    }

    /// What an `edges` selection shows of each row.
    fn edge_parts(
        &mut self,
        edges: &'a Field,
        edge_type: &str,
        seen: &mut Seen<'a>,
    ) -> Compiled<Vec<(Name, EdgePart)>> {
        let mut parts = Vec::new();
        for inner in self.fields(&edges.selection_set.node, edge_type)? {
            Self::only_arguments(inner, &[])?;
            let part = match inner.name.node.as_str() {
                "__typename" => EdgePart::Typename(edge_type.to_owned()),
                "cursor" => {
                    seen.cursor = true;
                    EdgePart::Cursor
                }
                "node" => {
                    seen.node(&inner.selection_set.node);
                    EdgePart::Node
                }
                _ => return Err(Skip::Unsupported),
            };
            parts.push((inner.response_key().node.clone(), part));
        }
        Ok(parts)
    }

    /// What a `pageInfo` selection shows.
    fn info_parts(&mut self, info: &'a Field, backward: bool, seen: &mut Seen<'a>) -> Compiled<Vec<(Name, InfoPart)>> {
        let mut parts = Vec::new();
        for inner in self.fields(&info.selection_set.node, "PageInfo")? {
            Self::only_arguments(inner, &[])?;
            let part = match inner.name.node.as_str() {
                "__typename" => InfoPart::Typename,
                "hasNextPage" => {
                    seen.probe |= !backward;
                    InfoPart::HasNextPage
                }
                "hasPreviousPage" => {
                    seen.probe |= backward;
                    InfoPart::HasPreviousPage
                }
                "startCursor" => {
                    seen.cursor = true;
                    InfoPart::StartCursor
                }
                "endCursor" => {
                    seen.cursor = true;
                    InfoPart::EndCursor
                }
                _ => return Err(Skip::Unsupported),
            };
            parts.push((inner.response_key().node.clone(), part));
        }
        Ok(parts)
    }
}

/// What a connection's selections need read.
#[derive(Default)]
struct Seen<'a> {
    /// The selection of its nodes, and how many there are (the flat path
    /// reads one).
    node: Option<&'a SelectionSet>,
    nodes: usize,
    /// A cursor is shown.
    cursor: bool,
    /// Whether more rows follow the page is asked.
    probe: bool,
}

impl<'a> Seen<'a> {
    fn node(&mut self, set: &'a SelectionSet) {
        self.node = Some(set);
        self.nodes += 1;
    }
}

/// Writes a connection whose rows, in the order read, are `read` (at most
/// one past the page); `total` is its `totalCount` as text.
pub(super) fn write_connection(
    out: &mut Vec<u8>,
    connection: &Connection<'_>,
    data: &Fetched,
    read: &[usize],
    total: &str,
) {
    let limit = connection.request.limit();
    let more = read.len() > limit;
    let mut rows: Vec<usize> = read.iter().take(limit).copied().collect();
    let backward = connection.backward();
    if backward {
        rows.reverse();
    }
    out.push(b'{');
    for (i, (key, part)) in connection.parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, key);
        match part {
            Part::Typename(name) => write_string(out, name),
            Part::TotalCount => out.extend_from_slice(total.as_bytes()),
            Part::Nodes => {
                out.push(b'[');
                for (n, &row) in rows.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_record(out, &connection.level, data, row);
                }
                out.push(b']');
            }
            Part::Edges(parts) => {
                out.push(b'[');
                for (n, &row) in rows.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    for (j, (key, part)) in parts.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_key(out, key);
                        match part {
                            EdgePart::Typename(name) => write_string(out, name),
                            EdgePart::Cursor => write_cursor(out, connection, data, Some(row)),
                            EdgePart::Node => write_record(out, &connection.level, data, row),
                        }
                    }
                    out.push(b'}');
                }
                out.push(b']');
            }
            Part::PageInfo(parts) => {
                let request = &connection.request;
                out.push(b'{');
                for (j, (key, part)) in parts.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_key(out, key);
                    let flag = |yes: bool| if yes { &b"true"[..] } else { &b"false"[..] };
                    match part {
                        InfoPart::Typename => write_string(out, "PageInfo"),
                        InfoPart::HasNextPage if backward => out.extend_from_slice(flag(request.before.is_some())),
                        InfoPart::HasNextPage => out.extend_from_slice(flag(more)),
                        InfoPart::HasPreviousPage if backward => out.extend_from_slice(flag(more)),
                        InfoPart::HasPreviousPage => out.extend_from_slice(flag(request.after.is_some())),
                        InfoPart::StartCursor => write_cursor(out, connection, data, rows.first().copied()),
                        InfoPart::EndCursor => write_cursor(out, connection, data, rows.last().copied()),
                    }
                }
                out.push(b'}');
            }
        }
    }
    out.push(b'}');
}

/// The cursor of `row` (`null` for none): `{"o":<order>,"v":[<values>]}`
/// in unpadded URL-safe base64.
fn write_cursor(out: &mut Vec<u8>, connection: &Connection<'_>, data: &Fetched, row: Option<usize>) {
    let (Some(row), Some((first, signature))) = (row, &connection.cursor) else {
        out.extend_from_slice(b"null");
        return;
    };
    let cells = &data.rows[row];
    let mut doc = String::with_capacity(64);
    doc.push_str("{\"o\":\"");
    doc.push_str(signature);
    doc.push_str("\",\"v\":[");
    for key in 0..connection.request.order.len() {
        if key > 0 {
            doc.push(',');
        }
        doc.push_str(cells.get(first + key).unwrap_or("null"));
    }
    doc.push_str("]}");
    out.push(b'"');
    out.extend_from_slice(URL_SAFE_NO_PAD.encode(doc).as_bytes());
    out.push(b'"');
}
