//! A GraphQL CRM server over PostgreSQL.
//!
//! The data model is metadata ([`metadata`]): one engine turns it into
//! typed Postgres columns, a dynamic GraphQL schema per workspace
//! ([`graphql`]) and SQL compiled with bound parameters ([`records`]).
//! Production lives in the Postgres schema `crm`; each sandbox
//! ([`sandbox`]) is a copy of it, `sandbox_<name>`, made by the same code.

pub mod access;
pub mod actor;
pub mod analytics;
pub mod app;
pub mod audit;
pub mod auth;
pub mod automation;
pub mod backup;
pub mod config;
pub mod customize;
pub mod db;
pub mod duplicates;
pub mod error;
pub mod graphql;
pub mod history;
pub mod http;
pub mod leads;
pub mod live;
pub mod merge;
pub mod metadata;
pub mod notify;
pub mod promotion;
pub mod records;
pub mod retention;
pub mod sandbox;
pub mod search;
pub mod seed;
pub mod team;
pub mod timeline;
pub mod transfer;
pub mod webhooks;
pub mod yielding;

pub use app::App;
pub use config::Config;
pub use error::CrmError;
