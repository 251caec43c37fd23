//! The integration suite: one binary, so it links once. Every test talks to
//! a real PostgreSQL through the real HTTP server (GraphQL in, JSON out).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests read as scenarios, top to bottom: splitting them would hide the story.
#![allow(clippy::too_many_lines)]

mod support;

mod access;
mod analytics;
mod auth;
mod automation;
mod backup;
mod batching;
mod browser;
mod cli;
mod compiled;
mod connections;
mod console;
mod custom;
mod embedded;
mod faults;
mod find;
mod hostile;
mod http;
mod impact;
mod kill;
mod layers;
mod leads;
mod live;
mod locks;
mod metadata;
mod model;
mod mutations;
mod promotion;
mod queries;
mod replicas;
mod reports;
mod retention;
mod sales_history;
mod sandbox;
mod scale;
mod schema_file;
mod security;
mod transfer;
mod webhooks;
