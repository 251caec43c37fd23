//! What a change of the GraphQL schema does to existing clients: the two
//! SDL texts are parsed and compared type by type, member by member, and
//! each difference is classified the way schema-review tools do.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::parser::types::{InputValueDefinition, TypeKind, TypeSystemDefinition};

pub use crate::metadata::kinds::impact::{level_of, Level, SdlChange};

/// A type as far as clients can tell.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Object and interface types: fields with their arguments.
    Fields(BTreeMap<String, (String, BTreeMap<String, Input>)>),
    Input(BTreeMap<String, Input>),
    Enum(BTreeSet<String>),
    Union(BTreeSet<String>),
    Scalar,
}

#[derive(Debug, Clone, PartialEq)]
struct Input {
    ty: String,
    default: Option<String>,
    required: bool,
}

/// A parsed schema, to compare without parsing again.
#[derive(Debug, Clone, Default)]
pub struct Schema(BTreeMap<String, Shape>);

impl Schema {
    /// A text that does not parse is an empty schema.
    pub fn parse(sdl: &str) -> Schema {
        Schema(shapes(sdl))
    }
}

/// The differences between two parsed schemas.
pub fn changes(before: &Schema, after: &Schema) -> Vec<SdlChange> {
    let (old, new) = (&before.0, &after.0);
    let outputs = output_types(new);
    let mut out = Vec::new();
    for (name, shape) in old {
        match new.get(name) {
            None => out.push(change(Level::Breaking, name, format!("type {name} was removed"))),
            Some(next) => compare(name, shape, next, outputs.contains(name), &mut out),
        }
    }
    for name in new.keys().filter(|n| !old.contains_key(*n)) {
        out.push(change(Level::Safe, name, format!("type {name} was added")));
    }
    out
}

fn change(level: Level, path: &str, message: String) -> SdlChange {
    SdlChange {
        level,
        path: path.to_owned(),
        message,
    }
}

/// The types some field returns: values of these reach clients.
fn output_types(shapes: &BTreeMap<String, Shape>) -> BTreeSet<String> {
    shapes
        .values()
        .filter_map(|shape| match shape {
            Shape::Fields(fields) => Some(
                fields
                    .values()
                    .map(|(ty, _)| ty.trim_matches(|c| "[]!".contains(c)).to_owned()),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

fn compare(name: &str, old: &Shape, new: &Shape, returned: bool, out: &mut Vec<SdlChange>) {
    match (old, new) {
        (Shape::Fields(old), Shape::Fields(new)) => {
            for (field, (ty, args)) in old {
                let path = format!("{name}.{field}");
                match new.get(field) {
                    None => out.push(change(Level::Breaking, &path, format!("field {path} was removed"))),
                    Some((new_ty, new_args)) => {
                        if ty != new_ty {
                            out.push(change(
                                Level::Breaking,
                                &path,
                                format!("field {path} changed type from {ty} to {new_ty}"),
                            ));
                        }
                        inputs(&path, "argument", args, new_args, out);
                    }
                }
            }
            for (field, (ty, _)) in new.iter().filter(|(f, _)| !old.contains_key(*f)) {
                let path = format!("{name}.{field}");
                out.push(change(Level::Safe, &path, format!("field {path}: {ty} was added")));
            }
        }
        (Shape::Input(old), Shape::Input(new)) => inputs(name, "input field", old, new, out),
        (Shape::Enum(old), Shape::Enum(new)) => members(name, "value", old, new, returned, out),
        (Shape::Union(old), Shape::Union(new)) => members(name, "member", old, new, true, out),
        (Shape::Scalar, Shape::Scalar) => {}
        _ => out.push(change(Level::Breaking, name, format!("type {name} changed kind"))),
    }
}

/// Values of an enum or members of a union. A new value of an enum that
/// only inputs use cannot surprise a client.
fn members(
    name: &str,
    what: &str,
    old: &BTreeSet<String>,
    new: &BTreeSet<String>,
    returned: bool,
    out: &mut Vec<SdlChange>,
) {
    for value in old.difference(new) {
        let path = format!("{name}.{value}");
        out.push(change(Level::Breaking, &path, format!("{what} {path} was removed")));
    }
    for value in new.difference(old) {
        let path = format!("{name}.{value}");
        out.push(if returned {
            change(
                Level::Dangerous,
                &path,
                format!("{what} {path} was added: clients that handle every {what} may not expect it"),
            )
        } else {
            change(
                Level::Safe,
                &path,
                format!("{what} {path} was added (used in inputs only)"),
            )
        });
    }
}

/// Arguments of a field, or fields of an input type.
fn inputs(
    owner: &str,
    what: &str,
    old: &BTreeMap<String, Input>,
    new: &BTreeMap<String, Input>,
    out: &mut Vec<SdlChange>,
) {
    let path_of = |name: &str| {
        if what == "argument" {
            format!("{owner}({name})")
        } else {
            format!("{owner}.{name}")
        }
    };
    for (name, input) in old {
        let path = path_of(name);
        match new.get(name) {
            None => out.push(change(Level::Breaking, &path, format!("{what} {path} was removed"))),
            Some(next) => {
                if input.ty != next.ty {
                    out.push(change(
                        Level::Breaking,
                        &path,
                        format!("{what} {path} changed type from {} to {}", input.ty, next.ty),
                    ));
                } else if next.required && !input.required {
                    out.push(change(Level::Breaking, &path, format!("{what} {path} became required")));
                }
                if input.default != next.default {
                    out.push(change(
                        Level::Dangerous,
                        &path,
                        format!(
                            "{what} {path} changed its default from {} to {}",
                            input.default.as_deref().unwrap_or("none"),
                            next.default.as_deref().unwrap_or("none")
                        ),
                    ));
                }
            }
        }
    }
    for (name, input) in new.iter().filter(|(n, _)| !old.contains_key(*n)) {
        let path = path_of(name);
        if input.required {
            out.push(change(
                Level::Breaking,
                &path,
                format!(
                    "required {what} {path}: {} was added: existing operations do not give it",
                    input.ty
                ),
            ));
        } else {
            out.push(change(
                Level::Safe,
                &path,
                format!("optional {what} {path}: {} was added", input.ty),
            ));
        }
    }
}

fn shapes(sdl: &str) -> BTreeMap<String, Shape> {
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = ty.node;
        let shape = match ty.kind {
            TypeKind::Scalar => Shape::Scalar,
            TypeKind::Object(object) => Shape::Fields(fields(object.fields)),
            TypeKind::Interface(interface) => Shape::Fields(fields(interface.fields)),
            TypeKind::Union(union) => Shape::Union(union.members.into_iter().map(|m| m.node.to_string()).collect()),
            TypeKind::Enum(e) => Shape::Enum(e.values.into_iter().map(|v| v.node.value.node.to_string()).collect()),
            TypeKind::InputObject(input) => Shape::Input(input_map(input.fields)),
        };
        out.insert(ty.name.node.to_string(), shape);
    }
    out
}

fn fields(
    fields: Vec<async_graphql::Positioned<async_graphql::parser::types::FieldDefinition>>,
) -> BTreeMap<String, (String, BTreeMap<String, Input>)> {
    fields
        .into_iter()
        .map(|f| {
            let f = f.node;
            (f.name.node.to_string(), (f.ty.node.to_string(), input_map(f.arguments)))
        })
        .collect()
}

fn input_map(values: Vec<async_graphql::Positioned<InputValueDefinition>>) -> BTreeMap<String, Input> {
    values
        .into_iter()
        .map(|v| {
            let v = v.node;
            let default = v.default_value.map(|d| d.node.to_string());
            let required = !v.ty.node.nullable && default.is_none();
            (
                v.name.node.to_string(),
                Input {
                    ty: v.ty.node.to_string(),
                    default,
                    required,
                },
            )
        })
        .collect()
}
