//! A request's variables, checked as the resolvers check them.
//!
//! Clients (Apollo, urql, Relay) send filters, orderings and page sizes as
//! variables. The compiled path takes them as the resolvers do: the JSON
//! value as it came (an enum as its name in a string, an input object as
//! an object, a single value where a list is declared), absent nullable
//! variables as null and declared defaults filled in. Before that, each
//! value is checked against its declared type in the schema's own
//! registry, by the rules async-graphql's validation applies (unknown input
//! fields, missing required ones, enum names, scalar checks, list
//! coercion): a value the resolvers would refuse goes to them, so the
//! client gets their error.

use async_graphql::parser::types::{ExecutableDocument, OperationDefinition, OperationType};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Request, Value, Variables};

use super::{operation, Compiled, Skip};

/// The operation a request runs and its variables (absent nullable ones as
/// null, defaults applied), each checked against its declared type.
pub(super) fn prepare<'d>(
    document: &'d ExecutableDocument,
    request: &Request,
    registry: &Registry,
) -> Compiled<(&'d OperationDefinition, Variables)> {
    let operation = operation(document, request.operation_name.as_deref()).ok_or(Skip::Unsupported)?;
    if operation.ty != OperationType::Query || !operation.directives.is_empty() {
        return Err(Skip::Unsupported);
    }
    let mut variables = Variables::default();
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if !definition.directives.is_empty() {
            return Err(Skip::Unsupported);
        }
        let declared = definition.var_type.node.to_string();
        let value = match request.variables.get(&definition.name.node) {
            Some(value) => value.clone(),
            None => definition.default_value().cloned().ok_or(Skip::Values)?,
        };
        if !fits(registry, &declared, &value)? {
            return Err(Skip::Values);
        }
        variables.insert(definition.name.node.clone(), value);
    }
    Ok((operation, variables))
}

/// Whether `value` is a valid input of type `type_name` (`[OpportunityOrderBy!]`,
/// `ID!` …) in `registry`. A type the registry does not have is a document
/// the compiler does not know.
fn fits(registry: &Registry, type_name: &str, value: &Value) -> Compiled<bool> {
    match MetaTypeName::create(type_name) {
        MetaTypeName::NonNull(inner) => Ok(!matches!(value, Value::Null) && fits(registry, inner, value)?),
        MetaTypeName::List(inner) => match value {
            Value::Null => Ok(true),
            Value::List(items) => {
                for item in items {
                    if !fits(registry, inner, item)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            // List coercion: one value stands for a list of one.
            single => fits(registry, inner, single),
        },
        MetaTypeName::Named(name) => {
            if matches!(value, Value::Null) {
                return Ok(true);
            }
            match registry.types.get(name).ok_or(Skip::Unsupported)? {
                MetaType::Scalar { is_valid, .. } => Ok(is_valid.as_ref().is_none_or(|valid| valid(value))),
                MetaType::Enum { enum_values, .. } => Ok(match value {
                    Value::Enum(item) => enum_values.contains_key(item.as_str()),
                    Value::String(item) => enum_values.contains_key(item.as_str()),
                    _ => false,
                }),
                MetaType::InputObject {
                    input_fields, oneof, ..
                } => {
                    let Value::Object(given) = value else {
                        return Ok(false);
                    };
                    if *oneof && (given.len() != 1 || given.values().any(|v| matches!(v, Value::Null))) {
                        return Ok(false);
                    }
                    if given.keys().any(|key| !input_fields.contains_key(key.as_str())) {
                        return Ok(false);
                    }
                    for field in input_fields.values() {
                        let ok = match given.get(field.name.as_str()) {
                            Some(item) => fits(registry, &field.ty, item)?,
                            None => !MetaTypeName::create(&field.ty).is_non_null() || field.default_value.is_some(),
                        };
                        if !ok {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
                // Output types cannot be variables: validation refuses the document.
                _ => Err(Skip::Unsupported),
            }
        }
    }
}
