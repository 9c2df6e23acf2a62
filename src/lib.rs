//! Host-independent core of the Glance Image API v2.
//!
//! Everything here is plain Rust: no Spin, no WASI. The Spin components in
//! `components/` turn a Spin request into an [`api::ApiRequest`], hand it to the
//! matching service in [`api`], and write the [`api::ApiResponse`] back. Storage is
//! reached through the ports in [`store`], so the same code runs natively in tests
//! (backed by rusqlite) and inside a component (backed by Spin's SQLite interface).

pub mod api;
pub mod blob;
pub mod config;
pub mod error;
pub mod format_inspector;
pub mod identity;
pub mod image;
pub mod image_access;
pub mod image_data;
pub mod image_repo;
pub mod image_schema;
pub mod image_update;
pub mod json_patch;
pub mod keystone;
pub mod list_query;
pub mod member_repo;
pub mod migrations;
pub mod outbound;
pub mod policy;
pub mod schemas;
pub mod sigv4;
pub mod store;
pub mod stores;
pub mod task_repo;
pub mod timestamp;
pub mod versions;

pub use error::ApiError;
