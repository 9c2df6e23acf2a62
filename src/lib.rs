//! Host-independent core of the Glance Image API v2.
//!
//! Everything here is plain Rust: no Spin, no WASI. A host adapter (the Spin
//! components in `components/`) turns its request into an [`api::ApiRequest`],
//! hands it to the matching service in [`api`] with the [`ports::Ports`] it
//! provides, and writes the [`api::ApiResponse`] back. The same code runs
//! natively in tests over in-memory ports.
//!
//! Layout, one concern per folder:
//! - [`api`]: the HTTP surface — request, response, route tables, handlers;
//! - `auth`: who is asking (noauth, Keystone) and what they may do (policy);
//! - `image`: the image record, its status machine, schema rules, patches, list queries;
//! - `db`: SQL persistence — migrations, images, members, tasks;
//! - `data`: image bytes — receiving uploads, stores, import, format inspection;
//! - [`ports`]: what the host provides (SQL, key-value, outbound HTTP, variables, log);
//! - `settings`: every variable and its default; `error`: errors and their HTTP mapping.

#![deny(missing_docs)]

pub mod api;
pub(crate) mod auth;
pub(crate) mod data;
pub(crate) mod db;
pub(crate) mod error;
pub(crate) mod image;
pub(crate) mod metadefs;
pub(crate) mod notify;
pub mod ports;
pub mod settings;
pub(crate) mod timestamp;
mod wire_enum;
