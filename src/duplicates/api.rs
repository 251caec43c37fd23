//! `findDuplicates(object, rule, first, after)`: clusters of records the
//! workspace's duplicate rules find to be one customer, ready to merge.

use std::collections::HashMap;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, TypeRef};
use async_graphql::Value;

use super::clusters::{self, Cluster};
use super::rules::{self, Action};
use crate::access::{self, Operation};
use crate::error::CrmError;
use crate::graphql::resolve::{after_arg, arg, context, first_arg, resolved, text_arg};
use crate::graphql::room::Surface;
use crate::records::{FieldSet, Record};

/// Clusters a page holds when the client names no size.
const DEFAULT_CLUSTERS: usize = 20;
/// Clusters a page holds at most.
const MAX_CLUSTERS: usize = 100;

/// Adds `findDuplicates` and its types.
pub fn register(surface: &mut Surface) {
    surface.object(cluster_type());
    surface.object(
        Object::new("DuplicateClusterPage")
            .description("A page of duplicate clusters.")
            .field(
                Field::new("clusters", TypeRef::named_nn_list_nn("DuplicateCluster"), |ctx| {
                    resolved(async move {
                        let page = ctx.parent_value.try_downcast_ref::<Page>()?;
                        Ok(Some(FieldValue::list(
                            page.clusters.iter().map(|c| FieldValue::borrowed_any(c)),
                        )))
                    })
                })
                .description("The clusters, by rule, then by their first record's id."),
            )
            .field(
                Field::new("hasNextPage", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                    let page = ctx.parent_value.try_downcast_ref::<Page>();
                    FieldFuture::from_value(page.ok().map(|p| Value::from(p.has_next_page)))
                })
                .description("Whether more clusters follow."),
            )
            .field(
                Field::new("endCursor", TypeRef::named(TypeRef::STRING), |ctx| {
                    let page = ctx.parent_value.try_downcast_ref::<Page>();
                    let end = page
                        .ok()
                        .and_then(|p| p.clusters.last())
                        .map(|c| Value::String(c.cluster.cursor()));
                    FieldFuture::from_value(end)
                })
                .description("Pass it as `after` to read on."),
            ),
    );
    surface.queries(&["findDuplicates"], vec![find_field()]);
}

/// A cluster with its records, on its way to `DuplicateCluster`.
struct ClusterValue {
    cluster: Cluster,
    records: Vec<Record>,
}

struct Page {
    clusters: Vec<ClusterValue>,
    has_next_page: bool,
}

fn cluster_type() -> Object {
    let text = |name: &str, get: fn(&ClusterValue) -> Value| {
        Field::new(name, TypeRef::named_nn(TypeRef::STRING), move |ctx| {
            let cluster = ctx.parent_value.try_downcast_ref::<ClusterValue>();
            FieldFuture::from_value(cluster.ok().map(get))
        })
    };
    Object::new("DuplicateCluster")
        .description("Records a duplicate rule finds to be one customer: the oldest first.")
        .field(text("rule", |c| Value::String(c.cluster.rule.name.clone())).description("The rule's name."))
        .field(
            text("action", |c| {
                Value::String(
                    match c.cluster.rule.action {
                        Action::Allow => "ALLOW",
                        Action::Warn => "WARN",
                        Action::Block => "BLOCK",
                    }
                    .into(),
                )
            })
            .description("What the rule does with new duplicates: ALLOW, WARN or BLOCK."),
        )
        .field(
            Field::new("matchedOn", TypeRef::named_nn_list_nn(TypeRef::STRING), |ctx| {
                let cluster = ctx.parent_value.try_downcast_ref::<ClusterValue>();
                let fields = cluster
                    .ok()
                    .map(|c| Value::List(c.cluster.rule.fields().into_iter().map(Value::String).collect()));
                FieldFuture::from_value(fields)
            })
            .description("The fields the rule compares."),
        )
        .field(
            Field::new("size", TypeRef::named_nn(TypeRef::INT), |ctx| {
                let cluster = ctx.parent_value.try_downcast_ref::<ClusterValue>();
                FieldFuture::from_value(cluster.ok().map(|c| Value::from(c.records.len())))
            })
            .description("How many records it holds."),
        )
        .field(
            Field::new("records", TypeRef::named_nn_list_nn("AnyRecord"), |ctx| {
                resolved(async move {
                    let cluster = ctx.parent_value.try_downcast_ref::<ClusterValue>()?;
                    let object = cluster.cluster.rule.object.clone();
                    Ok(Some(FieldValue::list(
                        cluster
                            .records
                            .iter()
                            .map(|r| FieldValue::owned_any(r.clone()).with_type(object.clone())),
                    )))
                })
            })
            .description(
                "The records, oldest first: `mergeRecords` takes the first as survivor and the rest as merged.",
            ),
        )
}

fn find_field() -> Field {
    Field::new("findDuplicates", TypeRef::named_nn("DuplicateClusterPage"), |ctx| {
        resolved(async move {
            let context = context(&ctx)?;
            let name = text_arg(&ctx, "object")?;
            let object = rules::object(&context.model, &name, &[])?;
            access::require(&context.actor, object, Operation::Read)?;
            let first = first_arg(&ctx, DEFAULT_CLUSTERS, MAX_CLUSTERS)?;
            let after = after_arg(&ctx, "findDuplicates", clusters::decode)?;
            let rule_name = match arg(&ctx, "rule") {
                Some(Value::String(rule)) => Some(rule.clone()),
                _ => None,
            };
            let mut conn = context.db.conn().await?;
            let mut rules = rules::active(&mut conn, &context.schema, &context.model, Some(&object.name)).await?;
            if let Some(rule_name) = &rule_name {
                rules.retain(|r| &r.name == rule_name);
                if rules.is_empty() {
                    return Err(CrmError::bad_input(
                        &["rule"],
                        format!("{} has no active duplicate rule named {rule_name}", object.name),
                    ));
                }
            }
            // Rules after the cursor's, the cursor's from its head on.
            if let Some((rule, _)) = after {
                let at = rules.iter().position(|r| r.id == rule).unwrap_or(rules.len());
                rules.drain(..at);
            }
            let table = context.table(object);
            let found = {
                use diesel_async::AsyncConnection;
                conn.transaction::<_, CrmError, _>(async |conn| {
                    let mut found = Vec::new();
                    for rule in &rules {
                        let from = after.filter(|(r, _)| *r == rule.id).map(|(_, head)| head);
                        let more = first + 1 - found.len();
                        found.extend(clusters::of_rule(conn, table, rule, from, more).await?);
                        if found.len() > first {
                            break;
                        }
                    }
                    Ok(found)
                })
                .await?
            };
            let has_next_page = found.len() > first;
            let mut found = found;
            found.truncate(first);
            let ids: Vec<uuid::Uuid> = found.iter().flat_map(|c| c.records.iter().copied()).collect();
            let records: HashMap<uuid::Uuid, Record> =
                crate::records::get_many(&mut conn, table, &FieldSet::all(object), &ids).await?;
            let clusters = found
                .into_iter()
                .map(|cluster| {
                    let records = cluster
                        .records
                        .iter()
                        .filter_map(|id| records.get(id).cloned())
                        .collect();
                    ClusterValue { cluster, records }
                })
                .collect();
            Ok(Some(FieldValue::owned_any(Page {
                clusters,
                has_next_page,
            })))
        })
    })
    .argument(InputValue::new("object", TypeRef::named_nn(TypeRef::STRING)).description("The object: `Contact`."))
    .argument(
        InputValue::new("rule", TypeRef::named(TypeRef::STRING))
            .description("One rule's clusters, by name; every active rule's when absent (ALLOW ones too)."),
    )
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT)).description(format!(
            "Clusters per page, 0 to {MAX_CLUSTERS}; {DEFAULT_CLUSTERS} when absent."
        )),
    )
    .argument(
        InputValue::new("after", TypeRef::named(TypeRef::STRING)).description("The `endCursor` of the page before."),
    )
    .description(
        "Records of an object that its duplicate rules find to be one customer, as clusters headed by the oldest \
         record; only records the caller may see.",
    )
}
